"""The ``.saicm`` file format (versions 1, 2 and 3).

All integers are big-endian. Layout of version 1 (every image whose latent
fits one string; see version 2 below)::

    magic        5 bytes  b"SAICM"
    version      u8       1
    model id     u8 length + UTF-8 name of the model
    weights      8 bytes  first 8 bytes of SHA-256 of the model file
    quality      u8       1-based rate point
    flags        u8       bit 0: grayscale source, bit 1: alpha plane present; bits 2-7 are 0
    height       u32      image height (after EXIF orientation), ≥ 1
    width        u32      image width, ≥ 1
    pad bottom   u16      rows added to reach the model's multiple (image_io.pad_amount)
    pad right    u16      columns added
    n shapes     u8       then per shape: u8 rank + rank × u16 (one: z's, padded size / 64)
    n strings    u8       then per string: u32 length + bytes (entropy-coded)
    alpha        u32 length + zlib-compressed alpha plane (only if flag bit 1)
    crc32        u32      CRC-32 of every byte before it

The CRC covers header and payload, so any flipped or missing byte is caught
before decoding starts. The stream is self-delimiting: a parser knows where it
ends without the file size.

Version 2 (large images: the latent coded in horizontal strips, so that
encoder and decoder hold a bounded part of it at a time) is version 1 with
two changes after the latent shapes::

    strip rows   u16      latent rows per strip of y (≥ 1)
    n strings    u32      then per string: u32 length + bytes; strings are
                          [z, y strip 0, y strip 1, …] top to bottom

Writers use version 1 whenever the latent fits one string (below
:data:`saicm.codec.tiling.STRIP_SYMBOLS` symbols), so files of ordinary
images are unchanged.

Version 3 (the **portable** format, :mod:`saicm.engine`; what saicm ≥ 0.4
writes for the mean-scale hyperprior models) has version 2's layout, with
every image's y latent in strips (one strip when it is small), and other
payload strings: the hyper-latent and each y strip are coded with constriction's
ANS coder and the model file's integer CDF tables
(:mod:`saicm.entropy.tables`), and the scales that select the tables come
from the exact integer hyper-synthesis (:mod:`saicm.engine.hypernet`), so
the file decodes identically on any engine, CPU and thread count. Versions 1
and 2 (CompressAI's rANS, float hyper-synthesis) are read by the PyTorch path.

Two-layer (scalable) files
--------------------------
A scalable model writes its **machine layer** as the stream above, byte for
byte what its base model writes for the same image at the same quality, and
appends a **human layer** segment::

    magic        5 bytes  b"SAICH"
    version      u8       1 (CompressAI's coder) or 2 (the portable engine)
    model id     u8 length + UTF-8 name of the scalable model
    weights      8 bytes  first 8 bytes of SHA-256 of the scalable model's file
    base         8 bytes  first 8 bytes of SHA-256 of the base model's file
                          (equal to the machine layer's ``weights``)
    machine      8 bytes  first 8 bytes of SHA-256 of the machine-layer bytes (its CRC included)
    quality      u8       1-based human-layer rate point
    strip rows   u16      version 2 only: latent rows per y string (≥ 1)
    n shapes     u8       then per shape: u8 rank + rank × u16
    n strings    u8       then per string: u32 length + bytes (entropy-coded); version 1: [y, z],
                          version 2: [z, y strip 0, …]
    crc32        u32      CRC-32 of every byte of the segment before it; the segment ends the file

Dropping the segment (``saicm strip``) leaves the machine layer, a complete
stream that decodes alone. The segment decodes only on top of the exact
machine layer it was written with (``machine``) and with the base weights it
was trained on (``base``).
"""

from __future__ import annotations

import io
import os
import struct
import zlib
from typing import IO, Union
from dataclasses import dataclass, field

from ..errors import FormatError, SaicmError

MAGIC = b"SAICM"
VERSION = 1  # what single-string streams are written as
VERSIONS = (1, 2, 3)  # what this saicm reads
STRIPS_VERSION = 2
PORTABLE_VERSION = 3
#: versions whose header carries ``strip rows`` and a u32 string count
STRIPED = (STRIPS_VERSION, PORTABLE_VERSION)

FLAG_GRAY = 1
FLAG_ALPHA = 2


