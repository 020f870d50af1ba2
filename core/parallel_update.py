"""The optimizer's update on several CPU cores at once.

Paddle's CPU update kernels of RMSProp and Momentum (and the sum that adds the L2 term) each run on
one core, and they release the GIL. So the parameters are split into shares of about equal size, one
optimizer per share, and the shares step in threads at once: the update of AttentionLSTM's 64M
parameters (RMSProp, L2) 1.55x faster on two cores, Momentum's 1.84x (bench/optimizer_update.py).
Adam's kernel already uses every core: it stays one optimizer. Each parameter goes through
the same kernel as before, so results are bit for bit those of one optimizer, and the state of all
shares is one dict keyed by parameter, as one optimizer's (checkpoints do not change).
"""
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import paddle

from . import cpu_threads

MAX_SHARES = 8


def default_shares():
    """One share per CPU thread on the CPU (at most MAX_SHARES); one on a GPU, whose kernels are asynchronous."""
    if not paddle.device.get_device().startswith("cpu"):
        return 1
    return max(1, min(MAX_SHARES, cpu_threads()))


def split(parameters, shares):
    """parameters (a list of tensors, or of param-group dicts) as `shares` lists of the same kind,
    each parameter in one, the shares' sizes as equal as largest-first placement makes them."""
    grouped = bool(parameters) and isinstance(parameters[0], dict)
    groups = parameters if grouped else [{"params": list(parameters)}]
    everything = [p for group in groups for p in group["params"]]
    shares = max(1, min(shares, len(everything)))
    sizes, share_of = [0] * shares, {}
    for p in sorted(everything, key=lambda p: -int(np.prod(p.shape))):
        smallest = sizes.index(min(sizes))
        share_of[id(p)] = smallest
        sizes[smallest] += int(np.prod(p.shape))
    parts = []
    for k in range(shares):
        part = [{**group, "params": [p for p in group["params"] if share_of[id(p)] == k]} for group in groups]
        part = [group for group in part if group["params"]]
        parts.append(part if grouped else part[0]["params"])
    return parts


class ParallelUpdate:
    """Optimizers over disjoint shares of the parameters, used as one (the trainer's calls)."""

    def __init__(self, optimizers):
        self.optimizers = optimizers
        self._pool = ThreadPoolExecutor(len(optimizers), thread_name_prefix="update")

    def _each(self, method):
        for future in [self._pool.submit(getattr(optimizer, method)) for optimizer in self.optimizers]:
            future.result()

    def step(self):
        self._each("step")

    def clear_grad(self):
        self._each("clear_grad")

    def set_lr(self, rate):
        for optimizer in self.optimizers:
            optimizer.set_lr(rate)

    def get_lr(self):
        return self.optimizers[0].get_lr()

    def state_dict(self):
        return {key: value for optimizer in self.optimizers for key, value in optimizer.state_dict().items()}

    def set_state_dict(self, state):
        for optimizer in self.optimizers:  # each takes the entries of its own parameters
            optimizer.set_state_dict(state)
