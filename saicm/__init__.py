"""saicm: learned image coding for machines and humans.

Public API::

    data = saicm.compress("photo.jpg", model="mse-hyperprior-n64", quality=3)
    image = saicm.decompress(data)          # PIL.Image
"""

from .codec.pipeline import compress, decompress, describe
from .errors import SaicmError
from .models.zoo import load_model, shipped_models


def list_models() -> dict:
    """Name → :class:`saicm.models.ModelInfo` of every shipped model."""
    return shipped_models()


__all__ = ["SaicmError", "compress", "decompress", "describe", "list_models", "load_model"]
__version__ = "0.1.0"
