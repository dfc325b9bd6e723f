"""``saicm masks``: one binary mask per image of a folder, written once.

Layout of the output folder::

    OUT/masks.json                  source and settings (a re-run must match them), the saicm release
    OUT/<rel path>.png              1-bit PNG, same relative path and stem as the image
    OUT/manifest-<i>-of-<n>.jsonl   one line per finished image of shard i/n
    OUT/previews/<rel path>.jpg     overlays, with --preview

Masks are written atomically and an image whose PNG exists is skipped, so a
killed run resumes where it stopped; each manifest line records the SHA-256 of
the image file its mask was made of, and an image changed since is made again. ``--shard i/n`` takes every n-th image
starting at i (0-based), so n processes or array-job tasks split a dataset
without talking to each other; their manifests are separate files.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
from PIL import Image

from .._fs import (OutputExists, atomic_path, ensure_dir, file_sha256, input_files, no_replace, remove_stale_parts,
                   write_atomic)
from .._progress import StatusLines, progress_bar
from ..codec.image_io import is_image_file, read_without_limit_option
from ..errors import SaicmError
from . import OBJECT_SOURCES, SOURCES  # noqa: F401 — re-exported for callers of job
from .edges import overlay, segment_edges


@dataclass
class MaskSpec:
    """How masks are made; recorded in ``masks.json``."""

    source: str
    settings: dict
    edge_method: str = "boundary"
    edge_width: int = 1

    @property
    def kind(self) -> str:
        return "objects" if self.source in OBJECT_SOURCES else "edges"

    def as_dict(self) -> dict:
        return dict(format="saicm-masks/1", source=self.source, kind=self.kind, settings=self.settings,
                    edge_method=self.edge_method if self.kind == "edges" else None,
                    edge_width=self.edge_width)


def parse_shard(text: str | None) -> tuple[int, int]:
    if not text:
        return 0, 1
    try:
        i, n = (int(v) for v in text.split("/"))
    except ValueError:
        raise SaicmError(f"--shard wants I/N (e.g. 0/4), got {text!r}") from None
    if n < 1 or not 0 <= i < n:
        raise SaicmError(f"--shard {text}: need 0 <= I < N")
    return i, n


def make_source(source: str, alpha: float = 0.78, annotations=None, sam_checkpoint=None,
                sam_model: str = "vit_b", sam_options: dict | None = None, regions_options: dict | None = None,
                device: str = "auto"):
    """A callable ``(rgb, path) -> (label map or mask, n_segments)`` and its settings."""
    if source == "regions":
        from .regions import RegionSegmenter

        try:
            seg = RegionSegmenter(alpha=alpha, **(regions_options or {}))
        except ValueError as e:
            raise SaicmError(f"--alpha: {e}") from None

        def run(rgb, path):
            labels = seg(rgb)
            return labels, int(len(np.unique(labels)))

        return run, seg.settings()
    if source == "sam":
        from .sam import SamSegmenter

        seg = SamSegmenter(kind=sam_model, checkpoint=sam_checkpoint, alpha=alpha, options=sam_options, device=device)

        def run(rgb, path):
            labels = seg(rgb)
            return labels, int(labels.max())

        return run, seg.settings()
    if source in ("coco", "coco-edges"):
        if annotations is None:
            raise SaicmError(f"--source {source} needs --annotations FILE (COCO instances JSON)")
        from .coco import CocoObjects

        objs = CocoObjects(annotations)
        read = objs.union if source in OBJECT_SOURCES else objs.labels

        def run(rgb, path):
            return read(path, rgb.shape[:2])

        run.matched_otherwise_before_0_32 = objs.matched_otherwise_before_0_32
        return run, objs.settings()
    raise SaicmError(f"unknown mask source {source!r} (known: {', '.join(SOURCES)})")


def _check_spec(out: Path, spec: MaskSpec, overwrite: bool, sharded: bool = False) -> None:
    """Refuse a folder whose masks were made otherwise (unless ``overwrite``), then record ``spec`` in masks.json.

    A folder of mask PNGs without masks.json (made by something else) is refused too: its files would count as
    done. ``overwrite`` in one shard of several may redo that shard, not change the folder's settings: the other
    shards' masks would keep the old ones under the new label."""
    from .. import __version__

    p = out / "masks.json"
    want = spec.as_dict()
    record = json.dumps({**want, "saicm": __version__}, indent=2) + "\n"  # (which release made the folder: kept)
    existed = p.is_file()
    if existed:
        try:
            have = json.loads(p.read_text())
        except (OSError, json.JSONDecodeError):
            if not overwrite:
                raise SaicmError("unreadable masks.json; use --overwrite to start again", str(p)) from None
            have = None
        if isinstance(have, dict):  # (the release that made it is no setting: ≤ 0.29 recorded none)
            have = {k: v for k, v in have.items() if k != "saicm"}
            if want.get("source") == "sam" and have.get("source") == "sam" and isinstance(have.get("settings"), dict):
                from .sam import without_defaults  # (≤ 0.30 recorded an option given at its default value)

                have["settings"] = without_defaults(have["settings"])
        if have == want:
            return
        if _same_as_before_0_18(have, want):  # the annotations recorded by path, the same content: now by content
            write_atomic(p, lambda t: t.write_text(record))
            return
        if _sam_record_without_checkpoint(have, want):  # (saicm <= 0.30.0: which weights made them is not known)
            from ..errors import warn

            warn(f"{p}: the folder's record names no SAM checkpoint (made by saicm 0.30.0 or before): its masks are "
                 "taken as made with this one, unchecked; the record is left as it was")
            return
        if not overwrite:
            raise SaicmError(f"the folder holds masks made with other settings ({_differences(have, want)}); use "
                             "another -o or --overwrite", str(out))
        if sharded:
            raise SaicmError("--overwrite with --shard would relabel the whole folder while the other shards keep "
                             "masks of the old settings: remake it without --shard, or empty it and run every "
                             "shard", str(out))
    elif (not overwrite or sharded) and any("previews" not in q.relative_to(out).parts for q in out.rglob("*.png")):
        raise SaicmError("the folder holds mask images but no masks.json (not made by saicm masks, so their source "
                         "is unknown): use another -o, or --overwrite without --shard to remake them", str(out))
    try:
        # a new folder's record is written only where none appeared meanwhile: shards of an array job start together,
        # and two started with other settings both found no record, both wrote one and the folder mixed their masks
        with no_replace(None if existed else p):
            write_atomic(p, lambda t: t.write_text(record))
    except OutputExists:
        _check_spec(out, spec, False, sharded)  # (another shard's, just written: it must match)


