"""argparse value types shared by the command families and the benchmark scripts (one line on a bad value, like
every saicm error)."""

from __future__ import annotations

import argparse
import math
import os

#: the help of every command's -q/--quiet
QUIET_HELP = ("no progress: no bar on a terminal, no status lines off one (errors, warnings and the results are "
              "still printed)")


def _checked(s: str, convert, ok, expected: str):
    try:
        v = convert(s)
    except ValueError:
        v = None
    if v is None or not ok(v):
        raise argparse.ArgumentTypeError(f"expected {expected}, got {s!r}")
    return v


def warn_unused(given: dict, by: str) -> None:
    """One warning naming the options in ``given`` (option → its value, None when not given) that ``by`` (e.g.
    "--source coco") does not use: they were ignored without a word."""
    unused = [o for o, v in given.items() if v is not None]
    if unused:
        from ..errors import warn as saicm_warn

        saicm_warn(f"{', '.join(unused)} not used by {by}")


def existing(s: str) -> str:
    """A file or folder that exists, checked as the arguments are parsed: before any model loads or other work, a
    missing one is ``usage`` and one line naming it (``error: argument --data: PATH: no such file or folder``, exit
    2), not a traceback minutes in. The string is returned as given."""
    if not os.path.exists(s):
        raise argparse.ArgumentTypeError(f"{s}: no such file or folder")
    return s


def whole(s: str) -> int:
    """Any whole number (argparse's own ``int`` said "invalid int value", where every other number option says what
    it expects)."""
    return _checked(s, int, lambda v: True, "a whole number")


def nonneg(s: str) -> int:
    return _checked(s, int, lambda v: v >= 0, "a whole number >= 0")


def positive(s: str) -> int:
    return _checked(s, int, lambda v: v >= 1, "a whole number >= 1")


def level(s: str) -> float:
    return _checked(s, float, lambda v: 50 <= v < 100, "a confidence level in percent (50-99.9)")


def positive_float(s: str) -> float:
    return _checked(s, float, lambda v: 0 < v < math.inf, "a number > 0")  # (NaN fails every comparison)


def learning_rate(s: str) -> float:
    """A learning rate (:func:`saicm.train.config.learning_rate_ok`)."""
    from ..train.config import learning_rate_ok

    return _checked(s, float, learning_rate_ok, "a learning rate > 0 and at most 1")


def fraction(s: str) -> float:
    return _checked(s, float, lambda v: 0 < v <= 1, "a number in (0, 1]")


def share(s: str) -> float:
    return _checked(s, float, lambda v: 0 <= v <= 1, "a number from 0 to 1")


def nonneg_float(s: str) -> float:
    return _checked(s, float, lambda v: 0 <= v < math.inf, "a number >= 0")


def floats(s: str) -> list[float]:
    try:
        return [float(v) for v in s.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers, got {s!r}") from None


def lambdas(s: str) -> list[float]:
    """λ per quality: positive and ascending, as every model's rate points are (a decimal comma, ``0,0018``, read
    as the two values 0 and 18, reached the model as "math domain error")."""
    v = floats(s)
    if v and all(0 < x < math.inf for x in v) and sorted(v) == v:
        return v
    comma = (" (',' separates values; the decimal point is '.': 0,0018 is read as 0 and 18, write 0.0018)"
             if any(p.strip().startswith("0") and "." not in p for p in s.split(",")) else "")
    raise argparse.ArgumentTypeError(f"expected positive λ values in ascending order, comma-separated, got {s!r}"
                                     + comma)


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
