"""Encode and decode time of image models side by side (the context model against the hyperprior it came from).

    python benchmarks/codec_speed.py ../shared/data/photos/test --models mse-hyperprior-n64-v5,runs/ctx/model.safetensors \
        [--size 768x512] [--limit 8] [--quality 4] [--threads 1] [--repeats 3]

Each image is resized to ``--size`` (Lanczos) and coded through the ``.saicm`` API in this process (models loaded
once, untimed); per model and image the best of ``--repeats`` encodes and decodes is kept, and the table gives the
median over the images, the mean bpp (real file sizes) and each model's time relative to the first model's.
Models alternate image by image, so a change in machine load hits all of them alike; the load is printed.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def main(argv=None) -> int:
    import torch
    from PIL import Image

    import saicm
    from saicm.codec.image_io import is_image_file

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("folder")
    p.add_argument("--models", required=True, help="comma-separated model names or weight files")
    p.add_argument("--size", default="768x512")
    p.add_argument("--limit", type=int, default=8)
    p.add_argument("--quality", type=int, default=4)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--repeats", type=int, default=3)
    a = p.parse_args(argv)
    torch.set_num_threads(a.threads)
    w, h = (int(v) for v in a.size.lower().split("x"))
    paths = sorted(f for f in Path(a.folder).iterdir() if is_image_file(f))[: a.limit]
    images = [Image.open(f).convert("RGB").resize((w, h), Image.LANCZOS) for f in paths]
    models = a.models.split(",")
    for m in models:  # load and warm up
        saicm.decompress(saicm.compress(images[0], model=m, quality=a.quality), model=m)
    enc = {m: [] for m in models}
    dec = {m: [] for m in models}
    bpp = {m: [] for m in models}
    load = os.getloadavg()[0]
    for img in images:
        for m in models:
            te = td = float("inf")
            for _ in range(a.repeats):
                t = time.perf_counter()
                data = saicm.compress(img, model=m, quality=a.quality)
                te = min(te, time.perf_counter() - t)
                t = time.perf_counter()
                saicm.decompress(data, model=m)
                td = min(td, time.perf_counter() - t)
            enc[m].append(te)
            dec[m].append(td)
            bpp[m].append(8 * len(data) / (w * h))
    print(f"{len(images)} images at {w}x{h}, quality {a.quality}, {a.threads} thread(s), best of {a.repeats}; "
          f"load average {load:.2f} at the start, {os.getloadavg()[0]:.2f} at the end on {os.cpu_count()} CPUs")
    print("| model | bpp | encode s (median) | decode s (median) | encode × | decode × |")
    print("|---|---|---|---|---|---|")
    e0, d0 = statistics.median(enc[models[0]]), statistics.median(dec[models[0]])
    for m in models:
        e, d = statistics.median(enc[m]), statistics.median(dec[m])
        print(f"| {m} | {statistics.mean(bpp[m]):.4f} | {e:.3f} | {d:.3f} | {e / e0:.2f} | {d / d0:.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
