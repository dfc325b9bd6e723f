"""What software made a file: saicm's version (and git commit when it runs from a checkout) and the libraries whose
versions decide its numbers. Training runs and evaluation results record it, so that a figure can be traced to
the code that produced it (a reproducibility review found neither a weight file nor its checkpoint naming the saicm
that trained it)."""

from __future__ import annotations

import functools
import os
import platform
import subprocess
from importlib import metadata
from pathlib import Path

#: the distributions whose versions go into a record (those installed; torch's only when it is)
LIBRARIES = ("torch", "numpy", "onnxruntime", "compressai", "Pillow")


@functools.lru_cache(maxsize=1)
def source_commit(root: Path | None = None) -> dict:
    """``{"commit": HASH, "dirty": bool}`` when saicm is imported from a git checkout (an editable install, a
    clone on ``PYTHONPATH``; ``root``: that checkout, default saicm's own), else {} (an installed wheel: its version
    says which code it is). Read without git's optional locks: ``git status`` took ``.git/index.lock`` to refresh
    the index, so a ``git commit`` in the checkout while a command started failed ("Unable to create
    '.git/index.lock': File exists"), and one killed at its timeout left the lock behind for good."""
    root = Path(__file__).resolve().parent.parent if root is None else Path(root)
    if not (root / ".git").exists():
        return {}
    git = ["git", "-C", str(root)]
    env = {**os.environ, "GIT_OPTIONAL_LOCKS": "0"}  # (git --no-optional-locks; older gits ignore the variable)
    try:
        head = subprocess.run([*git, "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10, env=env)
        if head.returncode:
            return {}
        status = subprocess.run([*git, "status", "--porcelain", "--untracked-files=no", "--", "saicm"],
                                capture_output=True, text=True, timeout=30, env=env)
    except (OSError, subprocess.SubprocessError):
        return {}
    out = {"commit": head.stdout.strip()}
    if status.returncode == 0:
        out["dirty"] = bool(status.stdout.strip())  # saicm's own sources differ from the commit
    return out


def software() -> dict:
    """``{"saicm": VERSION, ["commit": …, "dirty": …,] "python": …, LIBRARY: VERSION, …}``."""
    from . import __version__

    out = {"saicm": __version__, **source_commit(), "python": platform.python_version()}
    for name in LIBRARIES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return out  # (the distributions' versions, the same whether or not the library was imported)


@functools.lru_cache(maxsize=1)
def cpu_model() -> str:
    """The CPU's name (``/proc/cpuinfo``'s first ``model name`` on Linux, else what the platform says; "" if
    unknown)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                key, sep, value = line.partition(":")
                if sep and key.strip() == "model name":
                    return " ".join(value.split())
    except OSError:
        pass
    return platform.processor() or ""


def machine() -> dict:
    """``{"cpu": NAME, "cpus": N, "threads": N, "OMP_NUM_THREADS": …}``: what a results file's timings
    (``encode_s``, ``decode_s``) ran on. ``cpus``: the CPUs this process may use; ``threads``: the coding engine's
    threads per process (``$SAICM_THREADS``, else ``cpus``); ``OMP_NUM_THREADS`` as set (PyTorch's and BLAS's
    threads), or null."""
    import os

    from .engine.parallel import threads, usable_cpus

    return {"cpu": cpu_model(), "cpus": usable_cpus(), "threads": threads(),
            "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS")}
