"""Clip ⇄ ``.saicmv`` bytes: encode (fit, prune, quantise, entropy-code), decode, describe.

::

    r = saicm.video.encode("clip.264", "clip.saicmv", frames="0:30", preset="xs")   # EncodeResult
    frames = saicm.video.decode(open("clip.saicmv", "rb").read()).frames           # (N, H, W, 3) uint8
    saicm.video.decode_file("clip.saicmv", "frames/")                              # PNGs (or a .mkv)

The encoder's own reference — the frames its quantised network renders —
is what any decoder gives for the file, bit for bit (``tests/test_video.py``).
"""

from __future__ import annotations

import contextlib
import os
import time
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Iterator

import numpy as np
import torch

from .._fs import exclusive
from ..codec.container import CodedLike, coded_input
from ..codec.image_io import names_media_file
from ..device import keeps_callers_random_state
from ..errors import ArgumentError, FormatError, SaicmError, naming
from . import archs, bitstream, compress, nerv
from .bitstream import describe  # noqa: F401  (saicm.video.describe: no PyTorch, it reads a header)
from .io import FRAME_PATTERN, Clip, frame_index, read_clip
from .train import FitReport, FitSettings, fit

#: default learning rate per preset (measured on foreman, 8 frames, 100 epochs: xs reached 22.5 / 25.0 / 27.7 /
#: 28.2 dB at 1e-3 / 3e-3 / 1e-2 / 2e-2 and collapsed at 5e-2); the divergence guard halves it on a collapse
PRESET_LR = {"xs": 1e-2, "s": 1e-2, "m": 5e-3, "l": 3e-3}
DEFAULT_EPOCHS = 300
#: Names the encoder in the key under which ``saicm eval`` caches a clip's encode (with the codec's options).
#: Change it when the same inputs would give a different file (training, pruning, quantisation, coding), not
#: with every release: a version bump alone must not throw away cached encodes of an hour each.
ENCODER_ID = "saicm 0.6.0 NeRV"


@dataclass
class EncodeResult:
    data: bytes
    info: dict
    #: the frames the encoder's quantised network renders: what every decoder of ``data`` gives
    reference: np.ndarray | None = None
    report: FitReport | None = None

    def __repr__(self) -> str:
        # (what a notebook shows of a cell's result: the dataclass's own repr was the whole file's bytes, escaped,
        # 84 KB of text for the 26 KB file of an 8-frame clip, and a summary of the frames array)
        ref = None if self.reference is None else f"<{self.reference.dtype} array of shape {self.reference.shape}>"
        return (f"EncodeResult(data=<{len(self.data):,} bytes>, info={self.info!r}, reference={ref}, "
                f"report={self.report!r})")


@dataclass
class Decoded:
    header: bitstream.VideoHeader
    frames: np.ndarray  # (N, H, W, 3) uint8

    def names(self) -> list[str]:
        return [FRAME_PATTERN.format(self.header.first + i) for i in range(self.header.frames)]


def _as_clip(clip, frames, size, max_pixels) -> Clip:
    if isinstance(clip, (Clip, np.ndarray)) and (frames is not None or size is not None):
        # (they were ignored: all frames at their size were coded)
        raise ArgumentError("frames= and size= select and scale a clip read from a file or folder; slice or resize "
                            "an array or Clip yourself (fps: saicm.video.Clip(frames, fps=...))")
    if isinstance(clip, Clip):
        return clip
    if isinstance(clip, np.ndarray):
        if clip.ndim != 4 or clip.shape[-1] != 3 or clip.dtype != np.uint8:
            raise SaicmError("a clip array must be (N, H, W, 3) uint8")
        from ..codec.limits import check_video_pixels

        check_video_pixels(*clip.shape[:3], max_pixels, what="the clip")
        return Clip(clip)
    return read_clip(clip, frames, size, max_pixels)


