"""``saicm eval`` on clips: a video codec (or an image codec frame by frame) over clips, same results schema.

``--dataset`` names clips instead of an image folder when it is a video file,
or a folder holding video files (and no images), optionally followed by a
frame range and a size: ``CLIP#A:B``, ``CLIP#A:B@WxH``, ``FOLDER#0:30``
(the range and size apply to every clip of a folder). Frames of every clip
are the "images" of the results (``<clip stem>/frame_NNNNNN.png``):

- ``per_image``: per frame and quality, ``bpp`` (its clip's:
  bytes·8 / (W·H·frames)), ``bytes`` (its clip's file), ``psnr``, ``ms_ssim``;
- ``points``: ``bytes`` (all clips), ``bpp`` (mean over frames of their clip's
  bpp; for one clip, the clip's), ``psnr`` / ``ms_ssim`` (mean over frames),
  ``encode_s`` / ``decode_s`` (per frame), the task's metrics on every decoded
  frame of every clip (detection AP against pseudo ground truth from the
  task model on the original frames, ``"ground_truth": "pseudo"``, unless
  ``--annotations`` is given), and ``per_clip``: bytes, bpp, PSNR, MS-SSIM,
  encode and decode seconds (whole clip) per clip;
- ``clips``: per clip its source, first frame, frame count, size and fps.

AP is over all frames of the dataset: run one ``saicm eval`` per clip for
per-clip AP (as the image suites do). Bootstrap draws
(``--bootstrap``) re-draw frames; frames of a clip are correlated, so the
interval is narrower than one over independent images would be.

Encoded clips are cached (``~/.cache/saicm/decoded`` or ``--cache``) by codec
config, quality and clip content: a NeRV encode is minutes, its decode is
seconds, so repeated or interrupted sweeps re-use the files and decode again.
An encode that is itself interrupted is not lost either: the NeRV-family codecs
checkpoint their fit next to the cache entry (``q{quality}/{key}.ckpt``) and the
next run of the same sweep continues it (the same bytes as an uninterrupted
encode at the same thread count; ``per_clip`` then says ``resumed_from``, and
its ``encode_s`` counts the resumed run only). What happened in a fit (a
divergence rolled back, a resume) is in ``per_clip``'s ``events``.
"""

from __future__ import annotations

import hashlib
import math
import re
import time
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

from ..errors import SaicmError
from .io import Clip, is_video_file, parse_range, parse_size, read_clip

_SPEC = re.compile(r"^(?P<path>.*?)(?:#(?P<frames>\d*:\d*))?(?:@(?P<size>\d+[xX]\d+))?$")


def parse_spec(spec: str) -> tuple[str, str | None, str | None]:
    m = _SPEC.match(str(spec))
    return m.group("path"), m.group("frames"), m.group("size")


def clip_paths(spec: str) -> list[Path] | None:
    """The clips a dataset spec names, or None when it is not a clip dataset (an image folder)."""
    from ..codec.image_io import is_image_file

    path, frames, size = parse_spec(spec)
    p = Path(path)
    if is_video_file(p):
        return [p]
    if p.is_dir():
        entries = list(p.iterdir())
        videos = sorted(e for e in entries if is_video_file(e))
        if videos and not any(is_image_file(e) for e in entries):
            return videos
    if frames is not None or size is not None:
        raise SaicmError("a frame range or size (#A:B, @WxH) needs a video file or a folder of video files", path)
    return None


def load_clips(spec: str, max_pixels: int | None = None) -> dict[str, Clip] | None:
    """``{clip stem: Clip}`` for a clip dataset spec, or None for an image folder."""
    paths = clip_paths(spec)
    if paths is None:
        return None
    _, frames, size = parse_spec(spec)
    if frames:
        parse_range(frames)
    if size:
        parse_size(size)
    out = {}
    for p in paths:
        name = p.stem
        if name in out:
            name = p.name
        out[name] = read_clip(p, frames, size, max_pixels)
    return out


def is_clips(images: Mapping) -> bool:
    return bool(images) and isinstance(next(iter(images.values())), Clip)


def clip_hash(clip: Clip) -> str:
    h = hashlib.sha256(str(clip.frames.shape).encode())
    h.update(np.ascontiguousarray(clip.frames).tobytes())
    h.update(f"{clip.fps}".encode())
    return h.hexdigest()[:20]


def _frame_names(stem: str, clip: Clip) -> list[str]:
    return [f"{stem}/{n}" for n in clip.names()]


def _mean(vals) -> float | None:
    vals = [v for v in vals if v is not None and not (isinstance(v, float) and math.isnan(v))]
    return float(np.mean(vals)) if vals else None


