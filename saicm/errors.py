"""The one exception type users see.

Every failure a user can cause (bad file, unknown model, unwritable output)
raises :class:`SaicmError` with a one-line, human message. The CLI prints that
line and exits non-zero; it never shows a traceback for these.
"""

from __future__ import annotations

import contextlib
import copy
import os
import sys
import threading
import warnings


class SaicmError(Exception):
    """A user-facing error: ``str(err)`` is one line naming the cause."""

    exit_code = 2

    def __init__(self, message: str, path: str | None = None):
        self.path = path
        self.message = message
        super().__init__(f"{path}: {message}" if path else message)


class FormatError(SaicmError):
    """The bytes are not a valid ``.saicm`` stream (magic, version, CRC, truncation), or a coded file given by its
    path cannot be read (missing, a folder: as :class:`ImageError` says it of an image to code)."""


class ModelError(SaicmError):
    """Unknown model, wrong weights, or a quality the model does not have."""


class ImageError(SaicmError):
    """An input image that cannot be read or used."""


class ArgumentError(ModelError, ValueError):
    """An argument of the call that it does not take: ``engine=``, ``layer=``, ``refine=``, ``max_pixels=``,
    ``threads=``, a quality out of the model's range or not a whole number, an option the model does not have.
    The caller's own configuration, never the file's or the image's; a :class:`ModelError` (as these were before
    0.23.0) and a ``ValueError``."""


@contextlib.contextmanager
def naming(path):
    """Inside, an error that names no file is re-raised naming ``path`` (when ``path`` is not None); not an
    :class:`ArgumentError`, the caller's own (``saicm.decompress(path, layer="x")`` said "path: layer must be one
    of …", as if the file were at fault, where ``saicm.compress`` and the command line name no file for it)."""
    try:
        yield
    except SaicmError as e:
        if path is None or e.path is not None or isinstance(e, ArgumentError):
            raise
        named = copy.copy(e)  # (its own attributes kept: a byte budget's ``lowest``, an oversized image's ``limit``)
        named.path, named.args = str(path), (f"{path}: {e.message}",)
        if isinstance(named, ImportError):  # (a MissingDependency: an ImportError's str() is its msg, not its args)
            named.msg = named.args[0]
        raise named from None


#: modules of the optional extras (pyproject.toml) → the extra that installs them
EXTRAS = {"torch": "train", "torchvision": "train", "compressai": "train", "skimage": "train", "scipy": "train",
          "cv2": "train", "segment_anything": "train", "pytorch_msssim": "train", "matplotlib": "eval",
          "pycocotools": "eval", "imageio_ffmpeg": "eval", "openvino": "openvino"}


class MissingDependency(SaicmError, ImportError):
    """A feature of an optional extra (``saicm[train]``, ``saicm[eval]``) on a coding-only install (an ImportError
    too: code that falls back on ``except ImportError`` keeps doing so)."""

    @classmethod
    def of(cls, err: ModuleNotFoundError, extra: str | None = None, why: str = "") -> "MissingDependency | None":
        """The user-facing error for an import that failed, if it is one of an extra's modules; ``extra``: the
        extra the whole feature needs (``saicm eval`` needs ``saicm[eval]``, which holds ``saicm[train]``);
        ``why``: what needs it, when the caller cannot tell (an old file's format)."""
        root = (err.name or "").split(".")[0]
        if root not in EXTRAS:
            return None
        extra = extra or EXTRAS[root]
        return cls(f"{why}{': ' if why else ''}this needs {root}, which the coding-only install lacks: pip install "
                   f"\"saicm[{extra}]\" (or \"saicm[all]\"); coding and decoding format-3 files need neither")


@contextlib.contextmanager
def needing_pytorch(why: str):
    """Inside, an extra's missing module is a :class:`MissingDependency` saying ``why`` it is needed (a format-1
    file on a coding-only install was refused as "this needs torch", not saying that the file's format is why)."""
    try:
        yield
    except ModuleNotFoundError as e:
        missing = MissingDependency.of(e, why=why)
        if missing is None:
            raise
        raise missing from None


#: Python's own format, for other libraries' warnings
_LIBRARY_FORMAT = warnings.formatwarning
#: the package's folder: code in it is saicm's own (warnings attributed past it, and formatted as saicm's)
_PACKAGE = os.path.dirname(os.path.abspath(__file__)) + os.sep


