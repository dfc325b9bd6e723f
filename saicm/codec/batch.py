"""File and folder jobs for the CLI: pair inputs with outputs, run them, report.

Every file is tried: a user error (a :class:`SaicmError`, an OSError, running out of memory, a worker process
killed) becomes the job's :class:`Outcome`, reported in one line as it happens, and the other files of a folder
are still written. What no other file could escape stops the job in one line: a missing extra, a full disk.
Errors in planning (no such input, an output that would replace an input, an output folder that cannot be
written) are raised before any job runs. ``jobs > 1`` runs files in worker processes, each with its share of
the CPU threads (or ``$SAICM_THREADS``). The first Ctrl-C or SIGTERM stops the job after the files in progress.
"""

from __future__ import annotations

import errno
import os
import signal
import stat
import sys
import time
from collections import Counter
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path
from typing import Callable, TextIO


from .._fs import (EXISTING, NO_DASH_OUTPUT, OutputExists, ensure_dir, flush_standard_streams, input_files,
                   no_replace, no_such_file, refuse_input_as_output, remove_stale_parts, standard_stream)
from .._progress import StatusLines, progress_bar, time_left
from .._signals import StopRequest
from ..errors import MissingDependency, SaicmError, bytes_text, printable
from .image_io import names_media_file, refuse_file_name_for_folder

#: errors of the output's file system that every later file would meet too: the job stops
_STOPPING_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EROFS}
#: errors that only writing the output raises (named with the output file, not the input)
_OUTPUT_ERRNOS = {errno.EFBIG}


@dataclass
class Job:
    src: Path
    dst: Path
    keep: bool = False  # refuse to write over an existing file at dst
    skip: bool = False  # an existing file at dst counts as done
    error: str | None = None  # known before it runs (a folder that cannot be read)
    # with skip: what an existing file at dst is, for the log (its bytes, ...); a SaicmError: not done (a file over
    # the job's --max-bytes, left by another command, was skipped as done and sent)
    existing: Callable[[Path], dict] | None = None
    # with skip: whether an existing file at dst is not all the job writes (strip's segment is not there: a first run
    # without --human-segment, a segment deleted), so that the job is done again (counted done, no segment was
    # written and the two-layer files, deleted after the run, took their human layers with them)
    incomplete: Callable[[Job], bool] | None = None
    # what every --log line of this job holds whatever its outcome (the job's --max-bytes: lines appended to one log
    # by runs with other budgets said nothing of the limit each file was held to, a failed one only in its words)
    log: dict | None = None


@dataclass
class Outcome:
    job: Job
    error: str | None = None
    info: dict | None = None
    skipped: bool = False


class Interrupted(KeyboardInterrupt):
    """A folder job stopped by Ctrl-C or SIGTERM after its files in progress; ``outcomes``: the files done."""

    def __init__(self, outcomes: list[Outcome], total: int):
        done = sum(1 for o in outcomes if not o.error)
        failed = len(outcomes) - done
        super().__init__(f"interrupted: {done} of {total} files written or already there"
                         + (f", {failed} failed (above)" if failed else "") + f"; {total - len(outcomes)} not "
                         "done (every file written is whole; --existing skip goes on where this stopped)")
        self.outcomes = outcomes