def load_masks(folder: str | os.PathLike, clip: Clip) -> np.ndarray:
    """(N, H, W) bool edge masks of the clip's frames from ``folder`` (``saicm masks`` on ``saicm video frames``).

    Frame ``i`` of the source takes ``frame_%06d.png`` with that index. A mask of another size is resized to the
    frame: an output pixel is on when any mask pixel in its area is (edges survive downscaling).
    """
    from ..masks.job import load_mask

    folder = Path(folder)
    if not folder.is_dir():
        raise SaicmError("mask folder not found", str(folder))
    by_index = {}
    for p in sorted(folder.iterdir()):
        i = frame_index(p.name)
        if i is not None and p.suffix.lower() == ".png":
            if i in by_index:  # (frame_000001.png and frame_1.png: the one taken depended on the folder's order)
                raise SaicmError(f"two masks for frame {i}: {by_index[i].name} and {p.name} (keep one)", str(folder))
            by_index[i] = p
    out = np.zeros((clip.n, clip.height, clip.width), bool)
    missing = [clip.first + k for k in range(clip.n) if clip.first + k not in by_index]
    if missing:
        raise SaicmError(f"no mask for frame {missing[0]} ({len(missing)} of {clip.n} frames have none; masks are "
                         f"{FRAME_PATTERN.format(missing[0])} from 'saicm masks' on 'saicm video frames')", str(folder))
    for k in range(clip.n):
        out[k] = load_mask(by_index[clip.first + k], (clip.width, clip.height))
    return out


def fit_settings(preset, epochs=None, lr=None, loss="nerv", **kw) -> FitSettings:
    name = preset if isinstance(preset, str) else "custom"
    s = FitSettings(epochs=DEFAULT_EPOCHS if epochs is None else int(epochs),
                    lr=lr if lr is not None else PRESET_LR.get(name, 5e-3), loss=loss,
                    **{k: v for k, v in kw.items() if v is not None})
    s.check()
    return s


def _check_writable(*paths) -> None:
    """Refuse, before the fit, an output or checkpoint whose folder cannot be written: the fit ran to its end (or
    its first checkpoint) and then stopped on it, its work lost."""
    from .._fs import output_target

    for p in paths:
        if p is None:
            continue
        folder = Path(p).parent if str(Path(p).parent) else Path(".")
        if folder.is_dir() and not os.access(folder, os.W_OK | os.X_OK) and not output_target(p)[1]:
            raise SaicmError("cannot write to this output folder (nothing done)", str(folder))


def _check_checkpoint_path(ckpt: Path, output, clip) -> None:
    """Refuse, before the fit, a ``--checkpoint`` that names the output (the encode wrote the file over its
    checkpoint, then deleted the checkpoint: the file was gone, with a report of its bytes and exit 0), a folder
    or the input clip (each said "a checkpoint of an earlier encode is there: add --resume")."""
    from .._fs import refuse_input_as_output

    if output is not None:
        try:
            same = os.path.samefile(ckpt, output)
        except OSError:  # (either not there yet)
            same = os.path.abspath(ckpt) == os.path.abspath(output)
        if same:
            raise SaicmError("--checkpoint names the output file (the checkpoint is deleted once the file is written): "
                             "name another checkpoint, or leave it out (OUTPUT.ckpt)", str(ckpt))
    if ckpt.is_dir():
        raise SaicmError("is a folder: --checkpoint names the checkpoint file", str(ckpt))
    if isinstance(clip, (str, os.PathLike)):
        refuse_input_as_output(clip, ckpt)


