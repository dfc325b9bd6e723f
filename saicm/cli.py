"""The ``saicm`` command. One thin function per subcommand; the work lives in the modules."""

from __future__ import annotations

import argparse
import os
import sys

from ._fs import EXISTING, text_stream
# the process settings a command changes and puts back, its streams' checks and its out-of-memory line
from ._process import (
    StdoutError, _checked_stdout_off, _checked_stdout_on, _discard_messages_if_stderr_closed, _discard_stdout,
    _escape_names_on_output, _line_buffered_stdout_if_stderr_shares_it, _out_of_memory, _process_settings_off,
    _process_settings_on,
)
from .commands.argtypes import QUIET_HELP, nonneg, positive, whole
from .engine import ENGINES, PORTABLE_ENGINES
from .errors import SaicmError, bytes_text, printable


def _summary_stream(dst, log: str | None, folder: bool):
    """Where a ``compress`` or ``decompress`` job prints its summary: standard error when standard output carries
    its data, the coded file (``-o /dev/stdout``) or the JSON lines of ``--log /dev/stdout`` (which a ``| jq``
    reads: the summary line after them was not JSON)."""
    if log is not None and text_stream(log) is sys.stderr:
        return sys.stderr
    return sys.stdout if folder else text_stream(dst)


def cmd_compress(a: argparse.Namespace) -> int:
    from functools import partial

    from .codec import batch
    from .codec.image_io import is_image_file, refuse_media_output
    from .models.catalog import resolve

    from .codec.pipeline import check_options

    # fail fast, once, on an unknown model, a quality it does not have, a bad --refine or --quality with --max-bytes
    info = resolve(a.model)
    quality, human_quality = check_options(info, a.quality, a.human_quality, a.refine, a.max_bytes)
    jobs, folder = batch.plan(a.input, a.output, is_image_file, ".saicm", existing=a.existing)
    if not folder:
        refuse_media_output(jobs[0].dst, "the coded file")
    for job in jobs:
        if a.existing == "skip":  # an existing output counts as done if it fits the budget and was coded by this
            # model at this quality, each layer's (with --max-bytes, any machine quality); the log says what it is
            from .codec.pipeline import existing_file

            job.existing = partial(existing_file, max_bytes=a.max_bytes, model=info.name, quality=quality,
                                   human_quality=human_quality, model_named=a.model is not None)
        if a.max_bytes is not None:  # (each log line says the limit its file was held to)
            job.log = {"max_bytes": a.max_bytes}
    # One file with --refine, or a large one, is long work of its own: show its steps (folders show a bar per file;
    # a 48 MP photo's 90 s went by in silence)
    step_bar = not folder and not a.quiet
    fn = partial(_compress_job, model=a.model, quality=a.quality, refine=a.refine, progress=step_bar,
                 human_quality=a.human_quality, max_pixels=a.max_pixels, engine=a.engine, max_bytes=a.max_bytes)
    with batch.job_log(a.log) as log:
        outcomes = batch.run(fn, jobs, a.jobs, "compress", not a.quiet, errors=sys.stderr, log=log)
    out = _summary_stream(jobs[0].dst, a.log, folder)
    if not folder and outcomes[0].info is not None and not outcomes[0].skipped:
        i = outcomes[0].info
        print(f"{printable(jobs[0].dst)}: {i['bytes']} bytes, {i['bpp']:.4f} bpp ({i['model']} q{i['quality']}, "
              f"{i['seconds']:.2f} s)", file=out)
        if "layers" in i:
            m, h = i["layers"]["machine"], i["layers"]["human"]
            print(f"  machine layer {m['bytes']} bytes ({m['model']} q{m['quality']}), human layer {h['bytes']} bytes "
                  f"({h['model']} q{h['quality']})", file=out)
    return batch.report(outcomes, folder, "compressed", out)


def _compress_job(job, model, quality, refine=0, progress=False, human_quality=None, max_pixels=None,
                  engine="auto", max_bytes=None):
    from .codec.pipeline import compress_file

    return compress_file(job.src, job.dst, model=model, quality=quality, refine=refine, progress=progress,
                         human_quality=human_quality, max_pixels=max_pixels, engine=engine, max_bytes=max_bytes)


def _decompress_job(job, model, layer="auto", max_pixels=None, engine="auto", progress=False):
    from .codec.pipeline import decompress_file

    return decompress_file(job.src, job.dst, model=model, layer=layer, max_pixels=max_pixels, engine=engine,
                           progress=progress)