def plan(inp: str, out: str | None, accept: Callable[[Path], bool], suffix: str,
         keep_existing: bool = False, existing: str | None = None) -> tuple[list[Job], bool]:
    """Jobs for a file or a folder; returns (jobs, is_folder).

    Nothing given is ever replaced by its own output: a single file whose output would be the input itself is
    refused; with ``keep_existing`` (decoding, whose default output ``photo.png`` may be the very photo that
    was coded) an output name derived from the input is refused when that file exists, and only ``-o`` may
    name an existing file. In a folder, ``existing`` (:data:`EXISTING`) decides for outputs that exist: by
    default decoding refuses them (a folder decoded into the originals' folder wrote over the photos) and coding
    overwrites them. Inputs that differ only in their suffix (``x.png``, ``x.jpg``) keep it in their outputs
    (``x.png.saicm``, ``x.jpg.saicm``) instead of writing over each other. Hidden files and folders (``.x``:
    a killed job's temporary files, macOS's ``._x.jpg``) are not inputs; symbolic links to folders are not
    followed (said in a warning); a folder that cannot be read becomes a failed job."""
    if out == "-":
        raise SaicmError(f"'-o -' is not taken (standard output is not supported by that name): {NO_DASH_OUTPUT}")
    if existing is not None and existing not in EXISTING:
        raise SaicmError(f"--existing must be one of {', '.join(EXISTING)}, got {existing!r}")
    src = Path(inp)
    if src.is_dir():
        if out:
            refuse_file_name_for_folder(out, "a folder's outputs")
        whole = Path(os.path.abspath(src))  # (`.` and `..` have no name of their own; a link keeps its own)
        dst_root = Path(out) if out else whole.with_name(whole.name + "-" + suffix.lstrip("."))
        files, failed = _scan(src, accept)
        if not files and not failed:
            raise SaicmError("no input files in folder", str(src))
        if dst_root.exists() and not dst_root.is_dir():
            raise SaicmError("is a file: a folder's outputs go to a folder (nothing written)", str(dst_root))
        ensure_dir(dst_root)
        if not os.access(dst_root, os.W_OK | os.X_OK):  # (every file would fail after its work was done)
            why = "read-only file system" if _read_only(dst_root) else "permission denied"
            raise SaicmError(f"cannot write to this output folder ({why}; nothing written)", str(dst_root))
        existing = existing or ("refuse" if keep_existing else "overwrite")
        rel = [p.relative_to(src) for p in files]
        jobs = [Job(p, dst_root / r, keep=existing == "refuse", skip=existing == "skip")
                for p, r in zip(files, _output_names(rel, suffix))]
        return _refuse_outputs_onto_inputs(jobs, files) + [Job(d, dst_root, error=e) for d, e in failed], True
    if not src.exists():
        raise SaicmError(no_such_file(src), str(src))
    derived = out is None
    if out is not None and (out.endswith(("/", os.sep)) or Path(out).is_dir()):
        dst, derived = ensure_dir(out) / (src.stem + suffix), True
    else:
        dst = Path(out) if out is not None else src.with_suffix(suffix)
    refuse_input_as_output(src, dst)
    if existing is None and keep_existing and derived and dst.exists():
        raise SaicmError("exists: not overwritten (name the output with -o, or --existing overwrite)", str(dst))
    return [Job(src, dst, keep=existing == "refuse", skip=existing == "skip")], False


def _read_only(folder: Path) -> bool:
    try:
        return bool(os.statvfs(folder).f_flag & os.ST_RDONLY)
    except (OSError, AttributeError):  # (no statvfs: Windows)
        return False


def _file_id(path: Path) -> tuple[int, int] | None:
    try:
        st = os.stat(path)  # (through links: what a write would reach)
    except OSError:
        return None
    return st.st_dev, st.st_ino


def _refuse_outputs_onto_inputs(jobs: list[Job], inputs: list[Path]) -> list[Job]:
    """Folder jobs whose output already is one of the inputs (a link in the output folder to an input, or a hard
    link) become failed jobs: writing them would replace that input (a link ``out/a.saicm -> ../in/a.png`` had
    the photo replaced by its own coded file; the one-file path always refused it)."""
    ids = {i: p for p in inputs if (i := _file_id(p)) is not None}
    out = []
    for job in jobs:
        # (--existing skip too: it codes an output older than its input again, which would write through the link)
        same = ids.get(_file_id(job.dst))
        if same is not None:
            job = Job(job.src, job.dst, error=f"{job.dst}: is the input {same} (by a link or another name): not "
                                              "overwritten")
        out.append(job)
    return out


def _scan(src: Path, accept: Callable[[Path], bool]) -> tuple[list[Path], list[tuple[Path, str]]]:
    """The inputs under ``src`` (:func:`~saicm._fs.input_files`) and the folders that could not be read, each with
    its error (they become failed jobs); links not followed (to folders, broken) are named in a warning."""
    failed: list[tuple[Path, str]] = []

    def unreadable(e: OSError) -> None:
        failed.append((Path(e.filename), f"{e.filename}: cannot read folder ({e.strerror or e}): its files "
                                         "are not coded"))

    return input_files(src, accept, unreadable), failed


def _output_names(rel: list[Path], suffix: str) -> list[Path]:
    """``x.png`` → ``x.saicm``; where that name would be shared (``x.png``, ``x.jpg``, or ``x.png.jpg`` beside
    ``x.png``'s fallback), the whole name keeps its suffix (``x.png.saicm``), until no two inputs share an output.
    Names that differ only in case are shared too (``Photo.png``, ``photo.jpg``: one file on macOS's and Windows'
    file systems, where one output replaced the other in silence)."""
    names = [r.with_suffix(suffix) for r in rel]
    while True:
        counts = Counter(str(n).casefold() for n in names)
        clash = [i for i, n in enumerate(names)
                 if counts[str(n).casefold()] > 1 and n != rel[i].with_name(rel[i].name + suffix)]
        if not clash:
            return names
        for i in clash:
            names[i] = rel[i].with_name(rel[i].name + suffix)


