"""Architectures by name.

saicm's architectures register themselves with ``@register_architecture("name")`` when their modules import
(:func:`load_architectures`). An architecture of your own registers the same way, in a module saicm imports for
every command and worker process:

- ``$SAICM_ARCHITECTURES``: module names or ``.py`` files by their absolute path, separated by commas
  (``/home/me/my_arch.py``, ``mypackage.models``);
- or an entry point of the group ``saicm.architectures`` in an installed package (``pyproject.toml``:
  ``[project.entry-points."saicm.architectures"] my-arch = "mypackage.models"``; an entry point naming a class
  registers it under the entry point's name).

What an architecture must have is :data:`REQUIRED` (docs/usage.md, "Adding an architecture"); a model built
without it is refused in one line, before any training.
"""

from __future__ import annotations

import inspect
import os
import threading
from typing import Callable, Dict, Type

from torch import nn

ARCHITECTURES: Dict[str, Type[nn.Module]] = {}

#: the entry-point group of architectures from installed packages
ENTRY_POINT_GROUP = "saicm.architectures"
#: members every architecture needs (the trainer, the container and the coders read them)
REQUIRED = ("multiple", "num_qualities", "lambdas", "config", "forward", "compress", "decompress", "latent_shapes",
            "aux_loss", "update")
_USAGE = "docs/usage.md#adding-an-architecture"
_loaded: set[str] = set()  # the $SAICM_ARCHITECTURES items and entry points imported so far
_lock = threading.RLock()


def plugin_code_digest(cls) -> str | None:
    """SHA-256 (hex) of the source files of ``cls`` and its bases defined outside saicm, PyTorch and CompressAI (an
    architecture of the user's own) and, for those defined in a package, of every ``.py`` file of that package, or
    None when there are none: a changed plugin is another codec to the evaluation's decode cache. (The files of the
    classes alone: a package's layers or entropy model in a module of their own, ``mycodec/layers.py``, were edited
    with the same key, and the cache served the old code's decodes.)"""
    import hashlib
    import sys
    from pathlib import Path

    tops = {c.__module__.split(".")[0] for c in cls.__mro__}
    tops -= {"saicm", "torch", "compressai", "builtins", "typing"}
    files = {f for c in cls.__mro__ if c.__module__.split(".")[0] in tops for f in [_source(c)] if f}
    for top in tops:
        for folder in getattr(sys.modules.get(top), "__path__", None) or ():  # (a package: all its modules)
            files.update(os.path.realpath(f) for f in Path(folder).rglob("*.py"))
    files = sorted(files)
    if not files:
        return None
    h = hashlib.sha256()
    for f in files:
        try:
            with open(f, "rb") as fh:
                h.update(fh.read())
        except OSError:
            h.update(f.encode())
    return h.hexdigest()


def _source(cls) -> str | None:
    try:
        return os.path.realpath(inspect.getfile(cls))
    except (TypeError, OSError):
        return None


def register_architecture(name: str) -> Callable[[Type[nn.Module]], Type[nn.Module]]:
    def deco(cls: Type[nn.Module]) -> Type[nn.Module]:
        old = ARCHITECTURES.get(name)
        # the same class of the same file imported again (a script that imports its own module, also named in
        # $SAICM_ARCHITECTURES) takes the place of the first; another class under a taken name is an error
        if old is not None and not (old.__qualname__ == cls.__qualname__ and _source(old) == _source(cls)):
            raise ValueError(f"architecture {name!r} registered twice ({old.__module__}.{old.__qualname__} and "
                             f"{cls.__module__}.{cls.__qualname__})")
        ARCHITECTURES[name] = cls
        cls.architecture = name
        return cls

    return deco


def load_architectures() -> Dict[str, Type[nn.Module]]:
    """Every architecture saicm ships and the user's own (``$SAICM_ARCHITECTURES``, entry points), registered:
    ``ARCHITECTURES``."""
    from . import context, hyperprior, scalable, tcm  # noqa: F401  (registers architectures)

    _load_users()
    return ARCHITECTURES


def _load_users() -> None:
    with _lock:  # (threads building models at once: one imports, the others wait for its registrations)
        for item in (s.strip() for s in os.environ.get("SAICM_ARCHITECTURES", "").split(",")):
            if item and item not in _loaded:
                _load_once(item, "$SAICM_ARCHITECTURES", lambda item=item: _import_user_module(item),
                           f"run `python {item if item.endswith('.py') else '-m ' + item}` for the traceback")
        try:
            from importlib.metadata import entry_points

            points = entry_points(group=ENTRY_POINT_GROUP)
        except Exception:  # noqa: BLE001  (broken package metadata: no entry points)
            points = ()
        for ep in points:
            key = f"entry point {ep.name} = {ep.value}"
            if key not in _loaded:
                _load_once(key, f"the {key} (group {ENTRY_POINT_GROUP})", lambda ep=ep: _load_entry_point(ep), "")


