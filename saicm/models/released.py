"""The authors' released LIC-TCM / SA-ICM / ICM-v1 checkpoints as saicm model files.

:func:`import_released` is what ``saicm import-checkpoint`` runs (:mod:`saicm.commands.imports` checks the
command's options): read a released ``.pth.tar``, check every key and shape against the architecture, load
strictly, fill the coder tables, write ``NAME.safetensors`` and a model-card stub ``NAME.md``. ``tcm``: a machine
model; ``tcm-ica``: ICM-v1's additional model, written as a ``scalable-fusion`` model over an imported machine
model (``base_info``). See ``docs/tcm.md``.

:func:`import_mbt2018_mean` brings a model trained with CompressAI (its ``MeanScaleHyperprior``, the zoo's
``mbt2018-mean``, any N and M) in as a single-rate ``gained-mean-scale-hyperprior``: unit gains, the same
transforms and entropy models, so it codes on saicm's portable engine (exact hyper-synthesis) too.
"""

from __future__ import annotations

import datetime
import hashlib
from pathlib import Path

import torch

from .. import __version__
from .._fs import write_bytes_atomic
from ..errors import SaicmError, bytes_text, names_as_utf8
from . import tcm
from .catalog import ModelInfo, full_checksum, read_info
from .registry import build_architecture
from .zoo import save_model



def _say_if_half(state: dict, precision: str, src: Path) -> None:
    """A warning when a checkpoint of fp16 weights is written at fp32: the file is twice the size for the same
    values (``--precision fp16`` keeps them bit for bit at the checkpoint's size); it grew unsaid."""
    floats = [v for v in state.values() if torch.is_tensor(v) and v.is_floating_point() and v.numel() > 1]
    if precision == "fp32" and floats and all(v.dtype == torch.float16 for v in floats):
        from ..errors import warn

        warn(f"{src.name} holds fp16 weights: written at fp32 (the default) the model file is twice their size for "
             "the same values; --precision fp16 keeps them bit for bit at half the size")


def _today() -> str:
    """The card's date: the UTC day (the results files' "created" is UTC; a local date could differ by one)."""
    return datetime.datetime.now(datetime.timezone.utc).date().isoformat()

