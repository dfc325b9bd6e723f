"""Per-clip tables of the video results and BD-rates against an anchor codec.

    python benchmarks/video_table.py benchmarks/results/video --clips foreman-0-30,vtest-0-30-384 \
        --anchor nerv-e150 [--task picodet] [--json OUT.json]

Reads ``FOLDER/{clip}_{task}_{codec}.json`` (``saicm eval`` on a clip, one file per clip and codec). Prints, per
clip, one row per codec and rate point: bytes, bpp, PSNR, MS-SSIM, detection AP and AP50 (against pseudo ground
truth: the detector on the original frames), encode and decode seconds of the clip; then the BD-rate of every
codec against ``--anchor`` on AP and on PSNR, with 95 % paired-bootstrap intervals over the frames
(``saicm bdrate --ci``; frames of a clip are correlated, so the intervals are narrow), over the overlapping range,
or why there is none. A missing folder, clip or anchor file is an error.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def _fmt(v, spec: str) -> str:
    return "–" if v is None else format(v, spec)


def main(argv=None) -> int:
    from saicm.commands.argtypes import existing
    from saicm.eval import results
    from saicm.eval.bdrate import BDRateError
    from saicm.eval.bootstrap import bd_rate_ci
    from saicm.errors import SaicmError

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("folder", type=existing)
    p.add_argument("--clips", required=True, help="comma-separated clip tags (the file names' first part)")
    p.add_argument("--anchor", default="nerv-e150", help="codec tag the BD-rates are against")
    p.add_argument("--task", default="picodet")
    p.add_argument("--json", help="also write the tables as JSON")
    a = p.parse_args(argv)
    root = Path(a.folder)
    if not root.is_dir():
        print(f"error: {root}: not a folder", file=sys.stderr)
        return 1
    for clip in a.clips.split(","):
        if not any(root.glob(f"{clip}_{a.task}_*.json")):
            print(f"error: no {clip}_{a.task}_*.json in {root}", file=sys.stderr)
            return 1
        if not (root / f"{clip}_{a.task}_{a.anchor}.json").is_file():
            print(f"error: no {clip}_{a.task}_{a.anchor}.json (the --anchor) in {root}", file=sys.stderr)
            return 1
    out = {}
    for clip in a.clips.split(","):
        files = sorted(root.glob(f"{clip}_{a.task}_*.json"))
        res = {f.stem[len(f"{clip}_{a.task}_"):]: results.load(f) for f in files}
        print(f"\n### {clip} ({next(iter(res.values()))['dataset']})\n")
        print("| codec | point | bytes | bpp | PSNR dB | MS-SSIM | AP | AP50 | encode s | decode s |")
        print("|---|---|---|---|---|---|---|---|---|---|")
        rows = []
        for name, r in res.items():
            n = r["num_images"]
            for pt in r["points"]:
                clip_row = next(iter(pt.get("per_clip", {}).values()), {})
                enc = clip_row.get("encode_s", None if pt.get("encode_s") is None else pt["encode_s"] * n)
                dec = clip_row.get("decode_s", None if pt.get("decode_s") is None else pt["decode_s"] * n)
                print(f"| {name} | {pt['quality']} | {pt['bytes']:,} | {pt['bpp']:.4f} | {_fmt(pt.get('psnr'), '.2f')} | "
                      f"{_fmt(pt.get('ms_ssim'), '.4f')} | {_fmt(pt.get('ap'), '.1f')} | {_fmt(pt.get('ap50'), '.1f')} | "
                      f"{_fmt(enc, '.0f')} | {_fmt(dec, '.2f')} |")
                rows.append({"codec": name, "quality": pt["quality"], "bytes": pt["bytes"], "bpp": pt["bpp"],
                             "psnr": pt.get("psnr"), "ms_ssim": pt.get("ms_ssim"), "ap": pt.get("ap"),
                             "ap50": pt.get("ap50"), "encode_s": enc, "decode_s": dec})
        bds = []
        if a.anchor in res:
            print(f"\nBD-rate against {a.anchor} (95 % paired-bootstrap intervals over the frames):\n")
            print("| codec | AP | PSNR |")
            print("|---|---|---|")
            for name, r in res.items():
                if name == a.anchor:
                    continue
                cells = []
                for metric in ("ap", "psnr"):
                    try:
                        ci = bd_rate_ci(res[a.anchor], r, metric, 0.95)
                        cells.append(f"{ci.full.percent:+.1f} % [{ci.low:+.1f}, {ci.high:+.1f}]")
                        bds.append({"codec": name, "metric": metric, "bd_rate": ci.full.percent, "low": ci.low,
                                    "high": ci.high})
                    except (BDRateError, SaicmError) as e:
                        cells.append(f"n/a ({e})")
                print(f"| {name} | {cells[0]} | {cells[1]} |")
        out[clip] = {"rows": rows, "bd_rates": bds, "anchor": a.anchor}
    if a.json:
        Path(a.json).write_text(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
