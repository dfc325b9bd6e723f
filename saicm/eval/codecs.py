"""Every codec behind one interface, with its default quality sweep.

``get_codec("jpeg")``, ``get_codec("webp")``, ``get_codec("avif")``,
``get_codec("hevc")``, ``get_codec("hevc444")``, ``get_codec("vvc")``, ``get_codec("saicm:<model>")``
(or a bare shipped model name). ``encode`` returns the exact bytes a file
would hold, so bpp always comes from bytes written.

For ``hevc``, ``hevc444`` and ``vvc`` the quality number is a **QP** (lower = more bits);
``Codec.quality_is_qp`` says so. ``hevc:PRESET`` / ``hevc444:PRESET`` / ``vvc:PRESET`` pick the
encoder preset and ``avif:SPEED`` the libaom speed.
"""

from __future__ import annotations

import io
import numbers
from pathlib import Path
from typing import Callable, Dict

from PIL import Image

from .._registry import registrar
from ..errors import SaicmError
from .ffmpeg import HEVC444Intra, HEVCIntra, VVCIntra


class Codec:
    name: str = ""
    #: the sweep used when the caller gives no qualities; higher = more bits, except when
    #: ``quality_is_qp`` (then quality is a quantisation parameter: lower = more bits)
    default_qualities: tuple = ()
    quality_is_qp: bool = False

    def check_quality(self, quality) -> None:
        """Refuse a quality this codec cannot code, in one line (a sweep checks all of them before it starts)."""

    def encode(self, img: Image.Image, quality: int) -> bytes:
        raise NotImplementedError

    def decode(self, data: bytes) -> Image.Image:
        raise NotImplementedError

    def size(self, data: bytes) -> int:
        """The bytes a receiver needs for ``data`` (what bpp is computed from)."""
        return len(data)

    def config(self) -> dict:
        return {}


CODECS: Dict[str, Callable[[str], Codec]] = {}


register_codec = registrar(CODECS, "codec")


def _label(info) -> str:
    """The name results and plots give a model: its own, except that ``saicm train``'s ``RUN/model.safetensors``
    is named after its run folder (every run was called ``model``, so curves of different runs shared a name).
    Only the label: the files it writes record the model's own name."""
    path = Path(info.path)
    if info.name == "model" and path.name == "model.safetensors" and path.parent.name not in ("", ".", ".."):
        return path.parent.name
    return info.name


def _no_argument(name: str, arg: str) -> None:
    if arg:
        raise SaicmError(f"codec {name!r} takes no argument (got {name}:{arg}); its settings are fixed")


class PillowCodec(Codec):
    format = ""
    options: dict = {}

    def check_quality(self, quality) -> None:
        if not (isinstance(quality, numbers.Integral) and 0 <= quality <= 100):  # (Pillow clamped: 101 ran as 100)
            raise SaicmError(f"{self.name} quality must be a whole number 0-100, got {quality!r}")

    def encode(self, img, quality):
        self.check_quality(quality)
        buf = io.BytesIO()
        img.convert("RGB").save(buf, format=self.format, quality=int(quality), **self.options)
        return buf.getvalue()

    def decode(self, data):
        im = Image.open(io.BytesIO(data), formats=(self.format,))  # (what encode wrote: no other plugin)
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
        _no_argument(self.name, arg)


@register_codec("webp")
class WebP(PillowCodec):
    """libwebp (lossy) through Pillow, method 6 (slowest, best).

    The default sweep starts at quality 0: from 5 up it began at 0.24 bpp / 28.8 dB on the photo test split, above
    the shipped models' lowest rate points (0.14–0.15 bpp), so a BD-rate against WebP covered only part of a model's
    range; 0 and 2 reach 0.11 and 0.17 bpp on six of those photos."""

    name = "webp"
    format = "WEBP"
    options = {"method": 6}
    default_qualities = (0, 2, 5, 10, 20, 30, 40, 50, 60, 70, 80, 90, 95)

    def __init__(self, arg: str = ""):
        _no_argument(self.name, arg)


