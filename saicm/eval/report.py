"""One self-contained HTML page: curves, BD-rate tables, matched-rate crops.

Everything is inlined (SVG curves, PNG crops as data URIs), so the page can be
mailed or attached to an issue as one file.
"""

from __future__ import annotations

import base64
import html
import io
import re
from pathlib import Path
from typing import Callable, Sequence

from PIL import Image

from ..errors import names_as_utf8, printable
from .bdrate import BDRateError, bd_rate
from .paths import display_path, display_spec
from .plots import (METRIC_LABELS, check_metric, curves_description, curves_figure, figure_style, matplotlib_agg,
                    measured, shown_name)
from .results import ESTIMATED, NOT_SCORES, curve, estimated_rates, left_out_words, row_notes


def _svg_curves(results: list[dict], metric: str, key: str) -> str:
    """The plot as inline SVG, an image with a title for screen readers (its text is glyph outlines); ``key``:
    unique in the page."""
    matplotlib_agg()
    import matplotlib.pyplot as plt

    buf = io.StringIO()
    # (the time of drawing, and element ids salted at random: two pages of the same files differed in every plot)
    with figure_style():  # (its element ids salted alike)
        fig = curves_figure(results, metric, size=(6.0, 4.0), anchor=results[0])
        fig.savefig(buf, format="svg", metadata={"Date": None})
        plt.close(fig)
    svg = buf.getvalue()
    svg = _own_ids(svg[svg.index("<svg"):], key)
    title = (f"{curves_description(results, metric)}; "
             f"{shown_name(results[0]['codec'])} is the BD-rate anchor (the values are in the table of values plotted)")
    end = svg.index(">")  # (of the opening tag)
    return (f'{svg[:end]} role="img" aria-labelledby="{key}title"><title id="{key}title">{_esc(title)}'
            f"</title>{svg[end + 1:]}")


def _esc(text) -> str:
    """Text from a results file (or the command line) as page text: HTML-escaped, and its control and bidirectional
    formatting characters shown as escapes (as the terminal shows them: a NUL is no character of HTML, a right-to-left
    override reversed what follows it in its cell)."""
    return html.escape(printable(text))


def _own_ids(svg: str, key: str) -> str:
    """``svg`` with its element ids (and the references to them) prefixed by ``key``: every plot matplotlib writes
    uses the same ids (figure_1, glyphs such as DejaVuSans-30), duplicates in one page."""
    svg = re.sub(r'\bid="([^"]+)"', rf'id="{key}-\1"', svg)
    svg = re.sub(r'href="#([^"]+)"', rf'href="#{key}-\1"', svg)
    return re.sub(r"url\(#([^)]+)\)", rf"url(#{key}-\1)", svg)


def _values_table(results: list[dict], metric: str) -> str:
    """What a plot shows, as text: each codec's points (a screen reader cannot read the curves)."""
    label = _esc(METRIC_LABELS.get(metric, metric))
    rows = "".join(f"<tr><td>{_esc(r['codec'])}</td><td class=num>{b:.4f}</td>"
                   f"<td class=num>{v:.{4 if abs(v) < 2 else 2}f}</td></tr>"  # (MS-SSIM: four decimals)
                   for r in results if measured(r, metric) for b, v in zip(*curve(r, metric)))
    out = "".join(f"<p>{_esc(r['codec'])}: {_esc(said)} (not plotted).</p>" for r in results
                  if (said := left_out_words(r, metric)))
    return (f"<details><summary>Values plotted</summary><table><caption>{label} by codec and rate</caption>"
            f"<tr><th scope=col>codec</th><th scope=col>bits per pixel</th><th scope=col>{label}</th></tr>{rows}"
            f"</table>{out}</details>")


def _png_uri(img: Image.Image) -> str:
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


