"""Confidence intervals for BD-rates: a paired bootstrap over the test images.

A BD-rate measured on 128 images is one draw: another 128 images would give
another figure. The bootstrap re-draws the image set ``replicates`` times with
replacement and recomputes both curves on every draw. The draws depend only on
the seed and the sorted image names, so every codec evaluated on the same
folder sees the same draws and a comparison is paired (what varies between
images, e.g. how hard they are for the detector, cancels out).

On a draw:

- the rate of a point is the mean per-image bpp of the drawn images, and a
  per-image metric (``psnr``, ``ms_ssim``) is its mean over them, both from the
  results' ``per_image`` entries: any results file carries what these need;
- COCO AP is not a mean of per-image values, so ``saicm eval --bootstrap N``
  computes it per draw at evaluation time: pycocotools' ``evaluate`` matches
  detections once per image, and each draw re-lays those per-image matches
  (an image drawn twice counts twice) and runs pycocotools' ``accumulate`` on
  them. The draws' AP and AP50 are stored with each point.

The BD-rate of every draw gives a distribution; the interval is its
percentiles (``level`` 0.95: 2.5th to 97.5th), or with ``method="bc"`` the
bias-corrected percentiles (Efron 1981): where the full-set BD-rate is not the
draws' median (AP curves that saturate make the draws skewed and off-centre),
the percentiles are shifted by z0 = Φ⁻¹(share of draws below the estimate), to
Φ(2·z0 ∓ z). Draws that give no BD-rate are left out and counted (``failed``).
With 24 images and 200 draws, a "95 %" percentile interval covered the truth
in 89–93 % of a double bootstrap on the photo results, and its AP endpoints
carry a Monte Carlo error of 1–6 points (docs/evaluation.md).
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import io
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Sequence

from ..errors import SaicmError

if TYPE_CHECKING:  # numpy and scipy are imported where used: ``saicm --help`` reads this module's defaults
    import numpy as np

    from .bdrate import BDRate

DEFAULT_REPLICATES = 200
DEFAULT_SEED = 0
#: how an interval is read from the draws: their percentiles, or bias-corrected ones (see module doc)
CI_METHODS = ("percentile", "bc")
PER_IMAGE_METRICS = ("psnr", "ms_ssim")


def spec(names: Sequence[str], replicates: int, seed: int = DEFAULT_SEED) -> dict:
    """What fixes the draws: stored in results so that two files can be checked to share them. Names are hashed as
    the bytes they stand for: a file name that is not UTF-8 holds Python's surrogate escapes (U+DC80–U+DCFF)."""
    digest = hashlib.sha256("\n".join(sorted(names)).encode("utf-8", "surrogateescape")).hexdigest()[:16]
    return {"replicates": int(replicates), "seed": int(seed), "images": digest}


def draws(num_images: int, replicates: int, seed: int = DEFAULT_SEED) -> np.ndarray:
    """``(replicates, num_images)`` indices into the sorted image names, drawn with replacement."""
    import numpy as np

    if replicates < 1 or num_images < 1:
        raise SaicmError(f"a bootstrap needs at least one image and one replicate (got {num_images}, {replicates})")
    return np.random.default_rng(seed).integers(0, num_images, size=(replicates, num_images))


