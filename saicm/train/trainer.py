"""Rate–distortion training, single process or DDP (``torchrun``, gloo on CPU).

One step: a batch of random crops, a quality drawn per sample, the loss
``R + λ_q·255²·D`` plus CompressAI's auxiliary loss of the entropy bottleneck
(its own Adam on the ``quantiles``). Rank 0 writes ``log.jsonl``, atomic
checkpoints (``checkpoint.pt``) and, at the end, ``model.safetensors``. A run
killed at any point continues from its last checkpoint with ``--resume``.
"""

from __future__ import annotations

import contextlib
import inspect
import json
import math
import os
import random
import signal
import sys
import time
import warnings
from dataclasses import asdict, replace
from datetime import datetime, timezone
from pathlib import Path

import torch
import torch.distributed as dist
from torch import nn
from torch.utils.data import DataLoader

from .._fs import ensure_dir, exclusive, write_bytes_atomic
from .._progress import progress_bar
from .._signals import StopRequest
from .._torchfile import load_data_only, save_atomic
from ..device import (cpu_has_native_bf16, keeps_callers_random_state, launcher, peer_gone, resolve_device,
                      start_process_group)
from ..errors import ImageError, SaicmError, bytes_text, first_line
from ..models import build_architecture, save_model
from ..models.registry import architecture_class
from ..models.catalog import non_finite, resolve
from ..models.zoo import build_from_info, keep_constants, load_model, load_strict
from .compiling import CompiledStep, compiler_errors
from .config import (AMP_MODES, DEFAULT_ARCHITECTURE, DEFAULT_LAMBDAS, QUANT_MODES, TrainConfig, learning_rate_ok,
                     with_defaults)
from .data import RandomCrops, image_memory
from .losses import DISTORTIONS, MASK_KINDS, rd_loss


class TrainStep(nn.Module):
    """Model + loss in one forward, so DDP sees every parameter used once."""

    def __init__(self, model: nn.Module, distortion: str, off_weight: float = 0.0, quant: str = "noise"):
        super().__init__()
        self.model = model
        self.distortion = distortion
        self.off_weight = off_weight
        self.quant = quant

    def forward(self, x, mask, qidx):
        out = self.model(x, qidx) if self.quant == "noise" else self.model(x, qidx, quant=self.quant)
        parts = rd_loss(out, x, mask, self.model.lambdas[qidx], self.distortion, self.off_weight)
        with torch.autocast(x.device.type, enabled=False):  # quantile fit in fp32 under --amp
            parts["aux"] = self.model.aux_loss()
        return parts


def _lr_at(cfg: TrainConfig, step: int) -> float:
    if step < cfg.warmup:
        return cfg.lr * (step + 1) / cfg.warmup
    start = int(cfg.decay_from * cfg.steps)
    if step < start:
        return cfg.lr
    t = (step - start) / max(1, cfg.steps - start)
    return cfg.lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(1.0, t))))


def _dist_info() -> tuple[int, int]:
    rank, world, _ = launcher()
    return rank, world


def _as_list(v) -> list:
    return [] if v is None else [v] if isinstance(v, (str, Path)) else list(v)


def _check_masks(cfg: TrainConfig, off_weight_given: float | None = None) -> None:
    """The mask options against the loss; ``off_weight_given``: the ``--off-mask-weight`` given to a new run (a
    resumed run's own, restated or taken from its checkpoint, is not refused here: another is, as a changed option)."""
    data, masks = _as_list(cfg.data), _as_list(cfg.masks)
    if cfg.loss not in MASK_KINDS:
        if masks:
            raise SaicmError(f"--loss {cfg.loss} uses no masks; drop --masks or pick a masked loss")
        if off_weight_given:  # (it trained plain MSE, the model file's record saying it was weighed)
            raise SaicmError(f"--loss {cfg.loss} uses no masks: --off-mask-weight weighs the pixels off the mask "
                             "of a masked loss (--loss saicm or object); drop it")
        return
    if len(masks) != len(data):
        raise SaicmError(f"--loss {cfg.loss} needs one --masks folder per --data folder "
                         f"({len(data)} data, {len(masks)} masks)")
    want = MASK_KINDS[cfg.loss]
    for m in masks:
        spec = Path(m) / "masks.json"
        try:
            kind = json.loads(spec.read_text()).get("kind")
        except (OSError, json.JSONDecodeError):
            # (a folder of one's own masks was refused with no word of what would make it one)
            raise SaicmError("not a mask folder made by `saicm masks` (no readable masks.json); masks of your own "
                             "(a black-and-white PNG per image, its relative path and stem) need a masks.json of "
                             f'{{"kind": "{want}"}} beside them (docs/training.md#masks)', str(m)) from None
        if kind != want:
            raise SaicmError(f"--loss {cfg.loss} needs {want} masks, this folder has {kind}", str(m))
    if not 0.0 <= cfg.off_mask_weight <= 1.0:
        raise SaicmError(f"--off-mask-weight must be in [0, 1], got {cfg.off_mask_weight}")


def _context_options(cfg: TrainConfig, cls) -> dict:
    """``--context-hidden`` / ``--context-kernel`` / ``--context-groups`` / ``--no-checkerboard`` as the
    architecture's options (only those given)."""
    given = {k: v for k, v in (("hidden", cfg.context_hidden), ("channel_kernel", cfg.context_kernel),
                               ("groups", list(cfg.context_groups) if cfg.context_groups else None),
                               ("checkerboard", cfg.context_checkerboard)) if v is not None}
    if given and not hasattr(cls, "CONTEXT_OPTIONS"):
        raise SaicmError(f"--context-hidden / --context-kernel / --context-groups / --no-checkerboard apply to "
                         f"context models (gained-context-hyperprior), not {cfg.architecture}")
    return given


def _sizes(cfg: TrainConfig, cls) -> dict:
    """N and M of a model built from scratch: those given, else the architecture's own defaults (64 and 128 for
    saicm's hyperprior and context models, LIC-TCM's released 128 and 320; a user's architecture keeps its own);
    DEFAULT_N / DEFAULT_M where its constructor requires them."""
    params = inspect.signature(cls).parameters
    sizes = {}
    for key, given, fallback in (("N", cfg.N, cfg.width), ("M", cfg.M, cfg.latent)):
        if given is not None:
            sizes[key] = int(given)
        elif key in params and params[key].default is inspect.Parameter.empty:
            sizes[key] = fallback
    return sizes


