"""Reading and writing images for the codec.

Inputs of any common kind become 8-bit RGB plus a note of what they were:
EXIF orientation is applied, grayscale is coded as RGB and returned as
grayscale, 16-bit samples are scaled to 8 bits, palette images are expanded,
and a non-opaque alpha channel is kept aside (the container stores it
losslessly). Writes are atomic.
"""

from __future__ import annotations

import functools
import io
import os
import re
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Callable, Union

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from .._fs import write_atomic
from ..errors import FormatError, ImageError, ModelError, SaicmError

#: what a folder's images are recognised by (any Pillow-readable file is coded when named alone)
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".jpe", ".jfif", ".bmp", ".tif", ".tiff", ".webp", ".avif", ".ppm", ".pgm",
                  ".pbm", ".pnm", ".gif", ".tga", ".jp2", ".j2k"}

#: Pillow's names of the formats of :data:`IMAGE_SUFFIXES` (MPO: a phone's JPEG), the only ones an image is read as
#: unless its name has another format's suffix (:func:`formats_for`)
IMAGE_FORMATS = ("PNG", "JPEG", "MPO", "BMP", "TIFF", "WEBP", "AVIF", "PPM", "GIF", "TGA", "JPEG2000")

#: formats never read, whatever the name: Pillow's plugin runs another program on the file (EPS: Ghostscript, with no
#: time limit, a PostScript interpreter on a stranger's program)
NEVER_READ = ("EPS",)


def formats_for(name: str | os.PathLike | None) -> tuple[str, ...]:
    """The formats Pillow may read a file named ``name`` as (None: bytes, or a file object without a name):
    :data:`IMAGE_FORMATS`, and the format Pillow registers for the name's suffix (x.pcx, x.psd named alone; never one
    of :data:`NEVER_READ`: x.eps is refused).
    Pillow otherwise picks its plugin by the file's first bytes, whatever its name: a stranger's photo.jpg holding
    EPS went to Ghostscript, one holding PSD, McIdas or FITS data to those decoders."""
    Image.init()
    own = Image.registered_extensions().get(Path(os.fsdecode(name)).suffix.lower()) if name is not None else None
    return tuple(f for f in dict.fromkeys((*IMAGE_FORMATS, own)) if f in Image.OPEN and f not in NEVER_READ)


def _name_of(fp) -> str | os.PathLike | None:
    """The file name ``fp`` (a path or a binary file object) is read under, or None."""
    name = fp if isinstance(fp, (str, os.PathLike)) else getattr(fp, "name", None)
    return name if isinstance(name, (str, os.PathLike)) else None

#: a path, a PIL image, an (H, W[, 1|3|4]) array (uint8/uint16/integer 0-255, or float 0-1), or the bytes of an
#: image file (or a binary file object)
ImageLike = Union[str, os.PathLike, Image.Image, np.ndarray, bytes, bytearray, memoryview, IO[bytes]]


@dataclass
class RGBImage:
    """8-bit RGB pixels (H, W, 3) plus what the source was."""

    rgb: np.ndarray
    gray: bool = False
    alpha: np.ndarray | None = None  # (H, W) uint8, only when not fully opaque
    icc: bytes | None = None  # the source's ICC colour profile (not coded), when its pixels were RGB or CMYK
    icc_mode: str | None = None  # the source's mode (RGB, CMYK…) that ``icc`` describes
    gamma: float | None = None  # a PNG's gAMA (0.45455: shown at 2.2), when no ICC profile or sRGB chunk overrides it
    exif_space: str | None = None  # "Adobe RGB" when, without a profile, its EXIF marks it so (camera: DCF's R03)
    chromaticity: tuple | None = None  # a PNG's cHRM (white, red, green, blue x, y), when no profile or sRGB chunk

    @property
    def size(self) -> tuple[int, int]:
        return int(self.rgb.shape[0]), int(self.rgb.shape[1])


def is_image_file(path: Path) -> bool:
    return path.is_file() and path.suffix.lower() in IMAGE_SUFFIXES


def names_media_file(path: str | os.PathLike) -> bool:
    """Whether ``path`` ends like an image or video file: a coded file (.saicm, .saicmv) or a folder of frames so
    named is refused (``saicm compress x.jpg -o photo.png`` wrote over the photo)."""
    from ..video.io import VIDEO_SUFFIXES

    return Path(path).suffix.lower() in IMAGE_SUFFIXES | VIDEO_SUFFIXES


#: suffixes of files that are never folders (``-o out.txt`` for a folder's outputs made a folder so named)
FILE_SUFFIXES = frozenset({".saicm", ".saicmv", ".txt", ".json", ".jsonl", ".csv", ".log", ".md", ".html", ".xml",
                           ".yaml", ".yml", ".pdf", ".zip", ".tar", ".gz", ".npy", ".npz", ".pt", ".pth",
                           ".safetensors", ".onnx"})


def _named_as_a_file(path: str | os.PathLike) -> bool:
    """Whether ``path`` ends like a file, never a folder: an image, a video, a coded file or a document."""
    return names_media_file(path) or Path(path).suffix.lower() in FILE_SUFFIXES


def refuse_file_name_for_folder(path: str | os.PathLike, what: str) -> None:
    """A one-line error, before anything is written, if the output folder ``path`` (not an existing folder) is
    named as a file (:func:`_named_as_a_file`: ``-o out.txt`` made a folder so named); ``what``: what goes into it."""
    path = Path(path)
    if not path.is_dir() and _named_as_a_file(path):
        from ..errors import SaicmError

        raise SaicmError(f"names a {path.suffix} file, but {what} go to a folder: give a folder name without that "
                         "suffix (nothing written)", str(path))


def refuse_media_output(path: str | os.PathLike, what: str) -> None:
    """A one-line error, before anything is written, if the coded output ``path`` (``what``: what it holds) is
    named as an image or video file (:func:`names_media_file`)."""
    if names_media_file(path):
        from ..errors import SaicmError

        raise SaicmError(f"names an image or video file: {what} is a .saicm file (nothing written)", str(path))
    if Path(path).suffix.lower() == ".saicmv":  # (a video's, from hours of fitting: replaced by one image's file)
        from ..errors import SaicmError

        raise SaicmError(f"names a coded clip (.saicmv): {what} is a .saicm file (nothing written)", str(path))


class _Borrowed:
    """A caller's binary file object as Pillow reads it, left open: closing the image (as :func:`load_image` does)
    closed the caller's file too (Pillow's ``Image.close`` closes the file it read, given or not), so that
    ``saicm.compress(f)`` followed by ``f.seek(0)`` raised "I/O operation on closed file"."""

    def __init__(self, fp):
        self._fp = fp

    def __getattr__(self, name):
        return getattr(self._fp, name)

    def close(self) -> None:
        pass


