"""The hyper-synthesis in exact integer arithmetic: the same coder tables on every engine, CPU and thread count.

(The same integer layers also run a scalable model's condition network, which adds to the
additional codec's entropy parameters: :func:`condition_network`.)

The hyper-synthesis ``h_s`` turns the decoded hyper-latent ẑ into the scales
(which pick the entropy coder's table for every symbol of y) and the means of
y. If encoder and decoder disagree on one scale index, the rest of the stream
decodes to garbage, so this computation must be *exact*, not just close. In
floating point it is exact only for one build on one CPU: summation order,
FMA and vector width change the last bits. Here every quantity is an integer
(fixed point, :data:`FRAC` fraction bits), in the spirit of "Integer networks
for data compression" (Ballé, Johnston & Minnen, ICLR 2019), but without
retraining: the float weights are rounded once to integers with a per-layer
power-of-two scale chosen so that no sum can exceed 2⁵².

Why the result is the same everywhere: the convolutions run as float64
matrix products (BLAS) on integer-valued operands. Every product and every
partial sum is an integer of magnitude below 2⁵³, hence exactly
representable, so each floating-point operation is exact and the result does
not depend on the order of the additions, on FMA or on the number of threads.
Rounding, activation and saturation are exact integer operations (in
float64 where every step is exact: :func:`_requantize`). The weights are
rounded from the model file's values by exact arithmetic as well (fp16/fp32
times a power of two, round-half-even; bounds checked with int64 sums), so
the integer network itself is a deterministic function of the file.

The cost against the float network: activations carry 15 fraction bits and
weights 16–19 fraction bits; the scales and means differ from the float ones
by ~10⁻⁴ (at most ~10⁻³), which moves ~0.1 % of the symbols to the
neighbouring coder table.
Measured in docs/engine.md (rate within a fraction of a percent).

Bounds (``ACT_LIMIT`` saturates every activation, so they hold for any input,
including a crafted hyper-latent): |activation| ≤ 2²⁵, Σ|integer weights| of
one output ≤ 2²⁶, |bias| ≤ 2⁵¹, so every accumulator stays below 2⁵².
"""

from __future__ import annotations

import math
from contextlib import nullcontext
from fractions import Fraction
from dataclasses import dataclass

import numpy as np

from .parallel import parallel_blocks, run_blocks, single_threaded_blas, threads

FRAC = 15  #: fraction bits of every activation (value = integer / 2**FRAC)
#: activations saturate at ±2**25 (±1024.0; the shipped models' largest on photos is ~75)
ACT_LIMIT = 1 << 25
WEIGHT_SUM_LIMIT = 1 << 26  #: Σ|w| of one output channel, in integer units
BIAS_LIMIT = 1 << 51
#: float64 values per block of a matrix product (bounds the memory of large latents: 32 MB)
BLOCK_VALUES = 1 << 22


@dataclass(frozen=True)
class IntLayer:
    """One convolution (``deconv``: transposed, stride 2, output padding 1) in integer form."""

    weight: np.ndarray  # float64 holding integers: (k·k, Cout, Cin) for conv, (Cout·k·k, Cin) for deconv
    bias: np.ndarray  # int64 (Cout,), in units of 2**-(shift + FRAC)
    shift: int  # weights are round(w · 2**shift)
    cin: int
    cout: int
    k: int
    stride: int
    transposed: bool
    leaky: bool  # LeakyReLU(0.01) after the layer
    relu: bool = False  # ReLU after the layer
    taps: tuple[int, ...] = ()  # conv: the taps (i·k + j) with a nonzero weight (a masked convolution skips the rest)
    tap_sets: tuple = ()  # the layer as stride-1 convolutions: one (conv), one per output phase (transposed): _tap_sets


