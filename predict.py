"""Tag videos or feature files (videotag.commands.predict); `python predict.py --help` lists its flags."""
import sys

import videotag  # noqa: F401  (sets OMP_NUM_THREADS before paddle loads)
from videotag.commands import predict as main

if __name__ == "__main__":
    sys.exit(main())