def cmd_decompress(a: argparse.Namespace) -> int:
    from functools import partial

    from .codec import batch, container
    from .codec.image_io import OUTPUT_FORMATS, output_format

    suffix = "." + (a.format or "png")
    if os.path.isfile(a.input):  # what is wrong with the input first (photo.png's own output would be photo.png)
        container.check_coded_file(a.input)
    jobs, folder = batch.plan(a.input, a.output, lambda p: p.is_file() and p.suffix.lower() == ".saicm", suffix,
                              keep_existing=True, existing=a.existing)
    if not folder:  # an output suffix Pillow cannot write: a usage error, before the job
        fmt = output_format(jobs[0].dst)
        if a.format and fmt != OUTPUT_FORMATS[suffix]:  # (-o x.png --format bmp wrote a PNG, unsaid)
            from .errors import warn

            warn(f"--format {a.format} not used: -o names the file, written as {fmt} by its name "
                 f"({printable(jobs[0].dst)})")
    with batch.job_log(a.log) as log:
        outcomes = batch.run(partial(_decompress_job, model=a.model, layer=a.layer, max_pixels=a.max_pixels,
                                     engine=a.engine, progress=not folder and not a.quiet), jobs, a.jobs,
                             "decompress", not a.quiet, errors=sys.stderr, log=log)
    out = _summary_stream(jobs[0].dst, a.log, folder)
    if not folder and outcomes[0].info is not None and not outcomes[0].skipped:
        i = outcomes[0].info
        layer = f", {i['layer']} layer" if i.get("layer") else ""
        print(f"{printable(jobs[0].dst)}: {i['width']}x{i['height']}{layer} ({i['seconds']:.2f} s)",
              file=out)
    return batch.report(outcomes, folder, "decompressed", out)


def cmd_info(a: argparse.Namespace) -> int:
    """One file: its description (text or one JSON object). Several (``saicm info *.saicm``, or a folder: its
    ``.saicm``, ``.saicmv`` and ``.seg`` files, recursively): a block each, headed by its path, then a line of totals (the
    bytes, and of two-layer files each layer's), or with ``--json`` one JSON object per line (JSON Lines, each with its
    ``path``); a file that cannot be read is said on stderr and the others are still described (status: the worst
    file's)."""
    if len(a.file) == 1 and not os.path.isdir(a.file[0]):
        _info_one(a.file[0], a.json, None)
        return 0
    code, shown = 0, []
    for path in _info_files(a.file):
        try:
            # (a blank line between two blocks: not before the first one shown, nor twice where a file failed)
            shown.append(_info_one(path, a.json, path, separate=bool(shown) and not a.json))
        except StdoutError:  # (not one file's fault: said once, not once per file)
            raise
        except SaicmError as e:
            print(f"saicm: error: {printable(e)}", file=sys.stderr)
            code = max(code, e.exit_code)
    if len(shown) > 1 and not a.json:
        print()
        print(_info_totals(shown))
    return code


#: what ``saicm info FOLDER`` describes: coded files and human-layer segments (``saicm strip --human-segment``'s)
INFO_SUFFIXES = (".saicm", ".saicmv", ".seg")


def _info_files(args: list[str]):
    """The files ``saicm info`` describes: each argument, a folder as its :data:`INFO_SUFFIXES` files (recursively,
    sorted, hidden names left out: the one rule of folder inputs); a folder holding none, or one that cannot be read,
    is an error of its own (yielded as a :class:`SaicmError`, said in its turn)."""
    from ._fs import input_files

    for arg in args:
        if not os.path.isdir(arg):
            yield arg
            continue
        unreadable: list = []  # (os.walk's errors: said after the files found; they were dropped)
        found = [*input_files(arg, lambda p: p.suffix.lower() in INFO_SUFFIXES and p.is_file(), unreadable.append),
                 *unreadable]
        if not found:
            found = [SaicmError("a folder holding no .saicm, .saicmv or .seg file", arg)]
        for f in found:  # (a subfolder that could not be read: an OSError)
            yield SaicmError(f"cannot read folder ({f.strerror or f})", str(f.filename)) if isinstance(f, OSError) \
                else f if isinstance(f, SaicmError) else str(f)


