"""Which torch device a long job (training, SAM masks) runs on: one rule for every command.

``auto`` takes the first CUDA device when PyTorch sees one, else the CPU. An
explicit ``cuda``/``cuda:N`` that is not there is an error, not a silent CPU
run that would take a hundred times longer. Coding (compress/decompress) stays
on the CPU: bit-exact decoding is defined for the CPU kernels.
"""

from __future__ import annotations

import contextlib
import os
import threading
from typing import Iterator

from .errors import SaicmError, first_line

DEVICE_HELP = "auto (CUDA when PyTorch sees a GPU, else CPU), cpu, cuda or cuda:N (default auto)"


_kernels_lock = threading.Lock()
_kernels_users = 0  # calls inside single_thread_kernels, in every thread
_kernels_saved = 1  # PyTorch's thread count when the first of them entered
_kernels_depth = threading.local()  # (per thread: nested uses)


def _kernels_after_fork_in_child() -> None:
    """A forked child has the forking thread alone: its uses are the only ones (and the lock is free)."""
    global _kernels_lock, _kernels_users
    _kernels_lock, _kernels_users = threading.Lock(), getattr(_kernels_depth, "n", 0)


if hasattr(os, "register_at_fork"):  # (Unix only)
    os.register_at_fork(after_in_child=_kernels_after_fork_in_child)


@contextlib.contextmanager
def single_thread_kernels() -> Iterator[int]:
    """Run torch kernels on one thread (bit-exact coding paths); yields the process's thread count (what to run
    workers on). A thread pool started inside calls :func:`single_thread_worker` in each of its workers (a new
    thread takes the count of the last ``set_num_threads`` of any thread, and another call may have left).

    Several threads at once share one setting: the first keeps the count, each thread gets it back when it leaves
    (its own kernels) and the last leaves it to new threads. Each saving and restoring its own count left 1 to every later
    thread whenever a call began in a thread new to PyTorch while another ran (a service's thread pool), and the
    call itself then ran its strips on one worker.

    Here rather than in ``saicm.models`` so that the video decoder can use it without importing CompressAI."""
    import torch

    global _kernels_users, _kernels_saved
    depth = getattr(_kernels_depth, "n", 0)
    with _kernels_lock:
        if _kernels_users == 0:
            _kernels_saved = torch.get_num_threads()
        _kernels_users += 1
        n = _kernels_saved
        _kernels_depth.n = depth + 1
        torch.set_num_threads(1)
    try:
        yield n
    finally:
        with _kernels_lock:
            _kernels_users -= 1
            _kernels_depth.n = depth
            if depth == 0:  # (this thread's own count back; new threads', which the pools above do not rely on)
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


def resolve_device(spec: str | None = "auto", local_rank: int = 0, option: str = "--device "):
    """``spec`` → a ``torch.device``; under torchrun, ``auto``/``cuda`` take the process's ``local_rank`` GPU.
    ``option``: how the caller's user gave it, for the messages (``saicm eval``'s clip codecs: ``device=``)."""
    import torch  # not at import time: the CLI builds its --help without torch

    spec = (spec or "auto").strip().lower()
    if spec == "auto":
        spec = "cuda" if torch.cuda.is_available() else "cpu"
    if spec == "cpu":
        return torch.device("cpu")
    if spec == "cuda" or spec.startswith("cuda:"):
        if not torch.cuda.is_available():
            raise SaicmError(f"{option}{spec}: PyTorch sees no CUDA device here (use {option}cpu or auto)")
        index = local_rank if spec == "cuda" else spec.split(":", 1)[1]
        try:
            index = int(index)
        except ValueError:
            raise SaicmError(f"{option}{spec}: not a device index") from None
        count = torch.cuda.device_count()
        if not 0 <= index < count:
            if spec == "cuda":  # (torchrun started more processes on this machine than it has GPUs)
                raise SaicmError(f"{option}{spec}: this process's GPU is its LOCAL_RANK, {index}, and only {count} "
                                 f"CUDA device(s) are visible: start at most {count} process(es) per machine "
                                 "(torchrun --nproc_per_node)")
            raise SaicmError(f"{option}{spec}: only {count} CUDA device(s) visible")
        return torch.device("cuda", index)
    raise SaicmError(f"unknown {option}{spec!r} ({DEVICE_HELP})")


