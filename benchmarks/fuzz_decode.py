"""Fuzz the decoders: mutated files, each decoded in a child process with time and memory limits.

    python benchmarks/fuzz_decode.py --cases 10000 --workers 2 -o fuzz-report.json
    python benchmarks/fuzz_decode.py --cases 400 --engine openvino-bf16    # another engine's transforms

Seed files are written at start with the shipped models (single-layer files
of several kinds: RGB, noise, grayscale, alpha, in the portable format 3 and in
CompressAI's format 1, of the default model and of ``mse-hyperprior-n64-v5``, a plain
hyperprior; two-layer files when a
scalable model is shipped, else with a tiny scalable model written to a
temporary folder), a tiny context model's files in formats 3 and 1, the two-layer files of a tiny scalable model
whose additional codec has contexts, and the tiny clip network of the test suite
(``tests/reference/*.saicmv``). Each case mutates a seed (``saicm.codec.fuzz``:
fields of the header, shapes, strings, alpha, human layer, a clip's
configuration, quantisation steps and symbols, raw bytes; CRCs fixed
or not) and runs ``describe``, ``strip`` and ``decompress`` (a random layer;
``saicm.video.decode`` for a clip)
in a child forked from this process, which is then killed if it runs longer
than ``--time-limit`` or grows beyond ``--mem-limit`` of resident memory.

Outcomes: ``ok`` (decoded), ``error`` (the project's one-line ``SaicmError``),
and the failures: ``crash`` (killed by a signal), ``hang`` (time limit),
``memory`` (memory limit), ``exception`` (any other exception, or an error
message of more than one line). Failing inputs are written to ``--save``
for the regression corpus (tests/corpus/). Exit status 1 if any failure.
"""

from __future__ import annotations

import argparse
import atexit
import json
import os
import random
import select
import shutil
import signal
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


#: the shipped plain (no context) hyperprior whose files are seeds beside the default model's
PLAIN = "mse-hyperprior-n64-v5"


