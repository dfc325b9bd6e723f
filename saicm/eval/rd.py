"""Sweeps: a codec over an image folder at several qualities, with an optional task.

For every quality and image: encode (real bytes), decode, PSNR and MS-SSIM
against the original; decodes come from the :class:`DecodeCache` when present.
Then the task (if any) runs on all decoded images of that quality and its
metrics join the point; the same task on the originals is the ``reference``.
"""

from __future__ import annotations

import collections
import math
import time
from pathlib import Path
from typing import Iterable, Mapping, Protocol, Sequence

import numpy as np
from PIL import Image

from .. import __version__
from .._fs import input_files
from .._progress import StatusLines, progress_bar
from .._signals import StopRequest
from ..codec.image_io import is_image_file
from .bootstrap import spec as bootstrap_spec
from .cache import DecodeCache, image_hash, without_cache
from .codecs import Codec
from .metrics import ms_ssim, psnr
from .results import new_result


class Task(Protocol):
    """What a sweep asks of a task: metrics (0–100 scale for AP-like ones) on a set of images (each a mapping of
    name → image: an image sweep's decodes are read back from its cache as they are asked for, not a dict)."""

    name: str

    def evaluate(self, images: Mapping[str, Image.Image], originals: Mapping[str, Image.Image]) -> dict: ...


#: bytes of decoded pixels an :class:`ImageFolder` keeps from its first read (sorted by name, until they are
#: spent): the rest is read again whenever the sweep asks for it (once per rate point). A folder that fits (the 24
#: photos of photos/test take 49 MiB, COCO128 103 MiB) is read once, as before; a 5,000-image folder is not held.
HELD_PIXELS = 256 << 20


def load_rgb_folder(folder: str | Path, limit: int | None = None, only: str | None = None,
                    command: str = "eval", held: int | None = None,
                    cache: str | Path | None = None) -> Mapping[str, Image.Image]:
    """The images of a folder (name → RGB image, sorted by name: an :class:`ImageFolder`, which keeps the first
    ``held`` bytes of pixels, default :data:`HELD_PIXELS`, and reads the others each time they are asked for), or
    a clip's frames (:func:`~saicm.video.evaluate.load_clips`).
    ``limit``: the first ``limit`` images only; ``only``: that one image (its name in the folder) only, or none.
    Neither reads the other images (``--limit 5`` of a folder of thousands decoded every image first, and failed
    on a damaged one it would not have used). ``command``: the saicm command that reads them, as an image above
    the pixel limit is refused (:func:`~saicm.codec.image_io.read_without_limit_option`). ``cache``: the decode
    cache's root, whose files are no test images when it lies inside the folder (:func:`without_cache`)."""
    from ..codec.limits import OversizedImage
    from ..errors import ImageError, SaicmError
    from ..video.evaluate import load_clips

    try:
        clips = load_clips(str(folder))  # a video file or a folder of videos (CLIP#A:B@WxH): {clip: Clip}
    except OversizedImage as e:  # (it said "raise it with --max-pixels", an option eval does not have)
        raise ImageError(f"{e.said}: saicm {command} has no --max-pixels: take fewer frames or a smaller size "
                         "(CLIP#A:B@WxH, docs/video.md)", e.path or str(folder)) from None
    if clips is not None:
        return clips
    folder = Path(folder)
    if not folder.exists():
        raise SaicmError("no such folder", str(folder))
    if not folder.is_dir():  # (one photo: it said "no images found" of an image)
        raise SaicmError("is a file, not a folder of images (nor a video clip: docs/video.md)", str(folder))
    from ..masks.job import is_mask_folder, without_mask_folders

    if is_mask_folder(folder):  # (training refuses it as --data; a codec may be measured on masks on purpose)
        from ..errors import warn

        warn(f"{folder} is a mask folder (masks.json): its masks (and previews) are coded and scored as the test "
             "images")
    files = without_cache(folder, without_mask_folders(folder, input_files(folder, is_image_file), "test"), "test",
                          cache)
    if not files:
        raise SaicmError("no images found", str(folder))
    if only is not None:
        files = [p for p in files if p.relative_to(folder).as_posix() == only]
    if limit is not None:
        files = files[:limit]
    from ..codec.image_io import read_without_limit_option

    # Read as `saicm compress` reads them (EXIF orientation applied, 16-bit and float samples scaled to 8 bits):
    # the sweep measures the picture a user codes. A damaged image is not skipped (the set is the result): every
    # unreadable one is named, in one error, before any is coded.
    lines, bad, kept = {}, [], {}
    budget = HELD_PIXELS if held is None else held
    for p in files:
        name = p.relative_to(folder).as_posix()
        try:
            img = Image.fromarray(read_without_limit_option(p, command).rgb)
        except ImageError as e:
            bad.append(str(e))
            continue
        lines[name] = _fingerprint_line(name, img)
        if 3 * img.width * img.height <= budget:  # (a sweep read every image again at each rate point: +50 % CPU
            budget -= 3 * img.width * img.height   # for one whose decodes were all cached)
            kept[name] = img
    if len(bad) == 1:
        raise ImageError(bad[0])
    if bad:
        raise ImageError(f"{len(bad)} of {len(files)} images cannot be read: " + "; ".join(bad))
    return ImageFolder({p.relative_to(folder).as_posix(): p for p in files}, lines, command, kept)


