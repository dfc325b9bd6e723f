"""Command families that register their own ``saicm`` subcommands.

``saicm/cli.py`` holds the coding commands (compress, decompress, info, models,
demo) and ``main``. Every other family of commands lives in a module here with
a ``register(subparsers)`` function, listed in :data:`FAMILIES` (the order of
``saicm --help``): evaluation (eval, bdrate, plot, report), training (train,
export), masks, scalable (strip), imports (import-checkpoint), video. Keep
module-level imports light: ``saicm --help`` builds every parser. A command that
needs an optional extra as a whole names it on its parser
(``set_defaults(func=..., extra="eval")``): ``saicm`` then names that extra when
one of its modules is missing.
"""

from __future__ import annotations

from importlib import import_module

#: modules under saicm.commands, each with ``register(subparsers)``
FAMILIES = ("evaluation", "training", "masks", "scalable", "imports", "video")


def register_all(subparsers) -> None:
    for name in FAMILIES:
        import_module(f"{__name__}.{name}").register(subparsers)
