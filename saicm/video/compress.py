"""Weights → bytes: per-channel quantisation and the entropy coding of the quantised weights.

**Quantisation** (``bits`` = 8 by default): every parameter tensor is cut into
quantisation groups along its first dimension (one per output channel for
weights, one per feature-map channel for the MLP-to-grid layer, one per tensor
for biases: :meth:`saicm.video.nerv.NeRV.channel_groups`); a group's step is
``max|w| / (2^(bits−1) − 1)`` rounded *up* to a float16 (so no value leaves the
range), its symbols ``round(w / step)`` in ``[−Q, Q]``, ``Q = 2^(bits−1) − 1``.
Decoding is ``float32(q) · float32(step)``, the same arithmetic on both sides.
Pruned weights are exact zeros and stay so.

**Entropy coding** (:func:`encode_symbols` / :func:`decode_symbols`): see
:mod:`saicm.video.bitstream` for the layout and the module docstring of
:func:`encode_symbols` for the model.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from ..entropy.tables import coder_errors
from ..errors import FormatError


@dataclass
class QTensor:
    """One quantised parameter tensor."""

    name: str
    shape: tuple[int, ...]
    groups: int
    steps: np.ndarray  # (groups,) float16
    symbols: np.ndarray  # (numel,) int16 in [-Q, Q], row-major

    def dequantise(self) -> torch.Tensor:
        q = torch.from_numpy(self.symbols.astype(np.float32)).view(self.groups, -1)
        s = torch.from_numpy(self.steps.astype(np.float32)).view(-1, 1)
        return (q * s).view(self.shape)


def qmax(bits: int) -> int:
    return (1 << (bits - 1)) - 1


def _steps_up(amax: torch.Tensor, q: int) -> np.ndarray:
    """float16 steps ≥ amax / q (rounded up; never 0; 1 for all-zero groups)."""
    want = (amax.double() / q).numpy()
    with np.errstate(over="ignore"):  # too large for float16: refused below in one line, not warned of first
        s16 = want.astype(np.float16)
    low = s16.astype(np.float64) < want
    s16[low] = np.nextafter(s16[low], np.float16(np.inf))
    s16[(amax == 0).numpy()] = np.float16(1.0)
    tiny = np.float16(2.0 ** -24)  # smallest positive float16
    s16[s16 < tiny] = tiny
    if not np.isfinite(s16).all():
        raise FormatError("a weight is too large to quantise (the network diverged)")
    return s16


def quantise_tensor(name: str, w: torch.Tensor, groups: int, bits: int) -> QTensor:
    q = qmax(bits)
    g = w.detach().to(torch.float32).cpu().reshape(groups, -1)
    if not torch.isfinite(g).all():
        raise FormatError(f"cannot quantise {name}: it holds non-finite values (the network diverged)")
    steps = _steps_up(g.abs().amax(dim=1), q)
    s = torch.from_numpy(steps.astype(np.float32)).view(-1, 1)
    sym = torch.round(g / s).clamp_(-q, q).to(torch.int16)
    return QTensor(name=name, shape=tuple(w.shape), groups=groups, steps=steps, symbols=sym.flatten().numpy())


def quantise(model: nn.Module, bits: int) -> list[QTensor]:
    """Every stored parameter of ``model`` (those of its ``channel_groups()``:
    :meth:`~saicm.video.nerv.NeRV.channel_groups`, :meth:`~saicm.video.hnerv.HNeRV.channel_groups`) quantised, in file
    order."""
    groups = model.channel_groups()
    params = dict(model.named_parameters())
    return [quantise_tensor(n, params[n], g, bits) for n, g in groups.items()]


def load_quantised(model: nn.Module, tensors: list[QTensor]) -> nn.Module:
    """Set ``model``'s parameters to the dequantised values (what the decoder computes)."""
    params = dict(model.named_parameters())
    with torch.no_grad():
        for t in tensors:
            params[t.name].copy_(t.dequantise())
    return model


def fake_quantise(model: nn.Module, bits: int) -> None:
    """Replace every parameter, in place, by its quantised value (for quantisation-aware training)."""
    groups = model.channel_groups()
    q = qmax(bits)
    with torch.no_grad():
        for n, p in model.named_parameters():
            if n not in groups:  # not stored (HNeRV's encoder)
                continue
            g = p.detach().reshape(groups[n], -1)
            if not torch.isfinite(g).all():
                continue  # left as is: the loss goes non-finite and the divergence guard rolls back
            steps = torch.from_numpy(_steps_up(g.abs().amax(dim=1).cpu(), q).astype(np.float32)).to(p.device)
            p.copy_((torch.round(g / steps.view(-1, 1)).clamp(-q, q) * steps.view(-1, 1)).view_as(p))


