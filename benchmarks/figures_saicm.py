"""Figures for the SA-ICM docs: mask previews over α, a side-by-side at similar bpp, and a two-layer file's layers.

    python benchmarks/figures_saicm.py masks IMAGE... -o docs/masks_alpha.png [--alphas 0.98,0.78,0.48]
    python benchmarks/figures_saicm.py side IMAGE -o docs/side_by_side.png --models mse-...,saicm-...,object-... \
        [--bpp 0.3]
    python benchmarks/figures_saicm.py layers IMAGE -o docs/side_by_side_layers.png [--model SCALABLE] \
        [--quality 4 --human-quality 7]
    python benchmarks/figures_saicm.py frames CLIP#A:B[@WxH] --frame K -o docs/video_strip.png \
        nerv-s=foreman-nerv-s.saicmv sa-nerv-s=foreman-sa-s.saicmv ...

``masks`` runs the weight-free ``regions`` source (the one the shipped models
were trained with) at each α and draws the edges over the image. ``side``
codes IMAGE with each model at its rate point closest in bpp to ``--bpp``
(real file sizes) and lays the decodes out beside the original. ``layers``
codes IMAGE as a two-layer file and shows the machine layer alone, both layers,
and the MSE model at the rate point whose file is closest in size to both layers.
``frames`` decodes ``.saicmv`` files of one clip and lays frame K (counted from
the range's first frame) of each beside the original frame and its edge mask
(the ``regions`` source at α = 0.48, what ``sa-nerv`` trains with).
"""

import argparse
import sys
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from saicm.codec.image_io import load_image  # noqa: E402
from saicm.codec.pipeline import closest_quality, decompress  # noqa: E402
from saicm.commands.argtypes import existing  # noqa: E402
from saicm.demo import side_by_side  # noqa: E402
from saicm.eval.metrics import psnr  # noqa: E402
from saicm.masks.edges import overlay, segment_edges  # noqa: E402
from saicm.masks.regions import RegionSegmenter  # noqa: E402
from saicm.models.zoo import load_model  # noqa: E402


def clip_spec(s: str) -> str:
    """CLIP, CLIP#A:B or CLIP#A:B@WxH whose CLIP exists (checked as the arguments are parsed)."""
    from saicm.video.evaluate import parse_spec

    existing(parse_spec(s)[0])
    return s


def labelled_file(s: str) -> str:
    """LABEL=FILE or FILE (as cmd_frames splits it) whose FILE exists."""
    label, sep, file = s.partition("=")
    existing(s if not sep or "/" in label else file)
    return s


def grid(rows: list[list[tuple[str, Image.Image]]], height: int) -> Image.Image:
    strips = [side_by_side(r, height=height) for r in rows]
    w = max(s.width for s in strips)
    out = Image.new("RGB", (w, sum(s.height for s in strips) + 4 * (len(strips) - 1)), "white")
    y = 0
    for s in strips:
        out.paste(s, (0, y))
        y += s.height + 4
    return out


def cmd_masks(a) -> None:
    alphas = [float(v) for v in a.alphas.split(",")]
    rows = []
    for path in a.images:
        rgb = load_image(path).rgb
        row = [(Path(path).name, Image.fromarray(rgb))]
        for al in alphas:
            labels = RegionSegmenter(alpha=al)(rgb)
            e = segment_edges(labels, width=a.edge_width)
            row.append((f"regions α={al}: {len(np.unique(labels))} segments, {100 * e.mean():.1f}% edge px",
                        Image.fromarray(overlay(rgb, e))))
        rows.append(row)
    grid(rows, a.height).save(a.output)
    print(f"wrote {a.output}")


def cmd_side(a) -> None:
    img = Image.fromarray(load_image(a.image).rgb)
    rgb = np.asarray(img)
    panels = [("original", img)]
    for name in a.models.split(","):
        _, info = load_model(name)
        q, data = closest_quality(img, a.bpp, model=info.path)
        bpp = 8 * len(data) / (img.width * img.height)
        dec = decompress(data, model=info.path).convert("RGB")  # a file's path: retired models too
        p = psnr(rgb, np.asarray(dec))
        print(f"{info.name}: q{q} {bpp:.3f} bpp {p:.2f} dB")
        panels.append((f"{info.name} q{q}: {bpp:.3f} bpp, {p:.1f} dB", dec))
    side_by_side(panels, height=a.height).save(a.output)
    print(f"wrote {a.output}")


