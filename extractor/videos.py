"""Which videos to read: a video list or a folder, each video with the id that names its outputs.

The id is the video's path (relative to the folder, or as listed) without its extension; when two
videos differ only by extension (clip.mp4 and clip.mov) both keep it (clip.mp4, clip.mov), so
outputs of every other video keep the names they always had.
"""
import dataclasses
import os

from core.errors import InputError
from core.lists import list_entries, resolve

VIDEO_EXTENSIONS = (".mp4", ".avi", ".mov", ".mkv", ".webm", ".flv", ".m4v", ".mpg", ".mpeg",
                    ".wmv", ".3gp", ".ts", ".mts", ".vob", ".ogv")



@dataclasses.dataclass
class Video:
    path: str  # where to read it
    video_id: str  # relative path without extension: names its output
    labels: tuple = ()


def video_id(path):
    """Output name of a listed path: normalised, without extension, never leaving save_dir."""
    parts = [p if p != ".." else "__" for p in os.path.normpath(path).split(os.sep) if p not in ("", ".")]
    return os.path.splitext("/".join(parts))[0]


def read_filelist(path):
    """Videos of a list (core.lists: its rules for paths, fields and comments); a missing video is
    not an error here but that video's failure."""
    return [Video(resolve(fields[0], folder), video_id(fields[0]), tuple(fields[1:]))
            for _, fields, folder in list_entries(path, "video list")]


def find_videos(folder):
    """Every video file under `folder`, following linked folders once each (a link back up is
    not followed again) and listing each real file once. A broken or looping link with a video
    extension is listed: it fails as that video, with its reason, instead of vanishing."""
    if not os.path.isdir(folder):
        raise InputError("video folder not found", folder)
    videos, seen_folders, seen_files = [], set(), set()
    for root, dirs, files in os.walk(folder, followlinks=True):
        seen_folders.add(folder_key(root))
        dirs[:] = [d for d in sorted(dirs) if folder_key(os.path.join(root, d)) not in seen_folders]
        for name in sorted(files):
            if not name.lower().endswith(VIDEO_EXTENSIONS):
                continue
            path = os.path.join(root, name)
            real = os.path.realpath(path)
            if real in seen_files and os.path.exists(real):
                continue
            seen_files.add(real)
            videos.append(Video(path, video_id(os.path.relpath(path, folder))))
    return videos


def folder_key(path):
    info = os.stat(path)
    return info.st_dev, info.st_ino


def unique_videos(videos, source):
    """Drop repeated paths; videos whose ids differ only by extension keep it in their id (the
    Video objects are changed in place); two other videos may not share an output name."""
    paths_of = {}
    for video in videos:
        paths_of.setdefault(video.video_id, set()).add(os.path.normpath(video.path))
    for video in videos:
        extensions = {os.path.splitext(path)[1] for path in paths_of[video.video_id]}
        if len(extensions) == len(paths_of[video.video_id]) > 1:
            video.video_id += os.path.splitext(video.path)[1]
    by_id, unique = {}, []
    for video in videos:
        seen = by_id.setdefault(video.video_id, video)
        if seen is video:
            unique.append(video)
        elif os.path.normpath(seen.path) != os.path.normpath(video.path):
            raise InputError(f"'{seen.path}' and '{video.path}' would both be saved as "
                             f"'{video.video_id}'; rename one", source)
    return unique


def listed_videos(filelist, video_path, what="no videos to extract"):
    """The distinct videos of a --filelist or a --video_path folder; InputError(`what`) when none."""
    source = filelist or video_path
    videos = unique_videos(read_filelist(filelist) if filelist else find_videos(video_path), source)
    if not videos:
        raise InputError(what, source)
    return videos
