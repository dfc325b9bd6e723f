"""Two-layer files: a machine layer any base decoder reads, plus a human layer (scalable models).

``compress_layers`` writes the base model's own stream for the image (byte for
byte what ``saicm compress --model BASE`` writes) and appends the human-layer
segment of the scalable model (format: :mod:`saicm.codec.container`).
``decode_human`` decodes the base latent from the machine layer, the
additional latent from the human layer, fuses them and runs the human
synthesis. ``strip`` drops the human layer without re-encoding.

Two codings of the human layer exist: version 2, by the portable engine
(:mod:`saicm.engine.scalable`; no PyTorch, any image size, the default for the
models it codes), and version 1, by CompressAI's coder from the PyTorch model
(``engine="compressai"``; what saicm 0.3 wrote; still decoded).

The two rates are chosen independently: ``quality`` is the machine layer's
rate point (the base model's), ``human_quality`` the human layer's. Any pair
decodes, because the fusion decoder was trained with every base rate point;
which pairs are worth using is measured in the model cards.
"""

from __future__ import annotations

import hashlib
import os

import numpy as np

from ..errors import ArgumentError, FormatError, ImageError, ModelError, SaicmError, needing_pytorch
from ..models.catalog import SCALABLE_ARCHITECTURE, checked_quality, file_checksum, resolve
from . import container
from .image_io import ImageLike, load_image


def _machine_digest(machine: bytes) -> bytes:
    return hashlib.sha256(machine).digest()[:8]


def _small(stream: container.Stream, base_info) -> bool:
    """Whether a machine layer is one the fusion decoder takes: format 1, or format 3 not coded in strips."""
    from .tiling import needs_strips

    h = stream.header
    if h.version == container.VERSION:
        return True
    return h.version == container.PORTABLE_VERSION and not needs_strips(
        int(base_info.config["M"]), h.height + h.pad_bottom, h.width + h.pad_right)


def _base_latent(stream: container.Stream, base_info, max_pixels: int | None = None):
    """The base latent ŷ_b·g⁻¹ (a tensor) of a machine layer, exactly as every decoder decodes it."""
    import torch

    from .pipeline import entropy_decode, open_stream

    h = stream.header
    if h.version == container.PORTABLE_VERSION:
        from ..engine.codec import open_portable

        pm = open_portable(stream, base_info.path, max_pixels)
        return torch.from_numpy(pm.decode(stream.strings, h.shapes[0], h.quality, h.strip_rows))
    base, _ = open_stream(stream, base_info.path, max_pixels)
    return entropy_decode(base.decompress_latent, [[s] for s in stream.strings], h.shapes[0], h.quality)


def compress_layers(image: ImageLike, model=None, quality: int | None = None,
                    human_quality: int | None = None, max_pixels: int | None = None, engine: str = "auto",
                    refine: int = 0, progress: bool = False, max_bytes: int | None = None) -> bytes:
    """Machine layer (the base model's stream at ``quality``) + human layer at ``human_quality``.

    ``engine``: ``auto``/``onnx``/``torch``: the portable engine writes both layers (machine layer format 3,
    human layer version 2), for models it codes; ``compressai``: formats 1 and human-layer version 1, from the
    PyTorch model (as saicm 0.3 wrote them). ``auto`` falls back to ``compressai`` for the other models.
    ``refine``: steps of encoder-side refinement of the human layer's latents (:mod:`saicm.codec.refine`; the
    machine layer is the base's own file, unchanged; needs PyTorch and the portable engine); ``progress``: a
    bar over those steps. ``max_bytes``: instead of ``quality``, the highest machine-layer quality whose machine
    layer (a file of its own, what :func:`strip` keeps) is at most that many bytes; the human layer comes on top."""
    from ..engine import ENGINES
    from ..engine.scalable import supports_scalable
    from .budget import checked_max_bytes
    from .limits import check_writable_model_name

    info = resolve(model)
    if info.architecture != SCALABLE_ARCHITECTURE:
        raise ModelError(f"{info.name} is not a scalable model")
    check_writable_model_name(str(info.config.get("base", "")))  # the machine layer's header names the base
    if engine not in ENGINES:
        raise ArgumentError(f"engine must be one of {', '.join(ENGINES)}, got {engine!r}")
    if refine < 0:
        raise ArgumentError(f"refine steps must be 0 or more, got {refine}")
    max_bytes = checked_max_bytes(max_bytes, quality)  # (a quality given with a budget was dropped in silence)
    try:
        if engine != "compressai" and supports_scalable(info):
            return _compress_portable(image, info, quality, human_quality, max_pixels, engine, refine, progress,
                                      max_bytes)
        if refine:
            raise ArgumentError(f"{info.name}: refinement of the human layer needs the portable engine "
                                "(--engine auto)")
        if engine not in ("auto", "compressai"):
            raise ArgumentError(f"{info.name}: the portable engine does not code this scalable model; use --engine "
                                "compressai (or auto)")
        return _compress_compressai(image, info, quality, human_quality, max_pixels, engine, max_bytes)
    except ImageError as e:  # the budget is the machine layer's: say so, not "the file" (the two layers are more)
        if max_bytes is None or getattr(e, "lowest", None) is None:
            raise
        from .budget import over_budget

        raise ImageError(over_budget(max_bytes, e.lowest, "its machine layer (what saicm strip keeps)",
                                     getattr(e, "alpha", 0)),
                         e.path) from None