def _init_worker(threads: int) -> None:
    # before PyTorch is imported (if the job needs it at all): it reads OMP_NUM_THREADS then; the portable
    # engine's onnxruntime sessions read SAICM_THREADS
    os.environ["OMP_NUM_THREADS"] = os.environ["SAICM_THREADS"] = str(threads)
    # NumPy's BLAS read it too late: importing this module (to find this function) loaded NumPy, whose OpenBLAS had
    # sized its pool from the inherited environment, every CPU; and with one thread a worker's integer networks run
    # their float64 products unlimited (parallel.single_threaded_blas only when threads > 1): `--jobs 2` on two
    # cores ran four BLAS threads
    _limit_blas(threads)
    from ..errors import install_warning_format

    # (its warnings are the command's: one line each, as the parent prints them, above the parent's bar)
    install_warning_format(parent_draws_bar=True)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle (see run)
    signal.signal(signal.SIGTERM, _unwind)  # stopped (by the parent, or with it): the temporary file goes too
    # a scheduler's warning ahead of a time limit, sent to every process of the job (Slurm's --signal=USR1@60): the
    # parent's to act on (it stops after the files in progress); it killed the worker in its file
    for name in ("SIGUSR1", "SIGUSR2"):
        if hasattr(signal, name):
            signal.signal(getattr(signal, name), signal.SIG_IGN)
    _detach_from_signals_and_die_with_parent()


def _limit_blas(threads: int) -> None:
    """The BLAS libraries loaded in this worker on at most ``threads`` threads, for the process's life."""
    try:
        from threadpoolctl import threadpool_limits

        threadpool_limits(limits=threads, user_api="blas")
    except Exception:  # noqa: BLE001  (no BLAS found, or one threadpoolctl cannot drive: its default, as before)
        pass


#: in a worker process, while it codes a file (:func:`_run_in_worker`)
_in_job = False


def _unwind(signum, frame) -> None:
    """SIGTERM in a worker: it dies. Idle, at once; in a file, once the file's temporary output is gone (the
    ``SystemExit`` unwinds the job, and :func:`_run_in_worker` ends the process)."""
    if not _in_job:
        _exit_worker(128 + signum)
    raise SystemExit(128 + signum)


def _exit_worker(code: int) -> None:
    flush_standard_streams()  # (its warnings, written before)
    os._exit(code)


def _run_in_worker(fn: Callable[[Job], dict], job: Job) -> Outcome:
    """:func:`_run_one` in a pool's worker, which a SIGTERM ends for good. A ``SystemExit`` raised in a file
    used to reach the pool's worker loop, which catches every exception as the file's result and waits for the
    next file: a worker the pool terminated after another one died (the OOM killer) lived on, and the pool's
    shutdown waited for it forever."""
    global _in_job
    try:
        _in_job = True  # (inside the try: a SIGTERM before it finds the worker idle, and ends it at once)
        return _run_one(fn, job)
    except SystemExit as e:  # the file's ``finally`` clauses have run: its temporary output is gone
        _exit_worker(e.code if isinstance(e.code, int) else 1)
        raise  # (not reached)
    finally:
        _in_job = False


def _detach_from_signals_and_die_with_parent() -> None:
    """A worker leaves the job's process group, so that a signal sent to the group (a terminal's Ctrl-C,
    ``timeout``'s SIGTERM, ``kill -- -PGID``) reaches the parent alone, which stops the job after the files in
    progress (the workers died with their files); on Linux it also dies with its parent (a SIGKILLed job left
    them running)."""
    if hasattr(os, "setsid"):
        try:
            os.setsid()
        except OSError:
            pass
    if sys.platform.startswith("linux"):
        try:
            import ctypes

            ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
        except (OSError, AttributeError):
            pass


