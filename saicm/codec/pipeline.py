"""Image ⇄ ``.saicm`` bytes: load, pad, code, pack — and back.

The Python API and the CLI share this code path: it picks the coder for a model
(the portable engine, :mod:`saicm.engine.codec`; two-layer files,
:mod:`saicm.codec.scalable`; else the PyTorch model with CompressAI's coder,
here) and reads any file back.
"""

from __future__ import annotations

import hashlib
import os
import zlib
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image

from ..engine import ENGINES
from .._fs import read_input
from ..errors import ArgumentError, FormatError, ModelError, SaicmError, naming, needing_pytorch
from ..models.catalog import SCALABLE_ARCHITECTURE, ModelInfo, checked_quality, file_checksum, resolve
from . import container
from .image_io import ImageLike, RGBImage, load_image, load_padded, stream_image
from .limits import check_writable_model_name, resolve_max_pixels, whole_number

if TYPE_CHECKING:
    import torch


def check_refine(info, refine: int) -> None:
    if refine < 0:
        raise ArgumentError(f"refine steps must be 0 or more, got {refine}")
    if refine and not _refinable(info.architecture):  # (before the loss: an imported tcm was told its loss was why)
        raise ArgumentError(f"{info.name} ({info.architecture}) does not support refinement")
    loss = info.training.get("loss", "mse")
    if refine and loss != "mse":
        raise ArgumentError(f"refinement optimises plain MSE; {info.name} was trained with --loss {loss}, "
                            "whose decodes it would pull towards MSE fidelity")


def _refinable(architecture: str) -> bool:
    """Whether models of ``architecture`` have what refinement needs (:mod:`saicm.codec.refine`: an analysis and
    the latents' rate-distortion); True when that cannot be told here (no PyTorch: the refinement says why)."""
    try:
        from ..models.registry import architecture_class

        cls = architecture_class(architecture)
    except (ImportError, SaicmError):
        return True
    return all(hasattr(cls, f) for f in ("analyse", "latent_rd"))


def check_options(info, quality=None, human_quality=None, refine: int = 0, max_bytes=None
                  ) -> tuple[int | None, int | None]:
    """What the model file alone says of a compression's options, checked once before any work (``saicm
    compress FOLDER`` failed each image with it): the refinement, the qualities of each layer, the byte budget.
    Returns the qualities the files are coded at: (the machine layer's, None with ``max_bytes``; the human
    layer's, None for a single-layer model)."""
    from .budget import checked_max_bytes

    check_refine(info, refine)
    checked_max_bytes(max_bytes, quality)
    if info.architecture != SCALABLE_ARCHITECTURE:
        if human_quality is not None:
            raise ArgumentError(f"{info.name} is a single-layer model: a human-layer quality (--human-quality, "
                                "Python: human_quality=) needs a scalable model")
        q = checked_quality(quality, info.num_qualities, info.name)
        return (None if max_bytes is not None else q), None
    from ..models.catalog import locate

    cfg = info.config
    if not isinstance(cfg.get("base"), str) or not isinstance(cfg.get("base_sha256"), str):
        raise ModelError(f"{info.name}: a scalable model whose configuration names no base model")
    base = locate(cfg["base"], cfg["base_sha256"], str(info.path.resolve().parent))
    q = checked_quality(quality, base.num_qualities, f"the machine layer of {info.name} (base {base.name})")
    return (None if max_bytes is not None else q), checked_quality(human_quality, info.num_qualities,
                                                                    f"the human layer of {info.name}")


def to_tensor(img: RGBImage, pb: int, pr: int) -> "torch.Tensor":
    """The padded (edge replication) float tensor a model encodes."""
    import torch
    import torch.nn.functional as F

    x = torch.from_numpy(np.array(img.rgb)).permute(2, 0, 1)[None].float().div_(255.0)
    if pb or pr:
        x = F.pad(x, (0, pr, 0, pb), mode="replicate")
    return x.contiguous(memory_format=torch.channels_last)