def _qualities(name: str, quality, human_quality, base_name: str, nq_base: int, nq_human: int) -> tuple[int, int]:
    qa = checked_quality(human_quality, nq_human, f"the human layer of {name}")
    qb = checked_quality(quality, nq_base, f"the machine layer of {name} (base {base_name})")
    return qb, qa


def _compress_portable(image, info, quality, human_quality, max_pixels, engine, refine=0, progress=False,
                       max_bytes=None) -> bytes:
    from ..engine.codec import compress as portable_compress, open_portable, transform_backend
    from ..engine.scalable import load_scalable

    ps = load_scalable(info)
    qb, qa = _qualities(info.name, quality, human_quality, ps.base_info.name, ps.base.num_qualities,
                        ps.num_qualities)
    backend = transform_backend(engine)
    image = load_image(image, max_pixels)  # once, for both layers
    machine = portable_compress(image, ps.base_info, None if max_bytes else qb, backend, max_pixels,
                                max_bytes=max_bytes)
    stream = container.unpack(machine)
    h = stream.header
    qb = h.quality  # (the budget's choice)
    units = open_portable(stream, ps.base_info.path, max_pixels).decode_units(stream.strings, h.shapes[0],
                                                                              h.strip_rows)
    latents = None
    if refine:
        from .tiling import needs_strips, strips_refusal

        if needs_strips(ps.base.M, h.height + h.pad_bottom, h.width + h.pad_right):
            raise ModelError(strips_refusal("--refine", ps.base.M))
        import torch

        from .refine import refined_latents

        y_b = torch.from_numpy(np.ascontiguousarray(ps.base.dequantise(units, qb), dtype=np.float32))
        latents = refined_latents(info.path, image, qa, int(refine), max_pixels, progress, base_latent=y_b)
    strings, rows = ps.encode(image, units, qb, qa, backend, max_pixels, latents=latents)
    layer = container.HumanLayer(
        model=info.name, weights_sha=file_checksum(info.path), base_sha=file_checksum(ps.base_info.path),
        machine_sha=_machine_digest(machine), quality=qa, shapes=[tuple(h.shapes[0])], strings=strings,
        version=container.HUMAN_PORTABLE_VERSION, strip_rows=rows)
    return machine + container.pack_human(layer)