def _worker_threads(workers: int) -> int:
    """Each worker's threads: ``$SAICM_THREADS`` when the user set it (a whole number ≥ 1), else its share of the
    CPUs (``SAICM_THREADS=abc`` gave each of ``--jobs 2`` every CPU)."""
    from ..engine.parallel import requested_threads, threads, usable_cpus

    if requested_threads() is not None:
        return threads()
    return max(1, usable_cpus() // workers)


#: the memory a folder job's worker process is counted to need, to bound ``--jobs`` by a cgroup's memory limit: a
#: compress of a photo with the default model peaked at 0.32 / 0.71 / 1.13 GB resident for 1 / 12 / 48 MP (0.82 GB
#: as a memory cgroup counts it at 12 MP) and, by docs/safety.md's table, 1.39 GB at 4.2 MP (coded whole); smaller
#: images need less, two-layer models more. Too low a count only costs a killed worker: its file is tried again alone
WORKER_MEMORY = 1 << 30


def _bounded_workers(workers: int, files: int, say: Callable[[str], None]) -> int:
    """The worker processes for ``--jobs workers`` on ``files`` files: at most one per file, four per CPU
    (``--jobs 1000`` started a process per file, each holding its own model: hundreds of gigabytes) and one per
    :data:`WORKER_MEMORY` of the cgroup's memory limit, where one is set (said when it lowers them); more of them
    than the CPUs can run at once (with their threads) is said: they share the cores, no faster, with more memory
    (``--jobs 16`` carried over from a large machine to a two-CPU container or batch slot said nothing)."""
    from ..engine.parallel import cgroup_memory_limit, usable_cpus

    cpus = usable_cpus()
    n = min(workers, files, 4 * cpus)
    limit = cgroup_memory_limit()
    fit = None if limit is None else max(1, limit // WORKER_MEMORY)
    if fit is not None and n > fit:  # (--jobs 4 in a 900 MB container: four workers of 0.8 GB, killed
        # in turn by the OOM killer, and two of four 12 MP photos not written)
        say(f"--jobs {workers} in a memory limit of {bytes_text(limit)} (the cgroup's: a container's, a "
            f"scheduler's, systemd's MemoryMax): {fit} worker process{'es' * (fit > 1)}, each of which may need "
            f"about {bytes_text(WORKER_MEMORY)} (its model and a large image)")
        n = fit
    threads = _worker_threads(n)
    if n * threads > cpus:
        say(f"--jobs {workers} on {cpus} CPU{'s' * (cpus > 1)}: {n} worker processes of {threads} thread"
            f"{'s' * (threads > 1)} each share the cores (no faster than --jobs {max(1, cpus // threads)}, and each "
            "holds its own model in memory)" + ("; at most four processes per CPU" if n < min(workers, files) else ""))
    return n


def _empty_file(path: Path) -> bool:
    try:
        st = os.stat(path)
    except OSError:
        return False
    return stat.S_ISREG(st.st_mode) and st.st_size == 0


#: how far in the future (ns) a modification time may lie before it is said to be another clock's (a camera's, a
#: file server's, a machine's before its clock was set back): a file server's clock a few seconds ahead is not said
FUTURE_SLACK_NS = 60 * 10**9

#: the times said in a warning by this process, one warning each ("input", "output")
_said_future: set[str] = set()


def _older_than_input(job: Job) -> bool:
    """Whether the output was last written before its input was (by their modification times): the output of an
    earlier picture under that name, replaced or edited since (a rerun with --existing skip kept it, counted done).
    Times that cannot be read: False (the output is judged by its contents alone, as before). Times in the future
    decide as any other, as make's do, and are said once per process: an input dated in the future (a camera's
    clock, an archive's dates) is newer than its output until that time comes, so it is coded again at each rerun;
    an output dated in the future (a file server's clock ahead, or this machine's set back since) is newer than an
    edit of its input made before that time, which then goes unseen. (Judging the first by the output's contents
    kept a stale output of an edited input, and remaking the second remade every output on a file server whose
    clock runs ahead, at every rerun.)"""
    try:
        out, src = os.stat(job.dst).st_mtime_ns, os.stat(job.src).st_mtime_ns
    except OSError:
        return False
    import time

    now = time.time_ns() + FUTURE_SLACK_NS
    if out > now:
        _say_future("output", job.dst, out, "a file server's clock ahead, or this one set back? an edit of its input "
                    "made before that time is not seen by --existing skip (--existing overwrite makes it again)")
    if src > now:
        _say_future("input", job.src, src, "a camera's clock, an archive's dates? --existing skip codes it again at "
                    "each rerun until that time comes (correct its date, e.g. with touch, to stop it)")
    return out < src


def _say_future(which: str, path: Path, ns: int, what: str) -> None:
    """One warning per process and ``which`` (the first such file named; the others' are alike)."""
    if which in _said_future:
        return
    _said_future.add(which)
    from datetime import datetime, timezone

    from ..errors import warn

    when = datetime.fromtimestamp(ns // 10**9, timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    warn(f"{path}: modification time in the future ({when}; said once for every such {which}): {what}")


def _skipped(job: Job) -> Outcome:
    """The outcome of a job whose output exists (``--existing skip``): skipped, unless ``job.existing`` says not."""
    if job.existing is None:
        return Outcome(job, skipped=True)
    try:
        return Outcome(job, skipped=True, info=job.existing(job.dst))
    except SaicmError as e:
        return Outcome(job, error=str(e) if e.path else f"{job.dst}: {e}")


def _run_one(fn: Callable[[Job], dict], job: Job) -> Outcome:
    """:func:`_attempt`, other libraries' warnings raised meanwhile said in one line naming the file
    (:func:`saicm.errors.warnings_naming`)."""
    from ..errors import warnings_naming

    with warnings_naming(job.src):
        return _attempt(fn, job)


def _attempt(fn: Callable[[Job], dict], job: Job) -> Outcome:
    if job.error:
        return Outcome(job, error=job.error)
    # an empty output is no coded file or image (a job stopped by a power cut before saicm synced its files), and
    # one older than its input is of what the input was before: --existing skip codes it again
    redo = job.skip and (_empty_file(job.dst) or _older_than_input(job)
                         or (job.incomplete is not None and job.dst.exists() and job.incomplete(job)))
    if job.dst.exists() and (job.skip or job.keep) and not redo:
        if job.skip:
            return _skipped(job)
        return Outcome(job, error=f"{job.dst}: exists: not overwritten (--existing overwrite to replace it, "
                                  "--existing skip to keep it and go on)")
    try:
        job.dst.parent.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError):  # (-o photo.png/x.saicm; -o photo.png/sub/x.saicm said
        # "Not a directory")
        return Outcome(job, error=f"{job.dst}: cannot write output (a file, not a folder, is in the way)")
    except OSError as e:
        return Outcome(job, error=f"{job.dst}: cannot write output ({e.strerror or e})")
    # (an output of an earlier run, which a failure here leaves as it was: said so; not of -o /dev/stdout or
    # /dev/null, which are no earlier output: the error said "/dev/stdout, an earlier output, is left as it was")
    before = job.dst.is_file() and standard_stream(job.dst) is None
    try:
        with no_replace(job.dst if (job.keep or job.skip) and not redo else None):  # (one appearing meanwhile too)
            return Outcome(job, info=fn(job))
    except OutputExists as e:
        if job.skip:
            return _skipped(job)
        return Outcome(job, error=f"{e} (--existing overwrite to replace it)")
    except ModuleNotFoundError as e:  # not this file's fault: every file would fail alike, so the job stops
        missing = MissingDependency.of(e)
        if missing is None:
            raise
        raise missing from None
    except SaicmError as e:
        if isinstance(e, MissingDependency) or getattr(e, "stops_job", False):
            raise  # (an extra's module the code asked for by name; PyTorch's kernel cache folder it cannot make)
        if getattr(e, "errno", None) in _STOPPING_ERRNOS:  # (the output's temporary file, made or written)
            stops = SaicmError(f"{e.message}: the job stops here", e.path or str(job.dst))
            stops.errno = e.errno
            raise stops from None
        # (--max-bytes too small, --existing overwrite: the older, larger file stayed beside the error, and was sent)
        kept = f" ({job.dst}, an earlier output, is left as it was)" if before and job.dst.exists() else ""
        return Outcome(job, error=(str(e) if e.path else f"{job.src}: {e}") + kept)
    except BrokenPipeError:  # -o /dev/stdout | head -c 8: the reader went away, a quiet stop (status 141)
        raise
    except (MemoryError, RuntimeError) as e:  # one huge image must not end the folder (the others are still coded);
        # PyTorch's allocator says so in a RuntimeError ("DefaultCPUAllocator: can't allocate memory")
        from .._process import is_out_of_memory

        if not is_out_of_memory(e):
            raise
        return Outcome(job, error=f"{job.src}: out of memory coding it (lower --max-pixels to refuse such images "
                                  "up front)")
    except OSError as e:
        if e.errno in _STOPPING_ERRNOS:
            raise SaicmError(f"cannot write output ({e.strerror}): the job stops here", str(job.dst)) from None
        if e.errno in _OUTPUT_ERRNOS:  # (a file-size limit: the output's, not the input's)
            return Outcome(job, error=f"{job.dst}: cannot write output ({e.strerror or e})")
        return Outcome(job, error=f"{job.src}: {e.strerror or e}")


def run(fn: Callable[[Job], dict], jobs: list[Job], workers: int = 1, desc: str = "",
        progress: bool = True, errors: TextIO | None = None, log: TextIO | None = None) -> list[Outcome]:
    """Run ``fn`` over ``jobs``; ``fn`` must be a module-level function for workers > 1. ``errors``: where each
    failure is written as it happens (``saicm: error: …``; None: only in the outcomes); ``log``: where each
    outcome is written as a JSON line as it happens (:func:`log_line`). The bar is drawn on a terminal only; off
    one (nohup, ``2> job.log``, a CI job), a status line ``saicm DESC: 120/5000 files ...`` at most every
    :data:`saicm._progress.LINE_SECONDS`. Ctrl-C or SIGTERM: the files in progress are finished, then
    :class:`Interrupted`."""
    bar = progress_bar(total=len(jobs), desc=desc, unit="img", progress=progress and len(jobs) >= 2)
    # (a folder of thousands of files under nohup printed nothing from start to summary: hours of silence)
    lines = StatusLines(desc or "job", bool(progress) and len(jobs) >= 2 and bar.disable)
    results: list[Outcome] = []
    counts = Counter()
    t0 = time.monotonic()

    def done(o: Outcome) -> None:
        results.append(o)
        if o.error and errors is not None:
            bar.write(f"saicm: error: {printable(o.error)}\n", file=errors, end="")  # (one write: see write_line)
        if log is not None:
            log.write(log_line(o) + "\n")
            log.flush()
        bar.update(1)
        counts["failed" if o.error else "skipped" if o.skipped else "written"] += 1
        # (the time left at the rate of the files coded: a file skipped, already there, takes none; 50,000 frames
        # under nohup said "1673/50000 files" and nothing of when they would be done)
        left = time_left(len(results) - counts["skipped"], len(jobs) - counts["skipped"], time.monotonic() - t0)
        lines.say(f"{len(results)}/{len(jobs)} files" + "".join(f", {counts[k]} {k}" for k in ("skipped", "failed")
                                                               if counts[k]) + left)

    def stopping(job: Job, e: SaicmError) -> None:
        """The error that ends the job (a full disk) goes in the log too, as its file's line (the caller prints
        it once)."""
        if log is not None:
            log.write(log_line(Outcome(job, error=str(e))) + "\n")
            log.flush()

    # (one file is stopped at once, by SIGTERM as by Ctrl-C: nothing else is waiting, a long --refine must not
    # hang on, and its temporary file is removed)
    stop = StopRequest("stopping after the files in progress", at_once=len(jobs) < 2)
    def serial() -> None:
        for job in jobs:
            if stop.requested and len(jobs) > 1:
                break
            try:
                o = _run_one(fn, job)
            except SaicmError as e:
                stopping(job, e)
                raise
            done(o)

    try:
        if workers <= 1 or len(jobs) < 2:
            serial()
        else:
            workers = _bounded_workers(workers, len(jobs), lambda text: bar.write(f"saicm: warning: {text}",
                                                                                  file=errors or sys.stderr))
            try:
                _run_pool(fn, jobs, workers, stop, done, stopping)
            except _NoWorkers as e:  # (before any file was given to a worker)
                bar.write(f"saicm: warning: cannot start worker processes ({e}): coding one file at a time in this "
                          "process", file=errors or sys.stderr)
                serial()
    finally:
        stop.close()
        bar.close()
    order = {id(j): i for i, j in enumerate(jobs)}  # the jobs' order, as a serial run reports them
    results.sort(key=lambda o: order.get(id(o.job), len(jobs)))
    if stop.requested and len(results) < len(jobs) and len(jobs) > 1:
        raise Interrupted(results, len(jobs))
    return results


def log_line(o: Outcome) -> str:
    """One file's outcome as a JSON object: input, output, status (written, skipped or failed), when it was done
    (``time``, UTC to the second: a day's log told when each file was coded by its order alone), the error, and
    what the job reported (bytes, bpp, seconds, ...)."""
    import json
    from datetime import datetime, timezone

    status = "failed" if o.error else "skipped" if o.skipped else "written"
    rec = {"input": str(o.job.src), "output": str(o.job.dst), "status": status,
           "time": datetime.now(timezone.utc).isoformat(timespec="seconds")}
    if o.error:
        rec["error"] = o.error
    rec.update(o.job.log or {})
    rec.update({k: (round(v, 6) if isinstance(v, float) else v) for k, v in (o.info or {}).items()
                if isinstance(v, (str, int, float, bool)) or v is None})
    return json.dumps(rec)  # (ASCII: a file name that is not UTF-8 is written as its \\udcXX escapes)


def report(outcomes, is_folder: bool, verb: str, out=None) -> int:
    """The summary of a job whose failures were written as they happened (on ``out``, default standard output);
    exit 1 if any file failed."""

    failed = sum(1 for o in outcomes if o.error)
    skipped = sum(1 for o in outcomes if o.skipped)
    if not is_folder and skipped:
        print(f"{printable(outcomes[0].job.dst)}: exists: skipped (--existing skip)", file=out)
    if is_folder:
        ok = len(outcomes) - failed - skipped
        print(f"{verb} {ok} of {len(outcomes)} files" + (f"; {skipped} already there (skipped)" if skipped else "")
              + (f"; {failed} failed: {_failed_names(outcomes)}" if failed else ""), file=out)
    return 1 if failed else 0


#: a folder job's summary names this many of its failed files (their errors were printed as they happened)
FAILED_NAMED = 5


def _failed_names(outcomes) -> str:
    """The failed inputs of a job, for its summary: among thousands of files, the errors printed as they happened
    scroll away ("4 failed" said which nowhere)."""
    names = [printable(o.job.src) for o in outcomes if o.error]
    more = len(names) - FAILED_NAMED
    return ", ".join(names[:FAILED_NAMED]) + (f" and {more} more (--log FILE records each)" if more > 0 else "")


def job_log(path: str | None):
    """The --log file, opened for appending (a rerun adds its lines), or a null context."""
    import contextlib

    if path is None:
        return contextlib.nullcontext(None)
    # Appended to, so never to a file that holds something else (a swapped argument made the input photo, or a
    # .saicm file, end in JSON lines)
    if names_media_file(path) or str(path).lower().endswith((".saicm", ".saicmv")):
        raise SaicmError("names an image, video or coded file: --log appends JSON lines to a file of its own "
                         "(e.g. job.jsonl); nothing done", path)
    # (absent, unreadable, or a stream: /dev/stderr, a FIFO, whose reading would wait; open says why)
    first = last = b""
    if os.path.isfile(path):
        try:
            with open(path, "rb") as f:
                first = f.read(1)
                if first:
                    f.seek(-1, os.SEEK_END)
                    last = f.read(1)
        except OSError:
            pass
    if first not in (b"", b"{"):
        raise SaicmError("holds something other than saicm's JSON lines: not appended to (name a new log file); "
                         "nothing done", path)
    try:
        log = JobLog(open(path, "a", encoding="utf-8"), path)
    except OSError as e:
        raise SaicmError(f"cannot write the log ({e.strerror or e})", path) from None
    if last not in (b"", b"\n"):  # a job stopped by a full disk left half a line: this job's start a line of their own
        log.write("\n")
    return log


class JobLog:
    """The --log file: an error writing it (a full disk) is one line naming it, not a traceback (three chained:
    the write, then the flush and the close at the end of the job, each failing again)."""

    def __init__(self, f, path: str):
        self._f, self._path, self._failed = f, path, False

    def _error(self, e: OSError):
        if isinstance(e, BrokenPipeError):  # (--log /dev/stdout | head: a quiet stop, status 141)
            return e
        self._failed = True
        err = SaicmError(f"cannot write the log ({e.strerror or e})", self._path)
        err.errno = e.errno
        return err

    def write(self, text: str) -> int:
        try:
            return self._f.write(text)
        except OSError as e:
            raise self._error(e) from None

    def flush(self) -> None:
        try:
            self._f.flush()
        except OSError as e:
            raise self._error(e) from None

    def __enter__(self) -> "JobLog":
        return self

    def __exit__(self, kind, *exc) -> None:
        try:
            self._f.close()
        except OSError as e:
            if kind is None and not self._failed:
                raise self._error(e) from None


class _NoWorkers(Exception):
    """No pool of worker processes can be made here: its queues' locks are POSIX semaphores, files in /dev/shm,
    which a container may lack or mount read-only (``--jobs 2`` was a traceback ending in ``OSError: [Errno 30]
    Read-only file system``); the job is then coded in the calling process."""

    def __init__(self, e: OSError):
        super().__init__(f"{e.strerror or e}; their locks need a writable /dev/shm")


def _run_pool(fn, jobs: list[Job], workers: int, stop: StopRequest, done: Callable[[Outcome], None],
              stopping: Callable[[Job, SaicmError], None]) -> None:
    # One job per worker at a time, and workers deaf to Ctrl-C: an interrupt lets the files being written
    # finish (atomically) and starts no other (the pool ran on to the end of the folder, and a terminal's
    # SIGINT made each worker drop its file and take the next). The parent's first signal only sets a flag
    # that this loop polls (an interrupt raised inside the pool's own code could leave it hanging); a second one
    # stops the workers at once (their files are left unwritten: every write is atomic).
    ctx = get_context("spawn")
    threads = _worker_threads(workers)

    def new_pool() -> ProcessPoolExecutor:
        return ProcessPoolExecutor(workers, mp_context=ctx, initializer=_init_worker, initargs=(threads,))

    try:
        pool = new_pool()
    except OSError as e:
        raise _NoWorkers(e) from None
    queue = iter(jobs)
    # A dying worker fails every file in the pool, not only its own: those files are tried again one at a time,
    # and a file is reported only when its worker dies a second time (with it alone in the pool).
    retry: list[Job] = []
    died: set[int] = set()
    running: dict = {}
    # files whose worker died: its temporary output (``.NAME.*.part.saicm``) was left beside the output, one more
    # per OOM kill, for good (nothing else removes them: they are hidden); removed once the pool's workers are gone
    partial: list[Path] = []

    def clean() -> None:
        for dst in partial:
            remove_stale_parts(dst)
        partial.clear()

    def lost(job: Job) -> None:
        partial.append(job.dst)
        if stop.requested:
            done(Outcome(job, error=f"{job.src}: stopped with the job (a signal reached its worker): not written"))
        elif id(job) in died:
            done(Outcome(job, error=f"{job.src}: the worker process coding it died (killed, or out of memory?): "
                                    "not written"))
        else:
            died.add(id(job))
            retry.append(job)

    def fill() -> None:
        while not stop.requested:
            if retry:
                if running:  # a file tried again runs alone
                    return
                job = retry.pop(0)
            elif len(running) < workers:
                job = next(queue, None)
                if job is None:
                    return
            else:
                return
            try:
                running[pool.submit(_run_in_worker, fn, job)] = job
            except BrokenProcessPool:  # broken between two results: this file and those in flight, again
                lost(job)
                restart()

    def restart() -> None:
        nonlocal pool
        for f, job in list(running.items()):
            if f.done() and not f.cancelled() and f.exception() is None:  # finished before the pool broke
                o = f.result()
                o.job = job
                done(o)
            else:
                lost(job)
        running.clear()
        # every worker of the broken pool ends: the pool's own thread terminates only those it knew of when the
        # worker died, and one the pool was starting then (it starts them as files are given) got no signal and no
        # word to stop, so the shutdown below waited for it for good (0 CPU: a stress run of OOM kills hung so)
        _stop_workers(pool)
        pool.shutdown(wait=True, cancel_futures=True)
        clean()
        pool = new_pool()

    try:
        fill()
        while running:
            finished, _ = wait(list(running), timeout=0.25, return_when=FIRST_COMPLETED)
            broken = False
            for f in finished:
                job = running.pop(f)
                try:
                    o = f.result()
                    o.job = job  # the job given, not the worker's copy of it
                except BrokenProcessPool:  # a worker was killed (the OOM killer, kill -9)
                    broken = True
                    lost(job)
                    continue
                except (SystemExit, KeyboardInterrupt):  # a worker stopped by a signal (with the job, or alone)
                    lost(job)
                    continue
                except SaicmError as e:  # it ends the job (below)
                    stopping(job, e)
                    raise
                done(o)
            if broken:
                restart()
            fill()
    except KeyboardInterrupt:  # a second Ctrl-C: the workers stop now (their files stay unwritten, removed)
        _stop_workers(pool)
        pool.shutdown(wait=False, cancel_futures=True)
        raise
    except BaseException:  # an error that stops the job (a full disk, a missing extra): the files in progress end
        pool.shutdown(wait=True, cancel_futures=True)
        clean()
        raise
    pool.shutdown(wait=True)
    clean()


def _stop_workers(pool: ProcessPoolExecutor) -> None:
    """Terminate a pool's worker processes (CPython keeps them in ``_processes``; nothing to do if it does not)."""
    for proc in list((getattr(pool, "_processes", None) or {}).values()):
        try:
            proc.terminate()
        except (OSError, AttributeError, ValueError):
            pass