#: C0 and C1 control characters and DEL, as they appear in a message (a file name from a downloaded data set)
_CONTROLS = {c: f"\\x{c:02x}" for c in (*range(32), *range(127, 160))}
#: and the bidirectional formatting characters, as ``\\uNNNN``: a codec name holding U+202E (right-to-left
#: override) showed the rest of its line reversed where the terminal or page lays out bidirectional text (a BD-rate
#: of +23.1 % read "%1.32+" after it), text that looks like other text
_CONTROLS.update({c: f"\\u{c:04x}"
                  for c in (0x061C, 0x200E, 0x200F, *range(0x202A, 0x202F), *range(0x2066, 0x206A))})


def printable(text: str) -> str:
    """``text`` for a terminal: control characters as ``\\xNN`` (a name holding a newline split a one-line error,
    one holding ``ESC[…`` sent an escape sequence to the terminal), bidirectional overrides and isolates as
    ``\\uNNNN``."""
    return str(text).translate(_CONTROLS)


def first_line(e: BaseException, limit: int = 160) -> str:
    """The first line of an exception's message (its type's name if it has none), cut to ``limit`` characters,
    for a one-line error of saicm's about a library's (gloo's, onnxruntime's are many lines)."""
    return (str(e).strip().splitlines() or [type(e).__name__])[0][:limit]


def bytes_text(n: int | float) -> str:
    """A size in bytes (memory, a file) as every message of saicm says it: in binary units named as such,
    ``"999 bytes"``, ``"72 KiB"``, ``"768 MiB"``, ``"3.9 GiB"``; one decimal below 10 of a unit, whole numbers
    above, and the next unit from 1,000 of one (1,000 MiB is ``"1.0 GiB"``). Binary because memory limits are set
    so (``docker run --memory 4g``, systemd's ``MemoryMax=4G``, Slurm's ``--mem``, ``ulimit -v`` in KiB) and
    reported so (``free -h``, ``ls -h``, NumPy's and PyTorch's allocation errors); the "GB" of these messages were
    2³⁰ bytes in some and 10⁹ in others."""
    if n < 1000:
        return f"{int(n):,} byte{'s' * (int(n) != 1)}"
    for unit in ("KiB", "MiB", "GiB", "TiB", "PiB"):
        n /= 1024
        if n < 999.5:  # (what rounds to 1,000 of a unit is said in the next)
            break
    return f"{n:.1f} {unit}" if n < 9.95 else f"{n:,.0f} {unit}"


def names_as_utf8(text: str) -> str:
    """``text`` fit to write as UTF-8: the undecodable bytes of file names in it (Python's U+DC80–U+DCFF: a name
    that is not UTF-8, or any non-ASCII name in an ASCII locale) read as UTF-8 where they are, else ``\\xNN``
    (encoding them raised UnicodeEncodeError: a report page, a model's description); other lone surrogates as
    ``\\uNNNN``."""
    import re

    text = re.sub("[\udc80-\udcff]+", lambda m: bytes(ord(c) - 0xDC00 for c in m.group()).decode(
        "utf-8", "backslashreplace"), text)
    # any other lone surrogate (a results file's "\\ud800": valid JSON, no character) as \\uNNNN
    return re.sub("[\ud800-\udfff]", lambda m: f"\\u{ord(m.group()):04x}", text)


class SaicmWarning(UserWarning):
    """saicm's own warnings (a caller can filter them by category: ``warnings.simplefilter("ignore",
    saicm.SaicmWarning)``); the command line prints them as one line, ``saicm: warning: …``."""


def is_saicm_code(filename: str) -> bool:
    """Whether ``filename`` (a warning's, a frame's) is one of saicm's own files."""
    return os.path.abspath(filename).startswith(_PACKAGE)


def format_warning(message, category, filename, lineno, line=None) -> str:
    """``warnings.formatwarning`` of the command line and its worker processes: saicm's warnings (their category,
    or raised in saicm's files) as one line, like its errors; other libraries' as Python shows them. Both on lines
    of their own where a progress bar is drawn (:func:`_clear_bar_line`)."""
    if issubclass(category, SaicmWarning) or is_saicm_code(filename):
        return _clear_bar_line() + f"saicm: warning: {printable(message)}\n"
    return _clear_bar_line() + _LIBRARY_FORMAT(message, category, filename, lineno, line)