@dataclass
class Header:
    model: str
    weights_sha: bytes
    quality: int
    height: int
    width: int
    pad_bottom: int = 0
    pad_right: int = 0
    gray: bool = False
    shapes: list[tuple[int, ...]] = field(default_factory=list)
    version: int = VERSION
    strip_rows: int = 0  # versions 2 and 3: latent rows per y strip


@dataclass
class Stream:
    header: Header
    strings: list[bytes]
    alpha: bytes | None = None  # zlib-compressed (H, W) uint8 plane


def pack(stream: Stream) -> bytes:
    h = stream.header
    name = h.model.encode("utf-8")
    if len(name) > 255:
        raise FormatError("model name longer than 255 bytes")
    if len(h.weights_sha) != 8:
        raise FormatError("weights checksum must be 8 bytes")
    flags = (FLAG_GRAY if h.gray else 0) | (FLAG_ALPHA if stream.alpha is not None else 0)
    if h.version not in VERSIONS:
        raise FormatError(f"cannot write format version {h.version}")
    out = bytearray(MAGIC)
    out += struct.pack(">BB", h.version, len(name)) + name + h.weights_sha
    out += struct.pack(">BBIIHH", h.quality, flags, h.height, h.width, h.pad_bottom, h.pad_right)
    out += struct.pack(">B", len(h.shapes))
    for shape in h.shapes:
        out += struct.pack(">B", len(shape)) + struct.pack(f">{len(shape)}H", *shape)
    if h.version in STRIPED:
        out += struct.pack(">HI", h.strip_rows, len(stream.strings))
    else:
        out += struct.pack(">B", len(stream.strings))
    for s in stream.strings:
        out += struct.pack(">I", len(s)) + s
    if stream.alpha is not None:
        out += struct.pack(">I", len(stream.alpha)) + stream.alpha
    out += struct.pack(">I", zlib.crc32(out))
    return bytes(out)


class ByteReader:
    """Reads a file front to back; every read is checked against the bytes present (``truncated file``).

    Shared by every saicm format (``.saicm`` streams and layers, ``.saicmv`` clips)."""

    def __init__(self, data: bytes):
        self.data = data
        self.pos = 0

    def take(self, n: int) -> bytes:
        if n < 0 or self.pos + n > len(self.data):
            raise FormatError("truncated file")
        b = self.data[self.pos: self.pos + n]
        self.pos += n
        return b

    def unpack(self, fmt: str):
        return struct.unpack(fmt, self.take(struct.calcsize(fmt)))


#: how the files a user may give the wrong command begin → what they are
_KINDS = ((b"\x89PNG\r\n\x1a\n", "a PNG image"), (b"\xff\xd8\xff", "a JPEG image"), (b"GIF8", "a GIF image"),
          (b"II*\x00", "a TIFF image"), (b"MM\x00*", "a TIFF image"), (b"\x00\x00\x00\x0cjP  ", "a JPEG 2000 image"))
CODE_IMAGE = "code it with 'saicm compress'"
#: what to do with a camera raw
DEVELOP_RAW = "saicm reads no camera raw: develop it to PNG or JPEG first"
#: camera raws of their own headers (not TIFF's), which Pillow does not read
_RAWS = ((b"FUJIFILMCCD-RAW", "a Fujifilm raw (RAF) image"), (b"IIRO\x08\x00", "an Olympus raw (ORF) image"),
         (b"IIRS\x08\x00", "an Olympus raw (ORF) image"), (b"MMOR\x00\x00", "an Olympus raw (ORF) image"),
         (b"IIU\x00\x18\x00", "a Panasonic raw (RW2) image"))
#: what to do with a video container or stream given where an image or a coded file was wanted
CODE_CLIP = "a clip is coded with 'saicm video encode'"
#: ISO media (``ftyp``) brands of HEIF still images (an iPhone's .heic): Pillow reads none without a plugin
_HEIF_BRANDS = (b"heic", b"heix", b"heim", b"heis", b"hevc", b"hevx", b"mif1", b"msf1")
#: major brands of ISO media clips (MP4, 3GPP, cameras' own); others (M4A audio, a Canon CR3 raw photo: ``crx ``)
#: are not called clips
_CLIP_BRANDS = (b"avc1", b"mmp4", b"M4V ", b"M4VH", b"M4VP", b"dash", b"f4v ", b"MSNV", b"XAVC")


