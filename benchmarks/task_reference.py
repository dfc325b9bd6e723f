"""Task-model reference: COCO AP / AP50 of each task model on *uncompressed* images.

This is the ceiling every codec is measured against, and the check that a
task model's pre-processing and decoding are right: on COCO128 the figures
must match the ones measured here (``docs/results/machines.md``, and the
``reference`` of the committed ``benchmarks/results/machines/coco128_*.json``):
PicoDet-S 416 41.9 / 58.3, YOLOX-nano 33.7 / 51.5, YOLOv8n-seg 34.1 box AP /
26.4 mask AP (the data's ``models/README.md`` says 33.6 and 25.9).

    python benchmarks/task_reference.py --images ../shared/data/coco128/images \\
        --annotations ../shared/data/coco128/annotations/instances_train2017.json \\
        --task-model picodet:../shared/data/models/picodet_s_416_coco.onnx \\
        --task-model yolox:../shared/data/models/yolox_nano.onnx \\
        --task-model yolov8-seg:../shared/data/models/yolov8n-seg_int8_320.onnx
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from saicm.commands.argtypes import existing
from saicm.errors import SaicmError
from saicm.eval import tasks
from saicm.eval.rd import load_rgb_folder


def _fmt(v) -> str:
    return f"{v:6.1f}" if isinstance(v, (int, float)) else f"{'-':>6}"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--images", required=True, type=existing, help="folder of original images")
    ap.add_argument("--annotations", required=True, type=existing,
                    help="COCO instance annotation file for these images")
    ap.add_argument("--task-model", action="append", required=True, metavar="KIND:PATH",
                    help=f"task model (repeatable); kinds: {', '.join(sorted(tasks.TASK_MODELS))}")
    ap.add_argument("--threads", type=int, default=None, help="ONNX Runtime threads (default: all cores)")
    ap.add_argument("--limit", type=int, default=None, help="only the first N images (quick check)")
    ap.add_argument("--out", default=None, help="also write the figures to this JSON file")
    a = ap.parse_args(argv)

    try:
        images = load_rgb_folder(a.images)
        if a.limit:
            images = dict(list(images.items())[: a.limit])
        cats = tasks.category_ids(a.annotations)
        named = tasks.coco_class_ids(a.annotations)  # (COCO's classes numbered otherwise: matched by name)
        rows = {}
        for spec in a.task_model:
            model = tasks.load_task_model(spec, category_ids=cats, threads=a.threads, coco_class_ids=named)
            t = time.perf_counter()
            res = tasks.evaluate_task(model, images, annotations=a.annotations, progress=True)
            res["seconds_per_image"] = (time.perf_counter() - t) / len(images)
            rows[spec] = res
    except SaicmError as e:
        print(f"error: {e}", file=sys.stderr)
        return e.exit_code

    print(f"\nCOCO AP on {a.images} ({len(images)} images, uncompressed; official annotations {a.annotations})")
    print(f"{'task model':<60} {'box AP':>6} {'AP50':>6} {'mask AP':>7} {'AP50':>6} {'s/img':>6}")
    for spec, r in rows.items():
        print(f"{spec:<60} {_fmt(r.get('box_ap'))} {_fmt(r.get('box_ap50'))}  {_fmt(r.get('mask_ap'))} "
              f"{_fmt(r.get('mask_ap50'))} {r['seconds_per_image']:6.2f}")
    if a.out:
        Path(a.out).parent.mkdir(parents=True, exist_ok=True)
        Path(a.out).write_text(json.dumps({"images": a.images, "annotations": a.annotations, "results": rows},
                                          indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
