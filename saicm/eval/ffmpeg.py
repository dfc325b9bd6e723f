"""HEVC and VVC intra still-image baselines through the ffmpeg binary.

Both codecs run the ffmpeg that the ``imageio-ffmpeg`` wheel bundles
(``imageio_ffmpeg.get_ffmpeg_exe()``, which honours ``IMAGEIO_FFMPEG_EXE``),
falling back to ``ffmpeg`` on ``PATH``. Pixels only ever travel through pipes;
no temporary files are written.

Common to both (the 4:2:0 10-bit all-intra setting of the coding-for-machines
common test conditions):

* **Colour conversion** is done by ffmpeg's swscale in both directions with the
  same settings: BT.709 matrix, limited ("tv") range, 4:2:0 with left-sited
  chroma (the HEVC/VVC default, chroma_sample_loc_type 0), 10-bit
  (``yuv420p10le``), flags ``bicubic+accurate_rnd+full_chroma_int+
  full_chroma_inp+bitexact``. The conversion alone (no coding) gives
  41.3 dB PSNR on skimage's astronaut: the ceiling these codecs approach at
  low QP. The stream's VUI says BT.709 matrix, BT.709 primaries, sRGB transfer,
  limited range, so other decoders show the same colours.
* **Sizes**: 4:2:0 needs even dimensions, so an odd width or height is first
  padded by one column/row by edge replication (in RGB, before conversion).
  The encoder itself pads to its minimum coding-block multiple (8) by edge
  replication (checked: x265 and vvenc give the same slice data as a picture
  edge-padded by hand) and signals the crop in the SPS conformance window,
  which every decoder applies. An odd size cannot be expressed in a 4:2:0
  conformance window, so for odd sizes (and for pictures below the encoders'
  minimum, padded up to ``min_size``: 16 for x265, 32 for vvenc) the true
  width and height ride in a user-data-unregistered prefix SEI (UUID
  :data:`SIZE_SEI_UUID`, 4 bytes of payload, 29 bytes with start code)
  inserted before the slice; other decoders ignore it and show the padded
  edge. Those bytes count in the bitrate like all others; even-sized pictures
  carry no SEI.
* **Bytes** are the raw Annex-B elementary stream (what a ``.hevc`` / ``.266``
  file holds): parameter sets and one IDR slice, no container. Optional
  NAL units that carry no picture data are switched off (x265's version SEI,
  vvenc's access unit delimiter).
* **quality is the QP** (lower = more bits), fixed for the whole picture: no
  adaptive quantisation, no intra-QP offset; the slice QP in the stream equals
  the requested QP.
* **Threads**: one encoder/decoder thread by default (``threads=`` to change;
  0 = ffmpeg's automatic choice). On a 256×256 crop both encoders gave the
  same bytes with 1, 2 and automatic threads (checked, not guaranteed).
"""

from __future__ import annotations

import functools
import io
import shutil
import subprocess

import numpy as np
from PIL import Image, UnidentifiedImageError

from ..errors import SaicmError

#: identifies saicm's original-size SEI (user_data_unregistered) in HEVC/VVC streams
SIZE_SEI_UUID = bytes.fromhex("67d3ab74ab094ac281a62e8954cc4730")

SWS_FLAGS = "bicubic+accurate_rnd+full_chroma_int+full_chroma_inp+bitexact"
#: RGB (full-range sRGB) -> Y'CbCr 4:2:0 10-bit, BT.709 matrix, limited range
TO_YUV = (f"scale=out_color_matrix=bt709:out_range=tv:out_chroma_loc=left:flags={SWS_FLAGS},"
          "format=yuv420p10le")
#: the exact inverse settings
TO_RGB = (f"scale=in_color_matrix=bt709:in_range=tv:in_chroma_loc=left:flags={SWS_FLAGS},"
          "format=rgb24")
#: the same without chroma subsampling: Y'CbCr 4:4:4 10-bit (``hevc444``)
TO_YUV_444 = f"scale=out_color_matrix=bt709:out_range=tv:flags={SWS_FLAGS},format=yuv444p10le"
TO_RGB_444 = f"scale=in_color_matrix=bt709:in_range=tv:flags={SWS_FLAGS},format=rgb24"
#: colour description written into the stream's VUI
COLOUR_TAGS = ["-colorspace", "bt709", "-color_primaries", "bt709", "-color_trc", "iec61966-2-1",
               "-color_range", "tv"]

