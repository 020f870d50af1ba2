"""python -m extractor: TSN ResNet-101 frame features for every video of a list or folder."""
import argparse
import os
import sys
import time

from tqdm import tqdm

from core import dist
from core.config import CONFIG_DIR, load_config
from core.errors import InputError, exit_on_input_error
from core.flags import renamed
from core.lists import write_list
from core.log import log, setup as setup_logging

from .pipeline import InferSettings, backbone_from_config, iter_video_features
from .stores import make_store, remove_stale_temporaries, write_text
from .videos import find_videos, read_filelist, unique_videos


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
    add_backbone_arguments(parser)
    renamed(parser, "--weights", "--extractor_weights")
    renamed(parser, "--backend", "--extractor_backend")
    return parser.parse_args(argv)


def add_backbone_arguments(parser, runs=True):
    """The backbone's flags, the same in every command that has them (extract, tag, export, demo);
    `runs`: the command runs the backbone (not only exports it)."""
    parser.add_argument("--extractor_weights", help="ResNet checkpoint of the backbone (VideoTag tsn.pdparams, "
                        "PaddleVideo or ours); without it the weights are random and the features meaningless")
    if not runs:
        return
    parser.add_argument("--extractor_backend", choices=("inference", "dygraph"), default="inference",
                        help="run the backbone through paddle.inference (fast) or plain dygraph")
    parser.add_argument("--cache_dir", help="where the backbone exported for paddle.inference is cached "
                        "(default ~/.cache/videotag/extractor)")


def check_settings(settings, config_path):
    for name, value in vars(settings).items():
        if value < (0 if name == "num_workers" else 1):
            raise InputError(f"INFER.{name} must be positive, not {value}", config_path)
    if settings.target_size > settings.short_size:
        raise InputError(f"INFER.target_size {settings.target_size} is larger than INFER.short_size "
                         f"{settings.short_size}", config_path)


def extract(args, backbone=None):
    """Run the extraction; returns the exit status (1 when any video failed).
    `backbone` lets tests pass an already built one."""
    cfg = load_config(args.config, args.override)
    settings = InferSettings.from_config(cfg)
    check_settings(settings, cfg.path)
    if args.filelist:
        videos = unique_videos(read_filelist(args.filelist), args.filelist)
    else:
        videos = unique_videos(find_videos(args.video_path), args.video_path)
    if not videos:
        raise InputError("no videos to extract", args.filelist or args.video_path)

    dist.init_parallel()
    device = dist.select_device()
    store = make_store(args.format, args.save_dir)
    if dist.is_main():
        os.makedirs(args.save_dir, exist_ok=True)
        remove_stale_temporaries(args.save_dir)
    dist.barrier()  # nobody writes before the leftovers of a killed run are gone
    dist.check_shared_dir(args.save_dir)  # several nodes: every rank's features go to one folder

    mine = dist.shard(videos)
    done = store.completed([v.video_id for v in mine], settings.seg_num)
    todo = [v for v in mine if v.video_id not in done]
    log.info("%d videos: %d already done, %d to extract (seg_num %d, crop %d, on %s)",
             len(mine), len(mine) - len(todo), len(todo), settings.seg_num, settings.target_size, device)

    failures = []
    if todo:
        if backbone is None:
            backbone = backbone_from_config(cfg, args.extractor_weights, args.extractor_backend, args.cache_dir)
        failures = run(todo, settings, backbone, store)

    failures = [item for part in dist.all_gather_object(failures) for item in part]
    if dist.is_main():
        store.finalize()
        finished = store.completed([v.video_id for v in videos], settings.seg_num)
        write_list(os.path.join(args.save_dir, FEATURE_LIST),
                   [(store.list_path(v.video_id), v.labels) for v in videos if v.video_id in finished])
        write_text(os.path.join(args.save_dir, FAILURES), [f"{path}\t{reason}" for path, reason in failures])
        log.info("%d of %d videos have features; list in %s", len(finished), len(videos),
                 os.path.join(args.save_dir, FEATURE_LIST))
        if failures:
            log.error("%d videos failed, reasons in %s", len(failures), os.path.join(args.save_dir, FAILURES))
    dist.barrier()
    return 1 if failures else 0


def run(videos, settings, backbone, store):
    """Extract and save `videos`; returns [(path, reason)] of those that failed."""
    failures, frames, start = [], 0, time.time()
    bar = tqdm(total=len(videos), unit="video", desc="extracting", dynamic_ncols=True,
               position=dist.rank() if dist.world_size() > 1 else None)
    for result in iter_video_features(videos, settings, backbone):
        if result.ok:
            store.write(result)
            frames += len(result.features)
        else:
            failures.append((result.video.path, result.error))
            bar.write(f"skipped {result.video.path}: {result.error}", file=sys.stderr)
        bar.update(1)
        bar.set_postfix(frames_per_s=f"{frames / max(time.time() - start, 1e-9):.1f}", failed=len(failures))
    bar.close()
    return failures


@exit_on_input_error
def main(argv=None):
    setup_logging(every_rank=True)  # each process reports its share
    return extract(parse_args(argv))