def _open(src: ImageLike, max_pixels: int | None = None) -> tuple[Image.Image, str | None]:
    from .limits import check_pixels

    if isinstance(src, Image.Image):
        if getattr(src, "fp", 0) is None and getattr(src, "tile", None):
            # (Image.open's, closed before its pixels were read: a notebook's `with Image.open(p) as im:` left in one
            # cell and `im` coded in the next; Pillow's word was an empty AssertionError, "cannot read image
            # (AssertionError: )")
            raise ImageError("the PIL image was closed before its pixels were read: pass its path, or call its load() "
                             "inside the 'with Image.open(...)' block")
        check_pixels(src.height, src.width, max_pixels, what="the image")
        if getattr(src, "fp", None) is not None and src.tile:  # (Image.open's, its pixels not read yet)
            check_decode_work(src)
        if _wide_key(src) and getattr(src, "fp", None) is not None:  # (Image.open's, its pixels not read yet)
            low = _low_bytes(src.fp, src.tile[0])
            if low is not None:
                try:
                    src.load()
                except MemoryError:  # (too large for the memory left: the caller says so, not 'cannot read image')
                    raise
                except Exception as e:  # (a damaged file, as _pillow_open says it)
                    raise ImageError(f"cannot read image ({e.__class__.__name__}: {e})") from None
                return _with_wide_key(src, low, close=False), None  # (the caller's image: left open)
        return src, None
    if isinstance(src, np.ndarray):
        if src.ndim >= 2:
            check_pixels(int(src.shape[0]), int(src.shape[1]), max_pixels, what="the image")
        return _from_array(src), None
    if isinstance(src, io.TextIOBase):  # (open(path) without "b": a TypeError from deep inside, or a
        # UnicodeDecodeError named as the image's damage; saicm.decompress said so already)
        raise ImageError("the image was opened in text mode: open it with 'rb'")
    if isinstance(src, (bytes, bytearray, memoryview)) or hasattr(src, "read"):  # an image file's contents
        fp = io.BytesIO(bytes(src)) if not hasattr(src, "read") else _Borrowed(src)
        if isinstance(fp, io.BytesIO) and not fp.getbuffer().nbytes:
            raise ImageError("empty image bytes")
        return _pillow_open(fp, None, max_pixels), None
    if not isinstance(src, (str, os.PathLike)):
        raise ImageError(f"expected an image path, PIL image, NumPy array or image file bytes, not "
                         f"{type(src).__name__}")
    path = os.fsdecode(src)  # (a path-like's own path: str() of an os.DirEntry is "<DirEntry 'x.png'>")
    if not os.path.exists(path):
        raise ImageError("no such file", path)
    if os.path.isdir(path):
        raise ImageError("is a folder, not an image", path)
    mode = os.stat(path).st_mode
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):  # (/dev/zero: "empty file", a character device's size)
        raise ImageError("is a device, not an image", path)
    if not stat.S_ISREG(mode):  # a pipe (/dev/stdin, <(…)): read once, to a limit
        from .._fs import read_input
        from .limits import resolve_max_pixels

        limit = 8 * resolve_max_pixels(max_pixels) + (1 << 20)  # (an endless stream must not fill the memory)
        try:
            data = read_input(path, limit + 1)
        except SaicmError as e:  # (an image input's error, so that a folder's unreadable images are named together)
            raise ImageError(e.message, path) from None
        if not data:
            raise ImageError("empty input", path)
        if len(data) > limit:
            raise ImageError(f"more than {limit:,} bytes: not an image within the pixel limit", path)
        img = _pillow_open(io.BytesIO(data), path, max_pixels)
        end = image_end(data, img.format)
        # (ffmpeg -f image2pipe | saicm compress /dev/stdin: silence); a trailing newline or a camera's trailer is
        # not another image
        if end is not None and _image_signature(data[end: end + 16].lstrip(b"\r\n\t \x00")):
            from ..errors import warn

            warn(f"{path}: {len(data) - end:,} bytes follow the first image (several images on one pipe?): only "
                 "the first is coded; give one image per input, or write the images to a folder and code that")
        return img, path
    if os.path.getsize(path) == 0:
        raise ImageError("empty file", path)
    return _pillow_open(path, path, max_pixels), path


