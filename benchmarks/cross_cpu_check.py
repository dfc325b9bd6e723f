"""Files across CPUs: write and decode ``.saicm`` files on one CPU (or under an emulated one), then compare.

    python benchmarks/cross_cpu_check.py cpu
    python benchmarks/cross_cpu_check.py encode IMAGE... --out DIR [--spec MODEL@Q[:HQ] ...] [--engine onnx]
    python benchmarks/cross_cpu_check.py decode FILE_OR_DIR... --out DIR [--engine onnx] [--model NAME=PATH ...]
    python benchmarks/cross_cpu_check.py compare DIR_A DIR_B

``cpu`` prints what NumPy, its OpenBLAS, onnxruntime and (with ``--torch``) PyTorch detect of the CPU they run on.
``encode`` writes one file per image and spec (``mse-hyperprior-n64-v5@4``; ``scalable-off02v6-m4-cond@4:5`` is a
two-layer file: machine quality 4, human quality 5; ``--engine compressai`` writes format 1) and ``DIR/encode.json``
(each file's SHA-256). ``decode`` reads files (``.saicm`` and ``.saicmv`` in a folder too) and writes into ``DIR``,
per file: for format 3, the integer latents (machine layer, then the human layer's, in units of 2**-FRAC, ``.npy``)
and whether coding them again with this CPU's tables gives the file's strings byte for byte; the decoded pixels
(``.png``; both layers of a two-layer file; a clip's frames stacked); ``decode.json`` with their SHA-256. Files of
formats 1 and 2 (PyTorch, float tables) give pixels only; a ``.saicmv`` clip (PyTorch) its frames, and whether its
weights re-encode to its symbols. ``--model NAME=PATH`` decodes files naming model NAME with the weights at PATH
(``ctx-v5-s2c=checkpoints/ctx-v5-s2c.safetensors``). ``--small-strips`` (both) takes the paths of images over
4 megapixels (y in strips, tiled analysis and synthesis) from tiny sizes on. ``compare`` matches two ``decode``
folders by file content and two ``encode`` folders by file name: latents identical, the largest pixel difference
and the share of differing pixel values, identical bytes; it exits 1 if a latent differs, a re-encode does not
give the file's strings, a file failed to decode on one side only, or a pixel differs by more than 1.

Under emulation, e.g. a CPU without AVX (qemu-user 7.2)::

    OMP_NUM_THREADS=1 SAICM_THREADS=1 qemu-x86_64 -cpu Nehalem .venv/bin/python benchmarks/cross_cpu_check.py \\
        decode tests/corpus/v3-valid-64x64-v5-q1.saicm tests/reference --out /tmp/nehalem \\
        --model ctx-v5-s2c=checkpoints/ctx-v5-s2c.safetensors
    OMP_NUM_THREADS=1 SAICM_THREADS=1 .venv/bin/python benchmarks/cross_cpu_check.py decode ... --out /tmp/native
    python benchmarks/cross_cpu_check.py compare /tmp/native /tmp/nehalem
"""

from __future__ import annotations

import argparse
import hashlib
import json
import platform
import sys
import time
from pathlib import Path

import numpy as np


def cpu_report(torch: bool = False) -> dict:
    """What the libraries detect of this CPU (an emulator's model, under qemu)."""
    out: dict = {"machine": platform.machine(), "python": sys.version.split()[0]}
    try:
        from numpy.core._multiarray_umath import __cpu_features__ as feats
    except ImportError:  # NumPy 2
        from numpy._core._multiarray_umath import __cpu_features__ as feats
    out["numpy"] = {"version": np.__version__, "features": sorted(k for k, v in feats.items() if v)}
    try:
        import threadpoolctl

        np.dot(np.ones((4, 4)), np.ones((4, 4)))
        out["blas"] = [{k: i.get(k) for k in ("internal_api", "version", "architecture")}
                       for i in threadpoolctl.threadpool_info()]
    except ImportError:
        pass
    import onnxruntime as ort

    out["onnxruntime"] = {"version": ort.__version__, "device": ort.get_device()}
    from importlib.metadata import version

    import constriction  # noqa: F401  (imports: its wheel runs on this CPU)

    out["constriction"] = version("constriction")
    if torch:
        import torch as t

        out["torch"] = {"version": t.__version__, "capability": t.backends.cpu.get_cpu_capability()}
    return out