def _info_totals(described: list[dict]) -> str:
    """``total  N files, B bytes (two-layer files: K, machine layers M bytes, human layers H bytes; human-layer
    segments: S, G bytes)``."""
    total = sum(int(d.get("file_bytes", d.get("bytes", 0)) or 0) for d in described)
    line = f"{'total':24s} {len(described):,} files, {total:,} bytes"
    parts = []
    two = [d["layers"] for d in described if isinstance(d.get("layers"), dict)]
    if two:
        machine = sum(int(t.get("machine", {}).get("bytes", 0)) for t in two)
        human = sum(int(t.get("human", {}).get("bytes", 0)) for t in two)
        parts.append(f"two-layer files: {len(two):,}, machine layers {machine:,} bytes, human layers {human:,} bytes")
    segments = [d for d in described if d.get("file_type") == "saicm-human-segment"]
    if segments:
        parts.append(f"human-layer segments: {len(segments):,}, {sum(int(d['file_bytes']) for d in segments):,} bytes")
    return line + (f" ({'; '.join(parts)})" if parts else "")


def _info_one(path: str, as_json: bool, header: str | None, separate: bool = False) -> int:
    """``saicm info`` of one file; ``header``: its path, printed first (a line of text, or the JSON line's
    ``path``) when several files are described; ``separate``: a blank line first (once the file is read). Returns
    what it showed."""
    import json

    if isinstance(path, SaicmError):  # (what _info_files found wrong with a folder)
        raise path

    from .codec.pipeline import describe
    from .models.catalog import SUFFIX

    def show(d: dict, text) -> None:
        if separate:
            print()
        if as_json:
            print(json.dumps(d, indent=2) if header is None else json.dumps({"path": header, **d}))
            return
        if header is not None:
            print(printable(f"{'path':24s} {header}"))
        text(d)

    if str(path).lower().endswith(SUFFIX):  # a model file: what it is and how it was trained
        from .models.catalog import model_file_row

        def model_text(row: dict) -> None:
            for k in ("name", "architecture", "config", "description", "default_quality", "bytes", "sha256"):
                print(printable(f"{k:24s} {row[k]}"))
            print(printable(f"{'qualities':24s} {_qualities_text(row['qualities'])}"))
            for k, v in row["training"].items():
                if k == "sessions" and isinstance(v, list):  # one line each (the run's, and one per resume)
                    for i, session in enumerate(v[:MAX_LISTED_SESSIONS]):  # (a stranger's file may hold millions)
                        print(printable(f"{f'training.sessions[{i}]':24s} {_session_text(session)}"))
                    if len(v) > MAX_LISTED_SESSIONS:
                        print(f"{'training.sessions':24s} … ({len(v)} in all; --json gives every one)")
                    continue
                print(printable(f"{'training.' + k:24s} {v}"))

        row = model_file_row(path)
        show(row, model_text)
        return row

    def file_text(d: dict) -> None:
        if "layers" in d:
            print(f"{'layers':24s} machine + human (file_bytes and bpp are the whole file's, the other fields "
                  "without a layer name the machine layer's; --json for the human layer's)")
        for k, v in d.items():
            if k == "layers":
                for name, layer in v.items():
                    version = (f"format {d['format_version']}" if name == "machine"
                               else f"human-layer version {layer['version']}")
                    what = (f"{version}, written by a newer saicm: not read here" if layer.get("readable") is False
                            else f"{layer['model']} q{layer['quality']}, {version}")
                    if layer.get("matches_machine_layer") is False:
                        what += ("; NOT this machine layer's: it belongs to another one and will not decode "
                                 "(the wrong segment was appended)")
                    print(f"{name + ' layer':24s} {layer['bytes']} bytes, {layer['bpp']:.4f} bpp ({what})")
            else:
                print(f"{k:24s} {v}")

    d = describe(path)
    show(d, file_text)
    return d


#: `saicm models` lists this many rate points of a model, then how many there are
MAX_LISTED_QUALITIES = 16
#: `saicm info MODEL` shows this many sessions of its training run (one per --resume), then how many there are
MAX_LISTED_SESSIONS = 16