def _build(name: str, **config):
    """``build_architecture``, with sizes the architecture refuses (``ValueError``: e.g. ``--M`` against its channel
    groups, an even ``--context-kernel``) as one-line errors."""
    try:
        return build_architecture(name, **config)
    except ValueError as e:
        raise SaicmError(f"{name}: {e}") from None
    except TypeError as e:  # options its constructor does not take (--N / --M to an architecture without them)
        taken = [k for k in config if k not in inspect.signature(architecture_class(name)).parameters]
        if not taken:
            raise
        raise SaicmError(f"{name} takes no {', '.join(taken)} ({e})") from None


#: options a run cannot change when it resumes: its model would not be trained as its file then says
_FIXED_ON_RESUME = ("architecture", "N", "M", "init", "seed", "lambdas", "loss", "off_mask_weight", "quant", "freeze",
                    "m", "slice_channels", "condition", "fusion_channels")


def _run_options(ck: dict) -> dict:
    """The options a run was started with (its checkpoint's), corrected by what it built: its architecture, sizes
    and rate points, however they were given or defaulted (0.17.0 saved M = 128 for every --init run)."""
    saved = dict(ck.get("config") or {})
    spec = ck.get("model_spec") or {}
    built = spec.get("config") or {}
    if spec.get("architecture"):
        saved.update(architecture=spec["architecture"], N=built.get("N"), M=built.get("M"))
    if saved.get("architecture") not in (None, "scalable-fusion"):  # saicm <= 0.17.1 saved the scalable options'
        for k in _SCALABLE_OPTIONS:  # defaults (m 4, 32 channels, condition none) in every run: not options it took
            saved.pop(k, None)
    if built.get("lambdas") is not None:
        saved["lambdas"] = built["lambdas"]
    return saved


def _check_resumed_options(cfg: TrainConfig, ck: dict, ckpt_path: Path) -> None:
    saved = _run_options(ck)

    def norm(v):  # tuples and lists alike, numbers as floats (a JSON round trip keeps neither apart)
        return [float(x) if isinstance(x, (int, float)) else x for x in v] if isinstance(v, (list, tuple)) else v

    def same_start(given, run) -> bool:  # one --init model by two spellings (a name, a path) is the same start
        if given == run:
            return True
        if given is None or run is None:
            return False
        try:
            was = resolve(run).path
        except SaicmError:  # moved or renamed since: the given one is taken (the checkpoint holds the weights)
            return True
        try:
            return os.path.samefile(resolve(given).path, was)
        except (OSError, SaicmError):
            return False

    # (a run from scratch resumed with --init MODEL went on from its own weights, the model file then saying it was
    # fine-tuned from MODEL, with MODEL's checksum: a start it has none is a start changed too)
    scratch = "init" in saved and saved["init"] is None and cfg.init is not None and "model_spec" in ck
    changed = ["init"] if scratch else [
        k for k in _FIXED_ON_RESUME if saved.get(k) is not None and norm(getattr(cfg, k)) != norm(saved[k])
        and getattr(cfg, k) is not None  # not given: the run's own (_with_run_options)
        and not (k == "init" and same_start(cfg.init, saved[k]))]
    if changed:
        k = changed[0]
        was = "none: it was trained from scratch" if scratch else repr(saved[k])
        raise SaicmError(f"--resume with another --{k.replace('_', '-')} than the run's ({was}): a run keeps "
                         "its model, start, seed, rate points, loss, quantisation and frozen parts; start a new --out "
                         "(with --init of this run's model to begin from it)", str(ckpt_path))


def _truncate_log(path: Path, step: int) -> None:
    """Drop the records of ``path`` (log.jsonl) after ``step``: a resumed run logs those steps again."""
    if not path.is_file():
        return
    lines = path.read_text().splitlines(keepends=True)
    keep = []
    for line in lines:
        try:
            if json.loads(line).get("step", 0) > step:
                continue
        except ValueError:  # a line cut by the interruption
            continue
        keep.append(line)
    if keep != lines:
        write_bytes_atomic(path, "".join(keep).encode())


#: options that only scalable-fusion takes
_SCALABLE_OPTIONS = ("m", "slice_channels", "condition", "human_init", "fusion_channels")

def _option(name: str) -> str:
    return "--" + name.replace("_", "-")


def _check_scalable_options_of_init(cfg: TrainConfig, info) -> None:
    """Scalable options with ``--init`` name the model it already is: one that differs would be ignored while the
    training record said it was used."""
    config = info.config
    held = {"m": config.get("m"), "slice_channels": config.get("slice_channels"),
            "condition": config.get("condition", "none"), "human_init": None,
            "fusion_channels": "energy" if config.get("fusion_channels") else "first"}
    for k in _SCALABLE_OPTIONS:
        v = getattr(cfg, k)
        if v is None:
            continue
        if info.architecture != "scalable-fusion" or cfg.architecture != "scalable-fusion":
            raise SaicmError(f"{_option(k)} is an option of scalable coding (--base MODEL); --init {info.name} is "
                             f"a {info.architecture} model")
        if v != held[k]:
            raise SaicmError(f"{_option(k)} {v}: --init {info.name} is a scalable model with {k.replace('_', '-')} "
                             f"{held[k]}, which training cannot change (drop the option)")


#: options that, not given to a resumed run, are the run's own (what it was started with)
_TAKEN_ON_RESUME = ("init", "seed", "lambdas", "architecture", "N", "M", "base", "human_init", "context_hidden",
                    "context_kernel", "context_groups", "context_checkerboard", "m", "slice_channels", "condition",
                    "fusion_channels", "loss", "off_mask_weight", "quant", "freeze", "steps", "batch", "patch", "lr",
                    "log_every", "ckpt_every", "amp", "masks")


def _with_run_options(cfg: TrainConfig, ck: dict) -> TrainConfig:
    """``cfg`` with the options it leaves unset taken from the run it resumes (``ck``, its checkpoint)."""
    saved = _run_options(ck)
    taken = {}
    for k in _TAKEN_ON_RESUME:
        if getattr(cfg, k) is None and saved.get(k) is not None:
            v = saved[k]
            taken[k] = tuple(v) if isinstance(v, list) else v
    return replace(cfg, **taken)


