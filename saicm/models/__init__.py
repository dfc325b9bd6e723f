"""Learned codecs: architectures (by name), and the weight files that instantiate them.

Names are imported on first use: the catalogue of weight files (:mod:`saicm.models.catalog`) loads without
PyTorch, for the portable engine; the architectures register when first needed.
"""

from typing import TYPE_CHECKING

_LAZY = {
    "ARCHITECTURES": "registry",
    "build_architecture": "registry",
    "register_architecture": "registry",
    "ModelInfo": "catalog",
    "resolve": "catalog",
    "shipped_models": "catalog",
    "load_model": ("zoo", "open_model"),  # the caller's own copy, as saicm.load_model (never the cached model
    "save_model": "zoo",                  # that saicm's PyTorch paths code with)
}

__all__ = sorted(_LAZY)

if TYPE_CHECKING:  # what type checkers see (py.typed): the names of _LAZY, typed (a test keeps them equal)
    # (``X as X``: exported under mypy --strict, whose --no-implicit-reexport reads no computed __all__)
    from .catalog import ModelInfo as ModelInfo, resolve as resolve, shipped_models as shipped_models
    from .registry import (ARCHITECTURES as ARCHITECTURES, build_architecture as build_architecture,
                           register_architecture as register_architecture)
    from .zoo import open_model as _open_model
    from .zoo import save_model as save_model

    load_model = _open_model


def __getattr__(name):
    if name in _LAZY:
        import importlib

        where, attr = _LAZY[name] if isinstance(_LAZY[name], tuple) else (_LAZY[name], name)
        mod = importlib.import_module(f"{__name__}.{where}")
        if where == "registry":
            mod.load_architectures()
        value = getattr(mod, attr)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    """The API (imported on first use, so not yet in the namespace) and the submodules loaded: tab completion."""
    return sorted({n for n in globals() if not n.startswith("_") and n != "TYPE_CHECKING"} | set(_LAZY))
