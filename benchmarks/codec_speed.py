"""Encode and decode time of image models side by side (the context model against the hyperprior it came from,
the portable engine against PyTorch and CompressAI).

    python benchmarks/codec_speed.py ../shared/data/photos/test --models mse-hyperprior-n64-v5,runs/ctx/model.safetensors \
        [--size 768x512] [--limit 8] [--quality 4] [--threads 1] [--repeats 3]
    python benchmarks/codec_speed.py ../shared/data/photos/test --threads 2 \
        --models mse-hyperprior-n64-v5@onnx,mse-hyperprior-n64-v5@torch,mse-hyperprior-n64-v5@compressai,compressai:mbt2018_mean

``MODEL@ENGINE`` codes with that engine (``saicm compress --engine``; ``openvino``/``openvino-bf16`` need the
optional OpenVINO). ``compressai:mbt2018_mean`` is CompressAI's
own ``MeanScaleHyperprior`` (mbt2018-mean) with N=64, M=128, carrying the weights of ``mse-hyperprior-n64-v5``
(the same network without the gains; its ``compress``/``decompress`` on the image tensor, what a CompressAI user
runs: 768x512 needs no padding). Without the gains it codes at unit gain whatever ``--quality`` is, so its bpp
differs from v5's (e.g. 0.68 against 0.47 bpp at quality 4). Options, joined with ``+``, make it a fairer
opponent (a fairness audit, 2026-12-06): ``gain`` folds v5's gain and inverse gain of ``--quality`` into the last
analysis and first synthesis layers (the same rate and PSNR as v5: 0.4739 against 0.4752 bpp), ``cl`` runs the
network and its input in PyTorch's channels_last layout (one line; the same bits, faster convolutions on CPU), and
``bf16`` runs the analysis and synthesis under ``torch.autocast`` in bfloat16 (what ``--engine openvino-bf16``
does; fast only on CPUs with bfloat16 units), e.g. ``compressai:mbt2018_mean+gain+cl``.

Each image is resized to ``--size`` (Lanczos) and coded through the ``.saicm`` API in this process (models loaded
once, untimed); per model and image the best of ``--repeats`` encodes and decodes is kept, and the table gives the
median over the images, the mean bpp (real file sizes) and each model's time relative to the first model's.
Models alternate image by image, so a change in machine load hits all of them alike; the load is printed.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from saicm.commands.argtypes import existing  # noqa: E402


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("folder", type=existing)
    p.add_argument("--models", required=True, help="comma-separated model names or weight files")
    p.add_argument("--size", default="768x512")
    p.add_argument("--limit", type=int, default=8)
    p.add_argument("--quality", type=int, default=4)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--repeats", type=int, default=3)
    a = p.parse_args(argv)
    import torch
    from PIL import Image

    from saicm.codec.image_io import is_image_file

    torch.set_num_threads(a.threads)
    os.environ["SAICM_THREADS"] = str(a.threads)  # the engine's onnxruntime sessions
    w, h = (int(v) for v in a.size.lower().split("x"))
    paths = sorted(f for f in Path(a.folder).iterdir() if is_image_file(f))[: a.limit]
    images = [Image.open(f).convert("RGB").resize((w, h), Image.LANCZOS) for f in paths]
    models = a.models.split(",")
    coders = {m: _coder(m, a.quality) for m in models}
    for m in models:  # load and warm up
        coders[m][1](coders[m][0](images[0]))
    enc = {m: [] for m in models}
    dec = {m: [] for m in models}
    bpp = {m: [] for m in models}
    load = os.getloadavg()[0]
    for img in images:
        for m in models:
            te = td = float("inf")
            for _ in range(a.repeats):
                t = time.perf_counter()
                data = coders[m][0](img)
                te = min(te, time.perf_counter() - t)
                t = time.perf_counter()
                coders[m][1](data)
                td = min(td, time.perf_counter() - t)
            enc[m].append(te)
            dec[m].append(td)
            bpp[m].append(8 * len(data) / (w * h))
    print(f"{len(images)} images at {w}x{h}, quality {a.quality}, {a.threads} thread(s), best of {a.repeats}; "
          f"load average {load:.2f} at the start, {os.getloadavg()[0]:.2f} at the end on {os.cpu_count()} CPUs")
    print("| model | bpp | encode s (median) | decode s (median) | encode × | decode × |")
    print("|---|---|---|---|---|---|")
    e0, d0 = statistics.median(enc[models[0]]), statistics.median(dec[models[0]])
    for m in models:
        e, d = statistics.median(enc[m]), statistics.median(dec[m])
        print(f"| {m} | {statistics.mean(bpp[m]):.4f} | {e:.3f} | {d:.3f} | {e / e0:.2f} | {d / d0:.2f} |")
    return 0


def _coder(spec: str, quality: int):
    """(encode image → bytes, decode bytes → anything) of a ``--models`` entry."""
    import saicm
    from saicm.engine import PORTABLE_ENGINES

    if spec.startswith("compressai:mbt2018_mean"):
        opts = set(spec[len("compressai:mbt2018_mean"):].split("+")) - {""}
        if opts - {"gain", "cl", "bf16"}:
            raise SystemExit(f"codec_speed.py: error: unknown options {sorted(opts - {'gain', 'cl', 'bf16'})} in {spec}")
        return _compressai_mbt2018_mean(quality, opts)
    model, _, engine = spec.partition("@")
    engine = engine or "auto"
    dec_engine = engine if engine in PORTABLE_ENGINES else "auto"
    return (lambda img: saicm.compress(img, model=model, quality=quality, engine=engine),
            lambda data: saicm.decompress(data, model=model, engine=dec_engine))


def _compressai_mbt2018_mean(quality: int, opts: frozenset | set = frozenset()):
    """CompressAI's MeanScaleHyperprior (N=64, M=128) with v5's weights. CompressAI has no gains, so it codes v5's
    latent at unit gain whatever ``quality`` is, unless ``gain`` folds them in; ``cl``: channels_last; ``bf16``:
    the analysis and synthesis under autocast (see the module doc)."""
    import io
    import struct

    import numpy as np
    import torch
    from compressai.models import MeanScaleHyperprior

    from saicm.models.zoo import load_model

    v5, _ = load_model("mse-hyperprior-n64-v5")
    net = MeanScaleHyperprior(N=64, M=128)
    net.load_state_dict({k: v for k, v in v5.state_dict().items() if k in net.state_dict()}, strict=True)
    net.eval()
    if "gain" in opts:  # y·g from the analysis, ŷ/g into the synthesis: v5's rate point, in the weights
        with torch.no_grad():
            g, ig = v5.log_gain[quality - 1].exp(), v5.log_inv_gain[quality - 1].exp()
            net.g_a[-1].weight.mul_(g[:, None, None, None])
            net.g_a[-1].bias.mul_(g)
            net.g_s[0].weight.mul_(ig[:, None, None, None])
    layout = torch.channels_last if "cl" in opts else torch.contiguous_format
    net = net.to(memory_format=layout)
    if "bf16" in opts:
        class Autocast(torch.nn.Module):
            def __init__(self, m):
                super().__init__()
                self.m = m

            def forward(self, x):
                with torch.autocast("cpu", dtype=torch.bfloat16):
                    return self.m(x).float()

        net.g_a, net.g_s = Autocast(net.g_a), Autocast(net.g_s)

    def enc(img):
        x = torch.from_numpy(np.asarray(img)).permute(2, 0, 1)[None].float().div(255).contiguous(memory_format=layout)
        with torch.inference_mode():
            out = net.compress(x)
        buf = io.BytesIO()
        buf.write(struct.pack(">HH", *out["shape"]))
        for s in out["strings"]:
            buf.write(struct.pack(">I", len(s[0])) + s[0])
        return buf.getvalue()

    def dec(data):
        h, w = struct.unpack(">HH", data[:4])
        pos, strings = 4, []
        for _ in range(2):
            (n,) = struct.unpack(">I", data[pos: pos + 4])
            strings.append([data[pos + 4: pos + 4 + n]])
            pos += 4 + n
        with torch.inference_mode():
            return net.decompress(strings, (h, w))["x_hat"]

    return enc, dec


if __name__ == "__main__":
    sys.exit(main())