@register_codec("avif")
class AVIF(PillowCodec):
    """AVIF (AV1 intra in HEIF) through Pillow's libavif: libaom encoder, dav1d decoder.

    Quality 0–100 as for WebP (libavif maps it to the AV1 quantiser). 8-bit
    4:2:0, libavif's own RGB→YUV conversion (BT.601 matrix, full range, as
    Pillow sets it). ``speed`` 6 (libavif's default; ``avif:SPEED`` picks
    0 = slowest/best … 10); ``max_threads`` 1, because libaom's output depends
    on the thread count. libaom is tuned for PSNR (``tune=psnr``): libavif 1.4 with libaom 3.14 otherwise tunes
    still images for perceived quality (``tune=iq``), which cost 5.5 % BD-rate (PSNR) on six photos of
    photos/test (6.1 % over the default model's range). The bytes are a complete ``.avif`` file (the HEIF
    boxes add a few hundred bytes: a flat 64×64 image is 318 bytes).
    """

    name = "avif"
    format = "AVIF"
    default_qualities = (5, 10, 20, 30, 40, 50, 60, 70, 80, 90, 95)

    def __init__(self, arg: str = ""):
        from PIL import features

        speed = arg or "6"
        if not speed.isdigit() or not 0 <= int(speed) <= 10:  # (the user's own mistake first, whatever Pillow has)
            raise SaicmError(f"avif speed must be an integer 0–10, got {arg!r}")
        if not features.check("avif"):
            raise SaicmError("AVIF needs Pillow built with libavif: pip install -U Pillow (wheels 11.3+ include it)")
        from PIL import _avif

        codec = "aom" if _avif.encoder_codec_available("aom") else "auto"
        if int(speed) != 6:  # get_codec(codec.name) gives this codec back
            self.name = f"avif:{int(speed)}"
        self.options = {"speed": int(speed), "subsampling": "4:2:0", "range": "full", "max_threads": 1,
                        "codec": codec}
        if codec == "aom":  # (another encoder's options are its own)
            self.options["advanced"] = (("tune", "psnr"),)

    def config(self):
        from PIL import _avif, features

        return {**super().config(), "libavif": features.version("avif"), "codecs": _avif.codec_versions()}


@register_codec("hevc")
class HEVC(HEVCIntra, Codec):
    __doc__ = HEVCIntra.__doc__


@register_codec("hevc444")
class HEVC444(HEVC444Intra, Codec):
    __doc__ = HEVC444Intra.__doc__


@register_codec("vvc")
class VVC(VVCIntra, Codec):
    __doc__ = VVCIntra.__doc__


def parse_options(text: str, known: dict[str, str]) -> dict[str, str]:
    """``key=value`` options after a codec spec's first comma; ``known``: key → what it takes."""
    out = {}
    for opt in [o for o in text.split(",") if o]:
        key, _, value = opt.partition("=")
        if key not in known or not value:
            names = ", ".join(f"{k}={v}" for k, v in known.items())
            raise SaicmError(f"unknown codec option {opt!r} (known: {names})")
        out[key] = value
    return out


def _base_quality(value: str | None, num: int) -> int | str:
    """``base=K`` (a fixed machine-layer rate point) or ``base=pair`` (machine rate point = human rate point)."""
    from ..models.catalog import default_quality

    if value is None:
        return default_quality(num)
    if value == "pair":
        return "pair"
    if not value.isdigit() or not 1 <= int(value) <= num:
        raise SaicmError(f"base= takes pair or a machine rate point 1..{num}, got {value!r}")
    return int(value)


def _refine_steps(opts: dict) -> int:
    if not opts.get("refine", "0").isdigit():
        raise SaicmError(f"refine= takes a number of steps, got {opts['refine']!r}")
    return int(opts.get("refine", 0))