def _differences(have, want: dict) -> str:
    """What the folder's record ``have`` holds that this run's ``want`` does not, as ``edge_width 1, not 3`` (the
    source and its settings alone named nothing when the edge method or width differed)."""
    if not isinstance(have, dict):
        return f"a record of another kind: {have!r}"[:200]
    out = []
    for k in dict.fromkeys([*want, *have]):
        a, b = have.get(k), want.get(k)
        if isinstance(a, dict) and isinstance(b, dict):
            out += [f"{kk} {a.get(kk)!r}, not {b.get(kk)!r}" for kk in dict.fromkeys([*b, *a]) if a.get(kk) != b.get(kk)]
        elif a != b:
            out.append(f"{k} {a!r}, not {b!r}")
    return "; ".join(out)


def _sam_record_without_checkpoint(have, want: dict) -> bool:
    """Whether ``have`` (a SAM folder's record of saicm <= 0.30.0, which named the variant but not its weights) holds
    the settings of ``want`` but for the checkpoint's SHA-256."""
    if not isinstance(have, dict) or not isinstance(have.get("settings"), dict) or want.get("source") != "sam":
        return False
    hs = have["settings"]
    ws = {k: v for k, v in want["settings"].items() if k != "checkpoint_sha256"}
    return ("checkpoint_sha256" not in hs and hs == ws
            and {k: v for k, v in have.items() if k != "settings"} == {k: v for k, v in want.items() if k != "settings"})


def _same_as_before_0_18(have, want: dict) -> bool:
    """Whether ``have`` (a masks.json of saicm < 0.18, whose COCO settings named the annotations by path) records
    the settings of ``want`` (which names them by their SHA-256): the file it names has that content."""
    import hashlib

    if not isinstance(have, dict) or not isinstance(have.get("settings"), dict):
        return False
    hs, ws = have["settings"], want["settings"]
    if set(hs) != {"annotations"} or set(ws) != {"annotations_sha256"}:
        return False
    if {k: v for k, v in have.items() if k != "settings"} != {k: v for k, v in want.items() if k != "settings"}:
        return False
    try:
        return hashlib.sha256(Path(hs["annotations"]).read_bytes()).hexdigest() == ws["annotations_sha256"]
    except (OSError, TypeError):
        return False


