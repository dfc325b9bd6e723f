"""Clips in and out: any video ffmpeg reads, frame ranges, resizing, PNG frames, lossless video.

Clips are read through the ffmpeg binary of the ``imageio-ffmpeg`` wheel
(:func:`saicm.eval.ffmpeg.ffmpeg_exe`: ``imageio_ffmpeg.get_ffmpeg_exe()``,
else ``ffmpeg`` on PATH) as raw ``rgb24`` frames through a pipe, so Annex-B
H.264, AVI, MP4, MKV ... all work. The colour conversion is ffmpeg's default
(what ``ffmpeg -i CLIP -pix_fmt rgb24 frames/%04d.png`` gives): those frames
are the originals every metric compares against. A folder of images (e.g.
what ``saicm video frames`` writes) is a clip too: its frames in name order.

**Frame ranges** are ``A:B`` (0-based, B excluded, like Python slices; ``A:``
to the end, ``:B`` from the start), picked by ffmpeg's ``select`` filter, so
skipped frames never cross the pipe. **Resizing** (``WxH``) is ffmpeg's
``scale`` filter with Lanczos. A clip's frames keep the index they have in the
source: ``frame_000042.png`` is frame 42 whatever range was read, which is how
per-frame masks (``saicm masks`` on a ``saicm video frames`` folder) map back
to frames (:func:`frame_index`).

Writing: PNG frames (``frame_%06d.png``) into a folder, or a lossless video:
FFV1 (RGB, planar) in ``.mkv`` / ``.avi`` / ``.nut``, H.264 RGB at ``-qp 0``
(libx264rgb) in ``.mp4``. Both are written beside the destination and renamed
into place, so a failure leaves nothing behind.
"""

from __future__ import annotations

import json
import numbers
import os
import re
import subprocess
import tempfile
import threading
from contextlib import contextmanager
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Iterable, Iterator

import numpy as np

from .._fs import atomic_folder
from ..errors import ArgumentError, SaicmError
from ..errors import warn as saicm_warn

FRAME_PATTERN = "frame_{:06d}.png"
_FRAME_RE = re.compile(r"^frame_(\d+)\.[A-Za-z]+$")  # (the whole name: myframe_000001.png is not frame 1)
#: written by ``saicm video frames`` beside the PNGs: the clip they came from, its fps and the range
FRAMES_JSON = "frames.json"
VIDEO_SUFFIXES = {".264", ".h264", ".avc", ".265", ".h265", ".hevc", ".266", ".vvc", ".mp4", ".m4v", ".mov",
                  ".mkv", ".webm", ".avi", ".mpg", ".mpeg", ".ts", ".m2ts", ".y4m", ".flv", ".wmv", ".nut", ".ivf",
                  ".yuv"}
LOSSLESS_VIDEO = {".mkv": ("ffv1", "matroska"), ".avi": ("ffv1", "avi"), ".nut": ("ffv1", "nut"),
                  ".mp4": ("libx264rgb", "mp4")}
DEFAULT_FPS = Fraction(25)
#: seconds ffmpeg is given to exit after its last frame read, and to take each frame of a lossless video and finish
#: it after its last frame written (tests make them small)
EXIT_TIMEOUT = 60
WRITE_TIMEOUT = 3600
#: seconds ffmpeg is given for each frame of a clip it reads (the first may follow a long seek: a hang, not a slow
#: decode, is what it bounds)
READ_TIMEOUT = 3600
#: total pixels (frames × width × height) a clip may hold unless the caller raises it: 2³¹, e.g. 1,035 frames of
#: 1920×1080 or 21,000 frames of 352×288 (see saicm.codec.limits.check_video_pixels)


@dataclass
class ClipInfo:
    """What ffmpeg says about a clip before any frame is decoded."""

    width: int
    height: int
    fps: Fraction
    codec: str = ""
    #: the stream read, as ffmpeg's ``-map`` names it (``0:1``: the file's second stream)
    stream: str = "0:v:0"
    #: the shape of its pixels as stored (2: twice as wide as high when shown), whether its display matrix turns it
    #: by a quarter (width and height are the turned frames'), and its field order when interlaced (ffmpeg's words:
    #: "top first", ...; "" when progressive or unsaid): pixels and fields are read as stored, said by iter_clip
    sar: Fraction = Fraction(1)
    turned: bool = False
    fields: str = ""
    #: seconds, as the container says (None where it does not, or ffmpeg estimates it from the bitrate): with the
    #: frame rate, about how many frames an open range (``A:``) holds, before any is decoded
    duration: float | None = None


