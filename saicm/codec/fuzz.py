"""Structure-aware mutations of saicm files, for fuzzing the decoders.

Every file type saicm writes is covered: ``.saicm`` (one or two layers) and
``.saicmv`` (a clip's network, :mod:`saicm.video.bitstream`). A file is parsed into its fields (header values, latent shapes, entropy-coded
strings, alpha plane, the human layer of a two-layer file), one to three of
them are changed the way an attacker or a broken disk would change them,
and the file is packed again with valid CRCs, so the mutation reaches the
checks and the decoder behind the CRC. Raw byte mutations (bit flips,
truncation, insertion), with or without the CRCs fixed afterwards, cover
what the structure does not. Used by ``benchmarks/fuzz_decode.py`` (many
cases in child processes with limits) and the test suite (a few hundred).
"""

from __future__ import annotations

import random
import struct
import zlib

from ..video.bitstream import is_video_stream
from . import container

#: image sides an attacker would claim: tiny, odd, large, at the format's limits
SIDES = (1, 2, 63, 64, 65, 127, 1000, 2000, 4096, 8192, 8193, 30000, 65535)


def fix_crcs(data: bytes) -> bytes:
    """Recompute the CRC of the machine stream (where it parses) and of a trailing human layer."""
    try:
        _, end = container._parse(data)
    except Exception:  # noqa: BLE001 — an unparsable stream: fix the last four bytes as if it were alone
        return data[:-4] + struct.pack(">I", zlib.crc32(data[:-4])) if len(data) >= 4 else data
    body = data[: end - 4]
    out = body + struct.pack(">I", zlib.crc32(body))
    rest = data[end:]
    if len(rest) >= 4:
        rest = rest[:-4] + struct.pack(">I", zlib.crc32(rest[:-4]))
    return out + rest


def _rand_bytes(rng: random.Random, n: int) -> bytes:
    return bytes(rng.getrandbits(8) for _ in range(n))


def _mutate_string(rng: random.Random, s: bytes) -> bytes:
    k = rng.randrange(7)
    if k == 0:
        return _rand_bytes(rng, len(s))
    if k == 1:
        return s[: rng.randrange(len(s) + 1)]
    if k == 2:
        return s + _rand_bytes(rng, rng.choice((1, 4, 64, 4096)))
    if k == 3:
        return b""
    if k == 4:
        return b"\xff" * rng.choice((4, 8, 64, 1024))
    if k == 5:
        return b"\x00" * rng.choice((4, 8, 64, 1024))
    b = bytearray(s)
    for _ in range(rng.randint(1, 8)):
        if b:
            b[rng.randrange(len(b))] ^= 1 << rng.randrange(8)
    return bytes(b)


