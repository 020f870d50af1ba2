"""Which videos to read: a video list or a folder, each video with the id that names its outputs."""
import dataclasses
import os

from core.errors import InputError

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
    """Videos of a list; a relative path resolves against the list's folder, as in stage two, or
    against the working directory when it is not there (VideoTag's lists)."""
    if not os.path.isfile(path):
        raise InputError("video list not found", path)
    folder = os.path.dirname(os.path.abspath(path))
    videos = []
    with open(path) as f:
        for line in f:
            fields = line.split()
            if fields:
                listed = fields[0]
                beside_list = os.path.join(folder, listed)
                resolved = beside_list if not os.path.isabs(listed) and os.path.exists(beside_list) else listed
                videos.append(Video(resolved, video_id(listed), tuple(fields[1:])))
    return videos


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
