"""Stage one: TSN ResNet-101 frame features, one [seg_num, 2048] matrix per video."""
import core  # noqa: F401  (OMP_NUM_THREADS and h5py before paddle)