def _iso_media(head: bytes) -> tuple[str, str] | None:
    """What an ISO media file (``ftyp`` box first: MP4, QuickTime, AVIF, HEIF) is, from its brands."""
    if head[4:8] != b"ftyp":
        return None
    brands = [head[i:i + 4] for i in range(16, min(len(head), 8 + int.from_bytes(head[:4], "big")) - 3, 4)]
    major = head[8:12]
    if major in (b"avif", b"avis") or (major == b"mif1" and b"avif" in brands):
        return "an AVIF image", CODE_IMAGE
    if major in _HEIF_BRANDS:
        return "a HEIF (HEIC) image", "saicm reads no HEIF without a Pillow plugin: convert it to PNG or JPEG first"
    if major == b"crx ":
        return "a Canon raw (CR3) image", DEVELOP_RAW
    if major == b"qt  ":
        return "a QuickTime (.mov) file", CODE_CLIP
    if major.startswith((b"iso", b"mp4", b"3gp", b"3g2")) or major in _CLIP_BRANDS:
        return "an MP4 file", CODE_CLIP
    return None


def _video_stream_start(head: bytes) -> bool:
    """Whether ``head`` begins an H.264 / H.265 elementary stream (Annex B: a start code, then a parameter set,
    an access unit delimiter or SEI)."""
    for code in (b"\x00\x00\x00\x01", b"\x00\x00\x01"):
        if head.startswith(code) and len(head) > len(code):
            nal = head[len(code)]
            return not nal & 0x80 and ((nal & 0x1F) in (6, 7, 9) or (nal >> 1) & 0x3F in (32, 33, 35, 39))
    return False


def _transport_stream(head: bytes) -> bool:
    """Whether ``head`` begins an MPEG transport stream (``.ts``; ``.m2ts``: a 4-byte time stamp before each packet)
    by its first packet: the sync byte, then a table of the stream's layout (a program-specific PID below 0x20, a
    payload starting, no adaptation field, a pointer field of 0, a section with its syntax bit), as muxers begin.
    A lone 0x47 ('G') would be too weak: text starts with it."""
    for at in (0, 4):
        p = head[at:at + 7]
        if (len(p) == 7 and p[0] == 0x47 and p[1] & 0xC0 == 0x40 and (p[1] & 0x1F) << 8 | p[2] < 0x20
                and p[3] & 0x30 == 0x10 and p[4] == 0 and p[5] != 0xFF and p[6] & 0x80):
            return True
    return False


def file_kind(head: bytes) -> tuple[str, str | None] | None:
    """What a file that starts with ``head`` (its first 64 bytes or more) is, and what to do with it (or None),
    for a message about a file given to the wrong command (``saicm decompress photo.png``, ``saicm compress
    x.saicm``, ``saicm plot model.safetensors``); None when it is none of the kinds saicm recognises."""
    head = bytes(head[:64])
    for sig, what in _KINDS:
        if head.startswith(sig):
            return what, CODE_IMAGE
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "a WebP image", CODE_IMAGE
    for sig, what in _RAWS:
        if head.startswith(sig):
            return what, DEVELOP_RAW
    iso = _iso_media(head)
    if iso:
        return iso
    if head[:4] == b"RIFF" and head[8:12] == b"AVI ":
        return "an AVI file", CODE_CLIP
    if head.startswith(b"\x1a\x45\xdf\xa3"):
        return "a Matroska or WebM file", CODE_CLIP
    if head.startswith(b"YUV4MPEG2 "):
        return "a Y4M video", CODE_CLIP
    if _video_stream_start(head):
        return "an H.264 / H.265 stream", CODE_CLIP
    if _transport_stream(head):
        return "an MPEG transport stream", CODE_CLIP
    if head.startswith((b"%!PS", b"\xc5\xd0\xd3\xc6")):  # (PostScript, and the binary header of a DOS EPS)
        return "a PostScript (EPS) file", ("saicm does not read PostScript (it would run Ghostscript on it): rasterise "
                                           "it to PNG first")
    if head.startswith(MAGIC):
        return "a .saicm file", "decode it with 'saicm decompress'"
    if head.startswith(b"SAICV"):  # (saicm.video.bitstream.MAGIC, which imports this module)
        return "a .saicmv clip", "decode it with 'saicm video decode'"
    if head.startswith(HUMAN_MAGIC):
        return "a human-layer segment", "it decodes appended to its machine layer (cat MACHINE.saicm SEGMENT)"
    if len(head) > 9 and 2 <= int.from_bytes(head[:8], "little") < 1 << 27 and head[8:9] == b"{":
        return "a model file (.safetensors)", "give it with --model"
    if head.lstrip(b" \t\r\n\xef\xbb\xbf")[:1] in (b"{", b"["):
        return "a JSON file", None
    return None