def _compress_compressai(image, info, quality, human_quality, max_pixels, engine, max_bytes=None) -> bytes:
    import torch

    from ..models.zoo import load_model
    from .pipeline import _encode, is_scalable, prepare

    net, info = load_model(info.path)
    if not is_scalable(net):
        raise ModelError(f"{info.name} is not a scalable model")
    qb, qa = _qualities(info.name, quality, human_quality, net.base_info.name, net.base_num_qualities,
                        net.num_qualities)
    # the base's own file: format 1 with engine="compressai", else what `saicm compress --model BASE` writes (not
    # by saicm.compress, which warned of the image's colours a second time)
    image = load_image(image, max_pixels)
    machine = _encode(image, resolve(net.base_info.path), None if max_bytes else qb, 0, False, None, max_pixels, engine,
                      max_bytes)
    _, x, _, _ = prepare(image, net.multiple, max_pixels, getattr(net, "min_size", 0))
    # The machine layer's latent exactly as a decoder will decode it (a conditioned human layer depends on it).
    stream = container.unpack(machine)
    if not _small(stream, net.base_info):
        from .tiling import strips_refusal

        raise ModelError(strips_refusal("two-layer coding with CompressAI's coder (--engine compressai)",
                                        int(net.base_info.config["M"])) + "; use the portable engine (--engine auto)")
    y_b = _base_latent(stream, net.base_info)
    with torch.inference_mode():
        out = net.compress(x, qa, base_latent=y_b)
    layer = container.HumanLayer(
        model=info.name, weights_sha=file_checksum(info.path), base_sha=file_checksum(net.base_info.path),
        machine_sha=_machine_digest(machine), quality=qa, shapes=[tuple(int(v) for v in out["shape"])],
        strings=[s[0] for s in out["strings"]])
    return machine + container.pack_human(layer)


def decode_human(machine: bytes, human: bytes, model=None, max_pixels: int | None = None, engine: str = "auto"):
    """The human image of a two-layer file (``machine`` + ``human`` segments, as split by the container).

    Human layers of version 2 decode with the portable engine (``engine``: ``auto``/``onnx`` or ``torch``
    transforms), version 1 with the PyTorch model and CompressAI's coder (whatever ``engine`` says)."""
    from .limits import coded_model
    from .pipeline import Decoded

    layer = container.unpack_human(human)
    if _machine_digest(machine) != layer.machine_sha:
        # which mistake: the segment of another base model's file, or of another file of the same base (another
        # image, quality or encoding); and how to find its own (sha256sum MACHINE.saicm)
        h = container.unpack(machine).header
        raise FormatError("the human layer belongs to another machine layer (checksum mismatch"
                          + (f"; it was written over other base weights than {h.model}'s"
                             if h.weights_sha != layer.base_sha else "")
                          + "); it decodes only on top of the machine layer it was written with, whose SHA-256 "
                          f"begins with {layer.machine_sha.hex()}")
    stream = container.unpack(machine)
    info = coded_model(layer.model, layer.weights_sha, stream.header.height, stream.header.width, model, max_pixels,
                       "the human layer")
    if layer.version == container.HUMAN_PORTABLE_VERSION:
        return _decode_portable(stream, layer, info, max_pixels, engine)
    # (whatever ``engine`` says, as streams of formats 1 and 2 do: its machine layer decodes under any engine too)
    with needing_pytorch("a human layer of version 1 decodes with PyTorch and CompressAI's coder (saicm 0.3 and 0.4 "
                         "wrote it; since, --engine compressai and the scalable models the portable engine does not "
                         "code do)"):
        image = _decode_compressai(stream, layer, info, max_pixels)
    return Decoded(image=image, stream=stream, layer="human")


def _check_base(stream: container.Stream, layer: container.HumanLayer, name: str, base_info) -> None:
    if layer.base_sha != stream.header.weights_sha or file_checksum(base_info.path) != layer.base_sha:
        raise ModelError(f"the machine layer was coded with base weights other than the ones {name} fuses "
                         f"with ({base_info.name}); the human layer cannot be decoded on top of it")


def _decode_portable(stream, layer, info, max_pixels, engine):
    from ..engine import PORTABLE_ENGINES
    from ..engine.codec import open_portable, transform_backend
    from ..engine.scalable import load_scalable
    from .image_io import stream_image
    from .pipeline import Decoded

    if engine == "compressai":
        raise ModelError(f"a human layer of version 2 decodes with --engine {', '.join(PORTABLE_ENGINES)}")
    ps = load_scalable(info)
    _check_base(stream, layer, info.name, ps.base_info)
    h = stream.header
    if h.version != container.PORTABLE_VERSION:
        raise FormatError("a human layer of version 2 needs a portable (format 3) machine layer")
    if not 1 <= layer.quality <= ps.num_qualities:
        raise FormatError(f"human quality {layer.quality} out of range for {info.name}")
    if len(layer.shapes) != 1 or tuple(layer.shapes[0]) != tuple(h.shapes[0]):
        raise FormatError("human-layer latent layout does not match the model")
    units = open_portable(stream, ps.base_info.path, max_pixels).decode_units(stream.strings, h.shapes[0],
                                                                              h.strip_rows)
    rgb = ps.decode(layer.strings, tuple(layer.shapes[0]), layer.quality, layer.strip_rows, units, h.quality,
                    h.height, h.width, transform_backend(engine))
    return Decoded(image=stream_image(rgb, stream), stream=stream, layer="human")