@dataclass
class Clip:
    """Frames of a clip as (N, H, W, 3) uint8, the index of the first one in the source, and the frame rate (a
    number is taken as the fraction it stands for: ``fps=12.5`` is 25/2, 29.97 is 30000/1001)."""

    frames: np.ndarray
    fps: Fraction | float = DEFAULT_FPS
    first: int = 0
    source: str = ""
    extra: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        # (ffmpeg's -r and the .saicmv header take a fraction: a float fps failed the video codecs of saicm eval,
        # hevc-video and vvc-video, with an AttributeError)
        # (NumPy's floats too: np.float32 is no float, and Fraction() refused it with a TypeError)
        if (isinstance(self.fps, numbers.Real) and not isinstance(self.fps, numbers.Rational) and self.fps > 0
                and self.fps != float("inf")):
            self.fps = fps_fraction(float(self.fps))
        elif not isinstance(self.fps, Fraction):
            try:
                self.fps = Fraction(self.fps)  # (an int, or a string such as ffprobe's "30000/1001")
            except (TypeError, ValueError, OverflowError):
                raise ArgumentError(f"fps must be a positive frame rate, got {self.fps!r}") from None
        if not self.fps > 0:  # (0, negative or NaN: a clip's time base; the encoder wrote such files)
            raise ArgumentError(f"fps must be a positive frame rate, got {self.fps}")

    @property
    def n(self) -> int:
        return int(self.frames.shape[0])

    @property
    def height(self) -> int:
        return int(self.frames.shape[1])

    @property
    def width(self) -> int:
        return int(self.frames.shape[2])

    def names(self) -> list[str]:
        return [FRAME_PATTERN.format(self.first + i) for i in range(self.n)]


def is_video_file(path: str | os.PathLike) -> bool:
    p = Path(path)
    return p.is_file() and p.suffix.lower() in VIDEO_SUFFIXES


def frame_index(name: str) -> int | None:
    """The source frame index of a file named like :data:`FRAME_PATTERN` (any suffix), else None."""
    m = _FRAME_RE.search(os.path.basename(str(name)))
    return int(m.group(1)) if m else None


def parse_range(text: str | None) -> tuple[int, int | None]:
    """``"A:B"`` → (A, B) 0-based, B excluded; ``"A:"`` → (A, None); ``None``/``""`` → (0, None)."""
    if not text:
        return 0, None
    a, sep, b = str(text).partition(":")
    try:
        start = int(a) if a.strip() else 0
        stop = int(b) if b.strip() else None
    except ValueError:
        start = stop = -1
    if not sep or start < 0 or (stop is not None and stop <= start):
        raise SaicmError(f"--frames wants A:B with 0 <= A < B (0-based, B excluded; A: or :B allowed), got {text!r}")
    return start, stop


def parse_size(text: str | None) -> tuple[int, int] | None:
    """``"WxH"`` → (W, H) (even numbers ≥ 16 are not required; any positive size)."""
    if not text:
        return None
    m = re.fullmatch(r"\s*(\d+)\s*[xX]\s*(\d+)\s*", str(text))
    if not m or int(m.group(1)) < 1 or int(m.group(2)) < 1:
        raise SaicmError(f"--size wants WxH in pixels (e.g. 352x288), got {text!r}")
    if max(int(m.group(1)), int(m.group(2))) > 65535:
        raise SaicmError(f"--size {text.strip()}: at most 65535 pixels a side")
    return int(m.group(1)), int(m.group(2))


def fps_fraction(value: float) -> Fraction:
    """A float frame rate as the rational it stands for (29.97 → 30000/1001)."""
    if not value or value <= 0 or value != value:
        return DEFAULT_FPS
    for k in (24, 30, 48, 60, 120, 240):
        if abs(value - k * 1000 / 1001) < 0.006:
            return Fraction(k * 1000, 1001)
    return Fraction(value).limit_denominator(1000)


def _exe() -> str:
    from ..eval.ffmpeg import ffmpeg_exe

    return ffmpeg_exe()


#: ffmpeg's demuxers of files that name other files (a playlist, a concatenation list): a stranger's "clip" of that
#: kind had ffmpeg read what it names (another of the user's local videos, coded into the clip the user shares; URLs
#: where an ffmpeg build allows them); refused by :func:`probe`
LISTING_DEMUXERS = frozenset({"hls", "applehttp", "concat", "dash"})


def _input(path: str) -> list[str]:
    """ffmpeg's arguments that read the clip at ``path``: as a file by its absolute name (a name such as ``concat:a|b``,
    ``subfile:…`` or ``pipe:0`` is no protocol), and through no protocol but ``file``."""
    return ["-protocol_whitelist", "file", "-i", "file:" + os.path.abspath(path)]


def _head(path: str) -> bytes:
    """The first bytes of a file (none when it cannot be read)."""
    try:
        with open(path, "rb") as f:
            return f.read(64)
    except OSError:
        return b""


def _stderr_file():
    """A file for ffmpeg's standard error, read once it ends (a pipe left unread could fill and stall it): a
    temporary file, else one in memory (Linux) where no temporary folder can be written (a container's read-only
    /tmp: reading or writing a clip was a traceback ending in "No usable temporary directory"); elsewhere that is
    one line naming TMPDIR."""
    try:
        return tempfile.TemporaryFile()
    except OSError as e:
        if hasattr(os, "memfd_create"):
            return os.fdopen(os.memfd_create("saicm-ffmpeg-stderr", os.MFD_CLOEXEC), "w+b")
        raise SaicmError(f"no temporary file for ffmpeg's messages ({e.strerror or e}): point TMPDIR at a writable "
                         "folder") from None


def _last_error(stderr: bytes, code: int = 0) -> str:
    """ffmpeg's last line of error (cut short), and how it ended when a signal killed it (``code`` < 0)."""
    from ..eval.ffmpeg import clipped, exit_text

    lines = [ln.strip() for ln in stderr.decode("utf-8", "replace").splitlines() if ln.strip()]
    skip = ("At least one output file", "Press [q]", "frame=")
    lines = [ln for ln in lines if not ln.startswith(skip)]
    said = clipped(re.sub(r"^(\[[^\]]* @ 0x[0-9a-fA-F]+\]\s*)+", "", lines[-1])) if lines else ""  # "[ffv1 @ 0x5…] "
    if code < 0:  # (a crash or the OOM killer: "no output" read as the clip's fault)
        return f"{said}; {exit_text(code)}" if said else exit_text(code)
    return said or "no output"


