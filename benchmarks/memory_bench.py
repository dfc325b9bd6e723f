"""Peak memory and time of coding large images: encode and decode each in a fresh process.

    python benchmarks/memory_bench.py --sizes 1024x1024,2048x2048,3840x2160,7680x4320,8192x8192,16384x16384

For each size, a child process builds the image (scikit-image's astronaut tiled
to the size, uint8, in memory), encodes it with the model and writes the
file; a second child decodes that file. Each child reports its peak resident
memory (``ru_maxrss``, the whole process: Python, PyTorch, scikit-image, the
model) and wall time. With ``--cli`` the children are the command line a user
runs instead (``saicm compress IMAGE.png`` and ``saicm decompress``, on
``--threads`` threads, the image written as PNG beforehand; no PyTorch), and
their peak is read from the kernel's accounting of each child (``wait4``).
Images up to 4 MP are transformed in one piece; larger ones by tiles, their
latent coded in strips (``saicm.codec.tiling``). The pixel limit is raised to
each size. Prints a Markdown table; ``-o`` writes JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
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
                        str(threads)], capture_output=True, text=True,
                       # (the engine reads its thread count from SAICM_THREADS: torch.set_num_threads did not reach it)
                       env=dict(os.environ, PYTHONWARNINGS="ignore", SAICM_THREADS=str(threads)))
    if r.returncode != 0:
        return {"error": (r.stderr.strip().splitlines() or ["?"])[-1]}
    return json.loads(r.stdout.strip().splitlines()[-1])


def run_cli(mode, path, image, w, h, model, quality, threads):
    """``saicm compress`` / ``decompress`` as a user runs them: wall time and the child's peak RSS (``wait4``)."""
    out = path if mode == "encode" else path.with_suffix(".decoded.png")
    src = image if mode == "encode" else path
    env = dict(os.environ, PYTHONWARNINGS="ignore", SAICM_THREADS=str(threads), OMP_NUM_THREADS=str(threads))
    cmd = [sys.executable, "-m", "saicm", "compress" if mode == "encode" else "decompress", str(src), "-o", str(out),
           "--max-pixels", str(w * h), "--quiet"] + (["--model", model, "--quality", str(quality)] if mode == "encode" else [])
    t = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
    err = proc.stderr.read().decode(errors="replace")
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    seconds = time.perf_counter() - t
    if proc.returncode != 0:
        return {"error": (err.strip().splitlines() or ["?"])[-1]}
    row = {"seconds": seconds, "peak_rss_mb": usage.ru_maxrss / 1024}
    if mode == "encode":
        import saicm

        size = out.stat().st_size
        row.update(bytes=size, bpp=8 * size / (w * h), format_version=saicm.describe(out.read_bytes())["format_version"])
    else:
        out.unlink(missing_ok=True)
    return row


def astronaut_png(path, w, h) -> None:
    import numpy as np
    import skimage.data
    from PIL import Image

    tile = skimage.data.astronaut()
    img = np.tile(tile, (-(-h // tile.shape[0]), -(-w // tile.shape[1]), 1))[:h, :w]
    Image.fromarray(img).save(path, compress_level=1)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sizes", default="1024x1024,2048x2048,3840x2160,7680x4320")
    p.add_argument("--model", default="mse-hyperprior-n64-v5")
    p.add_argument("--quality", type=int, default=4)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--cli", action="store_true", help="measure `saicm compress/decompress` processes as a user runs "
                   "them (the portable engine) instead of the Python API beside PyTorch")
    p.add_argument("-o", "--output")
    a = p.parse_args(argv)
    rows = []
    tmp = Path(tempfile.mkdtemp(prefix="saicm-mem-"))
    print("| image | MP | format | bpp | encode s | encode peak RSS MB | decode s | decode peak RSS MB |")
    print("|---|---|---|---|---|---|---|---|")
    for size in a.sizes.split(","):
        w, h = (int(v) for v in size.lower().split("x"))
        f = tmp / f"{w}x{h}.saicm"
        if a.cli:
            image = tmp / f"{w}x{h}.png"
            astronaut_png(image, w, h)
            enc = run_cli("encode", f, image, w, h, a.model, a.quality, a.threads)
            dec = run_cli("decode", f, image, w, h, a.model, a.quality, a.threads) if "error" not in enc else {"error": "no file"}
            image.unlink()
        else:
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
                                              "cli": a.cli, "rows": rows}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