def _decode_compressai(stream, layer, info, max_pixels):
    from ..models.zoo import load_model
    from .pipeline import entropy_decode, is_scalable, to_image

    net, _ = load_model(info.path)
    if not is_scalable(net):
        raise ModelError(f"{info.name} is not a scalable model; the human layer needs {layer.model!r}")
    _check_base(stream, layer, info.name, net.base_info)
    if not _small(stream, net.base_info):
        raise FormatError("a human layer on a machine layer coded in strips is not supported by this saicm")
    y_b = _base_latent(stream, net.base_info, max_pixels)
    if not 1 <= layer.quality <= net.num_qualities:
        raise FormatError(f"human quality {layer.quality} out of range for {info.name}")
    h = stream.header
    if layer.shapes != net.latent_shapes(h.height + h.pad_bottom, h.width + h.pad_right) or len(layer.strings) != 2:
        raise FormatError("human-layer latent layout does not match the model")
    x_hat = entropy_decode(net.decompress_human, y_b, [[s] for s in layer.strings], layer.shapes[0],
                           layer.quality)["x_hat"]
    return to_image(x_hat, stream)


def split(data: container.CodedLike) -> tuple[bytes, bytes | None]:
    """The machine layer of a file and its human-layer segment (None for a single-layer file), both checked: the
    segment is what a camera sends later, when a person asks for the human image; appended to the machine layer
    (``machine + segment``) it is the two-layer file again, byte for byte."""
    from ..errors import naming

    data, path = container.coded_input(data)
    with naming(path):
        return _layers(data)


def strip(data: container.CodedLike) -> bytes:
    """The machine layer of a file (its bytes, path or binary file object; a two-layer file loses its human
    layer, a single-layer file is unchanged). A damaged human layer is refused, as ``saicm strip`` refuses it;
    one of a newer version than this saicm reads is dropped unread."""
    return split(data)[0]


def _layers(data: bytes) -> tuple[bytes, bytes | None]:
    """(machine layer, human layer or None) of a file, the human layer checked: a corrupt file is refused rather
    than half-handled (the API's strip returned the machine layer of a file the command refused)."""
    from ..video.bitstream import is_video_stream

    if is_video_stream(data[:16]):
        raise FormatError(container.CLIP_GIVEN)
    machine, human = container.split_layers(data)
    if human is not None and container.newer_human_layer(human) is None:  # (a newer one is kept as it is)
        container.unpack_human(human)
    return machine, human


def strip_file(src, dst, human_segment=None) -> dict:
    """``saicm strip``: write the machine layer of ``src`` to ``dst`` (atomically), and its human-layer segment to
    ``human_segment`` if given (a file without one is then refused, before anything is written)."""
    from .._fs import output_file, read_input, write_bytes_atomic
    from ..errors import naming
    from .image_io import refuse_media_output

    output_file(dst, [src])
    refuse_media_output(dst, "the machine layer")
    if human_segment is not None:
        output_file(human_segment, [src, dst])
        refuse_media_output(human_segment, "the human-layer segment")
        if os.path.realpath(human_segment) == os.path.realpath(dst):  # (by any name: a link too)
            raise SaicmError("the machine layer and the human-layer segment need two files", str(dst))
    data = read_input(src)
    with naming(src):
        machine, human = _layers(data)
        if human_segment is not None and human is None:
            raise FormatError("a single-layer file: it has no human-layer segment (--human-segment)")
    if human_segment is not None:  # (first: a machine layer there says its segment is too, to a folder job's skip)
        write_bytes_atomic(human_segment, human)
    write_bytes_atomic(dst, machine)
    from .pipeline import describe

    return {"bytes_in": len(data), "bytes_out": len(machine), "had_human_layer": human is not None,
            "alpha_bytes": int(describe(machine).get("alpha_bytes") or 0)}