def probe(path: str | os.PathLike) -> ClipInfo:
    """Size, frame rate and codec of a clip's video stream (:func:`_video_stream`; ffmpeg's stream line; nothing is
    decoded)."""
    path = str(path)
    if not os.path.exists(path):
        raise SaicmError("no such file", path)
    if os.path.isdir(path):
        return _probe_folder(Path(path))
    try:
        p = subprocess.run([_exe(), "-hide_banner", "-nostdin", *_input(path)], capture_output=True, timeout=120)
    except (OSError, subprocess.TimeoutExpired) as e:
        raise SaicmError(f"cannot run ffmpeg ({e})", path) from None
    if p.returncode < 0:  # (ffmpeg crashed: not the file's fault)
        raise SaicmError(f"cannot probe the clip: ffmpeg {_exe()} {_last_error(p.stderr, p.returncode)}", path)
    text = p.stderr.decode("utf-8", "replace")
    demuxer = re.search(r"^Input #0, ([\w,]+), from", text, re.MULTILINE)
    if demuxer and LISTING_DEMUXERS & set(demuxer.group(1).split(",")):
        raise SaicmError(f"a playlist or list of files ({demuxer.group(1)}), not a clip: saicm reads no file that names "
                         "others (ffmpeg would read what it names); give it the clip itself", path)
    line = _video_stream(text.splitlines(), path)
    if line is None:
        from ..codec.container import CODE_CLIP, file_kind, not_a

        head = _head(path)  # (saicm video encode x.saicmv: say what it is, not ffmpeg's words)
        kind = file_kind(head)  # (an image, or a clip's container without a video stream: ffmpeg's listing says)
        if kind and not kind[0].endswith(" image") and kind[1] != CODE_CLIP:
            raise SaicmError(not_a("a video file", head), path)
        if os.path.getsize(path) == 0:
            raise SaicmError("an empty file (0 bytes): no video to read", path)
        if "moov atom not found" in text and head[4:8] in (b"ftyp", b"wide", b"free", b"skip", b"mdat"):
            # (an .mp4 or .mov begun: ffmpeg's last line was "Invalid data found when processing input")
            raise SaicmError("an unfinished recording: its index (moov) is missing, as when a phone or camera stops "
                             "before the end (battery, crash); no frame can be read without it", path)
        holds = _other_streams(text.splitlines())
        if holds:  # (ffmpeg's last line was a tag of the file: "not a video ffmpeg can read (handler_name : ...)")
            raise SaicmError(f"no video stream: {holds} only", path)
        if re.search(r"^Input #0, ", text, re.MULTILINE):  # (opened, and nothing in it: "(Duration: N/A, ...)")
            raise SaicmError("no streams in it: no video to read", path)
        raise SaicmError(f"not a video ffmpeg can read ({_last_error(p.stderr)})", path)
    size = re.search(r",\s*(\d{1,5})x(\d{1,5})[\s,\[]", line + " ")
    if not size:
        raise SaicmError("ffmpeg reports no frame size for the video stream", path)
    width, height = int(size.group(1)), int(size.group(2))
    turned = _quarter_turned(text.splitlines(), line)
    if turned:  # ffmpeg turns the frames upright: 142x250 from a 250x142 stream
        width, height = height, width
    fps = re.search(r"([\d.]+)\s*(k?)\s*fps", line) or re.search(r"([\d.]+)\s*(k?)\s*tbr", line)
    value = float(fps.group(1)) * (1000 if fps.group(2) else 1) if fps else 0.0
    codec = re.search(r"Video:\s*([\w-]+)", line)
    index = re.match(r"\s*Stream #\d+:(\d+)", line)
    sar = re.search(r"\bSAR (\d+):(\d+)", line)
    fields = re.search(r"\b(?:top|bottom)(?: coded)? first(?: \(swapped\))?", line)
    # (a stream's average rate, "fps": not "tbr" alone, a time base that can be 1000 for a variable rate)
    duration = re.search(r"^\s*Duration: (\d+):(\d\d):(\d\d(?:\.\d+)?)", text, re.MULTILINE)
    trusted = duration and " fps" in line and "Estimating duration from bitrate" not in text
    return ClipInfo(width=width, height=height, fps=fps_fraction(value), codec=codec.group(1) if codec else "",
                    duration=(int(duration.group(1)) * 3600 + int(duration.group(2)) * 60 + float(duration.group(3))
                              if trusted else None),
                    stream=f"0:{index.group(1)}" if index else "0:v:0",
                    sar=Fraction(int(sar.group(1)), int(sar.group(2))) if sar and int(sar.group(1)) and int(
                        sar.group(2)) else Fraction(1),  # (0:1: unknown, taken as square)
                    turned=turned, fields=fields.group(0) if fields else "")


