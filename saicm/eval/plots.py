"""Rate–metric curves from results files (PNG and SVG, matplotlib, no display)."""

from __future__ import annotations

from pathlib import Path

from .._fs import atomic_path
from ..errors import SaicmError, names_as_utf8, printable
from .results import curve, ground_truths

METRIC_LABELS = {
    "psnr": "PSNR (dB)",
    "ms_ssim": "MS-SSIM",
    "ap": "AP (%)",
    "ap50": "AP50 (%)",
    "box_ap": "box AP (%)",
    "box_ap50": "box AP50 (%)",
    "mask_ap": "mask AP (%)",
    "mask_ap50": "mask AP50 (%)",
    "face_retention": "faces still found (%)",
}

#: Okabe & Ito's colours, told apart by red-green colour-blind readers (their yellow left out: too pale on white)
COLOURS = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000")
#: markers and line styles, cycled at coprime lengths (7, 4): the first 28 curves differ in marker or line style,
#: so they are told apart in grayscale print and without colour vision, not by colour alone
MARKERS = ("o", "s", "^", "D", "v", "P", "X")
LINESTYLES = ("-", "--", "-.", ":")


def curve_style(i: int) -> dict:
    """Colour, marker and line style of the ``i``-th curve of a figure."""
    return {"color": COLOURS[i % len(COLOURS)], "marker": MARKERS[i % len(MARKERS)],
            "linestyle": LINESTYLES[i % len(LINESTYLES)]}


def shown_name(text) -> str:
    """A name from a results file as a figure (and the words for it) shows it: a lone surrogate (``"\\ud800"`` in
    the JSON) made matplotlib raise a TypeError traceback from plot and report, and control characters were missing
    glyphs (a warning each); both as escapes, as the command line's messages show them."""
    return printable(names_as_utf8(str(text)))


def pseudo_ground_truth(res: dict, metric: str) -> bool:
    """Whether ``res`` scored ``metric`` against pseudo ground truth (not to be compared with official labels)."""
    return "pseudo" in ground_truths(res, metric)


def measured(res: dict, metric: str) -> bool:
    """Whether ``res`` has a value of ``metric`` at some point (``null``: not measured there)."""
    return any(p.get(metric) is not None for p in res["points"])


def check_metric(results: list[dict], metric: str) -> None:
    """A one-line error if no results file has ``metric`` (a plot of it would be empty)."""
    if not any(metric in p for res in results for p in res["points"]):
        known = sorted({k for res in results for p in res["points"] for k in p if k in METRIC_LABELS})
        raise SaicmError(f"no results file has metric {metric!r} (they have: {', '.join(known) or 'none'})")
    if not any(measured(res, metric) for res in results):
        raise SaicmError(f"no results file measured {metric!r} at any point (null everywhere)")


def matplotlib_agg():
    """``matplotlib`` on its Agg back-end. Where it has no folder for its configuration and font cache (no home, no
    ``$MPLCONFIGDIR``, and no writable temporary folder: a locked-down container), its import fails: that is one
    :class:`SaicmError` line naming ``MPLCONFIGDIR``, not a traceback of ~30 lines from ``saicm plot`` or
    ``saicm report``."""
    try:
        import matplotlib
    except OSError as e:
        cause = e.__cause__ or e.__context__ or e
        raise SaicmError(f"matplotlib has no writable folder for its configuration and font cache "
                         f"({getattr(cause, 'strerror', None) or cause}): point MPLCONFIGDIR at a writable "
                         "folder") from None
    matplotlib.use("Agg")
    return matplotlib


def figure_style():
    """The context the figures are drawn and saved in: matplotlib's defaults, whatever the user's matplotlibrc says
    (``text.usetex: True``, common in papers, sent every label through LaTeX: a traceback without a LaTeX install,
    and codec names with ``_`` or ``%`` fail in it; ``axes.formatter.use_locale`` wrote 0,5 bpp in a German
    locale). The same results give the same figure anywhere, and the same SVG: its element ids salted alike (they
    were salted at random, so two SVGs of the same results differed throughout; the caller leaves out the date)."""
    matplotlib_agg()
    import matplotlib.style

    return matplotlib.style.context(["default", {"svg.hashsalt": "saicm"}])


