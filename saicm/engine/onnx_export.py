"""ONNX graphs of the float transforms of ``gained-mean-scale-hyperprior``, built from numpy weights.

What is built: the analysis ``g_a`` (image → latent y), the hyper-analysis ``h_a`` (y → hyper-latent z)
and the synthesis ``g_s`` (ŷ → image) of CompressAI 1.2.8's ``MeanScaleHyperprior``, layer for layer,
from a model's state dict of numpy arrays (a shipped ``.safetensors`` file read with
``safetensors.numpy``). Each is a float32 NCHW graph with input ``x``, output ``y`` and symbolic
batch, height and width. The gains, the entropy models and the hyper-synthesis ``h_s`` are not here:
they decide the coded bits and are computed exactly elsewhere in :mod:`saicm.engine`.

Why ONNX: the engine runs the transforms in onnxruntime, already a dependency (evaluation back-ends),
and needs no PyTorch at run time. On a 768×512 image with two threads, ``g_a`` runs in ~0.6× PyTorch's
time and ``g_s`` about as fast as PyTorch (its transposed convolutions written as 3×3 convolutions and a
DepthToSpace: onnxruntime's ConvTranspose was ~1.2× slower; four per-phase convolutions without the zero
taps were slower again, measured in docs/engine.md). The graphs are serialized by
:mod:`saicm.engine.onnx_proto` (numpy only: no PyTorch, and not the 100 MB ``onnx`` package either).

Semantics, as in CompressAI (``models/utils.py``, ``layers/gdn.py``, ``ops/parametrizers.py``):

- ``conv``: Conv2d, padding ``k // 2``; ``deconv``: ConvTranspose2d(stride 2, padding ``k // 2``,
  output_padding 1), weight layout [in, out, k, k] in both torch and ONNX;
- GDN: ``x / sqrt(beta + conv1x1(x², gamma))``, inverse GDN ``x * sqrt(…)``, where the stored
  ``beta`` and ``gamma`` are reparametrised: the effective value is ``max(p, bound)² − pedestal``
  with the ``lower_bound.bound`` and ``pedestal`` buffers of the state dict. Those buffers are read,
  not recomputed: in fp16 files the pedestal 2⁻³⁶ is stored as 0 and the bounds are fp16-rounded,
  and the PyTorch model uses the stored values;
- ``h_a``: conv3x3 stride 1 → LeakyReLU(0.01) → conv5x5 s2 → LeakyReLU(0.01) → conv5x5 s2.
"""

from __future__ import annotations

import numpy as np

from ..errors import ModelError
from . import onnx_proto

__all__ = ["PARTS", "build_transform", "build_all"]

#: layer kinds of each transform, by index in its ``nn.Sequential`` (conv/deconv: (kind, stride)).
#: Channel counts and kernel sizes are read from the weights.
_LAYERS: dict[str, list[tuple]] = {
    "g_a": [("conv", 2), ("gdn",), ("conv", 2), ("gdn",), ("conv", 2), ("gdn",), ("conv", 2)],
    "h_a": [("conv", 1), ("leaky",), ("conv", 2), ("leaky",), ("conv", 2)],
    "g_s": [("deconv", 2), ("igdn",), ("deconv", 2), ("igdn",), ("deconv", 2), ("igdn",), ("deconv", 2)],
}
PARTS = tuple(_LAYERS)

#: the lowest ONNX IR version that opset 17 allows (older onnxruntime builds load it)
IR_VERSION = 8
_LEAKY_SLOPE = 0.01          # nn.LeakyReLU's default, as MeanScaleHyperprior's h_a uses it
_REPARAM_OFFSET = 2.0 ** -18  # NonNegativeParametrizer's defaults, used only if a file lacks the buffers
_BETA_MIN = 1e-6


def _f32(state: dict[str, np.ndarray], key: str) -> np.ndarray:
    if key not in state:
        raise ModelError(f"weights lack {key!r}: not a gained-mean-scale-hyperprior state dict")
    return np.ascontiguousarray(state[key], dtype=np.float32)


