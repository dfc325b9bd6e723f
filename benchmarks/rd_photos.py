"""Human-vision RD benchmark on the photo test split, and speed next to CompressAI.

Prints: RD points (bpp from bytes written, PSNR) of a saicm model, JPEG and
WebP; BD-rate (PSNR) of saicm against JPEG and WebP; seconds to encode and
decode one 768×512 image with the saicm model and with CompressAI's
``mbt2018_mean`` of the same N/M (random weights), measured in this same run.
The saicm model is timed on ``--engine`` (default ``auto``: the portable engine
for the models it supports; ``compressai`` for the PyTorch path of saicm 0.1–0.3).

    python benchmarks/rd_photos.py --data ../shared/data/photos/test --out DIR [--model NAME] [--refine STEPS]

Files in DIR: ``DATASET_CODEC.json`` per codec and ``timing_768x512.json``, with
DATASET the data folder's name, prefixed with its parent's for a split folder
(``photos/test`` → ``photos-test``). ``--out benchmarks/results/photos`` overwrites
the committed files.

With ``--refine STEPS`` the model is swept twice: plain, and with encoder-side
latent refinement (``saicm compress --refine``); both get BD-rates.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from saicm.commands.argtypes import existing
from saicm.engine import ENGINES
from saicm.eval import results
from saicm.eval.bdrate import BDRateError, bd_rate
from saicm.eval.codecs import get_codec
from saicm.eval.rd import load_rgb_folder, rd_sweep
from saicm.models.zoo import default_model_name

SPLITS = ("train", "val", "test")


def dataset_tag(folder: str | Path) -> str:
    """The data folder's name for file names: ``photos/test`` → ``photos-test``, ``bsds500_test`` → itself."""
    p = Path(folder).resolve()
    return f"{p.parent.name}-{p.name}" if p.name in SPLITS else p.name


