"""VideoTag's full-size AttentionLSTM (fluid 1.8.5 outputs; tools/videotag_reference) through our code:
the released file's layout read by --weights' path (read, convert, build with configs/attention_lstm.yaml,
load exactly), the five videos (5, 9, 3, 12 and 300 frames) in one padded batch. Prints the largest
probability and logit errors (docs/MODELS.md). About 20 s and 2 GB of RAM on a CPU.

    .venv/bin/python bench/videotag_parity.py [--fixtures /work/fixtures-large/videotag]
"""
import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import videotag  # noqa: E402,F401  (OMP_NUM_THREADS, h5py before paddle)

import numpy as np  # noqa: E402
import paddle  # noqa: E402

from core.checkpoint import build_with_weights  # noqa: E402
from core.config import load_config  # noqa: E402
from core.log import setup as setup_logging  # noqa: E402
from videotag.models import default_config_path, make_task  # noqa: E402


def padded(io):
    lengths = io["lengths"]
    features = np.zeros((len(lengths), lengths.max(), io["feature_0"].shape[1]), "float32")
    mask = np.zeros(features.shape[:2], "float32")
    for i, n in enumerate(lengths):
        features[i, :n], mask[i, :n] = io[f"feature_{i}"], 1
    return features, mask


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--fixtures", default="/work/fixtures-large/videotag",
                   help="folder of attention_lstm.pdparams and attention_lstm_io.npz (make_fixtures.py --large-out)")
    args = p.parse_args()
    setup_logging()
    weights = os.path.join(args.fixtures, "attention_lstm.pdparams")
    io = np.load(os.path.join(args.fixtures, "attention_lstm_io.npz"))
    task = make_task("AttentionLSTM", load_config(default_config_path("AttentionLSTM")))
    model = build_with_weights(task, weights)
    model.eval()
    features, mask = padded(io)
    start = time.time()
    with paddle.no_grad():
        logits = model([paddle.to_tensor(features)], paddle.to_tensor(mask)).numpy()
    seconds = time.time() - start
    probs = 1 / (1 + np.exp(-logits.astype("float64")))
    print(f"VideoTag AttentionLSTM, full size (MODEL.lstm={task.cfg.MODEL.lstm}), lengths {io['lengths'].tolist()}, "
          f"paddle {paddle.__version__}: max |prob error| {np.abs(probs - io['probs']).max():.2e}, "
          f"max |logit error| {np.abs(logits - io['logits']).max():.2e} (logits in "
          f"[{io['logits'].min():.1f}, {io['logits'].max():.1f}]); forward {seconds:.2f} s")


if __name__ == "__main__":
    main()
