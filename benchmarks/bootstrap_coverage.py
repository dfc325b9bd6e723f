"""How often does a `saicm bdrate --ci` interval hold the truth? Coverage by subsampling committed results.

    R=benchmarks/results/machines
    python benchmarks/bootstrap_coverage.py $R/coco128_yolox_mse-hyperprior-n64-v5.json \
        $R/coco128_yolox_mse-context-n64-v6.json --metric psnr --sizes 12,24,48,128 --reps 400 --levels 95,97.5,99

The two files' images are the population and their full-set BD-rate the truth. Each replicate draws n images
from the population with replacement (the population is the images' empirical distribution, so the truth is exactly
the full-set figure; n = the population's size is a double bootstrap), makes the two results of those images (points
= the images' means, as `saicm eval` writes them) and asks saicm's own `draw_bd_rates` and `interval_of` for the
interval (200 draws as `bdrate --ci`, another seed per replicate) by every method and level. Printed per n: the
share of intervals that hold the truth, that lie wholly below it (the test codec looks better than it is) and
wholly above it, and the median width. With 400 replicates a coverage near 0.95 carries about ±0.011 (one standard
error). Per-image metrics only (psnr, ms_ssim): AP is not a mean of per-image values and the results hold only the
200 draws of the whole set, not the per-image matches a subsample needs. About 0.1 s per replicate on 24 images.
Measured 2026-12-07 (docs/evaluation.md#how-sure-is-a-bd-rate).
"""

from __future__ import annotations

import argparse
import json

import numpy as np

from saicm.eval import results
from saicm.eval.bdrate import BDRateError, bd_rate
from saicm.eval.bootstrap import CI_METHODS, PER_IMAGE_METRICS, draw_bd_rates, interval_of


def subsample(result: dict, picks, metric: str) -> dict:
    """``result`` on the images ``picks`` (indices into its sorted names, repeats allowed: renamed 0000, 0001, ...),
    its points the means over them."""
    names = sorted(result["per_image"])
    out = {k: v for k, v in result.items() if k not in ("per_image", "points", "bootstrap")}
    out["per_image"] = {f"{k:04d}": result["per_image"][names[i]] for k, i in enumerate(picks)}
    out["num_images"] = len(picks)
    out["points"] = []
    for p in result["points"]:
        q = str(p["quality"])
        rows = [next(e for e in result["per_image"][names[i]] if str(e["quality"]) == q) for i in picks]
        vals = np.array([np.nan if e.get(metric) is None else e[metric] for e in rows], dtype=float)
        keep = p.get(metric) is not None and np.isfinite(vals).any()
        out["points"].append({"quality": p["quality"], "bpp": float(np.mean([e["bpp"] for e in rows])),
                              metric: float(np.nanmean(vals)) if keep else None})
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("anchor")
    ap.add_argument("test")
    ap.add_argument("--metric", default="psnr", choices=PER_IMAGE_METRICS)
    ap.add_argument("--sizes", default="24", help="comma-separated sample sizes n (default 24)")
    ap.add_argument("--reps", type=int, default=400, help="replicates per size (default 400)")
    ap.add_argument("--levels", default="95", help="comma-separated levels in %% (default 95)")
    ap.add_argument("--draws", type=int, default=200, help="bootstrap draws per interval (default 200, as bdrate)")
    ap.add_argument("--json", help="also append one JSON line per size to this file")
    a = ap.parse_args(argv)
    anchor, test = results.load(a.anchor), results.load(a.test)
    if sorted(anchor["per_image"]) != sorted(test["per_image"]):
        ap.error("the two results were not measured on the same images")
    truth = bd_rate(*results.curve(anchor, a.metric), *results.curve(test, a.metric)).percent
    size = len(anchor["per_image"])
    levels = [float(x) for x in a.levels.split(",")]
    print(f"{test['codec']} against {anchor['codec']}, {a.metric}: {size} images, BD-rate {truth:+.2f} % (the truth)")
    for n in (int(x) for x in a.sizes.split(",")):
        rng = np.random.default_rng(1000 + n)
        got = {(m, lv): [] for m in CI_METHODS for lv in levels}
        estimates, none = [], 0
        for r in range(a.reps):
            picks = rng.integers(0, size, n)
            try:
                full, draws = draw_bd_rates(subsample(anchor, picks, a.metric), subsample(test, picks, a.metric),
                                            a.metric, replicates=a.draws, seed=r + 1)
            except BDRateError:  # the sample's own curves give no BD-rate: no interval either
                none += 1
                continue
            estimates.append(full.percent)
            for m, lv in got:
                ci = interval_of(full, draws, lv / 100, m)
                got[m, lv].append((ci.low, ci.high))
        line = {"anchor": anchor["codec"], "test": test["codec"], "metric": a.metric, "population": size, "n": n,
                "reps": a.reps, "truth": truth, "no_bd_rate": none, "estimate_sd": float(np.std(estimates, ddof=1))}
        print(f"  n = {n:4d}: estimates' SD {line['estimate_sd']:.2f}{f', {none} samples gave none' if none else ''}")
        for (m, lv), iv in got.items():
            iv = np.array(iv)
            c = {"cover": float(np.mean((iv[:, 0] <= truth) & (truth <= iv[:, 1]))),
                 "below": float(np.mean(iv[:, 1] < truth)), "above": float(np.mean(iv[:, 0] > truth)),
                 "width": float(np.median(iv[:, 1] - iv[:, 0]))}
            line[f"{m}@{lv:g}"] = c
            print(f"    {m:10s} {lv:g} %: covers {c['cover']:.3f} (wholly below {c['below']:.3f}, above "
                  f"{c['above']:.3f}), median width {c['width']:.2f}")
        if a.json:
            with open(a.json, "a") as f:
                f.write(json.dumps(line) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
