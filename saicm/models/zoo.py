"""Weight files: saving, loading, and the shipped models.

A model file is one safetensors file. Float tensors are stored in fp16; the
entropy coder's integer CDF tables are stored as computed at export, so a
loaded model codes without any ``update()`` call and encoder and decoder always
share the same tables. The metadata carries the architecture name and its
config (JSON), so the file alone rebuilds the model.

Shipped models live in ``saicm/weights/<name>.safetensors``; the name is the
model id written into every bitstream, next to a checksum of the file.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from ..errors import ModelError
from .registry import build_architecture

WEIGHTS_DIR = Path(__file__).resolve().parent.parent / "weights"
SUFFIX = ".safetensors"


def user_model_dir() -> Path:
    """The user's own model folder (imported weights, ``saicm import-checkpoint``): ``$SAICM_MODELS``, else
    ``$XDG_DATA_HOME/saicm/models`` (``~/.local/share/saicm/models``). A bare model name that is not shipped is
    looked up here as ``NAME.safetensors``; the file's checksum is still checked against every stream."""
    env = os.environ.get("SAICM_MODELS")
    if env:
        return Path(env).expanduser()
    data = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(data) / "saicm" / "models"


@dataclass(frozen=True)
class ModelInfo:
    name: str
    path: Path
    architecture: str
    config: dict
    meta: dict

    @property
    def num_qualities(self) -> int:
        return len(self.config.get("lambdas", [0]))

    @property
    def training(self) -> dict:
        """The training settings stored by ``saicm train`` (loss, init, steps…); {} if none or unreadable."""
        try:
            t = json.loads(self.meta.get("training", "{}"))
        except ValueError:
            return {}
        return t if isinstance(t, dict) else {}


def file_checksum(path: str | os.PathLike) -> bytes:
    """First 8 bytes of the SHA-256 of a weight file (what bitstreams carry)."""
    return full_checksum(path)[:8]


def full_checksum(path: str | os.PathLike) -> bytes:
    """SHA-256 of a weight file (what a scalable model's config names its base by)."""
    return _sha256(str(Path(path).resolve()), os.stat(path).st_mtime_ns)


@functools.lru_cache(maxsize=64)
def _sha256(path: str, _mtime: int) -> bytes:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.digest()


def save_model(model: torch.nn.Module, path: str | os.PathLike, extra_meta: dict | None = None,
               precision: str = "fp16") -> None:
    """Export ``model`` as fp16 safetensors with ready-to-use CDF tables (atomic).

    ``precision="fp32"`` keeps the float tensors as they are (imported weights: decodes closest to the source
    code's) and the coder tables the model holds (``update()`` only fills empty ones)."""
    from .._fs import atomic_path

    if precision not in ("fp16", "fp32"):
        raise ValueError(f"precision must be fp16 or fp32, got {precision!r}")
    half = precision == "fp16"
    model = model.eval()
    if half:
        # Round float weights to fp16 first so the tables match what is loaded later.
        with torch.no_grad():
            for t in list(model.parameters()) + list(model.buffers()):
                if t.is_floating_point():
                    t.copy_(t.half().float())
    model.update(force=half)
    tensors = {}
    for k, v in model.state_dict().items():
        v = v.detach().cpu().contiguous()
        tensors[k] = v.half() if half and v.is_floating_point() and not k.endswith("lambdas") else v
    meta = {
        "format": "saicm-model/1",
        "architecture": model.architecture,
        "config": json.dumps(model.config),
    }
    for k, v in (extra_meta or {}).items():
        meta[k] = v if isinstance(v, str) else json.dumps(v)
    with atomic_path(path) as tmp:
        save_file(tensors, str(tmp), metadata=meta)
        _canonical_header(tmp)