# --- entropy coding of the symbols ------------------------------------------------------------------
#
# Coder 1: an adaptive categorical model per kind of tensor (weights: rank >= 2; biases: rank 1; HNeRV's
# embeddings), carried across tensors. The symbols of the tensors are coded in order, each tensor in chunks of
# 16, 32, ... up to 1024
# symbols; a chunk is coded with the categorical distribution ``1 + INCREMENT·count[s]`` over the alphabet
# [-Q, Q] (a prior of half a count per symbol, Krichevsky-Trofimov style), ``count`` holding every symbol of that
# kind coded before the chunk. The decoder rebuilds the same integer counts from what it has decoded, so no table
# is stored. The coder is constriction's ANS (Rust, bounds-checked: garbage decodes to symbols of the alphabet or
# fails, never reads outside its buffer). Measured on a trained network (docs/video.md#entropy-coding): within
# 0.5 % of lzma and 9 % below zlib; the rate is set by the quantiser, not by the coder.

INCREMENT = 2
FIRST_CHUNK = 16
MAX_CHUNK = 1024


def chunks(n: int) -> list[tuple[int, int]]:
    """(start, stop) of the chunks of an ``n``-symbol tensor: 16, 32, 64, ... up to 1024 symbols."""
    out, a, size = [], 0, FIRST_CHUNK
    while a < n:
        out.append((a, min(n, a + size)))
        a += size
        size = min(size * 2, MAX_CHUNK)
    return out


def _kind(shape, name: str | None = None) -> str:
    if name == "embeddings":
        return "e"
    return "b" if len(shape) == 1 else "w"


def _chunk_models(symbol_arrays, shapes, names, q: int):
    """(chunk symbols as alphabet indexes, frequencies) in coding order, with the counts the model has seen."""
    k = 2 * q + 1
    counts = {kind: np.zeros(k, np.int64) for kind in "wbe"}
    for sym, shape, name in zip(symbol_arrays, shapes, names):
        cnt = counts[_kind(shape, name)]
        for a, b in chunks(int(np.prod(shape))):
            yield sym, a, b, 1 + INCREMENT * cnt
            if sym is not None:
                cnt += np.bincount(sym[a:b], minlength=k)


def _categorical(freq: np.ndarray):
    import constriction

    return constriction.stream.model.Categorical(freq.astype(np.float64), perfect=False)


def encode_symbols(tensors: list[QTensor], bits: int) -> bytes:
    """Coder 1: every tensor's symbols, adaptive categorical ANS (see :mod:`saicm.video.bitstream`)."""
    import constriction

    q = qmax(bits)
    arrays = [(t.symbols.astype(np.int64) + q).astype(np.int32) for t in tensors]
    jobs = [(sym[a:b], freq.copy())
            for sym, a, b, freq in _chunk_models(arrays, [t.shape for t in tensors], [t.name for t in tensors], q)]
    coder = constriction.stream.stack.AnsCoder()
    for sym, freq in reversed(jobs):  # a stack: the last chunk goes in first, so the first comes out first
        coder.encode_reverse(sym, _categorical(freq))
    return np.asarray(coder.get_compressed(), dtype="<u4").tobytes()


def decode_symbols(data: bytes, shapes: list[tuple[int, ...]], bits: int, names: list[str] | None = None
                   ) -> list[np.ndarray]:
    """The symbols (int16 in [−Q, Q]) of tensors of ``shapes`` (named ``names``: the coding model of HNeRV's
    embeddings is their own) from coder-1 bytes; FormatError if they do not fit."""
    import constriction

    q = qmax(bits)
    k = 2 * q + 1
    words = np.frombuffer(data, dtype="<u4").astype(np.uint32)
    with coder_errors("corrupt payload (the coded symbols do not start a valid stream)"):
        coder = constriction.stream.stack.AnsCoder(words)
    counts = {kind: np.zeros(k, np.int64) for kind in "wbe"}
    out = []
    for shape, name in zip(shapes, names or [None] * len(shapes)):
        n = int(np.prod(shape))
        sym = np.empty(n, np.int64)
        cnt = counts[_kind(shape, name)]
        for a, b in chunks(n):
            with coder_errors("corrupt payload (the coded symbols end too early)"):
                got = np.asarray(coder.decode(_categorical(1 + INCREMENT * cnt), b - a), dtype=np.int64)
            if got.shape != (b - a,) or got.min(initial=0) < 0 or got.max(initial=0) >= k:
                raise FormatError("corrupt payload (coded symbols out of range)")
            sym[a:b] = got
            cnt += np.bincount(got, minlength=k)
        out.append((sym - q).astype(np.int16))
    if not coder.is_empty():
        raise FormatError("corrupt payload (bytes left after the last coded symbol)")
    return out
