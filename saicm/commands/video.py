"""``saicm video``: NeRV / SA-NeRV clips as ``.saicmv`` files (encode, decode, frames, presets).

``saicm info FILE.saicmv`` also works (``saicm.codec.pipeline.describe`` dispatches on the magic).
"""

from __future__ import annotations

import argparse

from .argtypes import QUIET_HELP, learning_rate, nonneg, nonneg_float, positive, share, whole


def cmd_encode(a: argparse.Namespace) -> int:
    from pathlib import Path

    from ..video.api import encode

    from ..device import launcher, resolve_device

    resolve_device(a.device, launcher()[2])  # (a device that is not there, said as --device: the API says device=)
    ckpt = Path(a.checkpoint) if a.checkpoint else Path(a.output + ".ckpt")
    try:
        r = encode(a.clip, a.output, frames=a.frames, size=a.size, preset=a.preset, arch=a.arch, loss=a.loss,
                   masks=a.masks,
                   epochs=a.epochs, lr=a.lr, batch=a.batch, prune=a.prune, prune_epochs=a.prune_epochs,
                   qat_epochs=a.qat_epochs, bits=a.bits, seed=a.seed, edge_weight=a.edge_weight, beta=a.beta,
                   checkpoint=ckpt, resume=a.resume,
                   keep_checkpoint=a.keep_checkpoint, ckpt_every=a.ckpt_every, device=a.device, progress=not a.quiet,
                   max_pixels=a.max_pixels, compile=a.compile)
    except KeyboardInterrupt:
        if ckpt.is_file():  # the fit's last checkpoint (every --ckpt-every epochs) is where it goes on
            raise KeyboardInterrupt(f"interrupted: the encode's last checkpoint is {ckpt}; go on with the same "
                                    "command and --resume") from None
        raise
    except (MemoryError, RuntimeError) as e:
        from .._process import is_out_of_memory

        if not is_out_of_memory(e):
            raise
        # (a clip of 795 frames at 768x576 read into 5 GB: NumPy's _ArrayMemoryError, a traceback of ten frames)
        from ..errors import SaicmError

        raise SaicmError(f"out of memory encoding the clip ({str(e).strip()[:120]}): reduce the frames held at once "
                         "(--frames A:B, fewer), their size (--size WxH) or --batch, or a smaller --preset") from None
    i = r.info
    if i.get("rank"):  # torchrun: rank 0 reports
        return 0
    for e in i["events"]:
        print(f"  {e}")
    print(f"{a.output}: {i['bytes']} bytes, {i['bpp']:.4f} bpp, PSNR {i['psnr']:.2f} dB ({i['frames']} frames "
          f"{i['width']}x{i['height']} from frame {i['first']}; {i['arch']} {i['preset']} {i['loss']}, "
          f"{i['parameters']:,} "
          f"parameters, {i['nonzero'] / max(i['parameters'], 1):.0%} non-zero; {i['seconds']:.0f} s)")
    return 0


def cmd_decode(a: argparse.Namespace) -> int:
    from ..video.api import decode_file

    i = decode_file(a.input, a.output, max_pixels=a.max_pixels, threads=a.threads, progress=True)
    print(f"{a.output}: {i['frames']} frames {i['width']}x{i['height']} ({i['output']}, {i['seconds']:.2f} s, "
          f"{i['frames'] / max(i['seconds'], 1e-9):.1f} frames/s)")
    return 0


def cmd_frames(a: argparse.Namespace) -> int:
    from .._progress import metered
    from ..video.io import clip_length, iter_clip, write_png_frames

    info, first, gen = iter_clip(a.clip, a.frames, a.size, a.max_pixels)
    batches = metered(((k, f[None]) for k, f in enumerate(gen)), clip_length(a.clip, a.frames, info.stream),
                      "video frames")
    names = write_png_frames(batches, a.output, first=first, compress_level=6,
                             meta={"source": str(a.clip), "fps": str(info.fps), "first": first,
                                   "width": info.width, "height": info.height})
    print(f"{a.output}: {len(names)} frames {info.width}x{info.height} ({names[0].name} .. {names[-1].name}); "
          f"edge masks for --loss sa-nerv: saicm masks {a.output} -o MASKS --alpha 0.48 --edge-width 3")
    return 0


