"""Which torch device a long job (training, SAM masks) runs on: one rule for every command.

``auto`` takes the first CUDA device when PyTorch sees one, else the CPU. An
explicit ``cuda``/``cuda:N`` that is not there is an error, not a silent CPU
run that would take a hundred times longer. Coding (compress/decompress) stays
on the CPU: bit-exact decoding is defined for the CPU kernels.
"""

from __future__ import annotations

import contextlib
from typing import Iterator

from .errors import SaicmError

DEVICE_HELP = "auto (CUDA when PyTorch sees a GPU, else CPU), cpu, cuda or cuda:N (default auto)"


@contextlib.contextmanager
def single_thread_kernels() -> Iterator[int]:
    """Run torch kernels on one thread (bit-exact coding paths); yields the caller's thread count.

    Here rather than in ``saicm.models`` so that the video decoder can use it without importing CompressAI."""
    import torch

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield n
    finally:
        torch.set_num_threads(n)


def cpu_has_native_bf16() -> bool | None:
    """Whether PyTorch's CPU kernels run bfloat16 at speed here: oneDNN's own answer (AVX-512 and newer), else the
    CPU flags ``amx_bf16``/``avx512_bf16``; None when neither can be read.

    Without them PyTorch emulates bfloat16 on the CPU and ``--amp bf16`` is slower, not faster (measured ~6× per
    step on an AVX2-only AMD EPYC: docs/training.md)."""
    import torch

    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())  # oneDNN's own answer (a private op)
    except (AttributeError, RuntimeError):
        pass
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as f:
            flags = set(f.read().split())
    except OSError:
        return None
    return bool(flags & {"amx_bf16", "avx512_bf16"})


def resolve_device(spec: str | None = "auto", local_rank: int = 0):
    """``spec`` → a ``torch.device``; under torchrun, ``auto``/``cuda`` take the process's ``local_rank`` GPU."""
    import torch  # not at import time: the CLI builds its --help without torch

    spec = (spec or "auto").strip().lower()
    if spec == "auto":
        spec = "cuda" if torch.cuda.is_available() else "cpu"
    if spec == "cpu":
        return torch.device("cpu")
    if spec == "cuda" or spec.startswith("cuda:"):
        if not torch.cuda.is_available():
            raise SaicmError(f"--device {spec}: PyTorch sees no CUDA device here (use --device cpu or auto)")
        index = local_rank if spec == "cuda" else spec.split(":", 1)[1]
        try:
            index = int(index)
        except ValueError:
            raise SaicmError(f"--device {spec}: not a device index") from None
        if not 0 <= index < torch.cuda.device_count():
            raise SaicmError(f"--device {spec}: only {torch.cuda.device_count()} CUDA device(s) visible")
        return torch.device("cuda", index)
    raise SaicmError(f"unknown --device {spec!r} ({DEVICE_HELP})")
