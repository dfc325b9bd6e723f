"""The SA-ICM evidence in one table, from the machines suite's results folder.

    python benchmarks/saicm_table.py RESULTS_DIR --models saicm-a,saicm-b,object-c \
        [--anchors mse-hyperprior-n64-v5,vvc-faster] [--fraction 0.9] [--ci [LEVEL]]
    python benchmarks/saicm_table.py RESULTS_DIR --points MODEL     # one model's rate points (model cards)

For each model: BD-rate of detection AP (PicoDet, YOLOX) and of PSNR against
each anchor, BD-rate of instance mask AP (YOLOv8n-seg) against the first
anchor, and face privacy at the rate where the model keeps ``--fraction`` of
the uncompressed PicoDet AP, with the anchors' face retention at that rate.
File names follow benchmarks/machines_suite.sh:
``coco128_{picodet,yolox,yolov8seg}_TAG.json`` and ``photos-test_centerface_TAG.json``
(TAG = codec name with ':' replaced by '-'). Every model and anchor needs its
``coco128_picodet_TAG.json`` (else an error names the missing files); the other files may be
missing and show as "–".
Prints Markdown; negative BD-rate = fewer bits than the anchor for the same score.
With ``--ci`` each BD-rate has its paired-bootstrap interval (default 95 %) in
brackets: AP needs results evaluated with ``saicm eval --bootstrap N``
(:mod:`saicm.eval.bootstrap`); a file without draws shows the reason instead.
"""

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from saicm.commands.argtypes import existing  # noqa: E402
from saicm.errors import SaicmError  # noqa: E402
from saicm.eval import results  # noqa: E402
from saicm.eval.bdrate import BDRateError, bd_rate  # noqa: E402
from saicm.eval.bootstrap import bd_rate_ci  # noqa: E402
from saicm.eval.privacy import privacy_at_task_rate  # noqa: E402


def load(folder: Path, name: str) -> dict | None:
    p = folder / name
    return results.load(p) if p.is_file() else None


def bd(anchor: dict | None, test: dict | None, metric: str, ci_level: float | None = None) -> str:
    if anchor is None or test is None:
        return "–"
    try:
        if ci_level is None:
            r = bd_rate(*results.curve(anchor, metric), *results.curve(test, metric), envelope=True)
            return f"{r.percent:+.1f} %"
        ci = bd_rate_ci(anchor, test, metric, ci_level / 100)
    except (BDRateError, SaicmError) as e:
        return f"n/a ({e})"
    return f"{ci.percent:+.1f} % [{ci.low:+.1f}, {ci.high:+.1f}]"


