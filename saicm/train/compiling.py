"""``--compile`` for the training loops (``saicm train``, ``saicm video encode``): one step through ``torch.compile``.

What a compiled step keeps from the uncompiled one: its random numbers come from PyTorch's own generator
(inductor's ``fallback_random``), so a seeded run draws the same noise, and everything drawn after it, with or
without ``--compile``; the parameters stay the module's own (checkpoints and ``--resume`` are unchanged). What
differs: float sums fused in another order (losses agree to ~4 digits), a first call that compiles (seconds to a
minute on CPU), and a C++ compiler needed at run time. A failure of the compiler is one :class:`SaicmError` line.
"""

from __future__ import annotations

from typing import Callable

from ..errors import SaicmError


def _from_the_compiler(e: BaseException) -> bool:
    return type(e).__module__.startswith(("torch._dynamo", "torch._inductor"))


class CompiledStep:
    """``fn`` (a module or function) through ``torch.compile``; called like ``fn``."""

    def __init__(self, fn: Callable, option: str = "--compile"):
        import torch

        self._fn = torch.compile(fn)
        self._option = option

    def __call__(self, *args, **kwargs):
        from torch._inductor import config as inductor_config

        with inductor_config.patch(fallback_random=True):  # read when a graph is (re)compiled
            try:
                return self._fn(*args, **kwargs)
            except Exception as e:
                if not _from_the_compiler(e):
                    raise
                first = (str(e).strip().splitlines() or [""])[0][:200]
                raise SaicmError(f"{self._option}: torch.compile could not compile the training step "
                                 f"({type(e).__name__}: {first}); run without {self._option}") from e
