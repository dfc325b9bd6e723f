"""Progress for long work: a tqdm bar on a terminal; off one (nohup, a log file, a CI job), a status line at most
every :data:`LINE_SECONDS`, so that a run that takes minutes is not silent and a log is not one long line of
carriage returns."""

from __future__ import annotations

import math
import os
import sys
import time

#: off a terminal, a status line is printed at most this often (and at the ends the caller chooses)
LINE_SECONDS = 30.0


def bar_disable(progress) -> bool | None:
    """tqdm's ``disable`` for a bar wanted when ``progress``: True when no progress is wanted, and on a terminal that
    cannot redraw a line (``TERM=dumb``: Emacs' shell and compilation buffers, which show each redraw's carriage
    return as ``^M``, one long line of bars; the caller's status lines are said there instead, as off a terminal);
    else None (tqdm draws the bar where its stream is a terminal). tqdm's own ``TQDM_DISABLE`` (set, not 0/false/
    empty) turns the bars off too, the status lines then said (tqdm reads it only for a ``disable`` not given)."""
    if not progress or os.environ.get("TERM") == "dumb":
        return True
    if os.environ.get("TQDM_DISABLE", "").strip().lower() not in ("", "0", "false", "no", "off"):
        return True
    return None


def progress_bar(iterable=None, *, progress, **kwargs):
    """A tqdm bar over ``iterable`` (``kwargs``: tqdm's) where one is drawn: ``progress`` wanted, :func:`bar_disable`
    allowing it and, as tqdm's own rule, its stream a terminal; else :class:`NoBar`, with what saicm's callers use of
    a bar (``disable`` true: their status lines said instead where progress is wanted). tqdm's first bar, even a
    disabled one, makes a lock shared with child processes, and that fixes the process's ``multiprocessing`` start
    method: a service's or a training job's own ``multiprocessing.set_start_method("spawn")`` raised "context has
    already been set" after a ``saicm.compress(..., refine=2)``, a ``saicm.video.encode(..., progress=False)`` or a
    sweep with its standard error in a log; and it left tqdm's monitor thread running."""
    disable = bar_disable(progress)
    stream = kwargs.get("file") or sys.stderr
    if disable or (disable is None and hasattr(stream, "isatty") and not stream.isatty()):
        return NoBar(iterable, total=kwargs.get("total"), initial=kwargs.get("initial", 0))
    from tqdm import tqdm

    return tqdm(iterable=iterable, disable=disable, **kwargs)


class NoBar:
    """The bar of :func:`progress_bar` when none is drawn: counts, and writes what is written "above" it."""

    disable = True

    def __init__(self, iterable=None, total=None, initial=0):
        self.iterable, self.total, self.n = iterable, total, initial

    def __iter__(self):
        return iter(self.iterable)

    def update(self, n=1) -> None:
        self.n += n

    def write(self, s: str, file=None, end: str = "\n") -> None:
        """As ``tqdm.write``: to ``file``, standard output by default."""
        (sys.stdout if file is None else file).write(s + end)

    def refresh(self, *args, **kwargs) -> None:
        pass

    set_postfix = set_postfix_str = set_description = close = refresh

    def __enter__(self) -> "NoBar":
        return self

    def __exit__(self, *exc) -> None:
        pass


class StatusLines:
    """``saicm COMMAND: STATUS`` lines to stderr, when ``on`` (the caller's bar is off and progress is wanted),
    at most every :data:`LINE_SECONDS` unless forced."""

    def __init__(self, command: str, on: bool):
        # (the first line as soon as there is one: from 0.0, time.monotonic()'s seconds since the machine started, it
        # waited for LINE_SECONDS after boot, a job started by a boot script; the flaky-tests audit)
        self.command, self.on, self.last = command, on, -math.inf

    def say(self, status: str, force: bool = False) -> None:
        if self.on and (force or time.monotonic() - self.last >= LINE_SECONDS):
            write_line(f"saicm {self.command}: {status}")
            self.last = time.monotonic()


def write_line(text: str, stream=None) -> None:
    """``text`` and its newline to ``stream`` (default standard error) in one write: ``print`` writes them apart, and
    a folder job's worker processes, writing to the same log, put their lines between the two (``saicm compress:
    1/3 files/path/…: warning …``)."""
    stream = sys.stderr if stream is None else stream
    stream.write(text + "\n")
    stream.flush()


def time_left(done: float, total: float, elapsed: float) -> str:
    """``", about 3 min left"`` at the mean rate so far (``done`` of ``total`` units in ``elapsed`` seconds); "" before
    any unit is done. A status line off a terminal said how far a quality had come, not when the run would end (the
    bar on a terminal shows its time left)."""
    if done <= 0 or total <= done:
        return ""
    left = elapsed / done * (total - done)
    if left < 90:
        return f", about {max(1, round(left))} s left"
    if left < 5400:
        return f", about {round(left / 60)} min left"
    return f", about {int(left // 3600)} h {round(left % 3600 / 60):02d} min left"


class StageMeter:
    """Progress through the stages of one long piece of work whose parts are counted by the code doing them (a
    large image's analysis tiles, then its coding strips): a tqdm bar per stage on a terminal, else status lines
    (:class:`StatusLines`) with the stage's time left. A callable ``meter(stage, done, total, unit)``, called after
    each part; a new ``stage`` starts a new bar. Off (``on`` false) it does nothing."""

    def __init__(self, command: str, on: bool):
        self.command, self.on = command, on
        self.stage, self.bar, self.lines = None, None, None
        self.start = self.last = time.monotonic()  # (a stage's first part began when the work, or its last part, ended)

    def __call__(self, stage: str, done: int, total: int, unit: str) -> None:
        if not self.on:
            return
        if stage != self.stage:
            self.close()
            self.stage, self.start = stage, self.last
            self.bar = progress_bar(total=total, desc=stage, unit=unit, leave=False, progress=True)
            self.lines = StatusLines(self.command, self.bar.disable)
        self.bar.update(done - self.bar.n)
        self.last = time.monotonic()
        if done < total:  # (a stage's last part is not announced: the next stage, or the result, follows)
            self.lines.say(f"{stage} {done}/{total} {unit}s{time_left(done, total, self.last - self.start)}")

    def mark(self) -> None:
        """The next stage's work begins now: what ran since the last part (between two stages) is not counted as the
        next stage's first part (its time left said 2 min for 2 s of coding)."""
        self.last = time.monotonic()

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
        self.stage = self.bar = None

    def __enter__(self) -> "StageMeter":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def metered(batches, total: int | None, command: str, on: bool = True):
    """``(start, (B, ...))`` batches of frames passed on as they are, counted: a tqdm bar on a terminal; off one, a
    line ``saicm COMMAND: 1200/18000 frames, about 40 min left`` at most every :data:`LINE_SECONDS`, the first once
    the work has run that long (a short clip says nothing). ``total``: the frames expected (None: not known). `saicm
    video frames` and `video decode` of an hour's frames said nothing for hours, on a terminal or off one."""
    bar = progress_bar(total=total, unit="frame", leave=False, progress=on, dynamic_ncols=True)
    lines = StatusLines(command, bool(on) and bar.disable)
    start = lines.last = time.monotonic()
    done = 0
    try:
        for first, batch in batches:
            yield first, batch
            done += len(batch)
            bar.update(len(batch))
            left = time_left(done, total, time.monotonic() - start) if total else ""
            lines.say(f"{done}/{total} frames{left}" if total else f"{done} frames")
    finally:
        bar.close()