def make_seeds(tmp: Path) -> list[dict]:
    """Valid files to mutate: (bytes, the model to pass, a name)."""
    import numpy as np
    import torch

    import saicm
    from saicm.models import build_architecture, save_model
    from saicm.models.zoo import full_checksum, shipped_models

    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:96, 0:128]
    smooth = np.stack([xx * 2, yy * 2, (xx + yy)], -1).astype(np.uint8)
    noise = rng.integers(0, 256, (64, 80, 3), dtype=np.uint8)
    gray = smooth[:, :, 0]
    rgba = np.dstack([smooth[:40, :50], rng.integers(0, 256, (40, 50), dtype=np.uint8)])
    seeds = []
    # the default model's files (a context model since 0.37.0) and a plain hyperprior's (PLAIN: the default before)
    for model, tag in ((None, ""), (PLAIN, "hyperprior-")):
        for q, (name, img) in enumerate([("smooth", smooth), ("noise", noise), ("gray", gray), ("rgba", rgba)]):
            seeds.append({"name": f"v3-{tag}{name}", "data": saicm.compress(img, model=model, quality=1 + 2 * q),
                          "model": None})
        for q, (name, img) in enumerate([("smooth", smooth), ("noise", noise)]):  # CompressAI's coder (format 1)
            seeds.append({"name": f"v1-{tag}{name}", "model": None,
                          "data": saicm.compress(img, model=model, quality=1 + 2 * q, engine="compressai")})
    scal = [n for n, i in shipped_models().items() if i.architecture == "scalable-fusion"]
    if scal:  # human layer version 2 (the portable engine) and version 1 (CompressAI's coder)
        for engine, name in (("auto", "two-layer"), ("compressai", "two-layer-v1")):
            seeds.append({"name": name, "model": None, "data": saicm.compress(
                smooth, model=scal[0], quality=2, human_quality=2, engine=engine)})
    # a tiny scalable model over a tiny base, beside each other: the stand-in for a shipped one, and always the
    # base of a human layer whose additional codec has contexts (`saicm train --base … --context-*`)
    torch.manual_seed(0)
    base = build_architecture("gained-mean-scale-hyperprior", N=16, M=24, lambdas=[0.002, 0.01, 0.05])
    save_model(base, tmp / "tinybase.safetensors")
    scal_opts = dict(base="tinybase", base_sha256=full_checksum(tmp / "tinybase.safetensors").hex(), N=16,
                     slice_channels=8, m=2, lambdas=[0.003, 0.03], condition="base", model_dir=str(tmp))
    if not scal:
        save_model(build_architecture("scalable-fusion", **scal_opts), tmp / "tinyscal.safetensors")
        seeds.append({"name": "two-layer-tiny", "model": str(tmp / "tinyscal.safetensors"),
                      "data": saicm.compress(smooth, model=tmp / "tinyscal.safetensors", quality=2, human_quality=1)})
    # a tiny context model (contexts switched on): format 3 (the engine's multi-pass strings) and format 1
    torch.manual_seed(1)
    ctx = build_architecture("gained-context-hyperprior", N=16, M=24, lambdas=[0.003, 0.03], groups=[8, 16])
    with torch.no_grad():
        for agg in ctx.aggregate:
            agg[-1].weight.normal_(0, 0.05)
    save_model(ctx, tmp / "tinyctx.safetensors")
    for engine, name in (("auto", "v3-context"), ("compressai", "v1-context")):
        seeds.append({"name": name, "model": str(tmp / "tinyctx.safetensors"),
                      "data": saicm.compress(smooth, model=tmp / "tinyctx.safetensors", quality=2, engine=engine)})
    # the human layer of a tiny scalable model whose additional codec has contexts (two groups, checkerboard),
    # in the engine's layer (version 2) and CompressAI's (version 1)
    torch.manual_seed(2)
    net = build_architecture("scalable-fusion", context={"groups": [8, 8], "hidden": 8, "channel_kernel": 3}, **scal_opts)
    with torch.no_grad():
        for agg in net.add.aggregate:
            agg[-1].weight.normal_(0, 0.05)
    save_model(net, tmp / "tinyscalctx.safetensors")
    for engine, name in (("auto", "two-layer-context"), ("compressai", "two-layer-context-v1")):
        seeds.append({"name": name, "model": str(tmp / "tinyscalctx.safetensors"), "data": saicm.compress(
            smooth, model=tmp / "tinyscalctx.safetensors", quality=2, human_quality=2, engine=engine)})
    # clips' networks (.saicmv): the 8-frame reference files of the test suite (a tiny NeRV, a tiny HNeRV)
    ref = Path(__file__).resolve().parents[1] / "tests" / "reference"
    # (one entry, so that the cases which draw an image seed stay those of earlier reports; a video case then
    # draws which of the two)
    seeds.append({"name": "video-tiny", "data": (ref / "shapes-64x48-8f-tiny.saicmv").read_bytes(), "model": None,
                  "video": True, "or": {"name": "video-tiny-hnerv", "model": None, "video": True,
                                        "data": (ref / "shapes-64x48-8f-tiny-hnerv.saicmv").read_bytes()}})
    return seeds


#: the engine ``decompress`` is given (``--engine``): the transforms of portable files; formats 1 and 2 ignore it,
#: and human layers of version 1 refuse any engine but auto / compressai (a clean error)
ENGINE = "auto"


def read_all(data: bytes, model=None, layer: str = "auto", max_pixels: int | None = None, engine: str = "auto",
             video: bool = False, decode: bool = True, on_error=None) -> list:
    """What a stranger's file goes through: ``describe`` and ``strip`` (their ``SaicmError`` passed to
    ``on_error``, else ignored), then, if ``decode``, ``decompress`` (``saicm.video.decode`` for a clip, what
    `saicm video decode` runs). Returns the decoded size; the decode's ``SaicmError`` is raised. Shared by this
    fuzzer's children and ``fuzz_atheris.py``."""
    from saicm.codec.pipeline import decompress, describe
    from saicm.codec.scalable import strip
    from saicm.errors import SaicmError

    for reader in (describe, strip):
        try:
            reader(data)
        except SaicmError as e:
            if on_error is not None:
                on_error(e)
    if not decode:
        return []
    if video:
        from saicm.video.api import decode as decode_video

        return list(decode_video(data, max_pixels=max_pixels, threads=1).frames.shape)
    return list(decompress(data, model=model, layer=layer, max_pixels=max_pixels, engine=engine).size)