def coco_replicates(ev, order: Sequence[int], idx: np.ndarray) -> dict[str, list[float | None]]:
    """AP and AP50 (0–100, area "all", 100 detections) of ``ev`` on every draw.

    ``ev``: a pycocotools ``COCOeval`` after ``evaluate()`` with its default
    area ranges and detection limits; ``order[i]``: the position in
    ``ev.params.imgIds`` of the i-th sorted image name; ``idx``: the draws.
    ``ev`` is left as it was.
    """
    import numpy as np

    pe = ev._paramsEval
    if pe.areaRngLbl[0] != "all":
        raise SaicmError("coco_replicates needs pycocotools' default area ranges ('all' first)")
    n_img, n_area = len(pe.imgIds), len(pe.areaRng)
    n_cat = len(pe.catIds) if pe.useCats else 1
    t50 = int(np.argmin(np.abs(np.asarray(pe.iouThrs) - 0.5)))
    order = np.asarray(order)
    # per category, the "all"-area entry of every image, in imgIds order
    per_cat = [ev.evalImgs[k * n_area * n_img:k * n_area * n_img + n_img] for k in range(n_cat)]
    p = copy.deepcopy(pe)
    p.areaRng, p.areaRngLbl, p.maxDets = [pe.areaRng[0]], ["all"], [max(pe.maxDets)]
    saved = ev.evalImgs, ev._paramsEval, getattr(ev, "eval", None)
    ap, ap50 = [], []

    def mean_or_none(a):
        a = a[a > -1]
        return round(100.0 * float(a.mean()), 3) if a.size else None

    try:
        for row in idx:
            pos = order[row]
            p.imgIds = list(range(len(pos)))
            ev._paramsEval = p
            ev.evalImgs = [cat[i] for cat in per_cat for i in pos]
            with contextlib.redirect_stdout(io.StringIO()):
                ev.accumulate(p)
            prec = ev.eval["precision"][:, :, :, 0, 0]
            ap.append(mean_or_none(prec))
            ap50.append(mean_or_none(prec[t50]))
    finally:
        ev.evalImgs, ev._paramsEval, ev.eval = saved
    return {"ap": ap, "ap50": ap50}


@dataclass
class BDRateCI:
    #: BD-rate on all images (the usual figure)
    percent: float
    low: float
    high: float
    level: float
    #: draws that gave a BD-rate, and those that did not (e.g. curves not overlapping on that draw)
    draws: int
    failed: int
    #: share of the draws in which the test codec needs fewer bits (BD-rate < 0)
    better: float
    #: the full-set result (interval, coverage, dropped points) that ``percent`` comes from
    full: BDRate | None = None
    #: the draws' median, and the share of draws below ``percent`` (0.5 for a centred distribution)
    median: float = math.nan
    below: float = math.nan
    #: ``percentile`` or ``bc`` (see module doc)
    method: str = "percentile"


def _no_draws(result: dict, metric: str) -> SaicmError:
    return SaicmError(f"results for {result['codec']} carry no bootstrap draws of {metric}: re-run saicm eval "
                      "with --bootstrap N (decodes are cached, only the task model re-runs)")


def _stored_key(result: dict, metric: str) -> str:
    if metric in ("ap", "ap50"):  # the task's headline AP: boxes for detection, masks for instance
        return ("mask_" if result.get("task") == "instance" else "box_") + metric
    return metric


def _per_image_matrix(result: dict, names: list[str], key: str) -> np.ndarray:
    """``(images, points)`` of a per-image value, points in ``result['points']`` order."""
    import numpy as np

    out = np.empty((len(names), len(result["points"])))
    for i, name in enumerate(names):
        by_q = {str(e["quality"]): e for e in result["per_image"][name]}
        for j, p in enumerate(result["points"]):
            e = by_q.get(str(p["quality"]))
            if e is None or key not in e:
                raise SaicmError(f"results for {result['codec']} have no per-image {key} for {name} "
                                 f"at quality {p['quality']}")
            out[i, j] = np.nan if e[key] is None else e[key]  # null: not measured (written for NaN)
    return out


def _nanmean(values: np.ndarray) -> np.ndarray:
    """``np.nanmean(values, axis=0)`` (the same sums, the same result), NaN for a column of NaN alone without its
    "Mean of empty slice" warning: silenced by ``warnings.catch_warnings``, which swaps the process's warning filters
    for every thread, a filter another thread of a service set meanwhile was lost (the reentrancy audit)."""
    import numpy as np

    have = ~np.isnan(values)
    count = have.sum(axis=0)
    total = np.where(have, values, 0.0).sum(axis=0)
    return np.divide(total, count, out=np.full(np.shape(total), np.nan), where=count > 0)