@register_codec("saicm")
class SaicmCodec(Codec):
    """A saicm model; qualities are the model's rate points.

    ``saicm:MODEL,refine=N`` encodes with N steps of latent refinement
    (``saicm compress --refine N``); its results are named ``MODEL+refineN``.
    ``saicm:MODEL,engine=E`` codes with engine E (``saicm compress --engine``; named ``MODEL@E``), e.g.
    ``engine=compressai`` for the format-1 files of saicm ≤ 0.3 next to the portable ones.

    Scalable models are two codecs, one per layer (bpp always of the whole
    file a reader needs): ``MODEL,layer=machine`` sweeps the machine layer
    (the stripped two-layer file; named ``MODEL-machine``), ``MODEL,layer=human``
    (the default) sweeps the human layer's rate points over one machine
    rate point, ``base=K`` (default the base's middle one; named
    ``MODEL-human-bK``), or with the machine rate point equal to the human one,
    ``base=pair`` (named ``MODEL-human-pair``). ``engine=compressai`` (named ``…@compressai``) writes the
    files of saicm 0.4 (human layer version 1) instead of the portable engine's; ``refine=N`` refines the human
    layer's latents (named ``MODEL-human-bK+refineN``).
    """

    def __init__(self, model: str = ""):
        from ..codec.pipeline import check_refine, is_scalable
        from ..models.zoo import load_model

        from ..engine import ENGINES

        model, _, rest = model.partition(",")
        net, self.info = load_model(model or None)
        self.scalable = is_scalable(net)
        if self.scalable:
            opts = parse_options(rest, {"layer": "machine|human", "base": "K|pair", "engine": "auto|compressai",
                                         "refine": "STEPS"})
            self.layer = opts.get("layer", "human")
            if self.layer not in ("machine", "human"):
                raise SaicmError(f"layer= takes machine or human, got {self.layer!r}")
            self.refine = _refine_steps(opts)
            self.engine = opts.get("engine", "auto")
            if self.engine not in ("auto", "compressai"):
                raise SaicmError(f"engine= takes auto or compressai for a scalable model, got {self.engine!r}")
            if self.refine and self.engine != "auto":
                raise SaicmError("refine= codes the human layer with the portable engine (engine=auto)")
            at = f"@{self.engine}" if self.engine != "auto" else ""
            if self.layer == "machine":
                if "base" in opts or self.refine:
                    raise SaicmError("base= and refine= are for layer=human (the machine layer's qualities are the "
                                     "sweep; it is the base's own file)")
                self.base_quality = None
                self.name = f"{_label(self.info)}-machine{at}"
                self.default_qualities = tuple(range(1, net.base_num_qualities + 1))
            else:
                self.base_quality = _base_quality(opts.get("base"), net.base_num_qualities)
                if self.base_quality == "pair" and net.num_qualities > net.base_num_qualities:
                    raise SaicmError(f"base=pair needs a machine rate point per human one "
                                     f"({net.num_qualities} > {net.base_num_qualities})")
                tag = "pair" if self.base_quality == "pair" else f"b{self.base_quality}"
                ref = f"+refine{self.refine}" if self.refine else ""
                self.name = f"{_label(self.info)}-human-{tag}{ref}{at}"
                self.default_qualities = tuple(range(1, net.num_qualities + 1))
            return
        opts = parse_options(rest, {"refine": "STEPS", "engine": "|".join(ENGINES)})
        self.refine = _refine_steps(opts)
        self.engine = opts.get("engine", "auto")
        if self.engine not in ENGINES:
            raise SaicmError(f"engine= takes one of {', '.join(ENGINES)}, got {self.engine!r}")
        check_refine(self.info, self.refine)
        self.name = _label(self.info) + (f"+refine{self.refine}" if self.refine else "") \
            + (f"@{self.engine}" if self.engine != "auto" else "")
        self.default_qualities = tuple(range(1, net.num_qualities + 1))

    def check_quality(self, quality) -> None:
        from ..models.catalog import checked_quality

        # the rate points are 1..n for every saicm model: the compress command's check and wording
        checked_quality(quality, len(self.default_qualities), self.name)

    def encode(self, img, quality):
        from ..codec.pipeline import compress

        if not self.scalable:
            return compress(img, model=self.info.path, quality=quality, refine=self.refine, engine=self.engine)
        if self.layer == "machine":
            from ..codec.scalable import strip

            return strip(compress(img, model=self.info.path, quality=quality, human_quality=1, engine=self.engine))
        qb = quality if self.base_quality == "pair" else self.base_quality
        return compress(img, model=self.info.path, quality=qb, human_quality=quality, engine=self.engine,
                        refine=self.refine)

    def decode(self, data):
        from ..codec.pipeline import decompress

        if self.scalable and self.layer == "machine":
            return decompress(data).convert("RGB")  # the machine layer names its (shipped) base
        from ..engine import PORTABLE_ENGINES

        engine = self.engine if self.engine in PORTABLE_ENGINES else "auto"
        return decompress(data, model=self.info.path, engine=engine).convert("RGB")

    def config(self):
        from ..engine.model import supports
        from ..engine.scalable import supports_scalable
        from ..models.catalog import file_checksum

        extra = {"refine_steps": self.refine} if self.refine else {}
        if self.scalable:
            extra = {"layer": self.layer, "base_quality": self.base_quality, **extra}
        if self.engine != "compressai" and (supports_scalable(self.info) if self.scalable else supports(self.info)):
            extra["format"] = 3  # portable (machine) layers: cached results of format-1 files do not count
        if self.engine.startswith("openvino"):
            extra["engine"] = self.engine  # other transforms, other pixels (bfloat16: ±2)
        # (saicm's own architectures, as the engine codes them, need no look at PyTorch's registry)
        code = None if self.scalable or supports(self.info) else _plugin_code(self.info.architecture)
        if code:
            extra["code_sha256"] = code  # an architecture of the user's own: its code decides the decodes too
        if self.scalable and self.layer == "human" and self.engine != "compressai" and supports_scalable(self.info):
            extra["human_format"] = 2  # the portable human layer (saicm ≥ 0.5)
        return {"model": self.info.name, "architecture": self.info.architecture, **self.info.config,
                "weights_sha256_prefix": file_checksum(self.info.path).hex(), **extra}


