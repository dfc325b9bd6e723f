"""saicm: learned image coding for machines and humans.

Public API::

    data = saicm.compress("photo.jpg", model="mse-hyperprior-n64-v5", quality=3)
    image = saicm.decompress(data)          # PIL.Image
    two = saicm.compress("photo.jpg", model="scalable-off02v6-m4-cond", quality=4, human_quality=3)
    machine = saicm.strip(two)              # the machine layer alone (the base model's file, byte for byte)
    saicm.video.encode("clip.264", "clip.saicmv", frames="0:30")   # NeRV / SA-NeRV clips (saicm.video)

Attributes are imported on first use, so ``saicm --help`` does not load PyTorch.
"""

import os as _os
from typing import TYPE_CHECKING

from ._lazy import lazy_getattr as _lazy_getattr

# onnxruntime's telemetry (its device id, event database and uploads; a user's own setting wins): saicm codes
# images, it reports to no one
_os.environ.setdefault("ORT_DISABLE_TELEMETRY", "1")

# $SAICM_THREADS bounds the libraries' own thread pools as well: NumPy's BLAS and PyTorch take OMP_NUM_THREADS when
# they load (a user's own OMP_NUM_THREADS wins; so SAICM_THREADS=1 alone means one core)
# (a value that is no thread count counts as unset here too: it set OMP_NUM_THREADS to every CPU; the engine says so)
# (an OMP_NUM_THREADS that is no thread count counts as unset too: libgomp said so in its own words and took every
# CPU, and SAICM_THREADS did not take its place; the command line says so)
# (checked by engine.parallel only when it is set to other than a plain whole number >= 1: importing that module, and
# its threading, made every `import saicm` a third slower, OMP_NUM_THREADS unset or 1)
_omp = _os.environ.get("OMP_NUM_THREADS")
if _omp is not None and not (_omp.isascii() and _omp.isdigit() and 1 <= int(_omp) < 2 ** 63):
    from .engine.parallel import drop_invalid_omp_threads as _drop_invalid_omp_threads

    _drop_invalid_omp_threads()
if _os.environ.get("SAICM_THREADS", "").strip():
    from .engine.parallel import requested_threads as _requested, threads as _threads

    if _requested(say=False) is not None:
        _os.environ.setdefault("OMP_NUM_THREADS", str(_threads(say=False)))

__version__ = "0.40.2"

_API = {
    "compress": ("saicm.codec.pipeline", "compress"),
    "decompress": ("saicm.codec.pipeline", "decompress"),
    "describe": ("saicm.codec.pipeline", "describe"),
    "strip": ("saicm.codec.scalable", "strip"),
    "split": ("saicm.codec.scalable", "split"),
    "load_model": ("saicm.models.zoo", "open_model"),  # a model of the caller's own (not the cached one)
    "list_models": ("saicm.models.catalog", "list_models"),  # copies of the shipped models' infos
    "release_models": ("saicm.engine.model", "release_models"),  # a service's memory back after many models
    "SaicmError": ("saicm.errors", "SaicmError"),
    "ArgumentError": ("saicm.errors", "ArgumentError"),
    "FormatError": ("saicm.errors", "FormatError"),
    "ImageError": ("saicm.errors", "ImageError"),
    "ModelError": ("saicm.errors", "ModelError"),
    "MissingDependency": ("saicm.errors", "MissingDependency"),
    "SaicmWarning": ("saicm.errors", "SaicmWarning"),
}

__all__ = sorted(_API)

if TYPE_CHECKING:  # what type checkers see (py.typed): the names of _API, typed (a test keeps them equal)
    # (``X as X``: exported under mypy --strict, whose --no-implicit-reexport reads no computed __all__)
    from . import video as video
    from .codec.pipeline import compress as compress, decompress as decompress, describe as describe
    from .codec.scalable import split as split, strip as strip
    from .engine.model import release_models as release_models
    from .errors import (ArgumentError as ArgumentError, FormatError as FormatError, ImageError as ImageError,
                         MissingDependency as MissingDependency, ModelError as ModelError, SaicmError as SaicmError,
                         SaicmWarning as SaicmWarning)
    from .models.catalog import list_models as list_models
    from .models.zoo import open_model as _open_model

    load_model = _open_model
else:
    # saicm.video.encode / decode work without an explicit import of the subpackage
    __getattr__ = _lazy_getattr("saicm", {**_API, "video": ("saicm.video", None)}, globals())


def __dir__() -> list[str]:
    """The public API too (imported on first use, so not yet in the module's namespace): tab completion sees it."""
    # (not the module's own helpers: TYPE_CHECKING is the typing flag, not saicm's)
    return sorted({n for n in globals() if not n.startswith("_") and n != "TYPE_CHECKING"} | set(_API)
                  | {"video", "__version__"})
