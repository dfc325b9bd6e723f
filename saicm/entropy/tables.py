"""Entropy coding with fixed integer CDF tables on constriction's ANS coder (no PyTorch, no CompressAI).

The portable format (``.saicm`` version 3) codes the latents with the tables a
model file already stores (CompressAI's layout: one 16-bit CDF per table, its
length and the offset of its first symbol), so they are the same integers at
both ends. The coder is constriction's ``AnsCoder`` (Rust; bounds-checked: a
crafted string decodes to symbols of the alphabet or fails, it never reads
outside its buffer), pinned because its model quantisation is part of the
format.

A table of length L codes the values 0 … L−3 directly (the symbol minus the
table's offset); L−2 is the escape: the value is then written after the ANS
words as a LEB128 number, with CompressAI's mapping of out-of-range values
(v < 0 → −2v−1, v ≥ L−2 → 2(v−(L−2))). One string is::

    n words      LEB128   number of 32-bit ANS words
    words        n × u32  little-endian, constriction's compressed stack
    escapes      LEB128 × (number of escape symbols), in raster order

The symbols are coded table by table (ascending table index, raster order
within a table), so each table's model is built once per string; the decoder
knows the table of every symbol before decoding (from the hyper-latent), so it
reproduces the order.
"""

from __future__ import annotations

import contextlib
from typing import Iterator

import numpy as np

from ..errors import FormatError, ModelError

PRECISION = 16  # CompressAI's CDF tables sum to 2**16
ESCAPE_LIMIT = 1 << 24  #: largest escaped magnitude a file may carry (far beyond any latent)


def _is_panic(e: BaseException) -> bool:
    return type(e).__name__ == "PanicException"


@contextlib.contextmanager
def coder_errors(message: str) -> Iterator[None]:
    """constriction reports bad data as ValueError or a Rust panic (a BaseException): both become one
    :class:`FormatError` with ``message``; interrupts pass through."""
    try:
        yield
    except BaseException as e:  # noqa: BLE001 - a Rust panic is not an Exception
        if isinstance(e, (KeyboardInterrupt, SystemExit)) or not (isinstance(e, Exception) or _is_panic(e)):
            raise
        raise FormatError(message) from None


def leb128(value: int) -> bytes:
    """An unsigned integer as LEB128 (protobuf's varint): 7 bits per byte, low first, high bit = more follows."""
    if value < 0:
        raise ValueError("LEB128 of a negative number")
    out = bytearray()
    while True:
        b = value & 0x7F
        value >>= 7
        if not value:
            out.append(b)
            return bytes(out)
        out.append(b | 0x80)


def _leb128(values: np.ndarray) -> bytes:
    return b"".join(leb128(v) for v in values.tolist())


def _read_leb128(data: bytes, pos: int, count: int, limit: int) -> tuple[list[int], int]:
    """``count`` numbers from ``data[pos:]`` (each < ``limit``, at most 5 bytes) and the position after them."""
    out = []
    for _ in range(count):
        v, shift = 0, 0
        while True:
            if pos >= len(data):
                raise FormatError("corrupt payload (a coded string ends early)")
            b = data[pos]
            pos += 1
            v |= (b & 0x7F) << shift
            shift += 7
            if not b & 0x80:
                break
            if shift >= 35:
                raise FormatError("corrupt payload (an over-long number)")
        if v >= limit:
            raise FormatError("corrupt payload (a number out of range)")
        out.append(v)
    return out, pos


