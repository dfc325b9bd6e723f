"""What every task model shares: the detection record, the registry, ONNX sessions, NMS, letterbox.

A task model is a frozen recogniser that we run on original and decoded
images to measure what survives compression. It is chosen by a spec string
``KIND:PATH`` (``picodet:/models/picodet_s_416_coco.onnx``); ``KIND`` picks the
pre-processing and output decoding, which must match how the ONNX file was
exported. Getting either wrong does not crash, it silently costs AP, so each
kind checks the output layout it expects and says so in one line when it
does not match.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Dict, Sequence

import numpy as np
from PIL import Image

from ..._registry import registrar
from ...errors import SaicmError, first_line

#: The 80 COCO category ids in class-index order (1..90 with gaps), as in every COCO annotation file.
COCO_CATEGORY_IDS: tuple[int, ...] = (
    *range(1, 12), *range(13, 26), 27, 28, *range(31, 45), *range(46, 66), 67, 70, *range(72, 83),
    *range(84, 91),
)

#: The 80 COCO class names in class-index order (same order as :data:`COCO_CATEGORY_IDS`).
COCO_CLASS_NAMES: tuple[str, ...] = (
    "person", "bicycle", "car", "motorcycle", "airplane", "bus", "train", "truck", "boat", "traffic light",
    "fire hydrant", "stop sign", "parking meter", "bench", "bird", "cat", "dog", "horse", "sheep", "cow",
    "elephant", "bear", "zebra", "giraffe", "backpack", "umbrella", "handbag", "tie", "suitcase", "frisbee",
    "skis", "snowboard", "sports ball", "kite", "baseball bat", "baseball glove", "skateboard", "surfboard",
    "tennis racket", "bottle", "wine glass", "cup", "fork", "knife", "spoon", "bowl", "banana", "apple",
    "sandwich", "orange", "broccoli", "carrot", "hot dog", "pizza", "donut", "cake", "chair", "couch",
    "potted plant", "bed", "dining table", "toilet", "tv", "laptop", "mouse", "remote", "keyboard", "cell phone",
    "microwave", "oven", "toaster", "sink", "refrigerator", "book", "clock", "vase", "scissors", "teddy bear",
    "hair drier", "toothbrush",
)
COCO_NAME_BY_ID: dict[int, str] = dict(zip(COCO_CATEGORY_IDS, COCO_CLASS_NAMES))


@dataclass
class Detection:
    """One object found on one image, in that image's pixel coordinates.

    ``box`` is (x1, y1, x2, y2) in original-image pixels (not network input
    pixels); ``category_id`` is a COCO category id (not a class index);
    ``mask`` is a COCO RLE dict (``size``, ``counts`` as str) for instance
    segmentation models, else None. RLE rather than a dense array because a
    run over a folder keeps up to 100 of them per image.
    """

    box: tuple[float, float, float, float]
    score: float
    category_id: int
    mask: dict | None = field(default=None, repr=False)

    def mask_array(self) -> np.ndarray | None:
        """The mask as an (H, W) uint8 array of 0/1, or None."""
        if self.mask is None:
            return None
        from pycocotools import mask as mask_utils

        return mask_utils.decode(self.mask)


class TaskModel:
    """Maps one RGB image to a list of :class:`Detection`."""

    kind: str = ""
    #: the pycocotools iouTypes this model can be scored with
    iou_types: tuple[str, ...] = ("bbox",)

    def __call__(self, img: Image.Image) -> list[Detection]:
        raise NotImplementedError

    def config(self) -> dict:
        return {"kind": self.kind}


TASK_MODELS: Dict[str, Callable[..., TaskModel]] = {}


register_task_model = registrar(TASK_MODELS, "task model")


def load_task_model(spec: str, category_ids: Sequence[int] | None = None,
                    threads: int | None = None, **options) -> TaskModel:
    """``KIND:PATH`` → a ready task model (ONNX Runtime, CPU).

    ``category_ids``: the COCO category id of each class index, in order
    (e.g. :func:`saicm.eval.tasks.category_ids` of an annotation file);
    default the standard 80. ``coco_class_ids`` (an option): the annotations' id of each of the 80 COCO classes,
    matched by name (:func:`saicm.eval.tasks.coco_class_ids`), used instead when the model has 80 classes.
    ``threads``: ONNX Runtime intra-op threads
    (default: all cores). ``options``: ``score_threshold`` (0.001),
    ``iou`` (the kind's NMS IoU), ``max_det`` (100).
    """
    from . import detectors  # noqa: F401  (registers the kinds)

    kind, sep, path = spec.partition(":")
    if kind not in TASK_MODELS or not sep or not path:
        known = ", ".join(sorted(TASK_MODELS))
        raise SaicmError(f"task model spec {spec!r} is not KIND:PATH with KIND one of {known}")
    if "coco_class_ids" in options and (options["coco_class_ids"] is None
                                        or not _takes(TASK_MODELS[kind], "coco_class_ids")):
        # (a kind registered by a user need not know the option: its classes are matched by position, as before;
        # given to it, annotations naming COCO's classes made its loading a TypeError)
        del options["coco_class_ids"]
    session = onnx_session(path, threads)
    return TASK_MODELS[kind](session, category_ids=category_ids, path=path, **options)


def _takes(factory, name: str) -> bool:
    """Whether ``factory`` (a class or a function) takes the keyword argument ``name`` (or any, ``**kwargs``)."""
    import inspect

    try:
        params = inspect.signature(factory).parameters.values()
    except (TypeError, ValueError):  # (no signature to read: not given)
        return False
    return any(p.name == name or p.kind is inspect.Parameter.VAR_KEYWORD for p in params)


def task_threads(threads: int | None = None) -> int | None:
    """A task model's onnxruntime threads: ``threads`` (``--threads``), else ``$SAICM_THREADS`` when set (it was
    not read: ``SAICM_THREADS=1 saicm eval`` ran its detector on every core), else None (onnxruntime's default)."""
    if threads:
        return int(threads)
    from ...engine.parallel import requested_threads, threads as saicm_threads

    return saicm_threads() if requested_threads() is not None else None


def onnx_session(path: str | Path, threads: int | None = None):
    """An ONNX Runtime CPU session; SaicmError if the file is missing or not ONNX."""
    path = Path(path)
    if not path.is_file():  # (a folder was "not found" too: the user looked at it, there)
        raise SaicmError("is a folder, not a model file (name the .onnx file in it)" if path.is_dir()
                         else "model file not found", str(path))
    from ...engine.runtime import onnxruntime

    ort = onnxruntime()
    opts = ort.SessionOptions()
    # fatal only: "unused initializer" warnings flooded stderr, and a failure's own coloured log came before
    # saicm's one line saying the same
    opts.log_severity_level = 4
    threads = task_threads(threads)
    if threads:
        opts.intra_op_num_threads = threads
    try:
        return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    except Exception as e:  # onnxruntime raises its own pybind exception types
        from ..._fs import read_input
        from ...codec.container import not_a

        said = not_a("an ONNX model", read_input(path, limit=64), advise=False)  # (a photo: not protobuf's words)
        raise SaicmError(said or f"not a loadable ONNX model ({first_line(e)})", str(path)) from None


def input_hw(session, default: tuple[int, int]) -> tuple[int, int]:
    """(H, W) of the NCHW image input, from the ONNX shape; ``default`` for symbolic dims.

    The image is the only input saicm feeds, as float32 [1, 3, H, W]: a model that wants another input too, other
    samples or the channels last is refused here, not by ONNX Runtime's traceback after the first rate point was
    coded."""
    inputs = session.get_inputs()
    if len(inputs) != 1:
        raise SaicmError(f"the task model has {len(inputs)} inputs ({', '.join(i.name for i in inputs)}); saicm feeds "
                         "one, the image as float32 [1, 3, H, W]: export it with the image as its only input")
    shape, kind = inputs[0].shape, getattr(inputs[0], "type", "tensor(float)")
    if len(shape) != 4:
        raise SaicmError(f"expected one NCHW image input, the model's input has shape {shape}")
    if isinstance(shape[1], int) and shape[1] != 3:
        raise SaicmError(f"the task model's input has shape {shape}, not [1, 3, H, W] (saicm feeds the image with "
                         "its channels first)")
    if kind != "tensor(float)":
        raise SaicmError(f"the task model's input is a {kind}, not a tensor(float): saicm feeds float32 samples")
    h, w = shape[2], shape[3]
    return (h if isinstance(h, int) and h > 0 else default[0], w if isinstance(w, int) and w > 0 else default[1])


def check_category_ids(category_ids: Sequence[int] | None, num_classes: int, kind: str,
                       coco_class_ids: Sequence[int | None] | None = None) -> list[int | None]:
    """The category id of each class index: ``category_ids`` in order (default the 80 COCO ids, or 1..C for a model
    of C classes other than 80), or, for a model
    with the 80 COCO classes, ``coco_class_ids`` (:func:`saicm.eval.tasks.coco.coco_class_ids`: the annotations'
    own id of each COCO class, found by its name; None for a class they do not have, whose detections are
    dropped). By position, annotations that number the COCO classes otherwise scored an AP of 0 in silence, and a
    subset of them (a file of people alone) was refused."""
    if coco_class_ids is not None and num_classes == len(COCO_CATEGORY_IDS):
        named = list(coco_class_ids)
        if category_ids is None or named != list(category_ids):
            have = [COCO_CLASS_NAMES[i] for i, c in enumerate(named) if c is not None]
            if len(have) == len(named):
                what = "the 80 COCO classes under other ids or in another order"
            else:
                what = (f"{len(have)} of the 80 COCO classes ({', '.join(have[:5])}{', ...' if len(have) > 5 else ''}"
                        "; the others' detections are not scored)")
            from ...errors import warn

            warn(f"the annotations' categories are {what}: the {kind} model's classes are matched to them by name")
        return named
    if category_ids is None and num_classes != len(COCO_CATEGORY_IDS):  # (not COCO's: pseudo ground truth only)
        category_ids = range(1, num_classes + 1)
    ids = list(COCO_CATEGORY_IDS if category_ids is None else category_ids)
    if len(ids) != num_classes:
        raise SaicmError(f"{kind} model has {num_classes} classes but {len(ids)} category ids were given")
    return ids


def nms(boxes: np.ndarray, scores: np.ndarray, classes: np.ndarray, iou: float,
        max_det: int = 100) -> np.ndarray:
    """Class-aware NMS: indices kept, best score first, at most ``max_det``.

    torchvision's ``batched_nms``: boxes of different classes never suppress
    each other; within a class a box goes when its IoU with a better one is
    strictly above ``iou``. At a 0.001 score threshold a multi-label head
    gives 10⁵ candidates, so NMS runs on the best ``k`` first and doubles
    ``k`` only while fewer than ``max_det`` survive: a box's fate depends only
    on better boxes, so the result is the same as NMS over all of them.
    """
    n = len(boxes)
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    import torch
    from torchvision.ops import batched_nms

    boxes, scores = np.asarray(boxes), np.asarray(scores, dtype=np.float32)
    order = np.argsort(-scores, kind="stable")
    k = max(8 * max_det, 1000)
    while True:
        idx = order[:k]
        keep = batched_nms(torch.from_numpy(np.ascontiguousarray(boxes[idx], dtype=np.float32)),
                           torch.from_numpy(np.ascontiguousarray(scores[idx])),
                           torch.from_numpy(np.asarray(classes, dtype=np.int64)[idx]), float(iou)).numpy()
        if len(keep) >= max_det or k >= n:
            return idx[keep[:max_det]]
        k *= 4


@dataclass(frozen=True)
class Letterbox:
    """How an image was fitted onto the network canvas: ``input = image·scale + (left, top)``."""

    scale: float
    left: int
    top: int
    width: int   # size of the resized image inside the canvas
    height: int

    def to_image(self, boxes: np.ndarray, image_wh: tuple[int, int]) -> np.ndarray:
        """Boxes (N, 4) in input pixels → original-image pixels, clipped to the image."""
        b = np.array(boxes, dtype=np.float64, copy=True).reshape(-1, 4)
        b[:, [0, 2]] = (b[:, [0, 2]] - self.left) / self.scale
        b[:, [1, 3]] = (b[:, [1, 3]] - self.top) / self.scale
        return clip_boxes(b, image_wh)


def letterbox(rgb: np.ndarray, size_hw: tuple[int, int], centre: bool, fill: int = 114) -> tuple[np.ndarray, Letterbox]:
    """Resize keeping the aspect ratio (bilinear) onto a ``fill`` canvas, centred or at the top-left.

    Centred follows Ultralytics (pad split with ``round(d ± 0.1)``, size
    ``round(w·r)``); top-left follows YOLOX (size ``int(w·r)``).
    """
    import cv2

    h, w = rgb.shape[:2]
    H, W = size_hw
    r = min(H / h, W / w)
    if centre:
        nw, nh = max(1, int(round(w * r))), max(1, int(round(h * r)))  # (a 3000×4 image: a side of at least 1)
        dw, dh = (W - nw) / 2, (H - nh) / 2
        left, top = int(round(dw - 0.1)), int(round(dh - 0.1))
    else:
        nw, nh = max(1, int(w * r)), max(1, int(h * r))
        left = top = 0
    out = np.full((H, W, rgb.shape[2]), fill, dtype=np.uint8)
    resized = rgb if (nw, nh) == (w, h) else cv2.resize(rgb, (nw, nh), interpolation=cv2.INTER_LINEAR)
    out[top:top + nh, left:left + nw] = resized
    return out, Letterbox(r, left, top, nw, nh)


def clip_boxes(boxes: np.ndarray, image_wh: tuple[int, int]) -> np.ndarray:
    b = np.asarray(boxes, dtype=np.float64).reshape(-1, 4).copy()
    b[:, [0, 2]] = b[:, [0, 2]].clip(0, image_wh[0])
    b[:, [1, 3]] = b[:, [1, 3]].clip(0, image_wh[1])
    return b


def rgb_array(img) -> np.ndarray:
    """A PIL image or an (H, W, 3) uint8 array → contiguous RGB uint8 array."""
    if isinstance(img, Image.Image):
        return np.asarray(img.convert("RGB"))
    a = np.asarray(img)
    if a.ndim != 3 or a.shape[2] != 3 or a.dtype != np.uint8:
        raise SaicmError(f"expected an RGB uint8 image, got an array of shape {a.shape} and type {a.dtype}")
    return a


def output_error(kind: str, expected: str, got) -> SaicmError:
    return SaicmError(f"outputs do not have the {kind} layout: expected {expected}, got {got}")
