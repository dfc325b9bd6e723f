"""Rate control: the highest rate point whose file fits a byte budget (``saicm compress --max-bytes N``).

A model's rate points are its gain vectors, one per whole quality (the file's header holds the quality as a u8 and
the decoder uses that quality's inverse gains), so the choice is among 1..``num_qualities``. The size is that of the
bytes written (the whole file, container included), never an estimate from the likelihoods. The qualities are
bisected: ``ceil(log2(num_qualities + 1))`` trial encodings (3 for the shipped models' 7 or 6 qualities). The
result fits and the quality above it, when there is one, does not; were a model's sizes not to grow with its quality
everywhere, a fitting quality higher than that one could be missed.
"""

from __future__ import annotations

import numbers
from typing import Callable

from ..errors import ArgumentError, ImageError


def checked_max_bytes(max_bytes, quality) -> int | None:
    """``max_bytes`` as an int >= 1 (None: no budget), refused with ``quality``, which it chooses itself."""
    if max_bytes is None:
        return None
    if quality is not None:
        raise ArgumentError("a byte budget chooses the quality itself: give --quality or --max-bytes, not both "
                            "(Python: quality= or max_bytes=)")
    if isinstance(max_bytes, bool) or not isinstance(max_bytes, numbers.Integral) or max_bytes < 1:
        raise ArgumentError(f"max_bytes must be a whole number >= 1, got {max_bytes!r}")
    return int(max_bytes)


def fit(code: Callable[[int], bytes], num_qualities: int, max_bytes: int) -> bytes:
    """The bytes ``code(q)`` of the highest quality q in 1..``num_qualities`` with ``len(code(q)) <= max_bytes``,
    by bisection; :class:`~saicm.errors.ImageError` when quality 1 does not fit (its ``lowest``: that size)."""
    lo, hi, best, lowest = 0, num_qualities + 1, None, None  # code(lo) fits (or lo = 0), code(hi) does not (or hi = nq + 1)
    while hi - lo > 1:
        q = (lo + hi) // 2
        data = code(q)
        n = len(data)
        if n <= max_bytes:
            lo, best = q, data
        else:
            hi, lowest = q, n
    if best is None:  # (the last trial was quality 1's: ``data``)
        alpha = _alpha_bytes(data)
        err = ImageError(over_budget(max_bytes, lowest, alpha=alpha))
        err.lowest, err.alpha = lowest, alpha  # (what a caller that measures something else names, as scalable
        raise err                              # models do)
    return best


def _alpha_bytes(data: bytes) -> int:
    """The bytes of the lossless alpha channel in the coded file ``data`` (0: none, or not a one-layer file)."""
    from . import container
    from ..errors import FormatError

    try:
        alpha = container.unpack(data).alpha
    except FormatError:
        return 0
    return len(alpha) if alpha else 0


def over_budget(max_bytes: int, lowest: int, what: str = "the file", alpha: int = 0) -> str:
    """The refusal of a budget that ``what``, ``lowest`` bytes at quality 1, does not fit; ``alpha``: the bytes
    of it that the alpha channel takes at every quality (a downscale or quality 1 was advised, and no quality
    comes near when a noisy alpha channel alone is over the budget)."""
    why = ""
    if alpha:
        why = (f" ({alpha} of them the alpha channel, coded losslessly at every quality"
               + (": without it the image would fit" if lowest - alpha <= max_bytes else "") + ")")
    return f"does not fit in {max_bytes} bytes: {what} is {lowest} bytes at the lowest quality (1){why}"
