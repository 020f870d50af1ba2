"""`python -m extractor`, and the script form `python extractor/__main__.py` that a multi-node
launch needs: with --master, paddle.distributed.launch drops a `-m` it does not know and tries to
execute `extractor` as a program (FileNotFoundError); a path ending in .py it runs with python."""
import os
import sys

if not __package__:
    # Run as a script: import the package from the project root, and take extractor/ itself off
    # the path, or its modules (video, pipeline, weights, ...) would shadow top-level names.
    HERE = os.path.dirname(os.path.abspath(__file__))
    sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != HERE]
    sys.path.insert(0, os.path.dirname(HERE))

from extractor.cli import main  # noqa: E402

if __name__ == "__main__":  # the decoding processes import this module again (extractor/pipeline.py)
    sys.exit(main())