def _bd_table(results: list[dict], metric: str) -> str:
    if metric in NOT_SCORES:  # (plotted against the rate, as asked; a BD-rate of it is a number without meaning)
        return f"<p>No BD-rate: {_esc(metric)} is not a score.</p>"
    if len(results) < 2:  # (was a table of headers alone)
        return f"<p>BD-rate needs a second results file to compare with {_esc(results[0]['codec'])}.</p>"
    anchor = results[0]
    rows = []
    for res in results[1:]:
        try:
            r = bd_rate(*curve(anchor, metric), *curve(res, metric), envelope=True)
            cell = f"{r.percent:+.1f}%"
            # (as `saicm bdrate` prints them: three decimals, an MS-SSIM range read 0.94–1.00 at two; the coverage and
            # its warning were the terminal's alone)
            note = (f"{r.interval[0]:.3f}–{r.interval[1]:.3f} (covers {r.coverage[0]:.0%} of the anchor's range, "
                    f"{r.coverage[1]:.0%} of this one's)")
            note += "".join(f"; {n}" for n in row_notes(anchor, res, metric, r))  # (as `saicm bdrate` says them)
        except (BDRateError, Exception) as e:  # noqa: B014 — any missing metric is shown, not fatal
            cell, note = "n/a", str(e)
        rows.append(f"<tr><td>{_esc(res['codec'])}</td><td class=num>{cell}</td>"
                    f"<td>{_esc(note)}</td></tr>")
    # (a caption and column headers' scope, as the table of values has: a screen reader announced a table of
    # unnamed cells)
    return (f"<table><caption>BD-rate on {_esc(metric)} against {_esc(anchor['codec'])} (negative = fewer bits)"
            f"</caption><tr><th scope=col>codec vs {_esc(anchor['codec'])}</th>"
            f"<th scope=col>BD-rate ({_esc(metric)})</th>"
            f"<th scope=col>{_esc(metric)} range integrated (not a confidence interval)</th></tr>{''.join(rows)}"
            "</table>")


def build_report(results: list[dict], out: str | Path, metrics: Sequence[str] = ("psnr",),
                 crops: list[tuple[str, Image.Image]] | None = None, title: str = "saicm evaluation",
                 root: str | Path | None = None) -> Path:
    """Write the HTML page; ``results[0]`` is the BD-rate anchor; ``crops`` are (caption, image) panels.

    Datasets and task-model files are named relative to ``root`` (default: the
    current directory), never by absolute path: see :func:`saicm.eval.paths.display_path`.
    """
    from .._fs import write_bytes_atomic

    for m in metrics:
        check_metric(results, m)  # (an unknown one gave an empty plot)
    parts = [f"<h1>{_esc(title)}</h1>"]
    # one name per set of pictures: the same folder given by a relative path to one run and an absolute one to
    # another was shown twice; its fingerprint (dataset_sha256, since 0.27.0) says they are one (the first name shown)
    names: dict = {}
    for r in results:
        fp = r.get("dataset_sha256")
        names.setdefault(fp if isinstance(fp, str) else ("path", display_path(r.get("dataset", ""), root)),
                         display_path(r.get("dataset", ""), root))
    ds = sorted(set(names.values()))
    estimated = [r["codec"] for r in results if estimated_rates(r)]  # (the page said "real file sizes" of them)
    sizes = ("Rates are from real file sizes" + (f", except those of {', '.join(estimated)}: {ESTIMATED}"
                                                  if estimated else "") + ". ")
    parts.append("<p>Dataset: " + _esc(", ".join(ds)) + ". " + _esc(sizes) +
                 f"BD-rate: PCHIP on log-rate over the overlapping interval, negative = fewer bits.</p>")
    for i, m in enumerate(metrics):
        parts.append(f"<h2>{_esc(METRIC_LABELS.get(m, m))}</h2><div class=row>"
                     f"<div>{_svg_curves(results, m, f'plot{i}')}</div><div>{_bd_table(results, m)}"
                     f"{_values_table(results, m)}</div></div>")
    # the task's scores on the uncompressed images: one line per distinct set, naming its runs when they differ (the
    # first file's alone was shown for every run: a YOLOX run's page said PicoDet's 41.87 AP)
    refs: dict[str, list[str]] = {}
    for r in results:
        shown = ", ".join(f"{_esc(k)} = {v:.2f}" for k, v in (r.get("reference") or {}).items()
                          if isinstance(v, (int, float)) and not isinstance(v, bool))
        if shown:
            refs.setdefault(shown, []).append(r["codec"])
    if len(refs) == 1:
        parts.append(f"<p>Uncompressed reference: {next(iter(refs))}</p>")
    elif refs:
        parts.append("<p>Uncompressed reference:</p><ul>" + "".join(
            f"<li>{_esc(', '.join(codecs))}: {shown}</li>" for shown, codecs in refs.items()) + "</ul>")
    if crops:
        parts.append("<h2>Matched-rate crops</h2><div class=crops>")
        for caption, img in crops:
            parts.append(f"<figure><img src='{_png_uri(img)}' alt=\"{_esc(caption)}\">"
                         f"<figcaption>{_esc(caption)}</figcaption></figure>")
        parts.append("</div>")
    rows = "".join(
        f"<tr><td>{_esc(r['codec'])}</td><td>{len(r['points'])}</td>"
        f"<td>{_esc(str(r.get('num_images', '')))}</td><td>{_esc(str(r.get('task', '')))}</td>"
        f"<td>{_esc(str(display_spec(r.get('task_model'), root)))}</td>"
        f"<td>{_esc(str(r.get('created', '')))}</td></tr>" for r in results)
    parts.append("<h2>Runs</h2><table><caption>The results files, first the BD-rate anchor</caption><tr>"
                 + "".join(f"<th scope=col>{h}</th>" for h in ("codec", "points", "images", "task", "task model",
                                                               "created")) + f"</tr>{rows}</table>")
    style = ("body{font-family:sans-serif;max-width:1200px;margin:2em auto;color:#222}"
             "table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:4px 8px}"
             ".num{text-align:right;font-variant-numeric:tabular-nums}.row{display:flex;gap:2em;align-items:flex-start}"
             ".crops{display:flex;flex-wrap:wrap;gap:8px}figure{margin:0;flex:0 0 calc(50% - 4px)}"
             ".crops img{width:100%;height:auto}figcaption{font-size:12px}"
             "svg{max-width:600px;height:auto}")
    page = (f"<!doctype html><html lang=en><head><meta charset=utf-8><title>{_esc(title)}</title>"
            f"<style>{style}</style></head><body>{''.join(parts)}</body></html>")
    out = Path(out)
    write_bytes_atomic(out, names_as_utf8(page).encode())  # (a name that is not UTF-8 raised)
    return out


