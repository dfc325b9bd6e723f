"""Outside check of saicm's ``tcm`` against the authors' LIC-TCM code, on identical random weights.

The authors' model file is not part of saicm (and is never copied into it): point ``--ref-dir`` at a folder
holding it, as their repositories lay it out: ``models/tcm.py`` (LIC_TCM, class ``TCM``) or ``models/icm.py``
(SA-ICM / ICM-v1, class ``ICM``, the same network renamed). It needs ``einops`` and ``timm`` (only for
``trunc_normal_`` and ``DropPath``; without timm a stand-in is used, which changes nothing here: every weight is
overwritten and drop-path is 0 in the released configuration). Nothing is downloaded.

What it does: builds the reference model in the released configuration (N = 128, M = 320, 5 slices), fills it
with seeded random weights (the reference's own initialisation plus normal noise on every tensor, bottleneck
medians moved off the integers), runs the reference's ``update()``, saves the weights in the released layout
(``{"epoch", "state_dict"}`` with ``module.`` prefixes), imports that file with ``saicm import-checkpoint``
(fp32, in a temporary ``SAICM_MODELS`` folder), then compares on the same padded input:

(a) state-dict keys (missing / unexpected) and that every imported tensor equals the reference's;
(b) ``forward``: x_hat of both (max abs difference, PSNR between them) and the estimated bits;
(c) real bitstream: the reference's ``compress``/``decompress`` against saicm's (bytes of the y and z strings,
    decoded pixels), each decoding the other's strings, and the ``.saicm`` file path (``saicm.compress`` /
    ``saicm.decompress``: 8-bit rounding) against the authors' script output (8-bit truncation).

Everything runs on one thread (``torch.set_num_threads(1)``).

    OMP_NUM_THREADS=1 python benchmarks/tcm_reference_check.py --ref-dir /tmp/tcm-ref [--image PATH] [--seed 0] [-o out.json]
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import math
import os
import subprocess
import sys
import tempfile
import time
import types
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from saicm.commands.argtypes import existing

NAME = "tcm-reference-check"
CANDIDATES = (("models/tcm.py", "TCM"), ("models/icm.py", "ICM"), ("tcm.py", "TCM"), ("icm.py", "ICM"))


def load_reference(ref_dir: Path):
    """(class, path, note) of the authors' model in ``ref_dir``; SystemExit with one line if it is not there."""
    found = next(((ref_dir / f, cls) for f, cls in CANDIDATES if (ref_dir / f).is_file()), None)
    if found is None:
        raise SystemExit(f"error: --ref-dir {ref_dir} holds none of {', '.join(f for f, _ in CANDIDATES)} "
                         "(the authors' LIC_TCM / SA-ICM model file)")
    path, cls = found
    note = "timm"
    # without timm, a stand-in: trunc_normal_ only initialises (overwritten below), DropPath is unused at rate 0
    if importlib.util.find_spec("timm") is None:
        note = "timm stand-in (torch.nn.init.trunc_normal_)"
        layers = types.ModuleType("timm.models.layers")
        layers.trunc_normal_ = torch.nn.init.trunc_normal_

        class DropPath(torch.nn.Module):
            def __init__(self, p=0.0):
                super().__init__()
                if p:
                    raise NotImplementedError("the timm stand-in has no drop-path")

            def forward(self, x):
                return x

        layers.DropPath = DropPath
        for name in ("timm", "timm.models"):
            sys.modules.setdefault(name, types.ModuleType(name))
        sys.modules["timm.models.layers"] = layers
    spec = importlib.util.spec_from_file_location("tcm_reference", path)
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
    except ImportError as e:
        raise SystemExit(f"error: cannot import {path}: {e} (it needs compressai, einops and timm)") from None
    if not hasattr(module, cls):
        raise SystemExit(f"error: {path} has no class {cls}")
    return getattr(module, cls), path, note


def load_image(path: str | None, size: str) -> Image.Image:
    """The image (default: scikit-image's astronaut), centre-cropped to ``size`` (no resampling)."""
    if path is None:
        from skimage import data

        img = Image.fromarray(data.astronaut())
    else:
        img = Image.open(path).convert("RGB")
    w, h = (int(v) for v in size.split("x"))
    w, h = min(w, img.width), min(h, img.height)
    left, top = (img.width - w) // 2, (img.height - h) // 2
    return img.crop((left, top, left + w, top + h))