def _video_stream(lines: list[str], path: str) -> str | None:
    """ffmpeg's line of the video stream a clip is read from: the one flagged default if there are several (said),
    never a cover picture (an attached pic: the first "video" of an .mp4 whose tags precede its track, which was
    read as a 1-frame clip at 90000 fps, in silence)."""
    videos, seen = [], set()
    for ln in lines:  # (a stream of a transport stream's programs is listed under each of them: once here)
        name = re.search(r"Stream (#\d+:\d+)\S*.*: Video:", ln)
        if name and "(attached pic)" not in ln and name.group(1) not in seen:
            seen.add(name.group(1))
            videos.append(ln)
    if len(videos) < 2:
        return videos[0] if videos else None
    line = next((ln for ln in videos if " (default)" in ln), videos[0])
    name = re.search(r"Stream (#\d+:\d+)", line)
    size = re.search(r",\s*(\d{1,5}x\d{1,5})[\s,\[]", line + " ")
    saicm_warn(f"{path}: {len(videos)} video streams; stream {name.group(1) if name else ''} "
               f"({'the default one' if ' (default)' in line else 'the first'}"
               f"{', ' + size.group(1) if size else ''}) is read")
    return line


def _other_streams(lines: list[str]) -> str:
    """What a file without a video stream holds instead, as ffmpeg lists its streams ("audio and a cover picture";
    "" for none)."""
    kinds = {"Audio": "audio", "Subtitle": "subtitles", "Data": "data", "Attachment": "attachments"}
    said = []
    for ln in lines:
        m = re.search(r"Stream #\S+.*?: (\w+):", ln)
        kind = m and ("a cover picture" if "(attached pic)" in ln else kinds.get(m.group(1), m.group(1).lower()))
        if kind and kind not in said:
            said.append(kind)
    return " and ".join(said)


def _quarter_turned(lines: list[str], stream_line: str) -> bool:
    """Whether the stream's display matrix (a phone's portrait clip) turns it by 90 or 270 degrees: ffmpeg
    decodes such frames upright, with width and height swapped. (Its size as the stream line gave it read the
    upright 142x250 frames' bytes as 250x142 frames: every frame scrambled, and no error.)"""
    for ln in lines[lines.index(stream_line) + 1:]:
        if re.match(r"\s*(Stream #|Input #|Output #)", ln):
            return False
        m = re.search(r"rotation of (-?[\d.]+) degrees", ln, re.IGNORECASE)
        if m:
            quarter = float(m.group(1)) / 90
            return abs(quarter - round(quarter)) < 1e-3 and round(quarter) % 2 == 1
    return False


def _folder_files(folder: Path) -> list[Path]:
    from ..codec.image_io import is_image_file

    files = sorted(p for p in folder.iterdir() if is_image_file(p))
    if not files:
        raise SaicmError("no images in the frame folder", str(folder))
    return files


def _folder_meta(folder: Path) -> dict:
    p = folder / FRAMES_JSON
    if not p.is_file():
        return {}
    try:
        d = json.loads(p.read_text())
        return d if isinstance(d, dict) else {}
    except (OSError, ValueError, RecursionError):  # (nested past Python's limit: not a file saicm wrote)
        return {}


def _probe_folder(folder: Path) -> ClipInfo:
    from PIL import Image

    from ..codec.image_io import formats_for, oriented_size
    from ..codec.limits import DEFAULT_MAX_PIXELS, pillow_checks_off

    files = _folder_files(folder)
    try:
        # (the frame limit of iter_clip; the formats its frames are read as)
        with pillow_checks_off(DEFAULT_MAX_PIXELS), Image.open(files[0], formats=formats_for(files[0])) as im:
            w, h = oriented_size(im)  # (the frames' size as read: EXIF orientation applied)
    except Exception as e:  # whatever Pillow raises on a damaged file: one line naming it
        raise SaicmError(f"cannot read frame ({e.__class__.__name__}: {e})", str(files[0])) from None
    meta = _folder_meta(folder)
    try:
        fps = Fraction(meta.get("fps", "25"))
    except (ValueError, ZeroDivisionError, TypeError):
        fps = DEFAULT_FPS
    return ClipInfo(width=w, height=h, fps=fps if fps > 0 else DEFAULT_FPS, codec="images")


def iter_clip(path: str | os.PathLike, frames: str | tuple | None = None, size: str | tuple | None = None,
              max_pixels: int | None = None) -> tuple[ClipInfo, int, Iterator[np.ndarray]]:
    """(info of the frames produced, index of the first, generator of (H, W, 3) uint8 frames) for frames
    ``A:B`` of a clip (a video file or a folder of frames), optionally resized to ``(W, H)``.

    The total (frames × width × height) is checked against the video pixel
    limit (:func:`saicm.codec.limits.check_video_pixels`) before reading when
    the range is closed, and as frames arrive otherwise, so an endless stream
    stops with one line instead of filling the memory.
    """
    from ..codec.limits import check_pixels, check_video_pixels

    start, stop = frames if isinstance(frames, tuple) else parse_range(frames)
    size = size if isinstance(size, tuple) or size is None else parse_size(size)
    path = str(path)
    info = probe(path)
    w, h = size or (info.width, info.height)
    check_pixels(h, w, None, what="the clip")
    if stop is not None:
        check_video_pixels(stop - start, h, w, max_pixels, what="the clip")
    elif info.duration:  # (an hour's recording was refused after its first 6.4 GB of frames had been read)
        _check_clip_length(path, info, start, w, h, max_pixels)
    out = ClipInfo(width=w, height=h, fps=info.fps, codec=info.codec, stream=info.stream, sar=info.sar,
                   turned=info.turned, fields=info.fields, duration=info.duration)
    _say_stored(path, info, size is None)
    if os.path.isdir(path):
        first, gen = _folder_frames(Path(path), start, stop, size, max_pixels)
        return out, first, gen
    return out, start, _ffmpeg_frames(path, start, stop, w, h, size is not None, max_pixels, info.stream)


