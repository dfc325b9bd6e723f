"""The human layer of two-layer files in the portable engine (human-layer version 2), without PyTorch.

A ``scalable-fusion`` model with its built-in additional codec (``saicm.models.scalable``) is, for the
engine, three things:

- the **additional codec**: a gained mean-scale hyperprior over ``s·m`` channels (its ``add.*`` tensors),
  coded exactly like a single-layer portable stream (:class:`~saicm.engine.model.PortableModel`: integer
  hyper-synthesis, constriction ANS, latent in strips), or with the model's ``context`` options a context model
  (:class:`~saicm.engine.context.PortableContextModel`: its channel contexts as exact integer networks too);
- with ``condition=base``, the **condition network** on the machine layer's latent, whose output is added to
  the hyper-synthesis output. It decides coder tables, so it runs as an exact integer network too
  (:func:`~saicm.engine.hypernet.condition_network`), fed with the machine layer's decoded latent as the
  exact integers the engine decodes, the base's inverse gains folded into its first layer;
- the **human synthesis** of the fused latent (ŷ_a added to the first ``s·m`` channels of ŷ_b), a float
  transform like any ``g_s`` (ONNX graph or the PyTorch module).

The encoder codes ``g_a(x) · gain`` (``condition=none``, the paper's) or the residual
``(g_a(x) − ŷ_b[:s·m]) · gain`` (``condition=base``), as the PyTorch model does. The machine layer
must be a portable (format 3) stream of the base; images of any size are coded (analysis and synthesis by
tiles above 4 megapixels, latent in strips).
"""

from __future__ import annotations

import numpy as np

from ..codec.container import HUMAN_MAX_STRIPS
from ..codec.image_io import ImageLike, load_padded
from ..codec.tiling import needs_strips, strip_count, strip_rows, to_pixels
from ..errors import FormatError, ModelError
from ..models.catalog import (SCALABLE_ARCHITECTURE as ARCHITECTURE, ModelInfo, check_finite, check_fusion_channels,
                              locate, model_cache)
from .codec import padded
from .context import PortableContextModel
from .hypernet import condition_network
from .model import PortableModel, load, supports
from .runtime import transforms


def supports_scalable(info: ModelInfo) -> bool:
    """Whether the engine codes the human layer of ``info``: the built-in additional codec (a hyperprior, or with
    contexts), either condition, over a base the engine codes too (a scalable model trained over an imported
    ``tcm`` base was refused under ``--engine auto``, "use --engine compressai", where auto means that fallback).
    A base that cannot be found is reported when the model is loaded."""
    cfg = info.config
    if not (info.architecture == ARCHITECTURE and "additional" not in cfg
            and cfg.get("condition", "none") in ("none", "base")):
        return False
    try:
        base = locate(cfg["base"], cfg["base_sha256"], str(info.path.resolve().parent))
    except (ModelError, KeyError, TypeError, OSError):
        return True  # (PortableScalable says what is wrong with it)
    return supports(base)


