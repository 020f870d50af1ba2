"""Several processes under paddle.distributed.launch (gloo on CPU): how the tests check multi-GPU
and multi-node code. Two "nodes" are two launchers on this machine, joined through 127.0.0.1."""
import glob
import os
import signal
import socket
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LAUNCH = [sys.executable, "-m", "paddle.distributed.launch"]


def worker_env():
    return dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=ROOT)  # the processes share the two cores


def read_logs(log_dir):
    return "".join(open(path).read() for path in sorted(glob.glob(os.path.join(str(log_dir), "*"))))


def launch_two(args, log_dir):
    """Run `python -m paddle.distributed.launch --nproc_per_node=2 ARGS` from the project root.
    Returns (exit status, what the launcher printed followed by every worker's log)."""
    run = subprocess.run([*LAUNCH, "--nproc_per_node=2", "--log_dir", str(log_dir), *args],
                         cwd=ROOT, env=worker_env(), capture_output=True, text=True, timeout=300)
    return run.returncode, run.stderr[-3000:] + read_logs(log_dir)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_nodes(args, log_dir, nnodes=2, prefix=(), hosts=()):
    """Start one launcher per node (`--nnodes N --master HOST:PORT --rank R`, one process each), as a
    user types it on every machine. Per node: `prefix` wraps its command (e.g. `ip netns exec ns`),
    `hosts` is its address (`--host`; the first is the master's). Returns the launchers."""
    master = f"{hosts[0] if hosts else '127.0.0.1'}:{free_port()}"
    nodes = []
    for node in range(nnodes):
        host = ["--host", hosts[node]] if hosts else []
        command = [*LAUNCH, "--nnodes", str(nnodes), "--master", master, "--rank", str(node), *host,
                   "--nproc_per_node", "1", "--log_dir", os.path.join(str(log_dir), f"node{node}"), *args]
        wrapper = list(prefix[node]) if prefix else []
        nodes.append(subprocess.Popen(wrapper + command, cwd=ROOT, env=worker_env(), stdout=subprocess.PIPE,
                                      stderr=subprocess.STDOUT, text=True, start_new_session=True))
    return nodes


def wait_nodes(nodes, log_dir, timeout=300):
    """Wait for every launcher; returns (exit statuses, what they printed and every worker's log)."""
    printed = []
    for node in nodes:
        try:
            out, _ = node.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            kill_node(node)
            out, _ = node.communicate()
        printed.append(out[-3000:])
    return [node.returncode for node in nodes], "".join(printed) + read_logs_deep(log_dir)


def read_logs_deep(log_dir):
    paths = sorted(glob.glob(os.path.join(str(log_dir), "**", "workerlog.*"), recursive=True))
    return "".join(f"--- {path}\n" + open(path).read() for path in paths)


def descendants(pid):
    """Every process below `pid` (the launcher puts each worker in a session of its own, so the
    launcher's process group does not hold them)."""
    children = {}
    for stat in glob.glob("/proc/[0-9]*/stat"):
        try:
            fields = open(stat).read().rsplit(")", 1)[1].split()
        except OSError:  # gone meanwhile
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.split("/")[2]))
    found, todo = [], [pid]
    while todo:
        below = children.get(todo.pop(), [])
        found += below
        todo += below
    return found


def kill_node(node):
    """kill -9 of a whole node: its launcher and every process it started."""
    for pid in [node.pid, *descendants(node.pid)]:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def launch_nodes(args, log_dir, nnodes=2, **kwargs):
    """Run ARGS on `nnodes` launchers of one process each; returns (0 when every node succeeded, logs)."""
    statuses, logs = wait_nodes(start_nodes(args, log_dir, nnodes, **kwargs), log_dir)
    return max(statuses, key=abs), logs
