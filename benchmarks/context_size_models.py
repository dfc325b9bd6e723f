"""Context models of several sizes for speed measurements only: v5's transforms and hyperprior with contexts of
each (hidden, channel kernel[, channel groups, checkerboard]) and random context weights (so their rate means nothing).

    python benchmarks/context_size_models.py OUT_DIR [--sizes 96x5,96x3,64x5,64x3,48x5,48x3]
    python benchmarks/context_size_models.py OUT_DIR --sizes 48x3:g32-96,48x3:g16-16-32-64:nocb

A size is HIDDENxKERNEL, optionally followed by ``:gA-B-...`` (the channel groups, default M/8, M/8, M/4, M/2) and
``:nocb`` (one pass per group, no checkerboard).
    python benchmarks/codec_speed.py ../shared/data/photos/test --threads 2 --limit 8 --repeats 3 \
        --models mse-hyperprior-n64-v5@onnx,OUT_DIR/ctx-h96-k5.safetensors@onnx,OUT_DIR/ctx-h48-k3.safetensors@onnx
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("out")
    p.add_argument("--sizes", default="96x5,96x3,64x5,64x3,48x5,48x3",
                   help="HIDDENxKERNEL[:gA-B-...][:nocb], comma-separated")
    a = p.parse_args(argv)
    import torch  # (after parsing: --help and a usage error need no PyTorch and CompressAI, ~6 s to import)

    from saicm.models import build_architecture, load_model, save_model

    src, info = load_model("mse-hyperprior-n64-v5")
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    for size in a.sizes.split(","):
        head, *extra = size.lower().split(":")
        hidden, kernel = (int(v) for v in head.split("x"))
        layout, name = {}, f"ctx-h{hidden}-k{kernel}"
        for e in extra:
            if e == "nocb":
                layout["checkerboard"] = False
            elif e.startswith("g"):
                layout["groups"] = [int(v) for v in e[1:].split("-")]
            else:
                p.error(f"unknown layout {e!r} in {size!r}")
            name += f"-{e}"
        net = build_architecture("gained-context-hyperprior", **info.config, hidden=hidden, channel_kernel=kernel,
                                 **layout)
        net.load_state_dict(src.state_dict(), strict=False)
        with torch.no_grad():  # the aggregation ends at zero: random last layers make the contexts count
            for agg in net.aggregate:
                agg[-1].weight.normal_(0, 0.05)
        path = out / f"{name}.safetensors"
        save_model(net, path)
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
