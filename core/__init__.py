"""The base both stages and the application stand on: config files, the one trainer, checkpoints,
lists, process groups, atomic writes, input errors. It imports nothing of the project above it.

Importing this package before paddle matters: paddle pins OMP_NUM_THREADS to 1 when it is
unset, which leaves every core but one idle on CPU; and Paddle 2.6 bundles a zlib that breaks
h5py when paddle loads first.
"""
import os

os.environ.setdefault("OMP_NUM_THREADS", str(os.cpu_count() or 1))

import h5py  # noqa: E402,F401  (before paddle: see above)
