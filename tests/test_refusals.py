"""The refusal branches of the file parsers, each held in place by a crafted input (mutation audit of 0.23.0).

The audit deleted or moved each check below (``raise`` → ``pass``, a bound moved by one, ``or`` → ``and``) and
no test failed. Every test here names what went wrong without it: a crafted file decoded at another rate point,
a traceback (``UnboundLocalError``, ``ZeroDivisionError``, ``ValueError``) where ``docs/safety.md`` promises one
line of error, or a file the format refuses being accepted. The boundaries are tested on both sides: the last
value refused and the first one accepted.
"""

import dataclasses
import json
import re
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest

import saicm
from saicm.codec import container
from saicm.codec.fuzz import fix_crcs
from saicm.errors import FormatError, ModelError

HERE = Path(__file__).parent
CORPUS = HERE / "corpus"
V3 = CORPUS / "v3-valid-64x64-v5-q1.saicm"
CLIP = HERE / "reference" / "shapes-64x48-8f-tiny.saicmv"
V5 = "mse-hyperprior-n64-v5"


def _v3_with(**changes) -> bytes:
    """The valid format-3 corpus file with header fields replaced (the CRC is the writer's)."""
    s = container.unpack(V3.read_bytes())
    return container.pack(container.Stream(dataclasses.replace(s.header, **changes), s.strings, None))


def _v5_tables():
    from safetensors.numpy import load_file

    from saicm.entropy.tables import CdfTables
    from saicm.models.catalog import resolve

    st = load_file(str(resolve(V5).path))
    return CdfTables(st["gaussian_conditional._quantized_cdf"], st["gaussian_conditional._cdf_length"],
                     st["gaussian_conditional._offset"])


# --- the stream header's quality (limits.check_layout) -------------------------------------------------------

@pytest.mark.parametrize("quality", [0, 8, 255])  # the model has 7 rate points
def test_a_stream_quality_the_model_does_not_have_is_refused(quality):
    """Without the check, quality 0 indexed rate point −1 and decoded silently at the model's last rate point, and
    quality 8 or 255 was an IndexError traceback (mutation audit of 0.23.0: the only "quality … out of range"
    tests were the encoder's)."""
    data = _v3_with(quality=quality)
    with pytest.raises(FormatError, match=f"quality {quality} out of range for {V5}"):
        saicm.decompress(data)


def test_a_stream_at_the_models_last_rate_point_decodes():
    """Quality n of a model with n rate points is its last, not one past it (mutation audit of 0.23.0: ``<=``
    could become ``<`` and refuse every file coded at the top quality)."""
    from saicm.models.catalog import read_info, resolve

    n = read_info(resolve(V5).path).num_qualities
    assert n == 7
    assert saicm.decompress(_v3_with(quality=n)).size == (64, 64)
    assert saicm.decompress(_v3_with(quality=1)).size == (64, 64)


# --- names that are not UTF-8 behind a valid CRC ---------------------------------------------------------------

def test_a_stream_whose_model_name_is_not_utf8_is_one_line():
    """Without the refusal, the name stayed unbound and describe and decompress raised UnboundLocalError
    (mutation audit of 0.23.0: no test had a non-UTF-8 name behind a valid CRC, and the fuzzers never made one)."""
    bad = bytearray(V3.read_bytes())
    assert bad[7:7 + len(V5)] == V5.encode()  # magic, version, name length, then the name
    bad[7] = 0xFF
    bad = fix_crcs(bytes(bad))
    for read in (saicm.describe, saicm.decompress, container.unpack):
        with pytest.raises(FormatError, match=r"corrupt header \(model name\)"):
            read(bad)


def _human_layer(**changes) -> container.HumanLayer:
    return container.HumanLayer(**{**dict(model="scalable-x", weights_sha=bytes(range(8)), base_sha=bytes(8),
                                          machine_sha=bytes(range(8, 16)), quality=2, shapes=[(1, 1), (2, 3)],
                                          strings=[b"\x01\x02", b"abc"], version=container.HUMAN_PORTABLE_VERSION,
                                          strip_rows=3), **changes})


def _recrc(body: bytes) -> bytes:
    return body + struct.pack(">I", zlib.crc32(body))


def test_a_human_layer_whose_model_name_is_not_utf8_is_one_line():
    """Without the refusal, unpack_human raised UnboundLocalError on such a segment (mutation audit of 0.23.0)."""
    good = container.pack_human(_human_layer())
    assert container.unpack_human(good) == _human_layer()
    bad = bytearray(good)
    assert bad[7:7 + len("scalable-x")] == b"scalable-x"  # magic, version, name length, then the name
    bad[7] = 0xFF
    with pytest.raises(FormatError, match=r"corrupt human layer \(model name\)"):
        container.unpack_human(_recrc(bytes(bad[:-4])))


