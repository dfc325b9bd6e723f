"""What bfloat16 transforms would buy and cost: a probe for the engine's speed (issue 20), not a codec.

The portable engine runs ``g_a``, ``h_a`` and ``g_s`` in float32 (onnxruntime); the entropy coder's tables come
from the exact integer hyper-synthesis, so the precision of these three decides the rate and the pixels, never
whether a file decodes. CPUs with bfloat16 matrix units (Intel AMX, ``avx512_bf16``) run convolutions several
times faster in bfloat16; onnxruntime's CPU provider has no such kernels (its float16 Conv is no faster than
float32 here), OpenVINO does. This probe (written before, and for, the engines it led to) codes with the engines
``onnx``, ``openvino`` and ``openvino-bf16`` (the same ONNX graphs; OpenVINO's ``INFERENCE_PRECISION_HINT`` f32
or bf16, :mod:`saicm.engine.runtime`), and

1. times encode and decode of ``--limit`` photos resized to 768×512 (best of ``--repeats``, median over the
   photos) for onnxruntime float32, OpenVINO float32 and OpenVINO bfloat16, beside CompressAI's
   ``mbt2018_mean`` with v5's weights (as ``codec_speed.py``), models alternating image by image;
2. codes every photo of ``--data`` at the model's qualities (real files) with the encoder and the decoder each
   in float32 (onnxruntime) or bfloat16 (OpenVINO), and reports the PSNR BD-rate of each pairing against
   float32 at both ends, and how far the bfloat16 decode's pixels are from the float32 decode of the same file.

Needs OpenVINO (``pip install 'saicm[openvino]'``) and PyTorch + CompressAI for the ``mbt2018_mean`` column.

    python benchmarks/bf16_probe.py --data ../shared/data/photos/test --threads 2 -o probe.json
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from engine_probe_rd import emit  # noqa: E402  (beside this file)
from saicm.commands.argtypes import existing  # noqa: E402

#: the probe's names for the engines it compares (``saicm compress --engine``)
ENGINES = {"ort": "onnx", "f32": "openvino", "bf16": "openvino-bf16"}


def _photo(path, size=None):
    from PIL import Image

    img = Image.open(path).convert("RGB")
    return img.resize(size, Image.LANCZOS) if size else img


def timing(paths, model: str, threads: int, repeats: int) -> dict:
    import saicm
    from codec_speed import _compressai_mbt2018_mean

    images = [_photo(p, (768, 512)) for p in paths]
    coders = {m: (lambda img, e=e: saicm.compress(img, model=model, quality=4, engine=e),
                  lambda d, e=e: saicm.decompress(d, model=model, engine=e)) for m, e in ENGINES.items()}
    coders["mbt2018_mean"] = _compressai_mbt2018_mean(4)
    for enc, dec in coders.values():  # load, compile, warm up
        dec(enc(images[0]))
    times = {m: {"encode": [], "decode": []} for m in coders}
    for img in images:
        for m, (enc, dec) in coders.items():
            te = td = float("inf")
            for _ in range(repeats):
                t = time.perf_counter()
                data = enc(img)
                te = min(te, time.perf_counter() - t)
                t = time.perf_counter()
                dec(data)
                td = min(td, time.perf_counter() - t)
            times[m]["encode"].append(te)
            times[m]["decode"].append(td)
    out = {m: {k: statistics.median(v) for k, v in t.items()} for m, t in times.items()}
    ref = out["mbt2018_mean"]["encode"] + out["mbt2018_mean"]["decode"]
    print(f"{len(images)} photos at 768x512, quality 4, {threads} thread(s), best of {repeats}, median; "
          f"load average {os.getloadavg()[0]:.2f} at the end")
    print("| coder | encode s | decode s | encode + decode | against mbt2018_mean |\n|---|---|---|---|---|")
    for m, t in out.items():
        s = t["encode"] + t["decode"]
        print(f"| {m} | {t['encode']:.4f} | {t['decode']:.4f} | {s:.4f} | {ref / s:.2f}× |")
    return out


def rd(paths, model: str, qualities) -> dict:
    """Per pairing (encoder, decoder precision): pooled bpp and mean PSNR per quality; pixel differences."""
    import saicm
    from saicm.eval.bdrate import bd_rate
    from saicm.eval.metrics import psnr

    pairs = {"f32/f32": ("ort", "ort"), "bf16/bf16": ("bf16", "bf16"), "bf16/f32": ("bf16", "ort"),
             "f32/bf16": ("ort", "bf16")}
    curves = {k: {"bpp": [], "psnr": []} for k in pairs}
    diff = {"max": 0, "share_over_1": [], "share_changed": []}
    for q in qualities:
        acc = {k: [0, 0, []] for k in pairs}
        for f in paths:
            img = _photo(f)
            files = {}
            for k, (e, d) in pairs.items():
                if e not in files:
                    files[e] = saicm.compress(img, model=model, quality=q, engine=ENGINES[e])
                out = saicm.decompress(files[e], model=model, engine=ENGINES[d])
                acc[k][0] += 8 * len(files[e])
                acc[k][1] += img.width * img.height
                acc[k][2].append(psnr(img, out))
                if k in ("f32/f32", "f32/bf16"):
                    acc[k].append(np.asarray(out, np.int16))
            a, b = acc["f32/f32"][3], acc["f32/bf16"][3]
            del acc["f32/f32"][3:], acc["f32/bf16"][3:]
            d = np.abs(a - b)
            diff["max"] = max(diff["max"], int(d.max()))
            diff["share_over_1"].append(float((d > 1).mean()))
            diff["share_changed"].append(float((d > 0).mean()))
        for k, (bits, pixels, ps) in acc.items():
            curves[k]["bpp"].append(bits / pixels)
            curves[k]["psnr"].append(float(np.mean(ps)))
        print(f"quality {q}:", {k: (round(c["bpp"][-1], 4), round(c["psnr"][-1], 3)) for k, c in curves.items()},
              file=sys.stderr)
    ref = curves["f32/f32"]
    bd = {k: bd_rate(ref["bpp"], ref["psnr"], c["bpp"], c["psnr"]).percent for k, c in curves.items() if k != "f32/f32"}
    diff = {"max": diff["max"], "share_over_1": float(np.mean(diff["share_over_1"])),
            "share_changed": float(np.mean(diff["share_changed"]))}
    print("| encoder / decoder | PSNR BD-rate against float32 / float32 |\n|---|---|")
    for k, v in bd.items():
        print(f"| {k} | {v:+.2f} % |")
    print(f"bfloat16 decode of float32 files against their float32 decode: largest difference {diff['max']}, "
          f"{100 * diff['share_changed']:.1f} % of values changed, {100 * diff['share_over_1']:.2f} % by more than 1")
    return {"curves": curves, "bd_rate_percent": bd, "pixels_bf16_decode_vs_f32": diff}


def main(argv=None) -> int:
    from saicm.codec.image_io import is_image_file

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", required=True, type=existing, help="folder of photos (photos/test)")
    p.add_argument("--model", default="mse-hyperprior-n64-v5")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--limit", type=int, default=8, help="photos timed")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--no-rd", action="store_true", help="timing only")
    p.add_argument("--no-timing", action="store_true", help="RD only")
    p.add_argument("-o", "--output", help="JSON results (default: standard output)")
    a = p.parse_args(argv)
    os.environ["SAICM_THREADS"] = str(a.threads)
    import torch

    torch.set_num_threads(a.threads)
    import openvino

    from saicm.models import resolve

    paths = sorted(f for f in Path(a.data).iterdir() if is_image_file(f))
    out = {"model": a.model, "threads": a.threads, "openvino": openvino.__version__}
    if not a.no_timing:
        out["timing_s"] = timing(paths[: a.limit], a.model, a.threads, a.repeats)
    if not a.no_rd:
        out["rd"] = rd(paths, a.model, range(1, len(resolve(a.model).config["lambdas"]) + 1))
    emit(out, a.output)
    return 0


if __name__ == "__main__":
    sys.exit(main())
