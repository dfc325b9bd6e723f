"""HNeRV's configurations without PyTorch: presets, the checks of a configuration read from a file, parameter
counts and the file's parameter layout (:mod:`saicm.video.hnerv` builds the network; it re-exports every name
here), as :mod:`saicm.video.nerv_config` for NeRV."""

from __future__ import annotations

import math

from ..errors import FormatError
from .nerv_config import MAX_BLOCKS, MAX_STRIDE, MAX_WIDTH, PRESETS as NERV_PRESETS, _int, _int_list, \
    check_activations, check_work, plan_strides, preset_widths

ARCHITECTURE = "hnerv"

#: embedding channels per preset; the decoder widths are NeRV's (:data:`saicm.video.nerv.PRESETS`)
EMBED = {"xs": 8, "s": 12, "m": 16, "l": 16}
PRESETS: dict[str, dict] = {k: {"embed": EMBED[k], "channels": list(v["channels"])} for k, v in NERV_PRESETS.items()}
MAX_PLAN_GRID = 64
MAX_EMBED = 256
MAX_KERNEL = 5
MAX_EMBEDDING_VALUES = 1 << 26
CONFIG_KEYS = {"embed", "grid", "strides", "channels", "kernels", "act", "output"}


def make_config(preset: str | dict, height: int, width: int) -> dict:
    """The full configuration of a preset (a name or a dict with ``embed`` and ``channels``) for a frame size;
    the strides: the first of NeRV's plans whose grid has at most :data:`MAX_PLAN_GRID` cells."""
    base = preset_widths(PRESETS, preset)
    channels = [int(v) for v in base["channels"]]
    strides = list(base.get("strides") or plan_strides(height, width, len(channels), MAX_PLAN_GRID))
    s = math.prod(strides)
    cfg = {"embed": int(base["embed"]), "grid": [-(-height // s), -(-width // s)], "strides": strides,
           "channels": channels, "kernels": [1] + [3] * (len(channels) - 1), "act": "gelu", "output": "tanh"}
    return check_config(cfg, height, width, 1)


def check_config(cfg, height: int, width: int, frames: int) -> dict:
    """``cfg`` if it is a valid HNeRV configuration for ``frames`` frames of ``height × width``, else FormatError."""
    if not isinstance(cfg, dict) or set(cfg) != CONFIG_KEYS:
        extra = sorted(set(cfg) - CONFIG_KEYS) if isinstance(cfg, dict) else []
        raise FormatError("corrupt header (architecture configuration: "
                          + (f"unknown keys {extra})" if extra else "wrong keys)"))
    embed = _int(cfg["embed"], 1, MAX_EMBED, "embed")
    strides = _int_list(cfg["strides"], 1, MAX_STRIDE, 1, MAX_BLOCKS, "strides")
    channels = _int_list(cfg["channels"], 1, MAX_WIDTH, len(strides), len(strides), "channels (one per stride)")
    kernels = _int_list(cfg["kernels"], 1, MAX_KERNEL, len(strides), len(strides), "kernels (one per stride)")
    if any(k % 2 == 0 for k in kernels):
        raise FormatError("corrupt header (architecture configuration: kernels must be odd)")
    grid = _int_list(cfg["grid"], 1, 4096, 2, 2, "grid")
    if cfg["act"] != "gelu" or cfg["output"] != "tanh":
        raise FormatError("corrupt header (architecture configuration: unknown activation or output)")
    s = math.prod(strides)
    if grid != [-(-height // s), -(-width // s)]:
        raise FormatError(f"corrupt header (architecture configuration: a {grid[0]}x{grid[1]} grid with strides "
                          f"{strides} does not make {width}x{height} frames)")
    if frames * embed * grid[0] * grid[1] > MAX_EMBEDDING_VALUES:
        raise FormatError("corrupt header (architecture configuration: too many embedding values)")
    out = {"embed": embed, "grid": grid, "strides": strides, "channels": channels, "kernels": kernels,
           "act": "gelu", "output": "tanh"}
    check_work(*count(out, frames), grid[0] * s * grid[1] * s)
    check_activations(embed, grid, strides, channels)
    return out


def count(config: dict, frames: int) -> tuple[int, int]:
    """(parameters including the embeddings of ``frames`` frames, multiply-adds per frame)."""
    gh, gw = config["grid"]
    params = frames * config["embed"] * gh * gw
    macs = 0
    cin, h, w = config["embed"], gh, gw
    for c, s, k in zip(config["channels"], config["strides"], config["kernels"]):
        params += k * k * cin * c * s * s + c * s * s
        macs += h * w * k * k * cin * c * s * s
        cin, h, w = c, h * s, w * s
    params += cin * 3 + 3
    macs += h * w * cin * 3
    return params, macs


def param_layout(config: dict, frames: int) -> list[tuple[str, tuple[int, ...], int]]:
    """(name, shape, quantisation groups) of every stored parameter, in file order: the embeddings (one step per
    frame), then per block the weight (one step per output channel) and bias (one step), then the head."""
    gh, gw = config["grid"]
    out = [("embeddings", (frames, config["embed"], gh, gw), frames)]
    cin = config["embed"]
    for k, (c, s, ks) in enumerate(zip(config["channels"], config["strides"], config["kernels"])):
        out += [(f"blocks.{k}.weight", (c * s * s, cin, ks, ks), c * s * s), (f"blocks.{k}.bias", (c * s * s,), 1)]
        cin = c
    out += [("head.weight", (3, cin, 1, 1), 3), ("head.bias", (3,), 1)]
    return out
