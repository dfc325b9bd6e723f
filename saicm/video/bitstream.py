"""The ``.saicmv`` file format (version 1): one clip as a quantised, entropy-coded network.

All integers are big-endian. Layout::

    magic        5 bytes  b"SAICV"
    version      u8       1
    arch         u8 length + ASCII   architecture name: "nerv" or "hnerv" (saicm 0.4.0 on)
    config       u16 length + UTF-8  the architecture's configuration, a JSON object
                                     (check_config of saicm.video.nerv / .hnerv: known keys, bounded values)
    meta         u16 length + UTF-8  informational JSON object (preset, loss); not needed to decode
    frames       u32      number of frames N (≥ 1)
    first        u32      index of the first frame in the source clip (names the decoded frames)
    width        u32      frame width in pixels (≥ 1)
    height       u32      frame height in pixels (≥ 1)
    fps          u32 numerator + u32 denominator (both ≥ 1)
    bits         u8       quantisation bits b (2..8): symbols in [−Q, Q], Q = 2^(b−1) − 1
    coder        u8       entropy coder of the symbols: 1 = adaptive categorical ANS (below)
    steps        2 bytes per quantisation group: IEEE float16 (finite, > 0), for every parameter tensor in
                          the architecture's order, its groups in order (the counts follow from the config)
    symbols      u32 length + bytes: the coded symbols of every tensor in order (a multiple of 4 bytes:
                          32-bit little-endian words of the ANS coder)
    crc32        u32      CRC-32 of every byte before it

A parameter's value is ``float32(q) · float32(step of its group)``
(:mod:`saicm.video.compress`); the decoder builds the network the config
describes, loads the values and renders N frames of width × height
(:func:`saicm.video.nerv.render`). Nothing else is needed: the tensor shapes,
group counts and symbol counts all follow from the architecture, its config
and N (:func:`saicm.video.archs.param_layout`), so they are not stored. An
``hnerv`` file's first tensor is its per-frame embeddings
(N × embed × grid), one quantisation step per frame.

**Coder 1** (adaptive categorical ANS, :mod:`saicm.video.compress`): the
symbols of each tensor, in row-major order, are coded in chunks of 16, 32, 64,
… up to 1024 symbols with constriction's ANS coder (``AnsCoder``: 32-bit
words, ``Categorical(perfect=False)`` models) and a categorical model over
[−Q, Q] whose weights are ``1 + 2·count[s]``, ``count`` being every symbol
coded before the chunk in tensors of the same kind (weights: tensors of rank
≥ 2; biases: rank 1; HNeRV's embeddings: a kind of their own). Both ends
rebuild the same integer counts, so no table is stored.

The decoder treats a file as hostile (:func:`unpack`): the CRC is checked
first; every length is bounded by the bytes present; the frame size and the
total frames × width × height pass :func:`saicm.codec.limits.check_pixels`
and :func:`saicm.codec.limits.check_video_pixels` before anything is
allocated; the config must be one :func:`saicm.video.nerv.check_config`
accepts for that frame size (bounded parameters and work per pixel); the
steps must be finite and positive; the symbol bytes must decode to exactly the
symbols the config implies and leave nothing behind. Every failure is one
line (:class:`saicm.errors.FormatError`).
"""

from __future__ import annotations

import json
import struct
import zlib
from dataclasses import dataclass, field
from fractions import Fraction

import numpy as np

from ..codec.container import ByteReader, CodedLike, check_start
from ..errors import FormatError

MAGIC = b"SAICV"
VERSION = 1
VERSIONS = (1,)
CODER_ANS = 1
CODERS = {CODER_ANS: "adaptive categorical ANS (constriction)"}
MAX_CONFIG_BYTES = 4096
MAX_META_BYTES = 4096


@dataclass
class VideoHeader:
    arch: str
    config: dict
    frames: int
    width: int
    height: int
    fps: Fraction = Fraction(25)
    first: int = 0
    bits: int = 8
    coder: int = CODER_ANS
    meta: dict = field(default_factory=dict)
    version: int = VERSION


