"""``--compile`` for the training loops (``saicm train``, ``saicm video encode``): one step through ``torch.compile``.

What a compiled step keeps from the uncompiled one: its random numbers come from PyTorch's own generator
(inductor's ``fallback_random``), so a seeded run draws the same noise, and everything drawn after it, with or
without ``--compile``; the parameters stay the module's own (checkpoints and ``--resume`` are unchanged). What
differs: float sums fused in another order (losses agree to ~4 digits), a first call that compiles (seconds to a
minute on CPU), and a C++ compiler needed at run time. A failure of the compiler, in the forward call or in the
backward pass it compiles on first use (:func:`compiler_errors` around ``backward()``), is one
:class:`SaicmError` line.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from typing import Callable

from ..errors import SaicmError


@contextlib.contextmanager
def compiler_errors(option: str = "--compile"):
    """Turn what torch.compile's compiler raises (a class of ``torch._dynamo`` or ``torch._inductor``) into one
    :class:`SaicmError` line; any other exception passes unchanged."""
    try:
        yield
    except Exception as e:
        if not type(e).__module__.startswith(("torch._dynamo", "torch._inductor")):
            raise
        first = (str(e).strip().splitlines() or [""])[0][:200]
        if "No space left on device" in str(e):  # (the compiler's own words, lines below "C++ compile error")
            raise SaicmError(f"{option}: torch.compile could not compile the training step: no space left on device "
                             f"for its build files and kernel cache ({_kernel_cache()}, and $TMPDIR: "
                             f"{tempfile.gettempdir()}); point TMPDIR or TORCHINDUCTOR_CACHE_DIR at a folder with "
                             f"room (a job's small TMPDIR: its node's tmpfs), or run without {option}") from e
        raise SaicmError(f"{option}: torch.compile could not compile the training step ({type(e).__name__}: {first}); "
                         f"run without {option} (or, if a killed run left it broken, clear torch's kernel cache: "
                         f"{_kernel_cache()})") from e


def _kernel_cache() -> str:
    """torch's kernel cache folder: ``$TORCHINDUCTOR_CACHE_DIR``, else ``torchinductor_$USER`` in ``$TMPDIR``
    (the message named /tmp, where a cluster job's TMPDIR is not)."""
    try:
        from torch._inductor.runtime.cache_dir_utils import default_cache_dir

        return os.environ.get("TORCHINDUCTOR_CACHE_DIR") or default_cache_dir()
    except Exception:  # (another torch's layout)
        return os.path.join(tempfile.gettempdir(), "torchinductor_$USER") + " (TORCHINDUCTOR_CACHE_DIR)"


#: the message of the process's failed import of PyTorch's compiler, if one failed (:func:`kernel_cache_error`)
_kernel_cache_failed: str | None = None


def kernel_cache_error(e: OSError) -> SaicmError:
    """The one line for PyTorch's kernel cache folder that it cannot make (a container's read-only /tmp, TMPDIR
    naming a missing folder): it makes it as ``torch._dynamo`` is imported, whether or not anything is compiled.
    Remembered for the process (:func:`check_kernel_cache`), and it stops a folder job (``stops_job``)."""
    global _kernel_cache_failed
    where = f"{e.strerror}: {e.filename}" if e.filename else (e.strerror or str(e))
    _kernel_cache_failed = (f"PyTorch cannot make its kernel cache folder, which it does when its compiler is "
                            f"imported ({where}); point TMPDIR or TORCHINDUCTOR_CACHE_DIR at a writable folder "
                            "(nothing is compiled without --compile)")
    return check_kernel_cache(raise_=False)


def check_kernel_cache(raise_: bool = True) -> SaicmError | None:
    """The error of an import of PyTorch's compiler that failed earlier in this process (raised with ``raise_``):
    a second import is no retry (half its modules are left behind: it raised AssertionError, or torch_geometric's
    AttributeError, as a traceback at a folder's second file)."""
    if _kernel_cache_failed is None:
        return None
    err = SaicmError(_kernel_cache_failed)
    err.stops_job = True  # (every file would fail alike)
    if raise_:
        raise err
    return err


def check_kernel_cache_owner(option: str = "--compile") -> None:
    """Refuse to compile when PyTorch's kernel cache folder is not the user's alone: PyTorch takes the folder it finds
    (``torchinductor_$USER`` in a shared /tmp: another user may make it first, under the user's name) and loads
    the compiled kernels in it, shared libraries keyed by hashes anyone with the same PyTorch can compute, so
    their planted code would run as the user (the local-user audit). A folder not there yet is PyTorch's to make."""
    import_dynamo()  # (it makes the folder)
    from .._fs import trusted_folder

    folder = _kernel_cache().removesuffix(" (TORCHINDUCTOR_CACHE_DIR)")
    if os.path.isdir(folder) and not trusted_folder(folder):
        raise SaicmError(f"{option}: PyTorch's kernel cache folder {folder} is not yours alone (another user owns it "
                         "or may write in it): the compiled kernels it holds would run as you; point "
                         f"TORCHINDUCTOR_CACHE_DIR at a folder of your own, or run without {option}")


@contextlib.contextmanager
def importing_dynamo():
    """Inside, an import that imports ``torch._dynamo``: a failure to make the kernel cache folder is one line
    (:func:`kernel_cache_error`), and one earlier in the process is raised again at once. An ``OSError`` without
    an errno is no folder's: a shared library that PyTorch could not load (``libcudnn.so.9: cannot open shared
    object file``) passes as it is (it was told as the kernel cache folder, with TMPDIR to move, and remembered)."""
    check_kernel_cache()
    try:
        yield
    except OSError as e:
        if e.errno is None:
            raise
        raise kernel_cache_error(e) from None


def import_dynamo() -> None:
    """Import ``torch._dynamo`` (its first importer: CompressAI, or an optimiser's first parameter group), a failure
    to make the kernel cache folder one line (:func:`importing_dynamo`): NeRV's fit was a traceback of ~30 lines
    at its first optimiser."""
    with importing_dynamo():
        import torch._dynamo  # noqa: F401


class CompiledStep:
    """``fn`` (a module or function) through ``torch.compile``; called like ``fn``."""

    def __init__(self, fn: Callable, option: str = "--compile"):
        import torch

        check_kernel_cache_owner(option)
        self._fn = torch.compile(fn)
        self._option = option

    def __call__(self, *args, **kwargs):
        from torch._inductor import config as inductor_config

        with inductor_config.patch(fallback_random=True), compiler_errors(self._option):  # read when (re)compiling
            return self._fn(*args, **kwargs)