#: how the formats a pipe of images carries begin (PNG, JPEG, BMP, PNM, GIF, TIFF, WebP)
_SIGNATURES = (b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff", b"BM", b"GIF8", b"II*\x00", b"MM\x00*", b"RIFF")


def _image_signature(head: bytes) -> bool:
    """Whether ``head`` begins an image file (of the formats a pipe of images carries)."""
    return head.startswith(_SIGNATURES) or (len(head) >= 3 and head[:1] == b"P" and head[1:2] in b"1234567"
                                            and head[2:3].isspace())


def image_end(data: bytes, fmt: str | None) -> int | None:
    """Where the first image of ``data`` ends, for the formats that say it (PNG: its IEND chunk; JPEG: its EOI
    marker; BMP: its header's file size); None when the format does not say or the data is cut short."""
    n = len(data)
    if fmt == "PNG":
        pos = 8
        while pos + 8 <= n:
            length, kind = int.from_bytes(data[pos: pos + 4], "big"), data[pos + 4: pos + 8]
            pos += 12 + length
            if kind == b"IEND":
                return pos if pos <= n else None
        return None
    if fmt == "BMP" and n >= 6:
        size = int.from_bytes(data[2:6], "little")
        return size if 0 < size <= n else None
    if fmt == "JPEG":
        for marker, pos in _jpeg_markers(data):
            if marker == 0xD9:  # EOI
                return pos + 2
        return None
    return None


#: the next marker after entropy-coded data: 0xFF followed by neither a stuffed 0x00 nor a restart marker (RST0-7)
_JPEG_DATA_END = re.compile(rb"\xff[^\x00\xd0-\xd7]")

#: the next marker where one is expected: libjpeg skips any other bytes before it (0xFF 0x00 too: a warning, not an
#: error), and fill bytes (0xFF); the match is the last 0xFF and the marker byte
_JPEG_MARKER = re.compile(rb"\xff[^\x00\xff]")


def _jpeg_markers(data):
    """The markers of a JPEG's first image, as (marker byte, position of its 0xFF), from its SOI's end to its EOI
    (the last one yielded), walking segment lengths and entropy-coded data and skipping stray bytes between
    segments as libjpeg does; it stops at the data's end. ``data``: bytes or a buffer (a mapped file)."""
    n, pos = len(data), 2
    while True:
        found = _JPEG_MARKER.search(data, pos)
        if found is None:
            return
        pos = found.start()
        marker = data[pos + 1]
        yield marker, pos
        if marker == 0xD9:  # EOI
            return
        if 0xD0 <= marker <= 0xD7 or marker == 0x01:  # no length
            pos += 2
            continue
        if pos + 4 > n:
            return
        pos += 2 + int.from_bytes(data[pos + 2: pos + 4], "big")
        if marker == 0xDA:  # entropy-coded data: to the next marker that is not a stuffed 0xFF or a restart
            found = _JPEG_DATA_END.search(data, pos)
            if found is None:
                return
            pos = found.start()


def _jpeg_scans(fp) -> int:
    """The scans of the JPEG ``fp`` (a binary file object) holds in its first image, counted without reading it
    into memory where it can be helped: a file is mapped, a BytesIO's buffer read in place (a file of gigabytes
    after its image's end was read whole: libjpeg stops at the end); ``fp``'s position is kept."""
    import contextlib
    import mmap

    at = fp.tell()
    try:
        with contextlib.ExitStack() as stack:
            try:
                data = stack.enter_context(mmap.mmap(fp.fileno(), 0, access=mmap.ACCESS_READ))
            except (AttributeError, OSError, ValueError):  # (no file behind it: io.UnsupportedOperation is an OSError)
                try:
                    data = stack.enter_context(fp.getbuffer())
                except (AttributeError, BufferError):
                    fp.seek(0)
                    data = fp.read()
            return sum(marker == 0xDA for marker, _ in _jpeg_markers(data))
    finally:
        fp.seek(at)


def open_image(src: ImageLike, max_pixels: int | None = None) -> Image.Image:
    """The input as a loaded PIL image, after the checks of every image input (existence, size limit, Pillow's
    errors as one line), without any conversion."""
    return _open(src, max_pixels)[0]


def _pillow_open(fp, path: str | None, max_pixels: int | None) -> Image.Image:
    """Pillow's image from a path or a binary file object, its size checked before its pixels are read."""
    from .limits import OversizedImage, check_pixels, pillow_checks_off, resolve_max_pixels

    limit = resolve_max_pixels(max_pixels)
    try:
        with pillow_checks_off(limit):
            def check(img: Image.Image) -> None:
                try:
                    check_pixels(img.height, img.width, max_pixels, what="the image")
                except OversizedImage as e:
                    raise OversizedImage(e.said, path, e.limit) from None

            img = open_unloaded(fp, check, path)  # the header only
            check(img)
            check_decode_work(img, path)
            # (Pillow reads a 16-bit grey+alpha PNG as RGBA, its three channels equal: it was coded, and decoded, as
            # colour; only the file's raw mode, before the pixels are loaded, tells)
            grey_alpha = img.mode == "RGBA" and any(_tile_rawmode(t) in ("LA;16B", "LA;16") for t in img.tile or ())
            # (a 16-bit colour PNG's colour key (tRNS) is 16-bit, its pixels read as 8: it matched none, or others)
            low = _low_bytes(fp, img.tile[0]) if _wide_key(img) else None
            img.load()
            if grey_alpha:
                grey = img.convert("LA")  # (exact: the channels are equal)
                grey.format, grey.info = img.format, dict(img.info)
                img.close()
                img = grey
            if low is not None:
                img = _with_wide_key(img, low)
    except ImageError:
        raise
    except UnidentifiedImageError:
        # (saicm compress photo.saicm, or a model file: say what it is and which command it wants)
        said = _not_an_image(fp)
        raise ImageError(said or "cannot read image (not a format Pillow reads, or one saicm opens only under its own "
                         "suffix, such as .psd)", path) from None
    except Image.DecompressionBombError:  # Pillow's own limit, above saicm's: say saicm's, with the image's size
        size = _header_size(fp, path)
        if size is not None:
            try:
                check_pixels(size[1], size[0], max_pixels, what="the image")
            except OversizedImage as e:
                raise OversizedImage(e.said, path, e.limit) from None
        raise OversizedImage(f"the image holds more than the limit of {limit:,} pixels", path, limit) from None
    except MemoryError:  # (too large for the memory left: the caller says so, not 'cannot read image')
        raise
    except Exception as e:  # a damaged file: Pillow's plugins raise many kinds (AVIF: RuntimeError)
        raise ImageError(f"cannot read image ({e.__class__.__name__}: {e})", path) from None
    return img


#: scans a progressive JPEG may hold: encoders write about 10 (libjpeg's and mozjpeg's scripts for colour, 6 for grey;
#: jpegtran's and Photoshop's no more); libjpeg goes over the whole image for each scan, so a file of thousands of
#: near-empty scans costs thousands of passes (10,000 scans in a 346 KB 1 MP file: 7 s to read; 500 at 8192x8192: 24 s)
MAX_JPEG_SCANS = 100


def check_decode_work(img: Image.Image, path: str | None = None) -> None:
    """Refuse in one line, before its pixels are decoded, an opened image whose decode would cost far more than its
    pixels: a progressive JPEG of more than :data:`MAX_JPEG_SCANS` scans (counted from its markers), or strips or
    tiles that cover the image more than once per band (a TIFF whose 200,000 strips all point at the same rows:
    1.9 MB, 9 s to read; Pillow decodes each)."""
    w, h = img.size
    bands = max(len(img.getbands()), 4)  # (a TIFF of separate planes: one layer of strips per band)
    covered = 0
    for tile in img.tile or ():
        box = tile[1]  # (codec, extents, offset, args)
        if box is not None and len(box) == 4:
            covered += max(box[2] - box[0], 0) * max(box[3] - box[1], 0)
    if w * h and covered > bands * w * h:
        raise ImageError(f"its {len(img.tile):,} strips or tiles cover the image {covered / (w * h):,.0f} times over "
                         "(a file stores each pixel once): a decompression bomb", path)
    if img.format in ("JPEG", "MPO") and img.info.get("progressive"):
        scans = _jpeg_scans(img.fp)  # (Pillow's file: the path's, or a copy of a stream that does not seek)
        if scans > MAX_JPEG_SCANS:
            raise ImageError(f"a progressive JPEG of {scans:,} scans (encoders write about 10, at most "
                             f"{MAX_JPEG_SCANS} are read; each costs a pass over the whole image): a decompression "
                             "bomb", path)


def _header_size(fp, name: str | os.PathLike | None = None) -> tuple[int, int] | None:
    """(width, height) from an image's header alone (read as :func:`formats_for` ``name`` allows), Pillow's own size
    limit set aside for that read (only its header is read: the pixels never are), or None if the header cannot be
    read again."""
    from .limits import pillow_checks_off

    try:
        if not isinstance(fp, (str, os.PathLike)):
            fp.seek(0)
        with pillow_checks_off(1 << 62), Image.open(fp, formats=formats_for(name or _name_of(fp))) as img:
            return img.size
    except Exception:
        return None


def _wide_key(img: Image.Image) -> bool:
    """Whether ``img``, opened and not yet loaded, is a 16-bit colour PNG with a colour key (tRNS), which Pillow
    matches against the 8-bit samples it reads (:func:`_low_bytes`, :func:`_with_wide_key`)."""
    return (img.mode == "RGB" and isinstance(img.info.get("transparency"), tuple) and len(img.tile or ()) == 1
            and _tile_rawmode(img.tile[0]) == "RGB;16B")


def _low_bytes(fp, tile) -> np.ndarray | None:
    """The low bytes of a 16-bit colour PNG's samples (Pillow reads their high bytes): the file opened again and
    decoded as little-endian, whose unpacker takes the other byte of each sample; None if that fails."""
    try:
        if not isinstance(fp, (str, os.PathLike)):
            fp.seek(0)
        with Image.open(fp, formats=("PNG",)) as again:
            # (Pillow 11 on: a named tuple; Pillow 10: (codec, box, offset, rawmode))
            again.tile = [tile._replace(args="RGB;16L") if hasattr(tile, "_replace") else (*tile[:3], "RGB;16L")]
            again.load()
            return np.asarray(again)
    except Exception:
        return None


def _with_wide_key(img: Image.Image, low: np.ndarray, close: bool = True) -> Image.Image:
    """``img`` (a 16-bit colour PNG read as 8-bit RGB) as RGBA, transparent where its 16-bit samples (its high bytes
    and ``low``) equal its 16-bit colour key, rather than where its 8-bit ones equal that key's numbers; ``img`` is
    closed (``close``) or left as it is."""
    high = np.asarray(img)
    if low.shape != high.shape:
        return img
    key = np.array(img.info["transparency"][:3], np.uint16)
    alpha = np.where(((high.astype(np.uint16) << 8 | low) == key).all(axis=2), 0, 255).astype(np.uint8)
    out = Image.fromarray(np.dstack([high, alpha]), "RGBA")
    out.format, out.info = img.format, {k: v for k, v in img.info.items() if k != "transparency"}
    if close:
        img.close()
    return out


def _tile_rawmode(tile) -> object:
    """The raw mode of one of an opened image's tiles: Pillow 11 on holds them as named tuples (``.args``), Pillow 10
    as plain tuples ``(codec, box, offset, args)`` (``getattr(t, "args")`` was None there: a 16-bit grey+alpha PNG
    was still read as colour on Pillow 10, which saicm supported until its bound became 12.3)."""
    args = getattr(tile, "args", None)
    if args is None and isinstance(tile, tuple) and len(tile) > 3:
        args = tile[3]
    return args[0] if isinstance(args, tuple) and args else args


def open_unloaded(fp, check: Callable[[Image.Image], None] | None = None,
                  name: str | os.PathLike | None = None) -> Image.Image:
    """``Image.open(fp)`` (a path or a binary file object) as one of the formats its name (``name``, else the
    path's or the file object's) allows (:func:`formats_for`): the header read, the pixels not yet.

    Pillow (11 on) memory-maps an uncompressed grey, palette, RGBA or 16-bit TIFF read from a path at its size after
    its orientation tag's transpose: with a tag of 5 to 8 the pixels came out scrambled. Such a file is read from
    its bytes, which Pillow turns as the tag says; ``check`` (the caller's pixel limit) is run on its header first,
    so that an image above the limit is refused before its whole file is read into memory."""
    formats = formats_for(name or _name_of(fp))
    img = Image.open(fp, formats=formats)
    raw = _raw_preview(img)
    if raw:
        img.close()
        raise ImageError(raw, str(name or _name_of(fp) or "the image"))
    if isinstance(fp, (str, os.PathLike)) and _turned_tiff(img):
        try:
            if check is not None:
                check(img)
        finally:
            img.close()
        img = Image.open(io.BytesIO(Path(fp).read_bytes()), formats=formats)
    return img


def _raw_preview(img: Image.Image) -> str | None:
    """What to say of a camera raw that Pillow opens as a TIFF (DNG, NEF, ARW, CR2…: TIFF containers): its first
    image is a preview (a reduced-resolution subfile, tag 254; a CR2's camera JPEG), the photo itself in a raw image
    it cannot read. Coding it coded a 160x120 thumbnail, silently."""
    if img.format != "TIFF":
        return None
    try:
        dng = 50706 in img.tag_v2  # DNGVersion
        reduced = int(img.tag_v2.get(254, 0) or 0) & 1  # NewSubFileType: a reduced-resolution version of another
        at = img.fp.tell()
        img.fp.seek(0)
        cr2 = img.fp.read(11)[8:] == b"CR\x02"  # (Canon's own mark after the TIFF header)
        img.fp.seek(at)
    except Exception:  # (a damaged tag, a file object that does not seek back: Pillow's own reading decides)
        return None
    if not (dng or reduced or cr2):
        return None
    from .container import DEVELOP_RAW

    what = ("a DNG camera raw" if dng else "a Canon raw (CR2) image" if cr2 else
            "a reduced-resolution preview of another image first (a camera raw's, as in NEF or ARW files)")
    return (f"{what}: Pillow would read only its {img.width}x{img.height} "
            f"{'first image' if reduced and not (dng or cr2) else 'preview'}; {DEVELOP_RAW}")


def _turned_tiff(img: Image.Image) -> bool:
    """Whether ``img`` (opened, not loaded) is a TIFF whose orientation tag swaps its sides (5 to 8)."""
    try:
        return img.format == "TIFF" and img.tag_v2.get(0x0112) in (5, 6, 7, 8)
    except Exception:  # (a damaged tag: Pillow's own reading decides)
        return False


def _not_an_image(fp) -> str | None:
    """``"a .saicm file, not an image: decode it with 'saicm decompress'"`` for a file Pillow does not read that is
    one of saicm's own (or a model file, a JSON file, a clip), ``"a HEIF (HEIC) image: …"`` for an image kind
    Pillow has no reader for, else None."""
    from .container import CODE_IMAGE, file_kind, not_a

    try:
        if isinstance(fp, (str, os.PathLike)):
            with open(fp, "rb") as f:
                head = f.read(64)
        else:
            fp.seek(0)
            head = fp.read(64)
    except (OSError, ValueError):
        return None
    if not isinstance(head, (bytes, bytearray)):  # (a file object of the caller's own that reads text)
        return "the image was read as text: open it in binary mode ('rb')"
    kind = file_kind(head)
    if kind is None:
        return None
    if kind[0].endswith(" image"):  # (an image Pillow could not read: Pillow's word is the one, but of a kind it
        return None if kind[1] == CODE_IMAGE else f"{kind[0]}: {kind[1]}"  # has no reader for: what to do)
    return not_a("an image", head)


def _from_array(a: np.ndarray) -> Image.Image:
    if a.ndim == 2:
        a = a[:, :, None]
    if a.ndim != 3 or a.shape[2] not in (1, 3, 4):
        hint = (" (channels first? pass a.transpose(1, 2, 0))" if a.ndim == 3 and a.shape[0] in (1, 3, 4) else
                " (a batch? pass one image at a time)" if a.ndim == 4 else "")
        raise ImageError(f"array of shape {a.shape} is not an image (H, W[, 1|3|4]){hint}")
    if not a.dtype.isnative:  # (big-endian '>u2' of a FITS file or raw 16-bit PGM: uint16 all the same)
        a = a.astype(a.dtype.newbyteorder("="))
    if a.dtype == np.uint16:
        top = int(a.max(initial=0))
        if 0 < top < 4096:  # (a camera's 8-, 10- or 12-bit samples in uint16: coded as a nearly black frame)
            from ..errors import warn

            warn("a uint16 array is read as 0-65535, and this one's values stay below 4096: it reads as a nearly "
                 "black image; for 8-, 10- or 12-bit samples scale them first (a << (16 - bits)) or pass uint8")
        a = _scale_16_to_8(a)
    elif a.dtype.kind == "f":
        # floats are read in [0, 1]; small overshoots (a network's output) are clipped, 0-255 floats refused
        if a.size and not np.isfinite(a).all():
            raise ImageError("float array has NaN or infinite values")
        if a.size and (a.max() > 2.0 or a.min() < -1.0):
            raise ImageError(f"float arrays are read as 0-1, this one spans {a.min():g} to {a.max():g} "
                             "(divide 0-255 values by 255, or pass uint8)")
        a = np.clip(np.rint(a * 255.0), 0, 255)
    elif a.dtype.kind in "iub":
        if a.dtype.kind != "b" and a.dtype != np.uint8 and a.size and (a.min() < 0 or a.max() > 255):
            raise ImageError(f"integer arrays are read as 0-255 (uint16: 0-65535), this {a.dtype} one spans "
                             f"{a.min()} to {a.max()}")
        a = a.astype(np.uint8) * (255 if a.dtype.kind == "b" else 1)
    else:
        raise ImageError(f"array of dtype {a.dtype} is not an image (uint8, uint16, integer or float 0-1)")
    a = a.astype(np.uint8)
    mode = {1: "L", 3: "RGB", 4: "RGBA"}[a.shape[2]]
    return Image.fromarray(a[:, :, 0] if mode == "L" else a, mode)


def _scale_16_to_8(a: np.ndarray) -> np.ndarray:
    """Integer samples 0-65535 → uint8 0-255, rounded to nearest (v / 257; never a tie), in integers: through float64,
    as 16-bit grey images were, an 8192x8192 one took 1.8 GB to read (0.13 MB as a PNG of zeros)."""
    b = a.astype(np.uint32)
    b *= 255
    b += 32767
    b //= 65535
    return b.astype(np.uint8)


def _to_8bit_gray(img: Image.Image, path: str | None) -> np.ndarray:
    """16-bit / 32-bit / float grayscale → uint8, scaled rather than clipped; samples it would misread are refused.

    ``F`` (float) is read as 0-1, like float arrays; ``I;16*`` as 0-65535; ``I`` (32-bit) from a file as 0-65535
    when it comes from a 16-bit PGM (Pillow scales those to 0-65535) or PNG (older Pillow) or holds values above
    255, else as 0-255; ``I`` made in memory as 0-255, like integer arrays (values above 255 refused)."""
    a = np.asarray(img)
    if img.mode == "F":
        if a.size and not np.isfinite(a).all():
            raise ImageError("float image has NaN or infinite values", path)
        if a.size and (a.max() > 2.0 or a.min() < -1.0):
            raise ImageError(f"float images are read as 0-1, this one spans {a.min():g} to {a.max():g}", path)
        return np.clip(np.rint(a * 255.0), 0, 255).astype(np.uint8)
    if img.mode == "I" and a.size and (a.min() < 0 or a.max() > 65535):
        raise ImageError(f"32-bit samples are read as 0-65535, this image spans {a.min()} to {a.max()}", path)
    if img.mode == "I" and img.format is None and a.max(initial=0) > 255:
        # made in memory: no file says its scale, and reading it by its own values made 300 almost black and 255
        # white; the rule of integer arrays (0-255) holds, as for np.asarray(img)
        raise ImageError(f"a 32-bit PIL image (mode I) made in memory is read as 0-255, this one spans {a.min()} to "
                         f"{a.max()}: for 16-bit samples pass a uint16 array or an I;16 image", path)
    top = int(a.max(initial=0))
    wide = img.mode.startswith("I;16") or img.format in ("PPM", "PNG") or top > 255  # (16-bit files)
    if wide and 0 < top < 4096:  # (a 12-bit sensor's samples in a 16-bit TIFF: coded nearly black)
        from ..errors import warn

        warn(f"{path or 'the image'}: 16-bit samples are read as 0-65535, and this image's stay below 4096: it reads "
             "as a nearly black image; for 8-, 10- or 12-bit samples stored unscaled, scale them to 16 bits first")
    return _scale_16_to_8(a) if wide else a.astype(np.uint8)  # (samples 0-255: "I" within 0-255, checked above)


def read_without_limit_option(path: str | os.PathLike, command: str) -> RGBImage:
    """:func:`load_image` of one image of a set read by a command without ``--max-pixels`` (``eval``, ``train``,
    ``masks``): an image above the limit is refused saying what to do there (they said "raise it with
    --max-pixels", an option they do not have)."""
    from ..errors import warnings_naming
    from .limits import OversizedImage

    try:
        with warnings_naming(path):  # (a library's warnings name the image: the set's files are many)
            return load_image(path)
    except OversizedImage as e:
        raise ImageError(f"{e.said}: saicm {command} reads images up to {e.limit:,} "
                         "pixels (it has no --max-pixels): downscale it, or code it alone with saicm compress "
                         "--max-pixels", e.path) from None


def load_image(src: ImageLike, max_pixels: int | None = None) -> RGBImage:
    """Any image (path, PIL image or array, or an :class:`RGBImage` already loaded) → :class:`RGBImage`; larger
    than ``max_pixels`` (default :data:`saicm.codec.limits.DEFAULT_MAX_PIXELS`) is refused before its pixels are
    decoded."""
    if isinstance(src, RGBImage):
        from .limits import check_pixels

        check_pixels(*src.size, max_pixels, what="the image")
        return src
    img, path = _open(src, max_pixels)
    opened = img if not isinstance(src, Image.Image) else None  # ours to close (a multi-frame file stays open)
    try:
        return _rgb_image(img, path)
    except ImageError:
        raise
    except MemoryError:  # (too large for the memory left: the caller says so, not 'cannot read image')
        raise
    except Exception as e:  # Pillow failing on a damaged file, or on a PIL image it cannot convert (closed…)
        raise ImageError(f"cannot read image ({e.__class__.__name__}: {e})", path) from None
    finally:
        if opened is not None:
            opened.close()


#: mean shift (in 0-255 levels, over a grid of colours) of a profile's colours against sRGB's above which they are
#: told: sRGB's many variants (camera makers', GIMP's, the ICC's v2 and v4) shift by at most 0.02; Adobe RGB, Apple
#: RGB, ProPhoto, an HLG profile and two of Apple's named "Display" by 9.4, 14.5, 21.9, 35.2, 2.9 and 15.7 (measured on
#: the profiles of photos/ and coco128/, and colord's); grey profiles of gamma 1.8 and 2.2 against sRGB's grey by 12.2
#: and 1.9 (over the 256 levels)
PROFILE_SHIFT = 1.0

#: modes of grey pixels, whose ICC profile (a GRAY one) says how their levels are shown
GREY_MODES = ("L", "LA", "La", "I", "I;16", "I;16B", "I;16L", "I;16N")


def profile_note(image: RGBImage) -> str | None:
    """The name of the ICC colour profile the image's values are in, when a viewer shows them otherwise than the
    same values in sRGB (a decode is written without a profile, so its colours shift: Adobe RGB, Display P3,
    ProPhoto, any CMYK profile, a grey profile of another gamma than sRGB's), else None (no profile, an sRGB one, or
    one this cannot read)."""
    if not image.icc:
        return None
    if image.icc_mode in ("RGB", "RGBA", "RGBX", "P", "CMYK"):
        return _profile_note(image.icc, "CMYK" if image.icc_mode == "CMYK" else "RGB")
    if image.icc_mode in GREY_MODES:  # (a grey JPEG of Photoshop's, in Dot Gain 20 % or Gray Gamma 1.8)
        return _profile_note(image.icc, "GRAY")
    return None


@functools.lru_cache(maxsize=32)
def _profile_note(icc: bytes, space: str) -> str | None:
    """:func:`profile_note` of one profile of the image's colour ``space`` ("RGB", "CMYK" or "GRAY"), once per
    process: a folder's images share a few profiles, and building the colour transform cost ~2.8 ms of CPU per image
    (6 % of coding a 320x240 image). RGB: a grid of colours shown through it against the same values as sRGB; grey:
    the 256 levels against sRGB's grey (what a viewer does with the decode, a grey PNG without a profile)."""
    try:
        from PIL import ImageCms

        profile = ImageCms.ImageCmsProfile(io.BytesIO(icc))
        name = (ImageCms.getProfileDescription(profile) or "").strip() or "unnamed"
        if profile.profile.xcolor_space.strip() != space:
            return None
        if space == "CMYK":  # (Pillow's CMYK→RGB conversion ignores the profile)
            return name
        if space == "GRAY":
            values = np.arange(256, dtype=np.uint8)[None, :]
            grid, expected = Image.fromarray(values, "L"), values[..., None]
        else:
            v = np.linspace(0, 255, 6).astype(np.uint8)
            expected = np.stack(np.meshgrid(v, v, v), -1).reshape(1, -1, 3)
            grid = Image.fromarray(expected)
        # (flags: LittleCMS's cmsFLAGS_NOOPTIMIZE, ImageCms.Flags.NOOPTIMIZE from Pillow 10.3 on; the table it
        # skips took 80 % of the time for 216 colours, and shifted them by 0.006)
        shown = ImageCms.profileToProfile(grid, profile, ImageCms.createProfile("sRGB"), outputMode="RGB",
                                          renderingIntent=ImageCms.Intent.RELATIVE_COLORIMETRIC, flags=0x0100)
    except Exception:  # a damaged or unusual profile, or Pillow without LittleCMS: nothing to say
        return None
    shift = np.abs(np.asarray(shown, np.int16) - expected.astype(np.int16)).mean()
    return name if shift > PROFILE_SHIFT else None


def gamma_note(image: RGBImage) -> float | None:
    """The gamma (2.2 for sRGB's nearest) a PNG's gAMA chunk says its values are shown at, when a viewer shows them
    otherwise than the same values without the chunk (the decode: viewers take gAMA 0.45455, 1/2.2, for sRGB), else
    None. gAMA 1.0 (linear values, as renderers and scientific tools write) moves levels by 48 on average."""
    g = image.gamma
    if not isinstance(g, (int, float)) or not 0.01 < g < 100:  # (none, or a damaged chunk: nothing to say)
        return None
    levels = np.arange(256) / 255.0
    shift = 255.0 * np.abs(levels ** (1.0 / (2.2 * g)) - levels).mean()  # (shown on a 2.2 display, as sRGB is)
    return round(1.0 / g, 2) if shift > PROFILE_SHIFT else None


#: sRGB's white (D65), red, green and blue chromaticities (x, y), in the order of Pillow's ``info["chromaticity"]``
SRGB_CHROMATICITY = (0.3127, 0.3290, 0.64, 0.33, 0.30, 0.60, 0.15, 0.06)


def _rgb_to_xyz(c) -> np.ndarray:
    """The matrix taking linear RGB of primaries and white ``c`` (as :data:`SRGB_CHROMATICITY`) to XYZ."""
    xy = np.array(c[2:], np.float64).reshape(3, 2)
    m = np.stack([xy[:, 0] / xy[:, 1], np.ones(3), (1 - xy[:, 0] - xy[:, 1]) / xy[:, 1]])  # (columns: R, G, B)
    white = np.array([c[0] / c[1], 1.0, (1 - c[0] - c[1]) / c[1]])
    return m * np.linalg.solve(m, white)


def primaries_note(image: RGBImage) -> bool:
    """Whether a PNG's cHRM chunk (without a profile or sRGB chunk: viewers follow it) gives primaries that show its
    colours otherwise than sRGB's do, by more than :data:`PROFILE_SHIFT` levels (Adobe RGB's: 8.8; Display P3's:
    9.2)."""
    c = image.chromaticity
    try:
        if c is None or len(c) != 8 or not all(0 < float(v) < 1 for v in c):  # (none, or a damaged chunk)
            return False
        to_srgb = np.linalg.inv(_rgb_to_xyz(SRGB_CHROMATICITY)) @ _rgb_to_xyz(c)
        # (its white is shown as white, as a viewer's relative-colorimetric transform does)
        to_srgb = to_srgb / (to_srgb @ np.ones(3))[:, None]
    except (TypeError, ValueError, np.linalg.LinAlgError):
        return False
    v = np.linspace(0.0, 1.0, 6)
    grid = np.stack(np.meshgrid(v, v, v), -1).reshape(-1, 3)
    shown = np.clip(grid ** 2.2 @ to_srgb.T, 0.0, 1.0) ** (1 / 2.2)  # (the gamma's own shift: gamma_note)
    return bool(255.0 * np.abs(shown - grid).mean() > PROFILE_SHIFT)


def _exif_space(img: Image.Image) -> str | None:
    """"Adobe RGB" when ``img``'s EXIF marks its colours so as a camera set to Adobe RGB does without embedding a
    profile (DCF 2.0: ColorSpace 0xFFFF, uncalibrated, and interoperability index "R03"; colour-managed viewers show
    it as Adobe RGB, 9.4 levels off the same values in sRGB), else None (also for a damaged EXIF block)."""
    try:
        exif = img.getexif()
        if exif.get_ifd(0x8769).get(0xA001) != 0xFFFF:  # (Exif IFD's ColorSpace: 1 is sRGB)
            return None
        index = exif.get_ifd(0xA005).get(0x0001)  # (Interoperability IFD's InteroperabilityIndex)
    except Exception:
        return None
    if isinstance(index, bytes):
        index = index.decode("ascii", "replace")
    return "Adobe RGB" if isinstance(index, str) and index.strip("\0 ") == "R03" else None


def upright(img: Image.Image) -> Image.Image:
    """``img`` turned as its EXIF orientation says a viewer shows it (every reader of images and masks: a phone's
    picture is stored on its side); a broken EXIF block leaves it as stored rather than losing the image."""
    try:
        return ImageOps.exif_transpose(img)
    except Exception:
        return img


def oriented_size(img: Image.Image) -> tuple[int, int]:
    """(width, height) of an opened image as :func:`load_image` gives it: EXIF orientations 5–8 swap the sides."""
    try:
        turned = img.getexif().get(0x0112) in (5, 6, 7, 8)
    except Exception:  # (a broken EXIF block: load_image keeps the image as stored)
        turned = False
    if turned and img.format == "TIFF":  # (Pillow 11 on opens a TIFF at its turned size already: its stored sides)
        w, h = img.tag_v2.get(256), img.tag_v2.get(257)
        if isinstance(w, int) and isinstance(h, int):
            return h, w
    return (img.height, img.width) if turned else (img.width, img.height)


def rgb_pixels(img: Image.Image, path: str | None = None) -> np.ndarray:
    """The (H, W, 3) uint8 pixels of an opened image as :func:`load_image` reads them (EXIF orientation applied,
    16-bit and float samples scaled, palettes expanded), without the alpha channel: for the readers that take
    RGB alone (a clip's frames), so that they see what ``saicm compress`` codes."""
    return _rgb_image(img, path).rgb


def _other_pictures(img: Image.Image) -> str | None:
    """For a multi-picture JPEG (MPO), the kinds of its images after the first, when they are pictures of their own
    (a 3D camera's other eye, a panorama's or a multi-angle set's parts), else None: a phone's HDR gain map (Ultra HDR,
    "Undefined") and a camera's large previews are of the photo coded whole; of those it said "2 frames, only the
    first is coded (clips: saicm video)", for every such phone photo. Not an MPO: None."""
    if img.format != "MPO":
        return None
    try:
        kinds = [str(entry["Attribute"]["MPType"]) for entry in img.mpinfo[0xB002][1:]]
    except Exception:  # (a damaged MP index: its images are not told apart)
        return "unknown"
    kinds = [k for k in kinds if k != "Undefined" and not k.startswith("Large Thumbnail")]
    return ", ".join(sorted(set(kinds))) or None


#: frames of a TIFF counted for the warning that only one is coded: Pillow counts a TIFF's pages by reading every
#: directory, checking each against a list of those read (100,000 tiny pages, a 7.8 MB file: 60 s)
MAX_COUNTED_FRAMES = 1000


def _frames(img: Image.Image) -> tuple[int, bool]:
    """(frames, whether there are more): ``img``'s frame count, a TIFF's counted up to :data:`MAX_COUNTED_FRAMES`
    (the count of other formats is in their header, or (GIF) costs a walk of their blocks)."""
    if img.format != "TIFF" or not getattr(img, "is_animated", False):
        return getattr(img, "n_frames", 1), False
    at, frames = img.tell(), 1
    try:
        while frames < MAX_COUNTED_FRAMES:
            img.seek(frames)  # (reads the next page's directory, not its pixels)
            frames += 1
    except EOFError:
        pass
    finally:
        img.seek(at)
    return frames, frames >= MAX_COUNTED_FRAMES


def _rgb_image(img: Image.Image, path: str | None) -> RGBImage:
    frames, more = _frames(img)
    others = _other_pictures(img) if frames > 1 else None
    # (a file is read at its first frame; a caller's PIL image at the frame it was moved to with seek(), which is the
    # one coded: the warning said "only the first is coded" of a GIF at its third frame, and coded the third)
    at = img.tell() if frames > 1 else 0
    coded = "only the first is coded" if at == 0 else f"only frame {at + 1}, the one the image is at, is coded"
    if others is not None:  # a multi-picture JPEG: a 3D camera's pair, a panorama's parts (not a clip)
        from ..errors import warn as saicm_warn

        saicm_warn(f"{path or 'the image'}: a multi-picture JPEG of {frames} images (the others: {others}), {coded}")
    elif frames > 1 and img.format != "MPO":  # an animated GIF/WebP/PNG or a multi-page TIFF
        from ..errors import warn as saicm_warn

        count = f"{frames:,} frames or more" if more else f"{frames} frames"
        saicm_warn(f"{path or 'the image'}: {count}, {coded} (saicm codes still images; clips: saicm video)")
    fmt = img.format
    icc, icc_mode = img.info.get("icc_profile") or None, img.mode
    # (a PNG's gAMA says how its values are shown unless an iCCP or sRGB chunk, which override it, is there too; read
    # from the info, which a PIL image opened from a PNG keeps through convert(), not from the format, which it loses)
    gamma = img.info.get("gamma") if not icc and "srgb" not in img.info else None
    chromaticity = img.info.get("chromaticity") if not icc and "srgb" not in img.info else None
    exif_space = _exif_space(img) if not icc and img.mode in ("RGB", "RGBA", "RGBX", "P") else None
    img = upright(img)
    if img.width == 0 or img.height == 0:
        raise ImageError("image has no pixels", path)
    mode = img.mode
    alpha = None
    if mode in ("RGBa", "La"):  # premultiplied alpha: Pillow converts to straight alpha
        img = img.convert("RGBA" if mode == "RGBa" else "LA")
    elif mode in ("P", "RGB", "L", "1") and "transparency" in img.info:  # a palette's or a colour key's
        img = img.convert("RGBA" if mode in ("P", "RGB") else "LA")
    elif mode == "P":  # (an RGBA palette, as quantize() or convert("P") of an RGBA image makes: its alpha too)
        img = img.convert("RGBA" if img.palette is not None and img.palette.mode == "RGBA" else "RGB")
    mode = img.mode
    if mode in ("RGBA", "LA", "PA"):
        alpha = np.asarray(img.getchannel("A"))
        if alpha.min() == 255:
            alpha = None
    elif mode in ("I", "I;16", "I;16B", "I;16L") and isinstance(img.info.get("transparency"), int):
        # a 16-bit grey PNG's colour key (tRNS), which Pillow cannot convert to LA: transparent where it matches
        alpha = np.where(np.asarray(img) == img.info["transparency"], 0, 255).astype(np.uint8)
        if alpha.min() == 255:
            alpha = None
    gray = mode in ("1", "L", "LA", "I", "F") or mode.startswith("I;16")
    if mode in ("I", "F") or mode.startswith("I;16"):
        img.format = fmt  # (exif_transpose's copy has none; _to_8bit_gray reads it)
        g = _to_8bit_gray(img, path)
    elif gray:
        g = np.asarray(img.convert("L"))
    else:
        g = None
    if g is not None:
        rgb = np.repeat(g[:, :, None], 3, axis=2)
    else:
        rgb = np.asarray(img.convert("RGB"))
    return RGBImage(rgb=np.ascontiguousarray(rgb), gray=gray, alpha=alpha, icc=icc if isinstance(icc, bytes) else None,
                    icc_mode=icc_mode, gamma=gamma, exif_space=exif_space, chromaticity=chromaticity)


def to_pil(image: RGBImage) -> Image.Image:
    """Back to a PIL image in the source's kind (L, RGB, LA or RGBA)."""
    if image.gray:
        out = Image.fromarray(image.rgb, "RGB").convert("L")
        if image.alpha is not None:
            out = Image.merge("LA", (out, Image.fromarray(image.alpha, "L")))
        return out
    out = Image.fromarray(image.rgb, "RGB")
    if image.alpha is not None:
        out.putalpha(Image.fromarray(image.alpha, "L"))
    return out


#: what a decode is written as, by suffix (Pillow's format name); the formats of 8-bit images that keep what was
#: coded (other suffixes Pillow writes are refused: GIF cuts to 256 colours, ICO shrinks to 256 pixels a side)
OUTPUT_FORMATS = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG", ".webp": "WEBP", ".bmp": "BMP", ".tif": "TIFF",
                  ".tiff": "TIFF", ".ppm": "PPM", ".pgm": "PPM"}