def test_a_human_layer_with_bytes_after_its_last_string_is_refused():
    """Bytes between the last string and the CRC (covered by the CRC) were accepted without the check, so
    ``saicm strip --human-segment`` would hand such a segment on as valid (mutation audit of 0.23.0)."""
    good = container.pack_human(_human_layer())
    for junk in (b"x", b"\0" * 4):
        with pytest.raises(FormatError, match=r"corrupt human layer \(trailing bytes after payload\)"):
            container.unpack_human(_recrc(good[:-4] + junk))


# --- zero strip rows, zero image size (the crafted-file corpus) ----------------------------------------------

@pytest.mark.parametrize("name, fragment", [("v3-zero-strip-rows.saicm", "corrupt header (zero strip rows)"),
                                            ("v3-zero-height.saicm", "corrupt header (zero image size)"),
                                            ("v3-zero-width.saicm", "corrupt header (zero image size)")])
def test_zero_strip_rows_and_zero_image_sizes_are_refused_by_describe_and_decode(name, fragment):
    """Without these checks decompress (zero strip rows) or describe (a zero height) died with ZeroDivisionError;
    deleting either check, or ``or`` → ``and`` in the size check, failed no test (mutation audit of 0.23.0). The
    files are in the crafted-file corpus (tests/corpus/README.md)."""
    data = (CORPUS / name).read_bytes()
    for read in (saicm.describe, saicm.decompress):
        with pytest.raises(FormatError, match=fragment.replace("(", r"\(").replace(")", r"\)")):
            read(data)


def test_one_latent_row_per_strip_is_a_valid_file():
    """strip_rows = 1 is the smallest legitimate value: a check moved to ``strip_rows == 1`` would refuse such
    files and nothing noticed (mutation audit of 0.23.0). The file codes the corpus image's four latent rows in
    four strips; it decodes to exactly what the one-strip file of the same encoder gives."""
    data = (CORPUS / "v3-strip-rows-1.saicm").read_bytes()
    s = container.unpack(data)
    assert s.header.strip_rows == 1 and len(s.strings) == 1 + 4
    assert saicm.describe(data)["strip_rows"] == 1
    rgb = np.random.default_rng(0).integers(0, 256, (64, 64, 3)).astype(np.uint8)
    one_strip = saicm.compress(rgb, model=V5, quality=1)
    assert container.unpack(one_strip).header.strip_rows > 1
    assert np.array_equal(np.asarray(saicm.decompress(data)), np.asarray(saicm.decompress(one_strip)))


# --- the entropy strings of the portable format (tables.PassDecoder) -----------------------------------------

def test_a_string_claiming_more_ans_words_than_it_holds_ends_early():
    """Two words claimed, seven bytes present: without the check NumPy raised "buffer is smaller than requested
    size" (a ValueError traceback). The corpus over-claim (2²⁰ words) trips the LEB128 limit first, so it never
    reached this check (mutation audit of 0.23.0)."""
    t = _v5_tables()
    for data in (b"\x02" + b"\x11" * 7, b"\x03" + b"\x11" * 11, b"\x01\x11\x11\x11"):
        with pytest.raises(FormatError, match=r"corrupt payload \(a coded string ends early\)"):
            t.decode(data, np.zeros(10, np.int64))


def test_a_string_with_coded_words_left_after_the_last_symbol_is_refused():
    """A string of 11 symbols read as 10 was accepted without the is_empty check (its escapes are empty, so
    the position check that follows it holds); ``short.finish()`` in the pass test could not tell which check
    fired (mutation audit of 0.23.0)."""
    t = _v5_tables()
    eleven = t.encode(np.zeros(11, np.int64), np.zeros(11, np.int64))
    assert t.decode(eleven, np.zeros(11, np.int64)).tolist() == [0] * 11
    with pytest.raises(FormatError, match=r"corrupt payload \(coded words left after the last symbol\)"):
        t.decode(eleven, np.zeros(10, np.int64))