def _load_once(key: str, where: str, load: Callable[[], None], hint: str) -> None:
    """Run ``load`` for ``key`` once: any failure of the user's code is one line, and leaves ``key`` to be tried
    again (a notebook that mends its module)."""
    from ..errors import ModelError

    _loaded.add(key)  # first: the module may import saicm.models, which comes back here
    try:
        load()
    except KeyboardInterrupt:
        _loaded.discard(key)
        raise
    except _NotAFile as e:  # (no code of theirs ran: nothing to trace back)
        _loaded.discard(key)
        raise ModelError(f"{where}: cannot import {key!r}: {e}") from None
    except BaseException as e:  # noqa: BLE001  (their code: any error, SystemExit included, said in one line)
        _loaded.discard(key)
        what = f"{type(e).__name__}: {e}" if not isinstance(e, SystemExit) else f"it called exit({e.code!r})"
        raise ModelError(f"{where}: cannot import {key!r}: {what}" + (f" ({hint})" if hint else "")) from None


class _NotAFile(ValueError):
    """A ``.py`` item of ``$SAICM_ARCHITECTURES`` that names no file saicm may import: said without the hint to run
    it for a traceback (there is none: none of its code ran)."""


def _load_entry_point(ep) -> None:
    obj = ep.load()
    if inspect.isclass(obj) and obj not in ARCHITECTURES.values():
        register_architecture(ep.name)(obj)


def _import_user_module(item: str) -> None:
    import hashlib
    import importlib
    import importlib.util
    import sys

    if not item.endswith(".py"):
        importlib.import_module(item)
        return
    if not os.path.isabs(os.path.expanduser(item)):  # (a my_arch.py in whatever folder a file is decoded from)
        raise _NotAFile(f"a relative path; give the file's absolute path, such as $PWD/{item}")
    path = os.path.realpath(os.path.expanduser(item))
    if not os.path.isfile(path):
        raise _NotAFile("no such file" if not os.path.exists(path) else "not a file")
    stem = "".join(c if c.isalnum() else "_" for c in os.path.splitext(os.path.basename(path))[0])
    # a top-level name of its own per file (two my_arch.py in different folders do not replace each other;
    # pickle finds the module in sys.modules)
    name = f"saicm_architectures_{stem}_{hashlib.sha256(path.encode()).hexdigest()[:8]}"
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        sys.modules.pop(name, None)
        raise


def missing_members(model: nn.Module) -> list[str]:
    """What ``model`` lacks of :data:`REQUIRED`, and a ``config`` its class could not be rebuilt from."""
    missing = [m for m in REQUIRED if not hasattr(model, m)
               or (m == "forward" and type(model).forward is nn.Module.forward)]  # (every module has one)
    config = getattr(model, "config", None)
    if "config" not in missing:
        if not isinstance(config, dict):
            missing.append("config (a dict)")
        else:
            params = inspect.signature(type(model)).parameters
            if not any(p.kind is p.VAR_KEYWORD for p in params.values()):
                extra = sorted(set(config) - set(params))
                if extra:
                    missing.append(f"config keys its constructor takes (not {', '.join(extra)})")
    return missing


def architecture_class(name: str) -> Type[nn.Module]:
    """The class registered as ``name`` (saicm's or the user's); an unknown name is a one-line error."""
    from ..errors import ModelError

    load_architectures()
    try:
        return ARCHITECTURES[name]
    except KeyError:
        # saicm's own first, then the user's; every part bounded (the message is one line of a few hundred characters)
        names = sorted(ARCHITECTURES, key=lambda a: (not ARCHITECTURES[a].__module__.startswith("saicm."), a))
        known = ", ".join(a[:40] for a in names[:6]) + (f" and {len(names) - 6} more" if len(names) > 6 else "") \
            or "none"
        given = os.environ.get("SAICM_ARCHITECTURES", "").strip()
        given = given if len(given) <= 80 else given[:77] + "..."
        own = (f"$SAICM_ARCHITECTURES ({given}) registers no {str(name)[:60]!r}" if given
               else "one of your own: $SAICM_ARCHITECTURES=/path/to/my_arch.py")
        raise ModelError(f"unknown architecture {str(name)[:60]!r} (known: {known}; {own}; {_USAGE})") from None


def build_architecture(name: str, **config) -> nn.Module:
    from ..entropy.bounded import install
    from ..errors import ModelError

    cls = architecture_class(name)
    model = cls(**config)
    missing = missing_members(model)
    if missing:
        raise ModelError(f"architecture {name!r} ({cls.__module__}.{cls.__qualname__}) lacks what saicm needs: "
                         f"{', '.join(missing)} ({_USAGE})")
    install(model)  # every decoder this process builds reads strings from strangers safely
    return model
