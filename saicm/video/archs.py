"""The network architectures a ``.saicmv`` file may name, and the one place that dispatches on the name.

``nerv`` (:mod:`saicm.video.nerv`: frame index → positional encoding → MLP →
upsampling blocks) and ``hnerv`` (:mod:`saicm.video.hnerv`: a stored
per-frame embedding → the same blocks). Each module provides
``make_config(preset, height, width)``, ``check_config(cfg, height, width,
frames)``, ``param_layout(cfg, frames)`` (what the file stores, in order),
``count(cfg, frames)`` and ``build(cfg, frames)``; a network built from it
offers ``frame_inputs``, ``decode_frames``, ``channel_groups`` and
``prunable`` to the trainer and the renderer.
"""

from __future__ import annotations

from types import ModuleType

from ..errors import ArgumentError, FormatError

NAMES = ("nerv", "hnerv")
DEFAULT = "nerv"


def module(arch: str, *, from_file: bool = False) -> ModuleType:
    if arch == "nerv":
        from . import nerv

        return nerv
    if arch == "hnerv":
        from . import hnerv

        return hnerv
    err = FormatError if from_file else ArgumentError
    raise err(f"unknown architecture {str(arch)[:40]!r} (this saicm knows: {', '.join(NAMES)})")


def config_module(arch: str, *, from_file: bool = False) -> ModuleType:
    """The module of ``arch``'s configurations, checks, counts and layout, without PyTorch (``saicm info`` of a
    ``.saicmv`` file, which reads a header: it imported PyTorch for it)."""
    if arch == "nerv":
        from . import nerv_config

        return nerv_config
    if arch == "hnerv":
        from . import hnerv_config

        return hnerv_config
    return module(arch, from_file=from_file)  # (raises: unknown)


def check_choice(arch: str, preset) -> None:
    """Refuse an unknown architecture or preset name, or a preset dict without the presets' keys (an
    :class:`~saicm.errors.ArgumentError`) before any work: an encode read and decoded the whole clip first (7 s for
    300 CIF frames, minutes for long footage)."""
    mod = config_module(arch)
    mod.preset_widths(mod.PRESETS, preset)


def make_config(arch: str, preset, height: int, width: int) -> dict:
    return config_module(arch).make_config(preset, height, width)


def check_config(arch: str, cfg, height: int, width: int, frames: int) -> dict:
    return config_module(arch, from_file=True).check_config(cfg, height, width, frames)


def param_layout(arch: str, cfg: dict, frames: int) -> list[tuple[str, tuple[int, ...], int]]:
    return config_module(arch).param_layout(cfg, frames)


def count(arch: str, cfg: dict, frames: int) -> tuple[int, int]:
    """(parameters the file stores, multiply-adds per frame)."""
    return config_module(arch).count(cfg, frames)


def build(arch: str, cfg: dict, frames: int, *, training: bool = False):
    """The network of a configuration; ``training``: with what only fitting needs (HNeRV's encoder)."""
    if arch == "hnerv":
        from .hnerv import build as build_h

        return build_h(cfg, frames, encoder=training)
    return module(arch).build(cfg)
