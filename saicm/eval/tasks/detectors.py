"""COCO detectors and instance segmenters exported to ONNX: pre-processing and output decoding.

Each kind reproduces the pre-processing its exporter trained with and the
decoding of its raw outputs; the ``decode_*`` functions are pure numpy on the
network outputs so they can be checked on hand-made arrays. Defaults are the
ones that reproduce the COCO figures in ``shared/data/models/README.md``.

Kinds: ``picodet`` (PaddleDetection PicoDet, GFL head), ``yolox`` (Megvii
YOLOX), ``yolov8`` (Ultralytics detection export ``[1, 4+C, N]``),
``yolov8-seg`` (Ultralytics segmentation export, boxes plus instance masks).
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np
from PIL import Image

from ...errors import SaicmError, first_line
from .base import (COCO_CATEGORY_IDS, Detection, Letterbox, TaskModel, check_category_ids, clip_boxes, input_hw,
                   letterbox, nms, output_error, register_task_model, rgb_array)


def _shape(o) -> list:
    return list(o.shape)


def _detections(boxes, scores, classes, category_ids, masks=None) -> list[Detection]:
    out = []
    for i in range(len(boxes)):
        if category_ids[int(classes[i])] is None:  # (a COCO class the annotations do not have: not scored)
            continue
        out.append(Detection(tuple(float(v) for v in boxes[i]), float(scores[i]), int(category_ids[int(classes[i])]),
                             None if masks is None else masks[i]))
    return out


def _sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def check_probabilities(kind: str, scores: np.ndarray) -> None:
    """Refuse class scores outside 0..1: logits (an export without the sigmoid) were thresholded at 0.001 as
    probabilities, and a lower AP came in silence (a yolov8 model on 16 COCO128 images: 44 instead of 54)."""
    if scores.size and (scores.min() < -1e-3 or scores.max() > 1 + 1e-3):
        raise output_error(kind, "scores in 0..1 (the sigmoid applied in the model)",
                           f"scores from {float(scores.min()):.3g} to {float(scores.max()):.3g}")


# --------------------------------------------------------------------------- PicoDet


def picodet_level_grid(n: int, input_hw: tuple[int, int], min_stride: int = 8) -> tuple[int, int, int]:
    """(stride, rows, cols) of a level with ``n`` anchor points: rows·cols = ceil(H/s)·ceil(W/s).

    Levels come in increasing stride; ``min_stride`` (twice the previous
    level's) keeps tiny inputs, where two strides give one point, unambiguous.
    """
    H, W = input_hw
    for s in (8, 16, 32, 64, 128):
        rows, cols = math.ceil(H / s), math.ceil(W / s)
        if s >= min_stride and rows * cols == n:
            return s, rows, cols
    raise output_error("picodet", f"N = ceil({H}/s)·ceil({W}/s) anchor points for a stride s in 8..128", n)


def decode_picodet(scores: Sequence[np.ndarray], dists: Sequence[np.ndarray], input_hw: tuple[int, int],
                   image_wh: tuple[int, int], score_threshold: float = 0.001, iou: float = 0.6,
                   max_det: int = 100):
    """GFL outputs → (boxes (N, 4) in image pixels, scores, class indices).

    ``scores[l]``: (N_l, C) sigmoid class scores; ``dists[l]``: (N_l, 4·(reg_max+1))
    distributions of the l, t, r, b distances in units of the stride. Anchor
    centres sit at ((col+0.5)·s, (row+0.5)·s). Each anchor votes for its best
    class only (on COCO128 this gives the README's 41.9 / 58.3; every
    (anchor, class) pair, as PaddleDetection's MultiClassNMS, gives 41.9 /
    58.1 and 50× more NMS candidates), then class-aware NMS in image pixels
    (the network input is a plain, non-uniform resize, which changes IoUs).
    """
    H, W = input_hw
    all_boxes, all_scores, s = [], [], 4
    for sc, di in zip(scores, dists):
        sc = np.asarray(sc, dtype=np.float32).reshape(sc.shape[-2], sc.shape[-1])
        check_probabilities("picodet", sc)
        di = np.asarray(di, dtype=np.float32).reshape(di.shape[-2], di.shape[-1])
        n = sc.shape[0]
        s, rows, cols = picodet_level_grid(n, input_hw, 2 * s)
        bins = di.shape[1] // 4
        d = di.reshape(n, 4, bins)
        d = np.exp(d - d.max(-1, keepdims=True))
        d = (d / d.sum(-1, keepdims=True)) @ np.arange(bins, dtype=np.float32) * s  # (n, 4): l, t, r, b
        yy, xx = np.divmod(np.arange(n), cols)
        cx, cy = (xx + 0.5) * s, (yy + 0.5) * s
        all_boxes.append(np.stack([cx - d[:, 0], cy - d[:, 1], cx + d[:, 2], cy + d[:, 3]], 1))
        all_scores.append(sc)
    boxes = np.concatenate(all_boxes).astype(np.float64)
    sc = np.concatenate(all_scores)
    boxes[:, [0, 2]] *= image_wh[0] / W
    boxes[:, [1, 3]] *= image_wh[1] / H
    cls = sc.argmax(1)
    cand = sc[np.arange(len(sc)), cls]
    anchor = np.nonzero(cand >= score_threshold)[0]
    cls, cand = cls[anchor], cand[anchor]
    keep = nms(boxes[anchor], cand, cls, iou, max_det)
    return clip_boxes(boxes[anchor[keep]], image_wh), cand[keep], cls[keep]


def picodet_input(rgb: np.ndarray, input_hw: tuple[int, int]) -> np.ndarray:
    """Plain bicubic resize, /255, ImageNet mean/std, NCHW.

    OpenCV's INTER_CUBIC on the uint8 image, as PaddleDetection's
    ``Resize(interp=2)``: on COCO128 Pillow's BICUBIC gives 40.8 AP instead of 41.9.
    """
    import cv2

    x = cv2.resize(rgb, (input_hw[1], input_hw[0]), interpolation=cv2.INTER_CUBIC).astype(np.float32) / 255.0
    x = (x - np.array([0.485, 0.456, 0.406], np.float32)) / np.array([0.229, 0.224, 0.225], np.float32)
    return np.ascontiguousarray(x.transpose(2, 0, 1)[None])


class OnnxDetector(TaskModel):
    """Shared plumbing: the session, thresholds, category ids."""

    default_hw = (640, 640)
    iou = 0.7

    def __init__(self, session, category_ids: Sequence[int] | None = None, path: str = "",
                 score_threshold: float = 0.001, iou: float | None = None, max_det: int = 100,
                 coco_class_ids: Sequence[int | None] | None = None):
        self.session, self.path = session, str(path)
        self.input_name = session.get_inputs()[0].name
        self.input_hw = input_hw(session, self.default_hw)
        self.output_names = [o.name for o in session.get_outputs()]
        self.score_threshold, self.max_det = float(score_threshold), int(max_det)
        if iou is not None:
            self.iou = float(iou)
        shapes = [_shape(o) for o in session.get_outputs()]
        given = None if category_ids is None else len(category_ids)
        try:
            self.num_classes = self.check_layout(shapes, given)
        except SaicmError as first:  # (annotations of a few COCO classes, named so, for a model of all 80)
            if coco_class_ids is None or given in (None, len(COCO_CATEGORY_IDS)):
                raise
            try:
                self.num_classes = self.check_layout(shapes, len(COCO_CATEGORY_IDS))
            except SaicmError:
                raise first from None
        self.category_ids = check_category_ids(category_ids, self.num_classes, self.kind, coco_class_ids)

    def check_layout(self, shapes: list, num_classes: int | None) -> int:
        """Raise if the declared output shapes are not this kind's; return the number of classes."""
        raise NotImplementedError

    def run(self, x: np.ndarray) -> list[np.ndarray]:
        try:
            return self.session.run(self.output_names, {self.input_name: x})
        except Exception as e:  # onnxruntime raises its own pybind exception types, in many lines
            free = [d for d in self.session.get_inputs()[0].shape[2:] if not (isinstance(d, int) and d > 0)]
            size = (f" (its input size is not fixed in the file: saicm fed the {self.kind} default "
                    f"{self.input_hw[1]}x{self.input_hw[0]})" if free else "")
            raise SaicmError(f"the {self.kind} task model failed on an input of shape {list(x.shape)}{size}: "
                             f"{first_line(e, 200)}", self.path or None) from None

    def config(self):
        return {"kind": self.kind, "path": self.path, "input_hw": list(self.input_hw), "iou": self.iou,
                "score_threshold": self.score_threshold, "max_det": self.max_det}


def _int(d) -> int | None:
    return d if isinstance(d, int) else None


@register_task_model("picodet")
class PicoDet(OnnxDetector):
    """PicoDet exported by PaddleDetection without NMS: per level sigmoid scores, then box distributions."""

    kind = "picodet"
    default_hw = (416, 416)
    iou = 0.6

    def check_layout(self, shapes, num_classes):
        half = len(shapes) // 2
        if len(shapes) < 2 or len(shapes) % 2 or any(len(s) != 3 for s in shapes):
            raise output_error(self.kind, "2·L outputs [1, N_l, C] then [1, N_l, 4·bins]", shapes)
        classes = {_int(s[2]) for s in shapes[:half]}
        bins = {_int(s[2]) for s in shapes[half:]}
        if len(classes) != 1 or len(bins) != 1 or (None not in bins and bins.pop() % 4):
            raise output_error(self.kind, "2·L outputs [1, N_l, C] then [1, N_l, 4·bins]", shapes)
        stride = 4
        for sc, di in zip(shapes[:half], shapes[half:]):
            if isinstance(sc[1], int):
                stride = picodet_level_grid(sc[1], self.input_hw, 2 * stride)[0]
                if isinstance(di[1], int) and di[1] != sc[1]:
                    raise output_error(self.kind, "the same N_l for scores and distributions", shapes)
        c = classes.pop()
        return c if c is not None else (num_classes or 80)

    def __call__(self, img: Image.Image) -> list[Detection]:
        rgb = rgb_array(img)
        outs = self.run(picodet_input(rgb, self.input_hw))
        half = len(outs) // 2
        boxes, scores, classes = decode_picodet(outs[:half], outs[half:], self.input_hw,
                                                (rgb.shape[1], rgb.shape[0]), self.score_threshold, self.iou,
                                                self.max_det)
        return _detections(boxes, scores, classes, self.category_ids)


# --------------------------------------------------------------------------- YOLOX


def yolox_grid(input_hw: tuple[int, int], strides=(8, 16, 32)) -> tuple[np.ndarray, np.ndarray]:
    """(grid xy (N, 2), stride (N,)) of YOLOX's anchor points, levels in stride order, row-major."""
    grids, st = [], []
    for s in strides:
        rows, cols = input_hw[0] // s, input_hw[1] // s
        yy, xx = np.mgrid[0:rows, 0:cols]
        grids.append(np.stack([xx.ravel(), yy.ravel()], 1))
        st.append(np.full(rows * cols, s))
    return np.concatenate(grids).astype(np.float64), np.concatenate(st).astype(np.float64)


def decode_yolox(out: np.ndarray, input_hw: tuple[int, int], lb: Letterbox, image_wh: tuple[int, int],
                 score_threshold: float = 0.001, iou: float = 0.65, max_det: int = 100):
    """(N, 5+C) raw YOLOX head → (boxes in image pixels, scores, class indices).

    Rows: (x, y, log w, log h) relative to the grid cell and stride, then
    objectness and class scores (sigmoid applied). Score = objectness × best
    class score, one class per anchor point, as YOLOX's own ``postprocess``.
    """
    out = np.asarray(out, dtype=np.float64).reshape(-1, out.shape[-1])
    grid, stride = yolox_grid(input_hw)
    if len(grid) != len(out):
        raise output_error("yolox", f"{len(grid)} anchor points for strides 8/16/32 at {input_hw}", len(out))
    check_probabilities("yolox", out[:, 4:])
    xy = (out[:, :2] + grid) * stride[:, None]
    if np.mean(((xy < 0) | (xy > [input_hw[1], input_hw[0]])).any(1)) > 0.5:  # (raw offsets keep them inside)
        raise output_error("yolox", "raw head outputs (x, y offsets in grid cells), whose centres fall inside the "
                           f"{input_hw[1]}x{input_hw[0]} input", "most centres outside it: outputs decoded already "
                           "(export with decode_in_inference off)")
    wh = np.exp(out[:, 2:4]) * stride[:, None]
    cls = out[:, 5:].argmax(1)
    scores = out[:, 4] * out[np.arange(len(out)), 5 + cls]
    m = scores >= score_threshold
    boxes = np.concatenate([xy - wh / 2, xy + wh / 2], 1)[m]
    scores, cls = scores[m], cls[m]
    keep = nms(boxes, scores, cls, iou, max_det)
    return lb.to_image(boxes[keep], image_wh), scores[keep], cls[keep]


@register_task_model("yolox")
class YOLOX(OnnxDetector):
    """YOLOX export with raw head outputs (no decoding, no NMS): BGR 0..255 input, top-left letterbox."""

    kind = "yolox"
    default_hw = (416, 416)
    iou = 0.65

    def check_layout(self, shapes, num_classes):
        if len(shapes) != 1 or len(shapes[0]) != 3 or (_int(shapes[0][2]) or 99) < 6:
            raise output_error(self.kind, "one output [1, N, 5+C]", shapes)
        n = _int(shapes[0][1])
        expected = len(yolox_grid(self.input_hw)[0])
        if n is not None and n != expected:
            raise output_error(self.kind, f"[1, {expected}, 5+C] for strides 8/16/32 at {self.input_hw}", shapes)
        c = _int(shapes[0][2])
        return c - 5 if c is not None else (num_classes or 80)

    def __call__(self, img):
        rgb = rgb_array(img)
        canvas, lb = letterbox(rgb, self.input_hw, centre=False)
        x = np.ascontiguousarray(canvas[:, :, ::-1].transpose(2, 0, 1)[None], dtype=np.float32)
        (out,) = self.run(x)
        boxes, scores, cls = decode_yolox(out[0], self.input_hw, lb, (rgb.shape[1], rgb.shape[0]),
                                          self.score_threshold, self.iou, self.max_det)
        return _detections(boxes, scores, cls, self.category_ids)


# --------------------------------------------------------------------------- YOLOv8


#: yolov8 layout: the fewest anchors whose boxes are checked for corners, and the share of them with w >= cx and
#: h >= cy that says corners (YOLOv8.check_runtime)
CORNER_CHECK_ANCHORS, CORNER_SHARE = 64, 0.9


def decode_yolov8(out: np.ndarray, num_classes: int, score_threshold: float = 0.001, iou: float = 0.7,
                  max_det: int = 100):
    """(4+C+M, N) Ultralytics head → (boxes in *input* pixels, scores, class indices, extra rows (K, M)).

    Rows: cx, cy, w, h in input pixels, C class scores (sigmoid applied), then
    M extra values per anchor (mask coefficients; none for detection). One
    class per anchor (the best), class-aware NMS.
    """
    out = np.asarray(out, dtype=np.float32)
    out = out.reshape(out.shape[-2], out.shape[-1])
    sc = out[4:4 + num_classes]
    cls = sc.argmax(0)
    scores = sc[cls, np.arange(out.shape[1])]
    m = scores >= score_threshold
    cxcy, wh = out[0:2, m].T.astype(np.float64), out[2:4, m].T.astype(np.float64)
    boxes = np.concatenate([cxcy - wh / 2, cxcy + wh / 2], 1)
    scores, cls, extra = scores[m], cls[m], out[4 + num_classes:, m].T
    keep = nms(boxes, scores, cls, iou, max_det)
    return boxes[keep], scores[keep], cls[keep], extra[keep]


def iter_yolov8_masks(coeffs: np.ndarray, protos: np.ndarray, boxes_input: np.ndarray, lb: Letterbox,
                      input_hw: tuple[int, int], image_wh: tuple[int, int]):
    """Instance masks (H, W) uint8 0/1 on the original image, one per box, one at a time (a caller that encodes
    each (RLE) holds one image-sized mask, not up to 100: 1.2 GB on a 12 MP photo).

    sigmoid(coefficients · prototypes), bilinear upsample to the network input,
    zero outside the box (input pixels), drop the letterbox padding, bilinear
    resize to the image, threshold at 0.5.
    """
    import cv2

    protos = np.asarray(protos, dtype=np.float32)
    protos = protos.reshape(protos.shape[-3:])
    nm, hw = protos.shape[0], protos.shape[1:]
    H, W = input_hw
    logits = np.asarray(coeffs, dtype=np.float32).reshape(-1, nm) @ protos.reshape(nm, -1)
    rows, cols = np.arange(H)[:, None], np.arange(W)[None, :]
    for lg, b in zip(logits, np.asarray(boxes_input, dtype=np.float64).reshape(-1, 4)):
        m = cv2.resize(_sigmoid(lg.reshape(hw)), (W, H), interpolation=cv2.INTER_LINEAR)
        m *= (cols >= b[0]) & (cols < b[2]) & (rows >= b[1]) & (rows < b[3])
        m = m[lb.top:lb.top + lb.height, lb.left:lb.left + lb.width]
        m = cv2.resize(m, tuple(image_wh), interpolation=cv2.INTER_LINEAR)
        yield (m > 0.5).astype(np.uint8)


def mask_rle(mask: np.ndarray) -> dict:
    """A 0/1 (H, W) mask → COCO RLE with ``counts`` as str (JSON-safe)."""
    from pycocotools import mask as mask_utils

    rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    rle["counts"] = rle["counts"].decode("ascii")
    return rle


@register_task_model("yolov8")
class YOLOv8(OnnxDetector):
    """Ultralytics YOLOv8 detection export (``nms=False``): RGB/255, centred letterbox with 114."""

    kind = "yolov8"
    default_hw = (640, 640)
    iou = 0.7
    num_mask_coeffs = 0

    def check_layout(self, shapes, num_classes):
        c = num_classes or 80
        if len(shapes) != 1 or len(shapes[0]) != 3 or _int(shapes[0][1]) not in (None, 4 + c):
            raise output_error(self.kind, f"one output [1, {4 + c}, N]" + (
                "" if num_classes else " (the 80 COCO classes; another count is that of the --annotations' "
                "categories)"), shapes)
        return c

    def preprocess(self, rgb):
        canvas, lb = letterbox(rgb, self.input_hw, centre=True)
        return np.ascontiguousarray(canvas.transpose(2, 0, 1)[None], dtype=np.float32) / 255.0, lb

    def check_runtime(self, outs):
        rows = 4 + self.num_classes + self.num_mask_coeffs
        if outs[0].ndim != 3 or outs[0].shape[1] != rows:
            raise output_error(self.kind, f"output0 [1, {rows}, N]", [list(o.shape) for o in outs])
        check_probabilities(self.kind, outs[0][0, 4:4 + self.num_classes])
        centres = outs[0][0, :2]
        if centres.size and min(self.input_hw) >= 32 and np.abs(centres).max() <= 1.5:  # (an AP of 0 in silence)
            raise output_error(self.kind, f"box centres in input pixels (0..{self.input_hw[1]})",
                               "every centre within 0..1.5: boxes normalised to the input size")
        # Corners x1, y1, x2, y2 read as cx, cy, w, h score ~1 AP in silence. Read so, every anchor has "w" >= "cx"
        # and "h" >= "cy" (x2 >= x1, y2 >= y1); with true centres and sizes few do: anchors cover the whole input,
        # and a small box far from the top left has w < cx (6.6 % of the 2,100 anchors of yolov8n-seg on COCO128 on
        # average, 15.4 % at most)
        if centres.shape[-1] >= CORNER_CHECK_ANCHORS:
            cx, cy, w, h = outs[0][0, :4]
            if np.mean((w >= cx) & (h >= cy)) >= CORNER_SHARE:
                raise output_error(self.kind, "boxes as centre x, y, width, height",
                                   f"x2 >= x1 and y2 >= y1 on {CORNER_SHARE:.0%} of the anchors or more: boxes as "
                                   "corners x1, y1, x2, y2")

    def __call__(self, img):
        rgb = rgb_array(img)
        x, lb = self.preprocess(rgb)
        outs = self.run(x)
        self.check_runtime(outs)
        boxes, scores, cls, _ = decode_yolov8(outs[0], self.num_classes, self.score_threshold, self.iou,
                                              self.max_det)
        return _detections(lb.to_image(boxes, (rgb.shape[1], rgb.shape[0])), scores, cls, self.category_ids)


@register_task_model("yolov8-seg")
class YOLOv8Seg(YOLOv8):
    """Ultralytics YOLOv8-seg export: ``output0`` [1, 4+C+M, N] and prototypes [1, M, h, w].

    Masks follow the README recipe (threshold last, after the resize to the
    image): 34.1 box AP, 26.4 mask AP on COCO128 against the README's 25.9;
    thresholding at the network input instead gives 26.1.
    """

    kind = "yolov8-seg"
    iou_types = ("bbox", "segm")

    def check_layout(self, shapes, num_classes):
        c = num_classes or 80
        ok = len(shapes) == 2 and len(shapes[0]) == 3 and len(shapes[1]) == 4
        if ok:
            self.num_mask_coeffs = _int(shapes[1][1]) or 32
            ok = _int(shapes[0][1]) in (None, 4 + c + self.num_mask_coeffs)
        if not ok:
            raise output_error(self.kind, f"output0 [1, {4 + c}+M, N] and prototypes [1, M, h, w]", shapes)
        return c

    def check_runtime(self, outs):
        if len(outs) != 2 or outs[1].ndim != 4:
            raise output_error(self.kind, "output0 and prototypes [1, M, h, w]", [list(o.shape) for o in outs])
        self.num_mask_coeffs = outs[1].shape[1]
        super().check_runtime(outs)

    def __call__(self, img):
        rgb = rgb_array(img)
        image_wh = (rgb.shape[1], rgb.shape[0])
        x, lb = self.preprocess(rgb)
        outs = self.run(x)
        self.check_runtime(outs)
        boxes, scores, cls, coeffs = decode_yolov8(outs[0], self.num_classes, self.score_threshold, self.iou,
                                                   self.max_det)
        masks = [mask_rle(m) for m in iter_yolov8_masks(coeffs, outs[1][0], boxes, lb, self.input_hw, image_wh)]
        return _detections(lb.to_image(boxes, image_wh), scores, cls, self.category_ids, masks)