def _check_clip_length(path: str, info: ClipInfo, start: int, w: int, h: int, max_pixels: int | None) -> None:
    """Refuse frames ``start:`` of a clip that holds more than the video pixel limit before any is decoded, saying
    about how many there are and what they would take. The container's duration times the frame rate says whether
    it may (a guess: a variable rate's nominal one, a recording with gaps); its packets, counted without decoding
    (an hour of 1280x720 H.264 in 5 s), say whether it does. Interlaced clips (a packet may be a field) are counted
    as they are read."""
    from ..codec.limits import DEFAULT_MAX_VIDEO_PIXELS, check_video_pixels, whole_number

    limit = DEFAULT_MAX_VIDEO_PIXELS if max_pixels is None else whole_number(max_pixels, "max_pixels")
    if (int(info.duration * info.fps) - start) * w * h <= limit or info.fields:
        return
    packets = _count_packets(path, info.stream)
    if packets is not None and packets - start > 0:
        length = f"{info.duration / 60:.0f} min" if info.duration >= 90 else f"{info.duration:.3g} s"
        check_video_pixels(packets - start, h, w, max_pixels, what="the clip",
                           estimate=f"{length} at {float(info.fps):g} fps" + (f", from frame {start}" if start else ""))


def clip_length(path: str | os.PathLike, frames: str | tuple | None = None, stream: str | None = None) -> int | None:
    """How many frames ``frames`` (``"A:B"``) of a clip will give, as far as is known before they are decoded (for a
    progress bar): B − A, or for an open range of a video file its packets from A on (None where not known).
    ``stream``: the video stream :func:`iter_clip` read (its :class:`ClipInfo`'s; else the clip is probed again)."""
    start, stop = frames if isinstance(frames, tuple) else parse_range(frames)
    if stop is not None:
        return stop - start
    if os.path.isdir(path):
        return None
    packets = _count_packets(str(path), stream or probe(path).stream)
    return packets - start if packets is not None and packets > start else None


def _count_packets(path: str, stream: str) -> int | None:
    """The packets of a clip's video stream, read without decoding them (None where ffmpeg does not say)."""
    try:
        p = subprocess.run([_exe(), "-hide_banner", "-nostdin", "-v", "error", "-nostats", *_input(path), "-map",
                            stream, "-c", "copy", "-f", "null", "-progress", "pipe:1", "-"],
                           capture_output=True, timeout=600)
    except (OSError, subprocess.TimeoutExpired):
        return None
    counts = re.findall(rb"^frame=(\d+)", p.stdout, re.MULTILINE)
    return int(counts[-1]) if p.returncode == 0 and counts else None


def _say_stored(path: str, info: ClipInfo, unsized: bool) -> None:
    """Warn of what a clip's frames are read with as stored, as ffmpeg decodes them: non-square pixels (a camera's
    anamorphic clip, squashed; unless a size is asked for) and interlaced fields (combed where things move)."""
    # (shown: the stored frame widened by the SAR; a quarter-turned clip's frames come turned: its height. A SAR
    # within half a pixel of square, such as the 188:189 of ffmpeg's scale to 63x47, is not worth a word)
    w, h = info.width, info.height
    shown = (w, round(h * info.sar)) if info.turned else (round(w * info.sar), h)
    if shown != (w, h) and unsized:
        saicm_warn(f"{path}: non-square pixels (SAR {info.sar.numerator}:{info.sar.denominator}): its frames are read "
                   f"as stored, {info.width}x{info.height}, and show as {shown[0]}x{shown[1]}; give the size "
                   f"{shown[0]}x{shown[1]} (--size, or CLIP@WxH in saicm eval) to resample them to square pixels")
    if info.fields:
        saicm_warn(f"{path}: interlaced ({info.fields}): each frame is read as coded, its two fields woven together "
                   "(combed edges where things move); deinterlace it first for progressive frames (ffmpeg -i CLIP "
                   "-vf bwdif OUT)")


def read_clip(path: str | os.PathLike, frames: str | tuple | None = None, size: str | tuple | None = None,
              max_pixels: int | None = None) -> Clip:
    """Frames ``A:B`` of a clip (a video file or a folder of frames) in memory (see :func:`iter_clip`):
    ``frames``, ``"A:B"`` or ``(A, B)`` (None: all); ``size``, ``"WxH"`` or ``(W, H)`` to resize to (None: as they
    are); ``max_pixels``, the limit of all the frames' pixels together (None:
    :data:`~saicm.codec.limits.DEFAULT_MAX_VIDEO_PIXELS`)."""
    info, first, gen = iter_clip(path, frames, size, max_pixels)
    start, stop = frames if isinstance(frames, tuple) else parse_range(frames)
    out = _gathered(gen, stop - start if stop is not None else _expected(info, start, max_pixels))
    if out is None:
        raise SaicmError(f"no frames in the range {start}:{'' if stop is None else stop}", str(path))
    if stop is not None and len(out) < stop - start:  # (Python's slices: 290:310 of 300 frames gave 10, unsaid)
        saicm_warn(f"{path}: frames {start}:{stop} asked for, the clip ends at frame {start + len(out)}: "
                   f"{len(out)} frame{'s' if len(out) != 1 else ''} read")
    source = str(path)
    if os.path.isdir(source):
        source = str(_folder_meta(Path(source)).get("source", source))
    return Clip(out, fps=info.fps, first=first, source=source)


