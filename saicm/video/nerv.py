"""NeRV: a clip as a network from a frame index to the frame (Chen et al., NeurIPS 2021).

The frame index ``i`` of an ``N``-frame clip is normalised to ``t = i / N`` and
expanded by a positional encoding, ``[sin(b^k·π·t), cos(b^k·π·t)]`` for
``k = 0 … L−1`` (``b = 1.25``, ``L = 40`` by default); an MLP (GELU) maps it
to a small feature map of ``c0`` channels on a ``gh × gw`` grid; NeRV blocks
(3×3 convolution to ``C·s²`` channels → ``PixelShuffle(s)`` → GELU) grow it by
the product ``S`` of their strides to ``gh·S × gw·S`` ≥ the frame; a 1×1
convolution gives RGB through ``(tanh + 1) / 2``, cropped to the frame
(top-left). The grid is ``(ceil(H/S), ceil(W/S))``.

**Presets** (:data:`PRESETS`) fix the widths; the strides are chosen from the
frame size (:func:`plan_strides`) so that the grid stays small. The number of
parameters, hence the file size, grows with the preset (a user picks a
bitrate) and mildly with the frame size (the MLP's last layer feeds the grid).

**Configurations from files** are hostile: :func:`check_config` accepts only
the known keys with bounded values consistent with the frame size, and bounds
the parameter count and the work per pixel before anything is built.

**Rendering** (:func:`render`) is what the decoder runs and what the encoder
uses for its own reference: fixed batches of :data:`RENDER_BATCH` frames, each
computed with single-threaded kernels, the batches spread over a thread pool,
so the frames do not depend on the thread count.
"""

from __future__ import annotations

import contextlib
import math
from concurrent.futures import ThreadPoolExecutor
from typing import Iterator

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from ..device import single_thread_kernels, single_thread_worker

# the configurations, checks, counts and layout (no PyTorch: saicm info reads a header with them alone)
from .nerv_config import (  # noqa: F401
    ARCHITECTURE, PRESETS, DEFAULT_PRESET, PE_BASE, STRIDE_PLANS, MAX_PLAN_GRID, CONFIG_KEYS, ACTS, OUTPUTS,
    MAX_PE_LEVELS, MAX_WIDTH, MAX_MLP_LAYERS, MAX_BLOCKS, MAX_STRIDE, MAX_GRID_CELLS, MAX_PARAMS, MAX_MACS_PER_PIXEL,
    MAX_VALUES_PER_PIXEL, plan_strides, preset_widths, make_config, _int, _int_list, check_config, check_activations,
    count, _count, param_layout,
)

#: frames per decoder batch: fixed, so decoded frames do not depend on how many threads run the batches
RENDER_BATCH = 4


def positional_encoding(n_frames: int, levels: int, base: float) -> Tensor:
    """(n_frames, 2·levels) float32: [sin(b^k π t), cos(b^k π t)], t = i / n_frames.

    Computed for the whole clip at once in float64 (a function of the clip
    length alone: encoder and decoder get the same table) and rounded to float32.
    """
    t = torch.arange(n_frames, dtype=torch.float64) / n_frames
    freqs = (base ** torch.arange(levels, dtype=torch.float64)) * math.pi
    arg = t[:, None] * freqs[None, :]
    return torch.cat([torch.sin(arg), torch.cos(arg)], dim=1).to(torch.float32)


