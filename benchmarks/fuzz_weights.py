"""Fuzz the stored configurations of weight files: each case edits one to three options of a tiny model's file
(hyperprior, context model, TCM) and builds the PyTorch model from it, as `--model PATH` would.

    python benchmarks/fuzz_weights.py --cases 1500 --seed 1 --address-space-gb 10

A case passes when the model is built (its weights fit) or refused with one ``ModelError`` line, and leaves
the process as it found it (grad mode on, no torch function mode pushed). Run under an
address-space limit (``--address-space-gb``), so that an allocation the budget misses fails instead of filling
the machine (without one, the miss found in saicm 0.15.1 grew to 22 GB before the kernel killed the process).
Prints the failures, the cases slower than 5 s and the peak resident memory; exit status 1 on any failure.
"""

from __future__ import annotations

import argparse
import json
import random
import resource
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

#: what an edited option is set to (besides random integers)
VALUES = [-1, 0, 1, 2, 3, 5, 7, 64, 200, 230, 10**6, 2**40, 0.5, -0.0, float("nan"), float("inf"), "x", None, True,
          [], [0], [-1] * 6, [2] * 6, [0] * 6, [10**6], {}, "64", [[1]], [1, 2, 3]]

#: the tiny models whose files are edited
TINY = {
    "gained-mean-scale-hyperprior": dict(N=16, M=24, lambdas=[0.003, 0.03]),
    "gained-context-hyperprior": dict(N=16, M=24, lambdas=[0.003, 0.03], groups=[8, 16]),
    "tcm": dict(N=8, M=20, num_slices=5, max_support_slices=5, depths=[1] * 6, head_dims=[4] * 6, window=4,
                hyper_depth=2, hyper_window=2, hyper_head_dim=4, atten_window=4, atten_head_dim=4,
                atten_inter_dim=8, cc_hidden=[16, 16], z_channels=8, lambdas=[0.05]),
}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--cases", type=int, default=1500)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--address-space-gb", type=float, default=10.0,
                   help="the process's address-space limit (RLIMIT_AS; default 10, 0: none)")
    a = p.parse_args(argv)
    if a.address_space_gb > 0:
        n = int(a.address_space_gb * 2**30)
        resource.setrlimit(resource.RLIMIT_AS, (n, n))
    import warnings

    warnings.filterwarnings("ignore")
    import torch
    from safetensors import safe_open
    from safetensors.numpy import load_file, save_file

    from saicm.errors import ModelError
    from saicm.models import build_architecture, save_model
    from saicm.models.zoo import instantiate, read_info

    torch.set_num_threads(1)
    tmp = Path(tempfile.mkdtemp(prefix="saicm-fuzz-weights-"))
    files = []
    for arch, config in TINY.items():
        torch.manual_seed(0)
        path = tmp / f"{arch}.safetensors"
        save_model(build_architecture(arch, **config), path)
        with safe_open(str(path), framework="np") as f:
            files.append((path, dict(f.metadata()), load_file(str(path))))
    rng = random.Random(a.seed)
    failures, slow, outcomes = [], [], {"built": 0, "refused": 0}
    t0 = time.time()
    for i in range(a.cases):
        path, meta, tensors = rng.choice(files)
        config = json.loads(meta["config"])
        keys = sorted(config)
        for _ in range(rng.randint(1, 3)):
            config[rng.choice(keys)] = rng.choice(VALUES) if rng.random() < 0.7 else rng.randint(-5, 300)
        case = tmp / f"case{i}.safetensors"
        save_file(tensors, str(case), metadata=dict(meta, config=json.dumps(config)))
        t = time.time()
        try:
            instantiate(read_info(case))
            outcomes["built"] += 1
        except ModelError as e:
            outcomes["refused"] += 1
            if "\n" in str(e):
                failures.append({"case": i, "config": config, "error": f"more than one line: {e}"})
        except Exception as e:  # noqa: BLE001 — exactly what the fuzzer looks for
            failures.append({"case": i, "config": config, "error": f"{type(e).__name__}: {e}"[:300]})
        if not torch.is_grad_enabled() or torch._C._len_torch_function_stack():
            failures.append({"case": i, "config": config, "error": "left grad mode off or a torch mode pushed"})
            torch.set_grad_enabled(True)
        if time.time() - t > 5:
            slow.append({"case": i, "seconds": round(time.time() - t, 1), "config": config})
        case.unlink()
    report = {"cases": a.cases, "seed": a.seed, "address_space_gb": a.address_space_gb, **outcomes,
              "failures": failures, "slower_than_5s": slow, "wall_s": round(time.time() - t0, 1),
              "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)}
    print(json.dumps(report, indent=1, default=str))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
