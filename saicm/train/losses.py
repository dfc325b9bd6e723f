"""Rate–distortion losses, by name.

All follow the methods' convention: distortion on 0–1 images scaled by 255²,
rate in bits per pixel summed over every latent, ``L = R + λ·255²·D``, with λ
per sample (variable-rate training draws a quality per sample). ``D`` is
pluggable: plain MSE, or MSE on masked pixels (SA-ICM edges, Object-ICM
regions) with the mean taken over all pixels.
"""

from __future__ import annotations

import math
from typing import Callable, Dict

import torch
from torch import Tensor

from .._registry import registrar

DISTORTIONS: Dict[str, Callable[..., Tensor]] = {}
# Which kind of mask folder (``masks.json`` "kind") each masked distortion needs.
MASK_KINDS = {"saicm": "edges", "object": "objects"}


register_distortion = registrar(DISTORTIONS, "distortion")


@register_distortion("mse")
def mse(x: Tensor, x_hat: Tensor, mask: Tensor, off_weight: float = 0.0) -> Tensor:
    """Per-sample MSE over all pixels; the mask is ignored."""
    return (x - x_hat).pow(2).flatten(1).mean(1)


def masked_mse(x: Tensor, x_hat: Tensor, mask: Tensor, off_weight: float = 0.0) -> Tensor:
    """``mse(x⊙m, x̂⊙m)`` with the mean over all pixels (more mask → more weight).

    ``off_weight`` w > 0 gives the pixels outside the mask a small weight:
    ``mean((m + w·(1−m))·(x − x̂)²)``; w = 0 is the methods' loss.
    """
    weight = mask if off_weight == 0 else mask + off_weight * (1 - mask)
    return (weight * (x - x_hat).pow(2)).flatten(1).mean(1)


register_distortion("saicm")(masked_mse)   # SA-ICM: m = SAM (or regions) edge mask
register_distortion("object")(masked_mse)  # Object-ICM: m = union of object masks


def bpp_per_sample(likelihoods: dict, num_pixels: int) -> Tensor:
    total = 0
    for lik in likelihoods.values():
        total = total + torch.log(lik).flatten(1).sum(1)
    return total / (-math.log(2) * num_pixels)


def rd_loss(out: dict, x: Tensor, mask: Tensor, lambdas: Tensor, distortion: str = "mse",
            off_weight: float = 0.0) -> dict:
    """``lambdas``: λ of each sample (B,). Returns the mean loss and its parts."""
    n, _, h, w = x.shape
    bpp = bpp_per_sample(out["likelihoods"], h * w)
    d = DISTORTIONS[distortion](x, out["x_hat"], mask, off_weight)
    loss = (bpp + lambdas * (255.0**2) * d).mean()
    with torch.no_grad():
        full_mse = (x - out["x_hat"].clamp(0, 1)).pow(2).flatten(1).mean(1)
        psnr = (-10 * torch.log10(full_mse.clamp_min(1e-10))).mean()
    return {"loss": loss, "bpp": bpp.mean(), "distortion": d.mean(), "psnr": psnr}
