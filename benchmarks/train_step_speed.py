"""Time one training step of a model as `saicm train` runs it, uncompiled and with `--compile`.

The defaults are the project's CPU training recipe (``--batch 8 --patch 256 --amp bf16 --quant ste``), not
``saicm train``'s own defaults (batch 16 of 128², fp32, noise). On a CPU without bf16 units (no ``amx_bf16`` or
``avx512_bf16`` in /proc/cpuinfo) bf16 is emulated and much slower: time ``--amp off`` there.

A step is the trainer's own (:class:`saicm.train.trainer.TrainStep`: forward, rate-distortion loss,
auxiliary loss; backward; Adam) on a fixed batch of random crops, one quality drawn per sample,
under the same autocast as ``--amp``. Prints the first step (which compiles) and the median of the
timed steps after ``--warmup`` more.

    python benchmarks/train_step_speed.py --model mse-context-n64-v5 --threads 1 --amp bf16
"""

from __future__ import annotations

import argparse
import copy
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="mse-hyperprior-n64-v5", help="shipped model name or weight file")
    p.add_argument("--threads", type=int, default=1, help="PyTorch threads (default 1)")
    p.add_argument("--batch", type=int, default=8, help="crops per step (default 8; saicm train: 16)")
    p.add_argument("--patch", type=int, default=256, help="crop side in pixels (default 256; saicm train: 128)")
    p.add_argument("--amp", choices=["off", "bf16"], default="bf16", help="autocast (default bf16; saicm train: off)")
    p.add_argument("--quant", choices=["noise", "ste"], default="ste",
                   help="latent quantisation in training (default ste; saicm train: noise)")
    p.add_argument("--warmup", type=int, default=2, help="untimed steps after the first (default 2)")
    p.add_argument("--steps", type=int, default=9, help="timed steps (default 9)")
    p.add_argument("--modes", default="eager,compile", help="comma-separated: eager, compile (default both)")
    a = p.parse_args(argv)

    import torch
    from torch._inductor import config as inductor_config

    from saicm.models.zoo import load_model
    from saicm.train.trainer import TrainStep

    torch.set_num_threads(a.threads)
    for mode in a.modes.split(","):
        torch.manual_seed(0)
        net = copy.deepcopy(load_model(a.model)[0]).requires_grad_(True).train()
        net = net.to(memory_format=torch.channels_last)
        step = TrainStep(net, "mse", 0.0, a.quant)
        runner = torch.compile(step) if mode == "compile" else step
        opt = torch.optim.Adam([q for n, q in net.named_parameters() if not n.endswith(".quantiles")], lr=1e-5)
        x = torch.rand(a.batch, 3, a.patch, a.patch).contiguous(memory_format=torch.channels_last)
        mask = torch.ones(a.batch, 1, a.patch, a.patch)

        def one():
            q = torch.randint(0, net.num_qualities, (a.batch,))
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=a.amp == "bf16"):
                parts = runner(x, mask, q)
            opt.zero_grad(set_to_none=True)
            (parts["loss"] + parts["aux"]).backward()
            opt.step()

        with inductor_config.patch(fallback_random=True):  # as the trainer compiles
            t0 = time.perf_counter()
            one()
            first = time.perf_counter() - t0
            for _ in range(a.warmup):
                one()
            times = []
            for _ in range(a.steps):
                t0 = time.perf_counter()
                one()
                times.append(time.perf_counter() - t0)
        print(f"{a.model} {mode}: first step {first:.1f} s, median of {a.steps} steps {statistics.median(times):.3f} s "
              f"(batch {a.batch} of {a.patch}², amp {a.amp}, {a.threads} thread(s))", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