class ImageFolder(Mapping):
    """An image folder as :func:`load_rgb_folder` reads it: name → RGB image (sorted by name), each read from its
    file when asked for, so that a sweep holds one image at a time (it held every image: several GB for a
    5,000-image folder), except those ``held`` (as first read, up to :data:`HELD_PIXELS`). Its images were read
    once when it was made (each readable; their fingerprint lines kept); one that changed on disk since is refused
    when read again, as the sweep's numbers would mix two pictures."""

    def __init__(self, paths: dict[str, Path], lines: dict[str, str], command: str = "eval",
                 held: dict[str, Image.Image] | None = None):
        self._paths, self._lines, self._command = paths, lines, command
        self._held = held or {}

    def __getitem__(self, name: str) -> Image.Image:
        from ..codec.image_io import read_without_limit_option
        from ..errors import ImageError

        path = self._paths[name]
        if name in self._held:  # (the pixels the run began with: what the fingerprint says)
            return self._held[name]
        try:
            img = Image.fromarray(read_without_limit_option(path, self._command).rgb)
        except ImageError as e:  # (an ImageError with its path, as train's images read again say it)
            raise ImageError(f"{e.message} (it was readable when the run began: changed meanwhile)",
                             e.path or str(path)) from None
        if _fingerprint_line(name, img) != self._lines[name]:
            raise ImageError("changed while the run read it (other pixels than at its start: the results would mix "
                             "two pictures; run again on a folder that stays as it is)", str(path))
        return img

    def __contains__(self, name) -> bool:  # (Mapping's own reads the image: `name in folder` decoded and hashed it)
        return name in self._paths

    def __iter__(self):
        return iter(self._paths)

    def __len__(self) -> int:
        return len(self._paths)

    def fingerprint(self) -> str:
        """:func:`dataset_fingerprint` of these images, without reading them again."""
        import hashlib

        return hashlib.sha256("".join(self._lines[n] for n in sorted(self._lines)).encode("utf-8",
                                                                                         "surrogateescape")).hexdigest()


def _code_one(codec: Codec, img: Image.Image, q, cache: DecodeCache,
              here: dict | None = None, ihash: str | None = None) -> tuple[Image.Image, dict, dict | None]:
    """(decode, info, made): ``made`` None when coded now, else what the cache entry says of the run that made it:
    ``timings`` where info's timings were measured when not ``here`` ("elsewhere": another ``machine()`` or thread
    count; "unrecorded": an entry of saicm 0.29.0 or before, which did not record it; else None), ``by`` the saicm
    version that decoded it (None: 0.32.0 or before, which did not record it). ``ihash``: ``image_hash(img)``, when
    the caller has it."""
    ihash = ihash or image_hash(img)
    hit = cache.get(q, ihash)
    if hit is not None and _usable_hit(hit, img):
        dec, info = hit
        made_on, by = info.pop("machine", None), info.pop("saicm_version", None)
        timings = None if made_on == here else "unrecorded" if made_on is None else "elsewhere"
        return dec, info, {"timings": timings, "by": by if isinstance(by, str) else None}
    t = time.perf_counter()
    data = codec.encode(img, q)
    te = time.perf_counter() - t
    t = time.perf_counter()
    dec = codec.decode(data)
    td = time.perf_counter() - t
    if dec.size != img.size:
        from ..errors import SaicmError

        raise SaicmError(f"codec {codec.name} returned {dec.size} for an image of {img.size}")
    a, b = np.asarray(img), np.asarray(dec)
    size = codec.size(data)
    info = {"bytes": size, "bpp": 8.0 * size / (img.width * img.height),
            "psnr": psnr(a, b), "ms_ssim": ms_ssim(a, b), "encode_s": te, "decode_s": td}
    cache.put(q, ihash, dec, dict(info, machine=here, saicm_version=__version__))
    return dec, info, None


