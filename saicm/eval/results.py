"""The one results schema (JSON) every evaluation writes and every consumer reads.

::

    {
      "schema": "saicm-results/1",
      "codec": "jpeg", "codec_config": {...},
      "dataset": "path", "num_images": 24, "task": "psnr",
      "points": [{"quality": 50, "bpp": 0.81, "psnr": 31.2, "encode_s": 0.01,
                  "decode_s": 0.005, "bytes": 123456}, ...],       # ascending bpp
      "reference": {...},          # task metrics on uncompressed images (if any)
      "per_image": {"name.png": [{"quality": .., "bpp": .., "psnr": ..}, ...]},
      "created": "ISO time", "saicm_version": "0.2.0",
      "bootstrap": {"replicates": 200, "seed": 0, "images": "sha256 prefix of the sorted names"}
    }

``bpp`` is the mean over images of 8·bytes/pixels of the real encoded bytes;
``psnr`` the mean over images of RGB PSNR in dB. Detection and instance
results evaluated with ``--bootstrap N`` carry ``bootstrap`` (what fixes the
draws) and, in each point and the reference, ``"bootstrap": {"box_ap": [N
values], "box_ap50": [...], ...}``: the AP on each draw of the images
(:mod:`saicm.eval.bootstrap`).
"""

from __future__ import annotations

import datetime as _dt
import json
from pathlib import Path

from .._fs import write_bytes_atomic
from ..errors import SaicmError

SCHEMA = "saicm-results/1"


def new_result(codec: str, codec_config: dict, dataset: str, task: str, num_images: int) -> dict:
    from .. import __version__

    return {
        "schema": SCHEMA,
        "codec": codec,
        "codec_config": codec_config,
        "dataset": dataset,
        "num_images": num_images,
        "task": task,
        "points": [],
        "reference": {},
        "per_image": {},
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "saicm_version": __version__,
    }


def save(result: dict, path: str | Path) -> None:
    result["points"].sort(key=lambda p: p["bpp"])
    write_bytes_atomic(path, (json.dumps(result, indent=1) + "\n").encode())


def load(path: str | Path) -> dict:
    try:
        d = json.loads(Path(path).read_text())
    except (OSError, ValueError) as e:
        raise SaicmError(f"cannot read results ({e})", str(path)) from None
    if d.get("schema") != SCHEMA:
        raise SaicmError(f"not a {SCHEMA} file", str(path))
    return d


def curve(result: dict, metric: str) -> tuple[list[float], list[float]]:
    pts = [p for p in result["points"] if metric in p]
    if not pts:
        raise SaicmError(f"results for {result['codec']} have no metric {metric!r}")
    return [p["bpp"] for p in pts], [p[metric] for p in pts]