def prepare(image: ImageLike, multiple: int, max_pixels: int | None = None,
            min_size: int = 0) -> tuple[RGBImage, "torch.Tensor", int, int]:
    """Load an image and pad it (edge replication) to the model's multiple (and at least ``min_size``):
    (image, x, pad bottom, pad right)."""
    img, pb, pr = load_padded(image, multiple, max_pixels, min_size)
    return img, to_tensor(img, pb, pr), pb, pr


def uses_strips(net, padded_h: int, padded_w: int) -> bool:
    """Whether this image is coded in strips (format version 2, :mod:`saicm.codec.tiling`): saicm's own coding only
    (the strips run saicm's analysis, latent coding and synthesis: an architecture that codes otherwise, in
    ``compress`` or ``decompress`` of its own, is coded whole, as it wrote them)."""
    from .tiling import needs_strips

    own = all(getattr(getattr(type(net), m, None), "__module__", "").startswith("saicm.")
              for m in ("compress", "decompress", "latents_from_analysis", "compress_latents", "decompress_latent"))
    return own and hasattr(net, "latents_from_analysis") and needs_strips(int(net.config["M"]), padded_h, padded_w)


def is_scalable(net) -> bool:
    return hasattr(net, "decompress_human")


def _engine_for(info, engine: str) -> bool:
    """Whether the portable engine codes for ``info`` under ``engine`` (an error if asked for and unable)."""
    from ..engine.model import supports

    if engine not in ENGINES:
        raise ArgumentError(f"engine must be one of {', '.join(ENGINES)}, got {engine!r}")
    if engine == "compressai":
        return False
    if supports(info):
        return True
    if engine != "auto":
        raise ModelError(f"{info.name} ({info.architecture}) is not supported by the portable engine, which codes "
                         "saicm's own architectures (and models trained into them) only; use engine compressai "
                         "(or auto): a format-1 file, decoded with PyTorch (docs/engine.md)")
    return False


def _warn_if_shadowing(info) -> None:
    """A model file named like a shipped model but holding other weights codes files under the shipped name, which
    decoders then refuse (checksum) unless given the file: say so once, at coding time."""
    from ..models.catalog import shipped_models

    shipped = shipped_models().get(info.name)
    if shipped is not None and shipped.path.resolve() != info.path.resolve() and \
            file_checksum(shipped.path) != file_checksum(info.path):
        from ..errors import warn as saicm_warn

        saicm_warn(f"{info.path} has the name of the shipped model {info.name} but other weights: its files "
                   f"decode only with --model {info.path} (Python: model=PATH; rename the file to give it its own name)")


def _warn_if_profile(image: RGBImage, source) -> None:
    """A warning when the image's colours are in a colour profile other than sRGB
    (:func:`~saicm.codec.image_io.profile_note`), at a PNG gAMA's gamma other than 2.2
    (:func:`~saicm.codec.image_io.gamma_note`), in a PNG cHRM's primaries other than sRGB's
    (:func:`~saicm.codec.image_io.primaries_note`), or marked Adobe RGB by a camera's EXIF
    (:attr:`~saicm.codec.image_io.RGBImage.exif_space`): none is coded, and the decode, written without them, shows
    other colours."""
    from ..errors import warn as saicm_warn
    from .image_io import gamma_note, primaries_note, profile_note

    what = os.fsdecode(source) if isinstance(source, (str, os.PathLike)) else "the image"
    causes = []
    name = profile_note(image)
    if name is not None:
        causes.append(f"its colours are in the ICC profile '{name}', not sRGB; the profile is not coded and the "
                      "decode, written without one,")
    if image.exif_space is not None:  # (a camera's Adobe RGB JPEG: no profile, its EXIF says so)
        causes.append(f"its EXIF marks its colours as {image.exif_space} (a camera's setting), not sRGB; this is not "
                      "coded and the decode, written without a profile,")
    if primaries_note(image):  # (a PNG's cHRM chunk, without a profile: a viewer shows its colours by it)
        causes.append("its PNG cHRM chunk gives its colours other primaries than sRGB's; the chunk is not coded and "
                      "the decode, written without it,")
    gamma = gamma_note(image)
    if gamma is not None:  # (a PNG's gAMA chunk, without a profile: a viewer shows its values at that gamma)
        causes.append(f"its PNG gAMA chunk says its values are shown at gamma {gamma:g}, not sRGB's 2.2; the chunk is "
                      "not coded and the decode, written without it,")
    for cause in causes:
        saicm_warn(f"{what}: {cause} shows them shifted (convert the image to sRGB first to code the colours a "
                   "viewer shows)")


