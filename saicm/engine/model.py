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
  float64 and rounded once to float32, the same on every machine (the gains
  are ``exp`` of the file's log-gains, computed exactly: :func:`~saicm.engine.hypernet.exact_exp`).

A scalable model's additional codec is the same kind of model (its tables,
gains and hyper-synthesis, plus an integer offset to the entropy parameters
from the machine layer: :mod:`saicm.engine.scalable`), so it is a
``PortableModel`` too, built from part of that file.
"""

from __future__ import annotations

import numpy as np

from ..entropy.bounded import TOO_MANY_ESCAPES  # (what every encoder says of a latent it cannot code)
from ..entropy.tables import ESCAPE_LIMIT, CdfTables
from ..errors import FormatError, ModelError
from ..models.catalog import ModelInfo, check_finite, model_cache, release_model_caches
from .hypernet import FRAC, IntegerHyperSynthesis, ScaleIndex, exact_exp, scale_thresholds

#: architectures the portable engine codes (the context model: :mod:`saicm.engine.context`)
SUPPORTED = ("gained-mean-scale-hyperprior", "gained-context-hyperprior")
#: hyper-latent symbols are clipped to this magnitude at both ends (real ones stay within a few hundred)
Z_LIMIT = 1 << 13
#: the hyper-synthesis runs by blocks of about this many output values (int64: 64 MB; with its activations a block
#: peaks at ~5 times that) plus a halo; a smaller block recomputes more halo rows (a 100 MP image: 13 hyper-latent
#: rows a block, 4 of halo; 53 s against 44 s for the whole at once, one thread; 2²²: 65 s)
HYPER_ROWS_VALUES = 1 << 23
#: the halo of hyper-latent rows above and below each block is as many rows as the network's layers reach
#: (:attr:`saicm.engine.hypernet.IntegerConvStack.reach`: 2 for the shipped models' 5×5, 5×5, 3×3), so each block's
#: kept rows are the whole's for any kernel sizes a model brings


def symbols(values: np.ndarray, limit: int = ESCAPE_LIMIT) -> np.ndarray:
    """``values`` (float64, rounded to whole numbers) as int64 symbols; a value that is not finite or beyond
    ±``limit`` (a model whose weights diverged: NaN or huge latents) is one :class:`ModelError`. The cast of
    such a value to int64 is undefined: x86 made NaN −2⁶³ (a ValueError traceback from the coder), ARM 0 (coded)."""
    if values.size and not (np.isfinite(values).all() and np.abs(values).max() <= limit):
        raise ModelError(TOO_MANY_ESCAPES)
    return values.astype(np.int64)


def supports(info: ModelInfo) -> bool:
    return info.architecture in SUPPORTED


class PortableModel:
    """The coding half of a ``gained-mean-scale-hyperprior`` file, without PyTorch."""

    multiple = 64  # pad images to this (y is /16, z is /64)
    architecture = "gained-mean-scale-hyperprior"  #: what this class codes (subclasses: their own)

    def __init__(self, info: ModelInfo, state: dict | None = None, config: dict | None = None,
                 torch_parts: tuple[str, str, str] = ("g_a", "h_a", "g_s")):
        """``info``: the model file. ``state``/``config``: the tensors and configuration to use instead of the
        file's own (a scalable model's additional codec: its ``add.*`` tensors and human synthesis);
        ``torch_parts``: where ``g_a``, ``h_a`` and ``g_s`` are in the PyTorch model (``--engine torch``)."""
        if state is None and info.architecture != self.architecture:
            if supports(info):  # a programming error: load() picks the class
                raise ModelError(f"{info.name} ({info.architecture}) is not coded by {type(self).__name__}",
                                 str(info.path))
            raise ModelError(f"{info.name} ({info.architecture}) is not supported by the portable engine "
                             f"(it codes {', '.join(SUPPORTED)}); use --engine compressai", str(info.path))
        from safetensors import SafetensorError
        from safetensors.numpy import load_file

        config = info.config if config is None else config
        try:
            state = load_file(str(info.path)) if state is None else state
            check_finite(state, str(info.path))
            self.info = info
            self.M, self.N = int(config["M"]), int(config["N"])
            self.num_qualities = len(config["lambdas"])
            # the gains: exp of the float32 parameters, correctly rounded (the same on every machine)
            self.gain = exact_exp(state["log_gain"])
            self.inv_gain = exact_exp(state["log_inv_gain"]).astype(np.float64)
            med = state["entropy_bottleneck.quantiles"].astype(np.float32)[:, 0, 1].astype(np.float64)
            self.medians = med
            self.median_units = np.rint(np.ldexp(med, FRAC)).astype(np.int64)
            self.z_tables = CdfTables(state["entropy_bottleneck._quantized_cdf"],
                                      state["entropy_bottleneck._cdf_length"], state["entropy_bottleneck._offset"])
            self.y_tables = CdfTables(state["gaussian_conditional._quantized_cdf"],
                                      state["gaussian_conditional._cdf_length"],
                                      state["gaussian_conditional._offset"])
            self.thresholds = scale_thresholds(state["gaussian_conditional.scale_table"].astype(np.float32))
            self.scale_index = ScaleIndex(self.thresholds)
            self.hyper = IntegerHyperSynthesis(state)
        except (KeyError, ValueError, TypeError, SafetensorError) as e:
            raise ModelError(f"the weights do not fit {info.architecture} ({e})", str(info.path)) from None
        if not (np.isfinite(self.gain).all() and np.isfinite(self.inv_gain).all()):
            raise ModelError(f"the weights do not fit {info.architecture} (gains beyond float32's range: log-gains "
                             "above 88; a diverged training run?)", str(info.path))
        if self.gain.shape != (self.num_qualities, self.M) or self.hyper.in_channels != self.N \
                or len(self.z_tables) != self.N or len(self.thresholds) + 1 != len(self.y_tables):
            raise ModelError(f"the weights do not fit {info.architecture} (shapes)", str(info.path))
        self.state = state  # the float weights, for the transforms
        self.torch_parts = torch_parts
        self.transforms: dict = {}  # (back-end, threads) → its transforms (saicm.engine.runtime.transforms)

    def latent_shapes(self, height: int, width: int) -> list[tuple[int, ...]]:
        return [(height // 64, width // 64)]

    # --- shared by encoder and decoder ---------------------------------------------------------
    def _hyper_rows(self, z_sym: np.ndarray, offset: np.ndarray | None = None):
        """The integer hyper-synthesis output p (2M, h, w) int64 in units 2**-FRAC (the scales, then the means) of
        the hyper-latent symbols (N, h/4, w/4), plus ``offset`` (2M, h, w) int64 if given (a conditioned codec), as
        a function ``(r0, r1) → p[:, r0:r1]``, called on consecutive row ranges top to bottom: computed by blocks
        of :data:`HYPER_ROWS_VALUES` output values (hyper-latent rows plus a halo of the network's reach in rows,
        cropped), the same integers as the whole. On the whole latent at once its int64
        activations and output took ~20 bytes per image pixel (2 GB of a 100 MP image's 3.4 GB peak to compress)."""
        n, zh, zw = z_sym.shape
        z_int = (np.clip(z_sym, -Z_LIMIT, Z_LIMIT) << FRAC) + self.median_units[:, None, None]
        cout = self.hyper.layers[-1].cout
        if offset is not None and offset.shape != (cout, 4 * zh, 4 * zw):
            raise FormatError("latent layout does not match the model (condition)")
        step = max(1, HYPER_ROWS_VALUES // max(1, cout * 16 * zw))  # hyper-latent rows per block
        halo = self.hyper.reach
        held = {"top": 0, "p": np.empty((cout, 0, 4 * zw), np.int64)}  # output rows [top, top + len) computed

        def rows(r0: int, r1: int) -> np.ndarray:
            r1 = min(r1, 4 * zh)
            top, p = held["top"], held["p"]
            if r0 < top:
                raise ValueError("hyper-synthesis rows asked out of order")
            if r0 < top + p.shape[1]:
                p, top = p[:, r0 - top:], r0  # (rows above r0 are not asked again)
            else:  # (rows skipped: from the hyper-latent row of r0)
                p, top = p[:, :0], r0 // 4 * 4
            while top + p.shape[1] < r1:
                a = (top + p.shape[1]) // 4  # the next hyper-latent row (blocks end on whole rows)
                b = zh if step >= zh else min(zh, a + step)
                lo, hi = max(0, a - halo), min(zh, b + halo)
                block = self.hyper(z_int[:, lo:hi])[:, 4 * (a - lo): 4 * (b - lo)]
                p = np.concatenate([p, block], axis=1) if p.shape[1] else block
            held["top"], held["p"] = top, p
            out = p[:, r0 - top: r1 - top]
            return out + offset[:, r0:r1] if offset is not None else out

        return rows

    def _z_tables_index(self, shape) -> np.ndarray:
        return np.broadcast_to(np.arange(self.N, dtype=np.int64)[:, None, None], shape)

    # --- coding --------------------------------------------------------------------------------
    def encode(self, y: np.ndarray, z: np.ndarray, strip_rows: int,
               offset: np.ndarray | None = None, tick=None) -> list[bytes]:
        """Strings ``[z, y strip 0, …]`` of the gained latent ``y`` (M, H, W) and the hyper-latent ``z``
        (``offset``: see :meth:`_hyper_rows`); ``tick(done, total)`` after each strip (a progress bar's)."""
        z_sym = np.rint(z.astype(np.float64) - self.medians[:, None, None])
        z_sym = symbols(np.clip(z_sym, -Z_LIMIT, Z_LIMIT, out=z_sym))
        strings = [self.z_tables.encode(z_sym, self._z_tables_index(z_sym.shape))]
        p = self._hyper_rows(z_sym, offset)
        starts = range(0, y.shape[-2], strip_rows)
        for i, r in enumerate(starts):
            s = slice(r, r + strip_rows)
            strings.append(self._encode_strip(y[:, s], p(r, r + strip_rows)))
            if tick is not None:
                tick(i + 1, len(starts))
        return strings

    def decode_units(self, strings: list[bytes], z_shape: tuple[int, int], strip_rows: int,
                     offset: np.ndarray | None = None, tick=None) -> np.ndarray:
        """The decoded gained latent ``ŷ`` (M, H, W) as exact integers in units of 2**-FRAC (symbol + mean);
        ``tick(done, total)`` after each strip."""
        h, w = z_shape
        n = self.N * h * w
        z_sym = self.z_tables.decode(strings[0], self._z_tables_index((self.N, h, w)).reshape(-1))
        if z_sym.size != n:
            raise FormatError("latent layout does not match the model")
        p = self._hyper_rows(z_sym.reshape(self.N, h, w), offset)
        rows = list(range(0, 4 * h, strip_rows))
        if len(strings) != 1 + len(rows):
            raise FormatError("latent layout does not match the model (strip count)")
        units = np.empty((self.M, 4 * h, 4 * w), np.int64)
        for i, (r, data) in enumerate(zip(rows, strings[1:])):
            s = slice(r, r + strip_rows)
            units[:, s] = self._decode_strip(data, p(r, r + strip_rows))
            if tick is not None:
                tick(i + 1, len(rows))
        return units

    def _encode_strip(self, y: np.ndarray, p: np.ndarray) -> bytes:
        """The string of one strip of rows of ``y`` (M, r, W) with its hyper-synthesis output ``p`` (2M, r, W)."""
        means = p[self.M:]
        sym = np.rint(y.astype(np.float64) - np.ldexp(means.astype(np.float64), -FRAC))
        return self.y_tables.encode(symbols(sym), self.scale_index(p[: self.M]))

    def _decode_strip(self, data: bytes, p: np.ndarray) -> np.ndarray:
        """ŷ (M, r, W) in units 2**-FRAC of one strip's string (:meth:`_encode_strip`)."""
        indexes = self.scale_index(p[: self.M])
        sym = self.y_tables.decode(data, indexes.reshape(-1)).reshape(indexes.shape)
        return p[self.M:] + (sym.astype(np.int64) << FRAC)

    def dequantise(self, units: np.ndarray, quality: int, channels: slice | np.ndarray | None = None) -> np.ndarray:
        """``ŷ·g⁻¹`` (1, C, H, W) float32 of :meth:`decode_units`' integers (float64, rounded once); ``units`` may
        hold the first C ≤ M channels only, or the channels ``channels`` selects."""
        ig = self.inv_gain[quality - 1][slice(0, units.shape[0]) if channels is None else channels, None, None]
        y = np.empty((1, *units.shape), np.float32)
        step = max(1, (1 << 22) // max(1, units.shape[0] * units.shape[2]))  # rows per block: bounded temporaries
        for r in range(0, units.shape[1], step):
            y[0, :, r: r + step] = np.ldexp(units[:, r: r + step].astype(np.float64), -FRAC) * ig
        return y

    def decode(self, strings: list[bytes], z_shape: tuple[int, int], quality: int, strip_rows: int,
               tick=None) -> np.ndarray:
        """The dequantised latent ``ŷ·g⁻¹`` (1, M, H, W) float32 of a version-3 stream's strings."""
        return self.dequantise(self.decode_units(strings, z_shape, strip_rows, tick=tick), quality)


def portable_model(info: ModelInfo) -> PortableModel:
    """The portable model of ``info``, of the class that codes its architecture."""
    from .context import PortableContextModel

    return PortableContextModel(info) if info.architecture == PortableContextModel.architecture else PortableModel(info)


#: the portable model of a weight file (the 8 used last: :func:`~saicm.models.catalog.model_cache`)
load = model_cache(portable_model)


def release_models() -> None:
    """The public ``saicm.release_models``: drop every model this process keeps loaded (the portable models with
    their onnxruntime sessions, up to 8 of each kind, and the PyTorch models if any were loaded) and hand the freed
    memory back to the system. For a long-running service that has coded with many models (it grew to 1.7 GB with
    five); the next call loads what it needs again (a few tenths of a second per model)."""
    import gc
    import sys

    from .parallel import shutdown_pools

    release_model_caches()  # (the portable models' and, where PyTorch is, the PyTorch models')
    shutdown_pools()
    gc.collect()
    if sys.platform.startswith("linux"):
        try:
            import ctypes

            ctypes.CDLL("libc.so.6").malloc_trim(0)  # glibc keeps freed pages in the process otherwise
        except (OSError, AttributeError):
            pass