#: what a cache entry's side file must hold, each a number: the sweep sums and averages them
ENTRY_NUMBERS = ("bytes", "bpp", "psnr", "ms_ssim", "encode_s", "decode_s")


def _usable_hit(hit: tuple, img: Image.Image) -> bool:
    """Whether a cache entry (decode, info) can stand for coding ``img``: a decode of its size and a side file
    holding a number for each of :data:`ENTRY_NUMBERS`. Any other entry (one edited, copied over another, or written
    by something else) is a miss, made again and written over: a decode of another size was handed to the task in
    silence (a 64x48 black entry for a 1024x768 photo scored 0 % faces kept where it was 100 %), and a side file of
    valid JSON but another shape (``{}``, ``[]``, a string for a number) was a traceback."""
    dec, info = hit
    if not isinstance(info, dict) or getattr(dec, "size", None) != img.size:
        return False
    return all(isinstance(info.get(k), (int, float)) and not isinstance(info.get(k), bool) for k in ENTRY_NUMBERS)


class _Decodes(Mapping):
    """A rate point's decodes, as its task reads them (name → image, in the order coded): read back from the cache
    when it holds them, so that a sweep holds one decode at a time (it held every decode of the point for the task:
    memory grew with the folder, a decoded image per image); held in memory when there is no cache to read them
    from (``--no-cache``, or one that cannot be written)."""

    def __init__(self, cache: DecodeCache, quality):
        self._cache, self._quality = cache, quality
        self._keys: dict[str, str | None] = {}
        self._held: dict[str, Image.Image] = {}

    def add(self, name: str, key: str, dec: Image.Image) -> None:
        if self._cache.enabled and self._cache.writable:  # (its entry was written, or found there)
            self._keys[name] = key
        else:
            self._keys[name] = None
            self._held[name] = dec

    def __getitem__(self, name: str) -> Image.Image:
        key = self._keys[name]
        if key is None:
            return self._held[name]
        hit = self._cache.get(self._quality, key)
        if hit is None:
            from ..errors import SaicmError

            raise SaicmError(f"the decode of {name} at quality {self._quality} went from the cache while the run "
                             "used it (another process removed it): run again", str(self._cache.dir))
        return hit[0]

    def __contains__(self, name) -> bool:
        return name in self._keys

    def __iter__(self):
        return iter(self._keys)

    def __len__(self) -> int:
        return len(self._keys)


def _mean(rows: list[dict], key: str) -> float | None:
    vals = [r[key] for r in rows if r.get(key) is not None and not math.isnan(r[key])]
    return float(np.mean(vals)) if vals else None


def warn_exact_decodes(codec_name: str, quality, psnrs: Sequence[float]) -> None:
    """Warn when decodes equal their originals: an infinite mean is not JSON, so the point's PSNR is saved as
    null, and plots and BD-rates leave it out."""
    exact = sum(1 for v in psnrs if v == math.inf)
    if exact:
        from ..errors import warn as saicm_warn

        saicm_warn(f"{codec_name} quality {quality}: {exact} of {len(psnrs)} images decoded exactly (PSNR "
                   "infinite); the point's mean PSNR is written as null")


def dataset_fingerprint(images: dict[str, Image.Image]) -> str:
    """The SHA-256 of an image set as a sweep reads it: one line ``NAME\\tWIDTHxHEIGHT\\tSHA256_OF_RGB_PIXELS`` per
    image, by sorted name; the same pictures under the same names give the same fingerprint wherever the folder is
    (a results file named its dataset by a path alone: a changed, added or re-encoded image went unseen)."""
    import hashlib

    if isinstance(images, ImageFolder):
        return images.fingerprint()
    h = hashlib.sha256()
    for name in sorted(images):
        h.update(_fingerprint_line(name, images[name]).encode("utf-8", "surrogateescape"))
    return h.hexdigest()


