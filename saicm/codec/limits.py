"""What a decoder accepts from a file before it allocates anything: the checks every saicm format shares.

Files come from strangers. Each value a header claims is checked here, before
the work or memory it implies is committed:

- :func:`check_pixels`: the image size against a pixel limit, like Pillow's
  decompression-bomb limit. The default, :data:`DEFAULT_MAX_PIXELS` (2²⁶ =
  67,108,864, an 8192×8192 image; 8K UHD is 33 MP), bounds the time and
  memory any file can ask for; ``--max-pixels`` / ``max_pixels=`` raise it.
  The same limit applies to images given to the encoder (Pillow's own limit is
  set to match while they are read).
- :func:`check_video_pixels`: a clip's frames × height × width against a
  limit of its own, :data:`DEFAULT_MAX_VIDEO_PIXELS` (2³¹: e.g. 1,035 frames of
  1920×1080), checked from a ``.saicmv`` header (and while a clip is read)
  before any frame is made; each frame also passes :func:`check_pixels`.
  That limit bounds a decode that streams its frames to disk (``saicm video
  decode``); a decode into one array in memory (``saicm.video.decode``) is held
  to :data:`DEFAULT_MAX_VIDEO_ARRAY_PIXELS` (2²⁸: 768 MiB of frames) unless the
  caller passes ``max_pixels``.
- :func:`inflate`: zlib data inflated to at most the size the header implies.
- :func:`header_model_name`: a model name read from a file names a shipped
  model, never a path on this machine.

The entropy decoder itself is made safe in :mod:`saicm.entropy.bounded`; a
new file format builds on these functions rather than re-checking in its own way.
"""

from __future__ import annotations

import contextlib
import threading
import zlib

from ..errors import ArgumentError, FormatError, ImageError, ModelError, bytes_text

#: decode (and encode) at most this many pixels unless the caller raises it
DEFAULT_MAX_PIXELS = 1 << 26


def pixels_text(n: int) -> str:
    """A pixel count as help texts say it: ``67,108,864 = 8192x8192`` (a square), ``2,147,483,648 = 2^31``, else
    ``N``; help built from the constants cannot contradict them."""
    import math

    side = math.isqrt(n)
    if side * side == n:
        return f"{n:,} = {side}x{side}"
    return f"{n:,} = 2^{n.bit_length() - 1}" if n & (n - 1) == 0 else f"{n:,}"


def whole_number(value, what: str) -> int:
    """``value`` as an int if it is one (NumPy's integers too), else a one-line :class:`ModelError` (a float, a
    string, a bool or NaN was truncated, or raised TypeError/ValueError/OverflowError)."""
    import numbers

    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise ArgumentError(f"{what} must be a whole number, got {value!r}")
    return int(value)


def resolve_max_pixels(max_pixels: int | None) -> int:
    if max_pixels is None:
        return DEFAULT_MAX_PIXELS
    if whole_number(max_pixels, "max_pixels") < 1:
        raise ArgumentError(f"max_pixels must be a positive number of pixels, got {max_pixels}")
    return int(max_pixels)


class OversizedImage(ImageError):
    """An input image above the pixel limit; its message says how to raise the limit (``--max-pixels``), which
    only the commands that code and decode have: :func:`saicm.codec.image_io.read_without_limit_option` restates
    it for those that read image sets (eval, train, masks)."""

    #: what the message adds to ``said`` (the image's size against the limit)
    RAISE = "; raise it with --max-pixels (Python: max_pixels=) if you trust it"

    def __init__(self, said: str, path: str | None = None, limit: int = 0):
        super().__init__(said + self.RAISE, path)
        self.said, self.limit = said, limit


class OversizedClip(OversizedImage):
    """A clip given to the encoder (or to ``saicm video frames``) above the video pixel limit: its message says what
    it would hold and how to take less of it (it said "raise it with --max-pixels if you trust it", of a camera's
    own hour-long recording, whose frames in memory were what the limit spared)."""

    RAISE = ("; take a part of it (--frames A:B) or a smaller size (--size WxH), or raise the limit with "
             "--max-pixels (Python: max_pixels=) if the memory allows")


def check_pixels(height: int, width: int, max_pixels: int | None = None, what: str = "the file") -> None:
    """Refuse an image larger than the pixel limit (one line, saying how to raise it)."""
    limit = resolve_max_pixels(max_pixels)
    if height * width > limit:
        # (a coded file holds an image; an image, a clip's frames are that size: "the image is a 96x64 image")
        size = "holds a" if what == "the file" else "is"
        shape = f"{width}x{height} image" if what == "the file" else f"{width}x{height}"
        said = f"{what} {size} {shape} ({height * width:,} pixels), more than the limit of {limit:,}"
        if what == "the file":
            raise FormatError(said + OversizedImage.RAISE)
        raise OversizedImage(said, limit=limit)