def _nonneg(state: dict[str, np.ndarray], prefix: str, minimum: float) -> np.ndarray:
    """The effective value of a NonNegativeParametrizer'd parameter: ``max(p, bound)² − pedestal`` (float32)."""
    p = _f32(state, prefix)
    default_bound, default_ped = (minimum + _REPARAM_OFFSET ** 2) ** 0.5, _REPARAM_OFFSET ** 2
    bkey, pkey = f"{prefix}_reparam.lower_bound.bound", f"{prefix}_reparam.pedestal"
    bound = _f32(state, bkey) if bkey in state else np.float32([default_bound])
    pedestal = _f32(state, pkey) if pkey in state else np.float32([default_ped])
    return np.maximum(p, bound) ** 2 - pedestal


class _Graph:
    """Nodes and initializers of a feed-forward chain, each node reading the previous output."""

    def __init__(self):
        self.nodes, self.inits, self.last = [], [], "x"  # nodes: (op, inputs, outputs, name, attrs)

    def const(self, name: str, value: np.ndarray) -> str:
        self.inits.append(onnx_proto.tensor(name, value))
        return name

    def add(self, op: str, name: str, inputs: list[str], **attrs) -> str:
        out = name + ".out"
        self.nodes.append((op, [self.last, *inputs], [out], name, attrs))
        self.last = out
        return out


