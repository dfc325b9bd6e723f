"""Rate–distortion sweeps: a codec over an image folder at several qualities."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Sequence

import numpy as np
from PIL import Image
from tqdm import tqdm

from ..codec.image_io import is_image_file
from .codecs import Codec
from .metrics import psnr
from .results import new_result


def load_rgb_folder(folder: str | Path) -> dict[str, Image.Image]:
    from ..errors import SaicmError

    folder = Path(folder)
    files = sorted(p for p in folder.rglob("*") if is_image_file(p)) if folder.is_dir() else []
    if not files:
        raise SaicmError("no images found", str(folder))
    return {p.relative_to(folder).as_posix(): Image.open(p).convert("RGB") for p in files}


def rd_sweep(codec: Codec, images: dict[str, Image.Image], qualities: Sequence[int] | None = None,
             dataset: str = "", progress: bool = True) -> dict:
    """Encode and decode every image at every quality; mean bpp and PSNR per quality."""
    qualities = list(qualities or codec.default_qualities)
    res = new_result(codec.name, codec.config(), dataset, "psnr", len(images))
    bar = tqdm(total=len(images) * len(qualities), desc=codec.name, unit="code", disable=not progress)
    for q in qualities:
        rows = []
        for name, img in images.items():
            t = time.perf_counter()
            data = codec.encode(img, q)
            te = time.perf_counter() - t
            t = time.perf_counter()
            dec = codec.decode(data)
            td = time.perf_counter() - t
            row = {"quality": q, "bpp": 8.0 * len(data) / (img.width * img.height),
                   "psnr": psnr(np.asarray(img), np.asarray(dec)), "bytes": len(data),
                   "encode_s": te, "decode_s": td}
            res["per_image"].setdefault(name, []).append(row)
            rows.append(row)
            bar.update(1)
        res["points"].append({
            "quality": q,
            "bpp": float(np.mean([r["bpp"] for r in rows])),
            "psnr": float(np.mean([r["psnr"] for r in rows])),
            "bytes": int(sum(r["bytes"] for r in rows)),
            "encode_s": float(np.mean([r["encode_s"] for r in rows])),
            "decode_s": float(np.mean([r["decode_s"] for r in rows])),
        })
    bar.close()
    res["points"].sort(key=lambda p: p["bpp"])
    return res
