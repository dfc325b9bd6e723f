"""Reading images for the encoder and writing decodes: unusual but legitimate inputs, Pillow's failures, the
global Pillow setting saicm must not disturb (found by an audit of session 38)."""

import gc
import io
import os
import threading
import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image, ImageFile

from saicm.codec import image_io, limits
from saicm.errors import ImageError, ModelError


def _png(tmp_path, array, name="x.png", **save):
    p = tmp_path / name
    Image.fromarray(array).save(p, **save)
    return p


def test_reading_an_image_leaves_pillows_bomb_check_alone(tmp_path, monkeypatch):
    """The bomb check is a Pillow global: saicm turned it off around every read, and two reads overlapping in
    threads left it off for the whole process. With the default limit (below Pillow's) it is not touched."""
    p = _png(tmp_path, np.zeros((8, 8, 3), np.uint8))
    seen, real_open = [], Image.open

    def spy(*a, **kw):
        seen.append(Image.MAX_IMAGE_PIXELS)
        return real_open(*a, **kw)

    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 80_000_000)
    monkeypatch.setattr(Image, "open", spy)
    image_io.load_image(p)
    assert seen == [80_000_000] and Image.MAX_IMAGE_PIXELS == 80_000_000


def test_overlapping_reads_above_pillows_limit_restore_it(monkeypatch):
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)
    a, b = limits.pillow_checks_off(10**9), limits.pillow_checks_off(10**9)
    a.__enter__()
    b.__enter__()
    assert Image.MAX_IMAGE_PIXELS is None
    a.__exit__(None, None, None)
    assert Image.MAX_IMAGE_PIXELS is None  # b still reads
    b.__exit__(None, None, None)
    assert Image.MAX_IMAGE_PIXELS == 1000  # each saving its own value left None here
    with limits.pillow_checks_off(500):  # within Pillow's limit: untouched
        assert Image.MAX_IMAGE_PIXELS == 1000


def test_threads_reading_large_limits_leave_pillows_limit_as_it_was(tmp_path, monkeypatch):
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)  # below the images: the switch is used
    paths = [_png(tmp_path, np.full((40, 40, 3), i, np.uint8), f"{i}.png") for i in range(4)]

    def work(p):
        for _ in range(20):
            image_io.load_image(p, max_pixels=10**9)

    ts = [threading.Thread(target=work, args=(p,)) for p in paths]
    for t in ts:
        t.start()
    for t in ts:
        t.join(60)
    assert Image.MAX_IMAGE_PIXELS == 1000


def test_any_failure_of_pillow_on_a_damaged_file_is_one_line(tmp_path, monkeypatch):
    """A damaged AVIF made Pillow raise RuntimeError, which was a traceback and stopped a whole folder."""
    p = _png(tmp_path, np.zeros((8, 8, 3), np.uint8))

    def broken(self):
        raise RuntimeError("Failed to decode image: Missing or empty image item")

    monkeypatch.setattr(ImageFile.ImageFile, "load", broken)
    with pytest.raises(ImageError, match="RuntimeError: Failed to decode image"):
        image_io.load_image(p)


def test_pil_images_premultiplied_or_closed():
    rgba = np.zeros((4, 4, 4), np.uint8)
    rgba[..., 3] = 128
    im = Image.fromarray(rgba, "RGBA").convert("RGBa")
    got = image_io.load_image(im)
    assert got.alpha is not None and not got.gray and (got.alpha == 128).all()
    la = Image.fromarray(rgba[..., [0, 3]], "LA").convert("La")
    got = image_io.load_image(la)
    assert got.gray and (got.alpha == 128).all()
    closed = Image.fromarray(rgba[..., :3])
    closed.close()
    with pytest.raises(ImageError, match="closed"):
        image_io.load_image(closed)


def test_a_pil_image_closed_before_its_pixels_were_read_is_said_so(tmp_path):
    """A notebook's ``with Image.open(p) as im:`` left in one cell, ``saicm.compress(im)`` in the next: "cannot read
    image (AssertionError: )", Pillow's empty assertion. One loaded inside the block is coded."""
    Image.new("RGB", (8, 6), (10, 20, 30)).save(tmp_path / "a.png")
    with Image.open(tmp_path / "a.png") as im:
        pass
    with pytest.raises(ImageError, match=r"^the PIL image was closed before its pixels were read: pass its path, or "
                                         r"call its load\(\) inside the 'with Image.open\(...\)' block$"):
        image_io.load_image(im)
    with Image.open(tmp_path / "a.png") as im:
        im.load()
    assert image_io.load_image(im).rgb[0, 0].tolist() == [10, 20, 30]


@pytest.mark.parametrize("mode", ["RGB", "L"])
def test_a_png_colour_key_is_kept_as_alpha(tmp_path, mode):
    a = np.zeros((8, 8, 3) if mode == "RGB" else (8, 8), np.uint8)
    a[:4] = 200
    key = (200, 200, 200) if mode == "RGB" else 200
    got = image_io.load_image(_png(tmp_path, a, transparency=key))
    assert got.alpha is not None and (got.alpha[:4] == 0).all() and (got.alpha[4:] == 255).all()
    assert got.gray == (mode == "L")


def test_a_sixteen_bit_grey_png_colour_key_is_kept_as_alpha(tmp_path):
    """A 16-bit grey PNG's tRNS colour key was dropped in silence (docs/usage.md: a PNG's colour-key transparency is
    stored; found by property tests)."""
    a = np.full((8, 8), 40000, np.uint16)
    a[:4] = 1000
    Image.fromarray(a).save(tmp_path / "k.png", transparency=1000)
    with Image.open(tmp_path / "k.png") as im:
        assert im.mode.startswith("I") and im.info.get("transparency") == 1000  # (what Pillow reads)
    got = image_io.load_image(tmp_path / "k.png")
    assert got.gray and got.alpha is not None and (got.alpha[:4] == 0).all() and (got.alpha[4:] == 255).all()
    Image.fromarray(a).save(tmp_path / "none.png", transparency=7)  # a key no pixel has: opaque
    assert image_io.load_image(tmp_path / "none.png").alpha is None


def test_a_sixteen_bit_grey_and_alpha_png_stays_grey(tmp_path):
    """Pillow reads a 16-bit grey+alpha PNG as RGBA: it was coded as colour and decoded as RGBA, where the docs say
    grey comes back grey (the encode-property audit). Its grey and its alpha are kept, at 8 bits."""
    import struct
    import zlib

    w, h = 5, 3
    grey = np.arange(w * h, dtype=np.uint16).reshape(h, w) * 4000
    alpha = np.where(np.arange(w) % 2, 65535, 0).astype(np.uint16)[None].repeat(h, 0)
    raw = b"".join(b"\0" + np.stack([grey[y], alpha[y]], -1).astype(">u2").tobytes() for y in range(h))

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    (tmp_path / "la16.png").write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 16, 4, 0, 0, 0))
                                        + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))
    with Image.open(tmp_path / "la16.png") as im:
        assert im.mode == "RGBA"  # (what Pillow reads)
    got = image_io.load_image(tmp_path / "la16.png")
    assert got.gray and (got.rgb[..., 0] == got.rgb[..., 2]).all()
    assert (got.rgb[..., 0] == (grey >> 8)).all() and (got.alpha == (alpha >> 8)).all()
    assert image_io.to_pil(got).mode == "LA"


def test_a_tile_s_raw_mode_is_read_from_pillow_10_s_plain_tuples_too():
    """Pillow 10 (saicm's lowest) holds an opened image's tiles as plain tuples, Pillow 11 on as named tuples with
    ``.args``: read by ``.args`` alone, a 16-bit grey+alpha PNG was still coded as colour on Pillow 10."""
    from collections import namedtuple

    assert image_io._tile_rawmode(("zip", (0, 0, 4, 3), 41, "LA;16B")) == "LA;16B"  # (Pillow 10)
    tile = namedtuple("_Tile", "codec_name extents offset args")
    assert image_io._tile_rawmode(tile("zip", (0, 0, 4, 3), 41, "LA;16B")) == "LA;16B"  # (Pillow 11 on)
    assert image_io._tile_rawmode(tile("raw", (0, 0, 4, 3), 8, ("LA;16B", 0, 1))) == "LA;16B"
    assert image_io._tile_rawmode(("raw", (0, 0, 4, 3))) is None


def test_high_bit_depth_grey_is_read_at_its_depth(tmp_path):
    """A dark 16-bit PGM (every sample ≤ 255) came out 257× too bright; float and 32-bit TIFFs were clipped."""
    dark = np.full((4, 4), 200, np.uint16)
    pgm = tmp_path / "dark.pgm"
    pgm.write_bytes(b"P5\n4 4\n65535\n" + dark.astype(">u2").tobytes())
    with pytest.warns(UserWarning, match="stay below 4096"):  # (as dark as a 12-bit sensor's unscaled samples)
        assert (image_io.load_image(pgm).rgb == 1).all()  # 200/65535·255 = 0.78
    Image.fromarray(np.full((4, 4), 100.0, np.float32), "F").save(tmp_path / "f.tif")
    with pytest.raises(ImageError, match="read as 0-1"):
        image_io.load_image(tmp_path / "f.tif")
    Image.fromarray(np.full((4, 4), 70000, np.int32), "I").save(tmp_path / "i.tif")
    with pytest.raises(ImageError, match="0-65535"):
        image_io.load_image(tmp_path / "i.tif")
    Image.fromarray(np.full((4, 4), 0.5, np.float32), "F").save(tmp_path / "h.tif")
    assert (image_io.load_image(tmp_path / "h.tif").rgb == 128).all()


def test_decodes_are_written_only_in_formats_that_keep_them(tmp_path):
    for bad in ("x.gif", "x.ico", "x.pdf", "x.tga", "x"):
        with pytest.raises(ImageError, match="cannot write"):
            image_io.output_format(tmp_path / bad)
    la = Image.fromarray(np.dstack([np.full((4, 4), 9, np.uint8), np.full((4, 4), 7, np.uint8)]), "LA")
    with pytest.warns(UserWarning, match="alpha is dropped"):
        image_io.save_image(la, tmp_path / "la.bmp")  # was: cannot write mode LA as BMP
    with Image.open(tmp_path / "la.bmp") as im:
        assert im.mode == "L" and im.getpixel((0, 0)) == 9
    with pytest.warns(UserWarning, match="alpha is dropped"):
        image_io.save_image(la, tmp_path / "la.pgm")
    with Image.open(tmp_path / "la.pgm") as im:
        assert im.mode == "L"


