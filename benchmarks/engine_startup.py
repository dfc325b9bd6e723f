"""Whole-process time of the command line, as a user meets it: ``saicm --help``, ``saicm compress`` and
``saicm decompress`` of one image, from process start to exit (median of ``--repeats`` runs).

    python benchmarks/engine_startup.py IMAGE [--engines auto,torch,compressai] [--repeats 5] [--json OUT]

IMAGE is resized to 768×512 first (Lanczos; written to a temporary PNG). Each engine's first run is untimed (it
fills the ONNX graph cache, ``$SAICM_CACHE``); later runs are what every run after the first costs.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from saicm.commands.argtypes import existing
from saicm.engine import PORTABLE_ENGINES


def _run(args: list[str]) -> float:
    """Wall seconds of ``saicm ARGS`` in a fresh interpreter."""
    t = time.perf_counter()
    r = subprocess.run([sys.executable, "-m", "saicm", *args], capture_output=True, text=True)
    wall = time.perf_counter() - t
    if r.returncode != 0:
        raise SystemExit(f"saicm {' '.join(args)} failed:\n{r.stderr}")
    return wall


def main(argv=None) -> int:
    from PIL import Image

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("image", type=existing)
    p.add_argument("--engines", default="auto,torch,compressai")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--json", help="write the figures here")
    a = p.parse_args(argv)
    rows = []
    with tempfile.TemporaryDirectory() as d:
        src = Path(d) / "img.png"
        Image.open(a.image).convert("RGB").resize((768, 512), Image.LANCZOS).save(src)
        help_t = [_run(["--help"]) for _ in range(a.repeats)]
        rows.append({"command": "saicm --help", "engine": "-", "seconds": statistics.median(help_t)})
        for engine in a.engines.split(","):
            out, png = Path(d) / f"{engine}.saicm", Path(d) / f"{engine}.png"
            enc = ["compress", str(src), "-o", str(out), "--quiet", "--engine", engine]
            dec = ["decompress", str(out), "-o", str(png), "--quiet"]
            if engine in PORTABLE_ENGINES and engine != "auto":  # (the OpenVINO rows decoded with onnxruntime)
                dec += ["--engine", engine]
            _run(enc), _run(dec)  # warm the page cache
            te = [_run(enc) for _ in range(a.repeats)]
            td = [_run(dec) for _ in range(a.repeats)]
            rows.append({"command": "saicm compress", "engine": engine, "seconds": statistics.median(te),
                         "bytes": out.stat().st_size})
            rows.append({"command": "saicm decompress", "engine": engine,
                         "seconds": statistics.median(td)})
    print(f"768x512, median of {a.repeats} runs; load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs")
    print("| command | engine | wall s |")
    print("|---|---|---|")
    for r in rows:
        print(f"| {r['command']} | {r['engine']} | {r['seconds']:.3f} |")
    if a.json:
        Path(a.json).write_text(json.dumps(rows, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
