"""Every codec behind one interface, with its default quality sweep.

``get_codec("jpeg")``, ``get_codec("webp")``, ``get_codec("avif")``,
``get_codec("hevc")``, ``get_codec("vvc")``, ``get_codec("saicm:<model>")``
(or a bare shipped model name). ``encode`` returns the exact bytes a file
would hold, so bpp always comes from bytes written.

For ``hevc`` and ``vvc`` the quality number is a **QP** (lower = more bits);
``Codec.quality_is_qp`` says so. ``hevc:PRESET`` / ``vvc:PRESET`` pick the
encoder preset and ``avif:SPEED`` the libaom speed.
"""

from __future__ import annotations

import io
from typing import Callable, Dict

from PIL import Image

from ..errors import SaicmError
from .ffmpeg import HEVCIntra, VVCIntra


class Codec:
    name: str = ""
    #: the sweep used when the caller gives no qualities; higher = more bits, except when
    #: ``quality_is_qp`` (then quality is a quantisation parameter: lower = more bits)
    default_qualities: tuple = ()
    quality_is_qp: bool = False

    def encode(self, img: Image.Image, quality: int) -> bytes:
        raise NotImplementedError

    def decode(self, data: bytes) -> Image.Image:
        raise NotImplementedError

    def config(self) -> dict:
        return {}


CODECS: Dict[str, Callable[[str], Codec]] = {}


def register_codec(name: str):
    def deco(factory):
        CODECS[name] = factory
        return factory

    return deco


class PillowCodec(Codec):
    format = ""
    options: dict = {}

    def encode(self, img, quality):
        buf = io.BytesIO()
        img.convert("RGB").save(buf, format=self.format, quality=int(quality), **self.options)
        return buf.getvalue()

    def decode(self, data):
        im = Image.open(io.BytesIO(data))
        im.load()
        return im.convert("RGB")

    def config(self):
        import PIL

        return {"library": f"Pillow {PIL.__version__}", "format": self.format, **self.options}


@register_codec("jpeg")
class JPEG(PillowCodec):
    """libjpeg through Pillow: 4:2:0, optimised Huffman tables."""

    name = "jpeg"
    format = "JPEG"
    options = {"optimize": True, "subsampling": "4:2:0"}
    default_qualities = (5, 10, 15, 20, 30, 40, 50, 60, 70, 80, 90, 95)

    def __init__(self, arg: str = ""):
        pass


@register_codec("webp")
class WebP(PillowCodec):
    """libwebp (lossy) through Pillow, method 6 (slowest, best)."""

    name = "webp"
    format = "WEBP"
    options = {"method": 6}
    default_qualities = (5, 10, 20, 30, 40, 50, 60, 70, 80, 90, 95)

    def __init__(self, arg: str = ""):
        pass


@register_codec("avif")
class AVIF(PillowCodec):
    """AVIF (AV1 intra in HEIF) through Pillow's libavif: libaom encoder, dav1d decoder.

    Quality 0–100 as for WebP (libavif maps it to the AV1 quantiser). 8-bit
    4:2:0, libavif's own RGB→YUV conversion (BT.601 matrix, full range, as
    Pillow sets it). ``speed`` 6 (libavif's default; ``avif:SPEED`` picks
    0 = slowest/best … 10); ``max_threads`` 1, because libaom's output depends
    on the thread count. The bytes are a complete ``.avif`` file (the HEIF
    boxes add a few hundred bytes: a flat 64×64 image is 318 bytes).
    """

    name = "avif"
    format = "AVIF"
    default_qualities = (5, 10, 20, 30, 40, 50, 60, 70, 80, 90, 95)

    def __init__(self, arg: str = ""):
        from PIL import features

        if not features.check("avif"):
            raise SaicmError("AVIF needs Pillow built with libavif: pip install -U Pillow (wheels 11.3+ include it)")
        speed = arg or "6"
        if not speed.isdigit() or not 0 <= int(speed) <= 10:
            raise SaicmError(f"avif speed must be an integer 0–10, got {arg!r}")
        from PIL import _avif

        codec = "aom" if _avif.encoder_codec_available("aom") else "auto"
        if int(speed) != 6:  # get_codec(codec.name) gives this codec back
            self.name = f"avif:{int(speed)}"
        self.options = {"speed": int(speed), "subsampling": "4:2:0", "range": "full", "max_threads": 1,
                        "codec": codec}

    def config(self):
        from PIL import _avif, features

        return {**super().config(), "libavif": features.version("avif"), "codecs": _avif.codec_versions()}


@register_codec("hevc")
class HEVC(HEVCIntra, Codec):
    __doc__ = HEVCIntra.__doc__


@register_codec("vvc")
class VVC(VVCIntra, Codec):
    __doc__ = VVCIntra.__doc__


@register_codec("saicm")
class SaicmCodec(Codec):
    """A saicm model; qualities are the model's rate points.

    ``saicm:MODEL,refine=N`` encodes with N steps of latent refinement
    (``saicm compress --refine N``); its results are named ``MODEL+refineN``.
    """

    def __init__(self, model: str = ""):
        from ..codec.pipeline import check_refine
        from ..models.zoo import load_model

        model, *opts = model.split(",")
        self.refine = 0
        for opt in opts:
            key, _, value = opt.partition("=")
            if key != "refine" or not value.isdigit():
                raise SaicmError(f"unknown saicm codec option {opt!r} (known: refine=STEPS)")
            self.refine = int(value)
        net, self.info = load_model(model or None)
        check_refine(self.info, self.refine)
        self.name = self.info.name + (f"+refine{self.refine}" if self.refine else "")
        self.default_qualities = tuple(range(1, net.num_qualities + 1))

    def encode(self, img, quality):
        from ..codec.pipeline import compress

        return compress(img, model=self.info.path, quality=quality, refine=self.refine)

    def decode(self, data):
        from ..codec.pipeline import decompress

        return decompress(data, model=self.info.path).convert("RGB")

    def config(self):
        from ..models.zoo import file_checksum

        extra = {"refine_steps": self.refine} if self.refine else {}
        return {"model": self.info.name, "architecture": self.info.architecture, **self.info.config,
                "weights_sha256_prefix": file_checksum(self.info.path).hex(), **extra}


def get_codec(spec: str) -> Codec:
    """``NAME`` or ``NAME:ARG``; a name that is not a codec is taken as a saicm model."""
    name, _, arg = spec.partition(":")
    if name in CODECS:
        return CODECS[name](arg)
    try:
        return SaicmCodec(spec)
    except SaicmError:
        known = ", ".join(sorted(CODECS))
        raise SaicmError(f"unknown codec {spec!r} (codecs: {known}; or a saicm model name)") from None
