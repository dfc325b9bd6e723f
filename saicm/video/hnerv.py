"""HNeRV: NeRV with content-adaptive embeddings (Chen et al., CVPR 2023).

Where NeRV maps a frame index through a positional encoding and an MLP to its
first feature map, HNeRV gives every frame its own small **embedding**, a
``d × gh × gw`` tensor that an encoder computes from the frame itself:

- **while fitting** (the ``fit`` stage), a convolutional encoder (not stored:
  :class:`Encoder`, strided convolutions mirroring the decoder's strides,
  GELU) maps each frame, padded by replication to ``gh·S × gw·S``, to its
  embedding, and the decoder is trained end to end through it;
- **after fitting**, the encoder's embeddings of every frame are stored in the
  network as a parameter (``embeddings``, ``N × d × gh × gw``: :meth:`HNeRV.bake`)
  and the encoder is dropped; pruning and quantisation-aware fine-tuning then
  tune the decoder *and* the embeddings; the file holds both, the embeddings
  quantised with one step per frame and entropy-coded with their own adaptive
  model (:mod:`saicm.video.compress`).

The decoder is NeRV's: blocks of ``k×k`` convolution to ``C·s²`` channels →
``PixelShuffle(s)`` → GELU, the first with a 1×1 kernel (it reads the
embedding), the others 3×3, then a 1×1 convolution to RGB through
``(tanh + 1) / 2``, cropped to the frame. Strides come from the frame size with
a smaller grid than NeRV's (at most :data:`MAX_PLAN_GRID` cells) so that the
embeddings stay a small part of the file.

Configurations read from files are checked like NeRV's (:func:`check_config`):
known keys, bounded widths, the grid consistent with the frame size, the
embeddings, parameters and work per pixel bounded before anything is built.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from ..errors import SaicmError

# the configurations, checks, counts and layout (no PyTorch: saicm info reads a header with them alone)
from .hnerv_config import (  # noqa: F401
    ARCHITECTURE, CONFIG_KEYS, EMBED, MAX_EMBED, MAX_EMBEDDING_VALUES, MAX_KERNEL, MAX_PLAN_GRID, PRESETS,
    check_config, count, make_config, param_layout,
)

#: the encoder's widths, coarsest last (not stored in files: only the fit stage uses it)
ENCODER_WIDTHS = (16, 32, 48, 64, 64, 64, 64, 64)


class Encoder(nn.Module):
    """Frame → embedding, used only while fitting: per stride (finest first) a ``s×s`` convolution of stride
    ``s`` and a 3×3 convolution, GELU after each, then a 1×1 convolution to ``embed`` channels."""

    def __init__(self, config: dict):
        super().__init__()
        self.size = (config["grid"][0] * math.prod(config["strides"]), config["grid"][1] * math.prod(config["strides"]))
        layers: list[nn.Module] = []
        cin = 3
        for s, c in zip(reversed(config["strides"]), ENCODER_WIDTHS):
            layers += [nn.Conv2d(cin, c, s, stride=s), nn.GELU(), nn.Conv2d(c, c, 3, padding=1), nn.GELU()]
            cin = c
        layers.append(nn.Conv2d(cin, config["embed"], 1))
        self.net = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        ph, pw = self.size[0] - x.shape[-2], self.size[1] - x.shape[-1]
        if ph or pw:
            x = F.pad(x, (0, pw, 0, ph), mode="replicate")
        return self.net(x)


class HNeRV(nn.Module):
    """The decoder of one clip plus its embeddings; while ``encoder`` is set (the fit stage) the embeddings come
    from it instead. ``forward(emb)`` → (B, 3, gh·S, gw·S) in [0, 1]."""

    architecture = ARCHITECTURE

    def __init__(self, config: dict, frames: int, encoder: bool = True):
        super().__init__()
        self.config = dict(config)
        self.frames = frames
        gh, gw = config["grid"]
        self.embeddings = nn.Parameter(torch.zeros(frames, config["embed"], gh, gw))
        self.blocks = nn.ModuleList()
        self.strides = tuple(config["strides"])
        cin = config["embed"]
        for c, s, k in zip(config["channels"], self.strides, config["kernels"]):
            self.blocks.append(nn.Conv2d(cin, c * s * s, k, padding=k // 2))
            cin = c
        self.head = nn.Conv2d(cin, 3, 1)
        self.encoder: Encoder | None = Encoder(config) if encoder else None

    def forward(self, emb: Tensor) -> Tensor:
        x = emb
        for conv, s in zip(self.blocks, self.strides):
            x = F.gelu(F.pixel_shuffle(conv(x), s))
        return (torch.tanh(self.head(x)) + 1) * 0.5

    # --- the interface saicm.video.train and saicm.video.nerv.render use ---------------------------
    def frame_inputs(self, n_frames: int) -> None:
        if n_frames != self.frames:
            raise SaicmError(f"this HNeRV network holds {self.frames} frames, not {n_frames}")
        return None

    def decode_frames(self, inputs, idx, x: Tensor | None = None) -> Tensor:
        """Frames ``idx``: from the encoder's embeddings of ``x`` ((B, 3, H, W) in [0, 1]) while it is set, else
        from the stored embeddings."""
        if self.encoder is not None:
            if x is None:
                raise SaicmError("an HNeRV network still being fitted needs the frames")
            return self(self.encoder(x))
        if isinstance(idx, range):
            return self(self.embeddings[idx.start: idx.stop])
        return self(self.embeddings[idx])

    @torch.no_grad()
    def bake(self, frames_u8: Tensor, batch: int = 4) -> None:
        """Store the encoder's embeddings of every frame ((N, 3, H, W) uint8) and drop the encoder."""
        if self.encoder is None:
            return
        self.encoder.eval()
        dev = self.embeddings.device
        for a in range(0, frames_u8.shape[0], batch):
            x = frames_u8[a: a + batch].to(dev, torch.float32).div_(255)
            self.embeddings[a: a + batch] = self.encoder(x)
        self.drop_encoder()

    def drop_encoder(self) -> None:
        self.encoder = None

    def channel_groups(self) -> dict[str, int]:
        return {name: groups for name, _, groups in param_layout(self.config, self.frames)}

    def prunable(self) -> list[str]:
        """Weights pruning may zero: the decoder's (not the embeddings, not the encoder)."""
        return [n for n, p in self.named_parameters() if p.dim() >= 2 and n != "embeddings"
                and not n.startswith("encoder.")]


def build(config: dict, frames: int, encoder: bool = False) -> HNeRV:
    return HNeRV(config, frames, encoder=encoder)