def points_table(f: Path, m: str) -> None:
    """Per rate point: COCO128 bpp, PSNR, the three task scores, photo bpp and face retention."""
    det = load(f, f"coco128_picodet_{m}.json")
    if det is None:
        raise SystemExit(f"error: no coco128_picodet_{m}.json in {f}")
    others = {k: load(f, n) for k, n in (("yolox", f"coco128_yolox_{m}.json"), ("seg", f"coco128_yolov8seg_{m}.json"),
                                         ("faces", f"photos-test_centerface_{m}.json"))}
    lambdas = det.get("codec_config", {}).get("lambdas") or []

    def at(key: str, q, metric: str, fmt: str) -> str:
        res = others[key]
        p = next((p for p in res["points"] if p["quality"] == q), None) if res else None
        return fmt % p[metric] if p and metric in p else "–"

    print("| quality | λ | COCO128 bpp | PSNR (dB) | PicoDet AP | YOLOX AP | YOLOv8n-seg mask AP | photos bpp "
          "| faces kept (CenterFace) |\n|---|---|---|---|---|---|---|---|---|")
    for i, p in enumerate(sorted(det["points"], key=lambda p: p["bpp"])):
        q = p["quality"]
        lam = lambdas[q - 1] if isinstance(q, int) and 0 < q <= len(lambdas) else ""
        print(f"| {q} | {lam} | {p['bpp']:.3f} | {p['psnr']:.2f} | {p['ap']:.1f} | {at('yolox', q, 'ap', '%.1f')} "
              f"| {at('seg', q, 'mask_ap', '%.1f')} | {at('faces', q, 'bpp', '%.3f')} "
              f"| {at('faces', q, 'face_retention', '%.1f %%')} |")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("folder", type=existing)
    ap.add_argument("--models", help="comma-separated codec tags to report")
    ap.add_argument("--points", metavar="MODEL", help="print one model's per-rate-point table instead")
    ap.add_argument("--anchors", default="mse-hyperprior-n64-v5,vvc-faster")
    ap.add_argument("--fraction", type=float, default=0.9)
    ap.add_argument("--ci", type=float, nargs="?", const=95.0, metavar="LEVEL",
                    help="paired-bootstrap interval of every BD-rate (default 95 %%)")
    a = ap.parse_args()
    a.folder = Path(a.folder)
    if not a.folder.is_dir():
        print(f"error: {a.folder}: not a folder", file=sys.stderr)
        return 1
    if a.points:
        points_table(a.folder, a.points)
        return 0
    if not a.models:
        ap.error("--models or --points is required")
    models, anchors = a.models.split(","), a.anchors.split(",")
    f = a.folder
    missing = [f"coco128_picodet_{m}.json" for m in dict.fromkeys(models + anchors)
               if not (f / f"coco128_picodet_{m}.json").is_file()]
    if missing:
        print(f"error: no {', '.join(missing)} in {f}", file=sys.stderr)
        return 1

    head = ["model"]
    for an in anchors:
        head += [f"PicoDet AP vs {an}", f"YOLOX AP vs {an}", f"PSNR vs {an}"]
    head += [f"mask AP vs {anchors[0]}"]
    print("| " + " | ".join(head) + " |\n|" + "---|" * len(head))
    for m in models:
        row = [m]
        for an in anchors:
            for det in ("picodet", "yolox"):
                row.append(bd(load(f, f"coco128_{det}_{an}.json"), load(f, f"coco128_{det}_{m}.json"), "ap", a.ci))
            row.append(bd(load(f, f"coco128_picodet_{an}.json"), load(f, f"coco128_picodet_{m}.json"), "psnr", a.ci))
        row.append(bd(load(f, f"coco128_yolov8seg_{anchors[0]}.json"), load(f, f"coco128_yolov8seg_{m}.json"),
                      "mask_ap", a.ci))
        print("| " + " | ".join(row) + " |")

    print(f"\nFace privacy (CenterFace, photo test split) where each model keeps {a.fraction:.0%} of the "
          "uncompressed PicoDet AP on COCO128:\n")
    head = ["model", "AP kept at (COCO128 bpp)", "same rate point on photos (bpp)", "faces kept: model"]
    head += [f"faces kept: {an}" for an in anchors]
    print("| " + " | ".join(head) + " |\n|" + "---|" * len(head))
    for m in dict.fromkeys(models + anchors):
        det, faces = load(f, f"coco128_picodet_{m}.json"), load(f, f"photos-test_centerface_{m}.json")
        if det is None or faces is None:
            print(f"| {m} | – | – | – |" + " – |" * len(anchors))
            continue
        others = {an: load(f, f"photos-test_centerface_{an}.json") for an in anchors}
        out = privacy_at_task_rate(det, faces, {k: v for k, v in others.items() if v}, a.fraction)
        if not out["reached"]:
            print(f"| {m} | never (best AP {out['best']:.1f} of {out['reference']:.1f}) | – | – |"
                  + " – |" * len(anchors))
            continue
        cells = [m, f"{out['detection_bpp']:.3f}", f"{out['faces_bpp']:.3f}"]
        fmt = (lambda v: "outside measured range" if v is None else f"{v:.1f} %")
        cells.append(fmt(out["retention"].get(det["codec"])))
        cells += [fmt(out["retention"].get(an)) if others.get(an) else "–" for an in anchors]
        print("| " + " | ".join(cells) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
