"""What an 8-bit analysis would buy and cost: a probe for the engine's encode speed (issue 20), not a codec.

The analysis ``g_a`` runs only at the encoder: the decoder never repeats it, so it may be computed at any
precision without touching decodability (a file written from an 8-bit analysis decodes the same on every
engine), and only the rate and the PSNR can move. This probe builds v5's ``g_a`` for onnxruntime with the
convolutions named by ``--layers`` as ``QLinearConv`` (unsigned 8-bit activations with zero point 128 and one
step per tensor, ``--headroom`` × the largest magnitude on every 12th photo of ``--calibrate``; signed 8-bit
weights with one step per output channel; 32-bit sums; the output requantised to 8 bits likewise), the GDNs
and the other convolutions in float32 as in :mod:`saicm.engine.onnx_export`. It then

1. times the float and the 8-bit graphs on a 768×512 input (best of ``--repeats`` after a warm-up), and
2. codes every photo of ``--data`` at the model's qualities through the portable engine with the float and
   with the 8-bit analysis (everything else unchanged; real files, decoded by the unchanged decoder) and
   reports the PSNR BD-rate of the second against the first.

    python benchmarks/analysis_int8_probe.py --data ../shared/data/photos/test \
        --calibrate ../shared/data/photos/train --layers 2,4 --threads 2 -o probe.json
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from engine_probe_rd import bd_between, calibration_image, emit, rd_curve  # noqa: E402  (beside this file)
from saicm.commands.argtypes import existing  # noqa: E402


def build_graph(state, int8_layers: set[int], in_scale: dict[int, float], out_scale: dict[int, float],
                outputs: list[str] | None = None) -> bytes:
    """v5's ``g_a`` with the convolutions of ``int8_layers`` as QLinearConv (steps from the two dicts by layer
    index); ``outputs``: extra tensors to expose (calibration), named ``g_a.I.out``."""
    from saicm.engine import onnx_export as E
    from saicm.engine import onnx_proto as P

    g = E._Graph()
    c = None
    for i, (kind, *args) in enumerate(E._LAYERS["g_a"]):
        name = f"g_a.{i}"
        if kind == "gdn":
            E._gdn(g, state, name, c, inverse=False)
            continue
        w = np.asarray(state[f"{name}.weight"], np.float64)
        b = np.asarray(state[f"{name}.bias"], np.float64)
        c = w.shape[0]
        k = w.shape[2]
        attrs = dict(kernel_shape=[k, k], strides=[args[0]] * 2, pads=[k // 2] * 4)
        if i not in int8_layers:
            g.add("Conv", name, [g.const(f"{name}.w", w), g.const(f"{name}.b", b)], **attrs)
            continue
        xs, ys = in_scale[i], out_scale[i]
        ws = np.abs(w).reshape(c, -1).max(1).clip(1e-12) / 127
        wq = np.rint(w / ws[:, None, None, None]).astype(np.int8)
        bq = np.rint(b / (xs * ws)).astype(np.int32)
        g.inits.append(P.tensor(f"{name}.xz", np.uint8(128), P.UINT8))
        g.add("QuantizeLinear", name + ".q", [g.const(f"{name}.xs", np.float32(xs)), f"{name}.xz"])
        qin = [P.tensor(f"{name}.wq", wq, P.INT8), P.tensor(f"{name}.ws", ws), P.tensor(f"{name}.wz", np.zeros(c), P.INT8),
               P.tensor(f"{name}.ys", np.float32(ys)), P.tensor(f"{name}.yz", np.uint8(128), P.UINT8),
               P.tensor(f"{name}.bq", bq, P.INT32)]
        g.inits += qin
        g.add("QLinearConv", name + ".conv", [f"{name}.xs", f"{name}.xz", f"{name}.wq", f"{name}.ws", f"{name}.wz",
                                              f"{name}.ys", f"{name}.yz", f"{name}.bq"], **attrs)
        g.nodes.append(("DequantizeLinear", [g.last, f"{name}.ys", f"{name}.yz"], [f"{name}.out"], name, {}))
        g.last = f"{name}.out"
    g.nodes[-1][2][0] = "y"
    outs = [P.value_info("y", ["batch", c, "h", "w"])] + [P.value_info(o, ["batch", "c", "h", "w"]) for o in outputs or []]
    return P.model([P.node(op, ins, o, n, **at) for op, ins, o, n, at in g.nodes], "g_a_int8",
                   [P.value_info("x", ["batch", 3, "height", "width"])], outs, g.inits,
                   opset=17, ir_version=E.IR_VERSION, producer="benchmarks/analysis_int8_probe.py")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", type=existing, help="test photos (coded at every quality; not needed with --no-rd)")
    p.add_argument("--calibrate", required=True, type=existing,
                   help="photos for the activation ranges (every 12th is used)")
    p.add_argument("--layers", default="2,4", help="g_a convolutions (indices 0, 2, 4, 6) run in 8 bits")
    p.add_argument("--headroom", type=float, default=1.0, help="range = headroom × the calibration maximum")
    p.add_argument("--model", default="mse-hyperprior-n64-v5")
    p.add_argument("--threads", type=int, default=2, help="onnxruntime threads for the timing")
    p.add_argument("--repeats", type=int, default=20)
    p.add_argument("--no-rd", action="store_true", help="time only")
    p.add_argument("-o", "--output", help="JSON file (default: stdout)")
    a = p.parse_args(argv)
    if a.data is None and not a.no_rd:
        p.error("--data is needed, unless --no-rd (time only)")

    import saicm
    from saicm.codec.image_io import is_image_file
    from saicm.engine.model import load
    from saicm.engine.onnx_export import _LAYERS
    from saicm.engine.runtime import session, transforms
    from saicm.models import catalog

    layers = {int(v) for v in a.layers.split(",") if v}
    pm = load(catalog.resolve(a.model))
    st = pm.state
    last = len(_LAYERS["g_a"]) - 1

    def tensor(i):  # the name of layer i's output in the float graph (-1: the image)
        return "x" if i < 0 else "y" if i == last else f"g_a.{i}.out"

    probes = sorted(({tensor(i - 1) for i in layers} | {tensor(i) for i in layers}) - {"x"})
    calib = session(build_graph(st, set(), {}, {}, outputs=[n for n in probes if n != "y"]), 1)
    peak = dict.fromkeys(probes, 0.0) | {"x": 1.0}
    for f in sorted(f for f in Path(a.calibrate).iterdir() if is_image_file(f))[::12]:
        for name, v in zip(probes, calib.run(probes, {"x": calibration_image(f)})):
            peak[name] = max(peak[name], float(np.abs(v).max()))
    in_scale = {i: a.headroom * peak[tensor(i - 1)] / 127 for i in layers}
    out_scale = {i: a.headroom * peak[tensor(i)] / 127 for i in layers}
    float_graph, int8_graph = build_graph(st, set(), {}, {}), build_graph(st, layers, in_scale, out_scale)

    x = np.ascontiguousarray(np.random.default_rng(0).random((1, 3, 512, 768), np.float32))
    times = {}
    for label, g in (("float32", float_graph), ("int8", int8_graph)):
        s = session(g, a.threads)
        s.run(None, {"x": x})
        best = float("inf")
        for _ in range(a.repeats):
            t0 = time.perf_counter()
            s.run(None, {"x": x})
            best = min(best, time.perf_counter() - t0)
        times[label] = best * 1e3
    print(f"g_a on 768x512, {a.threads} threads: float32 {times['float32']:.2f} ms, "
          f"8-bit layers {sorted(layers)} {times['int8']:.2f} ms", file=sys.stderr)
    out = {"model": a.model, "layers": sorted(layers), "headroom": a.headroom, "threads": a.threads,
           "g_a_ms": times, "calibration_peaks": peak, "saicm_version": saicm.__version__}

    if not a.no_rd:
        t = transforms(pm, "onnx")
        photos = sorted(f for f in Path(a.data).iterdir() if is_image_file(f))
        curves = {}
        for label, g in (("float32", float_graph), ("int8", int8_graph)):
            t._sessions["g_a"] = session(g, 1)
            curves[label] = rd_curve(a.model, photos, range(1, pm.num_qualities + 1), label)
        t._sessions.pop("g_a", None)
        bd = bd_between(curves, "float32", "int8")
        out.update(bd_rate_vs_float=bd, images=len(photos), curves=curves)
        print(f"BD-rate (PSNR) of the 8-bit analysis against the float one: {bd:+.2f} %", file=sys.stderr)
    emit(out, a.output)
    return 0


if __name__ == "__main__":
    sys.exit(main())