def _expected(info: ClipInfo, start: int, max_pixels: int | None) -> int | None:
    """About how many frames an open range ``start:`` of a clip gives, from its duration (a little more, and no more
    than the video pixel limit lets through; None where the clip has no duration)."""
    from ..codec.limits import DEFAULT_MAX_VIDEO_PIXELS

    if not info.duration:
        return None
    fit = (DEFAULT_MAX_VIDEO_PIXELS if max_pixels is None else max_pixels) // (info.width * info.height)
    return max(1, min(int(info.duration * info.fps * 1.02) + 8 - start, fit))


def _gathered(frames: Iterator[np.ndarray], count: int | None) -> np.ndarray | None:
    """The frames in one (N, H, W, 3) array (None: there were none). With about ``count`` expected, each goes into
    its place as it arrives (pages past the frames that came are never touched): gathered and then stacked, a clip
    took twice its size at the peak (12.6 GB for the 6.4 GB of 1,035 frames of 1920x1080). Frames past ``count``
    (a duration that said too few) are gathered and joined on, at twice their size then."""
    if count is None:
        out = list(frames)
        return np.stack(out) if out else None
    arr, n, extra = None, 0, []
    for f in frames:
        if arr is None:
            arr = np.empty((count,) + f.shape, f.dtype)
        if n < count:
            arr[n] = f
        else:
            extra.append(f)
        n += 1
    if arr is None:
        return None
    return np.concatenate([arr, np.stack(extra)]) if extra else arr[:n]


class _Watchdog:
    """``with dog.within(seconds):`` kills ``proc`` if the block takes longer (a read or write of ffmpeg's pipe that a
    hung ffmpeg would block for ever); ``fired`` says whether it did. The limit is read at each block (tests lower
    it between frames)."""

    def __init__(self, proc: subprocess.Popen):
        self.proc, self.seconds, self.fired = proc, 0.0, False

    def within(self, seconds: float) -> "_Watchdog":
        self.seconds = seconds
        return self

    def _fire(self) -> None:
        self.fired = True
        self.proc.kill()

    def __enter__(self) -> "_Watchdog":
        self._timer = threading.Timer(self.seconds, self._fire)
        self._timer.start()
        return self

    def __exit__(self, *exc) -> None:
        self._timer.cancel()


def _ffmpeg_frames(path: str, start: int, stop: int | None, w: int, h: int, resize: bool,
                   max_pixels: int | None, stream: str = "0:v:0") -> Iterator[np.ndarray]:
    from ..codec.limits import check_video_pixels

    filters = []
    if start or stop is not None:
        filters.append(f"select='gte(n\\,{start})" + (f"*lt(n\\,{stop})'" if stop is not None else "'"))
    if resize:
        filters.append(f"scale={w}:{h}:flags=lanczos")
    # frames numbered as they leave: frames of one timestamp (a screen recorder's) were all piped, but the pipe's
    # muxer said "non monotonically increasing dts", read as the clip's damage (below); the frames are the same
    filters.append("setpts=N/TB")
    cmd = [_exe(), "-hide_banner", "-nostdin", "-loglevel", "error", *_input(path), "-map", stream,
           "-vf", ",".join(filters)]
    cmd += ["-fps_mode", "passthrough"]
    if stop is not None:
        cmd += ["-frames:v", str(stop - start)]
    cmd += ["-pix_fmt", "rgb24", "-f", "rawvideo", "-"]
    frame_bytes = w * h * 3
    with _stderr_file() as err:
        try:
            proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=err)
        except OSError as e:
            raise SaicmError(f"cannot run ffmpeg ({e.strerror or e})", path) from None
        n = 0
        stalled = _Watchdog(proc)  # (an ffmpeg that hangs before its last frame: the read blocked for
        # ever, Ctrl-C alone ended it)
        try:
            while True:
                with stalled.within(READ_TIMEOUT):
                    buf = proc.stdout.read(frame_bytes)
                if stalled.fired:
                    raise SaicmError(f"ffmpeg gave no frame within {READ_TIMEOUT:g} s ({n} read): stopped", path)
                if not buf:
                    break
                if len(buf) != frame_bytes:
                    raise SaicmError("ffmpeg stopped in the middle of a frame", path)
                n += 1
                check_video_pixels(n, h, w, max_pixels, what="the clip")
                yield np.frombuffer(buf, np.uint8).reshape(h, w, 3)
            try:
                code = proc.wait(timeout=EXIT_TIMEOUT)
            except subprocess.TimeoutExpired:
                raise SaicmError(f"ffmpeg did not exit within {EXIT_TIMEOUT:g} s of its last frame ({n} read)",
                                 path) from None
            err.seek(0)
            said = err.read()
            if code != 0 and n == 0:
                if b"received no packets" in said:  # (its index read, its data cut before the first whole frame)
                    raise SaicmError("no frame of it decodes: its video data ends before the first complete frame (a "
                                     "recording cut short, or a file still being written?)", path)
                raise SaicmError(f"cannot read video (ffmpeg: {_last_error(said, code)})", path)
            if code < 0:  # killed after some frames (a crash, the OOM killer): the rest of the clip is missing
                raise SaicmError(f"ffmpeg stopped after {n} frames ({_last_error(said, code)})", path)
            if said.strip() or code != 0:  # ffmpeg conceals what it cannot decode: only its errors tell of it
                why = "; ".join([_last_error(said)] * bool(said.strip()) + [f"exit code {code}"] * bool(code))
                saicm_warn(f"{path}: ffmpeg reported errors while decoding ({why}): a damaged "
                           f"clip? {n} frames were read; some may be concealed or missing")
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            proc.stdout.close()


