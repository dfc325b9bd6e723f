"""Segment Anything (Meta's ``segment-anything`` package) as a mask source.

α is SAM's confidence threshold ``pred_iou_thresh`` of
``SamAutomaticMaskGenerator``; every other generator setting keeps the
package default (32 points per side, ``stability_score_thresh`` 0.95,
``box_nms_thresh`` 0.7, no crops) unless overridden with ``--sam-opt KEY=VALUE``.
The checkpoint is always a user-supplied path; nothing is downloaded.

``vit_tiny`` is a randomly initialised miniature of the package's own builder
(embed 64, depth 2), for tests of the whole path without a real checkpoint;
its masks are meaningless.
"""

from __future__ import annotations

import inspect
import math
from pathlib import Path

import numpy as np

from .._fs import file_sha256
from ..errors import SaicmError

SAM_MODELS = ("vit_b", "vit_l", "vit_h", "vit_tiny")
_EMBED_DIMS = {768: "vit_b", 1024: "vit_l", 1280: "vit_h", 64: "vit_tiny"}


def _import():
    try:
        import segment_anything  # noqa: F401
    except ImportError:  # pragma: no cover - it is a dependency
        raise SaicmError("the segment-anything package is not installed (pip install segment-anything)") from None
    return segment_anything


def build_sam(kind: str, checkpoint: str | Path | None):
    """Build a SAM of ``kind`` and load ``checkpoint`` (required except for ``vit_tiny``)."""
    sa = _import()
    if kind not in SAM_MODELS:
        raise SaicmError(f"unknown SAM model {kind!r} (known: {', '.join(SAM_MODELS)})")
    state = _read_checkpoint(kind, checkpoint) if checkpoint is not None else None
    if kind == "vit_tiny":
        from segment_anything.build_sam import _build_sam

        model = _build_sam(encoder_embed_dim=64, encoder_depth=2, encoder_num_heads=2,
                           encoder_global_attn_indexes=[1], checkpoint=None)
    else:
        if state is None:
            raise SaicmError(f"--source sam needs --sam-checkpoint PATH (a {kind} checkpoint from Meta's "
                             "segment-anything release); without one use --source regions")
        model = sa.sam_model_registry[kind](checkpoint=None)
    if state is not None:
        misfit = _misfit(model.state_dict(), state)
        if misfit:  # (PyTorch's own error's first line named nothing: "Error(s) in loading state_dict for Sam:")
            raise SaicmError(f"checkpoint does not fit {kind}: {misfit}", str(checkpoint))
        model.load_state_dict(state)
    return model.eval()


def _misfit(want: dict, have: dict, show: int = 3) -> str:
    """What keeps ``have`` from loading into a model of state dict ``want`` (its first few weights missing,
    unexpected and of another shape), or "" when it fits."""
    def names(keys) -> str:
        keys = sorted(keys)
        return ", ".join(keys[:show]) + (f" and {len(keys) - show} more" if len(keys) > show else "")

    def size(t) -> str:
        return "x".join(map(str, t.shape)) if hasattr(t, "shape") else type(t).__name__

    missing, unexpected = set(want) - set(have), set(have) - set(want)
    shapes = [f"{k} is {size(have[k])}, not {size(want[k])}" for k in sorted(set(want) & set(have))
              if not hasattr(have[k], "shape") or tuple(have[k].shape) != tuple(want[k].shape)]
    said = ([f"{len(missing)} weight(s) missing: {names(missing)}"] if missing else []) + \
           ([f"{len(unexpected)} unexpected: {names(unexpected)}"] if unexpected else []) + \
           ([f"{len(shapes)} of another shape: " + "; ".join(shapes[:show])] if shapes else [])
    return "; ".join(said)


def _read_checkpoint(kind: str, checkpoint) -> dict:
    """Load a SAM state dict and check it is one, of the right size, before building anything."""
    from .._torchfile import load_data_only

    p = Path(checkpoint)
    state = load_data_only(p, "SAM checkpoint", other_kind="--sam-checkpoint takes a segment-anything .pth file "
                           "(Meta's release: sam_vit_b_01ec64.pth, or a fine-tune saved the same way)")
    if isinstance(state, dict) and isinstance(state.get("model"), dict):
        state = state["model"]
    if isinstance(state, dict) and state and all(isinstance(k, str) and k.startswith("module.") for k in state):
        # (a fine-tune saved from DataParallel/DistributedDataParallel: every name behind the wrapper's prefix)
        state = {k[len("module."):]: v for k, v in state.items()}
    if not isinstance(state, dict) or "image_encoder.patch_embed.proj.weight" not in state:
        raise SaicmError("not a Segment Anything checkpoint (no image_encoder weights)", str(p))
    dim = int(state["image_encoder.patch_embed.proj.weight"].shape[0])
    found = _EMBED_DIMS.get(dim, f"an unknown ViT (embed {dim})")
    if found != kind:
        raise SaicmError(f"this is a {found} checkpoint, but --sam-model is {kind}", str(p))
    return state