def test_folder_suffixes_cover_common_image_files(tmp_path):
    for name in ("a.avif", "b.jfif", "c.JPE", "d.tga", "e.png"):
        (tmp_path / name).write_bytes(b"x")
        assert image_io.is_image_file(tmp_path / name)


def test_a_too_wide_image_says_the_limit_before_padding():
    with pytest.raises(ModelError, match="at most 65472 before padding"):
        image_io.load_padded(np.zeros((1, 65500), np.uint8), 64)


def test_a_multi_frame_file_is_closed_after_reading(tmp_path):
    frames = [Image.fromarray(np.full((4, 4, 3), i * 50, np.uint8)) for i in range(3)]
    p = tmp_path / "a.gif"
    frames[0].save(p, save_all=True, append_images=frames[1:])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        image_io.load_image(p)
        gc.collect()
    from saicm.errors import SaicmWarning

    kinds = [w.category for w in caught]
    assert SaicmWarning in kinds and ResourceWarning not in kinds  # "only the first frame", and no open file


def test_array_layouts_that_are_not_images_say_what_to_pass():
    with pytest.raises(ImageError, match=r"channels first\? pass a.transpose\(1, 2, 0\)"):
        image_io.load_image(np.zeros((3, 8, 10), np.uint8))
    with pytest.raises(ImageError, match="a batch"):
        image_io.load_image(np.zeros((2, 8, 10, 3), np.uint8))
    assert image_io.load_image(np.zeros((3, 8, 3), np.uint8)).rgb.shape == (3, 8, 3)  # 3 rows of RGB: an image


def test_a_uint16_array_of_camera_bit_depth_is_named_before_it_codes_black():
    """12-bit samples in uint16 (a camera's raw frames) were coded as a nearly black frame without a word."""
    import warnings

    import saicm

    twelve = np.full((8, 8, 3), 3000, np.uint16)
    with pytest.warns(saicm.SaicmWarning, match=r"stay below 4096.*a << \(16 - bits\)"):
        got = image_io.load_image(twelve)
    assert (got.rgb == 12).all()  # still read as documented: 3000/65535·255
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        image_io.load_image(twelve << 4)  # scaled to 0-65535: no warning
        image_io.load_image(np.zeros((8, 8), np.uint16))  # an all-black frame is just black


def _encoded(fmt, seed=0, **kw):
    import io

    from .conftest import natural_image

    buf = io.BytesIO()
    Image.fromarray(natural_image(40, 56, seed=seed)).save(buf, fmt, **kw)
    return buf.getvalue()


@pytest.mark.parametrize("fmt,kw", [("PNG", {}), ("JPEG", {}), ("JPEG", {"progressive": True}),
                                    ("JPEG", {"restart_marker_rows": 1}), ("BMP", {}), ("TIFF", {})])
def test_image_end_finds_where_the_first_image_ends(fmt, kw):
    one, two = _encoded(fmt, 0, **kw), _encoded(fmt, 1, **kw)
    expected = None if fmt == "TIFF" else len(one)  # (TIFF does not say: no claim)
    assert image_io.image_end(one, fmt) == expected
    assert image_io.image_end(one + two, fmt) == expected
    assert image_io.image_end(one[: len(one) // 2], fmt) is None  # cut short: no claim


@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "BMP"])
def test_image_end_of_every_cut_of_an_image_is_none(fmt):
    """Cut anywhere before its end, an image makes no claim, and reading it never raises (one cut in the middle
    was tested: a JPEG cut one byte after a marker's 0xFF raised IndexError with ``pos + 1 < n`` moved by one;
    mutation audit of 0.24.0)."""
    one = _encoded(fmt)
    assert [k for k in range(len(one)) if image_io.image_end(one[:k], fmt) is not None] == []


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=400), st.sampled_from(["PNG", "JPEG", "BMP"]))
def test_image_end_of_any_bytes_is_none_or_within_them(data, fmt):
    end = image_io.image_end(data, fmt)
    assert end is None or 0 < end <= len(data)


def test_image_end_reads_past_fill_bytes_and_only_trusts_a_bmp_size_that_is_there():
    """Known values the round trips above never reach (mutation audit of 0.24.0): 0xFF fill bytes before a JPEG
    marker (allowed by the standard, read by Pillow) were stepped back over, so a pipe of such JPEGs gave no
    warning; a BMP whose header size is 0 (some writers leave it so) ended at byte 0, so one BMP alone on a pipe
    was said to be followed by all of its own bytes; a BMP header cut before its size field was read."""
    jpeg = _encoded("JPEG")
    for fill in (b"\xff", b"\xff\xff"):  # fill bytes before the first segment's marker
        filled = jpeg[:2] + fill + jpeg[2:]
        Image.open(io.BytesIO(filled)).load()  # (a valid JPEG)
        assert image_io.image_end(filled, "JPEG") == len(filled)
        assert image_io.image_end(filled + jpeg, "JPEG") == len(filled)
    exif = _encoded("JPEG", exif=b"Exif\0\0" + bytes(1000))  # a segment longer than 255 bytes (a camera's EXIF)
    assert image_io.image_end(exif + jpeg, "JPEG") == len(exif)
    # the markers that carry no length (T.81 B.1.1.3: RST0..RST7, TEM) are stepped over as two bytes
    for marker in (0xD0, 0xD7, 0x01):
        assert image_io.image_end(bytes([0xFF, 0xD8, 0xFF, marker, 0xFF, 0xD9]), "JPEG") == 6
    assert image_io.image_end(bytes([0xFF, 0xD8, 0xFF, 0xCF, 0, 2, 0xFF, 0xD9]), "JPEG") == 8  # (SOF15: a length)
    # in entropy-coded data a stuffed 0xFF00 or a restart marker is stepped over as two bytes, not three
    sos = bytes([0xFF, 0xD8, 0xFF, 0xDA, 0, 2, 0x12])
    for inside in (b"\xff\x00", b"\xff\xd0", b"\xff\xd7\x34\xff\x00"):
        assert image_io.image_end(sos + inside + b"\xff\xd9", "JPEG") == len(sos + inside) + 2
    bmp = _encoded("BMP")
    unsized = bmp[:2] + bytes(4) + bmp[6:]
    Image.open(io.BytesIO(unsized)).load()  # (Pillow reads it)
    assert image_io.image_end(unsized, "BMP") is None and image_io.image_end(unsized + bmp, "BMP") is None
    assert image_io.image_end(b"BM\x06\0\0\0", "BMP") == 6  # the shortest header that says its size
    assert image_io.image_end(b"BM\x05\0\0", "BMP") is None  # cut inside the size field: no claim


@pytest.mark.parametrize("head, begins", [
    (b"\x89PNG\r\n\x1a\n\0\0", True), (b"\xff\xd8\xff\xe0", True), (b"BM\x36\0", True), (b"GIF89a", True),
    (b"II*\x00", True), (b"MM\x00*", True), (b"RIFF\0\0\0\0WEBP", True),
    (b"P6\n64 48\n255\n", True), (b"P1 8 8", True), (b"P6\n", True), (b"P7\t", True),  # PNM, P1..P7
    (b"P6", False), (b"P8\n", False), (b"P0\n", False), (b"Q6\n", False), (b"P6x", False), (b"\n6\n", False),
    (b"", False), (b"\x89PN", False)])
def test_what_begins_another_image_on_a_pipe(head, begins):
    """The PNM branch of the signature check had no test: its three conditions could each be flipped (a PPM after
    a PNG on a pipe said nothing, or a trailer starting 'x6 ' was taken for an image) unnoticed (mutation audit of
    0.24.0)."""
    assert image_io._image_signature(head) is begins


def _through_a_pipe(tmp_path, data: bytes, **kw):
    fifo = tmp_path / "pipe"
    if not fifo.exists():
        os.mkfifo(fifo)
    writer = threading.Thread(target=lambda: open(fifo, "wb").write(data), daemon=True)
    writer.start()
    try:
        return image_io.load_image(str(fifo), **kw)
    finally:
        writer.join(10)


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs POSIX FIFOs")
def test_a_pipe_is_read_to_its_limit_and_an_empty_one_is_named(tmp_path):
    """A pipe is read to 8 bytes per allowed pixel plus 1 MiB: one byte more is refused before Pillow sees it, an
    empty pipe is named as such. Neither refusal had a test: each could be deleted, or the bound moved by one, and
    the pipe fell through to Pillow's "cannot identify" (mutation audit of 0.24.0)."""
    with pytest.raises(ImageError, match="empty input"):
        _through_a_pipe(tmp_path, b"")
    limit = 8 * 64 + (1 << 20)
    with pytest.raises(ImageError, match=f"more than {limit:,} bytes: not an image within the pixel limit"):
        _through_a_pipe(tmp_path, bytes(limit + 1), max_pixels=64)
    with pytest.raises(ImageError) as e:  # exactly the limit is read and handed to Pillow, which refuses zeros
        _through_a_pipe(tmp_path, bytes(limit), max_pixels=64)
    assert "more than" not in str(e.value) and "empty" not in str(e.value)
    img = _through_a_pipe(tmp_path, _encoded("PNG"), max_pixels=40 * 56)  # (and an image within it is read)
    assert img.size == (40, 56)


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs POSIX FIFOs")
def test_several_images_on_one_pipe_code_the_first_and_say_so(tmp_path, tiny_model):
    """``ffmpeg -f image2pipe … | saicm compress /dev/stdin`` coded the first frame and dropped the rest in silence
    (edge-camera audit of 0.22.0)."""
    import subprocess
    import sys

    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    # (a trailing newline, as 20 of 370 shared photos end, is not another image: no word)
    for images, warned in (([_encoded("PNG", 0), _encoded("PNG", 1)], True), ([_encoded("PNG", 0)], False),
                           ([_encoded("JPEG", 0), _encoded("JPEG", 1)], True), ([_encoded("JPEG", 0), b"\n"], False),
                           ([_encoded("PNG", 0), b"\n", _encoded("BMP", 1)], True)):
        writer = threading.Thread(target=lambda: open(fifo, "wb").write(b"".join(images)), daemon=True)
        writer.start()
        r = subprocess.run([sys.executable, "-m", "saicm", "compress", str(fifo), "-o", str(tmp_path / "x.saicm"),
                            "--model", str(tiny_model), "--existing", "overwrite"], capture_output=True, text=True,
                           timeout=300, env={k: v for k, v in os.environ.items() if k != "PYTHONWARNINGS"})
        writer.join(10)
        assert r.returncode == 0, r.stderr
        assert ("bytes follow the first image" in r.stderr) is warned, r.stderr