class PortableScalable:
    """The human-layer half of a ``scalable-fusion`` file (numpy, onnxruntime)."""

    def __init__(self, info: ModelInfo):
        if not supports_scalable(info):
            raise ModelError(f"{info.name}: the portable engine codes the human layer of scalable models with the "
                             "built-in additional codec only; use --engine compressai", str(info.path))
        from safetensors import SafetensorError
        from safetensors.numpy import load_file

        cfg = info.config
        if not isinstance(cfg.get("base"), str) or not isinstance(cfg.get("base_sha256"), str):
            raise ModelError(f"the weights do not fit {ARCHITECTURE} (its configuration names no base model)",
                             str(info.path))
        self.base_info = locate(cfg["base"], cfg["base_sha256"], str(info.path.resolve().parent))
        if not supports(self.base_info):
            raise ModelError(f"the base {self.base_info.name} is not coded by the portable engine; "
                             "use --engine compressai", str(info.path))
        self.base = load(self.base_info)
        try:
            state = load_file(str(info.path))
            check_finite(state, str(info.path))  # (the condition network's too: it decides coder tables)
            self.channels = int(cfg["slice_channels"]) * int(cfg["m"])
            fused = check_fusion_channels(cfg.get("fusion_channels"), self.channels, self.base.M)
            # the base channels ŷ_a refines, in its channel order (None: the first s·m)
            self.fused = None if fused is None else np.asarray(fused, np.intp)
            self.condition = cfg.get("condition", "none")
            own = {k[4:]: v for k, v in state.items() if k.startswith("add.")}
            own.update({k: v for k, v in state.items() if k.startswith("g_s.")})
            add_cfg = {"M": self.channels, "N": int(cfg["N"]), "lambdas": cfg["lambdas"]}
            context = cfg.get("context")
            if context is not None:  # the additional codec codes its latent with channel contexts
                add_cfg.update(groups=context["groups"], checkerboard=context.get("checkerboard", True))
        except (KeyError, ValueError, TypeError, AttributeError, SafetensorError) as e:
            raise ModelError(f"the weights do not fit {ARCHITECTURE} ({e})", str(info.path)) from None
        kind = PortableModel if context is None else PortableContextModel
        self.add = kind(info, own, add_cfg, torch_parts=("add.g_a", "add.h_a", "g_s"))
        if not 1 <= self.channels <= self.base.M or self.add.state["g_s.0.weight"].shape[0] != self.base.M:
            raise ModelError(f"the weights do not fit {ARCHITECTURE} over {self.base_info.name} (shapes)",
                             str(info.path))
        self.cond_state = {k: v for k, v in state.items() if k.startswith("cond.")}
        if self.condition == "base" and len(self.cond_state) != 6:
            raise ModelError(f"the weights do not fit {ARCHITECTURE} (condition network)", str(info.path))
        self._cond: dict[int, object] = {}  # machine quality → its integer condition network
        self.info = info
        self.num_qualities = self.add.num_qualities

    def _offset(self, base_units: np.ndarray, base_quality: int) -> np.ndarray | None:
        """The condition network's integer offset (2·s·m, H, W) to the entropy parameters, or None."""
        if self.condition == "none":
            return None
        net = self._cond.get(base_quality)
        if net is None:
            try:
                net = self._cond[base_quality] = condition_network(
                    self.cond_state, "cond", self.base.inv_gain[base_quality - 1].astype(np.float32))
            except ValueError as e:
                raise ModelError(f"the weights do not fit {ARCHITECTURE} ({e})", str(self.info.path)) from None
        return net(base_units)

    def _fuse(self, y_b: np.ndarray, y_a: np.ndarray) -> np.ndarray:
        fused = y_b.copy()
        fused[:, self._part] += y_a
        return fused

    @property
    def _part(self):
        """Index of the base channels ``ŷ_a`` refines (distinct: ``+=`` through it adds once per channel)."""
        return slice(0, self.channels) if self.fused is None else self.fused

    def encode(self, image: ImageLike, base_units: np.ndarray, base_quality: int, quality: int,
               engine: str, max_pixels: int | None = None,
               latents: tuple[np.ndarray, np.ndarray] | None = None) -> tuple[list[bytes], int]:
        """(strings ``[z, y strip 0, …]``, rows per strip) of the human layer at ``quality`` over a machine layer
        whose decoded latent is ``base_units`` (:meth:`PortableModel.decode_units`) at ``base_quality``.

        ``latents``: the gained residual ``y`` (1, s·m, H, W) and hyper-latent ``z`` to code instead of the
        analysis' own (encoder-side refinement, :func:`saicm.codec.refine.refined_latents`)."""
        img, pb, pr = load_padded(image, self.base.multiple, max_pixels)
        h, w = img.size
        ph, pw = h + pb, w + pr
        if base_units.shape[1:] != (ph // 16, pw // 16):
            raise ModelError("the machine layer does not match the image's size")
        # as many rows per strip as the strip target allows, and enough that the strips fit the segment's u8 count
        rows = max(strip_rows(self.channels, pw // 16), -(-(ph // 16) // HUMAN_MAX_STRIPS))
        if latents is not None:
            y, z = latents
            if y.shape[1:] != (self.channels, ph // 16, pw // 16) or z.shape[-2:] != (ph // 64, pw // 64):
                raise ModelError("the refined latents do not match the image's size")
            return self.add.encode(y[0], z[0], rows, self._offset(base_units, base_quality)), rows
        t = transforms(self.add, engine)
        y = t.analysis_tiles(img.rgb, pb, pr) if needs_strips(self.base.M, ph, pw) else t.analysis(
            padded(img.rgb, pb, pr))
        if self.condition == "base":  # the residual to the machine layer's latent; the paper's codes g_a(x) itself
            y = y - self.base.dequantise(base_units[self._part], base_quality, self._part)
        y = y * self.add.gain[quality - 1][None, :, None, None]
        z = t.hyper_analysis(y)
        return self.add.encode(y[0], z[0], rows, self._offset(base_units, base_quality)), rows

    def decode(self, strings: list[bytes], z_shape: tuple[int, int], quality: int, rows: int,
               base_units: np.ndarray, base_quality: int, height: int, width: int, engine: str) -> np.ndarray:
        """The human image, uint8 (height, width, 3), of a human layer over the machine layer ``base_units``."""
        lh, lw = base_units.shape[1:]
        if tuple(z_shape) != (lh // 4, lw // 4):  # (the machine layer's latent is 4× its hyper-latent)
            raise FormatError("the human layer's latent does not match the machine layer's size")
        if rows < 1 or len(strings) != 1 + strip_count(lh, rows):
            raise FormatError("human-layer latent layout does not match the model (strip count)")
        units = self.add.decode_units(strings, z_shape, rows, self._offset(base_units, base_quality))
        fused = self._fuse(self.base.dequantise(base_units, base_quality), self.add.dequantise(units, quality))
        del units
        t = transforms(self.add, engine)
        if needs_strips(self.base.M, 16 * lh, 16 * lw):
            return t.synthesis_tiles(fused, height, width)
        x = t.synthesis(fused)[0, :, :height, :width]
        return to_pixels(x)


#: the portable human-layer model of a scalable weight file (cached per file and modification time)
load_scalable = model_cache(PortableScalable)
