"""List files and how their entries are shared out: every list kind (videos, features, labelled
videos) is read by one walker, and every data source splits its global batches the same way."""
import collections
import concurrent.futures
import os

import numpy as np

from .errors import InputError


def list_entries(list_path, kind="feature list"):
    """(line number, fields, folder) of each entry of a list file. Blank and # lines are skipped;
    a line with a tab is split on tabs (paths with spaces), others on whitespace; `folder` is
    where relative paths resolve."""
    if not list_path or not os.path.isfile(list_path):
        raise InputError(f"{kind} not found", list_path)
    folder = os.path.dirname(os.path.abspath(list_path))
    with open(list_path) as f:
        for line_no, line in enumerate(f, 1):
            if line.strip() and not line.lstrip().startswith("#"):
                fields = line.split("\t") if "\t" in line else line.split()
                yield line_no, [x.strip() for x in fields if x.strip()], folder


def rank_shares(items, batch_size, rank, world, drop_last):
    """Cut `items` (any iterable) into global batches of batch_size and yield, as a list, this
    process's contiguous slice of each.  Every process cuts the same sequence, so N processes see
    what one process with the same global batch sees.  A short last batch is dropped (drop_last)
    or split evenly, and a process whose slice of it is empty yields nothing for it."""
    if batch_size % world:
        raise InputError(f"batch_size {batch_size} must be divisible by the {world} processes")

    def share(batch):
        per_rank = -(-len(batch) // world)  # batch_size // world for a full batch
        return batch[rank * per_rank:(rank + 1) * per_rank]

    batch = []
    for item in items:
        batch.append(item)
        if len(batch) == batch_size:
            yield share(batch)
            batch = []
    last = share(batch) if not drop_last else []
    if last:
        yield last


def batch_count(num_videos, batch_size, drop_last):
    """Global batches in an epoch: full ones only with drop_last, else the short last one too."""
    return num_videos // batch_size if drop_last else -(-num_videos // batch_size)


def list_shares(num_videos, batch_size, rank, world, shuffle, drop_last, epoch, seed, list_path):
    """rank_shares over the positions of a list's videos, shuffled by (seed, epoch) when asked."""
    if drop_last and num_videos < batch_size:
        raise InputError(f"batch_size {batch_size} is larger than the {num_videos} videos listed", list_path)
    order = np.arange(num_videos)
    if shuffle:
        order = np.random.default_rng([seed, epoch]).permutation(order)
    return rank_shares(order, batch_size, rank, world, drop_last)


def read_ahead(shares, load, num_workers, depth=2):
    """Yield (share, [load(item) for item in share]) for each share, loading the next `depth`
    shares in threads meanwhile (file reads and numpy release the GIL)."""
    with concurrent.futures.ThreadPoolExecutor(max(1, num_workers)) as pool:
        pending = collections.deque()
        for share in shares:
            pending.append((share, [pool.submit(load, item) for item in share]))
            if len(pending) > depth:
                done, futures = pending.popleft()
                yield done, [f.result() for f in futures]
        for done, futures in pending:
            yield done, [f.result() for f in futures]