#: formats without an alpha channel: a decode's alpha is dropped (a warning says so)
NO_ALPHA = ("JPEG", "PPM", "BMP")


def _is_stream(path: Path) -> bool:
    """Whether an output at ``path`` is written to in place (a device or FIFO, :func:`saicm._fs.output_target`)."""
    from .._fs import output_target

    return output_target(path)[1]


def output_format(dest: str | os.PathLike) -> str:
    """Pillow's format for an output path, from its suffix; a one-line error for any other suffix (checked
    before decoding, so that no work is lost to a typo)."""
    dest = Path(dest)
    fmt = OUTPUT_FORMATS.get(dest.suffix.lower())
    if fmt is None and not dest.suffix and _is_stream(dest):  # -o /dev/null (timing a decode), a FIFO: PNG
        return "PNG"
    if fmt is None:
        what = f"a {dest.suffix} file" if dest.suffix else "a file without a suffix"
        raise ImageError(f"cannot write {what}: name the output .png, .jpg, .webp, .bmp, .tif or .ppm", str(dest))
    return fmt


def save_image(img: Image.Image, dest: str | os.PathLike) -> None:
    """Save atomically; the format follows the suffix (:data:`OUTPUT_FORMATS`; others are refused in one line).
    JPEG, PPM and BMP (as Pillow writes and reads it) hold no alpha channel: it is dropped with a warning.

    PNG is written at zlib level 3 rather than Pillow's 6: on decoded 768×512 images about 3× faster (0.03 against
    0.10 s, a third of a one-image ``saicm decompress``) for files ~9 % larger; on photos 2.6× faster, +1 %."""
    dest = Path(dest)
    fmt = output_format(dest)
    if img.mode in ("RGBA", "LA") and fmt in NO_ALPHA:
        from ..errors import warn as saicm_warn

        saicm_warn(f"{dest}: {fmt} has no alpha channel, the image's alpha is dropped (.png, .webp and .tif keep "
                   "it)")
        img = img.convert("RGB" if img.mode == "RGBA" else "L")
    # Netpbm's suffix says the kind: .pgm grey (P5), .ppm colour (P6); Pillow writes by the image's mode, so a
    # colour decode named .pgm was a colour file and a grey one named .ppm a grey file, under the wrong names
    if dest.suffix.lower() == ".pgm" and img.mode not in ("L", "1"):
        raise ImageError("a colour image cannot be written as .pgm (grey only): name the output .ppm or .png",
                         str(dest))
    if dest.suffix.lower() == ".ppm" and img.mode in ("L", "1"):
        img = img.convert("RGB")  # (the same grey, as colour: what .ppm holds)
    options = {"compress_level": 3} if fmt == "PNG" else {}
    if _is_stream(dest):  # a device or FIFO: Pillow's writers seek, so the file is made in memory first
        import io

        buf = io.BytesIO()
        img.save(buf, format=fmt, **options)
        write_atomic(dest, lambda target: target.write_bytes(buf.getvalue()))  # (the stream itself)
        return
    write_atomic(dest, lambda tmp: img.save(tmp, format=fmt, **options))


