"""Weight files: saving and loading the PyTorch models (the catalogue of files is :mod:`saicm.models.catalog`).

A model file is one safetensors file. Float tensors are stored in fp16; the
entropy coder's integer CDF tables are stored as computed at export, so a
loaded model codes without any ``update()`` call and encoder and decoder always
share the same tables. The metadata carries the architecture name and its
config (JSON), so the file alone rebuilds the model.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import threading
from pathlib import Path

import torch
from safetensors.torch import load_file
from safetensors.torch import save as serialize

from ..errors import ModelError, bytes_text, names_as_utf8
from .catalog import (  # noqa: F401  (re-exported: the catalogue is part of the zoo's API)
    DEFAULT_MODEL, LOSS_NAMES, RECOMMENDED_MACHINE_MODEL, RECOMMENDED_SCALABLE_MODEL, RETIRED_MODELS, SUFFIX,
    WEIGHTS_DIR, ModelInfo, _sha256, check_finite, default_model_name, default_quality, describe, file_checksum,
    file_version, full_checksum, locate, model_cache, model_table, non_finite, read_info, resolve, shipped_models,
    user_model_dir)
from .registry import build_architecture


def _check_savable(model: torch.nn.Module, half: bool, source: str) -> None:
    """Refuse (one :class:`ModelError` line) to save weights holding NaN or infinite values, or, in fp16, values
    beyond its range (±65504), which it rounds to infinity: every reader refuses such a file (a diverged run's
    export was written, and was refused only when it was used; its coder tables' update was a traceback)."""
    state = model.state_dict()
    bad = non_finite(state)
    # (the lambdas too: stored in fp32, they are rounded through fp16 first, as every float buffer is)
    beyond = [] if bad or not half else [
        f"{k} {float(v.abs().max()):.3g}" for k, v in state.items()
        if v.is_floating_point() and v.numel() and bool(torch.isinf(v.half()).any())]
    if bad or beyond:
        names = bad or beyond
        listed = ", ".join(names[:3]) + (", ..." if len(names) > 3 else "")
        what = (f"{len(bad)} tensor(s) hold NaN or infinite values ({listed})" if bad else
                f"{len(beyond)} tensor(s) hold values beyond fp16's range of ±65504 ({listed}), which it would make "
                "infinite")
        raise ModelError(f"cannot save the model: {what}: a diverged training run? (save one from a checkpoint "
                         "written before it diverged" + ("" if bad else "; weights that large are kept in fp32: "
                                                         "import-checkpoint --precision fp32, its default") + ")",
                         source)


def save_model(model: torch.nn.Module, path: str | os.PathLike, extra_meta: dict | None = None,
               precision: str = "fp16", in_place: bool = False) -> None:
    """Export ``model`` as fp16 safetensors with ready-to-use CDF tables (atomic) to ``path``: a file that ``saicm
    compress --model PATH`` (or ``model=PATH``, or by name in ``$SAICM_MODELS``) codes with. ``extra_meta``: more
    metadata strings of the file (in its info's ``meta``; a string as it is, other values as JSON).

    ``model`` is left as it was (its weights, coder tables and training mode: a training loop may save and go
    on): a copy is rounded and exported, unless ``in_place`` (a model the caller drops afterwards: no copy).
    ``precision="fp32"`` keeps the float tensors as they are (imported weights: decodes closest to the source
    code's) and the coder tables the model holds (``update()`` only fills empty ones)."""
    from .._fs import atomic_path
    from .registry import build_architecture

    if precision not in ("fp16", "fp32"):
        raise ValueError(f"precision must be fp16 or fp32, got {precision!r}")
    half = precision == "fp16"
    _check_savable(model, half, str(path))
    if not in_place:
        copy = build_architecture(model.architecture, **model.config, **getattr(model, "build_extras", {}))
        copy.load_state_dict(model.state_dict())
        model = copy
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
        meta[k] = names_as_utf8(v) if isinstance(v, str) else json.dumps(v)  # (a name that is not UTF-8 raised)
    # the bytes written by Python: a full disk is an OSError (one line); safetensors' own writer raised a traceback
    data = serialize(tensors, metadata=meta)
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
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


def weights_nbytes(path) -> int:
    """The bytes a weight file's tensors take in float32 (read from its header, nothing loaded)."""
    import math

    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(path), framework="np") as f:
            return sum(4 * math.prod(f.get_slice(k).get_shape()) for k in f.keys())
    except (SafetensorError, OSError, ValueError) as e:
        raise ModelError(f"not a saicm model file ({e})", str(path)) from None


