"""Image-quality metrics on 8-bit images."""

from __future__ import annotations

import math

import numpy as np
from PIL import Image


def _as_samples(img) -> np.ndarray:
    """``img``'s samples as they are (uint8 stays uint8: no float64 copy of a large image)."""
    if isinstance(img, Image.Image):
        return np.asarray(img.convert("RGB"))
    return np.asarray(img)


#: samples per block of the squared-error sum (bounds its memory: 8 MB of int64 a block)
_BLOCK = 1 << 20


def mse(a, b) -> float:
    a, b = _as_samples(a), _as_samples(b)
    if a.shape != b.shape:
        raise ValueError(f"shape mismatch {a.shape} vs {b.shape}")
    if a.dtype != np.uint8 or b.dtype != np.uint8:
        a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
        return float(np.mean((a - b) ** 2))
    # 8-bit images: the exact integer sum of squared differences by blocks (float64 copies of a 9 MP image and their
    # difference took 0.6 GB); the same value as the float64 mean, whose partial sums of integers are exact too
    fa, fb = a.reshape(-1), b.reshape(-1)
    total = 0
    for i in range(0, fa.size, _BLOCK):
        d = fa[i:i + _BLOCK].astype(np.int64) - fb[i:i + _BLOCK]
        total += int(np.dot(d, d))
    return total / fa.size if fa.size else float("nan")


def psnr(a, b, peak: float = 255.0) -> float:
    """PSNR in dB over all RGB samples; ``inf`` for identical images."""
    m = mse(a, b)
    return math.inf if m == 0 else 10.0 * math.log10(peak * peak / m)


def _writable(x: np.ndarray) -> np.ndarray:
    """``x`` contiguous and writable, copied (its own dtype) only when it is not: PyTorch warns of read-only arrays
    (a decoded image's samples, PIL's), and every ``saicm eval`` printed that warning as saicm's."""
    x = np.ascontiguousarray(x)
    return x if x.flags.writeable else x.copy()


def ms_ssim(a, b) -> float:
    """MS-SSIM (pytorch-msssim, 5 scales, 11×11 Gaussian window) on RGB 0–255.

    Needs a short side above 160 pixels; returns NaN for smaller images.
    """
    a, b = _as_samples(a), _as_samples(b)
    if min(a.shape[:2]) <= 160:  # (before PyTorch is imported: 2.5 s and 600 MB for a sweep of small images)
        return math.nan
    import torch
    from pytorch_msssim import ms_ssim as _ms_ssim

    # (float32 straight from the samples: the float64 copies on the way cost 0.4 GB on a 9 MP image)
    ta = torch.from_numpy(_writable(a)).permute(2, 0, 1)[None].float()
    tb = torch.from_numpy(_writable(b)).permute(2, 0, 1)[None].float()
    with torch.no_grad():
        return float(_ms_ssim(ta, tb, data_range=255.0))