def not_a(expected: str, head: bytes, advise: bool = True) -> str | None:
    """``"a PNG image, not a .saicm file: code it with 'saicm compress'"`` for a file of a kind :func:`file_kind`
    recognises given where ``expected`` was (``advise``: with what to do with it); None for any other."""
    kind = file_kind(head)
    if kind is None:
        return None
    what, todo = kind
    return f"{what}, not {expected}" + (f": {todo}" if todo and advise else "")


def check_start(data: bytes, magic: bytes, versions, what: str, version_name: str,
                truncated: str = "truncated file") -> int:
    """The first checks of every saicm format (``.saicm`` streams and layers, ``.saicmv`` clips): not empty,
    the magic, room for the version byte and a CRC, a version this saicm reads. Returns the version."""
    if not data:
        raise FormatError("empty file")
    if len(data) < len(magic) and magic.startswith(data):  # (its first bytes: a transfer that stopped there)
        raise FormatError(truncated)
    if data[: len(magic)] != magic:
        # (photo.png given to decompress: say so, and which command it wants)
        raise FormatError(not_a(what, data) or f"not {what} (wrong magic)")
    if len(data) < len(magic) + 1 + 4:
        raise FormatError(truncated)
    version = data[len(magic)]
    if version not in versions:
        raise FormatError(f"unsupported {version_name} {version} (this saicm reads versions "
                          f"{', '.join(map(str, versions))})")
    return version


def unpack(data: bytes) -> Stream:
    """Parse and verify a single ``.saicm`` stream (raises :class:`FormatError`)."""
    stream, end = read_stream(data)
    if end != len(data):
        raise FormatError("trailing bytes after payload" + (" (a human layer: decode two-layer files with "
                          "saicm.decompress)" if data[end:end + len(HUMAN_MAGIC)] == HUMAN_MAGIC else ""))
    return stream


def read_stream(data: bytes) -> tuple[Stream, int]:
    """Parse and verify the ``.saicm`` stream at the start of ``data``; returns it and where it ends.

    A stream is self-delimiting (every length is in it), so what follows it (a
    human layer) is left to the caller. A stream that cannot be parsed is
    reported as a CRC mismatch when the bytes also fail the CRC (the usual
    case: corruption or truncation), else as the inconsistency found.
    """
    if data[: len(HUMAN_MAGIC)] == HUMAN_MAGIC:
        raise FormatError(_segment_first(data))
    check_start(data, MAGIC, VERSIONS, "a .saicm file", "format version")
    try:
        stream, end = _parse(data)
    except FormatError:
        if not _crc_ok(data):
            raise FormatError("CRC mismatch: the file is corrupt or truncated") from None
        raise
    return stream, end


def _crc_ok(data: bytes) -> bool:
    return len(data) >= 4 and zlib.crc32(data[:-4]) == struct.unpack(">I", data[-4:])[0]


