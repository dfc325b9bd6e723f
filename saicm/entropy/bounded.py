"""CompressAI's rANS coder, made safe for strings from strangers (and for any input on the encoder side).

CompressAI's C++ decoder (``RansDecoder.decode_with_indexes``) trusts its input:
it reads 32-bit words from the string with no bounds check, so a crafted string
makes it read past the end of the buffer (a segmentation fault, or garbage).
Rather than change the bitstream, every string is handed to it **followed by
enough padding words that no read can leave the buffer**, for any content of
the string. The bound, read off the decoder's source (compressai 1.2.8,
``cpp_exts/rans/rans_interface.cpp`` and ``rans64.h``: a 64-bit state
renormalised with 32-bit words, ``RANS64_L`` = 2³¹, 16-bit precision,
4-bit bypass chunks), for a string of D words decoding n symbols with E ≤ n
escapes (the table's last symbol, followed by bypass chunks):

- every primitive reads at most one word: initialisation 2, each symbol's
  ``Rans64DecAdvance`` ≤ 1, each 4-bit ``Rans64DecGetBits`` ≤ 1; the string's
  own words are read at most once, so at most D reads stay inside it;
- an escape reads a count, nibble after nibble while they equal 15 (``n_bypass``
  is their sum, ≤ 15 per iteration), then ``n_bypass`` value nibbles;
- the padding words are ``0x10000000``: they hold no nibble 15, and a refill
  with one leaves the state ≥ 2²⁸ (≥ 2⁵⁶ after at most two), so beyond the
  string at most one read happens per 6 nibble reads, plus 2 per escape;
- nibbles of 15 come from the string (≤ 8 per word: 8·D in all) or from the
  ≤ 64 bits a state holds when an escape starts (≤ 16, plus the final
  iteration: ≤ 17 per escape), so the counts total ≤ 8·D + 17·E iterations and
  the values ≤ 15·(8·D + 17·E) nibbles.

Reads beyond the string are therefore at most
``n + 2·E + (8·D + 17·E)·16/6 ≤ 48.4·n + 21.4·D``; :func:`padded` appends
50·n + 22·D + 64 words. Reads are confined to memory the decoder owns,
whatever the bytes: the worst a crafted string does is decode to garbage
symbols, which the rest of the pipeline treats as data (a bounded number of
bounded pixel values). The bitstream is unchanged; the cost is a transient
buffer of ~200 bytes per coded symbol (~40 MB for the y latent of a 768×512
image; large images code their latent in strips, so it stays bounded).

The padding grows with the symbols of one string, so it is used up to
:data:`PAD_MAX_SYMBOLS` (files written by this saicm never exceed it: large
images are coded in strips). A longer string (a large image written by
saicm ≤ 0.2, or a crafted file) is decoded without padding in a forked child
process instead (:func:`isolated_decode`): if the decoder reads past the
string and dies, the parent reports a corrupt file; a time limit stops it.

**Consistency.** A string decodes back to itself only with the tables it was written with: rANS ends a
correct decode in the encoder's initial state with every word read, and a decode with another table desynchronises
from its first disagreement on, into garbage symbols without an error. Versions 1 and 2 of ``.saicm`` take their
tables from float networks, which another CPU can round into another table index (measured: a v5 file of an AVX2
CPU decoded under an SSE4.2 one at 18.65 dB instead of 28.73 dB). So every decode is checked: its symbols,
coded again with the tables it used, must give the string byte for byte (:data:`TABLES_DISAGREE` otherwise). The
check costs one encode of the symbols (the entropy coder's share of an encode).

The encoder writes into a buffer of one word per symbol (``output(symbols.size())``)
and never checks it either; :class:`BoundedCoder` refuses, with a clear error, the
(pathological) symbol sets whose worst-case output would not fit.
"""

from __future__ import annotations

import numpy as np

#: words the decoder may read beyond the string, per symbol and per word of the string (module docstring)
WORDS_PER_SYMBOL = 50
WORDS_PER_STRING_WORD = 22
SLACK_WORDS = 64
#: strings decoding more symbols than this are decoded in a child process rather than padded (~400 MB of padding);
#: saicm.codec.tiling.STRIP_SYMBOLS keeps every string this saicm writes at or below it
PAD_MAX_SYMBOLS = 1 << 21
#: seconds the isolated decoder may take: a base plus a generous rate (it decodes ~10-20 M symbols/s)
ISOLATED_SECONDS, ISOLATED_SECONDS_PER_SYMBOL = 30.0, 1e-6
#: the padding word (little-endian, as the decoder reads it): no nibble 15, keeps a refilled state large
PAD_WORD = (0x10000000).to_bytes(4, "little")


def coder_tables(gc) -> tuple[list, list[int], list[int]]:
    """A CompressAI ``GaussianConditional``'s tables as its rANS coder takes them: (CDFs, their lengths, offsets);
    ValueError where ``update()`` has not filled them yet (the models' one rule)."""
    if gc.quantized_cdf.numel() == 0:
        raise ValueError("the coder tables are empty: call update() first")
    return gc.quantized_cdf.tolist(), gc.cdf_length.reshape(-1).int().tolist(), gc.offset.reshape(-1).int().tolist()


