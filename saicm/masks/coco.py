"""Masks from COCO annotations (polygons and RLE, via pycocotools).

Two uses, one reader:

* :meth:`CocoObjects.union` (``--source coco``, Object-ICM): the union of all
  annotated instances (crowd regions included); the region-learning loss
  weighs only those pixels.
* :meth:`CocoObjects.labels` (``--source coco-edges``, an SA-ICM mask-source
  variant): the instances painted into a segment map exactly as SAM's masks
  are (larger first, see :func:`~saicm.masks.edges.paint_masks`), whose edges are then the
  object outlines drawn by people, in place of SAM's automatic masks.

Images are matched to annotations by file name.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import SaicmError
from .edges import paint_masks


class CocoObjects:
    def __init__(self, annotations: str | Path):
        p = Path(annotations)
        if not p.is_file():
            raise SaicmError("annotation file not found", str(p))
        import contextlib
        import io
        import json

        from pycocotools.coco import COCO

        from ..eval.tasks.coco import check_dataset, file_name

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
        import hashlib

        self.sha256 = hashlib.sha256(p.read_bytes()).hexdigest()
        self.by_name = {Path(file_name(im["file_name"])).name: im for im in self.coco.imgs.values()}

    def settings(self) -> dict:
        """What the masks depend on: the annotations' content (their path as typed named one file by two
        spellings, and a file changed in place kept its old masks)."""
        return dict(annotations_sha256=self.sha256)

    def instances(self, path: Path, shape: tuple[int, int]) -> list[np.ndarray]:
        """The (H, W) bool mask of every annotated instance of the image at ``path``."""
        im = self.by_name.get(Path(path).name)
        if im is None:
            raise SaicmError("image not in the annotation file", str(path))
        if (im["height"], im["width"]) != tuple(shape):
            raise SaicmError(f"annotations are for {im['width']}x{im['height']}, image is "
                             f"{shape[1]}x{shape[0]}", str(path))
        anns = self.coco.loadAnns(self.coco.getAnnIds(imgIds=[im["id"]], iscrowd=None))
        return [self.coco.annToMask(a).astype(bool) for a in anns]

    def union(self, path: Path, shape: tuple[int, int]) -> tuple[np.ndarray, int]:
        """Union mask (H, W) bool and the number of instances."""
        masks = self.instances(path, shape)
        return np.logical_or.reduce(masks) if masks else np.zeros(shape, bool), len(masks)

    def labels(self, path: Path, shape: tuple[int, int]) -> tuple[np.ndarray, int]:
        """Segment map (0 = background) with the instances painted larger first, and their number."""
        masks = self.instances(path, shape)
        return paint_masks(masks, shape), len(masks)
