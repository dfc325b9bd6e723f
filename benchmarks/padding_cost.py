"""What the bounded rANS decoder's padding costs in decode time: an A/B on one image.

    python benchmarks/padding_cost.py ../shared/data/photos/test/faceapi__sample1.jpg --threads 1 --repeats 5

Decodes one version-1 file (``--model``, default ``mse-hyperprior-n64-v5``, coded by CompressAI's coder, the only one
the padding is for: the portable engine's format 3, what ``saicm compress`` writes, has no such padding, and this
benchmark measured nothing on it since 0.4.0; ``--quality``) with saicm's padding (``saicm.entropy.bounded.padded``:
50·n + 22·D + 64 words after a string of D words decoding n symbols) and, for the measurement only, with a
64-word padding that does NOT bound the reads of a crafted file (safe here: the file is valid). Alternating,
best of ``--repeats``. Prints both times, the difference and the padding's size for the y string.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from saicm.commands.argtypes import existing  # noqa: E402


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("image", type=existing)
    p.add_argument("--model", default="mse-hyperprior-n64-v5",
                   help="a single-layer model of one y string (mean-scale hyperprior; default %(default)s)")
    p.add_argument("--quality", type=int, default=4)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--repeats", type=int, default=5)
    a = p.parse_args(argv)

    import warnings

    warnings.filterwarnings("ignore")
    import torch

    torch.set_num_threads(a.threads)
    import saicm
    from saicm.entropy import bounded

    data = saicm.compress(a.image, model=a.model, quality=a.quality, engine="compressai")  # version 1
    if saicm.describe(data)["format_version"] != 1:  # (larger images are version 2, in strips)
        raise SystemExit("padding_cost.py: the file is not version 1: the padding is not used")
    safe = bounded.padded

    def short(string: bytes, n_symbols: int) -> bytes:  # measurement only: not a bound
        return string + b"\0" * ((-len(string)) % 4) + bounded.PAD_WORD * 64

    saicm.decompress(data, engine="compressai")
    best = {"padded": float("inf"), "short": float("inf")}
    try:
        for _ in range(a.repeats):
            for name, fn in (("padded", safe), ("short", short)):
                bounded.padded = fn
                t = time.perf_counter()
                saicm.decompress(data, engine="compressai")
                best[name] = min(best[name], time.perf_counter() - t)
    finally:
        bounded.padded = safe
    h = saicm.describe(data)
    lh, lw = h["latent_shapes"][0]
    n = 16 * lh * lw * 128  # y symbols: M = 128 channels at 4x the hyper-latent's size
    res = {"image": Path(a.image).name, "size": [h["width"], h["height"]], "threads": a.threads,
           "decode_padded_s": round(best["padded"], 3), "decode_short_s": round(best["short"], 3),
           "cost": f"{100 * (best['padded'] / best['short'] - 1):.1f} %", "saicm_version": saicm.__version__}
    res["y_padding_mb"] = round(4 * bounded.WORDS_PER_SYMBOL * n / 1e6, 1)
    print(json.dumps(res, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
