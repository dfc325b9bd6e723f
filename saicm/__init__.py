"""saicm: learned image coding for machines and humans.

Public API::

    data = saicm.compress("photo.jpg", model="mse-hyperprior-n64-v5", quality=3)
    image = saicm.decompress(data)          # PIL.Image

Attributes are imported on first use, so ``saicm --help`` does not load PyTorch.
"""

__version__ = "0.2.0"

_API = {
    "compress": ("saicm.codec.pipeline", "compress"),
    "decompress": ("saicm.codec.pipeline", "decompress"),
    "describe": ("saicm.codec.pipeline", "describe"),
    "load_model": ("saicm.models.zoo", "load_model"),
    "list_models": ("saicm.models.zoo", "shipped_models"),
    "SaicmError": ("saicm.errors", "SaicmError"),
}

__all__ = sorted(_API)


def __getattr__(name):
    if name in _API:
        import importlib

        mod, attr = _API[name]
        value = getattr(importlib.import_module(mod), attr)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'saicm' has no attribute {name!r}")
