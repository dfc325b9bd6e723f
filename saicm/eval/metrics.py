"""Image-quality metrics on 8-bit images."""

from __future__ import annotations

import math

import numpy as np
from PIL import Image


def _as_array(img) -> np.ndarray:
    if isinstance(img, Image.Image):
        img = np.asarray(img.convert("RGB"))
    return np.asarray(img, dtype=np.float64)


def mse(a, b) -> float:
    a, b = _as_array(a), _as_array(b)
    if a.shape != b.shape:
        raise ValueError(f"shape mismatch {a.shape} vs {b.shape}")
    return float(np.mean((a - b) ** 2))


def psnr(a, b, peak: float = 255.0) -> float:
    """PSNR in dB over all RGB samples; ``inf`` for identical images."""
    m = mse(a, b)
    return math.inf if m == 0 else 10.0 * math.log10(peak * peak / m)


def ms_ssim(a, b) -> float:
    """MS-SSIM (pytorch-msssim, 5 scales, 11×11 Gaussian window) on RGB 0–255.

    Needs a short side above 160 pixels; returns NaN for smaller images.
    """
    import torch
    from pytorch_msssim import ms_ssim as _ms_ssim

    a, b = _as_array(a), _as_array(b)
    if min(a.shape[:2]) <= 160:
        return math.nan
    ta = torch.from_numpy(a).permute(2, 0, 1)[None].float()
    tb = torch.from_numpy(b).permute(2, 0, 1)[None].float()
    with torch.no_grad():
        return float(_ms_ssim(ta, tb, data_range=255.0))
