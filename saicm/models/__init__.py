"""Learned codecs: architectures (by name), and the weight files that instantiate them.

Names are imported on first use: the catalogue of weight files (:mod:`saicm.models.catalog`) loads without
PyTorch, for the portable engine; the architectures register when first needed.
"""

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