@keeps_callers_random_state
def train(cfg: TrainConfig) -> Path:
    """Train as ``cfg`` says; the run folder is this process's alone meanwhile (another run of it: one line). The
    caller's global random states (PyTorch's, Python's, NumPy's) are as they were when it returns."""
    out = Path(cfg.out)
    made = not os.path.lexists(out)
    try:
        with contextlib.ExitStack() as locks:
            return _train(cfg, locks)
    except BaseException:
        if made and _dist_info()[0] == 0:  # a run refused before it wrote anything (--patch 60 left an empty folder)
            with contextlib.suppress(OSError):
                out.rmdir()  # (empty only: a checkpoint, a log, anything written keeps it)
        raise


def _hold_run_folder(out: Path, locks: contextlib.ExitStack) -> bool:
    """Whether the run folder ``out`` is there, then held (:func:`saicm._fs.exclusive`) by rank 0 until the run
    ends: from before its checkpoint is read (another run could be writing it) or, new, from when it is made."""
    if not out.is_dir():
        return False
    if _dist_info()[0] == 0 and os.access(out, os.W_OK | os.X_OK):  # (else refused below, nothing made in it)
        locks.enter_context(exclusive(out, "one run at a time in a run folder (wait for that one to end, or "
                                           "pick another --out)"))
    return True


