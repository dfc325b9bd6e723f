"""LIC-TCM: mixed Transformer–CNN transforms with a channel-wise, attention-based entropy model.

The backbone of SA-ICM and of ICM-v1 (J. Liu, H. Sun, J. Katto, "Learned Image Compression with
Mixed Transformer-CNN Architectures", CVPR 2023), written for saicm from the facts in
``docs/tcm.md`` (module tree, forward order, entropy model and checkpoint layout of the authors'
released weights); state-dict keys and shapes are those of the released checkpoints, so their
files load key for key (:func:`read_released_checkpoint`, ``saicm import-checkpoint``). The module
structure and parameter names therefore follow the authors' code (github.com/jmliu206/LIC_TCM, MIT
licence; its notice is in the repository's ``NOTICE`` file).

Structure (``2N`` channels inside the transforms; ``N`` of them in the CNN branch and ``N`` in the
Swin branch of every conv-transformer block, "CTB"):

- ``g_a``: down block 3→2N, CTBs, down block, CTBs, down block, CTBs, conv 3×3 s2 2N→M (y at H/16);
- ``h_a``: down block M→2N, CTBs (window ``hyper_window``), conv 3×3 s2 2N→192 (z at H/64);
- ``h_mean_s`` / ``h_scale_s``: up block 192→2N, CTBs, sub-pixel conv 2N→M: mean and scale priors;
- y in ``num_slices`` slices; slice i: context = prior + earlier decoded slices → windowed-attention
  gate (``atten_*``) → three 3×3 convs (``cc_*_transforms``) → μ_i, σ_i (σ used as is); the
  Gaussian conditional codes round(y_i − μ_i); latent residual prediction adds
  0.5·tanh(``lrp_transforms[i]``(attended mean context, ŷ_i)) to ŷ_i;
- ``g_s``: up block M→2N, CTBs, up block, CTBs, up block, CTBs, sub-pixel conv 2N→3.

The real bitstream is the released code's: one rANS stream for all y slices (slice order, each
slice in channel, row, column order) plus the entropy bottleneck's z string.

Decoding is bit-exact across thread counts and processes: everything that decides the coder's
tables (both hyper syntheses, the attention gates, the cc transforms and the LRP) runs on one thread
at both ends, and so does ``g_s``, whole: its shifted-window attention makes strips with halos
inexact, so :func:`saicm.models.determinism.synthesize_in_strips` is not used (``strip_safe = False``).
"""

from __future__ import annotations

import math
from typing import Sequence

import torch
from . import _compressai  # noqa: F401  (first: CompressAI's import-time warning silenced)
from compressai.entropy_models import EntropyBottleneck, GaussianConditional
from compressai.layers import (AttentionBlock, ResidualBlock, ResidualBlockUpsample, ResidualBlockWithStride,
                               conv3x3, subpel_conv3x3)
from compressai.models.base import CompressionModel
from torch import Tensor, nn

from ..entropy.bounded import coder_tables, encode_stream
from .determinism import run_single_thread, single_thread_kernels
from .registry import register_architecture

# --- building blocks -----------------------------------------------------------------------------

#: attention logits computed at once, at most (heads · batch · windows · T²): windows are attended in chunks so
#: that memory does not grow with the image (64 MiB of fp32 logits); the chunks depend on the shapes only, so the
#: results do not depend on the thread count
ATTENTION_CHUNK = 1 << 24


