"""Learned codecs: architectures (by name), and the weight files that instantiate them."""

from . import context, hyperprior, scalable, tcm  # noqa: F401  (registers architectures)
from .registry import ARCHITECTURES, build_architecture, register_architecture
from .zoo import ModelInfo, load_model, resolve, save_model, shipped_models

__all__ = [
    "ARCHITECTURES",
    "ModelInfo",
    "build_architecture",
    "load_model",
    "register_architecture",
    "resolve",
    "save_model",
    "shipped_models",
]