def _folder_frames(folder: Path, start: int, stop: int | None, size, max_pixels
                   ) -> tuple[int, Iterator[np.ndarray]]:
    """Frames of a folder; with frame_N names, ``A:B`` selects by N (no gaps allowed), else by position."""
    from ..codec.limits import check_video_pixels

    files = _folder_files(folder)
    idx = [frame_index(p.name) for p in files]
    numbered = all(i is not None for i in idx)
    stray = [p for i, p in zip(idx, files) if i is None]
    if stray and len(stray) < len(files):  # it would have been taken for frame 0 and renumbered the rest
        raise SaicmError(f"{stray[0].name} is not a numbered frame ({FRAME_PATTERN.format(0)}, …) among numbered "
                         "ones: move it out of the folder", str(folder))
    pairs = sorted(zip(idx, files)) if numbered else list(enumerate(files))
    pairs = [(i, p) for i, p in pairs if i >= start and (stop is None or i < stop)]
    if not pairs:
        raise SaicmError(f"no frames in the range {start}:{'' if stop is None else stop}", str(folder))
    for k in range(1, len(pairs)):
        if pairs[k][0] != pairs[k - 1][0] + 1:
            raise SaicmError(f"frame {pairs[k - 1][0] + 1} is missing", str(folder))

    def gen() -> Iterator[np.ndarray]:
        from PIL import Image

        from ..codec.image_io import check_decode_work, open_unloaded, rgb_pixels
        from ..codec.limits import DEFAULT_MAX_PIXELS, check_pixels, pillow_checks_off

        shape = None
        said: set[str] = set()  # what the image reader warned of, said for the clip's first such frame only
        frame_limit = max(DEFAULT_MAX_PIXELS, max_pixels or 0)  # one frame: at most what the clip may hold
        for i, p in pairs:
            try:
                def check(im, p=p):
                    check_pixels(im.height, im.width, frame_limit, what=f"frame {p.name}")  # before its pixels

                with pillow_checks_off(frame_limit), open_unloaded(p, check) as im:  # (a turned TIFF: from its bytes)
                    check(im)
                    check_decode_work(im, str(p))  # (a JPEG of thousands of scans: as saicm compress refuses it)
                    if shape is None:
                        w, h = size or im.size
                        check_video_pixels(len(pairs), h, w, max_pixels, what="the clip")
                    # read as `saicm compress` reads an image (EXIF orientation applied, 16-bit samples scaled:
                    # convert("RGB") clipped a 16-bit grey frame to white and left a phone's frames on their side)
                    im = Image.fromarray(_frame_pixels(rgb_pixels, im, p, said))
                    if size and im.size != tuple(size):
                        im = im.resize(tuple(size), Image.LANCZOS)
                    a = np.asarray(im)
            except SaicmError:
                raise
            except Exception as e:  # a damaged frame (Pillow's plugins raise many kinds): one line naming it
                raise SaicmError(f"cannot read frame ({e.__class__.__name__}: {e})", str(p)) from None
            if shape is None:
                shape = a.shape
            elif a.shape != shape:
                raise SaicmError(f"frames of different sizes ({p.name} is {a.shape[1]}x{a.shape[0]})", str(folder))
            yield a

    return pairs[0][0], gen()


def _frame_pixels(read, im, path: Path, said: set[str]) -> np.ndarray:
    """``read(im, path)`` (the image reader's pixels of a frame), its warnings about the frame (16-bit samples that
    stay below 4096, …) given for the first frame that has them only: every frame of a clip alike printed one line
    each, a thousand for a thousand frames."""
    import threading
    import warnings

    from ..errors import SaicmWarning

    if threading.current_thread() is not threading.main_thread():
        # (recording swaps the process's warning state for every thread: a service's other threads' warnings would
        # be held and said from here; off the main thread each frame says its own, as any image read does)
        return read(im, str(path))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        out = read(im, str(path))
    for w in caught:
        text = str(w.message)
        kind = text.removeprefix(f"{path}: ")
        if issubclass(w.category, SaicmWarning) and kind != text:
            if kind not in said:
                said.add(kind)
                saicm_warn(f"{text} (said of the first such frame of the clip only)")
        else:
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    return out


# --- writing -------------------------------------------------------------------------------------