@dataclass
class VideoStream:
    header: VideoHeader
    steps: np.ndarray  # float16, every group of every tensor in order
    symbols: bytes  # the coded symbols


def _json(obj) -> bytes:
    return json.dumps(obj, separators=(",", ":"), sort_keys=True).encode("utf-8")


def pack(stream: VideoStream) -> bytes:
    h = stream.header
    name = h.arch.encode("ascii")
    cfg, meta = _json(h.config), _json(h.meta)
    if not 1 <= len(name) <= 255 or len(cfg) > MAX_CONFIG_BYTES or len(meta) > MAX_META_BYTES:
        raise FormatError("architecture name, configuration or meta too long")
    fps = Fraction(h.fps)
    if not (1 <= h.frames < 1 << 32 and 1 <= h.width < 1 << 32 and 1 <= h.height < 1 << 32 and fps > 0
            and 0 <= h.first and h.first + h.frames <= 1 << 32 and 2 <= h.bits <= 8 and h.coder in CODERS):
        raise FormatError("cannot write these header values")
    if fps.numerator >= 1 << 32 or fps.denominator >= 1 << 32:
        fps = fps.limit_denominator(100000)
    if len(stream.symbols) % 4:
        raise FormatError("coded symbols must be whole 32-bit words")
    out = bytearray(MAGIC)
    out += struct.pack(">BB", h.version, len(name)) + name
    out += struct.pack(">H", len(cfg)) + cfg + struct.pack(">H", len(meta)) + meta
    out += struct.pack(">IIIIIIBB", h.frames, h.first, h.width, h.height, fps.numerator, fps.denominator, h.bits,
                       h.coder)
    out += np.asarray(stream.steps, dtype=">f2").tobytes()
    out += struct.pack(">I", len(stream.symbols)) + stream.symbols
    out += struct.pack(">I", zlib.crc32(out))
    return bytes(out)


def _read_json(raw: bytes, what: str) -> dict:
    try:
        obj = json.loads(raw.decode("utf-8")) if raw else {}
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise FormatError(f"corrupt header ({what} is not JSON)") from None
    if not isinstance(obj, dict):
        raise FormatError(f"corrupt header ({what} is not a JSON object)")
    return obj


#: what the clip decoder says of a .saicm image
IMAGE_GIVEN = "a .saicm image file, not a clip: decode it with 'saicm decompress' (Python: saicm.decompress)"


def is_video_stream(data: bytes) -> bool:
    return data[: len(MAGIC)] == MAGIC


