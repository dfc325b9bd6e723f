"""Scalable coding for humans and machines: an additional-information codec and a fusion decoder.

A frozen *base* model (any shipped single-layer model: SA-ICM, Object-ICM or
MSE) codes the **machine layer**; its dequantised latent ``ŷ_b`` (M channels)
decodes to the machine image. This architecture adds the **human layer**:

- an additional-information codec (its own analysis transform on the
  *original* image, its own hyperprior and Gaussian conditional, its own
  bitstream, variable rate by gain vectors) whose dequantised latent ``ŷ_a``
  has ``s·m`` channels (``s`` = ``slice_channels``, ``m`` slices);
- fusion: ``ŷ_a`` is added element-wise to the first ``s·m`` channels of
  ``ŷ_b`` (or to the ``s·m`` channels ``fusion_channels`` names); the other channels pass unchanged;
- a human synthesis transform that decodes the fused M-channel latent.

``fusion_channels`` (a variant, not the paper's): the base channels the additional latent refines, in its
channel order. The paper's base (LIC-TCM) codes its latent in ordered slices, each predicted from the ones
before, so its first channels likely carry the most (an inference, not a measurement); saicm's hyperprior
bases have no channel order, and its context-model bases (v6, v7: channel groups coded first to last) kept
v5's channels: the first carry little (channels 0–63 of the v5 SA-ICM base held 3 %
of its variance on one photo, the first 32 of the v6 one 1.0 % on training crops), so
``saicm train --fusion-channels energy`` names the s·m channels of the largest variance on training crops
(:func:`energy_order`). Default (None): the first s·m, the paper's.

``condition="base"`` is a variant (not the paper's): the additional analysis
also sees the decoded base latent and codes the residual
``g_a(x) − ŷ_b[:s·m]``, and its entropy parameters add a small network of
``ŷ_b`` to the hyper-synthesis output (conditional coding: the decoder has
``ŷ_b`` before it decodes ``ŷ_a``). Fusion and human synthesis are the same.

Training (``saicm train --base MODEL --m M``) minimises ``R_a + λ_a·255²·mse(x, x̂_h)``
with the base frozen (it runs in fp32, in eval mode, so the fusion sees the
latent the decoder will decode; a base quality is drawn per sample, so the one
fusion decoder serves every machine rate). The encoders of the two layers are
independent: the human layer can be coded later from the original image.

The weight file holds only this model's own tensors; its config names the base
model and the SHA-256 of the base's weight file, which is checked whenever the
model is built (so a changed or different base is refused, never silently used).

``context={...}`` (the options of :class:`~saicm.models.context.GainedContextHyperprior`: ``groups``,
``checkerboard``, ``hidden``, ``channel_kernel``) codes the additional latent with channel-group (and
checkerboard) contexts instead of the hyperprior's parameters alone, as the context base models code theirs;
with ``condition="base"`` the contexts refine the parameters the condition network has already shifted.

``additional={"architecture": NAME, "config": {...}}`` replaces the built-in
additional codec by a registered architecture whose ``g_s`` becomes the human
synthesis (ICM-v1's imported ``ica``: a ``tcm`` with a 256-channel latent and a
synthesis of the fused 320 channels; ``saicm import-checkpoint --arch tcm-ica``).
Without it (the default) the additional codec is a gained mean-scale hyperprior
and the human synthesis starts as a copy of the base's.
"""

from __future__ import annotations

import copy
import os
from pathlib import Path
from typing import Sequence

import torch
from torch import Tensor, nn
from torch.nn.modules.module import _IncompatibleKeys

from .catalog import SCALABLE_ARCHITECTURE, check_fusion_channels
from .context import GainedContextHyperprior
from .determinism import run_single_thread, synthesize_in_strips
from .hyperprior import GainedMeanScaleHyperprior
from .registry import register_architecture


#: how the additional codec relates to the base: "none" (the paper: image in, own entropy model) or "base"
#: (residual to the base latent, entropy parameters conditioned on it)
CONDITIONS = ("none", "base")