def _plugin_code(architecture: str) -> str | None:
    """:func:`~saicm.models.registry.plugin_code_digest` of a registered architecture, or None (saicm's own, or one
    that is not registered here: coding it then fails with its own message)."""
    try:
        from ..models.registry import ARCHITECTURES, load_architectures, plugin_code_digest
    except ImportError:  # the coding-only install (no PyTorch): only saicm's own architectures code there
        return None
    load_architectures()
    cls = ARCHITECTURES.get(architecture)
    return plugin_code_digest(cls) if cls is not None else None


@register_codec("simulcast")
class Simulcast(Codec):
    """Two independent single-layer files of one image, for people and machines: the anchor scalable coding
    must beat. ``simulcast:MACHINE+HUMAN,base=K|pair``: bytes = the MACHINE model's file at rate point K
    (or at the swept rate point, ``pair``) plus the HUMAN model's file at the swept rate point; the decode is
    the HUMAN model's. Named ``simulcast-MACHINE-bK+HUMAN``."""

    def __init__(self, arg: str = ""):
        from ..models.zoo import load_model

        spec, _, rest = arg.partition(",")
        machine, plus, human = spec.partition("+")
        if not (machine and plus and human):
            raise SaicmError(f"simulcast takes MACHINE+HUMAN (two saicm models), got {arg!r}")
        opts = parse_options(rest, {"base": "K|pair"})
        mnet, self.machine = load_model(machine)
        hnet, self.human = load_model(human)
        self.base_quality = _base_quality(opts.get("base"), mnet.num_qualities)
        tag = "pair" if self.base_quality == "pair" else f"b{self.base_quality}"
        self.name = f"simulcast-{self.machine.name}-{tag}+{self.human.name}"
        self.default_qualities = tuple(range(1, hnet.num_qualities + 1))
        self.machine_qualities = tuple(range(1, mnet.num_qualities + 1))

    def check_quality(self, quality) -> None:
        from ..models.catalog import checked_quality

        checked_quality(quality, len(self.default_qualities), f"{self.name} (the human model {self.human.name})")
        if self.base_quality == "pair":
            checked_quality(quality, len(self.machine_qualities),
                            f"{self.name} (base=pair: the machine model {self.machine.name})")

    def encode(self, img, quality):
        import struct

        from ..codec.pipeline import compress

        qb = quality if self.base_quality == "pair" else self.base_quality
        a = compress(img, model=self.machine.path, quality=qb)
        b = compress(img, model=self.human.path, quality=quality)
        # both files, as a receiver gets them; the 4-byte length prefix is this harness's, not counted
        return struct.pack(">I", len(a)) + a + b

    def decode(self, data):
        import struct

        from ..codec.pipeline import decompress

        (n,) = struct.unpack(">I", data[:4])
        return decompress(data[4 + n:], model=self.human.path).convert("RGB")

    def size(self, data):
        return len(data) - 4

    def config(self):
        from ..models.catalog import file_checksum

        return {"machine": self.machine.name, "human": self.human.name, "base_quality": self.base_quality,
                "weights_sha256_prefix": [file_checksum(self.machine.path).hex(), file_checksum(self.human.path).hex()]}


def get_codec(spec: str) -> Codec:
    """``NAME`` or ``NAME:ARG``; a name that is not a codec is taken as a saicm model."""
    name, _, arg = spec.partition(":")
    if name in CODECS:
        return CODECS[name](arg)
    from ..models.catalog import names_a_file, resolve

    model = spec.split(",", 1)[0]
    if names_a_file(model):
        resolve(model)  # a weight file: "model file not found: PATH" (or why it cannot be read) says more than a list of codecs
        return SaicmCodec(spec)
    try:
        resolve(model or None)
    except SaicmError:
        known = ", ".join(sorted(CODECS))
        raise SaicmError(f"unknown codec {spec!r} (codecs: {known}; or a saicm model name)") from None
    return SaicmCodec(spec)  # a model: its option errors are the user's to see


# Video codecs (nerv, sa-nerv, hnerv, sa-hnerv, hevc-video, vvc-video) for `saicm eval` on clips register themselves here.
from ..video import codecs as _video_codecs  # noqa: E402,F401  (after register_codec: it uses it)