def replicate_curves(result: dict, metric: str, idx: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
    """(rates, values) of ``result`` on every draw (rows of ``idx`` index its sorted image names)."""
    import numpy as np

    names = sorted(result["per_image"])
    # every draw has the points the whole set's curve has (saicm.eval.results.curve): a point whose value is null
    # (an exact decode's infinite PSNR) is left out of every draw too, not averaged over the other images
    keep = [j for j, p in enumerate(result["points"]) if p.get(metric) is not None]
    rates = _per_image_matrix(result, names, "bpp")[:, keep]
    if metric in PER_IMAGE_METRICS:
        vals = _per_image_matrix(result, names, metric)[:, keep]
        # as the points average them (saicm.eval.rd): over the images that have the metric (MS-SSIM is NaN for
        # images of 160 pixels or less a side); a draw of such images only has no value (it fails)
        return [(rates[row].mean(axis=0), _nanmean(vals[row])) for row in idx]
    key = _stored_key(result, metric)
    stored = []
    for p in result["points"]:
        v = p.get("bootstrap", {}).get(key)
        if v is None:
            raise _no_draws(result, metric)
        if len(v) != len(idx):
            raise SaicmError(f"results for {result['codec']} have {len(v)} draws of {metric}, expected {len(idx)}")
        stored.append(v)
    vals = np.array([[np.nan if x is None else x for x in v] for v in stored], dtype=np.float64).T[:, keep]
    return [(rates[row].mean(axis=0), vals[b]) for b, row in enumerate(idx)]


def _common_spec(anchor: dict, test: dict, metric: str, replicates: int | None, seed: int | None) -> dict:
    names = sorted(anchor.get("per_image", {}))
    for res in (anchor, test):
        if not res.get("per_image"):
            raise SaicmError(f"results for {res['codec']} have no per-image entries to draw from (a paired "
                             "bootstrap resamples images: 'per_image', docs/evaluation.md#results-schema)")
    others = sorted(test["per_image"])
    if others != names:
        only_a, only_t = sorted(set(names) - set(others)), sorted(set(others) - set(names))

        def some(xs):
            return ", ".join(xs[:3]) + (f" and {len(xs) - 3} more" if len(xs) > 3 else "") if xs else "none"

        raise SaicmError(f"{anchor['codec']} and {test['codec']} were not measured on the same images (a paired "
                         f"bootstrap needs the same names in 'per_image'): only in {anchor['codec']}: "
                         f"{some(only_a)}; only in {test['codec']}: {some(only_t)}")
    if metric in PER_IMAGE_METRICS:
        stored = anchor.get("bootstrap") or {}
        r = replicates or stored.get("replicates") or DEFAULT_REPLICATES
        s = seed if seed is not None else stored.get("seed", DEFAULT_SEED)
        return spec(names, r, s)
    specs = [anchor.get("bootstrap"), test.get("bootstrap")]
    for res, sp in zip((anchor, test), specs):
        if not sp:
            raise _no_draws(res, metric)
    if specs[0] != specs[1]:
        raise SaicmError(f"{anchor['codec']} and {test['codec']} were bootstrapped with different draws "
                         f"({specs[0]} vs {specs[1]}): re-run one with the other's --bootstrap count")
    if specs[0]["images"] != spec(names, 1)["images"]:
        raise SaicmError(f"the bootstrap draws of {anchor['codec']} were made on another image set")
    return specs[0]


def _check_points_are_image_means(result: dict, metric: str) -> None:
    """The points (the BD-rate) and the per-image values (its interval) must describe the same sweep: each point
    is the mean over the images at its quality (saicm eval writes them so; a hand-made file may not)."""
    import numpy as np

    names = sorted(result["per_image"])
    keys = ["bpp"] + ([metric] if metric in PER_IMAGE_METRICS else [])
    for key in keys:
        values = _per_image_matrix(result, names, key)
        means = _nanmean(values)
        for p, m in zip(result["points"], means):
            v = p.get(key)
            if v is None or not np.isfinite(m):
                continue
            if not math.isclose(float(v), float(m), rel_tol=1e-4, abs_tol=1e-6):
                raise SaicmError(f"results for {result['codec']}: the point at quality {p['quality']} has {key} "
                                 f"{float(v):.6g}, the mean of its per-image values is {float(m):.6g}: the points "
                                 "and 'per_image' must come from the same sweep")


def bd_rate_ci(anchor: dict, test: dict, metric: str, level: float = 0.95, replicates: int | None = None,
               seed: int | None = None, envelope: bool = True,
               interval: tuple[float, float] | None = None, method: str = "percentile") -> BDRateCI:
    """BD-rate of ``test`` against ``anchor`` (two results dicts) in ``metric`` with a paired-bootstrap interval at
    confidence ``level`` (see module doc; ``method``: one of :data:`CI_METHODS`; ``envelope`` and ``interval``: as
    for :func:`~saicm.eval.bdrate.bd_rate`).

    ``replicates`` and ``seed`` apply to per-image metrics (default: the
    anchor's stored ones, else 200 and 0); stored AP draws bring their own.
    Raises :class:`~saicm.eval.bdrate.BDRateError` when the full curves give no BD-rate and
    :class:`SaicmError` when the files cannot be paired.
    """
    if not 0 < level < 1:
        raise SaicmError(f"confidence level must be in (0, 1), got {level}")
    if method not in CI_METHODS:
        raise SaicmError(f"interval method must be one of {', '.join(CI_METHODS)}, got {method!r}")
    full, all_draws = draw_bd_rates(anchor, test, metric, replicates, seed, envelope, interval)
    return interval_of(full, all_draws, level, method)


def draw_bd_rates(anchor: dict, test: dict, metric: str, replicates: int | None = None, seed: int | None = None,
                  envelope: bool = True, interval: tuple[float, float] | None = None) -> tuple[BDRate, np.ndarray]:
    """The full-set BD-rate and the BD-rate of every draw (NaN where a draw gives none), in the draws' order: the
    draws of two comparisons on the same images are the same, so they can be combined draw by draw (the mean of
    several seed pairings)."""
    import numpy as np

    from .bdrate import BDRateError, bd_rate
    from .results import curve

    full = bd_rate(*curve(anchor, metric), *curve(test, metric), envelope=envelope, interval=interval)
    sp = _common_spec(anchor, test, metric, replicates, seed)
    for res in (anchor, test):
        _check_points_are_image_means(res, metric)
    idx = draws(len(anchor["per_image"]), sp["replicates"], sp["seed"])
    vals = np.full(len(idx), np.nan)
    pairs = zip(replicate_curves(anchor, metric, idx), replicate_curves(test, metric, idx))
    for k, ((ra, ma), (rt, mt)) in enumerate(pairs):
        ok_a, ok_t = np.isfinite(ma), np.isfinite(mt)
        try:
            vals[k] = bd_rate(ra[ok_a], ma[ok_a], rt[ok_t], mt[ok_t], envelope=envelope, interval=interval).percent
        except BDRateError:
            continue
    return full, vals


def interval_of(full: BDRate, all_draws: "np.ndarray", level: float = 0.95, method: str = "percentile") -> BDRateCI:
    """The interval of ``full`` from its draws' BD-rates (NaN: a draw that gave none, counted in ``failed``)."""
    import numpy as np

    from .bdrate import BDRateError

    v = all_draws[np.isfinite(all_draws)]
    if not len(v):
        raise BDRateError(f"no bootstrap draw of {len(all_draws)} gave a BD-rate")
    below = (np.sum(v < full.percent) + 0.5 * np.sum(v == full.percent)) / len(v)
    lo, hi = np.percentile(v, percentiles(level, below, len(v), method))
    return BDRateCI(percent=full.percent, low=float(lo), high=float(hi), level=level, draws=len(v),
                    failed=len(all_draws) - len(v), better=float(np.mean(v < 0)), full=full,
                    median=float(np.median(v)), below=float(below), method=method)


def percentiles(level: float, below: float, draws: int, method: str = "percentile") -> list[float]:
    """The percentiles of the draws that bound a ``level`` interval: 50·(1 ∓ level) for ``percentile``; for ``bc``
    those of Φ(2·z0 ∓ z), z0 = Φ⁻¹(``below``) (the share kept inside (½, draws − ½)/draws, so that z0 is finite)."""
    if method == "percentile":
        return [50 * (1 - level), 50 * (1 + level)]
    from statistics import NormalDist

    nd = NormalDist()
    z0 = nd.inv_cdf(min(max(below, 0.5 / draws), 1 - 0.5 / draws))
    z = nd.inv_cdf(0.5 + level / 2)
    return [100 * nd.cdf(2 * z0 - z), 100 * nd.cdf(2 * z0 + z)]
