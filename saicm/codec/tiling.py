"""Coding large images in bounded memory: analysis by tiles, the latent in strips, synthesis by tiles.

Below :data:`STRIP_SYMBOLS` latent symbols (4 megapixels for M = 128: every
image of the photo and COCO benchmarks, Full HD, 2048×2048) nothing here is
used and files are unchanged (format version 1).
Above it (format version 2):

- the analysis transform runs on overlapping tiles of the padded image
  (``TILE`` pixels plus a ``HALO`` wider than its receptive field, cut at the
  image border so the transform sees the same zero padding there); the
  uint8 image is converted to floats one tile at a time. Only the encoder
  does this, so tiles need not be bit-identical to a whole-image analysis;
- the y latent is entropy-coded in horizontal strips of a few latent rows
  (at most :data:`STRIP_TARGET` symbols each), so the coder's buffers (and
  the bounded decoder's padding, :mod:`saicm.entropy.bounded`) stay small;
- the synthesis runs on fixed tiles of the latent (``SYNTH_ROWS`` ×
  ``SYNTH_COLS`` plus a halo of ``SYNTH_HALO`` rows and columns), each on one
  thread, several tiles in parallel, straight into the uint8 output; the
  tiles are a function of the latent size only, so the decode is bit-exact
  across thread counts.

Peak memory then grows only with the latent (2–3 float copies of
M·H·W/256 values) and the uint8 image, not with the transforms' activations.
"""

from __future__ import annotations

import math
from concurrent.futures import ThreadPoolExecutor
from typing import Callable

import numpy as np

# PyTorch is imported by the functions that run transforms, so the strip layout (used by the portable
# engine as well) needs only numpy.

#: latent symbols above which an image is coded in strips (format version 2; format 3 by strips and tiles).
#: Part of the formats, not an encoder setting: decoders read it too (a format-1 stream above it is refused as old
#: or crafted; a version-1 human layer needs a machine layer below it; the synthesis runs by tiles above it, which
#: decides the last bit of the decoded pixels; the bounded decoder's PAD_MAX_SYMBOLS is at least it). Changing it
#: changes what files of earlier versions decode to, or whether they decode: a new value needs a new format version.
STRIP_SYMBOLS = 1 << 21
#: at most this many symbols per y strip
STRIP_TARGET = 1 << 18
#: analysis tiles: interior size and halo, in pixels (multiples of the latent stride 16; halo > receptive field)
TILE = 1024
HALO = 64
#: synthesis tiles in latent units, and their halo (covers four stride-2 5×5 transposed convolutions)
SYNTH_ROWS, SYNTH_COLS, SYNTH_HALO = 16, 64, 2


