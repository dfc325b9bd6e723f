"""The ``.saicm`` file format (version 1).

All integers are big-endian. Layout::

    magic        5 bytes  b"SAICM"
    version      u8       1
    model id     u8 length + UTF-8 name of the model
    weights      8 bytes  first 8 bytes of SHA-256 of the model file
    quality      u8       1-based rate point
    flags        u8       bit 0: grayscale source, bit 1: alpha plane present
    height       u32      image height (after EXIF orientation)
    width        u32      image width
    pad bottom   u16      rows added to reach the model's multiple
    pad right    u16      columns added
    n shapes     u8       then per shape: u8 rank + rank × u16 (latent shapes)
    n strings    u8       then per string: u32 length + bytes (entropy-coded)
    alpha        u32 length + zlib-compressed alpha plane (only if flag bit 1)
    crc32        u32      CRC-32 of every byte before it

The CRC covers header and payload, so any flipped or missing byte is caught
before decoding starts.
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass, field

from ..errors import FormatError

MAGIC = b"SAICM"
VERSION = 1

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


@dataclass
class Stream:
    header: Header
    strings: list[bytes]
    alpha: bytes | None = None  # zlib-compressed (H, W) uint8 plane

    @property
    def payload_bytes(self) -> int:
        return sum(len(s) for s in self.strings)


def pack(stream: Stream) -> bytes:
    h = stream.header
    name = h.model.encode("utf-8")
    if len(name) > 255:
        raise FormatError("model name longer than 255 bytes")
    if len(h.weights_sha) != 8:
        raise FormatError("weights checksum must be 8 bytes")
    flags = (FLAG_GRAY if h.gray else 0) | (FLAG_ALPHA if stream.alpha is not None else 0)
    out = bytearray(MAGIC)
    out += struct.pack(">BB", VERSION, len(name)) + name + h.weights_sha
    out += struct.pack(">BBIIHH", h.quality, flags, h.height, h.width, h.pad_bottom, h.pad_right)
    out += struct.pack(">B", len(h.shapes))
    for shape in h.shapes:
        out += struct.pack(">B", len(shape)) + struct.pack(f">{len(shape)}H", *shape)
    out += struct.pack(">B", len(stream.strings))
    for s in stream.strings:
        out += struct.pack(">I", len(s)) + s
    if stream.alpha is not None:
        out += struct.pack(">I", len(stream.alpha)) + stream.alpha
    out += struct.pack(">I", zlib.crc32(out))
    return bytes(out)


class _Reader:
    def __init__(self, data: bytes):
        self.data = data
        self.pos = 0

    def take(self, n: int) -> bytes:
        if self.pos + n > len(self.data):
            raise FormatError("truncated file")
        b = self.data[self.pos: self.pos + n]
        self.pos += n
        return b

    def unpack(self, fmt: str):
        return struct.unpack(fmt, self.take(struct.calcsize(fmt)))


def unpack(data: bytes) -> Stream:
    """Parse and verify a ``.saicm`` byte string (raises :class:`FormatError`)."""
    if len(data) < len(MAGIC) or data[: len(MAGIC)] != MAGIC:
        raise FormatError("not a .saicm file (wrong magic)")
    if len(data) < len(MAGIC) + 1 + 4:
        raise FormatError("truncated file")
    version = data[len(MAGIC)]
    if version != VERSION:
        raise FormatError(f"unsupported format version {version} (this saicm reads version {VERSION})")
    body, (crc,) = data[:-4], struct.unpack(">I", data[-4:])
    if zlib.crc32(body) != crc:
        raise FormatError("CRC mismatch: the file is corrupt or truncated")
    r = _Reader(body)
    r.take(len(MAGIC) + 1)
    (n,) = r.unpack(">B")
    try:
        model = r.take(n).decode("utf-8")
    except UnicodeDecodeError:
        raise FormatError("corrupt header (model name)") from None
    sha = r.take(8)
    quality, flags, height, width, pb, pr = r.unpack(">BBIIHH")
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
    alpha = None
    if flags & FLAG_ALPHA:
        (ln,) = r.unpack(">I")
        alpha = r.take(ln)
    if r.pos != len(body):
        raise FormatError("trailing bytes after payload")
    if height == 0 or width == 0:
        raise FormatError("corrupt header (zero image size)")
    header = Header(model=model, weights_sha=sha, quality=quality, height=height, width=width,
                    pad_bottom=pb, pad_right=pr, gray=bool(flags & FLAG_GRAY), shapes=shapes)
    return Stream(header=header, strings=strings, alpha=alpha)
