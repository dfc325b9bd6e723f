"""The scalable-coding BD-rate table from the results of benchmarks/scalable_suite.sh.

    python benchmarks/scalable_table.py benchmarks/results/scalable --model scalable-off02v5-m4-cond --bases 1,2,4 \
        --datasets photos-test --mse-dir benchmarks/results/photos

For each dataset and machine rate point (``bK`` fixed, or ``pair``): PSNR BD-rate of the human layer (bits of
both layers) against simulcast at the same machine rate point, against the single-layer MSE model alone, and
against the base model alone at a higher rate (the machine layer's own curve: what the same bits would buy
without a second layer), with 95 % paired-bootstrap intervals over the images (``saicm bdrate --ci``), over
the overlapping PSNR range. ``--mse-dir`` finds the MSE model's results elsewhere (e.g. benchmarks/results/photos).
Every file of the named datasets and rate points must exist (an error names the missing ones); a missing
machine-layer file leaves only its column empty.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def main(argv=None) -> int:
    from saicm.commands.argtypes import existing
    from saicm.eval import results
    from saicm.eval.bdrate import BDRateError
    from saicm.eval.bootstrap import bd_rate_ci

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("folder", type=existing)
    p.add_argument("--model", required=True)
    p.add_argument("--bases", default="2,4,6,pair")
    p.add_argument("--mse", default="mse-hyperprior-n64-v5")
    p.add_argument("--datasets", default="photos-test,coco128")
    p.add_argument("--mse-dir", type=existing, help="folder of the MSE model's results (default: FOLDER)")
    p.add_argument("--json")
    a = p.parse_args(argv)
    root = Path(a.folder)
    for d in (root, Path(a.mse_dir or root)):
        if not d.is_dir():
            print(f"error: {d}: not a folder", file=sys.stderr)
            return 1
    tags = ["pair" if b == "pair" else f"b{b}" for b in a.bases.split(",")]
    needed = []
    for ds in a.datasets.split(","):
        needed.append(Path(a.mse_dir or root) / f"{ds}_{a.mse}.json")
        for tag in tags:
            needed += [root / f"{ds}_{a.model}-human-{tag}.json", root / f"{ds}_simulcast-{tag}.json"]
    missing = [str(f) for f in needed if not f.is_file()]
    if missing:
        more = f" and {len(missing) - 1} more" if len(missing) > 1 else ""
        print(f"error: no {missing[0]}{more} (see --datasets, --bases, --mse-dir)", file=sys.stderr)
        return 1
    rows = []
    print("| dataset | machine rate point | human layer vs simulcast | vs single-layer MSE | vs the base model alone |")
    print("|---|---|---|---|---|")
    for ds in a.datasets.split(","):
        mse_file = Path(a.mse_dir or root) / f"{ds}_{a.mse}.json"
        machine_file = root / f"{ds}_{a.model}-machine.json"
        mse = results.load(mse_file)
        for tag in tags:
            hfile, sfile = root / f"{ds}_{a.model}-human-{tag}.json", root / f"{ds}_simulcast-{tag}.json"
            human, sim = results.load(hfile), results.load(sfile)
            cells = []
            machine = results.load(machine_file) if machine_file.is_file() else None
            for anchor in (sim, mse, machine):
                if anchor is None:
                    cells.append((None, None, "no machine-layer results"))
                    continue
                try:
                    ci = bd_rate_ci(anchor, human, "psnr", 0.95)
                    cells.append((ci.full.percent, ci.low, ci.high))
                except BDRateError as e:
                    cells.append((None, None, str(e)))
            fmt = [f"{c[0]:+.1f} % [{c[1]:+.1f}, {c[2]:+.1f}]" if c[0] is not None else f"n/a ({c[2]})" for c in cells]
            print(f"| {ds} | {tag} | {fmt[0]} | {fmt[1]} | {fmt[2]} |")
            rows.append({"dataset": ds, "base": tag, "vs_simulcast": cells[0], "vs_mse": cells[1],
                         "vs_base_alone": cells[2]})
    if a.json:
        Path(a.json).write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