def _parse(data: bytes) -> tuple[Stream, int]:
    r = ByteReader(data)
    r.take(len(MAGIC))
    (version,) = r.unpack(">B")
    (n,) = r.unpack(">B")
    try:
        model = r.take(n).decode("utf-8")
    except UnicodeDecodeError:
        raise FormatError("corrupt header (model name)") from None
    sha = r.take(8)
    quality, flags, height, width, pb, pr = r.unpack(">BBIIHH")
    if flags & ~(FLAG_GRAY | FLAG_ALPHA):
        raise FormatError("corrupt header (reserved flag bits set)")
    (ns,) = r.unpack(">B")
    shapes = []
    for _ in range(ns):
        (rank,) = r.unpack(">B")
        shapes.append(tuple(r.unpack(f">{rank}H")))
    strip_rows = 0
    if version in STRIPED:
        strip_rows, nstr = r.unpack(">HI")
        if strip_rows == 0:
            raise FormatError("corrupt header (zero strip rows)")
    else:
        (nstr,) = r.unpack(">B")
    strings = []
    for _ in range(nstr):  # each string takes ≥ 4 bytes, so a huge count fails as truncation, not allocation
        (ln,) = r.unpack(">I")
        strings.append(r.take(ln))
    alpha = None
    if flags & FLAG_ALPHA:
        (ln,) = r.unpack(">I")
        alpha = r.take(ln)
    body_end = r.pos
    (crc,) = r.unpack(">I")
    if zlib.crc32(data[:body_end]) != crc:
        if _crc_ok(data):  # the whole file checks out, so the lengths inside it are what is wrong
            raise FormatError("corrupt header (lengths do not match the payload: trailing bytes after payload)")
        raise FormatError("CRC mismatch: the file is corrupt or truncated")
    if height == 0 or width == 0:
        raise FormatError("corrupt header (zero image size)")
    header = Header(model=model, weights_sha=sha, quality=quality, height=height, width=width,
                    pad_bottom=pb, pad_right=pr, gray=bool(flags & FLAG_GRAY), shapes=shapes,
                    version=version, strip_rows=strip_rows)
    return Stream(header=header, strings=strings, alpha=alpha), r.pos


# --- the human layer of a two-layer (scalable) file -------------------------------------------

HUMAN_MAGIC = b"SAICH"
#: the error for a human-layer segment given where a file is expected
HUMAN_SEGMENT_ALONE = ("a human-layer segment alone (saicm strip --human-segment): it decodes appended to its machine "
                       "layer, e.g. cat MACHINE.saicm SEGMENT > TWO.saicm")
HUMAN_VERSION = 1  #: coded by CompressAI's coder from the PyTorch model (saicm 0.3)
#: coded by the portable engine (saicm.engine.scalable): constriction ANS, integer hyper-synthesis and
#: condition network, the latent in strips (a u16 ``strip_rows`` follows the quality)
HUMAN_PORTABLE_VERSION = 2
HUMAN_VERSIONS = (HUMAN_VERSION, HUMAN_PORTABLE_VERSION)
#: a human layer's string count is a u8: version 2 holds z and at most this many y strips
HUMAN_MAX_STRIPS = 254


@dataclass
class HumanLayer:
    """What a scalable model adds to a machine-layer stream (see the module docstring)."""

    model: str
    weights_sha: bytes  # first 8 bytes of SHA-256 of the scalable model's weight file
    base_sha: bytes  # first 8 bytes of SHA-256 of the base model's weight file (= the machine header's)
    machine_sha: bytes  # first 8 bytes of SHA-256 of the machine-layer stream's bytes
    quality: int
    shapes: list[tuple[int, ...]] = field(default_factory=list)
    strings: list[bytes] = field(default_factory=list)
    version: int = HUMAN_VERSION
    strip_rows: int = 0  # version 2: latent rows per y string

    @property
    def payload_bytes(self) -> int:
        return sum(len(s) for s in self.strings)


def pack_human(layer: HumanLayer) -> bytes:
    name = layer.model.encode("utf-8")
    if len(name) > 255:
        raise FormatError("model name longer than 255 bytes")
    for sha in (layer.weights_sha, layer.base_sha, layer.machine_sha):
        if len(sha) != 8:
            raise FormatError("checksums must be 8 bytes")
    if layer.version not in HUMAN_VERSIONS:
        raise FormatError(f"unknown human-layer version {layer.version}")
    out = bytearray(HUMAN_MAGIC)
    out += struct.pack(">BB", layer.version, len(name)) + name
    out += layer.weights_sha + layer.base_sha + layer.machine_sha + struct.pack(">B", layer.quality)
    if layer.version == HUMAN_PORTABLE_VERSION:
        out += struct.pack(">H", layer.strip_rows)
    out += struct.pack(">B", len(layer.shapes))
    for shape in layer.shapes:
        out += struct.pack(">B", len(shape)) + struct.pack(f">{len(shape)}H", *shape)
    if len(layer.strings) > 255:
        raise FormatError(f"a human layer holds at most 255 strings, not {len(layer.strings)}")
    out += struct.pack(">B", len(layer.strings))
    for s in layer.strings:
        out += struct.pack(">I", len(s)) + s
    out += struct.pack(">I", zlib.crc32(out))
    return bytes(out)


