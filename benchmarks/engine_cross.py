"""Cross-engine decoding of portable (format 3) files: every file written by one transform back-end decoded by
both, and by the onnx engine with 1 and 2 threads in separate processes.

    python benchmarks/engine_cross.py ../shared/data/photos/test [--qualities 1,4,7] [--limit 0] [--json OUT]

Per image and quality: a file from ``--engine onnx`` and one from ``--engine torch`` (both in this process);
each is decoded with onnx and with torch here, and with onnx in two child processes (``SAICM_THREADS=1`` and
``2``), whose decoded pixels are compared by SHA-256. Prints how many files decoded, the largest pixel
difference across engines, and whether the same engine (and thread counts) gave identical pixels.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

from saicm.commands.argtypes import existing

_CHILD = ("import sys, hashlib, numpy as np, saicm\n"
          "for p in sys.argv[1:]:\n"
          "    a = np.asarray(saicm.decompress(open(p, 'rb').read(), engine='onnx'))\n"
          "    print(hashlib.sha256(a.tobytes()).hexdigest())\n")


def _hashes(paths: list[Path], threads: int) -> list[str]:
    env = dict(os.environ, SAICM_THREADS=str(threads), OMP_NUM_THREADS=str(threads),
               OPENBLAS_NUM_THREADS=str(threads))
    r = subprocess.run([sys.executable, "-c", _CHILD, *map(str, paths)], capture_output=True, text=True, env=env)
    if r.returncode != 0:
        raise SystemExit(r.stderr)
    return r.stdout.split()


def main(argv=None) -> int:
    import saicm
    from saicm.codec.image_io import is_image_file

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("folder", type=existing)
    p.add_argument("--model", default="mse-hyperprior-n64-v5")
    p.add_argument("--qualities", default="1,4,7")
    p.add_argument("--limit", type=int, default=0)
    p.add_argument("--json")
    a = p.parse_args(argv)
    images = sorted(f for f in Path(a.folder).iterdir() if is_image_file(f))
    images = images[: a.limit] if a.limit else images
    qualities = [int(q) for q in a.qualities.split(",")]
    rows, files = [], []
    with tempfile.TemporaryDirectory() as d:
        for img in images:
            for q in qualities:
                for writer in ("onnx", "torch"):
                    data = saicm.compress(img, model=a.model, quality=q, engine=writer)
                    f = Path(d) / f"{img.stem}-q{q}-{writer}.saicm"
                    f.write_bytes(data)
                    dec = {e: np.asarray(saicm.decompress(data, engine=e)).astype(np.int16) for e in ("onnx", "torch")}
                    rows.append({"image": img.name, "quality": q, "writer": writer, "bytes": len(data),
                                 "max_abs_diff_onnx_torch": int(np.abs(dec["onnx"] - dec["torch"]).max()),
                                 "share_identical": float((dec["onnx"] == dec["torch"]).mean()),
                                 "onnx_sha256": hashlib.sha256(dec["onnx"].astype(np.uint8).tobytes()).hexdigest()})
                    files.append(f)
        one, two = _hashes(files, 1), _hashes(files, 2)
    for r, h1, h2 in zip(rows, one, two):
        r["onnx_same_across_processes_and_threads"] = h1 == h2 == r["onnx_sha256"]
    n = len(rows)
    print(f"{n} files ({len(images)} images × {len(qualities)} qualities × 2 writers), model {a.model}")
    print(f"decoded by both engines: {n}/{n}")
    print(f"max |onnx − torch| pixel difference: {max(r['max_abs_diff_onnx_torch'] for r in rows)}; "
          f"pixels identical: {100 * np.mean([r['share_identical'] for r in rows]):.3f} %")
    print(f"onnx decode identical in this process, a 1-thread and a 2-thread child: "
          f"{sum(r['onnx_same_across_processes_and_threads'] for r in rows)}/{n}")
    same = sum(1 for i in range(0, n, 2) if rows[i]["bytes"] == rows[i + 1]["bytes"])
    print(f"files of the two writers with the same size: {same}/{n // 2}")
    if a.json:
        Path(a.json).write_text(json.dumps(rows, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