@keeps_callers_random_state
def encode(clip, output: str | os.PathLike | None = None, *, frames: str | None = None, size=None,
           preset: str | dict = nerv.DEFAULT_PRESET, arch: str = archs.DEFAULT, loss: str = "nerv", masks=None,
           epochs: int | None = None,
           lr: float | None = None, batch: int | None = None, prune: float | None = None,
           prune_epochs: int | None = None, qat_epochs: int | None = None, bits: int | None = None, seed: int = 0,
           edge_weight: float | None = None, beta: float | None = None,
           checkpoint: str | os.PathLike | None = None, resume: bool = False, keep_checkpoint: bool = False,
           ckpt_every: int | None = None, device: str = "auto", progress: bool = True,
           max_pixels: int | None = None, compile: bool = False, fault=None) -> EncodeResult:
    """Fit a NeRV (``arch="nerv"``) or HNeRV (``"hnerv"``) network to a clip and code it; write ``output``
    (atomically) when given.

    ``clip``: a video file or frame folder (``frames="A:B"``, ``size="WxH"``), a :class:`Clip` or an (N, H, W, 3)
    uint8 array. ``masks``: a folder of per-frame edge masks or an (N, H, W) bool array (``loss="sa-nerv"``).
    ``checkpoint`` defaults to ``OUTPUT.ckpt`` (none without ``output``); it is removed after a successful encode
    unless ``keep_checkpoint``. ``compile``: fit through ``torch.compile`` (faster after a first step that compiles;
    the same fit and checkpoints: :mod:`saicm.train.compiling`). ``progress``: the progress display (False:
    ``--quiet``). The others (``preset``, ``epochs``, ``lr``, ``batch``, ``prune``, ``prune_epochs``,
    ``qat_epochs``, ``bits``, ``seed``, ``edge_weight``, ``beta``, ``resume``, ``ckpt_every``, ``device``,
    ``max_pixels``) are the options of ``saicm video encode`` of the same names (``--prune-epochs`` for
    ``prune_epochs``; those left at None take the defaults that ``saicm video encode --help`` gives). ``fault``: a
    test hook (``fault(stage, epoch, model)`` before every epoch), not for use.
    """
    from ..device import launcher, resolve_device, start_process_group
    from ..eval.metrics import psnr

    t0 = time.perf_counter()
    settings = fit_settings(preset, epochs, lr, loss, batch=batch, prune=prune, prune_epochs=prune_epochs,
                            qat_epochs=qat_epochs, bits=bits, seed=seed, ckpt_every=ckpt_every,
                            edge_weight=edge_weight, beta=beta, compile=compile or None)
    archs.check_choice(arch, preset)
    if loss == "sa-nerv" and masks is None:
        raise ArgumentError("--loss sa-nerv needs --masks DIR (per-frame edge masks: 'saicm video frames' then "
                         "'saicm masks')")
    if loss != "sa-nerv" and (masks is not None or edge_weight is not None):
        # (they were ignored: the recipe frames → masks → encode without --loss sa-nerv wrote a plain NeRV file)
        raise ArgumentError("--masks and --edge-weight (Python: masks=, edge_weight=) are for --loss sa-nerv "
                         f"(loss={loss!r} ignores them): add --loss sa-nerv, or drop them")
    if output is not None:
        from .._fs import no_output_folder, refuse_input_as_output

        out_dir = Path(output).parent if str(Path(output).parent) else Path(".")
        if not out_dir.is_dir():
            raise no_output_folder(out_dir)
        if Path(output).is_dir():  # found before the fit, not after it
            raise SaicmError("is a folder: name the .saicmv file to write", str(output))
        if names_media_file(output):
            raise SaicmError("names a video or image file: the coded clip is a .saicmv file", str(output))
        if Path(output).suffix.lower() == ".saicm":  # (an image's coded file there was replaced by the clip's)
            raise SaicmError("names an image's coded file (.saicm): the coded clip is a .saicmv file", str(output))
        if isinstance(clip, (str, os.PathLike)):
            refuse_input_as_output(clip, output)
    ckpt = Path(checkpoint) if checkpoint else (Path(str(output) + ".ckpt") if output is not None else None)
    if checkpoint:
        _check_checkpoint_path(ckpt, output, clip)
    _check_writable(output, ckpt)
    with contextlib.ExitStack() as held:
        if ckpt is not None and os.environ.get("RANK", "0") == "0" and ckpt.parent.is_dir():
            # (two encodes of one output both fitted from, and wrote, one checkpoint; torchrun: rank 0 holds it)
            held.enter_context(exclusive(ckpt.parent, "one encode at a time of one checkpoint (wait for that one to "
                                         "end, or pick another output or --checkpoint)", name=f".{ckpt.name}.lock",
                                         subject=ckpt))
        if ckpt is not None and ckpt.exists() and not resume:
            raise SaicmError("a checkpoint of an earlier encode is there: add --resume (resume=True) to continue it, "
                             "or delete it", str(ckpt))
        if resume and ckpt is not None and not ckpt.exists() and os.environ.get("RANK", "0") == "0":
            # said once this encode holds the checkpoint (the command line said it first, then that another encode
            # held it); torchrun: rank 0 says it
            from ..errors import warn

            warn(f"no checkpoint at {ckpt}: starting from the beginning")
        rank, world, local_rank = launcher()
        dev = resolve_device(device, local_rank, option="device=")  # (the command line says its --device first)
        if world > 1:  # torchrun: one process per GPU (or CPU process), each fits its share of every batch
            start_process_group(dev)
        rank = rank if world > 1 else 0
        c = _as_clip(clip, frames, size, max_pixels)
        m = None
        if loss == "sa-nerv":
            m = masks if isinstance(masks, np.ndarray) else load_masks(masks, c)
            if m.shape != (c.n, c.height, c.width):
                raise SaicmError(f"masks are {m.shape}, the clip is {(c.n, c.height, c.width)}")
            m = m.astype(bool)
        try:
            config = archs.make_config(arch, preset, c.height, c.width)
            archs.check_config(arch, config, c.height, c.width, c.n)
        except FormatError as e:  # (a preset dict out of the decoder's bounds: said as the preset's, not a file's)
            if isinstance(preset, str):
                raise
            why = str(e.args[0]).removeprefix("corrupt header (architecture configuration: ").removesuffix(")")
            raise SaicmError(f"preset: {why.split('; ')[0]}, which saicm does not decode: a smaller preset") from None
        torch.manual_seed(settings.seed)
        model = archs.build(arch, config, c.n, training=True)
        report = fit(model, c.frames, settings, masks=m, checkpoint=ckpt, resume=resume, device=dev, progress=progress,
                     fault=fault)
        fit_s = time.perf_counter() - t0
        if world > 1:
            import torch.distributed as dist

            dist.barrier()
            dist.destroy_process_group()
            if rank:  # rank 0 writes the file
                return EncodeResult(data=b"", info={"rank": rank}, report=report)

        qts = compress.quantise(model, settings.bits)
        compress.load_quantised(model, qts)
        symbols = compress.encode_symbols(qts, settings.bits)
        meta = {"preset": preset if isinstance(preset, str) else "custom", "loss": loss}
        header = bitstream.VideoHeader(arch=arch, config=config, frames=c.n, width=c.width,
                                       height=c.height, fps=Fraction(c.fps), first=c.first, bits=settings.bits,
                                       meta=meta)
        steps = np.concatenate([t.steps for t in qts])
        data = bitstream.pack(bitstream.VideoStream(header=header, steps=steps, symbols=symbols))
        ref = np.empty_like(c.frames)
        for start, batch_frames in nerv.render(model, c.n, c.height, c.width):
            ref[start: start + batch_frames.shape[0]] = batch_frames.numpy()
        if output is not None:
            from .._fs import write_bytes_atomic

            write_bytes_atomic(output, data)
            if ckpt is not None and not keep_checkpoint and ckpt.exists():
                ckpt.unlink()
        nonzero = sum(int((t.symbols != 0).sum()) for t in qts)
        n_params = sum(t.symbols.size for t in qts)
        psnrs = [psnr(c.frames[k], ref[k]) for k in range(c.n)]
        info = {"bytes": len(data), "bpp": 8.0 * len(data) / (c.width * c.height * c.n), "psnr": float(np.mean(psnrs)),
                "frames": c.n, "first": c.first, "width": c.width, "height": c.height, "fps": str(c.fps),
                "arch": arch, "preset": meta["preset"], "loss": loss, "parameters": n_params, "nonzero": nonzero,
                "weights_bytes": len(symbols), "steps_bytes": 2 * int(steps.size), "epochs": settings.epochs,
                "stages": [f"{n} {e} epochs at lr {r:g}" for n, e, r in settings.stages()], "seed": settings.seed,
                "fit_s": fit_s, "seconds": time.perf_counter() - t0, "events": report.events,
                "resumed_from": report.resumed_from, "device": str(dev)}
        return EncodeResult(data=data, info=info, reference=ref, report=report)


