"""The model catalogue: which weight files exist, what they are, their checksums (no PyTorch).

Resolving a model name, reading a file's metadata and checking a stream's
weights checksum are all the portable engine (:mod:`saicm.engine`) needs to
pick its model, so they live here, importable without torch;
:mod:`saicm.models.zoo` builds the PyTorch modules on top.

Shipped models live in ``saicm/weights/<name>.safetensors``; the name is the
model id written into every bitstream, next to a checksum of the file.
"""

from __future__ import annotations

import functools
import hashlib
import json
import math
import numbers
import os
from dataclasses import dataclass, field
from pathlib import Path

from .._fs import env_folder, xdg_dir
from ..errors import ArgumentError, ModelError, SaicmError

WEIGHTS_DIR = Path(__file__).resolve().parent.parent / "weights"
SUFFIX = ".safetensors"


def user_model_dir() -> Path:
    """The user's own model folder (imported weights, ``saicm import-checkpoint``): ``$SAICM_MODELS``, else
    ``$XDG_DATA_HOME/saicm/models`` (``~/.local/share/saicm/models``). A bare model name that is not shipped is
    looked up here as ``NAME.safetensors``; the file's checksum is still checked against every stream."""
    env = env_folder("SAICM_MODELS")
    if env is not None:
        return env
    return Path(xdg_dir("XDG_DATA_HOME", ".local/share")) / "saicm" / "models"


@dataclass(frozen=True)
class ModelInfo:
    """A model file as its metadata describes it (nothing loaded): ``name`` (what streams and commands call it),
    ``path`` of the weights, ``architecture`` (the registry's name), ``config`` (the architecture's constructor
    arguments, ``lambdas`` one per quality), ``meta`` (the file's metadata strings: ``description``, ``training``,
    …)."""

    name: str
    path: Path
    architecture: str
    config: dict
    # (not in the repr: the file's strings repeat the architecture and config and add the training record, and
    # ``saicm.list_models()`` as a notebook cell's result was 21 KB of text, 1.1-1.9 KB a model)
    meta: dict = field(repr=False)

    @property
    def num_qualities(self) -> int:
        return len(self.config.get("lambdas", [0]))

    @property
    def training(self) -> dict:
        """The training settings stored by ``saicm train`` (loss, init, steps…); {} if none or unreadable."""
        try:
            t = json.loads(self.meta.get("training", "{}"))
        except (ValueError, RecursionError):  # (nested past Python's limit: a crafted file)
            return {}
        return t if isinstance(t, dict) else {}


def file_checksum(path: str | os.PathLike) -> bytes:
    """First 8 bytes of the SHA-256 of a weight file (what bitstreams carry)."""
    return full_checksum(path)[:8]


def full_checksum(path: str | os.PathLike) -> bytes:
    """SHA-256 of a weight file (what a scalable model's config names its base by)."""
    return _sha256(str(Path(path).resolve()), file_version(path))


def file_version(path: str | os.PathLike) -> tuple[int, int, int, int]:
    """What tells one content of a file from another without reading it, for the caches of a process (checksums,
    metadata, loaded models): its modification and change times, size and inode. By the modification time alone, a
    weight file replaced under its name with the time kept (``cp -p``, ``rsync -t``, ``touch -r``: a retrained
    model put in place of the one a notebook had coded with) kept the old checksum and model in silence, and with
    them the decode cache's key of the old weights; the change time moves at every write, whatever the modification
    time says."""
    st = os.stat(path)
    return st.st_mtime_ns, st.st_ctime_ns, st.st_size, st.st_ino


#: the caches of :func:`model_cache` (emptied by :func:`release_model_caches`)
_MODEL_CACHES: list = []