def small_strips() -> None:
    """Strips and tiles from tiny sizes on (as ``tests/test_tiling.py``'s fixture): tiny images take the paths of
    images over 4 megapixels (y in strips of one latent row, tiled analysis and synthesis), cheap under an emulator."""
    from saicm.codec import tiling

    tiling.STRIP_SYMBOLS, tiling.STRIP_TARGET, tiling.TILE = 1000, 24 * 8 * 2, 64
    tiling.SYNTH_ROWS, tiling.SYNTH_COLS = 3, 5


def _sha(b: bytes) -> str:
    return hashlib.sha256(b).hexdigest()


def _write_json(path: Path, obj) -> None:
    path.write_text(json.dumps(obj, indent=1, sort_keys=True) + "\n")


def encode(images: list[Path], specs: list[str], out: Path, engine: str) -> int:
    import saicm

    out.mkdir(parents=True, exist_ok=True)
    files = {}
    for img in images:
        for spec in specs:
            model, _, q = spec.partition("@")
            q, _, hq = q.partition(":")
            kw = {"human_quality": int(hq)} if hq else {}
            t = time.perf_counter()
            data = saicm.compress(str(img), model=model, quality=int(q), engine=engine, **kw)
            name = f"{img.stem}__{model}-q{q}" + (f"-h{hq}" if hq else "") + ".saicm"
            (out / name).write_bytes(data)
            files[name] = {"sha256": _sha(data), "bytes": len(data), "seconds": round(time.perf_counter() - t, 2)}
            print(f"{name}: {len(data)} bytes, {files[name]['seconds']} s", flush=True)
    _write_json(out / "encode.json", {"cpu": cpu_report(), "engine": engine, "files": files})
    return 0


class NotPortable(ValueError):
    """A file of format 1 or 2 (float tables, PyTorch and CompressAI's coder): pixels only."""


def _latents(data: bytes, models: dict[str, str]) -> tuple[np.ndarray, bool, np.ndarray | None, bool]:
    """The integer latents of a format-3 file (machine layer; human layer or None), and whether each, coded
    again with this CPU's tables, gives the file's strings byte for byte."""
    from saicm.codec import container
    from saicm.engine import hypernet
    from saicm.engine.codec import open_portable
    from saicm.engine.scalable import load_scalable
    from saicm.models.catalog import resolve

    def again(pm, strings, z_shape, rows, offset=None):
        n, (h, w) = pm.N, z_shape
        z_sym = pm.z_tables.decode(strings[0], pm._z_tables_index((n, h, w)).reshape(-1)).reshape(n, h, w)
        units = pm.decode_units(strings, z_shape, rows, offset)
        y = np.ldexp(units.astype(np.float64), -hypernet.FRAC)
        return units, pm.encode(y, z_sym + pm.medians[:, None, None], rows, offset) == strings

    machine, human = container.split_layers(data)
    stream = container.unpack(machine)
    if stream.header.version != container.PORTABLE_VERSION:
        raise NotPortable(f"format {stream.header.version}, not the portable format {container.PORTABLE_VERSION}")
    h = stream.header
    units, same = again(open_portable(stream, models.get(h.model)), stream.strings, h.shapes[0], h.strip_rows)
    if human is None:
        return units, same, None, True
    layer = container.unpack_human(human)
    ps = load_scalable(resolve(models.get(layer.model, layer.model)))
    hunits, hsame = again(ps.add, layer.strings, layer.shapes[0], layer.strip_rows, ps._offset(units, h.quality))
    return units, same, hunits, hsame


