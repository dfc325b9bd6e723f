"""saicm: learned image coding for machines and humans.

Public API::

    data = saicm.compress("photo.jpg", model="mse-hyperprior-n64-v5", quality=3)
    image = saicm.decompress(data)          # PIL.Image
    two = saicm.compress("photo.jpg", model="scalable-off02v5-m4-cond", quality=4, human_quality=3)
    machine = saicm.strip(two)              # the machine layer alone (the base model's file, byte for byte)
    saicm.video.encode("clip.264", "clip.saicmv", frames="0:30")   # NeRV / SA-NeRV clips (saicm.video)

Attributes are imported on first use, so ``saicm --help`` does not load PyTorch.
"""

__version__ = "0.7.0"

_API = {
    "compress": ("saicm.codec.pipeline", "compress"),
    "decompress": ("saicm.codec.pipeline", "decompress"),
    "describe": ("saicm.codec.pipeline", "describe"),
    "strip": ("saicm.codec.scalable", "strip"),
    "load_model": ("saicm.models.zoo", "load_model"),
    "list_models": ("saicm.models.catalog", "shipped_models"),
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
    if name == "video":  # saicm.video.encode / decode without an explicit import of the subpackage
        import importlib

        return importlib.import_module("saicm.video")
    raise AttributeError(f"module 'saicm' has no attribute {name!r}")