class ModelCache:
    """``factory(info)`` per weight file (and name), the :data:`size` used last kept, each made again when its file's
    :func:`file_version` changes, which drops the older one: keyed by the version too (an ``lru_cache``), a file
    rewritten or only touched (a chmod, a backup's hard link: the change time moves) took another place at each
    change, a copy of its model that nothing would ask for again (8 copies of one model). Thread-safe; one copy of a
    model made by two threads at once is kept."""

    size = 8

    def __init__(self, factory):
        import collections
        import threading

        self._factory = factory
        self._lock = threading.Lock()
        self._entries: collections.OrderedDict = collections.OrderedDict()  # (path, name) → (version, made)

    def _get(self, key, version):
        with self._lock:
            entry = self._entries.get(key)
            if entry is None or entry[0] != version:
                return None
            self._entries.move_to_end(key)
            return entry[1]

    def __call__(self, info: ModelInfo):
        path = str(info.path.resolve())
        key, version = (path, info.name), file_version(path)
        made = self._get(key, version)
        if made is not None:
            return made
        with self._lock:  # (an older version goes before the new one is made: not both in memory at once)
            if key in self._entries and self._entries[key][0] != version:
                del self._entries[key]
        made = self._factory(read_info(path, name=info.name))  # (outside the lock: other models meanwhile)
        with self._lock:
            entry = self._entries.get(key)
            if entry is not None and entry[0] == version:  # made by another thread meanwhile: one copy
                made = entry[1]
            self._entries[key] = (version, made)
            self._entries.move_to_end(key)
            while len(self._entries) > self.size:
                self._entries.popitem(last=False)
        return made

    def cache_clear(self) -> None:
        with self._lock:
            self._entries.clear()


def model_cache(factory) -> ModelCache:
    """``load(info)`` giving ``factory(info)``, made once per weight file and :func:`file_version` (the 8 used last
    kept; a file's older version dropped: :class:`ModelCache`), emptied by :func:`release_model_caches`."""
    load = ModelCache(factory)
    _MODEL_CACHES.append(load)
    return load


def release_model_caches() -> None:
    """Empty every :func:`model_cache` (the portable engine's and the PyTorch models')."""
    for cache in _MODEL_CACHES:
        cache.cache_clear()


@functools.lru_cache(maxsize=64)
def _sha256(path: str, _version: tuple) -> bytes:
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").digest()


def read_info(path: str | os.PathLike, name: str | None = None) -> ModelInfo:
    """The metadata of a weight file (cached per path and :func:`file_version`: every command resolves models)."""
    try:
        version = file_version(path)
    except FileNotFoundError:
        raise ModelError("model file not found", str(path)) from None
    except OSError as e:
        raise ModelError(f"cannot read the model file ({e.strerror or e})", str(path)) from None
    return _read_info(str(path), version, name)


def _not_a_model(path) -> str | None:
    """``"a PNG image, not a model file (.safetensors)"`` for a file of another kind saicm knows (--model photo.png,
    a results JSON, a .saicm file), else None."""
    from .._fs import read_input
    from ..codec.container import file_kind, not_a

    try:
        head = read_input(path, limit=64)
    except SaicmError:
        return None
    if (file_kind(head) or ("",))[0].startswith("a model file"):  # (a damaged one: said as such)
        return None
    return not_a("a model file (.safetensors)", head, advise=False)


@functools.lru_cache(maxsize=256)
def _read_info(path: str, _version: tuple, name: str | None) -> ModelInfo:
    from safetensors import SafetensorError, safe_open

    path = Path(path)
    try:
        with safe_open(str(path), framework="np") as f:
            meta = f.metadata() or {}
    except (SafetensorError, ValueError):  # (safetensors' own words: "Error while deserializing header: ...")
        raise ModelError(_not_a_model(path) or "not a saicm model file (not in the safetensors format, or damaged)",
                         str(path)) from None
    except OSError as e:
        raise ModelError(f"cannot read the model file ({e.strerror or e})", str(path)) from None
    if meta.get("format") != "saicm-model/1":
        raise ModelError("not a saicm model file (missing saicm metadata)", str(path))
    arch = meta.get("architecture")
    if not isinstance(arch, str) or not arch:
        raise ModelError("not a saicm model file (no architecture in its metadata)", str(path))
    try:
        config = json.loads(meta.get("config", ""))
    except (ValueError, RecursionError):  # (nested past Python's limit: a crafted file)
        config = None
    if not isinstance(config, dict):
        raise ModelError("not a saicm model file (its configuration is not a JSON object)", str(path))
    if "lambdas" in config and not _rate_points(config["lambdas"]):
        raise ModelError("not a saicm model file (its λ values are not an ascending list of positive numbers)",
                         str(path))
    return ModelInfo(
        name=name or (path.name[: -len(SUFFIX)] if path.name.endswith(SUFFIX) else path.stem),
        path=path,
        architecture=arch,
        config=config,
        meta=meta,
    )


