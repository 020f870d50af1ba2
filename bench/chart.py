"""Draw docs/extraction.png from the JSON written by bench/extraction.py (and bench/memory.py).

    .venv/bin/python bench/chart.py extraction.json [memory.json] [--out docs/extraction.png]
"""
import argparse
import json

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("extraction")
    parser.add_argument("memory", nargs="?")
    parser.add_argument("--out", default="docs/extraction.png")
    args = parser.parse_args()
    fig_data = json.load(open(args.extraction))
    memory = json.load(open(args.memory)) if args.memory else None

    cols = 2 if memory else 1
    fig, axes = plt.subplots(1, cols, figsize=(11 if memory else 7.5, 4.2),
                             gridspec_kw={"width_ratios": [2.2, 1]} if memory else None)
    ax = axes[0] if memory else axes
    labels = list(fig_data["ours"])
    series = [("backbone limit (frames in memory)", "#9aa5b1", [fig_data["ours"][k]["limit"] for k in labels]),
              ("ours, end to end", "#1f77b4", [fig_data["ours"][k]["fps"] for k in labels]),
              ("reference-style (OpenCV all frames, PIL, dygraph)", "#d62728",
               [fig_data.get("reference", {}).get(k, {}).get("fps", 0) for k in labels])]
    height = 0.26
    for i, (name, color, values) in enumerate(series):
        ys = [j + (i - 1) * height for j in range(len(labels))]
        bars = ax.barh(ys, values, height, label=name, color=color)
        for bar, v in zip(bars, values):
            if v:
                ax.text(bar.get_width() + 0.05, bar.get_y() + bar.get_height() / 2, f"{v:.2f}",
                        va="center", fontsize=8)
    for j, k in enumerate(labels):
        ax.text(fig_data["ours"][k]["fps"] + 0.6, j, f"= {fig_data['ours'][k]['ratio']:.2f} of the limit",
                fontsize=8, color="#1f77b4", va="center", fontweight="bold")
    ax.set_yticks(range(len(labels)), [k.replace(", ", "\n") for k in labels], fontsize=9)
    ax.invert_yaxis()
    ax.set_xlabel("frames per second (ResNet-101, 224 crop)")
    ax.set_xlim(0, max(max(v) for _, _, v in series) * 1.45)
    ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.16), ncol=2, frameon=False)
    ax.set_title(f"Extraction speed, {fig_data['machine']}", fontsize=10)
    if memory:
        mx = axes[1]
        names = [k for k in memory if isinstance(memory[k], dict)]
        peaks = [memory[k]["peak"] / 2**20 for k in names]
        bars = mx.bar(names, peaks, color="#1f77b4", label="ours, peak RSS")
        for bar, v in zip(bars, peaks):
            mx.text(bar.get_x() + bar.get_width() / 2, v + 20, f"{v:.0f} MB", ha="center", fontsize=8)
        mx.set_ylabel("MB")
        mx.set_ylim(0, max(peaks) * 1.3)
        mx.set_title(f"Peak RSS, seg_num {memory['seg_num']}: ratio {memory['ratio']:.2f}", fontsize=10)
        mx.set_xlabel("reference: the 10 min clip's frames alone\nwould take "
                      f"{memory[names[-1]]['reference_frames_bytes'] / 2**30:.1f} GB", fontsize=8)
    fig.tight_layout()
    fig.savefig(args.out, dpi=110)
    print(args.out)


if __name__ == "__main__":
    main()
