"""Filesystem helpers: atomic writes so that no half-written output is ever left."""

from __future__ import annotations

import contextlib
import contextvars
import errno
import os
import shutil
import stat
import tempfile
import threading
from pathlib import Path
from typing import Callable, Iterator

from .errors import SaicmError, warn

#: what a job does with an output file that exists: refuse it (one line, the file kept), skip it (counted done: a
#: rerun after an interruption goes on where it stopped), or overwrite it
EXISTING = ("refuse", "skip", "overwrite")

#: what an output named ``-`` should be instead (``-o /dev/stdout`` writes to standard output, and says its summary
#: on standard error; ``-`` was refused with "not supported", as if standard output could not be written at all)
NO_DASH_OUTPUT = "name an output file or folder, or -o /dev/stdout"


def no_such_file(path) -> str:
    """The error of an input that does not exist; ``-`` (standard input in many tools) says what to name instead."""
    return ("no such file ('-' is not standard input here: name /dev/stdin, or pipe into saicm compress /dev/stdin)"
            if str(path) == "-" else "no such file")


#: inside :func:`no_replace`: the output (an absolute path) that is never renamed onto an existing file (a folder
#: job's ``--existing refuse`` and ``skip``, whose check before the work two jobs writing one folder could both pass)
_NO_REPLACE: contextvars.ContextVar[str | None] = contextvars.ContextVar("saicm_no_replace", default=None)


class OutputExists(SaicmError):
    """An output that appeared while it was being written, under :func:`no_replace` (the other file is kept)."""


@contextlib.contextmanager
def no_replace(dest: str | os.PathLike | None) -> Iterator[None]:
    """Inside, :func:`atomic_path` publishes the file ``dest`` (None: none) only where none exists (a hard link,
    then the temporary name removed: atomic), else raises :class:`OutputExists`; where a hard link cannot be made
    (a file system without them, a network mount refusing them), it checks, then renames. Other files written
    meanwhile are published as usual."""
    token = _NO_REPLACE.set(None if dest is None else os.path.abspath(dest))
    try:
        yield
    finally:
        _NO_REPLACE.reset(token)


#: errors of writing an output's bytes that are about the disk, not the data (a full disk, a quota, a file-size
#: limit): one line naming the output (they were tracebacks wherever the disk filled after the temporary file was
#: made: eval, plot, report, bdrate --json, export, strip, demo, video frames and decode)
WRITE_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG}


def _write_error(e: OSError, dest) -> SaicmError:
    """The one-line error of ``e`` (one of :data:`WRITE_ERRNOS`) writing ``dest``, keeping its ``errno``."""
    err = SaicmError(f"cannot write output ({e.strerror or e})", str(dest))
    err.errno = e.errno  # (a full disk stops a folder job)
    return err


def _finish_temporary(path: Path, dest, durable: bool, owner: int) -> None:
    """Give the written temporary file ``path`` normal permissions (writers may recreate it: mkstemp's 0600 would
    stick) and, if ``durable``, its data on the disk, through a descriptor of it that is no link and is owned as the
    temporary file was when it was made (``owner``): in a folder another user may write (a group's project folder),
    they could replace it by a link to a file of the user's while it was written, and the chmod by name gave that
    file the output's mode (``~/.ssh/id_rsa`` 0600 became 0644), the link then published as the output. Such a
    file is a one-line error, nothing written."""
    flags = getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)
    try:
        try:
            fd = os.open(path, os.O_RDWR | flags)  # (Windows syncs only a descriptor open for writing)
        except PermissionError:
            fd = os.open(path, os.O_RDONLY | flags)
    except OSError as e:
        if e.errno not in (errno.ELOOP, errno.EMLINK):  # (a link, with O_NOFOLLOW: FreeBSD says EMLINK)
            raise
        fd = None
    try:
        _check_temporary(os.fstat(fd) if fd is not None else None, stat.S_ISREG, owner, "file", dest)
        mode = 0o666 & ~_umask()
        if os.chmod in os.supports_fd:
            os.chmod(fd, mode)
        else:
            os.chmod(path, mode)
        if durable:
            _flush_to_disk(fd)
    finally:
        if fd is not None:
            os.close(fd)


def _check_temporary(st: os.stat_result | None, is_kind, owner: int, what: str, dest) -> None:
    """A one-line error unless ``st`` (None: a link, not opened) is a temporary ``what`` ("file", "folder") of the
    kind ``is_kind`` (``stat.S_ISREG``, ``stat.S_ISDIR``) owned as it was when it was made: another user who can write
    the folder replaced it while it was written."""
    if st is None or not is_kind(st.st_mode) or st.st_uid != owner:
        raise SaicmError(f"cannot write output: its temporary {what} was replaced while it was written (another user "
                         "writing this folder?); nothing written", str(dest))


def _flush_to_disk(fd: int) -> None:
    """Its data on the disk before it takes the output's name: after a power cut, a renamed file whose data was
    still in the page cache could be empty or short, and a resumed ``--existing skip`` job counts any output there
    as done (about half a millisecond a file on an SSD). A file system that cannot sync is left to itself."""
    try:
        os.fsync(fd)
    except OSError as e:
        if e.errno not in (errno.EINVAL, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EBADF, errno.EROFS):
            raise