def mask_path(rel: Path) -> Path:
    """The mask of the image at ``rel`` (relative to its folder), relative to the mask folder: the one rule the
    masks job writes by and training and video read by."""
    return rel.with_suffix(".png")


def mask_name_clash(rels: list[Path]) -> tuple[Path, Path] | None:
    """Two images whose masks would be the same file (``x.jpg`` and ``x.png``; or ``Cat.jpg`` and ``cat.png`` on a
    file system that ignores case, as macOS's and Windows' do: a mask folder must read the same there), or None."""
    seen: dict[str, Path] = {}
    for r in rels:
        m = str(mask_path(r)).casefold()
        if m in seen:
            return seen[m], r
        seen[m] = r
    return None


def run_masks(src: str | Path, out: str | Path, spec: MaskSpec, make: Callable, *, shard=(0, 1),
              preview: bool = False, overwrite: bool = False, progress: bool = True) -> dict:
    """Write the masks of every image in ``src`` (recursively) under ``out``; returns a summary."""
    src, out = Path(src), Path(out)
    if not src.is_dir():
        raise SaicmError("is a file: masks are made for a folder of images" if src.is_file() else
                         "input folder not found", str(src))
    if out.resolve() == src.resolve():  # the photos would be taken for their own masks
        raise SaicmError("is the input folder: write the masks to another folder", str(out))
    from ..codec.image_io import refuse_file_name_for_folder

    refuse_file_name_for_folder(out, "masks")  # (-o masks.png made a folder so named, where compress refuses it)
    inside = out.resolve().is_relative_to(src.resolve())  # masks and previews must not become inputs
    files = input_files(src, lambda p: is_image_file(p)
                        and not (inside and p.resolve().is_relative_to(out.resolve())))
    if not files:
        raise SaicmError("no images in input folder", str(src))
    clash = mask_name_clash([f.relative_to(src) for f in files])
    if clash:  # x.jpg and x.png would share x.png, and training would give both that one mask
        raise SaicmError(f"{clash[0]} and {clash[1]} would share one mask ({mask_path(clash[0])}): rename one",
                         str(src))
    created = not out.exists()
    ensure_dir(out)
    try:
        return _run(src, out, files, spec, make, shard, preview, overwrite, progress)
    except ModuleNotFoundError:  # an extra not installed (coding-only): no half-made folder is left behind
        if created and not any(q.suffix == ".png" for q in out.rglob("*")):
            import shutil

            shutil.rmtree(out, ignore_errors=True)
        raise