class AllocationBudget(torch.overrides.TorchFunctionMode):
    """Refuses tensors beyond ``limit`` bytes in all while a model is built from a file's stored configuration:
    the configuration comes from the file, so an edited one (N = 100,000; a TCM window of 200) would otherwise
    make the constructor allocate (and fill) tens of GB before the weights are found not to fit.

    Every tensor a torch function returns counts (new tensors only, not in-place results), so the budget bounds
    the volume a constructor allocates, temporaries included. Before a call runs, the size it asks for is
    estimated from its arguments and refused if it would cross the limit: a factory's size (``torch.empty``,
    ``zeros``, ``eye``, …) and the broadcast shape of an element-wise op's tensors (``r[:, None] - r[None, :]``).
    Only the innermost budget counts: a model built inside another's constructor (a scalable model's base) is
    checked against its own file."""

    _local = threading.local()  # the budgets open in this thread (torch's mode stack is per thread too)

    def __init__(self, limit: int, source: str):
        super().__init__()
        self.limit, self.source, self.used, self.refused = int(limit), source, 0, False

    @classmethod
    def _open(cls) -> list:
        if not hasattr(cls._local, "stack"):
            cls._local.stack = []
        return cls._local.stack

    def __enter__(self):
        self._open().append(self)
        return super().__enter__()

    def __exit__(self, *exc):
        self._open().pop()
        return super().__exit__(*exc)

    @classmethod
    @contextlib.contextmanager
    def outside(cls):
        """No open budget counts inside: for reading a weight file's own tensors (bounded by the file, not by a
        configuration), e.g. a scalable model's base loaded within the scalable model's constructor."""
        stack = cls._open()
        stack.append(None)
        try:
            yield
        finally:
            stack.pop()

    @staticmethod
    def _requested(func, args, kwargs) -> int:
        """Bytes a call will return, estimated from its arguments (0 when they do not say)."""
        import math

        tensors = [a for a in args if isinstance(a, torch.Tensor)]
        if tensors:  # element-wise ops return the broadcast shape of their operands
            if len(tensors) < 2:
                return 0
            try:
                shape = torch.broadcast_shapes(*(t.shape for t in tensors))
            except RuntimeError:  # not broadcastable: not an element-wise op
                return 0
            return math.prod(shape) * max(t.element_size() for t in tensors)
        if func not in _constructors():
            return 0
        name = getattr(func, "__name__", "")
        if name in ("tensor", "as_tensor", "asarray"):  # their argument is data, not a size (counted after the call)
            return 0
        ints = [a for a in args if isinstance(a, int) and not isinstance(a, bool)]
        if name == "eye" and ints:
            return 4 * ints[0] * (ints[1] if len(ints) > 1 else ints[0])
        size = kwargs.get("size")
        if size is None:
            size = next((a for a in args if isinstance(a, (tuple, list, torch.Size))), None)
        if size is None:
            size = ints if name in ("empty", "zeros", "ones", "rand", "randn") else ()
        try:
            return 4 * math.prod(max(int(d), 0) for d in size)
        except (TypeError, ValueError):
            return 0

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        # once refused, the calls that unwind the constructor (a no_grad block restoring the grad mode) run freely
        counts = not self.refused and self._open()[-1] is self
        if counts:
            asked = self._requested(func, args, kwargs)
            if asked and self.used + asked > self.limit:
                self._refuse()
        out = func(*args, **kwargs)
        if counts and isinstance(out, torch.Tensor) and not any(out is a for a in args):
            self.used += out.numel() * out.element_size()
            if self.used > self.limit:
                self._refuse()
        return out

    def _refuse(self):
        self.refused = True
        raise ModelError(f"the model's stored configuration asks for more than {bytes_text(self.limit)} of tensors, "
                         "far beyond the weights the file holds (an edited or damaged file?)", self.source)