def compress(image: ImageLike, model: str | os.PathLike | ModelInfo | None = None, quality: int | None = None,
             refine: int = 0, progress: bool = False, human_quality: int | None = None,
             max_pixels: int | None = None, engine: str = "auto", max_bytes: int | None = None) -> bytes:
    """Encode an image (a path, a PIL image, the bytes of an image file or a binary file object, or a NumPy
    array: docs/usage.md#inputs) into ``.saicm`` bytes.

    ``model``: a shipped model's name, one of ``$SAICM_MODELS`` or a ``.safetensors`` path (None: the default
    model, :data:`saicm.models.catalog.DEFAULT_MODEL`). ``quality``: its rate point, 1 to ``num_qualities``
    (None: the middle one). ``refine``: steps of encoder-side latent optimisation (``saicm.codec.refine``;
    slower encoding, same decoder); 0 = the plain encoder. ``progress``: a bar (off a terminal, status lines) over
    the refinement steps, or over a large image's tiles and strips (one coded in strips, by the portable engine).
    With a scalable model, ``quality`` is the machine
    layer's rate point and ``human_quality`` the human layer's (both default to
    the middle one): the result is a two-layer file (``saicm.codec.scalable``);
    ``refine`` then refines the human layer only (the machine layer stays the base's own file).
    Images above ``max_pixels`` (default :data:`saicm.codec.limits.DEFAULT_MAX_PIXELS`) are refused.
    ``engine``: see :data:`ENGINES`. ``max_bytes``: instead of ``quality``, the highest quality whose file is at
    most that many bytes (scalable models: the machine layer's quality, the bytes of the machine layer alone, what
    :func:`~saicm.codec.scalable.strip` keeps; :mod:`saicm.codec.budget`); an ``ImageError`` if even quality 1 is
    larger.

    Raises :class:`~saicm.errors.ImageError` (an image that cannot be read or used, or does not fit ``max_bytes``),
    :class:`~saicm.errors.ModelError` (an unknown model), :class:`~saicm.errors.ArgumentError` (an argument it
    does not take; also a ``ValueError``), :class:`~saicm.errors.MissingDependency` (a feature of a missing extra;
    also an ``ImportError``): all :class:`~saicm.errors.SaicmError`. onnxruntime out of memory: ``MemoryError``.
    """
    info = resolve(model)
    check_writable_model_name(info.name)  # before any work: the header must name it so that decoders accept it
    _warn_if_shadowing(info)
    refine = whole_number(refine, "refine")
    resolve_max_pixels(max_pixels)  # (a string, a float, NaN: one line here, not a TypeError in a worker)
    check_options(info, quality, human_quality, refine, max_bytes)
    source = image
    image = load_image(image, max_pixels)  # once, for whichever coder below
    _warn_if_profile(image, source)
    # (an image given by its path is named in the coder's errors too, as decompress names its file and the command
    # line each file of its job: "does not fit in N bytes" of max_bytes= named no image)
    with naming(os.fsdecode(source) if isinstance(source, (str, os.PathLike)) else None):
        return _encode(image, info, quality, refine, progress, human_quality, max_pixels, engine, max_bytes)


def _encode(image: RGBImage, info: ModelInfo, quality, refine: int, progress: bool, human_quality, max_pixels,
            engine: str, max_bytes) -> bytes:
    """:func:`compress` of an image loaded (and warned of) and options checked: the coder of ``info``'s file. (A
    two-layer file's machine layer by CompressAI's coder is coded here, not by :func:`compress`, which warned of
    the image's colours again.)"""
    if info.architecture == SCALABLE_ARCHITECTURE:
        from .scalable import compress_layers

        return compress_layers(image, model=info.path, quality=quality, human_quality=human_quality,
                               max_pixels=max_pixels, engine=engine, refine=int(refine), progress=progress,
                               max_bytes=max_bytes)
    if _engine_for(info, engine):
        from ..engine.codec import compress as portable_compress

        return portable_compress(image, info, quality, engine, max_pixels, int(refine), progress, max_bytes)
    from ..models.zoo import load_model

    net, info = load_model(info.path)
    if max_bytes is not None:  # CompressAI's coder: each trial quality is a whole encoding (analysis included)
        from .budget import fit

        return fit(lambda q: _compress_torch(image, net, info, q, refine, progress, max_pixels), net.num_qualities,
                   max_bytes)
    return _compress_torch(image, net, info, quality, refine, progress, max_pixels)