def _run(src: Path, out: Path, files: list[Path], spec: MaskSpec, make: Callable, shard, preview: bool,
         overwrite: bool, progress: bool) -> dict:
    _check_spec(out, spec, overwrite, sharded=shard[1] > 1)
    i, n = shard
    mine = files[i::n]
    manifest = out / f"manifest-{i}-of-{n}.jsonl"
    if overwrite:  # --overwrite redoes the shard: its old lines go too
        manifest.unlink(missing_ok=True)
    listed = {} if overwrite else _listed(out)
    stale = _StaleParts()
    done = skipped = changed = misread = 0
    fractions: list[float] = []
    failures: list[str] = []
    bar = progress_bar(mine, desc=f"masks {spec.source} {i}/{n}", unit="img",
                       progress=progress)  # (None: on a terminal only, as compress draws it)
    # off a terminal (nohup, `2> masks.log`): a status line at most every LINE_SECONDS (SAM on a folder ran for hours
    # with nothing said until the summary)
    lines = StatusLines("masks", bool(progress) and bar.disable)
    with _LazyLines(manifest) as log:  # made at its first line: a rerun with nothing to do leaves no empty file
        for k, f in enumerate(bar):
            if k:
                lines.say(f"{k}/{len(mine)} images, {done} written, {skipped} already done, {len(failures)} failed")
            rel = f.relative_to(src)
            dest = out / mask_path(rel)
            seen = listed.get(rel.as_posix(), set())
            version = _image_version(f)  # (before the bytes are read: a write in between is seen at the next rerun)
            known = {v: d for d, v in seen if v is not None and d is not None}
            # (a file as it was when its line was written is not read again: a rerun over a finished COCO folder
            # read every image's bytes, 18 GB, to hash them)
            made_of = {d for d, _ in seen}
            exists = dest.is_file() and not overwrite
            # (a mask of saicm 0.31.0 or before that the annotations' entry of another image of its name made: kept by
            # a rerun in silence, and trained on)
            remade = exists and made_of == {None} and getattr(make, "matched_otherwise_before_0_32", None) is not None \
                and make.matched_otherwise_before_0_32(f)
            # (a mask that only lines of 0.31.0 and before name, trusted whatever the image holds, needs no hash: every
            # rerun of such a folder read all its images' bytes for nothing)
            digest = known[version] if version in known else \
                None if exists and made_of == {None} and not remade else _image_digest(f)
            if remade:
                misread += 1
            elif exists:
                if digest is None or not made_of or digest in made_of or made_of == {None}:
                    skipped += 1
                    if preview and not _preview_path(out, rel).is_file():  # (a kill between the mask and its preview)
                        try:
                            _write_preview(out, rel, read_without_limit_option(f, "masks").rgb, load_mask(dest),
                                           stale)
                        except SaicmError as e:
                            failures.append(str(e))
                    if not made_of:  # written by a run killed before its line: the line, from the mask
                        try:
                            frac = float(load_mask(dest).mean())
                        except SaicmError:
                            continue
                        log.write(json.dumps(dict(image=rel.as_posix(), mask=mask_path(rel).as_posix(),
                                                  fraction=round(frac, 6), segments=None, seconds=None,
                                                  image_sha256=digest, image_stat=version)) + "\n")
                    continue
                changed += 1  # (the image was replaced under its name since its mask was made: made again)
            t0 = time.perf_counter()
            try:
                rgb = read_without_limit_option(f, "masks").rgb
                result, count = make(rgb, f)
            except SaicmError as e:
                failures.append(str(e))
                continue
            except (MemoryError, RuntimeError) as e:  # one huge image must not end the folder (a compress job goes
                # on alike); SAM's PyTorch says so in a RuntimeError ("DefaultCPUAllocator: can't allocate memory")
                from .._process import is_out_of_memory

                if not is_out_of_memory(e):
                    raise
                failures.append(f"{f}: out of memory making its mask")
                continue
            mask = result if spec.kind == "objects" else segment_edges(result, spec.edge_method, 1)
            if spec.edge_width > 1:
                from .edges import dilate

                mask = dilate(mask, spec.edge_width)
            dest.parent.mkdir(parents=True, exist_ok=True)
            stale.remove(dest)  # (a killed run's hidden .NAME.*.part.png beside it, one more per kill)
            with atomic_path(dest) as tmp:
                Image.fromarray(mask.astype(bool)).convert("1").save(tmp, format="PNG", optimize=True)
            if preview:
                _write_preview(out, rel, rgb, mask, stale)
            frac = float(mask.mean())
            fractions.append(frac)
            # (names with "/" on every system: a mask folder made on Windows resumes on Linux)
            log.write(json.dumps(dict(image=rel.as_posix(), mask=mask_path(rel).as_posix(), fraction=round(frac, 6),
                                      segments=int(count), seconds=round(time.perf_counter() - t0, 3),
                                      image_sha256=digest, image_stat=version)) + "\n")
            done += 1
    if changed:
        from ..errors import warn

        which = f"{changed} images changed since their masks were" if changed > 1 else \
            "1 image changed since its mask was"
        warn(f"{which} made (other content under the same name): made again")
    if misread:
        from ..errors import warn

        warn(f"{misread} mask{'s' if misread > 1 else ''} made by saicm 0.31.0 or before of the annotations of another "
             "image of the same file name (another folder's entry): made again")
    return dict(images=len(mine), written=done, skipped=skipped, failed=failures,
                mean_fraction=float(np.mean(fractions)) if fractions else None,
                manifest=str(manifest) if manifest.is_file() else None)