def _claim_size(rng: random.Random, h: container.Header, consistent: bool, multiple: int = 64) -> None:
    h.height, h.width = rng.choice(SIDES), rng.choice(SIDES)
    if consistent:  # pads and latent shapes as an encoder would write them for that size
        h.pad_bottom, h.pad_right = (-h.height) % multiple, (-h.width) % multiple
        ph, pw = h.height + h.pad_bottom, h.width + h.pad_right
        if ph <= 65535 and pw <= 65535:
            h.shapes = [(ph // 64, pw // 64)]


def mutate_stream(rng: random.Random, s: container.Stream) -> None:
    """Change one field of a parsed stream in place."""
    h = s.header
    k = rng.randrange(14)
    if k == 0:
        _claim_size(rng, h, consistent=True)
    elif k == 1:
        _claim_size(rng, h, consistent=False)
    elif k == 2:
        h.shapes = [tuple(rng.choice((0, 1, 2, 64, 1024, 65535)) for _ in range(rng.choice((0, 1, 2, 3))))
                    for _ in range(rng.choice((0, 1, 2, 3)))]
    elif k == 3:
        h.quality = rng.randrange(256)
    elif k == 4:
        h.pad_bottom, h.pad_right = rng.randrange(65536), rng.randrange(65536)
    elif k == 5:
        h.model = rng.choice(("", "x", "../../etc/passwd", "/tmp/model.safetensors", "a" * 255,
                              "mse-hyperprior-n64-v3", "saicm-regions-a048-off02-n64-v5", "ünïcødé", "a\x00b"))
    elif k == 6:
        h.weights_sha = _rand_bytes(rng, 8)
    elif k == 7 and s.strings:
        i = rng.randrange(len(s.strings))
        s.strings[i] = _mutate_string(rng, s.strings[i])
    elif k == 8:
        rng.choice((lambda: s.strings.reverse(), lambda: s.strings.append(_rand_bytes(rng, 16)),
                    lambda: s.strings.pop() if s.strings else None))()
    elif k == 9:
        s.alpha = rng.choice((_rand_bytes(rng, 32), zlib.compress(b"\0" * rng.choice((1, 10**4, 10**7))),
                              # the head of a plane one byte too long (capped: the fuzzer's own memory)
                              zlib.compress(b"\xff" * min(h.height * h.width + 1, 1 << 22))[:64], b""))
    elif k == 10:
        h.gray = not h.gray
    elif k == 12:  # the same strings read by another format's decoder
        h.version = rng.choice(container.VERSIONS)
        h.strip_rows = h.strip_rows or rng.choice((1, 2, 17))
    elif k == 13:
        h.strip_rows = rng.choice((1, 2, 3, 255, 65535)) if h.version in container.STRIPED else h.strip_rows
    else:
        h.height, h.width = rng.choice(SIDES), h.width  # one side only


def mutate_human(rng: random.Random, layer: container.HumanLayer) -> None:
    k = rng.randrange(9)
    if k == 0:
        layer.quality = rng.randrange(256)
    elif k == 7:  # the same strings read by the other human-layer decoder
        layer.version = rng.choice(container.HUMAN_VERSIONS)
    elif k == 8:
        layer.strip_rows = rng.choice((0, 1, 2, 3, 255, 65535))
    elif k == 1:
        layer.shapes = [tuple(rng.choice((0, 1, 2, 1024, 65535)) for _ in range(rng.choice((1, 2, 3))))]
    elif k == 2 and layer.strings:
        i = rng.randrange(len(layer.strings))
        layer.strings[i] = _mutate_string(rng, layer.strings[i])
    elif k == 3:
        layer.model = rng.choice(("", "../x", "mse-hyperprior-n64-v5", "a" * 255))
    elif k == 4:
        setattr(layer, rng.choice(("weights_sha", "base_sha", "machine_sha")), _rand_bytes(rng, 8))
    elif k == 5:
        layer.strings = layer.strings[::-1] + ([b"\x00" * 8] if rng.random() < 0.5 else [])
    else:
        layer.strings = [_rand_bytes(rng, rng.choice((0, 3, 8, 100))) for _ in layer.strings]


def mutate_raw(rng: random.Random, data: bytes) -> bytes:
    b = bytearray(data)
    k = rng.randrange(4)
    if k == 0 and b:
        for _ in range(rng.randint(1, 16)):
            b[rng.randrange(len(b))] ^= 1 << rng.randrange(8)
    elif k == 1:
        del b[rng.randrange(len(b) + 1):]
    elif k == 2:
        pos = rng.randrange(len(b) + 1)
        b[pos:pos] = _rand_bytes(rng, rng.choice((1, 2, 4, 17, 300)))
    else:
        for _ in range(rng.randint(1, 4)):
            if b:
                b[rng.randrange(len(b))] = rng.choice((0, 0xFF, 0x7F, 0x80))
    return bytes(b)


def _video_config_value(rng: random.Random, value):
    """A hostile replacement for one value of a NeRV configuration."""
    if isinstance(value, list):
        return rng.choice(([], [0], [1] * 40, [10**6], value + value, [-1] + value[1:], [v * 64 for v in value]))
    scaled = (value * 1000,) if isinstance(value, (int, float, str)) else ()  # (a configuration may hold None)
    return rng.choice((0, -1, 1, 2**31, 2**63, 1e308, float("nan"), "x", None, True, [1], *scaled))


def mutate_video(rng: random.Random, s) -> None:
    """Change one field of a parsed ``.saicmv`` stream in place (header, configuration, steps or symbols)."""
    import numpy as np

    h = s.header
    k = rng.randrange(9)
    if k == 0:
        h.width, h.height = rng.choice(SIDES), rng.choice(SIDES)
    elif k == 1:
        h.frames = rng.choice((1, 2, 7, 1000, 10**6, 2**32 - 1))
    elif k == 2 and h.config:
        key = rng.choice(sorted(h.config))
        h.config[key] = _video_config_value(rng, h.config[key])
    elif k == 3:
        h.config = rng.choice(({}, {"x": 1}, dict(h.config, extra=1), {k: v for k, v in list(h.config.items())[1:]}))
    elif k == 4:
        h.bits = rng.randrange(2, 9)
    elif k == 5:
        steps = np.asarray(s.steps, np.float16).copy()
        if steps.size:
            steps[rng.randrange(steps.size)] = rng.choice((0.0, -1.0, np.inf, np.nan, 65504.0, 6e-8))
        s.steps = rng.choice((steps, steps[:-1], np.concatenate([steps, steps[:3]])))
    elif k == 6:
        s.symbols = _mutate_string(rng, s.symbols)
        s.symbols = s.symbols[: len(s.symbols) // 4 * 4]  # the writer keeps whole words; raw mutations do not
    elif k == 7:
        h.arch = rng.choice(("nerv", "hnerv", "vnerv", "x" * 255, "../nerv"))
    else:
        h.fps = rng.choice((1, 10**9, 0.001, 30000 / 1001))
        h.first = rng.choice((0, 2**32 - 1))


def _mutate_video_file(data: bytes, rng: random.Random) -> tuple[bytes, str]:
    from ..video import bitstream

    stream = bitstream.unpack(data)
    for _ in range(rng.randint(1, 3)):
        mutate_video(rng, stream)
    try:
        out = bitstream.pack(stream)
    except (bitstream.FormatError, struct.error, ValueError, OverflowError, TypeError, UnicodeError):
        return mutate_raw(rng, data), "video-unpackable"
    if rng.random() < 0.1:
        return mutate_raw(rng, out), "video+raw"
    return out, "video"


def mutate(data: bytes, rng: random.Random) -> tuple[bytes, str]:
    """One fuzz case from a valid file: (mutated bytes, what was done)."""
    if rng.random() < 0.25:
        out = mutate_raw(rng, data)
        if rng.random() < 0.5:
            return fix_crcs(out), "raw+crc"
        return out, "raw"
    if is_video_stream(data):
        return _mutate_video_file(data, rng)
    machine, human = container.split_layers(data)
    stream = container.unpack(machine)
    layer = container.unpack_human(human) if human is not None else None
    what = []
    for _ in range(rng.randint(1, 3)):
        if layer is not None and rng.random() < 0.4:
            mutate_human(rng, layer)
            what.append("human")
        else:
            mutate_stream(rng, stream)
            what.append("stream")
    try:
        out = container.pack(stream)
    except (container.FormatError, struct.error, ValueError, OverflowError):
        out = machine  # a value the format cannot even hold: keep the field, fall back to a raw mutation
        what.append("unpackable")
    if layer is not None:
        try:
            out += container.pack_human(layer)
        except (container.FormatError, struct.error, ValueError, OverflowError):
            out += human
    if rng.random() < 0.1:
        out = mutate_raw(rng, out)
        what.append("raw")
    return out, "+".join(what)
