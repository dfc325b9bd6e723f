"""Context models of several sizes for speed measurements only: v5's transforms and hyperprior with contexts of
each (hidden, channel kernel) and random context weights (so their rate means nothing).

    python benchmarks/context_size_models.py OUT_DIR [--sizes 96x5,96x3,64x5,64x3,48x5,48x3]
    python benchmarks/codec_speed.py ../shared/data/photos/test --threads 2 --limit 8 --repeats 3 \
        --models mse-hyperprior-n64-v5@onnx,OUT_DIR/ctx-h96-k5.safetensors@onnx,OUT_DIR/ctx-h48-k3.safetensors@onnx
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def main(argv=None) -> int:
    import torch

    from saicm.models import build_architecture, load_model, save_model

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("out")
    p.add_argument("--sizes", default="96x5,96x3,64x5,64x3,48x5,48x3", help="HIDDENxKERNEL, comma-separated")
    a = p.parse_args(argv)
    src, info = load_model("mse-hyperprior-n64-v5")
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    for size in a.sizes.split(","):
        hidden, kernel = (int(v) for v in size.lower().split("x"))
        net = build_architecture("gained-context-hyperprior", **info.config, hidden=hidden, channel_kernel=kernel)
        net.load_state_dict(src.state_dict(), strict=False)
        with torch.no_grad():  # the aggregation ends at zero: random last layers make the contexts count
            for agg in net.aggregate:
                agg[-1].weight.normal_(0, 0.05)
        path = out / f"ctx-h{hidden}-k{kernel}.safetensors"
        save_model(net, path)
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