def _fingerprint_line(name: str, img: Image.Image) -> str:
    """``NAME\\tWIDTHxHEIGHT\\tSHA256_OF_RGB_PIXELS\\n`` (:func:`dataset_fingerprint`)."""
    import hashlib

    # (an RGB image's tobytes() is its (H, W, 3) pixels as they are: one copy, where convert, asarray and tobytes
    # made three, 60 % of the time, 6 % of a sweep whose decodes are cached)
    pixels = hashlib.sha256((img if img.mode == "RGB" else img.convert("RGB")).tobytes()).hexdigest()
    return f"{name}\t{img.width}x{img.height}\t{pixels}\n"


def start_result(codec: Codec, dataset: str, task: Task | None, originals: dict[str, Image.Image]) -> dict:
    """A new results record of ``codec`` on ``originals`` (name → image, frames for clips), before any point:
    the task's bootstrap draws of the images and its score of the originals (the reference)."""
    res = new_result(codec.name, codec.config(), dataset, task.name if task else "psnr", len(originals))
    if isinstance(originals, ImageFolder) or (originals and all(isinstance(v, Image.Image)
                                                                for v in originals.values())):
        res["dataset_sha256"] = dataset_fingerprint(originals)
    if getattr(task, "bootstrap", 0):
        res["bootstrap"] = bootstrap_spec(originals, task.bootstrap)
    if task is not None:
        res["reference"] = task.evaluate(originals, originals)
    return res


def say_point(lines: StatusLines, codec: str, qualities: Sequence, point: dict) -> None:
    """The status line of a finished rate point (off a terminal: ``saicm eval: CODEC quality Q done (2/7): …``)."""
    psnr = point.get("psnr")
    lines.say(f"{codec} quality {point['quality']} done ({list(qualities).index(point['quality']) + 1}/"
              f"{len(qualities)}): {point['bpp']:.4f} bpp" + (f", PSNR {psnr:.2f} dB" if psnr is not None else ""),
              force=True)


def rate_points(codec: Codec, qualities: Sequence | None) -> list:
    """The rate points of a sweep: ``qualities`` as a list (None: the codec's defaults). A string, the command
    line's ``--qualities 1,3``, is refused in one line: it was read a character at a time ("quality must be a whole
    number, not '1'"; ``"10,30"``: "lists a rate point twice (1,0,,,3,0)")."""
    from ..errors import ArgumentError

    if isinstance(qualities, (str, bytes)):
        raise ArgumentError(f"qualities must be a list of rate points, such as [1, 3], not the text {qualities!r} "
                            "(the command line's --qualities)")
    if isinstance(qualities, np.generic):
        qualities = qualities.item()
    if qualities is not None and not isinstance(qualities, Iterable):  # (sweep(codec, images, 50): a TypeError)
        raise ArgumentError(f"qualities must be a list of rate points, such as [{qualities!r}], not one "
                            f"{type(qualities).__name__}")
    # (NumPy's numbers as Python's: an array's truth value raised, and an int64 was not written to the results JSON)
    points = [q.item() if isinstance(q, np.generic) else q for q in (() if qualities is None else qualities)]
    return points or list(codec.default_qualities)


def check_qualities(codec: Codec, qualities: Sequence) -> None:
    """Every quality of a sweep refused (one line) before any is coded: ``30,101`` coded a folder at 30, then
    refused 101; a clip sweep fitted every clip first."""
    for q in qualities:
        codec.check_quality(q)