#: frames × height × width a video file (or a clip given to the encoder) may hold unless the caller raises it
DEFAULT_MAX_VIDEO_PIXELS = 1 << 31
#: frames × height × width a clip decoded into one array in memory may hold unless the caller passes a limit
#: (2²⁸ pixels: 768 MiB of RGB frames; a 700-byte file claiming 2³¹ would otherwise ask for 6.0 GiB)
DEFAULT_MAX_VIDEO_ARRAY_PIXELS = 1 << 28


def check_video_pixels(frames: int, height: int, width: int, max_pixels: int | None = None,
                       what: str = "the file", estimate: str = "") -> None:
    """Refuse a clip of more than ``max_pixels`` pixels in all frames (default :data:`DEFAULT_MAX_VIDEO_PIXELS`).
    ``estimate``: how ``frames`` was reckoned when it was not counted (``"10 min at 30 fps"``)."""
    if max_pixels is None:
        limit = DEFAULT_MAX_VIDEO_PIXELS
    elif whole_number(max_pixels, "max_pixels") < 1:
        raise ArgumentError(f"max_pixels must be a positive number of pixels, got {max_pixels}")
    else:
        limit = int(max_pixels)
    if frames * height * width > limit:
        count = f"about {frames:,} frames ({estimate})" if estimate else f"{frames:,} frames"
        said = (f"{what} holds {count} of {width}x{height} ({frames * height * width:,} pixels), more than "
                f"the limit of {limit:,}")
        if what == "the file":
            raise FormatError(said + OversizedImage.RAISE)
        said += f" ({clip_size_text(frames, height, width)} as frames; {limit // (height * width):,} frames fit)"
        raise OversizedClip(said, limit=limit)  # (restated by the commands without --max-pixels: eval)


def clip_size_text(frames: int, height: int, width: int) -> str:
    """What ``frames`` RGB frames of ``width``×``height`` take in memory, as :func:`~saicm.errors.bytes_text` says
    it: ``"6.0 GiB"`` (2³¹ pixels), ``"768 MiB"`` (2²⁸)."""
    return bytes_text(3 * frames * height * width)


def inflate(data: bytes, size: int, what: str = "alpha plane") -> bytes:
    """zlib-inflate ``data`` to exactly ``size`` bytes, never allocating more (a zlib bomb stops at ``size``); bytes
    after the zlib stream are refused, as everywhere in the format."""
    d = zlib.decompressobj()
    try:
        out = d.decompress(data, size)
        if len(out) != size or d.unconsumed_tail or d.unused_data or not (d.eof or d.flush(1) == b""):
            raise FormatError(f"corrupt {what}")
    except zlib.error:
        raise FormatError(f"corrupt {what}") from None
    return out


def check_alpha(stream) -> None:
    """Inflate a stream's alpha plane once before anything is decoded (bounded, as :func:`inflate`), so that a
    corrupt plane fails in milliseconds, not after the whole image has been decoded."""
    if stream.alpha is not None:
        inflate(stream.alpha, stream.header.height * stream.header.width)


def is_model_name(name: str) -> bool:
    """Whether ``name`` can stand in a file's header: a plain name that can only name an installed model (no path,
    no suffix, not hidden, at most 200 characters, no control characters)."""
    import os

    from ..models.catalog import SUFFIX

    return not (not name or len(name) > 200 or name.endswith(SUFFIX) or os.sep in name or "/" in name
                or "\\" in name or name.startswith(".") or any(ord(c) < 32 for c in name))


def header_model_name(name: str) -> str:
    """A model name from a file's header: refused unless it can only name a shipped model (no path, no suffix)."""
    if not is_model_name(name):
        raise FormatError("corrupt header (the model name is not a model name)")
    return name


def check_writable_model_name(name: str) -> None:
    """Refuse, before writing, a model name that :func:`header_model_name` would refuse when reading the file back
    (a model file named ``.hidden.safetensors`` wrote files that no decoder read without ``--model``)."""
    if not is_model_name(name):
        raise FormatError(f"the model name {name!r} cannot be written into a file: a decoder would refuse it (a "
                          "plain name is needed: no leading '.', no path characters, at most 200 characters); "
                          "rename the model file")


_pillow_lock = threading.Lock()
_pillow_users = 0  # readers that need Pillow's check off now
_pillow_saved = None  # Pillow's MAX_IMAGE_PIXELS before the first of them