def launcher() -> tuple[int, int, int]:
    """``(RANK, WORLD_SIZE, LOCAL_RANK)`` as torchrun sets them, ``(0, 1, 0)`` without it. A value that is not a
    whole number (``WORLD_SIZE=``, ``RANK=abc``: a scheduler's or a container's own use of the names) is one line
    naming the variable: it was a ``ValueError`` traceback from ``int()``."""
    values = []
    for name, default, least in (("RANK", 0, 0), ("WORLD_SIZE", 1, 1), ("LOCAL_RANK", 0, 0)):
        text = os.environ.get(name)
        try:
            value = default if text is None else int(text)
        except ValueError:
            value = None
        if value is None or value < least:
            raise SaicmError(f"${name}={(text or '')[:40]!r} is not a whole number >= {least}: torchrun sets it for "
                             f"each of its processes (unset it to run one process)")
        values.append(value)
    return values[0], values[1], values[2]


def start_process_group(device) -> None:
    """``torch.distributed``'s process group for a run of several processes (``WORLD_SIZE`` > 1), once; without
    torchrun's other variables (``WORLD_SIZE=2`` alone) one line saying so, not PyTorch's traceback. On CUDA the
    process's GPU is made its current device first: ``barrier()`` runs on the current device, and ``video encode``
    left it at GPU 0 in every process (PyTorch's own words: "may use default device 0, causing issues like hang or
    all processes creating context on device 0")."""
    import torch
    import torch.distributed as dist

    if dist.is_initialized():
        return
    if device.type == "cuda":
        torch.cuda.set_device(device)
    try:
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    except ValueError as e:  # (env:// rendezvous: "environment variable RANK expected, but not set")
        raise SaicmError(f"WORLD_SIZE={os.environ.get('WORLD_SIZE', '')[:40]} asks for several processes, but "
                         f"they cannot meet ({first_line(e, 200)}): start them with torchrun, or unset "
                         "WORLD_SIZE") from None


def peer_gone(e: BaseException) -> bool:
    """Whether ``e`` is a collective (or the rendezvous store behind it) that failed because another process of the
    run is gone (killed: the OOM killer, a node lost)."""
    import torch.distributed as dist

    if isinstance(e, (ConnectionError, getattr(dist, "DistBackendError", ()), getattr(dist, "DistNetworkError", ()))):
        return True
    text = str(e).lower()
    return any(w in text for w in ("gloo", "nccl", "connection closed", "connection reset", "broken pipe"))


def single_thread_worker() -> None:
    """In a worker thread of a pool started inside :func:`single_thread_kernels` (and ended before it leaves): its
    kernels on one thread too (usually already so; not restored: the thread ends with its pool)."""
    import torch

    if torch.get_num_threads() != 1:
        torch.set_num_threads(1)


def keeps_callers_random_state(fn):
    """``fn`` (a job that seeds the process's random generators for its own reproducibility: ``train``, ``video
    encode``) run with the caller's global random states put back afterwards: PyTorch's CPU generator, Python's
    ``random`` and NumPy's global one. Called from a notebook or an application, such a job reseeded them for
    good (the caller's next ``torch.rand`` came out the same after every training)."""
    import functools

    @functools.wraps(fn)
    def kept(*args, **kwargs):
        import random

        import numpy as np
        import torch

        saved = torch.random.get_rng_state(), random.getstate(), np.random.get_state()
        try:
            return fn(*args, **kwargs)
        finally:
            torch.random.set_rng_state(saved[0])
            random.setstate(saved[1])
            np.random.set_state(saved[2])

    return kept