@functools.lru_cache(maxsize=1)
def _constructors():
    from torch.utils._device import _device_constructors

    return _device_constructors()


#: what building a model may allocate: this many times its file's tensors in float32 (the parameters, the
#: initialisers' temporaries: the released TCM's constructor makes 2.05× its file), plus the slack
BUILD_BUDGET_FACTOR = 3
BUILD_SLACK_BYTES = 64 << 20


def build_from_info(info: ModelInfo, config: dict | None = None) -> torch.nn.Module:
    """An untrained model of ``info``'s architecture and config (``config`` overrides it), ready for its weights.

    The configuration is the file's (anyone may have written it), so its model is built within a memory budget
    of three times the file's tensors (:class:`AllocationBudget`)."""
    import inspect

    from .registry import load_architectures

    source = str(info.path)
    try:
        config = dict(info.config if config is None else config)
    except (TypeError, ValueError):
        raise ModelError("the model's stored configuration is not a mapping of options", source) from None
    cls = load_architectures().get(info.architecture)
    if cls is not None and "model_dir" in inspect.signature(cls.__init__).parameters:
        config["model_dir"] = str(Path(info.path).resolve().parent)  # where a non-shipped base may lie
    budget = AllocationBudget(BUILD_BUDGET_FACTOR * weights_nbytes(info.path) + BUILD_SLACK_BYTES, source)
    try:
        with budget:
            return build_architecture(info.architecture, **config)
    except ModelError as e:
        if e.path is None:  # the architecture's own message: name the file it came from
            raise ModelError(e.message, source) from None
        raise
    except (TypeError, ValueError, RuntimeError, ArithmeticError, LookupError, AttributeError, MemoryError) as e:
        msg = " ".join(str(e).split())[:200]
        raise ModelError(f"the model's stored configuration does not fit {info.architecture} ({msg})",
                         source) from None


#: state-dict entries that are constants of CompressAI's entropy models, not learned: the floor of a likelihood
#: (1e-9), which an fp16 weight file holds as 0
CONSTANT_SUFFIXES = ("likelihood_lower_bound.bound",)


def keep_constants(model: torch.nn.Module, state: dict) -> None:
    """Replace, in ``state`` (in place), the constants of :data:`CONSTANT_SUFFIXES` by ``model``'s own values.

    With a floor of 0 (an fp16 file's 1e-9) a training step's rate of an unlikely symbol is infinite and every
    step is skipped (``saicm train --human-init`` of a scalable model with m < 4 stopped so). Coding is not
    affected: the coder's tables do not read the floor."""
    own = model.state_dict()
    for k in state:
        if k.endswith(CONSTANT_SUFFIXES) and k in own:
            state[k] = own[k].clone()


def load_strict(model: torch.nn.Module, state: dict, source: str, what: str) -> None:
    """``state`` into ``model``, every key and shape; a mismatch (another model's weights, an edited file) is one
    ``ModelError`` line naming the first one, never a model used half-loaded."""
    try:
        model.load_state_dict(state, strict=True)
    except (RuntimeError, KeyError, ValueError, TypeError) as e:
        msg = " ".join(str(e).split())
        detail = msg.split(":", 1)[1].strip() if msg.startswith("Error(s) in loading") and ":" in msg else msg
        raise ModelError(f"the weights do not fit {what} ({detail[:200]})", source) from None


