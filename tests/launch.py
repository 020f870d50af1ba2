"""Two processes under paddle.distributed.launch (gloo on CPU): how the tests check multi-GPU code."""
import glob
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def launch_two(args, log_dir):
    """Run `python -m paddle.distributed.launch --nproc_per_node=2 ARGS` from the project root.
    Returns (exit status, what the launcher printed followed by every worker's log)."""
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=ROOT)  # two processes share the two cores
    run = subprocess.run([sys.executable, "-m", "paddle.distributed.launch", "--nproc_per_node=2",
                          "--log_dir", str(log_dir), *args],
                         cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    logs = "".join(open(path).read() for path in sorted(glob.glob(os.path.join(str(log_dir), "*"))))
    return run.returncode, run.stderr[-3000:] + logs