def sweep_clips(codec, clips: Mapping[str, Clip], qualities: Sequence | None = None, task=None, cache=None,
                dataset: str = "", progress: bool = True) -> dict:
    """The sweep of :func:`saicm.eval.rd.sweep` over clips (schema: module docstring)."""
    from PIL import Image

    from ..eval.cache import EncodedCache
    from ..eval.metrics import ms_ssim, psnr
    from .._progress import StatusLines, progress_bar
    from ..eval.rd import check_qualities, rate_points, say_point, start_result, warn_exact_decodes
    from .codecs import as_video_codec

    codec = as_video_codec(codec)
    if hasattr(codec, "progress"):
        codec.progress = progress
    qualities = rate_points(codec, qualities)
    check_qualities(codec, qualities)
    store = EncodedCache(cache)
    originals = {}
    for stem, clip in clips.items():
        for name, f in zip(_frame_names(stem, clip), clip.frames):
            originals[name] = Image.fromarray(f)
    res = start_result(codec, dataset, task, originals)
    res["video"] = True
    res["clips"] = {stem: {"source": c.source, "first": c.first, "frames": c.n, "width": c.width,
                           "height": c.height, "fps": str(c.fps)} for stem, c in clips.items()}
    bar = progress_bar(total=len(clips) * len(qualities), desc=codec.name, unit="clip", progress=progress)
    lines = StatusLines("eval", bool(progress) and bar.disable)  # (off a terminal: saicm.eval.rd.sweep's lines)
    for q in qualities:
        decoded, per_clip, frame_rows = {}, {}, []
        for stem, clip in clips.items():
            key = clip_hash(clip) + codec.clip_key(clip)
            hit = store.get(q, key)
            if hit is None:
                ckpt = store.checkpoint(q, key) if getattr(codec, "resumable", False) else None
                t = time.perf_counter()
                data = codec.encode(clip, q, checkpoint=ckpt) if ckpt is not None else codec.encode(clip, q)
                enc_s = time.perf_counter() - t
                meta = {"encode_s": enc_s}
                report = getattr(codec, "last_report", None)
                if report is not None and report.resumed_from:
                    meta["resumed_from"] = report.resumed_from
                if report is not None and report.events:
                    meta["events"] = list(report.events)
                store.put(q, key, data, meta)
                if ckpt is not None:
                    ckpt.unlink(missing_ok=True)
            else:
                data, meta = hit
                enc_s = float(meta.get("encode_s", 0.0))
            t = time.perf_counter()
            frames = codec.decode(data, clip)
            dec_s = time.perf_counter() - t
            if frames.shape != clip.frames.shape:
                raise SaicmError(f"codec {codec.name} returned frames {frames.shape} for a clip of {clip.frames.shape}")
            size = codec.size(data)
            bpp = 8.0 * size / (clip.width * clip.height * clip.n)
            ps, ms = [], []
            for name, a, b in zip(_frame_names(stem, clip), clip.frames, frames):
                p, m = psnr(a, b), ms_ssim(a, b)
                ps.append(p)
                ms.append(m)
                decoded[name] = Image.fromarray(b)
                row = {"quality": q, "bpp": bpp, "bytes": size, "psnr": p, "ms_ssim": m}
                res["per_image"].setdefault(name, []).append(row)
                frame_rows.append(row)
            per_clip[stem] = {"bytes": size, "bpp": bpp, "psnr": _mean(ps), "ms_ssim": _mean(ms),
                              "encode_s": enc_s, "decode_s": dec_s, "frames": clip.n,
                              "decode_fps": clip.n / dec_s if dec_s > 0 else None}
            per_clip[stem].update({k: meta[k] for k in ("resumed_from", "events") if meta.get(k)})
            bar.update(1)
            lines.say(f"{codec.name} quality {q}: {len(per_clip)}/{len(clips)} clips")
        n_frames = len(frame_rows)
        point = {"quality": q, "bytes": int(sum(c["bytes"] for c in per_clip.values())),
                 "bpp": _mean([r["bpp"] for r in frame_rows]), "psnr": _mean([r["psnr"] for r in frame_rows]),
                 "ms_ssim": _mean([r["ms_ssim"] for r in frame_rows]),
                 "encode_s": sum(c["encode_s"] for c in per_clip.values()) / n_frames,
                 "decode_s": sum(c["decode_s"] for c in per_clip.values()) / n_frames,
                 "per_clip": per_clip}
        warn_exact_decodes(codec.name, q, [r["psnr"] for r in frame_rows])
        if task is not None:
            point.update(task.evaluate(decoded, originals))
        res["points"].append(point)
        say_point(lines, codec.name, qualities, point)
    bar.close()
    res["points"].sort(key=lambda p: p["bpp"])
    return res