class NeRV(nn.Module):
    """The network of one clip; ``forward(pe_rows)`` → (B, 3, gh·S, gw·S) in [0, 1] (crop with ``[..., :H, :W]``)."""

    architecture = ARCHITECTURE

    def __init__(self, config: dict):
        super().__init__()
        self.config = dict(config)
        dims = [2 * config["pe_levels"], *config["mlp_hidden"]]
        self.grid = tuple(config["grid"])
        self.c0 = config["c0"]
        self.mlp = nn.ModuleList(nn.Linear(a, b) for a, b in zip(dims, dims[1:]))
        self.stem = nn.Linear(dims[-1], self.c0 * self.grid[0] * self.grid[1])
        cin = self.c0
        self.blocks = nn.ModuleList()
        self.strides = tuple(config["strides"])
        for c, s in zip(config["channels"], self.strides):
            self.blocks.append(nn.Conv2d(cin, c * s * s, 3, padding=1))
            cin = c
        self.head = nn.Conv2d(cin, 3, 1)

    def forward(self, pe: Tensor) -> Tensor:
        x = pe
        for lin in self.mlp:
            x = F.gelu(lin(x))
        x = F.gelu(self.stem(x)).view(-1, self.c0, *self.grid)
        for conv, s in zip(self.blocks, self.strides):
            x = F.gelu(F.pixel_shuffle(conv(x), s))
        return (torch.tanh(self.head(x)) + 1) * 0.5

    def channel_groups(self) -> dict[str, int]:
        """Per parameter: its number of quantisation groups (:func:`param_layout`)."""
        return {name: groups for name, _, groups in param_layout(self.config)}

    # --- the interface saicm.video.train and render use (shared with saicm.video.hnerv.HNeRV) -------
    def frame_inputs(self, n_frames: int) -> Tensor:
        """What the frames are computed from: the positional encoding of an ``n_frames`` clip."""
        return positional_encoding(n_frames, self.config["pe_levels"], self.config["pe_base"])

    def decode_frames(self, inputs: Tensor, idx, x: Tensor | None = None) -> Tensor:
        """Frames ``idx`` (a range or an index tensor) from :meth:`frame_inputs`; ``x`` (the frames) is unused."""
        if isinstance(idx, range):
            return self(inputs[idx.start: idx.stop])
        return self(inputs[idx])

    def prunable(self) -> list[str]:
        """Weights pruning may zero: every weight (rank ≥ 2), not the biases."""
        return [n for n, p in self.named_parameters() if p.dim() >= 2]



def build(config: dict, frames: int = 1) -> NeRV:
    return NeRV(config)


def frame_batches(n_frames: int, batch: int = RENDER_BATCH) -> list[range]:
    return [range(a, min(a + batch, n_frames)) for a in range(0, n_frames, batch)]


def _to_uint8(y: Tensor, height: int, width: int) -> Tensor:
    """(B, 3, H', W') in [0, 1] → (B, H, W, 3) uint8, rounded to nearest; NaN (a crafted network's) is 0, as in the
    image decoder (:func:`saicm.codec.tiling.to_pixels`): its cast to uint8 is the CPU's choice otherwise."""
    y = torch.nan_to_num(y[:, :, :height, :width], nan=0.0).clamp(0, 1).mul(255).round().to(torch.uint8)
    return y.permute(0, 2, 3, 1).contiguous()


def render(model: nn.Module, n_frames: int, height: int, width: int, threads: int | None = None,
           overlap: bool = False) -> Iterator[tuple[int, Tensor]]:
    """Decode every frame of a NeRV or HNeRV network: yields ``(first index, (B, H, W, 3) uint8)`` per batch.

    Batches are fixed (:data:`RENDER_BATCH` frames) and each is computed with
    single-threaded kernels; up to ``threads`` batches (default: torch's thread
    count) run at once. The output depends on neither.

    Computed in rounds of that many batches, yielded once the round is done: the caller's own thread count is back
    while it holds them (each batch was yielded inside the one-thread setting, so a caller running its own model on
    the frames as they came ran it on one thread, and kept one thread while it kept the generator). ``overlap``:
    for a caller that runs no PyTorch on the frames (saicm's own writers: PNG files, the ffmpeg pipe, the array of
    :func:`saicm.video.decode`), the next batches are computed while it holds one (up to 2·``threads`` in flight),
    PyTorch on one thread meanwhile: without it, a writer that takes 50 ms a batch made a 2.4 s decode 4.3–4.6 s.
    """
    inputs = model.frame_inputs(n_frames)
    model = model.eval()

    def one(r: range) -> Tensor:
        single_thread_worker()  # (in a worker of the pool below: its own thread)
        with torch.no_grad():
            return _to_uint8(model.decode_frames(inputs, r), height, width)

    batches = frame_batches(n_frames)
    with single_thread_kernels() as n:
        workers = max(1, min(threads or n, len(batches)))
    if overlap and workers > 1:
        with single_thread_kernels(), ThreadPoolExecutor(max_workers=workers) as pool:
            pending = []
            for r in batches:  # at most 2·workers batches in flight: memory stays bounded
                pending.append((r.start, pool.submit(one, r)))
                if len(pending) >= 2 * workers:
                    start, fut = pending.pop(0)
                    yield start, fut.result()
            for start, fut in pending:
                yield start, fut.result()
        return
    with contextlib.ExitStack() as stack:
        pool = stack.enter_context(ThreadPoolExecutor(max_workers=workers)) if workers > 1 else None
        for i in range(0, len(batches), workers):
            with single_thread_kernels():
                if pool is None:
                    done = [(r.start, one(r)) for r in batches[i: i + workers]]
                else:
                    futures = [(r.start, pool.submit(one, r)) for r in batches[i: i + workers]]
                    done = [(start, fut.result()) for start, fut in futures]
            yield from done
