"""Image ⇄ portable ``.saicm`` stream (format version 3), with either transform back-end.

``compress`` and ``decode`` are what :func:`saicm.compress` / :func:`saicm.decompress`
run for the models the engine supports. With ``engine="onnx"`` (the default) a
process never imports PyTorch or CompressAI; ``engine="torch"`` runs the same
coding with the PyTorch transforms, so files cross between the two. Images above
4 megapixels are analysed and synthesised by tiles (:mod:`saicm.codec.tiling`)
with either back-end.
"""

from __future__ import annotations

import zlib

import numpy as np

from .._progress import StageMeter
from ..codec import container
from ..codec.image_io import ImageLike, load_padded
from ..codec.limits import check_alpha, check_layout, stream_model
from ..codec.tiling import needs_strips, strip_count, strip_rows, strips_refusal, to_pixels
from ..errors import ArgumentError, FormatError, ModelError
from ..models.catalog import ModelInfo, checked_quality, file_checksum
from . import PORTABLE_ENGINES
from .model import PortableModel, load
from .runtime import transforms


def padded(rgb: np.ndarray, pb: int, pr: int) -> np.ndarray:
    """(1, 3, H+pb, W+pr) float32 in [0, 1], edge-replicated (as the PyTorch path pads)."""
    x = np.pad(rgb, ((0, pb), (0, pr), (0, 0)), mode="edge") if pb or pr else rgb
    return (x.transpose(2, 0, 1)[None].astype(np.float32) / np.float32(255.0))


def transform_backend(engine: str) -> str:
    """The transform back-end of ``engine``: ``auto`` is onnxruntime."""
    if engine not in PORTABLE_ENGINES:
        raise ArgumentError(f"engine {engine!r} does not code portable streams (one of {', '.join(PORTABLE_ENGINES)})")
    return "onnx" if engine == "auto" else engine


def compress(image: ImageLike, info: ModelInfo, quality: int | None = None, engine: str = "auto",
             max_pixels: int | None = None, refine: int = 0, progress: bool = False,
             max_bytes: int | None = None) -> bytes:
    """Encode an image into a version-3 stream of the model ``info``.

    ``refine``: steps of encoder-side refinement of the latents (:mod:`saicm.codec.refine`, with the PyTorch
    model; the stream is the same format, any decoder reads it); ``progress``: a bar over those steps, and over a
    large image's analysis tiles and coding strips (an image coded in strips: a 48 MP photo took 90 s in silence).
    ``max_bytes``: instead of ``quality``, the highest quality whose file is at most that many bytes
    (:mod:`saicm.codec.budget`); the analysis runs once, each trial quality only gains, codes and packs."""
    from ..codec.budget import checked_max_bytes, fit

    pm = load(info)
    max_bytes = checked_max_bytes(max_bytes, quality)
    q = checked_quality(quality, pm.num_qualities, info.name)
    backend = transform_backend(engine)
    img, pb, pr = load_padded(image, pm.multiple, max_pixels)
    h, w = img.size
    ph, pw = h + pb, w + pr
    if refine and needs_strips(pm.M, ph, pw):
        raise ModelError(strips_refusal("--refine", pm.M))
    t = y0 = None
    # (one meter for the analysis and the coding: closed however either ends, an error in the analysis too)
    with StageMeter("compress", bool(progress) and not refine and needs_strips(pm.M, ph, pw)) as meter:
        if not refine:
            t = transforms(pm, backend)
            if needs_strips(pm.M, ph, pw):  # large image: analysis by tiles (bounded memory)
                y0 = t.analysis_tiles(img.rgb, pb, pr, tick=lambda done, n: meter("analysis", done, n, "tile"))
            else:
                # (a copy, made while onnxruntime's output is live, which then goes: held through the trials, that
                # output kept the memory the analysis freed from going back, as `y * gain` had let it go; 1920x1280's
                # peak was 95 MB higher, with --max-bytes 130 MB; below STRIP_SYMBOLS latent symbols here: a copy of
                # at most 8 MB)
                y0 = t.analysis(padded(img.rgb, pb, pr)).copy()
        rows = strip_rows(pm.M, pw // 16)
        alpha = zlib.compress(img.alpha.tobytes(), 9) if img.alpha is not None else None

        def code(q: int) -> bytes:
            if refine:  # (the refined latents depend on the quality: refined again per trial)
                from ..codec.refine import refined_latents

                y, z = refined_latents(info.path, img, q, int(refine), max_pixels, progress)
            else:
                y = y0 * pm.gain[q - 1][None, :, None, None]
                z = t.hyper_analysis(y)
            meter.mark()  # (the gain and hyper-analysis are not the first strip's)
            strings = pm.encode(y[0], z[0], rows, tick=lambda done, n: meter(f"coding q{q}", done, n, "strip"))
            header = container.Header(
                model=info.name, weights_sha=file_checksum(info.path), quality=q, height=h, width=w,
                pad_bottom=pb, pad_right=pr, gray=img.gray, shapes=pm.latent_shapes(ph, pw),
                version=container.PORTABLE_VERSION, strip_rows=rows)
            return container.pack(container.Stream(header=header, strings=strings, alpha=alpha))

        return code(q) if max_bytes is None else fit(code, pm.num_qualities, max_bytes)


def open_portable(stream: container.Stream, model=None, max_pixels: int | None = None) -> PortableModel:
    """The portable model that decodes ``stream``, after every check that can be made before decoding."""
    h = stream.header
    pm = load(stream_model(h, model, max_pixels))
    check_layout(h, pm.info.name, pm.num_qualities, pm.multiple, pm.latent_shapes)
    if len(stream.strings) != 1 + strip_count((h.height + h.pad_bottom) // 16, h.strip_rows):
        raise FormatError("latent layout does not match the model (strip count)")
    check_alpha(stream)
    return pm


def decode(stream: container.Stream, model=None, engine: str = "auto", max_pixels: int | None = None,
           progress: bool = False) -> np.ndarray:
    """The uint8 (H, W, 3) image of a version-3 stream; ``progress``: a bar over a large image's decoding strips and
    synthesis tiles."""
    pm = open_portable(stream, model, max_pixels)
    h = stream.header
    backend = transform_backend(engine)
    large = needs_strips(pm.M, h.height + h.pad_bottom, h.width + h.pad_right)
    with StageMeter("decompress", bool(progress) and large) as meter:
        y_hat = pm.decode(stream.strings, h.shapes[0], h.quality, h.strip_rows,
                          tick=lambda done, n: meter("decoding", done, n, "strip"))
        t = transforms(pm, backend)
        if large:  # large image: synthesis by tiles
            meter.mark()  # (the dequantisation and the transforms' loading are not the first tile's)
            return t.synthesis_tiles(y_hat, h.height, h.width, tick=lambda done, n: meter("synthesis", done, n, "tile"))
    x = t.synthesis(y_hat)[0, :, : h.height, : h.width]
    return to_pixels(x)
