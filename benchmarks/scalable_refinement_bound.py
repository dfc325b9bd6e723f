"""How cheap can a human layer be that *refines the machine layer's own latent*? An ESTIMATE (issue 15).

The shipped human layer codes a second, learned latent and adds it to the base latent. This benchmark asks
whether refining the base latent itself would cost less, without training anything: four refinements of the
frozen base's latent, each coded with the base's own Gaussians, **their bits estimated from likelihoods**
(−Σ log₂ p; no bitstream is written; the machine layer's bytes are real, from the base's file):

``nested-kK``
    every quantisation cell of the machine layer (the base at machine quality ``--machine``) split into K equal
    sub-cells (K odd: the middle sub-cell holds the mean); the sub-cell coded with the machine layer's Gaussian
    truncated to the cell. No side information: the decoder has the Gaussian and the cell from the machine layer.
``nestedz-kK``
    as ``nested-kK``, but the sub-cell coded with the Gaussian of the base's own hyperprior at the quality Q whose
    step is nearest to 1/K of the machine layer's (its hyper-latent's real bytes added), truncated to the cell.
``nested-k3-sS``, ``nestedz-k3-sS``
    the same with K = 3 on the first S slices of 32 channels only (the others keep the machine layer's values):
    rate points between the machine layer and K = 3.
``partition-qQ``
    the cell split by the base's own quantisation grid at quality Q (finer), the piece coded as above.
``conditional-qQ``
    the base's own file at quality Q (its hyper-latent's real bytes), its latent coded with quality Q's
    Gaussians truncated to the machine layer's cell: the human image is the base's decode at quality Q.

Each variant is written as one results file (the project's schema; ``codec`` starts with ``estimate:``,
``codec_config.estimate`` says how the bits were counted; the machine layer alone is the first point, a human
layer that sends nothing), so ``saicm bdrate`` and ``saicm plot`` read them. One thread, about 2 minutes per
machine quality for the 24 photos of photos/test.

    python benchmarks/scalable_refinement_bound.py ../shared/data/photos/test --machine 4 -o OUT_DIR
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from saicm.codec.image_io import IMAGE_SUFFIXES
from saicm.codec.pipeline import compress, prepare
from saicm.commands.argtypes import existing
from saicm.eval.metrics import psnr
from saicm.eval.results import new_result, save
from saicm.models.zoo import load_model

NOTE = ("human-layer bits estimated from likelihoods (-sum log2 p, each p floored at 2^-16), machine layer and "
        "hyper-latent bytes real; no human-layer bitstream written")


def log_mass(lo: torch.Tensor, hi: torch.Tensor) -> torch.Tensor:
    """log P(lo < X < hi) for X ~ N(0, 1), accurate in both tails (computed on the lower side)."""
    flip = (lo + hi) > 0
    a, b = torch.where(flip, -hi, lo), torch.where(flip, -lo, hi)
    lb, la = torch.special.log_ndtr(b), torch.special.log_ndtr(a)
    return lb + torch.log1p(-torch.exp((la - lb).clamp(max=-1e-12)))


def centroid(lo: torch.Tensor, hi: torch.Tensor, sigma: torch.Tensor, fallback: torch.Tensor) -> torch.Tensor:
    """E[X | lo < X < hi] for X ~ N(0, σ) (``fallback`` where it is not finite or leaves the interval)."""
    a, b = lo / sigma, hi / sigma
    num = torch.exp(-0.5 * a ** 2) - torch.exp(-0.5 * b ** 2)
    mass = torch.exp(log_mass(a, b)) * math.sqrt(2 * math.pi)
    c = sigma * num / mass.clamp(min=1e-300)
    ok = torch.isfinite(c) & (c >= lo) & (c <= hi)
    return torch.where(ok, c, fallback)


def bits_of(logp: torch.Tensor, active: torch.Tensor, floor: float = 2.0 ** -16) -> float:
    return float(-torch.where(active, logp.clamp(min=math.log(floor)), torch.zeros_like(logp)).sum() / math.log(2))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("dataset", type=existing, help="folder of images (photos/test)")
    ap.add_argument("--base", default="saicm-regions-a048-off02-n64-v5", help="the machine layer's model")
    ap.add_argument("--machine", type=int, required=True, help="machine-layer quality")
    ap.add_argument("--k", default="3,5,7,9", help="sub-cells per cell for nested-kK (odd)")
    ap.add_argument("--slices", default="1,2,3", help="partial refinements nested[z]-k3-sS: slices of 32 channels")
    ap.add_argument("-o", "--out", required=True, help="folder for the results files")
    a = ap.parse_args()
    torch.set_num_threads(1)
    net, info = load_model(a.base)
    net.eval()
    qb = a.machine
    finer = list(range(qb + 1, net.num_qualities + 1))
    ks = [int(v) for v in a.k.split(",") if v]
    if any(k % 2 == 0 for k in ks):
        ap.error("--k takes odd counts (an even split puts a boundary on the mean of every zero cell)")
    slices = [int(v) for v in a.slices.split(",") if v]
    variants = ([f"nested-k{k}" for k in ks] + [f"nested-k3-s{n}" for n in slices] + [f"nestedz-k{k}" for k in ks]
                + [f"nestedz-k3-s{n}" for n in slices] + [f"partition-q{q}" for q in finer]
                + [f"conditional-q{q}" for q in finer])
    images = sorted(p for p in Path(a.dataset).iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    per = {v: {} for v in variants}
    machine_pts = {}
    lb = float(net.gaussian_conditional.lower_bound_scale.bound)
    with torch.inference_mode():
        gains = [net._gains(net._qindex(q, 1)) for q in range(1, net.num_qualities + 1)]
        # the synthesis reads ŷ·g⁻¹, and g·g⁻¹ is not 1: a refined value takes the domain of the quality whose step
        # it has (for nested-kK the quality whose mean step ratio to the machine layer's is nearest to K)
        ratio = [float((gains[q - 1][0] / gains[qb - 1][0]).mean()) for q in range(1, net.num_qualities + 1)]
        for path in images:
            im = Image.open(path).convert("RGB")
            W, H = im.size
            orig = np.asarray(im)
            machine = compress(im, model=info.path, quality=qb)
            _, x, _, _ = prepare(im, net.multiple, None, 0)
            g, ig = (t.double() for t in gains[qb - 1])
            y0 = net.g_a(x)
            yb = y0 * g.float()
            zb = net.h_a(yb)
            zb_hat = net.entropy_bottleneck.quantize(zb, "dequantize", net._z_medians())
            s, mu = (t.double() for t in net.h_s(zb_hat).chunk(2, 1))
            s = s.clamp(min=lb)
            yb = yb.double()
            c = torch.round(yb - mu)          # the machine layer's symbols (cell c, relative to the mean)
            u = yb - mu - c + 0.5             # position in the cell, [0, 1]

            def image_of(latent: torch.Tensor) -> np.ndarray:
                xh = net.g_s(latent.float()).clamp(0, 1)[0, :, :H, :W]
                return (xh.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)

            def record(v: str, bits: float, extra_bytes: int, latent: torch.Tensor) -> None:
                total = len(machine) + extra_bytes + bits / 8
                per[v][path.name] = {"bytes": total, "bpp": 8 * total / (W * H), "human_bits_estimated": bits,
                                     "psnr": psnr(orig, image_of(latent))}

            machine_pts[path.name] = {"bytes": len(machine), "bpp": 8 * len(machine) / (W * H),
                                      "psnr": psnr(orig, image_of((mu + c) * ig))}
            lo_c, hi_c = c - 0.5, c + 0.5
            cell = log_mass(lo_c / s, hi_c / s)
            hyper = {}

            def hyperprior_at(q: int):
                """The base's own hyper-latent bytes and Gaussians (mean, scale in quality q's units) at q."""
                if q not in hyper:
                    gq = gains[q - 1][0]
                    zq = net.h_a(y0 * gq)
                    z_bytes = sum(len(t) for t in net.entropy_bottleneck.compress(zq))
                    zq_hat = net.entropy_bottleneck.quantize(zq, "dequantize", net._z_medians())
                    sq, mq = (t.double() for t in net.h_s(zq_hat).chunk(2, 1))
                    hyper[q] = (z_bytes, mq, sq.clamp(min=lb))
                return hyper[q]

            for tag, k, n_sl in [(f"k{k}", k, None) for k in ks] + [(f"k3-s{n}", 3, n) for n in slices]:
                ch = torch.zeros(1, c.size(1), 1, 1, dtype=torch.bool)
                ch[:, : (c.size(1) if n_sl is None else 32 * n_sl)] = True
                kk = torch.where(ch, float(k), 1.0).double()
                j = torch.minimum(torch.floor(u * kk).clamp(min=0), kk - 1)
                lo, hi = c - 0.5 + j / kk, c - 0.5 + (j + 1) / kk
                active = (kk > 1).expand_as(c)
                qk = min(range(1, net.num_qualities + 1), key=lambda q: abs(math.log(ratio[q - 1] / k)))
                gk, igk = (t.double() for t in gains[qk - 1])
                scale = torch.where(ch, gk * igk / g, ig)
                val = torch.where(active, centroid(lo, hi, s, (lo + hi) / 2), c)
                record(f"nested-{tag}", bits_of(log_mass(lo / s, hi / s) - cell, active), 0, (mu + val) * scale)
                # the same sub-cells under quality qk's own Gaussian (in machine-layer units), its z bytes added
                z_bytes, mq, sq = hyperprior_at(qk)
                r = gk / g
                m_b, s_b = mq / r - mu, sq / r          # quality qk's Gaussian, relative to the machine layer's mean
                logp = log_mass((lo - m_b) / s_b, (hi - m_b) / s_b) - log_mass((lo_c - m_b) / s_b, (hi_c - m_b) / s_b)
                val = torch.where(active, m_b + centroid(lo - m_b, hi - m_b, s_b, (lo + hi) / 2 - m_b), c)
                record(f"nestedz-{tag}", bits_of(logp, active), z_bytes, (mu + val) * scale)
            for q in finer:
                gq, igq = (t.double() for t in gains[q - 1])
                r = gq / g
                n = torch.round((yb - mu) * r)
                lo, hi = torch.maximum((n - 0.5) / r, lo_c), torch.minimum((n + 0.5) / r, hi_c)
                active = (r > 1).expand_as(c)
                val = torch.where(active, centroid(lo, hi, s, (lo + hi) / 2), c)
                scale = torch.where(active, gq * igq / g, ig)
                record(f"partition-q{q}", bits_of(log_mass(lo / s, hi / s) - cell, active), 0, (mu + val) * scale)
                # the base's own coding at q, conditioned on the machine layer's cell
                z_bytes, mq, sq = hyperprior_at(q)
                yq = (y0 * gq.float()).double()
                nq = torch.round(yq - mq)
                clo, chi = (mu + c - 0.5) * r - mq, (mu + c + 0.5) * r - mq   # the cell in quality q's units
                lo, hi = torch.maximum(nq - 0.5, clo), torch.minimum(nq + 0.5, chi)
                logp = log_mass(lo / sq, hi / sq) - log_mass(clo / sq, chi / sq)
                record(f"conditional-q{q}", bits_of(logp, torch.ones_like(c, dtype=torch.bool)), z_bytes,
                       (mq + nq) * igq)
            print(path.name, " ".join(f"{v} {per[v][path.name]['bpp']:.3f}/{per[v][path.name]['psnr']:.2f}"
                                      for v in variants), flush=True)
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    families = {}
    for v in variants:
        families.setdefault(v.split("-")[0], []).append(v)
    for fam, vs in families.items():
        name = f"estimate:{fam}-b{qb}"
        r = new_result(name, {"base": info.name, "machine_quality": qb, "points": ["machine layer alone", *vs],
                              "estimate": NOTE}, a.dataset, "psnr", len(images))
        for i, (label, table) in enumerate([("machine", machine_pts)] + [(v, per[v]) for v in vs]):
            for n in sorted(table):
                r["per_image"].setdefault(n, []).append({"quality": i, **table[n]})
            r["points"].append({"quality": i, "label": label,
                                **{k: float(np.mean([table[n][k] for n in table])) for k in ("bpp", "psnr")},
                                "bytes": float(sum(table[n]["bytes"] for n in table))})
        save(r, out / f"photos-test_estimate-{fam}-b{qb}.json")
        print(name, [(p["label"], round(p["bpp"], 4), round(p["psnr"], 2)) for p in r["points"]])


if __name__ == "__main__":
    main()
