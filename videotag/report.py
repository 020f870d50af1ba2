"""save_dir/report.html: a static page to browse tagged videos, opened from disk (no server, no
network): a thumbnail per video (JPEGs in save_dir/thumbs/), its tags and probabilities, its
timeline, the tag frequency over the library and, when the list gave labels, per-class AP, as
inline SVG charts.
"""
import hashlib
import html
import os
import urllib.parse

import cv2
import decord
import numpy as np

from core.fsutil import atomic_open
from sequence.metrics import mean_ap

THUMBS = "thumbs"
THUMB_HEIGHT = 96
MAX_BARS = 40  # rows of a chart: the rest are summarised in a line


def thumbnail_path(save_dir, video_name):
    """A flat, collision-free file name for any listed path."""
    digest = hashlib.sha1(video_name.encode("utf-8")).hexdigest()[:16]
    return os.path.join(save_dir, THUMBS, digest + ".jpg")


def write_thumbnail(video_path, dest):
    """The video's middle frame as a small JPEG; False when it cannot be read (the page shows none)."""
    try:
        reader = decord.VideoReader(video_path, ctx=decord.cpu(0), num_threads=1)
        frame = reader[len(reader) // 2].asnumpy()
    except Exception:  # tagging does not depend on a thumbnail
        return False
    height, width = frame.shape[:2]
    size = (max(1, round(width * THUMB_HEIGHT / height)), THUMB_HEIGHT)
    small = cv2.resize(frame, size, interpolation=cv2.INTER_AREA)
    ok, data = cv2.imencode(".jpg", cv2.cvtColor(small, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 85])
    if ok:
        with atomic_open(dest, "wb") as f:
            f.write(data.tobytes())
    return bool(ok)


def bar_chart(rows, bar_colour="#4a78c2"):
    """Horizontal bars as inline SVG. rows: (label, fraction in [0, 1], text shown after the bar)."""
    rows = [(label if len(label) <= 40 else label[:39] + "\u2026", fraction, text) for label, fraction, text in rows]
    row_height, label_width, bar_width = 20, 8 + 7 * max(len(r[0]) for r in rows), 360
    width, height = label_width + bar_width + 120, row_height * len(rows) + 4
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
             f'font-family="sans-serif" font-size="12">']
    for i, (label, fraction, text) in enumerate(rows):
        y, length = i * row_height + 2, max(0.0, min(1.0, fraction)) * bar_width
        parts.append(f'<text x="{label_width - 6}" y="{y + 13}" text-anchor="end">{html.escape(label)}</text>'
                     f'<rect x="{label_width}" y="{y}" width="{length:.1f}" height="{row_height - 5}" '
                     f'fill="{bar_colour}"><title>{html.escape(label)}: {html.escape(text)}</title></rect>'
                     f'<text x="{label_width + length + 5:.1f}" y="{y + 13}">{html.escape(text)}</text>')
    parts.append("</svg>")
    return "".join(parts)


def chart(rows, what):
    if not rows:
        return "<p>nothing to show</p>"
    rest = f"<p>and {len(rows) - MAX_BARS} more {what}</p>" if len(rows) > MAX_BARS else ""
    return bar_chart(rows[:MAX_BARS]) + rest


def tag_frequency(predictions, label_names):
    """Rows of the classes most often among the videos' top-k tags."""
    counts = np.zeros(len(label_names), np.int64)
    for record in predictions:
        for tag in record["tags"]:
            counts[tag["class_id"]] += 1
    order = [c for c in np.argsort(-counts, kind="stable") if counts[c]]
    total = max(1, len(predictions))
    return [(label_names[c], counts[c] / total, f"{counts[c]} videos ({100 * counts[c] / total:.0f}%)")
            for c in order]


def average_precisions(predictions, label_names, labels):
    """Rows of per-class AP over the labelled videos, and the mAP. Scores are the top-k
    probabilities; a class outside a video's top-k counts as 0 (exact when topk >= classes)."""
    rows = [r for r in predictions if r["video"] in labels]
    scores = np.zeros((len(rows), len(label_names)))
    truth = np.zeros_like(scores)
    for i, record in enumerate(rows):
        for tag in record["tags"]:
            scores[i, tag["class_id"]] = tag["probability"]
        truth[i, labels[record["video"]]] = 1
    aps = {c: mean_ap(scores[:, [c]], truth[:, [c]]) for c in np.flatnonzero(truth.sum(axis=0))}
    order = sorted(aps, key=lambda c: -aps[c])
    chart_rows = [(label_names[c], aps[c], f"{aps[c]:.3f} ({int(truth[:, c].sum())} videos)") for c in order]
    return chart_rows, (float(np.mean(list(aps.values()))) if aps else 0.0), len(rows)


