"""List files and how their entries are shared out: every list kind (videos, labelled videos,
features, shards) is read by one reader and written by one writer, and every data source splits
its global batches the same way.

A list has one entry per line: a path, then fields (labels) separated by white space. Blank lines
and lines starting with # are skipped, and a UTF-8 byte order mark is ignored. A line with a tab
is split on tabs (VideoTag-style paths with spaces). A path that holds white space, or starts with
# or ", is written as a JSON string ("my clip.mp4"), so any path we write reads back unchanged.
"""
import collections
import concurrent.futures
import dataclasses
import json
import math
import os

import numpy as np

from .errors import InputError
from .fsutil import atomic_open


def list_entries(list_path, kind="feature list"):
    """(line number, fields, folder) of each entry of a list file; fields[0] is the path as listed,
    `folder` the list's folder (see resolve)."""
    if not list_path or not os.path.isfile(list_path):
        raise InputError(f"{kind} not found", list_path)
    folder = os.path.dirname(os.path.abspath(list_path))
    with open(list_path, encoding="utf-8-sig") as f:
        for line_no, line in enumerate(f, 1):
            line = line.rstrip("\r\n")
            if not line.strip() or line.lstrip().startswith("#"):
                continue
            yield line_no, _fields(line, list_path, line_no), folder


def _fields(line, list_path, line_no):
    if line.startswith('"'):
        try:
            path, end = json.JSONDecoder().raw_decode(line)
        except json.JSONDecodeError:
            raise InputError("malformed line: a path that starts with \" must be a JSON string "
                             '("my clip.mp4")', list_path, line_no) from None
        if not isinstance(path, str) or (line[end:end + 1] and not line[end].isspace()):
            raise InputError("malformed line: white space must follow the quoted path", list_path, line_no)
        return [path, *line[end:].split()]
    fields = line.split("\t") if "\t" in line else line.split()
    return [x.strip() for x in fields if x.strip()]


@dataclasses.dataclass
class ScoredEntry:
    """One line of a quality list."""
    name: str  # the path as listed
    path: str  # resolved (see resolve)
    score: float
    line: int
    frames_dir: str = ""  # PaddleVideo's four-column layout: the video's frames, resolved (may not exist)
    frame_count: int = 0  # ... and how many it holds


SCORED_LAYOUTS = "'path score' or PaddleVideo's 'video.mp4 frames_dir frame_count score'"


def scored_entries(list_path, kind="quality list", need_scores=True):
    """The entries of a list of scored items: `path score` (score a float, e.g. a mean opinion score),
    or PaddleVideo's quality lists read as they are, `video.mp4 frames_dir frame_count score`; without
    need_scores (items to score) a line may also be a path alone (score nan). Errors name the list file
    and line; whether the files exist is the caller's to check."""
    entries = []
    for line_no, fields, folder in list_entries(list_path, kind):
        if len(fields) not in (2, 4) and not (len(fields) == 1 and not need_scores):
            raise InputError(f"malformed line: {len(fields)} fields, expected {SCORED_LAYOUTS}", list_path, line_no)
        score = _score(fields[-1], list_path, line_no) if len(fields) > 1 else math.nan
        entry = ScoredEntry(fields[0], resolve(fields[0], folder), score, line_no)
        if len(fields) == 4:
            if not fields[2].isdigit() or int(fields[2]) == 0:
                raise InputError(f"malformed line: frame count '{fields[2]}' is not a positive integer "
                                 f"(expected {SCORED_LAYOUTS})", list_path, line_no)
            entry.frames_dir, entry.frame_count = resolve(fields[1], folder), int(fields[2])
        entries.append(entry)
    if not entries:
        raise InputError(f"the {kind} is empty", list_path)
    return entries


def _score(text, list_path, line_no):
    try:
        score = float(text)
    except ValueError:
        score = math.nan
    if not math.isfinite(score):
        raise InputError(f"malformed line: score '{text}' is not a number (expected {SCORED_LAYOUTS})",
                         list_path, line_no)
    return score


def format_entry(path, fields=()):
    """The list line of `path` and its fields that list_entries reads back unchanged."""
    plain = path and not any(c.isspace() for c in path) and not path.startswith(("#", '"'))
    return " ".join([path if plain else json.dumps(path, ensure_ascii=False), *map(str, fields)])


def write_list(path, entries):
    """Write (path, fields) entries as a list file, atomically."""
    with atomic_open(path, encoding="utf-8") as f:
        f.writelines(format_entry(listed, fields) + "\n" for listed, fields in entries)


def resolve(listed, folder):
    """Where a listed path is: as given when absolute; else beside the list when it is there, else
    relative to the working directory (VideoTag's lists name paths from where its commands ran)."""
    if os.path.isabs(listed):
        return listed
    beside = os.path.join(folder, listed)
    return beside if os.path.exists(beside) or not os.path.exists(listed) else listed


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


def epoch_order(num_videos, shuffle, epoch, seed):
    """The positions of a list's videos in the order an epoch reads them: shuffled by (seed, epoch)
    when asked, so every process and every resumed run reads the same order."""
    order = np.arange(num_videos)
    return np.random.default_rng([seed, epoch]).permutation(order) if shuffle else order


def order_shares(order, batch_size, rank, world, drop_last, list_path):
    """rank_shares over `order`, positions of a list's videos."""
    if drop_last and len(order) < batch_size:
        raise InputError(f"batch_size {batch_size} is larger than the {len(order)} videos listed", list_path)
    return rank_shares(order, batch_size, rank, world, drop_last)


def list_shares(num_videos, batch_size, rank, world, shuffle, drop_last, epoch, seed, list_path):
    """rank_shares over the positions of a list's videos, shuffled by (seed, epoch) when asked."""
    return order_shares(epoch_order(num_videos, shuffle, epoch, seed), batch_size, rank, world, drop_last, list_path)


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
