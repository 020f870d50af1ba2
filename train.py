"""Train a model (videotag.commands.train); `python train.py --help` lists its flags."""
import videotag  # noqa: F401  (sets OMP_NUM_THREADS before paddle loads)
from videotag.commands import train as main

if __name__ == "__main__":
    main()
