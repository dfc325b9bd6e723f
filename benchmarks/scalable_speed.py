"""Decode time of the human layer against a single-layer decode of the same image, side by side.

    python benchmarks/scalable_speed.py ../shared/data/photos/test/gcompris-farm__cat.png --threads 1 --repeats 5 [--engine compressai]

One image is coded once as a two-layer file (machine quality ``--quality``, human quality ``--human-quality``);
then, alternating (so that any load on the machine hits both alike), the machine layer alone (the base model's
single-layer decode) and the human layer (both layers: the base latent, the additional latent, fusion, human
synthesis) are decoded ``--repeats`` times each. Prints the best and median times and their ratio; ``-o`` JSON.
``--engine auto`` (default) codes both layers with the portable engine (format 3 + human layer version 2),
``compressai`` as saicm 0.4 did (format 1 + human layer version 1, PyTorch).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from saicm.commands.argtypes import existing  # noqa: E402


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("image", type=existing)
    p.add_argument("--model", default=None, help="scalable model (default: the recommended one)")
    p.add_argument("--quality", type=int, default=4)
    p.add_argument("--human-quality", type=int, default=4)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--engine", choices=("auto", "compressai"), default="auto")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("-o", "--output")
    a = p.parse_args(argv)

    import warnings

    warnings.filterwarnings("ignore")
    for var in ("SAICM_THREADS", "OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = str(a.threads)  # before NumPy, onnxruntime and PyTorch start their thread pools
    import saicm
    from saicm.models.catalog import RECOMMENDED_SCALABLE_MODEL

    if a.engine == "compressai":
        import torch

        torch.set_num_threads(a.threads)
    model = a.model or RECOMMENDED_SCALABLE_MODEL
    two = saicm.compress(a.image, model=model, quality=a.quality, human_quality=a.human_quality, engine=a.engine)
    machine = saicm.strip(two)
    saicm.decompress(machine), saicm.decompress(two)  # models loaded, warm
    times = {"machine": [], "human": []}
    for _ in range(a.repeats):
        for layer, data in (("machine", machine), ("human", two)):
            t = time.perf_counter()
            saicm.decompress(data)
            times[layer].append(time.perf_counter() - t)
    size = saicm.decompress(machine).size
    res = {"model": model, "image": Path(a.image).name, "size": list(size), "threads": a.threads, "engine": a.engine,
           "bytes": {"machine": len(machine), "both": len(two)},
           "best_s": {k: round(min(v), 3) for k, v in times.items()},
           "median_s": {k: round(statistics.median(v), 3) for k, v in times.items()},
           "saicm_version": saicm.__version__}
    res["ratio_best"] = round(res["best_s"]["human"] / res["best_s"]["machine"], 2)
    res["ratio_median"] = round(res["median_s"]["human"] / res["median_s"]["machine"], 2)
    print(json.dumps(res, indent=1))
    if a.output:
        Path(a.output).write_text(json.dumps(res, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