def _clear_bar_line() -> str:
    """What blanks the line of a progress bar on the terminal that standard error is (a folder job's, a sweep's:
    this process's, or a worker's parent's), written before a warning: the warning was written after the bar's text,
    on its line (``compress:  33%|███  | 1/3 [00:00<00:01]saicm: warning: b.gif: 2 frames, ...``). The bar is drawn
    again below it at its next update. "" where no bar is drawn (off a terminal: a log's lines as they are)."""
    from ._progress import bar_disable

    tqdm = sys.modules.get("tqdm")  # (a bar can be drawn in this process only if tqdm was imported)
    if bar_disable(True) or not (_parent_draws_bar or (tqdm is not None and getattr(tqdm.tqdm, "_instances", None))):
        return ""
    try:
        if not sys.stderr.isatty():
            return ""
        columns = os.get_terminal_size(sys.stderr.fileno()).columns
    except (AttributeError, OSError, ValueError):
        return ""
    return "\r" + " " * max(columns - 1, 0) + "\r"


def install_warning_format(parent_draws_bar: bool = False) -> None:
    """The command line's warnings: :func:`format_warning`, and library deprecation chatter (torch.jit via
    CompressAI) and Pillow's decompression-bomb warning (saicm's pixel limit decides) hidden. In the command's
    process and in each worker process of a folder job (``parent_draws_bar``: its parent's bar is on the terminal
    they share)."""
    warnings.filterwarnings("ignore", category=FutureWarning)
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    # Pillow's decompression-bomb warning (an image above 89 M pixels, below twice that): saicm's own pixel limit,
    # checked on the same header, refuses or admits the image in one line (the warning was a second line, a path
    # inside Pillow, above saicm's refusal of a 100 MP photo); matched by its text, so PIL is not imported here
    warnings.filterwarnings("ignore", message=r"Image size \(\d+ pixels\) exceeds limit of \d+ pixels, could be "
                            "decompression bomb")
    warnings.formatwarning = format_warning
    global _command_line, _parent_draws_bar
    _command_line, _parent_draws_bar = True, parent_draws_bar


#: whether this process is saicm's command line (or a worker of its folder job): :func:`install_warning_format` ran
_command_line = False
#: whether this process is a folder job's worker, whose parent draws the bar (:func:`_clear_bar_line`)
_parent_draws_bar = False
#: the warnings :func:`warnings_naming` has said in this process: each once, as Python's default filter shows them
#: (recording a file's warnings makes Python forget which it has shown)
_SAID: set = set()
_naming = False


@contextlib.contextmanager
def warnings_naming(path):
    """Inside, the warnings raised are said on the way out: other libraries' in one line naming ``path`` and where
    they come from (Pillow's "Corrupt EXIF data", under which a photo's orientation may be lost, was Python's two
    lines naming a Pillow source line, once per process: which of a folder's files had it, unsaid); saicm's own as
    they were. Each once per process.

    The command line's alone (its process and its workers, on their main thread): recording swaps the process's
    warning state for every thread (``warnings.catch_warnings`` is not thread-safe), so a library call (``saicm.eval.rd.
    load_rgb_folder`` in a service) captured the caller's other threads' warnings, said them as a ``SaicmWarning``
    naming one of its images, and changed Pillow's own warnings' category."""
    global _naming
    if _naming or not _command_line or threading.current_thread() is not threading.main_thread():
        yield  # (inside another: the outer one names its file; a library's caller: its warnings as they are)
        return
    caught: list = []
    try:
        _naming = True
        with warnings.catch_warnings(record=True) as caught:
            yield
    finally:
        _naming = False
        for w in caught:
            own = issubclass(w.category, SaicmWarning) or is_saicm_code(w.filename)
            text = str(w.message) if own else (f"{path}: {str(w.message).strip()} ({w.category.__name__}, "
                                               f"{os.path.basename(w.filename)}:{w.lineno})")
            if (w.category, text) in _SAID:
                continue
            _SAID.add((w.category, text))
            warnings.warn_explicit(w.message if own else text, w.category if own else SaicmWarning, w.filename,
                                   w.lineno)


def warn(message: str, category: type[Warning] = SaicmWarning) -> None:
    """``warnings.warn`` attributed to the caller's own code: the first frame outside the saicm package (a fixed
    ``stacklevel`` pointed at saicm's files whenever the call came through another of its layers, and Python shows a
    warning once per place, so a notebook saw it once per session, at a library line)."""
    frame, level = sys._getframe(1), 2  # (stacklevel 2: the frame that called this function)
    while frame is not None and os.path.abspath(frame.f_code.co_filename).startswith(_PACKAGE):
        frame, level = frame.f_back, level + 1
    warnings.warn(message, category, stacklevel=level)
