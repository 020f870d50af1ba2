"""The application on top of both stages: tagging video libraries, export, the demo, the synthetic
library and the HTML report. `core` is imported first (OMP_NUM_THREADS and h5py before paddle)."""
import core  # noqa: F401