def randomise(model: torch.nn.Module, seed: int) -> None:
    """Seeded, non-trivial weights: the model's own random initialisation plus N(0, 0.02²) on every tensor
    (GDN β/γ, biases, relative positions, LayerNorms), bottleneck quantiles shifted by U(−0.5, 0.5) per channel
    (medians off the integers, so ẑ's offset matters). Three fixed changes keep the network out of saturation
    (without them g_s's inverse GDNs grow the output to ±3·10⁴, and half the σ are negative): the inverse GDNs'
    stored γ × 0.1, g_s's last convolution × 0.01 with 0.5 added to its bias, 2 added to the σ outputs' bias."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("quantiles"):
                p.add_(torch.rand(p.shape[0], 1, 1, generator=g) - 0.5)
            else:
                p.add_(torch.randn(p.shape, generator=g) * 0.02)
            if ".igdn.gamma" in name:
                p.mul_(0.1)
        last = model.g_s[-1][0]  # sub-pixel conv: conv then pixel shuffle
        last.weight.mul_(0.01)
        last.bias.add_(0.5)
        for t in model.cc_scale_transforms:
            t[-1].bias.add_(2.0)


def psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    mse = float((a.double() - b.double()).pow(2).mean())
    return math.inf if mse == 0 else 10 * math.log10(1 / mse)


def bits(likelihoods: dict) -> float:
    return float(sum((-torch.log2(v.double())).sum() for v in likelihoods.values()))


def to_uint8(x: torch.Tensor, h: int, w: int, rounding: bool) -> np.ndarray:
    """The decoded image cropped to the original size, as saicm (round) or the authors' script (truncate) writes it."""
    v = x[0, :, :h, :w].clamp(0, 1).mul(255)
    return (v.round() if rounding else v.floor()).byte().permute(1, 2, 0).numpy()


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--ref-dir", required=True, type=existing,
                   help="folder with the authors' models/tcm.py (or models/icm.py)")
    p.add_argument("--image", type=existing, help="image to code (default: scikit-image's astronaut)")
    p.add_argument("--size", default="256x256", help="centre crop WxH (default 256x256)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--empty-tables", action="store_true",
                   help="save the file with empty coder tables (as a training checkpoint): saicm computes its own")
    p.add_argument("-o", "--output", help="write the figures as JSON")
    a = p.parse_args(argv)

    torch.set_num_threads(1)
    Ref, ref_path, timm_note = load_reference(Path(a.ref_dir))
    with tempfile.TemporaryDirectory(prefix="tcm-refcheck-") as tmp:  # checkpoint and import: ~600 MB, removed after
        return check(a, Ref, ref_path, timm_note, Path(tmp))