def network(data: bytes, max_pixels: int | None = None) -> tuple[bitstream.VideoHeader, torch.nn.Module]:
    """The network a ``.saicmv`` file holds (parsed, checked, symbols decoded, values loaded)."""
    stream = bitstream.unpack(data, max_pixels)
    h = stream.header
    layout = archs.param_layout(h.arch, h.config, h.frames)
    symbols = compress.decode_symbols(stream.symbols, [shape for _, shape, _ in layout], h.bits,
                                      names=[name for name, _, _ in layout])
    tensors, pos = [], 0
    for (name, shape, groups), sym in zip(layout, symbols):
        tensors.append(compress.QTensor(name=name, shape=shape, groups=groups, steps=stream.steps[pos: pos + groups],
                                        symbols=sym))
        pos += groups
    from ..models.zoo import PrivateRandom

    with torch.device("cpu"), PrivateRandom():  # (its initial weights, replaced below: none of the caller's draws)
        model = archs.build(h.arch, h.config, h.frames)
    compress.load_quantised(model, tensors)
    return h, model


def decode_batches(data: bytes, max_pixels: int | None = None, threads: int | None = None
                   ) -> tuple[bitstream.VideoHeader, Iterator[tuple[int, np.ndarray]]]:
    """The header and a generator of ``(first index, (B, H, W, 3) uint8)`` batches (memory: a few batches)."""
    return _batches(data, max_pixels, threads)


def _batches(data: bytes, max_pixels: int | None, threads: int | None, overlap: bool = False):
    """:func:`decode_batches`; ``overlap``: for saicm's own consumers, which run no PyTorch on the frames (the next
    batches are decoded while they hold one: :func:`saicm.video.nerv.render`)."""
    if threads is not None:
        from ..codec.limits import whole_number

        if whole_number(threads, "threads") < 1:
            raise ArgumentError(f"threads must be 1 or more, got {threads}")
    h, model = network(data, max_pixels)
    gen = ((s, b.numpy()) for s, b in nerv.render(model, h.frames, h.height, h.width, threads=threads,
                                                   overlap=overlap))
    return h, gen


