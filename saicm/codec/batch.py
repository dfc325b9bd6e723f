"""File and folder jobs for the CLI: pair inputs with outputs, run them, report.

One file: errors propagate (the CLI prints one line). A folder: every file is
tried, failures are collected and reported one line each, the rest still get
written. ``jobs > 1`` runs files in worker processes, each with its share of
the CPU threads.
"""

from __future__ import annotations

import os
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path
from typing import Callable

from tqdm import tqdm

from .._fs import ensure_dir
from ..errors import MissingDependency, SaicmError


@dataclass
class Job:
    src: Path
    dst: Path


@dataclass
class Outcome:
    job: Job
    error: str | None = None
    info: dict | None = None


def plan(inp: str, out: str | None, accept: Callable[[Path], bool], suffix: str) -> tuple[list[Job], bool]:
    """Jobs for a file or a folder; returns (jobs, is_folder)."""
    src = Path(inp)
    if src.is_dir():
        dst_root = Path(out) if out else src.with_name(src.name + "-" + suffix.lstrip("."))
        files = sorted(p for p in src.rglob("*") if accept(p))
        if not files:
            raise SaicmError("no input files in folder", str(src))
        ensure_dir(dst_root)
        return [Job(p, dst_root / p.relative_to(src).with_suffix(suffix)) for p in files], True
    if not src.exists():
        raise SaicmError("no such file", str(src))
    dst = Path(out) if out else src.with_suffix(suffix)
    if dst.is_dir():
        dst = dst / (src.stem + suffix)
    return [Job(src, dst)], False


def _init_worker(threads: int) -> None:
    # before PyTorch is imported (if the job needs it at all): it reads OMP_NUM_THREADS then; the portable
    # engine's onnxruntime sessions read SAICM_THREADS
    os.environ["OMP_NUM_THREADS"] = os.environ["SAICM_THREADS"] = str(threads)


def _run_one(fn: Callable[[Job], dict], job: Job) -> Outcome:
    try:
        job.dst.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        return Outcome(job, error=f"{job.dst}: cannot write output ({e.strerror or e})")
    try:
        return Outcome(job, info=fn(job))
    except ModuleNotFoundError as e:
        missing = MissingDependency.of(e)
        if missing is None:
            raise
        return Outcome(job, error=f"{job.src}: {missing}")
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
        with ProcessPoolExecutor(workers, mp_context=ctx, initializer=_init_worker, initargs=(threads,)) as pool:
            futs = [pool.submit(_run_one, fn, job) for job in jobs]
            for f in as_completed(futs):
                results.append(f.result())
                bar.update(1)
        results.sort(key=lambda o: str(o.job.src))
    bar.close()
    return results