class PrivateRandom(torch.overrides.TorchFunctionMode):
    """Inside, in this thread, the random draws of torch functions come from a generator of their own (seeded 0), not
    from PyTorch's global one: for building a model whose initial weights its file's then replace. Building drew
    from the global generator (every layer's initialisation), so a program that seeded PyTorch for draws of its own
    got other numbers after ``saicm.load_model`` or a first coding with PyTorch (``engine="torch"``, format 1
    files): which, in a service, depended on the calls made before (the models cached) and on its other threads.
    (A mode is per thread, as the global generator is not: saving and restoring the global state instead would
    have given another thread's draws made meanwhile twice.)"""

    #: draws that take ``generator=`` but are not always given one (``nn.init``'s pass theirs, None by default)
    DRAWS = frozenset(("uniform_", "normal_", "random_", "exponential_", "cauchy_", "log_normal_", "geometric_",
                       "bernoulli_", "rand", "randn", "randint", "randperm", "normal", "bernoulli", "multinomial",
                       "poisson"))

    def __init__(self):
        super().__init__()
        self.generator = torch.Generator().manual_seed(0)

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = dict(kwargs or {})
        if kwargs.get("generator", 0) is None or ("generator" not in kwargs
                                                   and getattr(func, "__name__", "") in self.DRAWS):
            kwargs["generator"] = self.generator
        return func(*args, **kwargs)


def instantiate(info: ModelInfo) -> torch.nn.Module:
    """A new model built from a weight file (not cached: the caller may change it), in eval mode, frozen. Its
    initial weights, replaced by the file's, draw nothing from PyTorch's global random generator
    (:class:`PrivateRandom`). Built on the CPU, where coding runs, whatever the caller's default device
    (``torch.set_default_device("cuda")`` in a notebook: its generator's draws on CUDA tensors failed, said as "the
    model's stored configuration does not fit")."""
    path = str(info.path)
    with torch.device("cpu"), PrivateRandom():
        model = build_from_info(info)
    # (a base read inside a scalable model's constructor counted against that model's budget: the imported ICM-v1
    # pair, a 307 MB base under a 269 MB scalable file, was refused as "an edited or damaged file")
    with AllocationBudget.outside():
        state = load_file(path)
        check_finite(state, path)
        state = {k: (v.float() if v.is_floating_point() else v) for k, v in state.items()}
        keep_constants(model, state)
        load_strict(model, state, path, f"architecture {info.architecture}")
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    return model


def _coding_model(info: ModelInfo) -> torch.nn.Module:
    # channels-last: oneDNN's CPU convolutions run ~20% faster (measured on N=64 transforms).
    return instantiate(info).to(memory_format=torch.channels_last)


#: the PyTorch model of a weight file, as coding uses it (the 8 used last: :func:`~saicm.models.catalog.model_cache`)
_loaded = model_cache(_coding_model)


def open_model(model: str | os.PathLike | None = None) -> tuple[torch.nn.Module, ModelInfo]:
    """The public ``saicm.load_model``: ``model``, a model by name (shipped, or one of ``$SAICM_MODELS``) or a
    weight file by path (None: the default model, :data:`saicm.models.catalog.DEFAULT_MODEL`), as a module of the
    caller's own, built as the coding path builds it (channels-last, in eval mode, parameters frozen:
    ``requires_grad_()`` to train it), and a copy of its info.
    Changing either changes nothing else (saicm codes every file with a cached model of its own,
    :func:`saicm.models.zoo.load_model`'s)."""
    from .catalog import info_copy

    info = resolve(model)
    return instantiate(info).to(memory_format=torch.channels_last), info_copy(info)  # (as coding builds it)


def load_model(model: str | os.PathLike | None = None) -> tuple[torch.nn.Module, ModelInfo]:
    """Load a shipped model by name, or a weight file by path, ready to code (shared, cached: saicm's own use;
    the public ``saicm.load_model`` is :func:`open_model`)."""
    info = resolve(model)
    return _loaded(info), info


