"""predict.py on videos: both stages in one streaming pass, with outputs that survive kill -9.

Each video goes through the extractor (extractor.pipeline.iter_video_features) and its features
straight into the head, so memory does not grow with the library. Per video, in this order: its
thumbnail, its kept features, its timeline windows, and last its line in predictions.jsonl. That
line is the commit (journal.py): a video counts as tagged once it is there, so a killed run
loses no finished video and a rerun does only the rest. failures.txt, report.html and thumbs/ are
rewritten at the end of every run. The head and its tags are in heads.py.
"""
import dataclasses
import hashlib
import json
import math
import os
import sys

import numpy as np
import paddle
from tqdm import tqdm

from core import dist
from core.config import load_config
from core.errors import InputError, check_writable
from core.fsutil import atomic_open
from core.lists import list_entries, write_list
from core.log import log
from extractor import backbones
from extractor.cli import (DEFAULT_CONFIG, add_backbone_arguments, check_settings, failure_line, feature_dim,
                           feature_settings, reconcile_store)
from extractor.pipeline import InferSettings, backbone_from_config, iter_video_features
from extractor.predictor import InferenceBackbone, weights_digest
from extractor.stores import NpyStore, write_text
from extractor.videos import VIDEO_EXTENSIONS, find_videos, read_filelist, unique_videos
from sequence.data import feature_problem

from . import cli, report
from .heads import (DygraphHead, InferenceHead, Tagger, as_overrides,  # noqa: F401  (Tagger: documented here)
                    check_head_takes_extractor_features, load_manifest, read_label_names)
from .journal import (CSV, FAILURES, PREDICTIONS, REPORT, TIMELINE, Outputs, check_run_settings, merge_parts,
                      read_jsonl, tagged_videos, write_csv)
from .models import default_config_path
from .score import QualityScorer



# ---- command line ----
def add_extractor_arguments(p, runs=True):
    """Stage one's flags, shared by predict.py and videotag.export (see add_backbone_arguments)."""
    p.add_argument("--extractor_config", default=default_config_path("TSN"),
                   help="the extractor's yaml (default configs/tsn.yaml)")
    p.add_argument("--extractor_override", action="append", default=[], metavar="SECTION.key=value",
                   help="override an extractor config value (repeatable), e.g. INFER.seg_num=100")
    add_backbone_arguments(p, runs)


def add_arguments(p):
    """predict.py's flags for tagging videos."""
    p.add_argument("--video_path", help="tag every video under this folder (recursively)")
    add_extractor_arguments(p)
    p.add_argument("--inference_dir", help="run the models exported by `bash run.sh export` from this "
                   "folder (instead of --weights and --extractor_weights)")
    p.add_argument("--keep_features", metavar="DIR", help="also save each video's features as "
                   "DIR/<id>.npy, listed in DIR/features.list (for predict.py on features later)")
    p.add_argument("--timeline", type=float, metavar="SECONDS",
                   help="also tag consecutive windows of this many seconds -> timeline.jsonl")
    p.add_argument("--timeline_frames", type=int, default=8,
                   help="frames sampled per timeline window (default 8)")
    p.add_argument("--restart", action="store_true", help="discard the tags already in --save_dir and "
                   "tag every video again (needed when the weights or settings changed)")
    p.add_argument("--quality_weights", metavar="W", help="also score each video's quality with this Quality or "
                   "QualityHead checkpoint: a `quality` field per video (docs/QUALITY.md)")


def is_video_list(path):
    """Whether a --filelist names videos (by its first entry's extension) rather than features."""
    if not os.path.isfile(path):
        return False
    for _, fields, _ in list_entries(path):
        return fields[0].lower().endswith(VIDEO_EXTENSIONS)
    return False


@dataclasses.dataclass
class Listed:
    name: str  # the path as listed (or as found under --video_path): the key of every output line
    video: object  # extractor.pipeline.Video: where to read it, and its feature id
    labels: list  # class ids from the list's extra columns (for the report's AP)


def list_videos(video_path, filelist, num_classes):
    """The videos to tag, in order, each once."""
    if video_path:
        items = [Listed(v.path, v, []) for v in find_videos(video_path)]
    else:  # read_filelist resolves paths: keep the names as written
        names = [fields[0] for _, fields, _ in list_entries(filelist, "video list")]
        items = [Listed(name, video, class_ids(video.labels, num_classes, filelist))
                 for name, video in zip(names, read_filelist(filelist))]
    unique = {}
    for item in items:
        unique.setdefault(item.name, item)
    if not unique:
        raise InputError("no videos to tag", video_path or filelist)
    return list(unique.values())


def class_ids(fields, num_classes, filelist):
    for text in fields:
        if not text.isdigit() or int(text) >= num_classes:
            raise InputError(f"label '{text}' is not a class id below MODEL.num_classes {num_classes}", filelist)
    return sorted({int(text) for text in fields})


