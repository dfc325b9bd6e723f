"""Rate–metric curves from results files (PNG and SVG, matplotlib, no display)."""

from __future__ import annotations

from pathlib import Path

from .._fs import atomic_path
from ..errors import SaicmError
from .results import curve

METRIC_LABELS = {
    "psnr": "PSNR (dB)",
    "ms_ssim": "MS-SSIM",
    "ap": "AP (%)",
    "ap50": "AP50 (%)",
    "mask_ap": "mask AP (%)",
    "face_retention": "faces still found (%)",
}


def check_metric(results: list[dict], metric: str) -> None:
    """A one-line error if no results file has ``metric`` (a plot of it would be empty)."""
    if not any(metric in p for res in results for p in res["points"]):
        known = sorted({k for res in results for p in res["points"] for k in p if k in METRIC_LABELS})
        raise SaicmError(f"no results file has metric {metric!r} (they have: {', '.join(known) or 'none'})")


def curves_figure(results: list[dict], metric: str, title: str = "", size=(6.4, 4.4)):
    """A matplotlib figure: one line per results file, the uncompressed reference dotted."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=size, dpi=120)
    for res in results:
        if not any(metric in p for p in res["points"]):  # a run without this metric is left out of this plot
            continue
        rates, values = curve(res, metric)
        ax.plot(rates, values, marker="o", markersize=3.5, linewidth=1.4, label=res["codec"])
        ref = res.get("reference", {}).get(metric)
        if ref is not None:
            ax.axhline(ref, color="0.5", linestyle=":", linewidth=1)
    ax.set_xlabel("bits per pixel (from file sizes)")
    ax.set_ylabel(METRIC_LABELS.get(metric, metric))
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    if title:
        ax.set_title(title, fontsize=10)
    fig.tight_layout()
    return fig


def plot_curves(results: list[dict], metric: str, out: str | Path, title: str = "") -> list[Path]:
    """Writes ``out`` with .png and .svg suffixes (atomically); returns both paths. A one-line error if no
    results file has ``metric``."""
    import matplotlib.pyplot as plt

    check_metric(results, metric)
    fig = curves_figure(results, metric, title)
    out = Path(out)
    paths = [out.with_suffix(".png"), out.with_suffix(".svg")]
    try:
        for p in paths:
            with atomic_path(p) as tmp:
                fig.savefig(tmp, format=p.suffix[1:])
    finally:
        plt.close(fig)
    return paths