def _canonical_header(path) -> None:
    """Rewrite a safetensors header with sorted keys, in place.

    safetensors writes its header's entries in hash-map order, which changes
    from run to run; the file's SHA-256 names the weights inside every
    ``.saicm`` stream, so the same weights must always give the same bytes.
    Re-ordering keys of the compact JSON keeps its length, so the data offsets
    do not move.
    """
    import struct

    with open(path, "r+b") as f:
        (n,) = struct.unpack("<Q", f.read(8))
        raw = f.read(n)
        header = json.loads(raw)
        if "__metadata__" in header:
            header["__metadata__"] = dict(sorted(header["__metadata__"].items()))
        text = json.dumps(header, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
        if len(text) > n:  # never happens for a header safetensors wrote itself (same compact JSON)
            raise ModelError("cannot canonicalise the weight file header", str(path))
        f.seek(8)
        f.write(text + b" " * (n - len(text)))


def read_info(path: str | os.PathLike, name: str | None = None) -> ModelInfo:
    from safetensors import safe_open

    path = Path(path)
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
    except (SafetensorError, OSError, ValueError) as e:
        raise ModelError(f"not a saicm model file ({e})", str(path)) from None
    if meta.get("format") != "saicm-model/1":
        raise ModelError("not a saicm model file (missing saicm metadata)", str(path))
    return ModelInfo(
        name=name or (path.name[: -len(SUFFIX)] if path.name.endswith(SUFFIX) else path.stem),
        path=path,
        architecture=meta["architecture"],
        config=json.loads(meta["config"]),
        meta=meta,
    )


LOSS_NAMES = {
    "mse": "plain MSE on all pixels (human vision)",
    "saicm": "SA-ICM: MSE on edge pixels only",
    "object": "Object-ICM: MSE on object pixels only",
}


def describe(info: ModelInfo) -> str:
    """One line on what a model is: its stored description, else what its training metadata says."""
    if info.meta.get("description"):
        return info.meta["description"]
    t = info.training
    if not t:
        return ""
    data = t.get("data") or []
    data = [data] if isinstance(data, str) else data
    where = ", ".join("/".join(Path(d).parts[-2:]) for d in data)
    text = f"{LOSS_NAMES.get(t.get('loss'), t.get('loss'))}; {t.get('steps_done', '?')} steps on {where}"
    if t.get("off_mask_weight"):
        text += f"; off-mask weight {t['off_mask_weight']}"
    if t.get("init"):
        text += f"; fine-tuned from {t['init']}"
    return text


def shipped_models() -> dict[str, ModelInfo]:
    """Name → info of every model in the package's weights folder, sorted by name."""
    out = {}
    for p in sorted(WEIGHTS_DIR.glob("*" + SUFFIX)):
        info = read_info(p)
        out[info.name] = info
    return out


def resolve(model: str | os.PathLike | None) -> ModelInfo:
    """A shipped model name or a path to a weight file → its info."""
    if model is None:
        model = default_model_name()
    s = str(model)
    if s.endswith(SUFFIX) or os.sep in s:
        if not Path(s).is_file():
            raise ModelError("model file not found", s)
        return read_info(s)
    models = shipped_models()
    if s not in models:
        user = user_model_dir() / (s + SUFFIX)  # a bare name (no path separator, no suffix): never leaves the folder
        if user.is_file():
            return read_info(user)
        if s in RETIRED_MODELS:
            raise ModelError(
                f"model {s!r} is no longer shipped; its weights are in the saicm repository's history: "
                f"git show {RETIRED_MODELS[s]}:saicm/weights/{s}{SUFFIX} > {s}{SUFFIX}, then pass that file "
                "with --model")
        known = ", ".join(models) or "none shipped"
        raise ModelError(f"unknown model {s!r} (shipped: {known}; imported: {user_model_dir()}; "
                         "or pass a .safetensors path)")
    return models[s]


#: The model used when none is named: the best-trained human-vision model shipped.
DEFAULT_MODEL = "mse-hyperprior-n64-v5"


#: Models once shipped and since removed from the package (superseded; their results stay in benchmarks/results/):
#: name → the last commit whose saicm/weights/ holds the file. Streams they wrote decode with that file as --model.
RETIRED_MODELS = {name: "fda74cf" for name in (
    "mse-hyperprior-n64", "mse-hyperprior-n64-v2", "object-coco-n64", "saicm-regions-a078-n64",
    "saicm-regions-a078-off005-n64", "saicm-regions-a048-n64", "saicm-regions-a048-n64-v2",
    "saicm-regions-a048-off005-n64-v2", "saicm-regions-a048-off02-n64-v2")}


#: Where several shipped SA-ICM models come from the same MSE model, the one to show (the best measured;
#: docs/results/sa-icm.md).
RECOMMENDED_MACHINE_MODEL = "saicm-regions-a048-off02-n64-v5"

#: The two-layer model `make demo` shows (machine layer = RECOMMENDED_MACHINE_MODEL).
RECOMMENDED_SCALABLE_MODEL = "scalable-off02v5-m4-cond"


def default_model_name() -> str:
    models = shipped_models()
    if not models:
        raise ModelError("no shipped model found in " + str(WEIGHTS_DIR))
    if DEFAULT_MODEL in models:
        return DEFAULT_MODEL
    preferred = [n for n in models if n.startswith("mse-")]
    return (preferred or list(models))[0]


def build_from_info(info: ModelInfo, config: dict | None = None) -> torch.nn.Module:
    """An untrained model of ``info``'s architecture and config (``config`` overrides it), ready for its weights."""
    import inspect

    from .registry import ARCHITECTURES

    config = dict(info.config if config is None else config)
    cls = ARCHITECTURES.get(info.architecture)
    if cls is not None and "model_dir" in inspect.signature(cls.__init__).parameters:
        config["model_dir"] = str(Path(info.path).resolve().parent)  # where a non-shipped base may lie
    try:
        return build_architecture(info.architecture, **config)
    except (TypeError, ValueError) as e:
        raise ModelError(f"the model's stored configuration does not fit {info.architecture} ({e})",
                         str(info.path)) from None


def instantiate(info: ModelInfo) -> torch.nn.Module:
    """A new model built from a weight file (not cached: the caller may change it), in eval mode, frozen."""
    path = str(info.path)
    model = build_from_info(info)
    state = load_file(path)
    state = {k: (v.float() if v.is_floating_point() else v) for k, v in state.items()}
    try:
        model.load_state_dict(state)
    except RuntimeError as e:
        raise ModelError(f"weights do not fit architecture {info.architecture}: {str(e).splitlines()[0]}", path) from None
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    return model


@functools.lru_cache(maxsize=8)
def _load_cached(path: str, _mtime: int) -> torch.nn.Module:
    model = instantiate(read_info(path))
    # channels-last: oneDNN's CPU convolutions run ~20% faster (measured on N=64 transforms).
    return model.to(memory_format=torch.channels_last)


def locate(name: str, sha256_hex: str, model_dir: str | None = None) -> ModelInfo:
    """The weight file a scalable model's config names: shipped ``name``, else ``model_dir/name.safetensors``, else
    ``name.safetensors`` in the user's model folder (:func:`user_model_dir`); its SHA-256 must be ``sha256_hex``."""
    candidates = []
    models = shipped_models()
    if name in models:
        candidates.append(models[name])
    for folder in ([model_dir] if model_dir else []) + [user_model_dir()]:  # beside it, then the user's folder
        p = Path(folder) / (name + SUFFIX)
        if p.is_file():
            candidates.append(read_info(p, name=name))
    for info in candidates:
        if full_checksum(info.path).hex() == sha256_hex:
            return info
    if candidates:
        raise ModelError(f"base model {name!r} found ({candidates[0].path}) but its weights differ from the ones "
                         f"this model was trained on (SHA-256 {sha256_hex[:16]}…)")
    where = f"shipped, in {model_dir} or in {user_model_dir()}" if model_dir else f"shipped or in {user_model_dir()}"
    raise ModelError(f"base model {name!r} not found ({where}); put {name}{SUFFIX} beside the scalable model file")


def load_model(model: str | os.PathLike | None = None) -> tuple[torch.nn.Module, ModelInfo]:
    """Load a shipped model by name, or a weight file by path, ready to code."""
    info = resolve(model)
    p = str(info.path.resolve())
    return _load_cached(p, os.stat(p).st_mtime_ns), info


def default_quality(num_qualities: int) -> int:
    """The quality used when none is given: the middle rate point (the upper middle for an even count)."""
    return num_qualities // 2 + 1


def model_table() -> list[dict]:
    """What ``saicm models`` shows: one row per shipped model."""
    rows = []
    default = default_model_name()
    for name, info in shipped_models().items():
        lambdas = info.config.get("lambdas", [])
        rows.append({
            "name": name,
            "default": name == default,
            "architecture": info.architecture,
            "config": info.config,
            "description": describe(info),
            "qualities": [{"quality": i + 1, "lambda": lam} for i, lam in enumerate(lambdas)],
            "default_quality": default_quality(len(lambdas)),
            "file": str(info.path),
            "bytes": info.path.stat().st_size,
            "sha256": _sha256(str(info.path.resolve()), os.stat(info.path).st_mtime_ns).hex(),
        })
    return rows