def child(data: bytes, model, layer: str, max_pixels: int | None, out_fd: int, video: bool = False) -> None:
    """Runs in the forked child: every reader of the file, then one line of JSON on ``out_fd``."""
    import traceback

    import torch

    torch.set_num_threads(1)  # the parent's OpenMP pool does not survive fork
    from saicm.errors import SaicmError

    try:
        res = {"outcome": "ok", "size": read_all(data, model, layer, max_pixels, ENGINE, video)}
    except SaicmError as e:
        msg = str(e)
        res = {"outcome": "error" if "\n" not in msg else "exception", "message": msg[:300]}
    except BaseException as e:  # noqa: BLE001 — exactly what the fuzzer looks for
        res = {"outcome": "exception", "message": f"{type(e).__name__}: {e}"[:300],
               "traceback": traceback.format_exc()[-1500:]}
    os.write(out_fd, (json.dumps(res) + "\n").encode())
    os._exit(0)


def rss_kb(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def run_case(data, model, layer, max_pixels, time_limit, mem_limit_kb, video=False) -> dict:
    r, w = os.pipe()
    t0 = time.perf_counter()
    pid = os.fork()
    if pid == 0:
        os.close(r)
        try:
            child(data, model, layer, max_pixels, w, video)
        finally:
            os._exit(3)
    os.close(w)
    out = b""
    killed = None
    peak = 0
    status = rusage = None
    while True:
        ready, _, _ = select.select([r], [], [], 0.05)
        if ready:
            chunk = os.read(r, 1 << 16)
            out += chunk
        done, status, rusage = os.wait4(pid, os.WNOHANG)
        if done:
            break
        peak = max(peak, rss_kb(pid))
        if peak > mem_limit_kb:
            killed = "memory"
        elif time.perf_counter() - t0 > time_limit:
            killed = "hang"
        if killed:
            os.kill(pid, signal.SIGKILL)
            _, status, rusage = os.wait4(pid, 0)
            break
    while True:
        chunk = os.read(r, 1 << 16)
        if not chunk:
            break
        out += chunk
    os.close(r)
    seconds = time.perf_counter() - t0
    peak = max(peak, rusage.ru_maxrss if rusage else 0)
    if killed:
        return {"outcome": killed, "seconds": seconds, "peak_rss_kb": peak}
    if os.WIFSIGNALED(status):
        return {"outcome": "crash", "signal": os.WTERMSIG(status), "seconds": seconds, "peak_rss_kb": peak}
    try:
        res = json.loads(out.decode().splitlines()[-1])
    except (ValueError, IndexError):
        res = {"outcome": "exception", "message": f"child exited {os.WEXITSTATUS(status)} without a result"}
    res.update(seconds=seconds, peak_rss_kb=peak)
    return res


FAILURES = ("crash", "hang", "memory", "exception")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--cases", type=int, default=10000)
    p.add_argument("--seed", type=int, default=0, help="random seed of the mutations (default 0)")
    p.add_argument("--workers", type=int, default=1, help="cases run at once (default 1)")
    p.add_argument("--time-limit", type=float, default=10.0, help="seconds a case may take (default 10)")
    p.add_argument("--mem-limit", type=float, default=2.0, help="GB of resident memory a case may use (default 2)")
    p.add_argument("--max-pixels", type=int, default=None,
                   help="the decoders' pixel limit, passed to them as a user would (default: none passed, so "
                   "saicm's defaults apply, format 1's tighter one included)")
    p.add_argument("--only", help="comma-separated case numbers: re-run these cases of --seed (e.g. the slowest)")
    p.add_argument("-o", "--output", help="JSON report")
    p.add_argument("--save", help="folder for failing inputs")
    p.add_argument("--engine", default="auto", help="decode with this engine (saicm decompress --engine; default auto)")
    p.add_argument("--quiet", action="store_true", help="no progress bar; with -o, one summary line on stdout "
                   "instead of the report")
    a = p.parse_args(argv)
    global ENGINE
    ENGINE = a.engine

    import warnings

    warnings.filterwarnings("ignore")
    from saicm.codec.fuzz import mutate
    from saicm.codec.limits import resolve_max_pixels
    from saicm.codec.pipeline import decompress
    from saicm.errors import SaicmError

    max_pixels = resolve_max_pixels(a.max_pixels)
    tmp = Path(tempfile.mkdtemp(prefix="saicm-fuzz-"))
    # the seed models go with the run (every run left 3.4 MB in /tmp; cases end by os._exit: no atexit there)
    atexit.register(shutil.rmtree, tmp, ignore_errors=True)
    seeds = make_seeds(tmp)
    from saicm.video.api import decode as decode_video

    for s in seeds:  # warm up: models loaded once, before forking
        if s.get("video"):
            decode_video(s["data"], threads=1)
        else:
            try:
                decompress(s["data"], model=s["model"], engine=ENGINE)
            except SaicmError:  # a seed this engine does not decode (human layer version 1)
                pass
    counts, kinds, by_seed = Counter(), Counter(), Counter()
    failures, slowest, peak = [], [], 0
    over = Counter()  # cases slower than 1, 5, 10 s
    t_start = time.perf_counter()
    from tqdm import tqdm

    cases = [int(c) for c in a.only.split(",")] if a.only else list(range(a.cases))
    bar = tqdm(total=len(cases), disable=a.quiet, unit="case")

    def one(i: int):
        crng = random.Random(f"{a.seed}-{i}")
        seed = crng.choice(seeds)
        if "or" in seed and crng.random() < 0.5:
            seed = seed["or"]
        data, what = mutate(seed["data"], crng)
        layer = crng.choice(("auto", "auto", "machine", "human"))
        res = run_case(data, seed["model"], layer, a.max_pixels, a.time_limit, int(a.mem_limit * 1024 * 1024),
                       seed.get("video", False))
        res.update(case=i, seed=seed["name"], mutation=what, layer=layer, bytes=len(data))
        return res, data

    if a.workers > 1:
        from concurrent.futures import ThreadPoolExecutor

        pool = ThreadPoolExecutor(a.workers)  # threads only wait on their forked children
        results = pool.map(one, cases)
    else:
        results = map(one, cases)
    for res, data in results:
        counts[res["outcome"]] += 1
        kinds[res["mutation"].split("+")[0]] += 1
        by_seed[res["seed"]] += 1
        peak = max(peak, res["peak_rss_kb"])
        slowest = sorted(slowest + [(res["seconds"], res["case"], res["outcome"])], reverse=True)[:10]
        over.update(f"over_{t}s" for t in (1, 5, 10) if res["seconds"] > t)
        if res["outcome"] in FAILURES:
            failures.append({k: v for k, v in res.items() if k != "traceback"} | {"traceback": res.get("traceback")})
            if a.save:
                Path(a.save).mkdir(parents=True, exist_ok=True)
                ext = ".saicmv" if data[:5] == b"SAICV" else ".saicm"
                (Path(a.save) / f"case{res['case']}-{res['outcome']}{ext}").write_bytes(data)
            if not a.quiet:
                tqdm.write(f"case {res['case']} {res['outcome']}: {res.get('message', '')} ({res['mutation']})")
        bar.update(1)
        bar.set_postfix({k: counts[k] for k in ("ok", "error", *FAILURES) if counts[k]})
    bar.close()
    wall = time.perf_counter() - t_start
    report = {"cases": len(cases), "seed": a.seed, "workers": a.workers, "time_limit_s": a.time_limit,
              "mem_limit_gb": a.mem_limit, "max_pixels": max_pixels, "wall_s": round(wall, 1),
              "outcomes": dict(counts), "mutations": dict(kinds), "seeds": dict(by_seed),
              "peak_rss_mb": round(peak / 1024, 1), "slow_cases": dict(over),
              "slowest": [{"seconds": round(s, 2), "case": c, "outcome": o} for s, c, o in slowest],
              "failures": failures}
    if a.output:
        Path(a.output).write_text(json.dumps(report, indent=1))
    if a.quiet and a.output:  # (the report is in the file: one line, not the report again)
        print(f"{len(cases)} cases: " + ", ".join(f"{n} {k}" for k, n in sorted(counts.items()) if n)
              + f"; report: {a.output}")
    else:
        print(json.dumps({k: v for k, v in report.items() if k != "failures"}, indent=1))
    return 1 if any(counts[k] for k in FAILURES) else 0


if __name__ == "__main__":
    sys.exit(main())