def import_released(src: Path, dest: Path, arch: str, cfg: dict, lam: float, alpha: float | None = None,
                    base_info: ModelInfo | None = None, precision: str = "fp32",
                    description: str | None = None) -> dict:
    """Write ``dest`` (and its card ``dest.with_suffix('.md')``) from the released checkpoint ``src``: ``arch``
    ``tcm`` or ``tcm-ica`` (over ``base_info``), ``cfg`` the tcm options, ``lam`` the stored λ, ``alpha`` SAM's
    confidence (card only). Returns ``{"info": ModelInfo, "card": Path, "tables": {...}}``."""
    src, dest = Path(src), Path(dest)
    name = dest.stem
    state = tcm.read_released_checkpoint(src)
    _say_if_half(state, precision, src)
    if looks_like_mbt2018_mean(state):
        raise SaicmError("a CompressAI MeanScaleHyperprior (mbt2018-mean) state dict, not a LIC-TCM one: import it "
                         "with --arch mbt2018-mean --lam λ", str(src))
    other = compressai_model_kind(state)
    if other:
        raise SaicmError(f"a CompressAI {other} state dict, not a LIC-TCM one: of CompressAI's models saicm imports "
                         "mbt2018-mean (MeanScaleHyperprior, --arch mbt2018-mean) only", str(src))
    try:
        model = build_architecture("tcm", **cfg, lambdas=[lam])
    except (TypeError, ValueError) as e:
        raise SaicmError(f"bad tcm configuration ({e})") from None
    state = tcm.with_table_buffers(model, state)
    try:
        tcm.check_released_keys(model, state, "the released ICM-v1 additional model (ica)" if arch == "tcm-ica"
                                else "the released LIC-TCM / SA-ICM machine model")
    except SaicmError as e:
        raise type(e)(e.message, str(src)) from None
    tables = tcm.load_released_state(model, state)
    if precision == "fp16":  # the weights are rounded on saving: tables that fit them are computed then
        tables = {k: "recomputed for the fp16 weights" for k in tables}
    sha = hashlib.sha256(src.read_bytes()).hexdigest()
    when = _today()
    precision_note = ("fp32: the file's weights bit for bit" if precision == "fp32"
                      else "fp16: every weight rounded to half precision (decodes differ slightly from the fp32 import)")
    out = dest.parent
    out.mkdir(parents=True, exist_ok=True)
    if arch == "tcm":
        what = f"SA-ICM machine model (α = {alpha:g}, λ = {lam:g})" if alpha is not None else \
            f"LIC-TCM model (λ = {lam:g})"
        desc = description or f"{what}: the authors' released weights, imported from {src.name}"
        training = {"loss": "saicm" if alpha is not None else "unknown", "alpha": alpha, "lambdas": [lam],
                    "imported_from": src.name, "source_sha256": sha, "precision": precision}
        save_model(model, dest, extra_meta={"description": desc, "training": training},
                   precision=precision, in_place=True)
        arch_line = (f"- architecture: `tcm`, N = {cfg['N']}, M = {cfg['M']}, {cfg['num_slices']} slices, single rate "
                     f"(quality 1), λ = {lam:g}")
    else:
        m = int(cfg["num_slices"])
        s = int(cfg["M"]) // m
        try:
            net = build_architecture("scalable-fusion", base=base_info.name,
                                     base_sha256=full_checksum(base_info.path).hex(), N=int(cfg["N"]),
                                     slice_channels=s, m=m, lambdas=[lam],
                                     additional={"architecture": "tcm", "config": dict(cfg)},
                                     model_dir=str(base_info.path.parent.resolve()))
        except (TypeError, ValueError) as e:
            raise SaicmError(f"cannot build the scalable model over {base_info.name} ({e})") from None
        with torch.no_grad():
            net.add.load_state_dict({k: v for k, v in model.state_dict().items() if not k.startswith("g_s.")})
            net.g_s.load_state_dict({k[4:]: v for k, v in model.state_dict().items() if k.startswith("g_s.")})
        desc = description or (f"ICM-v1 scalable model (m = {m}, λ_a = {lam:g}) over {base_info.name}: the "
                                 f"authors' released additional model, imported from {src.name}")
        training = {"loss": "mse", "base": base_info.name, "m": m, "lambdas": [lam], "alpha": alpha,
                    "imported_from": src.name, "source_sha256": sha, "precision": precision}
        save_model(net, dest, extra_meta={"description": desc, "training": training}, precision=precision,
                   in_place=True)
        arch_line = (f"- architecture: `scalable-fusion` over `{base_info.name}` (machine layer), additional codec "
                     f"`tcm` with {m} slices of {s} channels added to the first {m * s} of the base latent; human "
                     f"synthesis = the additional model's g_s; single rate, λ_a = {lam:g}")
    info = read_info(dest)
    card = out / f"{name}.md"
    _card(card, name, [
        desc + ".",
        "",
        arch_line,
        f"- source: `{src.name}`, SHA-256 {sha}" + (f"; α = {alpha:g}" if alpha is not None else ""),
        f"- weights: `{dest.name}`, {bytes_text(dest.stat().st_size)}, SHA-256 {full_checksum(dest).hex()}; "
        f"precision {precision_note}",
        "- coder tables: " + "; ".join(f"{k}: {v}" for k, v in tables.items()),
        f"- imported {when} with saicm {__version__} (`saicm import-checkpoint`)",
        "- decodes differ slightly from the authors' script: saicm pads bottom/right by edge replication to a "
        "multiple of 128 (at least 256) and rounds to 8 bits; their script pads centred with zeros and truncates "
        "(docs/tcm.md)",
        "- figures: not measured yet. Measure them, e.g.:",
        "",
        "```sh",
        f"saicm eval --codec {info.name} --dataset IMAGES --task detection --task-model yolox:MODEL.onnx "
        f"-o results/{info.name}.json",
        "```",
        "",
        "- licence: the authors' repositories state no licence for their code or weights; check their terms "
        "before redistributing this file.",
    ])
    return {"info": info, "card": card, "tables": tables}


#: CompressAI's zoo λ of mbt2018-mean per quality 1..8 (what --lam is for a zoo checkpoint)
COMPRESSAI_ZOO_LAMBDAS = (0.0018, 0.0035, 0.0067, 0.0130, 0.0250, 0.0483, 0.0932, 0.1800)


def looks_like_mbt2018_mean(state: dict) -> bool:
    """Whether a state dict has the layout of CompressAI's ``MeanScaleHyperprior`` (4 + 4 convolutions in g_a/g_s
    with GDNs, h_s ending in 2·M channels)."""
    w_a, w_h = state.get("g_a.6.weight"), state.get("h_s.4.weight")
    return (w_a is not None and w_h is not None and w_a.dim() == 4 and w_h.dim() == 4 and "g_a.1.beta" in state
            and w_h.shape[0] == 2 * w_a.shape[0] and not _autoregressive(state))


def compressai_model_kind(state: dict) -> str | None:
    """Which of CompressAI's zoo image models other than ``mbt2018-mean`` a state dict has the layout of (its zoo
    name and class), or None: what an import refuses names the file's model, not the one it expected."""
    if _autoregressive(state):
        if any(".conv_a." in k for k in state):
            return "cheng2020-attn (Cheng2020Attention)"
        if "g_a.0.conv1.weight" in state:
            return "cheng2020-anchor (Cheng2020Anchor)"
        return "mbt2018 (JointAutoregressiveHierarchicalPriors)"
    w_a, w_h = state.get("g_a.6.weight"), state.get("h_s.4.weight")
    if w_a is None or w_a.dim() != 4 or "g_a.1.beta" not in state:
        return None
    if not any(k.startswith(("h_a.", "h_s.")) for k in state):
        return "bmshj2018-factorized (FactorizedPrior)"
    if w_h is not None and w_h.dim() == 4 and w_h.shape[0] == w_a.shape[0]:
        return "bmshj2018-hyperprior (ScaleHyperprior)"
    return None


