"""Masks from COCO annotations (polygons and RLE, via pycocotools).

Two uses, one reader:

* :meth:`CocoObjects.union` (``--source coco``, Object-ICM): the union of all
  annotated instances (crowd regions included); the region-learning loss
  weighs only those pixels.
* :meth:`CocoObjects.labels` (``--source coco-edges``, an SA-ICM mask-source
  variant): the instances painted into a segment map exactly as SAM's masks
  are (larger first, see :func:`~saicm.masks.edges.paint_masks`), whose edges are then the
  object outlines drawn by people, in place of SAM's automatic masks.

Images are matched to annotations by file name: the entry whose ``file_name`` (``/`` or ``\\`` between folders)
shares the most trailing folders with the image's path, so that ``a/x.jpg`` and ``b/x.jpg`` listed as such each
get their own; an entry of another folder is taken only when it is the one of that name. Two entries of one name
that the image's path does not tell apart are refused for that image, named. An image no entry names is matched
by its stem (``x.png``, a lossless copy of the dataset's ``x.jpg``), as ``saicm eval`` matches it.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from ..errors import SaicmError
from .edges import paint_order


def _parts(fn) -> tuple[str, ...]:
    """An annotation's ``file_name`` as path parts (``/`` or Windows' ``\\`` between folders; ``.`` dropped)."""
    from ..eval.tasks.coco import file_name

    return tuple(q for q in file_name(fn).replace("\\", "/").split("/") if q not in ("", "."))


def _stored_size_if_turned(path) -> tuple[int, int] | None:
    """(height, width) as stored of an image that an EXIF orientation turns or mirrors as saicm reads it, else None."""
    from PIL import Image

    try:
        with Image.open(path) as img:
            return (img.height, img.width) if img.getexif().get(0x0112) in range(2, 9) else None
    except Exception:  # noqa: BLE001 - (a broken EXIF block: read as stored)
        return None


def _stem(name: str) -> str:
    return name.rsplit(".", 1)[0] if "." in name[1:] else name


class CocoObjects:
    def __init__(self, annotations: str | Path):
        p = Path(annotations)
        if not p.is_file():
            raise SaicmError("annotation file not found", str(p))
        import contextlib
        import io
        import json

        from pycocotools.coco import COCO

        from ..eval.tasks.coco import check_dataset

        try:
            # (JSON is UTF-8 in any locale: COCO(path) read it in the locale's encoding)
            data = json.loads(p.read_bytes())
        except Exception as e:  # noqa: BLE001 - malformed JSON of any kind (nested too deep: a RecursionError)
            raise SaicmError(f"not a COCO annotation file ({type(e).__name__}: {e})", str(p)) from None
        # (a polygon of NaN or huge coordinates, an RLE of a huge size: pycocotools' rasteriser crashed the process)
        check_dataset(data, str(p), scored=False, masks=True)
        try:
            with contextlib.redirect_stdout(io.StringIO()):
                self.coco = COCO()
                self.coco.dataset = data
                self.coco.createIndex()
        except Exception as e:  # noqa: BLE001 - malformed JSON of any kind
            raise SaicmError(f"not a COCO annotation file ({type(e).__name__}: {e})", str(p)) from None
        self.annotations = str(p)
        self._said_turned = False
        import hashlib

        self.sha256 = hashlib.sha256(p.read_bytes()).hexdigest()
        # base name -> [(the file_name's parts, entry)]: sub-folders' images of one name each find their own entry
        self.by_name: dict[str, list] = {}
        self.by_stem: dict[str, list] = {}
        for im in self.coco.imgs.values():
            parts = _parts(im["file_name"])
            if parts:
                self.by_name.setdefault(parts[-1], []).append((parts, im))
                self.by_stem.setdefault(_stem(parts[-1]), []).append((parts, im))

    def settings(self) -> dict:
        """What the masks depend on: the annotations' content (their path as typed named one file by two
        spellings, and a file changed in place kept its old masks)."""
        return dict(annotations_sha256=self.sha256)

    def entry(self, path: Path) -> dict:
        """The annotation file's image entry of the image at ``path`` (SaicmError naming it when none or several)."""
        want = Path(os.path.abspath(path)).parts
        cands = self.by_name.get(want[-1], [])
        if not cands:  # (x.png, a lossless copy of the dataset's x.jpg, by its stem, as eval matches it)
            want = want[:-1] + (_stem(want[-1]),)
            cands = [(p[:-1] + (_stem(p[-1]),), im) for p, im in self.by_stem.get(want[-1], [])]
        if not cands:
            raise SaicmError("image not in the annotation file", str(path))

        def rank(parts):  # (every folder of the entry's name at the image's path; how many trailing parts agree)
            n = 0
            while n < min(len(parts), len(want)) and parts[-1 - n] == want[-1 - n]:
                n += 1
            return n == len(parts), n

        best = max(rank(p) for p, _ in cands)
        top = [(p, im) for p, im in cands if rank(p) == best]
        if len(top) > 1:
            names = sorted({"/".join(_parts(im["file_name"])) for _, im in top})
            ids = ", ".join(str(im["id"]) for _, im in top[:5])
            if len(names) == 1:
                raise SaicmError(f"the annotation file lists this image {len(top)} times (file_name {names[0]!r}, "
                                 f"image ids {ids}): keep one entry, or merge their annotations", str(path))
            raise SaicmError(f"{len(top)} images of the annotation file fit it by name "
                             f"({', '.join(map(repr, names[:5]))}) and its path tells none of them: name them in the "
                             "annotations by their sub-folders in the image folder", str(path))
        return top[0][1]

    def matched_otherwise_before_0_32(self, path: Path) -> bool:
        """Whether saicm 0.31.0 and before, which matched an image by its base name alone (the last-listed entry of
        that name), took another entry for the image at ``path`` than :meth:`entry` takes (or one it refuses): a mask
        folder of theirs holds another image's mask for it."""
        from ..eval.tasks.coco import file_name

        if getattr(self, "_before_0_32", None) is None:
            self._before_0_32 = {Path(file_name(im["file_name"])).name: im for im in self.coco.imgs.values()}
        old = self._before_0_32.get(Path(path).name)
        if old is None or len(self.by_name.get(Path(path).name, ())) < 2:
            return False
        try:
            return self.entry(path) is not old
        except SaicmError:
            return True

    def rles(self, path: Path, shape: tuple[int, int]) -> list[dict]:
        """The compressed RLE of every annotated instance of the image at ``path`` (a few bytes per outline, where a
        decoded mask is H·W bytes: a 12 MP image of 400 instances held 9 GB of them at once)."""
        im = self.entry(path)
        stored = _stored_size_if_turned(path)  # (H, W) of an image its EXIF orientation turns or mirrors, else None
        if (im["height"], im["width"]) != tuple(shape):
            raise SaicmError(f"annotations are for {im['width']}x{im['height']}, image is {shape[1]}x{shape[0]}"
                             + (" (turned by its EXIF orientation, as saicm reads every image: annotations of the "
                                "picture as stored do not fit it; save it upright without the tag, or annotate it "
                                "upright)" if stored == (im["height"], im["width"]) else ""), str(path))
        if stored == tuple(shape) and not self._said_turned:  # (turned by 180° or mirrored: no size tells)
            from ..errors import warn

            self._said_turned = True
            warn(f"{path} is turned by its EXIF orientation, as saicm reads every image: its annotations are taken as "
                 "describing the turned picture; those of the picture as stored (as pycocotools and tools that ignore "
                 "the tag see it) give masks off their objects (said of the first such image alone)")
        anns = self.coco.loadAnns(self.coco.getAnnIds(imgIds=[im["id"]], iscrowd=None))
        return [self.coco.annToRLE(a) for a in anns]

    def union(self, path: Path, shape: tuple[int, int]) -> tuple[np.ndarray, int]:
        """Union mask (H, W) bool and the number of instances (their RLEs merged, then decoded once)."""
        from pycocotools import mask as mask_utils

        rles = self.rles(path, shape)
        if not rles:
            return np.zeros(shape, bool), 0
        return mask_utils.decode(mask_utils.merge(rles, intersect=False)).astype(bool), len(rles)

    def labels(self, path: Path, shape: tuple[int, int]) -> tuple[np.ndarray, int]:
        """Segment map (0 = background) with the instances painted larger first, and their number (decoded one at a
        time, in :func:`~saicm.masks.edges.paint_masks`' order: their areas are read off the RLEs)."""
        from pycocotools import mask as mask_utils

        rles = self.rles(path, shape)
        labels = np.zeros(shape, np.int32)
        for k, i in enumerate(paint_order([int(mask_utils.area(r)) for r in rles]), start=1):
            labels[mask_utils.decode(rles[i]).astype(bool)] = k
        return labels, len(rles)
