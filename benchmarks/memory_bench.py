"""Peak memory and time of coding large images: encode and decode each in a fresh process.

    python benchmarks/memory_bench.py --sizes 1024x1024,2048x2048,3840x2160,7680x4320,8192x8192,16384x16384

For each size, a child process builds the image (scikit-image's astronaut tiled
to the size, uint8, in memory), encodes it with the model and writes the
file; a second child decodes that file. Each child reports its peak resident
memory (``ru_maxrss``, the whole process: Python, PyTorch, CompressAI, the
model) and wall time. Images up to 4 MP are coded in one piece (format
version 1); larger ones in strips (version 2, ``saicm.codec.tiling``). The
pixel limit is raised to each size. Prints a Markdown table; ``-o`` writes JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

_CHILD = r"""
import json, resource, sys, time, warnings
warnings.filterwarnings("ignore")
import numpy as np, torch
mode, path, w, h, model, quality, threads = sys.argv[1:8]
w, h, quality, threads = int(w), int(h), int(quality), int(threads)
torch.set_num_threads(threads)
import saicm
t = time.perf_counter()
if mode == "encode":
    import skimage.data
    tile = skimage.data.astronaut()
    reps = (-(-h // tile.shape[0]), -(-w // tile.shape[1]), 1)
    img = np.tile(tile, reps)[:h, :w]
    t = time.perf_counter()
    data = saicm.compress(img, model=model, quality=quality, max_pixels=w * h)
    open(path, "wb").write(data)
    extra = {"bytes": len(data), "bpp": 8 * len(data) / (w * h), "format_version": saicm.describe(data)["format_version"]}
else:
    img = saicm.decompress(open(path, "rb").read(), max_pixels=w * h)
    assert img.size == (w, h)
    extra = {}
seconds = time.perf_counter() - t
print(json.dumps({"seconds": seconds, "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, **extra}))
"""


def run(mode, path, w, h, model, quality, threads):
    r = subprocess.run([sys.executable, "-c", _CHILD, mode, str(path), str(w), str(h), model, str(quality),
                        str(threads)], capture_output=True, text=True, env=dict(os.environ, PYTHONWARNINGS="ignore"))
    if r.returncode != 0:
        return {"error": (r.stderr.strip().splitlines() or ["?"])[-1]}
    return json.loads(r.stdout.strip().splitlines()[-1])


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sizes", default="1024x1024,2048x2048,3840x2160,7680x4320")
    p.add_argument("--model", default="mse-hyperprior-n64-v5")
    p.add_argument("--quality", type=int, default=4)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("-o", "--output")
    a = p.parse_args(argv)
    rows = []
    tmp = Path(tempfile.mkdtemp(prefix="saicm-mem-"))
    print("| image | MP | format | bpp | encode s | encode peak RSS MB | decode s | decode peak RSS MB |")
    print("|---|---|---|---|---|---|---|---|")
    for size in a.sizes.split(","):
        w, h = (int(v) for v in size.lower().split("x"))
        f = tmp / f"{w}x{h}.saicm"
        enc = run("encode", f, w, h, a.model, a.quality, a.threads)
        dec = run("decode", f, w, h, a.model, a.quality, a.threads) if "error" not in enc else {"error": "no file"}
        f.unlink(missing_ok=True)
        row = {"width": w, "height": h, "megapixels": w * h / 1e6, "encode": enc, "decode": dec}
        rows.append(row)

        def cell(d, k, fmt):
            return fmt.format(d[k]) if k in d else d.get("error", "")[:60]

        print(f"| {w}×{h} | {w * h / 1e6:.1f} | {enc.get('format_version', '')} | {cell(enc, 'bpp', '{:.3f}')} | "
              f"{cell(enc, 'seconds', '{:.1f}')} | {cell(enc, 'peak_rss_mb', '{:.0f}')} | "
              f"{cell(dec, 'seconds', '{:.1f}')} | {cell(dec, 'peak_rss_mb', '{:.0f}')} |", flush=True)
    if a.output:
        Path(a.output).write_text(json.dumps({"model": a.model, "quality": a.quality, "threads": a.threads,
                                              "rows": rows}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