STYLE = """
body { font-family: sans-serif; margin: 1.5em; color: #222; }
.videos { display: flex; flex-wrap: wrap; gap: 12px; }
.video { width: 260px; border: 1px solid #ddd; border-radius: 6px; padding: 8px; font-size: 13px; }
.video img, .video .nothumb { height: 96px; max-width: 100%; display: block; margin-bottom: 4px; }
.nothumb { background: #eee; width: 128px; }
.name { font-weight: bold; word-break: break-all; }
.tags { padding-left: 0; list-style: none; margin: 4px 0; }
.tags li { display: flex; align-items: center; gap: 4px; }
.tags .label { flex: 0 0 120px; overflow: hidden; text-overflow: ellipsis; white-space: nowrap; }
.tags .bar { background: #4a78c2; height: 8px; }
.tags .true .label { color: #0a7a2f; font-weight: bold; }
.truth { color: #0a7a2f; }
table { border-collapse: collapse; } td { padding: 1px 6px; vertical-align: top; }
.quality { font-weight: bold; } .controls { margin: 4px 0; } .controls label { margin-right: 10px; }
#by-best:checked ~ .videos .video { order: var(--best); }
#by-worst:checked ~ .videos .video { order: var(--worst); }
#only-low:checked ~ .videos .video:not(.q-low), #only-mid:checked ~ .videos .video:not(.q-mid),
#only-high:checked ~ .videos .video:not(.q-high) { display: none; }
"""
# Sorting and filtering by quality without scripts: radio buttons before the cards select, through CSS,
# each card's flex order (its rank, set on the card) or whether its third of the scores is shown.
QUALITY_CONTROLS = (
    '<div class="controls">order:</div>'
    '<input type="radio" name="order" id="by-list" checked><label for="by-list">as listed</label>'
    '<input type="radio" name="order" id="by-best"><label for="by-best">best quality first</label>'
    '<input type="radio" name="order" id="by-worst"><label for="by-worst">worst quality first</label>'
    '<div class="controls">show:</div>'
    '<input type="radio" name="band" id="only-all" checked><label for="only-all">all</label>'
    '<input type="radio" name="band" id="only-low"><label for="only-low">lowest third (bad uploads?)</label>'
    '<input type="radio" name="band" id="only-mid"><label for="only-mid">middle third</label>'
    '<input type="radio" name="band" id="only-high"><label for="only-high">highest third (covers, key clips)</label>')


def quality_places(predictions):
    """{video: (card class, style)}: each scored video's third of the scores and its ranks both ways."""
    scored = [r for r in predictions if "quality" in r]
    if not scored:
        return {}
    order = sorted(range(len(scored)), key=lambda i: -scored[i]["quality"])
    places = {}
    for rank, i in enumerate(order):
        band = ("q-high", "q-mid", "q-low")[min(2, 3 * rank // len(scored))]
        places[scored[i]["video"]] = (band, f"--best:{rank};--worst:{len(scored) - 1 - rank}")
    return places


def video_card(save_dir, record, labels, windows, label_names, place=None):
    truth = set(labels.get(record["video"], [])) if labels is not None else set()
    thumb = thumbnail_path(save_dir, record["video"])
    image = (f'<img loading="lazy" src="{urllib.parse.quote(os.path.relpath(thumb, save_dir))}" alt="">'
             if os.path.exists(thumb) else '<div class="nothumb"></div>')
    tags = "".join(
        f'<li class="{"true" if t["class_id"] in truth else ""}"><span class="label">{html.escape(t["class_name"])}'
        f'</span><span class="bar" style="width:{100 * t["probability"]:.0f}px"></span>{t["probability"]:.3f}</li>'
        for t in record["tags"])
    band, style = place or ("", "")
    quality = f'<div class="quality">quality {record["quality"]:.3f}</div>' if "quality" in record else ""
    parts = [f'<div class="video {band}" style="{style}">{image}<div class="name">{html.escape(record["video"])}'
             f'</div>{quality}<ol class="tags">{tags}</ol>']
    if truth:
        parts.append('<div class="truth">labels: ' + html.escape(", ".join(label_names[c] for c in sorted(truth)))
                     + "</div>")
    if windows:
        rows = "".join(f'<tr><td>{w["start"]:.1f}&ndash;{w["end"]:.1f} s</td><td>'
                       + html.escape(", ".join(f'{t["class_name"]} {t["probability"]:.2f}' for t in w["tags"][:3]))
                       + "</td></tr>" for w in windows)
        parts.append(f"<details><summary>timeline: {len(windows)} windows</summary><table>{rows}</table></details>")
    return "".join(parts) + "</div>"


def render(save_dir, predictions, label_names, labels=None, timeline=(), failures=()):
    """The page as a string. labels: {video: [class ids]} of a labelled list, or None."""
    windows = {}
    for window in timeline:
        windows.setdefault(window["video"], []).append(window)
    topk = max((len(r["tags"]) for r in predictions), default=0)
    body = [f"<h1>Video tags</h1><p>{len(predictions)} videos tagged (top {topk} tags each)"
            + (f", {len(failures)} failed (see failures.txt)" if failures else "") + ".</p>",
            "<h2>Tag frequency</h2><p>How many videos have each tag among their top tags.</p>",
            chart(tag_frequency(predictions, label_names), "tags")]
    if labels is not None:
        rows, mean, count = average_precisions(predictions, label_names, labels)
        body += [f"<h2>Average precision per class</h2><p>mAP {mean:.3f} over {count} labelled videos; a class "
                 "outside a video's top tags scores 0 there (exact when --topk covers every class).</p>",
                 chart(rows, "classes")]
    places = quality_places(predictions)
    body.append("<h2>Videos</h2>" + (QUALITY_CONTROLS if places else "") + '<div class="videos">')
    body += [video_card(save_dir, r, labels, windows.get(r["video"]), label_names, places.get(r["video"]))
             for r in predictions]
    body.append("</div>")
    if failures:
        body.append("<h2>Failed</h2><ul>" + "".join(
            f"<li>{html.escape(name)}: {html.escape(reason)}</li>" for name, reason in failures) + "</ul>")
    return ('<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>Video tags</title>'
            f"<style>{STYLE}</style></head><body>\n" + "\n".join(body) + "\n</body></html>\n")