def generator_options() -> dict:
    """The generator's keyword defaults (for documentation and ``--sam-opt`` checking)."""
    _import()
    from segment_anything import SamAutomaticMaskGenerator

    sig = inspect.signature(SamAutomaticMaskGenerator)
    return {k: v.default for k, v in sig.parameters.items()
            if k not in ("model", "point_grids", "output_mode")}


def without_defaults(options: dict) -> dict:
    """``options`` less those equal to the generator's own default: what masks depend on, recorded one way
    (``--sam-opt points_per_side=32``, the default, was recorded, and a resume without it refused as other settings,
    the other way round too)."""
    known = generator_options()
    return {k: v for k, v in options.items() if k not in known or known[k] is None or v != known[k]}


def parse_options(pairs: list[str]) -> dict:
    """``["points_per_side=16", ...]`` → typed keyword arguments for the generator."""
    known = generator_options()
    out = {}
    for pair in pairs or []:
        if "=" not in pair:
            raise SaicmError(f"--sam-opt wants KEY=VALUE, got {pair!r}")
        k, v = pair.split("=", 1)
        if k not in known:
            raise SaicmError(f"unknown SAM generator option {k!r} (known: {', '.join(sorted(known))})")
        if k == "pred_iou_thresh":
            raise SaicmError("set pred_iou_thresh with --alpha")
        default = known[k]
        try:
            out[k] = type(default)(v) if default is not None else float(v)
        except ValueError:
            raise SaicmError(f"--sam-opt {k}: cannot read {v!r} as {type(default).__name__}") from None
        _check_range(k, out[k])
    return out


#: the least value of the generator's counts (0 points or a batch of 0 divided by zero, -1 crop layers indexed out of
#: range, in a traceback after the model was loaded) and the options that are shares or IoUs, in [0, 1]
_LEAST = {"points_per_side": 1, "points_per_batch": 1, "crop_n_points_downscale_factor": 1, "crop_n_layers": 0,
          "min_mask_region_area": 0}
_UNIT = ("stability_score_thresh", "box_nms_thresh", "crop_nms_thresh", "crop_overlap_ratio")


def _check_range(key: str, value) -> None:
    """Refuse a ``--sam-opt`` value the generator cannot run with (or a NaN, which masks.json could not match on a
    resume: NaN equals nothing), before the model is loaded and the folder's record is written."""
    if key in _LEAST and value < _LEAST[key]:
        raise SaicmError(f"--sam-opt {key} must be at least {_LEAST[key]}, got {value}")
    if isinstance(value, float):
        if key in _UNIT and not 0.0 <= value <= 1.0:  # (NaN fails this too)
            raise SaicmError(f"--sam-opt {key} must be a number in [0, 1], got {value}")
        if not math.isfinite(value):
            raise SaicmError(f"--sam-opt {key} must be a finite number, got {value}")


class SamSegmenter:
    """Automatic SAM masks painted into a label map (larger masks first)."""

    def __init__(self, kind: str = "vit_b", checkpoint=None, alpha: float = 0.88, options: dict | None = None,
                 device: str = "auto"):
        if not (0.0 < alpha <= 1.0):
            raise SaicmError(f"--alpha must be in (0, 1], got {alpha}")
        from segment_anything import SamAutomaticMaskGenerator

        self.kind, self.alpha = kind, alpha
        self.options = dict(options or {})
        from ..device import resolve_device

        self.device = resolve_device(device)
        self.model = build_sam(kind, checkpoint).to(self.device)
        self.generator = SamAutomaticMaskGenerator(self.model, pred_iou_thresh=alpha, **self.options)
        #: the weights by content (Meta's file names end in its first hex digits: ``sam_vit_h_4b8939.pth``)
        self.checkpoint_sha256 = file_sha256(checkpoint) if checkpoint is not None else None

    def settings(self) -> dict:
        """What the masks depend on: α, the variant, the weights' SHA-256 (the variant alone let a folder resume with
        another checkpoint of it, mixing two models' masks under one record) and the generator options."""
        weights = {} if self.checkpoint_sha256 is None else {"checkpoint_sha256": self.checkpoint_sha256}
        return dict(alpha=self.alpha, sam_model=self.kind, **weights, **without_defaults(self.options))

    def masks(self, rgb: np.ndarray) -> list[np.ndarray]:
        import torch

        with torch.inference_mode():
            return [m["segmentation"] for m in self.generator.generate(np.ascontiguousarray(rgb[..., :3]))]

    def __call__(self, rgb: np.ndarray) -> np.ndarray:
        from .edges import paint_masks

        return paint_masks(self.masks(rgb), rgb.shape[:2])