def _train(cfg: TrainConfig, locks: contextlib.ExitStack) -> Path:
    resumed = None
    ckpt_path = Path(cfg.out) / "checkpoint.pt"
    holding = _hold_run_folder(Path(cfg.out), locks)
    if cfg.resume and ckpt_path.is_file():  # what the run was started with, where these options are silent
        resumed = read_checkpoint(ckpt_path, hint="; --resume cannot go on from it: move it aside to start the run "
                                  "again from step 0 (or --init a model exported from it earlier)")
        _check_resumed_options(cfg, resumed, ckpt_path)
        cfg = _with_run_options(cfg, resumed)
    cfg = with_defaults(cfg)
    if cfg.architecture is None and not cfg.init:
        cfg = replace(cfg, architecture="scalable-fusion" if cfg.base else DEFAULT_ARCHITECTURE)
    scalable_only = [k for k in _SCALABLE_OPTIONS if getattr(cfg, k) is not None]
    if cfg.architecture not in (None, "scalable-fusion") and scalable_only:
        raise SaicmError(f"{_option(scalable_only[0])} is an option of scalable coding (--base MODEL), "
                         f"not of {cfg.architecture}")
    if cfg.amp not in AMP_MODES:
        raise SaicmError(f"--amp must be one of {', '.join(AMP_MODES)}, got {cfg.amp!r}")
    if cfg.quant not in QUANT_MODES:
        raise SaicmError(f"--quant must be one of {', '.join(QUANT_MODES)}, got {cfg.quant!r}")
    if cfg.loss not in DISTORTIONS:
        raise SaicmError(f"unknown loss {cfg.loss!r} (known: {', '.join(DISTORTIONS)})")
    if not learning_rate_ok(cfg.lr):
        raise SaicmError(f"--lr must be > 0 and at most 1, got {cfg.lr:g}")
    _check_masks(cfg, cfg.off_mask_weight if resumed is None else None)  # (a resumed run's own: as it was)
    rank, world = _dist_info()
    device = resolve_device(cfg.device, launcher()[2])
    if device.type == "cuda":
        torch.cuda.set_device(device)
    if cfg.amp == "bf16" and device.type == "cpu" and rank == 0 and cpu_has_native_bf16() is False:
        print("saicm: warning: --amp bf16 on a CPU without bfloat16 instructions (AMX-BF16/AVX-512 BF16): PyTorch emulates "
              "them and steps run several times slower than --amp off (about 6x measured, docs/training.md)",
              file=sys.stderr)
    if world > 1:
        start_process_group(device)
    if cfg.batch % world:
        raise SaicmError(f"--batch {cfg.batch} is not divisible by the {world} processes")
    out = Path(cfg.out)
    if out.exists() and not out.is_dir():
        raise SaicmError("--out is a file; it names the run's folder", str(out))
    from ..codec.image_io import refuse_file_name_for_folder

    # (-o model.safetensors, as export takes it, made a folder so named, where compress refuses such a name)
    refuse_file_name_for_folder(out, "a run's checkpoint, log and model")
    if ckpt_path.exists() and not cfg.resume:  # a run's checkpoint, log and model would be replaced
        raise SaicmError("holds a run (checkpoint.pt): add --resume to go on with it, or pick another --out", str(out))
    if rank == 0:
        ensure_dir(out)
        if not os.access(out, os.W_OK | os.X_OK):  # (found at the log's opening, after the data and the model)
            raise SaicmError("cannot write to this run folder (nothing done)", str(out))
        if not holding:  # (a new run's folder, made just now)
            _hold_run_folder(out, locks)
        for stale in out.glob(".checkpoint.pt.*.part.pt"):  # a checkpoint being written when the run was killed
            stale.unlink(missing_ok=True)

    torch.manual_seed(cfg.seed)
    if resumed is not None and resumed.get("model_spec"):  # the model the run built (its --init need not be at hand)
        model = _recorded_model(resumed, ckpt_path)
    elif cfg.init:
        src, info = load_model(cfg.init)
        config = dict(info.config)
        if cfg.architecture is None:  # train the init model on as it is
            cfg = replace(cfg, architecture=info.architecture)
        _check_scalable_options_of_init(cfg, info)
        if cfg.M is not None and int(cfg.M) != int(config.get("M", cfg.M)):
            raise SaicmError(f"--M {cfg.M} with --init: {info.name} has M = {config.get('M')}, and a model's latent "
                             "channels cannot be changed (drop --M)")
        state = src.state_dict()
        if cfg.lambdas is not None:  # fine-tune to other rate points
            if len(cfg.lambdas) != len(config["lambdas"]):
                # another count: gains re-sampled in log λ, where the architecture knows how
                adapt = getattr(type(src), "adapt_rate_points", None)
                if adapt is None:
                    raise SaicmError(f"--init model has {len(config['lambdas'])} rate points; --lambdas gives "
                                     f"{len(cfg.lambdas)} and {info.architecture} cannot re-sample its rate points")
                state = adapt(state, config["lambdas"], cfg.lambdas)
            # same count: gain row q starts from the init model's row q
            config["lambdas"] = [float(v) for v in cfg.lambdas]
            state = {k: v for k, v in state.items() if k != "lambdas"}
        target = architecture_class(cfg.architecture)
        new_parts: tuple = ()
        options = _context_options(cfg, target)
        held = config["context"] if isinstance(config.get("context"), dict) else config  # (a scalable model's own)
        resized = any(held.get(k, target.CONTEXT_OPTIONS[k]) != v for k, v in options.items())
        if resized and not getattr(target, "NEW_PARAMETERS", None):  # (they were ignored)
            raise SaicmError(f"--context-* options cannot change the contexts of --init {info.name} "
                             f"({info.architecture}); drop them to train it on as it is")
        other = cfg.architecture != info.architecture and getattr(target, "NEW_PARAMETERS", None) is not None
        if other or (resized and getattr(target, "NEW_PARAMETERS", None)):
            # a richer architecture started from this model (e.g. a context model from a hyperprior), or a
            # context model with contexts of another size: the new parts start as the architecture initialises them
            config.update(options)
            model = _build(cfg.architecture, **config)
            new_parts = target.NEW_PARAMETERS
            state = {k: v for k, v in state.items() if not k.startswith(new_parts)}
        elif cfg.architecture != info.architecture:
            raise SaicmError(f"--architecture {cfg.architecture} cannot start from --init {info.name}, a "
                             f"{info.architecture} model: drop --architecture to train that one on as it is, or "
                             f"give {cfg.architecture} NEW_PARAMETERS (the parameters --init lacks, () for none; "
                             "docs/usage.md#adding-an-architecture)")
        else:
            model = build_from_info(info, config)
        missing, unexpected = model.load_state_dict(state, strict=False)
        missing = [k for k in missing if not k.startswith(new_parts)] if new_parts else missing
        if unexpected or set(missing) - {"lambdas"}:
            raise SaicmError(f"--init weights do not fit {info.architecture} "
                             f"(missing {missing[:3]}, unexpected {unexpected[:3]})")
        if cfg.N is not None and int(cfg.N) != int(model.config.get("N", -1)):
            from ..models.widen import widen

            try:
                model = widen(model, int(cfg.N))
            except ValueError as e:
                raise SaicmError(f"--N {cfg.N} with --init: {e}") from None
    else:
        lambdas = list(cfg.lambdas if cfg.lambdas is not None else DEFAULT_LAMBDAS)
        cls = architecture_class(cfg.architecture)
        options = _context_options(cfg, cls)
        if hasattr(cls, "from_train_config"):  # architectures with options of their own (e.g. --base, --m)
            model = cls.from_train_config(cfg, lambdas, **({"context": options} if options else {}))
        else:
            model = _build(cfg.architecture, **_sizes(cfg, cls), lambdas=lambdas, **options)
    if cfg.quant != "noise" and "quant" not in inspect.signature(model.forward).parameters:
        raise SaicmError(f"--quant {cfg.quant} is not supported by the {type(model).__name__} architecture "
                         "(its forward has no quant argument)")
    if cfg.patch % model.multiple:
        raise SaicmError(f"--patch {cfg.patch} must be a multiple of {model.multiple} for this architecture")
    if model.architecture == "scalable-fusion" and cfg.loss != "mse" and rank == 0:
        # (--base, or --init of a two-layer model: known here; a deliberate experiment stays possible, the methods
        # audit of 0.38.0 ran it, and nothing was said)
        print(f"saicm: warning: --loss {cfg.loss} with a two-layer model: the human layer is trained on that masked "
              "error, where the paper's human layer (and every shipped two-layer model) is trained on the whole "
              "image's MSE (--loss mse)", file=sys.stderr)
    model.train()
    # channels-last runs oneDNN's convolutions ~15-25% faster on CPU (measured, N=64).
    model = model.to(device, memory_format=torch.channels_last)
    # Frozen parts (a scalable model's base, --freeze prefixes) are not optimised.
    frozen = tuple(cfg.freeze or ())
    unknown = [f for f in frozen if not any(n.startswith(f) for n, _ in model.named_parameters())]
    if unknown:
        raise SaicmError(f"--freeze {unknown[0]!r} matches no parameter of {model.architecture}")
    for n, p in model.named_parameters():
        if n.startswith(frozen) and frozen:
            p.requires_grad_(False)
    trainable = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    main_params = [p for n, p in trainable if not n.endswith(".quantiles")]
    aux_params = [p for n, p in trainable if n.endswith(".quantiles")]
    if not main_params:
        raise SaicmError("--freeze leaves nothing to train")
    opt = torch.optim.Adam(main_params, lr=cfg.lr)
    # the entropy bottleneck's quantiles have their own optimiser (none when they are frozen)
    aux_opt = torch.optim.Adam(aux_params, lr=cfg.aux_lr) if aux_params else None
    start, resumed_rng, legacy_rng = 0, None, False
    if resumed is not None:
        ck = resumed
        keep_constants(model, ck["model"])  # (runs started before saicm 0.5.1 saved an fp16 file's zero floor)
        broken = non_finite(ck["model"])
        if broken:  # (a resume skipped max_bad_steps steps, then named this checkpoint as the one to go on from)
            raise SaicmError(f"the checkpoint's weights hold NaN or infinite values ({', '.join(broken[:3])}"
                             f"{', ...' if len(broken) > 3 else ''}): no step can train from them; start the run again "
                             "in a new --out (with a lower --lr)", str(ckpt_path))
        load_strict(model, ck["model"], str(ckpt_path), "the model these options build: --resume continues "
                    "the run's own model (use a new --out, or the run's options)")
        opt.load_state_dict(ck["opt"])
        if aux_opt is not None and ck.get("aux_opt") is not None:
            aux_opt.load_state_dict(ck["aux_opt"])
        start = ck["step"]
        if start > cfg.steps:
            raise SaicmError(f"the run in {out} has done {start} steps, more than --steps {cfg.steps}: give --steps "
                             f"{start} or more to go on (or export its checkpoint)")
        resumed_rng = ck.get("rank_rng") or [(ck["rng"], ck["py_rng"])]
        legacy_rng = "rank_rng" not in ck  # saicm before 0.17.1 saved rank 0's state only
        if rank == 0:
            _truncate_log(out / "log.jsonl", start)  # steps logged after the checkpoint are done again
    elif rank == 0:
        if cfg.resume:
            print(f"saicm train: no checkpoint in {out}; starting from step 0", file=sys.stderr)
        # the log of a run killed before its first checkpoint: this run logs those steps anew (they were appended
        # after the dead run's, each step twice)
        _truncate_log(out / "log.jsonl", 0)
    # Different crops on every rank. A run resumes exactly where its checkpoint left off (each rank's random
    # state, saved with it and restored once the data loader has drawn its own seed), so an interrupted run ends
    # as the uninterrupted one would; resumed with another number of processes, each rank draws anew.
    torch.manual_seed(cfg.seed * 1000003 + rank * 7919 + start)

    step_mod = TrainStep(model, cfg.loss, cfg.off_mask_weight, cfg.quant)
    if world > 1:
        runner = nn.parallel.DistributedDataParallel(step_mod, device_ids=[device.index] if device.type == "cuda" else None)
    else:
        runner = step_mod
    if cfg.compile:  # compiled at the first step; the same random draws and checkpoints (saicm.train.compiling)
        runner = CompiledStep(runner)

    with warnings.catch_warnings():
        if rank > 0:  # every rank reads the same images: rank 0 says what they warn of, once (it was once per rank)
            warnings.simplefilter("ignore")
        data = RandomCrops(_as_list(cfg.data), patch=cfg.patch, masks=_as_list(cfg.masks) or None,
                           progress=cfg.progress and rank == 0)
    if data.read_as_drawn and rank == 0:
        from ..errors import warn as saicm_warn

        saicm_warn(f"{data.read_as_drawn} of {len(data.images)} training images do not fit in the memory kept for "
                   f"images ({bytes_text(image_memory())}: half the machine's, or of its memory limit, over its "
                   "processes): they are read from their files as crops are drawn from them (the same crops; slower "
                   "steps)")
    sessions = _sessions(resumed, start, world, device, data.fingerprint, rank, cfg.steps,
                         {k: getattr(cfg, k) for k in SESSION_OPTIONS})
    loader = iter(DataLoader(data, batch_size=cfg.batch // world, shuffle=False, num_workers=0, drop_last=True))
    if resumed_rng is not None and len(resumed_rng) == world and not (legacy_rng and world > 1):
        _restore_rng(resumed_rng[rank], device)
    elif resumed_rng is not None and rank == 0:
        from ..errors import warn as saicm_warn

        why = ("its checkpoint, from saicm before 0.17.1, holds rank 0's random state only" if legacy_rng else
               f"the checkpoint was written by {len(resumed_rng)} process(es), this run has {world}")
        saicm_warn(f"{why}: the random crops, qualities and noise are drawn anew (the run goes on, not exactly "
                   "as it would have)")
    nq = model.num_qualities
    log = open(out / "log.jsonl", "a") if rank == 0 else None
    show = cfg.progress and rank == 0
    # a bar on a terminal; elsewhere (nohup, `2> train.log`) one line per logged step: the bar's redraws filled
    # a log file with a carriage-return line per step
    bar = progress_bar(total=cfg.steps, initial=start, desc="train", progress=show, unit="step")
    lines = show and bar.disable
    t0 = time.time()
    acc: dict[str, float] = {}
    n_acc = 0
    # the sums of the steps since the last log line, as the checkpoint left them: a resumed run's first line averages
    # the same steps as the uninterrupted run's (it averaged only those after the checkpoint)
    kept = (resumed or {}).get("log_acc")
    if isinstance(kept, dict) and isinstance(kept.get("sums"), dict) and isinstance(kept.get("steps"), int):
        acc, n_acc = {k: float(v) for k, v in kept["sums"].items()}, kept["steps"]
    bad = 0
    skipped = 0  # steps of this session skipped (said at its end; each log line has those since the one before)

    def skip(what: str, step: int) -> None:
        # Never let one bad batch poison the weights; give up if it keeps happening.
        nonlocal bad, skipped
        bad += 1
        skipped += 1
        acc["skipped"] = acc.get("skipped", 0.0) + 1  # (in the checkpoint's log sums: a resume logs it as well)
        if bad >= cfg.max_bad_steps:  # (it named a checkpoint.pt that was never written, before the first one)
            raise SaicmError(f"{what} not finite for {bad} steps in a row at step {step + 1} (lower --lr?); " + (
                f"the last good checkpoint is {ckpt_path} (step {saved_at}): go on from it with the same command, "
                "--resume and a lower --lr" if saved_at > 0 else
                "no checkpoint was written (none before --ckpt-every steps, nor in a run of skipped steps): start the "
                "run again with a lower --lr"))

    stop = _StopAtStepEnd(world, rank)
    saved_at, due = start, False
    try:
        for step in range(start, cfg.steps):
            if stop.agreed(device):  # Ctrl-C: the steps done since the last checkpoint are kept, then the run stops
                if bad:  # (in a run of skipped steps: a diverged run's weights replaced the last good checkpoint, as
                    # a checkpoint due then did before it waited; the skips agree on every rank, as that wait's do)
                    if world > 1:
                        dist.barrier()
                    raise TrainingInterrupted(step, ckpt_path if saved_at > 0 else None, quiet=rank > 0,
                                              kept_at=saved_at)
                if saved_at < step:
                    rng = _rng_states(world, device)  # (a collective)
                    if rank == 0:
                        _save_checkpoint(ckpt_path, model, opt, aux_opt, step, cfg, rng, sessions, (acc, n_acc))
                if world > 1:
                    dist.barrier()  # the checkpoint is on disk before any rank says so
                raise TrainingInterrupted(step, ckpt_path if step > 0 else None, quiet=rank > 0)
            drawn_from = _rng_states(1, device) if world == 1 else None  # (cheap: the generators' states)
            try:
                x, mask = next(loader)
            except ImageError as e:  # an image read as drawn (beyond the memory kept) changed or went away
                if world > 1:  # (the other ranks wait in this step's collectives: no checkpoint can be agreed)
                    raise
                # the steps done are kept (they were lost, up to --ckpt-every), saved with the random state from
                # before this batch was drawn: with the file as it was, a resume goes on exactly
                if saved_at < step:
                    _save_checkpoint(ckpt_path, model, opt, aux_opt, step, cfg, drawn_from, sessions, (acc, n_acc))
                    saved_at = step
                raise ImageError(f"{e.message}; the run stopped before step {step + 1}" + (
                    f", its checkpoint saved ({ckpt_path}, step {step}): put the file back as it was, or leave it out, "
                    "and go on with the same command and --resume" if step > 0 else
                    ": run the same command again once the file is back as it was, or left out"), e.path) from None
            x = x.to(device, non_blocking=True).contiguous(memory_format=torch.channels_last)
            mask = mask.to(device, non_blocking=True)
            qidx = torch.randint(0, nq, (x.size(0),)).to(device)
            for g in opt.param_groups:
                g["lr"] = _lr_at(cfg, step)
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=cfg.amp == "bf16"):
                parts = runner(x, mask, qidx)
            opt.zero_grad(set_to_none=True)
            if aux_opt is not None:
                aux_opt.zero_grad(set_to_none=True)
            # Several processes agree on the step (one all-reduce of its parts): the log's figures are the global
            # batch's, not rank 0's share of it, and a loss that is not finite on any rank skips the step on every
            # rank (one rank that skipped alone left the others in the backward pass's all-reduce: a collective
            # mismatch that crashed the run, its steps since the last checkpoint lost).
            shown = _global_mean(parts, world)
            # a skipped step still ends as a step: its log line and checkpoint were skipped with it (a run whose
            # last step was skipped wrote its model, and left checkpoint.pt at the one before, --ckpt-every back)
            ok = bool(torch.isfinite(shown["loss"] + shown["aux"]))
            if not ok:
                skip("loss is", step)
            else:
                with compiler_errors():  # --compile compiles the backward pass at its first use
                    (parts["loss"] + parts["aux"]).backward()
                # A finite loss can still have non-finite gradients (e.g. GDN at its bound); one such
                # step would turn every weight into NaN, so it is skipped like a non-finite loss.
                norm = nn.utils.clip_grad_norm_(main_params, cfg.clip if cfg.clip > 0 else float("inf"))
                aux_ok = all(p.grad is None or torch.isfinite(p.grad).all() for p in aux_params)
                ok = bool(torch.isfinite(norm) and aux_ok)
                if not ok:
                    skip("gradients are", step)
            if ok:
                bad = 0
                opt.step()
                if aux_opt is not None:
                    aux_opt.step()
                for k, v in shown.items():
                    acc[k] = acc.get(k, 0.0) + float(v)
                n_acc += 1
            bar.update(1)
            done = step + 1
            if log and (done % cfg.log_every == 0 or done == cfg.steps):
                gaps = int(acc.pop("skipped", 0))  # (skipped steps were in no line: a run could skip most, unsaid)
                rec = {k: round(v / n_acc, 6) for k, v in acc.items()} if n_acc else {}
                # time: UTC to the second, as the folder jobs' --log lines (seconds start again at each --resume: a
                # day's log could not be set against a machine's own events)
                rec.update(step=done, lr=_lr_at(cfg, step), seconds=round(time.time() - t0, 1),
                           time=datetime.now(timezone.utc).isoformat(timespec="seconds"))
                if gaps:
                    rec["skipped"] = gaps
                try:
                    log.write(json.dumps(rec) + "\n")
                    log.flush()
                except OSError as e:
                    e.filename = e.filename or str(out / "log.jsonl")
                    raise
                if n_acc:
                    bar.set_postfix(loss=f"{rec['loss']:.3f}", bpp=f"{rec['bpp']:.3f}", psnr=f"{rec['psnr']:.2f}")
                if lines:
                    print(f"saicm train: step {done}/{cfg.steps} " + (f"loss {rec['loss']:.3f} bpp {rec['bpp']:.3f} "
                          f"psnr {rec['psnr']:.2f}" if n_acc else "every step skipped since the last line") +
                          f" ({rec['seconds']:.0f} s)", file=sys.stderr, flush=True)
                acc, n_acc = {}, 0
            due = due or done % cfg.ckpt_every == 0
            # (a checkpoint due in a run of skipped steps waits for the next step that trains, or the run's end: the
            # weights of a diverged run, whose every step is skipped, replaced the last good checkpoint, which the
            # error then named as good; a resume from it, with a lower --lr, failed again)
            if (due and bad == 0) or done == cfg.steps:
                rng = _rng_states(world, device)  # every rank's (a collective: all ranks call it)
                if rank == 0:
                    _save_checkpoint(ckpt_path, model, opt, aux_opt, done, cfg, rng, sessions, (acc, n_acc))
                saved_at, due = done, False
    except (RuntimeError, ConnectionError) as e:
        if world > 1 and peer_gone(e):  # (gloo's traceback said it in 40 lines, without the way on)
            # (torchrun's SIGTERM to the survivors follows at once: this process is ending and says why first; the
            # launcher waits for it, 30 s before its SIGKILL)
            stop.ignore_from_now(signal.SIGTERM)
            what = f"another process of the run stopped ({first_line(e)})"
            raise SaicmError(f"{what}: the last checkpoint is {ckpt_path} (step {saved_at}); go on with the same "
                             "command and --resume" if saved_at else
                             f"{what} before the first checkpoint: run the same command again") from None
        raise
    finally:
        stop.close()
        bar.close()
        if log:
            try:
                log.close()
            except OSError as e:  # (a full disk: said in one line by the command, naming the log)
                e.filename = e.filename or str(out / "log.jsonl")
                raise
    if skipped and rank == 0:
        from ..errors import warn as saicm_warn

        saicm_warn(f"{skipped} of {cfg.steps - start} steps were skipped, their loss or gradients not finite (each "
                   "log.jsonl line says how many since the one before: \"skipped\"); a lower --lr may avoid them")
    final = out / "model.safetensors"
    if hasattr(model, "verify_frozen"):
        model.verify_frozen()  # a frozen base must leave training bit-identical to its weight file
    recorded = asdict(cfg)
    if resumed is not None and start >= cfg.steps:  # (a finished run resumed with --patch 128 rewrote its model file
        # saying it was trained on 128-pixel crops, which no step was)
        recorded |= {k: v for k, v in _run_options(resumed).items() if k in SESSION_OPTIONS and v is not None}
    if rank == 0:
        save_model(model, final, extra_meta={"training": training_record(recorded | _trained(model),
                                                                          max(start, cfg.steps), sessions)})
    if world > 1:
        dist.barrier()
        dist.destroy_process_group()
    return final


def _trained(model) -> dict:
    """What was trained, whatever the options said (--init decides the architecture and sizes it keeps): the
    settings a model file's training record takes from the model, not from the options."""
    trained = {"architecture": model.architecture, "N": model.config.get("N"), "M": model.config.get("M"),
               "lambdas": [float(v) for v in model.config.get("lambdas", [])]}
    # (a scalable model's own sizes: its config has no M, and --slice-channels/--m may have been defaulted)
    trained |= {k: model.config[k] for k in ("slice_channels", "m", "condition", "fusion_channels")
                if k in model.config}
    if trained["M"] is None and hasattr(model, "channels"):
        trained["M"] = model.channels  # the additional codec's latent channels
    return trained


class TrainingInterrupted(KeyboardInterrupt):
    """Ctrl-C stopped a run after a step, its checkpoint saved (``saicm train --resume`` goes on exactly).
    ``quiet``: a rank other than 0 of a multi-process run, which has nothing to add to rank 0's message."""

    def __init__(self, step: int, checkpoint: Path | None, quiet: bool = False, kept_at: int | None = None):
        if kept_at is not None:  # stopped in a run of skipped steps (not finite): the last good checkpoint is kept
            said = (f"interrupted after step {step}, in a run of skipped steps (not finite): the last good checkpoint "
                    f"(step {kept_at}) is kept ({checkpoint}); go on with the same command, --resume and a lower --lr"
                    if checkpoint else f"interrupted after step {step}, in a run of skipped steps (not finite), "
                    "before any checkpoint: start the run again with a lower --lr")
        else:
            said = (f"interrupted after step {step}: its checkpoint is saved ({checkpoint}); go on with the same "
                    "command and --resume" if checkpoint else "interrupted before the first step")
        super().__init__("" if quiet else said)
        self.step, self.checkpoint, self.quiet = step, checkpoint, quiet


class _StopAtStepEnd(StopRequest):
    """While a run trains, the first Ctrl-C (SIGINT) or SIGTERM (a scheduler's, or torchrun's when it is
    stopped: it passes the signal it got on to every process) asks it to stop after the current step, so that
    the steps since the last checkpoint are saved (they were lost: up to --ckpt-every steps); a Ctrl-C after it
    stops at once, a repeated SIGTERM does not (a scheduler's and torchrun's both reach a worker). Several
    processes agree on the step before any stops (their ranks get the signal at different moments, and a rank that
    left alone would leave the others waiting in a collective)."""

    def __init__(self, world: int = 1, rank: int = 0):
        super().__init__("stopping after this step" if rank == 0 else None)
        self._world = world

    def agreed(self, device) -> bool:
        """Whether to stop before the next step: this process's request, or any rank's under several processes
        (every rank calls this at every step: one all-reduce of a flag). Every rank returns the reduced flag, never
        its own request: a signal handled after this rank's flag was taken (during the all-reduce, or just after
        it on a busy CPU) would have this rank stop alone while the others, which reduced a 0, go on into the
        step's collectives and wait there for it; that request is this rank's flag at the next step."""
        if self._world == 1:
            return self.requested
        flag = torch.tensor([1.0 if self.requested else 0.0], device=device)
        dist.all_reduce(flag, op=dist.ReduceOp.MAX)
        if flag.item() > 0:
            self.requested = True  # (another rank's request: a signal here now stops this rank at once)
            return True
        return False


def _global_mean(parts: dict, world: int) -> dict:
    """The values of the loss parts of this rank's share of the batch (detached: what is back-propagated stays
    each rank's own loss, DDP averages the gradients), averaged over the ``world`` processes: every rank gets the
    global batch's means (the shares are the same size), and a part not finite on any rank is not finite on all."""
    if world == 1:
        return {k: v.detach() for k, v in parts.items()}
    keys = list(parts)
    values = torch.stack([parts[k].detach().float().reshape(()) for k in keys])
    dist.all_reduce(values)  # (a sum: NaN or inf on any rank stays non-finite)
    values /= world
    return dict(zip(keys, values))


def _rng_states(world: int, device: torch.device) -> list[tuple]:
    """The random state of every rank, rank 0's first (what a resume restores on each): PyTorch's CPU generator,
    Python's, and the device's own on CUDA (the training noise is drawn there)."""
    mine = (torch.get_rng_state(), random.getstate(),
            torch.cuda.get_rng_state(device) if device.type == "cuda" else None)
    if world == 1:
        return [mine]
    states: list = [None] * world
    dist.all_gather_object(states, mine)
    return states


def _restore_rng(state: tuple, device: torch.device) -> None:
    torch.set_rng_state(state[0])
    random.setstate(state[1])
    if len(state) > 2 and state[2] is not None and device.type == "cuda":
        torch.cuda.set_rng_state(state[2], device)


#: the options a resume may change that decide the weights (its batch, crops, learning rate, precision): each
#: session records its own, so that a run resumed with others says which steps were trained with which
SESSION_OPTIONS = ("steps", "batch", "patch", "lr", "amp", "compile")


def _sessions(resumed: dict | None, start: int, world: int, device, fingerprint: dict, rank: int = 0,
              steps: int | None = None, options: dict | None = None) -> list[dict]:
    """The run's sessions (the first, and one more per resume that trains: a resume of a finished run, ``start``
    at ``steps``, adds none): from which step, with which software (saicm's version and commit, the libraries'),
    how many threads and processes, on what data (its fingerprint). Kept in the checkpoint and written into the
    model file, so that the weights name what made them. A resume on other data than the session before it is said
    (the run goes on, no longer the run it would have been)."""
    from .._provenance import software

    before = [s for s in (resumed or {}).get("sessions") or [] if isinstance(s, dict)]
    last = before[-1].get("data") if before else None
    if rank == 0 and isinstance(last, dict) and last.get("sha256") != fingerprint["sha256"]:
        from ..errors import warn as saicm_warn

        saicm_warn(f"the training data differ from the run's ({fingerprint['images']} images now, "
                   f"{last.get('images')} before, other content): the run goes on, on these")
    if before and steps is not None and start >= steps:
        return before  # (nothing trained: no session that trained nothing in the model's record)
    return before + [{"from_step": start, **software(), "threads": torch.get_num_threads(), "processes": world,
                      "device": device.type, "data": dict(fingerprint)}
                     | ({"options": dict(options)} if options else {})]


def _save_checkpoint(path: Path, model, opt, aux_opt, step: int, cfg: TrainConfig, rng: list[tuple],
                     sessions: list[dict] | None = None, log_acc: tuple[dict, int] | None = None) -> None:
    state = {
        "model": model.state_dict(),
        "opt": opt.state_dict(),
        "aux_opt": aux_opt.state_dict() if aux_opt is not None else None,
        "step": step,
        "rng": rng[0][0],  # rank 0's (as runs before saicm 0.17.1 saved it)
        "py_rng": rng[0][1],
        "rank_rng": rng,
        "config": asdict(cfg),
        "model_spec": {"architecture": model.architecture, "config": model.config,
                       "build_extras": getattr(model, "build_extras", {})},
        "sessions": sessions or [],
        # the log's running sums since its last line (what a resume needs to write the same next line)
        "log_acc": {"sums": dict(log_acc[0]), "steps": int(log_acc[1])} if log_acc is not None else None,
    }
    save_atomic(state, path)


CHECKPOINT_KEYS = ("model", "opt", "step", "config")


def read_checkpoint(path: str | Path, hint: str = "") -> dict:
    """A training checkpoint (``checkpoint.pt``), read as data only (a checkpoint from someone else cannot run
    code here); a missing, damaged or foreign file is one ``SaicmError``, not a traceback (``hint`` appended)."""
    ck = load_data_only(path, "training checkpoint", hint=hint,
                        other_kind="a training checkpoint is the checkpoint.pt a saicm train run writes (a model file "
                        "is one already: --model takes it)")
    if not isinstance(ck, dict) or any(k not in ck for k in CHECKPOINT_KEYS):
        raise SaicmError(f"not a saicm training checkpoint (written by saicm train){hint}", str(path))
    return ck


def _recorded_model(ck: dict, ckpt: str | Path) -> nn.Module:
    """The model a checkpoint records (its model_spec; older ones: their options), built with fresh weights; a
    spec that cannot be built (edited, or from elsewhere) is one line naming the checkpoint. It is built within
    the memory budget of a model file's (three times the checkpoint's weights): a crafted spec (N = M = 4000)
    grew to 4 GB before failing, or died of std::bad_alloc (a security review)."""
    from ..models.zoo import BUILD_BUDGET_FACTOR, BUILD_SLACK_BYTES, AllocationBudget

    c = ck["config"]
    weights = ck.get("model") if isinstance(ck.get("model"), dict) else {}
    nbytes = sum(t.numel() * t.element_size() for t in weights.values() if isinstance(t, torch.Tensor))
    try:
        spec = ck.get("model_spec") or {"architecture": c["architecture"],
                                        "config": dict(N=c["N"], M=c["M"], lambdas=list(c["lambdas"]))}
        with AllocationBudget(BUILD_BUDGET_FACTOR * nbytes + BUILD_SLACK_BYTES, str(ckpt)):
            return build_architecture(spec["architecture"], **spec["config"], **(spec.get("build_extras") or {}))
    except SaicmError as e:
        raise SaicmError(f"its recorded model: {e.message}", e.path or str(ckpt)) from None
    except Exception as e:  # a config that was edited or comes from elsewhere: say so, in one line
        why = (str(e).strip().splitlines() or [""])[0][:200]
        raise SaicmError(f"its recorded model cannot be built ({type(e).__name__}: {why})", str(ckpt)) from None


def training_record(settings: dict, steps_done: int, sessions: list | None = None) -> dict:
    """The ``training`` metadata of a weight file (``saicm train``'s and ``saicm export``'s): the run's settings with
    their paths as :func:`recorded_settings` gives them, its parent's checksum (:func:`_lineage`), the steps done,
    and its sessions (:func:`_sessions`: software, threads, data fingerprint; runs of saicm 0.26.1 and before have none)."""
    return (recorded_settings(settings) | _lineage(settings.get("init")) | {"steps_done": steps_done}
            | ({"sessions": sessions} if sessions else {}))


def _lineage(init) -> dict:
    """``{"init_sha256": …}``: the SHA-256 of the weights a run started from, so that a model's parent is known by
    its content, not only by a name or path that may have moved (a model-card audit traced one chain through git
    history); {} when there is none or it cannot be found any more."""
    if not isinstance(init, str) or not init:
        return {}
    from ..models.catalog import full_checksum, resolve

    try:
        return {"init_sha256": full_checksum(resolve(init).path).hex()}
    except (SaicmError, OSError):
        return {}


#: the training settings that name files or folders (or models, by name or path)
PATH_SETTINGS = ("data", "masks", "out", "init", "base", "human_init")


def recorded_settings(settings: dict) -> dict:
    """The settings as a weight file records them: paths relative to the working folder when under it, others by
    their last two parts (``photos/train``), as reports name datasets; bare names (a model's) as given.
    The weights travel to every decoder; a folder like ``/home/NAME/cctv/STREET`` should not (the checkpoint,
    which stays with the run, keeps the paths as given, for ``--resume``)."""
    from ..eval.paths import display_path

    def shown(v):  # (relative to the working folder when under it, else the last two parts: ../../home/NAME/x too)
        return display_path(os.path.abspath(v), root=os.getcwd()) if os.sep in v or "/" in v else v

    out = dict(settings)
    for key in PATH_SETTINGS:
        value = out.get(key)
        if isinstance(value, str) and value:
            out[key] = shown(value)
        elif isinstance(value, list):
            out[key] = [shown(v) if isinstance(v, str) and v else v for v in value]
    return out


def export_checkpoint(ckpt: str | Path, dest: str | Path, meta: dict | None = None) -> None:
    """Write the weights of a training checkpoint as a shippable model file."""
    from .._fs import refuse_input_as_output

    dest = Path(dest)
    if dest.is_dir() or str(dest).endswith(("/", os.sep)) or dest.suffix != ".safetensors":
        raise SaicmError("name the model file to write, ending in .safetensors", str(dest))
    refuse_input_as_output(ckpt, dest)
    ck = read_checkpoint(ckpt)
    c = ck["config"]
    model = _recorded_model(ck, ckpt)
    load_strict(model, ck["model"], str(ckpt), "the model it records")
    sessions = ck.get("sessions") if isinstance(ck.get("sessions"), list) else None
    # (the model's own sizes and rate points, as the run's model.safetensors records them: an --init run's options
    # hold None for what it took from --init, and the exported file said N, M and lambdas were None)
    save_model(model, dest, extra_meta={"training": training_record(c | _trained(model), ck["step"], sessions)}
               | (meta or {}), in_place=True)