class _StaleParts:
    """The temporary files that killed runs left beside the masks, removed as each mask is written: each folder is
    listed once per run (:func:`~saicm._fs.remove_stale_parts` lists the folder at every call: called for each mask
    of a flat folder of N images, it read N directory entries N times, quadratic: COCO's 118k-image folder)."""

    def __init__(self):
        self._owners: dict[Path, set[str]] = {}  # folder -> the names its temporary files were for, when first seen

    def remove(self, dest: Path) -> None:
        from .._fs import _short, stale_part_owners

        owners = self._owners.get(dest.parent)
        if owners is None:
            owners = self._owners[dest.parent] = stale_part_owners(dest.parent)
        if _short(dest.name) in owners:
            remove_stale_parts(dest)
            owners.discard(_short(dest.name))


def _preview_path(out: Path, rel: Path) -> Path:
    return out / "previews" / rel.with_suffix(".jpg")


def _write_preview(out: Path, rel: Path, rgb: np.ndarray, mask: np.ndarray, stale: _StaleParts | None = None) -> None:
    """``--preview``'s picture of one mask over its image (a resumed run makes those a kill lost)."""
    pv = _preview_path(out, rel)
    pv.parent.mkdir(parents=True, exist_ok=True)
    (stale or _StaleParts()).remove(pv)
    with atomic_path(pv) as tmp:
        Image.fromarray(overlay(rgb, mask.astype(bool))).save(tmp, format="JPEG", quality=90)


def _listed(out: Path) -> dict[str, set]:
    """The images that the folder's manifests (every shard's) have a line for, each with the pairs (SHA-256 its mask
    was made of, :func:`_image_version` of the file then) of the last line of each manifest for it (None for what a
    line does not hold: saicm 0.31.0's lines hold neither)."""
    names: dict[str, set] = {}
    for m in out.glob("manifest-*-of-*.jsonl"):
        try:
            lines = m.read_text().splitlines()
        except (OSError, UnicodeDecodeError):
            continue
        last: dict[str, tuple] = {}
        for line in lines:
            try:
                entry = json.loads(line)
                name, digest, stat = str(entry["image"]), entry.get("image_sha256"), entry.get("image_stat")
            except (ValueError, KeyError, TypeError, AttributeError):  # a line cut by a kill
                continue
            ok = isinstance(stat, list) and len(stat) == 4 and all(type(v) is int for v in stat)
            for n in (name, name.replace("\\", "/")):  # (as written; Windows' lines before 0.24.0)
                last[n] = (digest if isinstance(digest, str) else None, tuple(stat) if ok else None)
        for n, pair in last.items():
            names.setdefault(n, set()).add(pair)
    return names


def is_mask_folder(folder: Path) -> bool:
    """Whether ``folder`` holds a mask folder's ``masks.json`` (``saicm masks``'s, or the ``{"kind": ...}`` of masks
    made otherwise: docs/training.md)."""
    try:
        spec = json.loads((Path(folder) / "masks.json").read_text())
    except (OSError, ValueError):
        return False
    return isinstance(spec, dict) and ("kind" in spec or str(spec.get("format", "")).startswith("saicm-masks"))


def without_mask_folders(root: Path, files: list[Path], what: str) -> list[Path]:
    """``files`` (listed under ``root``) less those in mask folders below ``root``, said in a warning: `saicm masks
    photos -o photos/masks`, which this job allows (its own output is no input of it), left the masks and their
    previews among the images of photos/ that training (and eval) read, as photos, unsaid. ``what``: whose images
    ("training", "test")."""
    root = Path(root)
    folders: set[Path] = set()
    for d in {f.parent for f in files}:  # (each folder once, not each file's parents: 8.6 s for 100,000 files)
        while d not in folders and d != root and d.is_relative_to(root):
            folders.add(d)
            d = d.parent
    found = sorted(p for p in folders if is_mask_folder(p))
    inner = [p for p in found if not any(p != q and p.is_relative_to(q) for q in found)]  # (outermost)
    if not inner:
        return files
    from ..errors import warn

    kept = [f for f in files if not any(f.is_relative_to(m) for m in inner)]
    warn(f"{len(files) - len(kept)} files of {len(inner)} mask folder{'s' if len(inner) > 1 else ''} (masks.json) "
         f"inside the {what} data folder left out (masks and their previews are not {what} images): "
         f"{', '.join(map(str, inner[:3]))}{' …' if len(inner) > 3 else ''}")
    return kept