def _publish(tmp: Path, dest: Path, replace: bool = True) -> None:
    """Move the finished ``tmp`` onto ``dest`` (replacing a file there, or not when ``replace`` is False)."""
    if replace:
        try:
            os.replace(tmp, dest)
        except PermissionError:  # (said as the input's "Operation not permitted")
            try:
                theirs = hasattr(os, "geteuid") and not _trusted_owner(os.lstat(dest).st_uid)
            except OSError:
                theirs = False
            if not theirs:
                raise
            raise SaicmError("cannot write output: another user's file (or link, or FIFO) is there, in a folder "
                             "where only its owner may replace it (such as /tmp); nothing written", str(dest)) from None
        return
    try:
        os.link(tmp, dest)
    except FileExistsError:
        raise OutputExists("exists: not overwritten (it appeared while this file was coded: another job writing "
                           "the same folder?)", str(dest)) from None
    except OSError:  # no hard link here (FAT, some network or FUSE mounts: EPERM, EXDEV, EACCES, EINVAL...)
        if os.path.lexists(dest):
            raise OutputExists("exists: not overwritten (it appeared while this file was coded)", str(dest)) from None
        os.replace(tmp, dest)
        return
    os.unlink(tmp)


@contextlib.contextmanager
def atomic_path(dest: str | os.PathLike, durable: bool = True) -> Iterator[Path]:
    """Yield a temporary path beside ``dest``; rename it onto ``dest`` on success (``durable``: its data synced to
    the disk first; a cache's entries, which are recomputed if lost, skip it).

    On any exception the temporary file is removed and ``dest`` is untouched. A symbolic link of the user's own
    (or root's: ``/dev/stdout``) is written through: its target is replaced, as ``cp`` does, not the link; another
    user's link is replaced itself (in a shared folder it could point at the user's files). A device or FIFO
    (``-o /dev/null``) is written to directly: renaming onto it replaced ``/dev/null`` itself with a file when run
    as root. Under :func:`no_replace` of this ``dest``, an existing file is never replaced.
    """
    replace = _NO_REPLACE.get() != os.path.abspath(dest)
    fd = standard_stream(dest)
    if fd is not None:
        with _through_descriptor(fd, dest) as tmp:
            yield tmp
        return
    dest, stream = output_target(dest)
    if stream:
        yield dest
        return
    parent = dest.parent if str(dest.parent) else Path(".")
    if not parent.is_dir():
        raise no_output_folder(parent)
    try:
        held, tmp = _held_temporary(dest, parent)
        owner = os.lstat(tmp).st_uid  # (the user's, or whom the file system maps them to: NFS's root_squash)
    except OSError as e:
        err = SaicmError(f"cannot write output ({e.strerror})", str(dest))
        err.errno = e.errno  # (a full disk or a read-only file system stops a folder job)
        raise err from None
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        _finish_temporary(tmp_path, dest, durable, owner)
        _publish(tmp_path, dest, replace)
    except BaseException as e:
        with contextlib.suppress(OSError):
            tmp_path.unlink()
        if isinstance(e, OSError) and e.errno in WRITE_ERRNOS:
            raise _write_error(e, dest) from None
        raise
    finally:
        if held is not None:
            os.close(held)


def _held_temporary(dest: Path, parent: Path) -> tuple[int | None, str]:
    """A new temporary file beside ``dest`` and, where locks exist (not Windows, which cannot rename an open
    file), a descriptor holding an advisory lock on it while it is written (None elsewhere): only a file no
    process holds is a killed writer's (:func:`remove_stale_parts`)."""
    for _ in range(8):
        fd, tmp = tempfile.mkstemp(prefix=f".{_short(dest.name)}.", suffix=".part" + dest.suffix, dir=parent)
        try:
            locked = _lock_nowait(fd)
        except BlockingIOError:  # (taken by remove_stale_parts between its making and the lock: being removed)
            os.close(fd)
            continue
        if not locked:
            os.close(fd)
            return None, tmp
        if os.fstat(fd).st_nlink:  # (not removed as stale before the lock was taken)
            return fd, tmp
        os.close(fd)
    raise OSError(errno.EAGAIN, "its temporary files were removed as they were made (by another process)")


def _lock_nowait(fd: int) -> bool:
    """Whether an exclusive advisory lock on ``fd`` is now held (False: there are no locks to be had here);
    :class:`BlockingIOError` if another process holds one."""
    try:
        import fcntl
    except ImportError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as e:
        if e.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
            raise BlockingIOError(e.errno, "held by another process") from None
        return False  # (ENOLCK: a file system without locks)
    return True


#: the lock file of a folder one job at a time may write (:func:`exclusive`): hidden, so never an input
LOCK_NAME = ".saicm.lock"


class Busy(SaicmError):
    """A folder (or an output file) another process holds (:func:`exclusive`)."""


