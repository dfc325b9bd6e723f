"""Face privacy at the rate where a codec keeps 90 % of the uncompressed detection AP.

    python benchmarks/privacy_at_ap.py ANCHOR_DET.json ANCHOR_FACES.json OTHER_FACES.json... [--fraction 0.9]

ANCHOR_DET: the anchor's detection sweep (e.g. COCO128, PicoDet); ANCHOR_FACES
and OTHER_FACES: face sweeps on the photo test split (saicm eval --task faces).
Prints the operating point and every codec's face retention there.
"""

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from saicm.eval import results  # noqa: E402
from saicm.eval.privacy import privacy_at_task_rate  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("detection")
    ap.add_argument("faces")
    ap.add_argument("others", nargs="*")
    ap.add_argument("--fraction", type=float, default=0.9)
    ap.add_argument("--metric", default="ap")
    a = ap.parse_args()
    det, faces = results.load(a.detection), results.load(a.faces)
    others = {}
    for p in a.others:
        r = results.load(p)
        others[r["codec"]] = r
    out = privacy_at_task_rate(det, faces, others, a.fraction, a.metric)
    ref = out["reference"]
    if not out["reached"]:
        print(f"{out['anchor']} never keeps {a.fraction:.0%} of the uncompressed {a.metric} ({ref:.2f}); "
              f"best {out['best']:.2f}")
        return 1
    print(f"{out['anchor']} keeps {a.fraction:.0%} of uncompressed {a.metric} ({a.fraction * ref:.2f} of {ref:.2f}) "
          f"at {out['detection_bpp']:.3f} bpp on {det['dataset']} (rate-point position {out['position']:.2f});")
    print(f"the same rate point is {out['faces_bpp']:.3f} bpp on {faces['dataset']} "
          f"({faces.get('task_model', '')}). Face retention there:")
    for name, v in out["retention"].items():
        print(f"  {name:28s} {'outside its measured range' if v is None else f'{v:6.1f} %'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
