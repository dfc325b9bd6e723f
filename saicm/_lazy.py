"""Attributes of a package imported on first use (``saicm --help`` and ``import saicm`` stay free of PyTorch)."""

from __future__ import annotations

import functools
import importlib
import inspect
from typing import Any, Callable


def lazy_getattr(package: str, api: dict[str, tuple[str, str | None]], namespace: dict[str, Any]
                 ) -> Callable[[str], Any]:
    """A module ``__getattr__`` for ``package``: ``api`` maps a public name to ``(module, attribute)``, or to
    ``(module, None)`` for the module itself; the value is imported on first access and kept in ``namespace``."""

    def __getattr__(name: str) -> Any:
        if name not in api:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        module, attr = api[name]
        try:
            value = importlib.import_module(module)
        except ModuleNotFoundError as e:  # an optional extra's module (PyTorch) on a coding-only install
            from .errors import MissingDependency

            missing = MissingDependency.of(e)
            if missing is None or attr is None:
                raise missing or e from None

            def unavailable(*args, **kwargs):  # present (hasattr, import *), and one line when called
                raise missing

            unavailable.__name__ = unavailable.__qualname__ = name
            unavailable.__doc__ = f"Not available here: {missing}"  # (what help(saicm) says of it)
            return unavailable
        if attr is not None:
            value = getattr(value, attr)
            if inspect.isfunction(value):
                value = _missing_extra_in_one_line(value)
                # Named where it is public: help(saicm.load_model) was headed by the function's own name
                # (open_model), and pickle, which finds a function by module and name, refused every one ("not
                # the same object as saicm.codec.pipeline.compress"): pool.map(saicm.compress, paths) failed
                value.__name__ = value.__qualname__ = name
                value.__module__ = package
        namespace[name] = value
        return value

    return __getattr__


def _missing_extra_in_one_line(fn: Callable) -> Callable:
    """``fn``, raising :class:`~saicm.errors.MissingDependency` (a SaicmError naming the extra to install) where a
    call needs an optional extra's module that is not installed (``saicm.compress(..., engine="torch")`` on a
    coding-only install raised a bare ModuleNotFoundError from deep inside)."""

    @functools.wraps(fn)
    def call(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except ModuleNotFoundError as e:
            from .errors import MissingDependency

            missing = MissingDependency.of(e)
            if missing is None:
                raise
            raise missing from None

    return call