def _rate_points(lambdas) -> bool:
    """Whether a configuration's λ list is what every model builds its rate points from."""
    ok = isinstance(lambdas, list) and lambdas and all(
        isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) and v > 0 for v in lambdas)
    return bool(ok) and sorted(lambdas) == lambdas


LOSS_NAMES = {
    "mse": "plain MSE on all pixels (human vision)",
    "saicm": "SA-ICM: MSE on edge pixels",
    "object": "Object-ICM: MSE on object pixels",
}
#: the losses that weigh pixels by a mask (their description ends with what the pixels off the mask count)
MASKED_LOSSES = ("saicm", "object")


def describe(info: ModelInfo) -> str:
    """One line on what a model is: its stored description, else what its training metadata says."""
    if info.meta.get("description"):
        return info.meta["description"]
    t = info.training
    if not t:
        return ""
    # (a stranger's file may hold anything there: a record without "loss" was a TypeError traceback in saicm info)
    data = t.get("data") or []
    data = [data] if isinstance(data, str) else data if isinstance(data, list) else []
    where = ", ".join("/".join(Path(d).parts[-2:]) for d in data if isinstance(d, str)) or "?"
    loss, w = t.get("loss"), t.get("off_mask_weight")
    text = LOSS_NAMES.get(loss, loss) if isinstance(loss, str) else "loss not recorded"
    if loss in MASKED_LOSSES:
        text += f" + {w} × MSE off the mask" if w else " only"
    text += f"; {t.get('steps_done', '?')} steps on {where}"
    if t.get("init"):
        text += f"; fine-tuned from {t['init']}"
    return text


def info_copy(info: ModelInfo) -> ModelInfo:
    """A copy of ``info`` the caller may change (``read_info`` caches one per file, shared by everything coding)."""
    import copy

    return ModelInfo(info.name, info.path, info.architecture, copy.deepcopy(info.config), copy.deepcopy(info.meta))


def list_models() -> dict[str, ModelInfo]:
    """The public ``saicm.list_models``: name → info of every shipped model (copies: changing one changes nothing
    else). Your own models in ``$SAICM_MODELS``: :func:`user_models`; one JSON-ready row per model, shipped and
    yours: :func:`model_table` (what ``saicm models --json`` prints)."""
    return {name: info_copy(info) for name, info in shipped_models().items()}


def shipped_models() -> dict[str, ModelInfo]:
    """Name → info of every model in the package's weights folder, sorted by name."""
    out = {}
    for p in sorted(WEIGHTS_DIR.glob("*" + SUFFIX)):
        info = read_info(p)
        out[info.name] = info
    return out


def user_models() -> tuple[dict[str, ModelInfo], list[str]]:
    """Name → info of the model files in :func:`user_model_dir` (found by name by every command), and one line per
    file there that is not a readable model."""
    out, bad = {}, []
    folder = user_model_dir()
    try:
        files = sorted(folder / n for n in os.listdir(folder) if n.endswith(SUFFIX)) if folder.is_dir() else []
    except OSError as e:  # (a folder the user may not read: another's $HOME kept by sudo -u, a cron job's HOME)
        return out, [f"{folder}: your model folder cannot be read ({e.strerror or e})"]
    for p in files:
        try:
            info = read_info(p)
        except ModelError as e:
            bad.append(str(e))
            continue
        out[info.name] = info
    return out, bad


