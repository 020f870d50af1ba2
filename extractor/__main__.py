import os
import sys

if not __package__:
    # Run as `python extractor`: what `paddle.distributed.launch ... -m extractor` starts.
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from extractor.cli import main  # noqa: E402

sys.exit(main())
