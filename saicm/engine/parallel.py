"""Threads of the portable engine: how many, and running the exact integer networks' blocks on them.

The integer networks (:mod:`saicm.engine.hypernet`, :mod:`saicm.engine.context`) are made of float64 matrix
products on small matrices (a latent of 48×32 positions for a 768×512 image), where BLAS's own threading
gains little. They split their work instead into independent blocks (rows of a convolution's output, of a
transposed one's input, columns of a pointwise one), run here on a pool of :func:`threads` threads with BLAS
limited to one thread meanwhile (``threadpoolctl``), so the cores are not oversubscribed. Every block is exact
integer arithmetic written to its own part of the output, so the result is the same bits for any number of threads.
"""

from __future__ import annotations

import functools
import os
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Iterable

if TYPE_CHECKING:  # (imported where a pool is made: `import saicm` imports this module, and concurrent.futures,
    # with logging, cost every command a third more start-up time, `saicm --help` and `import saicm` included)
    from concurrent.futures import ThreadPoolExecutor

_lock = threading.Lock()
_pools: dict[int, ThreadPoolExecutor] = {}
_controller = None
_limiter = None  # the BLAS limit in force while _users > 0
_users = 0


def _after_fork_in_child() -> None:
    """A forked child has none of the parent's pool threads: forget the pools (else work queued on them would
    wait forever) and the lock's state; a BLAS limit in force at the fork stays (one thread), harmlessly."""
    global _lock, _pools, _users, _limiter
    _lock, _pools, _users, _limiter = threading.Lock(), {}, 0, None


if hasattr(os, "register_at_fork"):  # (Unix only: Windows has no fork, and coding failed there at this line)
    os.register_at_fork(after_in_child=_after_fork_in_child)


def usable_cpus() -> int:
    """The CPUs this process may run on: its affinity (``taskset``, a container's or a scheduler's cpuset), where
    the system says it, else every CPU (``os.cpu_count`` ignores the affinity); no more than its CPU quota
    (:func:`cgroup_cpu_limit`)."""
    try:
        cpus = max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # (macOS, Windows)
        cpus = max(1, os.cpu_count() or 1)
    quota = cgroup_cpu_limit()
    return cpus if quota is None else max(1, min(cpus, quota))


def cgroup_folders(controller: str, proc: str | Path = "/proc/self/cgroup", root: str | Path = "/sys/fs/cgroup"):
    """``(v2, folder)`` for this process's cgroup and every group above it: cgroup v2's (``v2`` true) and cgroup v1's
    hierarchy of ``controller`` (``cpu``, ``memory``); none where nothing can be read (not Linux). Inside a container
    its own group shows as ``/``, or as a path that is not there: the groups above it are tried too."""
    try:
        lines = Path(proc).read_text().splitlines()
    except OSError:
        return
    for line in lines:
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        v2 = parts[1] == ""  # v2: "0::/PATH"; v1: "N:cpu,cpuacct:/PATH"
        if not v2 and controller not in parts[1].split(","):
            continue
        base = Path(root) if v2 else Path(root) / controller
        group = Path("/" + parts[2].strip().lstrip("/"))
        for g in (group, *group.parents):
            yield v2, base / str(g).lstrip("/")


