"""The one trainer for every model (the sequence heads and TSN): epochs, learning-rate schedule,
checkpoints, resume, fine-tuning, several processes, evaluation on the whole set.

A task says what is model-specific, with these members:
  model_name, cfg, best_metric   e.g. "AttentionLSTM", the Config, "gap"
  build_model()                  a fresh paddle.nn.Layer
  source(split)                  data of TRAIN/VALID/TEST/INFER (None when the config lists none), with
                                 batches(rank, world, shuffle, drop_last, epoch, seed) and num_batches(drop_last)
  forward(model, batch)          the model's output tensor for a batch
  loss(output, batch)            scalar tensor: mean over the batch's videos
  targets(batch)                 numpy targets of the batch (for metrics)
  metrics(outputs, targets)      dict of floats over the whole set (numpy in)
and optionally convert_pretrained(state, model): a --pretrain checkpoint renamed to the model's names, and
adopt_checkpoint(state, path) -> state: the same before the model is built, setting MODEL switches.
A source may have check(index): raise InputError when item `index` is unusable; training runs it on
every item of the TRAIN, VALID and TEST lists before the first step.
"""
import contextlib
import functools
import glob
import json
import math
import os
import re
import time

import matplotlib
import numpy as np
import paddle
from tqdm import tqdm

matplotlib.use("Agg")  # files only: training runs on machines without a display
import matplotlib.pyplot as plt  # noqa: E402

try:  # optional: curves in VisualDL's format too when it is installed
    from visualdl import LogWriter
except ImportError:
    LogWriter = None

from . import bf16_products, checkpoint, dist, heap, parallel_update
from .config import save_config
from .errors import InputError
from .fsutil import atomic_open, atomic_path
from .lists import read_ahead
from .log import log


def scaled_learning_rate(train_cfg):
    """TRAIN.learning_rate is for a global batch of reference_batch_size (0: for batch_size itself);
    the rate used scales linearly with the batch."""
    reference = train_cfg.get("reference_batch_size") or train_cfg.batch_size
    return train_cfg["learning_rate"] * train_cfg.batch_size / reference


