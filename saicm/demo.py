"""``saicm demo``: the main job on the embedded default.

Codes scikit-image's bundled sample photos (shipped inside its wheel, no
download) with the default shipped model, decodes them, and prints bpp from
file sizes and PSNR. Writes originals, ``.saicm`` files, decoded PNGs and one
side-by-side PNG. When an SA-ICM model (``saicm-…``) is shipped, the same
images are also coded with it at the rate point closest in bpp to the MSE
decode, and the side-by-side shows original / MSE / SA-ICM.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from ._fs import ensure_dir, write_bytes_atomic
from .codec.image_io import save_image
from .codec.pipeline import closest_quality, compress_file, decompress_file
from .errors import SaicmError
from .eval.metrics import psnr
from .models.catalog import (BEST_MACHINE_MODELS, RECOMMENDED_MACHINE_MODEL, RECOMMENDED_SCALABLE_MODEL,
                             checked_quality, default_quality, shipped_models)
from .models.zoo import load_model

SAMPLES = ("astronaut", "coffee", "chelsea", "rocket", "camera")


def sample_images() -> dict[str, Image.Image]:
    import skimage.data

    return {n: Image.fromarray(getattr(skimage.data, n)()) for n in SAMPLES}


def caption_font(size: int = 14):
    """DejaVu Sans from matplotlib's own files (it has α, λ and ≈), else Pillow's default font."""
    from PIL import ImageFont

    try:
        from matplotlib import font_manager

        return ImageFont.truetype(font_manager.findfont("DejaVu Sans", fallback_to_default=True), size)
    except Exception:  # noqa: BLE001 — captions are cosmetic
        return ImageFont.load_default()


def _wrap(label: str, font, width: int) -> list[str]:
    """Greedy word wrap of ``label`` to lines no wider than ``width`` pixels (a long word stays whole)."""
    lines: list[str] = []
    for word in label.split():
        if lines and font.getlength(lines[-1] + " " + word) <= width:
            lines[-1] += " " + word
        else:
            lines.append(word)
    return lines or [""]


def side_by_side(panels: list[tuple[str, Image.Image]], height: int = 384) -> Image.Image:
    """Images scaled to one height, left to right, each with a caption (wrapped to the panel's width)."""
    scaled = []
    for label, im in panels:
        im = im.convert("RGB")
        w = round(im.width * height / im.height)
        scaled.append((label, im.resize((w, height), Image.LANCZOS)))
    font = caption_font()
    wrapped = [_wrap(label, font, im.width - 8) for label, im in scaled]
    line_h = 17
    bar = 5 + line_h * max(len(lines) for lines in wrapped)
    out = Image.new("RGB", (sum(im.width for _, im in scaled) + 4 * (len(scaled) - 1), height + bar), "white")
    draw = ImageDraw.Draw(out)
    x = 0
    for (label, im), lines in zip(scaled, wrapped):
        out.paste(im, (x, bar))
        for i, line in enumerate(lines):
            draw.text((x + 4, 3 + i * line_h), line, fill="black", font=font)
        x += im.width + 4
    return out


def _code_all(out: Path, tag: str, model_path, quality: int) -> list[dict]:
    rows = []
    for name, img in sample_images().items():
        src = out / "original" / f"{name}.png"
        if not src.is_file():
            save_image(img, src)
        enc = compress_file(src, out / f"{name}{tag}.saicm", model=model_path, quality=quality)
        dec = decompress_file(out / f"{name}{tag}.saicm", out / f"{name}{tag}.decoded.png")
        decoded = Image.open(out / f"{name}{tag}.decoded.png")
        p = psnr(np.asarray(img.convert("RGB")), np.asarray(decoded.convert("RGB")))
        rows.append({"image": name, "model": enc["model"], "quality": enc["quality"], "width": img.width,
                     "height": img.height, "bytes": enc["bytes"],
                     "bpp": enc["bpp"], "psnr": p, "encode_s": enc["seconds"], "decode_s": dec["seconds"],
                     "decoded": decoded, "original": img})
    return rows


def _print_rows(rows: list[dict]) -> None:
    print(f"{'image':<10} {'size':>9} {'bytes':>7} {'bpp':>7} {'PSNR dB':>8} {'enc s':>6} {'dec s':>6}")
    for r in rows:
        print(f"{r['image']:<10} {r['width']:>4}x{r['height']:<4} {r['bytes']:>7} {r['bpp']:>7.4f} {r['psnr']:>8.2f} "
              f"{r['encode_s']:>6.2f} {r['decode_s']:>6.2f}")
    print(f"mean bpp {np.mean([r['bpp'] for r in rows]):.4f}, mean PSNR {np.mean([r['psnr'] for r in rows]):.2f} dB")


def machine_model_for(base: str, preferred: str | None = RECOMMENDED_MACHINE_MODEL) -> str | None:
    """The shipped SA-ICM model to show beside ``base``: one fine-tuned from it (the best measured of them,
    ``BEST_MACHINE_MODELS``), else from its nearest ancestor (the ``--init`` chain of the shipped models), else
    ``preferred`` (the default model since 0.37.0, a context model, started from checkpoints: no chain), else the
    first."""
    models = shipped_models()
    names = [n for n in models if n.startswith("saicm-")]
    seen: set[str] = set()
    while base in models and base not in seen:
        hits = [n for n in names if models[n].training.get("init") == base]
        if hits:
            return next((n for n in (preferred, *BEST_MACHINE_MODELS) if n in hits), hits[0])
        seen.add(base)
        base = models[base].training.get("init")
    return preferred if preferred in names else names[0] if names else None


def edge_loss_words(info) -> str:
    """The SA-ICM loss of ``info`` as its training record gives it: the weight of MSE off the edges, or none."""
    off = info.training.get("off_mask_weight")
    if not isinstance(off, (int, float)):
        return "the edge loss"
    return f"the edge loss ({off:g} x MSE off the edges)" if off else "the edge loss (the pixels off the edges free)"


def run_demo(out_dir: str | Path = "demo-out", model: str | None = None, quality: int | None = None,
             compare: str | None = "auto", scalable: str | None = "auto") -> list[dict]:
    net, info = load_model(model)  # model and quality first: a wrong one leaves no output folder behind
    q = checked_quality(quality, net.num_qualities, info.name)
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise SaicmError("is a file, not an output folder", str(out))
    ensure_dir(out / "original")
    print(f"model {info.name} (quality {q} of 1..{net.num_qualities}); output in {out}/")
    rows = _code_all(out, "", info.path, q)
    _print_rows(rows)
    first = rows[0]
    panels = [("original", first["original"]),
              (f"{info.name} q{q}: {first['bpp']:.3f} bpp, {first['psnr']:.2f} dB", first["decoded"])]
    if compare == "auto":
        compare = machine_model_for(info.name)
    if compare:
        cnet, cinfo = load_model(compare)
        cq, _ = closest_quality(first["original"], first["bpp"], model=cinfo.path)
        print(f"\nSA-ICM model {cinfo.name} at quality {cq} (the rate point closest to the MSE decode of "
              f"{first['image']}): trained with {edge_loss_words(cinfo)}, so PSNR is not its goal; "
              "its decodes keep most texture, faces included (docs/results/sa-icm.md)")
        crows = _code_all(out, f".{cinfo.name}", cinfo.path, cq)
        _print_rows(crows)
        c = crows[0]
        panels.append((f"{cinfo.name} q{cq}: {c['bpp']:.3f} bpp, {c['psnr']:.2f} dB", c["decoded"]))
    sbs = out / f"{first['image']}_side_by_side.png"
    save_image(side_by_side(panels), sbs)
    print(f"side-by-side: {sbs}")
    if scalable == "auto":
        scalable = RECOMMENDED_SCALABLE_MODEL if RECOMMENDED_SCALABLE_MODEL in shipped_models() else None
    if scalable:
        _layers_demo(out, first, scalable)
    return [{k: v for k, v in r.items() if k not in ("decoded", "original")} for r in rows]


def _layers_demo(out: Path, first: dict, model: str) -> None:
    """One image as a two-layer file: the machine layer alone, then both layers, beside the MSE decode."""
    from .codec.pipeline import compress, decompress
    from .codec.scalable import strip

    net, info = load_model(model)
    img = first["original"]
    rgb = np.asarray(img.convert("RGB"))
    qb = default_quality(net.base_num_qualities)
    # the human layer at its highest rate point: below its middle one, the human image of the shipped model is
    # no better than the machine image (docs/results/scalable.md)
    qa = net.num_qualities
    data = compress(img, model=info.path, quality=qb, human_quality=qa)
    machine = strip(data)
    write_bytes_atomic(out / f"{first['image']}.{info.name}.saicm", data)  # (never a cut file by its name)
    write_bytes_atomic(out / f"{first['image']}.{info.name}.machine.saicm", machine)
    m_img, h_img = decompress(machine), decompress(data, model=info.path)
    px = rgb.shape[0] * rgb.shape[1]
    m_psnr, h_psnr = psnr(rgb, np.asarray(m_img.convert("RGB"))), psnr(rgb, np.asarray(h_img.convert("RGB")))
    print(f"\nscalable model {info.name} ({net.base_info.name} as machine layer, q{qb}; human layer q{qa}): "
          f"{first['image']}")
    print(f"  machine layer alone: {len(machine)} bytes, {8 * len(machine) / px:.4f} bpp, {m_psnr:.2f} dB")
    print(f"  machine + human:     {len(data)} bytes ({len(data) - len(machine)} for the human layer), "
          f"{8 * len(data) / px:.4f} bpp, {h_psnr:.2f} dB")
    # (named: since 0.37.0 the default MSE model is a context model, not the machine layer's v5 family)
    alone = f" ({first['model']} q{first['quality']})" if "model" in first else ""
    print(f"  MSE model alone:     {first['bytes']} bytes, {first['bpp']:.4f} bpp, {first['psnr']:.2f} dB{alone}")
    panels = [("original", img),
              (f"machine layer: {len(machine)} B, {m_psnr:.2f} dB", m_img),
              (f"machine + human layers: {len(data)} B, {h_psnr:.2f} dB", h_img),
              (f"MSE model alone: {first['bytes']} B, {first['psnr']:.2f} dB", first["decoded"])]
    path = out / f"{first['image']}_layers.png"
    save_image(side_by_side(panels), path)
    print(f"layers side-by-side: {path}")