def unpack_human(data: bytes) -> HumanLayer:
    """Parse and verify a human-layer segment (the bytes after a machine-layer stream)."""
    version = check_start(data, HUMAN_MAGIC, HUMAN_VERSIONS, "a saicm human layer", "human-layer version",
                          truncated="truncated human layer")
    if not _crc_ok(data):
        raise FormatError(_human_crc_error(data))
    r = ByteReader(data[:-4])
    r.take(len(HUMAN_MAGIC) + 1)
    (n,) = r.unpack(">B")
    try:
        model = r.take(n).decode("utf-8")
    except UnicodeDecodeError:
        raise FormatError("corrupt human layer (model name)") from None
    weights_sha, base_sha, machine_sha = r.take(8), r.take(8), r.take(8)
    (quality,) = r.unpack(">B")
    rows = r.unpack(">H")[0] if version == HUMAN_PORTABLE_VERSION else 0
    (ns,) = r.unpack(">B")
    shapes = []
    for _ in range(ns):
        (rank,) = r.unpack(">B")
        shapes.append(tuple(r.unpack(f">{rank}H")))
    (nstr,) = r.unpack(">B")
    strings = []
    for _ in range(nstr):
        (ln,) = r.unpack(">I")
        strings.append(r.take(ln))
    if r.pos != len(data) - 4:
        raise FormatError("corrupt human layer (trailing bytes after payload)")
    return HumanLayer(model=model, weights_sha=weights_sha, base_sha=base_sha, machine_sha=machine_sha,
                      quality=quality, shapes=shapes, strings=strings, version=version, strip_rows=rows)


def _human_end(data: bytes) -> int | None:
    """Where the human-layer segment at the start of ``data`` ends (after its CRC), read from its own lengths, or
    None if they do not fit in ``data``."""
    try:
        r = ByteReader(data)
        version = r.take(len(HUMAN_MAGIC) + 1)[-1]
        (n,) = r.unpack(">B")
        r.take(n + 3 * 8 + 1 + (2 if version == HUMAN_PORTABLE_VERSION else 0))
        for _ in range(r.unpack(">B")[0]):
            r.unpack(f">{r.unpack('>B')[0]}H")
        for _ in range(r.unpack(">B")[0]):
            r.take(r.unpack(">I")[0])
        r.take(4)
        return r.pos
    except FormatError:
        return None


def _segment_first(data: bytes) -> str:
    """What is wrong with coded bytes that start with a human-layer segment: the segment alone, or the segment
    joined before its machine layer (``saicm info`` and ``decompress``/``strip`` said two different things)."""
    end = _human_end(data)
    if end is not None and data[end:].startswith(MAGIC) and _crc_ok(data[:end]):
        return _JOINED_BEFORE
    return HUMAN_SEGMENT_ALONE


_JOINED_BEFORE = ("a human-layer segment followed by a .saicm stream (joined in the wrong order): the segment "
                  "goes after its machine layer, cat MACHINE.saicm SEGMENT > TWO.saicm")


def _human_crc_error(data: bytes) -> str:
    """What is wrong with a human-layer segment that fails its CRC: a whole segment followed by another one (a
    segment appended twice, or to a two-layer file) or by a machine layer (joined in the wrong order), else
    damage or truncation."""
    end = _human_end(data)
    if end is not None and end < len(data) and _crc_ok(data[:end]):
        rest = data[end:]
        if rest.startswith(HUMAN_MAGIC):
            return ("two human layers follow the machine layer (a segment appended twice, or appended to a "
                    "two-layer file): a file holds one; the machine layer alone decodes with --layer machine "
                    "(Python: layer='machine')")
        if rest.startswith(MAGIC):
            return _JOINED_BEFORE
        return "human layer: trailing bytes after its CRC (a file holds the machine layer, then one human layer)"
    return "human layer: CRC mismatch (corrupt or truncated)"


#: a coded file as the API takes it: its bytes, its path, or a binary file object
CodedLike = Union[bytes, bytearray, memoryview, str, os.PathLike, IO[bytes]]


