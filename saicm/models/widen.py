"""Widening a trained hyperprior or context model: more hidden channels (``N``), the same function at the start.

``saicm train --init MODEL --N 96`` starts a wider model from a trained one so that training time goes to the
new capacity, not to re-learning what the narrow model knew (the function-preserving growth of Net2Net, Chen et
al., ICLR 2016, in its zero-initialised form). Every tensor of the wide model holds the narrow one in its leading
slices; what is new is placed where it changes nothing yet:

- a new hidden channel reads its inputs through freshly initialised weights, and every *existing* output reads it
  through a zero weight, so the outputs of the narrow part are unchanged (and the zero weights still receive
  gradients: the new channel's activations are not zero);
- GDN / IGDN: the new channels' cross terms are the fresh layer's (exactly zero), so the existing channels are
  normalised as before;
- the hyper-latent ``z`` has ``N`` channels too: the new ones are written as exact zeros (``h_a``'s last layer),
  read through zero weights (``h_s``'s first layer) and coded with a copy of the existing channel that codes a
  zero in the fewest bits, so they cost almost nothing until training gives them a use (a trained model's
  cheapest channel: 0–4 more bytes of ``z`` for a 768×512 photo).

The latent ``y`` (``M`` channels), the gains and the context networks are unchanged. A test checks that the wide
model decodes the narrow model's latents to the same image and codes them at the same rate, up to the few bits
of the new ``z`` channels.
"""

from __future__ import annotations

import torch
from . import _compressai  # noqa: F401  (first: CompressAI's import-time warning silenced)
from compressai.entropy_models import EntropyBottleneck
from torch import Tensor, nn

WIDENABLE = ("gained-mean-scale-hyperprior", "gained-context-hyperprior")


def _io_dims(module: nn.Module) -> tuple[int, int] | None:
    """(output dim, input dim) of a convolution's weight, ``None`` for other modules."""
    if isinstance(module, nn.ConvTranspose2d):
        return 1, 0
    if isinstance(module, nn.Conv2d):
        return 0, 1
    return None


def _embed(fresh: Tensor, old: Tensor) -> Tensor:
    """``fresh`` with ``old`` in its leading slices (the shapes differ only where ``fresh`` is larger)."""
    out = fresh.clone()
    out[tuple(slice(0, s) for s in old.shape)] = old
    return out


@torch.no_grad()
def _cheapest_zero(eb: EntropyBottleneck) -> int:
    """The channel of ``eb`` that codes an exact zero in the fewest bits (the new channels of ``z`` hold zeros,
    quantised as the coder does: to the grid through the channel's median)."""
    _, likelihood = eb(eb.quantiles.new_zeros(1, eb.quantiles.shape[0], 1, 1), training=False)
    return int(likelihood.reshape(-1).argmax())


def widen(model: nn.Module, n: int) -> nn.Module:
    """A new model of ``model``'s architecture with ``n`` hidden channels that computes what ``model`` computes.
    ``ValueError`` for an architecture that cannot be widened or a smaller ``n``."""
    from .registry import build_architecture

    have = model.config.get("N")
    if model.architecture not in WIDENABLE:
        raise ValueError(f"only {' and '.join(WIDENABLE)} models can be widened, not {model.architecture}")
    if n < int(have):
        raise ValueError(f"a model can be widened, not narrowed (it has N = {have})")
    wide = build_architecture(model.architecture, **{**model.config, "N": n})
    wide.load_state_dict(widen_state(model, wide), strict=True)
    return wide


@torch.no_grad()
def widen_state(narrow: nn.Module, wide: nn.Module) -> dict[str, Tensor]:
    """A state dict for ``wide`` (freshly built, the same architecture with a larger ``N``) that computes what
    ``narrow`` computes (module docstring). ``wide``'s own initialisation fills the new parts."""
    old_n, new_n = int(narrow.config["N"]), int(wide.config["N"])
    old = narrow.state_dict()
    modules = dict(wide.named_modules())
    z_writer = f"h_a.{len(wide.h_a) - 1}."
    donor = _cheapest_zero(narrow.entropy_bottleneck)
    state = {}
    for key, fresh in wide.state_dict().items():
        if key not in old:
            continue  # a buffer the narrow model does not have (filled by ``update``)
        src = old[key]
        if key.startswith("entropy_bottleneck.") and src.dim() and src.shape[0] == old_n != new_n:
            # every per-channel tensor of the new channels (density, quantiles, coder tables) copied from one
            extra = src[donor:donor + 1].expand(new_n - old_n, *src.shape[1:])
            state[key] = torch.cat([src, extra], 0).contiguous()
            continue
        grows = fresh.dim() == src.dim() and fresh.shape != src.shape and \
            all(f >= o for f, o in zip(fresh.shape, src.shape))
        if not grows:  # the same shape, or coder tables the fresh model has not built yet
            state[key] = src.clone()
            continue
        value = _embed(fresh, src)
        mname, _, tname = key.rpartition(".")
        dims = _io_dims(modules.get(mname))
        if dims is not None and tname == "weight":
            out_d, in_d = dims
            if value.shape[in_d] > src.shape[in_d]:  # existing outputs read the new inputs through zeros
                idx = [slice(None)] * value.dim()
                idx[out_d], idx[in_d] = slice(0, src.shape[out_d]), slice(src.shape[in_d], None)
                value[tuple(idx)] = 0
        if key.startswith(z_writer):  # the new channels of z are zeros (weight and bias)
            value[src.shape[0]:] = 0
        state[key] = value
    return state