#: times :func:`exclusive` opens its lock file anew when another removed it meanwhile, before it keeps the one held
_LOCK_TRIES = 50


@contextlib.contextmanager
def exclusive(folder: str | os.PathLike, hint: str, wait: bool = False, name: str = LOCK_NAME,
              subject: str | os.PathLike | None = None) -> Iterator[None]:
    """Hold ``folder`` (an existing folder) for this process inside: an advisory lock (``flock``) on its lock file
    ``name`` (default :data:`LOCK_NAME`; one output file's own lock: ``.FILE.lock``), which holds the holder's
    process id and machine name (a folder shared by a cluster's nodes) and is removed when it lets go. Held by
    another process, :class:`Busy` at once, naming it and ``hint`` (what to do). Two ``saicm train --resume`` of one
    run folder both went on from its checkpoint and wrote it, the log and the model in turn: both said they were
    done, the log held every step twice and the checkpoint was whichever wrote last. The lock goes with the process
    (a killed one holds nothing, and its lock file is taken over by the next); where no lock can be made (a folder
    that cannot be written, a file system without locks, Windows) the job goes on unlocked. ``wait``: wait for the
    other process instead (for moments of work: :func:`atomic_folder`'s publishing). ``subject``: what
    :class:`Busy` names as in use (default ``folder``; one output file's lock names that file, not the folder it
    is in)."""
    try:
        import fcntl
    except ImportError:
        fcntl = None
    fd = None
    path = Path(folder) / name
    tries = 0
    while fcntl is not None:
        tries += 1
        fd = _open_lock_file(path)
        if fd is None:
            break
        try:
            fcntl.flock(fd, fcntl.LOCK_EX if wait else fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as e:
            if wait or e.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                os.close(fd)  # (ENOLCK: no locks here)
                fd = None
                break
            try:
                pid, _, host = os.pread(fd, 300, 0).decode("ascii", "replace").strip().partition(" ")
            except OSError:
                pid = host = ""
            os.close(fd)
            # (a run folder on a file system shared by a cluster's nodes: the holder's pid is another machine's)
            where = f" on {host}" if host and host != _host() else ""
            who = f" (pid {pid}{where})" if pid.isdigit() else ""
            raise Busy(f"in use by another saicm process{who}: {hint}", str(subject or folder)) from None
        if _same_file(fd, path) or tries >= _LOCK_TRIES:
            break  # (a file system whose inode numbers never match: keep the lock held, as without the re-check)
        # (the holder before removed the file as it let go, after this process opened it: a lock on a file no
        # longer there holds nothing, as a third process may lock a new one; open the file there now)
        os.close(fd)
        fd = None
    try:
        if fd is not None:
            with contextlib.suppress(OSError):
                os.ftruncate(fd, 0)
                os.pwrite(fd, f"{os.getpid()} {_host()}\n".encode("ascii", "replace"), 0)
        yield
    finally:
        if fd is not None:
            with contextlib.suppress(OSError):  # (while held: one waiting for it opens the file anew, above)
                path.unlink()
            os.close(fd)


def _host() -> str:
    """This machine's name as a lock file holds it (one word, ASCII)."""
    import socket

    try:
        name = socket.gethostname()
    except OSError:
        return ""
    return "".join(c for c in name if c.isascii() and c.isprintable() and not c.isspace())[:255]


#: the flags that open a file in a folder others may write without following a link there (O_NOFOLLOW) and without
#: waiting when it is a FIFO (O_NONBLOCK): another user's FIFO named as saicm's lock file or temporary file, opened
#: for reading, waited for a writer for good (``saicm video encode -o /tmp/out.saicmv`` hung before its fit, ``saicm
#: eval -o shared/r.json`` after its sweep)
_NOT_A_LINK_NOR_WAIT = getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)


def _open_lock_file(path: Path) -> int | None:
    """A descriptor of the lock file ``path`` (made if absent), or None where none can be opened or it is not a
    regular file (another user's FIFO or device of that name)."""
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | _NOT_A_LINK_NOR_WAIT, 0o666)
    except PermissionError:  # (another user's lock file in a folder shared by a group: it locks read-only too)
        try:
            fd = os.open(path, os.O_RDONLY | _NOT_A_LINK_NOR_WAIT)
        except OSError:
            return None
    except OSError:
        return None
    try:
        if stat.S_ISREG(os.fstat(fd).st_mode):
            return fd
    except OSError:
        pass
    os.close(fd)
    return None


def _same_file(fd: int, path: Path) -> bool:
    """Whether ``path`` is still the file open as ``fd``."""
    try:
        a, b = os.fstat(fd), os.stat(path, follow_symlinks=False)
    except OSError:
        return False
    return (a.st_dev, a.st_ino) == (b.st_dev, b.st_ino)


