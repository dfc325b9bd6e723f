"""What a command of the ``saicm`` command line changes in its process, and puts back: its standard streams (names
shown as escapes, standard output checked and line-buffered where it shares a file with standard error, a stand-in
for a closed standard error) and its warning settings; and the one line said of a command out of memory.
:func:`saicm.cli.main` uses them (they grew in ``cli.py``, which is meant to be the parser)."""

from __future__ import annotations

import codecs
import os
import sys
import threading

from .errors import SaicmError, bytes_text


def _character_escape(c: str) -> str:
    """``\\uXXXX`` (``\\UXXXXXXXX`` beyond the BMP) of a character, also below U+0100: Python's backslashreplace
    wrote ``é`` as ``\\xe9``, which reads as the byte 0xE9 of a name that is not UTF-8 (``café.png`` and a Latin-1
    ``caf\\xe9.png`` were shown alike)."""
    return f"\\u{ord(c):04x}" if ord(c) <= 0xFFFF else f"\\U{ord(c):08x}"


def _undecodable_bytes_as_escapes(err: UnicodeError):
    """How saicm's output shows what its encoding cannot: a file name's undecodable bytes (which Python keeps as
    the characters U+DC80–U+DCFF) as ``\\xNN``, the bytes on disk; any other character as ``\\uXXXX``."""
    if not isinstance(err, UnicodeEncodeError):
        raise err
    return "".join(f"\\x{ord(c) - 0xDC00:02x}" if 0xDC80 <= ord(c) <= 0xDCFF else _character_escape(c)
                   for c in err.object[err.start:err.end]), err.end


codecs.register_error("saicm.escape-names", _undecodable_bytes_as_escapes)


def _name_bytes_else_escapes(err: UnicodeError):
    """Standard output's handler where Python's is ``surrogateescape`` (the C locale without UTF-8 mode): a file
    name's undecodable bytes written back as they are, as Python would; any other character the encoding lacks (the
    λ of `saicm models`, the – of `saicm bdrate`) as ``\\uXXXX``, where ``surrogateescape`` raised."""
    if not isinstance(err, UnicodeEncodeError):
        raise err
    return b"".join(bytes([ord(c) - 0xDC00]) if 0xDC80 <= ord(c) <= 0xDCFF
                    else _character_escape(c).encode("ascii")
                    for c in err.object[err.start:err.end]), err.end


codecs.register_error("saicm.name-bytes-else-escapes", _name_bytes_else_escapes)


def _escape_names_on_output() -> None:
    """Messages (stderr) show names as above; stdout keeps Python's own handling where it has one (in UTF-8 mode and
    the C locale a script reading it gets the name's bytes back), and where it would raise ("strict": a Windows
    code page cannot write the λ of `saicm models` to a file or a pipe; "surrogateescape", the C locale without UTF-8
    mode, raised too) writes what it cannot encode as escapes, a name's undecodable bytes as \\xNN as messages do
    (a UTF-8 locale's "strict" printed them as \\udcNN)."""
    try:
        sys.stderr.reconfigure(errors="saicm.escape-names")
    except (AttributeError, ValueError, OSError):  # not a text stream saicm may reconfigure (a test's capture)
        pass
    try:
        if sys.stdout.errors == "strict":
            sys.stdout.reconfigure(errors="saicm.escape-names")
        elif sys.stdout.errors == "surrogateescape":
            sys.stdout.reconfigure(errors="saicm.name-bytes-else-escapes")
    except (AttributeError, ValueError, OSError):
        pass


_settings_lock = threading.Lock()
_settings_calls = 0  # main() calls running (threads of one process)
_settings_saved: dict = {}