def matched_rate_crops(results: list[dict], images: dict[str, Image.Image], image_name: str, target_bpp: float,
                       get_codec: Callable, draw: Callable[[Image.Image], Image.Image] | None = None,
                       box: tuple[int, int, int, int] | None = None) -> list[tuple[str, Image.Image]]:
    """Original plus, per codec, the decode of ``image_name`` at the quality whose bpp is nearest ``target_bpp``."""
    orig = images[image_name]
    box = box or (0, 0, orig.width, orig.height)
    panels = [(f"original: {image_name}", (draw(orig) if draw else orig).crop(box))]
    for res in results:
        # (entries with a rate: a hand-made file's null or missing bpp was a TypeError or KeyError traceback)
        per = [p for p in res.get("per_image", {}).get(image_name) or () if p.get("bpp") is not None]
        if not per:
            continue
        best = min(per, key=lambda p: abs(p["bpp"] - target_bpp))
        codec = _codec_of(res, get_codec)
        if codec is None:
            continue
        dec = codec.decode(codec.encode(orig, best["quality"]))
        qlabel = f"QP {best['quality']}" if getattr(codec, "quality_is_qp", False) else f"q{best['quality']}"
        # (null: an exact decode, whose infinite PSNR is written so; it was a TypeError traceback)
        quality = f"{best['psnr']:.2f} dB" if best.get("psnr") is not None else "identical to the original"
        panels.append((f"{res['codec']} {qlabel}: {best['bpp']:.3f} bpp, {quality}",
                       (draw(dec) if draw else dec).crop(box)))
    return panels


def _codec_of(res: dict, get_codec: Callable):
    """The codec that made ``res``, to decode a crop with, or None (a warning says why): a codec saicm cannot
    rebuild by its name (another tool's results; a model evaluated by path and not in ``$SAICM_MODELS``), or a
    model of that name whose weights are not those the results measured (its crop would be captioned with
    another model's figures)."""
    from ..errors import warn as saicm_warn

    from ..errors import SaicmError

    try:
        codec = get_codec(res["codec"])
    except SaicmError as e:
        saicm_warn(f"no crop of {res['codec']}: {e} (a model evaluated by its path is found by name in "
                   "$SAICM_MODELS)")
        return None
    want = (res.get("codec_config") or {}).get("weights_sha256_prefix")
    if want is not None and want != codec.config().get("weights_sha256_prefix"):
        saicm_warn(f"no crop of {res['codec']}: the model of that name is not the weights these results "
                   f"measured (weights {want})")
        return None
    return codec
