"""The 16-bit route of issue 20, built and measured: a hyper-synthesis on 8-bit integer products, in the codec.

A probe for a decision, not a codec: the engine's exact hyper-synthesis (format 3: float64 products of integers,
:mod:`saicm.engine.hypernet`) is replaced, at both ends in this process, by one whose two large layers run on
onnxruntime's ``MatMulInteger`` (uint8 × int8, int32 sums: exact on every CPU for 7-bit weights): layer 1 stays
exact; the outputs of layers 1 and 2 are quantised per channel to signed 16-bit levels (step = ``--headroom`` ×
the channel's largest value over the hyper-latents of every 12th photo of ``--calibrate`` at qualities 1, 4, 7,
over 2**15 - 1), read by ``MatMulInteger`` as their two bytes against the weights quantised to signed 7-bit
integers per output channel (the activation steps folded in); the int32 sums of the low and high bytes are joined
in float64 (exact: below 2**53) and scaled back. The transposed layer runs as four stride-1 convolutions, one per
output phase, like the engine's. A format built on this would fix the steps in the model file and do the scaling
in integers; the products, the byte split and the im2col, what the time is made of, are the ones measured here.
The contexts of a context model stay exact (float64), unless ``--contexts``: then the channel contexts'
convolutions take the same route (their inputs' steps from the same calibration; the aggregation stays exact).

``--timing``: the default model encodes and decodes the first ``--limit`` photos of ``--data`` at 768×512 with the
exact and the 8-bit hyper-synthesis alternately, image by image (best of ``--repeats``; medians), and times the
hyper-synthesis calls themselves. ``--rd``: every photo of ``--data`` at every quality with both (real files);
PSNR BD-rate of the 8-bit route against the exact one.

    python benchmarks/int8_hyper_probe.py --data ../shared/data/photos/test --calibrate ../shared/data/photos/train \
        --timing --rd -o benchmarks/results/engine/hyper-precision/int8_hyper_v7.json
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from engine_probe_rd import bd_between, calibration_image, emit, rd_curve  # noqa: E402  (beside this file)
from saicm.commands.argtypes import existing  # noqa: E402

LEVELS = (1 << 15) - 1  # signed 16-bit activation levels (0 is the activation 0: the padding)


class Int8Products:
    """``Σ_taps W_t · q[:, r + dy, c + dx]`` of 16-bit levels ``q`` (Cin, h, w) and 7-bit weights (taps (dy, dx,
    (Cout, Cin) integers)), exactly: the levels, offset by 2**15 to uint16, are read as bytes (low, high) in one
    im2col matrix; one ``MatMulInteger`` against [weights at the low bytes | weights at the high bytes] gives both
    int32 sums. → (h·w, Cout) float64."""

    def __init__(self, taps, threads: int):
        from saicm.engine import onnx_proto as P
        from saicm.engine.runtime import session

        self.offsets = [(dy, dx) for dy, dx, _ in taps]
        self.m = max(max(abs(dy), abs(dx)) for dy, dx in self.offsets)
        wk = np.concatenate([np.asarray(w).T for *_, w in taps]).astype(np.int64)  # (T·Cin, Cout)
        if np.abs(wk).max() > 63:
            raise ValueError("weights beyond 7 bits")
        self.cout = wk.shape[1]
        self.bias = -(1 << 15) * wk.sum(0).astype(np.float64)  # the offset's share
        b = np.zeros((wk.shape[0], 2, 2 * self.cout), np.int8)
        b[:, 0, : self.cout] = wk
        b[:, 1, self.cout:] = wk
        b = b.reshape(-1, 2 * self.cout)
        graph = P.model([P.node("MatMulInteger", ["a", "b"], ["y"], "mm")], "int8",
                        [P.value_info("a", ["n", b.shape[0]], P.UINT8)],
                        [P.value_info("y", ["n", 2 * self.cout], P.INT32)], [P.tensor("b", b, P.INT8)],
                        opset=13, ir_version=8, producer="saicm-probe")
        self.session = session(graph, threads)

    def __call__(self, q: np.ndarray) -> np.ndarray:
        cin, h, w = q.shape
        m = self.m
        padded = np.full((h + 2 * m, w + 2 * m, cin), 1 << 15, np.uint16)
        padded[m: m + h, m: m + w] = (q + (1 << 15)).transpose(1, 2, 0)
        cols = np.empty((h, w, len(self.offsets), cin), np.uint16)
        for t, (dy, dx) in enumerate(self.offsets):
            cols[:, :, t] = padded[m + dy: m + dy + h, m + dx: m + dx + w]
        y = self.session.run(None, {"a": cols.view(np.uint8).reshape(h * w, -1)})[0]
        acc = y[:, self.cout:].astype(np.float64)
        acc *= 256
        acc += y[:, : self.cout]
        acc += self.bias
        return acc


def _quantised(taps, step: np.ndarray, weight_bits: int):
    """Taps (dy, dx, (Cout, Cin) integer weights) for 16-bit input levels of ``step`` (per input channel): the step
    folded into the weights, quantised to signed ``weight_bits`` integers per output channel → (taps, the
    output's scale per channel)."""
    folded = [(dy, dx, w * step[None, :]) for dy, dx, w in taps]
    top = np.max([np.abs(w).max(axis=1) for *_, w in folded], axis=0)
    scale = np.maximum(top, 1e-300) / (2 ** (weight_bits - 1) - 1)
    return [(dy, dx, np.rint(w / scale[:, None])) for dy, dx, w in folded], scale


def hyper16(exact, calibration: list[np.ndarray], threads: int, headroom: float, weight_bits: int = 7):
    """The 8-bit-product hyper-synthesis (a callable like ``exact``: hyper-latent units → int64 units of
    2**-FRAC) of the exact one's layers, with activation steps from ``calibration`` (hyper-latents in units)."""
    from saicm.engine import hypernet as H

    l1, l2, l3 = exact.layers
    top1 = top2 = 0.0
    with H.single_threaded_blas():
        for z in calibration:
            a1 = H._deconv(np.clip(z, -H.ACT_LIMIT, H.ACT_LIMIT), l1)
            a2 = H._deconv(a1, l2)
            top1 = np.maximum(top1, np.abs(a1).max(axis=(1, 2)))
            top2 = np.maximum(top2, np.abs(a2).max(axis=(1, 2)))
    step1, step2 = np.maximum(top1 * headroom, 1) / LEVELS, np.maximum(top2 * headroom, 1) / LEVELS
    phases = []
    for a, b, taps in l2.tap_sets:
        q, scale = _quantised(taps, step1, weight_bits)
        phases.append((a, b, Int8Products(q, threads), scale))
    q, scale3 = _quantised(l3.tap_sets[0][2], step2, weight_bits)
    conv = Int8Products(q, threads)
    unit2, unit3 = 2.0 ** -l2.shift, 2.0 ** -l3.shift

    def levels(a, step):
        v = np.rint(a / step[:, None, None])
        return np.clip(v, -LEVELS - 1, LEVELS, out=v)

    def run(x):
        with H.single_threaded_blas():
            a1 = H._deconv(np.clip(np.asarray(x, np.int64), -H.ACT_LIMIT, H.ACT_LIMIT), l1)
        q1 = levels(a1, step1)
        _, h, w = q1.shape
        a2 = np.empty((l2.cout, 2 * h, 2 * w))
        for a, b, products, scale in phases:
            acc = products(q1)
            acc *= scale
            acc += l2.bias
            acc *= unit2
            a2[:, a::2, b::2] = acc.T.reshape(-1, h, w)
        np.maximum(a2, a2 / 100, out=a2)  # LeakyReLU(0.01)
        acc = conv(levels(a2, step2))
        acc *= scale3
        acc += l3.bias
        acc *= unit3
        return np.rint(acc).T.astype(np.int64).reshape(-1, 2 * h, 2 * w)

    run.reach, run.layers = exact.reach, exact.layers  # (what the engine's row blocks read of it)
    return run


def conv_stack16(exact, calibration: list[np.ndarray], threads: int, headroom: float, weight_bits: int = 7):
    """The same route for a stack of stride-1 convolutions (a context model's channel context: conv, ReLU, conv):
    every layer's input quantised per channel to 16-bit levels (steps from ``calibration``, the stack's inputs in
    units), 7-bit weights, ``MatMulInteger`` products. → a callable like ``exact``."""
    from saicm.engine import hypernet as H

    tops = [0.0] * len(exact.layers)
    with H.single_threaded_blas():
        for x in calibration:
            a = np.clip(x, -H.ACT_LIMIT, H.ACT_LIMIT)
            for i, layer in enumerate(exact.layers):
                tops[i] = np.maximum(tops[i], np.abs(a).max(axis=(1, 2)))
                a = H._conv(a, layer)
    steps, products = [], []
    for layer, top in zip(exact.layers, tops):
        step = np.maximum(top * headroom, 1) / LEVELS
        q, scale = _quantised(layer.tap_sets[0][2], step, weight_bits)
        steps.append(step)
        products.append((Int8Products(q, threads), scale))

    def run(x):
        a = np.clip(np.asarray(x, np.int64), -H.ACT_LIMIT, H.ACT_LIMIT).astype(np.float64)
        _, h, w = a.shape
        for layer, step, (prod, scale) in zip(exact.layers, steps, products):
            q = np.rint(a / step[:, None, None])
            acc = prod(np.clip(q, -LEVELS - 1, LEVELS, out=q))
            acc *= scale
            acc += layer.bias
            acc *= 2.0 ** -layer.shift
            if layer.relu:
                np.maximum(acc, 0, out=acc)
            if layer.leaky:
                np.maximum(acc, acc / 100, out=acc)
            a = acc.T.reshape(-1, h, w)
        return np.rint(a).astype(np.int64)

    return run


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", required=True, type=existing, help="test photos")
    p.add_argument("--calibrate", required=True, type=existing, help="photos for the activation steps (every 12th)")
    p.add_argument("--model", default="mse-context-n64-v7")
    p.add_argument("--headroom", type=float, default=8.0, help="range = headroom × the calibration maximum")
    p.add_argument("--engine", default="openvino-bf16", help="transforms' engine for --timing")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--limit", type=int, default=8)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--timing", action="store_true")
    p.add_argument("--rd", action="store_true")
    p.add_argument("--contexts", action="store_true",
                   help="the 8-bit route for the channel contexts' convolutions too (context models)")
    p.add_argument("-o", "--output", help="JSON file (default: stdout)")
    a = p.parse_args(argv)
    os.environ["SAICM_THREADS"] = str(a.threads)
    from PIL import Image

    import saicm
    from saicm.codec.image_io import is_image_file
    from saicm.engine.model import load
    from saicm.models import catalog

    pm = load(catalog.resolve(a.model))
    exact = pm.hyper
    calibration = []
    rows = pm._hyper_rows

    def capture(z_sym, offset=None):
        calibration.append((np.asarray(z_sym, np.int64) << 15) + pm.median_units[:, None, None])
        return rows(z_sym, offset)

    pm._hyper_rows = capture
    exact_channel = list(getattr(pm, "channel", []))
    seen = [[] for _ in exact_channel]

    def capturing(k):
        def call(x):
            if len(seen[k]) < 200:
                seen[k].append(np.array(x))
            return exact_channel[k](x)
        return call

    if a.contexts:
        pm.channel = [None if net is None else capturing(k) for k, net in enumerate(exact_channel)]
    try:
        for f in sorted(f for f in Path(a.calibrate).iterdir() if is_image_file(f))[::12]:
            for q in (1, 4, 7):
                x = calibration_image(f)[0].transpose(1, 2, 0)
                saicm.compress(Image.fromarray(np.rint(x * 255).astype(np.uint8)), model=a.model, quality=q)
    finally:
        pm._hyper_rows = rows
        if exact_channel:
            pm.channel = exact_channel
    fast = hyper16(exact, calibration, a.threads, a.headroom)
    fast_channel = [None if net is None else conv_stack16(net, seen[k], a.threads, a.headroom)
                    for k, net in enumerate(exact_channel)] if a.contexts else exact_channel

    def use(route):  # the engine's networks of one route
        pm.hyper = exact if route == "exact" else fast
        if exact_channel:
            pm.channel = exact_channel if route == "exact" else fast_channel

    out = {"model": a.model, "headroom": a.headroom, "calibration_latents": len(calibration), "threads": a.threads,
           "int8_channel_contexts": a.contexts,
           "saicm_version": saicm.__version__, "cpu_count": os.cpu_count()}
    photos = sorted(f for f in Path(a.data).iterdir() if is_image_file(f))
    try:
        if a.timing:
            images = [Image.open(f).convert("RGB").resize((768, 512), Image.LANCZOS) for f in photos[: a.limit]]
            spent = {"exact": 0.0, "int8": 0.0}
            calls = {"exact": 0, "int8": 0}

            def timed(fn, key):
                def call(x):
                    t = time.perf_counter()
                    r = fn(x)
                    spent[key] += time.perf_counter() - t
                    calls[key] += 1
                    return r
                call.reach, call.layers = exact.reach, exact.layers
                return call

            variants = {"exact": timed(exact, "exact"), "int8": timed(fast, "int8")}
            times = {k: ([], [], []) for k in variants}
            for k, fn in variants.items():  # warm up
                use(k)
                pm.hyper = fn
                saicm.decompress(saicm.compress(images[0], model=a.model, quality=4, engine=a.engine), engine=a.engine)
            spent.update(exact=0.0, int8=0.0)
            calls.update(exact=0, int8=0)
            load_start = os.getloadavg()[0]
            for img in images:
                for k, fn in variants.items():
                    use(k)
                    pm.hyper = fn
                    te = td = float("inf")
                    for _ in range(a.repeats):
                        t = time.perf_counter()
                        data = saicm.compress(img, model=a.model, quality=4, engine=a.engine)
                        te = min(te, time.perf_counter() - t)
                        t = time.perf_counter()
                        saicm.decompress(data, engine=a.engine)
                        td = min(td, time.perf_counter() - t)
                    times[k][0].append(te)
                    times[k][1].append(td)
                    times[k][2].append(8 * len(data) / (768 * 512))
            out["timing"] = {k: {"encode_s": statistics.median(e), "decode_s": statistics.median(d),
                                 "bpp": statistics.mean(b), "hyper_ms_per_call": 1000 * spent[k] / calls[k]}
                             for k, (e, d, b) in times.items()}
            out["timing_setup"] = {"engine": a.engine, "images": len(images), "size": "768x512", "quality": 4,
                                   "repeats": a.repeats, "load_average": [load_start, os.getloadavg()[0]]}
            for k, v in out["timing"].items():
                print(f"{k}: encode {v['encode_s']:.3f} s, decode {v['decode_s']:.3f} s, "
                      f"hyper-synthesis {v['hyper_ms_per_call']:.1f} ms a call, {v['bpp']:.4f} bpp", file=sys.stderr)
        if a.rd:
            curves = {}
            for label in ("exact", "int8"):
                use(label)
                curves[label] = rd_curve(a.model, photos, range(1, pm.num_qualities + 1), label)
            out.update(bd_rate_vs_exact=bd_between(curves, "exact", "int8"), images=len(photos), curves=curves)
            print(f"BD-rate (PSNR) of the 8-bit route against the exact one: {out['bd_rate_vs_exact']:+.3f} %",
                  file=sys.stderr)
    finally:
        use("exact")
    emit(out, a.output)
    return 0


if __name__ == "__main__":
    sys.exit(main())
