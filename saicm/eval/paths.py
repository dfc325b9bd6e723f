"""How generated pages and figures name datasets and files: never by an absolute path.

Results files record a dataset as it was given to ``saicm eval --dataset``
(often an absolute path on the machine that ran it). A page made from them is
read elsewhere, so :func:`display_path` names a path relative to a root:

- under ``root`` (default: the current directory): relative to it;
- a relative path outside it, with no ``root`` given: as written (it names no
  machine, e.g. ``../data/coco128/images``);
- otherwise: its last two components (``coco128/images``).
"""

from __future__ import annotations

import os
from pathlib import Path


def _under(path: str, base: str) -> str | None:
    """``path`` relative to ``base`` (POSIX separators) if it lies under it, else None."""
    for fn in (os.path.abspath, os.path.realpath):
        try:
            rel = Path(fn(path)).relative_to(fn(base))
        except ValueError:
            continue
        return rel.as_posix()
    return None


def display_path(path: str | os.PathLike | None, root: str | os.PathLike | None = None) -> str:
    """``path`` as a page should show it (see the module docstring); "" for an empty path."""
    if path is None or str(path) == "":
        return ""
    p = str(path)
    rel = _under(p, str(root) if root is not None else os.getcwd())
    if rel is not None:
        return rel
    if root is None and not os.path.isabs(p):
        return Path(os.path.normpath(p)).as_posix()
    parts = Path(os.path.abspath(p)).parts[1:]
    return "/".join(parts[-2:]) if parts else "."


def display_spec(spec: str | dict | None, root: str | os.PathLike | None = None) -> str:
    """A ``KIND:PATH`` spec (``--task-model``), or a config dict with ``kind`` and ``path``, with its path
    shown by :func:`display_path`."""
    if not spec:
        return ""
    if isinstance(spec, dict):
        kind, path = str(spec.get("kind", "")), spec.get("path")
        return f"{kind}:{display_path(path, root)}" if path else kind
    kind, sep, path = str(spec).partition(":")
    if not sep or not path:
        return spec
    return f"{kind}:{display_path(path, root)}"
