"""Training data: random crops from an image folder (optionally with masks).

Images are decoded once and kept in memory as uint8 (the photo corpus is well
under 1 GB), so a training step costs no JPEG decoding, up to a budget
(:func:`image_memory`: half the machine's memory, shared by the processes of a
run); the images beyond it are read from their files as crops are drawn from
them (a folder larger than the memory could not be trained on), with the same
crops. Images smaller than the
crop are upscaled (bicubic) until they fit. A mask folder, when given, holds one
PNG per image with the same relative path and stem; it is cropped and flipped
together with the image.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset

from .._fs import file_sha256, input_files
from .._progress import StatusLines, progress_bar
from ..codec.image_io import is_image_file, read_without_limit_option
from ..engine.parallel import cgroup_memory_limit  # (where it lives: folder jobs read it too)
from ..errors import ImageError, SaicmError
from ..eval.cache import without_cache
from ..masks.job import is_mask_folder, load_mask, made_of, mask_name_clash, mask_path, without_mask_folders


def list_images(root: str | Path) -> list[Path]:
    root = Path(root)
    if root.exists() and not root.is_dir():  # (it said "not found" of an image that is there)
        raise SaicmError("is a file, not a folder of training images", str(root))
    if not root.is_dir():
        raise SaicmError("training data folder not found", str(root))
    if is_mask_folder(root):  # (--data given the mask folder: its black-and-white masks trained as photos, unsaid)
        raise SaicmError("is a mask folder (masks.json), not a folder of training images: give it as --masks, and "
                         "the images it was made of as --data", str(root))
    files = without_cache(root, without_mask_folders(root, input_files(root, is_image_file), "training"), "training")
    if not files:
        raise SaicmError("no images in training data folder", str(root))
    return files


def image_memory() -> int:
    """Bytes of decoded images a training process keeps in memory: half the machine's memory (or of the memory limit
    of its cgroup, a container's or a Slurm job's, when lower: :func:`cgroup_memory_limit`) over the processes of the
    run on it (``LOCAL_WORLD_SIZE``, torchrun's), or 4 GiB where the memory cannot be read."""
    import os

    try:
        total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):
        total = 8 << 30
    limit = cgroup_memory_limit()
    if limit is not None:  # (a job given 16 GB of a 512 GB node kept 256 GB of images: killed by the OOM killer)
        total = min(total, limit)
    try:
        local = max(1, int(os.environ.get("LOCAL_WORLD_SIZE", "1")))
    except ValueError:
        local = 1
    return max(0, total // 2 // local)


class RandomCrops(Dataset):
    """An endless stream of random crops; ``len`` is nominal and the index ignored.

    Each item draws an image uniformly at random (torch's RNG, so seeds and
    resumes control it), then a random crop and a random horizontal flip.
    """

    def __init__(self, root, patch: int = 256, masks=None, epoch_size: int = 10**9, progress: bool = True,
                 memory: int | None = None):
        roots = [Path(root)] if isinstance(root, (str, Path)) else [Path(r) for r in root]
        mask_roots = [None] * len(roots) if not masks else (
            [Path(masks)] if isinstance(masks, (str, Path)) else [Path(m) for m in masks])
        if len(mask_roots) != len(roots):
            raise SaicmError(f"{len(roots)} data folders but {len(mask_roots)} mask folders")
        self.files = []
        pairs = []
        listing = hashlib.sha256()  # the data fingerprint (see `fingerprint`)
        for r, mr in zip(roots, mask_roots):
            files = list_images(r)
            clash = mask_name_clash([f.relative_to(r) for f in files]) if mr is not None else None
            if clash:
                raise SaicmError(f"{clash[0]} and {clash[1]} would read one mask ({mask_path(clash[0])}): rename one "
                                 "and make its mask again", str(r))
            for f in files:
                pairs.append((r, mr, f))
                self.files.append(f)
        self.patch = patch
        self.epoch_size = epoch_size
        #: decoded images (None: read from its file when drawn, ``self._files[k]``) and their masks
        self.images: list[np.ndarray | None] = []
        self.masks: list[np.ndarray | None] = []
        self._files: dict[int, tuple[Path, Path | None, Path, str, str | None]] = {}
        budget = image_memory() if memory is None else memory
        sources: dict[Path, dict[str, set[str]]] = {}  # each mask folder's manifests: what each mask was made of
        first_of: dict[str, Path] = {}  # the first image of each content (by its file's SHA-256)
        copies: list[tuple[Path, Path]] = []  # (an image, the earlier one it is a byte-for-byte copy of)
        empty: list[Path] = []  # images whose masks are all off
        small: list[tuple[int, int, int, Path]] = []  # (short side, width, height, file) of those upscaled
        bad: list[str] = []  # (a scraped folder's damaged files: all named at once, not one per run)
        bar = progress_bar(pairs, desc="loading images", progress=progress, unit="img")
        # off a terminal (nohup, `2> train.log`): a status line at most every LINE_SECONDS (reading a large folder
        # took many minutes before the first step's line, with nothing said)
        lines = StatusLines("train", bool(progress) and bar.disable)
        for k, (r, mr, f) in enumerate(bar):
            if k:
                lines.say(f"loading images: {k}/{len(pairs)}")
            try:
                rgb = read_without_limit_option(f, "train").rgb
                self._check_fit(rgb.shape, f)
            except ImageError as e:
                bad.append(str(e))
                continue
            try:  # (a missing, unreadable or mis-sized mask stopped the load at the first: one rerun per mask)
                m = self._load_mask(r, mr, f) if mr is not None else None
                if m is not None and m.shape != rgb.shape[:2]:
                    raise ImageError(f"mask is {m.shape[1]}x{m.shape[0]}, image is {rgb.shape[1]}x{rgb.shape[0]}",
                                     str(f))
            except SaicmError as e:
                bad.append(str(e))
                continue
            digest = file_sha256(f)
            if mr is not None:  # (an image replaced under its name, same size: its old mask, cropped with it in silence)
                if mr not in sources:
                    sources[mr] = made_of(mr)
                was = sources[mr].get(f.relative_to(r).as_posix())
                if was and digest not in was:
                    bad.append(f"{f}: its mask ({mr / mask_path(f.relative_to(r))}) was made of other bytes under this "
                               "name (the file was replaced, or saved again, since): run the saicm masks command that "
                               "made the folder again (it remakes the changed ones)")
                    continue
            if digest in first_of:
                copies.append((f, first_of[digest]))
            else:
                first_of[digest] = f
            # (a name's bytes as on disk: one that is not UTF-8, or any non-ASCII name in an ASCII locale, holds
            # Python's U+DC80–U+DCFF, which .encode() refused: the run stopped in a traceback)
            line = f"{roots.index(r)}\t{f.relative_to(r).as_posix()}\t{digest}"
            listing.update(line.encode("utf-8", "surrogateescape"))
            mask_digest = file_sha256(mr / mask_path(f.relative_to(r))) if mr is not None else None
            if mask_digest is not None:
                listing.update(f"\t{mask_digest}".encode())
            listing.update(b"\n")
            if m is not None and not m.any():
                empty.append(f)
            if min(rgb.shape[:2]) < patch:
                small.append((min(rgb.shape[:2]), rgb.shape[1], rgb.shape[0], f))
            rgb, m = self._fit(rgb, m)
            size = rgb.nbytes + (m.nbytes if m is not None else 0)
            if size <= budget:
                budget -= size
                self.images.append(rgb)
                self.masks.append(m)
            else:  # (beyond the budget: read again when drawn)
                self._files[len(self.images)] = (r, mr, f, digest, mask_digest)
                self.images.append(None)
                self.masks.append(None)
        if len(bad) == 1:
            raise ImageError(bad[0])
        if bad:
            raise ImageError(f"{len(bad)} of {len(pairs)} training images cannot be used"
                             f"{' (or their masks)' if any(m is not None for m in mask_roots) else ''}: "
                             + "; ".join(bad))
        # how many images the run trains on, off a terminal too (the bar, on one, ends at the count; the status lines
        # stopped at the last one said, "loading images: 1/12", or said nothing in a load under LINE_SECONDS)
        lines.say(f"{len(pairs)} training images read", force=True)
        #: what the crops are drawn from, by content: the number of images and the SHA-256 of one line per image,
        #: in the order they are drawn by index (``FOLDER_INDEX\tRELATIVE/PATH\tSHA256_OF_FILE[\tSHA256_OF_MASK]``):
        #: the same folders give the same fingerprint wherever they are, one changed, added or renamed image another
        self.fingerprint = {"images": len(pairs), "sha256": listing.hexdigest()}
        if empty:  # (a COCO image without annotations, a segmenter that found nothing: with the default
            # --off-mask-weight 0 every crop of it trains the rate alone, pulling the model toward coding nothing; unsaid)
            from ..errors import warn as saicm_warn

            saicm_warn(f"{len(empty)} of {len(pairs)} training images have an empty mask (all off): their pixels weigh "
                       "only as much as --off-mask-weight gives off-mask pixels (at 0, their crops train the rate "
                       "alone): " + ", ".join(map(str, empty[:3])) + (" …" if len(empty) > 3 else ""))
        if copies:  # (a folder merged from two scrapes, or a photo copied beside itself: each copy drawn as often as
            # an image of its own, in silence; the fingerprint hashed every file already)
            from ..errors import warn as saicm_warn

            saicm_warn(f"{len(copies)} of {len(pairs)} training images are byte-for-byte copies of another (each "
                       "copy is drawn as often as an image of its own): "
                       + ", ".join(f"{a} = {b}" for a, b in copies[:3]) + (" …" if len(copies) > 3 else ""))
        if small:
            from ..errors import warn as saicm_warn

            # (named, the smallest first: a 1x1 or 10x500 thumbnail among the photos became flat or smeared crops,
            # and the count alone did not say which files to look at)
            small.sort(key=lambda t: (t[0], str(t[3])))
            saicm_warn(f"{len(small)} of {len(pairs)} training images are smaller than --patch {patch} and are "
                       "upscaled to it (crops of them are not at the images' own scale): "
                       + ", ".join(f"{f} ({w}x{h})" for _, w, h, f in small[:3]) + (" …" if len(small) > 3 else ""))

    @staticmethod
    def _load_mask(root: Path, mask_root: Path, f: Path) -> np.ndarray:
        rel = mask_path(f.relative_to(root))
        p = mask_root / rel
        if not p.is_file():
            raise SaicmError(f"no mask for {rel} in {mask_root}", str(p))
        return load_mask(p).astype(np.uint8)

    def _fitted_size(self, h: int, w: int) -> tuple[int, int]:
        """(width, height) of an image whose short side is below the patch, upscaled to it."""
        scale = self.patch / min(h, w)
        return max(self.patch, round(w * scale)), max(self.patch, round(h * scale))

    def _check_fit(self, shape, path: Path) -> None:
        """Refuse an image that upscaling to the patch would make huge: a 1x60000 banner of 259 bytes became a
        15,360,000x256 image of 11.8 GB at --patch 256 (three of them: a MemoryError traceback under 8 GB)."""
        from ..codec.limits import resolve_max_pixels

        h, w = shape[:2]
        if min(h, w) >= self.patch:
            return
        fw, fh = self._fitted_size(h, w)
        limit = resolve_max_pixels(None)
        if fw * fh > limit:
            raise ImageError(f"is {w}x{h}: upscaled to --patch {self.patch} on its short side it would be {fw}x{fh} "
                             f"({fw * fh:,} pixels, above the limit of {limit:,}): too thin to train on", str(path))

    def _fit(self, rgb: np.ndarray, m: np.ndarray | None):
        h, w = rgb.shape[:2]
        s = min(h, w)
        if s >= self.patch:
            return rgb, m
        size = self._fitted_size(h, w)
        rgb = np.asarray(Image.fromarray(rgb).resize(size, Image.BICUBIC))
        if m is not None:
            m = np.asarray(Image.fromarray(m * 255).resize(size, Image.NEAREST)) > 0
            m = m.astype(np.uint8)
        return rgb, m

    def __len__(self) -> int:
        return self.epoch_size

    @property
    def read_as_drawn(self) -> int:
        """How many images are read from their files when drawn (beyond the memory budget), not kept."""
        return len(self._files)

    def _read(self, k: int) -> tuple[np.ndarray, np.ndarray | None]:
        """Image ``k`` (and its mask) as it was when the run began, read from its file."""
        r, mr, f, digest, mask_digest = self._files[k]
        for path, was in ((f, digest), (None if mr is None else mr / mask_path(f.relative_to(r)), mask_digest)):
            if path is None:
                continue
            try:  # (its mask too: a mask changed meanwhile was cropped with the image in silence)
                if file_sha256(path) != was:
                    raise ImageError("changed since the run began (its crops would mix two pictures): train on a "
                                     "folder that stays as it is", str(path))
            except OSError as e:
                raise ImageError(f"cannot read it again ({e.strerror or e}): it was there when the run began",
                                 str(path)) from None
        try:
            rgb = read_without_limit_option(f, "train").rgb
        except OSError as e:
            raise ImageError(f"cannot read it again ({e.strerror or e}): it was there when the run began", str(f)) \
                from None
        return self._fit(rgb, self._load_mask(r, mr, f) if mr is not None else None)

    def __getitem__(self, i: int):
        k = int(torch.randint(0, len(self.images), ()))
        img, m = self.images[k], self.masks[k]
        if img is None:
            img, m = self._read(k)
        h, w = img.shape[:2]
        p = self.patch
        top = int(torch.randint(0, h - p + 1, ()))
        left = int(torch.randint(0, w - p + 1, ()))
        x = torch.from_numpy(img[top:top + p, left:left + p].copy()).permute(2, 0, 1)
        x = x.float().div_(255.0)
        mask = None
        if m is not None:
            mask = torch.from_numpy(m[top:top + p, left:left + p].copy())[None].float()
        if torch.rand(()) < 0.5:
            x = x.flip(-1)
            mask = mask.flip(-1) if mask is not None else None
        return (x, mask) if mask is not None else (x, torch.ones(1, p, p))