def _process_settings_on() -> None:
    """Record what a command changes in its process, before the first of the ``main()`` calls running at once:
    standard error's and standard output's error handlers (:func:`_escape_names_on_output`), standard output's line
    buffering (:func:`_line_buffered_stdout_if_stderr_shares_it`), ``sys.stderr`` itself (None: a stand-in), the
    warning filters and format (:func:`saicm.errors.install_warning_format`). A notebook's ``saicm.cli.main([...])``
    left them changed for the rest of the session (its output line-buffered, its DeprecationWarnings hidden)."""
    import warnings

    from . import errors

    global _settings_calls
    with _settings_lock:
        _settings_calls += 1
        if _settings_calls > 1:
            return
        streams = {}
        for stream in (sys.stdout, sys.stderr):
            if stream is not None and id(stream) not in streams:
                streams[id(stream)] = (stream, getattr(stream, "errors", None), getattr(stream, "line_buffering", None))
        _settings_saved.update(stdout=sys.stdout, stderr=sys.stderr, streams=list(streams.values()),
                               filters=list(warnings.filters), formatwarning=warnings.formatwarning,
                               flags=(errors._command_line, errors._parent_draws_bar))


def _process_settings_off() -> None:
    """Put back what :func:`_process_settings_on` recorded, when the last of the ``main()`` calls running ends."""
    import warnings

    from . import errors

    global _settings_calls
    with _settings_lock:
        _settings_calls -= 1
        if _settings_calls:
            return
        saved = dict(_settings_saved)
        _settings_saved.clear()
        if saved["stderr"] is None and _stderr_stand_in is not None and sys.stderr is _stderr_stand_in:
            # (the stand-in for a closed standard error, and only it: a sys.stderr put there meanwhile, another
            # thread's contextlib.redirect_stderr, was closed and replaced)
            sys.stderr = None
            try:
                _stderr_stand_in.close()
            except (AttributeError, OSError):
                pass
        for stream, errors_was, line_buffering_was in saved["streams"]:
            try:
                if errors_was is not None and stream.errors != errors_was:
                    stream.reconfigure(errors=errors_was)
                if line_buffering_was is not None and stream.line_buffering != line_buffering_was:
                    stream.reconfigure(line_buffering=line_buffering_was)
            except (AttributeError, ValueError, OSError):  # (closed meanwhile, or not a stream that reconfigures)
                pass
        warnings.filters[:] = saved["filters"]
        if hasattr(warnings, "_filters_mutated"):  # (the C module's cache of the filters)
            warnings._filters_mutated()
        warnings.formatwarning = saved["formatwarning"]
        errors._command_line, errors._parent_draws_bar = saved["flags"]


def is_out_of_memory(e: BaseException) -> bool:
    """Whether ``e`` is an allocation that failed: NumPy's or Python's MemoryError, PyTorch's allocators' (CPU:
    "DefaultCPUAllocator: can't allocate memory", a RuntimeError; CUDA, MPS: "out of memory")."""
    text = str(e)
    return isinstance(e, MemoryError) or "can't allocate memory" in text or "out of memory" in text.lower()


#: what to reduce, by command, when it runs out of memory (others: the images)
LESS_MEMORY = {"train": "a smaller --batch or --patch (or --amp bf16)"}


def _out_of_memory(e: BaseException, command: str | None = None) -> str:
    """One line for a command that ran out of memory, naming the limit that applies to this process where one is
    set (``ulimit -v``; a container's, a scheduler's or systemd's memory cgroup), and what to reduce (``command``:
    :data:`LESS_MEMORY`)."""
    limits = []
    try:
        import resource

        soft = resource.getrlimit(resource.RLIMIT_AS)[0]
        if soft != resource.RLIM_INFINITY:
            limits.append(f"an address-space limit of {bytes_text(soft)} (ulimit -v)")
    except (ImportError, OSError, ValueError):  # (Windows)
        pass
    from .engine.parallel import cgroup_memory_limit

    cgroup = cgroup_memory_limit()
    if cgroup is not None and cgroup < 1 << 50:  # (cgroup v1's "no limit" is a number near 2**63)
        limits.append(f"a memory limit of {bytes_text(cgroup)} (the cgroup's)")
    text = str(e)
    said = f" ({text})" if text and len(text) <= 80 and "\n" not in text else ""  # (not onnxruntime's 200 characters)
    where = f" within {' and '.join(limits)}" if limits else ""
    less = LESS_MEMORY.get(command, "fewer or smaller images")
    return f"out of memory{where}{said}: run it with more memory, or with {less}"


