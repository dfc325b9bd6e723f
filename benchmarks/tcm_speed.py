"""LIC-TCM (the released SA-ICM / ICM-v1 configuration, 76.6 M parameters) on this CPU: import, encode, decode.

Random weights are written in the authors' released checkpoint layout (``state_dict`` entry, ``module.``
prefixes, empty coder tables), imported with ``saicm import-checkpoint`` (fp32), and one 768×512 image (``--size``) is coded
through the ``.saicm`` container. Every phase runs in a fresh process that reports its own wall time for the
coding call (model load and PyTorch start-up excluded, reported apart) and its peak resident memory
(``ru_maxrss``, whole process). ``--check`` also verifies that the decoded image equals the clamped forward
output (one thread) exactly; ``--pair`` imports a random ICM-v1 additional model (``ica``, m = 4) over the
machine model and codes a two-layer file (the human layer decoded from the real bitstream).

    python benchmarks/tcm_speed.py --image ../shared/data/photos/test/gcompris-farm__cat.png --work /tmp/tcm-bench [--check] [--pair]

Random weights: the rates (bpp) say nothing about the released models; times and memory do.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

from saicm.commands.argtypes import existing


def _rss_mib() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def _peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _image(path: str | None, size: str = "768x512"):
    from PIL import Image

    width, height = (int(v) for v in size.split("x"))
    if path is None:
        import numpy as np

        rng = np.random.default_rng(0)
        yy, xx = np.mgrid[0:height, 0:width]
        img = np.stack([xx * 255 / width, yy * 255 / height, (xx + yy) * 127 / (width + height)], -1)
        for _ in range(12):
            y0, x0 = rng.integers(0, height), rng.integers(0, width)
            img[y0: y0 + 64, x0: x0 + 96] = rng.integers(0, 256, 3)
        return Image.fromarray(img.astype("uint8"))
    img = Image.open(path).convert("RGB")
    scale = max(width / img.width, height / img.height)
    img = img.resize((max(width, round(img.width * scale)), max(height, round(img.height * scale))), Image.LANCZOS)
    left, top = (img.width - width) // 2, (img.height - height) // 2
    return img.crop((left, top, left + width, top + height))


def _released_file(path: Path, kind: str, seed: int) -> None:
    import torch

    from saicm.models.tcm import RELEASED, RELEASED_ICA, TCM

    torch.manual_seed(seed)
    model = TCM(**(RELEASED_ICA if kind == "ica" else RELEASED))
    torch.save({"epoch": 0, "state_dict": {"module." + k: v for k, v in model.state_dict().items()}}, path)


def phase(a: argparse.Namespace) -> dict:
    """One measurement in this (fresh) process."""
    import torch

    if a.threads:
        torch.set_num_threads(a.threads)
    import saicm

    t0 = time.perf_counter()
    out = {"phase": a.phase, "threads": torch.get_num_threads()}
    if a.phase == "import":
        from saicm.cli import main

        args = ["import-checkpoint", a.src, "--name", a.name, "--out", a.work, "--force"]
        if a.base:
            args += ["--arch", "tcm-ica", "--base", a.base]
        assert main(args) == 0
        out["seconds"] = time.perf_counter() - t0
    elif a.phase in ("encode", "decode", "check"):
        from saicm.models.zoo import load_model  # the cached model compress/decompress use (saicm.load_model: a copy)

        net, info = load_model(a.model)
        out["load_seconds"] = time.perf_counter() - t0
        out["rss_after_load_mib"] = _rss_mib()
        img = _image(a.image, a.size)
        stream = Path(a.stream)
        if a.phase == "encode":
            t = time.perf_counter()
            data = saicm.compress(img, model=a.model)
            out["seconds"] = time.perf_counter() - t
            stream.write_bytes(data)
            d = saicm.describe(data)
            out.update(bytes=len(data), bpp=d["bpp"], layers={k: v["bytes"] for k, v in d.get("layers", {}).items()})
        elif a.phase == "decode":
            t = time.perf_counter()
            dec = saicm.decompress(stream.read_bytes(), model=a.model, layer=a.layer)
            out["seconds"] = time.perf_counter() - t
            out["size"] = dec.size
            out["layer"] = a.layer
        else:  # decoded pixels == clamped forward on one thread, for the same (padded) input
            import numpy as np

            from saicm.codec.pipeline import prepare
            from saicm.models.determinism import single_thread_kernels

            dec = np.asarray(saicm.decompress(stream.read_bytes(), model=a.model))
            _, x, _, _ = prepare(img, net.multiple, None, getattr(net, "min_size", 0))
            t = time.perf_counter()
            with torch.no_grad(), single_thread_kernels():
                ref = net(x)["x_hat"].clamp(0, 1)
            out["forward_seconds"] = time.perf_counter() - t
            px = ref[0, :, : img.height, : img.width].mul(255).round().byte().permute(1, 2, 0).numpy()
            out["decode_equals_forward"] = bool(np.array_equal(dec, px))
            out["max_abs_diff"] = int(np.abs(dec.astype(int) - px).max())
    out["peak_rss_mib"] = _peak_mib()
    return out


def run(args: list[str]) -> dict:
    r = subprocess.run([sys.executable, __file__, *args], capture_output=True, text=True)
    if r.returncode:
        raise SystemExit(f"phase {args} failed:\n{r.stderr[-3000:]}")
    return json.loads(r.stdout.strip().splitlines()[-1])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--image", type=existing, help="image to crop/scale to 768x512 (default: a synthetic one)")
    p.add_argument("--size", default="768x512", help="WIDTHxHEIGHT of the coded image (default 768x512)")
    p.add_argument("--work", default="/tmp/tcm-bench", help="folder for the checkpoints, models and streams")
    p.add_argument("--threads", type=int, default=0, help="torch threads of the coding processes (default: torch's)")
    p.add_argument("--check", action="store_true", help="also check decode == clamped forward (one thread)")
    p.add_argument("--pair", action="store_true", help="also the ICM-v1 pair: random ica over the machine model")
    p.add_argument("--phase", help=argparse.SUPPRESS)
    p.add_argument("--model", help=argparse.SUPPRESS)
    p.add_argument("--stream", help=argparse.SUPPRESS)
    p.add_argument("--src", help=argparse.SUPPRESS)
    p.add_argument("--name", help=argparse.SUPPRESS)
    p.add_argument("--base", help=argparse.SUPPRESS)
    p.add_argument("--layer", default="auto", help=argparse.SUPPRESS)
    a = p.parse_args()
    if a.phase:
        print(json.dumps(phase(a)))
        return
    work = Path(a.work)
    work.mkdir(parents=True, exist_ok=True)
    common = ["--work", str(work), "--size", a.size] + (["--image", a.image] if a.image else []) + \
        (["--threads", str(a.threads)] if a.threads else [])
    rows = []
    src = work / "icm_random.pth.tar"
    if not src.exists():
        _released_file(src, "tcm", seed=0)
    model = work / "tcm-random.safetensors"
    rows.append(run(["--phase", "import", "--src", str(src), "--name", "tcm-random", *common]))
    stream = work / "tcm.saicm"
    rows.append(run(["--phase", "encode", "--model", str(model), "--stream", str(stream), *common]))
    rows.append(run(["--phase", "decode", "--model", str(model), "--stream", str(stream), *common]))
    if a.check:
        rows.append(run(["--phase", "check", "--model", str(model), "--stream", str(stream), *common]))
    if a.pair:
        ica = work / "ica_random.pth.tar"
        if not ica.exists():
            _released_file(ica, "ica", seed=1)
        pair = work / "tcm-random-pair.safetensors"
        rows.append(run(["--phase", "import", "--src", str(ica), "--name", "tcm-random-pair", "--base", str(model),
                         *common]))
        two = work / "pair.saicm"
        rows.append(run(["--phase", "encode", "--model", str(pair), "--stream", str(two), *common]))
        rows.append(run(["--phase", "decode", "--model", str(pair), "--stream", str(two), *common]))
    print(f"LIC-TCM released configuration, random weights, {a.size} image ({a.image or 'synthetic'}); "
          f"{os.cpu_count()} CPUs")
    for r in rows:
        extra = {k: v for k, v in r.items() if k not in ("phase", "seconds", "peak_rss_mib", "threads")}
        secs = r.get("seconds", r.get("forward_seconds", float("nan")))
        print(f"  {r['phase']:<7} {secs:7.1f} s  peak RSS {r['peak_rss_mib'] / 1024:5.2f} GiB  "
              f"threads {r['threads']}  {json.dumps(extra)}")


if __name__ == "__main__":
    main()