def _integer_weights(w: np.ndarray, axes: tuple[int, ...]) -> tuple[np.ndarray, int]:
    """``round(w·2**s)`` for the largest ``s`` keeping every Σ|·| over ``axes`` ≤ WEIGHT_SUM_LIMIT (exact)."""
    w64 = np.asarray(w, dtype=np.float64)
    total = float(np.abs(w64).sum(axis=axes).max()) if w64.size else 0.0
    s = 40 if total == 0.0 else min(40, int(math.floor(math.log2(WEIGHT_SUM_LIMIT / total))) + 1)
    while True:  # the float estimate may be off by one: settle it with exact integer sums
        wi = np.rint(np.ldexp(w64, s))
        if np.abs(wi).astype(np.int64).sum(axis=axes).max(initial=0) <= WEIGHT_SUM_LIMIT:
            return wi, s
        s -= 1


def _layer(weight: np.ndarray, bias: np.ndarray, transposed: bool, leaky: bool, relu: bool = False) -> IntLayer:
    weight = np.asarray(weight, dtype=np.float64)
    if transposed:  # (Cin, Cout, k, k): one output sums over Cin and (a subset of) the taps
        cin, cout, k, _ = weight.shape
        wi, s = _integer_weights(weight.transpose(1, 0, 2, 3), axes=(1, 2, 3))
        mat = wi.transpose(0, 2, 3, 1).reshape(cout * k * k, cin)  # rows (o, ki, kj)
        stride = 2
    else:  # (Cout, Cin, k, k)
        cout, cin, k, _ = weight.shape
        wi, s = _integer_weights(weight, axes=(1, 2, 3))
        mat = wi.transpose(2, 3, 0, 1).reshape(k * k, cout, cin)  # one (Cout, Cin) matrix per tap
        stride = 1
    b = np.rint(np.ldexp(np.asarray(bias, dtype=np.float64), s + FRAC))
    if np.abs(b).max(initial=0) > BIAS_LIMIT:  # (both ends clip alike: exact, but the tables are not the model's)
        import warnings

        from ..errors import SaicmWarning

        warnings.warn(f"a {cout}-channel layer of the integer hyper-synthesis has near-zero weights (Σ|w| "
                      f"{float(np.abs(weight).sum(axis=(0, 2, 3) if transposed else (1, 2, 3)).max()):.1e}): its "
                      f"biases beyond ±{math.ldexp(BIAS_LIMIT, -(s + FRAC)):g} are clipped, so files code and decode "
                      "exactly but spend more bits than the model would (an early checkpoint, or a dead layer?)",
                      SaicmWarning, stacklevel=2)
    b = np.clip(b, -BIAS_LIMIT, BIAS_LIMIT).astype(np.int64)
    mat = np.ascontiguousarray(mat)
    taps = () if transposed else tuple(t for t in range(k * k) if mat[t].any())
    sets = _tap_sets(mat, k, transposed, taps)
    return IntLayer(mat, b, s, cin, cout, k, stride, transposed, leaky, relu, taps, sets)


