"""Context-model entropy coding on top of the gained mean-scale hyperprior: channel groups, each coded in two
checkerboard passes (the construction of ELIC, He et al., CVPR 2022; the checkerboard of He et al., CVPR 2021).

The transforms, gains, hyperprior and coder tables are those of
:class:`~saicm.models.hyperprior.GainedMeanScaleHyperprior` (so a trained v5
model initialises everything but the new context networks). What changes is
how the entropy parameters (scale, mean) of each latent element are predicted:

- the M latent channels are split into **groups** (``groups``, e.g. 16, 16,
  32, 64 of M = 128: small groups first, as ELIC), coded one after another;
- a **channel context** for group k: a small convolutional network (5×5, ReLU,
  5×5) over the already decoded groups 0..k−1 (none for group 0);
- inside a group, a **checkerboard**: the anchors (row + column even) are
  coded first with no spatial context, then the others with a spatial context
  from the decoded anchors (CompressAI's ``CheckerboardMaskedConv2d``, 5×5);
- an **aggregation** (1×1 convolutions, pointwise) of the hyperprior's
  parameters of the group, the spatial and the channel context, added to the
  hyperprior's parameters. Its last layer starts at zero, so an untrained
  context model codes exactly like the hyperprior it was initialised from.

Coding: z as before; y in one rANS stream (CompressAI's ``BufferedRansEncoder``;
the decoder reads it through :func:`saicm.entropy.bounded.stream_decoder`),
group by group, anchors then non-anchors, the elements of each pass in
(channel, row, column) order. Every network that decides the coder's tables
(hyper-synthesis, contexts, aggregation) runs on one thread on both sides, so
the tables do not depend on the thread count. Large images (format version 2)
code y in strips of rows, one stream per strip, with the contexts confined to
the strip (both sides compute them on the strip alone). That is the PyTorch path (formats 1/2, ``--engine
compressai``); the portable engine codes the same model in format 3 with its contexts in exact integer
arithmetic (:mod:`saicm.engine.context`).

Training: the same ``forward`` contract (``quant`` noise or ste); the
contexts read the latent as the decoder will have it (rounded around the
predicted means, straight-through) in ``ste`` mode, the noisy latent in
``noise`` mode.
"""

from __future__ import annotations

from typing import Sequence

import torch
from . import _compressai  # noqa: F401  (first: CompressAI's import-time warning silenced)
from compressai.layers import CheckerboardMaskedConv2d
from torch import Tensor, nn

from ..entropy.bounded import coder_tables, encode_stream
from .determinism import single_thread_kernels
from .hyperprior import GainedMeanScaleHyperprior, _ste_round
from .registry import register_architecture

#: hidden channels of the channel-context and aggregation networks (default; ``hidden``)
CONTEXT_HIDDEN = 96
#: kernel size of the channel-context convolutions (default; ``channel_kernel``)
CHANNEL_KERNEL = 5


def _anchor_mask(h: int, w: int, device=None) -> Tensor:
    """(h, w) bool: the checkerboard anchors, (row + column) even."""
    r = torch.arange(h, device=device).view(-1, 1)
    c = torch.arange(w, device=device).view(1, -1)
    return (r + c) % 2 == 0