def stale_part_owners(folder: str | os.PathLike) -> set[str]:
    """The names (cut as :func:`_short` cuts them) of the files in ``folder`` that :func:`atomic_path`'s temporary files
    (``.NAME.XXXXXXXX.part[SUFFIX]``) were written for, read from one listing of the folder: those of killed writers,
    and of live ones (:func:`remove_stale_parts` tells them apart); empty when the folder cannot be listed."""
    try:
        names = [e.name for e in os.scandir(folder) if e.name.startswith(".") and ".part" in e.name]
    except OSError:
        return set()
    owners = set()
    for name in names:
        head = name[1:].rpartition(".part")[0]  # (NAME.XXXXXXXX: mkstemp's random part holds no dot)
        if "." in head:
            owners.add(head.rpartition(".")[0])
    return owners


def remove_stale_parts(dest: str | os.PathLike) -> None:
    """Remove the temporary files :func:`atomic_path` left beside ``dest`` when its writer was killed (``kill -9``,
    a power cut): a job that writes the same file again (a resumed fit's checkpoint) would add one per kill. One
    that a live process holds (another job writing ``dest`` now) is left: removing it made that job fail as it
    finished the file (``FileNotFoundError``; two ``saicm eval`` of a NeRV codec on one clip share its cached
    checkpoint, two ``saicm video encode --resume`` of one output theirs)."""
    import glob

    dest = Path(dest)
    pattern = glob.escape(f".{_short(dest.name)}.") + "*" + glob.escape(".part" + dest.suffix)
    for stale in dest.parent.glob(pattern):
        # opened for writing where it can be: NFS emulates flock with fcntl locks, whose exclusive kind needs a
        # writable descriptor (on a read-only one the lock failed, EBADF, taken for "no locks here": a live writer's
        # file was removed)
        try:
            fd = os.open(stale, os.O_RDWR | _NOT_A_LINK_NOR_WAIT)
        except OSError:
            try:
                fd = os.open(stale, os.O_RDONLY | _NOT_A_LINK_NOR_WAIT)
            except OSError:
                continue
        try:
            if not stat.S_ISREG(os.fstat(fd).st_mode):  # (another user's FIFO of that name: no writer's file)
                continue
            _lock_nowait(fd)  # (held by no process: a killed writer's; where there are no locks, removed as before)
            stale.unlink()
        except OSError:  # (BlockingIOError: a live writer's)
            pass
        finally:
            os.close(fd)


def _short(name: str, limit: int = 120) -> str:
    """``name`` cut to ``limit`` bytes, for a temporary file's name beside it: the full name plus the temporary
    parts went over the file system's 255 bytes for legal names of 235 bytes and more ("File name too long")."""
    raw = os.fsencode(name)[:limit]
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:  # a name that is not UTF-8 (its undecodable bytes held as surrogates): cut as bytes
        return os.fsdecode(raw)
    return raw.decode("utf-8", "ignore")  # on a character boundary (file systems that require UTF-8)


#: the standard streams an output may name (``-o /dev/stdout``, ``/dev/stderr``, ``/dev/fd/1``, ``/proc/self/fd/2``)
_STANDARD_FDS = (1, 2)


def standard_stream(dest: str | os.PathLike) -> int | None:
    """The descriptor of this process's standard output (or error) that ``dest`` names through a link of the
    user's own or root's (``/dev/stdout`` and its kin), whatever it is open on (a pipe, a terminal, a file the shell
    opened with ``>`` or ``>>``); None for any other path."""
    dest = Path(dest)
    try:
        if not dest.is_symlink() or not _trusted_link(dest):
            return None
        st = os.stat(dest)
    except OSError:
        return None
    for fd in _STANDARD_FDS:
        try:
            if os.path.samestat(st, os.fstat(fd)):
                return fd
        except OSError:  # (that descriptor is closed)
            continue
    return None


@contextlib.contextmanager
def _through_descriptor(fd: int, dest: str | os.PathLike = "") -> Iterator[Path]:
    """Yield a temporary path (in the temporary folder); on success its bytes are written to the open descriptor
    ``fd`` where it stands. Opening ``/dev/stdout`` by name, or renaming a file onto the path it leads to, did not
    write to standard output when the shell had opened it on a file: the name was reopened and truncated (what a
    ``{ echo header; saicm ...; } > out`` wrote before was lost, ``>>`` replaced the file) or replaced by a new
    file (``out`` then held saicm's bytes alone, and a second command wrote a new file named ``out (deleted)``).
    No writable temporary folder (a container's read-only ``/tmp``) is one line naming ``dest`` and ``TMPDIR``: it
    was tempfile's words under the input's name."""
    try:
        handle, tmp = tempfile.mkstemp(prefix=".saicm-", suffix=".part")
    except OSError as e:
        raise SaicmError(f"cannot write there without a temporary file, and none can be made ({e.strerror or e}): "
                         "point TMPDIR at a writable folder, or name an output file", str(dest) or None) from None
    os.close(handle)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        data = tmp_path.read_bytes()
        flush_standard_streams()  # (what saicm printed before comes first)
        view = memoryview(data)
        try:
            while view:
                view = view[os.write(fd, view):]
        except OSError as e:
            if e.errno == errno.EBADF:  # (a descriptor closed when saicm started: reserve_standard_descriptors)
                raise OSError(e.errno, f"standard {'output' if fd == 1 else 'error'} is closed") from e
            raise
    finally:
        with contextlib.suppress(OSError):
            tmp_path.unlink()


