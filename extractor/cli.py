"""python -m extractor: frame features of stage one's backbone (MODEL.backbone: VideoTag's TSN
ResNet-101 by default, or the PP family) for every video of a list or folder."""
import argparse
import os
import sys
import time

from tqdm import tqdm

from core import dist
from core.config import CONFIG_DIR, load_config
from core.errors import InputError, check_writable, exit_on_input_error
from core.flags import renamed
from core.lists import write_list
from core.log import log, setup as setup_logging

from . import backbones
from .pipeline import InferSettings, backbone_from_config, iter_video_features
from .predictor import (PRECISIONS, RECORDED_PRECISION, backbone_shape, check_precision, inference_device,
                        read_calibration, weights_digest)
from .sampling import check_resize_mode, check_sampling_mode
from .stores import (make_store, read_settings, remove_stale_temporaries, settings_changed, write_settings,
                     write_text)
from .videos import listed_videos


FEATURE_LIST = "features.list"
FAILURES = "failures.txt"
DEFAULT_CONFIG = os.path.join(CONFIG_DIR, "tsn.yaml")


def parse_args(argv=None):
    parser = argparse.ArgumentParser(prog="python -m extractor", description=__doc__)
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--filelist", help="one video path per line; extra columns (labels) are "
                        "copied to features.list")
    source.add_argument("--video_path", help="a folder: every video file under it, recursively")
    parser.add_argument("--save_dir", required=True, help="where features, features.list and failures.txt go")
    # --extractor_config / --extractor_override: the names tag and export give these flags.
    parser.add_argument("--config", "--extractor_config", default=DEFAULT_CONFIG, help="(default configs/tsn.yaml)")
    parser.add_argument("-o", "--override", "--extractor_override", action="append", default=[],
                        metavar="SECTION.key=value", help="override a config value (repeatable), e.g. "
                        "-o INFER.seg_num=100")
    parser.add_argument("--format", choices=("npy", "hdf5"), default="npy")
    parser.add_argument("--keep_existing", action="store_true", help="refuse to run when save_dir holds "
                        "features made with other settings (by default they are removed and re-extracted)")
    add_backbone_arguments(parser)
    renamed(parser, "--weights", "--extractor_weights")
    renamed(parser, "--backend", "--extractor_backend")
    return parser.parse_args(argv)


def add_backbone_arguments(parser, runs=True):
    """The backbone's flags, the same in every command that has them (extract, tag, export, demo);
    `runs`: the command runs the backbone (not only exports it)."""
    parser.add_argument("--extractor_weights", help="checkpoint of the backbone (MODEL.backbone; VideoTag "
                        "tsn.pdparams, PaddleVideo's or ours); without it the weights are random and the features "
                        "meaningless")
    parser.add_argument("--precision", choices=PRECISIONS, action=PrecisionOverride,
                        help="the backbone's arithmetic (INFER.precision, default fp32): bf16 needs "
                        "avx512_bf16/amx_bf16 or an Ampere GPU; int8 needs `bash run.sh calibrate` first")
    if not runs:
        return
    parser.add_argument("--extractor_backend", choices=("inference", "dygraph"), default="inference",
                        help="run the backbone through paddle.inference (fast) or plain dygraph")
    parser.add_argument("--cache_dir", help="where the backbone exported for paddle.inference is cached "
                        "(default ~/.cache/videotag/extractor)")


class PrecisionOverride(argparse.Action):
    """--precision P is INFER.precision=P appended to the extractor's override list: tag's and
    export's --extractor_override (their -o is the head's), extract's -o."""

    def __call__(self, parser, namespace, value, option_string=None):
        dest = "extractor_override" if hasattr(namespace, "extractor_override") else "override"
        setattr(namespace, dest, list(getattr(namespace, dest) or []) + [f"INFER.precision={value}"])


def check_settings(settings, config_path):
    check_resize_mode(settings.resize, config_path)
    check_sampling_mode(settings.sampling, config_path)
    if settings.precision not in PRECISIONS:
        raise InputError(f"INFER.precision '{settings.precision}' is not one of {', '.join(PRECISIONS)}", config_path)
    for name, value in vars(settings).items():
        if type(value) is int and value < (0 if name == "num_workers" else 1):  # not flags or modes
            raise InputError(f"INFER.{name} must be positive, not {value}", config_path)
    if settings.target_size > settings.short_size:
        raise InputError(f"INFER.target_size {settings.target_size} is larger than INFER.short_size "
                         f"{settings.short_size}", config_path)


def feature_settings(cfg, settings, weights, backend, cache_dir=None):
    """What defines a feature: recorded with every store, compared on every rerun. Refuses a
    precision this machine cannot run (or an int8 never calibrated) before any compute."""
    if weights and not os.path.isfile(weights):
        raise InputError("weights file not found", weights)
    check_precision(settings.precision, inference_device(), backend, cfg.path)
    recorded = {"weights": weights_digest(weights), **backbone_settings(cfg),
                "seg_num": settings.seg_num, "short_size": settings.short_size,
                "target_size": settings.target_size, "precision": RECORDED_PRECISION[settings.precision],
                "engine": backend + ("+tensorrt" if cfg.INFER.get("use_tensorrt", False) else "")}
    if settings.sampling != "uniform":  # recorded only when not the default: older records stay valid
        recorded["sampling"] = settings.sampling
    if settings.precision == "int8":  # a new calibration makes other features
        recorded["calibration"] = read_calibration(cfg.MODEL, weights, settings.target_size, cache_dir)["digest"]
    if "resize" in cfg.INFER:
        recorded["resize"] = str(cfg.INFER.resize)
    return recorded