class CdfTables:
    """A model's integer CDF tables (``cdf`` (T, L) int, ``lengths`` (T,), ``offsets`` (T,)) as ANS models."""

    def __init__(self, cdf: np.ndarray, lengths: np.ndarray, offsets: np.ndarray):
        cdf = np.asarray(cdf, dtype=np.int64)
        lengths = np.asarray(lengths, dtype=np.int64).reshape(-1)
        offsets = np.asarray(offsets, dtype=np.int64).reshape(-1)
        if cdf.ndim != 2 or len(lengths) != len(cdf) or len(offsets) != len(cdf) or not len(cdf):
            raise ModelError("malformed entropy tables in the model file")
        pmfs = []
        for row, n in zip(cdf, lengths):
            if not 3 <= n <= cdf.shape[1] or row[0] != 0 or row[n - 1] != 1 << PRECISION:
                raise ModelError("malformed entropy tables in the model file")
            pmf = np.diff(row[:n])
            if (pmf <= 0).any():
                raise ModelError("malformed entropy tables in the model file (a zero-probability symbol)")
            pmfs.append(pmf.astype(np.float64))
        self._pmfs = pmfs
        self._models: dict[int, object] = {}
        self.lengths, self.offsets = lengths, offsets

    def __len__(self) -> int:
        return len(self._pmfs)

    def _model(self, t: int):
        m = self._models.get(t)
        if m is None:
            import constriction

            m = self._models[t] = constriction.stream.model.Categorical(self._pmfs[t], perfect=False)
        return m

    def _check(self, tables: np.ndarray) -> np.ndarray:
        tables = np.asarray(tables, dtype=np.int64).reshape(-1)
        if tables.size and (tables.min() < 0 or tables.max() >= len(self)):
            raise ValueError("table index out of range")
        return tables

    def _order(self, tables: np.ndarray) -> np.ndarray:
        """The stable sort of positions by table (checked ``tables``): NumPy's radix sort on 8 or 16-bit keys,
        ~8× faster than its merge sort of the int64 ones, the same permutation."""
        n = len(self)
        keys = tables.astype(np.uint8) if n <= 1 << 8 else tables.astype(np.uint16) if n <= 1 << 16 else tables
        return np.argsort(keys, kind="stable")

    def encode(self, symbols: np.ndarray, tables: np.ndarray) -> bytes:
        """One string for ``symbols`` (any int shape), each coded with the table of the same position."""
        return self.encode_passes([(symbols, tables)])

    def encode_passes(self, passes: list[tuple[np.ndarray, np.ndarray]]) -> bytes:
        """One string for several passes of ``(symbols, tables)``, decoded pass by pass (:meth:`decoder`): the
        tables of a pass may depend on the symbols of the passes before it (a context model). The layout is
        :meth:`encode`'s: the ANS words of every pass (each pass table by table), then the escapes of every pass
        in pass order; one pass gives exactly :meth:`encode`'s string."""
        import constriction

        coded, escapes = [], []
        for symbols, tables in passes:
            tables = self._check(tables)
            values = np.asarray(symbols, dtype=np.int64).reshape(-1) - self.offsets[tables]
            if values.size != tables.size:
                raise ValueError("one table per symbol")
            top = self.lengths[tables] - 2  # the escape symbol of each position's table
            low, high = values < 0, values >= top
            raw = np.zeros_like(values)
            raw[low] = -2 * values[low] - 1
            raw[high] = 2 * (values[high] - top[high])
            escaped = low | high
            if escaped.any() and raw[escaped].max() >= ESCAPE_LIMIT:
                from .bounded import TOO_MANY_ESCAPES

                raise ModelError(TOO_MANY_ESCAPES)
            values[escaped] = top[escaped]
            counts = np.bincount(tables, minlength=len(self))
            coded.append((values[self._order(tables)].astype(np.int32), counts))
            escapes.append(raw[escaped])
        coder = constriction.stream.stack.AnsCoder()
        for sorted_values, counts in reversed(coded):  # a stack: the last pass, and its last table, go in first
            ends = np.cumsum(counts)
            for t in reversed(np.flatnonzero(counts).tolist()):
                coder.encode_reverse(sorted_values[ends[t] - counts[t]: ends[t]], self._model(t))
        words = np.asarray(coder.get_compressed(), dtype="<u4")
        return _leb128(np.array([len(words)])) + words.tobytes() + b"".join(_leb128(e) for e in escapes)

    def decode(self, data: bytes, tables: np.ndarray) -> np.ndarray:
        """The symbols (int64, flat, raster order) of a string coded by :meth:`encode` with the same ``tables``."""
        with self.decoder(data) as dec:
            return dec.decode(tables)

    def decoder(self, data: bytes) -> "PassDecoder":
        """A decoder of a string of :meth:`encode_passes`, one pass per :meth:`PassDecoder.decode` call."""
        return PassDecoder(self, data)


class PassDecoder:
    """Decodes a string of :meth:`CdfTables.encode_passes` pass by pass; :meth:`finish` checks that the string
    held exactly those passes (run on leaving a ``with`` block without an error). Every fault of the data is a
    :class:`FormatError`."""

    def __init__(self, tables: CdfTables, data: bytes):
        import constriction

        self.tables, self.data = tables, data
        (n_words,), pos = _read_leb128(data, 0, 1, limit=len(data) // 4 + 1)
        if pos + 4 * n_words > len(data):
            raise FormatError("corrupt payload (a coded string ends early)")
        words = np.frombuffer(data, dtype="<u4", count=n_words, offset=pos).astype(np.uint32)
        self.pos = pos + 4 * n_words  # the escapes of the next pass start here
        with coder_errors("corrupt payload (the coded symbols are not a valid stream)"):
            self.coder = constriction.stream.stack.AnsCoder(words) if n_words else constriction.stream.stack.AnsCoder()

    def __enter__(self) -> "PassDecoder":
        return self

    def __exit__(self, kind, error, trace) -> None:
        if kind is None:  # (an error inside the block is the one to report)
            self.finish()

    def decode(self, tables: np.ndarray) -> np.ndarray:
        """The symbols (int64, flat, in the order of ``tables``) of the next pass, coded with ``tables``."""
        t = self.tables
        tables = t._check(tables)
        order = t._order(tables)
        counts = np.bincount(tables, minlength=len(t))
        sorted_values = np.empty(tables.size, np.int64)
        with coder_errors("corrupt payload (the coded symbols are not a valid stream)"):
            start = 0
            for k in np.flatnonzero(counts).tolist():
                n = int(counts[k])
                sorted_values[start: start + n] = self.coder.decode(t._model(k), n)
                start += n
        values = np.empty_like(sorted_values)
        values[order] = sorted_values
        top = t.lengths[tables] - 2
        escaped = values == top
        n_esc = int(escaped.sum())
        raw, self.pos = _read_leb128(self.data, self.pos, n_esc, limit=ESCAPE_LIMIT)
        if n_esc:
            raw = np.asarray(raw, dtype=np.int64)
            values[escaped] = np.where(raw & 1, -(raw + 1) // 2, raw // 2 + top[escaped])
        return values + t.offsets[tables]

    def finish(self) -> None:
        """Raise :class:`FormatError` if coded words or bytes are left after the last pass."""
        if not self.coder.is_empty():
            raise FormatError("corrupt payload (coded words left after the last symbol)")
        if self.pos != len(self.data):
            raise FormatError("corrupt payload (trailing bytes after a coded string)")