def curves_figure(results: list[dict], metric: str, title: str = "", size=(6.4, 4.4), anchor: dict | None = None):
    """A matplotlib figure: one line per results file, the uncompressed reference dotted; ``anchor`` (one of
    ``results``), the BD-rate anchor, is named so in the legend."""
    matplotlib_agg()
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=size, dpi=120)
    drawn = 0
    handles, labels = [], []
    shown = [res for res in results if measured(res, metric)]  # (a run without this metric, or null at every
    # point, is left out of this plot)
    pseudo = [pseudo_ground_truth(res, metric) for res in shown]
    mixed = any(pseudo) and not all(pseudo)  # (then each pseudo curve says so)
    refs: dict[float, list[tuple[str, dict]]] = {}  # reference value -> (codec, its curve's style)
    for res in shown:
        rates, values = curve(res, metric)
        (line,) = ax.plot(rates, values, markersize=4, linewidth=1.4, **curve_style(drawn))
        handles.append(line)
        labels.append(shown_name(res["codec"]) + (" (BD-rate anchor)" if res is anchor else "")
                      + (" (pseudo ground truth)" if mixed and pseudo[drawn] else ""))
        ref = res.get("reference", {}).get(metric)
        if ref is not None:
            refs.setdefault(ref, []).append((shown_name(res["codec"]), curve_style(drawn)))
        drawn += 1
    # the task's score on the uncompressed images: one line per distinct value, named in the legend (it was drawn
    # once per file and named nowhere); several values (other task models or datasets) each say whose they are
    for ref, owners in refs.items():
        colour = "0.35" if len(refs) == 1 else owners[0][1]["color"]
        handles.append(ax.axhline(ref, color=colour, linestyle=(0, (1, 2)), linewidth=1.2))
        labels.append("uncompressed images" if len(refs) == 1 else
                      ", ".join(c for c, _ in owners) + ": uncompressed")
    ax.set_xlabel(rate_label(shown))
    ax.set_ylabel(METRIC_LABELS.get(metric, metric) + (" against pseudo ground truth" if all(pseudo) and pseudo
                                                          else ""))
    ax.grid(True, alpha=0.3)
    # (handles and labels given: a label starting with '_' was left out of the legend; no mathtext: names with '$'
    # were typeset as formulas, or failed to parse)
    labels = [_wrap(label) for label in labels]
    beside = len(handles) > LEGEND_INSIDE_MAX or any("\n" in label for label in labels)
    where = dict(loc="upper left", bbox_to_anchor=(1.02, 1), borderaxespad=0) if beside else {}
    legend = ax.legend(handles, labels, fontsize=8, **where)
    for t in legend.get_texts():
        t.set_parse_math(False)
    if title:
        ax.set_title(shown_name(title), fontsize=10, parse_math=False)
    if beside:  # many or long names: beside the axes (over them, they hid curves), the figure widened to hold it
        fig.canvas.draw()
        width = legend.get_window_extent().width / fig.dpi
        fig.set_size_inches(size[0] + width + 0.15, size[1])
    fig.tight_layout()
    return fig


def human_layer(res: dict) -> bool:
    """Whether ``res`` measured a two-layer model's human layer, whose rate counts both layers' bytes (the file a
    person's decoder needs)."""
    cfg = res.get("codec_config")
    return isinstance(cfg, dict) and cfg.get("layer") == "human"


def rate_label(results: list[dict]) -> str:
    """The rate axis' label: a human layer's curve says its rate is both layers' (it read as the human layer's
    alone beside single-layer codecs); CompressAI's estimated rates are not file sizes."""
    from .results import estimated_rates

    return ("bits per pixel (from file sizes" + ("; human layer: both layers" if any(map(human_layer, results)) else "")
            + ("; some estimated, not coded" if any(map(estimated_rates, results)) else "") + ")")


#: more legend entries than this go beside the axes, not over them
LEGEND_INSIDE_MAX = 5
#: legend labels are wrapped at this many characters (a model given by its path made the legend wider than the figure)
LEGEND_WRAP = 36


def _wrap(label: str) -> str:
    import textwrap

    return "\n".join(textwrap.wrap(label, LEGEND_WRAP)) if len(label) > LEGEND_WRAP else label


def curves_description(results: list[dict], metric: str) -> str:
    """What a curves figure shows, in words: the text a screen reader reads for it (the SVG's title, the PNG's
    Description; the report's figures add which curve is the anchor)."""
    shown = [shown_name(r["codec"]) for r in results if measured(r, metric)]
    return f"{METRIC_LABELS.get(metric, metric)} against bits per pixel, a curve for each of {', '.join(shown)}"


def plot_curves(results: list[dict], metric: str, out: str | Path, title: str = "") -> list[Path]:
    """Writes ``out`` with .png and .svg suffixes (atomically); returns both paths. A one-line error if no
    results file has ``metric``."""
    matplotlib_agg()
    import matplotlib.pyplot as plt

    check_metric(results, metric)
    out = Path(out)
    paths = [out.with_suffix(".png"), out.with_suffix(".svg")]
    with figure_style():
        fig = curves_figure(results, metric, title)
        words = curves_description(results, metric)  # (the SVG's <title>, the PNG's text chunks: for screen readers)
        try:
            for p in paths:
                with atomic_path(p) as tmp:
                    # (the SVG's date left out: `saicm plot` of the same results files writes the same files)
                    fig.savefig(tmp, format=p.suffix[1:],
                                metadata={"Title": shown_name(title) if title else words, "Description": words,
                                          **({"Date": None} if p.suffix == ".svg" else {})})
        finally:
            plt.close(fig)
    return paths
