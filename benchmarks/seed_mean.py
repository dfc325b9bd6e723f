"""Average results files of one codec trained with different seeds into one results file.

    python benchmarks/seed_mean.py foreman-0-30_picodet_nerv-e150.json foreman-0-30_picodet_nerv-e150-seed1.json \
        foreman-0-30_picodet_nerv-e150-seed2.json -o foreman-0-30_picodet_nerv-e150-mean3.json

Per rate point and per image: the mean over the runs of bytes, bpp and every metric; stored AP draws are
averaged draw by draw (the runs must share their bootstrap draws). `saicm bdrate --ci` on two such files gives
the BD-rate of the seed-averaged curves with a paired bootstrap over images or frames (the seeds held fixed):
report the seed-to-seed spread beside it (`saicm bdrate` of the single runs). See
`saicm.eval.results.mean_of_runs`.

With `--resample-seeds` each bootstrap draw also re-draws the runs (with replacement), so the interval of
`saicm bdrate --ci` covers the seed-to-seed spread as well as the frames; give both codecs' runs in the same
seed order (their resamples then pair run i with run i).
"""

from __future__ import annotations

import argparse
import sys

from saicm.commands.argtypes import existing
from saicm.errors import SaicmError
from saicm.eval import results


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("runs", nargs="+", type=existing,
                    help="results JSON files of the same codec and measurement, one per seed")
    ap.add_argument("-o", "--output", required=True, help="results JSON to write")
    ap.add_argument("--resample-seeds", action="store_true",
                    help="each bootstrap draw also resamples the runs: intervals that include the seed spread")
    a = ap.parse_args(argv)
    try:
        mean = results.mean_of_runs([results.load(p) for p in a.runs], resample_runs=a.resample_seeds)
    except SaicmError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    results.save(mean, a.output)
    print(f"wrote {a.output}: {mean['codec']}, {len(mean['points'])} points")
    return 0


if __name__ == "__main__":
    sys.exit(main())
