"""Thread-count-independent inference.

PyTorch's CPU kernels (oneDNN) may split reductions differently for different
intra-op thread counts, so the same network gives slightly different floats
with 1 and with 2 threads. For a codec that is unacceptable on two counts: the
entropy decoder must rebuild exactly the scale indexes the encoder used, and
a decoded image must be the same bytes everywhere. Both paths here run every
kernel on one thread; the synthesis gets its parallelism back by decoding
horizontal strips of the latent (fixed height, plus a halo wider than the
transform's receptive field) concurrently in a thread pool. The strips are a
function of the latent size alone, so the output does not depend on how many
threads run them.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Callable

import torch
from torch import Tensor

from ..device import single_thread_kernels, single_thread_worker

__all__ = ["run_single_thread", "single_thread_kernels", "synthesize_in_strips"]


def run_single_thread(fn: Callable[[Tensor], Tensor], x: Tensor) -> Tensor:
    with single_thread_kernels():
        return fn(x)


def synthesize_in_strips(fn: Callable[[Tensor], Tensor], y: Tensor, scale: int,
                         strip: int = 16, halo: int = 2) -> Tensor:
    """``fn(y)`` computed strip by strip; ``scale`` = output rows per latent row.

    ``halo`` latent rows on each side must cover the receptive field of ``fn``
    (2 covers four stride-2 5×5 transposed convolutions; a test checks it).
    """
    h = y.size(-2)
    starts = list(range(0, h, strip))

    def one(s: int) -> Tensor:
        a, b = max(0, s - halo), min(h, s + strip + halo)
        single_thread_worker()  # (in a worker of the pool below: its own thread)
        out = fn(y[..., a:b, :])
        top = (s - a) * scale
        return out[..., top: top + (min(h, s + strip) - s) * scale, :]

    with single_thread_kernels() as n:
        if n <= 1 or len(starts) == 1:
            parts = [one(s) for s in starts]
        else:
            with ThreadPoolExecutor(max_workers=min(n, len(starts))) as pool:
                parts = list(pool.map(one, starts))
    return torch.cat(parts, dim=-2)