INSTALL_HINT = "pip install imageio-ffmpeg (its bundled ffmpeg has libx265, libvvenc and the vvc decoder)"
#: seconds for ``ffmpeg -encoders``/``-decoders``/``-version``, and for one encode or decode (a hung binary then
#: ends in one line; tests make them small)
QUERY_TIMEOUT = 60
RUN_TIMEOUT = 3600


@functools.lru_cache(maxsize=None)
def ffmpeg_exe() -> str:
    """Path of the ffmpeg binary: imageio-ffmpeg's, else ``ffmpeg`` on PATH."""
    try:
        import imageio_ffmpeg

        return imageio_ffmpeg.get_ffmpeg_exe()
    except Exception:  # not installed, or no binary for this platform
        exe = shutil.which("ffmpeg")
        if exe is None:
            raise SaicmError(f"ffmpeg not found: {INSTALL_HINT}") from None
        return exe


@functools.lru_cache(maxsize=None)
def _listing(exe: str, kind: str) -> frozenset:
    """Names in ``ffmpeg -encoders`` / ``-decoders`` (kind is 'encoders' or 'decoders')."""
    out = _query(exe, f"-{kind}")
    names, started = set(), False
    for line in out.splitlines():
        if line.strip().startswith("------"):
            started = True
            continue
        parts = line.split()
        if started and len(parts) >= 2:
            names.add(parts[1])
    return frozenset(names)


@functools.lru_cache(maxsize=None)
def ffmpeg_version(exe: str) -> str:
    """First line of ``ffmpeg -version`` without the copyright, e.g. ``ffmpeg version n9.0.2-...``."""
    out = _query(exe, "-version")
    return out.split("\n", 1)[0].split(" Copyright")[0].strip()


def _query(exe: str, option: str) -> str:
    """``ffmpeg -hide_banner OPTION``'s standard output, within :data:`QUERY_TIMEOUT` seconds, else one line."""
    try:
        p = subprocess.run([exe, "-hide_banner", option], capture_output=True, text=True, errors="replace",
                           timeout=QUERY_TIMEOUT)
    except OSError as e:
        raise SaicmError(f"cannot run ffmpeg {exe}: {e.strerror or e}") from None
    except subprocess.TimeoutExpired:  # (a hung binary: a traceback after a minute, and a stray process before)
        raise SaicmError(f"ffmpeg {exe} {option}: no answer within {QUERY_TIMEOUT:g} s") from None
    if p.returncode < 0:
        raise SaicmError(f"ffmpeg {exe} {option}: {exit_text(p.returncode)}")
    return p.stdout


def exit_text(code: int) -> str:
    """How a program ended, in words: ``exit code 1``, or ``killed by SIGSEGV`` for a negative return code."""
    if code < 0:
        import signal

        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit code {code}"


def clipped(text: str, limit: int = 300) -> str:
    """``text`` cut to ``limit`` characters (a program's one line of megabytes stays out of an error message)."""
    return text if len(text) <= limit else text[:limit] + f"… ({len(text) - limit} more characters)"


def require(encoder: str, decoder: str, what: str) -> str:
    """The ffmpeg path, or a SaicmError naming what is missing and what to install."""
    exe = ffmpeg_exe()
    if encoder not in _listing(exe, "encoders"):
        raise SaicmError(f"{what} needs an ffmpeg with the {encoder} encoder ({exe} has none): {INSTALL_HINT}")
    if decoder not in _listing(exe, "decoders"):
        raise SaicmError(f"{what} needs an ffmpeg with the {decoder} decoder ({exe} has none; ffmpeg 7.1+ "
                         f"has vvc): {INSTALL_HINT}")
    return exe


def run_ffmpeg(exe: str, args: list, data: bytes, what: str, hint: str = "") -> bytes:
    """Run ffmpeg with ``data`` on stdin; stdout, or a SaicmError with ffmpeg's last stderr line (+ hint)."""
    try:
        p = subprocess.run([exe, "-hide_banner", "-nostats", "-loglevel", "error", *args],
                           input=data, capture_output=True, timeout=RUN_TIMEOUT)
    except OSError as e:
        raise SaicmError(f"{what}: cannot run ffmpeg {exe}: {e.strerror or e}") from None
    except subprocess.TimeoutExpired:  # (subprocess.run has killed it)
        raise SaicmError(f"{what}: ffmpeg {exe} did not finish within {RUN_TIMEOUT:g} s") from None
    lines = [ln.strip() for ln in p.stderr.decode("utf-8", "replace").splitlines() if ln.strip()]
    if p.returncode != 0 or not p.stdout:
        said = f"{exit_text(p.returncode)}, {'no output' if not p.stdout else 'nothing said'}"
        if lines:
            said = clipped(lines[-1]) + (f" ({exit_text(p.returncode)})" if p.returncode < 0 else "")
        raise SaicmError(f"{what}: ffmpeg: {said}{hint}")
    return p.stdout


