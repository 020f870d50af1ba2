"""Evaluate weights on a list (videotag.commands.evaluate); `python eval.py --help` lists its flags."""
import videotag  # noqa: F401  (sets OMP_NUM_THREADS before paddle loads)
from videotag.commands import evaluate as main

if __name__ == "__main__":
    main()