def _is_file(path: Path) -> bool:
    """Whether ``path`` is a file; False where it cannot be looked at: a model folder the user may not read
    (``$HOME`` another user's, kept by ``sudo -u``; a cron job's) was a traceback (``PermissionError``) for any
    model name that is not shipped, and for ``saicm models``."""
    try:
        return path.is_file()
    except OSError:
        return False


def names_a_file(model: str | os.PathLike) -> bool:
    """Whether ``model`` is a path to a weight file (a suffix or a separator) rather than a model name."""
    s = str(model)
    return s.endswith(SUFFIX) or os.sep in s


def _unknown_model_hint(name: str, shipped: list[str]) -> str:
    """What an unknown model name may have meant: the shipped names closest to it, or a newer release's version
    of a shipped family (``mse-hyperprior-n64-v9``), and where the list is: not all fourteen names on one line."""
    import difflib
    import re

    from .. import __version__

    versioned = re.fullmatch(r"(.+-v)(\d+)", name)
    if versioned:
        family = versioned[1]
        ours = [int(m[len(family):]) for m in shipped if m.startswith(family) and m[len(family):].isdigit()]
        if ours and int(versioned[2]) > max(ours):
            return (f"saicm {__version__} ships {family}{max(ours)} at most: a newer release's model? "
                    "'saicm models' lists the shipped ones")
    close = difflib.get_close_matches(name, shipped, n=3, cutoff=0.6)
    said = f"did you mean {' or '.join(close)}? " if close else ""
    return f"{said}'saicm models' lists the {len(shipped)} shipped ones" if shipped else "none shipped"


def unknown_coded_model(name: str, weights_sha: bytes, what: str = "the file") -> str:
    """The message for a file coded with a model found neither shipped nor in the user's folder: a file's model
    name was not typed by the user, so no "did you mean"; but weights it does ship under another name are named."""
    from .. import __version__

    same = [m for m, info in shipped_models().items() if file_checksum(info.path) == weights_sha]
    if same:
        return (f"{what} was coded with model {name!r}, whose weights saicm ships as {same[0]}: "
                f"decode it with --model {same[0]} (Python: model={same[0]!r})")
    return (f"{what} was coded with model {name!r} (weights {weights_sha.hex()[:16]}…), which saicm {__version__} "
            f"does not ship (your own, or a newer release's?): pass its model file with --model (Python: "
            f"model=PATH), or put it in your model folder {user_model_dir()} ($SAICM_MODELS) to use the name")


