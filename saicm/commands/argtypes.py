"""argparse value types shared by the command families (one line on a bad value, like every saicm error)."""

from __future__ import annotations

import argparse


def nonneg(s: str) -> int:
    try:
        v = int(s)
    except ValueError:
        v = -1
    if v < 0:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 0, got {s!r}")
    return v


def level(s: str) -> float:
    try:
        v = float(s)
    except ValueError:
        v = -1.0
    if not 50 <= v < 100:
        raise argparse.ArgumentTypeError(f"expected a confidence level in percent (50-99.9), got {s!r}")
    return v


def positive(s: str) -> int:
    try:
        v = int(s)
    except ValueError:
        v = 0
    if v < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 1, got {s!r}")
    return v


def positive_float(s: str) -> float:
    try:
        v = float(s)
    except ValueError:
        v = float("nan")
    if not v > 0 or v == float("inf"):
        raise argparse.ArgumentTypeError(f"expected a number > 0, got {s!r}")
    return v


def nonneg_float(s: str) -> float:
    try:
        v = float(s)
    except ValueError:
        v = float("nan")
    if not v >= 0 or v == float("inf"):
        raise argparse.ArgumentTypeError(f"expected a number >= 0, got {s!r}")
    return v


def floats(s: str) -> list[float]:
    try:
        return [float(v) for v in s.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers, got {s!r}") from None


def interval(s: str) -> tuple[float, float]:
    v = floats(s)
    if len(v) != 2 or not v[1] > v[0]:
        raise argparse.ArgumentTypeError(f"expected LO,HI with LO < HI, got {s!r}")
    return v[0], v[1]


def ints(s: str) -> list[int]:
    try:
        return [int(v) for v in s.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {s!r}") from None
