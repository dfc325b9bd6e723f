"""File and folder jobs for the CLI: pair inputs with outputs, run them, report.

Every file is tried: a user error (a :class:`SaicmError`, a missing extra, an
OSError) becomes the job's :class:`Outcome`, which the CLI reports in one line,
and the other files of a folder are still written. Errors in planning (no such
input, an output that would replace an input) are raised before any job runs.
``jobs > 1`` runs files in worker processes, each with its share of the CPU
threads.
"""

from __future__ import annotations

import os
import signal
from collections import Counter
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path
from typing import Callable

from tqdm import tqdm

from .._fs import ensure_dir, refuse_input_as_output
from ..errors import MissingDependency, SaicmError
from .image_io import names_a_file


@dataclass
class Job:
    src: Path
    dst: Path
    keep: bool = False  # refuse to write over an existing file at dst


@dataclass
class Outcome:
    job: Job
    error: str | None = None
    info: dict | None = None


def plan(inp: str, out: str | None, accept: Callable[[Path], bool], suffix: str,
         keep_existing: bool = False) -> tuple[list[Job], bool]:
    """Jobs for a file or a folder; returns (jobs, is_folder).

    Nothing given is ever replaced by its own output: a single file whose output would be the input itself is
    refused; with ``keep_existing`` (decoding, whose default output ``photo.png`` may be the very photo that
    was coded) an output name derived from the input is refused when that file exists, and only ``-o`` may
    name an existing file; decoding a folder into itself leaves existing files alone (each refused in one
    line). In a folder, inputs that differ only in their suffix (``x.png``, ``x.jpg``) keep it in their
    outputs (``x.png.saicm``, ``x.jpg.saicm``) instead of writing over each other."""
    if out == "-":
        raise SaicmError("writing to standard output is not supported: name an output file or folder with -o")
    src = Path(inp)
    if src.is_dir():
        if out and not Path(out).is_dir() and names_a_file(out):  # it became a folder so named
            raise SaicmError(f"names a {Path(out).suffix} file, but a folder's outputs go to a folder: give a "
                             "folder name without that suffix (nothing written)", out)
        dst_root = Path(out) if out else src.with_name(src.name + "-" + suffix.lstrip("."))
        files = sorted(p for p in src.rglob("*") if accept(p))
        if not files:
            raise SaicmError("no input files in folder", str(src))
        keep = keep_existing and ensure_dir(dst_root).resolve() == src.resolve()
        rel = [p.relative_to(src) for p in files]
        return [Job(p, dst_root / r, keep) for p, r in zip(files, _output_names(rel, suffix))], True
    if not src.exists():
        raise SaicmError("no such file", str(src))
    derived = out is None
    if out is not None and (out.endswith(("/", os.sep)) or Path(out).is_dir()):
        dst, derived = ensure_dir(out) / (src.stem + suffix), True
    else:
        dst = Path(out) if out is not None else src.with_suffix(suffix)
    refuse_input_as_output(src, dst)
    if keep_existing and derived and dst.exists():
        raise SaicmError("exists: not overwritten (name the output with -o)", str(dst))
    return [Job(src, dst)], False


def _output_names(rel: list[Path], suffix: str) -> list[Path]:
    """``x.png`` → ``x.saicm``; where that name would be shared (``x.png``, ``x.jpg``, or ``x.png.jpg`` beside
    ``x.png``'s fallback), the whole name keeps its suffix (``x.png.saicm``), until no two inputs share an output."""
    names = [r.with_suffix(suffix) for r in rel]
    while True:
        counts = Counter(names)
        clash = [i for i, n in enumerate(names) if counts[n] > 1 and n != rel[i].with_name(rel[i].name + suffix)]
        if not clash:
            return names
        for i in clash:
            names[i] = rel[i].with_name(rel[i].name + suffix)


def _init_worker(threads: int) -> None:
    # before PyTorch is imported (if the job needs it at all): it reads OMP_NUM_THREADS then; the portable
    # engine's onnxruntime sessions read SAICM_THREADS
    os.environ["OMP_NUM_THREADS"] = os.environ["SAICM_THREADS"] = str(threads)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle (see run)


def _run_one(fn: Callable[[Job], dict], job: Job) -> Outcome:
    if job.keep and job.dst.exists():
        return Outcome(job, error=f"{job.dst}: exists: not overwritten (decode into another folder with -o)")
    try:
        job.dst.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        return Outcome(job, error=f"{job.dst}: cannot write output ({e.strerror or e})")
    try:
        return Outcome(job, info=fn(job))
    except ModuleNotFoundError as e:  # not this file's fault: every file would fail alike, so the job stops
        missing = MissingDependency.of(e)
        if missing is None:
            raise
        raise missing from None
    except SaicmError as e:
        return Outcome(job, error=str(e) if e.path else f"{job.src}: {e}")
    except OSError as e:
        return Outcome(job, error=f"{job.src}: {e.strerror or e}")


def run(fn: Callable[[Job], dict], jobs: list[Job], workers: int = 1, desc: str = "",
        progress: bool = True) -> list[Outcome]:
    """Run ``fn`` over ``jobs``; ``fn`` must be a module-level function for workers > 1."""
    bar = tqdm(total=len(jobs), desc=desc, unit="img", disable=not progress or len(jobs) < 2)
    results: list[Outcome] = []
    if workers <= 1 or len(jobs) < 2:
        for job in jobs:
            results.append(_run_one(fn, job))
            bar.update(1)
    else:
        threads = max(1, (os.cpu_count() or 1) // workers)
        ctx = get_context("spawn")
        # One job per worker at a time, and workers deaf to Ctrl-C: an interrupt lets the files being written
        # finish (atomically) and starts no other (the pool ran on to the end of the folder, and a terminal's
        # SIGINT made each worker drop its file and take the next).
        pool = ProcessPoolExecutor(workers, mp_context=ctx, initializer=_init_worker, initargs=(threads,))
        queue = iter(jobs)
        running: set = set()

        def submit_next() -> None:
            job = next(queue, None)
            if job is not None:
                running.add(pool.submit(_run_one, fn, job))

        try:
            for _ in range(workers):
                submit_next()
            while running:
                done, _ = wait(running, return_when=FIRST_COMPLETED)
                for f in done:
                    running.discard(f)
                    results.append(f.result())
                    bar.update(1)
                    submit_next()
        except BaseException:
            pool.shutdown(wait=True, cancel_futures=True)
            bar.close()
            raise
        pool.shutdown(wait=True)
        order = {str(j.src): i for i, j in enumerate(jobs)}  # the jobs' order, as a serial run reports them
        results.sort(key=lambda o: order.get(str(o.job.src), len(jobs)))
    bar.close()
    return results