def coded_input(data: CodedLike, what: str = ".saicm file") -> tuple[bytes, str | None]:
    """(bytes, path) of what the API was given as a coded file (``what``): its bytes, the path of a file to read,
    or a binary file object (read to its end, as ``saicm.compress`` reads an image's). What cannot be read is a
    :class:`FormatError` (the coded input's error, as ``saicm.compress``'s image's is an ``ImageError``)."""
    if isinstance(data, (bytes, bytearray, memoryview)):
        return bytes(data), None
    if isinstance(data, (str, os.PathLike)):
        import stat

        from .._fs import read_input

        data = os.fsdecode(data)  # (a path-like's own path: str() of an os.DirEntry is "<DirEntry 'x.saicm'>")
        try:
            if stat.S_ISCHR(os.stat(data).st_mode):  # /dev/zero was read until memory ran out
                raise FormatError(f"is a device, not a {what}", str(data))
        except (OSError, ValueError):  # (ValueError: a NUL in the name)
            pass  # (read_input says what is wrong with it)
        try:
            return read_input(data), str(data)
        except SaicmError as e:  # (missing, a folder, unreadable: the coded input's error, as saicm.compress's
            # image is an ImageError; it was a plain SaicmError, which `except FormatError` let through)
            raise FormatError(e.message, e.path) from None
    if isinstance(data, io.TextIOBase):
        raise FormatError(f"the {what} was opened in text mode: open it with 'rb'")
    if hasattr(data, "read"):
        try:
            got = data.read()
        except OSError as e:  # (the caller's stream failing: the coded input's error, as saicm.compress's is an
            # ImageError)
            raise FormatError(f"cannot read the {what} ({e.strerror or e})") from None
        if isinstance(got, (bytes, bytearray)) and not got and _position(data):  # (a BytesIO just written to: "empty" said nothing of where it was read)
            raise FormatError(f"the file object given as the {what} is at its end (byte {_position(data):,}): it is "
                              "read from where it is, so seek(0) first (an image for saicm.compress is read from "
                              "byte 0, as Pillow reads it)")
        if isinstance(got, (bytes, bytearray)):
            return bytes(got), getattr(data, "name", None) if isinstance(getattr(data, "name", None), str) else None
        raise FormatError(f"the {what} was opened in text mode: open it with 'rb'")
    raise FormatError(f"expected the bytes of a {what}, its path or a binary file object, not {type(data).__name__}")


def _position(f) -> int:
    """Where a caller's file object is (0 when it cannot say)."""
    try:
        at = f.tell() if getattr(f, "seekable", lambda: False)() else 0
    except (OSError, ValueError):
        return 0
    return at if isinstance(at, int) else 0


#: what the image decoder says of a NeRV clip
CLIP_GIVEN = "a NeRV clip (.saicmv): decode it with 'saicm video decode' (Python: saicm.video.decode)"


def check_coded_file(path: str | os.PathLike) -> None:
    """A one-line error naming ``path`` unless it starts like a ``.saicm`` file: the first thing to say of
    ``saicm decompress photo.png`` (or of a ``.saicmv`` clip, which has its own decoder)."""
    from .._fs import read_input
    from ..video.bitstream import is_video_stream

    head = read_input(path, limit=64)
    if not head:
        raise FormatError("empty file", str(path))
    if is_video_stream(head):
        raise FormatError(CLIP_GIVEN, str(path))
    if head.startswith(HUMAN_MAGIC):  # (all of it: what follows the segment says which mistake it is)
        raise FormatError(_segment_first(read_input(path)), str(path))
    if not head.startswith(MAGIC):
        raise FormatError(not_a("a .saicm file", head) or "not a .saicm file (wrong magic)", str(path))


def newer_human_layer(segment: bytes) -> int | None:
    """The version of a human-layer segment written by a newer saicm (a version above those this one reads), or
    None. Such a segment is not interpreted: its file's machine layer still decodes, strips and is described."""
    n = len(HUMAN_MAGIC)
    if segment[:n] == HUMAN_MAGIC and len(segment) > n and segment[n] > max(HUMAN_VERSIONS):
        return segment[n]
    return None


def split_layers(data: bytes) -> tuple[bytes, bytes | None]:
    """A file's machine-layer stream (verified) and its human-layer segment, if any (not yet verified)."""
    _, end = read_stream(data)
    rest = data[end:]
    if not rest:
        return data, None
    if rest[: len(HUMAN_MAGIC)] != HUMAN_MAGIC and not HUMAN_MAGIC.startswith(rest):  # (a segment cut short in its
        # magic is one, truncated: unpack_human says so, and the machine layer still decodes)
        raise FormatError("trailing bytes after payload (not a human layer)")
    return data[:end], rest
