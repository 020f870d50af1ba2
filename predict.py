"""Tag the videos of a feature list: <save_dir>/predictions.jsonl, one line per video with its top-k tags.

    python predict.py --model_name AttentionLSTM --weights out/AttentionLSTM_best.pdparams \
        --label_file data/labels.txt --filelist infer.list --save_dir out/pred --topk 20
"""
import json
import logging
import os

import numpy as np

import videotag  # noqa: F401  (sets OMP_NUM_THREADS before paddle loads)
from sequence.task import sigmoid
from videotag import cli, dist
from videotag.errors import InputError, exit_on_input_error
from videotag.fsutil import atomic_open


def read_label_names(path, num_classes):
    if not path:
        return [str(i) for i in range(num_classes)]
    if not os.path.isfile(path):
        raise InputError("label file not found", path)
    with open(path, encoding="utf-8") as f:
        names = [line.rstrip("\n") for line in f]
    while names and not names[-1].strip():
        names.pop()
    if len(names) != num_classes:
        raise InputError(f"{len(names)} label names, but MODEL.num_classes is {num_classes}", path)
    return names


def top_tags(probabilities, label_names, topk):
    best = np.argsort(-probabilities, kind="stable")[:topk]
    return [{"class_id": int(c), "class_name": label_names[c], "probability": round(float(probabilities[c]), 6)}
            for c in best]


@exit_on_input_error
def main(argv=None):
    p = cli.parser(__doc__, weights_help="the .pdparams of the head")
    p.add_argument("--filelist", help="feature list to tag (default INFER.filelist)")
    p.add_argument("--label_file", help="tag names, one per line (line number = class id)")
    p.add_argument("--topk", type=int, help="tags per video (default MODEL.topk)")
    args = p.parse_args(argv)
    cfg, task = cli.setup(args)
    label_names = read_label_names(args.label_file, cfg.MODEL.num_classes)
    topk = args.topk or cfg.MODEL.topk
    from videotag.checkpoint import load_exact
    from videotag.trainer import Trainer

    trainer = Trainer(task, args.save_dir)
    model = task.build_model()
    load_exact(model, args.weights, task.model_name)
    source = task.source("infer", filelist=args.filelist)
    if source is None:
        raise InputError("no videos to tag: give --filelist or set INFER.filelist", cfg.path)
    names, logits, _ = trainer.infer(model, source)
    if dist.is_main():
        probabilities = sigmoid(logits)
        path = os.path.join(args.save_dir, "predictions.jsonl")
        with atomic_open(path, encoding="utf-8") as f:
            for name, p_video in zip(names, probabilities):
                f.write(json.dumps({"video": name, "tags": top_tags(p_video, label_names, topk)}) + "\n")
        logging.getLogger("videotag").info("tagged %d videos: %s", len(names), path)


if __name__ == "__main__":
    main()
