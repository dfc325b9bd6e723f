"""The machine layer of a two-layer file is the base model's file, byte for byte: checked over a folder.

    python benchmarks/scalable_identity.py ../shared/data/coco128/images --model scalable-off02v5-m4-cond --limit 32

For every image and every machine rate point, ``saicm.compress`` with the scalable model (human quality drawn
per image) is stripped of its human layer and compared with ``saicm.compress`` of the base model alone. Equal
bytes mean equal decodes, so every task figure of the base model (detection AP, faces) holds for the machine
layer unchanged. Prints the count of identical files; exit status 1 if any differs.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from saicm.commands.argtypes import existing  # noqa: E402


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("folder", type=existing)
    p.add_argument("--model", default=None, help="scalable model (default: the recommended one)")
    p.add_argument("--limit", type=int, default=None, help="only the first N images (sorted by name)")
    p.add_argument("-o", "--output", help="JSON summary")
    a = p.parse_args(argv)

    import warnings

    warnings.filterwarnings("ignore")
    from tqdm import tqdm

    import saicm
    from saicm.codec.image_io import IMAGE_SUFFIXES
    from saicm.models.zoo import RECOMMENDED_SCALABLE_MODEL

    model = a.model or RECOMMENDED_SCALABLE_MODEL
    net, info = saicm.load_model(model)
    base = net.base_info.name
    files = sorted(f for f in Path(a.folder).iterdir() if f.suffix.lower() in IMAGE_SUFFIXES)[: a.limit]
    rng = random.Random(0)
    same = differ = 0
    first_diff = None
    for f in tqdm(files, unit="image"):
        for q in range(1, net.base_num_qualities + 1):
            two = saicm.compress(f, model=model, quality=q, human_quality=rng.randint(1, net.num_qualities))
            if saicm.strip(two) == saicm.compress(f, model=base, quality=q):
                same += 1
            else:
                differ += 1
                first_diff = first_diff or f"{f.name} q{q}"
    summary = {"model": info.name, "base": base, "images": len(files), "files": same + differ,
               "identical": same, "different": differ, "first_difference": first_diff,
               "saicm_version": saicm.__version__}
    print(json.dumps(summary, indent=1))
    if a.output:
        Path(a.output).write_text(json.dumps(summary, indent=1) + "\n")
    return 1 if differ else 0


if __name__ == "__main__":
    sys.exit(main())