# --- Annex-B NAL units -------------------------------------------------------------------------

def _unit_starts(stream: bytes) -> list[int]:
    """Where each NAL unit of an Annex-B byte stream begins (its header's first byte, after the start code)."""
    starts, i = [], 0
    while True:
        i = stream.find(b"\x00\x00\x01", i)
        if i < 0:
            return starts
        starts.append(i + 3)
        i += 3


def split_nal_units(stream: bytes) -> list[bytes]:
    """The NAL units (header + payload, start codes removed) of an Annex-B byte stream."""
    starts, n = _unit_starts(stream), len(stream)
    units = []
    for k, s in enumerate(starts):
        e = starts[k + 1] - 3 if k + 1 < len(starts) else n
        # trailing zero bytes belong to the next start code (zero_byte) or are trailing_zero_8bits
        while e > s and stream[e - 1] == 0:
            e -= 1
        units.append(stream[s:e])
    return units


def _escape(rbsp: bytes) -> bytes:
    """Insert emulation-prevention bytes (00 00 0x with x <= 3 -> 00 00 03 0x)."""
    out, zeros = bytearray(), 0
    for b in rbsp:
        if zeros >= 2 and b <= 3:
            out.append(3)
            zeros = 0
        out.append(b)
        zeros = zeros + 1 if b == 0 else 0
    return bytes(out)


def _unescape(ebsp: bytes) -> bytes:
    out, zeros = bytearray(), 0
    for b in ebsp:
        if zeros >= 2 and b == 3:
            zeros = 0
            continue
        out.append(b)
        zeros = zeros + 1 if b == 0 else 0
    return bytes(out)


# nal_unit_header: HEVC  forbidden(1) type(6) layer_id(6) tid+1(3)
#                  VVC   forbidden(1) reserved(1) layer_id(6) type(5) tid+1(3)
def _nal_type(unit: bytes, syntax: str) -> int:
    return (unit[0] >> 1) & 0x3F if syntax == "hevc" else unit[1] >> 3


_PREFIX_SEI = {"hevc": 39, "vvc": 23}
_FIRST_NON_VCL = {"hevc": 32, "vvc": 12}  # VCL NAL unit types are below these


def _sei_header(syntax: str) -> bytes:
    t = _PREFIX_SEI[syntax]
    return bytes([t << 1, 1]) if syntax == "hevc" else bytes([0, (t << 3) | 1])


def size_sei(width: int, height: int, syntax: str) -> bytes:
    """A prefix SEI NAL unit (no start code) carrying the original picture size."""
    if not (0 < width < 65536 and 0 < height < 65536):
        raise SaicmError(f"image size {width}x{height} too large for the size SEI")
    payload = SIZE_SEI_UUID + width.to_bytes(2, "big") + height.to_bytes(2, "big")
    # sei_message: payload_type 5 (user_data_unregistered), payload_size, payload; rbsp_trailing_bits
    rbsp = bytes([5, len(payload)]) + payload + b"\x80"
    return _sei_header(syntax) + _escape(rbsp)


def has_picture(stream: bytes, syntax: str) -> bool:
    """Whether an Annex-B stream holds a VCL NAL unit (picture data)."""
    return any(u and _nal_type(u, syntax) < _FIRST_NON_VCL[syntax] for u in split_nal_units(stream)
               if len(u) >= 2)


def insert_size_sei(stream: bytes, width: int, height: int, syntax: str) -> bytes:
    """``stream`` with the size SEI (and its 4-byte start code) inserted just before the first VCL NAL unit's start
    code; the encoder's own bytes are kept as they were (re-joining the units with 4-byte start codes added a byte
    for each of its 3-byte ones)."""
    starts = _unit_starts(stream)
    first_vcl = next((s for s, u in zip(starts, split_nal_units(stream))
                      if len(u) >= 2 and _nal_type(u, syntax) < _FIRST_NON_VCL[syntax]), None)
    if first_vcl is None:
        raise SaicmError(f"{syntax} encoder produced no picture data")
    at = first_vcl - 3 - (first_vcl >= 4 and stream[first_vcl - 4] == 0)  # (a 4-byte start code's zero_byte)
    return stream[:at] + b"\x00\x00\x00\x01" + size_sei(width, height, syntax) + stream[at:]


