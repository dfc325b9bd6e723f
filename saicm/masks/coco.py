"""Object masks from COCO annotations (polygons and RLE, via pycocotools), for Object-ICM.

The mask of an image is the union of all its annotated instances (crowd
regions included): the region-learning loss of Object-ICM weighs only those
pixels. Images are matched to annotations by file name.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import SaicmError


class CocoObjects:
    def __init__(self, annotations: str | Path):
        p = Path(annotations)
        if not p.is_file():
            raise SaicmError("annotation file not found", str(p))
        import contextlib
        import io

        from pycocotools.coco import COCO

        try:
            with contextlib.redirect_stdout(io.StringIO()):
                self.coco = COCO(str(p))
        except Exception as e:  # noqa: BLE001 - malformed JSON of any kind
            raise SaicmError(f"not a COCO annotation file ({type(e).__name__}: {e})", str(p)) from None
        self.annotations = str(p)
        self.by_name = {Path(im["file_name"]).name: im for im in self.coco.imgs.values()}

    def settings(self) -> dict:
        return dict(annotations=self.annotations)

    def __call__(self, path: Path, shape: tuple[int, int]) -> tuple[np.ndarray, int]:
        """Union mask (H, W) bool and the number of instances."""
        im = self.by_name.get(Path(path).name)
        if im is None:
            raise SaicmError("image not in the annotation file", str(path))
        if (im["height"], im["width"]) != tuple(shape):
            raise SaicmError(f"annotations are for {im['width']}x{im['height']}, image is "
                             f"{shape[1]}x{shape[0]}", str(path))
        anns = self.coco.loadAnns(self.coco.getAnnIds(imgIds=[im["id"]], iscrowd=None))
        m = np.zeros(shape, bool)
        for a in anns:
            m |= self.coco.annToMask(a).astype(bool)
        return m, len(anns)