@contextmanager
def _stopped_at_once(dest: Path) -> Iterator[None]:
    """SIGTERM (a scheduler's time limit, ``timeout``, a service stopped) unwinds like Ctrl-C while frames or a
    video are written, so that their temporary folder or file goes: it ended the process where it stood, leaving a
    hidden ``.NAME.*.part`` folder of every frame written so far (GBs of an hour's frames) that no rerun removed, and
    said nothing. The line then says that nothing was written."""
    from .._signals import StopRequest

    try:
        with StopRequest(at_once=True):
            yield
    except KeyboardInterrupt:
        raise KeyboardInterrupt(f"interrupted: nothing written to {dest} (written whole or not at all)") from None


def write_png_frames(batches: Iterable[tuple[int, np.ndarray]], dest: str | os.PathLike, first: int = 0,
                     meta: dict | None = None, compress_level: int = 1) -> list[Path]:
    """Write ``(start, (B, H, W, 3) uint8)`` batches as ``frame_%06d.png`` (index = ``first`` + position), and
    ``meta`` (if given) as ``frames.json`` with what was written: ``frames``, the count, and ``range``, ``A:B``
    (0-based source indices, B excluded)."""
    from PIL import Image

    from ..codec.image_io import refuse_file_name_for_folder

    dest = Path(dest)
    refuse_file_name_for_folder(dest, "PNG frames")
    names = []
    with _stopped_at_once(dest), atomic_folder(dest) as tmp:
        for start, batch in batches:
            batch = np.asarray(batch)
            for k in range(batch.shape[0]):
                name = FRAME_PATTERN.format(first + start + k)
                Image.fromarray(batch[k]).save(tmp / name, format="PNG", compress_level=compress_level)
                names.append(dest / name)
        if not names:  # (the folder is not left behind: a retry with the same -o must work)
            raise SaicmError("no frames in that range: nothing written", str(dest))
        if meta is not None:  # (the frames written, in one form whichever command wrote them)
            meta = dict(meta, frames=len(names), range=f"{first}:{first + len(names)}")
            (tmp / FRAMES_JSON).write_text(json.dumps(meta, indent=1) + "\n")
    return names


def write_video(batches: Iterable[tuple[int, np.ndarray]], dest: str | os.PathLike, width: int, height: int,
                fps: Fraction) -> None:
    """A lossless video of the frames (FFV1 RGB in .mkv/.avi/.nut, H.264 RGB -qp 0 in .mp4), written atomically."""
    from .._fs import atomic_path

    dest = Path(dest)
    suffix = dest.suffix.lower()
    if suffix not in LOSSLESS_VIDEO:
        raise SaicmError(f"lossless video output must end with {', '.join(sorted(LOSSLESS_VIDEO))} "
                         "(or give a folder for PNG frames)", str(dest))
    codec, muxer = LOSSLESS_VIDEO[suffix]
    args = ["-c:v", "ffv1", "-level", "3", "-pix_fmt", "gbrp"] if codec == "ffv1" else \
        ["-c:v", "libx264rgb", "-qp", "0", "-preset", "medium", "-pix_fmt", "rgb24"]
    with _stopped_at_once(dest), atomic_path(dest) as tmp, _stderr_file() as err:
        cmd = [_exe(), "-hide_banner", "-nostdin", "-loglevel", "error", "-y", "-f", "rawvideo", "-pix_fmt", "rgb24",
               "-s", f"{width}x{height}", "-r", f"{fps.numerator}/{fps.denominator}", "-i", "-", *args,
               "-f", muxer, str(tmp)]
        try:
            proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=err)
        except OSError as e:
            raise SaicmError(f"cannot run ffmpeg ({e.strerror or e})", str(dest)) from None
        stalled = _Watchdog(proc)  # (a hung ffmpeg that takes no more frames: the write blocked for
        # ever, WRITE_TIMEOUT unmet)
        try:
            for _, batch in batches:
                with stalled.within(WRITE_TIMEOUT):
                    proc.stdin.write(np.ascontiguousarray(batch, dtype=np.uint8).tobytes())
            proc.stdin.close()
            code = proc.wait(timeout=WRITE_TIMEOUT)
        except BrokenPipeError:  # (ffmpeg gone or going: its status says why; one that lingers is killed below)
            try:
                code = proc.wait(timeout=EXIT_TIMEOUT)
            except subprocess.TimeoutExpired:
                raise SaicmError(f"cannot write video (ffmpeg stopped taking frames and did not exit within "
                                 f"{EXIT_TIMEOUT:g} s)", str(dest)) from None
        except subprocess.TimeoutExpired:
            raise SaicmError(f"cannot write video (ffmpeg did not finish within {WRITE_TIMEOUT:g} s of its last "
                             "frame)", str(dest)) from None
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            try:  # after a broken pipe or a failing frame source: close our end too (no unclosed-file warning)
                proc.stdin.close()
            except OSError:
                pass
        if stalled.fired:
            raise SaicmError(f"cannot write video (ffmpeg took no frame within {WRITE_TIMEOUT:g} s)", str(dest))
        if code != 0:
            err.seek(0)
            raise SaicmError(f"cannot write video (ffmpeg: {_last_error(err.read(), code)})", str(dest))
        if os.path.isfile(tmp) and os.path.getsize(tmp) == 0:  # (published as an empty video, "done")
            raise SaicmError(f"cannot write video (ffmpeg {_exe()} exited 0 and wrote nothing)", str(dest))
