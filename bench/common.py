"""Shared by the extraction benchmarks: generated clips, machine facts, timers.

Clips are written once with OpenCV (mp4v) into bench/.cache (gitignored): a textured
background that pans (so P-frames carry real motion, not a static picture) with moving shapes.
"""
import multiprocessing
import os
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
import videotag  # noqa: E402,F401  (OMP_NUM_THREADS, h5py before paddle)

import cv2  # noqa: E402
import numpy as np  # noqa: E402

CACHE = os.path.join(ROOT, "bench", ".cache")
CLIPS = {  # name: (height, width, seconds, fps)
    "360p_10s": (360, 640, 10, 30),
    "720p_60s": (720, 1280, 60, 30),
    "360p_10min": (360, 640, 600, 30),
}


def clip(name):
    """Path of the generated clip `name` (see CLIPS), written on first use."""
    height, width, seconds, fps = CLIPS[name]
    path = os.path.join(CACHE, f"{name}.mp4")
    if os.path.exists(path):
        return path
    os.makedirs(CACHE, exist_ok=True)
    started = time.perf_counter()
    rng = np.random.default_rng(0)
    # Smooth texture twice as wide as the frame; each frame is a window sliding across it.
    texture = cv2.resize(rng.integers(0, 256, (height // 8, width // 4, 3), dtype=np.uint8),
                         (2 * width, height), interpolation=cv2.INTER_CUBIC)
    tmp = path + ".tmp.mp4"
    writer = cv2.VideoWriter(tmp, cv2.VideoWriter_fourcc(*"mp4v"), fps, (width, height))
    if not writer.isOpened():
        raise RuntimeError(f"OpenCV cannot write {tmp}")
    frames = seconds * fps
    for t in range(frames):
        x = (t * 3) % width
        frame = np.ascontiguousarray(texture[:, x:x + width])
        for k in range(3):
            cx = int((0.5 + 0.4 * np.sin(t / (20.0 + 7 * k) + k)) * width)
            cy = int((0.5 + 0.4 * np.cos(t / (25.0 + 5 * k) + 2 * k)) * height)
            color = tuple(int(c) for c in (80 * k % 256, 255 - 60 * k, 40 + 90 * k))
            cv2.circle(frame, (cx, cy), height // (6 + 2 * k), color, -1)
        cv2.rectangle(frame, (0, 0), (width * (t + 1) // frames, height // 40), (255, 255, 255), -1)
        writer.write(frame)
    writer.release()
    os.replace(tmp, path)
    print(f"# wrote {path} ({frames} frames {width}x{height}) in {time.perf_counter() - started:.0f} s",
          flush=True)
    return path


def machine():
    model = "?"
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return f"{os.cpu_count()} cores, {model}"


def load():
    return "load average %.2f %.2f %.2f" % os.getloadavg()


def cpu_seconds():
    """CPU seconds of this process and of its live child processes (the extractor's decoding
    workers, which os.times() does not count until they exit)."""
    total = time.process_time()
    for child in multiprocessing.active_children():
        try:
            with open(f"/proc/{child.pid}/stat") as f:
                fields = f.read().rpartition(")")[2].split()
            total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime, stime
        except (OSError, IndexError, ValueError):  # it exited meanwhile, or no /proc
            pass
    return total


def rate(fn, items, repeat=1):
    """items per second of fn() (best of `repeat`)."""
    best = float("inf")
    for _ in range(repeat):
        started = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - started)
    return items / best


def table(rows, header):
    widths = [max(len(str(r[i])) for r in [header] + rows) for i in range(len(header))]
    line = lambda r: "| " + " | ".join(str(c).ljust(w) for c, w in zip(r, widths)) + " |"  # noqa: E731
    out = [line(header), "|" + "|".join("-" * (w + 2) for w in widths) + "|"]
    return "\n".join(out + [line(r) for r in rows])
