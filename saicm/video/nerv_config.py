"""NeRV's configurations without PyTorch: presets, stride plans, the checks of a configuration read from a file,
parameter counts and the file's parameter layout (:mod:`saicm.video.nerv` builds and renders the network; it
re-exports every name here). ``saicm info`` of a ``.saicmv`` file reads its header with these alone: it imported
PyTorch, seconds, for a header."""

from __future__ import annotations

import math

from ..errors import FormatError

ARCHITECTURE = "nerv"

#: width presets, smallest (fewest bytes) first; strides come from the frame size. Parameter counts at 352×288:
#: xs 49,915 · s 130,615 · m 290,039 · l 824,411 (``saicm video presets`` prints them for a size).
PRESETS: dict[str, dict] = {
    "xs": {"pe_levels": 40, "mlp_hidden": [16], "c0": 8, "channels": [24, 16, 12, 10, 8]},
    "s": {"pe_levels": 40, "mlp_hidden": [24], "c0": 12, "channels": [40, 32, 20, 12, 8]},
    "m": {"pe_levels": 40, "mlp_hidden": [32], "c0": 16, "channels": [64, 48, 32, 20, 12]},
    "l": {"pe_levels": 40, "mlp_hidden": [64], "c0": 24, "channels": [112, 80, 56, 32, 16]},
}
DEFAULT_PRESET = "s"
PE_BASE = 1.25

#: stride plans tried in order: the first whose grid has at most MAX_PLAN_GRID cells (and does not pad a frame
#: side by more than a quarter of a stride product) is used
STRIDE_PLANS = ((2, 2, 2, 2, 2), (3, 2, 2, 2, 2), (4, 2, 2, 2, 2), (5, 2, 2, 2, 2), (3, 3, 2, 2, 2),
                (4, 3, 2, 2, 2), (5, 3, 2, 2, 2), (4, 4, 2, 2, 2), (5, 4, 2, 2, 2), (5, 5, 2, 2, 2),
                (5, 4, 3, 2, 2), (5, 5, 3, 2, 2), (5, 5, 4, 2, 2))
MAX_PLAN_GRID = 256

# --- limits a configuration read from a file must respect ------------------------------------------
CONFIG_KEYS = {"pe_levels", "pe_base", "mlp_hidden", "c0", "grid", "strides", "channels", "act", "output"}
ACTS = ("gelu",)
OUTPUTS = ("tanh",)
MAX_PE_LEVELS = 128
MAX_WIDTH = 1024  # any MLP width, c0 or block channels
MAX_MLP_LAYERS = 4
MAX_BLOCKS = 8
MAX_STRIDE = 8
MAX_GRID_CELLS = 4096
MAX_PARAMS = 1 << 25  # 33.5 M parameters
MAX_MACS_PER_PIXEL = 1 << 17  # multiply-adds per output pixel
#: values of the largest activation per output pixel (a block's convolution output, c·s² channels at its input
#: size, is c values a pixel of its output): the presets make at most 16 (l's last block). Without it a 200 kB file
#: of four 1024×1024 frames (1,024 channels in its last block: within the work bound) had the decoder ask for 17 GB
MAX_VALUES_PER_PIXEL = 64