class WindowAttention(nn.Module):
    """Multi-head self-attention inside w×w windows (``shifted``: windows moved by w/2, seam masked).

    Input and output are channels-last (B, H, W, C); H and W must be multiples of ``window``.
    One linear layer gives q, k, v (in that order, each head-major); logits are q·k scaled by
    head_dim^-½ plus a learned relative-position bias stored as [heads, 2w−1, 2w−1].
    """

    def __init__(self, dim: int, head_dim: int, window: int, shifted: bool):
        super().__init__()
        if head_dim < 1 or dim % head_dim:
            raise ValueError(f"attention width {dim} is not a multiple of the head width {head_dim}")
        self.dim, self.head_dim, self.heads = dim, head_dim, dim // head_dim
        self.window, self.shifted = window, shifted
        self.shift = window // 2 if shifted else 0
        self.scale = head_dim ** -0.5
        self.embedding_layer = nn.Linear(dim, 3 * dim)
        self.relative_position_params = nn.Parameter(torch.zeros(self.heads, 2 * window - 1, 2 * window - 1))
        nn.init.trunc_normal_(self.relative_position_params, std=0.02)
        self.linear = nn.Linear(dim, dim)
        # token p = (r, c) in raster order; bias[h, p, q] = params[h, r_p − r_q + w − 1, c_p − c_q + w − 1]
        r = torch.arange(window).repeat_interleave(window)
        c = torch.arange(window).repeat(window)
        index = (r[:, None] - r[None, :] + window - 1) * (2 * window - 1) + (c[:, None] - c[None, :] + window - 1)
        self.register_buffer("rel_index", index, persistent=False)

    def relative_bias(self) -> Tensor:
        t = self.window * self.window
        return self.relative_position_params.flatten(1)[:, self.rel_index.reshape(-1)].view(self.heads, t, t)

    def seam_mask(self, nh: int, nw: int, device) -> Tensor:
        """(nh·nw, T, T) True where the cyclic shift put tokens from opposite sides in one window."""
        w, s = self.window, self.window - self.shift
        t = torch.arange(w * w, device=device)
        top = (t // w) < s
        left = (t % w) < s
        rows = top[:, None] != top[None, :]
        cols = left[:, None] != left[None, :]
        mask = torch.zeros(nh, nw, w * w, w * w, dtype=torch.bool, device=device)
        mask[-1] |= rows
        mask[:, -1] |= cols
        return mask.view(nh * nw, w * w, w * w)

    def _attend(self, x: Tensor, bias: Tensor, mask: Tensor | None) -> Tensor:
        """Attention inside each window of ``x`` (B, windows, T, C)."""
        b, n, t, c = x.shape
        qkv = self.embedding_layer(x).view(b, n, t, 3, self.heads, self.head_dim)
        qkv = qkv.permute(3, 4, 0, 1, 2, 5)  # (3, heads, B, windows, T, head_dim)
        q, k, v = qkv[0], qkv[1], qkv[2]
        sim = torch.matmul(q, k.transpose(-2, -1)) * self.scale + bias
        if mask is not None:
            sim = sim.masked_fill(mask, float("-inf"))
        out = torch.matmul(sim.softmax(dim=-1), v)  # (heads, B, windows, T, head_dim)
        return self.linear(out.permute(1, 2, 3, 0, 4).reshape(b, n, t, c))

    def forward(self, x: Tensor) -> Tensor:
        b, h, w_, c = x.shape
        w = self.window
        if h % w or w_ % w:
            raise ValueError(f"window attention needs sides that are multiples of {w}, got {h}x{w_}")
        if self.shift:
            x = torch.roll(x, shifts=(-self.shift, -self.shift), dims=(1, 2))
        nh, nw = h // w, w_ // w
        t = w * w
        x = x.reshape(b, nh, w, nw, w, c).permute(0, 1, 3, 2, 4, 5).reshape(b, nh * nw, t, c)
        mask = self.seam_mask(nh, nw, x.device) if self.shift else None
        bias = self.relative_bias()[:, None, None]
        per = max(1, ATTENTION_CHUNK // (self.heads * b * t * t))
        if nh * nw <= per:
            out = self._attend(x, bias, mask)
        else:
            out = torch.cat([self._attend(x[:, i: i + per], bias, None if mask is None else mask[i: i + per])
                             for i in range(0, nh * nw, per)], dim=1)
        out = out.view(b, nh, nw, w, w, c).permute(0, 1, 3, 2, 4, 5).reshape(b, h, w_, c)
        if self.shift:
            out = torch.roll(out, shifts=(self.shift, self.shift), dims=(1, 2))
        return out


class SwinBlock(nn.Module):
    """Pre-norm transformer block on channels-last maps: x + attn(LN(x)), then x + MLP(LN(x)) (MLP 4×, GELU)."""

    def __init__(self, dim: int, head_dim: int, window: int, shifted: bool):
        super().__init__()
        self.ln1 = nn.LayerNorm(dim)
        self.msa = WindowAttention(dim, head_dim, window, shifted)
        self.ln2 = nn.LayerNorm(dim)
        self.mlp = nn.Sequential(nn.Linear(dim, 4 * dim), nn.GELU(), nn.Linear(4 * dim, dim))

    def forward(self, x: Tensor) -> Tensor:
        x = x + self.msa(self.ln1(x))
        return x + self.mlp(self.ln2(x))


class SwinPair(nn.Module):
    """A W block then an SW block, on an NCHW map."""

    def __init__(self, dim: int, head_dim: int, window: int):
        super().__init__()
        self.block_1 = SwinBlock(dim, head_dim, window, shifted=False)
        self.block_2 = SwinBlock(dim, head_dim, window, shifted=True)

    def forward(self, x: Tensor) -> Tensor:
        t = x.permute(0, 2, 3, 1)
        return self.block_2(self.block_1(t)).permute(0, 3, 1, 2)


class ConvTransBlock(nn.Module):
    """CTB: 1×1 conv, split into a CNN branch (residual block, plus its input once more) and a Swin branch,
    concatenate (CNN first), 1×1 conv, add the block input."""

    def __init__(self, conv_dim: int, trans_dim: int, head_dim: int, window: int, shifted: bool):
        super().__init__()
        self.conv_dim, self.trans_dim = conv_dim, trans_dim
        self.trans_block = SwinBlock(trans_dim, head_dim, window, shifted)
        self.conv1_1 = nn.Conv2d(conv_dim + trans_dim, conv_dim + trans_dim, 1)
        self.conv1_2 = nn.Conv2d(conv_dim + trans_dim, conv_dim + trans_dim, 1)
        self.conv_block = ResidualBlock(conv_dim, conv_dim)

    def forward(self, x: Tensor) -> Tensor:
        conv_x, trans_x = torch.split(self.conv1_1(x), (self.conv_dim, self.trans_dim), dim=1)
        conv_x = self.conv_block(conv_x) + conv_x
        trans_x = self.trans_block(trans_x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)
        return x + self.conv1_2(torch.cat((conv_x, trans_x), dim=1))


class SWAttention(AttentionBlock):
    """The entropy model's attention gate: u = 1×1 conv (C→inter); v = SwinPair(u);
    out = 1×1 conv(conv_a(u)·sigmoid(conv_b(v)) + u) (inter→C). ``conv_a``/``conv_b`` are CompressAI's."""

    def __init__(self, channels: int, head_dim: int, window: int, inter_dim: int):
        super().__init__(N=inter_dim)
        self.non_local_block = SwinPair(inter_dim, head_dim, window)
        self.in_conv = nn.Conv2d(channels, inter_dim, 1)
        self.out_conv = nn.Conv2d(inter_dim, channels, 1)

    def forward(self, x: Tensor) -> Tensor:
        u = self.in_conv(x)
        out = self.conv_a(u) * torch.sigmoid(self.conv_b(self.non_local_block(u))) + u
        return self.out_conv(out)


class PlainLayoutConv(nn.Conv2d):
    """A convolution run in the plain NCHW layout whatever the layouts of its input and weight.

    With PyTorch 2.14.1 on CPU, the channels-last backward of a 1×1 stride-2 convolution of a 3-channel input
    (``g_a.0.skip``) corrupts the heap (``free(): invalid next size``, then an abort or a segfault; reproduced
    with a bare ``F.conv2d``); the trainer and saicm's loader put models in channels-last. Same weights and keys.
    """

    def forward(self, x: Tensor) -> Tensor:
        return self._conv_forward(x.contiguous(), self.weight.clone(memory_format=torch.contiguous_format), self.bias)


class Transform(nn.Sequential):
    """A TCM transform. ``strip_safe``: whether decoding it in strips with halos is exact (no: shifted
    windows see the whole map's window grid), read by callers that would otherwise synthesise in strips."""

    strip_safe = False


def _stage(n: int, depth: int, head_dim: int, window: int) -> list[nn.Module]:
    return [ConvTransBlock(n, n, head_dim, window, shifted=bool(i % 2)) for i in range(depth)]


def _cc(cin: int, hidden: Sequence[int], cout: int) -> nn.Sequential:
    return nn.Sequential(conv3x3(cin, hidden[0]), nn.GELU(), conv3x3(hidden[0], hidden[1]), nn.GELU(),
                         conv3x3(hidden[1], cout))


def _ste_round(x: Tensor) -> Tensor:
    return torch.round(x) - x.detach() + x


# --- the model -----------------------------------------------------------------------------------

#: the authors' released configuration (SA-ICM ``icm_78``/``icm_93``, ICM-v1 ``icm``): LIC-TCM large
RELEASED = dict(N=128, M=320, num_slices=5, max_support_slices=5, depths=[2, 2, 2, 2, 2, 2],
                head_dims=[8, 16, 32, 32, 16, 8], window=8, hyper_depth=2, hyper_window=4, hyper_head_dim=32,
                atten_window=8, atten_head_dim=16, atten_inter_dim=128, cc_hidden=[224, 128], z_channels=192,
                synthesis_channels=None)
#: ICM-v1's additional-information codec ``ica`` (m = 4): 4 slices of 64, a 256-channel latent, and a synthesis
#: that reads the 320-channel fused latent
RELEASED_ICA = dict(RELEASED, M=256, num_slices=4, synthesis_channels=320)
#: the paper's sizes S/M/L (N = 64/96/128, everything else as released)
PRESETS = {"S": dict(RELEASED, N=64), "M": dict(RELEASED, N=96), "L": dict(RELEASED), "released": dict(RELEASED),
           "released-ica": dict(RELEASED_ICA)}


@register_architecture("tcm")
class TCM(CompressionModel):
    """LIC-TCM, single rate (trained for one λ: ``lambdas`` holds it; quality 1 is the only one).

    Args:
        N: width of each branch of a CTB (transforms run at 2N channels).
        M: channels of y (``num_slices`` slices of M/num_slices).
        num_slices, max_support_slices: slices of y; earlier slices a slice's context may use.
        depths: CTBs per stage: g_a stages 1-3, g_s stages 1-3.
        head_dims: attention head width per stage, same order (heads = N / head width).
        window: attention window of the main transforms; hyper_window / hyper_head_dim / hyper_depth:
            the same for the hyper transforms.
        atten_window, atten_head_dim, atten_inter_dim: the entropy model's attention gates.
        cc_hidden: hidden widths of the cc and LRP transforms.
        z_channels: channels of the hyper-latent z.
        synthesis_channels: input channels of g_s (default M; 320 in ICM-v1's additional codec, whose
            synthesis decodes the fused latent).
        lambdas: the one λ the model was trained for (L = R + λ·255²·D).
    """

    def __init__(self, N: int = 128, M: int = 320, num_slices: int = 5, max_support_slices: int = 5,
                 depths: Sequence[int] = (2, 2, 2, 2, 2, 2), head_dims: Sequence[int] = (8, 16, 32, 32, 16, 8),
                 window: int = 8, hyper_depth: int = 2, hyper_window: int = 4, hyper_head_dim: int = 32,
                 atten_window: int = 8, atten_head_dim: int = 16, atten_inter_dim: int = 128,
                 cc_hidden: Sequence[int] = (224, 128), z_channels: int = 192, synthesis_channels: int | None = None,
                 lambdas: Sequence[float] = (0.05,)):
        super().__init__()
        depths, head_dims, cc_hidden = [int(v) for v in depths], [int(v) for v in head_dims], [int(v) for v in cc_hidden]
        lambdas = [float(v) for v in lambdas]
        if len(depths) != 6 or len(head_dims) != 6 or len(cc_hidden) != 2:
            raise ValueError("depths and head_dims take 6 values (g_a stages 1-3, g_s stages 1-3), cc_hidden 2")
        if num_slices < 1 or M % num_slices:
            raise ValueError(f"M = {M} is not a multiple of num_slices = {num_slices}")
        if len(lambdas) != 1 or not lambdas[0] > 0:
            raise ValueError("tcm is single-rate: lambdas takes one positive value")
        for name, v in (("window", window), ("hyper_window", hyper_window), ("atten_window", atten_window)):
            if v < 1:
                raise ValueError(f"{name} must be >= 1")
        syn = M if synthesis_channels is None else int(synthesis_channels)
        self.config = {"N": N, "M": M, "num_slices": num_slices, "max_support_slices": max_support_slices,
                       "depths": depths, "head_dims": head_dims, "window": window, "hyper_depth": hyper_depth,
                       "hyper_window": hyper_window, "hyper_head_dim": hyper_head_dim, "atten_window": atten_window,
                       "atten_head_dim": atten_head_dim, "atten_inter_dim": atten_inter_dim,
                       "cc_hidden": cc_hidden, "z_channels": z_channels, "synthesis_channels": synthesis_channels,
                       "lambdas": lambdas}
        self.num_slices, self.max_support_slices = num_slices, max_support_slices
        self.slice_channels = M // num_slices
        self.M = M
        c2 = 2 * N
        first = ResidualBlockWithStride(3, c2, 2)
        first.skip = PlainLayoutConv(3, c2, kernel_size=1, stride=2)
        self.g_a = Transform(
            first, *_stage(N, depths[0], head_dims[0], window),
            ResidualBlockWithStride(c2, c2, 2), *_stage(N, depths[1], head_dims[1], window),
            ResidualBlockWithStride(c2, c2, 2), *_stage(N, depths[2], head_dims[2], window),
            conv3x3(c2, M, stride=2))
        self.g_s = Transform(
            ResidualBlockUpsample(syn, c2, 2), *_stage(N, depths[3], head_dims[3], window),
            ResidualBlockUpsample(c2, c2, 2), *_stage(N, depths[4], head_dims[4], window),
            ResidualBlockUpsample(c2, c2, 2), *_stage(N, depths[5], head_dims[5], window),
            subpel_conv3x3(c2, 3, 2))
        self.h_a = Transform(ResidualBlockWithStride(M, c2, 2), *_stage(N, hyper_depth, hyper_head_dim, hyper_window),
                             conv3x3(c2, z_channels, stride=2))
        self.h_mean_s = Transform(ResidualBlockUpsample(z_channels, c2, 2),
                                  *_stage(N, hyper_depth, hyper_head_dim, hyper_window), subpel_conv3x3(c2, M, 2))
        self.h_scale_s = Transform(ResidualBlockUpsample(z_channels, c2, 2),
                                   *_stage(N, hyper_depth, hyper_head_dim, hyper_window), subpel_conv3x3(c2, M, 2))
        s = self.slice_channels

        def ctx(i: int) -> int:
            return M + s * min(i, max_support_slices)

        self.atten_mean = nn.ModuleList(
            nn.Sequential(SWAttention(ctx(i), atten_head_dim, atten_window, atten_inter_dim)) for i in range(num_slices))
        self.atten_scale = nn.ModuleList(
            nn.Sequential(SWAttention(ctx(i), atten_head_dim, atten_window, atten_inter_dim)) for i in range(num_slices))
        self.cc_mean_transforms = nn.ModuleList(_cc(ctx(i), cc_hidden, s) for i in range(num_slices))
        self.cc_scale_transforms = nn.ModuleList(_cc(ctx(i), cc_hidden, s) for i in range(num_slices))
        self.lrp_transforms = nn.ModuleList(_cc(ctx(i) + s, cc_hidden, s) for i in range(num_slices))
        self.entropy_bottleneck = EntropyBottleneck(z_channels)
        self.gaussian_conditional = GaussianConditional(None)
        # Not in the state dict: the released checkpoints have exactly the keys above.
        self.register_buffer("lambdas", torch.tensor(lambdas, dtype=torch.float32), persistent=False)
        #: pad sides to a multiple of this: every window grid must tile its map (g_a/g_s stages at H/2..H/8,
        #: hyper CTBs at H/32, entropy attention at H/16) and z (H/64) must be whole
        self.multiple = _lcm(64, 8 * window, 32 * hyper_window, 16 * atten_window)
        #: smallest padded side: the entropy-model attention needs latent sides > its window, as the released
        #: code does (a padded side of 128 crashes it); the pipeline pads smaller images up to this
        self.min_size = self.multiple * math.ceil((16 * (atten_window + 1)) / self.multiple)

    # --- what the generic trainer and codec use --------------------------------------------------
    @property
    def num_qualities(self) -> int:
        return 1

    def load_state_dict(self, state_dict, strict: bool = True, assign: bool = False):
        """CompressAI's loading (coder-table buffers resized to the file's, old bottleneck names renamed) without
        its scan of every module against every key (seconds for the full model)."""
        from compressai.models.utils import remap_old_keys, update_registered_buffers

        state_dict = dict(state_dict)
        for owner, names in TABLE_BUFFERS.items():
            if all(f"{owner}.{n}" in state_dict for n in names):  # else the strict load reports them missing
                update_registered_buffers(getattr(self, owner), owner, list(names), state_dict)
        state_dict = remap_old_keys("entropy_bottleneck", state_dict)
        return nn.Module.load_state_dict(self, state_dict, strict=strict, assign=assign)

    def _apply(self, fn, recurse: bool = True):
        """Every conversion (device, dtype, memory format) leaves the convolution weights in the plain NCHW layout.

        saicm's loader asks for channels-last, but the coder tables are chosen from σ computed by convolutions
        whose floats depend on the layout: in channels-last they differed from the authors' code by ~1e-5, enough
        to pick another table now and then and desynchronise a stream written by their code (and to flip a few
        rounded latents). In the plain layout saicm computes their floats exactly (one thread, same input):
        ``benchmarks/tcm_reference_check.py``. No measurable speed cost for these transforms."""
        super()._apply(fn, recurse)
        for p in self.parameters():  # strides compared, not is_contiguous(): a 1×1 kernel in channels-last is "contiguous"
            if p.dim() == 4 and p.stride() != (p.shape[1] * p.shape[2] * p.shape[3], p.shape[2] * p.shape[3], p.shape[3], 1):
                p.data = p.data.clone(memory_format=torch.contiguous_format)
        return self

    def _check_quality(self, quality: int) -> None:
        if int(quality) != 1:
            raise ValueError(f"tcm is single-rate: quality must be 1, got {quality}")

    def check_input(self, x: Tensor) -> None:
        from ..errors import ModelError

        h, w = x.shape[-2:]
        if h % self.multiple or w % self.multiple or min(h, w) < self.min_size:
            raise ModelError(f"tcm codes images whose sides are multiples of {self.multiple} and at least "
                             f"{self.min_size} pixels (got {w}x{h}; training: use --patch {self.min_size} or more)")

    @classmethod
    def from_train_config(cls, cfg, lambdas: Sequence[float]) -> "TCM":
        """``saicm train --architecture tcm [--N N --M M] [--lambdas L]``: the released structure at width N, latent
        M (a multiple of 5; default the released 128 and 320); attention head widths are capped at N.
        ``cfg.extra["tcm"]`` overrides any option."""
        from ..errors import SaicmError
        from .registry import build_architecture

        opts = dict(RELEASED)  # without --N / --M: the released sizes (128, 320)
        opts.update({k: int(v) for k, v in (("N", cfg.N), ("M", cfg.M)) if v is not None})
        opts["head_dims"] = [min(h, opts["N"]) for h in opts["head_dims"]]
        opts["hyper_head_dim"] = min(opts["hyper_head_dim"], opts["N"])
        opts.update((cfg.extra or {}).get("tcm", {}))
        if cfg.lambdas is None:
            lam = [0.05]  # the papers' λ (SA-ICM, ICM-v1); the trainer's default list is for variable-rate models
        else:
            lam = [float(v) for v in cfg.lambdas]
            if len(lam) != 1:
                raise SaicmError(f"tcm is single-rate: give one --lambdas value, got {len(lam)}")
        if opts["M"] % opts["num_slices"]:
            raise SaicmError(f"tcm: --M {opts['M']} is not a multiple of its {opts['num_slices']} slices "
                             "(the released model: --N 128 --M 320)")
        try:
            model = build_architecture("tcm", **opts, lambdas=lam)
        except ValueError as e:
            raise SaicmError(f"tcm: {e}") from None
        if cfg.patch < model.min_size:
            raise SaicmError(f"tcm trains on crops of at least {model.min_size} pixels: use --patch {model.min_size}")
        return model

    # --- training contract -----------------------------------------------------------------------
    def forward(self, x: Tensor, qidx: Tensor | None = None, quant: str = "ste") -> dict:
        """The released forward: rates from CompressAI's entropy models (noise while training, rounding in eval);
        what the hyper synthesis, the slice contexts and ``g_s`` see is always rounded as the coder rounds
        (straight-through gradients), whatever ``quant`` says (saicm's ``--quant ste`` is this model's only mode)."""
        y_hat, likelihoods = self.forward_latent(x, qidx, quant)
        return {"x_hat": self.g_s(y_hat).float(), "likelihoods": likelihoods}

    def forward_latent(self, x: Tensor, qidx: Tensor | None = None, quant: str = "ste",
                       y_offset: Tensor | None = None, params_offset: Tensor | None = None) -> tuple[Tensor, dict]:
        """(ŷ after LRP — what ``g_s`` decodes —, likelihoods). No conditional offsets (see ScalableFusion)."""
        if quant not in ("noise", "ste"):
            raise ValueError(f"quant must be 'noise' or 'ste', got {quant!r}")
        if y_offset is not None or params_offset is not None:
            raise NotImplementedError("tcm codes no conditional residual (ScalableFusion condition='none' only)")
        self.check_input(x)
        x = x.contiguous()  # the plain layout, like the weights (see _apply)
        y = self.g_a(x).float()
        z = self.h_a(y).float()
        with torch.autocast(x.device.type, enabled=False):
            _, z_likelihoods = self.entropy_bottleneck(z)
            med = self._z_medians()
            z_hat = _ste_round(z - med) + med
        latent_means, latent_scales = self.h_mean_s(z_hat).float(), self.h_scale_s(z_hat).float()
        y_hat_slices, y_likelihoods = [], []
        for i, y_slice in enumerate(y.chunk(self.num_slices, 1)):
            mu, scale, mean_ctx = self._slice_params(i, latent_means, latent_scales, y_hat_slices)
            with torch.autocast(x.device.type, enabled=False):
                _, lik = self.gaussian_conditional(y_slice, scale.float(), mu.float())
                y_hat_slice = _ste_round(y_slice - mu.float()) + mu.float()
            y_likelihoods.append(lik)
            y_hat_slices.append(y_hat_slice + self._lrp(i, mean_ctx, y_hat_slice).float())
        return torch.cat(y_hat_slices, dim=1), {"y": torch.cat(y_likelihoods, dim=1), "z": z_likelihoods}

    def _z_medians(self) -> Tensor:
        return self.entropy_bottleneck.quantiles[:, 0, 1].detach().view(1, -1, 1, 1)

    def _slice_params(self, i: int, latent_means: Tensor, latent_scales: Tensor, done: list[Tensor]):
        """μ_i, σ_i and the attended mean context of slice i from the priors and the decoded slices before it."""
        support = done if self.max_support_slices < 0 else done[: self.max_support_slices]
        mean_ctx = self.atten_mean[i](torch.cat([latent_means] + support, dim=1))
        mu = self.cc_mean_transforms[i](mean_ctx)
        scale = self.cc_scale_transforms[i](self.atten_scale[i](torch.cat([latent_scales] + support, dim=1)))
        h, w = latent_means.shape[-2:]
        return mu[:, :, :h, :w], scale[:, :, :h, :w], mean_ctx

    def _lrp(self, i: int, mean_ctx: Tensor, y_hat_slice: Tensor) -> Tensor:
        return 0.5 * torch.tanh(self.lrp_transforms[i](torch.cat([mean_ctx, y_hat_slice], dim=1)))

    # --- coding contract -------------------------------------------------------------------------
    def latent_shapes(self, height: int, width: int) -> list[tuple[int, ...]]:
        """Shapes ``compress`` reports for a padded image of this size: z's (H/64, W/64)."""
        return [(height // 64, width // 64)]

    def compress(self, x: Tensor, quality: int = 1, y_offset: Tensor | None = None,
                 params_offset: Tensor | None = None) -> dict:
        """``{"strings": [[y stream], [z string]], "shape": z's (h, w)}`` for one image (batch 1)."""
        self._check_quality(quality)
        if y_offset is not None or params_offset is not None:
            raise NotImplementedError("tcm codes no conditional residual (ScalableFusion condition='none' only)")
        if x.size(0) != 1:
            raise ValueError("tcm codes one image at a time")
        self.check_input(x)
        x = x.contiguous()  # the plain layout, like the weights (see _apply)
        y = self.g_a(x)
        z = self.h_a(y)
        z_strings = self.entropy_bottleneck.compress(z)
        z_hat = self.entropy_bottleneck.decompress(z_strings, z.size()[-2:])
        cdf, cdf_lengths, offsets = coder_tables(self.gaussian_conditional)
        gc = self.gaussian_conditional
        symbols, indexes = [], []
        with single_thread_kernels():  # what decides the tables: bit-identical to the decoder's computation
            latent_means, latent_scales = self.h_mean_s(z_hat), self.h_scale_s(z_hat)
            y_hat_slices = []
            for i, y_slice in enumerate(y.chunk(self.num_slices, 1)):
                mu, scale, mean_ctx = self._slice_params(i, latent_means, latent_scales, y_hat_slices)
                index = gc.build_indexes(scale)
                q = gc.quantize(y_slice, "symbols", mu)
                symbols.extend(q.reshape(-1).tolist())
                indexes.extend(index.reshape(-1).tolist())
                y_hat_slice = gc.dequantize(q, mu)
                y_hat_slices.append(y_hat_slice + self._lrp(i, mean_ctx, y_hat_slice))
        return {"strings": [[encode_stream(symbols, indexes, cdf, cdf_lengths, offsets)], z_strings],
                "shape": tuple(z.size()[-2:])}

    def decompress(self, strings: list, shape: Sequence[int], quality: int = 1) -> dict:
        y_hat = self.decompress_latent(strings, shape, quality)
        return {"x_hat": synthesize(self.g_s, y_hat).clamp_(0, 1)}

    def decompress_latent(self, strings: list, shape: Sequence[int], quality: int = 1,
                          params_offset: Tensor | None = None) -> Tensor:
        """ŷ (after LRP) from ``[[y stream], [z string]]`` and z's shape; the y stream is read through
        :func:`saicm.entropy.bounded.stream_decoder` (bounded reads whatever the bytes)."""
        from ..entropy.bounded import stream_decoder

        self._check_quality(quality)
        if params_offset is not None:
            raise NotImplementedError("tcm codes no conditional residual")
        if len(strings) != 2 or len(strings[0]) != 1 or len(strings[1]) != 1:
            raise ValueError("tcm decodes one y stream and one z string")
        z_hat = self.entropy_bottleneck.decompress(strings[1], tuple(shape))
        yh, yw = z_hat.shape[2] * 4, z_hat.shape[3] * 4
        cdf, cdf_lengths, offsets = coder_tables(self.gaussian_conditional)
        gc = self.gaussian_conditional
        with stream_decoder(bytes(strings[0][0]), self.M * yh * yw) as decoder, single_thread_kernels():
            latent_means, latent_scales = self.h_mean_s(z_hat), self.h_scale_s(z_hat)
            y_hat_slices = []
            for i in range(self.num_slices):
                mu, scale, mean_ctx = self._slice_params(i, latent_means, latent_scales, y_hat_slices)
                index = gc.build_indexes(scale).reshape(-1)
                if index.numel() and (int(index.min()) < 0 or int(index.max()) >= len(cdf)):
                    raise ValueError("coder table index out of range")
                values = decoder.decode_stream(index.tolist(), cdf, cdf_lengths, offsets)
                q = torch.tensor(values, dtype=torch.int32).reshape(mu.shape)
                y_hat_slice = gc.dequantize(q, mu)
                y_hat_slices.append(y_hat_slice + self._lrp(i, mean_ctx, y_hat_slice))
        return torch.cat(y_hat_slices, dim=1)


def synthesize(g_s: nn.Module, y_hat: Tensor) -> Tensor:
    """``g_s(ŷ)`` bit-identically on every thread count: whole (strips with halos are not exact through shifted
    windows) and on one thread."""
    return run_single_thread(g_s, y_hat)


def _lcm(*values: int) -> int:
    out = 1
    for v in values:
        out = out * v // math.gcd(out, v)
    return out


# --- the authors' released checkpoints -----------------------------------------------------------

#: entropy-model buffers whose shape depends on the coder tables (empty before ``update()``)
TABLE_BUFFERS = {
    "entropy_bottleneck": ("_quantized_cdf", "_offset", "_cdf_length"),
    "gaussian_conditional": ("_quantized_cdf", "_offset", "_cdf_length", "scale_table"),
}
_OLD_EB_NAMES = (("_matrix", "matrices"), ("_bias", "biases"), ("_factor", "factors"))


def read_released_checkpoint(path) -> dict[str, Tensor]:
    """The state dict of a released ``.pth.tar``: its ``state_dict`` entry (or its ``model`` entry, or the file
    itself, if it is a bare state dict), every ``module.`` and ``_orig_mod.`` (DataParallel's and torch.compile's
    wrappers) deleted from key names, CompressAI ≤ 1.2.6 bottleneck
    names renamed. A ``.safetensors`` file of such a state dict is read too (a saicm model file is refused: it
    needs no import).

    Loaded with ``torch.load(weights_only=True)``: a file holding anything but tensors and plain containers is
    refused rather than unpickled.
    """
    from .._torchfile import load_data_only
    from ..errors import ModelError

    obj = _read_safetensors(path)
    if obj is None:
        obj = load_data_only(path, "checkpoint", error=ModelError)
    if isinstance(obj, dict):
        for entry in ("state_dict", "model"):  # (a {"model": ...} file was "no state dict")
            if isinstance(obj.get(entry), dict):
                _say_unused_ema(obj, entry, path)
                obj = obj[entry]
                break
    if not isinstance(obj, dict) or not obj or not all(isinstance(v, Tensor) for v in obj.values()):
        held = (" (its entries: " + ", ".join(map(str, list(obj)[:8])) + ")") if isinstance(obj, dict) and obj else ""
        raise ModelError(f"no state dict in the file (expected a dict of tensors, or one under a 'state_dict' or "
                         f"'model' entry){held}", str(path))
    out = {}
    for k, v in obj.items():
        k = str(k).replace("module.", "").replace("_orig_mod.", "")  # (DataParallel's and torch.compile's wrappers)
        if k.startswith("entropy_bottleneck."):
            rest = k[len("entropy_bottleneck."):]
            for old, new in _OLD_EB_NAMES:
                if rest.startswith(old) and rest[len(old):].isdigit():
                    k = f"entropy_bottleneck.{new}.{rest[len(old):]}"
        if k in out:
            raise ModelError(f"key {k} appears twice once 'module.' and '_orig_mod.' prefixes are removed", str(path))
        out[k] = v
    return out


def _say_unused_ema(checkpoint: dict, entry: str, path) -> None:
    """Warn that a checkpoint's EMA weights (an entry ``ema``, ``model_ema``, ``state_dict_ema``, ...: trainers keep
    an exponential moving average of the weights beside them, often the better model) are not the ones imported:
    ``entry``'s are. They were passed over in silence."""
    import re

    from ..errors import printable, warn

    ema = [str(k) for k, v in checkpoint.items()
           if k != entry and isinstance(v, dict) and re.search(r"(?:^|[^a-z])ema(?:$|[^a-z])", str(k).lower())]
    if ema:
        import shlex

        name = printable(str(path))
        # (the path as an argument, quoted for the shell: inside the program's quotes a path holding one broke it)
        warn(f"{name}: also holds EMA weights ({', '.join(repr(k) for k in ema[:3])}), not imported: the "
             f"{entry!r} entry is; to import them, save that entry as a file of its own (python -c \"import sys, "
             f"torch; torch.save(torch.load(sys.argv[1], weights_only=True)[{ema[0]!r}], 'ema.pth')\" "
             f"{shlex.quote(name)}) and import that")


def _read_safetensors(path) -> dict[str, Tensor] | None:
    """The tensors of a ``.safetensors`` file (data only, like ``weights_only``), or None for another kind of file.
    (It was refused as "a model file (.safetensors), not a checkpoint: give it with --model", which a state dict
    in that format is not.)"""
    from ..errors import ModelError

    try:
        with open(path, "rb") as f:
            head = f.read(9)
    except OSError:
        return None  # (load_data_only says what is wrong with it)
    if len(head) < 9 or not 2 <= int.from_bytes(head[:8], "little") < 1 << 27 or head[8:9] != b"{":
        return None
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(path), framework="pt") as f:
            if (f.metadata() or {}).get("format", "").startswith("saicm-model/"):
                raise ModelError("already a saicm model file: nothing to import, give it with --model", str(path))
            return {k: f.get_tensor(k) for k in f.keys()}
    except (SafetensorError, OSError, ValueError) as e:
        raise ModelError(f"cannot read the safetensors file: cut short or damaged ({' '.join(str(e).split())[:120]})",
                         str(path)) from None


def with_table_buffers(model: nn.Module, state: dict[str, Tensor]) -> dict[str, Tensor]:
    """``state`` with an empty coder table for each of ``model``'s table buffers it lacks (a state dict saved without
    them; CompressAI fills them only in ``update()``): they are computed on loading, as empty ones are."""
    own = model.state_dict()
    state = dict(state)
    for owner, names in TABLE_BUFFERS.items():
        for n in names:
            if f"{owner}.{n}" in own:
                state.setdefault(f"{owner}.{n}", torch.zeros(0, dtype=own[f"{owner}.{n}"].dtype))
    return state


def _is_table_key(key: str) -> bool:
    owner, _, name = key.rpartition(".")
    return name in TABLE_BUFFERS.get(owner.rsplit(".", 1)[-1], ())


def check_released_keys(model: nn.Module, state: dict[str, Tensor], what: str = "tcm") -> None:
    """Raise a one-line :class:`~saicm.errors.ModelError` naming the first missing, unexpected or wrongly shaped
    keys, if ``state`` does not fit ``model`` exactly (the coder-table buffers may have any shape), or the first
    tensors holding NaN or infinite values."""
    from ..errors import ModelError

    own = model.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    shapes = [f"{k} {list(state[k].shape)} (expected {list(v.shape)})" for k, v in own.items()
              if k in state and not _is_table_key(k) and tuple(state[k].shape) != tuple(v.shape)]
    if not (missing or unexpected or shapes):
        from .catalog import non_finite

        bad = non_finite(state)
        if bad:  # (imported silently: the decoded images held garbage pixels)
            raise ModelError(f"{len(bad)} tensor(s) hold NaN or infinite values ({', '.join(bad[:3])}"
                             f"{', ...' if len(bad) > 3 else ''}): a diverged training run? import a checkpoint "
                             "saved before it diverged")
        return
    parts = []
    for label, items in (("missing", missing), ("unexpected", unexpected), ("wrong shape", shapes)):
        if items:
            parts.append(f"{len(items)} {label}: " + ", ".join(items[:3]) + (", ..." if len(items) > 3 else ""))
    hint = ""
    last = f"g_a.{len(model.g_a) - 1}.weight" if hasattr(model, "g_a") else ""
    ga, mine = state.get(last), own.get(last)
    if ga is not None and mine is not None and ga.dim() == 4 and ga.shape[0] != mine.shape[0]:
        hint = (f" (its latent has {ga.shape[0]} channels, not {mine.shape[0]}"
                + ("; ICM-v1's additional model ica.pth.tar is imported with --arch tcm-ica --base MACHINE)"
                   if ga.shape[0] < mine.shape[0] and "additional" not in what else
                   "; a machine model (SA-ICM's or ICM-v1's icm.pth.tar) is imported with --arch tcm)"
                   if ga.shape[0] > mine.shape[0] and "additional" in what else ")"))
    first, mine = state.get("g_a.0.conv1.weight"), own.get("g_a.0.conv1.weight")
    if first is not None and mine is not None and first.dim() == 4 and first.shape[0] != mine.shape[0]:
        # (another LIC-TCM size was refused with hundreds of wrong shapes and no word of --preset / --config)
        n = first.shape[0] // 2
        preset = {64: "S", 96: "M"}.get(n) if "additional" not in what else None
        hint += (f" (its width is N = {n}, not {mine.shape[0] // 2}: import it with --config '{{\"N\": {n}}}'"
                 + (f" or --preset {preset}" if preset else "") + ")")
    raise ModelError(f"does not fit {what}{hint}: " + "; ".join(parts))


def load_released_state(model: nn.Module, state: dict[str, Tensor]) -> dict[str, str]:
    """Load ``state`` (checked by :func:`check_released_keys`) into ``model`` strictly and fill the coder
    tables: an entropy model whose tables the file holds, complete and consistent, keeps them (so streams
    stay bit-compatible with the authors' coder); empty or partial ones are computed (``update``).
    Returns what happened to each entropy model's tables."""
    own = model.state_dict()
    state = {k: (v.to(own[k].dtype) if k in own else v) for k, v in state.items()}
    fresh = {}
    for owner, names in TABLE_BUFFERS.items():
        keys = [f"{owner}.{n}" for n in names]
        tabs = [state.get(k) for k in keys]
        complete = all(t is not None and t.numel() > 0 for t in tabs)
        if complete:
            rows = tabs[0].shape[0] if tabs[0].dim() == 2 else -1
            complete = tabs[0].dim() == 2 and all(t.dim() == 1 and t.shape[0] == rows for t in tabs[1:])
            if complete and owner == "entropy_bottleneck":
                complete = rows == model.entropy_bottleneck.channels
        fresh[owner] = "kept from the file" if complete else "computed (the file's were empty or partial)"
        if not complete:
            for k in keys:
                state[k] = torch.zeros(0, dtype=own[k].dtype)
    model.load_state_dict(state, strict=True)
    for owner, how in fresh.items():
        module = getattr(model, owner)
        if how.startswith("computed"):
            if isinstance(module, EntropyBottleneck):
                module.update(force=True)
            else:
                from compressai.models.base import get_scale_table  # the table update() installs

                module.update_scale_table(get_scale_table(), force=True)
    return fresh
