"""How far a widened model's new channels came into use: per layer of the transforms and hyperprior, the RMS of
the weights through which the existing channels read the new ones (exact zeros when ``saicm train --init MODEL
--N WIDER`` starts) against the RMS of the existing channels' weights among themselves.

    python benchmarks/widened_weights.py runs/wide-n96/model.safetensors --narrow 64
"""

from __future__ import annotations

import argparse


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("model", help="the widened model (a weight file or shipped name)")
    ap.add_argument("--narrow", type=int, required=True, help="N of the model it was widened from")
    a = ap.parse_args()
    from torch import nn  # (after parsing: --help and a usage error need no PyTorch)

    from saicm.models.zoo import load_model

    net, info = load_model(a.model)
    wide = int(info.config["N"])
    if wide <= a.narrow:
        raise SystemExit(f"error: {a.model} has N = {wide}, not wider than --narrow {a.narrow}: it was not widened")
    print(f"{a.model}: N = {a.narrow} widened to {wide}")
    print("| layer | new → existing RMS | existing → existing RMS | ratio |\n|---|---|---|---|")
    for name, m in net.named_modules():
        if not name.startswith(("g_a", "g_s", "h_a", "h_s")) or not isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
            continue
        w = m.weight.detach()
        w = w.permute(1, 0, 2, 3) if isinstance(m, nn.ConvTranspose2d) else w  # (out, in, k, k)
        if w.shape[1] != wide:
            continue  # its inputs were not widened
        existing = a.narrow if w.shape[0] == wide else w.shape[0]
        new, old = (w[:existing, s].pow(2).mean().sqrt().item() for s in (slice(a.narrow, None), slice(0, a.narrow)))
        print(f"| {name} | {new:.2e} | {old:.2e} | {old / new:.0f} |")


if __name__ == "__main__":
    main()
