"""``saicm import-checkpoint``: the authors' released SA-ICM / ICM-v1 weights as saicm models.

``--arch tcm`` reads a released machine model (SA-ICM ``icm_78.pth.tar`` / ``icm_93.pth.tar``, ICM-v1
``icm.pth.tar``: LIC-TCM large) and writes ``NAME.safetensors``, a single-rate ``tcm`` model usable by name or
path in every command. ``--arch tcm-ica --base MACHINE`` reads ICM-v1's additional model (``ica.pth.tar``) and
writes a ``scalable-fusion`` model over the imported machine model: two-layer files whose human layer decodes
from the real bitstream (the fusion the released code skips). Both write a model-card stub ``NAME.md`` beside
the weights. ``--arch mbt2018-mean`` reads a model trained with CompressAI (``MeanScaleHyperprior``) and writes a
single-rate ``gained-mean-scale-hyperprior`` (the portable engine codes it). See ``docs/tcm.md``.
"""

from __future__ import annotations

import argparse

from .argtypes import fraction, positive_float

ARCHES = ("tcm", "tcm-ica", "mbt2018-mean")


def _out_dir(a: argparse.Namespace, default):
    from pathlib import Path

    from .._fs import user_path
    from ..errors import SaicmError
    from ..models.catalog import WEIGHTS_DIR

    out = user_path(a.out) if a.out else Path(default)
    if out.suffix == ".safetensors":
        raise SaicmError("--out takes a folder; the file is named after --name", str(out))
    if out.resolve() == WEIGHTS_DIR.resolve():
        raise SaicmError("imported weights do not go into the package's shipped-weights folder; pick another "
                         "--out (default: your model folder)", str(out))
    from .._fs import ensure_dir, under_no_home

    if not a.out and under_no_home(out):  # (never made: as root it was)
        raise SaicmError("you have no home folder for your model folder: set SAICM_MODELS to a writable folder, or "
                         "give --out", str(out))
    try:  # (before the import's work: a home that cannot be written, or none, was a traceback of five chained)
        ensure_dir(out)
    except SaicmError as e:
        if a.out:
            raise
        raise SaicmError(f"{e.message}: your model folder; set SAICM_MODELS to a writable folder, or give --out",
                         e.path) from None
    return out


def _check_name(name: str) -> None:
    from ..codec.limits import header_model_name
    from ..errors import FormatError, SaicmError
    from ..models.catalog import shipped_models

    try:
        header_model_name(name)
    except FormatError:
        raise SaicmError(f"--name {name!r} is not a model name (no path, no .safetensors, not starting with '.')") from None
    if name in shipped_models():
        raise SaicmError(f"--name {name!r} is a shipped model's name; pick another")


def _config(a: argparse.Namespace) -> dict:
    import json

    from ..errors import SaicmError
    from ..models.tcm import PRESETS

    preset = a.preset or ("released-ica" if a.arch == "tcm-ica" else "released")
    if preset not in PRESETS:
        raise SaicmError(f"unknown --preset {preset!r} (known: {', '.join(PRESETS)})")
    cfg = dict(PRESETS[preset])
    if a.config:
        try:
            extra = json.loads(a.config)
        except ValueError as e:
            raise SaicmError(f"--config is not JSON ({e})") from None
        if not isinstance(extra, dict):
            raise SaicmError("--config takes a JSON object of tcm options")
        cfg.update(extra)
    cfg.pop("lambdas", None)
    return cfg


def cmd_import(a: argparse.Namespace) -> int:
    from pathlib import Path

    from ..errors import SaicmError
    from ..models.catalog import resolve, user_model_dir
    from ..models.released import import_released

    _check_name(a.name)
    src = Path(a.checkpoint)
    if src.is_dir():  # (it said "not found" of a folder that is there)
        raise SaicmError("is a folder, not a file: name the checkpoint file", str(src))
    if not src.is_file():
        raise SaicmError("checkpoint file not found", str(src))
    if a.arch == "mbt2018-mean":
        return _import_compressai(a, src)
    cfg = _config(a)
    lam = a.lam if a.lam is not None else (0.01 if a.arch == "tcm-ica" else 0.05)
    base_info = None
    if a.arch == "tcm-ica":
        if not a.base:
            raise SaicmError("--arch tcm-ica needs --base: the imported machine model it adds to (name or path)")
        base_info = resolve(a.base)
        if base_info.architecture != "tcm":
            raise SaicmError(f"--base {base_info.name} is a {base_info.architecture} model, not an imported tcm")
        out = _out_dir(a, base_info.path.parent)
        if out.resolve() != base_info.path.parent.resolve():
            raise SaicmError(f"the scalable model must lie beside its base ({base_info.path.parent}): drop --out")
    else:
        out = _out_dir(a, user_model_dir())
    dest = out / f"{a.name}.safetensors"
    if dest.exists() and not a.force:
        raise SaicmError("already exists (use --force to replace it)", str(dest))
    r = import_released(src, dest, a.arch, cfg, lam, alpha=a.alpha, base_info=base_info, precision=a.precision,
                        description=a.description)
    _report(a, r, dest, out)
    return 0


