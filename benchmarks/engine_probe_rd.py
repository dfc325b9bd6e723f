"""The RD curve the engine probes compare: each photo coded in this process at every quality, real files.

Shared by ``hyper_precision_probe.py`` and ``analysis_int8_probe.py`` (with the images they calibrate on),
which patch a part of the portable engine in this process (the hyper-synthesis, the analysis) and code the
same photos with and without the patch. bpp is pooled (all bytes over all pixels of the quality), PSNR the mean
over the photos (against the RGB conversion of each file). Not the results schema of ``saicm eval``: a probe's two
curves, for one BD-rate.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np


def calibration_image(path, limit: int = 768) -> np.ndarray:
    """A photo as the probes calibrate on it: RGB within ``limit``² (aspect kept), cropped to multiples of 64,
    float32 NCHW in [0, 1]."""
    from PIL import Image

    img = Image.open(path).convert("RGB")
    img.thumbnail((limit, limit))
    x = np.asarray(img, np.float32).transpose(2, 0, 1)[None] / 255
    return np.ascontiguousarray(x[..., : x.shape[2] // 64 * 64, : x.shape[3] // 64 * 64])


def rd_curve(model: str, photos: list[Path], qualities, label: str = "") -> dict:
    """``{"bpp": [...], "psnr": [...]}`` of ``model`` over ``photos``, one point per quality in ``qualities``."""
    from PIL import Image

    import saicm
    from saicm.eval.metrics import psnr

    rates, psnrs = [], []
    for q in qualities:
        bits = pixels = 0
        ps = []
        for f in photos:
            img = Image.open(f).convert("RGB")
            data = saicm.compress(img, model=model, quality=q)
            ps.append(psnr(img, saicm.decompress(data)))
            bits += 8 * len(data)
            pixels += img.width * img.height
        rates.append(bits / pixels)
        psnrs.append(float(np.mean(ps)))
    if label:
        print(label, [round(r, 4) for r in rates], [round(v, 3) for v in psnrs], file=sys.stderr)
    return {"bpp": rates, "psnr": psnrs}


def bd_between(curves: dict, ref: str, test: str) -> float:
    """PSNR BD-rate (%) of curve ``test`` against curve ``ref``."""
    from saicm.eval.bdrate import bd_rate

    return bd_rate(curves[ref]["bpp"], curves[ref]["psnr"], curves[test]["bpp"], curves[test]["psnr"]).percent


def emit(out: dict, path: str | None) -> None:
    """The probe's JSON, to ``path`` or standard output."""
    import json

    text = json.dumps(out, indent=1)
    if path:
        Path(path).write_text(text + "\n")
    else:
        print(text)
