"""Stopping long work cleanly: the first Ctrl-C (SIGINT) or SIGTERM asks it to stop at its next safe point.

A Ctrl-C after that stops at once (KeyboardInterrupt); a repeated SIGTERM does not: a scheduler signals every
process of a job and torchrun passes its own signal on to its workers, so that a worker gets SIGTERM twice in a row
(Slurm's scancel or time limit under torchrun: the second one stopped it at once, its checkpoint not saved), and a
scheduler's own last word is SIGKILL. Handlers go only over Python's defaults and only in the main
thread: an ignored SIGINT (a job started with & by a script) stays ignored, and a caller's own handler stays in
charge. Used by training (stop after the step: its checkpoint is saved) and folder jobs (stop after the files in
progress: each is written whole or not at all).
"""

from __future__ import annotations

import signal
import sys
import threading


def _discard_stderr() -> None:
    """Point stderr at /dev/null: its reader is gone, and the work goes on to its safe point (a training run to its
    checkpoint: the BrokenPipeError of this message stopped it at once, the steps since its last one lost)."""
    from ._process import _discard_stdout

    _discard_stdout(sys.stderr)


class StopRequest:
    _DEFAULTS = {signal.SIGINT: signal.default_int_handler, signal.SIGTERM: signal.SIG_DFL}
    # SIGUSR1 and SIGUSR2, a scheduler's warning ahead of a time limit (Slurm's --signal=USR1@60), are a stop
    # request too: left to their default they ended the process where it stood (status 138, no checkpoint)
    _DEFAULTS.update({getattr(signal, name): signal.SIG_DFL for name in ("SIGUSR1", "SIGUSR2")
                      if hasattr(signal, name)})

    def __init__(self, message: str | None = None, enabled: bool = True, at_once: bool = False):
        """``message``: printed on stderr at the first signal (None: nothing, e.g. on a rank other than 0);
        ``enabled`` False: the signals keep their handlers (``requested`` stays False); ``at_once``: the first
        signal stops at once (work with no safe point to wait for: SIGTERM then unwinds like Ctrl-C, so that a
        half-written temporary file is removed; by default it ended the process where it stood)."""
        self.requested = at_once
        self._at_once = at_once
        self._message = message
        self._previous: dict = {}
        if enabled and threading.current_thread() is threading.main_thread():
            for sig, default in self._DEFAULTS.items():
                if signal.getsignal(sig) is default:
                    self._previous[sig] = signal.signal(sig, self._handle)

    def _handle(self, signum, frame) -> None:
        if self.requested:
            if self._at_once or signum == signal.SIGINT:
                raise KeyboardInterrupt
            return  # (the same stop asked again: see the module's text)
        self.requested = True
        if self._message:
            again = "Ctrl-C again" if signum == signal.SIGINT else "SIGINT"  # (SIGTERM: no keyboard)
            try:
                from ._progress import write_line

                write_line(f"\nsaicm: {self._message} ({again} to stop now)")  # (one write: workers write too)
            except BrokenPipeError:  # (`2>&1 | tee log`: the same Ctrl-C ended tee) the stop asked for stands
                _discard_stderr()

    def ignore_from_now(self, sig: int) -> None:
        """``sig`` is ignored from now on and stays so after :meth:`close` (when this request handles it: a caller's
        own handler stays in charge). For a process that is ending with an error it has still to say: a torchrun
        worker whose peer died gets the launcher's SIGTERM moments later, and that SIGTERM, once close() had put
        back the default, killed it before its line was printed (the CI run of 2026-12-07, at random)."""
        if sig in self._previous:
            signal.signal(sig, signal.SIG_IGN)
            del self._previous[sig]

    def close(self) -> None:
        for sig, previous in self._previous.items():
            signal.signal(sig, previous)
        self._previous = {}

    def __enter__(self) -> "StopRequest":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
