"""How fast would an 8-bit exact hyper-synthesis run? onnxruntime's integer kernels on v5's h_s shapes (issue 20).

Times, for one 768×512 image (y grid 32×48), the two big layers of ``mse-hyperprior-n64-v5``'s hyper-synthesis:
the engine's exact float64 layers (:mod:`saicm.engine.hypernet`) against one 8-bit pass of onnxruntime's
``ConvInteger`` and of ``MatMulInteger`` (uint8 activations × int8 weights, int32 sums: exact on every CPU when the
weights have at most 7 bits), the latter after a NumPy im2col, which is timed too. Random operands of the right
shapes (only the time is measured). The probe of the rate such a network costs is
``benchmarks/hyper_precision_probe.py``.

    python benchmarks/int8_kernels.py --threads 2
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def _best_ms(fn, repeats: int) -> float:
    fn()
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return 1000 * best


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--repeats", type=int, default=20)
    a = p.parse_args(argv)
    os.environ["SAICM_THREADS"] = str(a.threads)
    import onnxruntime as ort

    from saicm.engine import hypernet as H
    from saicm.engine import onnx_proto as P
    from saicm.engine.model import load
    from saicm.models import catalog

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = a.threads
    opts.log_severity_level = 3
    rng = np.random.default_rng(0)

    def session(nodes, inputs, outputs, inits):
        return ort.InferenceSession(P.model(nodes, "g", inputs, outputs, inits, opset=13, ir_version=8,
                                            producer="saicm-bench"), opts, providers=["CPUExecutionProvider"])

    pm = load(catalog.resolve("mse-hyperprior-n64-v5"))
    layers = pm.hyper.layers
    rows = []
    # layer 2: deconv 5×5/2 128→192 on 16×24 (as the engine's sub-pixel form: conv 3×3 128→4·192, then depth-to-space)
    # layer 3: conv 3×3 192→256 on 32×48
    for label, layer, (cin, cout, h, w) in (("layer 2 (deconv 128→192, 16×24 → 32×48)", layers[1], (128, 768, 16, 24)),
                                            ("layer 3 (conv 3×3 192→256, 32×48)", layers[2], (192, 256, 32, 48))):
        x64 = rng.integers(0, 1 << 18, (layer.cin, h, w)).astype(np.int64)
        exact = _best_ms(lambda: (H._deconv if layer.transposed else H._conv)(x64, layer), a.repeats)
        wq = rng.integers(-63, 64, (cout, cin, 3, 3)).astype(np.int8)
        conv = session([P.node("ConvInteger", ["x", "w"], ["y"], "c", pads=[1] * 4, kernel_shape=[3, 3])],
                       [P.value_info("x", [1, cin, h, w], P.UINT8)], [P.value_info("y", [1, cout, h, w], P.INT32)],
                       [P.tensor("w", wq, P.INT8)])
        x8 = rng.integers(0, 256, (1, cin, h, w)).astype(np.uint8)
        conv_ms = _best_ms(lambda: conv.run(None, {"x": x8}), a.repeats)
        mm = session([P.node("MatMulInteger", ["x", "w"], ["y"], "m")],
                     [P.value_info("x", [h * w, 9 * cin], P.UINT8)], [P.value_info("y", [h * w, cout], P.INT32)],
                     [P.tensor("w", wq.reshape(cout, -1).T.copy(), P.INT8)])

        def im2col():
            xp = np.pad(x8[0], ((0, 0), (1, 1), (1, 1)))
            win = np.lib.stride_tricks.sliding_window_view(xp, (3, 3), axis=(1, 2))  # (cin, h, w, 3, 3)
            return np.ascontiguousarray(win.transpose(1, 2, 0, 3, 4).reshape(h * w, 9 * cin))

        cols = im2col()
        col_ms = _best_ms(im2col, a.repeats)
        mm_ms = _best_ms(lambda: mm.run(None, {"x": cols}), a.repeats)
        rows.append((label, exact, conv_ms, col_ms, mm_ms))
    whole = _best_ms(lambda: pm.hyper(rng.integers(-3, 4, (64, 8, 12)).astype(np.int64) << H.FRAC), a.repeats)
    print(f"{a.threads} thread(s), best of {a.repeats}, ms; onnxruntime {ort.__version__}\n")
    print("| layer | exact float64 (engine) | ConvInteger, one 8-bit pass | im2col (NumPy) | MatMulInteger, one pass |")
    print("|---|---|---|---|---|")
    for label, e, c, i, m in rows:
        print(f"| {label} | {e:.2f} | {c:.2f} | {i:.2f} | {m:.2f} |")
    print(f"\nthe engine's whole exact hyper-synthesis: {whole:.2f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