def reserve_standard_descriptors() -> None:
    """Open ``/dev/null`` on each standard descriptor (0, 1, 2) that the process started with closed (``saicm ...
    >&-``), for reading where the stream is written and for writing where it is read: every use of it then fails
    (``EBADF``) instead of reaching the next file the process opens, which takes the lowest free descriptor (a
    ``--log`` file became descriptor 1, and ``-o /dev/stdout`` wrote the coded image into it)."""
    for fd in (0, 1, 2):
        try:
            os.fstat(fd)
        except OSError:
            new = os.open(os.devnull, os.O_WRONLY if fd == 0 else os.O_RDONLY)
            if new != fd:
                os.dup2(new, fd)
                os.close(new)


def text_stream(dst):
    """Where a command prints its lines of text when it writes ``dst``: standard error when ``dst`` is standard
    output itself (``-o /dev/stdout``: a summary line was appended to the coded bytes; ``--json /dev/stdout |
    jq``: the table's text came before the JSON), else standard output."""
    import sys

    try:
        if os.path.samestat(os.stat(dst), os.fstat(sys.stdout.fileno())):
            return sys.stderr
    except (OSError, ValueError, AttributeError, TypeError):  # (no file there; a test's captured stdout; no dst)
        pass
    return sys.stdout


def flush_standard_streams() -> None:
    """Flush Python's standard output and error, whatever they are (closed, None, a broken pipe: ignored)."""
    import sys

    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(AttributeError, ValueError, OSError):
            stream.flush()


def output_target(dest: str | os.PathLike) -> tuple[Path, bool]:
    """Where an output named ``dest`` goes, and whether that is a stream written to in place (a device or FIFO:
    ``-o /dev/null``). A link of the user's own (or root's: ``/dev/stdout``) leads to its target; another user's
    link is the path itself, to be replaced: neither its target file nor a device or FIFO behind it is written.
    Another user's FIFO there is replaced too, as a file: one planted at the output's name in /tmp or a shared
    folder had the coded file written into it, for them to read, and the command waited for good for a reader."""
    dest = Path(dest)
    if standard_stream(dest) is not None:  # (written through the descriptor: atomic_path)
        return dest, True
    trusted = not dest.is_symlink() or _trusted_link(dest)
    if dest.is_symlink() and trusted:
        try:  # a link to a stream (/dev/stdout into a pipe): written through the link, whose target may have no
            if _is_stream(os.stat(dest).st_mode):  # path of its own (/proc/PID/fd/pipe:[N])
                return dest, True
        except OSError:
            pass
        dest = Path(os.path.realpath(dest))
    try:
        st = (os.stat if trusted else os.lstat)(dest)
    except OSError:
        return dest, False
    if stat.S_ISFIFO(st.st_mode) and hasattr(os, "geteuid") and not _trusted_owner(st.st_uid):
        return dest, False
    return dest, _is_stream(st.st_mode)


def _is_stream(mode: int) -> bool:
    return stat.S_ISCHR(mode) or stat.S_ISBLK(mode) or stat.S_ISFIFO(mode)


def _trusted_link(link: Path) -> bool:
    """Whether a symbolic link may be followed for writing: it is the user's own or root's. (Until 0.23.0 also the
    link of its folder's owner, the kernel's rule for sticky folders such as /tmp, whose owner is root; in a folder
    another user owns, that made their links trusted: a security review replaced the user's ~/.bashrc through a
    link planted in a shared cache folder.)"""
    if not hasattr(os, "geteuid"):
        return True
    try:
        return _trusted_owner(os.lstat(link).st_uid)
    except OSError:
        return False


def _trusted_owner(uid: int) -> bool:
    """Whether what ``uid`` owns may be trusted as the user's: the user's own, or root's."""
    return uid in (os.geteuid(), 0)


