"""Conventional baselines behind the Codec interface: JPEG, WebP, AVIF, HEVC and VVC intra."""

import re
import subprocess

import numpy as np
import pytest
from PIL import Image

from saicm.errors import SaicmError
from saicm.eval import ffmpeg as ff
from saicm.eval.codecs import get_codec
from saicm.eval.metrics import psnr
from saicm.eval.rd import rd_sweep

# codec, a high-quality setting, a low-quality setting (for hevc/vvc these are QPs)
SETTINGS = [("jpeg", 95, 10), ("webp", 95, 10), ("avif", 95, 10), ("hevc", 22, 42), ("hevc444", 22, 42),
            ("vvc", 22, 42)]
W, H = 71, 45  # both odd


def smooth_image(h: int = H, w: int = W) -> Image.Image:
    """Gradients and a gentle wave: nothing that 4:2:0 chroma subsampling destroys."""
    yy, xx = np.mgrid[0:h, 0:w]
    a = np.stack([xx * 255 / (w - 1), yy * 255 / (h - 1), 128 + 60 * np.sin(xx / 9) * np.cos(yy / 7)], -1)
    return Image.fromarray(a.round().astype(np.uint8))


def codec_or_skip(name: str):
    try:
        return get_codec(name)
    except SaicmError as e:  # encoder, decoder or ffmpeg missing: the message names what to install
        pytest.skip(f"{name} unavailable: {e}")


_cache = {}


def coded(name: str, quality: int, size=(H, W)):
    """(bytes, decoded image) of the smooth image, encoded once per test session."""
    key = (name, quality, size)
    if key not in _cache:
        codec = codec_or_skip(name)
        data = codec.encode(smooth_image(*size), quality)
        _cache[key] = (data, codec.decode(data))
    return _cache[key]


def nal_types(data: bytes, syntax: str) -> list:
    return [ff._nal_type(u, syntax) for u in ff.split_nal_units(data)]


@pytest.mark.parametrize("name,hi,lo", SETTINGS)
def test_round_trip_keeps_odd_size_and_gives_rgb(name, hi, lo):
    for q in (hi, lo):
        _, out = coded(name, q)
        assert out.mode == "RGB" and out.size == (W, H)


@pytest.mark.parametrize("name,hi,lo", SETTINGS)
def test_quality_setting_orders_rate_and_distortion(name, hi, lo):
    ref = np.asarray(smooth_image())
    data_hi, out_hi = coded(name, hi)
    data_lo, out_lo = coded(name, lo)
    p_hi, p_lo = psnr(ref, np.asarray(out_hi)), psnr(ref, np.asarray(out_lo))
    assert p_hi > 35, f"{name} at {hi}: {p_hi:.2f} dB"
    assert p_lo < p_hi - 3
    assert len(data_lo) < len(data_hi)


