"""The context model (``gained-context-hyperprior``) in the portable engine: its contexts as exact integer networks.

A context model predicts the entropy parameters of each latent element from the hyperprior *and* from the
elements decoded before it (:mod:`saicm.models.context`: channel groups, each in two checkerboard passes).
Those predictions pick the coder's tables, so they must be the same bits at both ends: here every context
network (the channel context, the masked spatial convolution, the pointwise aggregation) runs in the exact
integer arithmetic of :mod:`saicm.engine.hypernet`, on ŷ as the exact integers both ends hold (symbol + mean,
units 2**-FRAC). Like the hyper-synthesis, the result does not depend on the engine, CPU or thread count.

The stream is format 3 as for the hyperprior (z, then y in strips of rows); the string of a strip holds the
strip's passes in coding order, group by group, anchors then the rest
(:meth:`~saicm.entropy.tables.CdfTables.encode_passes`), and the contexts see the strip alone (both ends).
The transforms are the hyperprior's (same ONNX graphs).
"""

from __future__ import annotations

import numpy as np

from ..errors import ModelError
from .hypernet import FRAC, IntegerConvStack, _layer
from .model import PortableModel, symbols


def _stack(state: dict, prefix: str, layers: tuple[int, ...], weight_mask: np.ndarray | None = None
           ) -> IntegerConvStack:
    """The integer network of ``prefix``: convolutions at the given Sequential indexes, ReLU between them."""
    out = []
    for n, i in enumerate(layers):
        key = f"{prefix}.{i}." if i >= 0 else f"{prefix}."
        w = np.asarray(state[key + "weight"], dtype=np.float64)
        if weight_mask is not None:
            w = w * np.asarray(weight_mask, dtype=np.float64)
        out.append(_layer(w, state[key + "bias"], transposed=False, leaky=False, relu=n < len(layers) - 1))
    return IntegerConvStack(out)


def _at(values: np.ndarray, at: np.ndarray | None) -> np.ndarray:
    """The columns (positions) ``at`` of (C, n) ``values``; all of them (no copy) for ``None``."""
    return values if at is None else values[:, at]


class PortableContextModel(PortableModel):
    """The coding half of a ``gained-context-hyperprior`` file (numpy, exact integer contexts)."""

    architecture = "gained-context-hyperprior"

    def __init__(self, info, state: dict | None = None, config: dict | None = None,
                 torch_parts: tuple[str, str, str] = ("g_a", "h_a", "g_s")):
        """As :class:`PortableModel`; ``config`` also gives ``groups`` and ``checkerboard`` (a scalable model's
        additional codec with contexts: its ``add.*`` tensors and its ``context`` options)."""
        super().__init__(info, state, config, torch_parts)
        cfg, st = (info.config if config is None else config), self.state
        try:
            self.groups = [int(g) for g in cfg["groups"]]
            self.checkerboard = bool(cfg.get("checkerboard", True))
            if not self.groups or min(self.groups) < 1 or sum(self.groups) != self.M:
                raise ValueError(f"groups {self.groups} do not split M={self.M}")
            self.channel, self.spatial, self.aggregate = [], [], []
            done = 0
            for k, g in enumerate(self.groups):
                self.channel.append(_stack(st, f"channel.{k}", (0, 2)) if k else None)
                self.spatial.append(_stack(st, f"spatial.{k}", (-1,), st[f"spatial.{k}.mask"])
                                    if self.checkerboard else None)
                self.aggregate.append(_stack(st, f"aggregate.{k}", (0, 2, 4)))
                shapes = [(self.channel[k], done, 2 * g), (self.spatial[k], g, 2 * g), (self.aggregate[k], 6 * g, 2 * g)]
                for net, cin, cout in shapes:
                    if net is not None and (net.in_channels != cin or net.layers[-1].cout != cout
                                            or any(a.cout != b.cin for a, b in zip(net.layers, net.layers[1:]))):
                        raise ValueError(f"context network of group {k}: shapes")
                done += g
        except (KeyError, ValueError, TypeError) as e:
            raise ModelError(f"the weights do not fit {info.architecture} ({e})", str(info.path)) from None

    def _code(self, p: np.ndarray, y: np.ndarray | None = None, decoder=None):
        """Code (``y``: the strip's gained latent) or decode (``decoder``: a
        :class:`~saicm.entropy.tables.PassDecoder`) one strip with its hyper-synthesis output ``p`` (2M, r, W);
        returns (ŷ (M, r, W) int64 units, the passes' (symbols, tables)).

        Positions are handled as flat lists (the whole strip, or one checkerboard colour) and the aggregation's
        input (hyperprior, spatial, channel context) is never built: its first layer sums its parts, and leaves
        out those that are zero (the spatial context of the first pass or of a model without one, the channel
        context of the first group): the same integers, with less copying and fewer products."""
        M = self.M
        h, w = p.shape[1:]
        n = h * w
        if self.checkerboard:
            anchors = ((np.arange(h)[:, None] + np.arange(w)[None, :]) % 2 == 0)
            flat = anchors.reshape(-1)
            passes_at = [np.flatnonzero(flat), np.flatnonzero(~flat)]
        else:
            passes_at = [None]  # every position in one pass
        units = np.zeros((M, h, w), np.int64)
        flat_units = units.reshape(M, n)
        p = p.reshape(2 * M, n)
        yf = None if y is None else y.reshape(M, n)
        passes = []
        a = 0
        for k, g in enumerate(self.groups):
            b = a + g
            side = np.concatenate([p[a:b], p[M + a: M + b]])  # (2g, n): the hyperprior's scales and means
            ch = self.channel[k](units[:a]).reshape(2 * g, n) if k else None
            sp = None
            for n_pass, at in enumerate(passes_at):
                if n_pass:  # the second checkerboard pass: the spatial context of the decoded anchors
                    sp = self.spatial[k](np.where(anchors, units[a:b], 0)).reshape(2 * g, n)
                hyper = _at(side, at)
                parts = [(0, hyper)] + ([(2 * g, _at(sp, at))] if sp is not None else []) \
                    + ([(4 * g, _at(ch, at))] if ch is not None else [])
                q = hyper + self.aggregate[k].pointwise(parts)  # the hyperprior's parameters, refined
                tables = self.scale_index(q[:g])
                means = q[g:]
                if decoder is None:
                    sym = symbols(np.rint(_at(yf[a:b], at).astype(np.float64) - np.ldexp(means.astype(np.float64), -FRAC)))
                    passes.append((sym, tables))
                else:
                    sym = decoder.decode(tables.reshape(-1)).reshape(tables.shape)
                if at is None:
                    flat_units[a:b] = means + (sym << FRAC)
                else:
                    flat_units[a:b, at] = means + (sym << FRAC)
            a = b
        return units, passes

    def _encode_strip(self, y: np.ndarray, p: np.ndarray) -> bytes:
        _, passes = self._code(p, y=y)
        return self.y_tables.encode_passes(passes)

    def _decode_strip(self, data: bytes, p: np.ndarray) -> np.ndarray:
        with self.y_tables.decoder(data) as decoder:
            units, _ = self._code(p, decoder=decoder)
        return units