def _wide_gamut_profile() -> bytes:
    """Pillow's sRGB profile with its red and green primaries swapped: a profile whose colours are not sRGB's."""
    from PIL import ImageCms

    icc = bytearray(ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes())
    entries = {bytes(icc[132 + 12 * i: 136 + 12 * i]): 132 + 12 * i
               for i in range(int.from_bytes(icc[128:132], "big"))}
    r, g = entries[b"rXYZ"], entries[b"gXYZ"]
    icc[r + 4: r + 12], icc[g + 4: g + 12] = icc[g + 4: g + 12], icc[r + 4: r + 12]
    return bytes(icc)


def test_colours_in_a_profile_other_than_srgb_are_warned_of(tmp_path):
    """An Adobe RGB or Display P3 photo was coded as its numbers and decoded to a PNG without a profile: a viewer
    showed other colours, and nothing said so."""
    from PIL import ImageCms

    import saicm

    pixels = np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    wide, srgb = tmp_path / "wide.jpg", tmp_path / "srgb.jpg"
    Image.fromarray(pixels).save(wide, icc_profile=_wide_gamut_profile())
    Image.fromarray(pixels).save(srgb, icc_profile=ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes())
    with pytest.warns(saicm.SaicmWarning, match="wide.jpg: its colours are in the ICC profile .*not sRGB"):
        saicm.compress(wide, quality=1)
    assert image_io.profile_note(image_io.load_image(wide)) == "sRGB built-in"  # (the swapped profile keeps its name)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        saicm.compress(srgb, quality=1)  # (sRGB, or no profile: nothing to say)
        saicm.compress(pixels, quality=1)


def test_a_profile_shared_by_many_images_is_compared_with_srgb_once(tmp_path, monkeypatch):
    """Every image with a profile other than sRGB is warned of, but the profile's colours are compared with sRGB's
    once per process, not once per image: building the colour transform cost ~2.8 ms of CPU per image, 6 % of
    coding a 320x240 image (a folder's images share a few profiles)."""
    from PIL import ImageCms

    import saicm

    calls = []
    real = ImageCms.profileToProfile
    monkeypatch.setattr(ImageCms, "profileToProfile", lambda *a, **k: calls.append(1) or real(*a, **k))
    if hasattr(image_io, "_profile_note"):  # (profiles other tests compared are not counted)
        image_io._profile_note.cache_clear()
    rng = np.random.default_rng(1)
    srgb = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    for i, icc in enumerate((_wide_gamut_profile(), _wide_gamut_profile(), srgb, srgb, _wide_gamut_profile())):
        Image.fromarray(rng.integers(0, 256, (32, 48, 3), dtype=np.uint8)).save(tmp_path / f"{i}.png", icc_profile=icc)
    with pytest.warns(saicm.SaicmWarning) as caught:
        for i in range(5):
            saicm.compress(tmp_path / f"{i}.png", quality=1)
    warned = sorted(str(w.message).split(":")[0] for w in caught if "ICC profile" in str(w.message))
    assert warned == [str(tmp_path / f"{i}.png") for i in (0, 1, 4)]  # (each file said, as before)
    assert len(calls) == 2  # (one comparison per profile)


def test_twelve_bit_samples_in_a_sixteen_bit_file_are_warned_of(tmp_path):
    """A 16-bit TIFF holding a 12-bit sensor's samples (all below 4096) coded as a nearly black image in silence;
    a uint16 array of the same values was warned of."""
    import saicm

    twelve = (np.arange(32 * 32, dtype=np.uint16).reshape(32, 32) * 4)  # 0..4092
    Image.fromarray(twelve).save(tmp_path / "sensor.tif")  # I;16
    with pytest.warns(saicm.SaicmWarning, match="sensor.tif: 16-bit samples .* stay below 4096: it reads as a nearly "
                                                 "black image"):  # (not "codes": eval, train and masks code nothing)
        got = image_io.load_image(tmp_path / "sensor.tif")
    assert got.rgb.max() == 16  # (read as 0-65535, as said)
    Image.fromarray(twelve << 4).save(tmp_path / "scaled.tif")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert image_io.load_image(tmp_path / "scaled.tif").rgb.max() > 250


def test_netpbm_outputs_hold_what_their_suffix_says(tmp_path):
    """A colour decode written as .pgm was a colour (P6) file, a grey one written as .ppm a grey (P5) one: readers
    that go by the suffix misread them. Colour into .pgm is refused; grey into .ppm is written as colour."""
    from saicm.errors import ImageError

    rgb = Image.fromarray(np.random.default_rng(0).integers(0, 256, (6, 5, 3), dtype=np.uint8))
    with pytest.raises(ImageError, match="cannot be written as .pgm .grey only.: name the output .ppm or .png"):
        image_io.save_image(rgb, tmp_path / "c.pgm")
    assert not (tmp_path / "c.pgm").exists()
    grey = Image.fromarray(np.arange(30, dtype=np.uint8).reshape(6, 5))
    image_io.save_image(grey, tmp_path / "g.ppm")
    assert (tmp_path / "g.ppm").read_bytes().startswith(b"P6")
    with Image.open(tmp_path / "g.ppm") as im:
        assert np.array_equal(np.asarray(im)[..., 1], np.asarray(grey))
    image_io.save_image(grey, tmp_path / "g.pgm")
    image_io.save_image(rgb, tmp_path / "c.ppm")
    assert (tmp_path / "g.pgm").read_bytes().startswith(b"P5") and (tmp_path / "c.ppm").read_bytes().startswith(b"P6")


def _srgb_with_red_scaled(factor: float) -> bytes:
    """Pillow's sRGB profile with its red primary's XYZ scaled by ``factor``: a profile a little off sRGB."""
    from PIL import ImageCms

    icc = bytearray(ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes())
    tags = {bytes(icc[132 + 12 * i: 136 + 12 * i]): int.from_bytes(icc[136 + 12 * i: 140 + 12 * i], "big")
            for i in range(int.from_bytes(icc[128:132], "big"))}
    at = tags[b"rXYZ"] + 8
    for k in range(3):
        v = int.from_bytes(icc[at + 4 * k: at + 4 * k + 4], "big", signed=True)
        icc[at + 4 * k: at + 4 * k + 4] = round(v * factor).to_bytes(4, "big", signed=True)
    return bytes(icc)


def test_a_profile_is_told_by_how_far_it_moves_colours():
    """PROFILE_SHIFT sits between sRGB's variants (at most 0.02 levels) and the nearest other profiles (2.9): a
    profile moving colours by half a level is not told, one moving them by about 2.4 levels is (mutation audit:
    thresholds of 0 and of 10 both passed the tests, which had only sRGB itself and primaries swapped)."""
    pixels = np.zeros((4, 4, 3), np.uint8)
    near = image_io.RGBImage(rgb=pixels, icc=_srgb_with_red_scaled(1.05), icc_mode="RGB")
    off = image_io.RGBImage(rgb=pixels, icc=_srgb_with_red_scaled(1.2), icc_mode="RGB")
    assert image_io.profile_note(near) is None
    assert image_io.profile_note(off) == "sRGB built-in"


def test_a_palette_image_in_another_profile_is_warned_of(tmp_path):
    """A palette PNG carries its profile as an RGB one does (mutation audit: leaving palettes out passed)."""
    import saicm

    pixels = np.random.default_rng(0).integers(0, 256, (32, 32, 3), dtype=np.uint8)
    Image.fromarray(pixels).quantize(16).save(tmp_path / "few.png", icc_profile=_wide_gamut_profile())
    assert Image.open(tmp_path / "few.png").mode == "P"
    with pytest.warns(saicm.SaicmWarning, match="few.png: its colours are in the ICC profile"):
        saicm.compress(tmp_path / "few.png", quality=1)


def test_sixteen_bit_samples_are_told_only_below_4096_and_not_when_black(tmp_path):
    """The 12-bit warning's bounds (mutation audit: warning at 4096, and for an all-black image, both passed): a
    largest sample of 4095 is a 12-bit sensor's, 4096 is not; an image all 0 is black in any bit depth."""
    import saicm

    for top, told in ((4095, True), (4096, False), (0, False)):
        a = np.full((8, 8), top, np.uint16)
        a[0, 0] = 0
        Image.fromarray(a).save(tmp_path / f"s{top}.tif")
        with warnings.catch_warnings(record=True) as got:
            warnings.simplefilter("always")
            image_io.load_image(tmp_path / f"s{top}.tif")
        said = [w for w in got if issubclass(w.category, saicm.SaicmWarning) and "below 4096" in str(w.message)]
        assert bool(said) is told, top


@pytest.mark.parametrize("orientation", range(1, 9))
def test_the_oriented_size_is_the_size_load_image_gives(tmp_path, orientation):
    """video's folder probe sizes a clip by oriented_size: it must agree with load_image for every EXIF orientation
    (mutation audit: counting only 6 and 8 as turned passed; a frame folder tagged 5 or 7, the transposes, would be
    probed with its sides swapped)."""
    exif = Image.Exif()
    exif[0x0112] = orientation
    Image.fromarray(np.zeros((20, 36, 3), np.uint8)).save(tmp_path / "f.jpg", exif=exif)
    with Image.open(tmp_path / "f.jpg") as im:
        assert image_io.oriented_size(im) == image_io.load_image(tmp_path / "f.jpg").size[::-1]  # (H, W)
    # a TIFF's orientation tag, too (Pillow 11 on opens it at its turned size: it was turned twice)
    Image.fromarray(np.zeros((20, 36, 3), np.uint8)).save(tmp_path / "f.tif", exif=exif, compression="tiff_lzw")
    with Image.open(tmp_path / "f.tif") as im:
        assert image_io.oriented_size(im) == image_io.load_image(tmp_path / "f.tif").size[::-1]


