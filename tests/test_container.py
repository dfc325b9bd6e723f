import struct
import zlib

import pytest

from saicm.codec import container
from saicm.errors import FormatError


def sample_stream(alpha=None):
    h = container.Header(model="mse-x", weights_sha=bytes(range(8)), quality=3, height=17, width=33,
                         pad_bottom=47, pad_right=31, gray=True, shapes=[(1, 1)])
    return container.Stream(header=h, strings=[b"\x01\x02\x03", b""], alpha=alpha)


def test_round_trip_keeps_every_field():
    s = sample_stream(alpha=zlib.compress(b"\x00" * (17 * 33)))
    back = container.unpack(container.pack(s))
    assert back == s


def test_layout_starts_with_magic_and_version_and_ends_with_crc():
    data = container.pack(sample_stream())
    assert data[:5] == b"SAICM" and data[5] == container.VERSION
    assert struct.unpack(">I", data[-4:])[0] == zlib.crc32(data[:-4])


def test_wrong_magic():
    data = bytearray(container.pack(sample_stream()))
    data[0:5] = b"PNG\r\n"
    with pytest.raises(FormatError, match="magic"):
        container.unpack(bytes(data))


def test_unknown_version():
    data = bytearray(container.pack(sample_stream()))
    data[5] = 99
    with pytest.raises(FormatError, match="version 99"):
        container.unpack(bytes(data))


@pytest.mark.parametrize("pos", [7, 20, -6])
def test_any_flipped_byte_is_a_crc_mismatch(pos):
    data = bytearray(container.pack(sample_stream()))
    data[pos] ^= 0x40
    with pytest.raises(FormatError, match="CRC"):
        container.unpack(bytes(data))


@pytest.mark.parametrize("keep", [0, 3, 6, 12, 30])
def test_truncated(keep):
    data = container.pack(sample_stream())[:keep]
    with pytest.raises(FormatError):
        container.unpack(data)


def test_valid_crc_but_inconsistent_lengths_is_caught():
    good = container.pack(sample_stream())
    body = bytearray(good[:-4])
    body += b"junk"
    with pytest.raises(FormatError, match="trailing"):
        container.unpack(bytes(body) + struct.pack(">I", zlib.crc32(body)))


def test_reserved_flag_bits_are_refused():
    """Bits 2-7 of the flags were ignored: two readers of the documented format could disagree on such a file."""
    data = bytearray(container.pack(sample_stream()))
    pos = 5 + 1 + 1 + len("mse-x") + 8 + 1  # magic, version, name length, name, weights, quality
    assert data[pos] == container.FLAG_GRAY
    for bit in (4, 128):
        body = bytearray(data[:-4])
        body[pos] |= bit
        with pytest.raises(FormatError, match="reserved flag bits"):
            container.unpack(bytes(body) + struct.pack(">I", zlib.crc32(body)))


def test_an_alpha_plane_with_bytes_after_its_zlib_stream_is_refused():
    from saicm.codec.limits import check_alpha

    plane = zlib.compress(b"\x80" * (17 * 33))
    check_alpha(sample_stream(alpha=plane))
    with pytest.raises(FormatError, match="corrupt alpha plane"):
        check_alpha(sample_stream(alpha=plane + b"\x00"))


@pytest.mark.parametrize("keep", range(5, 10))
def test_a_file_of_its_magic_and_a_few_bytes_is_truncated_not_a_crash(keep):
    """Below magic + version + CRC, every saicm format says "truncated file": without the length check, the magic
    alone (5 bytes) crashed the parsers on the missing version byte (IndexError), and 6-9 bytes were called CRC
    mismatches (mutation audit of session 57)."""
    from saicm.video import bitstream

    for data, read in ((container.pack(sample_stream()), container.unpack),
                       (bitstream.MAGIC + b"\x01" + b"\x00" * 40, bitstream.unpack),
                       (container.HUMAN_MAGIC + b"\x02" + b"\x00" * 40, container.unpack_human)):
        with pytest.raises(FormatError, match="^truncated"):
            read(data[:keep])


def test_bytes_after_a_stream_that_are_no_human_layer_are_named_trailing_bytes():
    """What follows a machine layer is a human-layer segment or nothing: other bytes were refused as "not a saicm
    human layer (wrong magic)" when split_layers' check was deleted, and no test noticed (mutation audit of
    session 57)."""
    data = container.pack(sample_stream())
    assert container.split_layers(data) == (data, None)
    for junk in (b"junk", b"\x00" * 40, b"SAICM"):
        with pytest.raises(FormatError, match=r"^trailing bytes after payload \(not a human layer\)$"):
            container.split_layers(data + junk)
    assert container.split_layers(data + b"SAICH\x02")[1] == b"SAICH\x02"  # (a segment: verified by its reader)


@pytest.mark.parametrize("version", [container.STRIPS_VERSION, container.PORTABLE_VERSION])
def test_striped_versions_carry_strip_rows_and_a_u32_string_count(version):
    """Versions 2 and 3 write ``strip rows`` (u16) and a u32 string count after the shapes: format 2 (PyTorch's
    large images) written with version 1's u8 count went unnoticed, since only a large image writes it (mutation
    audit of session 57)."""
    s = sample_stream()
    s.header.version, s.header.strip_rows = version, 3
    s.strings = [b"z", b"y0", b"y1", b""]
    data = container.pack(s)
    assert container.unpack(data) == s
    shapes_end = 5 + 1 + 1 + len("mse-x") + 8 + 1 + 1 + 4 + 4 + 2 + 2 + 1 + 1 + 2 * 2
    assert data[shapes_end: shapes_end + 6] == struct.pack(">HI", 3, 4)


def test_a_model_name_of_255_bytes_is_written_and_one_of_256_refused_in_one_line():
    """The name's length is a u8: ``> 255`` → ``> 256`` let a 256-byte name reach struct.pack (struct.error, not a
    FormatError) with no test failing (mutation audit of session 57)."""
    stream = sample_stream()
    layer = container.HumanLayer(model="", weights_sha=bytes(8), base_sha=bytes(8), machine_sha=bytes(8), quality=1,
                                 shapes=[(1, 1)], strings=[b"z"])
    for named, obj, pack, unpack in ((stream.header, stream, container.pack, container.unpack),
                                     (layer, layer, container.pack_human, container.unpack_human)):
        named.model = "é" * 127 + "m"  # 255 bytes of UTF-8
        assert unpack(pack(obj)) == obj
        named.model += "m"
        with pytest.raises(FormatError, match="^model name longer than 255 bytes$"):
            pack(obj)