def warmup_length(train_cfg, total_steps, steps_per_epoch=0):
    """Steps of linear warm-up: the longer of TRAIN.warmup_steps and TRAIN.warmup_epochs, at most a
    tenth of a run (a short run still spends most of its steps at the full rate)."""
    steps = max(train_cfg.get("warmup_steps") or 0, (train_cfg.get("warmup_epochs") or 0) * steps_per_epoch)
    return min(steps, total_steps // 10) if total_steps else steps


def learning_rate(train_cfg, epoch, examples_seen, total_steps=None, steps_per_epoch=0):
    """The learning rate for a step: a pure function of progress, so a resumed run follows it exactly.
    total_steps (the planned run) sets the cosine's length and caps the warm-up; steps_per_epoch
    turns TRAIN.warmup_epochs into steps. The warm-up climbs linearly from TRAIN.warmup_start of the
    rate (0: from near 0) to the full rate."""
    base, gamma = scaled_learning_rate(train_cfg), train_cfg.get("decay_gamma", 0.1)
    step = examples_seen // train_cfg.batch_size
    warmup = warmup_length(train_cfg, total_steps, steps_per_epoch)
    if step < warmup:
        start = train_cfg.get("warmup_start") or 0.0
        base *= start + (1 - start) * (step + 1) / (warmup + 1)
    schedule = train_cfg.get("lr_schedule", "constant")
    if schedule == "cosine":  # from the full rate after warm-up down to 0 at the last planned step
        if not total_steps:
            return base
        progress = min(1.0, max(0, step - warmup) / max(1, total_steps - warmup))
        return base * 0.5 * (1 + math.cos(math.pi * progress))
    if schedule == "piecewise":
        # VideoTag counts an epoch as num_samples examples (its boundaries are in steps of the total batch)
        epoch_size = train_cfg.get("num_samples") or 0
        progress = examples_seen / epoch_size if epoch_size else epoch
        return base * gamma ** sum(progress >= e for e in train_cfg["decay_epochs"])
    if schedule == "exponential":
        return base * gamma ** (examples_seen // train_cfg["decay_examples"])
    if schedule == "constant":
        return base
    raise InputError(f"TRAIN.lr_schedule '{schedule}' is not one of cosine, piecewise, exponential, constant")


def planned_epochs(train_cfg, steps_per_epoch):
    """TRAIN.epoch, raised so the run makes at least TRAIN.min_steps optimizer steps (a small set
    otherwise gets too few updates to learn)."""
    min_steps = train_cfg.get("min_steps") or 0
    return max(train_cfg.epoch, -(-min_steps // steps_per_epoch))


SHORT_RUN_STEPS = 500  # fewer planned steps: the synthetic study (docs/TRAINING.md) did not converge


# TRAIN.weight_decay_on: which parameters L2 (weight_decay) applies to, as VideoTag regularised each model.
L2_SCOPES = {
    "all": "every trainable parameter (VideoTag's TSN)",
    "all_but_fc_biases": "all but the biases of fully connected layers (VideoTag's AttentionLSTM: L2Decay(0) "
                         "on every fc bias, while the LSTM's biases are decayed)",
    "classifier": "the classifier's weight and bias only (VideoTag's NeXtVLAD)",
    "all_but_bn_and_fc_biases": "all but batch-norm scales and shifts and the fc biases (PaddleVideo's PP-TSN, "
                                "PP-TSM and PP-TSMv2: L2Decay(0) on those)",
}
BATCH_NORMS = (paddle.nn.BatchNorm, paddle.nn.BatchNorm1D, paddle.nn.BatchNorm2D, paddle.nn.BatchNorm3D)
CLASSIFIER_NAMES = ("classifier", "fc")  # the heads' and TSN's last layer


def decayed_parameters(model, scope):
    trainable = [p for p in model.parameters() if not p.stop_gradient]
    if scope == "all":
        return trainable
    if scope in ("all_but_fc_biases", "all_but_bn_and_fc_biases"):
        exempt = {id(layer.bias) for layer in model.sublayers()
                  if isinstance(layer, paddle.nn.Linear) and layer.bias is not None}
        if scope == "all_but_bn_and_fc_biases":
            exempt |= {id(p) for layer in model.sublayers() if isinstance(layer, BATCH_NORMS)
                       for p in layer.parameters(include_sublayers=False)}
        return [p for p in trainable if id(p) not in exempt]
    if scope == "classifier":
        return [p for name, p in model.named_parameters() if name.split(".")[0] in CLASSIFIER_NAMES
                and not p.stop_gradient]
    raise InputError(f"TRAIN.weight_decay_on '{scope}' is not one of {', '.join(L2_SCOPES)}")


def parameter_groups(train_cfg, model):
    """The model's parameters, as groups with their own L2 when only some are decayed (param groups
    set each parameter's regularizer, on Paddle 2.6 and 3.x alike)."""
    decay = train_cfg.get("weight_decay") or 0.0
    if not isinstance(model, paddle.nn.Layer):  # a plain parameter list: L2 on all of it
        return list(model), decay
    if not decay:
        return model.parameters(), 0.0
    decayed = decayed_parameters(model, train_cfg.get("weight_decay_on", "all"))
    chosen = {id(p) for p in decayed}
    rest = [p for p in model.parameters() if id(p) not in chosen]
    groups = [{"params": decayed, "weight_decay": paddle.regularizer.L2Decay(decay)}]
    if rest:
        groups.append({"params": rest, "weight_decay": None})
    return groups, None


def build_optimizer(train_cfg, model, shares=None):
    """The optimizer of TRAIN.optimizer for `model` (a Layer; or a parameter list, all decayed).
    shares: optimizers over parts of the parameters, stepped on that many cores at once (None: one
    per CPU thread on the CPU for RMSProp and Momentum, whose kernels use one core; core/parallel_update.py)."""
    name = train_cfg["optimizer"]
    parameters, decay = parameter_groups(train_cfg, model)
    common = dict(learning_rate=scaled_learning_rate(train_cfg),
                  weight_decay=paddle.regularizer.L2Decay(decay) if decay else None)
    makers = {  # RMSProp: centered, with fluid's defaults, as VideoTag trained
        "RMSProp": functools.partial(paddle.optimizer.RMSProp, rho=0.95, epsilon=1e-6, centered=True, **common),
        "Adam": functools.partial(paddle.optimizer.Adam, **common),
        "Momentum": functools.partial(paddle.optimizer.Momentum, momentum=train_cfg.get("momentum", 0.9),
                                      use_nesterov=bool(train_cfg.get("nesterov", False)), **common)}
    if name not in makers:
        raise InputError(f"TRAIN.optimizer '{name}' is not one of {', '.join(makers)}")
    make = makers[name]
    if shares is None:  # Adam's CPU kernel already runs on every core (in shares: 0.64x, bench/optimizer_update.py)
        shares = 1 if name == "Adam" else parallel_update.default_shares()
    parts = parallel_update.split(parameters, shares)
    if len(parts) == 1:
        return make(parameters=parameters)
    return parallel_update.ParallelUpdate([make(parameters=part) for part in parts])


def epoch_checkpoints(save_dir, model_name):
    """{epoch: path prefix} of the complete epoch checkpoints (.pdparams and .pdopt) in save_dir."""
    found = {}
    for path in glob.glob(os.path.join(glob.escape(save_dir), f"{model_name}_epoch*.pdopt")):
        match = re.fullmatch(re.escape(model_name) + r"_epoch(\d+)\.pdopt", os.path.basename(path))
        prefix = path[:-len(".pdopt")]
        if match and os.path.isfile(prefix + ".pdparams"):
            found[int(match.group(1))] = prefix
    return found


def portable_optimizer_state(state, model, to_portable=True):
    """Rename optimizer accumulators between paddle's generated parameter names (linear_47.w_0_moment1_0,
    which change with the order models are built in) and the model's structured names."""
    pairs = [(p.name, k) for k, p in model.named_parameters()]
    if not to_portable:
        pairs = [(k, name) for name, k in pairs]
    pairs.sort(key=lambda pair: -len(pair[0]))  # longest first: linear_47.w_0 before linear_4.w_0
    renamed = {}
    for key, value in state.items():
        for old, new in pairs:
            if key.startswith(old + "_"):
                key = new + key[len(old):]
                break
        renamed[key] = value
    return renamed


def save(obj, path):
    with atomic_path(path) as tmp:
        paddle.save(obj, tmp)


def batch_loss_scale(train_cfg):
    """TRAIN.batch_loss: `sum` steps on the gradient of the loss summed over the global batch, as
    VideoTag's AttentionLSTM trained (its learning rate and L2 assume it); `mean`, of its mean.
    Tasks return the mean over their share, and several processes average their gradients."""
    reduction = train_cfg.get("batch_loss", "mean")
    if reduction not in ("sum", "mean"):
        raise InputError(f"TRAIN.batch_loss '{reduction}' is not one of sum, mean")
    return train_cfg.batch_size if reduction == "sum" else 1


CHECK_CHUNK = 64  # items checked per thread task


def check_sources(sources, num_workers):
    """Run every source's check(index) on all its items, in threads, before any compute is spent:
    the first problem (in list order) raises its InputError naming the list file and line."""
    for split, source in sources.items():
        if source is None or not hasattr(source, "check"):
            continue
        chunks = [range(start, min(start + CHECK_CHUNK, len(source))) for start in range(0, len(source), CHECK_CHUNK)]
        with tqdm(total=len(source), desc=f"checking the {split} list", disable=not dist.is_main(),
                  leave=False) as progress:
            for chunk, _ in read_ahead(chunks, source.check, num_workers):
                progress.update(len(chunk))


METRICS_FILE, CURVES_FILE, VISUALDL_DIR = "metrics.jsonl", "curves.png", "visualdl"


def read_metrics(path):
    """The epoch records of a metrics.jsonl (a line cut by a crash is skipped)."""
    records = []
    if os.path.isfile(path):
        with open(path) as f:
            for line in f:
                try:
                    records.append(json.loads(line))
                except json.JSONDecodeError:
                    continue
    return records


def draw_curves(records, path, title):
    """Train loss and every validation metric against the epoch, one panel each, to a png."""
    panels = [key for key in records[0] if key == "train_loss" or key.startswith("valid_")]
    columns = min(3, len(panels))
    rows = -(-len(panels) // columns)
    figure, axes = plt.subplots(rows, columns, figsize=(3.6 * columns, 2.6 * rows), squeeze=False)
    epochs = [r["epoch"] for r in records]
    for axis in axes.flat[len(panels):]:
        axis.set_visible(False)
    for axis, key in zip(axes.flat, panels):
        axis.plot(epochs, [r.get(key, float("nan")) for r in records], marker="o", markersize=3)
        axis.set_title(key.replace("_", " "), fontsize=9)
        axis.set_xlabel("epoch", fontsize=8)
        axis.tick_params(labelsize=7)
        axis.grid(alpha=0.3)
    figure.suptitle(title, fontsize=10)
    figure.tight_layout()
    with atomic_path(path) as tmp:
        figure.savefig(tmp, format="png", dpi=100)
    plt.close(figure)


class TrainingCurves:
    """Each epoch's record in <save_dir>/metrics.jsonl (rewritten whole, atomically; a resumed run
    drops the records after the epoch it resumes from, so none is duplicated), drawn to curves.png,
    and written for VisualDL when it is installed."""

    def __init__(self, save_dir, model_name, resumed_after):
        self.path = os.path.join(save_dir, METRICS_FILE)
        self.png = os.path.join(save_dir, CURVES_FILE)
        self.title = f"{model_name}: {save_dir}"
        self.records = [r for r in read_metrics(self.path) if r.get("epoch", 0) <= resumed_after]
        self.visualdl = LogWriter(logdir=os.path.join(save_dir, VISUALDL_DIR)) if LogWriter else None

    def add(self, record):
        self.records.append(record)
        with atomic_open(self.path) as f:
            f.writelines(json.dumps(r) + "\n" for r in self.records)
        draw_curves(self.records, self.png, self.title)
        if self.visualdl:
            for key, value in record.items():
                if key not in ("epoch", "step"):
                    self.visualdl.add_scalar(tag=key, step=record["epoch"], value=value)

    def close(self):
        if self.visualdl:
            self.visualdl.close()


class Trainer:
    def __init__(self, task, save_dir, amp=False):
        self.task = task
        self.save_dir = save_dir
        self.rank, self.world = dist.rank(), dist.world_size()
        self.device = dist.select_device()
        if self.device == "cpu":  # a step's large tensors reuse freed pages: 1.1-1.2x (core/heap.py)
            heap.keep_freed_memory()
        dist.init_parallel()
        dist.check_shared_dir(save_dir)  # several nodes: one folder for checkpoints and outputs
        self.amp = amp and self.device.startswith("gpu")  # auto_cast (float16)
        # On the CPU auto_cast has no bfloat16 matmul to cast to: the models' large products go
        # through oneDNN's bf16 kernels instead (core/bf16_products.py).
        reason = bf16_products.unavailable_reason() if amp and not self.amp else ""
        self.cpu_bf16 = amp and not self.amp and not reason
        if reason:
            log.info("--amp: %s; training in float32", reason)

    def mixed_precision(self):
        """The context of a forward pass: auto_cast on a GPU, bf16 products on the CPU (--amp)."""
        stack = contextlib.ExitStack()
        stack.enter_context(paddle.amp.auto_cast(enable=self.amp))
        stack.enter_context(bf16_products.enabled(self.cpu_bf16))
        return stack

    # ---- inference over a whole split, gathered from every process, in list order ----
    def infer(self, model, source):
        model.eval()
        indices, outputs, targets, names = [], [], [], []
        batches = source.batches(self.rank, self.world)
        with paddle.no_grad():
            for batch in tqdm(batches, total=source.num_batches(False), desc="evaluating",
                              disable=not dist.is_main(), leave=False):
                with self.mixed_precision():
                    out = self.task.forward(model, batch)
                outputs.append(out.astype("float32").numpy())
                targets.append(self.task.targets(batch))
                indices.append(batch.indices)
                names.extend(batch.names)
        local = (np.concatenate(indices) if indices else np.zeros(0, np.int64),
                 np.concatenate(outputs) if outputs else None,
                 np.concatenate(targets) if targets else None, names)
        parts = [p for p in dist.all_gather_object(local) if p[1] is not None]
        order = np.argsort(np.concatenate([p[0] for p in parts]), kind="stable")
        outputs = np.concatenate([p[1] for p in parts])[order]
        targets = np.concatenate([p[2] for p in parts])[order]
        names = [n for p in parts for n in p[3]]
        return [names[i] for i in order], outputs, targets

    def evaluate(self, model, split):
        source = self.task.source(split)
        names, outputs, targets = self.infer(model, source)
        return self.task.metrics(outputs, targets)

    # ---- training ----
    def fit(self, resume=False, pretrain=None, pretrain_partial=False):
        task, cfg = self.task, self.task.cfg
        train_cfg = cfg.TRAIN
        train_source = task.source("train")
        valid_source = task.source("valid")
        steps = self._check_before_training(train_source, valid_source)
        epochs = planned_epochs(train_cfg, steps)
        total_steps = epochs * steps
        gradient_scale = batch_loss_scale(train_cfg)
        seed = train_cfg.get("seed", 0)
        pretrained = None
        if pretrain and not resume:  # read before building: the weights may set MODEL switches
            pretrained = checkpoint.read_state(pretrain, "pretrained weights")
            if hasattr(task, "adopt_checkpoint"):
                pretrained = task.adopt_checkpoint(pretrained, pretrain)
        paddle.seed(seed)  # the same initial weights in every process and every run
        model = task.build_model()
        if self.cpu_bf16:  # a model with products that have a bf16 path says so (cpu_bf16 = True)
            name = type(model).__name__
            log.info(f"--amp on the CPU: {name}'s large matrix products in bfloat16 (oneDNN), the rest in float32"
                     if getattr(model, "cpu_bf16", False) else f"--amp: {name} has no bfloat16 path on the CPU "
                     "(AttentionLSTM and NeXtVLAD have); training in float32")
        optimizer = build_optimizer(train_cfg, model)
        state = {"epoch": 0, "examples_seen": 0, "best": -math.inf, "best_epoch": 0}
        if resume:
            state = self._resume(model, optimizer, state)
        elif pretrain:
            checkpoint.load_matching(model, pretrain, task.model_name, getattr(task, "convert_pretrained", None),
                                     state=pretrained, partial=pretrain_partial)
        runner = paddle.DataParallel(model) if self.world > 1 else model
        scaler = paddle.amp.GradScaler() if self.amp else None
        curves = TrainingCurves(self.save_dir, task.model_name, resumed_after=state["epoch"]) if dist.is_main() else None
        if dist.is_main():
            save_config(cfg, self.save_dir)  # eval, predict, tag and export read it beside the checkpoints
            log.info("training %s on %d videos (%d batches of %d per epoch, %d process(es), %s) into %s",
                     task.model_name, len(train_source), steps, train_cfg.batch_size, self.world,
                     self.device, self.save_dir)
            self._log_plan(epochs, steps, valid_source is not None)
        for epoch in range(state["epoch"], epochs):
            if self._stop_early(state, valid_source):
                break
            paddle.seed(seed * 100003 + epoch * 1009 + self.rank)  # dropout: reproducible per epoch
            runner.train()
            losses = []
            batches = train_source.batches(self.rank, self.world, shuffle=True, drop_last=True,
                                           epoch=epoch, seed=seed)
            progress = tqdm(batches, total=steps, desc=f"epoch {epoch + 1}/{epochs}",
                            disable=not dist.is_main(), leave=False)
            started = time.perf_counter()
            for batch in progress:
                rate = learning_rate(train_cfg, epoch, state["examples_seen"], total_steps, steps)
                optimizer.set_lr(rate)
                with self.mixed_precision():
                    loss = task.loss(task.forward(runner, batch), batch)
                objective = loss * gradient_scale if gradient_scale != 1 else loss
                if scaler:
                    scaler.scale(objective).backward()
                    scaler.minimize(optimizer, objective)
                else:
                    objective.backward()
                    optimizer.step()
                optimizer.clear_grad()
                state["examples_seen"] += train_cfg.batch_size
                losses.append(loss.item())
                progress.set_postfix(loss=f"{losses[-1]:.4f}")
            seconds = time.perf_counter() - started
            state["epoch"] = epoch + 1
            metrics = self.evaluate(model, "valid") if valid_source is not None else None
            self._end_epoch(model, optimizer, state, float(np.mean(losses)), metrics)
            if curves:
                curves.add({"epoch": state["epoch"], "step": state["examples_seen"] // train_cfg.batch_size,
                            "lr": rate, "train_loss": float(np.mean(losses)),
                            "videos_per_s": len(losses) * train_cfg.batch_size / seconds,
                            **{f"valid_{k}": float(v) for k, v in (metrics or {}).items()}})
        if curves:
            curves.close()
        dist.barrier()
        return model

    def _log_plan(self, epochs, steps, validated):
        """One line on the schedule, and a warning when the run is too short to converge."""
        train_cfg, total = self.task.cfg.TRAIN, epochs * steps
        lr = scaled_learning_rate(train_cfg)
        reference = train_cfg.get("reference_batch_size") or train_cfg.batch_size
        log.info("%d epochs of %d steps (%d steps); learning rate %.3g (TRAIN.learning_rate %g for a batch of %d, "
                 "x %d/%d), %s schedule, %d warm-up steps%s", epochs, steps, total, lr, train_cfg.learning_rate,
                 reference, train_cfg.batch_size, reference, train_cfg.get("lr_schedule", "constant"),
                 warmup_length(train_cfg, total, steps), "" if epochs == train_cfg.epoch else
                 f" (TRAIN.epoch {train_cfg.epoch} raised to reach TRAIN.min_steps {train_cfg.min_steps})")
        if train_cfg.get("patience") and not validated:
            log.info("no VALID.filelist: no early stopping (TRAIN.patience) and the last epoch is the best")
        if total < SHORT_RUN_STEPS:
            log.warning("only %d optimizer steps: probably too few to converge (the synthetic study in "
                        "docs/TRAINING.md needed about %d); raise TRAIN.epoch or TRAIN.min_steps, or lower "
                        "TRAIN.batch_size", total, SHORT_RUN_STEPS)
        epoch_size = train_cfg.get("num_samples") or 0
        if train_cfg.get("lr_schedule") == "piecewise" and train_cfg.decay_epochs:
            first = min(train_cfg.decay_epochs) * (epoch_size or steps * train_cfg.batch_size)
            if first >= total * train_cfg.batch_size:
                log.warning("the learning rate never decays: the first decay point (%s examples) is after the "
                            "run's %s examples", f"{int(first):,}", f"{total * train_cfg.batch_size:,}")

    def _stop_early(self, state, valid_source):
        """True when validation has not improved for TRAIN.patience epochs."""
        patience = self.task.cfg.TRAIN.get("patience") or 0
        best_epoch = state.setdefault("best_epoch", state["epoch"])  # a checkpoint from before early stopping
        if not patience or valid_source is None or state["epoch"] - best_epoch < patience:
            return False
        if dist.is_main():
            log.info("stopping early after epoch %d: validation %s has not improved for %d epochs (best %.4f "
                     "at epoch %d, TRAIN.patience %d)", state["epoch"], self.task.best_metric, patience,
                     state["best"], state["best_epoch"], patience)
        return True

    def _check_before_training(self, train_source, valid_source):
        """Fail on bad input before any compute is spent; returns the steps per epoch."""
        cfg = self.task.cfg
        steps = train_source.num_batches(drop_last=True)
        if steps < 1:
            raise InputError(f"TRAIN.batch_size {cfg.TRAIN.batch_size} is more than the {len(train_source)} videos "
                             "of the training list: not one full batch", cfg.path)
        batch_loss_scale(cfg.TRAIN)
        learning_rate(cfg.TRAIN, 0, 0)  # an unknown schedule fails now
        check_sources({"training": train_source, "validation": valid_source, "test": self._test_source()},
                      cfg.TRAIN.get("num_workers", 4))
        epoch_size = cfg.TRAIN.get("num_samples") or 0
        if epoch_size and cfg.TRAIN.get("lr_schedule") == "piecewise" and dist.is_main():
            log.info("learning rate x%g after %s examples (TRAIN.decay_epochs x TRAIN.num_samples %s, as VideoTag "
                     "counted); the training list has %s videos", cfg.TRAIN.decay_gamma,
                     ", ".join(f"{int(e * epoch_size):,}" for e in cfg.TRAIN.decay_epochs), f"{epoch_size:,}",
                     f"{len(train_source):,}")
        return steps

    def _test_source(self):
        """The TEST list, to check before training; not yet written is fine (eval.py will need it)."""
        filelist = self.task.cfg.TEST.get("filelist")
        if isinstance(filelist, str) and not any(c in filelist for c in "*?[") and not os.path.exists(filelist):
            log.info("TEST list %s does not exist yet: not checked (eval.py reads it)", filelist)
            return None
        return self.task.source("test")

    def _end_epoch(self, model, optimizer, state, train_loss, metrics):
        task = self.task
        improved = metrics is None or metrics[task.best_metric] > state["best"]
        if improved:
            state["best"] = metrics[task.best_metric] if metrics else state["best"]
            state["best_epoch"] = state["epoch"]
        if not dist.is_main():
            return
        summary = f"epoch {state['epoch']}: train loss {train_loss:.4f}"
        if metrics:
            summary += ", validation " + ", ".join(f"{k} {v:.4f}" for k, v in metrics.items())
        log.info(summary)
        prefix = os.path.join(self.save_dir, f"{task.model_name}_epoch{state['epoch']}")
        save(model.state_dict(), prefix + ".pdparams")
        # Written last: an epoch counts as saved only once its .pdopt exists.
        save({"optimizer": portable_optimizer_state(optimizer.state_dict(), model), "trainer": dict(state)},
             prefix + ".pdopt")
        if improved:
            save(model.state_dict(), os.path.join(self.save_dir, f"{task.model_name}_best.pdparams"))
            if metrics:
                log.info("best %s so far: %.4f, saved %s_best.pdparams", task.best_metric, state["best"],
                         task.model_name)

    def _resume(self, model, optimizer, state):
        found = epoch_checkpoints(self.save_dir, self.task.model_name)
        if not found:
            log.info("no checkpoint to resume in %s: starting from scratch", self.save_dir)
            return state
        epoch = max(found)
        checkpoint.load_exact(model, found[epoch] + ".pdparams", self.task.model_name)
        saved = checkpoint.read_state(found[epoch] + ".pdopt")
        optimizer.set_state_dict(portable_optimizer_state(saved["optimizer"], model, to_portable=False))
        log.info("resuming after epoch %d from %s", epoch, found[epoch])
        return dict(saved["trainer"])