def resolve(model: str | os.PathLike | ModelInfo | None) -> ModelInfo:
    """A shipped model name or a path to a weight file (or a ``ModelInfo``: its file's) → its info."""
    if model is None:
        model = default_model_name()
    if isinstance(model, ModelInfo):  # (saicm.load_model's): read from its file again, as a name would be
        return read_info(model.path)
    if not isinstance(model, (str, os.PathLike)):
        what = "a PyTorch module" if hasattr(model, "state_dict") else f"a {type(model).__name__}"
        raise ModelError(f"model= takes a model name or a .safetensors path, not {what} (save a module of your own "
                         "with saicm.models.save_model(module, PATH.safetensors), then pass PATH)")
    s = os.fsdecode(model)  # (a path-like's own path, not its str(): an os.DirEntry's is "<DirEntry 'x'>")
    if not s.endswith(SUFFIX) and Path(s).suffix.lower() in (".pth", ".pt", ".tar", ".ckpt", ".bin") \
            and Path(s).is_file():
        raise ModelError("a PyTorch file, not a saicm model (.safetensors): a saicm training checkpoint becomes one "
                         "with saicm export, the authors' released or a CompressAI (mbt2018-mean) checkpoint with "
                         "saicm import-checkpoint", s)
    if names_a_file(s):
        if not Path(s).is_file():
            raise ModelError("model file not found", s)
        return read_info(s)
    models = shipped_models()
    if s not in models:
        user = user_model_dir() / (s + SUFFIX)  # a bare name (no path separator, no suffix): never leaves the folder
        if _is_file(user):
            return read_info(user)
        if s in RETIRED_MODELS:
            raise ModelError(f"model {s!r} is no longer shipped; " + recover_weights(s, RETIRED_MODELS[s]))
        if Path(s).is_file():  # (--model photo.png, --model results.json: a file, but not a model's)
            from .._fs import read_input
            from ..codec.container import file_kind

            if (file_kind(read_input(s, limit=64)) or ("",))[0].startswith("a model file"):  # (without its suffix)
                return read_info(s)
            raise ModelError(_not_a_model(s) or "not a model file: --model takes a model's name or its .safetensors "
                             "file", s)
        udir = user_model_dir()
        try:
            state = "" if udir.is_dir() else ", which is not a folder" if udir.exists() else ", which does not exist"
        except OSError as e:
            state = f", which cannot be read ({e.strerror or e})"
        raise ModelError(f"unknown model {s!r} ({_unknown_model_hint(s, list(models))}; your own are found by "
                         f"name in {udir} ($SAICM_MODELS){state}, or give the weight file's path: PATH.safetensors)")
    return models[s]


#: The model used when none is named: the best-trained human-vision model shipped.
DEFAULT_MODEL = "mse-context-n64-v7"

#: Models that were the default before :data:`DEFAULT_MODEL`: name → the version whose default replaced it (a job
#: that named no model finds its earlier outputs coded by one of these after an upgrade, and is told why).
FORMER_DEFAULT_MODELS = {"mse-hyperprior-n64-v5": "0.37.0"}


#: Models once shipped and since removed from the package (superseded; their results stay in benchmarks/results/):
#: name → the last commit whose saicm/weights/ holds the file. Streams they wrote decode with that file as --model.
RETIRED_MODELS = {name: "fda74cf" for name in (
    "mse-hyperprior-n64", "mse-hyperprior-n64-v2", "object-coco-n64", "saicm-regions-a078-n64",
    "saicm-regions-a078-off005-n64", "saicm-regions-a048-n64", "saicm-regions-a048-n64-v2",
    "saicm-regions-a048-off005-n64-v2", "saicm-regions-a048-off02-n64-v2")}


#: Weights shipped under a name and later replaced in place (saicm 0.1.0, before the version rule): (name, first 8
#: bytes of their SHA-256 in hex) → a commit whose saicm/weights/ holds them. Streams they wrote name the model, but
#: decode only with these weights, not with the file :data:`RETIRED_MODELS` (or the package) gives for the name.
REPLACED_WEIGHTS = {("mse-hyperprior-n64", "3dad81ee2b147142"): "4c6fa5e"}


def recover_weights(name: str, commit: str) -> str:
    """How to get back the weights of ``name`` that ``commit`` holds, and use them (the end of an error message)."""
    return (f"its weights are in the saicm repository's history: git show {commit}:saicm/weights/{name}{SUFFIX} > "
            f"{name}{SUFFIX}, then give that file's path where you named the model ({name}{SUFFIX} with --model, "
            "--init, --base or --human-init; Python: model=PATH), or put it in your model folder ($SAICM_MODELS) to "
            "use the name")


def replaced_weights(name: str, weights_sha: bytes) -> str | None:
    """The commit holding the superseded weights of ``name`` that a file's checksum names (None if unknown)."""
    return REPLACED_WEIGHTS.get((name, weights_sha.hex()))