def cmd_presets(a: argparse.Namespace) -> int:
    from ..video import archs
    from ..video.api import PRESET_LR
    from ..video.io import parse_size
    from ..video.nerv_config import DEFAULT_PRESET

    w, h = parse_size(a.size) or (352, 288)
    n = a.frames
    for arch in archs.NAMES:
        mod = archs.module(arch)
        print(f"{arch} presets for {n} frames of {w}x{h} (parameters, multiply-adds per frame, grid, strides, "
              f"default lr):")
        for name in mod.PRESETS:
            cfg = mod.make_config(name, h, w)
            p, m = mod.count(cfg, n)
            default = " (default)" if arch == archs.DEFAULT and name == DEFAULT_PRESET else ""
            extra = f"  embedding {cfg['embed']}x{cfg['grid'][0]}x{cfg['grid'][1]} per frame" if "embed" in cfg else ""
            print(f"  {name:3s}{default:10s} {p:>10,} parameters {m / 1e6:>8.0f} M MAC/frame  grid {cfg['grid'][0]}x"
                  f"{cfg['grid'][1]}  strides {cfg['strides']}  channels {cfg['channels']}  lr "
                  f"{PRESET_LR[name]:g}{extra}")
    return 0


def register(sub) -> None:
    from ..codec.limits import DEFAULT_MAX_PIXELS, DEFAULT_MAX_VIDEO_PIXELS, pixels_text
    from ..device import DEVICE_HELP
    from ..video import archs
    from ..video.nerv_config import DEFAULT_PRESET, PRESETS

    frame_limit, clip_limit = pixels_text(DEFAULT_MAX_PIXELS), pixels_text(DEFAULT_MAX_VIDEO_PIXELS)

    v = sub.add_parser("video", help="NeRV / HNeRV / SA-NeRV video coding: encode, decode, frames, presets",
                       description="A clip coded as a network that maps a frame index to the frame (NeRV), "
                       "pruned, quantised and entropy-coded into a .saicmv file (HNeRV: a per-frame embedding instead of the frame "
                       "index). SA-NeRV trains the same network "
                       "with the NeRV loss plus the same loss on edge-masked frames. See docs/video.md.")
    vs = v.add_subparsers(dest="video_command", metavar="COMMAND")
    vs.required = True

    e = vs.add_parser("encode", help="fit a network to a clip and write a .saicmv file (-o)",
                      description="Read a clip (any video ffmpeg reads, or a folder of frames), fit the network on "
                      "the chosen device with a progress bar (epoch, loss, PSNR), checkpointing atomically; then "
                      "prune (global magnitude, fine-tuned), quantise (per output channel) with quantisation-aware "
                      "fine-tuning, entropy-code the weights and write the file. A collapse in PSNR mid-run rolls "
                      "back to the last good checkpoint with a lower learning rate.")
    e.add_argument("clip", help="video file (.264, .avi, .mp4, ...) or folder of frames")
    e.add_argument("-o", "--output", required=True, help=".saicmv file to write")
    e.add_argument("--frames", metavar="A:B", help="frames A..B-1 (0-based; A: or :B allowed); default all")
    e.add_argument("--size", metavar="WxH", help="resize the frames (ffmpeg's scale filter, Lanczos)")
    e.add_argument("--preset", default=DEFAULT_PRESET, choices=list(PRESETS),
                   help=f"network size: more parameters, more bytes, better frames (default {DEFAULT_PRESET}; "
                   "'saicm video presets' lists them)")
    e.add_argument("--arch", default=archs.DEFAULT, choices=list(archs.NAMES),
                   help="nerv (frame index → network → frame; default) or hnerv (a small coded embedding per frame, "
                   "computed from the frame while fitting, → the same upsampling blocks); docs/video.md")
    e.add_argument("--loss", default="nerv", choices=["nerv", "sa-nerv"],
                   help="nerv (β·L1 + (1-β)·(1-SSIM), β 0.7) or sa-nerv (plus the same on edge-masked frames; "
                   "needs --masks)")
    e.add_argument("--edge-weight", type=nonneg_float, help="sa-nerv: weight of the edge-masked term (default 1)")
    e.add_argument("--beta", type=share, help="the loss's L1 share β in β·L1 + (1-β)·(1-SSIM) (default 0.7)")
    e.add_argument("--masks", metavar="DIR", help="per-frame edge masks frame_NNNNNN.png (saicm masks --alpha 0.48 "
                   "--edge-width 3 on the folder 'saicm video frames' writes, as saicm eval's sa-nerv makes them; "
                   "3-pixel edges measured better than 1)")
    e.add_argument("--epochs", type=positive, help="epochs of the main fit (default 300; pruning fine-tuning "
                   "takes epochs/6 more, quantisation-aware fine-tuning epochs/10)")
    e.add_argument("--lr", type=learning_rate, help="learning rate (default per preset: 'saicm video presets')")
    e.add_argument("--batch", type=positive, help="frames per step (default 1)")
    e.add_argument("--prune", type=share, help="share of weights set to zero by magnitude (default 0.4; 0: none)")
    e.add_argument("--prune-epochs", type=nonneg, help="fine-tuning epochs after pruning (default epochs/6, at least "
                   "1; 0: prune without fine-tuning)")
    e.add_argument("--qat-epochs", type=nonneg, help="quantisation-aware fine-tuning epochs (default epochs/10; "
                   "0: none)")
    e.add_argument("--bits", type=whole, choices=range(2, 9), metavar="{2..8}", help="quantisation bits (default 8)")
    e.add_argument("--seed", type=whole, default=0, help="initialisation and frame-order seed (default 0)")
    e.add_argument("--resume", action="store_true", help="continue from the checkpoint of a killed encode")
    e.add_argument("--checkpoint", help="checkpoint path (default OUTPUT.ckpt)")
    e.add_argument("--keep-checkpoint", action="store_true", help="keep the checkpoint after success")
    e.add_argument("--ckpt-every", type=positive, help="checkpoint every N epochs (default 10)")
    e.add_argument("--device", default="auto", help=DEVICE_HELP)
    e.add_argument("--compile", action="store_true", help="fit through torch.compile: the first step compiles (~20 s), "
                   "later epochs run 1.1-1.4x faster on CPU (measured at 352x288, one thread: xs 1.40x, s 1.33x, m 1.13x); the "
                   "same fit, checkpoints and --resume; needs a C++ compiler (default off)")
    e.add_argument("--max-pixels", type=positive, metavar="N", help=f"refuse clips of more than N pixels in all "
                   f"frames together (default {clip_limit}); raise it for longer or larger clips")
    e.add_argument("-q", "--quiet", action="store_true", help=QUIET_HELP)
    e.set_defaults(func=cmd_encode)

    d = vs.add_parser("decode", help="decode a .saicmv file to PNG frames or a lossless video",
                      description="Decode every frame at the coded size (the encode's --size, if any): PNG frames "
                      "frame_NNNNNN.png (numbered as in the source clip) into a new folder, or a lossless video "
                      "(.mkv/.avi/.nut: FFV1; .mp4: H.264 RGB -qp 0). Frames are decoded in fixed batches, each "
                      "single-threaded, in parallel: the output does not depend on the thread count.")
    d.add_argument("input", help=".saicmv file")
    d.add_argument("-o", "--output", required=True, help="folder (absent or empty) or .mkv/.avi/.nut/.mp4 file")
    d.add_argument("--threads", type=positive, help="batches decoded at once (default: torch's thread count)")
    d.add_argument("--max-pixels", type=positive, metavar="N", help=f"raise both limits of a file: its frame size ({frame_limit} "
                   f"pixels) and all its frames together ({clip_limit}), to N pixels; for files you trust")
    d.set_defaults(func=cmd_decode)

    f = vs.add_parser("frames", help="extract frames as PNGs (for saicm masks and --masks)",
                      description="Write frames A..B-1 of a clip as frame_NNNNNN.png (NNNNNN = index in the clip) "
                      "into a new folder, with frames.json. 'saicm masks DIR -o MASKS --alpha 0.48 --edge-width 3' "
                      "then makes one mask per frame with the same name (the masks saicm eval's sa-nerv makes), which "
                      "'saicm video encode --loss sa-nerv --masks MASKS' reads.")
    f.add_argument("clip", help="video file")
    f.add_argument("-o", "--output", required=True, help="folder to create (absent or empty)")
    f.add_argument("--frames", metavar="A:B", help="frames A..B-1 (default all)")
    f.add_argument("--size", metavar="WxH", help="resize (use the same --size for encode)")
    f.add_argument("--max-pixels", type=positive, metavar="N", help=f"refuse clips of more than N pixels in all "
                   f"frames together (default {clip_limit}); raise it for longer or larger clips")
    f.set_defaults(func=cmd_frames)

    p = vs.add_parser("presets", help="parameter counts and work of each preset for a frame size")
    p.add_argument("--size", metavar="WxH", default="352x288", help="frame size (default 352x288)")
    p.add_argument("--frames", type=positive, default=30, metavar="N",
                   help="clip length (default 30; HNeRV stores an embedding per frame)")
    p.set_defaults(func=cmd_presets)