def _subpixel_weights(w: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A stride-2, 5×5, padding-2, output-padding-1 transposed convolution as a 3×3 convolution onto 4·Cout
    channels (one per output phase (r, s), channel ``o·4 + r·2 + s``) followed by DepthToSpace(2, CRD).

    Output row 2m + r takes kernel rows i ≡ r (mod 2) from input rows m + (r + 2 − i)/2, i.e. the 3×3 tap
    t = (r + 2 − i)/2 + 1: (r=0: t 2, 1, 0 ↔ i 0, 2, 4; r=1: t 2, 1 ↔ i 1, 3); columns alike."""
    cin, cout, k, _ = w.shape
    sub = np.zeros((cout, 2, 2, cin, 3, 3), np.float32)
    for r in range(2):
        for i in range(r, k, 2):
            t = (r + 2 - i) // 2 + 1
            for s in range(2):
                for j in range(s, k, 2):
                    u = (s + 2 - j) // 2 + 1
                    sub[:, r, s, :, t, u] = w[:, :, i, j].T
    return sub.reshape(cout * 4, cin, 3, 3), np.repeat(b, 4)


def _conv(g: _Graph, state, name: str, stride: int, transposed: bool) -> tuple[int, int]:
    """Append a conv (CompressAI ``conv``) or transposed conv (``deconv``); returns (in, out) channels.

    A 5×5 stride-2 ``deconv`` is written as a 3×3 Conv and a DepthToSpace (:func:`_subpixel_weights`): the same
    sums; onnxruntime runs it ~1.2× faster than its ConvTranspose (docs/engine.md)."""
    w, b = _f32(state, f"{name}.weight"), _f32(state, f"{name}.bias")
    if w.ndim != 4 or w.shape[2] != w.shape[3]:
        raise ModelError(f"{name}.weight has shape {w.shape}, expected a square 2-D kernel")
    k = w.shape[2]
    attrs = dict(kernel_shape=[k, k], strides=[stride, stride], pads=[k // 2] * 4)
    if transposed and k == 5 and stride == 2:
        ws, bs = _subpixel_weights(w, b)
        g.add("Conv", name + ".phases", [g.const(f"{name}.weight", ws), g.const(f"{name}.bias", bs)],
              kernel_shape=[3, 3], strides=[1, 1], pads=[1, 1, 1, 1])
        g.add("DepthToSpace", name, [], blocksize=2, mode="CRD")
        return w.shape[0], w.shape[1]
    if transposed:  # torch ConvTranspose2d weight [in, out, k, k] is ONNX's layout too
        g.add("ConvTranspose", name, [g.const(f"{name}.weight", w), g.const(f"{name}.bias", b)],
              output_padding=[stride - 1] * 2, **attrs)
        return w.shape[0], w.shape[1]
    g.add("Conv", name, [g.const(f"{name}.weight", w), g.const(f"{name}.bias", b)], **attrs)
    return w.shape[1], w.shape[0]


def _gdn(g: _Graph, state, name: str, c: int, inverse: bool) -> None:
    """Append a GDN (``x / sqrt(beta + conv1x1(x², gamma))``) or inverse GDN (``x * sqrt(…)``) of ``c`` channels."""
    beta = _nonneg(state, f"{name}.beta", _BETA_MIN)
    gamma = _nonneg(state, f"{name}.gamma", 0.0)
    if beta.shape != (c,) or gamma.shape != (c, c):
        raise ModelError(f"{name}: beta {beta.shape} / gamma {gamma.shape} do not fit {c} channels")
    x = g.last
    g.add("Mul", f"{name}.sq", [x])  # x * x
    g.add("Conv", f"{name}.norm", [g.const(f"{name}.gamma", gamma.reshape(c, c, 1, 1)), g.const(f"{name}.beta", beta)],
          kernel_shape=[1, 1])
    root = g.add("Sqrt", f"{name}.sqrt", [])
    g.nodes.append(("Mul" if inverse else "Div", [x, root], [f"{name}.out"], name, {}))
    g.last = f"{name}.out"


def build_transform(state: dict[str, np.ndarray], part: str, opset: int = 17,
                    producer: str = "saicm.engine.onnx_export") -> bytes:
    """The serialized ONNX ModelProto of transform ``part`` ("g_a", "h_a" or "g_s") of ``state``.

    ``producer`` (the ModelProto's producer_name): the runtime puts the graph's identity there (the weights'
    checksum, the part, the export version), so that a graph seen in a profiler or a dump names what it is.

    ``state``: the model's state dict as numpy arrays (any float dtype; computed in float32).
    The graph maps input ``x`` [batch, C, H, W] to output ``y``, float32, batch/H/W symbolic.
    Raises :class:`~saicm.errors.ModelError` if the weights lack a layer or have the wrong shapes.
    """
    if part not in _LAYERS:
        raise ValueError(f"part must be one of {PARTS}, got {part!r}")
    g = _Graph()
    c_in = c = None  # channels entering the transform / the current layer
    for i, (kind, *args) in enumerate(_LAYERS[part]):
        name = f"{part}.{i}"
        if kind in ("conv", "deconv"):
            cin, cout = _conv(g, state, name, args[0], transposed=kind == "deconv")
            if c is not None and cin != c:
                raise ModelError(f"{name} takes {cin} channels, the layer before gives {c}")
            c_in, c = c_in or cin, cout
        elif kind in ("gdn", "igdn"):
            _gdn(g, state, name, c, inverse=kind == "igdn")
        else:
            g.add("LeakyRelu", name, [], alpha=_LEAKY_SLOPE)
    g.nodes[-1][2][0] = "y"
    return onnx_proto.model(
        [onnx_proto.node(op, ins, outs, name, **attrs) for op, ins, outs, name, attrs in g.nodes], f"saicm.{part}",
        [onnx_proto.value_info("x", ["batch", c_in, "height", "width"])],
        [onnx_proto.value_info("y", ["batch", c, "out_height", "out_width"])],
        g.inits, opset=opset, ir_version=IR_VERSION, producer=producer)


def build_all(state: dict[str, np.ndarray]) -> dict[str, bytes]:
    """:func:`build_transform` of every part: ``{"g_a": …, "h_a": …, "g_s": …}``."""
    return {part: build_transform(state, part) for part in PARTS}