#: The best-measured SA-ICM model of each MSE family, best first (docs/results/sa-icm.md): where several shipped
#: SA-ICM models come from the same MSE model, the one to show beside it.
BEST_MACHINE_MODELS = ("saicm-regions-a048-off02-n64-v6", "saicm-regions-a048-off02-n64-v5")
#: The SA-ICM model recommended beside the default (a context model since 0.38.0; v5's namesake before).
RECOMMENDED_MACHINE_MODEL = BEST_MACHINE_MODELS[0]

#: The two-layer model `make demo` shows (machine layer = RECOMMENDED_MACHINE_MODEL; scalable-off02v5-m4-cond
#: before 0.38.0).
RECOMMENDED_SCALABLE_MODEL = "scalable-off02v6-m4-cond"
#: the architecture of two-layer (scalable) models: :mod:`saicm.models.scalable`
SCALABLE_ARCHITECTURE = "scalable-fusion"


def non_finite(state: dict) -> list[str]:
    """The names of ``state``'s floating-point tensors (NumPy arrays or PyTorch tensors, bfloat16 included) that hold
    NaN or infinite values. A PyTorch tensor whose sum is finite is finite (NaN and infinity reach the sum): one pass
    with no mask, 10× faster than ``isfinite().all()`` on PyTorch's CPU kernels (0.2 s of a 76 M-parameter TCM's
    0.8 s load); one whose sum overflows is checked value by value."""
    bad = []
    for k, v in state.items():
        if hasattr(v, "is_floating_point"):  # a torch tensor (bfloat16 included)
            if v.is_floating_point() and v.numel() and not bool(v.detach().sum().isfinite()) \
                    and not bool(v.isfinite().all()):
                bad.append(k)
        elif getattr(getattr(v, "dtype", None), "kind", "") == "f" and v.size:
            import numpy as np

            if not np.isfinite(v).all():
                bad.append(k)
    return bad


def check_finite(state: dict, source: str) -> None:
    """Refuse, in one :class:`ModelError` line naming the first ones, a weight file whose floating-point tensors
    (NumPy arrays or PyTorch tensors) hold NaN or infinite values: a diverged run's, or a value beyond fp16's range
    rounded to infinity. Such a model coded black images or failed with a traceback, and its NaN biases and tables
    went through an integer cast whose result depends on the CPU (x86 and ARM decoded such a file differently)."""
    bad = non_finite(state)
    if bad:
        raise ModelError(f"{len(bad)} tensor(s) of the weight file hold NaN or infinite values ({', '.join(bad[:3])}"
                         f"{', ...' if len(bad) > 3 else ''}): a diverged training run? use a model or checkpoint "
                         "saved before it diverged", source)


def check_fusion_channels(channels, count: int, M: int) -> tuple[int, ...] | None:
    """``fusion_channels`` as a tuple of ``count`` distinct ints in ``[0, M)``, or None (the first ``count``)."""
    if channels is None:
        return None
    if not isinstance(channels, (list, tuple)):
        raise ValueError(f"fusion_channels must be a list of {count} channel numbers")
    out = tuple(channels)
    if (len(out) != count or not all(isinstance(v, int) and not isinstance(v, bool) and 0 <= v < M for v in out)
            or len(set(out)) != count):
        raise ValueError(f"fusion_channels must be {count} distinct channel numbers in 0..{M - 1}")
    return None if out == tuple(range(count)) else out


def default_model_name() -> str:
    models = shipped_models()
    if not models:
        raise ModelError("no shipped model found in " + str(WEIGHTS_DIR))
    if DEFAULT_MODEL in models:
        return DEFAULT_MODEL
    preferred = [n for n in models if n.startswith("mse-")]
    return (preferred or list(models))[0]