def timing(model_name: str | None, image: Image.Image, repeats: int, refine: int = 0, engine: str = "auto") -> dict:
    """Median seconds over ``repeats`` for saicm (on ``engine``) and CompressAI mbt2018_mean (same N, M).

    The contenders run round-robin (one call of each per round, after one warm-up
    call each), so drift in the machine's speed hits all of them alike.
    """
    import saicm
    from compressai.models import MeanScaleHyperprior
    from saicm.engine.model import supports
    from saicm.engine.parallel import threads

    net, info = saicm.load_model(model_name)
    ref = MeanScaleHyperprior(N=net.config["N"], M=net.config["M"]).eval()
    ref.update(force=True)
    x = torch.from_numpy(np.array(image)).permute(2, 0, 1)[None].float() / 255
    data = saicm.compress(image, model=info.path, quality=4, engine=engine)
    with torch.inference_mode():
        enc = ref.compress(x)
    jobs = {
        "saicm_encode_s": lambda: saicm.compress(image, model=info.path, quality=4, engine=engine),
        "saicm_decode_s": lambda: saicm.decompress(data, model=info.path, engine=engine),
        "mbt2018_mean_encode_s": lambda: ref.compress(x),
        "mbt2018_mean_decode_s": lambda: ref.decompress(enc["strings"], enc["shape"]),
    }
    times: dict[str, list] = {k: [] for k in jobs}
    with torch.inference_mode():
        for rnd in range(repeats + 1):
            for k, fn in jobs.items():
                t = time.perf_counter()
                fn()
                if rnd:  # round 0 is the warm-up
                    times[k].append(time.perf_counter() - t)
    out = {k: statistics.median(v) for k, v in times.items()}
    if refine:  # after the comparison: its autograd work would disturb the round-robin
        ts = []
        for _ in range(3):
            t = time.perf_counter()
            saicm.compress(image, model=info.path, quality=4, refine=refine, engine=engine)
            ts.append(time.perf_counter() - t)
        out["refine_steps"] = refine
        out["saicm_refine_encode_s"] = statistics.median(ts)
    used = engine if engine != "auto" else ("onnx" if supports(info) else "compressai")
    out["engine"] = used
    out["saicm_version"] = saicm.__version__
    out["threads"] = torch.get_num_threads() if used == "compressai" else threads()  # the saicm engine's
    out["torch_threads"] = torch.get_num_threads()  # CompressAI's mbt2018_mean
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", required=True, type=existing,
                    help="folder of test images (e.g. ../shared/data/photos/test)")
    ap.add_argument("--model", default=None, help="saicm model (default: the shipped MSE model)")
    ap.add_argument("--out", required=True,
                    help="folder for the results JSON files (benchmarks/results/photos overwrites the committed ones)")
    ap.add_argument("--repeats", type=int, default=15,
                    help="timing rounds (median reported; this 2-core machine moves single runs by ±15 %%, default 15)")
    ap.add_argument("--refine", type=int, default=0, metavar="STEPS",
                    help="also sweep the model with STEPS of encoder-side latent refinement (compress --refine)")
    ap.add_argument("--engine", default="auto", choices=ENGINES,
                    help="the engine the saicm model is timed on (default auto; compressai: the PyTorch path)")
    ap.add_argument("--no-timing", action="store_true")
    a = ap.parse_args(argv)

    images = load_rgb_folder(a.data)
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    tag = dataset_tag(a.data)
    runs = {}
    model = a.model or default_model_name()
    learned = [f"saicm:{model}"] + ([f"saicm:{model},refine={a.refine}"] if a.refine else [])
    for spec in learned + ["jpeg", "webp"]:
        codec = get_codec(spec)
        res = rd_sweep(codec, images, dataset=str(a.data))
        results.save(res, out / f"{tag}_{codec.name}.json")
        runs[codec.name] = res

    print(f"\nRD points on {a.data} ({len(images)} images; bpp from bytes written, mean over images)")
    print(f"{'codec':<28} {'quality':>7} {'bpp':>8} {'PSNR dB':>8}")
    for name, res in runs.items():
        for p in res["points"]:
            print(f"{name:<28} {p['quality']:>7} {p['bpp']:>8.4f} {p['psnr']:>8.2f}")

    names = list(runs)[: len(learned)]
    print("\nBD-rate (PSNR, PCHIP on log-rate over the overlapping PSNR interval); negative = saicm needs fewer bits")
    for ours, base in [(o, b) for o in names for b in ("jpeg", "webp")]:
        try:
            r = bd_rate(*results.curve(runs[base], "psnr"), *results.curve(runs[ours], "psnr"), envelope=True)
            print(f"  {ours} vs {base:<5} {r.percent:+7.1f}%   over {r.interval[0]:.2f}–{r.interval[1]:.2f} dB")
            for curve_name, rate, val in r.dropped:
                who = base if curve_name == "reference" else ours
                print(f"    not monotone: dropped {who} point {rate:.4f} bpp / {val:.2f} dB (a cheaper point is better)")
        except BDRateError as e:
            print(f"  {ours} vs {base}: no BD-rate ({e})")

    if not a.no_timing:
        first = next(iter(images.values()))
        img = first.resize((768, 512), Image.BICUBIC)
        t = timing(model, img, a.repeats, a.refine, a.engine)
        ours = names[0]
        (out / "timing_768x512.json").write_text(json.dumps(t, indent=1) + "\n")
        print(f"\nSeconds for one 768x512 image (median of {a.repeats}, saicm {t['engine']} on {t['threads']} threads, "
              f"mbt2018_mean on {t['torch_threads']}, same run):")
        print(f"  {'':<22} {'encode':>8} {'decode':>8}")
        print(f"  {ours:<22} {t['saicm_encode_s']:>8.3f} {t['saicm_decode_s']:>8.3f}")
        if a.refine:
            print(f"  {'  --refine ' + str(a.refine):<22} {t['saicm_refine_encode_s']:>8.3f} {'(same)':>8}")
        print(f"  {'compressai mbt2018_mean':<22} {t['mbt2018_mean_encode_s']:>8.3f} {t['mbt2018_mean_decode_s']:>8.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
