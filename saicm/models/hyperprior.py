"""Mean-scale hyperprior (Minnen et al. 2018) with per-quality gain vectors.

The transforms, entropy bottleneck and Gaussian conditional are CompressAI's
``MeanScaleHyperprior``. On top, one learned gain vector per rate point scales
the latent before quantisation and an inverse gain rescales it before
synthesis (the "gained" variable-rate scheme of Cui et al., CVPR 2021), so a
single network covers several rate points: quality ``q`` (1-based) uses gain
row ``q-1``. Higher quality = larger gain = finer effective quantisation step.
"""

from __future__ import annotations

import math
import operator
from typing import Sequence

import torch
from . import _compressai  # noqa: F401  (first: CompressAI's import-time warning silenced)
from compressai.models import MeanScaleHyperprior
from torch import Tensor, nn

from .determinism import run_single_thread, synthesize_in_strips
from .registry import register_architecture


def _ste_round(v: Tensor, centre: Tensor | float = 0.0) -> Tensor:
    """``v`` rounded to the integer grid shifted by ``centre`` (as the coder quantises), identity gradient."""
    return v + (torch.round(v - centre) + centre - v).detach()


@register_architecture("gained-mean-scale-hyperprior")
class GainedMeanScaleHyperprior(MeanScaleHyperprior):
    """Variable-rate mean-scale hyperprior.

    Args:
        N: channels of the hidden layers.
        M: channels of the latent ``y``.
        lambdas: the rate-distortion trade-off of each quality point, ascending
            (``L = R + λ·255²·D``). Their count fixes the number of qualities.
    """

    #: pad input height/width to a multiple of this (y is /16, z is /64).
    multiple = 64

    def __init__(self, N: int = 64, M: int = 128, lambdas: Sequence[float] = (0.0067,)):
        super().__init__(N=N, M=M)
        lambdas = [float(v) for v in lambdas]
        if not lambdas or sorted(lambdas) != lambdas:
            raise ValueError("lambdas must be a non-empty ascending list")
        self.config = {"N": N, "M": M, "lambdas": lambdas}
        self.register_buffer("lambdas", torch.tensor(lambdas, dtype=torch.float32))
        # Initial step sizes follow the MSE rule of thumb step ∝ 1/sqrt(λ).
        ref = math.sqrt(lambdas[len(lambdas) // 2])
        log_g = torch.tensor([0.5 * math.log(lam) - math.log(ref) for lam in lambdas])
        self.log_gain = nn.Parameter(log_g[:, None].repeat(1, M))
        self.log_inv_gain = nn.Parameter(-log_g[:, None].repeat(1, M))

    @staticmethod
    def adapt_rate_points(state: dict, old_lambdas: Sequence[float], new_lambdas: Sequence[float]) -> dict:
        """``state`` with its gain rows re-sampled from ``old_lambdas`` to ``new_lambdas``.

        Each log-gain row is interpolated linearly in log λ between the two
        nearest old rate points (extrapolated from the end pair outside their
        range), so a fine-tune to more, fewer or shifted rate points starts
        from the step sizes the network already knows. A single old point is
        shifted by the step-size rule (log gain ∝ ½·log λ).
        """
        old = torch.tensor([math.log(float(v)) for v in old_lambdas], dtype=torch.float64)
        new = [math.log(float(v)) for v in new_lambdas]
        out = dict(state)
        for key, sign in (("log_gain", 1.0), ("log_inv_gain", -1.0)):
            rows = state[key].double()
            resampled = []
            for t in new:
                if old.numel() == 1:
                    resampled.append(rows[0] + sign * 0.5 * (t - float(old[0])))
                    continue
                i = int(torch.searchsorted(old, torch.tensor(t, dtype=torch.float64)).clamp(1, old.numel() - 1))
                w = (t - float(old[i - 1])) / float(old[i] - old[i - 1])
                resampled.append(rows[i - 1] + w * (rows[i] - rows[i - 1]))
            out[key] = torch.stack(resampled).to(state[key].dtype)
        out.pop("lambdas", None)
        return out

    @property
    def num_qualities(self) -> int:
        return int(self.lambdas.numel())

    def _gains(self, q: Tensor) -> tuple[Tensor, Tensor]:
        """Gain and inverse gain for 0-based quality indexes ``q`` of shape (B,)."""
        g = self.log_gain[q].exp()[:, :, None, None]
        ig = self.log_inv_gain[q].exp()[:, :, None, None]
        return g, ig

    def _qindex(self, quality: int | None, batch: int) -> Tensor:
        if quality is None:  # (CompressAI's compress(x) / decompress(strings, shape): one rate point, no quality)
            if self.num_qualities != 1:
                raise ValueError(f"this model has {self.num_qualities} rate points: pass quality (1..{self.num_qualities})")
            quality = 1
        if not 1 <= int(quality) <= self.num_qualities:
            raise ValueError(f"quality must be 1..{self.num_qualities}, got {quality}")
        return torch.full((batch,), int(quality) - 1, dtype=torch.long, device=self.log_gain.device)

    # --- training contract -------------------------------------------------
    def forward(self, x: Tensor, qidx: Tensor | None = None, quant: str = "noise") -> dict:
        """``qidx``: 0-based quality index, one per sample (B,) or one for the batch (an int); default the top
        quality. ``x`` in [0, 1], (B, 3, H, W), H and W multiples of :attr:`multiple`.

        ``quant`` (training only; in eval mode both modes round like the coder):
        ``"noise"`` feeds the uniform-noise proxy of quantisation to the rate terms
        and to the synthesis transforms (CompressAI's training). ``"ste"`` keeps the
        noise for the rate terms but feeds the synthesis transforms what the
        decoder will see: z and y rounded exactly as the coder rounds them (z
        around the bottleneck's medians, y around the predicted means), with
        straight-through gradients ("mixed quantisation", Minnen & Singh 2020).
        """
        y_hat, likelihoods = self.forward_latent(x, qidx, quant)
        return {"x_hat": self.g_s(y_hat).float(), "likelihoods": likelihoods}

    def forward_latent(self, x: Tensor, qidx: Tensor | None = None, quant: str = "noise",
                       y_offset: Tensor | None = None, params_offset: Tensor | None = None) -> tuple[Tensor, dict]:
        """The training forward up to the synthesis: (dequantised latent ``ŷ·g⁻¹``, likelihoods).

        What ``g_s`` receives; other architectures (the scalable fusion decoder) read it too.
        ``y_offset`` (subtracted from the analysis output before the gain: a residual to code) and
        ``params_offset`` (added to the hyper-synthesis output: entropy parameters conditioned on
        side information the decoder has) serve conditional coding; both default to none.
        """
        if quant not in ("noise", "ste"):
            raise ValueError(f"quant must be 'noise' or 'ste', got {quant!r}")
        if x.dim() != 4 or x.shape[-2] % self.multiple or x.shape[-1] % self.multiple:
            raise ValueError(f"x must be 4-D, (B, 3, H, W), with H and W multiples of {self.multiple} (pad it), got "
                             f"{tuple(x.shape)}")
        qidx = self._checked_qidx(qidx, x)
        g, ig = self._gains(qidx)
        # Under mixed precision (``torch.autocast``, e.g. ``saicm train --amp
        # bf16``) only the four transforms run in low precision: the latents
        # are cast back to fp32 and both entropy models (noise, likelihoods)
        # run with autocast off, so rates are estimated in full precision.
        y = self.g_a(x).float()
        y = (y if y_offset is None else y - y_offset) * g
        z = self.h_a(y).float()
        with torch.autocast(x.device.type, enabled=False):
            z_hat, z_lik = self.entropy_bottleneck(z)
            if quant == "ste":
                z_hat = _ste_round(z, self._z_medians())
        params = self.h_s(z_hat).float()
        if params_offset is not None:
            params = params + params_offset
        with torch.autocast(x.device.type, enabled=False):
            y_hat, y_lik = self._latent_y(y, params, quant)
        return y_hat * ig, {"y": y_lik, "z": z_lik}

    def _checked_qidx(self, qidx, x: Tensor) -> Tensor:
        """``qidx`` as a (B,) index tensor: None (the top quality), one int or a (1,) tensor for the batch, or one
        per sample; anything else, or (on the CPU, outside compiled graphs) an index out of range, is a
        ``ValueError`` saying that indexes are 0-based."""
        n, batch = self.num_qualities, x.size(0)
        if qidx is None:
            qidx = n - 1
        if isinstance(qidx, (list, tuple)):
            qidx = torch.as_tensor(qidx, device=x.device)
        if not isinstance(qidx, Tensor):
            if isinstance(qidx, bool):
                raise ValueError(f"qidx must be a whole number, got {qidx!r}")
            try:
                q = operator.index(qidx)
            except TypeError:
                raise ValueError(f"qidx must be a whole number or a tensor of them, got {qidx!r}") from None
            qidx = torch.full((batch,), q, dtype=torch.long, device=x.device)
        if qidx.dtype == torch.bool or qidx.dtype.is_floating_point or qidx.dtype.is_complex:
            raise ValueError(f"qidx must hold whole numbers, got {qidx.dtype}")
        if qidx.dim() == 0 or qidx.shape == (1,):
            qidx = qidx.reshape(1).expand(batch)
        if qidx.shape != (batch,):
            raise ValueError(f"qidx must be one index or one per sample, shape ({batch},), got {tuple(qidx.shape)}")
        if qidx.device.type == "cpu" and not torch.compiler.is_compiling() and qidx.numel() \
                and not (0 <= int(qidx.min()) and int(qidx.max()) < n):
            raise ValueError(f"qidx is 0-based: 0..{n - 1} (quality q is qidx q - 1), got {qidx.tolist()}")
        return qidx

    def _latent_y(self, y: Tensor, params: Tensor, quant: str) -> tuple[Tensor, Tensor]:
        """The training step's ŷ (what the synthesis gets, before the inverse gain) and y's likelihoods, from
        the hyper-synthesis output ``params`` (scales, means). Context models override this."""
        scales, means = params.chunk(2, 1)
        y_hat, y_lik = self.gaussian_conditional(y, scales, means=means)
        if quant == "ste":
            y_hat = _ste_round(y, means)
        return y_hat, y_lik

    # --- coding contract ---------------------------------------------------
    def latent_shapes(self, height: int, width: int) -> list[tuple[int, ...]]:
        """Shapes ``compress`` reports for a padded image of this size (checked before decoding)."""
        return [(height // 64, width // 64)]

    def compress(self, x: Tensor, quality: int | None = None, y_offset: Tensor | None = None,
                 params_offset: Tensor | None = None) -> dict:
        """Strings of ``x`` at ``quality`` (may be left out for a model of one rate point, as CompressAI's
        ``compress(x)``); the offsets as in :meth:`forward_latent` (the decoder must be given the same
        ``params_offset``)."""
        latents = self.analyse(x, quality, y_offset)
        return self.compress_latents(latents, params_offset)

    # --- encoder-side optimisation (saicm.codec.refine) ----------------------
    def analyse(self, x: Tensor, quality: int, y_offset: Tensor | None = None) -> dict[str, Tensor]:
        """The latents the encoder would code for ``x`` at this rate point."""
        g, _ = self._gains(self._qindex(quality, x.size(0)))
        y = self.g_a(x)
        y = (y if y_offset is None else y - y_offset) * g
        return {"y": y, "z": self.h_a(y)}

    def latent_rd(self, latents: dict[str, Tensor], quality: int,
                  params_offset: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """Estimated bits and reconstruction of ``latents`` quantised exactly as ``compress_latents``
        quantises them (z around the bottleneck's medians, y around the predicted means), with
        straight-through gradients, so the latents themselves can be optimised. ``params_offset`` as in
        :meth:`forward_latent`."""
        y, z = latents["y"], latents["z"]
        eb, gc = self.entropy_bottleneck, self.gaussian_conditional
        z_hat = _ste_round(z, self._z_medians())
        z_lik, _, _ = eb._likelihood(z_hat.transpose(0, 1).reshape(z.size(1), 1, -1))
        params = self.h_s(z_hat)
        if params_offset is not None:
            params = params + params_offset
        scales, means = params.chunk(2, 1)
        y_hat = _ste_round(y, means)
        y_lik = gc._likelihood(y_hat, scales, means)
        bits = -(torch.log2(eb.likelihood_lower_bound(z_lik)).sum() + torch.log2(gc.likelihood_lower_bound(y_lik)).sum())
        _, ig = self._gains(self._qindex(quality, y.size(0)))
        return bits, self.g_s(y_hat * ig)

    def compress_latents(self, latents: dict[str, Tensor], params_offset: Tensor | None = None,
                         strip_rows: int = 0) -> dict:
        """Strings of the latents: ``[y, z]``, or with ``strip_rows`` (large images, format version 2)
        ``[z, y rows 0..r, y rows r..2r, …]`` so that no string holds more than a strip."""
        y, z = latents["y"], latents["z"]
        z_strings = self.entropy_bottleneck.compress(z)
        z_hat = self.entropy_bottleneck.decompress(z_strings, z.size()[-2:])
        indexes, means = self._y_params(z_hat, params_offset)
        if strip_rows:
            rows = range(0, y.size(-2), strip_rows)
            y_strings = [self.gaussian_conditional.compress(y[..., r: r + strip_rows, :], indexes[..., r: r + strip_rows, :],
                                                            means=means[..., r: r + strip_rows, :]) for r in rows]
            return {"strings": [z_strings, *y_strings], "shape": tuple(z.size()[-2:])}
        y_strings = self.gaussian_conditional.compress(y, indexes, means=means)
        return {"strings": [y_strings, z_strings], "shape": tuple(z.size()[-2:])}

    def latents_from_analysis(self, y0: Tensor, quality: int) -> dict[str, Tensor]:
        """The latents for an analysis output ``g_a(x)`` computed elsewhere (by tiles, for large images).

        ``y0`` is scaled in place (it becomes ``y``): large images hold one latent-sized tensor less."""
        g, _ = self._gains(self._qindex(quality, y0.size(0)))
        y = y0.mul_(g)
        return {"y": y, "z": self.h_a(y)}

    def decompress(self, strings: list, shape: Sequence[int], quality: int | None = None) -> dict:
        y_hat = self.decompress_latent(strings, shape, quality)
        x_hat = synthesize_in_strips(self.g_s, y_hat, scale=16)
        return {"x_hat": x_hat.clamp_(0, 1)}

    def decompress_latent(self, strings: list, shape: Sequence[int], quality: int,
                          params_offset: Tensor | None = None, strip_rows: int = 0) -> Tensor:
        """The dequantised latent ``ŷ·g⁻¹`` (what ``g_s`` decodes) from the coded strings (in strips with
        ``strip_rows``, see :meth:`compress_latents`)."""
        z_strings = strings[0] if strip_rows else strings[1]
        z_hat = self.entropy_bottleneck.decompress(z_strings, tuple(shape))
        indexes, means = self._y_params(z_hat, params_offset)
        if strip_rows:
            rows = list(range(0, indexes.size(-2), strip_rows))
            if len(strings) != 1 + len(rows):
                raise ValueError(f"{len(strings) - 1} y strips for {len(rows)} strips of {strip_rows} rows")
            y_hat = torch.cat([self.gaussian_conditional.decompress(s, indexes[..., r: r + strip_rows, :],
                                                                    means=means[..., r: r + strip_rows, :])
                               for s, r in zip(strings[1:], rows)], dim=-2)
        else:
            y_hat = self.gaussian_conditional.decompress(strings[0], indexes, means=means)
        del indexes, means
        _, ig = self._gains(self._qindex(quality, y_hat.size(0)))
        return y_hat.mul_(ig)  # in place: the same floats, one latent-sized tensor less

    def _z_medians(self) -> Tensor:
        """The entropy bottleneck's per-channel medians: the centres the coder rounds z around."""
        return self.entropy_bottleneck.quantiles[:, 0, 1].detach().view(1, -1, 1, 1)

    def _y_params(self, z_hat: Tensor, params_offset: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """Scale indexes and means of y from the decoded hyper-latent (plus ``params_offset``).

        The scale indexes select CDF tables, so encoder and decoder must compute
        them bit-identically: the (small) hyper-synthesis runs on one thread (and
        whoever computes ``params_offset`` must make it as exact).
        """
        params = run_single_thread(self.h_s, z_hat)
        scales, means = (params if params_offset is None else params + params_offset).chunk(2, 1)
        return self.gaussian_conditional.build_indexes(scales), means