def locate(name: str, sha256_hex: str, model_dir: str | None = None) -> ModelInfo:
    """The weight file a scalable model's config names: shipped ``name``, else ``model_dir/name.safetensors``, else
    ``name.safetensors`` in the user's model folder (:func:`user_model_dir`); its SHA-256 must be ``sha256_hex``.
    ``name`` comes from a model file (anyone's): a plain name, as in a stream's header, never a path (``../x``
    looked outside both folders)."""
    from ..codec.limits import is_model_name

    if not isinstance(name, str) or not is_model_name(name):
        raise ModelError(f"the base model's name {name!r} is not a plain model name (a path, hidden, or too long): "
                         "refused")
    candidates = []
    models = shipped_models()
    if name in models:
        candidates.append(models[name])
    for folder in ([model_dir] if model_dir else []) + [user_model_dir()]:  # beside it, then the user's folder
        p = Path(folder) / (name + SUFFIX)
        if _is_file(p):
            candidates.append(read_info(p, name=name))
    for info in candidates:
        if full_checksum(info.path).hex() == sha256_hex:
            return info
    if candidates:
        raise ModelError(f"base model {name!r} found ({candidates[0].path}) but its weights differ from the ones "
                         f"this model was trained on (SHA-256 {sha256_hex[:16]}…)")
    where = f"shipped, in {model_dir} or in {user_model_dir()}" if model_dir else f"shipped or in {user_model_dir()}"
    raise ModelError(f"base model {name!r} not found ({where}); put {name}{SUFFIX} beside the scalable model file")


def default_quality(num_qualities: int) -> int:
    """The quality used when none is given: the middle rate point (the upper middle for an even count)."""
    return num_qualities // 2 + 1


def checked_quality(quality, num_qualities: int, what: str) -> int:
    """``quality`` (None: :func:`default_quality`) as an int in 1..``num_qualities``, or a one-line error naming
    ``what`` ("quality 9 out of range for WHAT (1..7)"); a float or a string is refused, not truncated."""
    if quality is None:
        return default_quality(num_qualities)
    if isinstance(quality, bool) or not isinstance(quality, numbers.Integral):
        raise ArgumentError(f"quality must be a whole number, not {quality!r}")
    if not 1 <= quality <= num_qualities:
        raise ArgumentError(f"quality {quality} out of range for {what} (1..{num_qualities})")
    return int(quality)


def model_table() -> list[dict]:
    """What ``saicm models`` shows: one row per shipped model, then one per model of :func:`user_model_dir`
    (``"source"``: ``shipped`` or ``user``; a user model named like a shipped one is ``shadowed``: the name finds
    the shipped one)."""
    rows = []
    default = default_model_name()
    shipped = shipped_models()
    mine, _ = user_models()
    recommended = {RECOMMENDED_MACHINE_MODEL: "sa-icm", RECOMMENDED_SCALABLE_MODEL: "two-layer"}
    for source, models in (("shipped", shipped), ("user", mine)):
        for name, info in models.items():
            rows.append(_model_row(name, info, source, name == default and source == "shipped",
                                   source == "user" and name in shipped,
                                   recommended.get(name) if source == "shipped" else None))
    return rows


def _model_row(name: str, info: ModelInfo, source: str, default: bool, shadowed: bool,
               recommended: str | None = None) -> dict:
    lambdas = info.config.get("lambdas", [])  # read_info checked it
    return {
        "name": name,
        "source": source,
        **({"shadowed": True} if shadowed else {}),
        "default": default,
        # the shipped model recommended for a use other than the default's ("sa-icm", "two-layer"; else None)
        "recommended": recommended,
        "architecture": info.architecture,
        "config": info.config,
        "description": describe(info),
        "qualities": [{"quality": i + 1, "lambda": lam} for i, lam in enumerate(lambdas)],
        "default_quality": default_quality(len(lambdas)),
        "file": str(info.path),
        "bytes": info.path.stat().st_size,
        "sha256": full_checksum(info.path).hex(),
        "training": info.training,  # the `saicm train` settings that made it ({} if none)
    }


def model_file_row(path: str | os.PathLike) -> dict:
    """What ``saicm info MODEL.safetensors`` shows: the model's row of ``saicm models --json`` (its training
    settings included), read from the file alone."""
    info = read_info(path)
    return _model_row(info.name, info, "file", False, False)