def sweep(codec: Codec, images: dict[str, Image.Image], qualities: Sequence | None = None,
          task: Task | None = None, cache: DecodeCache | None = None, dataset: str = "",
          progress: bool = True) -> dict:
    """Run the sweep and return one results dict (schema in :mod:`saicm.eval.results`).

    ``codec``: a :class:`~saicm.eval.codecs.Codec` (:func:`~saicm.eval.codecs.get_codec`); ``images``: name → PIL
    image (a dict, or what :func:`load_rgb_folder` returns, clips included); ``qualities``: the rate points (None:
    the codec's defaults); ``task``: the machine task measured (:func:`~saicm.eval.tasks.sweeps.make_task`; None:
    PSNR and MS-SSIM only); ``cache``: a :class:`~saicm.eval.cache.DecodeCache` (None: nothing is cached);
    ``dataset``: the name the results record for the images; ``progress``: report progress (a bar on a terminal).
    """
    from ..video.evaluate import is_clips, sweep_clips

    if is_clips(images):  # clips: video codecs, or image codecs frame by frame (saicm.video.evaluate)
        return sweep_clips(codec, images, qualities, task, cache, dataset, progress)
    if getattr(codec, "is_video", False):
        from ..errors import SaicmError

        raise SaicmError(f"{codec.name} codes clips: --dataset must be a video file or a folder of videos")
    qualities = rate_points(codec, qualities)
    if len(set(qualities)) != len(qualities):
        from ..errors import SaicmError

        raise SaicmError(f"--qualities lists a rate point twice ({','.join(map(str, qualities))})")
    check_qualities(codec, qualities)
    cache = cache or DecodeCache(None, codec.name, {})
    with _StopAfterImage(cache) as stop:
        try:
            return _sweep(codec, images, qualities, task, cache, dataset, progress, stop)
        except KeyboardInterrupt as e:
            if e.args:  # (a message of the caller's own: as it is)
                raise
            kept = (f"the decodes made so far are cached in {cache.dir}: the same command goes on from them"
                    if cache.enabled and cache.writable else "nothing is kept (no cache)")
            raise SweepInterrupted(f"interrupted{stop.where}: {kept}") from None


class SweepInterrupted(KeyboardInterrupt):
    """A sweep stopped by Ctrl-C, SIGTERM or SIGUSR1/2: its message says where, and what the cache keeps."""


class _StopAfterImage(StopRequest):
    """While a sweep runs, the first Ctrl-C (SIGINT), SIGTERM or SIGUSR1/2 (a scheduler's warning) stops it after
    the image in progress, whose decode is then cached (a --refine encode or a slow VVC preset takes minutes an
    image; SIGTERM ended the process where it stood, with no word and the image lost, and left its half-written
    cache entry behind); a Ctrl-C after it stops at once. Outside an image (the task model, whose results are not
    cached, the reference), or without a cache to keep the image, the first signal stops at once: there is nothing
    to wait for."""

    def __init__(self, cache: DecodeCache):
        super().__init__("stopping after the image in progress (its decode is cached)")
        self.coding = False
        self.where = ""
        self._cache = cache

    def _handle(self, signum, frame) -> None:
        # (without a cache to keep it, --no-cache or one that cannot be written, the image is not waited for either)
        if not (self.coding and self._cache.enabled and self._cache.writable) and not self.requested:
            self.requested = True
            raise KeyboardInterrupt
        super()._handle(signum, frame)


def _sweep(codec: Codec, images: dict[str, Image.Image], qualities: list, task: Task | None, cache: DecodeCache,
           dataset: str, progress: bool, stop: _StopAfterImage) -> dict:
    stop.where = " before the first image" + (" (in the task model on the originals)" if task is not None else "")
    # (on a terminal only: into a log file, its updates were one long line of carriage returns)
    # (with a task, each image counts once more at each point, scored, and once on the originals, the reference: the
    # task model's time was outside the count, so the bar showed nothing while the reference was made, stood at 100 %
    # with no time left while the last point's task model ran, and the time left it showed was that of the encodes
    # alone, half of a JPEG sweep's on COCO images); the rate is the run's mean (smoothing 0), as tqdm's moving
    # average swung with each point's task model between twice and a fifth of the time left
    units = len(images) * (2 * len(qualities) + 1 if task is not None else len(qualities))
    bar = progress_bar(total=units, desc=codec.name, unit="img", smoothing=0, progress=progress)
    # (off a terminal, nohup or a log file: a line per quality and, within a long one, at most every 30 s; eight
    # minutes of a sweep of 3,000 images printed nothing)
    lines = StatusLines("eval", bool(progress) and bar.disable)
    if task is not None:  # (tens of seconds on COCO128 with nothing said, off a terminal)
        lines.say(f"{codec.name}: {task.name} on the {len(images)} originals (the reference)", force=True)
    try:
        res = start_result(codec, dataset, task, images)
        if task is not None:
            bar.update(len(images))
        _points(codec, images, qualities, task, cache, res, bar, lines, stop)
    finally:  # (stopped: the bar's line ends before the message)
        bar.close()
    res["points"].sort(key=lambda p: p["bpp"])
    return res


