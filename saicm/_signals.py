"""Stopping long work cleanly: the first Ctrl-C (SIGINT) or SIGTERM asks it to stop at its next safe point.

A second signal stops at once (KeyboardInterrupt). Handlers go only over Python's defaults and only in the main
thread: an ignored SIGINT (a job started with & by a script) stays ignored, and a caller's own handler stays in
charge. Used by training (stop after the step: its checkpoint is saved) and folder jobs (stop after the files in
progress: each is written whole or not at all).
"""

from __future__ import annotations

import signal
import sys
import threading


class StopRequest:
    _DEFAULTS = {signal.SIGINT: signal.default_int_handler, signal.SIGTERM: signal.SIG_DFL}

    def __init__(self, message: str | None = None, enabled: bool = True, at_once: bool = False):
        """``message``: printed on stderr at the first signal (None: nothing, e.g. on a rank other than 0);
        ``enabled`` False: the signals keep their handlers (``requested`` stays False); ``at_once``: the first
        signal stops at once (work with no safe point to wait for: SIGTERM then unwinds like Ctrl-C, so that a
        half-written temporary file is removed; by default it ended the process where it stood)."""
        self.requested = at_once
        self._message = message
        self._previous: dict = {}
        if enabled and threading.current_thread() is threading.main_thread():
            for sig, default in self._DEFAULTS.items():
                if signal.getsignal(sig) is default:
                    self._previous[sig] = signal.signal(sig, self._handle)

    def _handle(self, signum, frame) -> None:
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True
        if self._message:
            again = "Ctrl-C again" if signum == signal.SIGINT else "a second signal"  # (SIGTERM: no keyboard)
            print(f"\nsaicm: {self._message} ({again} to stop now)", file=sys.stderr, flush=True)

    def close(self) -> None:
        for sig, previous in self._previous.items():
            signal.signal(sig, previous)
        self._previous = {}

    def __enter__(self) -> "StopRequest":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
