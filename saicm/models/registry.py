"""Architectures by name.

A new architecture is one module plus ``@register_architecture("name")``. Every
architecture honours the contract of :class:`saicm.models.base.VariableRateCodec`.
"""

from __future__ import annotations

from typing import Callable, Dict, Type

from torch import nn

ARCHITECTURES: Dict[str, Type[nn.Module]] = {}


def register_architecture(name: str) -> Callable[[Type[nn.Module]], Type[nn.Module]]:
    def deco(cls: Type[nn.Module]) -> Type[nn.Module]:
        if name in ARCHITECTURES:
            raise ValueError(f"architecture {name!r} registered twice")
        ARCHITECTURES[name] = cls
        cls.architecture = name
        return cls

    return deco


def load_architectures() -> Dict[str, Type[nn.Module]]:
    """Every architecture saicm ships, registered (their modules import on first need): ``ARCHITECTURES``."""
    from . import context, hyperprior, scalable, tcm  # noqa: F401  (registers architectures)

    return ARCHITECTURES


def build_architecture(name: str, **config) -> nn.Module:
    from ..errors import ModelError

    load_architectures()

    try:
        cls = ARCHITECTURES[name]
    except KeyError:
        known = ", ".join(sorted(ARCHITECTURES)) or "none"
        raise ModelError(f"unknown architecture {str(name)[:60]!r} (known: {known})") from None
    from ..entropy.bounded import install

    model = cls(**config)
    install(model)  # every decoder this process builds reads strings from strangers safely
    return model