def backbone_settings(cfg):
    """The backbone's part of the record: its name only when not the default (so records made
    before there was a choice stay valid), its depth (when it has one), the clip of a shift backbone
    and PP-TSMv2's temporal attention when on (another network, whatever the weights)."""
    spec = backbones.get(cfg.MODEL, cfg.path)  # refuses an unknown backbone or depth
    recorded = {} if spec.name == backbones.DEFAULT else {"backbone": spec.name}
    if spec.depths:
        recorded["depth"] = int(cfg.MODEL.get("num_layers", 101))
    clip = spec.clip_frames(cfg.MODEL)
    if clip:
        recorded["num_seg"] = int(clip)
    if spec.name == "pptsmv2" and cfg.MODEL.get("temporal_attention", False):
        recorded["temporal_attention"] = True
    return recorded


def feature_dim(cfg):
    """The size of the features the config's backbone makes."""
    return backbone_shape(cfg.MODEL)[0]


def reconcile_store(store, wanted, keep_existing, count):
    """Make `store` hold only features made with `wanted` settings: features made with others are
    removed (to be extracted again), or with keep_existing the run stops. Every process calls it;
    only rank 0 changes files."""
    recorded = read_settings(store.save_dir)
    existing = store.feature_files()
    changed = settings_changed(recorded, wanted) if existing and recorded is not None else []
    if changed and keep_existing:
        raise InputError(f"holds features made with other settings ({', '.join(changed)}); use another "
                         "--save_dir, or drop --keep_existing to extract them again", store.save_dir)
    dist.barrier()  # every process has read the record before rank 0 replaces it
    if dist.is_main():
        if changed:
            log.warning("settings changed (%s): removing the features made with the old ones and "
                        "re-extracting %d videos", ", ".join(changed), count)
            store.remove_all()
        elif recorded is None and existing:
            log.warning("%s has features without a record of their settings (made by an older "
                        "version): extracting these videos again", store.save_dir)
        write_settings(store.save_dir, wanted)
    dist.barrier()
    return recorded is None


def extract(args, backbone=None):
    """Run the extraction; returns the exit status (1 when any video failed).
    `backbone` lets tests pass an already built one."""
    cfg = load_config(args.config, args.override, reference=DEFAULT_CONFIG)
    settings = InferSettings.from_config(cfg)
    check_settings(settings, cfg.path)
    videos = listed_videos(args.filelist, args.video_path)

    dist.init_parallel()
    device = dist.select_device()
    store = make_store(args.format, args.save_dir)
    if dist.is_main():
        check_writable(args.save_dir)
        remove_stale_temporaries(args.save_dir)
    dist.barrier()  # nobody writes before the leftovers of a killed run are gone
    dist.check_shared_dir(args.save_dir)  # several nodes: every rank's features go to one folder
    wanted = feature_settings(cfg, settings, args.extractor_weights, args.extractor_backend, args.cache_dir)
    unrecorded = reconcile_store(store, wanted, args.keep_existing, len(videos))

    mine = dist.shard(videos)
    done = set() if unrecorded else store.completed([v.video_id for v in mine], settings.seg_num, feature_dim(cfg))
    todo = [v for v in mine if v.video_id not in done]
    log.info("%d videos: %d already done, %d to extract (%s, seg_num %d, crop %d, on %s)", len(mine),
             len(mine) - len(todo), len(todo), backbones.get(cfg.MODEL).description, settings.seg_num,
             settings.target_size, device)

    failures = []
    if todo:
        if backbone is None:
            backbone = backbone_from_config(cfg, args.extractor_weights, args.extractor_backend, args.cache_dir)
        failures = run(todo, settings, backbone, store)

    failures = [item for part in dist.all_gather_object(failures) for item in part]
    if dist.is_main():
        store.finalize()
        finished = store.completed([v.video_id for v in videos], settings.seg_num, feature_dim(cfg))
        write_list(os.path.join(args.save_dir, FEATURE_LIST),
                   [(store.list_path(v.video_id), v.labels) for v in videos if v.video_id in finished])
        write_text(os.path.join(args.save_dir, FAILURES), [failure_line(*failure) for failure in failures])
        log.info("%d of %d videos have features; list in %s", len(finished), len(videos),
                 os.path.join(args.save_dir, FEATURE_LIST))
        if failures:
            log.error("%d videos failed, reasons in %s", len(failures), os.path.join(args.save_dir, FAILURES))
    dist.barrier()
    return 1 if failures else 0


def failure_line(path, reason, detail=""):
    """A line of failures.txt: path, reason, and the decoder's words when there are any."""
    return "\t".join([path, reason] + ([detail] if detail else []))


def run(videos, settings, backbone, store):
    """Extract and save `videos`; returns [(path, reason, detail)] of those that failed."""
    failures, frames, start = [], 0, time.time()
    with tqdm(total=len(videos), unit="video", desc="extracting", dynamic_ncols=True,
              position=dist.rank() if dist.world_size() > 1 else None) as bar:  # closed on errors too
        for result in iter_video_features(videos, settings, backbone):
            if result.ok:
                store.write(result)
                frames += len(result.features)
            else:
                failures.append((result.video.path, result.error, result.detail))
                bar.write(f"skipped {result.video.path}: {result.error}", file=sys.stderr)
            bar.update(1)
            bar.set_postfix(frames_per_s=f"{frames / max(time.time() - start, 1e-9):.1f}", failed=len(failures))
    return failures


@exit_on_input_error
def main(argv=None):
    setup_logging(every_rank=True)  # each process reports its share
    return extract(parse_args(argv))
