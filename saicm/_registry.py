"""The one way saicm's extension tables take entries: ``register = registrar(TABLE, "codec")`` makes the
decorator ``@register("name")`` that adds what it decorates to ``TABLE`` under that name and returns it unchanged.
A later entry under a taken name replaces the earlier one (a plugin may replace a built-in codec, task model, face
detector or distortion). Architectures, whose names are written into files, refuse that instead
(:func:`saicm.models.registry.register_architecture`)."""
from __future__ import annotations

from typing import Callable, TypeVar

T = TypeVar("T")


def registrar(table: dict, what: str) -> Callable[[str], Callable[[T], T]]:
    def register(name: str | None = None, *, kind: str | None = None) -> Callable[[T], T]:
        if (name is None) == (kind is None):
            raise TypeError(f"{register.__name__}() takes one name (``kind=`` is its older spelling)")
        name = name if kind is None else kind

        def deco(obj: T) -> T:
            table[name] = obj
            return obj

        return deco

    register.__name__ = register.__qualname__ = f"register_{what.replace(' ', '_')}"
    register.__doc__ = f"Decorator: ``@{register.__name__}(name)`` adds a {what} under ``name`` (replacing one there)."
    return register