def _autoregressive(state: dict) -> bool:
    """CompressAI's ``JointAutoregressiveHierarchicalPriors`` (the zoo's ``mbt2018``): the same transforms plus a
    serial context model, which saicm does not code."""
    return any(k.startswith(("context_prediction.", "entropy_parameters.")) for k in state)


def import_mbt2018_mean(src: Path, dest: Path, lam: float, precision: str = "fp32",
                        description: str | None = None) -> dict:
    """Write ``dest`` (and its card) from a CompressAI ``MeanScaleHyperprior`` checkpoint ``src`` (a bare state
    dict, or a dict with a ``state_dict`` entry as CompressAI's example trainer saves): a single-rate
    ``gained-mean-scale-hyperprior`` at λ = ``lam`` with unit gains, every other key loaded strictly. Returns
    ``{"info", "card", "tables"}`` like :func:`import_released`."""
    from .hyperprior import GainedMeanScaleHyperprior

    src, dest = Path(src), Path(dest)
    state = tcm.read_released_checkpoint(src)
    _say_if_half(state, precision, src)
    what = "CompressAI's MeanScaleHyperprior (mbt2018-mean)"
    if _autoregressive(state):
        zoo, cls = compressai_model_kind(state).rstrip(")").split(" (")
        raise SaicmError(f"CompressAI's autoregressive model ({zoo}, {cls}: a serial context model) is not one saicm "
                         "codes; its mbt2018-mean (MeanScaleHyperprior) is", str(src))
    if not looks_like_mbt2018_mean(state):
        other = compressai_model_kind(state)
        if other:
            raise SaicmError(f"CompressAI's {other}, not its mbt2018-mean (MeanScaleHyperprior): saicm does not code "
                             "that model", str(src))
        raise SaicmError(f"does not fit {what}: no g_a.6.weight / h_s.4.weight of its layout", str(src))
    N, M = int(state["g_a.0.weight"].shape[0]), int(state["g_a.6.weight"].shape[0])
    model = GainedMeanScaleHyperprior(N=N, M=M, lambdas=[lam])
    state = {**state, "log_gain": torch.zeros(1, M), "log_inv_gain": torch.zeros(1, M),  # unit gains: the model
             "lambdas": torch.tensor([lam], dtype=torch.float32)}                          # as CompressAI ran it
    state = tcm.with_table_buffers(model, state)  # coder tables left out of the file: computed, as empty ones are
    try:
        tcm.check_released_keys(model, state, what)
    except SaicmError as e:
        raise type(e)(e.message, str(src)) from None
    tables = tcm.load_released_state(model, state)
    if precision == "fp16":
        tables = {k: "recomputed for the fp16 weights" for k in tables}
    sha = hashlib.sha256(src.read_bytes()).hexdigest()
    desc = description or f"CompressAI mbt2018-mean model (N = {N}, M = {M}, λ = {lam:g}), imported from {src.name}"
    dest.parent.mkdir(parents=True, exist_ok=True)
    save_model(model, dest, extra_meta={"description": desc, "training": {
        "loss": "mse", "lambdas": [lam], "imported_from": src.name, "source_sha256": sha, "precision": precision}},
        precision=precision, in_place=True)
    info = read_info(dest)
    card = dest.parent / f"{dest.stem}.md"
    _card(card, dest.stem, [
        desc + ".",
        "",
        f"- architecture: `gained-mean-scale-hyperprior` (CompressAI's `MeanScaleHyperprior` with unit gains), "
        f"N = {N}, M = {M}, single rate (quality 1), λ = {lam:g}",
        f"- source: `{src.name}`, SHA-256 {sha}",
        f"- weights: `{dest.name}`, {bytes_text(dest.stat().st_size)}, SHA-256 {full_checksum(dest).hex()}",
        "- coder tables: " + "; ".join(f"{k}: {v}" for k, v in tables.items()),
        f"- imported {_today()} with saicm {__version__} (`saicm import-checkpoint "
        "--arch mbt2018-mean`)",
        "- files: `.saicm` format 3 (the portable engine) by default; `--engine compressai` codes with CompressAI's "
        "own coder (format 1)",
        "- figures: not measured yet (`saicm eval --codec NAME --dataset IMAGES --task psnr -o NAME.json`)",
    ])
    return {"info": info, "card": card, "tables": tables}


def _card(path, name: str, lines: list[str]) -> None:
    text = "\n".join([f"# {name}", "", *lines, ""])
    write_bytes_atomic(path, names_as_utf8(text).encode())  # (a source name that is not UTF-8 raised)