def _session_text(s) -> str:
    """One session of a training run (``saicm.train.trainer._sessions``) in a line."""
    if not isinstance(s, dict):
        return str(s)
    data = s.get("data") if isinstance(s.get("data"), dict) else {}
    commit = f" ({str(s['commit'])[:12]}{', modified' if s.get('dirty') else ''})" if s.get("commit") else ""
    libraries = ", ".join(f"{k} {s[k]}" for k in ("torch", "numpy", "compressai") if s.get(k))
    return (f"from step {s.get('from_step')}: saicm {s.get('saicm')}{commit}, python {s.get('python')}, {libraries}; "
            f"{s.get('threads')} thread(s), {s.get('processes')} process(es), {s.get('device')}; data: "
            f"{data.get('images')} images, sha256 {data.get('sha256')}" + _session_options_text(s.get("options")))


def _session_options_text(options) -> str:
    """``; --steps 150 --batch 2 --patch 64 --lr 0.0001`` of a session's options (saicm 0.30.0 and before: none)."""
    if not isinstance(options, dict) or not options:
        return ""
    shown = [f"--{k} {v}" for k, v in options.items() if not isinstance(v, bool) and v is not None]
    shown += [f"--{k}" for k, v in options.items() if v is True]
    return "; " + " ".join(shown)


def _qualities_text(qualities: list[dict]) -> str:
    """``q1 λ=0.0018, q2 λ=0.0035, …`` of a model's rows (``saicm models``, ``saicm info MODEL``); at most
    :data:`MAX_LISTED_QUALITIES` (a stranger's file with a million made a 20 MB line)."""
    qs = ", ".join(f"q{q['quality']} λ={q['lambda']:g}" if isinstance(q["lambda"], (int, float))
                   else f"q{q['quality']} λ={q['lambda']!r}" for q in qualities[:MAX_LISTED_QUALITIES])
    return qs + (f", … ({len(qualities)} in all)" if len(qualities) > MAX_LISTED_QUALITIES else "")


def cmd_models(a: argparse.Namespace) -> int:
    import json

    from .models.catalog import model_table, user_model_dir, user_models

    rows = model_table()
    if a.json:
        print(json.dumps(rows, indent=2))
        return 0
    if not rows:
        print("no shipped models")
    heading = None
    for r in rows:
        if r["source"] != "shipped" and heading is None:
            heading = f"\nyour models, found by name in {user_model_dir()} ($SAICM_MODELS):"
            print(heading)
        qs = _qualities_text(r["qualities"])
        c = r["config"]
        fused = ", added to the channels its file names" if c.get("fusion_channels") else ""
        shape = (f"over {c.get('base')} (m={c.get('m')} slices of {c.get('slice_channels')} channels{fused}, "
                 f"condition {c.get('condition', 'none')})" if "base" in c else f"N={c.get('N')} M={c.get('M')}")
        flag = (" (default)" if r["default"] else " (shadowed: the name finds the shipped model)" if r.get("shadowed")
                else {"sa-icm": " (recommended SA-ICM model)", "two-layer": " (recommended two-layer model)"}.get(
                    r.get("recommended"), ""))
        # (names, descriptions and configurations come from the files: a stranger's may hold terminal escapes)
        print(printable(f"{r['name']}{flag}: {r['architecture']} {shape}, {bytes_text(r['bytes'])}, sha256 "
                        f"{r['sha256'][:12]}") + f"\n    {printable(r['description'])}\n    qualities: {printable(qs)}")
    for line in user_models()[1]:
        print(f"  not a readable model: {line}")
    return 0


def cmd_demo(a: argparse.Namespace) -> int:
    from .demo import run_demo

    run_demo(a.output, model=a.model, quality=a.quality)
    return 0


def _default_max_pixels() -> str:
    from .codec.limits import DEFAULT_MAX_PIXELS, pixels_text

    return pixels_text(DEFAULT_MAX_PIXELS)


#: help of the folder-job options that compress and decompress share (saicm.codec.batch runs both)
JOBS_HELP = ("worker processes for folders (default 1; at most four per CPU, and one per GiB of a container's memory "
             "limit)")
LOG_HELP = ("append one JSON line per file as it is done: input, output, status (written, skipped, failed), time, "
            "error, bytes, seconds, ...")