def _tap_sets(weight: np.ndarray, k: int, transposed: bool, taps: tuple[int, ...]) -> tuple:
    """A layer as stride-1 convolutions, each giving the output rows s·r + a and columns s·c + b (s: the stride)
    from the taps that reach them, a tap reading the input at (r + dy, c + dx):
    → ((a, b, ((dy, dx, (Cout, Cin) weight), …)), …).

    A convolution (``weight`` (k·k, Cout, Cin), padding p = k//2) is one set, (0, 0), of its nonzero ``taps``,
    dy = i - p, dx = j - p. A transposed layer (stride 2, padding p; ``weight`` (Cout·k·k, Cin), rows (o, i, j)) is
    four, one per output phase: the output rows 2r + a and columns 2c + b take the taps i ≡ a + p and j ≡ b + p
    (mod 2), dy = (a + p - i)/2, dx = (b + p - j)/2."""
    p = k // 2
    if not transposed:
        return ((0, 0, tuple((t // k - p, t % k - p, weight[t]) for t in taps)),)
    w4 = weight.reshape(-1, k, k, weight.shape[1])
    return tuple((a, b, tuple(((a + p - i) // 2, (b + p - j) // 2, np.ascontiguousarray(w4[:, i, j]))
                              for i in range(k) if (i - a - p) % 2 == 0 for j in range(k) if (j - b - p) % 2 == 0))
                 for a in range(2) for b in range(2))


def _requantize(acc: np.ndarray, layer: IntLayer) -> np.ndarray:
    """Accumulators (integer-valued float64, units 2**-(shift+FRAC)) → activations (integer-valued float64, units
    2**-FRAC; the next layer's operand as it is, the stack's output converted to int64 once).

    The same integers as int64 arithmetic, computed in float64 because every step is exact there (and takes half the
    time of converting to int64 and back): ``acc·2**-shift`` scales by a power of two; ``+ 0.5`` then ``floor`` is
    rounding half up (``acc + 2**(shift-1)`` is an integer below 2**53, so the sum is representable); clipping and
    ReLU compare; LeakyReLU's ``floor((a + 50) / 100)`` of a negative ``a ≥ -2**25`` is exact because the division is
    correctly rounded and ``a + 50 = 100q + r`` puts the quotient at least 0.01 from ``q + 1`` while its rounding
    error is below 2**-27. A layer with a negative shift (weights summing above 2**27: no trained model) takes the
    int64 route it always took."""
    if layer.shift < 0:
        a = acc.astype(np.int64) << -layer.shift
        np.clip(a, -ACT_LIMIT, ACT_LIMIT, out=a)
        a = a.astype(np.float64)
    else:
        a = np.multiply(acc, math.ldexp(1.0, -layer.shift))
        a += 0.5
        np.floor(a, out=a)
        np.minimum(a, ACT_LIMIT, out=a)  # (np.clip takes twice as long on float64)
        np.maximum(a, -ACT_LIMIT, out=a)
    if layer.relu:
        np.maximum(a, 0, out=a)
    if layer.leaky:  # LeakyReLU, slope 1/100, rounded half up: max(a, 0) + floor((min(a, 0) + 50) / 100)
        neg = np.minimum(a, 0)
        neg += 50
        neg /= 100
        np.floor(neg, out=neg)
        np.maximum(a, 0, out=a)
        a += neg
    return a


def _conv(x: np.ndarray, layer: IntLayer, dtype=np.float64) -> np.ndarray:
    """Stride-1 'same' convolution of (Cin, H, W) integers (int64 or integer-valued float64) → (Cout, H, W)
    integer-valued float64, or ``dtype`` (int64 for a stack's last layer: no copy to convert; always int64 from the
    1×1 layer on one row: :func:`_pointwise`, in blocks of columns), by :func:`_convolve`."""
    cin, h, w = x.shape
    if layer.k == 1 and h == 1:  # pointwise on a list of positions: blocks of columns (the context model's
        # aggregation runs on its parts instead: IntegerConvStack.pointwise)
        return _pointwise(x, layer)
    return _convolve(x, layer, dtype)


def _pointwise(x: np.ndarray, layer: IntLayer) -> np.ndarray:
    """A 1×1 convolution of (Cin, 1, n) integers → (Cout, 1, n) int64, in blocks of columns."""
    return _pointwise_stack([(layer.weight[0], x.reshape(x.shape[0], -1))], [layer])[:, None, :]


def _pointwise_stack(blocks: list[tuple[np.ndarray, np.ndarray]], layers: list[IntLayer]) -> np.ndarray:
    """A chain of 1×1 layers on a list of positions, whose input is a concatenation of inputs never built:
    ``blocks`` holds (the first layer's weight columns of an input (Cout, C), that input (C, n) int64); input
    channels in no block are zero. → (Cout, n) int64 of the last layer. A block of columns (positions) runs through
    every layer on one thread (no wait between layers). Exact as the whole: each product and their sum are
    integers below 2**52 (a layer's bounds hold for any subset of its inputs)."""
    n = blocks[0][1].shape[1]
    out = np.empty((layers[-1].cout, n), np.int64)
    widest = max(max(layer.cin, layer.cout) for layer in layers)
    cols = max(1, BLOCK_VALUES // widest)
    cols = min(cols, -(-n // parallel_blocks(n // 256 + 1)))  # blocks of at least ~256 positions

    def block(c0: int) -> None:
        c1 = min(n, c0 + cols)
        acc = None
        for w, x in blocks:
            term = w @ np.asarray(x[:, c0:c1], np.float64)
            acc = term if acc is None else acc.__iadd__(term)
        for i, layer in enumerate(layers):
            if i:
                acc = layer.weight[0] @ a
            acc += layer.bias[:, None]
            a = _requantize(acc, layer)
        out[:, c0:c1] = a

    run_blocks(block, range(0, n, cols))
    return out


def _deconv(x: np.ndarray, layer: IntLayer, dtype=np.float64) -> np.ndarray:
    """Transposed convolution, stride 2, padding k//2, output padding 1: (Cin, H, W) integers → (Cout, 2H, 2W)
    integer-valued float64 (or ``dtype``, as :func:`_conv`): four stride-1 convolutions on the input, one per output
    phase (:func:`_tap_sets`; every output value takes only its own taps, no sums of zeros), run as
    :func:`_convolve` runs a convolution."""
    return _convolve(x, layer, dtype)


def _convolve(x: np.ndarray, layer: IntLayer, dtype) -> np.ndarray:
    """The layer's stride-1 convolutions (:func:`_tap_sets`) on (Cin, H, W) integers → (Cout, s·H, s·W) ``dtype``.

    One matrix product per tap on the zero-padded input flattened row by row: the tap (dy, dx) reads the flat
    input shifted by dy·(W+2m)+dx, a contiguous slice, so no patch matrix is built; the outputs of the 2m padding
    columns are computed and dropped. Blocks of input rows (with the output rows they give) run on the engine's
    threads (:mod:`saicm.engine.parallel`)."""
    cin, h, w = x.shape
    s, cout = layer.stride, layer.cout
    m = max((max(abs(dy), abs(dx)) for *_, taps in layer.tap_sets for dy, dx, _ in taps), default=0)  # padding
    wp = w + 2 * m
    xp = np.zeros((cin, h + 2 * m + 1, wp), np.float64)  # one spare row: the last tap's slice stays inside
    xp[:, m: m + h, m: m + w] = x
    flat = xp.reshape(cin, -1)
    out = np.empty((cout, s * h, s * w), dtype)
    rows = max(1, BLOCK_VALUES // max(1, max(cin, cout) * wp))
    rows = min(rows, -(-h // parallel_blocks(h)))

    def block(r0: int) -> None:
        r1 = min(h, r0 + rows)
        n = (r1 - r0) * wp
        for a, b, taps in layer.tap_sets:
            acc = np.zeros((cout, n), np.float64)
            for dy, dx, weight in taps:
                start = (r0 + m + dy) * wp + m + dx
                acc += weight @ flat[:, start: start + n]
            acc = acc.reshape(cout, r1 - r0, wp)[:, :, :w] + layer.bias[:, None, None]
            out[:, s * r0 + a: s * r1: s, b::s] = _requantize(acc, layer)

    run_blocks(block, range(0, h, rows))
    return out


class IntegerConvStack:
    """A chain of integer layers (:class:`IntLayer`): int64 activations in units of 2**-FRAC in and out."""

    def __init__(self, layers: list[IntLayer]):
        self.layers = layers
        self._columns: dict[tuple[int, int], np.ndarray] = {}  # (first column, count) → the first layer's (pointwise)

    @property
    def in_channels(self) -> int:
        return self.layers[0].cin

    @property
    def reach(self) -> int:
        """Input rows above and below that one output row depends on (rounded up): a transposed convolution reaches
        ⌈(k//2)/2⌉ of its input rows, a convolution k//2, each at its input's resolution (the hyper-synthesis of
        the shipped models, 5×5, 5×5, 3×3: 1 + 1/2 + 1/4 → 2)."""
        total, scale = Fraction(0), 1
        for layer in self.layers:
            if layer.transposed:
                total += Fraction(-(-(layer.k // 2) // layer.stride), scale)
                scale *= layer.stride
            else:
                total += Fraction(layer.k // 2, scale)
        return math.ceil(total)

    def pointwise(self, parts: list[tuple[int, np.ndarray]]) -> np.ndarray:
        """A stack of 1×1 layers on positions whose input is the channel-wise concatenation of ``parts``, never
        built: ``(first input channel, (C, n) int64)`` each, input channels in no part are zero (a context not
        there yet). (Cout, n) int64 out: the same integers as :meth:`__call__` on the whole input laid out
        (Cin, 1, n)."""
        if any(layer.k != 1 or layer.transposed for layer in self.layers):
            raise ValueError("pointwise() runs a stack of 1×1 layers")
        first = self.layers[0]
        blocks = []
        for c, x in parts:
            w = self._columns.get((c, x.shape[0]))
            if w is None:
                w = self._columns[c, x.shape[0]] = np.ascontiguousarray(first.weight[0][:, c: c + x.shape[0]])
            blocks.append((w, np.clip(x, -ACT_LIMIT, ACT_LIMIT)))
        with single_threaded_blas() if threads() > 1 else nullcontext():
            return _pointwise_stack(blocks, self.layers)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        """(Cin, h, w) int64 → (Cout, h', w') int64; the input saturates at ±ACT_LIMIT like every activation."""
        a = np.clip(np.asarray(x, dtype=np.int64), -ACT_LIMIT, ACT_LIMIT)
        with single_threaded_blas() if threads() > 1 else nullcontext():
            for i, layer in enumerate(self.layers):
                dtype = np.int64 if i == len(self.layers) - 1 else np.float64  # (float64 between layers)
                a = (_deconv if layer.transposed else _conv)(a, layer, dtype)
        return np.asarray(a, np.int64)


class IntegerHyperSynthesis(IntegerConvStack):
    """``h_s`` of a mean-scale hyperprior (CompressAI layout: deconv, LeakyReLU, deconv, LeakyReLU, conv3×3)
    as an exact integer network. Built from a state dict of numpy arrays (``h_s.0.weight`` …).
    Called on the hyper-latent (units 2**-FRAC) it gives (2M, 4h, 4w): the scales, then the means."""

    def __init__(self, state: dict, prefix: str = "h_s"):
        super().__init__([
            _layer(state[f"{prefix}.0.weight"], state[f"{prefix}.0.bias"], transposed=True, leaky=True),
            _layer(state[f"{prefix}.2.weight"], state[f"{prefix}.2.bias"], transposed=True, leaky=True),
            _layer(state[f"{prefix}.4.weight"], state[f"{prefix}.4.bias"], transposed=False, leaky=False),
        ])


def condition_network(state: dict, prefix: str, input_scale: np.ndarray) -> IntegerConvStack:
    """A scalable model's condition network (conv3×3, LeakyReLU, conv3×3, LeakyReLU, conv3×3) as an exact
    integer network whose input is scaled per channel by ``input_scale`` before the first layer.

    The network reads the machine layer's dequantised latent ``ŷ_b = ŷ_gained · g⁻¹``. The engine has
    ``ŷ_gained`` exactly (integers in units 2**-FRAC) and folds ``g⁻¹`` (``input_scale``: float32 values, e.g.
    from :func:`exact_exp`) into the first layer's weights; the product of two float32 numbers is exact in
    float64, so the folded weights are a deterministic function of the two files."""
    w0 = np.asarray(state[f"{prefix}.0.weight"], dtype=np.float64)
    scale = np.asarray(input_scale, dtype=np.float32).astype(np.float64)
    if w0.ndim != 4 or scale.shape != (w0.shape[1],):
        raise ValueError(f"{prefix}.0.weight {w0.shape} does not take {scale.shape} input channels")
    return IntegerConvStack([
        _layer(w0 * scale[None, :, None, None], state[f"{prefix}.0.bias"], transposed=False, leaky=True),
        _layer(state[f"{prefix}.2.weight"], state[f"{prefix}.2.bias"], transposed=False, leaky=True),
        _layer(state[f"{prefix}.4.weight"], state[f"{prefix}.4.bias"], transposed=False, leaky=False),
    ])


def exact_exp(values: np.ndarray) -> np.ndarray:
    """``exp`` of float32 values as float32, the same on every machine.

    NumPy's and PyTorch's float32 ``exp`` are vectorised approximations whose last bit may differ between
    instruction sets. Here each value is computed with Python's ``decimal`` (software arithmetic, 40 digits)
    and rounded to float64, then to float32: a fixed function of the input bits. Used for the gains (a few
    hundred values per model), where the result feeds the exact integer networks."""
    from decimal import Context, Decimal

    ctx = Context(prec=40)
    flat = np.asarray(values, dtype=np.float32).ravel()
    out = np.array([float(ctx.exp(Decimal(float(v)))) for v in flat], dtype=np.float64)
    with np.errstate(over="ignore"):  # (beyond float32's range: infinity, which the callers refuse)
        return out.astype(np.float32).reshape(np.shape(values))


def scale_thresholds(scale_table: np.ndarray) -> np.ndarray:
    """Integer thresholds: a scale of ``s`` units (2**-FRAC) takes table index ``#{i < L-1: s > t_i}``, which is
    CompressAI's ``build_indexes`` (index = count of table entries strictly below the scale)."""
    t = np.floor(np.ldexp(np.asarray(scale_table, dtype=np.float64), FRAC)).astype(np.int64)
    return t[:-1]


#: the largest lookup table :class:`ScaleIndex` builds (entries); beyond it, a binary search per scale
LUT_LIMIT = 1 << 20


class ScaleIndex:
    """Table index of every integer scale: ``#{i: thresholds[i] < s}`` (int32, same shape), exactly
    ``np.searchsorted(thresholds, s, side="left")``.

    Faster than that binary search (one gather and one comparison per scale): a bucket of 2**k scale units,
    2**k no wider than the smallest gap between thresholds, holds at most one threshold, so a lookup table
    of the count below each bucket's first value, plus one comparison with the next threshold, is exact.
    Thresholds that are not increasing and non-negative, or would need a table above :data:`LUT_LIMIT`
    entries, fall back to the binary search."""

    def __init__(self, thresholds: np.ndarray):
        t = np.asarray(thresholds, dtype=np.int64).reshape(-1)
        self.thresholds = t
        self.lut = None
        gaps = np.diff(t)
        if len(t) >= 2 and t[0] >= 0 and (gaps > 0).all():
            self.shift = int(gaps.min()).bit_length() - 1  # 2**shift ≤ the smallest gap
            self.top = int(t[-1]) + 1  # any scale above the last threshold counts them all
            buckets = (self.top >> self.shift) + 1
            if buckets <= LUT_LIMIT:
                starts = np.arange(buckets, dtype=np.int64) << self.shift
                self.lut = np.searchsorted(t, starts, side="left").astype(np.int32)
                self.next = np.append(t, np.iinfo(np.int64).max)  # the first threshold ≥ a bucket's start

    def __call__(self, scales: np.ndarray) -> np.ndarray:
        if self.lut is None:
            return np.searchsorted(self.thresholds, scales, side="left").astype(np.int32)
        s = np.clip(scales, 0, self.top)
        idx = self.lut[s >> self.shift]
        idx += s > self.next[idx]
        return idx
