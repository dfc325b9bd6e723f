"""``saicm demo``: the main job on the embedded default.

Codes scikit-image's bundled sample photos (shipped inside its wheel, no
download) with the default shipped model, decodes them, and prints bpp from
file sizes and PSNR. Writes originals, ``.saicm`` files, decoded PNGs and one
side-by-side PNG.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from .codec.image_io import save_image
from .codec.pipeline import compress_file, decompress_file, default_quality
from .eval.metrics import psnr
from .models.zoo import load_model

SAMPLES = ("astronaut", "coffee", "chelsea", "rocket", "camera")


def sample_images() -> dict[str, Image.Image]:
    import skimage.data

    return {n: Image.fromarray(getattr(skimage.data, n)()) for n in SAMPLES}


def side_by_side(panels: list[tuple[str, Image.Image]], height: int = 384) -> Image.Image:
    """Images scaled to one height, left to right, each with a caption bar."""
    scaled = []
    for label, im in panels:
        im = im.convert("RGB")
        w = round(im.width * height / im.height)
        scaled.append((label, im.resize((w, height), Image.LANCZOS)))
    bar = 22
    out = Image.new("RGB", (sum(im.width for _, im in scaled) + 4 * (len(scaled) - 1), height + bar), "white")
    draw = ImageDraw.Draw(out)
    x = 0
    for label, im in scaled:
        out.paste(im, (x, bar))
        draw.text((x + 4, 4), label, fill="black")
        x += im.width + 4
    return out


def run_demo(out_dir: str | Path = "demo-out", model: str | None = None, quality: int | None = None) -> list[dict]:
    out = Path(out_dir)
    (out / "original").mkdir(parents=True, exist_ok=True)
    net, info = load_model(model)
    q = quality or default_quality(net.num_qualities)
    print(f"model {info.name} (quality {q} of 1..{net.num_qualities}); output in {out}/")
    print(f"{'image':<10} {'size':>9} {'bytes':>7} {'bpp':>7} {'PSNR dB':>8} {'enc s':>6} {'dec s':>6}")
    rows = []
    first = None
    for name, img in sample_images().items():
        src = out / "original" / f"{name}.png"
        save_image(img, src)
        enc = compress_file(src, out / f"{name}.saicm", model=info.path, quality=q)
        dec = decompress_file(out / f"{name}.saicm", out / f"{name}.decoded.png")
        decoded = Image.open(out / f"{name}.decoded.png")
        p = psnr(np.asarray(img.convert("RGB")), np.asarray(decoded.convert("RGB")))
        row = {"image": name, "width": img.width, "height": img.height, "bytes": enc["bytes"],
               "bpp": enc["bpp"], "psnr": p, "encode_s": enc["seconds"], "decode_s": dec["seconds"]}
        rows.append(row)
        print(f"{name:<10} {img.width:>4}x{img.height:<4} {enc['bytes']:>7} {enc['bpp']:>7.4f} {p:>8.2f} "
              f"{enc['seconds']:>6.2f} {dec['seconds']:>6.2f}")
        if first is None:
            first = (name, img, decoded, row)
    name, img, decoded, row = first
    panels = [("original", img), (f"{info.name} q{q}: {row['bpp']:.3f} bpp, {row['psnr']:.2f} dB", decoded)]
    sbs = out / f"{name}_side_by_side.png"
    save_image(side_by_side(panels), sbs)
    print(f"mean bpp {np.mean([r['bpp'] for r in rows]):.4f}, mean PSNR {np.mean([r['psnr'] for r in rows]):.2f} dB; "
          f"side-by-side: {sbs}")
    return rows
