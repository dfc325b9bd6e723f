"""What an 8-bit hyper-synthesis would cost in rate: a probe for the engine's speed (issue 20), not a codec.

The engine's exact hyper-synthesis runs in float64 on integers (docs/engine.md); a faster exact route would be
8-bit integer convolutions with 32-bit sums (onnxruntime's ConvInteger). This probe simulates that precision
on ``mse-hyperprior-n64-v5`` and measures what it does to real files: layer 1 stays exact, the outputs of
layers 1 and 2 (after the LeakyReLU) are quantised to ``--act-bits`` unsigned integers (per-channel step =
``--headroom`` × the channel's largest value on every 12th image of ``--calibrate`` at qualities 1, 4, 7,
divided by the levels above the zero point ``--zero-point``, which holds the LeakyReLU's negative side), and
the weights of layers 2 and 3 (the activation steps folded in) to signed ``--weight-bits`` integers per
output channel. The simulated network replaces the exact one at both ends of the portable engine (same
process, float64 on this CPU: an estimate of the precision's cost, not a portable decoder), and every photo
of ``--data`` is coded at the seven qualities; the output is the BD-rate (PSNR, real file sizes) against the
exact engine and both curves as JSON.

    python benchmarks/hyper_precision_probe.py --data ../shared/data/photos/test \
        --calibrate ../shared/data/photos/train --act-bits 8 --weight-bits 7 --headroom 2
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from engine_probe_rd import bd_between, calibration_image, emit, rd_curve  # noqa: E402  (beside this file)
from saicm.commands.argtypes import existing  # noqa: E402


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", required=True, type=existing, help="test photos (coded at 7 qualities)")
    p.add_argument("--calibrate", required=True, type=existing,
                   help="photos for the activation ranges (every 12th is used)")
    p.add_argument("--act-bits", type=int, default=8)
    p.add_argument("--weight-bits", type=int, default=7)
    p.add_argument("--zero-point", type=int, default=None, help="default: 2**act_bits / 64")
    p.add_argument("--headroom", type=float, default=1.0, help="range = headroom × the calibration maximum")
    p.add_argument("--model", default="mse-hyperprior-n64-v5")
    p.add_argument("-o", "--output", help="JSON file (default: stdout)")
    a = p.parse_args(argv)

    import torch
    import torch.nn.functional as F

    import saicm
    from saicm.codec.image_io import is_image_file
    from saicm.engine.hypernet import FRAC
    from saicm.engine.model import load
    from saicm.engine.runtime import transforms
    from saicm.models import catalog

    torch.set_num_threads(1)
    zp = a.zero_point if a.zero_point is not None else max(1, 2 ** a.act_bits // 64)
    levels = 2 ** a.act_bits - 1 - zp
    pm = load(catalog.resolve(a.model))
    st = pm.state
    W = [torch.from_numpy(np.asarray(st[f"h_s.{i}.weight"], np.float64)) for i in (0, 2, 4)]
    B = [torch.from_numpy(np.asarray(st[f"h_s.{i}.bias"], np.float64)) for i in (0, 2, 4)]

    def deconv(x, w, b):
        return F.conv_transpose2d(x, w, b, stride=2, padding=2, output_padding=1)

    def lrelu(x):
        return F.leaky_relu(x, 0.01)

    t = transforms(pm, "onnx")
    a1max, a2max = torch.zeros(W[0].shape[1], dtype=torch.float64), torch.zeros(W[1].shape[1], dtype=torch.float64)
    for f in sorted(f for f in Path(a.calibrate).iterdir() if is_image_file(f))[::12]:
        x = calibration_image(f)
        for q in (1, 4, 7):
            y = t.analysis(x) * pm.gain[q - 1][None, :, None, None]
            z = np.rint(t.hyper_analysis(y)[0] - pm.medians[:, None, None]) + pm.medians[:, None, None]
            a1 = lrelu(deconv(torch.from_numpy(z.astype(np.float64))[None], W[0], B[0]))
            a2 = lrelu(deconv(a1, W[1], B[1]))
            a1max = torch.maximum(a1max, a1[0].flatten(1).max(1).values)
            a2max = torch.maximum(a2max, a2[0].flatten(1).max(1).values)
    s1 = a.headroom * a1max.clamp_min(1e-3) / levels
    s2 = a.headroom * a2max.clamp_min(1e-3) / levels

    def quant_w(w, out_dim):
        m = w.abs().amax(dim=[d for d in range(4) if d != out_dim], keepdim=True).clamp_min(1e-12)
        step = m / (2 ** (a.weight_bits - 1) - 1)
        return torch.round(w / step) * step

    w2 = quant_w(W[1] * s1[:, None, None, None], 1)  # (Cin, Cout, k, k): the input step folded on Cin
    w3 = quant_w(W[2] * s2[None, :, None, None], 0)

    def qa(x, s):
        return torch.clamp(torch.round(x / s[None, :, None, None]), -zp, levels)

    def hyper_low(z_int):
        z = torch.from_numpy(np.ldexp(np.asarray(z_int, np.float64), -FRAC))[None]
        q1 = qa(lrelu(deconv(z, W[0], B[0])), s1)
        q2 = qa(lrelu(deconv(q1, w2, B[1])), s2)
        out = F.conv2d(q2, w3, B[2], padding=1)[0].numpy()
        return np.rint(np.ldexp(out, FRAC)).astype(np.int64)

    exact = pm.hyper
    photos = sorted(f for f in Path(a.data).iterdir() if is_image_file(f))
    curves = {}
    try:
        for label, fn in (("exact", exact), ("low", hyper_low)):
            pm.hyper = fn
            curves[label] = rd_curve(a.model, photos, range(1, pm.num_qualities + 1), label)
    finally:
        pm.hyper = exact
    out = {"model": a.model, "act_bits": a.act_bits, "weight_bits": a.weight_bits, "zero_point": zp,
           "headroom": a.headroom, "bd_rate_vs_exact": bd_between(curves, "exact", "low"), "images": len(photos),
           "saicm_version": saicm.__version__, "curves": curves}
    emit(out, a.output)
    return 0


if __name__ == "__main__":
    sys.exit(main())
