"""One process or many under `paddle.distributed.launch`, on one node or several: who am I, and
who writes. Under `--nnodes N` the launcher sets PADDLE_TRAINER_ID and PADDLE_TRAINERS_NUM to the
global rank and world (node offset + local rank), so shares are disjoint across the nodes."""
import fcntl
import logging
import os
import secrets
import socket
import struct
import time

import paddle
import paddle.distributed

from .errors import InputError

log = logging.getLogger("videotag")  # core.log's logger (core.log imports this module, not the reverse)


def rank():
    return int(os.environ.get("PADDLE_TRAINER_ID", "0"))


def world_size():
    return int(os.environ.get("PADDLE_TRAINERS_NUM", "1"))


def is_main():
    return rank() == 0


def has_gpu():
    return paddle.device.is_compiled_with_cuda() and paddle.device.cuda.device_count() > 0


def select_device():
    """GPU when paddle was built with CUDA and sees one, else CPU. Returns the device string."""
    if has_gpu():
        device = "gpu"
        if world_size() > 1:
            device = f"gpu:{os.environ.get('FLAGS_selected_gpus', '0').split(',')[0]}"
    else:
        device = "cpu"
    paddle.set_device(device)
    return device


_initialised = False


def init_parallel():
    """Join the process group once when launched with several processes (gloo on CPU, NCCL on GPU)."""
    global _initialised
    if world_size() > 1 and not _initialised:
        choose_gloo_interface()
        paddle.distributed.init_parallel_env()
        _initialised = True


def choose_gloo_interface():
    """On CPU, gloo offers the other nodes the address this host's name resolves to. Many machines
    map their name to 127.0.1.1 in /etc/hosts, and the other nodes would dial their own loopback and
    hang or fail. When the launcher knows this node by another address (found, or given by --host),
    talk over the interface that holds it, as GLOO_SOCKET_IFNAME would say."""
    if os.environ.get("GLOO_SOCKET_IFNAME") or has_gpu():  # GPUs talk NCCL, which picks its own
        return
    endpoint = os.environ.get("PADDLE_CURRENT_ENDPOINT", "").rsplit(":", 1)[0]
    address = resolve(endpoint) if endpoint else None
    if not address or address.startswith("127.") or address == resolve(socket.gethostname()):
        return
    interface = interface_with(address)
    if interface is None:
        raise InputError(f"this node's address {address} is on none of its network interfaces: set "
                         "GLOO_SOCKET_IFNAME to the interface the nodes reach each other on")
    os.environ["GLOO_SOCKET_IFNAME"] = interface
    log.info("talking to the other nodes over %s (%s): the host name does not resolve to it", interface, address)


def resolve(name):
    try:
        return socket.gethostbyname(name)
    except OSError:
        return None


def interface_with(address):
    """The name of the network interface holding IPv4 `address`, or None."""
    for _, name in socket.if_nameindex():
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
            try:
                found = fcntl.ioctl(probe.fileno(), 0x8915, struct.pack("256s", name.encode()[:15]))  # SIOCGIFADDR
            except OSError:  # no IPv4 address, or down
                continue
        if socket.inet_ntoa(found[20:24]) == address:
            return name
    return None


def shard(items, rank_=None, world=None):
    """This process's disjoint share of `items` (every world-th item, from its rank)."""
    rank_ = rank() if rank_ is None else rank_
    world = world_size() if world is None else world
    return items[rank_::world]


def all_gather_object(obj):
    """The list of `obj` from every process, in rank order (just [obj] with one process)."""
    if world_size() == 1:
        return [obj]
    out = []
    paddle.distributed.all_gather_object(out, obj)
    return out


def barrier():
    if world_size() > 1:
        paddle.distributed.barrier()


def check_shared_dir(path, wait_s=3.0):
    """Stop every process with one line unless all of them see the same `path`: with several nodes
    rank 0 writes checkpoints and merged outputs there and every rank writes its share, so the folder
    must be one shared folder (NFS or alike) mounted at the same path on every node."""
    if world_size() == 1:
        return
    token = secrets.token_hex(8) if is_main() else None
    if is_main():
        os.makedirs(path, exist_ok=True)
        write_token(path, token)
    token = all_gather_object(token)[0]  # also a barrier: rank 0's file is written
    seen = read_token(path, token, wait_s)
    views = all_gather_object((socket.gethostname(), seen))
    if is_main():
        os.remove(token_path(path, token))
    blind = [f"rank {r} on {host}" for r, (host, ok) in enumerate(views) if not ok]
    if blind:
        raise InputError(f"save_dir is not shared between the nodes: {', '.join(blind)} cannot see the file rank 0 "
                         f"on {views[0][0]} wrote into {os.path.abspath(path)}; give every node the same shared "
                         "folder (NFS or alike, mounted at the same path)")


def token_path(path, token):
    # A new name per run: an NFS client may cache that an old name does not exist.
    return os.path.join(path, f".shared-check-{token}")


def write_token(path, token):
    with open(token_path(path, token), "w") as f:
        f.write(token)
        f.flush()
        os.fsync(f.fileno())


def read_token(path, token, wait_s):
    """Whether this process sees rank 0's token; waits up to `wait_s` for a slow shared filesystem."""
    deadline = time.monotonic() + wait_s
    while True:
        try:
            with open(token_path(path, token)) as f:
                if f.read() == token:
                    return True
        except OSError:
            pass
        if time.monotonic() > deadline:
            return False
        time.sleep(0.2)