def pad_amount(size: int, multiple: int, min_size: int = 0) -> int:
    """Rows (or columns) to add: up to the model's multiple, and up to ``min_size`` for models that need a
    smallest coded size (a model's optional ``min_size`` attribute, a multiple of ``multiple``; tcm: 256)."""
    return max((-size) % multiple, min_size - size)


def load_padded(image: ImageLike, multiple: int, max_pixels: int | None = None,
                min_size: int = 0) -> tuple[RGBImage, int, int]:
    """Load an image and the padding to the model's multiple (and at least ``min_size``): (image, bottom, right)."""
    img = load_image(image, max_pixels)
    h, w = img.size
    pb, pr = pad_amount(h, multiple, min_size), pad_amount(w, multiple, min_size)
    if h + pb > 65535 or w + pr > 65535:
        side = 65535 // multiple * multiple
        raise ModelError(f"image of {w}x{h} is too large: this model codes it padded to {w + pr}x{h + pb}, and a coded "
                         f"side is at most 65535 pixels (at most {side} before padding)")
    return img, pb, pr


def stream_image(rgb: np.ndarray, stream) -> Image.Image:
    """A decoded uint8 (H, W, 3) array, already cropped → the image a stream's header describes (grayscale,
    alpha)."""
    h = stream.header
    if rgb.shape != (h.height, h.width, 3):
        raise FormatError("decoded size does not match the header")
    alpha = None
    if stream.alpha is not None:
        from .limits import inflate

        alpha = np.frombuffer(inflate(stream.alpha, h.height * h.width), np.uint8).reshape(h.height, h.width)
    return to_pil(RGBImage(rgb=np.ascontiguousarray(rgb), gray=h.gray, alpha=alpha))
