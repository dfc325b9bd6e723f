"""Command families that register their own ``saicm`` subcommands.

``saicm/cli.py`` holds the core commands (compress, decompress, info, models,
eval, train, masks...). A family of commands that belongs to one part of the
product (scalable files, video, checkpoint import) lives in a module here
with a ``register(subparsers)`` function; :data:`FAMILIES` lists them. Keep
module-level imports light: ``saicm --help`` builds every parser.
"""

from __future__ import annotations

from importlib import import_module

#: modules under saicm.commands, each with ``register(subparsers)``
FAMILIES = ("scalable", "imports", "video")


def register_all(subparsers) -> None:
    for name in FAMILIES:
        import_module(f"{__name__}.{name}").register(subparsers)