def _import_compressai(a: argparse.Namespace, src) -> int:
    from ..errors import SaicmError
    from ..models.catalog import user_model_dir
    from ..models.released import COMPRESSAI_ZOO_LAMBDAS, import_mbt2018_mean

    given = [o for o, v in (("--base", a.base), ("--alpha", a.alpha), ("--preset", a.preset), ("--config", a.config))
             if v is not None]
    if given:
        raise SaicmError(f"{given[0]} does not apply to --arch mbt2018-mean")
    if a.lam is None:
        raise SaicmError("--arch mbt2018-mean needs --lam, the λ the model was trained for (CompressAI's zoo, "
                         "quality 1..8: " + ", ".join(map(str, COMPRESSAI_ZOO_LAMBDAS)) + ")")
    out = _out_dir(a, user_model_dir())
    dest = out / f"{a.name}.safetensors"
    if dest.exists() and not a.force:
        raise SaicmError("already exists (use --force to replace it)", str(dest))
    _report(a, import_mbt2018_mean(src, dest, a.lam, precision=a.precision, description=a.description), dest, out)
    return 0


def _report(a: argparse.Namespace, r: dict, dest, out) -> None:
    from ..models.catalog import user_model_dir

    info, tables = r["info"], r["tables"]
    print(f"wrote {dest} ({info.architecture}, {a.precision}); card {out / (a.name + '.md')}")
    print("  coder tables: " + "; ".join(f"{k} {v}" for k, v in tables.items()))
    if out.resolve() == user_model_dir().resolve():
        print(f"  use it by name: --model {a.name}")
    else:
        print(f"  use it by path: --model {dest}")


def register(sub) -> None:
    s = sub.add_parser(
        "import-checkpoint", help="turn the authors' released SA-ICM / ICM-v1 weights, or a CompressAI "
        "mbt2018-mean model, into a saicm model",
        description="Read a released checkpoint (a .pth.tar dict whose 'state_dict' or 'model' entry holds the "
        "weights, a bare state dict, or one saved as .safetensors; EMA weights beside them, an 'ema' entry, are "
        "said in a warning, not imported; 'module.' and '_orig_mod.' prefixes and "
        "CompressAI <= 1.2.6 bottleneck names are accepted), check every key and shape "
        "against the architecture, load strictly, fill the coder tables and write NAME.safetensors plus a model "
        "card stub NAME.md. --arch tcm: a machine model (SA-ICM icm_78/icm_93, ICM-v1 icm). --arch tcm-ica: "
        "ICM-v1's additional model (ica), written as a scalable model over --base (the imported ICM-v1 machine "
        "model), beside it. --arch mbt2018-mean: a model trained with CompressAI (MeanScaleHyperprior, any N and M; "
        "--lam its λ), written as a single-rate gained-mean-scale-hyperprior that the portable engine codes. Read "
        "with torch.load(weights_only=True): files holding code are refused.")
    s.add_argument("checkpoint", help="the released .pth.tar file (or a CompressAI checkpoint / state dict)")
    s.add_argument("--arch", "--architecture", dest="arch", choices=ARCHES, default="tcm",
                   type=lambda v: v.replace("_", "-"),  # (CompressAI's zoo spells it mbt2018_mean)
                   help="tcm (machine model, default), tcm-ica (ICM-v1's additional model; needs --base) or "
                   "mbt2018-mean (CompressAI's MeanScaleHyperprior; needs --lam)")
    s.add_argument("--name", required=True, help="model name (the file stem; what streams record)")
    s.add_argument("--out", "-o", help="folder to write to (default: your model folder, $SAICM_MODELS or "
                   "~/.local/share/saicm/models, where models are found by name; tcm-ica: its base's folder)")
    s.add_argument("--base", help="tcm-ica: the imported machine model (name or .safetensors path)")
    s.add_argument("--alpha", type=fraction, help="SAM confidence α the model was trained with (model card only: "
                   "0.78 / 0.93 for SA-ICM icm_78 / icm_93, 0.78 for ICM-v1)")
    s.add_argument("--lam", type=positive_float, help="λ the model was trained for (stored; default 0.05, tcm-ica 0.01; mbt2018-mean: "
                   "required, CompressAI's zoo quality 1..8 = 0.0018 ... 0.18)")
    s.add_argument("--precision", choices=["fp32", "fp16"], default="fp32",
                   help="fp32 (default: the weights bit for bit, decodes closest to the authors' code; ~292 MiB) "
                   "or fp16 (half the size; every weight rounded)")
    s.add_argument("--preset", help="architecture preset (default released, tcm-ica: released-ica; also S, M, L "
                   "for LIC-TCM checkpoints of other sizes)")
    s.add_argument("--config", help="JSON object of tcm options overriding the preset (e.g. '{\"N\": 64}')")
    s.add_argument("--description", help="one line shown by saicm (default: derived from the options)")
    s.add_argument("--force", action="store_true", help="replace an existing NAME.safetensors")
    s.set_defaults(func=cmd_import)
