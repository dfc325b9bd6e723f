"""Speed of ``.saicmv`` coding: decode frames per second, and fitting seconds per epoch, per preset, size, architecture.

Decode: each preset's network (random weights: speed does not depend on their
values) is quantised, entropy-coded and written as a real ``.saicmv`` file; the
benchmark times :func:`saicm.video.decode` on it (parse, entropy decoding,
rendering into uint8 frames, excluding the process start), best of ``--repeat``
runs, with 1 and 2 threads (fixed batches of 4 frames, each single-threaded).
``--png`` also times writing PNG frames (``saicm video decode -o DIR``).

Encode (``--encode-epochs E``): fits a fresh network for E + 1 epochs of the fit
stage (batch 1, one thread, the NeRV loss; ``--compile``: through torch.compile) on
``--frames`` random frames and prints the median seconds per epoch after the first
(which warms up or compiles), and per frame-epoch; an encode's fitting time is about
that times the frames and the epochs of all its stages (``epochs`` · 1.27 with
the default pruning and quantisation-aware stages), plus decoding the reference.

The figures depend on what else runs on the machine, so it prints the load too.

    python benchmarks/video_speed.py                                  # 352x288 and 768x576, all presets
    python benchmarks/video_speed.py --sizes 352x288 --presets s --frames 120 --threads 1,2
    python benchmarks/video_speed.py --archs nerv,hnerv --presets xs,s,m --encode-epochs 3 --frames 30
    python benchmarks/video_speed.py --file clip.saicmv               # a real file instead
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from fractions import Fraction
from pathlib import Path

import numpy as np
import torch

from saicm.commands.argtypes import existing


def make_file(preset: str, width: int, height: int, frames: int, arch: str = "nerv") -> bytes:
    from saicm.video import archs, bitstream, compress

    torch.manual_seed(0)
    cfg = archs.make_config(arch, preset, height, width)
    model = archs.build(arch, cfg, frames)
    if hasattr(model, "embeddings"):
        with torch.no_grad():
            model.embeddings.normal_()
    qts = compress.quantise(model, 8)
    header = bitstream.VideoHeader(arch=arch, config=cfg, frames=frames, width=width, height=height,
                                   fps=Fraction(25), meta={"preset": preset, "loss": "nerv"})
    return bitstream.pack(bitstream.VideoStream(header, np.concatenate([t.steps for t in qts]),
                                                compress.encode_symbols(qts, 8)))


def time_decode(data: bytes, threads: int, repeat: int) -> float:
    from saicm.video.api import decode

    best = float("inf")
    for _ in range(repeat):
        t = time.perf_counter()
        decode(data, threads=threads)
        best = min(best, time.perf_counter() - t)
    return best


def time_fit(preset: str, width: int, height: int, frames: int, arch: str, epochs: int, compile: bool = False) -> float:
    """Seconds per epoch of the fit stage (one thread, batch 1) on random frames: the median epoch after the first
    (which warms up, and with ``compile`` compiles)."""
    import statistics

    from saicm.video import archs
    from saicm.video.train import FitSettings, fit

    torch.manual_seed(0)
    clip = np.random.default_rng(0).integers(0, 256, (frames, height, width, 3), dtype=np.uint8)
    model = archs.build(arch, archs.make_config(arch, preset, height, width), frames, training=True)
    starts = []
    fit(model, clip, FitSettings(epochs=epochs + 1, lr=1e-3, prune=0.0, qat_epochs=0, compile=compile),
        progress=False, fault=lambda stage, epoch, m: starts.append(time.perf_counter()))
    starts.append(time.perf_counter())
    return statistics.median(b - a for a, b in zip(starts[1:], starts[2:]))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", default="352x288,768x576")
    ap.add_argument("--presets", default="xs,s,m,l")
    ap.add_argument("--frames", type=int, default=60)
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--archs", default="nerv", help="comma-separated: nerv, hnerv")
    ap.add_argument("--encode-epochs", type=int, default=0,
                    help="also time fitting for this many epochs per case (one thread)")
    ap.add_argument("--compile", action="store_true", help="fit through torch.compile (saicm video encode --compile)")
    ap.add_argument("--file", type=existing, help="time this .saicmv file instead of synthetic ones")
    ap.add_argument("--png", action="store_true", help="also time writing PNG frames (saicm video decode -o DIR)")
    a = ap.parse_args()
    threads = [int(t) for t in a.threads.split(",")]
    torch.set_num_threads(max(threads))
    print(f"load average {os.getloadavg()[0]:.2f} {os.getloadavg()[1]:.2f} on {os.cpu_count()} CPUs; "
          f"torch {torch.__version__}")
    cases = []
    if a.file:
        cases.append((Path(a.file).name, Path(a.file).read_bytes(), None))
    else:
        for size in a.sizes.split(","):
            w, h = (int(v) for v in size.lower().split("x"))
            for arch in a.archs.split(","):
                for p in a.presets.split(","):
                    cases.append((f"{arch} {p} {w}x{h}", make_file(p, w, h, a.frames, arch), (arch, p, w, h)))
    from saicm.video.api import describe, decode_file

    print(f"{'case':>22} {'params':>9} {'MMAC/fr':>8} " + " ".join(f"{f'{t} thr fps':>10}" for t in threads)
          + (f" {'PNG fps':>8}" if a.png else "")
          + (f" {'fit s/epoch':>11} {'ms/frame-epoch':>14}" if a.encode_epochs else ""))
    for name, data, spec in cases:
        d = describe(data)
        fps = [d["frames"] / time_decode(data, t, a.repeat) for t in threads]
        line = (f"{name:>22} {d['parameters']:>9,} {d['macs_per_frame'] / 1e6:>8.0f} "
                + " ".join(f"{v:>10.1f}" for v in fps))
        if a.png:
            with tempfile.TemporaryDirectory() as tmp:
                src = Path(tmp) / "x.saicmv"
                src.write_bytes(data)
                t = time.perf_counter()
                decode_file(src, Path(tmp) / "frames")
                line += f" {d['frames'] / (time.perf_counter() - t):>8.1f}"
        if a.encode_epochs and spec is not None:
            torch.set_num_threads(1)
            sec = time_fit(spec[1], spec[2], spec[3], d["frames"], spec[0], a.encode_epochs, a.compile)
            torch.set_num_threads(max(threads))
            line += f" {sec:>11.2f} {1000 * sec / d['frames']:>14.1f}"
        print(line, flush=True)


if __name__ == "__main__":
    main()
