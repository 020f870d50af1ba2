"""Stage one: frame features, one [seg_num, feature_dim] matrix per video, from MODEL.backbone
(VideoTag's TSN ResNet-101 by default, or the PP family: backbones.py)."""
import core  # noqa: F401  (OMP_NUM_THREADS and h5py before paddle)
