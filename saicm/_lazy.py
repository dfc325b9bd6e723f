"""Attributes of a package imported on first use (``saicm --help`` and ``import saicm`` stay free of PyTorch)."""

from __future__ import annotations

import importlib
from typing import Any, Callable


def lazy_getattr(package: str, api: dict[str, tuple[str, str | None]], namespace: dict[str, Any]
                 ) -> Callable[[str], Any]:
    """A module ``__getattr__`` for ``package``: ``api`` maps a public name to ``(module, attribute)``, or to
    ``(module, None)`` for the module itself; the value is imported on first access and kept in ``namespace``."""

    def __getattr__(name: str) -> Any:
        if name not in api:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        module, attr = api[name]
        value = importlib.import_module(module)
        if attr is not None:
            value = getattr(value, attr)
        namespace[name] = value
        return value

    return __getattr__
