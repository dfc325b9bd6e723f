"""A model file as the portable engine sees it: gains, coder tables, the exact hyper-synthesis (numpy only).

Everything that decides the bits of a version-3 stream lives here and is shared
by both transform back-ends (:mod:`saicm.engine.runtime`: onnxruntime, or the
PyTorch modules), so a file written by one decodes with the other:

- the hyper-latent z is rounded around the entropy bottleneck's medians and
  coded with its per-channel tables;
- the integer hyper-synthesis (:mod:`saicm.engine.hypernet`) gives the scale
  index and the mean of every y symbol, exactly;
- y is rounded around its means and coded in strips of rows;
- the decoder's latent is ``(symbol + mean) · inverse gain``, computed in
  float64 and rounded once to float32, the same on every machine.
"""

from __future__ import annotations

import functools
import os

import numpy as np

from ..entropy.tables import CdfTables
from ..errors import FormatError, ModelError
from ..models.catalog import ModelInfo
from .hypernet import FRAC, IntegerHyperSynthesis, scale_indexes, scale_thresholds

#: architectures the portable engine codes
SUPPORTED = ("gained-mean-scale-hyperprior",)
#: hyper-latent symbols are clipped to this magnitude at both ends (real ones stay within a few hundred)
Z_LIMIT = 1 << 13


def supports(info: ModelInfo) -> bool:
    return info.architecture in SUPPORTED


class PortableModel:
    """The coding half of a ``gained-mean-scale-hyperprior`` file, without PyTorch."""

    multiple = 64  # pad images to this (y is /16, z is /64)

    def __init__(self, info: ModelInfo):
        if not supports(info):
            raise ModelError(f"{info.name} ({info.architecture}) is not supported by the portable engine "
                             f"(it codes {', '.join(SUPPORTED)}); use --engine compressai", str(info.path))
        from safetensors import SafetensorError
        from safetensors.numpy import load_file

        try:
            state = load_file(str(info.path))
            self.info = info
            self.M, self.N = int(info.config["M"]), int(info.config["N"])
            self.num_qualities = len(info.config["lambdas"])
            # the gains as the PyTorch model computes them (exp of the float32 parameters)
            self.gain = np.exp(state["log_gain"].astype(np.float32))
            self.inv_gain = np.exp(state["log_inv_gain"].astype(np.float32)).astype(np.float64)
            med = state["entropy_bottleneck.quantiles"].astype(np.float32)[:, 0, 1].astype(np.float64)
            self.medians = med
            self.median_units = np.rint(np.ldexp(med, FRAC)).astype(np.int64)
            self.z_tables = CdfTables(state["entropy_bottleneck._quantized_cdf"],
                                      state["entropy_bottleneck._cdf_length"], state["entropy_bottleneck._offset"])
            self.y_tables = CdfTables(state["gaussian_conditional._quantized_cdf"],
                                      state["gaussian_conditional._cdf_length"],
                                      state["gaussian_conditional._offset"])
            self.thresholds = scale_thresholds(state["gaussian_conditional.scale_table"].astype(np.float32))
            self.hyper = IntegerHyperSynthesis(state)
        except (KeyError, ValueError, TypeError, SafetensorError) as e:
            raise ModelError(f"the weights do not fit {info.architecture} ({e})", str(info.path)) from None
        if self.gain.shape != (self.num_qualities, self.M) or self.hyper.in_channels != self.N \
                or len(self.z_tables) != self.N or len(self.thresholds) + 1 != len(self.y_tables):
            raise ModelError(f"the weights do not fit {info.architecture} (shapes)", str(info.path))
        self.state = state  # the float weights, for the transforms
        self.transforms: dict = {}  # (back-end, threads) → its transforms (saicm.engine.runtime.transforms)

    def latent_shapes(self, height: int, width: int) -> list[tuple[int, ...]]:
        return [(height // 64, width // 64)]

    # --- shared by encoder and decoder ---------------------------------------------------------
    def _params(self, z_sym: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(scale indexes (M, h, w) int32, means (M, h, w) float64) from the hyper-latent symbols (N, h/4, w/4)."""
        z_int = (np.clip(z_sym, -Z_LIMIT, Z_LIMIT) << FRAC) + self.median_units[:, None, None]
        p = self.hyper(z_int)
        return scale_indexes(p[: self.M], self.thresholds), np.ldexp(p[self.M:].astype(np.float64), -FRAC)

    def _z_tables_index(self, shape) -> np.ndarray:
        return np.broadcast_to(np.arange(self.N, dtype=np.int64)[:, None, None], shape)

    # --- coding --------------------------------------------------------------------------------
    def encode(self, y: np.ndarray, z: np.ndarray, strip_rows: int) -> list[bytes]:
        """Strings ``[z, y strip 0, …]`` of the gained latent ``y`` (M, H, W) and the hyper-latent ``z``."""
        z_sym = np.rint(z.astype(np.float64) - self.medians[:, None, None]).astype(np.int64)
        np.clip(z_sym, -Z_LIMIT, Z_LIMIT, out=z_sym)
        strings = [self.z_tables.encode(z_sym, self._z_tables_index(z_sym.shape))]
        indexes, means = self._params(z_sym)
        for r in range(0, y.shape[-2], strip_rows):
            s = slice(r, r + strip_rows)
            sym = np.rint(y[:, s].astype(np.float64) - means[:, s]).astype(np.int64)
            strings.append(self.y_tables.encode(sym, indexes[:, s]))
        return strings

    def decode(self, strings: list[bytes], z_shape: tuple[int, int], quality: int, strip_rows: int) -> np.ndarray:
        """The dequantised latent ``ŷ·g⁻¹`` (1, M, H, W) float32 of a version-3 stream's strings."""
        h, w = z_shape
        n = self.N * h * w
        z_sym = self.z_tables.decode(strings[0], self._z_tables_index((self.N, h, w)).reshape(-1))
        if z_sym.size != n:
            raise FormatError("latent layout does not match the model")
        indexes, means = self._params(z_sym.reshape(self.N, h, w))
        y = np.empty((1, self.M, 4 * h, 4 * w), np.float32)
        ig = self.inv_gain[quality - 1][:, None, None]
        rows = list(range(0, 4 * h, strip_rows))
        if len(strings) != 1 + len(rows):
            raise FormatError("latent layout does not match the model (strip count)")
        for r, data in zip(rows, strings[1:]):
            s = slice(r, r + strip_rows)
            sym = self.y_tables.decode(data, indexes[:, s].reshape(-1)).reshape(indexes[:, s].shape)
            y[0, :, s] = (sym + means[:, s]) * ig
        return y


@functools.lru_cache(maxsize=8)
def _load(path: str, _mtime: int, name: str) -> PortableModel:
    from ..models.catalog import read_info

    return PortableModel(read_info(path, name=name))


def load(info: ModelInfo) -> PortableModel:
    """The portable model of a weight file (cached per file and modification time)."""
    p = str(info.path.resolve())
    return _load(p, os.stat(p).st_mtime_ns, info.name)