def _video(data: bytes, key: str, out: Path) -> dict:
    """A ``.saicmv`` clip (NeRV, PyTorch): its frames stacked in one PNG, whether its weights re-encode to the
    file's symbols (integers), and the SHA-256 of those symbols in place of latents."""
    from PIL import Image

    from saicm.video import api, bitstream, compress

    frames = api.decode(data).frames
    png = out / f"{key}-frames.png"
    Image.fromarray(frames.reshape(-1, *frames.shape[2:])).save(png)
    h, model = api.network(data)
    symbols = bitstream.unpack(data).symbols
    return {"latents_sha256": _sha(symbols), "reencoded_equal": compress.encode_symbols(
        compress.quantise(model, h.bits), h.bits) == symbols,
        "pixels": {"frames": {"png": png.name, "sha256": _sha(frames.tobytes())}}}


def decode(paths: list[Path], out: Path, engine: str, models: dict[str, str]) -> int:
    import saicm
    from saicm.codec import container

    out.mkdir(parents=True, exist_ok=True)
    files = []
    for p in paths:
        if p.is_dir():
            files += sorted(p.glob("*.saicm")) + sorted(p.glob("*.saicmv"))
        else:
            files.append(p)
    rows = {}
    for f in files:
        data = f.read_bytes()
        key = _sha(data)[:16]
        if key in rows:  # the same bytes under another name (such as the same encode on two CPUs): decoded once
            rows[key].setdefault("also", []).append(str(f))
            continue
        row: dict = {"file": str(f), "sha256": _sha(data)}
        t = time.perf_counter()
        if f.suffix == ".saicmv":
            row.update(_video(data, key, out), seconds=round(time.perf_counter() - t, 2))
            rows[key] = row
            print(f"{f.name}: weights re-encoded equal {row['reencoded_equal']}, {row['seconds']} s", flush=True)
            continue
        try:
            units, same, hunits, hsame = _latents(data, models)
        except NotPortable as e:  # formats 1 and 2: their pixels (with PyTorch), no latents
            png = out / f"{key}-auto.png"
            img = saicm.decompress(data)
            img.save(png)
            row.update(latents_sha256=None, reencoded_equal=None, note=str(e),
                       seconds=round(time.perf_counter() - t, 2),
                       pixels={"auto": {"png": png.name, "sha256": _sha(np.asarray(img).tobytes())}})
            rows[key] = row
            print(f"{f.name}: {e}: pixels only, {row['seconds']} s", flush=True)
            continue
        except Exception as e:  # a format-1 file, a damaged one, or a model missing here
            row["error"] = f"{type(e).__name__}: {e}"
            rows[key] = row
            print(f"{f.name}: {row['error']}", flush=True)
            continue
        digest = hashlib.sha256(units.tobytes())
        np.save(out / f"{key}-latents.npy", units)
        if hunits is not None:
            digest.update(hunits.tobytes())
            np.save(out / f"{key}-latents-human.npy", hunits)
        row.update(latents_sha256=digest.hexdigest(), reencoded_equal=bool(same and hsame))
        header = container.unpack(container.split_layers(data)[0]).header
        model = models.get(header.model)
        layers = ["machine", "human"] if hunits is not None else ["auto"]
        row["pixels"] = {}
        for layer in layers:
            img = saicm.decompress(data, model=model if layer != "human" else None, layer=layer, engine=engine)
            png = out / f"{key}-{layer}.png"
            img.save(png)
            row["pixels"][layer] = {"png": png.name, "sha256": _sha(np.asarray(img).tobytes())}
        row["seconds"] = round(time.perf_counter() - t, 2)
        rows[key] = row
        print(f"{f.name}: latents {row['latents_sha256'][:16]} re-encoded equal {row['reencoded_equal']}, "
              f"{row['seconds']} s", flush=True)
    _write_json(out / "decode.json", {"cpu": cpu_report(), "engine": engine, "files": rows})
    return 0


def _pixels(folder: Path, name: str) -> np.ndarray:
    from PIL import Image

    return np.asarray(Image.open(folder / name)).astype(np.int16)


