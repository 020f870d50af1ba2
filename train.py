"""Train a model on the config's TRAIN list, validating on VALID after each epoch.

    python train.py --model_name AttentionLSTM --config configs/attention_lstm.yaml --save_dir out/
    python -m paddle.distributed.launch --nproc_per_node=8 train.py --model_name AttentionLSTM
"""
import videotag  # noqa: F401  (sets OMP_NUM_THREADS before paddle loads)
from videotag import cli
from core.errors import exit_on_input_error


@exit_on_input_error
def main(argv=None):
    p = cli.parser(__doc__)
    p.add_argument("--resume", action="store_true", help="continue from the newest epoch checkpoint in save_dir")
    p.add_argument("--pretrain", metavar="WEIGHTS", help="fine-tune: load every parameter whose name and shape match")
    p.add_argument("--amp", action="store_true", help="mixed precision (on GPUs)")
    args = p.parse_args(argv)
    cfg, task = cli.setup(args)
    from core.trainer import Trainer

    Trainer(task, args.save_dir, amp=args.amp).fit(resume=args.resume, pretrain=args.pretrain)


if __name__ == "__main__":
    main()