@register_architecture("gained-context-hyperprior")
class GainedContextHyperprior(GainedMeanScaleHyperprior):
    """Variable-rate mean-scale hyperprior with channel-group and checkerboard contexts.

    Args:
        N, M, lambdas: as :class:`GainedMeanScaleHyperprior`.
        groups: channels per group, summing to M, coded in this order (default M/8, M/8, M/4, M/2).
        checkerboard: two passes per group (anchors, then the rest with a spatial context); False: one pass
            per group with the channel context only.
        hidden: hidden channels of the channel-context and aggregation networks (their cost grows with it).
        channel_kernel: kernel size of the channel-context convolutions (odd; 5 as ELIC, 3 costs 9/25 of it).
    """

    #: the options ``saicm train`` sets (``--context-hidden``, ``--context-kernel``, ``--context-groups``,
    #: ``--no-checkerboard``), with their defaults (groups None: M/8, M/8, M/4, M/2)
    CONTEXT_OPTIONS = {"hidden": CONTEXT_HIDDEN, "channel_kernel": CHANNEL_KERNEL, "groups": None, "checkerboard": True}

    def __init__(self, N: int = 64, M: int = 128, lambdas: Sequence[float] = (0.0067,),
                 groups: Sequence[int] | None = None, checkerboard: bool = True,
                 hidden: int = CONTEXT_HIDDEN, channel_kernel: int = CHANNEL_KERNEL):
        super().__init__(N=N, M=M, lambdas=lambdas)
        if groups is None:  # ELIC's proportions: 1/8, 1/8, 1/4, 1/2 of M (16, 16, 32, 64 of 128)
            if M % 8:
                raise ValueError(f"M={M} is not a multiple of 8 (the default channel groups are eighths of M)")
            groups = [M // 8, M // 8, M // 4, M // 2]
        groups = [int(g) for g in groups]
        if not groups or any(g < 1 for g in groups) or sum(groups) != M:
            raise ValueError(f"groups must be positive channel counts summing to M={M}, got {groups}")
        hidden, channel_kernel = int(hidden), int(channel_kernel)
        if hidden < 1 or channel_kernel < 1 or channel_kernel % 2 == 0:
            raise ValueError(f"hidden must be positive and channel_kernel odd, got {hidden}, {channel_kernel}")
        self.config.update(groups=groups, checkerboard=bool(checkerboard))
        if (hidden, channel_kernel) != (CONTEXT_HIDDEN, CHANNEL_KERNEL):  # files of the defaults stay as before
            self.config.update(hidden=hidden, channel_kernel=channel_kernel)
        self.groups = groups
        self.checkerboard = bool(checkerboard)
        self.spatial = nn.ModuleList()
        self.channel = nn.ModuleList()
        self.aggregate = nn.ModuleList()
        done = 0
        for g in groups:
            self.spatial.append(CheckerboardMaskedConv2d(g, 2 * g, 5, padding=2) if self.checkerboard
                                else nn.Identity())
            k, pad = channel_kernel, channel_kernel // 2
            self.channel.append(nn.Sequential(nn.Conv2d(done, hidden, k, padding=pad), nn.ReLU(),
                                              nn.Conv2d(hidden, 2 * g, k, padding=pad)) if done
                                else nn.Identity())
            last = nn.Conv2d(hidden, 2 * g, 1)
            nn.init.zeros_(last.weight)
            nn.init.zeros_(last.bias)
            self.aggregate.append(nn.Sequential(nn.Conv2d(6 * g, hidden, 1), nn.ReLU(),
                                                nn.Conv2d(hidden, hidden, 1), nn.ReLU(), last))
            done += g

    #: parameter-name prefixes a model initialised from a plain hyperprior does not have
    NEW_PARAMETERS = ("spatial.", "channel.", "aggregate.")

    def _bounds(self) -> list[tuple[int, int]]:
        out, a = [], 0
        for g in self.groups:
            out.append((a, a + g))
            a += g
        return out

    def _channel_context(self, k: int, side: Tensor, y_hat_done: Tensor | None) -> Tensor:
        """Group k's channel context from the decoded groups before it (zero for group 0): computed once per
        group, shared by its two checkerboard passes."""
        if k and y_hat_done is not None:
            return self.channel[k](y_hat_done)
        return side.new_zeros(side.shape)

    def _group_params(self, k: int, side: Tensor, ch: Tensor, anchors_hat: Tensor | None
                      ) -> tuple[Tensor, Tensor]:
        """(scales, means) of group k from its hyperprior parameters ``side`` (2g channels: scales, means), its
        channel context ``ch`` (:meth:`_channel_context`) and (non-anchor pass) its decoded anchors (the rest
        zero)."""
        g = self.groups[k]
        sp = self.spatial[k](anchors_hat) if anchors_hat is not None else side.new_zeros(side.shape)
        params = side + self.aggregate[k](torch.cat([side, sp, ch], dim=1))
        return params[:, :g], params[:, g:]

    def _side(self, params: Tensor, a: int, b: int) -> Tensor:
        scales, means = params.chunk(2, 1)
        return torch.cat([scales[:, a:b], means[:, a:b]], dim=1)

    def _context_latent(self, y: Tensor, params: Tensor, y_noisy: Tensor | None = None
                        ) -> tuple[Tensor, Tensor, Tensor]:
        """Every group's parameters as the decoder computes them: (ŷ, scales, means). The contexts read
        ``y_noisy`` when given (training with the noise proxy), else y rounded around the predicted means
        (straight-through), which is what the decoder has."""
        h, w = y.shape[-2:]
        anchors = _anchor_mask(h, w, y.device)
        y_hats, scales_all, means_all = [], [], []
        for k, (a, b) in enumerate(self._bounds()):
            side = self._side(params, a, b)
            done = torch.cat(y_hats, dim=1) if y_hats else None
            yk = y[:, a:b]

            def q(m: Tensor) -> Tensor:
                return y_noisy[:, a:b] if y_noisy is not None else _ste_round(yk, m)

            ch = self._channel_context(k, side, done)
            s_k, m_k = self._group_params(k, side, ch, None)
            if self.checkerboard:
                yk_a = torch.where(anchors, q(m_k), torch.zeros_like(yk))
                s_n, m_n = self._group_params(k, side, ch, yk_a)
                s_k, m_k = torch.where(anchors, s_k, s_n), torch.where(anchors, m_k, m_n)
            y_hats.append(q(m_k))
            scales_all.append(s_k)
            means_all.append(m_k)
        return torch.cat(y_hats, 1), torch.cat(scales_all, 1), torch.cat(means_all, 1)

    # --- training contract (forward and forward_latent are the hyperprior's) ----------------------
    def _latent_y(self, y: Tensor, params: Tensor, quant: str) -> tuple[Tensor, Tensor]:
        """ŷ and y's likelihoods through the contexts. The rate terms take the noise proxy in training (both
        modes, as the hyperprior; in noise mode the same noisy latent the contexts and the synthesis read)
        and the rounded latent in eval."""
        noisy = y + torch.empty_like(y).uniform_(-0.5, 0.5) if self.training and quant == "noise" else None
        y_hat, scales, means = self._context_latent(y, params, noisy)
        gc = self.gaussian_conditional
        if noisy is not None:
            y_lik = gc._likelihood(noisy, scales, means)
            return y_hat, gc.likelihood_lower_bound(y_lik) if gc.use_likelihood_bound else y_lik
        _, y_lik = gc(y, scales, means=means)
        return y_hat, y_lik

    def latent_rd(self, latents: dict[str, Tensor], quality: int,
                  params_offset: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """As the hyperprior's (``params_offset``: a scalable model's condition on the machine layer)."""
        y, z = latents["y"], latents["z"]
        eb, gc = self.entropy_bottleneck, self.gaussian_conditional
        z_hat = _ste_round(z, self._z_medians())
        z_lik, _, _ = eb._likelihood(z_hat.transpose(0, 1).reshape(z.size(1), 1, -1))
        params = self.h_s(z_hat)
        y_hat, scales, means = self._context_latent(y, params if params_offset is None else params + params_offset)
        y_lik = gc._likelihood(y_hat, scales, means)
        bits = -(torch.log2(eb.likelihood_lower_bound(z_lik)).sum() + torch.log2(gc.likelihood_lower_bound(y_lik)).sum())
        _, ig = self._gains(self._qindex(quality, y.size(0)))
        return bits, self.g_s(y_hat * ig)

    # --- coding contract ---------------------------------------------------
    def _passes(self, h: int, w: int, device) -> list[Tensor | None]:
        anchors = _anchor_mask(h, w, device)
        return [anchors, ~anchors] if self.checkerboard else [None]

    def _code_y(self, y: Tensor | None, params: Tensor, decoder=None) -> tuple[Tensor, list, list]:
        """Code (``y`` given: symbols and indexes to encode) or decode (``decoder``) one latent (or strip) with
        its hyperprior ``params``; returns (ŷ, symbols, indexes). Runs on one thread (module docstring)."""
        gc = self.gaussian_conditional
        cdf, cdf_lengths, offsets = coder_tables(self.gaussian_conditional)
        h, w = params.shape[-2:]
        y_hat = params.new_zeros((params.size(0), self.M, h, w))
        symbols, indexes = [], []
        with single_thread_kernels():
            for k, (a, b) in enumerate(self._bounds()):
                side = self._side(params, a, b)
                done = y_hat[:, :a] if a else None
                anchors_hat = None
                ch = self._channel_context(k, side, done)
                for mask in self._passes(h, w, params.device):
                    scales, means = self._group_params(k, side, ch, anchors_hat)
                    idx = gc.build_indexes(scales)
                    sel_idx = idx[..., mask] if mask is not None else idx
                    sel_means = means[..., mask] if mask is not None else means
                    if decoder is None:
                        sel_y = y[:, a:b][..., mask] if mask is not None else y[:, a:b]
                        q = gc.quantize(sel_y, "symbols", sel_means)
                        symbols.extend(q.reshape(-1).tolist())
                        indexes.extend(sel_idx.reshape(-1).tolist())
                    else:
                        flat = sel_idx.reshape(-1)
                        if flat.numel() and (int(flat.min()) < 0 or int(flat.max()) >= len(cdf)):
                            raise ValueError("coder table index out of range")
                        values = decoder.decode_stream(flat.tolist(), cdf, cdf_lengths, offsets)
                        q = torch.tensor(values, dtype=torch.int32).reshape(sel_idx.shape)
                    deq = gc.dequantize(q, sel_means)
                    if mask is None:
                        y_hat[:, a:b] = deq
                    else:
                        blk = y_hat[:, a:b]
                        blk[..., mask] = deq
                        y_hat[:, a:b] = blk
                        anchors_hat = torch.where(mask, y_hat[:, a:b], torch.zeros_like(y_hat[:, a:b]))
        return y_hat, symbols, indexes

    def _encode_stream(self, y: Tensor, params: Tensor) -> bytes:
        _, symbols, indexes = self._code_y(y, params)
        cdf, cdf_lengths, offsets = coder_tables(self.gaussian_conditional)
        return encode_stream(symbols, indexes, cdf, cdf_lengths, offsets)

    def _decode_stream(self, string: bytes, params: Tensor) -> Tensor:
        from ..entropy.bounded import stream_decoder

        with stream_decoder(bytes(string), self.M * params.shape[-2] * params.shape[-1]) as decoder:
            y_hat, _, _ = self._code_y(None, params, decoder)
        return y_hat

    def _hyper_params(self, z_hat: Tensor, params_offset: Tensor | None) -> Tensor:
        with single_thread_kernels():
            params = self.h_s(z_hat)
        return params if params_offset is None else params + params_offset

    def compress_latents(self, latents: dict[str, Tensor], params_offset: Tensor | None = None,
                         strip_rows: int = 0) -> dict:
        """Strings ``[[y stream], z]``, or with ``strip_rows`` ``[z, [y stream of rows 0..r], …]``."""
        if latents["y"].size(0) != 1:
            raise ValueError("the context model codes one image at a time")
        y, z = latents["y"], latents["z"]
        z_strings = self.entropy_bottleneck.compress(z)
        z_hat = self.entropy_bottleneck.decompress(z_strings, z.size()[-2:])
        params = self._hyper_params(z_hat, params_offset)
        if strip_rows:
            rows = range(0, y.size(-2), strip_rows)
            y_strings = [[self._encode_stream(y[..., r: r + strip_rows, :], params[..., r: r + strip_rows, :])]
                         for r in rows]
            return {"strings": [z_strings, *y_strings], "shape": tuple(z.size()[-2:])}
        return {"strings": [[self._encode_stream(y, params)], z_strings], "shape": tuple(z.size()[-2:])}

    def decompress_latent(self, strings: list, shape: Sequence[int], quality: int,
                          params_offset: Tensor | None = None, strip_rows: int = 0) -> Tensor:
        z_strings = strings[0] if strip_rows else strings[1]
        if any(len(s) != 1 for s in strings):
            raise ValueError("one string per latent (batch 1)")
        z_hat = self.entropy_bottleneck.decompress(z_strings, tuple(shape))
        params = self._hyper_params(z_hat, params_offset)
        if strip_rows:
            rows = list(range(0, params.size(-2), strip_rows))
            if len(strings) != 1 + len(rows):
                raise ValueError(f"{len(strings) - 1} y strips for {len(rows)} strips of {strip_rows} rows")
            y_hat = torch.cat([self._decode_stream(s[0], params[..., r: r + strip_rows, :])
                               for s, r in zip(strings[1:], rows)], dim=-2)
        else:
            y_hat = self._decode_stream(strings[0][0], params)
        _, ig = self._gains(self._qindex(quality, y_hat.size(0)))
        return y_hat.mul_(ig)