def build_parser() -> argparse.ArgumentParser:
    from . import __version__
    from .models.catalog import DEFAULT_MODEL

    p = argparse.ArgumentParser(prog="saicm", description="Learned image coding for machines and humans.",
                                epilog="environment: SAICM_THREADS (threads per process), SAICM_MODELS (your models), "
                                "SAICM_CACHE (eval's decodes), SAICM_ARCHITECTURES (your architectures); TMPDIR, "
                                "XDG_CACHE_HOME, XDG_DATA_HOME, TORCHINDUCTOR_CACHE_DIR, MPLCONFIGDIR, "
                                "IMAGEIO_FFMPEG_EXE: the table in docs/usage.md, 'Environment variables'")
    p.add_argument("--version", action="version", version=f"saicm {__version__}")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    c = sub.add_parser("compress", help="image file or folder -> .saicm",
                       description="Encode an image (or every image in a folder, recursively) into .saicm files. "
                       "Bitrate is the file size.")
    c.add_argument("input", help="image file or folder")
    c.add_argument("-o", "--output", help="output file or folder (default: beside the input)")
    c.add_argument("--model", help=f"model name (see `saicm models`: shipped, or yours in $SAICM_MODELS) or a "
                   f".safetensors path (default {DEFAULT_MODEL})")
    c.add_argument("--quality", type=whole, help="integer rate point of the model, higher = more bits (default the "
                   "middle one: 4 for every shipped model, of 7, or of 6 for the v3 models; scalable models: of the "
                   "machine layer)")
    c.add_argument("--max-bytes", type=positive, metavar="N",
                   help="instead of --quality: the highest quality whose file is at most N bytes (each file of a "
                   "folder; scalable models: the machine layer's bytes); a file that does not fit even at quality 1 "
                   "fails, named in one line")
    c.add_argument("--human-quality", type=whole, help="scalable models: rate point of the human layer (default "
                   "the middle one); the file holds both layers")
    c.add_argument("--refine", type=nonneg, default=0, metavar="STEPS",
                   help="encoder-side RD optimisation of the latents for STEPS Adam steps (MSE models; the "
                   "decoder is unchanged; each step costs about one forward+backward pass; needs PyTorch to "
                   "encode, not to decode; scalable models: refines the human layer only; default 0 = off)")
    c.add_argument("--max-pixels", type=positive, metavar="N",
                   help=f"refuse larger images (default {_default_max_pixels()}; like Pillow's "
                   "decompression-bomb limit)")
    c.add_argument("--engine", choices=ENGINES, default="auto", metavar="ENGINE",
                   help="auto (default): the portable engine (format 3: onnxruntime, no PyTorch; exact integer "
                   "coder tables, so the file decodes the same on any machine) for the models it supports, "
                   "CompressAI's coder for the others (TCM); onnx: the portable format with onnxruntime's "
                   "transforms; torch: with the PyTorch transforms; openvino / openvino-bf16: with OpenVINO's transforms (optional: pip install \"saicm[openvino]\"; "
                   "bf16 codes ~1.7x faster on CPUs with bfloat16 units, Intel AMX or AVX-512 BF16; docs/engine.md); compressai: "
                   "formats 1/2 as saicm 0.3 wrote")
    c.add_argument("--jobs", type=positive, default=1, help=JOBS_HELP)
    c.add_argument("--existing", choices=EXISTING, help="an output file that exists: refuse it (one line), skip it "
                   "(counted done: go on after an interruption) or overwrite it (default for folders: overwrite)")
    c.add_argument("--log", metavar="FILE.jsonl", help=LOG_HELP)
    c.add_argument("-q", "--quiet", action="store_true", help=QUIET_HELP)
    c.set_defaults(func=cmd_compress)

    d = sub.add_parser("decompress", help=".saicm file or folder -> image",
                       description="Decode .saicm files. The model named in the file is used: a shipped one, one "
                       "of yours in $SAICM_MODELS (see `saicm models`), or the file given with --model.")
    d.add_argument("input", help=".saicm file or folder")
    d.add_argument("-o", "--output", help="output image or folder (default: beside the input)")
    d.add_argument("--model", help="model (name or .safetensors path) to use instead of the one the file names: "
                   "for a two-layer file's human layer, the scalable model; with --layer machine (or a single-layer "
                   "file), the machine model")
    d.add_argument("--layer", choices=["auto", "machine", "human"], default="auto",
                   help="two-layer files: decode the human layer (auto, the default) or only the machine layer; "
                   "human on a file without one is an error")
    d.add_argument("--max-pixels", type=positive, metavar="N",
                   help=f"refuse files claiming larger images, before decoding anything (default "
                   f"{_default_max_pixels()}); raise it only for files you trust")
    d.add_argument("--format", choices=["png", "bmp", "tiff", "ppm"], help="format of the outputs saicm names: a folder's, or "
                   "a file's beside it or in an -o folder (default png); an -o file is written in the format its "
                   "suffix names")
    d.add_argument("--engine", choices=PORTABLE_ENGINES, default="auto", metavar="ENGINE",
                   help="transforms for portable (format 3) files: auto/onnx (onnxruntime, the default), torch, "
                   "openvino or openvino-bf16 (optional; bf16 pixels differ from float32 ones by up to 5 on screen "
                   "content such as text or checkerboards, 2 on photos); "
                   "files of formats 1 and 2 always decode with PyTorch and CompressAI")
    d.add_argument("--jobs", type=positive, default=1, help=JOBS_HELP)
    d.add_argument("--existing", choices=EXISTING, help="an output file that exists: refuse it (one line), skip it "
                   "(counted done: go on after an interruption) or overwrite it (default: refuse, except a "
                   "single file named with -o)")
    d.add_argument("--log", metavar="FILE.jsonl", help=LOG_HELP)
    d.add_argument("-q", "--quiet", action="store_true", help=QUIET_HELP)
    d.set_defaults(func=cmd_decompress)

    i = sub.add_parser("info", help="show the header of .saicm files (and the bytes of each layer), or model files",
                       description="Print what a .saicm (or .saicmv) file holds without decoding it: model, quality, "
                       "size, latent shapes, the bytes of each string and, for two-layer files, of each layer. Given "
                       "a model file (.safetensors): its architecture, configuration, rate points, checksum and the "
                       "training settings recorded in it (saicm train's options, steps done). Several files: one "
                       "block each, headed by its path; a file that cannot be read is said on stderr, the others are "
                       "still described, and the status is non-zero; a line of totals ends them (bytes, and each layer's of two-layer "
                       "files). A folder: its .saicm, .saicmv and .seg files, recursively.")
    i.add_argument("file", nargs="+", help=".saicm, .saicmv, a human-layer segment, a model's .safetensors file, or a "
                   "folder of coded files")
    i.add_argument("--json", action="store_true",
                   help="machine-readable: one JSON object; for several files, one per line (JSON Lines) with its "
                   "'path'")
    i.set_defaults(func=cmd_info)

    m = sub.add_parser("models", help="list the shipped models and your own ($SAICM_MODELS), with their quality points")
    m.add_argument("--json", action="store_true", help="machine-readable")
    m.set_defaults(func=cmd_models)

    dm = sub.add_parser("demo", help="code the bundled sample images with the default model",
                        description="Compress and decompress scikit-image's bundled sample photos; print bpp "
                        "(from file sizes) and PSNR; write decoded images and a side-by-side PNG. Needs saicm[train] "
                        "(the photos come with scikit-image, and it loads the models with PyTorch): the README's "
                        "`make demo` installs it.")
    dm.add_argument("-o", "--output", default="demo-out", help="output folder (default demo-out)")
    dm.add_argument("--model", help="model (default: the shipped MSE model)")
    dm.add_argument("--quality", type=whole, help="rate point (default: the model's middle one)")
    dm.set_defaults(func=cmd_demo)

    from .commands import register_all

    register_all(sub)
    _own_usage_errors(p)
    return p