@pytest.mark.parametrize("name", [s[0] for s in SETTINGS])
def test_encoding_is_deterministic(name):
    codec = codec_or_skip(name)
    q = codec.default_qualities[len(codec.default_qualities) // 2]
    assert codec.encode(smooth_image(), q) == codec.encode(smooth_image(), q)


def test_pillow_formats_are_whole_files():
    assert coded("jpeg", 95)[0][:3] == b"\xff\xd8\xff"
    webp = coded("webp", 95)[0]
    assert webp[:4] == b"RIFF" and webp[8:12] == b"WEBP"
    avif = coded("avif", 95)[0]
    assert avif[4:12] == b"ftypavif"


# HEVC: VPS 32, SPS 33, PPS 34, prefix SEI 39, IDR slices 19/20. VVC: SPS 15, PPS 16, prefix SEI 23, IDR 7/8.
STREAMS = [("hevc", [32, 33, 34], 39, (19, 20)), ("vvc", [15, 16], 23, (7, 8))]


@pytest.mark.parametrize("name,param_sets,sei,idr", STREAMS)
def test_bytes_are_a_bare_annex_b_stream_with_one_idr_picture(name, param_sets, sei, idr):
    data, _ = coded(name, 32)
    assert data.startswith(b"\x00\x00\x00\x01") or data.startswith(b"\x00\x00\x01")
    types = nal_types(data, name)
    # parameter sets, saicm's size SEI (odd size), one IDR slice; no AUD, no encoder-info SEI
    assert types == param_sets + [sei] + [types[-1]] and types[-1] in idr
    assert ff.read_size_sei(data, name) == (W, H)
    # ffmpeg recognises the bytes on its own (content probe, no -f) as that codec
    p = subprocess.run([ff.ffmpeg_exe(), "-hide_banner", "-i", "-", "-f", "null", "-"], input=data,
                       capture_output=True)
    assert p.returncode == 0 and f"Video: {name}" in p.stderr.decode()


@pytest.mark.parametrize("name,param_sets,sei,idr", STREAMS)
def test_even_size_needs_no_side_information(name, param_sets, sei, idr):
    data, out = coded(name, 32, size=(46, 70))
    assert out.size == (70, 46)
    assert sei not in nal_types(data, name) and ff.read_size_sei(data, name) is None


def _slice_qp(name: str, data: bytes) -> int:
    p = subprocess.run([ff.ffmpeg_exe(), "-hide_banner", "-loglevel", "debug", "-f", name, "-i", "-", "-c", "copy",
                        "-bsf:v", "trace_headers", "-f", "null", "-"], input=data, capture_output=True)
    log = p.stderr.decode()
    vals = dict(re.findall(r"\b(pps_init_qp_minus26|init_qp_minus26|slice_qp_delta|sh_qp_delta)\s+\d+\s*=\s*(-?\d+)",
                           log))
    init = vals.get("pps_init_qp_minus26", vals.get("init_qp_minus26"))
    delta = vals.get("sh_qp_delta", vals.get("slice_qp_delta"))
    assert init is not None and delta is not None, log[-500:]
    return 26 + int(init) + int(delta)


@pytest.mark.parametrize("name", ["hevc", "vvc"])
def test_quality_is_the_slice_qp(name):
    codec = codec_or_skip(name)
    assert codec.quality_is_qp and "QP" in codec.config()["quality"]
    assert list(codec.default_qualities) == [22, 27, 32, 37, 42, 47]
    assert _slice_qp(name, coded(name, 42)[0]) == 42


@pytest.mark.parametrize("name", ["hevc", "vvc"])
def test_tiny_images_round_trip(name):
    codec = codec_or_skip(name)
    for size in [(1, 1), (17, 3)]:
        img = Image.fromarray(np.full(size + (3,), 90, np.uint8))
        out = codec.decode(codec.encode(img, 32))
        assert out.size == img.size
        assert np.abs(np.asarray(out, int) - 90).max() <= 2


@pytest.mark.parametrize("syntax", ["hevc", "vvc"])
def test_size_sei_escapes_start_code_emulation(syntax):
    nal = ff.size_sei(256, 3, syntax)  # payload 01 00 00 03 must become 01 00 00 03 03
    assert b"\x00\x00\x03\x03" in nal
    assert re.search(b"\x00\x00[\x00-\x02]", nal[2:]) is None
    assert ff.read_size_sei(b"\x00\x00\x00\x01" + nal, syntax) == (256, 3)


@pytest.mark.parametrize("syntax, param_set, idr", [("hevc", b"\x40\x01", b"\x26\x01"), ("vvc", b"\x00\x79", b"\x00\x39")])
def test_the_size_sei_is_the_only_change_to_the_encoders_stream(syntax, param_set, idr):
    """The encoder's bytes stay as they were, their 3-byte start codes too: the SEI adds its 29 bytes and nothing
    else (each 3-byte start code was rewritten as 4 bytes: one byte more than ffmpeg run by hand, per slice)."""
    stream = (b"\x00\x00\x00\x01" + param_set + b"\x0c\x01" + b"\x00\x00\x01" + idr + b"\xaf\x02"
              + b"\x00\x00\x01" + idr + b"\xbe\x03\x00")  # (a second slice, then a trailing zero byte)
    sei = b"\x00\x00\x00\x01" + ff.size_sei(71, 45, syntax)
    out = ff.insert_size_sei(stream, 71, 45, syntax)
    assert len(out) == len(stream) + len(sei) == len(stream) + 29
    assert out.replace(sei, b"", 1) == stream and out.index(sei) == 8  # before the first slice's start code
    assert ff.read_size_sei(out, syntax) == (71, 45) and nal_types(out, syntax)[1] == ff._PREFIX_SEI[syntax]


@pytest.mark.parametrize("name", ["hevc", "vvc"])
def test_an_odd_sized_picture_is_ffmpegs_own_stream_and_the_size_sei(name):
    """What ffmpeg gives when run by hand on the edge-padded picture, and the documented SEI (29 bytes)."""
    codec = codec_or_skip(name)
    rgb = codec.padded(np.asarray(smooth_image()))
    by_hand = ff.run_ffmpeg(codec.exe, codec.encode_args(rgb.shape[1], rgb.shape[0], 32), rgb.tobytes(), "test")
    data = coded(name, 32)[0]
    assert data.replace(b"\x00\x00\x00\x01" + ff.size_sei(W, H, name), b"", 1) == by_hand


@pytest.mark.parametrize("syntax, idr", [("hevc", b"\x26\x01"), ("vvc", b"\x00\x39")])
def test_the_size_sei_of_a_stream_that_begins_with_its_slice(syntax, idr):
    """A slice first, behind a 3-byte start code, and a trailing zero byte: the SEI goes first (the zero_byte step
    looks before the start code only where there is a byte before it)."""
    stream = b"\x00\x00\x01" + idr + b"\xaf\x02\x00"
    sei = b"\x00\x00\x00\x01" + ff.size_sei(71, 45, syntax)
    assert ff.insert_size_sei(stream, 71, 45, syntax) == sei + stream
    assert ff.insert_size_sei(b"\x00" + stream, 71, 45, syntax) == sei + b"\x00" + stream  # (a 4-byte one)


@pytest.mark.parametrize("name", ["hevc", "vvc"])
def test_the_size_sei_goes_before_a_4_byte_start_code_and_the_stream_decodes_the_same(name):
    """An encoder's first slice behind a 4-byte start code (x265's and vvenc's write 3 bytes there): the SEI goes
    before that start code's zero_byte, the slice keeping its own four bytes, and the picture decodes as from the
    codec's own stream (which holds emulation-prevention bytes too)."""
    codec = codec_or_skip(name)
    rgb = codec.padded(np.asarray(smooth_image()))
    raw = ff.run_ffmpeg(codec.exe, codec.encode_args(rgb.shape[1], rgb.shape[0], 32), rgb.tobytes(), "test")
    vcl = next(s for s, u in zip(ff._unit_starts(raw), ff.split_nal_units(raw))
               if ff._nal_type(u, name) < ff._FIRST_NON_VCL[name])
    assert raw[vcl - 4] != 0  # (a 3-byte start code: made a 4-byte one below)
    four = raw[:vcl - 3] + b"\x00" + raw[vcl - 3:]
    sei = b"\x00\x00\x00\x01" + ff.size_sei(W, H, name)
    out = ff.insert_size_sei(four, W, H, name)
    assert out == four[:vcl - 3] + sei + four[vcl - 3:]
    assert np.array_equal(np.asarray(codec.decode(out)), np.asarray(coded(name, 32)[1]))


def test_rd_sweep_rate_is_from_the_stream_bytes():
    codec = codec_or_skip("hevc")
    res = rd_sweep(codec, {"s.png": smooth_image()}, qualities=[37, 27], progress=False)
    bpps = [p["bpp"] for p in res["points"]]
    assert bpps == sorted(bpps) and [p["quality"] for p in res["points"]] == [37, 27]
    for p in res["points"]:
        assert p["bpp"] == pytest.approx(8 * p["bytes"] / (W * H))


@pytest.mark.parametrize("name,bad", [("hevc", 52), ("hevc", 30.5), ("hevc", "x"), ("vvc", 64), ("vvc", -1)])
def test_qp_out_of_range_is_a_user_error(name, bad):
    codec = codec_or_skip(name)
    with pytest.raises(SaicmError, match="QP"):
        codec.encode(smooth_image(), bad)


@pytest.mark.parametrize("spec, says", [("hevc:warp", "unknown hevc preset 'warp'"),
                                         ("vvc:veryslow", "unknown vvc preset 'veryslow'"),
                                         ("avif:11", "avif speed must be an integer 0–10"),
                                         ("jpeg:80", "codec 'jpeg' takes no argument"),
                                         ("webp:6", "codec 'webp' takes no argument")],
                         ids=["hevc:warp", "vvc:veryslow", "avif:11", "jpeg:80", "webp:6"])  # (ids .ci/ names)
def test_bad_preset_is_a_user_error(spec, says):
    with pytest.raises(SaicmError, match=says):  # jpeg:80 and webp:6 silently ignored their argument
        get_codec(spec)


def test_a_bad_avif_speed_is_named_before_what_pillow_lacks(monkeypatch):
    """With a Pillow without libavif (10.0, the oldest allowed) avif:11 said only that libavif was missing: the bad
    argument came to light after an upgrade, and make test-oldest failed on it (install audit)."""
    from PIL import features

    monkeypatch.setattr(features, "check", lambda name: False if name == "avif" else True)
    with pytest.raises(SaicmError, match="avif speed must be an integer 0–10, got '11'"):
        get_codec("avif:11")
    with pytest.raises(SaicmError, match="AVIF needs Pillow built with libavif"):
        get_codec("avif:5")


def test_a_missing_weight_file_is_named_not_taken_for_an_unknown_codec(tmp_path):
    missing = tmp_path / "runs" / "model.safetensors"
    for spec in (str(missing), f"{missing},engine=compressai", "runs/x.safetensors"):
        with pytest.raises(SaicmError, match="model file not found") as e:
            get_codec(spec)
        assert "codecs:" not in str(e.value) and "\n" not in str(e.value)
    with pytest.raises(SaicmError, match="unknown codec 'no-such-model'"):
        get_codec("no-such-model")


@pytest.mark.parametrize("name", ["hevc", "vvc"])
def test_corrupt_stream_is_a_one_line_user_error(name):
    codec = codec_or_skip(name)
    with pytest.raises(SaicmError, match=f"{name} decode: ffmpeg") as e:
        codec.decode(b"\x00\x00\x00\x01" + bytes(range(7, 200)))
    assert "\n" not in str(e.value)


@pytest.mark.parametrize("name,encoder", [("hevc", "libx265"), ("vvc", "libvvenc")])
def test_missing_encoder_names_what_to_install(monkeypatch, name, encoder):
    monkeypatch.setattr(ff, "_listing", lambda exe, kind: frozenset({"hevc", "vvc"}))
    with pytest.raises(SaicmError, match=encoder) as e:
        get_codec(name)
    assert "imageio-ffmpeg" in str(e.value) and "\n" not in str(e.value)


def test_missing_ffmpeg_names_what_to_install(monkeypatch):
    import imageio_ffmpeg

    def no_binary():
        raise RuntimeError("no ffmpeg")

    monkeypatch.setattr(imageio_ffmpeg, "get_ffmpeg_exe", no_binary)
    monkeypatch.setattr(ff.shutil, "which", lambda name: None)
    ff.ffmpeg_exe.cache_clear()
    try:
        with pytest.raises(SaicmError, match="ffmpeg not found: pip install imageio-ffmpeg"):
            get_codec("hevc")
    finally:
        ff.ffmpeg_exe.cache_clear()


@pytest.mark.parametrize("spec", ["hevc", "hevc:slow", "hevc444", "hevc444:slow", "vvc", "vvc:faster", "avif",
                                  "avif:4"])
def test_codec_name_gives_the_same_codec_back(spec):
    codec = codec_or_skip(spec)
    assert codec.name == spec
    assert get_codec(codec.name).config() == codec.config()


def test_saicm_codec_refine_option_names_and_configures_the_sweep():
    plain, refined = get_codec("saicm:mse-hyperprior-n64-v3"), get_codec("saicm:mse-hyperprior-n64-v3,refine=3")
    assert (plain.name, refined.name) == ("mse-hyperprior-n64-v3", "mse-hyperprior-n64-v3+refine3")
    assert refined.config()["refine_steps"] == 3 and "refine_steps" not in plain.config()
    with pytest.raises(SaicmError, match="refine= takes a number of steps"):
        get_codec("saicm:mse-hyperprior-n64-v3,refine=x")
    with pytest.raises(SaicmError, match="unknown codec option 'layer=human'"):
        get_codec("saicm:mse-hyperprior-n64-v3,layer=human")


def test_hevc444_keeps_the_chroma_that_420_subsampling_loses():
    """An RGB-PSNR anchor without chroma subsampling (the anchors audit: CompressAI's bench codes 4:4:4; 4:2:0 made
    `hevc` a few points kinder to the learned codecs). A 2-pixel red/blue checkerboard is all chroma: 4:2:0 averages
    it away, 4:4:4 keeps it; odd sizes come back whole."""
    yy, xx = np.mgrid[:48, :64]
    checker = ((yy // 2 + xx // 2) % 2).astype(bool)
    a = np.where(checker[..., None], np.uint8([255, 0, 0]), np.uint8([0, 0, 255])).astype(np.uint8)
    im = Image.fromarray(a)
    full, sub = codec_or_skip("hevc444"), codec_or_skip("hevc")
    assert psnr(a, np.asarray(full.decode(full.encode(im, 12)))) > 45
    assert psnr(a, np.asarray(sub.decode(sub.encode(im, 12)))) < 15
    assert "yuv444p10le" in full.config()["format"] and "yuv444p10le" in full.config()["rgb_to_yuv"]
    odd = Image.fromarray(a[:45, :61])
    assert full.decode(full.encode(odd, 22)).size == (61, 45)


def test_webp_default_sweep_reaches_the_lowest_rates():
    # from quality 5 up, WebP's curve began above the shipped models' lowest rate points on the photo test split
    # (0.24 bpp against 0.15), so a BD-rate against it covered only part of a model's range
    codec = codec_or_skip("webp")
    assert min(codec.default_qualities) == 0
    big = smooth_image(96, 128)
    assert len(codec.encode(big, 0)) < len(codec.encode(big, 5))


def test_avif_is_tuned_for_psnr():
    # libavif (1.4, libaom 3.14) tunes still images for perceived quality by default (tune=iq): 5.5 % BD-rate (PSNR)
    # on photos, a weaker anchor than the PSNR comparisons it is used in
    import io

    codec = codec_or_skip("avif")
    if codec.options["codec"] != "aom":
        pytest.skip("AVIF without libaom")
    rng = np.random.default_rng(0)
    img = Image.fromarray((np.asarray(smooth_image(96, 128), float) + rng.normal(0, 8, (96, 128, 3)))
                          .clip(0, 255).astype(np.uint8))
    opts = {k: v for k, v in codec.options.items() if k != "advanced"}

    def pillow(**extra):
        buf = io.BytesIO()
        img.save(buf, format="AVIF", quality=50, **opts, **extra)
        return buf.getvalue()

    assert codec.encode(img, 50) == pillow(advanced=[("tune", "psnr")])


def test_ms_ssim_of_a_small_image_needs_no_pytorch(monkeypatch):
    # (it imported PyTorch, about 2.5 s and 600 MB resident, to return NaN for every image of a sweep of small ones)
    import math
    import sys

    from saicm.eval.metrics import ms_ssim

    monkeypatch.setitem(sys.modules, "torch", None)  # (an import of it now fails)
    a = np.zeros((96, 128, 3), np.uint8)
    assert math.isnan(ms_ssim(a, a))


def test_ms_ssim_of_read_only_samples_warns_of_nothing():
    """Every `saicm eval` printed PyTorch's "The given NumPy array is not writable" as a saicm warning: MS-SSIM
    handed it a decoded image's read-only samples. (PyTorch says it once per process: in a child of its own.)"""
    import subprocess
    import sys

    code = ("import warnings, numpy as np; from PIL import Image; from saicm.eval.metrics import ms_ssim\n"
            "a = np.asarray(Image.new('RGB', (200, 180), (90, 120, 30))); assert not a.flags.writeable\n"
            "warnings.simplefilter('error'); print(ms_ssim(a, a))")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0 and "not writable" not in r.stderr, r.stderr[-2000:]
    assert float(r.stdout) == pytest.approx(1.0)


def test_hevc444_codes_and_describes_4_4_4_without_running_ffmpeg(monkeypatch):
    """The arguments and the description of ``hevc444`` are 4:4:4 both ways, and ``hevc``'s stay 4:2:0, on a machine
    without ffmpeg too (mutation audit of 0.30.0: the test above skips there, and a subclass's conversion, its
    coded format or its name could each be put back to ``hevc``'s with no test failing)."""
    from saicm.eval import ffmpeg
    from saicm.eval.codecs import get_codec

    monkeypatch.setattr(ffmpeg, "require", lambda *a: "ffmpeg")
    monkeypatch.setattr(ffmpeg, "ffmpeg_version", lambda exe: "ffmpeg version test")
    full, sub = get_codec("hevc444"), get_codec("hevc")
    assert full.name == "hevc444" and sub.name == "hevc" and full.preset == sub.preset == "medium"
    for codec, fmt, chroma_loc in ((full, "yuv444p10le", False), (sub, "yuv420p10le", True)):
        to_yuv = codec.encode_args(64, 48, 22)[codec.encode_args(64, 48, 22).index("-vf") + 1]
        to_rgb = codec.decode_args()[codec.decode_args().index("-vf") + 1]
        assert to_yuv.endswith(f"format={fmt}") and to_rgb.endswith("format=rgb24")
        assert ("chroma_loc" in to_yuv) == ("chroma_loc" in to_rgb) == chroma_loc  # (4:4:4 has no chroma siting)
        config = codec.config()
        assert config["format"].startswith(f"{fmt}, ")
        assert (config["rgb_to_yuv"], config["yuv_to_rgb"]) == (to_yuv, to_rgb)


def _fake_ffmpeg(tmp_path, body: str):
    """A Python script standing in for ffmpeg (``body`` runs after reading standard input)."""
    import sys

    fake = tmp_path / "ffmpeg"
    fake.write_text(f"#!{sys.executable}\nimport os, signal, sys, time\n"
                    "if not ({'-encoders', '-decoders', '-version'} & set(sys.argv)):\n    sys.stdin.buffer.read()\n"
                    + body + "\n")
    fake.chmod(0o755)
    return str(fake)


@pytest.mark.skipif(__import__("os").name == "nt", reason="a shebang script stands in for ffmpeg")
def test_an_ffmpeg_that_hangs_crashes_or_babbles_is_one_line_in_bounded_time(tmp_path, monkeypatch):
    """A hung ffmpeg was a traceback after a minute (-encoders, -version) or an hour (an encode); one killed by a
    signal was "exit code -11"; a megabyte of stderr on one line was a megabyte of error message."""
    import time

    monkeypatch.setattr(ff, "QUERY_TIMEOUT", 0.5)
    monkeypatch.setattr(ff, "RUN_TIMEOUT", 0.5)
    hang = _fake_ffmpeg(tmp_path, "time.sleep(30)")
    started = time.monotonic()
    for call in (lambda: ff._listing(hang, "encoders"), lambda: ff.ffmpeg_version(hang),
                 lambda: ff.run_ffmpeg(hang, ["-i", "-"], b"x", "hevc encode")):
        with pytest.raises(SaicmError, match=r"ffmpeg .*ffmpeg.* (no answer|did not finish) within 0.5 s") as e:
            call()
        assert "\n" not in str(e.value)
    assert time.monotonic() - started < 20
    # (the fakes that crash or babble are not timed: each is a Python that must start first, which took more than
    # 0.5 s on a loaded machine, and the crash was "did not finish within 0.5 s")
    monkeypatch.setattr(ff, "QUERY_TIMEOUT", 60)
    monkeypatch.setattr(ff, "RUN_TIMEOUT", 60)
    crash = _fake_ffmpeg(tmp_path, "os.kill(os.getpid(), signal.SIGSEGV)")
    with pytest.raises(SaicmError, match="hevc decode: ffmpeg: killed by SIGSEGV, no output"):
        ff.run_ffmpeg(crash, [], b"x", "hevc decode")
    with pytest.raises(SaicmError, match="-version: killed by SIGSEGV"):
        ff.ffmpeg_version(crash)
    babble = _fake_ffmpeg(tmp_path, "sys.stderr.write('x' * 3_000_000); sys.exit(1)")
    with pytest.raises(SaicmError, match=r"hevc encode: ffmpeg: x+… \(2999700 more characters\)") as e:
        ff.run_ffmpeg(babble, [], b"x", "hevc encode")
    assert len(str(e.value)) < 500


@pytest.mark.skipif(__import__("os").name == "nt", reason="a shebang script stands in for ffmpeg")
@pytest.mark.parametrize("output", [b"garbage " * 600, b"P6\n8 8\n255\n" + bytes(20)])
def test_an_ffmpeg_that_exits_0_with_bytes_that_are_no_picture_is_one_line(tmp_path, monkeypatch, output):
    """Garbage or a truncated picture from a decode was Pillow's traceback; garbage from an encode was blamed on the
    decode that followed (ffmpeg's "Nothing was written into output file")."""
    fake = _fake_ffmpeg(tmp_path, f"sys.stdout.buffer.write({output!r})")
    monkeypatch.setattr(ff, "require", lambda *a: fake)
    monkeypatch.setattr(ff, "ffmpeg_version", lambda exe: "ffmpeg version test")
    codec = get_codec("hevc")
    with pytest.raises(SaicmError, match=r"hevc decode: ffmpeg .* gave no readable picture \(\d+ bytes: ") as e:
        codec.decode(b"\x00\x00\x00\x01" + bytes(40))
    assert "\n" not in str(e.value) and "BytesIO" not in str(e.value)
    with pytest.raises(SaicmError, match=r"hevc encode: ffmpeg .* gave \d+ bytes that hold no hevc picture"):
        codec.encode(smooth_image(48, 64), 32)


@pytest.mark.skipif(__import__("os").name == "nt", reason="a shebang script stands in for ffmpeg")
@pytest.mark.parametrize("output", [b"garbage " * 600, b"garbage\x00\x00\x01", b"\x00\x00\x01\x00\x00\x01"])
def test_an_encode_of_a_padded_picture_with_bytes_that_hold_none_is_the_same_one_line(tmp_path, monkeypatch, output):
    """An odd-sized picture is coded padded and its size written in an SEI before the first picture: bytes with no
    picture were an IndexError traceback there (an empty NAL unit), or "hevc encoder produced no picture data"
    without the codec's name, while the same bytes of an even-sized picture were said as below."""
    fake = _fake_ffmpeg(tmp_path, f"sys.stdout.buffer.write({output!r})")
    monkeypatch.setattr(ff, "require", lambda *a: fake)
    monkeypatch.setattr(ff, "ffmpeg_version", lambda exe: "ffmpeg version test")
    for size in ((48, 64), (47, 63)):
        with pytest.raises(SaicmError, match=r"hevc encode: ffmpeg .* gave \d+ bytes that hold no hevc picture"):
            get_codec("hevc").encode(smooth_image(*size), 32)


def test_how_a_program_ended_and_long_text_are_said_exactly():
    """exit_text and clipped, at their edges (mutation audit: a signal number outside Python's list, a text of
    exactly the limit and the cut's length were not checked)."""
    assert ff.exit_text(1) == "exit code 1" and ff.exit_text(0) == "exit code 0"
    assert ff.exit_text(-11) == "killed by SIGSEGV"
    assert ff.exit_text(-200) == "killed by signal 200"  # (no such signal name)
    assert ff.clipped("x" * 300) == "x" * 300
    assert ff.clipped("x" * 301) == "x" * 300 + "… (1 more characters)"
    assert ff.clipped("abcdef", 4) == "abcd… (2 more characters)"


def test_has_picture_counts_only_vcl_nal_units():
    """Parameter sets alone (VPS, SPS, PPS) hold no picture; an IDR slice does (NAL types just below and at the
    first non-VCL type; mutation audit: the boundary was not checked)."""
    start = b"\x00\x00\x00\x01"
    hevc = lambda t: start + bytes([t << 1, 1]) + b"\xaa\xbb"  # noqa: E731  (header: type in bits 1..6)
    vvc = lambda t: start + bytes([0, (t << 3) | 1]) + b"\xaa\xbb"  # noqa: E731  (type in the second byte)
    assert not ff.has_picture(hevc(32) + hevc(33) + hevc(34), "hevc")
    assert ff.has_picture(hevc(32) + hevc(33) + hevc(34) + hevc(19), "hevc")
    assert ff.has_picture(hevc(31), "hevc") and not ff.has_picture(hevc(39), "hevc")
    assert not ff.has_picture(vvc(14) + vvc(15) + vvc(12), "vvc")
    assert ff.has_picture(vvc(14) + vvc(11), "vvc") and ff.has_picture(vvc(7), "vvc")
    assert not ff.has_picture(b"", "hevc") and not ff.has_picture(b"garbage" * 10, "hevc")


@pytest.mark.skipif(__import__("os").name == "nt", reason="a shebang script stands in for ffmpeg")
def test_an_ffmpegs_last_words_its_silence_and_its_bytes_are_said_as_they_were(tmp_path):
    """run_ffmpeg and the -version query (mutation audit): the last line of several is said, with the signal that
    killed ffmpeg after it spoke; exit 0 with nothing on standard output is an error, not an empty result; output
    that is not UTF-8 is read, not a UnicodeDecodeError."""
    said = _fake_ffmpeg(tmp_path, "sys.stderr.write('first line\\nlast line\\n'); sys.stderr.flush(); "
                                  "os.kill(os.getpid(), signal.SIGSEGV)")
    with pytest.raises(SaicmError, match=r"^hevc decode: ffmpeg: last line \(killed by SIGSEGV\)$"):
        ff.run_ffmpeg(said, [], b"x", "hevc decode")
    silent = _fake_ffmpeg(tmp_path, "pass")
    with pytest.raises(SaicmError, match=r"^hevc encode: ffmpeg: exit code 0, no output$"):
        ff.run_ffmpeg(silent, [], b"x", "hevc encode")
    latin = _fake_ffmpeg(tmp_path, "sys.stdout.buffer.write(b'ffmpeg version n7 caf\\xe9 Copyright x\\n')")
    assert ff.ffmpeg_version.__wrapped__(latin) == "ffmpeg version n7 caf\ufffd"


@pytest.mark.skipif(__import__("os").name == "nt", reason="a shebang script stands in for ffmpeg")
def test_a_decode_to_no_picture_says_why_pillow_could_not_read_it(tmp_path, monkeypatch):
    """Garbage is "not an image"; a truncated picture is Pillow's reason, cut short (mutation audit: the reason
    was not checked)."""
    for output, why in ((b"garbage " * 600, "not an image"),
                        (b"P6\n8 8\n255\n" + bytes(20), "image file is truncated")):
        fake = _fake_ffmpeg(tmp_path, f"sys.stdout.buffer.write({output!r})")
        monkeypatch.setattr(ff, "require", lambda *a, fake=fake: fake)
        monkeypatch.setattr(ff, "ffmpeg_version", lambda exe: "ffmpeg version test")
        codec = get_codec("hevc")
        with pytest.raises(SaicmError, match=rf"gave no readable picture \(\d+ bytes: {why}"):
            codec.decode(b"\x00\x00\x00\x01" + bytes(40))