def _discard_messages_if_stderr_closed() -> None:
    """A process started with standard error closed (``2>&-``) has ``sys.stderr`` None: a folder job's bar then
    raised AttributeError before its first file (status 1, nothing coded, the traceback itself unwritable), and
    ``print(..., file=sys.stderr)`` wrote to standard output (a summary appended to the coded bytes of ``-o
    /dev/stdout``, an error line among ``info --json``'s JSON). Messages are dropped instead, as a Unix tool's writes
    to a closed descriptor fail unseen; the work and the exit status are as they would be."""
    global _stderr_stand_in
    if sys.stderr is None:
        sys.stderr = _stderr_stand_in = open(os.devnull, "w", encoding="utf-8")


#: the stand-in for a closed standard error, which :func:`_process_settings_off` takes away
_stderr_stand_in = None


def _line_buffered_stdout_if_stderr_shares_it() -> None:
    """Standard output sent with standard error to one file or pipe (``> job.log 2>&1``, ``2>&1 | tee``, nohup) is
    written a line at a time, as on a terminal: Python buffers it there, and the lines came out of order (``saicm info
    a b c``'s error about b above a's block; ``bdrate``'s "no BD-rate could be computed" above the table)."""
    try:
        if os.path.samestat(os.fstat(sys.stdout.fileno()), os.fstat(sys.stderr.fileno())):
            sys.stdout.reconfigure(line_buffering=True)
    except (AttributeError, ValueError, OSError):  # (closed, None, a test's capture)
        pass


class StdoutError(SaicmError):
    """Standard output cannot be written (closed, a full disk, an I/O error)."""


def _stdout_error(e: OSError | None) -> StdoutError:
    return StdoutError(f"cannot write to standard output ({e.strerror or e if e is not None else 'it is closed'})")


_stdout_lock = threading.Lock()
_stdout_calls = 0  # main() calls running (threads of one process)
_stdout_original = None  # sys.stdout before the first of them


def _checked_stdout_on():
    """``sys.stdout`` as a :class:`_CheckedStdout` while commands run; returns the stream it wraps. Calls of
    ``main()`` in several threads at once share one wrapper: the first puts it on, the last takes it off (each
    swapping on its own left a stale wrapper as ``sys.stdout`` for good when they overlapped)."""
    global _stdout_calls, _stdout_original
    with _stdout_lock:
        if _stdout_calls == 0:
            _stdout_original = sys.stdout
            sys.stdout = _CheckedStdout(sys.stdout)
        _stdout_calls += 1
        return _stdout_original


def _checked_stdout_off() -> None:
    global _stdout_calls
    with _stdout_lock:
        _stdout_calls -= 1
        if _stdout_calls == 0:
            sys.stdout = _stdout_original


class _CheckedStdout:
    """The command's ``sys.stdout``: a write error (``> /dev/full``, a full disk, an I/O error) is one line and status
    2, not a traceback; a standard output closed by the caller (``>&-``: Python's ``sys.stdout`` is None, and
    ``print`` wrote nothing and said nothing) is one too, as Unix tools say it. A broken pipe stays what it is
    (status 141, quietly)."""

    def __init__(self, stream):
        self._stream = stream

    def write(self, text):
        if self._stream is None:
            raise _stdout_error(None)
        try:
            return self._stream.write(text)
        except BrokenPipeError:
            raise
        except OSError as e:
            raise _stdout_error(e) from None

    def flush(self):
        if self._stream is None:
            return
        try:
            self._stream.flush()
        except BrokenPipeError:
            raise
        except OSError as e:
            raise _stdout_error(e) from None

    def __getattr__(self, name):
        return getattr(self._stream, name)


def _discard_stdout(stream=None) -> None:
    """Point stdout (or ``stream``) at /dev/null, so that flushing it at exit does not raise a second
    BrokenPipeError."""
    try:
        null = os.open(os.devnull, os.O_WRONLY)
    except OSError:
        return
    try:
        os.dup2(null, (stream or sys.stdout).fileno())
    except (AttributeError, OSError, ValueError):  # not a real file (a test's capture)
        pass
    finally:  # (the stream's descriptor is a copy of it: the one opened here was left open, one per call of an
        # in-process main() whose reader went away; the soak audit)
        os.close(null)