def _own_usage_errors(parser: argparse.ArgumentParser) -> None:
    """Every (sub)command parser records itself, so an unknown option is refused with that command's usage line:
    argparse leaves unrecognized arguments to the top-level parser, whose usage (``saicm [-h] [--version] COMMAND
    ...``) says nothing of the command's options."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for command in action.choices.values():
                command.set_defaults(_parser=command)
                _own_usage_errors(command)


def main(argv: list[str] | None = None) -> int:
    """The ``saicm`` command (``argv``: its arguments, default ``sys.argv[1:]``); returns the exit status. Called from
    Python (a notebook, another tool), it leaves the process's standard streams and warning settings as it found
    them (:func:`saicm._process._process_settings_on`)."""
    _process_settings_on()
    try:
        return _main(argv)
    finally:
        _process_settings_off()


def _main(argv: list[str] | None) -> int:
    from ._fs import reserve_standard_descriptors
    from .errors import SaicmError

    reserve_standard_descriptors()
    _discard_messages_if_stderr_closed()
    _escape_names_on_output()
    _line_buffered_stdout_if_stderr_shares_it()

    # Library deprecation chatter (torch.jit via CompressAI) is not for end users; saicm's own warnings are one line.
    from .errors import install_warning_format

    install_warning_format()
    # (an OMP_NUM_THREADS that is no thread count: dropped when saicm was imported, by engine.parallel, which is
    # loaded then only; importing it here for every command made `saicm --help` a tenth slower)
    parallel = sys.modules.get(f"{__package__}.engine.parallel")
    if parallel is not None:
        parallel.say_dropped_omp_threads()

    try:
        parser = build_parser()  # (it imports every command family: a Ctrl-C as the job starts often lands here)
    except KeyboardInterrupt:  # (nothing done yet: one line, as later, not argparse's and importlib's traceback)
        print("saicm: interrupted", file=sys.stderr)
        return 130
    args, unknown = parser.parse_known_args(argv)
    if unknown:  # (what parse_args does, with the command's own usage line)
        given = list(sys.argv[1:] if argv is None else argv)
        command_at = given.index(args.command) if args.command in given else len(given)
        before = any(tok in given[:command_at] for tok in unknown)  # (saicm --bogus compress: not compress's)
        (parser if before else getattr(args, "_parser", parser)).error(
            f"unrecognized arguments: {' '.join(unknown)}")
    _warn_unexpanded_home(args)
    stdout = _checked_stdout_on()
    try:
        code = args.func(args)
        sys.stdout.flush()  # (a write error of the last lines: here, not at exit)
        return code
    except SaicmError as e:
        print(f"saicm: error: {printable(e)}", file=sys.stderr)
        if isinstance(e, StdoutError):
            _discard_stdout(stdout)
        return e.exit_code
    except ModuleNotFoundError as e:  # an optional extra's module on a coding-only install
        from .errors import MissingDependency

        # a command whose family needs one extra as a whole says so on its parser (set_defaults(extra=...)): the
        # evaluation commands need saicm[eval] (which holds saicm[train]) whichever module is missing first
        missing = MissingDependency.of(e, getattr(args, "extra", None))
        if missing is None:
            raise
        print(f"saicm: error: {missing}", file=sys.stderr)
        return missing.exit_code
    except (MemoryError, RuntimeError) as e:  # (eval under `ulimit -v 4G`: onnxruntime's failed allocation was a
        # 20-line traceback; PyTorch's CPU allocator raises a RuntimeError, as a training step too large for the memory)
        from ._process import is_out_of_memory

        if not is_out_of_memory(e):
            raise
        print(f"saicm: error: {_out_of_memory(e, getattr(args, 'command', None))}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as e:
        if not getattr(e, "quiet", False):  # (a training run's other ranks: rank 0 says it)
            print(f"saicm: {e.args[0] if e.args else 'interrupted'}", file=sys.stderr)  # (training: where to go on)
        return 130
    except BrokenPipeError:
        # the reader of the output went away (`saicm models | head`): stop quietly, as Unix tools do
        _discard_stdout(stdout)
        # (or standard error's, `saicm eval ... 2>&1 | head`: flushing it at exit failed again, and Python made the
        # status 120)
        _discard_stdout(sys.stderr)
        return 141  # 128 + SIGPIPE, what a shell reports for a tool killed by it
    except OSError as e:
        from ._fs import WRITE_ERRNOS

        if e.errno not in WRITE_ERRNOS:
            raise
        # a full disk where no output's writer words it (a training run's log.jsonl, appended to): one line
        where = f"{printable(e.filename)}: " if e.filename else ""
        print(f"saicm: error: {where}cannot write ({e.strerror or e})", file=sys.stderr)
        return 2
    finally:
        _checked_stdout_off()


def _warn_unexpanded_home(args) -> None:
    """A quoted ``-o '~/x'`` (or one from a script) reaches saicm with its ``~``, which only a shell expands: the
    output would go to a new folder named ``~`` here. Said before any work (the output is still written there)."""
    from .errors import warn

    for name in ("output", "out", "log", "human_segment", "json", "cache"):
        value = getattr(args, name, None)
        if isinstance(value, str) and (value == "~" or value.startswith("~/")) and not os.path.exists("~"):
            try:
                here = os.getcwd()
            except OSError:  # (a working folder deleted under the shell)
                here = "the working folder"
            warn(f"{value}: '~' is not your home folder here (only a shell expands it, and not when quoted): the "
                 f"output goes to a new folder named '~' in {here}; write $HOME/{value[2:]} for your home")


if __name__ == "__main__":
    sys.exit(main())