def padded(string: bytes, n_symbols: int) -> bytes:
    """``string`` followed by the padding that keeps every read of an ``n_symbols`` decode inside the buffer."""
    words = (len(string) + 3) // 4
    align = b"\0" * (4 * words - len(string))  # the decoder reads whole words
    return string + align + PAD_WORD * (WORDS_PER_STRING_WORD * words + WORDS_PER_SYMBOL * int(n_symbols)
                                        + SLACK_WORDS)


def _encoder_fits(symbols, indexes, cdf_sizes, offsets) -> bool:
    """Whether CompressAI's encoder output (one word per symbol) can hold these symbols in the worst case."""
    s = np.asarray(symbols, dtype=np.int64)
    idx = np.asarray(indexes, dtype=np.int64)
    if s.size == 0:
        return True
    max_value = np.asarray(cdf_sizes, dtype=np.int64)[idx] - 2
    value = s - np.asarray(offsets, dtype=np.int64)[idx]
    esc = (value < 0) | (value >= max_value)
    raw = np.where(value < 0, -2 * value - 1, 2 * (value - max_value))[esc]
    if raw.size and int(raw.max()) >= 1 << 28:  # the encoder counts a raw value's nibbles with 32-bit shifts: from
        return False  # 2**28 on, a shift by 32 (x86 takes it mod 32) never reaches zero, and it looped for good
    nib = np.zeros(raw.shape, np.int64)
    for k in range(16):  # value nibbles: 4-bit chunks of the (≤ 63-bit) raw value
        nib += (raw >> (4 * k)) > 0
    bits = 16 * s.size + 4 * int((1 + nib + nib // 15).sum()) + 64  # symbols, escape chunks, flush
    return bits <= 32 * (s.size - 1)


#: what the encoder says of symbols its buffer could not hold (:func:`_encoder_fits`)
TOO_MANY_ESCAPES = "cannot code this image: too many latent values outside the entropy model's range"


def check_encodable(symbols, indexes, cdf_sizes, offsets) -> None:
    """:data:`TOO_MANY_ESCAPES` (a ModelError) unless CompressAI's encoder can hold these symbols: every writer
    checks before it codes."""
    from ..errors import ModelError

    if not _encoder_fits(symbols, indexes, cdf_sizes, offsets):
        raise ModelError(TOO_MANY_ESCAPES)


def encode_stream(symbols, indexes, cdfs, cdf_sizes, offsets) -> bytes:
    """One string of ``symbols`` from CompressAI's buffered rANS encoder, checked first (:func:`check_encodable`):
    what the channel-wise and context models write, and :func:`stream_decoder` reads."""
    from ..models import _compressai  # noqa: F401  (CompressAI's import-time warning silenced)
    from compressai.ans import BufferedRansEncoder

    check_encodable(symbols, indexes, cdf_sizes, offsets)
    encoder = BufferedRansEncoder()
    encoder.encode_with_indexes(symbols, indexes, cdfs, cdf_sizes, offsets)
    return encoder.flush()


#: a string that does not decode back to itself (module docstring, "Consistency")
TABLES_DISAGREE = ("the coded data does not decode consistently with the coder tables computed here: the file was "
                   "written where floating-point arithmetic chose other tables (another CPU, or another PyTorch or "
                   "oneDNN build; formats 1 and 2 are not portable, format 3, the portable engine's, is), or it is "
                   "damaged")


def _check_recodes(encode, string: bytes, values, indexes, cdf_sizes, offsets) -> None:
    """:data:`TABLES_DISAGREE` unless ``encode()`` (the decoded ``values`` coded again with the decode's tables)
    gives ``string``; values the encoder's buffer could not hold disagree as well (the writer refused them)."""
    from ..errors import FormatError

    if not _encoder_fits(values, indexes, cdf_sizes, offsets) or bytes(encode()) != bytes(string):
        raise FormatError(TABLES_DISAGREE)


class BoundedCoder:
    """Stands in for CompressAI's coder proxy on an entropy model: the same bitstream, bounded reads and writes."""

    def __init__(self, inner):
        self.inner = inner
        self.name = getattr(inner, "name", "ans")

    def encode_with_indexes(self, symbols, indexes, cdfs, cdf_sizes, offsets):
        check_encodable(symbols, indexes, cdf_sizes, offsets)
        return self.inner.encode_with_indexes(symbols, indexes, cdfs, cdf_sizes, offsets)

    def decode_with_indexes(self, string, indexes, cdfs, cdf_sizes, offsets):
        if any(i < 0 or i >= len(cdfs) for i in (min(indexes, default=0), max(indexes, default=0))):
            raise ValueError("coder table index out of range")
        if len(indexes) > PAD_MAX_SYMBOLS:
            values = isolated_decode(self.inner, bytes(string), indexes, cdfs, cdf_sizes, offsets)
        else:
            values = self.inner.decode_with_indexes(padded(bytes(string), len(indexes)), indexes, cdfs, cdf_sizes,
                                                    offsets)
        listed = values.tolist() if isinstance(values, np.ndarray) else values
        _check_recodes(lambda: self.inner.encode_with_indexes(listed, indexes, cdfs, cdf_sizes, offsets), string,
                       listed, indexes, cdf_sizes, offsets)
        return values


def install(model) -> None:
    """Give every CompressAI entropy model inside ``model`` a :class:`BoundedCoder` (idempotent).

    Deep copies and unpickled models come back with CompressAI's own proxy
    (``EntropyModel.__setstate__``), so decoders call this again before decoding.
    """
    from ..models import _compressai  # noqa: F401  (CompressAI's import-time warning silenced)
    from compressai.entropy_models import EntropyModel

    for m in model.modules():
        if isinstance(m, EntropyModel) and not isinstance(m.entropy_coder, BoundedCoder):
            m.entropy_coder = BoundedCoder(m.entropy_coder)


def stream_decoder(string: bytes, n_symbols: int) -> "StreamDecoder":
    """A decoder of ``string`` for CompressAI's stateful API (``decode_stream``, one call per slice of a
    channel-wise model), with the padding for ``n_symbols`` symbols in all: the bound above holds for any split
    of the n symbols into calls, since it counts primitives, not calls. Use it as a context manager
    (``with stream_decoder(...) as d:``): leaving the block without an error runs ``finish()``, the consistency
    check, after the last slice."""
    return StreamDecoder(string, n_symbols)


class StreamDecoder:
    """CompressAI's ``RansDecoder`` on a padded string; ``finish()`` codes every slice's symbols again with its
    tables (CompressAI's ``BufferedRansEncoder``, as the writers do) and refuses a string they do not give."""

    def __init__(self, string: bytes, n_symbols: int):
        from ..models import _compressai  # noqa: F401
        from compressai.ans import RansDecoder

        self.string = bytes(string)
        self._decoder = RansDecoder()
        self._decoder.set_stream(padded(self.string, n_symbols))
        self._calls: list[tuple] = []

    def __enter__(self) -> "StreamDecoder":
        return self

    def __exit__(self, kind, error, trace) -> None:
        if kind is None:  # (an error inside the block is the one to report)
            self.finish()

    def decode_stream(self, indexes, cdfs, cdf_sizes, offsets):
        values = self._decoder.decode_stream(indexes, cdfs, cdf_sizes, offsets)
        self._calls.append((values, indexes, cdfs, cdf_sizes, offsets))
        return values

    def finish(self) -> None:
        from compressai.ans import BufferedRansEncoder

        if any(any(a is not b for a, b in zip(c[2:], self._calls[0][2:])) for c in self._calls):
            raise ValueError("one table set per stream")  # (every channel-wise model here has one)

        values = [v for c in self._calls for v in c[0]]
        indexes = [i for c in self._calls for i in c[1]]
        cdfs, sizes, offsets = self._calls[0][2:] if self._calls else ([], [], [])

        def encode():  # (one call with every slice, as the writers code them)
            encoder = BufferedRansEncoder()
            encoder.encode_with_indexes(values, indexes, cdfs, sizes, offsets)
            return encoder.flush()

        _check_recodes(encode, self.string, values, indexes, sizes, offsets)


def isolated_decode(inner, string: bytes, indexes, cdfs, cdf_sizes, offsets):
    """``inner.decode_with_indexes`` run in a forked child: a read past the string kills the child, not us.

    The child runs only the C++ decoder (no PyTorch: its thread pool does not survive a fork) and sends the
    symbols back through a pipe as int32; returns them as a NumPy array."""
    import os
    import select
    import signal
    import time
    from array import array

    from ..errors import FormatError, ModelError

    if not hasattr(os, "fork"):
        raise ModelError("this file's latent is too large for one string (a large image written by saicm <= 0.2, "
                         "or a crafted file); decoding it safely needs a system with fork()")
    n = len(indexes)
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: decode, send, exit without running any Python cleanup
        try:
            os.close(r)
            values = inner.decode_with_indexes(string, indexes, cdfs, cdf_sizes, offsets)
            view = memoryview(array("i", values).tobytes())
            while view:
                view = view[os.write(w, view):]
            os._exit(0)
        except BaseException:  # noqa: BLE001
            os._exit(2)
    os.close(w)
    chunks, got = [], 0
    deadline = time.monotonic() + ISOLATED_SECONDS + ISOLATED_SECONDS_PER_SYMBOL * n
    try:
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
                raise FormatError("entropy decoding did not finish in time (corrupt or crafted file)")
            ready, _, _ = select.select([r], [], [], min(left, 1.0))
            if ready:
                chunk = os.read(r, 1 << 20)
                if not chunk:
                    break
                chunks.append(chunk)
                got += len(chunk)
                if got > 4 * n:
                    os.kill(pid, signal.SIGKILL)
                    break
    finally:
        os.close(r)
    _, status = os.waitpid(pid, 0)
    if not (os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0) or got != 4 * n:
        raise FormatError("corrupt entropy-coded data (the decoder failed on it)")
    return np.frombuffer(b"".join(chunks), dtype=np.int32)