def plan_strides(height: int, width: int, blocks: int = 5, max_grid: int = MAX_PLAN_GRID) -> tuple[int, ...]:
    """Block strides for a frame size: the first plan of :data:`STRIDE_PLANS` whose grid has at most
    ``max_grid`` cells."""
    for plan in STRIDE_PLANS:
        s = math.prod(plan)
        if len(plan) == blocks and -(-height // s) * -(-width // s) <= max_grid:
            return plan
    return STRIDE_PLANS[-1]


def preset_widths(presets: dict, preset: str | dict) -> dict:
    """The widths of a preset: its entry in ``presets`` for a name, else the dict given, which holds at least the keys
    of the presets' (one-line :class:`~saicm.errors.ArgumentError` otherwise)."""
    from collections.abc import Mapping

    from ..errors import ArgumentError

    if isinstance(preset, Mapping):  # (a missing key was a KeyError, and a preset of another type a TypeError)
        missing = [k for k in next(iter(presets.values())) if k not in preset]
        if missing:
            raise ArgumentError(f"a preset dict needs {', '.join(missing)} (the presets' widths: "
                                "'saicm video presets' lists them)")
        return preset
    if not isinstance(preset, str):
        raise ArgumentError(f"preset must be a name ({', '.join(presets)}) or a dict of widths, not "
                            f"{type(preset).__name__}")
    if preset not in presets:
        raise ArgumentError(f"unknown preset {preset!r} (presets: {', '.join(presets)})")
    return presets[preset]


def make_config(preset: str | dict, height: int, width: int) -> dict:
    """The full configuration of a preset (a name or a dict of widths) for frames of ``height × width``."""
    base = preset_widths(PRESETS, preset)
    cfg = {"pe_levels": int(base["pe_levels"]), "pe_base": float(base.get("pe_base", PE_BASE)),
           "mlp_hidden": [int(v) for v in base["mlp_hidden"]], "c0": int(base["c0"]),
           "channels": [int(v) for v in base["channels"]], "act": base.get("act", "gelu"),
           "output": base.get("output", "tanh")}
    strides = tuple(base.get("strides") or plan_strides(height, width, len(cfg["channels"])))
    s = math.prod(strides)
    cfg["strides"] = list(strides)
    cfg["grid"] = [-(-height // s), -(-width // s)]
    return check_config(cfg, height, width)


def _int(v, lo: int, hi: int, what: str) -> int:
    if isinstance(v, bool) or not isinstance(v, int) or not lo <= v <= hi:
        raise FormatError(f"corrupt header (architecture configuration: {what} must be an integer {lo}..{hi})")
    return v


def _int_list(v, lo: int, hi: int, min_len: int, max_len: int, what: str) -> list[int]:
    if not isinstance(v, list) or not min_len <= len(v) <= max_len:
        raise FormatError(f"corrupt header (architecture configuration: {what} must be a list of "
                          f"{min_len}..{max_len} integers)")
    return [_int(x, lo, hi, what) for x in v]


def check_config(cfg, height: int, width: int, frames: int = 1) -> dict:
    """``cfg`` if it is a valid NeRV configuration for ``height × width`` frames, else a one-line FormatError
    (the frame count does not change a NeRV network; the argument is there for the common interface).

    Checked before anything is built: only known keys; every width, stride and
    count within bounds; the grid exactly ``ceil(H/S) × ceil(W/S)``; at most
    :data:`MAX_PARAMS` parameters and :data:`MAX_MACS_PER_PIXEL` multiply-adds
    per output pixel.
    """
    if not isinstance(cfg, dict) or set(cfg) != CONFIG_KEYS:
        extra = sorted(set(cfg) - CONFIG_KEYS) if isinstance(cfg, dict) else []
        raise FormatError("corrupt header (architecture configuration: "
                          + (f"unknown keys {extra})" if extra else "wrong keys)"))
    pe_levels = _int(cfg["pe_levels"], 1, MAX_PE_LEVELS, "pe_levels")
    base = cfg["pe_base"]
    if isinstance(base, bool) or not isinstance(base, (int, float)) or not 1.0 <= float(base) <= 4.0:
        raise FormatError("corrupt header (architecture configuration: pe_base must be a number 1..4)")
    hidden = _int_list(cfg["mlp_hidden"], 1, MAX_WIDTH, 0, MAX_MLP_LAYERS, "mlp_hidden")
    c0 = _int(cfg["c0"], 1, MAX_WIDTH, "c0")
    strides = _int_list(cfg["strides"], 1, MAX_STRIDE, 1, MAX_BLOCKS, "strides")
    channels = _int_list(cfg["channels"], 1, MAX_WIDTH, len(strides), len(strides), "channels (one per stride)")
    grid = _int_list(cfg["grid"], 1, MAX_GRID_CELLS, 2, 2, "grid")
    if cfg["act"] not in ACTS or cfg["output"] not in OUTPUTS:
        raise FormatError("corrupt header (architecture configuration: unknown activation or output)")
    s = math.prod(strides)
    if grid != [-(-height // s), -(-width // s)] or grid[0] * grid[1] > MAX_GRID_CELLS:
        raise FormatError(f"corrupt header (architecture configuration: a {grid[0]}x{grid[1]} grid with strides "
                          f"{strides} does not make {width}x{height} frames)")
    check_work(*_count(pe_levels, hidden, c0, grid, strides, channels), grid[0] * s * grid[1] * s)
    check_activations(c0, grid, strides, channels)
    return {"pe_levels": pe_levels, "pe_base": float(base), "mlp_hidden": hidden, "c0": c0, "grid": grid,
            "strides": strides, "channels": channels, "act": cfg["act"], "output": cfg["output"]}


def check_work(params: int, macs: int, pixels: int) -> None:
    """A header's network within the decoder's bounds: parameters, and multiply-adds per output pixel (``macs`` per
    frame of ``pixels``)."""
    if params > MAX_PARAMS:
        raise FormatError(f"corrupt header (architecture configuration: {params:,} parameters, more than the "
                          f"limit of {MAX_PARAMS:,})")
    if macs > MAX_MACS_PER_PIXEL * pixels:
        raise FormatError("corrupt header (architecture configuration: too much work per pixel)")


def check_activations(cin: int, grid, strides, channels) -> None:
    """A one-line FormatError when the blocks' largest activation holds more than :data:`MAX_VALUES_PER_PIXEL`
    values per output pixel (the decoder holds a few of them for a batch of frames; shared with HNeRV)."""
    h, w = grid
    peak = cin * h * w
    for c, s in zip(channels, strides):
        h, w = h * s, w * s
        peak = max(peak, c * h * w)
    if peak > MAX_VALUES_PER_PIXEL * h * w:
        raise FormatError(f"corrupt header (architecture configuration: {-(-peak // (h * w))} activation values per "
                          f"pixel, more than the limit of {MAX_VALUES_PER_PIXEL}; saicm's presets make at most 16: "
                          "a file of a custom preset written by saicm 0.31.0 or before decodes with that version)")


def count(config: dict, frames: int = 1) -> tuple[int, int]:
    """(parameters, multiply-adds per frame) of a checked configuration (any number of frames)."""
    return _count(config["pe_levels"], config["mlp_hidden"], config["c0"], config["grid"], config["strides"],
                  config["channels"])


def _count(pe_levels, hidden, c0, grid, strides, channels) -> tuple[int, int]:
    """(parameters, multiply-adds per frame) of a configuration, from its numbers alone."""
    params = macs = 0
    dims = [2 * pe_levels, *hidden, c0 * grid[0] * grid[1]]
    for a, b in zip(dims, dims[1:]):
        params += a * b + b
        macs += a * b
    cin, h, w = c0, grid[0], grid[1]
    for c, s in zip(channels, strides):
        params += 9 * cin * c * s * s + c * s * s
        macs += h * w * 9 * cin * c * s * s
        cin, h, w = c, h * s, w * s
    params += cin * 3 + 3
    macs += h * w * cin * 3
    return params, macs


def param_layout(config: dict, frames: int = 1) -> list[tuple[str, tuple[int, ...], int]]:
    """(name, shape, quantisation groups) of every parameter, in ``named_parameters`` order, from the config alone.

    Groups are contiguous, equal chunks of dim 0: one per output channel for weights, one per feature-map
    channel for the stem (MLP → grid; its rows are channel-major), one per tensor for biases."""
    out = []
    dims = [2 * config["pe_levels"], *config["mlp_hidden"]]
    for k, (a, b) in enumerate(zip(dims, dims[1:])):
        out += [(f"mlp.{k}.weight", (b, a), b), (f"mlp.{k}.bias", (b,), 1)]
    cells = config["c0"] * config["grid"][0] * config["grid"][1]
    out += [("stem.weight", (cells, dims[-1]), config["c0"]), ("stem.bias", (cells,), 1)]
    cin = config["c0"]
    for k, (c, s) in enumerate(zip(config["channels"], config["strides"])):
        out += [(f"blocks.{k}.weight", (c * s * s, cin, 3, 3), c * s * s), (f"blocks.{k}.bias", (c * s * s,), 1)]
        cin = c
    out += [("head.weight", (3, cin, 1, 1), 3), ("head.bias", (3,), 1)]
    return out