def _points(codec: Codec, images: dict[str, Image.Image], qualities: list, task: Task | None, cache: DecodeCache,
            res: dict, bar, lines: StatusLines, stop: _StopAfterImage) -> None:
    from .._provenance import machine
    from ..errors import SaicmError
    from ..errors import warn as saicm_warn
    from .._progress import time_left

    here, timed, versions = machine(), {"elsewhere": 0, "unrecorded": 0}, collections.Counter()
    # (the units of the coding and the task at each point, as the bar counts them after the reference: the status
    # lines off a terminal say the run's time left, as the bar does on one)
    units = len(images) * (2 * len(qualities) if task is not None else len(qualities))
    done, started = 0, time.monotonic()
    for q in qualities:
        rows, decoded = [], _Decodes(cache, q)
        for i, (name, img) in enumerate(images.items(), 1):
            stop.where = f" at {codec.name} quality {q}, image {i} of {len(images)}"
            stop.coding = True
            try:
                key = image_hash(img) if task is not None else None
                dec, info, made = _code_one(codec, img, q, cache, here, key)
            except SaicmError:
                if stop.requested:  # (an ffmpeg of the same process group, stopped by the same signal)
                    raise KeyboardInterrupt from None
                raise
            finally:
                stop.coding = False
            if stop.requested:
                stop.where = f" after {codec.name} quality {q}, image {i} of {len(images)}"
                bar.update(1)
                raise KeyboardInterrupt
            if task is not None:  # (its input; without one, a decode is measured and dropped)
                decoded.add(name, key, dec)
            if made and made["timings"]:
                timed[made["timings"]] += 1
            if made and made["by"] != __version__:
                versions[made["by"]] += 1
            rows.append(info)
            res["per_image"].setdefault(name, []).append({"quality": q, **info})
            bar.update(1)
            done += 1
            lines.say(f"{codec.name} quality {q}: {i}/{len(images)} images"
                      + time_left(done, units, time.monotonic() - started))
        point = {"quality": q, "bytes": int(sum(r["bytes"] for r in rows))}
        for key in ("bpp", "psnr", "ms_ssim", "encode_s", "decode_s"):
            point[key] = _mean(rows, key)
        warn_exact_decodes(codec.name, q, [r["psnr"] for r in rows])
        if task is not None:
            stop.where = f" in the task model at {codec.name} quality {q}"
            point.update(task.evaluate(decoded, images))
            bar.update(len(images))
            done += len(images)
        res["points"].append(point)
        say_point(lines, codec.name, qualities, point)
    # (a cached entry's encode_s and decode_s are those of the run that made it: under this run's `machine` they
    # passed for this machine's and thread count's, e.g. SAICM_THREADS=2 gave the figures timed with 1)
    res["timings_from_cache"] = timed["elsewhere"] + timed["unrecorded"]
    if timed["elsewhere"]:  # (entries of 0.29.0 and before, unrecorded, are counted, not warned of at every run)
        saicm_warn(f"{timed['elsewhere']} of {len(images) * len(qualities)} encodes' timings (encode_s, decode_s) come "
                   "from the cache, measured by an earlier run on another machine or thread count: not this run's "
                   "`machine`; --no-cache (or another --cache) times them here")
    res["decodes_from_other_versions"] = sum(versions.values())
    if versions:  # (the key is the codec's weights and settings, not saicm's version: a fixed decoder stays unseen)
        # (an entry without a version is one of 0.32.0 or before, or of a development tree still saying 0.32.0: "made
        # by another saicm than this 0.32.0 (6 by saicm 0.32.0 or before)" contradicted itself to an upgrading user)
        by = ", ".join(f"{n} by saicm {v}" if v else f"{n} by a saicm that did not record its version (0.32.0 or "
                       "before)" for v, n in sorted(versions.items(), key=str))
        saicm_warn(f"{sum(versions.values())} of {len(images) * len(qualities)} decodes come from the cache, not "
                   f"recorded as made by this saicm {__version__} ({by}); --no-cache (or another --cache) makes them "
                   f"here, or remove {cache.dir} to make this codec's decodes again (the other codecs' stay)")


def rd_sweep(codec: Codec, images: dict[str, Image.Image], qualities: Sequence | None = None,
             dataset: str = "", progress: bool = True) -> dict:
    """PSNR-only sweep without a cache (the human-vision RD benchmark)."""
    return sweep(codec, images, qualities, dataset=dataset, progress=progress)