@contextlib.contextmanager
def atomic_folder(dest: str | os.PathLike) -> Iterator[Path]:
    """A temporary folder beside ``dest``, renamed onto it on success (``dest`` must be absent or empty). Into an
    empty folder that is there, the temporary folder is made inside it and its files moved out on success: the
    folder itself stays (a mount point, such as a fresh disk's, cannot be removed or replaced: the work was lost at
    the end; and its parent need not be writable). A killed job's temporary folder there (``.NAME.*.part``) does
    not count as content."""
    dest = Path(dest)
    if dest.exists() and not dest.is_dir():  # (-o /dev/full said "not an empty folder": a folder is wanted)
        what = "a device or FIFO" if _is_stream(dest.stat().st_mode) else "a file"
        raise SaicmError(f"output exists and is {what}, not a folder (pick another -o)", str(dest))
    if dest.exists() and _has_content(dest):
        raise SaicmError("output exists and is not an empty folder (pick another -o)", str(dest))
    inside = dest.is_dir()
    parent = dest.parent if str(dest.parent) else Path(".")
    if not parent.is_dir():
        raise no_output_folder(parent)
    try:
        tmp = Path(tempfile.mkdtemp(prefix=f".{_short(dest.name)}.", suffix=".part", dir=dest if inside else parent))
    except OSError as e:
        raise SaicmError(f"cannot write output ({e.strerror})", str(dest)) from None
    owner = os.lstat(tmp).st_uid  # (as made: a root-squashed NFS share makes root's folders nobody's)
    try:
        yield tmp
        fd = _own_temporary_folder(tmp, dest, owner)
        try:
            if inside:
                # one job at a time moves its files out, into a folder still empty: two jobs writing one empty folder
                # both moved theirs in (frames of two ranges, one frames.json)
                with exclusive(dest, "", wait=True):  # (its lock file is removed as it lets go: not among the files)
                    if _has_content(dest):
                        raise SaicmError(_APPEARED, str(dest))
                    if fd is not None:  # (the files of the folder checked, whatever is at its name now)
                        for name in sorted(os.listdir(fd)):
                            os.replace(name, dest / name, src_dir_fd=fd)
                    else:
                        for entry in sorted(tmp.iterdir()):
                            os.replace(entry, dest / entry.name)
                tmp.rmdir()
            else:
                if fd is not None:  # the output's mode, given before it is published, to the folder checked
                    os.fchmod(fd, 0o777 & ~_umask())
                else:
                    os.chmod(tmp, 0o777 & ~_umask())
                try:
                    os.replace(tmp, dest)
                except OSError as e:  # (another job's folder there now: renaming onto it was a traceback)
                    if e.errno in (errno.ENOTEMPTY, errno.EEXIST, errno.ENOTDIR, errno.EISDIR):
                        raise SaicmError(_APPEARED, str(dest)) from None
                    raise
        finally:
            if fd is not None:
                os.close(fd)
    except BaseException as e:
        if tmp.is_symlink():  # (planted at its name: removed, not followed)
            tmp.unlink()
        shutil.rmtree(tmp, ignore_errors=True)
        if isinstance(e, OSError) and e.errno in WRITE_ERRNOS:
            raise _write_error(e, dest) from None
        raise


def _own_temporary_folder(tmp: Path, dest, owner: int) -> int | None:
    """A descriptor of ``tmp``, the temporary folder of :func:`atomic_folder`, once it is checked to be still a folder
    owned as it was when it was made (``owner``) and no link (None where the system opens no folder so, as Windows:
    checked by its name alone). In a folder another user may write, they could replace it by a link to a private file
    or folder of the user's while it was written: the chmod by name of the published folder followed it
    (``~/.ssh/id_rsa`` 0600 became 0755), and into an existing empty output the files of the linked folder were moved
    (``~/.ssh``'s keys). A one-line error."""
    flags = getattr(os, "O_DIRECTORY", 0) | getattr(os, "O_NOFOLLOW", 0)
    if not getattr(os, "O_DIRECTORY", 0) or os.listdir not in os.supports_fd or os.replace not in os.supports_dir_fd:
        _check_temporary(os.lstat(tmp), stat.S_ISDIR, owner, "folder", dest)
        return None
    try:
        fd = os.open(tmp, os.O_RDONLY | flags)
    except OSError as e:
        if e.errno not in (errno.ELOOP, errno.EMLINK, errno.ENOTDIR, errno.ENOENT):  # (a link, a file, gone)
            raise
        fd = None
    try:
        _check_temporary(os.fstat(fd) if fd is not None else None, stat.S_ISDIR, owner, "folder", dest)
    except SaicmError:
        if fd is not None:
            os.close(fd)
        raise
    return fd


#: the error of an output folder that another job wrote while this one was writing it
_APPEARED = "output is no longer an empty folder: another job wrote it meanwhile (nothing written; pick another -o)"


def _has_content(folder: Path) -> bool:
    """Whether ``folder`` holds anything but killed jobs' temporary folders and the lock of :func:`exclusive`."""
    return any(not _stale_part(p, folder) and p.name != LOCK_NAME for p in folder.iterdir())


def _stale_part(entry: Path, folder: Path) -> bool:
    """Whether ``entry`` in ``folder`` is a temporary folder :func:`atomic_folder` left there (its job killed)."""
    return entry.name.startswith(f".{_short(folder.name)}.") and entry.name.endswith(".part") and entry.is_dir()


def trusted_folder(path: str | os.PathLike) -> bool:
    """Whether what a folder holds can be trusted as written by the user: it is theirs (or root's) and no one else
    may write in it (a cache another user can write lets them choose what is read back). Group write is no one
    else's when the group is the user's own private group (umask 002 on Fedora and RHEL makes folders so)."""
    try:
        st = os.stat(path)
    except OSError:
        return False
    return trusted_folder_stat(st)


def trusted_folder_stat(st: os.stat_result) -> bool:
    """:func:`trusted_folder` of a folder's ``stat`` (one open as a descriptor: ``os.fstat``)."""
    if not hasattr(os, "geteuid"):
        return True
    if not stat.S_ISDIR(st.st_mode) or not _trusted_owner(st.st_uid) or st.st_mode & 0o002:
        return False
    return not st.st_mode & 0o020 or _private_group(st.st_gid)