def finished_stream(data: bytes, syntax: str, size: tuple[int, int], coded: tuple[int, int], name: str,
                    exe: str) -> bytes:
    """The stream ffmpeg ``exe`` gave for pictures of ``size`` (w, h) coded at ``coded`` (padded), with saicm's size
    SEI when they differ; bytes that hold no picture (ffmpeg exiting 0 with none) are one line naming codec ``name``
    (of a padded picture it was insert_size_sei's IndexError, or its words without the codec's name)."""
    if not has_picture(data, syntax):
        raise SaicmError(f"{name} encode: ffmpeg {exe} gave {len(data)} bytes that hold no {syntax} picture")
    return insert_size_sei(data, *size, syntax) if coded != size else data


def read_size_sei(stream: bytes, syntax: str) -> tuple[int, int] | None:
    """The (width, height) of saicm's size SEI, or None when the stream has none."""
    for unit in split_nal_units(stream):
        if len(unit) < 3 or _nal_type(unit, syntax) != _PREFIX_SEI[syntax]:
            continue
        rbsp, i = _unescape(unit[2:]), 0
        while i < len(rbsp) and rbsp[i:] != b"\x80":  # sei_message()s until rbsp_trailing_bits
            ptype = psize = 0
            while i < len(rbsp) and rbsp[i] == 0xFF:
                ptype, i = ptype + 255, i + 1
            if i >= len(rbsp):
                break
            ptype, i = ptype + rbsp[i], i + 1
            while i < len(rbsp) and rbsp[i] == 0xFF:
                psize, i = psize + 255, i + 1
            if i >= len(rbsp):
                break
            psize, i = psize + rbsp[i], i + 1
            payload, i = rbsp[i:i + psize], i + psize
            if ptype == 5 and len(payload) == 20 and payload[:16] == SIZE_SEI_UUID:
                return int.from_bytes(payload[16:18], "big"), int.from_bytes(payload[18:20], "big")
    return None


# --- the codecs --------------------------------------------------------------------------------

def parse_qp(name: str, quality, max_qp: int) -> int:
    """A QP given as a codec's quality: an integer 0..max_qp, else a one-line error."""
    try:
        qp = int(quality)
    except (TypeError, ValueError):
        qp = None
    if qp is None or qp != quality or not 0 <= qp <= max_qp:
        raise SaicmError(f"{name}: quality is the QP, an integer 0–{max_qp}; got {quality!r}")
    return qp


def resolve_preset(name: str, arg: str, presets, default: str) -> tuple[str, str]:
    """``(preset, codec name)`` for ``NAME[:PRESET]``: the name carries the preset unless it is the default, so
    that ``get_codec(codec.name)`` gives the same codec back."""
    preset = arg or default
    if preset not in presets:
        raise SaicmError(f"unknown {name} preset {preset!r} (presets: {', '.join(presets)})")
    return preset, name if preset == default else f"{name}:{preset}"


