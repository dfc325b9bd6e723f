"""Decode time of the human layer against a single-layer decode of the same image, side by side.

    python benchmarks/scalable_speed.py ../shared/data/photos/test/kodim01.png --threads 1 --repeats 5

One image is coded once as a two-layer file (machine quality ``--quality``, human quality ``--human-quality``);
then, alternating (so that any load on the machine hits both alike), the machine layer alone (the base model's
single-layer decode) and the human layer (both layers: the base latent, the additional latent, fusion, human
synthesis) are decoded ``--repeats`` times each. Prints the best and median times and their ratio; ``-o`` JSON.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("image")
    p.add_argument("--model", default=None, help="scalable model (default: the recommended one)")
    p.add_argument("--quality", type=int, default=4)
    p.add_argument("--human-quality", type=int, default=4)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("-o", "--output")
    a = p.parse_args(argv)

    import warnings

    warnings.filterwarnings("ignore")
    import torch

    torch.set_num_threads(a.threads)
    import saicm
    from saicm.models.zoo import RECOMMENDED_SCALABLE_MODEL

    model = a.model or RECOMMENDED_SCALABLE_MODEL
    two = saicm.compress(a.image, model=model, quality=a.quality, human_quality=a.human_quality)
    machine = saicm.strip(two)
    saicm.decompress(machine), saicm.decompress(two)  # models loaded, warm
    times = {"machine": [], "human": []}
    for _ in range(a.repeats):
        for layer, data in (("machine", machine), ("human", two)):
            t = time.perf_counter()
            saicm.decompress(data)
            times[layer].append(time.perf_counter() - t)
    size = saicm.decompress(machine).size
    res = {"model": model, "image": Path(a.image).name, "size": list(size), "threads": a.threads,
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
