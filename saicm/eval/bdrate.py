"""Bjøntegaard delta rate with PCHIP interpolation.

``log(rate)`` is interpolated as a function of the metric (PSNR, AP, …) with a
monotone piecewise-cubic Hermite interpolant, integrated over the interval of
metric values both curves cover, and the mean log-rate difference is turned
into a percentage: negative = the test curve needs fewer bits for the same
metric. Curves must be monotone (metric rising with rate); this is checked and
reported rather than silently fixed: by default (``envelope=True``, ``saicm
bdrate``) dominated points (a higher rate for no higher metric) are dropped and
listed in the result; with ``envelope=False`` (``--strict``) a non-monotone
curve is an error.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np
from scipy.interpolate import PchipInterpolator

from ..errors import SaicmError


class BDRateError(SaicmError, ValueError):
    """The curves give no BD-rate (no overlap, too few points, not monotone): a :class:`~saicm.errors.SaicmError`
    (a caller's one ``except SaicmError`` catches it, as it does every other failure of the caller's input) and a
    ``ValueError`` (as before 0.31.0)."""


@dataclass
class BDRate:
    percent: float
    interval: tuple[float, float]
    #: share of each curve's metric range that the overlap covers
    coverage: tuple[float, float]
    #: (curve, rate, metric) of points dropped to make the curves monotone
    dropped: tuple = ()


def dropped_points(dropped, most: int = 4) -> str:
    """Which points a BD-rate left out (``BDRate.dropped``), in words: "the anchor's at 1.0005 bpp (34.82)"; a
    count alone did not say whose curve lost them (the anchor's, counted again on every row) or where."""
    said = [f"the {'anchor' if curve == 'reference' else 'test'}'s at {rate:.4f} bpp ({value:.4g})"
            for curve, rate, value in dropped[:most]]
    return ", ".join(said) + (f" and {len(dropped) - most} more" if len(dropped) > most else "")


def monotone_envelope(rates, metric) -> tuple[list, list, list]:
    """Points sorted by rate, keeping only those better than every cheaper point.

    Returns (rates, metric, dropped (rate, metric) pairs).
    """
    pts = sorted(zip(rates, metric), key=lambda p: (p[0], -p[1]))  # at one rate, the best point first
    keep, dropped, best = [], [], -math.inf
    for r, m in pts:
        if m > best:
            keep.append((r, m))
            best = m
        else:
            dropped.append((r, m))
    return [r for r, _ in keep], [m for _, m in keep], dropped


def _curve(rates: Sequence[float], metric: Sequence[float], name: str) -> tuple[np.ndarray, np.ndarray]:
    r = np.asarray(rates, dtype=np.float64)
    m = np.asarray(metric, dtype=np.float64)
    if r.shape != m.shape or r.ndim != 1:
        raise BDRateError(f"{name}: rates and metric values differ in length")
    if len(r) < 2:
        raise BDRateError(f"{name}: needs at least 2 points, got {len(r)}")
    if np.any(r <= 0) or not np.all(np.isfinite(r)) or not np.all(np.isfinite(m)):
        raise BDRateError(f"{name}: rates must be positive and values finite")
    order = np.argsort(r)
    r, m = r[order], m[order]
    if np.any(np.diff(r) <= 0):  # (a metric gained for no bits: the interpolant would integrate a flat step)
        raise BDRateError(f"{name}: two points at the same rate ({', '.join(f'{b:.4g}' for b in r)})")
    if np.any(np.diff(m) <= 0):
        raise BDRateError(f"{name}: not monotone (the metric does not rise with the rate at every point: "
                          f"{', '.join(f'{a:.4g}@{b:.4g}' for a, b in zip(m, r))})")
    return np.log(r), m


def bd_rate(ref_rates, ref_metric, test_rates, test_metric, envelope: bool = True,
            interval: tuple[float, float] | None = None) -> BDRate:
    """BD-rate of the test curve (``test_rates``, ``test_metric``) against the reference curve (``ref_rates``,
    ``ref_metric``) in percent (see module doc).

    ``envelope``: reduce each curve to its monotone envelope first and report the dropped points (the default, as
    ``saicm bdrate`` and :func:`saicm.eval.bootstrap.bd_rate_ci`); ``False`` (``--strict``) refuses a curve that is
    not strictly monotone in rate and metric with :class:`BDRateError`.

    ``interval``: integrate only over this metric range (intersected with the
    overlap), e.g. to compare a model that gained rate points over the range
    of its predecessor.
    """
    dropped = []
    if envelope:
        ref_rates, ref_metric, d1 = monotone_envelope(ref_rates, ref_metric)
        test_rates, test_metric, d2 = monotone_envelope(test_rates, test_metric)
        dropped = [("reference", r, m) for r, m in d1] + [("test", r, m) for r, m in d2]
    lr1, m1 = _curve(ref_rates, ref_metric, "reference")
    lr2, m2 = _curve(test_rates, test_metric, "test")
    lo, hi = max(m1.min(), m2.min()), min(m1.max(), m2.max())
    if not hi > lo:
        raise BDRateError(f"curves do not overlap in the metric (reference {m1.min():.4g}–{m1.max():.4g}, "
                          f"test {m2.min():.4g}–{m2.max():.4g})")
    if interval is not None:
        lo, hi = max(lo, float(interval[0])), min(hi, float(interval[1]))
        if not hi > lo:
            raise BDRateError(f"the curves' overlap and the interval {interval[0]:.4g}–{interval[1]:.4g} "
                              "do not intersect")
    p1, p2 = PchipInterpolator(m1, lr1), PchipInterpolator(m2, lr2)
    a1 = p1.integrate(lo, hi)
    a2 = p2.integrate(lo, hi)
    avg = (a2 - a1) / (hi - lo)
    cov = ((hi - lo) / (m1.max() - m1.min()), (hi - lo) / (m2.max() - m2.min()))
    return BDRate(percent=(math.exp(avg) - 1.0) * 100.0, interval=(float(lo), float(hi)), coverage=cov,
                  dropped=tuple(dropped))
