"""The commands train.py, eval.py and predict.py run (the scripts at the top are their entry points)."""
import json
import os

from core import dist
from core.checkpoint import build_with_weights
from core.errors import InputError, check_writable, exit_on_input_error
from core.fsutil import atomic_open
from core.log import log
from core.trainer import Trainer
from sequence.task import sigmoid
from sequence.yt8m import names_records

from . import cli, journal, tagging
from .heads import read_label_names, top_tags


@exit_on_input_error
def train(argv=None):
    """Train a model on the config's TRAIN list, validating on VALID after each epoch.

        python train.py --model_name AttentionLSTM --config configs/attention_lstm.yaml --save_dir out/
        python -m paddle.distributed.launch --nproc_per_node=8 train.py --model_name AttentionLSTM
    """
    p = cli.parser(train.__doc__, prog="train.py")
    p.add_argument("--resume", action="store_true", help="continue from the newest epoch checkpoint in save_dir")
    p.add_argument("--pretrain", metavar="WEIGHTS", help="fine-tune: load every parameter whose name and shape match "
                   "(ours, or VideoTag's, the PaddleCV zoo's or PaddleVideo's: docs/MODELS.md)")
    p.add_argument("--pretrain_partial", action="store_true",
                   help="--pretrain may match under half of the model's tensors (else an error)")
    p.add_argument("--amp", action="store_true", help="mixed precision: float16 on GPUs; on CPUs with "
                   "AVX512_BF16 or AMX the large matrix products in bfloat16 (docs/TRAINING.md)")
    args = p.parse_args(argv)
    cfg, task = cli.setup(args)
    check_writable(args.save_dir)  # exit 3 now, not after the first epoch
    Trainer(task, args.save_dir, amp=args.amp).fit(resume=args.resume, pretrain=args.pretrain,
                                                   pretrain_partial=args.pretrain_partial)


@exit_on_input_error
def evaluate(argv=None):
    """Evaluate weights on the config's TEST list; print the metrics and write <save_dir>/metrics.json.

        python eval.py --model_name AttentionLSTM --weights out/AttentionLSTM_best.pdparams
    """
    p = cli.parser(evaluate.__doc__, prog="eval.py", weights_help="the .pdparams to evaluate")
    p.add_argument("--filelist", help="evaluate this list instead of TEST.filelist")
    args = p.parse_args(argv)
    cfg, task = cli.setup(args)
    if args.filelist:
        cfg.TEST["filelist"] = args.filelist
    trainer = Trainer(task, args.save_dir)
    model = build_with_weights(task, args.weights)
    metrics = trainer.evaluate(model, "test")
    if dist.is_main():
        log.info("%s on %s: %s", args.weights, cfg.TEST.filelist, ", ".join(f"{k} {v:.4f}" for k, v in metrics.items()))
        with atomic_open(f"{args.save_dir}/metrics.json") as f:
            json.dump(metrics, f, indent=2)
        print(json.dumps(metrics))
    return metrics


def tag_features(args, cfg, task):
    label_names = read_label_names(args.label_file, cfg.MODEL.num_classes)
    topk = args.topk or cfg.MODEL.topk
    trainer = Trainer(task, args.save_dir)
    model = build_with_weights(task, args.weights)
    source = task.source("infer", filelist=args.filelist)
    if source is None:
        raise InputError("no videos to tag: give --filelist or set INFER.filelist", cfg.path)
    names, logits, _ = trainer.infer(model, source)
    if dist.is_main():
        probabilities = sigmoid(logits)
        path = os.path.join(args.save_dir, journal.PREDICTIONS)
        with atomic_open(path, encoding="utf-8") as f:
            for name, p_video in zip(names, probabilities):
                f.write(json.dumps({"video": name, "tags": top_tags(p_video, label_names, topk)}) + "\n")
        journal.write_csv(args.save_dir)
        log.info("tagged %d videos: %s", len(names), path)


@exit_on_input_error
def predict(argv=None):
    """Tag videos, or the feature files of a feature list: top-k tags per video into
    <save_dir>/predictions.jsonl and predictions.csv.

    Videos (--video_path DIR, or a --filelist of .mp4/.avi/... files) run both stages in one resumable
    pass, with thumbnails and report.html (docs/TAGGING.md):
        python predict.py --model AttentionLSTM --weights out/AttentionLSTM_best.pdparams \
            --extractor_weights tsn.pdparams --label_file labels.txt --video_path library/ --save_dir tags/
    A feature list (.npy/.npz/.h5#key per line, as the extractor writes) runs the head only:
        python predict.py --model_name AttentionLSTM --weights out/AttentionLSTM_best.pdparams \
            --label_file data/labels.txt --filelist infer.list --save_dir out/pred --topk 20

    Returns the exit status: 1 when some videos could not be tagged.
    """
    p = cli.parser(predict.__doc__, prog="predict.py")
    p.add_argument("--weights", help="the .pdparams of the head (not needed with --inference_dir)")
    p.add_argument("--filelist", help="videos or a feature list to tag (default INFER.filelist, features)")
    p.add_argument("--label_file", help="tag names, one per line (line number = class id)")
    p.add_argument("--topk", type=int, help="tags per video (default MODEL.topk)")
    tagging.add_arguments(p)
    args = p.parse_args(argv)
    if args.video_path and args.filelist:
        raise InputError("give --video_path or --filelist, not both")
    # YouTube-8M shards (binary) are features, never a list of videos.
    if args.video_path or (args.filelist and not names_records(args.filelist) and tagging.is_video_list(args.filelist)):
        return tagging.tag_videos(args)
    if not args.weights:
        raise InputError("--weights (the head's .pdparams) is required to tag features")
    cfg, task = cli.setup(args)
    tag_features(args, cfg, task)
    return 0