def read_header(data: bytes, max_pixels: int | None = None) -> tuple[VideoHeader, ByteReader]:
    """Check magic, version and CRC, parse and check the header; returns it and a reader at the steps."""
    from ..codec.limits import check_pixels, check_video_pixels
    from . import archs

    from ..codec.container import MAGIC as IMAGE_MAGIC

    if data[: len(IMAGE_MAGIC)] == IMAGE_MAGIC:  # (it said "wrong magic", where the image decoder names the clip)
        raise FormatError(IMAGE_GIVEN)
    version = check_start(data, MAGIC, VERSIONS, "a .saicmv file", ".saicmv version")
    if zlib.crc32(data[:-4]) != struct.unpack(">I", data[-4:])[0]:
        raise FormatError("CRC mismatch: the file is corrupt or truncated")
    r = ByteReader(memoryview(data)[:-4])
    r.take(len(MAGIC) + 1)
    (n,) = r.unpack(">B")
    try:
        arch = bytes(r.take(n)).decode("ascii")
    except UnicodeDecodeError:
        raise FormatError("corrupt header (architecture name)") from None
    (n,) = r.unpack(">H")
    if n > MAX_CONFIG_BYTES:
        raise FormatError("corrupt header (configuration too long)")
    cfg_raw = bytes(r.take(n))
    (n,) = r.unpack(">H")
    if n > MAX_META_BYTES:
        raise FormatError("corrupt header (meta too long)")
    meta = _read_json(bytes(r.take(n)), "meta")
    frames, first, width, height, fnum, fden, bits, coder = r.unpack(">IIIIIIBB")
    if arch not in archs.NAMES:
        raise FormatError(f"unknown architecture {arch[:40]!r} (this saicm decodes: {', '.join(archs.NAMES)})")
    if frames == 0 or width == 0 or height == 0:
        raise FormatError("corrupt header (zero frames or zero frame size)")
    if first + frames > 1 << 32:  # the decoded frames are named by their index in the source clip, a u32
        raise FormatError("corrupt header (the frames' indexes pass 2^32)")
    if fnum == 0 or fden == 0:
        raise FormatError("corrupt header (zero frame rate)")
    if not 2 <= bits <= 8:
        raise FormatError(f"corrupt header (quantisation bits {bits}, not 2..8)")
    if coder not in CODERS:
        raise FormatError(f"unknown entropy coder {coder}")
    check_pixels(height, width, max_pixels)
    check_video_pixels(frames, height, width, max_pixels)
    config = archs.check_config(arch, _read_json(cfg_raw, "configuration"), height, width, frames)
    header = VideoHeader(arch=arch, config=config, frames=frames, width=width, height=height,
                         fps=Fraction(fnum, fden), first=first, bits=bits, coder=coder, meta=meta, version=version)
    return header, r


def unpack(data: bytes, max_pixels: int | None = None) -> VideoStream:
    """Parse and verify a ``.saicmv`` file (raises :class:`FormatError`); the symbols are not decoded yet."""
    from .archs import param_layout

    header, r = read_header(data, max_pixels)
    n_groups = sum(g for _, _, g in param_layout(header.arch, header.config, header.frames))
    steps = np.frombuffer(bytes(r.take(2 * n_groups)), dtype=">f2").astype(np.float16)
    if not (np.isfinite(steps).all() and (steps > 0).all()):
        raise FormatError("corrupt payload (quantisation steps must be finite and positive)")
    (n,) = r.unpack(">I")
    symbols = bytes(r.take(n))
    if n % 4:
        raise FormatError("corrupt payload (coded symbols are not whole 32-bit words)")
    if r.pos != len(r.data):
        raise FormatError("corrupt header (lengths do not match the payload)")
    return VideoStream(header=header, steps=steps, symbols=symbols)


def describe(data: CodedLike) -> dict:
    """Header fields and sizes of a ``.saicmv`` file (its bytes, its path or a binary file object), without
    decoding the weights, nor importing PyTorch (``saicm info``: it took seconds for a header)."""
    from ..codec.container import coded_input
    from ..errors import naming

    data, path = coded_input(data, ".saicmv file")
    with naming(path):
        return _describe(data)


def _describe(data: bytes) -> dict:
    stream = unpack(data, max_pixels=1 << 62)
    h = stream.header
    from .archs import count

    params, macs = count(h.arch, h.config, h.frames)
    return {
        "file_type": "saicmv",  # as .saicm files say theirs (saicm.codec.pipeline.describe)
        "format_version": h.version,
        "format": f".saicmv version {h.version}",
        "architecture": h.arch,
        "preset": h.meta.get("preset"),
        "loss": h.meta.get("loss"),
        "frames": h.frames,
        "first_frame": h.first,
        "width": h.width,
        "height": h.height,
        "fps": str(h.fps),
        "parameters": params,
        "macs_per_frame": macs,
        "bits": h.bits,
        "coder": CODERS[h.coder],
        "config": h.config,
        "steps_bytes": 2 * int(stream.steps.size),
        "weights_bytes": len(stream.symbols),
        "file_bytes": len(data),
        "bpp": 8.0 * len(data) / (h.width * h.height * h.frames),
    }