def check(a, Ref, ref_path: Path, timm_note: str, work: Path) -> int:
    os.environ["SAICM_MODELS"] = str(work / "models")
    import saicm
    from saicm.codec.pipeline import prepare
    from saicm.models.tcm import read_released_checkpoint

    t0 = time.perf_counter()
    torch.manual_seed(a.seed)
    ref = Ref().eval()  # class defaults = the released configuration (N = 128, M = 320, 5 slices)
    randomise(ref, a.seed)
    if a.empty_tables:
        saved = {k: v.clone() for k, v in ref.state_dict().items()}
    ref.update()
    if not a.empty_tables:
        saved = ref.state_dict()
    ckpt = work / "released.pth.tar"
    torch.save({"epoch": 0, "state_dict": {"module." + k: v for k, v in saved.items()}}, ckpt)

    # saicm's import path: the CLI, in its own process, into the temporary model folder
    cmd = [sys.executable, "-m", "saicm", "import-checkpoint", str(ckpt), "--arch", "tcm", "--name", NAME,
           "--precision", "fp32"]
    run = subprocess.run(cmd, capture_output=True, text=True, env=dict(os.environ))
    if run.returncode:
        raise SystemExit(f"error: saicm import-checkpoint failed: {(run.stderr or run.stdout).strip()}")
    tables = next((ln.strip() for ln in run.stdout.splitlines() if "coder tables" in ln), "")
    net, _ = saicm.load_model(NAME)
    net.eval()

    # (a) keys and values
    in_file = read_released_checkpoint(ckpt)  # the file's keys, 'module.' removed
    theirs = ref.state_dict()  # the reference's tensors, coder tables included (from its update())
    ours = net.state_dict()
    missing = sorted(set(ours) - set(in_file))
    unexpected = sorted(set(in_file) - set(ours))
    differing = sorted(k for k in set(ours) & set(theirs)
                       if ours[k].shape != theirs[k].shape or not torch.equal(ours[k].to(theirs[k].dtype), theirs[k]))

    img = load_image(a.image, a.size)
    # the same padded input for both: saicm's padding (edge replication, bottom/right), in each one's memory layout
    # (saicm codes channels-last, the authors' script feeds a plain contiguous tensor)
    _, x, pad_bottom, pad_right = prepare(img, net.multiple, None, net.min_size)
    x_ref = x.contiguous()
    with torch.no_grad():
        # (b) forward
        fr, fs = ref(x_ref), net(x)
        # (c) real bitstream
        enc_r = ref.compress(x_ref)
        dec_r = ref.decompress(enc_r["strings"], enc_r["shape"])["x_hat"]
        enc_s = net.compress(x, 1)
        dec_s = net.decompress(enc_s["strings"], enc_s["shape"])["x_hat"]
        cross_s = net.decompress(enc_r["strings"], tuple(enc_r["shape"]))["x_hat"]  # saicm reads their strings
        cross_r = ref.decompress(enc_s["strings"], torch.Size(enc_s["shape"]))["x_hat"]  # and they read saicm's
    # the .saicm file path (saicm's own padding, 8-bit rounding) against what the authors' script writes
    data = saicm.compress(img, model=NAME)
    file_px = np.asarray(saicm.decompress(data, model=NAME).convert("RGB"))
    script_px = to_uint8(dec_r, img.height, img.width, rounding=False)
    # the same computation in the reference's memory layout: what is left of the differences above is layout noise
    net.to(memory_format=torch.contiguous_format)
    with torch.no_grad():
        same_fwd = float((net(x_ref)["x_hat"] - fr["x_hat"]).abs().max())
        same_dec = float((net.decompress(enc_r["strings"], tuple(enc_r["shape"]))["x_hat"] - dec_r).abs().max())
    rounded_r, rounded_s = (to_uint8(d, img.height, img.width, True) for d in (dec_r, dec_s))

    y_r, z_r = bytes(enc_r["strings"][0][0]), bytes(enc_r["strings"][1][0])
    y_s, z_s = bytes(enc_s["strings"][0][0]), bytes(enc_s["strings"][1][0])
    xr, xs = fr["x_hat"], fs["x_hat"]
    inside = float(((xr > 0) & (xr < 1)).float().mean())
    res = {
        "reference": str(ref_path), "timm": timm_note, "seed": a.seed, "image": a.image or "skimage astronaut",
        "size": [img.width, img.height], "padded": list(x.shape[-2:]), "padding_bottom_right": [pad_bottom, pad_right],
        "file_tables": "empty" if a.empty_tables else "filled by the reference's update()", "import": tables,
        "keys": {"file": len(in_file), "saicm": len(ours), "missing": len(missing), "unexpected": len(unexpected),
                 "tensors_differing": len(differing), "first": (missing + unexpected + differing)[:5]},
        "forward": {"x_hat_max_abs_diff": float((xr - xs).abs().max()), "psnr_between_db": psnr(xr, xs),
                    "x_hat_inside_0_1": inside, "x_hat_range": [float(xr.min()), float(xr.max())],
                    "bits_reference": bits(fr["likelihoods"]), "bits_saicm": bits(fs["likelihoods"])},
        "bitstream": {"y_bytes": [len(y_r), len(y_s)], "z_bytes": [len(z_r), len(z_s)],
                      "y_identical": y_r == y_s, "z_identical": z_r == z_s,
                      "shape": [list(enc_r["shape"]), list(enc_s["shape"])],
                      "decode_max_abs_diff": float((dec_r - dec_s).abs().max()),
                      "saicm_decodes_reference_strings_max_abs_diff": float((dec_r - cross_s).abs().max()),
                      "reference_decodes_saicm_strings_max_abs_diff": float((dec_s - cross_r).abs().max()),
                      "decode_vs_clamped_forward_max_abs_diff": float((dec_r - xr.clamp(0, 1)).abs().max()),
                      "uint8_rounded_max_diff": int(np.abs(rounded_r.astype(int) - rounded_s).max()),
                      "uint8_rounded_values_differing": int((rounded_r != rounded_s).sum()),
                      "contiguous_saicm_forward_max_abs_diff": same_fwd,
                      "contiguous_saicm_decode_of_reference_strings_max_abs_diff": same_dec},
        "file": {"saicm_bytes": len(data), "strings_bytes": len(y_s) + len(z_s),
                 "vs_script_uint8_max_diff": int(np.abs(file_px.astype(int) - script_px).max()),
                 "vs_script_uint8_pixels_differing": float((file_px != script_px).any(-1).mean()),
                 "vs_rounded_reference_decode_max_diff": int(np.abs(file_px.astype(int) - rounded_r).max()),
                 "vs_rounded_reference_decode_values_differing": int((file_px != rounded_r).sum())},
        "seconds": round(time.perf_counter() - t0, 1), "torch": torch.__version__, "saicm": saicm.__version__,
    }
    b, f = res["bitstream"], res["forward"]
    rows = [
        ("state-dict keys (file / saicm)", f"{len(in_file)} / {len(ours)}"),
        ("missing / unexpected keys", f"{len(missing)} / {len(unexpected)}"),
        ("imported tensors not equal to the reference's", str(len(differing))),
        ("forward x_hat max |diff|", f"{f['x_hat_max_abs_diff']:.3g}"),
        ("forward PSNR between the two", f"{f['psnr_between_db']:.1f} dB"),
        ("forward estimated bits (reference / saicm)", f"{f['bits_reference']:.1f} / {f['bits_saicm']:.1f}"),
        ("x_hat inside (0, 1) (not saturated)", f"{100 * inside:.0f} %"),
        ("y string bytes (reference / saicm)", f"{len(y_r)} / {len(y_s)}, identical: {b['y_identical']}"),
        ("z string bytes (reference / saicm)", f"{len(z_r)} / {len(z_s)}, identical: {b['z_identical']}"),
        ("real decode max |diff| (own strings)", f"{b['decode_max_abs_diff']:.3g}"),
        ("saicm decoding the reference's strings", f"{b['saicm_decodes_reference_strings_max_abs_diff']:.3g}"),
        ("reference decoding saicm's strings", f"{b['reference_decodes_saicm_strings_max_abs_diff']:.3g}"),
        ("reference decode vs its clamped forward", f"{b['decode_vs_clamped_forward_max_abs_diff']:.3g}"),
        ("8-bit decodes, both rounded: max |diff|",
         f"{b['uint8_rounded_max_diff']} ({b['uint8_rounded_values_differing']} of {rounded_r.size} values)"),
        ("saicm in the reference's layout: forward / decode",
         f"{same_fwd:.3g} / {same_dec:.3g}"),
        (".saicm file (rounds) vs script PNG (truncates)",
         f"max {res['file']['vs_script_uint8_max_diff']}, "
         f"{100 * res['file']['vs_script_uint8_pixels_differing']:.0f} % of pixels differ"),
        (".saicm file vs reference decode rounded", f"max {res['file']['vs_rounded_reference_decode_max_diff']} "
         f"({res['file']['vs_rounded_reference_decode_values_differing']} values)"),
        (".saicm file bytes (y + z strings)", f"{len(data)} ({len(y_s) + len(z_s)})"),
    ]
    print(f"reference {ref_path} ({timm_note}); {img.width}x{img.height} image padded to "
          f"{x.shape[-1]}x{x.shape[-2]}; seed {a.seed}; coder tables in the file: {res['file_tables']}; {tables}")
    width = max(len(r[0]) for r in rows)
    for k, v in rows:
        print(f"  {k:<{width}}  {v}")
    print(f"  ({res['seconds']} s)")
    if a.output:
        Path(a.output).write_text(json.dumps(res, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
