"""Encoder-side rate–distortion optimisation of the latents ("refinement").

A trained analysis transform is amortised: it gives good latents on average,
not the best ones for a given image. Refinement starts from its latents and
runs a few Adam steps on ``R + λ·255²·MSE`` of that image, the rate point's
own trade-off, through the quantiser exactly as the coder applies it
(straight-through rounding) and the model's entropy estimates (Campos et al.,
"Content adaptive optimization for neural image compression", CVPRW 2019).
Only the encoder works harder: the stream format and the decoder are
unchanged, and any decoder decodes the result.

The latents with the lowest estimated cost seen are kept, so refinement
never returns latents worse (by the estimate) than the plain encoder's.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

#: Adam step in units of the quantisation bin (gains put every rate point's bin at 1).
DEFAULT_LR = 3e-3


def refine_latents(net, x: Tensor, quality: int, steps: int, valid: tuple[int, int] | None = None,
                   lr: float = DEFAULT_LR, progress=None, **context) -> dict[str, Tensor]:
    """Latents of ``x`` after ``steps`` Adam steps on their RD cost.

    ``valid``: (height, width) of the real image inside the padded ``x``; the
    distortion counts those pixels only. ``progress``: optional callable
    taking the step index (for progress bars). ``context``: passed to the
    model's ``analyse`` and ``latent_rd`` (a scalable model's human layer takes
    ``base_latent``, the machine layer's decoded latent).
    """
    h, w = valid if valid is not None else x.shape[-2:]
    lam = float(net.lambdas[quality - 1]) * 255.0**2
    target = x[..., :h, :w]
    with torch.no_grad():
        start = net.analyse(x, quality, **context)
    latents = {k: v.detach().clone().requires_grad_(True) for k, v in start.items()}
    opt = torch.optim.Adam(list(latents.values()), lr=lr)
    best_cost, best = float("inf"), start
    for i in range(steps + 1):
        with torch.enable_grad():
            bits, x_hat = net.latent_rd(latents, quality, **context)
            cost = bits / (h * w) + lam * (x_hat[..., :h, :w] - target).pow(2).mean()
        if float(cost.detach()) < best_cost:
            best_cost, best = float(cost.detach()), {k: v.detach().clone() for k, v in latents.items()}
        if i == steps:
            break
        # autograd.grad, not backward(): the (shared, cached) model's weights must collect no gradients.
        grads = torch.autograd.grad(cost, list(latents.values()))
        for v, g in zip(latents.values(), grads):
            v.grad = g
        opt.step()
        if progress is not None:
            progress(i)
    return best


def refined_latents(model_path, image, quality: int, steps: int, max_pixels: int | None = None,
                    progress: bool = False, **context) -> tuple[np.ndarray, np.ndarray]:
    """The latents ``(y, z)`` (numpy, with the batch axis) of an image after ``steps`` of refinement with the
    PyTorch model of ``model_path``, for a coder to write (the portable engine: :mod:`saicm.engine.codec`).
    ``progress``: a bar over the steps; ``context``: see :func:`refine_latents`."""
    from .._progress import StatusLines, progress_bar
    from ..errors import ModelError
    from ..models.zoo import load_model
    from .pipeline import prepare

    net, info = load_model(model_path)
    if not all(hasattr(net, f) for f in ("analyse", "latent_rd")):
        raise ModelError(f"{info.name} ({info.architecture}) does not support refinement")
    img, x, _, _ = prepare(image, net.multiple, max_pixels, getattr(net, "min_size", 0))
    with progress_bar(total=steps, desc="refine", unit="step", progress=progress, leave=False) as bar:
        # off a terminal (nohup, `2> job.log`): a status line at most every LINE_SECONDS (a long --refine of one
        # photo ran for many minutes with nothing said)
        lines = StatusLines("compress", bool(progress) and bar.disable)

        def step(i: int) -> None:
            bar.update(1)
            lines.say(f"refine step {i + 1}/{steps} (quality {quality})")

        latents = refine_latents(net, x, quality, steps, valid=img.size, progress=step, **context)
    return latents["y"].numpy(), latents["z"].numpy()