def made_of(out: str | Path) -> dict[str, set[str]]:
    """The SHA-256s of the image files that the mask folder's manifests say each mask was made of, by the image's
    relative path (``a/b.jpg``), for the images whose lines record one (saicm 0.31.0's do not): what training checks
    its images against."""
    return {n: {d for d, _ in pairs if d} for n, pairs in _listed(Path(out)).items() if any(d for d, _ in pairs)}


def _image_version(path: Path) -> tuple[int, int, int, int] | None:
    """:func:`~saicm.models.catalog.file_version` of an image file (the same, its bytes are those hashed when its
    manifest line was written: a file replaced under its name, even with its modification time kept, moves its change
    time or inode), or None when it cannot be read."""
    from ..models.catalog import file_version

    try:
        return file_version(path)
    except OSError:
        return None


def _image_digest(path: Path) -> str | None:
    """The SHA-256 of an image file's bytes (what its manifest line records its mask was made of), or None when it
    cannot be read (reading it for its mask then says why)."""
    try:
        return file_sha256(path)
    except OSError:
        return None


class _LazyLines:
    """A file opened for appending at its first line (and flushed after each)."""

    def __init__(self, path: Path):
        self.path, self._f = path, None

    def __enter__(self):
        return self

    def write(self, line: str) -> None:
        if self._f is None:
            with open(self.path, "ab+") as f:  # a line cut by a kill must not swallow the next one
                f.seek(0, os.SEEK_END)
                cut = f.tell() > 0 and (f.seek(-1, os.SEEK_END), f.read(1))[1] != b"\n"
            self._f = open(self.path, "a")
            if cut:
                self._f.write("\n")
        self._f.write(line)
        self._f.flush()

    def __exit__(self, *exc) -> None:
        if self._f is not None:
            self._f.close()


#: share of pixels between off and on that a mask may hold: a mask saved as JPEG, resized or blurred has 1–25 %
#: (measured on edge and object masks), a photo 89 % or more
MASK_GREY_SHARE = 0.5


def load_mask(path: str | Path, size: tuple[int, int] | None = None) -> np.ndarray:
    """A mask image (a PNG of ``saicm masks``) as a bool array, or a one-line error naming the file.

    ``size`` (width, height): resized to it first when it differs, an output pixel on when any mask pixel in
    its area is (edges survive downscaling)."""
    from ..codec.image_io import open_image, upright

    # the checks and one-line errors of every image input, turned upright as images are (a flipped mask of a phone's
    # picture was caught by no size check)
    img = upright(open_image(path))
    grey = np.asarray(img.convert("L"))
    if img.mode in ("RGBA", "LA", "La", "RGBa", "PA") or "transparency" in img.info:
        # (a mask exported with its on and off in the alpha channel, off transparent white: its grey levels were all
        # on, and the whole image weighed as edges, unsaid; off transparent black is off in its grey levels too, and
        # read as before: a grey PNG whose black is its transparent value, white on a transparent black layer)
        see_through = np.asarray(img.convert("RGBA"))[..., 3] < 255
        if np.any(see_through & (grey > int(grey.max()) / 2)):  # (transparent, and on as its grey levels read)
            raise SaicmError(f"not a mask: {100 * np.count_nonzero(see_through) / see_through.size:.0f} % of its "
                             "pixels are transparent, not all of them black (a mask is black and white: 0 off, one "
                             "value on, as `saicm masks` writes; its on and off in the alpha channel are not read)",
                             str(path))
    top = int(grey.max())
    between = np.count_nonzero((grey > 0) & (grey < top))
    if between > MASK_GREY_SHARE * grey.size:  # a mask is black and white; thresholding a photo trains on it all
        raise SaicmError(f"not a mask: {100 * between / grey.size:.0f} % of its pixels are grey (a mask is black "
                         "and white: 0 off, one value on, as `saicm masks` writes)", str(path))
    m = grey > top / 2  # on: nearer the on value than off (a JPEG's noise around 0 stays off)
    if size is not None and (m.shape[1], m.shape[0]) != tuple(size):
        m = np.asarray(Image.fromarray(m.astype(np.uint8) * 255).resize(size, Image.BOX)) > 0
    return m
