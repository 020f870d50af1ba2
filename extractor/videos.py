"""Which videos to read: a video list or a folder, each video with the id that names its outputs."""
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
    if not os.path.isdir(folder):
        raise InputError("video folder not found", folder)
    videos = []
    for root, dirs, files in os.walk(folder):
        dirs.sort()
        for name in sorted(files):
            if name.lower().endswith(VIDEO_EXTENSIONS):
                path = os.path.join(root, name)
                videos.append(Video(path, video_id(os.path.relpath(path, folder))))
    return videos


def unique_videos(videos, source):
    """Drop repeated paths; two different videos may not share an output name."""
    by_id, unique = {}, []
    for video in videos:
        seen = by_id.setdefault(video.video_id, video)
        if seen is video:
            unique.append(video)
        elif os.path.normpath(seen.path) != os.path.normpath(video.path):
            raise InputError(f"'{seen.path}' and '{video.path}' would both be saved as "
                             f"'{video.video_id}'; rename one", source)
    return unique