def _private_group(gid: int) -> bool:
    """Whether ``gid`` is the user's private group: their primary group, named as they are, with no other member."""
    try:
        import grp
        import pwd

        g = grp.getgrgid(gid)
        return gid == os.getegid() and not g.gr_mem and g.gr_name == pwd.getpwuid(os.geteuid()).pw_name
    except (ImportError, KeyError, OSError):
        return False


_umask_lock = threading.Lock()


def _umask() -> int:
    """The process's umask, read without changing it where the system says it (Linux: ``/proc/self/status``).
    Setting it to read it (``os.umask(0)``, then back) opened a window in which the files any other thread of the
    process created came out writable by everyone (0666), and two threads reading it at once could leave it 0 for
    good; elsewhere that swap is made under a lock (saicm's own writers agree; other threads' files still see it)."""
    try:
        with open("/proc/self/status", encoding="ascii", errors="replace") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    with _umask_lock:
        mask = os.umask(0o077)  # (the narrowest value for the moment it is set, not 0)
        os.umask(mask)
    return mask


def write_bytes_atomic(dest: str | os.PathLike, data: bytes, durable: bool = True) -> None:
    with atomic_path(dest, durable) as tmp:
        tmp.write_bytes(data)


def write_atomic(dest: str | os.PathLike, writer: Callable[[Path], None], durable: bool = True) -> None:
    """Call ``writer(tmp_path)`` and move the result onto ``dest`` atomically (see :func:`atomic_path`)."""
    with atomic_path(dest, durable) as tmp:
        writer(tmp)


def is_special(path: Path) -> bool:
    """A FIFO, socket or device (not a regular file, folder or link): never an input of a folder job."""
    try:
        mode = path.lstat().st_mode
    except OSError:
        return False
    return not (stat.S_ISREG(mode) or stat.S_ISDIR(mode) or stat.S_ISLNK(mode))


def input_files(folder: str | os.PathLike, accept: Callable[[Path], bool],
                unreadable: Callable[[OSError], None] | None = None) -> list[Path]:
    """The files under ``folder`` (recursively, sorted) that ``accept`` takes: the one rule of every folder input
    (coding, masks, training, evaluation). Hidden names (``.x``: a killed job's temporary ``.x.part.png``, macOS's
    ``._x.jpg``) are left out, links to folders are not followed and broken links lead nowhere (one warning names
    them: in eval, train and masks they were left out in silence; another names FIFOs, sockets and devices), and a folder that cannot be read is passed to
    ``unreadable`` (default: a one-line error; ``rglob`` skipped it in silence)."""
    def refuse(e: OSError) -> None:
        raise SaicmError(f"cannot read folder ({e.strerror or e})", str(e.filename))

    files: list[Path] = []
    links: list[Path] = []
    special: list[Path] = []
    for root, dirs, names in os.walk(folder, onerror=unreadable or refuse):
        here = Path(root)
        links += [here / d for d in dirs if not d.startswith(".") and (here / d).is_symlink()]
        links += [here / n for n in names if not n.startswith(".") and (here / n).is_symlink()
                  and not (here / n).exists()]
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for n in names:
            if n.startswith("."):
                continue
            if accept(here / n):
                files.append(here / n)
            elif is_special(here / n):
                special.append(here / n)
    # (a FIFO named x.png was left out of a folder job in silence; reading one would wait forever)
    for kind, paths in (("special file{} (a FIFO, socket or device) left out", special),
                        ("symbolic link{} not followed (to a folder, or broken)", links)):
        if paths:  # (the first three in sorted order, as the files are: a folder's listing order is arbitrary)
            paths.sort()
            warn(f"{len(paths)} {kind.format('s' if len(paths) > 1 else '')}: "
                 f"{', '.join(map(str, paths[:3]))}{' …' if len(paths) > 3 else ''}")
    return sorted(files)


def no_output_folder(folder: Path) -> SaicmError:
    """The error of an output whose folder is not one: "output folder does not exist", or, when a file stands where
    it or a folder above it would be (-o notes.txt/x), that file, named ("does not exist" of a file that does)."""
    for p in (folder, *folder.parents):
        if p.exists():
            if not p.is_dir():
                return SaicmError("cannot write output (a file, not a folder, is in the way)", str(p))
            break
    return SaicmError("output folder does not exist", str(folder))


def ensure_dir(path: str | os.PathLike, mode: int = 0o777) -> Path:
    """Create an output folder (and parents; ``mode``, before the umask, applies to the folder itself when it is
    made: 0o700 for one only its user may read); a one-line error if that is not possible."""
    path = Path(path)
    try:
        path.mkdir(parents=True, exist_ok=True, mode=mode)
    except (FileExistsError, NotADirectoryError):  # ("(File exists)" read as if all were well): the file, named
        in_way = next((p for p in (path, *path.parents) if p.exists() and not p.is_dir()), path)
        raise SaicmError("cannot create output folder (a file, not a folder, is in the way)", str(in_way)) from None
    except OSError as e:
        raise SaicmError(f"cannot create output folder ({e.strerror})", str(path)) from None
    return path