@register_architecture(SCALABLE_ARCHITECTURE)
class ScalableFusion(nn.Module):
    """Additional-information codec + fusion decoder over a frozen base model.

    Args:
        base: name of a shipped model, or the stem of a weight file found in ``model_dir``.
        base_sha256: hex SHA-256 of the base's weight file (checked).
        N: hidden channels of the additional codec's transforms.
        slice_channels: ``s``, channels per slice of the base latent.
        m: number of slices the additional latent covers (``s·m ≤ M_base``).
        lambdas: λ_a of each human-layer rate point, ascending.
        model_dir: where to look for a base that is not shipped (the folder of this model's file).
        additional: ``{"architecture": NAME, "config": {...}}``: the additional codec as a registered architecture
            (its latent has ``s·m`` channels, its ``g_s`` reads the base's M and becomes the human synthesis);
            default None: the built-in gained hyperprior.
        context: options of a ``gained-context-hyperprior`` (``{}``: its defaults) for the built-in additional
            codec: it codes its latent with contexts; default None: the hyperprior's parameters alone.
        fusion_channels: the ``s·m`` distinct base channels ``ŷ_a`` is added to, in ``ŷ_a``'s channel order;
            default None: the first ``s·m`` (the paper's fusion).
    """

    #: ``saicm train``'s ``--context-*`` options apply to the additional codec (they make it a context model)
    CONTEXT_OPTIONS = {"hidden": None, "channel_kernel": None, "groups": None, "checkerboard": None}

    def __init__(self, base: str, base_sha256: str, N: int = 64, slice_channels: int = 32, m: int = 4,
                 lambdas: Sequence[float] = (0.0067,), condition: str = "none", model_dir: str | None = None,
                 additional: dict | None = None, context: dict | None = None,
                 fusion_channels: Sequence[int] | None = None):
        super().__init__()
        from .catalog import info_copy, locate
        from .zoo import instantiate

        base_info = locate(base, base_sha256, model_dir)
        self.base = instantiate(base_info)
        for p in self.base.parameters():
            p.requires_grad_(False)
        self.base.eval()
        self.base_info = info_copy(base_info)  # the module's own (read_info's is shared by every coding)
        M = int(self.base.config["M"])
        if slice_channels < 1 or M % slice_channels:
            raise ValueError(f"slice_channels {slice_channels} must divide the base latent's {M} channels")
        if not 1 <= m <= M // slice_channels:
            raise ValueError(f"m must be 1..{M // slice_channels} for {M} channels in slices of {slice_channels}")
        self.channels = slice_channels * m
        self.fusion_channels = check_fusion_channels(fusion_channels, self.channels, M)
        # (a buffer, so that it moves with the model; not in the state dict: the config holds it)
        self.register_buffer("_fused", None if self.fusion_channels is None else
                             torch.tensor(self.fusion_channels, dtype=torch.long), persistent=False)
        if condition not in CONDITIONS:
            raise ValueError(f"condition must be one of {', '.join(CONDITIONS)}, got {condition!r}")
        self.condition = condition
        if additional is not None:
            if context is not None:
                raise ValueError("context options apply to the built-in additional codec, not to additional=")
            self._build_additional(additional, M, lambdas)
        elif context is not None:
            if not isinstance(context, dict) or set(context) - set(self.CONTEXT_OPTIONS):
                raise ValueError(f"context takes the options {', '.join(self.CONTEXT_OPTIONS)}, got {context!r}")
            self.add = GainedContextHyperprior(N=N, M=self.channels, lambdas=lambdas, **context)
            self.add.g_s = nn.Identity()
        else:
            self.add = GainedMeanScaleHyperprior(N=N, M=self.channels, lambdas=lambdas)
            self.add.g_s = nn.Identity()  # the additional latent is decoded only through the fusion
        if condition == "base":
            from compressai.layers import conv3x3

            # entropy parameters of ŷ_a from the decoded base latent (added to the hyper-synthesis output)
            self.cond = nn.Sequential(conv3x3(M, N), nn.LeakyReLU(inplace=True), conv3x3(N, N),
                                      nn.LeakyReLU(inplace=True), conv3x3(N, 2 * self.channels))
            with torch.no_grad():
                self.cond[-1].weight.zero_()
                self.cond[-1].bias.zero_()
        if additional is None:
            # The human synthesis starts as the base's own: at step 0 the human image is the machine image.
            self.g_s = copy.deepcopy(self.base.g_s)
            for p in self.g_s.parameters():
                p.requires_grad_(True)
            self._init_from_base()
        self.multiple = self.base.multiple
        self.min_size = getattr(self.base, "min_size", 0)  # smallest padded side the base codes (tcm: 256)
        self.build_extras = {"model_dir": model_dir} if model_dir else {}
        self.config = {"base": base, "base_sha256": base_sha256, "N": N, "slice_channels": slice_channels,
                       "m": m, "lambdas": [float(v) for v in lambdas], "condition": condition}
        if additional is not None:
            self.config["additional"] = additional
        if self.fusion_channels is not None:  # (not written when None: files of earlier versions read the same)
            self.config["fusion_channels"] = list(self.fusion_channels)
        if context is not None:  # as the context model records them (its defaults are not written)
            self.config["context"] = {k: v for k, v in self.add.config.items() if k in self.CONTEXT_OPTIONS}

    def _build_additional(self, additional: dict, M: int, lambdas: Sequence[float]) -> None:
        """The additional codec from a registered architecture; its ``g_s`` (which must read the base's M
        channels) becomes the human synthesis."""
        from .registry import build_architecture

        if self.condition != "none":
            raise ValueError("an additional codec given by architecture codes the paper's way only (condition none)")
        if set(additional) != {"architecture", "config"}:
            raise ValueError("additional takes {'architecture': NAME, 'config': {...}}")
        cfg = dict(additional["config"])
        if "lambdas" in cfg and [float(v) for v in cfg["lambdas"]] != [float(v) for v in lambdas]:
            raise ValueError("the additional codec's lambdas differ from this model's")
        cfg["lambdas"] = [float(v) for v in lambdas]
        self.add = build_architecture(additional["architecture"], **cfg)
        c = int(getattr(self.add, "config", {}).get("M", -1))
        if c != self.channels:
            raise ValueError(f"the additional codec's latent has {c} channels, not slice_channels·m = {self.channels}")
        self.g_s = self.add.g_s
        self.add.g_s = nn.Identity()  # held once, as the human synthesis
        first = next(mod for mod in self.g_s.modules() if isinstance(mod, nn.Conv2d))
        if first.in_channels != M:
            raise ValueError(f"the additional codec's synthesis reads {first.in_channels} channels, the base's "
                             f"latent has {M}")

    def _init_from_base(self) -> None:
        """Additional analysis = the base's analysis layers (same widths), last layer zero (``ŷ_a`` = 0)."""
        src, dst = self.base.g_a, self.add.g_a
        for a, b in zip(list(src)[:-1], list(dst)[:-1]):
            if isinstance(a, nn.Module) and a.state_dict().keys() == b.state_dict().keys() and all(
                    a.state_dict()[k].shape == v.shape for k, v in b.state_dict().items()):
                b.load_state_dict(a.state_dict())
        last = dst[-1]
        with torch.no_grad():
            last.weight.zero_()
            if last.bias is not None:
                last.bias.zero_()

    # --- what the generic trainer and zoo use -----------------------------------
    @property
    def lambdas(self) -> Tensor:
        return self.add.lambdas

    @property
    def num_qualities(self) -> int:
        return self.add.num_qualities

    @property
    def base_num_qualities(self) -> int:
        return self.base.num_qualities

    def train(self, mode: bool = True):
        super().train(mode)
        self.base.eval()  # frozen: always the decoder's rounding, never noise
        return self

    def aux_loss(self) -> Tensor:
        return self.add.aux_loss()

    def update(self, scale_table=None, force: bool = False) -> bool:
        return self.add.update(scale_table=scale_table, force=force)

    def state_dict(self, *args, **kwargs):
        sd = super().state_dict(*args, **kwargs)
        for k in [k for k in sd if k.startswith("base.")]:
            del sd[k]
        return sd

    def load_state_dict(self, state_dict, strict: bool = True, assign: bool = False):
        """Own tensors only (``add.*``, ``g_s.*``); the base comes from its own file."""
        missing, unexpected = [], []
        for name, child in self.named_children():
            if name == "base":
                continue
            sub = {k[len(name) + 1:]: v for k, v in state_dict.items() if k.startswith(name + ".")}
            res = child.load_state_dict(sub, strict=False)
            missing += [f"{name}.{k}" for k in res.missing_keys]
            unexpected += [f"{name}.{k}" for k in res.unexpected_keys]
        known = {n for n, _ in self.named_children()}
        unexpected += [k for k in state_dict if k.split(".", 1)[0] not in known]
        if strict and (missing or unexpected):
            raise RuntimeError(f"Error(s) in loading state_dict for {type(self).__name__}: "
                               f"missing {missing[:5]}, unexpected {unexpected[:5]}")
        return _IncompatibleKeys(missing, unexpected)

    def verify_frozen(self) -> None:
        """Raise if the base's tensors differ from its weight file (the base must never be trained)."""
        from ..errors import ModelError
        from .zoo import instantiate

        fresh = instantiate(self.base_info).state_dict()
        for k, v in self.base.state_dict().items():
            if not torch.equal(v.detach().cpu().float(), fresh[k].float()):
                raise ModelError(f"the frozen base {self.config['base']} changed during training ({k})")

    # --- training contract --------------------------------------------------
    def _base_latent(self, x: Tensor, qb: Tensor) -> Tensor:
        """The base's dequantised latent as its decoder will see it (fp32, coder rounding, no gradients)."""
        with torch.no_grad(), torch.autocast(x.device.type, enabled=False):
            y_b, _ = self.base.forward_latent(x.float(), qb)
        return y_b

    def fuse(self, y_base: Tensor, y_add: Tensor) -> Tensor:
        """``ŷ_a`` added to the first ``s·m`` channels of ``ŷ_b`` (or to ``fusion_channels``); a new tensor (the
        base latent is not modified)."""
        c = self.channels
        if self._fused is not None:
            return y_base.index_add(1, self._fused, y_add.to(y_base.dtype))
        return torch.cat([y_base[:, :c] + y_add, y_base[:, c:]], dim=1)

    def fused_part(self, y_base: Tensor) -> Tensor:
        """The ``s·m`` channels of ``ŷ_b`` that ``ŷ_a`` refines, in ``ŷ_a``'s channel order."""
        if self._fused is not None:
            return y_base.index_select(1, self._fused)
        return y_base[:, : self.channels]

    def forward(self, x: Tensor, qidx: Tensor | None = None, quant: str = "noise", base_qidx: Tensor | None = None) -> dict:
        """``qidx``: human-layer rate point per sample (default the top); ``base_qidx``: machine rate point per
        sample (default: drawn uniformly per sample while training, the base's default in eval)."""
        if base_qidx is None:
            if self.training:
                base_qidx = torch.randint(0, self.base_num_qualities, (x.size(0),), device=x.device)
            else:
                from .catalog import default_quality

                base_qidx = torch.full((x.size(0),), default_quality(self.base_num_qualities) - 1,
                                       dtype=torch.long, device=x.device)
        y_b = self._base_latent(x, base_qidx)
        y_off, p_off = self._offsets(y_b, exact=False)
        y_a, likelihoods = self.add.forward_latent(x, qidx, quant, y_offset=y_off, params_offset=p_off)
        x_hat = self.g_s(self.fuse(y_b, y_a)).float()
        return {"x_hat": x_hat, "likelihoods": likelihoods}

    def _offsets(self, y_base: Tensor | None, exact: bool = True) -> tuple[Tensor | None, Tensor | None]:
        """``condition="base"``: the residual's offset and the entropy parameters' offset from the base latent.

        ``exact``: on the coding path the parameter offset decides the coder's tables, so it runs on one
        thread (bit-identical at both ends, whatever their thread counts)."""
        if self.condition == "none":
            return None, None
        if y_base is None:
            raise ValueError("this scalable model codes the human layer conditioned on the machine layer's latent")
        p = run_single_thread(self.cond, y_base) if exact else self.cond(y_base)
        return self.fused_part(y_base), p.float()

    # --- coding contract ---------------------------------------------------
    def latent_shapes(self, height: int, width: int) -> list[tuple[int, ...]]:
        return self.add.latent_shapes(height, width)

    def compress(self, x: Tensor, quality: int, base_latent: Tensor | None = None) -> dict:
        """The human layer's strings: the additional latent. ``base_latent``: the machine layer's decoded latent
        (``decompress_latent`` of the base on the machine strings), needed when ``condition="base"``; the
        paper's model (``condition="none"``) codes the human layer independently of the machine layer."""
        y_off, p_off = self._offsets(base_latent)
        return self.add.compress(x, quality, y_offset=y_off, params_offset=p_off)

    # --- encoder-side optimisation of the human layer (saicm.codec.refine) ----------
    def analyse(self, x: Tensor, quality: int, base_latent: Tensor | None = None) -> dict[str, Tensor]:
        """The additional latents the encoder would code for ``x`` at human quality ``quality`` over the machine
        layer's decoded latent ``base_latent``."""
        y_off, _ = self._offsets(base_latent, exact=False)
        return self.add.analyse(x, quality, **({} if y_off is None else {"y_offset": y_off}))

    def latent_rd(self, latents: dict[str, Tensor], quality: int,
                  base_latent: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """Estimated bits of the additional latents and the human image they give with ``base_latent``
        (quantised as the coder quantises them, straight-through gradients: see the base models')."""
        if base_latent is None:
            raise ValueError("the human layer's reconstruction needs the machine layer's latent (base_latent)")
        with torch.no_grad():
            _, p_off = self._offsets(base_latent, exact=False)
        extra = {} if p_off is None else {"params_offset": p_off}
        bits, y_add = self.add.latent_rd(latents, quality, **extra)  # add.g_s is the identity
        return bits, self.g_s(self.fuse(base_latent, y_add))

    def decompress(self, strings: list, shape: Sequence[int], quality: int) -> dict:
        raise NotImplementedError("a human layer decodes only with its machine layer: use decompress_human")

    def decompress_human(self, base_latent: Tensor, strings: list, shape: Sequence[int], quality: int) -> dict:
        """Human image from the base's decoded latent and the additional strings."""
        if tuple(shape) != tuple(v // 4 for v in base_latent.shape[-2:]):
            raise ValueError("the human layer's latent does not match the machine layer's size")
        _, p_off = self._offsets(base_latent)
        y_a = self.add.decompress_latent(strings, shape, quality, params_offset=p_off)
        if y_a.shape[-2:] != base_latent.shape[-2:]:
            raise ValueError("the human layer's latent does not match the machine layer's size")
        return {"x_hat": self._synthesize(self.fuse(base_latent, y_a)).clamp_(0, 1)}

    def _synthesize(self, y: Tensor) -> Tensor:
        """The human synthesis, bit-identical on every thread count: in strips when that is exact, else whole on
        one thread (``strip_safe = False``: tcm's shifted-window transforms)."""
        if getattr(self.g_s, "strip_safe", True):
            return synthesize_in_strips(self.g_s, y, scale=16)
        return run_single_thread(self.g_s, y)

    @classmethod
    def from_train_config(cls, cfg, lambdas: Sequence[float], context: dict | None = None) -> "ScalableFusion":
        """Build a new model for ``saicm train --base MODEL --m M``; ``context``: the ``--context-*`` options given
        (the additional codec becomes a context model)."""
        from ..errors import SaicmError
        from .catalog import full_checksum, resolve

        if not cfg.base:
            raise SaicmError("--architecture scalable-fusion needs --base MODEL (the frozen machine-layer model)")
        info = resolve(cfg.base)
        name = info.name
        model_dir = None if _is_shipped(info) else str(Path(info.path).resolve().parent)
        options = dict(base=name, base_sha256=full_checksum(info.path).hex(), N=cfg.width,
                       slice_channels=32 if cfg.slice_channels is None else cfg.slice_channels,
                       m=4 if cfg.m is None else cfg.m, lambdas=lambdas, condition=cfg.condition or "none",
                       model_dir=model_dir, context=context)
        try:  # (None: the defaults of --m, --slice-channels, --condition and --fusion-channels)
            model = cls(**options)
            if (cfg.fusion_channels or "first") == "energy":
                order = energy_order(model.base, _energy_crops(cfg.data))[: model.channels]
                model = cls(**options, fusion_channels=order)
        except ValueError as e:  # sizes that do not fit the base: one line
            raise SaicmError(f"scalable-fusion: {e}") from None
        if cfg.human_init:
            from .zoo import load_model

            src, _ = load_model(cfg.human_init)
            model.warm_start(src)
        return model

    def warm_start(self, src: nn.Module) -> None:
        """Start from a single-layer human-vision model ``src`` (same N and M as the base; an MSE model):

        its analysis (first ``s·m`` output channels), gains (re-sampled to these λ) and, where shapes match,
        hyperprior become the additional codec's; its synthesis becomes the human synthesis. With
        ``condition="none"`` the fused channels hold about twice a latent at step 0, so the human synthesis's
        first layer takes half of them; with ``"base"`` the residual fills them up to ``src``'s latent.
        """
        from ..errors import ModelError

        c = self.channels
        rows = list(range(c)) if self.fusion_channels is None else list(self.fusion_channels)
        if getattr(src, "config", {}).get("M") != self.base.config["M"] or not hasattr(src, "g_a"):
            raise ModelError("--human-init needs a single-layer model with the base's latent width")
        state = src.state_dict()
        own = self.add.state_dict()
        new = {}
        for k, v in own.items():
            w = state.get(k)
            if w is None or k in ("lambdas",):
                continue
            if w.shape == v.shape:
                new[k] = w.clone()
        parts = GainedContextHyperprior.NEW_PARAMETERS
        contexts = [k for k in own if k.startswith(parts)]
        if contexts and not all(k in new for k in contexts):  # all or nothing (a lone layer that fits is no start)
            for k in contexts:
                new.pop(k, None)
            if any(k.startswith(parts) for k in state):
                from ..errors import warn as saicm_warn

                saicm_warn("--human-init: its contexts do not fit the additional codec's (other groups or sizes): "
                           "they start anew")
        src_l = [float(v) for v in src.lambdas]
        gains = type(src).adapt_rate_points({"log_gain": state["log_gain"], "log_inv_gain": state["log_inv_gain"]},
                                            src_l, [float(v) for v in self.add.lambdas])
        # The synthesis reads ŷ·g⁻¹ ≈ g_a(x)·(g·g⁻¹): fold src's mean g·g⁻¹ into the analysis and start the additional
        # gains as exact inverses, so that ŷ_a·g_a⁻¹ lies in the domain the synthesis reads at every rate point.
        scale = (gains["log_gain"] + gains["log_inv_gain"]).exp().mean(0)[rows].float()
        last = [k for k in own if k.startswith("g_a.") and own[k].dim() == 4][-1].rsplit(".", 1)[0]
        new[last + ".weight"] = state[last + ".weight"][rows].float() * scale[:, None, None, None]
        new[last + ".bias"] = state[last + ".bias"][rows].float() * scale
        new["log_gain"] = gains["log_gain"][:, rows].clone().float()
        new["log_inv_gain"] = -new["log_gain"]
        self.add.load_state_dict({**own, **new})
        self.g_s.load_state_dict(src.g_s.state_dict())
        if self.condition == "none":
            first = self.g_s[0]
            with torch.no_grad():
                first.weight[rows] *= 0.5


#: crops the base latent's channel variances are measured on (``--fusion-channels energy``)
ENERGY_CROPS, ENERGY_PATCH = 32, 256


def energy_order(base: nn.Module, crops: Tensor) -> list[int]:
    """The base latent's channels by decreasing variance of its dequantised latent ``ŷ_b`` over ``crops``
    (N, 3, H, W in [0, 1]) and every base rate point, ties by channel number."""
    total = None
    with torch.no_grad():
        for q in range(base.num_qualities):
            qidx = torch.full((crops.size(0),), q, dtype=torch.long)
            y, _ = base.forward_latent(crops.float(), qidx)
            v = y.double().transpose(0, 1).flatten(1).var(dim=1)
            total = v if total is None else total + v
    order = sorted(range(total.numel()), key=lambda i: (-float(total[i]), i))
    return order


def _energy_crops(data) -> Tensor:
    """:data:`ENERGY_CROPS` centre crops of ``ENERGY_PATCH``² from training images spread evenly over the sorted
    list (smaller images upscaled, as training does): the same crops on every run."""
    import numpy as np
    from PIL import Image

    from ..codec.image_io import read_without_limit_option
    from ..train.data import list_images

    roots = data if isinstance(data, (list, tuple)) else [data]
    files = sorted(f for r in roots for f in list_images(r))
    if not files:
        raise ValueError("no training images to measure the base latent's channel variances on")
    picks = [files[i * len(files) // min(ENERGY_CROPS, len(files))] for i in range(min(ENERGY_CROPS, len(files)))]
    out = []
    for f in picks:
        im = Image.fromarray(read_without_limit_option(f, "train").rgb)  # (as training reads it: convert("RGB") made a 16-bit grey one white)
        s = ENERGY_PATCH / min(im.size)
        if s > 1:
            im = im.resize((max(ENERGY_PATCH, round(im.width * s)), max(ENERGY_PATCH, round(im.height * s))),
                           Image.BICUBIC)
        left, top = (im.width - ENERGY_PATCH) // 2, (im.height - ENERGY_PATCH) // 2
        a = np.asarray(im.crop((left, top, left + ENERGY_PATCH, top + ENERGY_PATCH)), np.float32) / 255
        out.append(torch.from_numpy(a.copy()).permute(2, 0, 1))
    return torch.stack(out)


def _is_shipped(info) -> bool:
    from .catalog import WEIGHTS_DIR

    return Path(info.path).resolve().parent == WEIGHTS_DIR.resolve() and os.path.isfile(info.path)
