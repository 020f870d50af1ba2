"""AttentionLSTM training with and without freed memory kept for reuse (core/heap.py): two processes
(the setting is process-wide) holding the same model and videos, taking training steps in turn, so
both see the same machine load. Reports videos/s per round, page faults per step and peak memory.

    .venv/bin/python bench/heap.py [--videos 96] [--rounds 3] [--amp]

Videos of 150-300 frames, 2048-d, batch 32, 3396 classes, the shipped model; each round is one epoch
of each process, step by step in turn, after one untimed step. --amp adds the bf16 products (CPUs with
AVX512_BF16 or AMX).
"""
import argparse
import os
import resource
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def child(keep, list_path, amp):
    """Answers each line on stdin (a batch number) with the step's seconds and page faults."""
    from bench.bucketing import Stepper, epoch_batches
    from core.config import load_config
    from videotag.models import default_config_path, make_task
    overrides = [f"TRAIN.filelist={list_path}", "TRAIN.batch_size=32", "TRAIN.bucket_batches=8"]
    task = make_task("AttentionLSTM", load_config(default_config_path("AttentionLSTM"), overrides))
    stepper, (batches, _, _) = Stepper(task, amp, keep_freed_memory=keep), epoch_batches(task)
    stepper.step(batches[0])
    print(len(batches), flush=True)
    for line in sys.stdin:
        faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        seconds = stepper.step(batches[int(line)])
        usage = resource.getrusage(resource.RUSAGE_SELF)
        print(seconds, usage.ru_minflt - faults, usage.ru_maxrss / 2**20, flush=True)  # peak in GiB


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--videos", type=int, default=96)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--amp", action="store_true")
    parser.add_argument("--child", choices=["kept", "returned"], help=argparse.SUPPRESS)
    parser.add_argument("--list", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return child(args.child == "kept", args.list, args.amp)
    from bench.heads_training import write_features
    with tempfile.TemporaryDirectory() as folder:
        list_path = write_features(folder, args.videos, (150, 300))
        children = {}
        for setting in ("returned", "kept"):
            command = [sys.executable, __file__, "--child", setting, "--list", list_path] + (["--amp"] if args.amp else [])
            children[setting] = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        steps = [int(c.stdout.readline()) for c in children.values()][0]
        rates = {setting: [] for setting in children}
        for round_no in range(args.rounds):
            totals = {setting: [0.0, 0, 0.0] for setting in children}
            for i in range(steps):
                for setting, process in children.items():
                    process.stdin.write(f"{i}\n")
                    process.stdin.flush()
                    seconds, faults, peak = process.stdout.readline().split()
                    totals[setting] = [totals[setting][0] + float(seconds), totals[setting][1] + int(faults), float(peak)]
            for setting, (seconds, faults, peak) in totals.items():
                rates[setting].append(steps * 32 / seconds)
            print(f"round {round_no + 1}: " + ", ".join(
                f"{s} {steps * 32 / t[0]:.2f} videos/s ({t[1] / steps:.0f} page faults a step, peak {t[2]:.2f} GiB)"
                for s, t in totals.items()), flush=True)
        for process in children.values():
            process.stdin.close()
            process.wait()
    ratios = [kept / returned for kept, returned in zip(rates["kept"], rates["returned"])]
    print(f"kept / returned (videos/s): {', '.join(f'{r:.2f}' for r in ratios)}, mean {sum(ratios) / len(ratios):.2f}")


if __name__ == "__main__":
    main()