class FFmpegIntraCodec:
    """Shared encode/decode for one-picture, intra-only HEVC/VVC streams (mixed into ``Codec``).

    ``quality`` is the QP. Subclasses set ``name``, ``encoder``, ``decoder``,
    ``syntax`` (the raw muxer/demuxer name), ``presets``, ``max_qp`` and
    implement :meth:`codec_args`.
    """

    encoder = ""
    decoder = ""
    syntax = ""
    presets: tuple = ()
    default_preset = ""
    max_qp = 51
    min_size = 16
    failure_hint = ""
    label = ""
    quality_is_qp = True
    default_qualities = (22, 27, 32, 37, 42, 47)
    #: the colour conversions and the coded format (4:2:0 10-bit unless a subclass codes another)
    to_yuv, to_rgb, pixel_format = TO_YUV, TO_RGB, "yuv420p10le"

    def __init__(self, arg: str = "", threads: int = 1):
        self.preset, self.name = resolve_preset(self.name, arg, self.presets, self.default_preset)
        self.threads = int(threads)
        self.exe = require(self.encoder, self.decoder, self.label)

    def codec_args(self, qp: int) -> list:
        raise NotImplementedError

    def _qp(self, quality) -> int:
        return parse_qp(self.name, quality, self.max_qp)

    def check_quality(self, quality) -> None:
        self._qp(quality)

    def encode_args(self, width: int, height: int, qp: int) -> list:
        """The ffmpeg arguments for one encode (input: padded rgb24 on stdin)."""
        return ["-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{width}x{height}", "-i", "-",
                "-frames:v", "1", "-vf", self.to_yuv, *COLOUR_TAGS, *self.codec_args(qp), "-f", self.syntax, "-"]

    def decode_args(self) -> list:
        """The ffmpeg arguments for one decode (input: the stream on stdin; output: one PPM)."""
        return ["-f", self.syntax, "-c:v", self.decoder, "-threads", str(self.threads), "-i", "-",
                "-frames:v", "1", "-vf", self.to_rgb, "-c:v", "ppm", "-f", "image2pipe", "-"]

    @classmethod
    def coded_size(cls, h: int, w: int) -> tuple[int, int]:
        """The (height, width) coded for an h × w picture: 4:2:0 needs even sizes, the encoders refuse tiny ones
        (the video codecs of :mod:`saicm.video.codecs` share it)."""
        return max(h + h % 2, cls.min_size), max(w + w % 2, cls.min_size)

    @classmethod
    def padded(cls, rgb: np.ndarray) -> np.ndarray:
        """``rgb`` (…, h, w, 3) edge-padded to :meth:`coded_size` (the same array when no padding is needed)."""
        h, w = rgb.shape[-3:-1]
        ph, pw = cls.coded_size(h, w)
        if (ph, pw) == (h, w):
            return rgb
        return np.pad(rgb, [(0, 0)] * (rgb.ndim - 3) + [(0, ph - h), (0, pw - w), (0, 0)], mode="edge")

    def encode(self, img: Image.Image, quality) -> bytes:
        qp = self._qp(quality)
        rgb = np.asarray(img.convert("RGB"))
        h, w = rgb.shape[:2]
        rgb = self.padded(rgb)
        ph, pw = rgb.shape[:2]
        data = run_ffmpeg(self.exe, self.encode_args(pw, ph, qp), np.ascontiguousarray(rgb).tobytes(),
                          f"{self.name} encode", self.failure_hint)
        return finished_stream(data, self.syntax, (w, h), (pw, ph), self.name, self.exe)

    def decode(self, data: bytes) -> Image.Image:
        out = run_ffmpeg(self.exe, self.decode_args(), data, f"{self.name} decode")
        try:  # (ffmpeg exiting 0 with bytes that are no whole picture: a traceback from Pillow)
            im = Image.open(io.BytesIO(out))
            im.load()
            im = im.convert("RGB")
        except Exception as e:
            why = "not an image" if isinstance(e, UnidentifiedImageError) else clipped(str(e), 120)
            raise SaicmError(f"{self.name} decode: ffmpeg {self.exe} gave no readable picture ({len(out)} bytes: "
                             f"{why})") from None
        size = read_size_sei(data, self.syntax)
        if size is not None:
            w, h = size
            if im.width < w or im.height < h:
                raise SaicmError(f"{self.name} decode: size SEI says {w}x{h} but the picture is "
                                 f"{im.width}x{im.height}")
            im = im.crop((0, 0, w, h))
        return im

    def config(self) -> dict:
        return {"library": self.encoder, "ffmpeg": ffmpeg_version(self.exe), "preset": self.preset,
                "threads": self.threads, "quality": "QP (lower = more bits)",
                "format": f"{self.pixel_format}, BT.709 limited range, all-intra, one picture, Annex-B elementary "
                          "stream",
                "encode_args": " ".join(self.codec_args("QP")), "rgb_to_yuv": self.to_yuv, "yuv_to_rgb": self.to_rgb}


X265_PRESETS = ("ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow", "slower",
                "veryslow", "placebo")
VVENC_PRESETS = ("faster", "fast", "medium", "slow", "slower")


