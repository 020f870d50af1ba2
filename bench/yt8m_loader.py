"""Throughput of the YouTube-8M TFRecord reader on synthetic frame-level shards.

    python bench/yt8m_loader.py [--videos 500] [--frames 300] [--shards 4] [--repeat 3]

Writes the shards to a temporary folder (deleted afterwards), then times, best of --repeat:
  crc32c            the CRC32C function alone over the records' bytes, in memory
  crc32c fallback   the numpy fallback used when google-crc32c is missing (on a subset)
  framing + CRC     reading the shards: record framing and both CRCs, no decoding
  full reader       iter_tfrecord_videos: framing, CRCs, protobuf decoding, dequantisation
The shards were just written, so they are read from the page cache: this is the reader's CPU
cost on one core, not the disk's speed. MB/s counts shard bytes.
"""
import argparse
import os
import sys
import tempfile
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from sequence import tfrecord, yt8m  # noqa: E402


def synthetic_videos(n, frames, seed):
    rng = np.random.default_rng(seed)
    for i in range(n):
        t = int(rng.integers(frames // 2, frames + 1)) if i % 5 == 0 else frames
        yield (f"v{seed:03d}{i:05d}",
               {"rgb": rng.integers(0, 256, (t, 1024), dtype=np.uint8),
                "audio": rng.integers(0, 256, (t, 128), dtype=np.uint8)},
               sorted(rng.choice(3862, size=3, replace=False).tolist()))


def best_of(repeat, fn):
    best = None
    for _ in range(repeat):
        start = time.perf_counter()
        count = fn()
        elapsed = time.perf_counter() - start
        best = elapsed if best is None else min(best, elapsed)
    return count, best


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--videos", type=int, default=500)
    parser.add_argument("--frames", type=int, default=300)
    parser.add_argument("--shards", type=int, default=4)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="yt8m_bench_") as tmp:
        paths = []
        per_shard = -(-args.videos // args.shards)
        for s in range(args.shards):
            n = min(per_shard, args.videos - s * per_shard)
            path = os.path.join(tmp, f"train{s:04d}.tfrecord")
            tfrecord.write_tfrecord(path, synthetic_videos(n, args.frames, s))
            paths.append(path)
        total = sum(os.path.getsize(p) for p in paths)
        records = [data for _, _, data in tfrecord.iter_tfrecord_records(paths)]
        payload = sum(len(r) for r in records)

        rows = []
        _, t = best_of(args.repeat, lambda: [tfrecord.crc32c(r) for r in records])
        rows.append((f"crc32c ({tfrecord.CRC_IMPLEMENTATION})", len(records), payload, t))
        subset = records[:max(1, len(records) // 20)]
        _, t = best_of(1, lambda: [tfrecord.crc32c_fallback(r) for r in subset])
        rows.append(("crc32c fallback (numpy)", len(subset), sum(map(len, subset)), t))
        n, t = best_of(args.repeat, lambda: sum(1 for _ in tfrecord.iter_tfrecord_records(paths)))
        rows.append(("framing + CRC", n, total, t))
        n, t = best_of(args.repeat, lambda: sum(1 for _ in yt8m.iter_tfrecord_videos(paths)))
        rows.append(("full reader", n, total, t))

    print(f"{args.videos} videos x <= {args.frames} frames (rgb 1024 + audio 128 uint8), "
          f"{args.shards} shards, {total / 1e6:.1f} MB; one process, page cache warm")
    print(f"{'step':<28}{'records':>9}{'seconds':>10}{'records/s':>12}{'MB/s':>10}")
    for name, count, size, seconds in rows:
        print(f"{name:<28}{count:>9}{seconds:>10.3f}{count / seconds:>12.0f}"
              f"{size / 1e6 / seconds:>10.0f}")


if __name__ == "__main__":
    main()
