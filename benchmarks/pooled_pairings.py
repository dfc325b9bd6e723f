"""The mean BD-rate of several pairings of runs (e.g. 2 SA-ICM seeds x 2 control seeds), with one interval.

    R=benchmarks/results/machines
    python benchmarks/pooled_pairings.py --metric ap \
        --pair $R/coco128_picodet_mse-ft-photos-n64-v6.json $R/coco128_picodet_saicm-regions-a048-off02-n64-v6.json \
        --pair $R/coco128_picodet_mse-ft-photos-n64-v6-seed1.json $R/coco128_picodet_saicm-regions-a048-off02-n64-v6.json \
        --pair ...

Deciding a recipe question ("does the edge loss cost AP against MSE fine-tuning?") from which of eight single
intervals exclude zero is a multiple comparison. Here every pairing's BD-rate is computed on each bootstrap draw
of the images (the same draws for every file of one dataset: ``saicm.eval.bootstrap.draw_bd_rates``), the
pairings are averaged draw by draw, and the interval is read from those means (percentiles and bias-corrected).
The interval covers the choice of images with the trained runs held fixed; the spread between the pairings
(printed) is the seeds' part. A draw on which any pairing gives no BD-rate is left out of the mean (counted).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path

from saicm.commands.argtypes import existing


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--pair", nargs=2, action="append", required=True, type=existing, metavar=("ANCHOR", "TEST"),
                    help="results JSON of an anchor run and of a test run (repeat for each pairing)")
    ap.add_argument("--metric", default="psnr", help="psnr, ap, ap50, ... (default psnr)")
    ap.add_argument("--level", type=float, default=95.0, help="interval level in %% (default 95)")
    ap.add_argument("--json", help="also write the pairings and their mean as JSON here")
    a = ap.parse_args(argv)
    missing = [p for pair in a.pair for p in pair if not Path(p).is_file()]
    if missing:
        ap.error(f"{missing[0]}: not a results file")

    import numpy as np

    from saicm.errors import SaicmError
    from saicm.eval import results
    from saicm.eval.bdrate import BDRateError
    from saicm.eval.bootstrap import draw_bd_rates, interval_of

    level = a.level / 100
    rows, fulls, all_draws, draws_of = [], [], [], set()
    try:
        for anchor_path, test_path in a.pair:
            anchor, test = results.load(anchor_path), results.load(test_path)
            for r in (anchor, test):  # every file's draws must be the same draws (seed, count, images)
                draws_of.add(json.dumps([r.get("bootstrap"), sorted(r.get("per_image") or {})], sort_keys=True))
            full, d = draw_bd_rates(anchor, test, a.metric)
            ci = interval_of(full, d, level)
            fulls.append(full)
            all_draws.append(d)
            rows.append({"anchor": anchor["codec"], "test": test["codec"], "bd_rate": full.percent,
                         "ci": [ci.low, ci.high], "failed": ci.failed, "dropped": [list(x) for x in full.dropped]})
            print(f"  {test['codec']:<40} vs {anchor['codec']:<32} {full.percent:+6.1f}% "
                  f"[{ci.low:+.1f}, {ci.high:+.1f}]" + (f"  ({ci.failed} draws gave none)" if ci.failed else ""))
    except (SaicmError, BDRateError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if len(draws_of) != 1 or len({len(d) for d in all_draws}) != 1:
        print("error: the files were not drawn alike (other bootstrap settings or images): their draws cannot be "
              "averaged draw by draw", file=sys.stderr)
        return 2
    mean_full = dataclasses.replace(fulls[0], percent=float(np.mean([f.percent for f in fulls])))
    means = np.mean(np.vstack(all_draws), axis=0)  # NaN where any pairing gave none on that draw
    out = {"metric": a.metric, "level": a.level, "pairings": rows, "mean": {"bd_rate": mean_full.percent}}
    spread = [f.percent for f in fulls]
    print(f"mean of {len(fulls)} pairings: {mean_full.percent:+.1f}% (pairings from {min(spread):+.1f} to "
          f"{max(spread):+.1f}%)")
    for method in ("percentile", "bc"):
        ci = interval_of(mean_full, means, level, method)
        print(f"  {a.level:g}% interval ({method}): [{ci.low:+.1f}, {ci.high:+.1f}]; the mean is above zero in "
              f"{np.mean(means[np.isfinite(means)] > 0):.1%} of {ci.draws} draws"
              + (f" ({ci.failed} left out)" if ci.failed else ""))
        out["mean"][method] = [ci.low, ci.high]
    out["mean"]["share_above_zero"] = float(np.mean(means[np.isfinite(means)] > 0))
    if a.json:
        Path(a.json).parent.mkdir(parents=True, exist_ok=True)
        Path(a.json).write_text(json.dumps(out, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