class HEVCIntra(FFmpegIntraCodec):
    """HEVC (H.265) intra, 4:2:0 10-bit (Main 10), through ffmpeg's libx265.

    ``quality`` is the **QP** (0–51, lower = more bits), not a 0–100 quality.
    ``get_codec("hevc:PRESET")`` picks an x265 preset (default ``medium``).
    Encoder settings (``-x265-params``), chosen for a fixed-QP all-intra point
    that PSNR comparisons can rely on:

    * ``qp=QP``, ``ipratio=1`` — constant QP; ``ipratio=1`` stops x265 from
      lowering the I-slice QP by its default I/P offset (about −3), so the slice
      QP is the requested QP;
    * ``keyint=1:min-keyint=1:scenecut=0`` — intra only;
    * ``aq-mode=0:cutree=0:psy-rd=0:psy-rdoq=0`` — no adaptive quantisation and
      no psycho-visual tuning (x265's ``--tune psnr`` set);
    * ``info=0:vui-timing-info=0:hash=0`` — no encoder-version SEI, timing or
      picture-hash bytes in the stream;
    * ``pools=THREADS:frame-threads=1`` — ``threads`` worker threads (default 1).
    """

    name = "hevc"
    label = "HEVC (libx265)"
    encoder, decoder, syntax = "libx265", "hevc", "hevc"
    presets, default_preset = X265_PRESETS, "medium"
    max_qp = 51

    def codec_args(self, qp):
        params = (f"qp={qp}:keyint=1:min-keyint=1:scenecut=0:ipratio=1:aq-mode=0:cutree=0:psy-rd=0:psy-rdoq=0"
                  f":info=0:vui-timing-info=0:hash=0:log-level=error")
        if self.threads > 0:
            params += f":pools={self.threads}:frame-threads=1"
        return ["-c:v", "libx265", "-preset", self.preset, "-x265-params", params]


class HEVC444Intra(HEVCIntra):
    """HEVC (H.265) intra as :class:`HEVCIntra`, but 4:4:4 10-bit (Main 4:4:4 10): no chroma subsampling, the usual
    setting of RGB-PSNR comparisons of learned codecs (CompressAI's ``bench`` codes HM and VTM on 4:4:4). On six
    photos of photos/test x265 ``medium`` on 4:4:4 was −4.6 % BD-rate (PSNR) against its 4:2:0 (the anchors audit,
    saicm 0.30.0). ``get_codec("hevc444:PRESET")`` picks an x265 preset (default ``medium``)."""

    name = "hevc444"
    label = "HEVC 4:4:4 (libx265)"
    to_yuv, to_rgb, pixel_format = TO_YUV_444, TO_RGB_444, "yuv444p10le"


class VVCIntra(FFmpegIntraCodec):
    """VVC (H.266) intra, 4:2:0 10-bit (Main 10), through ffmpeg's libvvenc; decoded by ffmpeg's native vvc decoder.

    ``quality`` is the **QP** (0–63, lower = more bits), not a 0–100 quality.
    ``get_codec("vvc:PRESET")`` picks a vvenc preset (``faster``, ``fast``,
    ``medium``, ``slow``, ``slower``; default ``medium``, vvenc's own default and
    a fair stand-in for VTM at a fraction of its CPU time). Encoder options:

    * ``-qp QP -qpa 0`` — fixed QP, vvenc's perceptual QP adaptation off;
    * ``-vvenc-params IntraQPOffset=0`` — vvenc's default lowers intra slices
      by 3 QP (a random-access habit); 0 makes the slice QP the requested QP,
      as in the all-intra configuration;
    * ``-g 1`` — GOP size 1, intra period 1 (all intra);
    * ``-vvenc-params AccessUnitDelimiter=0`` — no access unit delimiter NAL
      (ffmpeg's wrapper turns it on; one picture needs none);
    * ``-threads THREADS`` (default 1).
    """

    name = "vvc"
    label = "VVC (libvvenc)"
    encoder, decoder, syntax = "libvvenc", "vvc", "vvc"
    presets, default_preset = VVENC_PRESETS, "medium"
    max_qp = 63
    # ffmpeg's libvvenc wrapper allocates width*height bytes for the access unit: pad tiny
    # pictures to 32x32 (1 KiB), and say so when a dense picture at low QP does not fit
    min_size = 32
    failure_hint = (" (ffmpeg's libvvenc wrapper fails when the stream needs more than 8 bits per pixel, "
                    "e.g. noise at a very low QP; use a higher QP)")

    def codec_args(self, qp):
        return ["-c:v", "libvvenc", "-preset", self.preset, "-qp", str(qp), "-qpa", "0", "-g", "1",
                "-threads", str(self.threads), "-vvenc-params", "IntraQPOffset=0:AccessUnitDelimiter=0"]
