"""How generated pages and figures name datasets and files: never by an absolute path.

Results files record a dataset as it was given to ``saicm eval --dataset``
(often an absolute path on the machine that ran it). A page made from them is
read elsewhere, so :func:`display_path` names a path relative to a root:

- under ``root`` (default: the current directory): relative to it;
- a relative path outside it, with no ``root`` given: as written (it names no
  machine, e.g. ``../data/coco128/images``);
- otherwise: its last two components (``coco128/images``).

In each case no component up to the user's home folder, or a folder named as the user, is shown: ``~/photos`` is
``photos``, not ``alice/photos`` (the home folder itself is ``~``).
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


def _user_names() -> set[str]:
    """The names that say who ran saicm: the login name and the home folder's (usually the same)."""
    import getpass

    names = {os.path.basename(os.path.normpath(os.path.expanduser("~")))}
    try:
        names.add(getpass.getuser())
    except Exception:  # (no login name: getpass raises OSError, or KeyError for a uid without a passwd entry)
        pass
    return names - {"", ".", "..", "~", os.sep}


def _without_user(shown: str) -> str:
    """``shown`` from the component after the last one named as the user (``~`` when that is the last)."""
    parts = shown.split("/")
    names = _user_names()
    cut = max((i + 1 for i, part in enumerate(parts) if part in names), default=0)
    return shown if cut == 0 else "/".join(parts[cut:]) or "~"


def display_path(path: str | os.PathLike | None, root: str | os.PathLike | None = None) -> str:
    """``path`` as a page should show it (see the module docstring); "" for an empty path."""
    if path is None or str(path) == "":
        return ""
    p = str(path)
    rel = _under(p, str(root) if root is not None else os.getcwd())
    if rel is not None:
        return _without_user(rel)
    if root is None and not os.path.isabs(p):
        return _without_user(Path(os.path.normpath(p)).as_posix())
    parts = Path(os.path.abspath(p)).parts[1:]
    return _without_user("/".join(parts[-2:])) if parts else "."


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