@pytest.mark.parametrize("dtype", [">u2", ">f4", ">i4"])
def test_an_array_in_the_other_byte_order_reads_as_its_native_twin(dtype):
    """A big-endian uint16 array (astropy's FITS data, ``np.frombuffer(raw, ">u2")`` of a 16-bit PGM) was refused
    as "integer arrays are read as 0-255 (uint16: 0-65535), this >u2 one spans …" (found by property tests)."""
    native = np.dtype(dtype).newbyteorder("=")
    top = 65535 if native.kind == "u" else 1 if native.kind == "f" else 255
    a = (np.linspace(0, 1, 8 * 6 * 3).reshape(8, 6, 3) * top).astype(native)
    assert np.array_equal(image_io.load_image(a.astype(dtype)).rgb, image_io.load_image(a).rgb)


@pytest.mark.parametrize("make", ["quantize", "convert"])
def test_a_palette_image_with_an_rgba_palette_keeps_its_alpha(make):
    """``quantize()`` or ``convert("P")`` of an RGBA image gives a P image whose palette holds the alpha (no
    ``transparency`` entry): its transparent pixels were coded opaque, in silence (found by property tests)."""
    rgba = np.zeros((8, 8, 4), np.uint8)
    rgba[..., 0] = 200
    rgba[:4, :, 3] = 255
    im = Image.fromarray(rgba, "RGBA")
    p = im.quantize(4) if make == "quantize" else im.convert("P")
    assert p.mode == "P" and "transparency" not in p.info
    got = image_io.load_image(p)
    assert got.alpha is not None and (got.alpha[:4] == 255).all() and (got.alpha[4:] == 0).all()
    opaque = Image.fromarray(rgba[..., :3], "RGB").quantize(4)
    assert image_io.load_image(opaque).alpha is None


@pytest.mark.parametrize("mode", ["L", "RGBA", "I;16", "P", "RGB"])
@pytest.mark.parametrize("orientation", [3, 5, 6, 7, 8])
def test_an_uncompressed_tiff_turned_by_its_orientation_tag_reads_as_from_its_bytes(tmp_path, mode, orientation):
    """Pillow 11 on memory-maps an uncompressed grey, palette, RGBA or 16-bit TIFF read from a path at its transposed
    size: with an orientation tag of 5 to 8, ``saicm compress scan.tif`` coded scrambled pixels of the stored
    size in silence, where the file's bytes gave the turned image (found by property tests)."""
    from .conftest import natural_image

    rgb = natural_image(20, 36)
    im = {"L": lambda: Image.fromarray(rgb[..., 0]), "RGBA": lambda: Image.fromarray(rgb).convert("RGBA"),
          "I;16": lambda: Image.fromarray(rgb[..., 0].astype(np.uint16) * 257),
          "P": lambda: Image.fromarray(rgb).quantize(16), "RGB": lambda: Image.fromarray(rgb)}[mode]()
    exif = Image.Exif()
    exif[0x0112] = orientation
    path = tmp_path / "scan.tif"
    im.save(path, exif=exif.tobytes())
    got = image_io.load_image(path)
    assert got.size == ((36, 20) if orientation >= 5 else (20, 36))
    assert np.array_equal(got.rgb, image_io.load_image(path.read_bytes()).rgb)


def test_a_turned_tiff_above_the_pixel_limit_is_refused_before_its_file_is_read(tmp_path, monkeypatch):
    """A turned uncompressed TIFF read from a path is read from its bytes (0.28.0): the whole file was read into
    memory before its size was checked, so an image above --max-pixels (its file as large as its pixels) cost its
    size in memory before the one-line refusal. The header is checked first."""
    from pathlib import Path

    from saicm.codec.limits import OversizedImage

    exif = Image.Exif()
    exif[0x0112] = 6
    Image.new("L", (64, 48)).save(tmp_path / "big.tif", exif=exif.tobytes())
    read = []
    real = Path.read_bytes
    monkeypatch.setattr(Path, "read_bytes", lambda self: read.append(self.name) or real(self))
    with pytest.raises(OversizedImage, match="big.tif"):
        image_io.load_image(tmp_path / "big.tif", max_pixels=1000)
    assert read == []
    assert image_io.load_image(tmp_path / "big.tif", max_pixels=64 * 48).size == (64, 48)
    assert read == ["big.tif"]


def test_a_folder_of_turned_uncompressed_tiff_frames_reads_as_their_bytes(tmp_path):
    """The frames of a clip given as a folder were opened by path too: a grey TIFF tagged 6 came out scrambled."""
    from saicm.video.io import iter_clip

    from .conftest import natural_image

    exif = Image.Exif()
    exif[0x0112] = 6
    for i in range(2):
        Image.fromarray(natural_image(20, 36, seed=i)[..., 0]).save(tmp_path / f"{i:03d}.tif", exif=exif.tobytes())
    info, _, frames = iter_clip(tmp_path)
    frames = list(frames)
    assert (info.width, info.height) == (20, 36)
    for i, f in enumerate(frames):
        assert np.array_equal(f, image_io.load_image((tmp_path / f"{i:03d}.tif").read_bytes()).rgb)


def _grey_profile(gamma: float | None) -> bytes:
    """A minimal ICC v2 grey (GRAY) display profile of the given gamma, named "Gray Gamma {gamma}" (Pillow makes no
    grey profiles; Photoshop's grey JPEGs carry such a one, Gray Gamma 1.8 or Dot Gain 20 %); None: sRGB's own
    tone curve (the red one of Pillow's sRGB profile), named "sRGB grey"."""
    import struct

    from PIL import ImageCms

    def s15(v):
        return struct.pack(">i", round(v * 65536))

    text = (f"Gray Gamma {gamma}" if gamma else "sRGB grey").encode() + b"\0"
    desc = b"desc" + bytes(4) + struct.pack(">I", len(text)) + text + bytes(8) + bytes(67)
    white = s15(0.9642) + s15(1.0) + s15(0.8249)
    if gamma:
        curve = b"curv" + bytes(4) + struct.pack(">IH", 1, round(gamma * 256)) + bytes(2)
    else:
        srgb = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
        at = {srgb[132 + 12 * i: 136 + 12 * i]: 132 + 12 * i for i in range(int.from_bytes(srgb[128:132], "big"))}
        offset, length = (int.from_bytes(srgb[at[b"rTRC"] + k: at[b"rTRC"] + k + 4], "big") for k in (4, 8))
        curve = srgb[offset: offset + length]
    tags, table, data = [(b"desc", desc), (b"wtpt", b"XYZ " + bytes(4) + white), (b"kTRC", curve)], b"", b""
    start = 128 + 4 + 12 * len(tags)
    for sig, body in tags:
        data += bytes(-(start + len(data)) % 4)
        table += sig + struct.pack(">II", start + len(data), len(body))
        data += body
    body = struct.pack(">I", len(tags)) + table + data
    head = (struct.pack(">I", 128 + len(body)) + b"lcms" + bytes([2, 0x10, 0, 0]) + b"mntr" + b"GRAY" + b"XYZ "
            + bytes(12) + b"acsp" + b"APPL" + bytes(24) + white + bytes(48))
    return head + body


def test_a_grey_image_in_a_grey_profile_other_than_srgbs_is_warned_of(tmp_path):
    """A grey JPEG in Gray Gamma 1.8 (as Photoshop writes them) was coded as its levels and decoded to a grey PNG
    without a profile, which a viewer shows as sRGB's grey: 12 levels lighter on average, and nothing said so (only
    RGB and CMYK profiles were looked at)."""
    import saicm

    levels = np.tile(np.arange(256, dtype=np.uint8), (16, 1))
    for gamma in (1.8, 1.0, 2.2):  # (shifts of 12.2, 47.4 and 1.9 levels: PROFILE_SHIFT)
        Image.fromarray(levels, "L").save(tmp_path / f"g{gamma}.jpg", icc_profile=_grey_profile(gamma))
        with warnings.catch_warnings(record=True) as got:
            warnings.simplefilter("always")
            saicm.compress(tmp_path / f"g{gamma}.jpg", quality=1)
        said = [str(w.message) for w in got if "ICC profile" in str(w.message)]
        assert said == [f"{tmp_path / f'g{gamma}.jpg'}: its colours are in the ICC profile 'Gray Gamma {gamma}', "
                        "not sRGB; the profile is not coded and the decode, written without one, shows them shifted "
                        "(convert the image to sRGB first to code the colours a viewer shows)"], gamma
    Image.fromarray(levels, "L").save(tmp_path / "srgb.png", icc_profile=_grey_profile(None))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        saicm.compress(tmp_path / "srgb.png", quality=1)  # (sRGB's own grey: nothing to say)
    # a 16-bit grey PNG, too; an sRGB profile on a grey image is not a grey one (nothing read, nothing said)
    grey16 = image_io.RGBImage(rgb=np.zeros((2, 2, 3), np.uint8), gray=True, icc=_grey_profile(1.8), icc_mode="I;16")
    assert image_io.profile_note(grey16) == "Gray Gamma 1.8"
    from PIL import ImageCms

    srgb = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    assert image_io.profile_note(image_io.RGBImage(rgb=np.zeros((2, 2, 3), np.uint8), gray=True, icc=srgb,
                                                   icc_mode="L")) is None


