"""Decoded-image cache keyed by (codec, codec config, quality, image content).

A sweep that is interrupted or re-run (another task model, one more quality)
re-uses every decode it already made: the decoded PNG (lossless) is stored with
the exact byte count and timings of the encode that produced it. The key holds
a hash of the codec's config (e.g. the model's weight checksum), so new weights
never hit stale entries.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import io
import json
import os
import re
import stat
import sys
from pathlib import Path

from PIL import Image

from .._fs import (cache_dir, remove_stale_parts, stale_part_owners, trusted_folder, trusted_folder_stat, write_atomic,
                   write_bytes_atomic)
from ..errors import SaicmError, warn


#: whether an entry is read through its folder's descriptor (:meth:`_Entries._open_folder`): not on Windows
_BY_DESCRIPTOR = os.open in os.supports_dir_fd


#: an entry is a regular file saicm renamed into place: a link (O_NOFOLLOW) or a FIFO (O_NONBLOCK: its open waited for
#: a writer for good; a link to /dev/zero was read until memory ran out) is a miss, recomputed and replaced
_ENTRY_FLAGS = os.O_RDONLY | getattr(os, "O_BINARY", 0) | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)


def _read_file(path: Path, dir_fd: int | None) -> bytes:
    """The bytes of the regular file ``path``, opened by its name in the folder open as ``dir_fd`` (None: by its
    path); ``OSError`` if it is anything else."""
    fd = os.open(path.name if dir_fd is not None else path, _ENTRY_FLAGS, dir_fd=dir_fd)
    with open(fd, "rb") as f:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise OSError(errno.EINVAL, "not a regular file", str(path))
        return f.read()


def default_cache_dir() -> Path:
    return cache_dir() / "decoded"


def image_hash(img: Image.Image) -> str:
    """The cache key of an image: the SHA-256 of its shape ``(H, W, 3)`` and RGB pixels (first 20 hex digits)."""
    rgb = img if img.mode == "RGB" else img.convert("RGB")  # (as it is: convert, asarray, tobytes copied it 3 times)
    h = hashlib.sha256(str((rgb.height, rgb.width, 3)).encode())
    h.update(rgb.tobytes())
    return h.hexdigest()[:20]


def codec_key(codec_name: str, config: dict) -> str:
    """The codec's cache folder name: its name (the characters a folder name cannot hold as ``_``: ``/``, and on
    Windows also ``:``, ``\\`` and the rest it forbids, as in ``hevc:slow``; the hash keeps keys apart) and a hash of
    its name and config."""
    blob = json.dumps({"codec": codec_name, "config": config}, sort_keys=True, default=str)
    return folder_safe(codec_name) + "-" + hashlib.sha256(blob.encode()).hexdigest()[:12]


def folder_safe(name: str, windows: bool = os.name == "nt") -> str:
    """``name`` with the characters a folder name cannot hold as ``_``: ``/``; on Windows also ``\\``, ``:`` and
    the others it forbids."""
    return re.sub(r'[<>:"/\\|?*\x00-\x1f]' if windows else "/", "_", name)


def close_old_default_cache() -> None:
    """The default cache root (``~/.cache/saicm/decoded``), made 0755 by saicm before 0.23.0 (other users could
    read the decodes of the user's images), closed to 0700 when it is the user's own folder (not a link), said in
    one line. Only the default: a folder named by ``--cache`` or ``$SAICM_CACHE`` keeps the mode its owner chose."""
    if os.environ.get("SAICM_CACHE", "").strip() or not hasattr(os, "geteuid"):
        return
    root = default_cache_dir()
    try:
        st = os.lstat(root)
        if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.geteuid() or not stat.S_IMODE(st.st_mode) & 0o077:
            return
        os.chmod(root, 0o700)
    except OSError:
        return  # (absent, or it cannot be closed: as before)
    print(f"saicm: note: {root} (decodes of your images) was readable by other users; it is now yours alone (0700)",
          file=sys.stderr)


#: the end of each warning about a cache folder not used: how to name another (the variable too, for a job whose
#: command line is fixed: a container's, a batch node's) or none
OTHER_CACHE = "(--cache DIR or $SAICM_CACHE names another folder, --no-cache none)"


#: a decode cache entry's image, relative to the folder it lies in (``CODEC-KEY/qQ/HASH.png``)
_CACHE_ENTRY = r"(?:.+/)?[^/]+-[0-9a-f]{12}/q[^/]+/[0-9a-f]{20}\.png"


def without_cache(folder: Path, files: list[Path], what: str, cache: str | Path | None = None) -> list[Path]:
    """``files`` (listed under ``folder``) less the decoded images of decode caches inside ``folder`` (each
    ``CODEC-KEY/qQ/HASH.png`` with its ``.json`` beside it), said in a warning, as is a cache in use (``cache``, its
    root) lying inside ``folder`` (a hidden one, ``.cache``, is listed by nothing): with ``--cache photos/cache`` or
    a relative ``$SAICM_CACHE`` in the dataset's folder, the second sweep scored the first's decodes as test images
    too (8 images instead of 4, 38.7 dB instead of 27.4), unsaid, and training read them as photos."""
    from ..errors import warn

    entry = re.compile(_CACHE_ENTRY)
    kept = [f for f in files
            if not (entry.fullmatch(f.relative_to(folder).as_posix()) and f.with_suffix(".json").is_file())]
    if len(kept) < len(files):
        warn(f"{len(files) - len(kept)} decoded images of a saicm decode cache (CODEC-KEY/qQ/HASH.png) inside the "
             f"dataset folder {folder} left out of the {what} images: keep the cache outside it (--cache DIR or "
             "$SAICM_CACHE)")
        return kept
    if cache is not None:
        root, inner = os.path.realpath(folder), os.path.realpath(cache)
        rel = Path(os.path.relpath(inner, root))
        if os.path.commonpath([root, inner]) == root and not any(p.startswith(".") for p in rel.parts if p != "."):
            warn(f"the decode cache {cache} lies inside the dataset folder {folder}: saicm leaves its decodes out "
                 "of the images it reads there, other tools would not: keep the cache outside it (--cache DIR or "
                 "$SAICM_CACHE)")
    return kept


class _Entries:
    """Entries keyed by (quality, content hash) in one codec's folder: ``q{quality}/{hash}{suffix}`` holding the
    value and ``.json`` its info, each written atomically; a missing or damaged entry is a miss (recomputed)."""

    suffix = ".bin"

    def __init__(self, folder: Path | None):
        self.enabled = folder is not None
        self.writable = self.enabled  # False after a failed write: the entries there are still read
        self.dir = Path(folder) if folder is not None else None
        self._swept: set[Path] = set()  # the quality folders whose killed writers' temporary files are gone
        if self.enabled:
            self._refuse_untrusted()

    def _refuse_untrusted(self) -> None:
        """A cache folder (the root, or this codec's) that another user owns or may write is not used at all: its
        entries could be anyone's (a security review planted one that scored a codec 0.0065 bpp at 99 dB)."""
        for folder in (self.dir.parent, self.dir):
            try:
                there = folder.exists()
            except OSError as e:  # (a folder above it the user cannot read)
                self._unreadable(e)
                return
            if there and not trusted_folder(folder):
                self._untrusted(folder)
                return

    def _untrusted(self, folder: Path) -> None:
        """The cache is not used at all from now on, said once: ``folder`` is another user's or others may write it."""
        if not self.enabled:
            return
        self.enabled = self.writable = False
        # (a SaicmWarning, as each of the cache's: printed, a sweep's caller in Python could neither silence nor catch
        # it, and a file in the cache's place was said to be a folder others may write)
        if folder.exists() and not folder.is_dir():
            warn(f"the cache folder {folder} is a file: going on without the cache " + OTHER_CACHE)
            return
        warn(f"the cache folder {folder} is not yours alone (another user owns it or may write in it): going on "
             "without the cache " + OTHER_CACHE)

    def _open_folder(self, quality) -> int | None:
        """A descriptor of the folder of ``quality``'s entries, each folder on the way (the root, this codec's, the
        quality's) checked as it is opened, links followed (:func:`~saicm._fs.trusted_folder_stat`): entries are read
        through it, and written only after it. The check when the cache was opened passed folders not there yet, and
        any folder later swapped in: a ``$SAICM_CACHE`` in /tmp that another user made during the sweep (or a root
        whose parent they may write, renamed away and replaced) had its planted entries read as decodes (0.026 bpp at
        99 dB, no word said), and the user's decodes written there for them to read. None: a folder is not there (a
        miss), or is not trusted (the cache is then not used, said once); ``OSError``: one cannot be read."""
        flags = os.O_RDONLY | getattr(os, "O_DIRECTORY", 0)
        fd = None
        try:
            for name, folder in ((str(self.dir.parent), self.dir.parent), (self.dir.name, self.dir),
                                 (f"q{quality}", self.dir / f"q{quality}")):
                new = os.open(name, flags, dir_fd=fd)
                if fd is not None:
                    os.close(fd)
                fd = new
                if not trusted_folder_stat(os.fstat(fd)):
                    self._untrusted(folder)
                    os.close(fd)
                    return None
        except (FileNotFoundError, NotADirectoryError):
            if fd is not None:
                os.close(fd)
            return None
        except BaseException:
            if fd is not None:
                os.close(fd)
            raise
        return fd

    def _still_trusted(self, quality) -> bool:
        """Whether this quality's folder (made) is still the user's alone, all the way from the root
        (:meth:`_open_folder`); where descriptors cannot open files in a folder (Windows), as at the start."""
        if not _BY_DESCRIPTOR:
            return True
        fd = self._open_folder(quality)
        if fd is None:
            return False
        os.close(fd)
        return True

    def _paths(self, quality, key: str) -> tuple[Path, Path]:
        stem = self.dir / f"q{quality}" / key
        return stem.with_suffix(self.suffix), stem.with_suffix(".json")

    def _decode(self, data: bytes):
        """The value of an entry's bytes."""
        return data

    def _write(self, path: Path, value) -> None:
        write_bytes_atomic(path, value, durable=False)  # (an entry lost in a power cut is recomputed)

    def get(self, quality, key: str):
        """(value, info), or None."""
        if not self.enabled:
            return None
        value, meta = self._paths(quality, key)
        try:
            raw = self._entry_bytes(quality, value, meta)
        except OSError as e:
            self._unreadable(e)
            return None
        if raw is None:
            return None
        try:
            got, info = self._decode(raw[0]), json.loads(raw[1])
        except (OSError, ValueError, RecursionError, Image.DecompressionBombError):  # (a PNG header of 60,000²: its
            # traceback; crafted cache entries)
            return None  # a damaged entry is simply recomputed
        return (got, info) if isinstance(info, dict) and self._intact(got, info) else None

    def _entry_bytes(self, quality, value: Path, meta: Path) -> tuple[bytes, bytes] | None:
        """The bytes of an entry's value and side file, read through its folder's descriptor (:meth:`_open_folder`);
        None: a miss (not there, damaged, or the cache not trusted); ``OSError``: a folder of it cannot be read."""
        if _BY_DESCRIPTOR:
            fd = self._open_folder(quality)
            if fd is None:
                return None
        else:
            fd = None
            try:
                if not (value.is_file() and meta.is_file()):
                    return None
            except OSError as e:
                self._unreadable(e)
                return None
        try:
            if self.writable:  # (a sweep whose every entry is there writes none: a killed one's files stayed for good)
                self._remove_stale_parts(value.parent)
            try:
                return _read_file(value, fd), _read_file(meta, fd)
            except OSError:
                return None
        finally:
            if fd is not None:
                os.close(fd)

    def _intact(self, value, info: dict) -> bool:
        """Whether ``value`` is what was written beside ``info`` (a PNG checks its own chunks as it is read)."""
        return True

    def put(self, quality, key: str, value, info: dict) -> None:
        if not (self.enabled and self.writable):
            return
        path, meta = self._paths(quality, key)
        try:
            self._make_private_dirs(path.parent)
            if not self._still_trusted(quality):  # (another user's folder there since: nothing written to it)
                return
            self._remove_stale_parts(path.parent)
            for entry in (path, meta):  # (a FIFO or link there, a miss on reading, would be written through:
                # saicm's outputs write into a FIFO or link of the user's own; an entry is a file of the cache's)
                with contextlib.suppress(FileNotFoundError):
                    if not stat.S_ISREG(os.lstat(entry).st_mode):
                        entry.unlink()
            self._write(path, value)
            write_bytes_atomic(meta, json.dumps(info).encode(), durable=False)
        except (OSError, SaicmError) as e:  # (write_atomic words OSErrors as SaicmError)
            self._give_up(e)

    def _remove_stale_parts(self, folder: Path) -> None:
        """The temporary files that writers killed in ``folder`` left (``.KEY.png.XXXX.part.png``: one per ``kill -9``
        or power cut during a write, never removed, as nothing wrote the same entry's name again), removed once per
        folder and process; those a live writer holds (a second sweep sharing the cache) are left
        (:func:`~saicm._fs.remove_stale_parts`)."""
        if folder in self._swept:
            return
        self._swept.add(folder)
        for owner in stale_part_owners(folder):
            remove_stale_parts(folder / owner)

    def _make_private_dirs(self, folder: Path) -> None:
        """``folder`` (this codec's, or one of its quality folders) and the root above it, each made readable and
        writable by its user alone (decodes of the user's images: a second copy, which other users should not read;
        and a folder made with the umask's group write, 002 on Fedora, was then refused as not the user's alone);
        existing ones are left as they are."""
        self.dir.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        for f in (self.dir, folder):
            f.mkdir(exist_ok=True, mode=0o700)

    def _unreadable(self, e: OSError) -> None:
        """A cache folder the user cannot read (root's own, 0700: made by ``sudo saicm eval`` where sudo keeps
        ``$HOME``; a shared one closed to them) is not used at all, said once: it was a traceback
        (``PermissionError``) before the first image, or at the first entry looked up."""
        self.enabled = self.writable = False
        warn(f"cannot read the cache in {self.dir} ({e.strerror or e}): going on without the cache " + OTHER_CACHE)

    def _give_up(self, e: Exception) -> None:
        """A cache that cannot be written (read-only home, a file in the way, a full disk) costs only the cache: the
        sweep goes on writing nothing, said once (it was a traceback after the first encode); what the cache already
        holds is still read (a read-only cache of the user's own, or root's: see _refuse_untrusted)."""
        if not self.writable:
            return
        self.writable = False
        warn(f"cannot write the cache in {self.dir} ({e}); going on without writing to it " + OTHER_CACHE)


class DecodeCache(_Entries):
    """Decoded images (lossless PNG) with the bytes and timings of the encode that made them, under ``root``, in a
    folder of their own per codec and config (disabled when ``root`` is None)."""

    suffix = ".png"

    def __init__(self, root: str | Path | None, codec_name: str, config: dict):
        super().__init__(None if root is None else Path(root) / codec_key(codec_name, config))

    def _decode(self, data: bytes) -> Image.Image:
        img = Image.open(io.BytesIO(data), formats=("PNG",))  # (what _write made: an entry of another format is a miss)
        img.load()
        return img.convert("RGB")

    def _write(self, path: Path, img: Image.Image) -> None:
        write_atomic(path, lambda tmp: img.save(tmp, format="PNG", compress_level=1), durable=False)


class EncodedCache(_Entries):
    """Encoded bytes (video codecs: a clip's stream), in the folder of a :class:`DecodeCache` (disabled with it).
    The side file holds the bytes' SHA-256 (``sha256``): an entry whose bytes differ (cut short, damaged) is a miss,
    encoded again; it was handed to the decoder, whose traceback (``Truncated File Read``, ``need at least one array
    to stack``) stopped every later sweep until the entry was found and deleted. Entries of saicm 0.31.0 and before
    hold no checksum and are read as they are."""

    def __init__(self, cache: DecodeCache | None):
        super().__init__(cache.dir if cache is not None and cache.enabled else None)

    def put(self, quality, key: str, value: bytes, info: dict) -> None:
        super().put(quality, key, value, {**info, "sha256": hashlib.sha256(value).hexdigest()})

    def _intact(self, value: bytes, info: dict) -> bool:
        want = info.pop("sha256", None)
        return want is None or want == hashlib.sha256(value).hexdigest()

    def checkpoint(self, quality, key: str) -> Path | None:
        """Where a resumable codec checkpoints the encode of this entry (None without a cache)."""
        if not (self.enabled and self.writable):
            return None
        path = self.dir / f"q{quality}" / f"{key}.ckpt"
        try:
            self._make_private_dirs(path.parent)
            if not self._still_trusted(quality):
                return None
        except OSError as e:
            self._give_up(e)
            return None
        return path