def cmd_layers(a) -> None:
    from saicm.codec.pipeline import compress
    from saicm.codec.scalable import strip
    from saicm.models.zoo import RECOMMENDED_SCALABLE_MODEL

    img = Image.fromarray(load_image(a.image).rgb)
    rgb = np.asarray(img)
    px = img.width * img.height
    model = a.model or RECOMMENDED_SCALABLE_MODEL
    two = compress(img, model=model, quality=a.quality, human_quality=a.human_quality)
    machine = strip(two)
    q, mse = closest_quality(img, 8 * len(two) / px, model=a.mse)

    def panel(label, data, **kw):
        dec = decompress(data, **kw).convert("RGB")
        p = psnr(rgb, np.asarray(dec))
        print(f"{label}: {len(data)} B, {8 * len(data) / px:.3f} bpp, {p:.2f} dB")
        return f"{label}: {len(data)} B, {8 * len(data) / px:.3f} bpp, {p:.1f} dB", dec

    panels = [("original", img), panel(f"machine layer (q{a.quality})", machine),
              panel(f"machine + human layers (q{a.human_quality})", two), panel(f"{a.mse} alone (q{q})", mse)]
    side_by_side(panels, height=a.height).save(a.output)
    print(f"wrote {a.output}")


def cmd_frames(a) -> None:
    from saicm.video.api import decode
    from saicm.video.evaluate import parse_spec
    from saicm.video.io import read_clip

    path, frames, size = parse_spec(a.clip)
    clip = read_clip(path, frames, size)
    orig = clip.frames[a.frame]
    labels = RegionSegmenter(alpha=0.48)(orig)
    e = segment_edges(labels, width=1)
    panels = [(f"original, frame {clip.first + a.frame}", Image.fromarray(orig)),
              (f"edges (regions α=0.48): {100 * e.mean():.1f}% px", Image.fromarray(overlay(orig, e)))]
    for spec in a.files:
        label, sep, file = spec.partition("=")
        if not sep or "/" in label:  # a path without a label (paths may hold '=')
            label, file = "", spec
        data = Path(file).read_bytes()
        dec = decode(data).frames
        if dec.shape != clip.frames.shape:
            raise SystemExit(f"{file}: {dec.shape} frames, the clip has {clip.frames.shape}")
        bpp = 8 * len(data) / (clip.width * clip.height * clip.n)
        p = psnr(orig, dec[a.frame])
        print(f"{label or file}: {len(data)} B, {bpp:.4f} bpp, frame {a.frame} {p:.2f} dB")
        panels.append((f"{label or Path(file).stem}: {len(data) / 1000:.1f} kB, {bpp:.3f} bpp, {p:.1f} dB",
                       Image.fromarray(dec[a.frame])))
    rows = [panels[i: i + a.columns] for i in range(0, len(panels), a.columns)]
    grid(rows, a.height).save(a.output)
    print(f"wrote {a.output}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    m = sub.add_parser("masks")
    m.add_argument("images", nargs="+", type=existing)
    m.add_argument("-o", "--output", required=True)
    m.add_argument("--alphas", default="0.98,0.78,0.48")
    m.add_argument("--edge-width", type=int, default=1)
    m.add_argument("--height", type=int, default=320)
    m.set_defaults(func=cmd_masks)
    s = sub.add_parser("side")
    s.add_argument("image", type=existing)
    s.add_argument("-o", "--output", required=True)
    s.add_argument("--models", required=True, help="comma-separated model names or paths")
    s.add_argument("--bpp", type=float, default=0.3)
    s.add_argument("--height", type=int, default=360)
    s.set_defaults(func=cmd_side)
    ly = sub.add_parser("layers")
    ly.add_argument("image", type=existing)
    ly.add_argument("-o", "--output", required=True)
    ly.add_argument("--model", help="scalable model (default: the recommended one)")
    ly.add_argument("--mse", default="mse-hyperprior-n64-v5")
    ly.add_argument("--quality", type=int, default=4)
    ly.add_argument("--human-quality", type=int, default=7)
    ly.add_argument("--height", type=int, default=360)
    ly.set_defaults(func=cmd_layers)
    fr = sub.add_parser("frames")
    fr.add_argument("clip", type=clip_spec, help="CLIP, CLIP#A:B or CLIP#A:B@WxH (as saicm eval --dataset)")
    fr.add_argument("files", nargs="+", type=labelled_file,
                    help="LABEL=FILE.saicmv (or FILE.saicmv) of that clip and range")
    fr.add_argument("-o", "--output", required=True)
    fr.add_argument("--frame", type=int, default=0)
    fr.add_argument("--columns", type=int, default=4)
    fr.add_argument("--height", type=int, default=288)
    fr.set_defaults(func=cmd_frames)
    a = ap.parse_args()
    a.func(a)
    return 0


if __name__ == "__main__":
    sys.exit(main())