def _compress_torch(image: RGBImage, net, info, quality, refine: int, progress: bool, max_pixels) -> bytes:
    """The file of ``image`` coded by the PyTorch model ``net`` with CompressAI's coder (formats 1 and 2)."""
    import torch

    q = checked_quality(quality, net.num_qualities, info.name)
    img, pb, pr = load_padded(image, net.multiple, max_pixels, getattr(net, "min_size", 0))
    h, w = img.size
    version, rows = container.VERSION, 0
    if uses_strips(net, h + pb, w + pr):  # large image: analysis by tiles, latent in strips (bounded memory)
        from . import tiling

        if refine:
            raise ModelError(tiling.strips_refusal("--refine", int(net.config["M"])))
        version, rows = container.STRIPS_VERSION, tiling.strip_rows(int(net.config["M"]), (w + pr) // 16)
        y0 = tiling.analyse_tiles(net.g_a, img.rgb, pb, pr)
        with torch.inference_mode():
            out = net.compress_latents(net.latents_from_analysis(y0, q), strip_rows=rows)
        del y0
    elif refine:
        from .refine import refined_latents

        if not hasattr(net, "compress_latents"):
            raise ArgumentError(f"{info.name} ({info.architecture}) does not support refinement")
        y, z = refined_latents(info.path, img, q, int(refine), max_pixels, progress)
        with torch.inference_mode():
            out = net.compress_latents({"y": torch.from_numpy(y), "z": torch.from_numpy(z)})
    else:
        x = to_tensor(img, pb, pr)
        with torch.inference_mode():
            out = net.compress(x, q)
    if version == container.VERSION and len(out["strings"]) != 2:  # (its decoder would refuse the file)
        raise ModelError(f"{info.name} ({info.architecture}): its compress returned {len(out['strings'])} strings; a "
                         "format-1 file holds exactly two (the latent's, then the hyper-latent's) and one shape "
                         "(docs/usage.md#adding-an-architecture)")
    strings = [s[0] for s in out["strings"]]
    shape = tuple(int(v) for v in out["shape"])
    header = container.Header(
        model=info.name, weights_sha=file_checksum(info.path), quality=q, height=h, width=w,
        pad_bottom=pb, pad_right=pr, gray=img.gray, shapes=[shape], version=version, strip_rows=rows,
    )
    alpha = zlib.compress(img.alpha.tobytes(), 9) if img.alpha is not None else None
    return container.pack(container.Stream(header=header, strings=strings, alpha=alpha))


@dataclass
class Decoded:
    image: Image.Image
    stream: container.Stream
    layer: str = "machine"  # "machine" (a single-layer file, or a two-layer file's machine layer) or "human"


def open_stream(stream: container.Stream, model=None, max_pixels: int | None = None):
    """The model that decodes ``stream``, after every check that can be made before entropy decoding."""
    from ..models.zoo import load_model
    from .limits import check_alpha, check_layout, stream_model

    h = stream.header
    info = stream_model(h, model, max_pixels)

    net, _ = load_model(info.path)
    if is_scalable(net):
        raise ModelError(f"{info.name} is a scalable model; the machine layer names its base model")
    if h.version == container.PORTABLE_VERSION:
        raise FormatError("a portable (version 3) stream: decode it with saicm.engine")
    ph = h.height + h.pad_bottom
    check_layout(h, info.name, net.num_qualities, net.multiple, net.latent_shapes, getattr(net, "min_size", 0))
    if h.version == container.VERSION and max_pixels is None and uses_strips(net, ph, h.width + h.pad_right):
        # saicm writes such images in strips (format 2, since 0.3.0); one piece costs ~200 bytes per symbol
        raise FormatError(f"a format-1 stream of a {h.width}x{h.height} image: saicm writes images this large "
                          "in strips (format 2), so the file is old or crafted, and decoding it in one piece "
                          f"takes gigabytes; pass --max-pixels {h.width * h.height} (Python: "
                          f"max_pixels={h.width * h.height}) to decode it anyway")
    if h.version == container.STRIPS_VERSION:
        from .tiling import strip_count

        if not hasattr(net, "latents_from_analysis"):
            raise FormatError(f"{info.name} does not code in strips (format version 2)")
        if len(stream.strings) != 1 + strip_count(ph // 16, h.strip_rows):
            raise FormatError("latent layout does not match the model (strip count)")
    elif len(stream.strings) != 2:
        raise FormatError("latent layout does not match the model")
    check_alpha(stream)
    return net, info


def entropy_decode(fn, *args):
    """Run a decoding step; the coder's failures on bad payloads become one-line format errors.

    ``fn`` is a bound method of a model; its entropy models get the bounded coder first (models built by
    saicm have it already; a deep copy or an unpickled model comes back with CompressAI's own)."""
    import torch

    from ..entropy.bounded import install

    install(fn.__self__)
    with torch.inference_mode():
        try:
            return fn(*args)
        except (RuntimeError, ValueError) as e:
            raise FormatError(f"entropy decoding failed ({e})") from None


def to_image(x_hat, stream: container.Stream) -> Image.Image:
    """A decoded padded tensor (or an uint8 (H, W, 3) array already cropped) → the image the header describes
    (crop, grayscale, alpha)."""
    h = stream.header
    if not isinstance(x_hat, np.ndarray):
        import torch

        if tuple(x_hat.shape[-2:]) != (h.height + h.pad_bottom, h.width + h.pad_right):
            raise FormatError("decoded size does not match the header")
        x_hat = x_hat[0, :, : h.height, : h.width].mul(255.0).round_().to(torch.uint8).permute(1, 2, 0).numpy()
    return stream_image(x_hat, stream)


LAYERS = ("auto", "machine", "human")


def decompress_stream(data: bytes, model=None, layer: str = "auto", max_pixels: int | None = None,
                      engine: str = "auto", progress: bool = False) -> Decoded:
    """Decode a file. ``layer``: for two-layer files, ``human`` (the default, ``auto``) or ``machine``;
    ``model`` overrides the model the file names (the scalable model for the human layer, the base for the
    machine layer). ``engine`` (portable streams, format 3): ``auto``/``onnx`` or ``torch`` transforms; streams
    of formats 1 and 2 always decode with the PyTorch model and CompressAI's coder. ``progress``: a bar over a
    large image's strips and tiles (portable streams)."""
    if engine not in ENGINES:
        raise ArgumentError(f"engine must be one of {', '.join(ENGINES)}, got {engine!r}")
    if layer not in LAYERS:
        raise ArgumentError(f"layer must be one of {', '.join(LAYERS)}, got {layer!r}")
    from ..video.bitstream import is_video_stream

    if is_video_stream(data):
        raise FormatError(container.CLIP_GIVEN)
    machine, human = container.split_layers(data)
    if human is not None and layer != "machine":
        newer = container.newer_human_layer(human)
        if newer is not None:
            raise FormatError(f"its human layer is of version {newer}, written by a newer saicm (this one reads "
                              f"versions {', '.join(map(str, container.HUMAN_VERSIONS))}): upgrade saicm for the "
                              "human image; the machine layer decodes here (--layer machine; Python: "
                              "layer='machine')")
        from .scalable import decode_human

        return decode_human(machine, human, model=model, max_pixels=max_pixels, engine=engine)
    if human is None and layer == "human":
        raise FormatError("the file has no human layer (a single-layer or stripped file): decode it with "
                          "--layer machine (Python: layer='machine')")
    stream = container.unpack(machine)
    if stream.header.version == container.PORTABLE_VERSION:
        from ..engine.codec import decode

        if engine == "compressai":
            from ..engine import PORTABLE_ENGINES

            raise ModelError(f"a portable (format 3) stream decodes with --engine {', '.join(PORTABLE_ENGINES)}")
        rgb = decode(stream, model, engine, max_pixels, progress=progress)
        return Decoded(image=stream_image(rgb, stream), stream=stream, layer="machine")
    with needing_pytorch(f"a format-{stream.header.version} stream decodes with PyTorch and CompressAI's coder "
                         "(saicm before 0.4.0 wrote it; since, --engine compressai and the models the portable "
                         "engine does not code, such as TCM, do)"):
        net, _ = open_stream(stream, model, max_pixels)
    h = stream.header
    if h.version == container.STRIPS_VERSION:  # large image: synthesis by tiles straight into uint8
        from .tiling import synthesize_tiles

        y_hat = entropy_decode(net.decompress_latent, [[s] for s in stream.strings], h.shapes[0], h.quality,
                               None, h.strip_rows)
        rgb = synthesize_tiles(net.g_s, y_hat, h.height, h.width)
        del y_hat
        return Decoded(image=to_image(rgb, stream), stream=stream, layer="machine")
    x_hat = entropy_decode(net.decompress, [[s] for s in stream.strings], h.shapes[0], h.quality)["x_hat"]
    return Decoded(image=to_image(x_hat, stream), stream=stream, layer="machine")


def decompress(data: container.CodedLike, model: str | os.PathLike | ModelInfo | None = None, layer: str = "auto",
               max_pixels: int | None = None, engine: str = "auto", progress: bool = False) -> Image.Image:
    """Decode a ``.saicm`` file (its bytes, its path or a binary file object) to a PIL image (L, LA, RGB or RGBA
    like the source).

    The file names its model, found among the shipped models and ``$SAICM_MODELS``; ``model`` (a name or a
    ``.safetensors`` path: a model saved elsewhere) overrides it, and must be the weights that wrote the file (their
    checksum is in it). Two-layer files give the human image unless ``layer="machine"``. Files
    claiming more than ``max_pixels`` pixels (default :data:`saicm.codec.limits.DEFAULT_MAX_PIXELS`) are refused.
    ``engine``: see :data:`ENGINES`. ``progress``: a bar (off a terminal, status lines) over the decoding of a large
    image, one coded in strips (single-layer portable files).

    Raises :class:`~saicm.errors.FormatError` (not a valid coded file: damaged, truncated, crafted; or none to
    read: a missing path, a folder),
    :class:`~saicm.errors.ModelError` (its model not found, or other weights), :class:`~saicm.errors.ArgumentError`
    (an argument it does not take), :class:`~saicm.errors.MissingDependency`: all
    :class:`~saicm.errors.SaicmError`. onnxruntime out of memory: ``MemoryError``."""
    data, path = container.coded_input(data)
    with naming(path):
        return decompress_stream(data, model, layer, max_pixels, engine, progress).image


def describe(data: container.CodedLike) -> dict:
    """Header fields and sizes of a ``.saicm`` file (its bytes, its path or a binary file object; or a ``.saicmv``
    clip's), without decoding; :class:`~saicm.errors.FormatError` if it is not one."""
    data, path = container.coded_input(data)
    with naming(path):
        return _describe(data)


def _describe(data: bytes) -> dict:
    from ..video.bitstream import is_video_stream

    if is_video_stream(data):  # a NeRV clip
        from ..video.bitstream import describe as describe_video  # (no PyTorch: a header)

        return describe_video(data)
    if data[: len(container.HUMAN_MAGIC)] == container.HUMAN_MAGIC:  # a segment cut off to be sent later
        hl = container.unpack_human(data)
        return {"file_type": "saicm-human-segment", "human_layer_version": hl.version, "model": hl.model,
                "quality": hl.quality, "weights_sha256_prefix": hl.weights_sha.hex(),
                "base_sha256_prefix": hl.base_sha.hex(), "machine_sha256_prefix": hl.machine_sha.hex(),
                "latent_shapes": [list(v) for v in hl.shapes], "string_bytes": [len(b) for b in hl.strings],
                "file_bytes": len(data),
                "note": "decodes appended to the machine layer whose SHA-256 begins with machine_sha256_prefix"}
    machine, human = container.split_layers(data)
    s = container.unpack(machine)
    h = s.header
    out = {
        # which of saicm's files: "saicm", "saicm-two-layer" or (saicm.video.bitstream.describe) "saicmv"
        "file_type": "saicm" if human is None else "saicm-two-layer",
        "format_version": h.version,
        "model": h.model,
        "weights_sha256_prefix": h.weights_sha.hex(),
        # the machine layer's own (the whole file's, single-layer): what a human-layer segment names as the one it
        # decodes on, so that the two can be matched before they are joined
        "machine_sha256_prefix": hashlib.sha256(machine).digest()[:8].hex(),
        "quality": h.quality,
        "width": h.width,
        "height": h.height,
        "padding": {"bottom": h.pad_bottom, "right": h.pad_right},
        "grayscale": h.gray,
        "alpha_bytes": len(s.alpha) if s.alpha is not None else 0,
        "latent_shapes": [list(v) for v in h.shapes],
        **({"strip_rows": h.strip_rows} if h.version in container.STRIPED else {}),
        "string_bytes": [len(b) for b in s.strings],
        "file_bytes": len(data),
        "bpp": 8.0 * len(data) / (h.width * h.height),
    }
    newer = None if human is None else container.newer_human_layer(human)
    if newer is not None:  # (its machine layer is this saicm's to read: decoded, stripped, described)
        out["layers"] = {
            "machine": {"bytes": len(machine), "bpp": 8.0 * len(machine) / (h.width * h.height),
                        "model": h.model, "quality": h.quality},
            "human": {"bytes": len(human), "bpp": 8.0 * len(human) / (h.width * h.height), "version": newer,
                      "readable": False},
        }
    elif human is not None:
        hl = container.unpack_human(human)
        out["layers"] = {
            "machine": {"bytes": len(machine), "bpp": 8.0 * len(machine) / (h.width * h.height),
                        "model": h.model, "quality": h.quality},
            "human": {"bytes": len(human), "bpp": 8.0 * len(human) / (h.width * h.height),
                      "model": hl.model, "quality": hl.quality, "version": hl.version, "readable": True,
                      **({"strip_rows": hl.strip_rows} if hl.version == container.HUMAN_PORTABLE_VERSION else {}),
                      "weights_sha256_prefix": hl.weights_sha.hex(),
                      # what the layer decodes on: the base model's weights and the machine layer's bytes
                      "base_sha256_prefix": hl.base_sha.hex(), "machine_sha256_prefix": hl.machine_sha.hex(),
                      # False: joined to another machine layer than its own (it will not decode: cat of the
                      # wrong files), which nothing else in the description shows
                      "matches_machine_layer": hashlib.sha256(machine).digest()[:8] == hl.machine_sha,
                      "latent_shapes": [list(v) for v in hl.shapes],
                      "string_bytes": [len(b) for b in hl.strings]},
        }
    return out


def closest_quality(image: ImageLike, bpp: float, model=None) -> tuple[int, bytes]:
    """The rate point of ``model`` whose real bpp on ``image`` is closest to ``bpp`` (in log-rate), and its stream."""
    h, w = load_image(image).size
    info = resolve(model)
    best = None
    for q in range(1, info.num_qualities + 1):
        data = compress(image, model=info.path, quality=q)
        d = abs(np.log(8 * len(data) / (h * w) / bpp))
        if best is None or d < best[0]:
            best = (d, q, data)
    return best[1], best[2]


def compress_file(src, dst, model=None, quality: int | None = None, refine: int = 0,
                  progress: bool = False, human_quality: int | None = None, max_pixels: int | None = None,
                  engine: str = "auto", max_bytes: int | None = None) -> dict:
    """Encode one image file to ``dst`` (written atomically); returns sizes and timing."""
    import time

    from .._fs import write_bytes_atomic

    t = time.perf_counter()
    data = compress(src, model=model, quality=quality, refine=refine, progress=progress,
                    human_quality=human_quality, max_pixels=max_pixels, engine=engine, max_bytes=max_bytes)
    seconds = time.perf_counter() - t
    write_bytes_atomic(dst, data)
    return _coded_info(data, seconds)


def _coded_info(data: bytes, seconds: float | None = None) -> dict:
    """What a compress job reports of the file ``data`` (and the --log line records)."""
    d = describe(data)
    out = {"bytes": len(data), "bpp": d["bpp"], "seconds": seconds, "model": d["model"], "quality": d["quality"]}
    if seconds is None:
        del out["seconds"]
    if "layers" in d:
        out["layers"] = d["layers"]
        # flat, for the --log line (which keeps no nested field): "bytes" is the whole file's, but a --max-bytes
        # budget is the machine layer's, and the human layer's model and quality were nowhere in it
        m, hl = d["layers"]["machine"], d["layers"]["human"]
        out.update(machine_bytes=m["bytes"], human_bytes=hl["bytes"], human_model=hl.get("model"),
                   human_quality=hl.get("quality"))
    return out


def existing_file(dst, max_bytes: int | None = None, model: str | None = None, quality: int | None = None,
                  human_quality: int | None = None, model_named: bool = True) -> dict:
    """What a compress job with ``--existing skip`` reports of its existing output ``dst`` (the --log line of a
    day's uplink: its bytes, model, quality), and an ``ImageError`` when that file is over ``max_bytes`` (the
    machine layer of a two-layer file), is no whole coded file (cut short, damaged), or was coded by another ``model`` than the job's (a
    two-layer file: its machine or human layer's) or at another ``quality`` (a two-layer file: its machine layer's)
    or ``human_quality`` (its human layer's): a file that another command wrote (another budget, model or quality)
    does not count as done by this one. ``model_named=False``: the job named no model (``model`` is the default),
    and a file of a former default is said to be one, with how to keep coding with it."""
    from ..errors import ImageError, SaicmError
    from ..models.catalog import FORMER_DEFAULT_MODELS

    data = read_input(dst)
    try:
        info = _coded_info(data)
    except SaicmError as e:  # (cut short, damaged, not saicm's: it was counted done unless --max-bytes was given)
        raise ImageError(f"exists and is no whole coded file ({e}): kept, not counted done (--existing overwrite "
                         "codes it again)", str(dst)) from None
    made = f"{info['model']} q{info['quality']}"
    if model is not None and model not in (info["model"], info.get("human_model")):
        since = None if model_named else FORMER_DEFAULT_MODELS.get(info["model"])
        hint = (f"; {info['model']} was the default model before {since}: --model {info['model']} goes on with it"
                if since else "")
        raise ImageError(f"exists, coded by another model ({made}, not {model}): kept, not counted done (--existing "
                         f"overwrite codes it again with this one{hint})", str(dst))
    if quality is not None and info["quality"] != quality:
        raise ImageError(f"exists, coded at another quality ({made}, not q{quality}): kept, not counted done "
                         "(--existing overwrite codes it again at this one)", str(dst))
    if human_quality is not None and "layers" in info and info.get("human_quality") != human_quality:
        raise ImageError(f"exists, its human layer coded at another quality ({info.get('human_model')} "
                         f"q{info.get('human_quality')}, not q{human_quality}): kept, not counted done (--existing "
                         "overwrite codes it again at this one)", str(dst))
    n = info.get("machine_bytes", info["bytes"])
    if max_bytes is not None and n > max_bytes:
        what = "its machine layer is" if "machine_bytes" in info else "it is"
        raise ImageError(f"exists and does not fit in {max_bytes} bytes ({what} {n} bytes, quality {info['quality']}"
                         "): kept, not counted done (--existing overwrite codes it again for this budget)",
                         str(dst))
    return info


def decompress_file(src, dst, model=None, layer: str = "auto", max_pixels: int | None = None,
                    engine: str = "auto", progress: bool = False) -> dict:
    """Decode one ``.saicm`` file to an image file ``dst`` (written atomically)."""
    import time

    from .image_io import output_format, save_image

    output_format(dst)
    data = read_input(src)
    t = time.perf_counter()
    with naming(src):
        decoded = decompress_stream(data, model=model, layer=layer, max_pixels=max_pixels, engine=engine,
                                    progress=progress)
    seconds = time.perf_counter() - t
    img = decoded.image
    save_image(img, dst)
    two = container.split_layers(data)[1] is not None
    return {"bytes": len(data), "seconds": seconds, "width": img.width, "height": img.height,
            "layer": decoded.layer if two else None}
