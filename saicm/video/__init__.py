"""Video coding for machines: NeRV and SA-NeRV clips as ``.saicmv`` files.

::

    import saicm.video
    r = saicm.video.encode("clip.264", "clip.saicmv", frames="0:30", preset="xs")  # fits, writes, returns
    print(r.info["bytes"], r.info["bpp"], r.info["psnr"])
    frames = saicm.video.decode(open("clip.saicmv", "rb").read()).frames          # (N, H, W, 3) uint8
    saicm.video.decode_file("clip.saicmv", "decoded/")                           # PNG frames, or .mkv
    saicm.video.describe(open("clip.saicmv", "rb").read())                        # the header as a dict

Modules: ``io`` (clips in and out through ffmpeg), ``nerv`` (the network,
rendering; its presets and configuration checks in ``nerv_config``, without
PyTorch, as HNeRV's in ``hnerv_config``), ``train`` (the NeRV / SA-NeRV loss,
stages, checkpoints, divergence guard), ``compress`` (pruning, per-channel
quantisation, entropy coding of the weights), ``bitstream`` (the ``.saicmv``
format), ``api`` (encode/decode), ``codecs`` and ``evaluate`` (``saicm eval``
on clips). Attributes are imported on first use (PyTorch is not loaded by
``import saicm.video``).
"""

from typing import TYPE_CHECKING

from .._lazy import lazy_getattr

_API = {
    "encode": ("saicm.video.api", "encode"),
    "decode": ("saicm.video.api", "decode"),
    "decode_file": ("saicm.video.api", "decode_file"),
    "describe": ("saicm.video.bitstream", "describe"),  # (a header: no PyTorch)
    "read_clip": ("saicm.video.io", "read_clip"),
    "Clip": ("saicm.video.io", "Clip"),  # frames in memory with their fps: Clip(frames, fps=12.5)
}

__all__ = sorted(_API)

if TYPE_CHECKING:  # what type checkers see (py.typed): the names of _API, typed (a test keeps them equal)
    # (``X as X``: exported under mypy --strict, whose --no-implicit-reexport reads no computed __all__)
    from .api import decode as decode, decode_file as decode_file, encode as encode
    from .bitstream import describe as describe
    from .io import Clip as Clip, read_clip as read_clip
else:
    __getattr__ = lazy_getattr("saicm.video", _API, globals())


def __dir__() -> list[str]:
    """The API (imported on first use, so not yet in the namespace) and the submodules loaded: tab completion."""
    return sorted({n for n in globals() if not n.startswith("_") and n not in ("TYPE_CHECKING", "lazy_getattr")}
                  | set(_API))