def read_input(path: str | os.PathLike, limit: int | None = None) -> bytes:
    """The bytes of an input file (its first ``limit`` bytes if given), or a one-line error naming it."""
    if "\x00" in os.fsdecode(path):  # (open() raised ValueError "embedded null byte": not a SaicmError)
        raise SaicmError(f"{no_such_file(path)} (the name holds a NUL character, which no file name can)", str(path))
    try:
        with open(path, "rb") as f:  # (not Path(path): Path("") is the working folder, "is a folder, not a file")
            return f.read() if limit is None else f.read(limit)
    except FileNotFoundError:
        raise SaicmError(no_such_file(path), str(path)) from None
    except IsADirectoryError:
        raise SaicmError("is a folder, not a file", str(path)) from None
    except OSError as e:
        raise SaicmError(f"cannot read ({e.strerror or e})", str(path)) from None


def file_sha256(path: str | os.PathLike) -> str:
    """The SHA-256 (hex) of a file's bytes: what a record says a file was (training images and masks, a SAM
    checkpoint, a task model, the images a mask was made of); OSError as ``open`` raises it."""
    import hashlib

    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def refuse_input_as_output(src: str | os.PathLike, dst: str | os.PathLike) -> None:
    """A one-line error if writing ``dst`` would replace the input file ``src`` (the same file, by any name)."""
    try:
        same = os.path.samefile(src, dst)
    except OSError:  # either does not exist (yet)
        return
    if same:
        raise SaicmError("is the input file: not overwritten (name another output)", str(dst))


def output_file(path: str | os.PathLike, inputs=(), suffix: str | None = None) -> Path:
    """Where a command writes one file, checked before any work: a one-line error if it is ``-``, names a folder,
    lacks ``suffix`` or is one of ``inputs``; its folder is created (as ``compress`` and ``decompress`` create
    theirs: ``eval -o new/r.json`` ran its whole sweep, then stopped on the missing folder)."""
    if str(path) == "-":
        raise SaicmError(f"'-o -' is not taken (standard output is not supported by that name): {NO_DASH_OUTPUT}")
    p = Path(path)
    if standard_stream(p) is not None:  # -o /dev/stdout: written through the descriptor (atomic_path)
        return p
    if p.is_dir() or str(path).endswith(("/", os.sep)):
        raise SaicmError("is a folder: name the file to write", str(path))
    if suffix is not None and p.suffix.lower() != suffix:
        raise SaicmError(f"name the file to write with a {suffix} suffix", str(path))
    for src in inputs:
        refuse_input_as_output(src, p)
    ensure_dir(p.parent)  # (Path("r.json").parent is Path("."))
    if not os.access(p.parent, os.W_OK | os.X_OK) and not output_target(p)[1]:
        raise SaicmError("cannot write to this output folder (nothing done)", str(p.parent))
    return p


#: the home of a user who has none (Debian's for system users): paths under it are never found nor created
NO_HOME = Path("/nonexistent")


def home() -> Path:
    """The user's home folder, or :data:`NO_HOME` for a service account without one (no ``$HOME`` and no passwd
    entry: ``Path.home()`` raised, and every command with it)."""
    try:
        return Path.home()
    except (RuntimeError, KeyError):
        return NO_HOME


def under_no_home(path: str | os.PathLike) -> bool:
    """Whether ``path`` lies in :data:`NO_HOME` (a default folder of a user who has no home: ``$HOME`` unset and no
    passwd entry, or ``HOME=/nonexistent`` as Debian gives system users), which saicm never creates."""
    no_home = os.path.abspath(NO_HOME)
    return os.path.commonpath([no_home, os.path.abspath(path)]) == no_home


def user_path(text: str) -> Path:
    """``text`` as a path, ``~`` expanded (left as it is when the user has no home)."""
    try:
        return Path(text).expanduser()
    except (RuntimeError, KeyError):
        return Path(text)


def env_folder(variable: str) -> Path | None:
    """The folder ``$variable`` names (``~`` expanded; a relative one from the working folder), or None when it is
    unset or blank: ``SAICM_CACHE=" "`` (an env file's stray space) made a folder named " " wherever a command ran."""
    value = os.environ.get(variable, "")
    return user_path(value) if value.strip() else None


def cache_dir() -> Path:
    """saicm's cache folder: ``$SAICM_CACHE``, else ``$XDG_CACHE_HOME/saicm`` (``~/.cache/saicm``). Holds the
    evaluation's decodes (``decoded/``; until 0.23.0 also the portable engine's ONNX graphs, ``onnx/``)."""
    env = env_folder("SAICM_CACHE")
    if env is not None:
        return env
    return Path(xdg_dir("XDG_CACHE_HOME", ".cache")) / "saicm"


def xdg_dir(variable: str, default: str) -> str:
    """An XDG base folder: ``$variable`` when it is an absolute path, else ``~/default`` (the specification has
    relative values ignored: one made a cache in whatever folder a command ran from)."""
    value = os.environ.get(variable, "")
    return value if os.path.isabs(value) else str(home() / default)