@functools.lru_cache(maxsize=None)
def cgroup_cpu_limit(proc: str = "/proc/self/cgroup", root: str = "/sys/fs/cgroup") -> int | None:
    """The CPUs' worth of time this process's cgroup, or a group above it, may use (cgroup v2 ``cpu.max``, v1
    ``cpu.cfs_quota_us`` over ``cpu.cfs_period_us``), rounded up; None where none is set or nothing can be read
    (not Linux). ``docker run --cpus 2`` and a Kubernetes CPU limit set this, not the affinity: a container
    limited to two CPUs of a 64-CPU host ran 64 threads in each of onnxruntime's and the engine's pools, and a
    folder job gave each worker a 64-CPU share, throttled by the quota."""
    limits = []
    for v2, folder in cgroup_folders("cpu", proc, root):
        try:
            if v2:
                quota, period = (folder / "cpu.max").read_text().split()[:2]
            else:
                quota = (folder / "cpu.cfs_quota_us").read_text().strip()
                period = (folder / "cpu.cfs_period_us").read_text().strip()
            quota, period = int(quota), int(period)  # ("max", -1: none)
        except (OSError, ValueError):
            continue
        if quota > 0 and period > 0:
            limits.append(-(-quota // period))
    return min(limits) if limits else None


def cgroup_memory_limit(proc: str | Path = "/proc/self/cgroup", root: str | Path = "/sys/fs/cgroup") -> int | None:
    """The lowest memory limit set on this process's cgroup or on a group above it (cgroup v2 ``memory.max``, v1
    ``memory.limit_in_bytes``), or None where there is none or nothing can be read (not Linux). The physical memory
    is that of the whole machine, not what a container or a scheduler's job may use."""
    limits = []
    for v2, folder in cgroup_folders("memory", proc, root):
        try:
            value = (folder / ("memory.max" if v2 else "memory.limit_in_bytes")).read_text().strip()
        except OSError:
            continue
        if value.isdigit():  # ("max": none)
            limits.append(int(value))
    return min(limits) if limits else None


#: the values of $SAICM_THREADS already said to be ignored (each once per process)
_said_ignored: set[str] = set()


def requested_threads(say: bool = True) -> int | None:
    """``$SAICM_THREADS`` as a whole number ≥ 1, else None: unset, or a value that is none (``abc``, ``0``,
    ``2.5``, ``²``), which counts as unset and, with ``say``, is said once in a warning (it was ignored in
    silence: an operator's ``SAICM_THREADS=one`` ran on every CPU, and a folder job's each worker on all of them)."""
    text = os.environ.get("SAICM_THREADS", "").strip()
    if not text:
        return None
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value >= 1:
        return value
    if say and text not in _said_ignored:
        from ..errors import warn

        _said_ignored.add(text)
        warn(f"SAICM_THREADS={text[:40]!r} is not a whole number >= 1: ignored (the default, a thread per CPU)")
    return None


#: ``$OMP_NUM_THREADS`` as it was set when it was no thread count and :func:`drop_invalid_omp_threads` removed it
_omp_dropped: str | None = None
_omp_said = False


def drop_invalid_omp_threads() -> None:
    """Remove ``$OMP_NUM_THREADS`` from the environment when it is no thread count (``0``, ``-1``, ``abc``, ``2.5``;
    OpenMP takes a whole number >= 1, or a list of them such as ``4,2``), before PyTorch or BLAS load: it counts as
    unset, as an invalid ``$SAICM_THREADS`` does (libgomp said "Invalid value for environment variable
    OMP_NUM_THREADS" in its own words and ran on every CPU, and ``$SAICM_THREADS`` did not take its place). Said
    once by :func:`say_dropped_omp_threads`; a blank value is dropped unsaid (unset, as a blank
    ``$SAICM_THREADS``)."""
    global _omp_dropped
    import re

    text = os.environ.get("OMP_NUM_THREADS")
    if text is None:
        return
    numbers = text.split(",")
    # (libgomp reads each with strtoul and takes it as a signed long: 2**63 and more are refused in its own words,
    # "Invalid value for environment variable OMP_NUM_THREADS", as 0 is)
    if all(re.fullmatch(r"\s*\+?[0-9]+\s*", n) and 1 <= int(n) < 2 ** 63 for n in numbers):
        return
    del os.environ["OMP_NUM_THREADS"]
    if text.strip():
        _omp_dropped = text


def say_dropped_omp_threads() -> None:
    """The warning that ``$OMP_NUM_THREADS`` was ignored (:func:`drop_invalid_omp_threads`), once per process."""
    global _omp_said
    if _omp_dropped is None or _omp_said:
        return
    from ..errors import warn

    _omp_said = True
    warn(f"OMP_NUM_THREADS={_omp_dropped[:40]!r} is not a whole number >= 1: ignored (the default, a thread per CPU, "
         "or SAICM_THREADS)")


def threads(say: bool = True) -> int:
    """Threads per process: ``$SAICM_THREADS`` (folder jobs set it per worker), else every CPU. At most four per
    CPU (more only oversubscribe the cores: SAICM_THREADS=99999 made onnxruntime's sessions exhaust the process
    limit); a value that is not a whole number ≥ 1 counts as unset (:func:`requested_threads`)."""
    cpus = usable_cpus()
    if say:  # (not when saicm is imported: said in the command line's own format, or at the first use)
        say_dropped_omp_threads()
    value = requested_threads(say)
    return cpus if value is None else min(4 * cpus, value)


def shutdown_pools() -> None:
    """End the idle threads of the integer networks' pools (``saicm.release_models``); later work makes new ones."""
    with _lock:
        pools = list(_pools.values())
        _pools.clear()
    for pool in pools:
        pool.shutdown(wait=False)


def _pool(n: int) -> ThreadPoolExecutor:
    with _lock:
        pool = _pools.get(n)
        if pool is None:
            from concurrent.futures import ThreadPoolExecutor

            pool = _pools[n] = ThreadPoolExecutor(n, thread_name_prefix="saicm-int")
        return pool


@contextmanager
def single_threaded_blas():
    """BLAS limited to one thread inside the block (no-op if ``threadpoolctl`` finds no BLAS). Nested and
    concurrent uses (several threads coding at once) share one limit: the first sets it, the last lifts it."""
    global _controller, _limiter, _users
    with _lock:
        if _users == 0:
            if _controller is None:
                from threadpoolctl import ThreadpoolController

                _controller = ThreadpoolController()
            _limiter = _controller.limit(limits=1, user_api="blas")
        _users += 1
    try:
        yield
    finally:
        with _lock:
            _users -= 1
            if _users == 0 and _limiter is not None:
                _limiter.restore_original_limits()
                _limiter = None


def parallel_blocks(n: int) -> int:
    """Into how many blocks to split work that could be split ``n`` ways (1: run it on the calling thread)."""
    return max(1, min(n, threads()))


def run_blocks(fn: Callable[[int], None], starts: Iterable[int]) -> None:
    """``fn(start)`` for every start, on the engine's threads when there are several; the blocks must write
    disjoint parts of their output. Exceptions propagate."""
    starts = list(starts)
    t = parallel_blocks(len(starts))
    if t == 1:
        for s in starts:
            fn(s)
        return
    size = threads()  # one pool per thread count, whatever the block count (t blocks run on at most t of its threads)
    with single_threaded_blas():
        futures, pending = [], starts[::-1]
        while pending:
            pool = _pool(size)
            try:
                while pending:
                    futures.append(pool.submit(fn, pending[-1]))
                    pending.pop()
            except RuntimeError:
                with _lock:
                    if _pools.get(size) is pool:  # not shut down by release_models: a real error (interpreter exit)
                        raise
                # shut down meanwhile by release_models in another thread: the rest go to a new pool
        for f in futures:
            f.result()