def test_an_escape_of_exactly_the_escape_limit_is_refused_and_one_less_decodes():
    """An escaped magnitude of ESCAPE_LIMIT (2²⁴) was accepted (and decoded 8388610) with ``>=`` → ``>`` or the
    raise deleted, and a 6-byte LEB128 number with the over-long cut deleted (mutation audit of 0.23.0)."""
    from saicm.entropy.tables import ESCAPE_LIMIT, _read_leb128, leb128

    t = _v5_tables()
    idx = np.zeros(10, np.int64)
    sym = np.zeros(10, np.int64)
    sym[0] = 100000  # an escape
    s = t.encode(sym, idx)
    assert np.array_equal(t.decode(s, idx), sym)
    (n,), pos = _read_leb128(s, 0, 1, 1 << 30)
    body = s[: pos + 4 * n]  # the ANS words; the one escape's LEB128 follows
    assert body + leb128(2 * (100000 - int(t.offsets[0]) - (int(t.lengths[0]) - 2))) == s
    # raw odd → −(raw+1)/2 relative to the offset: the largest magnitude a file may carry
    got = t.decode(body + leb128(ESCAPE_LIMIT - 1), idx)
    assert got[0] == -(ESCAPE_LIMIT // 2) + int(t.offsets[0]) and not got[1:].any()
    with pytest.raises(FormatError, match=r"corrupt payload \(a number out of range\)"):
        t.decode(body + leb128(ESCAPE_LIMIT), idx)
    # at most 5 LEB128 bytes: a redundant 5-byte 1 decodes, a 6-byte 0 is refused (it was read as 0 with the
    # 35-bit cut moved or deleted)
    assert t.decode(body + b"\x81\x80\x80\x80\x00", idx)[0] == -1 + int(t.offsets[0])
    with pytest.raises(FormatError, match=r"corrupt payload \(an over-long number\)"):
        t.decode(body + b"\x80\x80\x80\x80\x80\x00", idx)


def test_the_encoder_refuses_an_escape_the_decoder_would_refuse():
    """The writer's bound is the reader's: an escaped magnitude of ESCAPE_LIMIT was written (``>=`` → ``>``) into
    a file that then failed to decode as "a number out of range", with no test failing (mutation audit of
    session 57)."""
    from saicm.entropy.bounded import TOO_MANY_ESCAPES
    from saicm.entropy.tables import ESCAPE_LIMIT

    t = _v5_tables()
    idx = np.zeros(4, np.int64)
    top = int(t.offsets[0]) + int(t.lengths[0]) - 2  # the escape symbol: raw = 2·(s − top) above it
    for s in (top + ESCAPE_LIMIT // 2 - 1, int(t.offsets[0]) - ESCAPE_LIMIT // 2):  # raw 2²⁴ − 2 and 2²⁴ − 1
        sym = np.array([0, s, 0, 0])
        assert np.array_equal(t.decode(t.encode(sym, idx), idx), sym)
    with pytest.raises(ModelError, match=TOO_MANY_ESCAPES):
        t.encode(np.array([0, top + ESCAPE_LIMIT // 2, 0, 0]), idx)  # raw 2²⁴


# --- a model file's entropy tables (tables.CdfTables) --------------------------------------------------------

def _cdf_row(length: int, width: int = 6) -> list[int]:
    row = [0] * width
    row[:length] = np.linspace(0, 1 << 16, length).astype(int).tolist()
    return row


def test_malformed_entropy_tables_in_a_model_file_are_refused():
    """Model files from strangers (``--model PATH``, import-checkpoint) reach these checks, and every refusal and
    bound in them could be deleted or moved by one with no test failing (mutation audit of 0.23.0)."""
    from saicm.entropy.tables import CdfTables

    good = np.array([_cdf_row(6), _cdf_row(5), _cdf_row(3)])
    t = CdfTables(good, [6, 5, 3], [-2, -1, 0])  # a length of exactly the row width, and the shortest, 3
    assert len(t) == 3
    sym, idx = np.array([-2, 3, 2, 0, 0, 9, -5]), np.array([0, 0, 1, 2, 2, 1, 0])
    assert np.array_equal(t.decode(t.encode(sym, idx), idx), sym)

    def refused(cdf, lengths, offsets, fragment="malformed entropy tables in the model file"):
        with pytest.raises(ModelError, match=fragment):
            CdfTables(np.array(cdf), lengths, offsets)

    refused(good, [6, 5], [-2, -1, 0])  # one length missing
    refused(good, [6, 5, 3], [-2, -1])  # one offset missing
    refused(good[0], [6], [-2])  # not a table of rows
    refused(np.zeros((0, 6), np.int64), [], [])  # no table
    two = good.copy()
    two[2] = [0, 1 << 16, 0, 0, 0, 0]  # a well-formed CDF of two entries: no symbol besides the escape
    refused(two, [6, 5, 2], [-2, -1, 0])
    refused(good, [6, 7, 3], [-2, -1, 0])  # longer than its row
    bad = good.copy()
    bad[1, 0] = 1  # a CDF that does not start at 0
    refused(bad, [6, 5, 3], [-2, -1, 0])
    bad = good.copy()
    bad[2, 2] = (1 << 16) - 1  # one that does not end at 2**16
    refused(bad, [6, 5, 3], [-2, -1, 0])
    bad = good.copy()
    bad[0, 3] = bad[0, 2]  # a repeated value: a symbol of probability zero
    refused(bad, [6, 5, 3], [-2, -1, 0], r"\(a zero-probability symbol\)")
    bad = good.copy()
    bad[0, 3] = bad[0, 2] - 1  # a decreasing CDF
    refused(bad, [6, 5, 3], [-2, -1, 0], r"\(a zero-probability symbol\)")


@pytest.mark.parametrize("n_tables", [3, 300, 70000])
def test_a_string_codes_table_by_table_in_ascending_index_for_any_number_of_tables(n_tables):
    """The documented order (ascending table index, raster order within a table), rebuilt here from constriction
    alone: CdfTables sorts by 8-bit keys up to 256 tables and 16-bit ones up to 65536, and widening the 8-bit
    range to 512 tables changed the string of a 300-table model with no test failing, since both ends sort
    alike and the shipped models have 64 tables (mutation audit of session 57)."""
    import constriction

    from saicm.entropy.tables import CdfTables, leb128

    rng = np.random.default_rng(5)
    width = 6
    cuts = np.sort(rng.random((n_tables, width - 2)), axis=1)  # distinct tables: a wrong order codes another string
    cdf = np.concatenate([np.zeros((n_tables, 1)), 1 + np.floor(cuts * ((1 << 16) - 8)) + np.arange(width - 2),
                          np.full((n_tables, 1), 1 << 16)], axis=1).astype(np.int64)
    t = CdfTables(cdf, np.full(n_tables, width), np.full(n_tables, -2))
    tables = rng.integers(0, n_tables, 3000)
    tables[:4] = [0, n_tables - 1, 256 % n_tables, 1]
    sym = rng.integers(-2, 2, tables.size)  # values 0..3: no escape
    coder = constriction.stream.stack.AnsCoder()
    for k in sorted(set(tables.tolist()), reverse=True):  # a stack: the last table goes in first
        model = constriction.stream.model.Categorical(np.diff(cdf[k]).astype(np.float64), perfect=False)
        coder.encode_reverse((sym[tables == k] + 2).astype(np.int32), model)
    words = np.asarray(coder.get_compressed(), dtype="<u4")
    want = leb128(len(words)) + words.tobytes()
    assert t.encode(sym, tables) == want
    assert np.array_equal(t.decode(want, tables), sym)


def test_table_indexes_outside_the_tables_are_refused_by_the_coder():
    """``tables.max() >= len`` → ``>`` (an index of len(tables) read past the pmfs) and ``min() < 0`` → ``< -1``
    survived (mutation audit of 0.23.0): the decoder's indexes come from ScaleIndex, the encoder API's do not."""
    t = _v5_tables()
    for bad in ([0, len(t)], [-1, 0]):
        with pytest.raises(ValueError, match="table index out of range"):
            t.encode(np.zeros(2, np.int64), np.array(bad))
        with pytest.raises(ValueError, match="table index out of range"):
            t.decode(t.encode(np.zeros(2, np.int64), np.zeros(2, np.int64)), np.array(bad))


# --- CompressAI's coder behind the bounded proxy (entropy.bounded) -------------------------------------------

def test_the_encoder_buffer_check_is_exact_at_its_boundary():
    """``_encoder_fits`` decides whether CompressAI's encoder, which writes one 32-bit word per symbol with no
    bounds check, may run; a wrong "fits" is a heap write past a C++ buffer. Its only test took 100 zeros and
    100 × 10⁶, and 49 of its 60 mutants survived (mutation audit of 0.23.0).

    The worst-case output, from the module docstring: 16 bits per symbol, 64 bits of flush, and per escape 4 bits
    per chunk: one count chunk, one per value nibble, and one more count chunk per 15 value nibbles. The output
    holds 32·(n − 1) bits. One table (5 entries, offset −1): values 0..2 are coded directly, 3 is the escape;
    an escape's raw value is 2·(v − 3) for v ≥ 3 and −2v − 1 for v < 0 (v = symbol + 1)."""
    from saicm.entropy.bounded import _encoder_fits

    # (symbol, raw escape value, value nibbles, escape bits)
    escapes = [(2, 0, 0, 4)] * 6  # v = 3, the escape itself: raw 0, no value nibble
    escapes += [(-2, 1, 1, 8)] * 4  # v = −1: raw 1
    escapes += [(-32769, 65535, 4, 20)] * 10  # v = −32768: raw 2**16 − 1, the top of 4 nibbles
    escapes += [(-2050, 4097, 4, 20)] * 10  # v = −2049: raw 16**3 + 1, near the bottom of 4 nibbles
    escapes += [(2050, 4096, 4, 20)] * 10  # v = 2051: raw 16**3
    escapes += [(32769, 65534, 4, 20)] * 10  # v = 32770: raw 2**16 − 2
    # 7 nibbles, the most the encoder can count (from raw 2**28 on it looped: refused, see below): 1 + 7 chunks
    escapes += [((1 << 27) + 1, (1 << 28) - 2, 7, 32)] * 3  # v = 2**27 + 2: raw 2**28 − 2, the top
    escapes += [((1 << 23) + 2, 1 << 24, 7, 32)] * 3  # v = 2**23 + 3: raw 16**6, the bottom
    escapes += [(3, 2, 1, 8)]  # v = 4: raw 2
    for s, raw, nibbles, bits in escapes:
        v = s + 1
        assert raw == (2 * (v - 3) if v >= 3 else -2 * v - 1) and raw < 16 ** max(nibbles, 1)
        assert raw >= 16 ** (nibbles - 1) if nibbles else raw == 0
        assert bits == 4 * (1 + nibbles + nibbles // 15)
    escape_bits = sum(e[3] for e in escapes)
    assert escape_bits == 1056 and len(escapes) == 57
    # 16 n + 1056 + 64 = 32 (n − 1) at n = 72: 15 symbols coded directly, at both ends of the table's range
    direct = [-1] * 8 + [1] * 7
    symbols = np.array([e[0] for e in escapes] + direct, np.int64)
    assert symbols.size == 72 and 16 * 72 + escape_bits + 64 == 32 * (72 - 1)
    rng = np.random.default_rng(0)
    for order in (np.arange(72), rng.permutation(72)):
        s = symbols[order]
        assert _encoder_fits(s, np.zeros(72, np.int64), [5], [-1]) is True  # exactly full
        one_more = s.copy()
        one_more[one_more == 1] = [2] + [1] * 6  # one direct symbol becomes an escape: 4 bits over
        assert _encoder_fits(one_more, np.zeros(72, np.int64), [5], [-1]) is False
    # the same symbols under another table layout: table 1 is the one above, table 0 never used
    assert _encoder_fits(symbols, np.ones(72, np.int64), [9, 5], [0, -1]) is True
    assert _encoder_fits([], [], [5], [-1]) is True  # nothing to code
    assert _encoder_fits([0], [0], [5], [-1]) is False  # 16 + 64 bits do not fit in 32·0
    assert _encoder_fits([0] * 6, np.zeros(6), [5], [-1]) is True  # 96 + 64 = 32·5
    assert _encoder_fits([0] * 5, np.zeros(5), [5], [-1]) is False  # 80 + 64 > 32·4


def test_the_bounded_decoder_refuses_table_indexes_outside_the_tables(monkeypatch):
    """Defence in depth behind build_indexes' clamping: the index check could be deleted, or its bounds moved, with
    no test failing (mutation audit of 0.23.0). The inner coder must never see such an index."""
    from saicm.entropy import bounded
    from saicm.entropy.bounded import BoundedCoder

    monkeypatch.setattr(bounded, "_check_recodes", lambda *a: None)  # (this stand-in coder decodes b"" to zeros)

    seen = []

    class Inner:
        def decode_with_indexes(self, string, indexes, cdfs, cdf_sizes, offsets):
            seen.append(list(indexes))
            return [0] * len(indexes)

    coder = BoundedCoder(Inner())
    cdfs, sizes, offsets = [[0, 1 << 15, 1 << 16]] * 3, [3, 3, 3], [0, 0, 0]
    for bad in ([3], [-1], [0, 3], [-1, 2], [5, 0, 1]):
        with pytest.raises(ValueError, match="coder table index out of range"):
            coder.decode_with_indexes(b"", bad, cdfs, sizes, offsets)
    assert seen == []
    assert coder.decode_with_indexes(b"", [0, 2, 1], cdfs, sizes, offsets) == [0, 0, 0]
    assert coder.decode_with_indexes(b"", [], cdfs, sizes, offsets) == []
    assert seen == [[0, 2, 1], []]


def test_decoded_symbols_the_encoder_could_not_hold_are_refused_without_running_it():
    """The consistency check codes the decoded symbols again with CompressAI's encoder, which writes one word per
    symbol without a bounds check (and loops for good on a raw escape of 2²⁸): symbols a crafted string decodes
    to that would not fit must be refused before it runs. Deleting that guard left only "does it re-encode to
    the string", with no test failing (mutation audit of session 57)."""
    from saicm.entropy.bounded import TABLES_DISAGREE, BoundedCoder

    encoded = []

    class Inner:
        def decode_with_indexes(self, string, indexes, cdfs, cdf_sizes, offsets):
            return [0] * len(indexes)

        def encode_with_indexes(self, symbols, indexes, cdfs, cdf_sizes, offsets):
            encoded.append(list(symbols))
            return b"same"

    coder = BoundedCoder(Inner())
    cdfs, sizes, offsets = [[0, 1 << 14, 1 << 15, 3 << 14, 1 << 16]], [5], [-1]
    with pytest.raises(FormatError, match=re.escape(TABLES_DISAGREE)):
        coder.decode_with_indexes(b"same", [0] * 5, cdfs, sizes, offsets)  # 80 + 64 bits > 32·4: would overflow
    assert encoded == []
    assert coder.decode_with_indexes(b"same", [0] * 6, cdfs, sizes, offsets) == [0] * 6  # 96 + 64 = 32·5: fits
    assert encoded == [[0] * 6]


def test_a_stream_decoder_used_in_a_with_block_checks_the_string_on_leaving_it():
    """The consistency check of a channel-wise decode ran only where each caller remembered ``finish()`` (deleting
    it in tcm.py left every test green, session 45); the decoders are now context managers that run it on leaving
    the block, and an error inside the block is the one reported."""
    pytest.importorskip("compressai")
    from compressai.ans import BufferedRansEncoder

    from saicm.entropy.bounded import stream_decoder

    cdfs = [[0, 1 << 14, 1 << 15, 3 << 14, 1 << 16], [0, 1 << 15, 1 << 16]]  # four and two symbols (the last: escape)
    sizes, offsets = [5, 3], [-1, 0]
    values, indexes = [0, 1, -1, 2, 0, 0] * 10, [0, 0, 0, 0, 1, 1] * 10  # (enough symbols for the writer's buffer)
    enc = BufferedRansEncoder()
    enc.encode_with_indexes(values, indexes, cdfs, sizes, offsets)
    string = enc.flush()
    with stream_decoder(string, len(values)) as d:  # two slices, as a channel-wise model reads them
        got = d.decode_stream(indexes[:24], cdfs, sizes, offsets) + d.decode_stream(indexes[24:], cdfs, sizes, offsets)
    assert got == values
    with pytest.raises(FormatError, match="does not decode consistently"):
        with stream_decoder(string, len(values)) as d:  # read with other tables than the writer's
            d.decode_stream([1, 1, 0, 0, 0, 0] * 10, cdfs, sizes, offsets)
    with pytest.raises(KeyError):  # not hidden behind the check's error
        with stream_decoder(string, len(values)) as d:
            d.decode_stream([1, 1, 0, 0, 0, 0] * 10, cdfs, sizes, offsets)
            raise KeyError("inside")
    # one table set per stream: slices decoded with equal tables held in other lists are not re-coded as one
    # (the check could be deleted unnoticed: mutation audit of session 57)
    with pytest.raises(ValueError, match="one table set per stream"):
        with stream_decoder(string, len(values)) as d:
            d.decode_stream(indexes[:24], cdfs, sizes, offsets)
            d.decode_stream(indexes[24:], [list(c) for c in cdfs], sizes, offsets)


def test_a_pass_decoder_used_in_a_with_block_checks_the_string_on_leaving_it():
    from saicm.entropy.tables import CdfTables

    t = CdfTables(np.array([[0, 1 << 14, 1 << 15, 3 << 14, 1 << 16]], np.int32), np.array([5], np.int32),
                  np.array([-1], np.int32))
    sym, tables = np.array([0, 1, -1, 2, 0]), np.zeros(5, np.int64)
    data = t.encode(sym, tables)
    with t.decoder(data) as d:
        assert np.array_equal(d.decode(tables), sym)
    with pytest.raises(FormatError, match="trailing bytes"):
        with t.decoder(data + b"\x00") as d:
            d.decode(tables)
    with pytest.raises(KeyError):
        with t.decoder(data + b"\x00") as d:
            raise KeyError("inside")


# --- the .saicmv header (video.bitstream.read_header / unpack) -----------------------------------------------

def _clip(arch=None, config=None, meta=None, steps=None, **fields) -> bytes:
    """The reference clip with raw header fields replaced (``fnum``, ``fden``, ``bits``, ``first``, …; ``arch``,
    ``config`` and ``meta`` as the raw bytes), the CRC recomputed."""
    from saicm.video import bitstream

    data = CLIP.read_bytes()
    s = bitstream.unpack(data)
    h = s.header
    pos = 7 + data[6]
    raw = {"arch": data[7:pos]}
    for key in ("config", "meta"):
        (n,) = struct.unpack(">H", data[pos: pos + 2])
        raw[key], pos = data[pos + 2: pos + 2 + n], pos + 2 + n
    f = dict(frames=h.frames, first=h.first, width=h.width, height=h.height, fnum=h.fps.numerator,
             fden=h.fps.denominator, bits=h.bits, coder=h.coder)
    f.update(fields)
    name, cfg, met = (raw[k] if v is None else v for k, v in (("arch", arch), ("config", config), ("meta", meta)))
    out = bytearray(bitstream.MAGIC) + struct.pack(">BB", h.version, len(name)) + name
    out += struct.pack(">H", len(cfg)) + cfg + struct.pack(">H", len(met)) + met
    out += struct.pack(">IIIIIIBB", *(f[k] for k in ("frames", "first", "width", "height", "fnum", "fden", "bits",
                                                       "coder")))
    out += np.asarray(s.steps if steps is None else steps, ">f2").tobytes() + struct.pack(">I", len(s.symbols))
    return _recrc(bytes(out + s.symbols))


def test_coded_symbols_that_are_not_whole_words_are_refused():
    """The symbols are 32-bit ANS words: a length that is not a multiple of 4 was let through to the decoder
    with the check deleted, and no test failed (mutation audit of session 57)."""
    import saicm.video
    from saicm.video import bitstream

    data = CLIP.read_bytes()
    symbols = bitstream.unpack(data).symbols
    head = data[: -4 - len(symbols) - 4]  # up to the symbols' length field
    assert _recrc(head + struct.pack(">I", len(symbols)) + symbols) == data
    for extra in (b"\x00", b"\x00\x00\x00"):
        odd = _recrc(head + struct.pack(">I", len(symbols) + len(extra)) + symbols + extra)
        for read in (bitstream.unpack, saicm.video.decode):
            with pytest.raises(FormatError, match=r"corrupt payload \(coded symbols are not whole 32-bit words\)"):
                read(odd)


@pytest.mark.parametrize("field, raw", [("config", b"[]"), ("config", b"3"), ("meta", b"[1]"), ("meta", b'"x"')])
def test_a_clip_whose_configuration_or_meta_is_json_but_not_an_object_is_one_line(field, raw):
    """With the check deleted, a meta of ``[1]`` passed unpack and ``saicm info`` (describe) crashed on it with
    AttributeError, and no test failed (mutation audit of session 57)."""
    import saicm.video
    from saicm.video import bitstream

    what = "configuration" if field == "config" else "meta"
    for read in (bitstream.unpack, saicm.video.describe):
        with pytest.raises(FormatError, match=rf"^corrupt header \({what} is not a JSON object\)$"):
            read(_clip(**{field: raw}))


def test_the_clip_writer_refuses_symbols_that_are_not_whole_words():
    """The reader refuses them, so the writer does (its check could be deleted unnoticed: mutation audit of
    session 57)."""
    from saicm.video import bitstream

    s = bitstream.unpack(CLIP.read_bytes())
    assert bitstream.pack(s) == CLIP.read_bytes()
    s.symbols += b"\x00"
    with pytest.raises(FormatError, match="^coded symbols must be whole 32-bit words$"):
        bitstream.pack(s)


def test_the_clip_builder_rebuilds_the_reference_file_byte_for_byte():
    """The crafted clips below differ from the reference file only in the fields each test names."""
    assert _clip() == CLIP.read_bytes()


def test_a_clip_whose_architecture_name_is_not_ascii_is_one_line():
    """Without the refusal, read_header raised UnboundLocalError (mutation audit of 0.23.0)."""
    from saicm.video import bitstream

    for name in (b"\xfferv", b"n\xe9rv"):
        with pytest.raises(FormatError, match=r"corrupt header \(architecture name\)"):
            bitstream.unpack(_clip(arch=name))


@pytest.mark.parametrize("field", ["frames", "width", "height"])
def test_a_clip_with_zero_frames_or_a_zero_frame_size_is_refused(field):
    """Only zero frames was tested: the zero width and height refusals could be moved by one (``== 1``) with no
    test failing (mutation audit of 0.23.0)."""
    from saicm.video import bitstream

    with pytest.raises(FormatError, match=r"corrupt header \(zero frames or zero frame size\)"):
        bitstream.unpack(_clip(**{field: 0}))


@pytest.mark.parametrize("fnum, fden", [(25, 0), (0, 1), (0, 0)])
def test_a_clip_with_a_zero_frame_rate_is_refused(fnum, fden):
    """A zero denominator was a ZeroDivisionError from Fraction(25, 0) without the check (mutation audit of
    0.23.0)."""
    from saicm.video import bitstream

    with pytest.raises(FormatError, match=r"corrupt header \(zero frame rate\)"):
        bitstream.unpack(_clip(fnum=fnum, fden=fden))
    assert bitstream.unpack(_clip(fnum=1, fden=1)).header.fps == 1  # the smallest frame rate
    assert bitstream.unpack(_clip(fnum=30000, fden=1001)).header.fps * 1001 == 30000


@pytest.mark.parametrize("step", [0.0, -0.0, -1.0, float("inf"), float("-inf"), float("nan")])
def test_quantisation_steps_must_be_finite_and_positive(step):
    """The format says steps are finite and > 0; with ``> 0`` → ``>= 0`` or ``and`` → ``or`` a zero, negative or
    infinite step was accepted: the only test had a NaN step, which every such mutant still refused (mutation
    audit of 0.23.0)."""
    from saicm.video import bitstream

    steps = bitstream.unpack(CLIP.read_bytes()).steps.copy()
    steps[len(steps) // 2] = np.float16(step)
    with pytest.raises(FormatError, match=r"quantisation steps must be finite and positive"):
        bitstream.unpack(_clip(steps=steps))
    steps[len(steps) // 2] = np.float16(2.0 ** -24)  # the smallest positive float16 is a valid step
    assert bitstream.unpack(_clip(steps=steps)).steps[len(steps) // 2] > 0


@pytest.mark.parametrize("bits, ok", [(0, False), (1, False), (2, True), (8, True), (9, False), (12, False)])
def test_quantisation_bits_are_2_to_8_inclusive(bits, ok):
    """Only bits = 12 was tested: 1- and 9-bit files could be accepted, or 2-bit files refused, unnoticed (mutation
    audit of 0.23.0). unpack checks the header (the symbols are decoded later)."""
    from saicm.video import bitstream

    if ok:
        assert bitstream.unpack(_clip(bits=bits)).header.bits == bits
    else:
        with pytest.raises(FormatError, match=rf"corrupt header \(quantisation bits {bits}, not 2\.\.8\)"):
            bitstream.unpack(_clip(bits=bits))


def test_frame_indexes_may_reach_but_not_pass_2_to_the_32():
    """The writer writes first + frames = 2**32 for a clip ending at the last u32 index: ``>`` → ``>=`` refused
    it, and ``1 << 32`` → ``1 << 31`` refused every clip starting at 2**31, with no test failing (mutation audit
    of 0.23.0)."""
    from saicm.video import bitstream

    frames = bitstream.unpack(CLIP.read_bytes()).header.frames
    for first in (1 << 31, (1 << 32) - frames):
        assert bitstream.unpack(_clip(first=first)).header.first == first
    for first in ((1 << 32) - frames + 1, (1 << 32) - 1):
        with pytest.raises(FormatError, match=r"the frames' indexes pass 2\^32"):
            bitstream.unpack(_clip(first=first))


def test_config_and_meta_may_be_exactly_their_length_caps():
    """A configuration or meta of MAX_CONFIG_BYTES / MAX_META_BYTES is read, one byte more is refused; both
    bounds and both refusals could be moved or deleted unnoticed (mutation audit of 0.23.0)."""
    from saicm.video import bitstream

    h = bitstream.unpack(CLIP.read_bytes()).header
    cfg, met = json.dumps(h.config).encode(), json.dumps(h.meta).encode()

    def padded(raw: bytes, size: int) -> bytes:
        return raw + b" " * (size - len(raw))  # JSON allows trailing white space

    got = bitstream.unpack(_clip(config=padded(cfg, bitstream.MAX_CONFIG_BYTES),
                                 meta=padded(met, bitstream.MAX_META_BYTES))).header
    assert got.config == h.config and got.meta == h.meta
    with pytest.raises(FormatError, match=r"corrupt header \(configuration too long\)"):
        bitstream.unpack(_clip(config=padded(cfg, bitstream.MAX_CONFIG_BYTES + 1)))
    with pytest.raises(FormatError, match=r"corrupt header \(meta too long\)"):
        bitstream.unpack(_clip(meta=padded(met, bitstream.MAX_META_BYTES + 1)))


# --- formats 1 and 2: a decode whose coder tables are not the writer's (another CPU) --------------------------

def _one_table_index_off(monkeypatch):
    """What another CPU's float hyper-synthesis does now and then: one scale rounds into the next table."""
    from compressai.entropy_models import GaussianConditional

    real = GaussianConditional.build_indexes

    def shifted(self, scales):
        idx = real(self, scales).clone()
        flat = idx.view(-1)
        k = flat.numel() // 2
        flat[k] = flat[k] + 1 if int(flat[k]) + 1 < len(self.scale_table) else flat[k] - 1
        return idx

    monkeypatch.setattr(GaussianConditional, "build_indexes", shifted)


@pytest.mark.parametrize("model", [V5, "mse-context-n64-v6"])  # decode_with_indexes, and the channel-wise stream
def test_a_format_1_decode_with_another_cpus_tables_is_refused_not_garbage(model, monkeypatch):
    """A format-1 file of an AVX2 CPU decoded under an SSE4.2 one at 18.65 dB instead of 28.73, without a word
    (qemu audit of 0.24.0): one scale index rounded the other way and the rANS stream desynchronised. Every decode
    now codes its symbols again with its tables and refuses a string they do not give back."""
    data = saicm.compress(HERE / "reference" / "astronaut-200x150.png", model=model, quality=4, engine="compressai")
    assert container.unpack(data).header.version == 1
    saicm.decompress(data)  # (its own tables: decodes)
    _one_table_index_off(monkeypatch)
    with pytest.raises(FormatError, match="does not decode consistently with the coder tables computed here"):
        saicm.decompress(data)


@pytest.mark.parametrize("q", [1, 4, 7])
def test_the_committed_format_1_files_still_decode(q):
    """The check refuses no file a writer made: saicm 0.2.0's files (AMD AVX2 CPU) decode here as before, wherever
    this machine computes the writer's tables (its encode gives the file's bytes: elsewhere the q4 file is refused,
    rightly, as under qemu's SSE4.2 CPU or oneDNN held to SSE4.1)."""
    ref = HERE / "reference" / f"astronaut-200x150-v5-q{q}.saicm"
    if saicm.compress(HERE / "reference" / "astronaut-200x150.png", model=V5, quality=q,
                      engine="compressai") != ref.read_bytes():
        pytest.skip("this machine's float kernels compute other coder tables than the writer's (format 1 is not "
                    "portable)")
    assert saicm.decompress(ref).size == (200, 150)


def test_the_encoder_refuses_escapes_whose_nibble_count_would_not_end():
    """CompressAI's encoder counts an escaped value's 4-bit chunks with 32-bit shifts: from a raw value of 2**28 on
    the count never ended (a shift by 32 is a shift by 0 on x86), and the encoder, or the decoder's check of what it
    decoded, looped for good. One table of 10 (max value 8) at offset −4: symbol 2**27 + 3 is the largest raw value
    below 2**28 (2**28 − 2), 2**27 + 4 the first at it."""
    from saicm.entropy.bounded import _encoder_fits

    n, sizes, offsets = 64, [10], [-4]
    assert _encoder_fits([0] * (n - 1) + [2**27 + 3], [0] * n, sizes, offsets)
    assert not _encoder_fits([0] * (n - 1) + [2**27 + 4], [0] * n, sizes, offsets)
    assert not _encoder_fits([0] * (n - 1) + [-(2**27) - 4 - 1], [0] * n, sizes, offsets)  # raw −2·v − 1 = 2**28 + 1
    assert _encoder_fits([0] * (n - 1) + [-(2**27) + 4 - 4], [0] * n, sizes, offsets)  # v = −2**27 + 4: raw < 2**28
