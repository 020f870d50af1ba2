"""One process or many under `paddle.distributed.launch`: who am I, and who writes."""
import os

import paddle
import paddle.distributed


def rank():
    return int(os.environ.get("PADDLE_TRAINER_ID", "0"))


def world_size():
    return int(os.environ.get("PADDLE_TRAINERS_NUM", "1"))


def is_main():
    return rank() == 0


def select_device():
    """GPU when paddle was built with CUDA and sees one, else CPU. Returns the device string."""
    if paddle.device.is_compiled_with_cuda() and paddle.device.cuda.device_count() > 0:
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
        paddle.distributed.init_parallel_env()
        _initialised = True


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