def timeline_windows(result, seconds, frames_per_window, settings, backbone):
    """[(start, end, features)] over the whole video: windows of `seconds`, each fed by about
    frames_per_window frames. The video-level features sample seg_num frames over the whole video,
    too few for short windows, so a second pass samples count * frames_per_window frames, and
    each frame goes to the window its timestamp (from the container: right for variable frame
    rates too) falls in. A window that got no frame (a tail shorter than the sampling step) is
    merged into the one before it."""
    duration = result.info["duration"]
    count = max(1, math.ceil(duration / seconds - 1e-9))
    dense = dataclasses.replace(settings, seg_num=count * frames_per_window)
    sampled = next(iter(iter_video_features([result.video], dense, backbone)))
    if not sampled.ok:
        raise ValueError(f"timeline: {sampled.error}")
    window_of = np.minimum(np.asarray(sampled.info["times"]) // seconds, count - 1).astype(int)
    filled = sorted(set(window_of.tolist()))
    windows = []
    for i, w in enumerate(filled):
        start = 0.0 if i == 0 else w * seconds
        end = duration if i == len(filled) - 1 else filled[i + 1] * seconds
        windows.append((start, end, sampled.features[window_of == w]))
    return windows


def tag_videos(args):
    """predict.py's video mode; returns the exit status: 1 when any video failed, 0 otherwise."""
    manifest = load_manifest(args.inference_dir) if args.inference_dir else None
    if manifest:  # the exported models fix the head's and extractor's settings; -o still overrides
        if manifest["model_name"] != args.model_name:
            raise InputError(f"the exported head is {manifest['model_name']}, not {args.model_name}",
                             args.inference_dir)
        args.override = as_overrides({"MODEL": manifest["model"]}) + args.override
        args.extractor_override = as_overrides(manifest["extractor"]) + args.extractor_override
    elif not args.weights:
        raise InputError("--weights (the head's .pdparams) or --inference_dir is required")
    if args.timeline is not None and args.timeline <= 0 or args.timeline_frames < 1:
        raise InputError("--timeline needs a positive number of seconds and --timeline_frames at least 1")
    cfg, task = cli.setup(args)
    extractor_cfg = load_config(args.extractor_config, args.extractor_override, DEFAULT_CONFIG)
    backbones.get(extractor_cfg.MODEL, extractor_cfg.path)  # an unknown backbone or depth: one line
    check_head_takes_extractor_features(cfg.MODEL, cfg.path, extractor_cfg.MODEL)
    settings = InferSettings.from_config(extractor_cfg)
    check_settings(settings, extractor_cfg.path)
    if manifest and settings.target_size != manifest["extractor"]["INFER"]["target_size"]:
        raise InputError(f"the exported backbone takes {manifest['extractor']['INFER']['target_size']}-pixel "
                         f"crops, not INFER.target_size {settings.target_size}: export again", args.inference_dir)
    label_names = read_label_names(args.label_file, cfg.MODEL.num_classes)
    topk = args.topk or cfg.MODEL.topk
    videos = list_videos(args.video_path, args.filelist, cfg.MODEL.num_classes)
    store = None
    if args.keep_features:
        unique_videos([item.video for item in videos], args.video_path or args.filelist)  # distinct file names
        store = NpyStore(args.keep_features)

    dist.init_parallel()
    device = dist.select_device()
    if dist.is_main():
        check_writable(args.save_dir)
    dist.barrier()
    dist.check_shared_dir(args.save_dir)  # several nodes: every rank's journal goes to one folder
    features = feature_settings(extractor_cfg, settings, *backbone_identity(args, manifest), args.cache_dir)
    scorer = QualityScorer(args.quality_weights) if args.quality_weights else None
    check_run_settings(args.save_dir, run_settings(args, cfg, features, topk, manifest), args.restart)
    if store is not None:
        reconcile_store(store, features, False, len(videos))
    outputs = Outputs(args.save_dir, with_timeline=args.timeline is not None)
    done = tagged_videos(args.save_dir)
    mine = dist.shard(videos)
    todo = [item for item in mine if item.name not in done]
    log.info("%d videos: %d already tagged, %d to tag (seg_num %d, crop %d, on %s)",
             len(mine), len(mine) - len(todo), len(todo), settings.seg_num, settings.target_size, device)

    failures = []
    if todo:
        backbone, head = build_models(args, cfg, task, extractor_cfg, settings, manifest, device)
        tagger = Tagger(head, cfg.MODEL, label_names, topk, cfg.INFER.batch_size)
        with tqdm(total=len(todo), unit="video", desc="tagging", dynamic_ncols=True,
                  position=dist.rank() if dist.world_size() > 1 else None) as bar:  # closed on errors too
            for item, result in zip(todo, iter_video_features([item.video for item in todo], settings, backbone)):
                try:
                    windows = tag_one(item, result, args, tagger, settings, backbone, store)
                    record = {"video": item.name, "tags": tagger([result.features])[0]}
                    if scorer:
                        record["quality"] = scorer(item.video.path, result.features)
                    outputs.commit(record, windows)
                except (ValueError, InputError) as err:  # this video only: report it and go on
                    failures.append((item.name, str(err), result.detail))
                    bar.write(f"skipped {item.name}: {err}", file=sys.stderr)
                bar.set_postfix(failed=len(failures), refresh=False)
                bar.update(1)
    outputs.close()

    failures = [item for part in dist.all_gather_object(failures) for item in part]
    if dist.is_main():
        finish(args.save_dir, videos, failures, label_names, store, settings.seg_num, feature_dim(extractor_cfg))
    dist.barrier()
    return 1 if failures else 0


def backbone_identity(args, manifest):
    """(weights file, engine) of the backbone this run uses."""
    if manifest:
        return os.path.join(args.inference_dir, manifest["backbone"] + ".pdiparams"), "inference"
    return args.extractor_weights, args.extractor_backend


def run_settings(args, cfg, features, topk, manifest):
    """What defines this run's tags: recorded with the journal, compared when a run resumes it."""
    head = os.path.join(args.inference_dir, manifest["head"] + ".pdiparams") if manifest else args.weights
    if not os.path.isfile(head):
        raise InputError("weights file not found", head)
    return {"model_name": args.model_name, "weights": weights_digest(head), "head": digest_of(cfg.MODEL),
            "topk": topk, "labels": weights_digest(args.label_file) if args.label_file else None,
            "timeline": args.timeline, "timeline_frames": args.timeline_frames if args.timeline else None,
            "features": features, **quality_setting(args)}


def quality_setting(args):
    """The quality weights' digest, recorded only when given (journals of runs without stay comparable)."""
    if not getattr(args, "quality_weights", None):
        return {}
    if not os.path.isfile(args.quality_weights):
        raise InputError("quality weights not found", args.quality_weights)
    return {"quality": weights_digest(args.quality_weights)}


def digest_of(section):
    return hashlib.blake2b(json.dumps(section, sort_keys=True, default=str).encode(), digest_size=8).hexdigest()


def build_models(args, cfg, task, extractor_cfg, settings, manifest, device):
    """The backbone callable and the head, from the exported models or from weights."""
    if manifest:
        device = paddle.get_device() if device.startswith("gpu") else "cpu"
        backbone = InferenceBackbone(os.path.join(args.inference_dir, manifest["backbone"]), device,
                                     bool(extractor_cfg.INFER.get("use_tensorrt", False)),
                                     settings.batch_size, settings.target_size, settings.precision,
                                     extractor_cfg.MODEL)
        head = InferenceHead(os.path.join(args.inference_dir, manifest["head"]), cfg.MODEL.feature_names, device)
        return backbone, head
    backbone = backbone_from_config(extractor_cfg, args.extractor_weights, args.extractor_backend, args.cache_dir)
    return backbone, DygraphHead(task, args.weights)


def tag_one(item, result, args, tagger, settings, backbone, store):
    """Everything of one video that comes before its commit; returns its timeline records.
    Raises ValueError for a video that cannot be tagged."""
    problem = result.error or feature_problem([result.features], tagger.feature_names, tagger.feature_dims)
    if problem:
        raise ValueError(problem)
    report.write_thumbnail(item.video.path, report.thumbnail_path(args.save_dir, item.name))
    if store is not None:
        store.write(result)
    if args.timeline is None:
        return []
    windows = timeline_windows(result, args.timeline, args.timeline_frames, settings, backbone)
    window_tags = tagger([features for _, _, features in windows])
    return [{"video": item.name, "start": round(start, 3), "end": round(end, 3), "tags": tags}
            for (start, end, _), tags in zip(windows, window_tags)]


def finish(save_dir, videos, failures, label_names, store, seg_num, feature_dim):
    """Rank 0 at the end of every run: merged journals, CSV, failures, kept feature list, report."""
    merge_parts(save_dir, [item.name for item in videos])
    write_csv(save_dir)
    write_text(os.path.join(save_dir, FAILURES), [failure_line(*failure) for failure in failures])
    if store is not None:
        kept = store.completed([item.video.video_id for item in videos], seg_num, feature_dim)
        write_list(os.path.join(store.save_dir, "features.list"),
                   [(store.list_path(item.video.video_id), item.labels)
                    for item in videos if item.video.video_id in kept])
    predictions = read_jsonl(os.path.join(save_dir, PREDICTIONS))
    labelled = any(item.labels for item in videos)
    page = report.render(save_dir, predictions, label_names,
                         labels={item.name: item.labels for item in videos} if labelled else None,
                         timeline=read_jsonl(os.path.join(save_dir, TIMELINE)),
                         failures=[(name, reason) for name, reason, _ in failures])
    with atomic_open(os.path.join(save_dir, REPORT), encoding="utf-8") as f:
        f.write(page)
    tagged = {r["video"] for r in predictions}
    log.info("%d of %d videos tagged: %s, %s, %s", sum(item.name in tagged for item in videos), len(videos),
             os.path.join(save_dir, PREDICTIONS), CSV, REPORT)
    if failures:
        log.error("%d videos failed, reasons in %s", len(failures), os.path.join(save_dir, FAILURES))