def compare(a: Path, b: Path) -> int:
    bad = 0
    if (a / "encode.json").exists() and (b / "encode.json").exists():
        ea, eb = (json.loads((d / "encode.json").read_text())["files"] for d in (a, b))
        same = [n for n in ea if n in eb and ea[n]["sha256"] == eb[n]["sha256"]]
        print(f"encode: {len(same)} / {len(set(ea) & set(eb))} files byte-identical")
        for n in sorted(set(ea) & set(eb)):
            if ea[n]["sha256"] != eb[n]["sha256"]:
                print(f"  differs: {n} ({ea[n]['bytes']} vs {eb[n]['bytes']} bytes)")
    if not ((a / "decode.json").exists() and (b / "decode.json").exists()):
        return bad
    da, db = (json.loads((d / "decode.json").read_text())["files"] for d in (a, b))
    total = diff = 0
    worst = 0
    for key in sorted(set(da) & set(db), key=lambda k: Path(da[k]["file"]).name):
        ra, rb = da[key], db[key]
        name = Path(ra["file"]).name
        if "error" in ra or "error" in rb:
            both = "error" in ra and "error" in rb
            bad += not both
            print(f"{name}: {'both failed' if both else 'FAILED ON ONE SIDE'}: {ra.get('error')} | {rb.get('error')}")
            continue
        lat = ra["latents_sha256"] == rb["latents_sha256"]
        msg = [f"latents {'identical' if lat else 'DIFFER'}" if ra["latents_sha256"] else ra.get("note", "no latents"),
               f"re-encoded equal {ra['reencoded_equal']}/{rb['reencoded_equal']}"]
        if not lat:
            bad += 1
            ua, ub = np.load(a / f"{key}-latents.npy"), np.load(b / f"{key}-latents.npy")
            if ua.shape == ub.shape:
                msg.append(f"{int((ua != ub).sum())} of {ua.size} machine latents differ")
        bad += ra["reencoded_equal"] is False or rb["reencoded_equal"] is False
        for layer, pa in ra["pixels"].items():
            x, y = _pixels(a, pa["png"]), _pixels(b, rb["pixels"][layer]["png"])
            d = int(np.abs(x - y).max()) if x.shape == y.shape else -1
            n = int((x != y).sum()) if x.shape == y.shape else x.size
            total, diff, worst = total + x.size, diff + n, max(worst, d if d >= 0 else 999)
            bad += d > 1 or d < 0
            msg.append(f"{layer} pixels max |diff| {d}, {n} of {x.size} differ")
        print(f"{name}: " + "; ".join(msg))
    print(f"files compared: {len(set(da) & set(db))}; pixel values differing: {diff} of {total} "
          f"({100 * diff / max(total, 1):.4f} %), largest difference {worst}")
    only = set(da) ^ set(db)
    if only:
        print(f"decoded on one side only: {sorted(Path((da.get(k) or db[k])['file']).name for k in only)}")
    return 1 if bad else 0


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    from saicm.commands.argtypes import existing

    c = sub.add_parser("cpu")
    c.add_argument("--torch", action="store_true")
    e = sub.add_parser("encode")
    e.add_argument("images", nargs="+", type=existing)
    e.add_argument("--out", type=Path, required=True)
    e.add_argument("--spec", action="append", help="MODEL@Q or MODEL@Q:HQ (repeatable)")
    e.add_argument("--engine", default="onnx")
    d = sub.add_parser("decode")
    d.add_argument("files", nargs="+", type=existing)
    d.add_argument("--out", type=Path, required=True)
    d.add_argument("--engine", default="onnx")
    d.add_argument("--model", action="append", default=[], help="NAME=PATH (repeatable)")
    m = sub.add_parser("compare")
    m.add_argument("a", type=existing)
    m.add_argument("b", type=existing)
    for s in (e, d):
        s.add_argument("--small-strips", action="store_true",
                       help="code and decode tiny images in strips and tiles, as images over 4 megapixels")
    a = p.parse_args(argv)
    if getattr(a, "small_strips", False):
        small_strips()
    if a.cmd == "cpu":
        print(json.dumps(cpu_report(a.torch), indent=1))
        return 0
    if a.cmd == "encode":
        return encode([Path(i) for i in a.images], a.spec or ["mse-hyperprior-n64-v5@4"], a.out, a.engine)
    if a.cmd == "decode":
        return decode([Path(f) for f in a.files], a.out, a.engine, dict(s.split("=", 1) for s in a.model))
    return compare(Path(a.a), Path(a.b))


if __name__ == "__main__":
    sys.exit(main())