def test_a_png_whose_gama_chunk_gives_another_gamma_is_warned_of(tmp_path):
    """A PNG of linear values tagged gAMA 1.0 (no profile) is shown by viewers at that gamma; its decode, written
    without the chunk, was shown 48 levels darker on average, in silence. gAMA 0.45455 (2.2) is sRGB's for viewers,
    and an sRGB or iCCP chunk overrides gAMA: nothing to say then."""
    import struct

    from PIL import PngImagePlugin

    import saicm

    def gama(value, srgb=False):
        info = PngImagePlugin.PngInfo()
        info.add(b"gAMA", struct.pack(">I", value))
        if srgb:
            info.add(b"sRGB", b"\0")
        return info

    pixels = np.random.default_rng(0).integers(0, 256, (32, 32, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(tmp_path / "linear.png", pnginfo=gama(100000))
    with pytest.warns(saicm.SaicmWarning, match=r"linear.png: its PNG gAMA chunk says its values are shown at gamma 1, "
                                                r"not sRGB's 2.2; the chunk is not coded"):
        saicm.compress(tmp_path / "linear.png", quality=1)
    Image.fromarray(pixels[..., 0]).save(tmp_path / "mac.png", pnginfo=gama(55555))  # (old Macs': 1.8)
    assert image_io.gamma_note(image_io.load_image(tmp_path / "mac.png")) == 1.8
    with Image.open(tmp_path / "mac.png") as im:  # (a PIL image of it, converted: its info, not its format, tells)
        assert image_io.gamma_note(image_io.load_image(im.convert("RGB"))) == 1.8
    Image.fromarray(pixels).save(tmp_path / "two.png", pnginfo=gama(45455))
    Image.fromarray(pixels).save(tmp_path / "srgb.png", pnginfo=gama(100000, srgb=True))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for name in ("two.png", "srgb.png"):
            saicm.compress(tmp_path / name, quality=1)


def test_a_camera_jpeg_marked_adobe_rgb_by_its_exif_is_warned_of(tmp_path):
    """A camera set to Adobe RGB writes its JPEGs without a profile, marking them in the EXIF (DCF: ColorSpace
    uncalibrated, interoperability index R03), which colour-managed viewers follow: coded and decoded as sRGB
    values in silence (only embedded profiles were looked at). Its EXIF's sRGB (ColorSpace 1), or an embedded profile,
    which governs, say nothing."""
    from PIL import ImageCms

    import saicm

    def exif(space, index="R03"):
        e = Image.Exif()
        e[0x8769] = {0xA001: space, 0xA005: {0x0001: index}}
        return e

    pixels = np.random.default_rng(0).integers(0, 256, (32, 32, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(tmp_path / "_DSC0001.jpg", exif=exif(0xFFFF))
    with pytest.warns(saicm.SaicmWarning, match=r"_DSC0001.jpg: its EXIF marks its colours as Adobe RGB \(a camera's "
                                                r"setting\), not sRGB; this is not coded"):
        saicm.compress(tmp_path / "_DSC0001.jpg", quality=1)
    srgb = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    Image.fromarray(pixels).save(tmp_path / "srgb.jpg", exif=exif(1))
    Image.fromarray(pixels).save(tmp_path / "r98.jpg", exif=exif(0xFFFF, "R98"))
    Image.fromarray(pixels).save(tmp_path / "tagged.jpg", exif=exif(0xFFFF), icc_profile=srgb)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for name in ("srgb.jpg", "r98.jpg", "tagged.jpg"):
            saicm.compress(tmp_path / name, quality=1)


def _rgb16_png(path, pixels: np.ndarray, key: tuple[int, int, int] | None) -> None:
    """A 16-bit colour PNG of ``pixels`` (H, W, 3 uint16) whose tRNS chunk makes ``key`` transparent (Pillow writes
    no 16-bit colour PNGs)."""
    import struct
    import zlib

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    h, w = pixels.shape[:2]
    rows = b"".join(b"\0" + pixels[i].astype(">u2").tobytes() for i in range(h))
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 16, 2, 0, 0, 0))
                     + (chunk(b"tRNS", struct.pack(">HHH", *key)) if key else b"")
                     + chunk(b"IDAT", zlib.compress(rows))
                     + chunk(b"IEND", b""))


def test_a_sixteen_bit_colour_pngs_colour_key_is_kept(tmp_path):
    """A 16-bit colour PNG's colour key (tRNS) is 16-bit, and Pillow reads its pixels as 8-bit: matched against those,
    the key made no pixel transparent (its alpha lost in silence), or made others transparent, whose high bytes
    equal the key's numbers. docs/usage.md: a PNG's colour-key transparency is stored."""
    pixels = np.zeros((8, 6, 3), np.uint16)
    pixels[:3] = (1000, 20000, 65535)
    pixels[3:] = (300, 300, 300)  # (high bytes 1, 1, 1)
    _rgb16_png(tmp_path / "key.png", pixels, (1000, 20000, 65535))
    for src in (tmp_path / "key.png", (tmp_path / "key.png").read_bytes()):
        got = image_io.load_image(src)
        assert got.alpha is not None and (got.alpha[:3] == 0).all() and (got.alpha[3:] == 255).all()
        assert (got.rgb[:3] == (3, 78, 255)).all()  # (the colours as before: 8-bit, Pillow's)
    _rgb16_png(tmp_path / "other.png", pixels, (1, 1, 1))  # (no pixel is 1, 1, 1 in 16 bits)
    assert image_io.load_image(tmp_path / "other.png").alpha is None


def test_a_sixteen_bit_colour_pngs_colour_key_is_kept_from_a_pil_image_too(tmp_path):
    """saicm.compress(Image.open(path)) of such a PNG lost its colour key in silence, which saicm.compress(path)
    kept: the PIL image, its pixels not read yet, is read as the file is (and left open for its owner)."""
    import io

    import saicm

    pixels = np.zeros((8, 6, 3), np.uint16)
    pixels[:3] = (1000, 20000, 65535)
    pixels[3:] = (300, 300, 300)  # (high bytes 1, 1, 1)
    _rgb16_png(tmp_path / "key.png", pixels, (1000, 20000, 65535))
    with Image.open(tmp_path / "key.png") as im, Image.open(io.BytesIO((tmp_path / "key.png").read_bytes())) as im2:
        for opened in (im, im2):
            got = image_io.load_image(opened)
            assert got.alpha is not None and (got.alpha[:3] == 0).all() and (got.alpha[3:] == 255).all()
            assert (got.rgb[:3] == (3, 78, 255)).all()
            assert opened.size == (6, 8) and np.asarray(opened).shape == (8, 6, 3)  # (the caller's, still usable)
    with Image.open(tmp_path / "key.png") as im:
        assert saicm.compress(im, quality=1) == saicm.compress(tmp_path / "key.png", quality=1)


def test_a_phones_jpeg_with_a_gain_map_is_not_called_a_clip(tmp_path):
    """A phone's JPEG holding an HDR gain map (Ultra HDR: a multi-picture JPEG whose second image is of undefined
    type), or a camera's with a large preview, said "2 frames, only the first is coded (saicm codes still images;
    clips: saicm video)" for every photo: the photo itself is coded whole. A 3D camera's pair is still told, as
    pictures of a multi-picture JPEG, not frames of a clip."""
    import struct

    pixels = np.random.default_rng(0).integers(0, 256, (24, 32, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(tmp_path / "phone.jpg", format="MPO", save_all=True,
                                 append_images=[Image.fromarray(pixels[::2, ::2, 0])])
    with Image.open(tmp_path / "phone.jpg") as im:
        assert im.format == "MPO" and im.n_frames == 2
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        got = image_io.load_image(tmp_path / "phone.jpg")
    assert got.size == (24, 32)
    # the same file, its second image's type (MP Entry, little-endian as Pillow writes it) made Disparity
    data = bytearray((tmp_path / "phone.jpg").read_bytes())
    base = data.index(b"MPF\0") + 4
    assert data[base: base + 2] == b"II"
    ifd = base + struct.unpack("<I", data[base + 4: base + 8])[0]
    entries = {struct.unpack("<H", data[ifd + 2 + 12 * i: ifd + 4 + 12 * i])[0]: ifd + 2 + 12 * i
               for i in range(struct.unpack("<H", data[ifd: ifd + 2])[0])}
    at = base + struct.unpack("<I", data[entries[0xB002] + 8: entries[0xB002] + 12])[0]
    data[at + 16: at + 20] = struct.pack("<I", 0x020002)
    (tmp_path / "pair.jpg").write_bytes(bytes(data))
    import saicm

    with pytest.warns(saicm.SaicmWarning, match=r"pair.jpg: a multi-picture JPEG of 2 images \(the others: "
                                                r"Multi-Frame Image: \(Disparity\)\), only the first is coded"):
        image_io.load_image(tmp_path / "pair.jpg")


def test_a_png_whose_chrm_chunk_gives_other_primaries_is_warned_of(tmp_path):
    """A PNG without a profile whose cHRM chunk gives Adobe RGB's primaries is shown by viewers in those: its decode,
    written without the chunk, was shown 8.8 levels off on average, in silence. sRGB's primaries (as ImageMagick
    writes them), a chunk an sRGB chunk overrides, and a damaged one say nothing."""
    import struct

    from PIL import PngImagePlugin

    import saicm

    def chrm(values, srgb=False):
        info = PngImagePlugin.PngInfo()
        info.add(b"cHRM", struct.pack(">8I", *(round(v * 100000) for v in values)))
        if srgb:
            info.add(b"sRGB", b"\0")
        return info

    adobe = (0.3127, 0.3290, 0.64, 0.33, 0.21, 0.71, 0.15, 0.06)
    pixels = np.random.default_rng(0).integers(0, 256, (32, 32, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(tmp_path / "adobe.png", pnginfo=chrm(adobe))
    with pytest.warns(saicm.SaicmWarning, match=r"adobe.png: its PNG cHRM chunk gives its colours other primaries "
                                                r"than sRGB's; the chunk is not coded"):
        saicm.compress(tmp_path / "adobe.png", quality=1)
    Image.fromarray(pixels).save(tmp_path / "srgb.png", pnginfo=chrm(image_io.SRGB_CHROMATICITY))
    Image.fromarray(pixels).save(tmp_path / "over.png", pnginfo=chrm(adobe, srgb=True))
    Image.fromarray(pixels).save(tmp_path / "zero.png", pnginfo=chrm((0,) * 8))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for name in ("srgb.png", "over.png", "zero.png"):
            saicm.compress(tmp_path / name, quality=1)


def _mpo(tmp_path, name: str, mptype: int | None):
    """A two-image MPO as Pillow writes it, its second image's MP type made ``mptype`` (None: as written,
    Undefined)."""
    import struct

    pixels = np.random.default_rng(0).integers(0, 256, (24, 32, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(tmp_path / name, format="MPO", save_all=True,
                                 append_images=[Image.fromarray(pixels[::2, ::2, 0])])
    if mptype is not None:
        data = bytearray((tmp_path / name).read_bytes())
        base = data.index(b"MPF\0") + 4
        ifd = base + struct.unpack("<I", data[base + 4: base + 8])[0]
        entries = {struct.unpack("<H", data[ifd + 2 + 12 * i: ifd + 4 + 12 * i])[0]: ifd + 2 + 12 * i
                   for i in range(struct.unpack("<H", data[ifd: ifd + 2])[0])}
        at = base + struct.unpack("<I", data[entries[0xB002] + 8: entries[0xB002] + 12])[0]
        data[at + 16: at + 20] = struct.pack("<I", mptype)
        (tmp_path / name).write_bytes(bytes(data))
    return tmp_path / name


def test_the_new_colour_and_picture_checks_hold_at_their_edges(tmp_path):
    """(Mutation audit of 0.30's checks: each assertion below failed none of the tests above when changed.)"""
    import types

    from PIL import ImageCms, PngImagePlugin

    import saicm

    def quiet(src):
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            return image_io.load_image(src)

    # a 16-bit colour PNG without a colour key is read as before (no tRNS: nothing to match); a pixel sharing one
    # sample with the key (not all three) stays opaque
    pixels = np.zeros((4, 4, 3), np.uint16)
    pixels[:2] = (1000, 20000, 65535)
    pixels[2:] = (1000, 0, 0)
    _rgb16_png(tmp_path / "key.png", pixels, (1000, 20000, 65535))
    got = image_io.load_image(tmp_path / "key.png")
    assert (got.alpha[:2] == 0).all() and (got.alpha[2:] == 255).all()
    _rgb16_png(tmp_path / "nokey.png", pixels, None)
    got = quiet(tmp_path / "nokey.png")
    assert got.alpha is None and (got.rgb[:2] == (3, 78, 255)).all()
    # the gamma a gAMA chunk gives is told to two decimals (gAMA 0.3: 3.33)
    assert image_io.gamma_note(image_io.RGBImage(rgb=pixels[..., :3].astype(np.uint8), gray=False,
                                                 gamma=0.3)) == 3.33
    # an ICC profile overrides gAMA and cHRM as an sRGB chunk does: nothing said of them
    srgb = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    info = PngImagePlugin.PngInfo()
    info.add(b"gAMA", (100000).to_bytes(4, "big"))
    adobe = (0.3127, 0.3290, 0.64, 0.33, 0.21, 0.71, 0.15, 0.06)
    info.add(b"cHRM", b"".join(round(v * 100000).to_bytes(4, "big") for v in adobe))
    rgb8 = np.random.default_rng(0).integers(0, 256, (16, 16, 3), dtype=np.uint8)
    Image.fromarray(rgb8).save(tmp_path / "icc.png", pnginfo=info, icc_profile=srgb)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        saicm.compress(tmp_path / "icc.png", quality=1)

    # primaries: the matrix of sRGB's is the standard one; a white point is where (1, 1, 1) lands
    assert np.allclose(image_io._rgb_to_xyz(image_io.SRGB_CHROMATICITY),
                       [[0.4124, 0.3576, 0.1805], [0.2126, 0.7152, 0.0722], [0.0193, 0.1192, 0.9505]], atol=2e-4)
    d50 = (0.3457, 0.3585, *image_io.SRGB_CHROMATICITY[2:])
    assert np.allclose(image_io._rgb_to_xyz(d50) @ np.ones(3), [0.3457 / 0.3585, 1, (1 - 0.3457 - 0.3585) / 0.3585])

    def primaries(c):
        return image_io.primaries_note(image_io.RGBImage(rgb=rgb8, gray=False, chromaticity=c))

    # sRGB's primaries with another white are shown with white as white (relative colorimetric): not told; a green
    # primary 0.004 off sRGB's moves shown values by 1.8 levels, told (in linear light it would be 0.7)
    assert not primaries(d50)
    s = image_io.SRGB_CHROMATICITY
    assert primaries((*s[:4], 0.304, 0.60, *s[6:]))

    # EXIF: Adobe RGB needs ColorSpace uncalibrated, not only the index R03; an index written with its NUL is read;
    # a grey image's EXIF says nothing of colours
    def exif(space, index="R03"):
        e = Image.Exif()
        e[0x8769] = {0xA005: {0x0001: index}} if space is None else {0xA001: space, 0xA005: {0x0001: index}}
        return e

    Image.fromarray(rgb8).save(tmp_path / "nospace.jpg", exif=exif(None))
    Image.fromarray(rgb8[..., 0]).save(tmp_path / "grey.jpg", exif=exif(0xFFFF))
    for name in ("nospace.jpg", "grey.jpg"):
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            saicm.compress(tmp_path / name, quality=1)
    Image.fromarray(rgb8).save(tmp_path / "nul.jpg", exif=exif(0xFFFF, "R03\0"))
    assert image_io.load_image(tmp_path / "nul.jpg").exif_space == "Adobe RGB"

    # multi-picture JPEGs: a camera's large preview (Full HD) is the photo again, not a picture of its own; a damaged
    # MP index is told as of unknown pictures
    quiet(_mpo(tmp_path, "preview.jpg", 0x010002))
    assert image_io._other_pictures(types.SimpleNamespace(format="MPO", mpinfo={})) == "unknown"
    assert image_io._other_pictures(types.SimpleNamespace(format="GIF")) is None


def test_cli_refuses_a_100_megapixel_image_in_one_line(tmp_path):
    """An image between Pillow's bomb limit (89 M pixels) and twice it: saicm's refusal was preceded by Pillow's
    DecompressionBombWarning and a path inside Pillow (the large-image audit: a 10000x10000 photo). Header only:
    the refusal comes before any pixel is read."""
    import struct
    import zlib

    import subprocess
    import sys

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    src = tmp_path / "big.png"
    src.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 10000, 10000, 8, 2, 0, 0, 0))
                    + chunk(b"IDAT", zlib.compress(b"\x00" * 30001)) + chunk(b"IEND", b""))
    env = {k: v for k, v in os.environ.items() if k != "PYTHONWARNINGS"}  # (as a user's shell has it)
    r = subprocess.run([sys.executable, "-m", "saicm", "compress", str(src), "-o", str(tmp_path / "big.saicm")],
                       capture_output=True, text=True, env=env, timeout=300)
    assert r.returncode == 1
    assert r.stderr.splitlines() == [
        f"saicm: error: {src}: the image is 10000x10000 (100,000,000 pixels), more than the limit of 67,108,864; "
        "raise it with --max-pixels (Python: max_pixels=) if you trust it"]
    assert not (tmp_path / "big.saicm").exists()


def test_an_image_above_twice_pillows_limit_is_refused_with_its_size(tmp_path):
    """Above twice Pillow's bomb limit (179 M pixels) Pillow's own error came first, and saicm's refusal said only
    "more than the limit" without the image's size; it is read from the header (Pillow's check set aside for that
    read only), from a path and from a file object, and Pillow's limit is left as it was."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    src = tmp_path / "huge.png"
    src.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 20000, 10000, 8, 2, 0, 0, 0))
                    + chunk(b"IEND", b""))
    before = Image.MAX_IMAGE_PIXELS
    for given in (src, io.BytesIO(src.read_bytes())):
        with pytest.raises(limits.OversizedImage, match=r"the image is 20000x10000 \(200,000,000 pixels\), more than the "
                                                 r"limit of 67,108,864"):
            image_io.open_image(given)
    assert Image.MAX_IMAGE_PIXELS == before


def test_a_file_is_read_only_as_the_formats_its_name_allows(tmp_path):
    """Pillow picks its plugin by a file's first bytes, whatever its name: a stranger's photo.jpg holding EPS was
    handed to Ghostscript (a 60-byte `{} loop` hung `saicm compress` for good where Ghostscript is installed), and one
    holding PSD, McIdas or FITS data reached those decoders (Pillow's advisories of 2026: out-of-bounds writes and
    reads, decompression bombs). A file named as an image saicm reads (or bytes, with no name) is read only as one of
    those formats; a file named alone with another format's suffix (x.pcx) is still read as that format."""
    rgb = np.arange(4 * 4 * 3, dtype=np.uint8).reshape(4, 4, 3)
    Image.fromarray(rgb).save(tmp_path / "x.pcx")
    pcx = (tmp_path / "x.pcx").read_bytes()
    (tmp_path / "photo.png").write_bytes(pcx)
    # (a harmless EPS: were it opened as EPS again, Ghostscript, where installed, draws it; the `{} loop` hung)
    (tmp_path / "photo.jpg").write_bytes(b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 4 4\nshowpage\n")
    with pytest.raises(ImageError, match="not a format Pillow reads, or one saicm opens only under its own suffix"):
        image_io.load_image(tmp_path / "photo.png")
    with pytest.raises(ImageError, match=r"a PostScript \(EPS\) file, not an image: saicm does not read PostScript"):
        image_io.load_image(tmp_path / "photo.jpg")
    with pytest.raises(ImageError, match="only under its own suffix"):
        image_io.load_image(pcx)  # bytes: no name to allow another format
    # named as its format, alone or as a file object of that name: read as before
    assert (image_io.load_image(tmp_path / "x.pcx").rgb == rgb).all()
    with open(tmp_path / "x.pcx", "rb") as f:
        assert (image_io.load_image(f).rgb == rgb).all()
    # a misnamed image of a format saicm reads (a PNG saved as .jpg) is read as it always was
    Image.fromarray(rgb).save(tmp_path / "x.png")
    (tmp_path / "misnamed.jpg").write_bytes((tmp_path / "x.png").read_bytes())
    assert (image_io.load_image(tmp_path / "misnamed.jpg").rgb == rgb).all()
    assert (image_io.load_image((tmp_path / "x.png").read_bytes()).rgb == rgb).all()


def test_postscript_is_never_read_even_named_eps(tmp_path):
    """PostScript is a program: Pillow hands an EPS file to Ghostscript (no time limit; a 60-byte `{} loop` hung
    `saicm compress`), and the format check by name let an `.eps` named alone through. No image codec's input needs
    it: refused in one line, whatever the name, before any interpreter runs."""
    eps = b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 4 4\nshowpage\n"
    dos = b"\xc5\xd0\xd3\xc6" + (30).to_bytes(4, "little") + len(eps).to_bytes(4, "little") + bytes(18) + eps
    for name, data in (("art.eps", eps), ("art.ps", eps), ("dos.eps", dos)):
        (tmp_path / name).write_bytes(data)
        with pytest.raises(ImageError, match=r"PostScript \(EPS\) file, not an image: .*rasterise it to PNG first"):
            image_io.load_image(tmp_path / name)
    assert "EPS" not in image_io.formats_for("art.eps")


def test_coded_and_decoded_files_carry_none_of_the_sources_metadata(tmp_path):
    """A camera's JPEG or PNG holds the photographer's GPS position, the camera's serial number, the owner's name,
    dates, XMP, a comment and text chunks: a `.saicm` file holds the pixels' code alone, and a decode (PNG, JPEG,
    WebP, TIFF) the pixels alone, so neither sends them on (what docs/usage.md, 'What your files carry', says; a
    privacy audit checked every output with exiftool)."""
    from PIL import ImageCms, PngImagePlugin

    from saicm.cli import main

    pixels = np.random.default_rng(0).integers(0, 256, (48, 64, 3), dtype=np.uint8)
    exif = Image.Exif()
    exif[0x013B] = "Secret Artist"
    exif.get_ifd(0x8769)[0xA431] = "SERIAL0815"  # the camera's body serial number
    exif.get_ifd(0x8769)[0xA430] = "Secret Owner"
    gps = exif.get_ifd(0x8825)
    gps[1], gps[2], gps[3], gps[4] = "N", (51.0, 30.0, 12.0), "E", (0.0, 7.0, 39.0)
    xmp = b'<x:xmpmeta xmlns:x="adobe:ns:meta/">Secret Creator</x:xmpmeta>'
    icc = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    Image.fromarray(pixels).save(tmp_path / "cam.jpg", exif=exif, xmp=xmp, comment=b"Secret Comment",
                                 icc_profile=icc, quality=95)
    text = PngImagePlugin.PngInfo()
    text.add_text("Author", "Secret Author")
    text.add_itxt("XML:com.adobe.xmp", xmp.decode())
    Image.fromarray(pixels).save(tmp_path / "cam.png", exif=exif, pnginfo=text, icc_profile=icc)
    for src in ("cam.jpg", "cam.png"):
        with Image.open(tmp_path / src) as im:  # (the source holds them all)
            assert im.getexif().get_ifd(0x8825) and "icc_profile" in im.info
        coded = tmp_path / f"{src}.saicm"
        assert main(["compress", str(tmp_path / src), "-o", str(coded), "--quality", "1"]) == 0
        data = coded.read_bytes()
        assert not any(s in data for s in (b"Secret", b"SERIAL", b"cam", b"xmpmeta", b"acsp", str(tmp_path).encode()))
        for suffix in (".png", ".jpg", ".webp", ".tif"):
            out = tmp_path / f"{src}.dec{suffix}"
            assert main(["decompress", str(coded), "-o", str(out)]) == 0
            raw = out.read_bytes()
            assert not any(s in raw for s in (b"Secret", b"SERIAL", b"xmpmeta", b"acsp", b"Exif", b"eXIf")), out
            with Image.open(out) as im:
                assert not im.getexif() or set(im.getexif()) <= {0x0100, 0x0101, 0x0102, 0x0103, 0x0106, 0x0111,
                                                                   0x0115, 0x0116, 0x0117, 0x011C}, dict(im.getexif())
                assert not set(im.info) & {"exif", "xmp", "icc_profile", "comment", "Author", "XML:com.adobe.xmp"}


def _tiff(path, tags: dict) -> None:
    from PIL import TiffImagePlugin

    info = TiffImagePlugin.ImageFileDirectory_v2()
    for tag, (value, kind) in tags.items():
        info[tag] = value
        info.tagtype[tag] = kind
    Image.fromarray(np.full((120, 160, 3), 90, np.uint8)).save(path, format="TIFF", tiffinfo=info)


def test_a_camera_raw_is_refused_not_coded_as_its_thumbnail(tmp_path):
    """A DNG, NEF or ARW is a TIFF container whose first image is a small preview: `saicm compress photo.dng` coded
    a 160x120 thumbnail in silence. Refused now, with what to do; a plain TIFF still reads."""
    _tiff(tmp_path / "photo.dng", {50706: (b"\x01\x04\x00\x00", 1)})  # DNGVersion 1.4
    with pytest.raises(ImageError) as e:
        image_io.load_image(tmp_path / "photo.dng")
    assert e.value.message == ("a DNG camera raw: Pillow would read only its 160x120 preview; saicm reads no camera "
                               "raw: develop it to PNG or JPEG first")
    _tiff(tmp_path / "photo.nef", {254: (1, 4)})  # NewSubFileType: reduced-resolution image
    with pytest.raises(ImageError, match="a reduced-resolution preview of another image first .*: Pillow would read "
                       "only its 160x120 first image; .* develop it"):
        image_io.load_image(tmp_path / "photo.nef")
    _tiff(tmp_path / "page.tif", {254: (0, 4)})
    assert image_io.load_image(tmp_path / "page.tif").rgb.shape == (120, 160, 3)
    # a CR2: a TIFF whose header Canon follows with its mark (CR, version 2) before the first image, the camera's
    # JPEG preview (0.38.0's left-alone); made here from a JPEG-compressed TIFF (its strip first, its directory
    # after), the mark over the strip's first bytes
    buf = io.BytesIO()
    Image.fromarray(np.full((120, 160, 3), 90, np.uint8)).save(buf, format="TIFF", compression="jpeg")
    cr2 = bytearray(buf.getvalue())
    assert cr2[:4] == b"II*\x00" and int.from_bytes(cr2[4:8], "little") >= 12
    cr2[8:12] = b"CR\x02\x00"
    (tmp_path / "IMG_0001.CR2").write_bytes(bytes(cr2))
    with pytest.raises(ImageError) as e:
        image_io.load_image(tmp_path / "IMG_0001.CR2")
    assert e.value.message == ("a Canon raw (CR2) image: Pillow would read only its 160x120 preview; saicm reads no "
                               "camera raw: develop it to PNG or JPEG first")
    with open(tmp_path / "IMG_0001.CR2", "rb") as f:  # (a file object: the same, and read from its start again)
        with pytest.raises(ImageError, match="Canon raw"):
            image_io.load_image(f)


@pytest.mark.parametrize("name, head, what", [
    ("DSCF0001.RAF", b"FUJIFILMCCD-RAW 0201FF383501", "a Fujifilm raw (RAF) image"),
    ("P0001.ORF", b"IIRO\x08\x00\x00\x00", "an Olympus raw (ORF) image"),
    ("P0003.ORF", b"IIRS\x08\x00\x00\x00", "an Olympus raw (ORF) image"),
    ("P0002.ORF", b"MMOR\x00\x00\x00\x08", "an Olympus raw (ORF) image"),
    ("P1000001.RW2", b"IIU\x00\x18\x00\x00\x00", "a Panasonic raw (RW2) image")])
def test_camera_raws_of_their_own_headers_are_named_with_what_to_do(name, head, what, tmp_path):
    """RAF, ORF and RW2 (not TIFF containers to Pillow) said "not a format Pillow reads" (0.38.0's left-alone)."""
    (tmp_path / name).write_bytes(head + bytes(200))
    with pytest.raises(ImageError) as e:
        image_io.load_image(tmp_path / name)
    assert e.value.message == f"{what}: saicm reads no camera raw: develop it to PNG or JPEG first"


def _progressive_jpeg_of(scans: int, side: int = 64) -> tuple[bytes, int]:
    """A progressive JPEG of ``side``² whose last scan (with its Huffman tables) is repeated until it holds ``scans``
    scans, and the number of scans the encoder wrote: a "scan bomb", each scan a pass of libjpeg over the image."""
    buf = io.BytesIO()
    Image.new("RGB", (side, side), (120, 90, 60)).save(buf, "JPEG", progressive=True)
    data = buf.getvalue()
    assert data.endswith(b"\xff\xd9")
    written = data.count(b"\xff\xda")  # (in entropy-coded data a 0xFF is followed by 0x00: these are the SOS markers)
    sos = data.rfind(b"\xff\xda")
    dht = data.rfind(b"\xff\xc4", 0, sos)
    own = dht + 2 + int.from_bytes(data[dht + 2: dht + 4], "big") == sos  # (the last scan's own tables before it)
    unit = data[dht if own else sos: -2]
    return data[:-2] + unit * (scans - written) + b"\xff\xd9", written


def test_a_progressive_jpeg_of_thousands_of_scans_is_refused_before_it_is_decoded(tmp_path):
    """libjpeg goes over the whole image for every scan of a progressive JPEG and sets no limit: a 346 KB 1 MP file
    of 10,000 near-empty scans took 7 s to read, 500 scans of 8192x8192 (454 KB) 24 s, and `saicm compress` of
    a few such uploads tied up a web back-end. Encoders write about 10; more than MAX_JPEG_SCANS (100) are counted
    from the markers and refused in one line, from a path, bytes or a file object."""
    plain, written = _progressive_jpeg_of(0)
    assert 5 <= written <= 12
    bomb, _ = _progressive_jpeg_of(2000)
    edge, _ = _progressive_jpeg_of(getattr(image_io, "MAX_JPEG_SCANS", 100))
    (tmp_path / "bomb.jpg").write_bytes(bomb)

    class Upload:  # (a web framework's stream that does not seek: Pillow reads it into memory first)
        def __init__(self, data):
            self.read = io.BytesIO(data).read

    for src in (tmp_path / "bomb.jpg", bomb, io.BytesIO(bomb), Upload(bomb)):
        with pytest.raises(ImageError, match=r"a progressive JPEG of 2,000 scans \(encoders write about 10, at most "
                                             r"100 are read; .*\): a decompression bomb"):
            image_io.load_image(src)
    for ok in (plain, edge, Upload(edge)):  # (the encoder's own, and a file at the limit: read as before)
        assert image_io.load_image(ok).rgb.shape == (64, 64, 3)
    with Image.open(io.BytesIO(bomb)) as im:  # (a PIL image of the caller's, not yet loaded: the same)
        with pytest.raises(ImageError, match="2,000 scans"):
            image_io.load_image(im)
    from saicm.errors import SaicmError
    from saicm.video.io import read_clip

    (tmp_path / "frames").mkdir()  # (a folder of frames given to saicm video encode: the same)
    (tmp_path / "frames" / "frame_000000.jpg").write_bytes(plain)
    (tmp_path / "frames" / "frame_000001.jpg").write_bytes(bomb)
    with pytest.raises(SaicmError, match=r"frame_000001\.jpg: a progressive JPEG of 2,000 scans"):
        read_clip(tmp_path / "frames")


def _strip_tiff(width: int, height: int, strips: int, rows_per_strip: int, pages: int = 1) -> bytes:
    """An uncompressed grey TIFF of ``pages`` pages, each of ``strips`` strips that all point at the same
    ``rows_per_strip`` rows of zeros (made by hand: Pillow writes neither)."""
    entries = 8
    ifd_size = 2 + 12 * entries + 4 + 8 * strips  # (the directory, then its two strip arrays)
    row_at = 8 + pages * ifd_size
    out = bytearray(b"II*\x00" + (8).to_bytes(4, "little"))
    for page in range(pages):
        at = len(out)
        offsets, counts = at + 2 + 12 * entries + 4, at + 2 + 12 * entries + 4 + 4 * strips
        tags = [(256, 4, 1, width), (257, 4, 1, height), (258, 3, 1, 8), (259, 3, 1, 1), (262, 3, 1, 1),
                (273, 4, strips, offsets if strips > 1 else row_at), (278, 4, 1, rows_per_strip),
                (279, 4, strips, counts if strips > 1 else width * rows_per_strip)]
        out += entries.to_bytes(2, "little") + b"".join(
            t.to_bytes(2, "little") + k.to_bytes(2, "little") + n.to_bytes(4, "little") + v.to_bytes(4, "little")
            for t, k, n, v in tags)
        out += (at + ifd_size if page < pages - 1 else 0).to_bytes(4, "little")
        out += b"".join(row_at.to_bytes(4, "little") for _ in range(strips))
        out += b"".join((width * rows_per_strip).to_bytes(4, "little") for _ in range(strips))
    return bytes(out + bytes(width * rows_per_strip))


def test_tiff_strips_that_cover_the_image_many_times_are_refused(tmp_path):
    """Pillow decodes an uncompressed TIFF strip by strip, each from where its offset points: 200,000 strips all
    pointing at the same 64 rows (a 1.9 MB file claiming 4096x4096) took 9 s to read, 1,000,000 (8.5 MB) 92 s.
    Strips or tiles covering the image more than once per band are refused in one line."""
    (tmp_path / "bomb.tif").write_bytes(_strip_tiff(64, 64, 2000, 4))
    with pytest.raises(ImageError, match=r"its 2,000 strips or tiles cover the image 125 times over \(a file stores "
                                         r"each pixel once\): a decompression bomb"):
        image_io.load_image(tmp_path / "bomb.tif")
    (tmp_path / "rows.tif").write_bytes(_strip_tiff(64, 64, 64, 1))  # (a strip per row: read as before)
    assert image_io.load_image(tmp_path / "rows.tif").rgb.shape == (64, 64, 3)


def test_the_pages_of_a_tiff_are_counted_only_to_a_bound(tmp_path, monkeypatch):
    """The warning that only the first frame is coded counted a TIFF's pages with Pillow's n_frames, which reads every
    page's directory and checks each against a list of those read: 100,000 pages of 8x8 (a 7.8 MB file) took
    60 s to read. Pages are counted up to MAX_COUNTED_FRAMES (1,000); a short file's count is exact."""
    monkeypatch.setattr(image_io, "MAX_COUNTED_FRAMES", 20, raising=False)
    (tmp_path / "many.tif").write_bytes(_strip_tiff(8, 8, 1, 8, pages=60))
    (tmp_path / "three.tif").write_bytes(_strip_tiff(8, 8, 1, 8, pages=3))
    with pytest.warns(UserWarning, match=r"many\.tif: 20 frames or more, only the first is coded"):
        assert image_io.load_image(tmp_path / "many.tif").rgb.shape == (8, 8, 3)
    with pytest.warns(UserWarning, match=r"three\.tif: 3 frames, only the first is coded"):
        image_io.load_image(tmp_path / "three.tif")


def test_sixteen_bit_grey_is_scaled_in_integers_without_float_copies(tmp_path):
    """16-bit grey samples were scaled through float64 (three copies of 8 bytes a pixel): a 130 KB PNG of
    8192x8192 zeros took 1.8 GB to read (0.75 GB now). The values are those of the float rounding (v / 257 to
    nearest: never a tie)."""
    import tracemalloc

    ramp = np.arange(65536, dtype=np.uint16).reshape(256, 256)
    Image.fromarray(ramp).save(tmp_path / "ramp.png")
    expected = np.rint(ramp.astype(np.float64) * 255 / 65535).astype(np.uint8)
    assert (image_io.load_image(tmp_path / "ramp.png").rgb[..., 0] == expected).all()
    big = np.zeros((1024, 1024), np.uint16)
    big[0, 0] = 65535
    Image.fromarray(big).save(tmp_path / "big.png")
    tracemalloc.start()
    try:
        image_io.load_image(tmp_path / "big.png")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 10 * 2**20  # (2 MB of samples; the float64 copies took 3 x 8 MB)


def test_a_scan_bomb_is_counted_past_stray_bytes_between_its_markers():
    """libjpeg skips any bytes before a marker (a warning, not an error), and the scan count stopped at the first
    byte that was not 0xFF: one zero byte after a segment (here a comment) hid 2,000 scans, read as before the check
    (2 s at 1024x1024; review of 0.39.0)."""
    bomb, written = _progressive_jpeg_of(2000)
    sos = bomb.find(b"\xff\xda", bomb.find(b"\xff\xda") + 2)  # (the second scan: after a segment, a stray byte)
    for stray in (b"\xff\xfe\x00\x02\x00", b"\xff\xfe\x00\x02\x00\x13\xff\x00\xff\xff"):  # (also 0xFF 0x00, fill)
        with pytest.raises(ImageError, match="a progressive JPEG of 2,000 scans"):
            image_io.load_image(bomb[:sos] + stray + bomb[sos:])
    plain, _ = _progressive_jpeg_of(0)
    assert image_io.image_end(plain + b"\x00\x00", "JPEG") == len(plain)


def test_the_scans_of_a_large_progressive_jpeg_are_counted_without_reading_it_into_memory(tmp_path):
    """The scan count read the whole file into memory: a 64x64 progressive JPEG followed by 300 MB (of zeros, which
    libjpeg never reads) took 0.6 GB and seconds to read, 44 MB before (review of 0.39.0); the file is mapped, and
    the count stops at the image's end."""
    import tracemalloc

    plain, _ = _progressive_jpeg_of(0)
    (tmp_path / "long.jpg").write_bytes(plain)
    with open(tmp_path / "long.jpg", "r+b") as f:
        f.truncate(300 << 20)  # (sparse where the file system allows)
    tracemalloc.start()
    try:
        assert image_io.load_image(tmp_path / "long.jpg").rgb.shape == (64, 64, 3)
        with open(tmp_path / "long.jpg", "rb") as f:  # (a caller's file object)
            assert image_io.load_image(f).rgb.shape == (64, 64, 3)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 20 << 20


def test_the_scans_of_the_first_image_of_an_mpo_are_counted_and_only_those():
    """A phone's MPO is a JPEG followed by others: the first image's scans are counted (a bomb there refused), and
    the count stops at its end (60 scans followed by a second image of 60 are read: review of 0.39.0's mutants)."""
    first, _ = _progressive_jpeg_of(2000)
    buf = io.BytesIO()
    Image.new("RGB", (64, 64), (120, 90, 60)).save(buf, "MPO", progressive=True, save_all=True,
                                                    append_images=[Image.new("RGB", (64, 64))])
    mpo = buf.getvalue()
    end = image_io.image_end(mpo, "JPEG")
    plain, _ = _progressive_jpeg_of(0)
    bomb = mpo[:end - 2] + first[len(plain) - 2: -2] + mpo[end - 2:]  # (the first image's scans, repeated)
    with Image.open(io.BytesIO(bomb)) as im:
        assert im.format == "MPO"
    with pytest.raises(ImageError, match="a progressive JPEG of 2,0"):
        image_io.load_image(bomb)
    sixty, _ = _progressive_jpeg_of(60)
    for after in (sixty, b"\x00\x00" + sixty[2:]):  # (another image, or segments: read only if the count stops at EOI)
        assert image_io.load_image(sixty + after).rgb.shape == (64, 64, 3)


def test_strips_covering_a_grey_image_up_to_four_times_are_read_and_more_refused(tmp_path):
    """The bound of the strip check: four times over (a TIFF of four separate planes covers its image four times)
    is read, more refused; planar RGB TIFFs (a layer of strips per colour) read as the same pixels."""
    (tmp_path / "four.tif").write_bytes(_strip_tiff(64, 64, 64, 4))
    assert image_io.load_image(tmp_path / "four.tif").rgb.shape == (64, 64, 3)
    (tmp_path / "more.tif").write_bytes(_strip_tiff(64, 64, 65, 4))
    with pytest.raises(ImageError, match="its 65 strips or tiles cover the image 4 times over"):
        image_io.load_image(tmp_path / "more.tif")
    tifffile = pytest.importorskip("tifffile")  # (Pillow writes no planar TIFF; not a dependency of saicm's)
    rgb = np.random.default_rng(0).integers(0, 256, (48, 40, 3), dtype=np.uint8)
    for kw in ({"rowsperstrip": 5}, {"tile": (16, 16)}, {}):
        tifffile.imwrite(tmp_path / "planar.tif", np.moveaxis(rgb, -1, 0), photometric="rgb", planarconfig="separate",
                         **kw)
        assert (image_io.load_image(tmp_path / "planar.tif").rgb == rgb).all()


def test_a_32_bit_grey_tiff_is_read_as_0_255_unless_its_values_go_above(tmp_path):
    """A 32-bit integer TIFF (mode I) is read as 0-255 when its values stay within, as 0-65535 when they do not (the
    integer scaling of 0.39.0: its bound at 255 was not tested)."""
    for top, expected in ((255, 255), (256, 1), (65535, 255)):
        a = np.zeros((8, 8), np.int32)
        a[0, 0] = top
        Image.fromarray(a, "I").save(tmp_path / "i.tif")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # (the nearly-black warning of 256)
            assert image_io.load_image(tmp_path / "i.tif").rgb[0, 0, 0] == expected
