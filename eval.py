"""Evaluate weights on the config's TEST list; print the metrics and write <save_dir>/metrics.json.

    python eval.py --model_name AttentionLSTM --weights out/AttentionLSTM_best.pdparams
"""
import json

import videotag  # noqa: F401  (sets OMP_NUM_THREADS before paddle loads)
from core import dist
from videotag import cli
from core.errors import exit_on_input_error
from core.fsutil import atomic_open
from core.log import log


@exit_on_input_error
def main(argv=None):
    p = cli.parser(__doc__, weights_help="the .pdparams to evaluate")
    p.add_argument("--filelist", help="evaluate this list instead of TEST.filelist")
    args = p.parse_args(argv)
    cfg, task = cli.setup(args)
    if args.filelist:
        cfg.TEST["filelist"] = args.filelist
    from core.checkpoint import load_exact
    from core.trainer import Trainer

    trainer = Trainer(task, args.save_dir)
    model = task.build_model()
    load_exact(model, args.weights, task.model_name)
    metrics = trainer.evaluate(model, "test")
    if dist.is_main():
        log.info("%s on %s: %s", args.weights, cfg.TEST.filelist,
                                           ", ".join(f"{k} {v:.4f}" for k, v in metrics.items()))
        with atomic_open(f"{args.save_dir}/metrics.json") as f:
            json.dump(metrics, f, indent=2)
        print(json.dumps(metrics))
    return metrics


if __name__ == "__main__":
    main()