@contextlib.contextmanager
def pillow_checks_off(limit: int):
    """Pillow's own decompression-bomb check out of the way while an image of at most ``limit`` pixels is read:
    saicm's limit decides (:func:`check_pixels`, on the header, before any pixel is decoded).

    Pillow's check reads a global (``Image.MAX_IMAGE_PIXELS``: it warns above it and refuses above twice it), so it
    is switched off only when ``limit`` exceeds it (never with the default limit, 2²⁶ pixels, below Pillow's
    89 M): a program using Pillow beside saicm keeps its protection. When it must be off, readers in several
    threads share one switch: the first saves Pillow's value, the last puts it back (each saving and restoring
    on its own left it off for good after two overlapping reads)."""
    from PIL import Image

    global _pillow_users, _pillow_saved
    with _pillow_lock:
        current = Image.MAX_IMAGE_PIXELS if _pillow_users == 0 else _pillow_saved
        needed = current is not None and limit > current
        if needed:
            if _pillow_users == 0:
                _pillow_saved = Image.MAX_IMAGE_PIXELS
                Image.MAX_IMAGE_PIXELS = None
            _pillow_users += 1
    try:
        yield
    finally:
        if needed:
            with _pillow_lock:
                _pillow_users -= 1
                if _pillow_users == 0:
                    Image.MAX_IMAGE_PIXELS = _pillow_saved


def check_layout(header, name: str, num_qualities: int, multiple: int, latent_shapes, min_size: int = 0) -> None:
    """The checks of a stream header against its model that need no decoding (both engines): quality, padding,
    latent shapes. The entropy decoder trusts shapes blindly; it never gets ones the encoder could not write."""
    from .image_io import pad_amount

    h = header
    if not 1 <= h.quality <= num_qualities:
        raise FormatError(f"quality {h.quality} out of range for {name}")
    if (h.pad_bottom != pad_amount(h.height, multiple, min_size)
            or h.pad_right != pad_amount(h.width, multiple, min_size)):
        raise FormatError("corrupt header (padding does not fit the model)")
    if h.shapes != latent_shapes(h.height + h.pad_bottom, h.width + h.pad_right):
        raise FormatError("latent layout does not match the model")


def stream_model(header, model=None, max_pixels: int | None = None):
    """The model file that decodes a stream (``model`` overrides the one the header names), after the pixel limit,
    with the header's weights checksum checked (both engines): its :class:`~saicm.models.catalog.ModelInfo`."""
    return coded_model(header.model, header.weights_sha, header.height, header.width, model, max_pixels)


def coded_model(name: str, weights_sha: bytes, height: int, width: int, model=None, max_pixels: int | None = None,
                what: str = "the file"):
    """:func:`stream_model` for any segment that names its model and weights (a stream's header, a human layer):
    the pixel limit on ``height`` × ``width``, then the model named ``name`` (or ``model``), its checksum checked."""
    from ..models.catalog import (RETIRED_MODELS, SCALABLE_ARCHITECTURE, file_checksum, recover_weights,
                                  replaced_weights, resolve, unknown_coded_model)

    check_pixels(height, width, max_pixels)
    replaced = replaced_weights(name, weights_sha)  # weights once shipped under this name, since replaced
    try:
        info = resolve(model if model is not None else header_model_name(name))
    except ModelError:
        if model is None and replaced is not None:  # (the retired name's message gives the later weights)
            raise ModelError(f"{what} was coded with weights of model {name!r} that saicm no longer ships "
                             "(replaced in saicm 0.1.0); " + recover_weights(name, replaced)) from None
        if model is None and header_model_name(name) not in RETIRED_MODELS:  # (not typed by the user: no "did
            raise ModelError(unknown_coded_model(name, weights_sha, what)) from None  # you mean")
        raise
    if file_checksum(info.path) != weights_sha:
        if replaced is not None:
            raise ModelError(f"{what} was coded with other weights of model {name!r} than {info.path.name} "
                             "(checksum mismatch): ones since replaced; " + recover_weights(name, replaced))
        scalable = info.architecture == SCALABLE_ARCHITECTURE
        if model is not None and scalable and what == "the file":
            raise ModelError(f"{info.name} is a scalable model: it decodes a two-layer file's human layer, and this "
                             f"(machine) layer needs its base model {name!r}: drop --model (Python: model=)")
        if model is not None and not scalable and what == "the human layer":
            raise ModelError(f"{info.name} is not a scalable model: the human layer needs {name!r}; to decode the "
                             f"machine layer with {info.name}, add --layer machine (Python: layer=\"machine\")")
        if model is not None and info.name != name:  # (--model another model: "other weights of model X")
            try:
                own = resolve(header_model_name(name))
            except ModelError:
                own = None
            if own is not None and file_checksum(own.path) == weights_sha:
                raise ModelError(f"{what} was coded with model {name!r}, not {info.name}: drop --model (Python: "
                                 "model=) to decode it with its own")
            raise ModelError(f"{what} was coded with model {name!r}, not {info.name}; pass {name!r}'s model file "
                             "with --model (Python: model=PATH)")
        # (found by name: its folder too, for a file of that name elsewhere, a run's or the working folder's, is
        # not the one read)
        which = info.path.name if model is not None else f"the one saicm found by that name, {info.path}"
        raise ModelError(f"{what} was coded with other weights of model {name!r} than {which} "
                         "(checksum mismatch); pass the matching model file with --model (Python: model=PATH)")
    return info