def needs_strips(channels: int, padded_h: int, padded_w: int, stride: int = 16) -> bool:
    return channels * (padded_h // stride) * (padded_w // stride) > STRIP_SYMBOLS


def strips_refusal(what: str, channels: int) -> str:
    """The one-line refusal of ``what`` (e.g. "--refine") for images coded in strips, with this model's threshold."""
    mp = STRIP_SYMBOLS * 256 / channels / 1e6
    return (f"{what} is not available for images coded in strips (above {mp:.1f} megapixels for a model of "
            f"{channels} latent channels)")


def strip_rows(channels: int, latent_w: int) -> int:
    """Latent rows per y strip: as many as fit :data:`STRIP_TARGET` symbols (at least one)."""
    return max(1, STRIP_TARGET // max(1, channels * latent_w))


def analyse_tiles_with(fn, rgb: np.ndarray, pad_bottom: int, pad_right: int, stride: int = 16,
                       tick: Callable[[int, int], None] | None = None) -> np.ndarray:
    """The analysis of the edge-replicated, padded image, tile by tile from the uint8 ``rgb`` (H, W, 3).

    ``fn`` maps a (1, 3, h, w) float32 array in [0, 1] to its (1, M, h/stride, w/stride) latent (any back-end);
    ``tick(done, total)`` is called after each tile (a progress bar's)."""
    h, w = rgb.shape[:2]
    ph, pw = h + pad_bottom, w + pad_right
    out = None
    total = len(range(0, ph, TILE)) * len(range(0, pw, TILE))
    done = 0
    for y0 in range(0, ph, TILE):
        for x0 in range(0, pw, TILE):
            y1, x1 = min(ph, y0 + TILE), min(pw, x0 + TILE)
            a0, b0 = max(0, y0 - HALO), max(0, x0 - HALO)
            a1, b1 = min(ph, y1 + HALO), min(pw, x1 + HALO)
            # rows/cols of the padded image → of the source (edge replication beyond it)
            rows = np.minimum(np.arange(a0, a1), h - 1)
            cols = np.minimum(np.arange(b0, b1), w - 1)
            tile = rgb[rows][:, cols].transpose(2, 0, 1)[None].astype(np.float32) / np.float32(255.0)
            t = fn(tile)
            if out is None:
                out = np.empty((1, t.shape[1], ph // stride, pw // stride), np.float32)
            r0, c0 = (y0 - a0) // stride, (x0 - b0) // stride
            out[..., y0 // stride: y1 // stride, x0 // stride: x1 // stride] = \
                t[..., r0: r0 + (y1 - y0) // stride, c0: c0 + (x1 - x0) // stride]
            done += 1
            if tick is not None:
                tick(done, total)
    return out


def to_pixels(x: np.ndarray) -> np.ndarray:
    """A synthesis output (C, H, W) in [0, 1] as uint8 (H, W, C): ``rint(clip(x, 0, 1)·255)``, in float32 (float64
    for a float64 ``x``: one rounding of the product, as the definition). A crafted latent can drive the float
    transforms to NaN or beyond ±1e36; those pixels are 0 (NaN) or clip, without NumPy's overflow or cast warning."""
    y = np.empty(x.shape[1:] + x.shape[:1], np.result_type(x.dtype, np.float32))  # (laid out (H, W, C): one pass)
    with np.errstate(over="ignore", invalid="ignore"):  # (·255 then clip to [0, 255]: the same values; ±inf clip)
        np.multiply(x.transpose(1, 2, 0), y.dtype.type(255.0), out=y)
    if not np.isfinite(y).all():
        np.nan_to_num(y, copy=False, nan=0.0)
    np.minimum(y, 255.0, out=y)
    np.maximum(y, 0.0, out=y)
    return np.rint(y, out=y).astype(np.uint8)


def synthesize_tiles_with(fn, y: np.ndarray, height: int, width: int, scale: int = 16, workers: int = 1,
                          tick: Callable[[int, int], None] | None = None) -> np.ndarray:
    """The uint8 image (height, width, 3) that the synthesis of ``y`` decodes to (clamped, rounded), by fixed tiles.

    ``fn`` maps a (1, M, h, w) float32 latent to its (1, 3, h·scale, w·scale) image; ``workers`` tiles run at once
    (the tiles are a function of the latent size only, so the pixels do not depend on it); ``tick(done, total)``
    is called after each tile, in the calling thread."""
    lh, lw = y.shape[-2:]
    out = np.empty((height, width, 3), np.uint8)
    tiles = [(r, c) for r in range(0, lh, SYNTH_ROWS) for c in range(0, lw, SYNTH_COLS)
             if r * scale < height and c * scale < width]

    def one(rc):
        r, c = rc
        a, b = max(0, r - SYNTH_HALO), min(lh, r + SYNTH_ROWS + SYNTH_HALO)
        p, q = max(0, c - SYNTH_HALO), min(lw, c + SYNTH_COLS + SYNTH_HALO)
        x = fn(np.ascontiguousarray(y[..., a:b, p:q]))
        top, left = (r - a) * scale, (c - p) * scale
        hh = min(height, (min(lh, r + SYNTH_ROWS)) * scale) - r * scale
        ww = min(width, (min(lw, c + SYNTH_COLS)) * scale) - c * scale
        out[r * scale: r * scale + hh, c * scale: c * scale + ww] = to_pixels(x[0, :, top: top + hh, left: left + ww])

    if workers <= 1 or len(tiles) == 1:
        for i, t in enumerate(tiles):
            one(t)
            if tick is not None:
                tick(i + 1, len(tiles))
    else:
        with ThreadPoolExecutor(max_workers=min(workers, len(tiles))) as pool:
            for i, _ in enumerate(pool.map(one, tiles)):
                if tick is not None:
                    tick(i + 1, len(tiles))
    return out


def _torch_fn(module):
    """A PyTorch module as a numpy → numpy function (channels-last inputs, as the whole-image path runs)."""
    import torch

    def fn(a: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            return module(torch.from_numpy(a).contiguous(memory_format=torch.channels_last)).float().numpy()

    return fn


def analyse_tiles(g_a, rgb: np.ndarray, pad_bottom: int, pad_right: int, stride: int = 16, tick=None):
    """:func:`analyse_tiles_with` of a PyTorch ``g_a``, as a tensor."""
    import torch

    return torch.from_numpy(analyse_tiles_with(_torch_fn(g_a), rgb, pad_bottom, pad_right, stride, tick))


def synthesize_tiles(g_s, y, height: int, width: int, scale: int = 16, tick=None) -> np.ndarray:
    """:func:`synthesize_tiles_with` of a PyTorch ``g_s`` on a latent tensor: tiles in parallel, one thread each."""
    from ..device import single_thread_kernels, single_thread_worker

    fn = _torch_fn(g_s)

    def one_thread(a: np.ndarray) -> np.ndarray:  # (in a worker of the pool: its own thread)
        single_thread_worker()
        return fn(a)

    with single_thread_kernels() as n:
        return synthesize_tiles_with(one_thread, y.numpy(), height, width, scale, workers=n, tick=tick)


def strip_count(latent_h: int, rows: int) -> int:
    return math.ceil(latent_h / rows)
