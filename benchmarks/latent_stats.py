"""How much a context model could still find in a hyperprior's latent: estimated bits and residual correlations.

    python benchmarks/latent_stats.py ../shared/data/photos/test --models mse-hyperprior-n64-v5,ctx.safetensors \
        --qualities 1,4,7 --limit 8

Per model and quality, over the images (cropped to multiples of 64): the **estimated** bits of y and z
(−log2 of the model's likelihoods on the rounded latents: estimates, not file sizes) and, of y's normalised
residual r = (y − μ) / σ under the model's own entropy parameters (for a context model, the ones its contexts
give), the correlation of r between horizontal neighbours, between adjacent channels, and of |r| between
horizontal neighbours. A linear correlation near zero says the means leave little for a spatial or channel
context to predict; a correlation of |r| says the scales could still be sharpened locally.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from saicm.commands.argtypes import existing


def _corr(a, b) -> float:
    a, b = a.flatten().double(), b.flatten().double()
    a, b = a - a.mean(), b - b.mean()
    return float((a * b).sum() / (a.norm() * b.norm()).clamp_min(1e-12))


def stats(model, x, quality: int) -> dict:
    import torch

    with torch.no_grad():
        lat = model.analyse(x, quality)
        y, z = lat["y"], lat["z"]
        med = model._z_medians()
        z_hat = torch.round(z - med) + med
        params = model.h_s(z_hat)
        if hasattr(model, "_context_latent"):
            _, scales, means = model._context_latent(y, params)
        else:
            scales, means = params.chunk(2, 1)
        gc, eb = model.gaussian_conditional, model.entropy_bottleneck
        y_hat = torch.round(y - means) + means
        y_lik = gc.likelihood_lower_bound(gc._likelihood(y_hat, gc.lower_bound_scale(scales), means))
        z_lik, _, _ = eb._likelihood(z_hat.transpose(0, 1).reshape(z.size(1), 1, -1))
        z_lik = eb.likelihood_lower_bound(z_lik)
        r = ((y - means) / gc.lower_bound_scale(scales))[0]
        return {"y_bits": float(-torch.log2(y_lik).sum()), "z_bits": float(-torch.log2(z_lik).sum()),
                "corr_h": _corr(r[:, :, :-1], r[:, :, 1:]), "corr_c": _corr(r[:-1], r[1:]),
                "corr_abs_h": _corr(r[:, :, :-1].abs(), r[:, :, 1:].abs())}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("images", type=existing, help="image folder")
    ap.add_argument("--models", required=True, help="comma-separated model names or weight files")
    ap.add_argument("--qualities", default="1,4,7")
    ap.add_argument("--limit", type=int, default=8, help="first N images (sorted by name)")
    ap.add_argument("--json", help="also write the table as JSON")
    a = ap.parse_args(argv)

    import torch
    from PIL import Image

    from saicm.codec.image_io import is_image_file
    from saicm.models.zoo import load_model

    torch.set_num_threads(1)
    files = sorted(p for p in Path(a.images).iterdir() if is_image_file(p))[: a.limit]
    if not files:
        print(f"error: no images in {a.images}", file=sys.stderr)
        return 2
    xs = []
    for f in files:
        arr = np.array(Image.open(f).convert("RGB"))
        h, w = arr.shape[0] // 64 * 64, arr.shape[1] // 64 * 64
        xs.append(torch.from_numpy(arr[:h, :w]).permute(2, 0, 1)[None].float() / 255)
    rows = []
    for name in a.models.split(","):
        model = load_model(name)[0].eval()
        for q in (int(v) for v in a.qualities.split(",")):
            per = [stats(model, x, q) for x in xs]
            row = {"model": name, "quality": q, "images": len(xs),
                   "y_bits_est": sum(p["y_bits"] for p in per), "z_bits_est": sum(p["z_bits"] for p in per),
                   **{k: float(np.mean([p[k] for p in per])) for k in ("corr_h", "corr_c", "corr_abs_h")}}
            rows.append(row)
    base = {r["quality"]: r for r in rows if r["model"] == rows[0]["model"]}
    print("| model | quality | y kbit (est.) | z kbit (est.) | y vs first model | corr r (horiz / chan) | corr abs(r) horiz |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        rel = 100 * (r["y_bits_est"] / base[r["quality"]]["y_bits_est"] - 1)
        print(f"| {r['model']} | {r['quality']} | {r['y_bits_est'] / 1e3:.1f} | {r['z_bits_est'] / 1e3:.1f} | "
              f"{rel:+.2f} % | {r['corr_h']:.3f} / {r['corr_c']:.3f} | {r['corr_abs_h']:.3f} |")
    if a.json:
        Path(a.json).write_text(json.dumps({"images": [f.name for f in files], "rows": rows}, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