def decode(data: CodedLike, max_pixels: int | None = None, threads: int | None = None) -> Decoded:
    """Every frame of a ``.saicmv`` file (its bytes, its path or a binary file object) at its size and frame
    count, in one array.

    Without ``max_pixels`` the clip may hold at most
    :data:`~saicm.codec.limits.DEFAULT_MAX_VIDEO_ARRAY_PIXELS` pixels in all (768 MiB of frames); a longer clip is
    refused before any frame is made (stream it with :func:`decode_batches` or :func:`decode_file`, or pass
    ``max_pixels``, which sets both limits of the file, on its frame size too). ``threads``: batches of frames
    decoded at once (default: torch's thread count; the frames do not depend on it)."""
    data, path = coded_input(data, ".saicmv file")
    with naming(path):
        return _decode(data, max_pixels, threads)


def _decode(data: bytes, max_pixels: int | None, threads: int | None) -> Decoded:
    from ..codec.limits import DEFAULT_MAX_VIDEO_ARRAY_PIXELS, clip_size_text

    h, gen = _batches(data, max_pixels, threads, overlap=True)
    pixels = h.frames * h.height * h.width
    if max_pixels is None and pixels > DEFAULT_MAX_VIDEO_ARRAY_PIXELS:
        raise FormatError(f"the clip holds {h.frames:,} frames of {h.width}x{h.height} "
                          f"({clip_size_text(h.frames, h.height, h.width)} decoded), more than saicm.video.decode "
                          f"holds in memory by default ({DEFAULT_MAX_VIDEO_ARRAY_PIXELS:,} pixels); stream it with "
                          "decode_batches or decode_file (saicm video decode), or pass max_pixels= if you trust it")
    out = np.empty((h.frames, h.height, h.width, 3), np.uint8)
    for s, b in gen:
        out[s: s + b.shape[0]] = b
    return Decoded(header=h, frames=out)


def decode_file(src: str | os.PathLike, dst: str | os.PathLike, max_pixels: int | None = None,
                threads: int | None = None, progress: bool = False) -> dict:
    """Decode ``src`` to PNG frames in the folder ``dst`` or to a lossless video (``.mkv``/``.avi``/``.nut``:
    FFV1; ``.mp4``: H.264 RGB -qp 0). Nothing is left at ``dst`` on failure. ``max_pixels`` raises both limits of
    the file, its frame size and all its frames together, to that many pixels (for files you trust); ``threads``:
    as for :func:`decode` (``saicm video decode --max-pixels``, ``--threads``). ``progress``: the frames written, on
    a bar or in status lines (:func:`saicm._progress.metered`; the command's)."""
    from .._progress import metered
    from ..codec.image_io import refuse_file_name_for_folder
    from .io import LOSSLESS_VIDEO, write_png_frames, write_video

    suffix = Path(dst).suffix.lower()
    if suffix not in LOSSLESS_VIDEO and names_media_file(dst):  # it would become a folder so named
        raise SaicmError(f"cannot write a {suffix} file: decode to {'/'.join(LOSSLESS_VIDEO)} or to a folder of "
                         "PNG frames (a name without a media suffix)", str(dst))
    from .._fs import refuse_input_as_output

    refuse_input_as_output(src, dst)
    if suffix not in LOSSLESS_VIDEO:
        refuse_file_name_for_folder(dst, "PNG frames")
    t0 = time.perf_counter()
    data, _ = coded_input(src, ".saicmv file")  # (missing, a folder: a FormatError, as decode's)
    with naming(src):
        h, gen = _batches(data, max_pixels, threads, overlap=True)
        gen = metered(gen, h.frames, "video decode", progress)
        dst = Path(dst)
        if dst.suffix.lower() in LOSSLESS_VIDEO:
            write_video(gen, dst, h.width, h.height, h.fps)
            what = "video"
        else:
            write_png_frames(gen, dst, first=h.first, meta={"source": str(src), "fps": str(h.fps), "first": h.first,
                                                             "width": h.width, "height": h.height})
            what = "frames"
    return {"frames": h.frames, "width": h.width, "height": h.height, "fps": str(h.fps), "first": h.first,
            "output": what, "seconds": time.perf_counter() - t0, "bytes": len(data)}
