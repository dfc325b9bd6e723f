"""``saicm strip``: the scalable (two-layer) file commands.

Compressing with a scalable model and decoding either layer go through the
core ``compress`` / ``decompress`` commands (``--human-quality``, ``--layer``);
what only two-layer files need lives here.
"""

from __future__ import annotations

import argparse

from .._fs import EXISTING
from .argtypes import QUIET_HELP


def cmd_strip(a: argparse.Namespace) -> int:
    import os
    import sys

    from .._fs import text_stream
    from ..codec.scalable import strip_file

    if os.path.isdir(a.input):
        return _strip_folder(a)
    from .argtypes import warn_unused

    warn_unused({"--existing": a.existing, "--log": a.log}, "strip of one file (folders only)")
    # -o DIR/ (a trailing slash, or an existing folder) and --human-segment DIR/: the file's name in that folder, as
    # compress and decompress put a file's output (a camera stripping each new file said "is a folder")
    from ..codec import batch

    a.output = str(batch.plan(a.input, a.output, lambda p: True, ".saicm")[0][0].dst)
    if a.human_segment is not None:
        a.human_segment = str(batch.plan(a.input, a.human_segment, lambda p: True, ".seg")[0][0].dst)
    r = strip_file(a.input, a.output, a.human_segment)
    # (-o /dev/stdout | ...: the summary went after the machine layer's bytes, and the file did not decode)
    to_stdout = any(text_stream(path) is sys.stderr for path in (a.output, a.human_segment) if path)
    out = sys.stderr if to_stdout else sys.stdout
    what = "human layer dropped" if r["had_human_layer"] else "no human layer: copied unchanged"
    alpha = (f"; it keeps the image's alpha channel, lossless, {r['alpha_bytes']} bytes" if r["alpha_bytes"]
             else "")
    print(f"{a.output}: {r['bytes_out']} bytes (from {r['bytes_in']}; {what}{alpha})", file=out)
    if a.human_segment:
        print(f"{a.human_segment}: the human-layer segment, {r['bytes_in'] - r['bytes_out']} bytes (cat "
              f"{a.output} {a.human_segment} makes the two-layer file again)", file=out)
    return 0


def _strip_folder(a: argparse.Namespace) -> int:
    """``saicm strip FOLDER -o OUT [--human-segment SEGMENTS]``: every .saicm file of a folder (recursively), its
    machine layer to OUT and its segment to SEGMENTS/<same path>.seg (a camera's day of files: one process, not one
    per file)."""
    import os
    import sys
    from functools import partial
    from pathlib import Path

    from .._fs import ensure_dir
    from ..codec import batch
    from ..codec.image_io import refuse_file_name_for_folder

    from ..errors import SaicmError

    inside = Path(os.path.abspath(a.output))
    if inside == Path(os.path.abspath(a.input)) or Path(os.path.abspath(a.input)) in inside.parents:
        raise SaicmError("the output folder is the input folder or inside it: the machine layers (.saicm files) "
                         "would be inputs of the next run; give -o a folder outside it (nothing written)", a.output)
    segments = None
    if a.human_segment is not None:
        refuse_file_name_for_folder(a.human_segment, "a folder's human-layer segments")
        if Path(a.human_segment).suffix.lower() == ".seg" and not os.path.isdir(a.human_segment):
            raise SaicmError("names a .seg file, but a folder's human-layer segments go to a folder: give a folder "
                             "name without that suffix (nothing written)", a.human_segment)
        segments = ensure_dir(a.human_segment)
    jobs, _ = batch.plan(a.input, a.output, lambda p: p.is_file() and p.suffix.lower() == ".saicm", ".saicm",
                         existing=a.existing)
    for job in jobs:  # --existing skip: a machine layer there without its segment is stripped again, and one with it
        # is logged as written (each layer's bytes)
        job.existing = partial(_stripped, out_root=Path(a.output), segments=segments)
        if segments is not None:
            job.incomplete = partial(_segment_missing, out_root=Path(a.output), segments=segments)
    with batch.job_log(a.log) as log:
        outcomes = batch.run(partial(_strip_job, out_root=Path(a.output), segments=segments), jobs, 1, "strip",
                             not a.quiet, errors=sys.stderr, log=log)
    return batch.report(outcomes, True, "stripped", sys.stderr if a.log == "/dev/stdout" else sys.stdout)


def _segment_path(dst, out_root, segments):
    """Where a folder job's file puts its human-layer segment: its machine layer's path under ``segments``, .seg."""
    return segments / dst.relative_to(out_root).with_suffix(".seg")


def _segment_missing(job, out_root, segments) -> bool:
    """Whether a folder job's segment is not there (or empty: no segment), for --existing skip."""
    try:
        return _segment_path(job.dst, out_root, segments).stat().st_size == 0
    except OSError:
        return True


def _stripped(dst, out_root, segments=None) -> dict:
    """What the --log line of a file that --existing skip counts done says: its layers' bytes, as a written one's."""
    out: dict = {}
    try:
        n = dst.stat().st_size
        out.update(bytes=n, machine_bytes=n)
        if segments is not None:
            segment = _segment_path(dst, out_root, segments)
            out.update(human_bytes=segment.stat().st_size, segment=str(segment))
    except OSError:  # (gone meanwhile: the line says less)
        pass
    return out


def _strip_job(job, out_root, segments=None) -> dict:
    from ..codec.scalable import strip_file

    segment = None if segments is None else _segment_path(job.dst, out_root, segments)
    if segment is not None:
        segment.parent.mkdir(parents=True, exist_ok=True)
    r = strip_file(job.src, job.dst, segment)
    # (machine_bytes, human_bytes: as compress's --log lines name a two-layer file's layers)
    return {"bytes": r["bytes_out"], "bytes_in": r["bytes_in"], "had_human_layer": r["had_human_layer"],
            "machine_bytes": r["bytes_out"],
            **({"human_bytes": r["bytes_in"] - r["bytes_out"]} if r["had_human_layer"] else {}),
            **({"segment": str(segment)} if segment is not None else {})}


def register(sub) -> None:
    s = sub.add_parser("strip", help="drop the human layer of a two-layer file (no re-encoding)",
                       description="Write the machine layer of a two-layer (scalable) .saicm file: byte for byte "
                       "the stream its base model writes for that image, decodable alone. The human layer can be "
                       "sent later, appended to it (--human-segment writes it; cat MACHINE SEGMENT > TWO.saicm). The "
                       "machine layer is itself an image "
                       "people can view (not a privacy measure: docs/scalable.md), and it keeps a non-opaque alpha "
                       "channel of the image losslessly.")
    s.add_argument("input", help="two-layer .saicm file, or a folder of them (recursively)")
    s.add_argument("-o", "--output", required=True, help="machine-layer .saicm file to write (a folder for a folder; "
                   "DIR/ or an existing folder: DIR/NAME.saicm for a file)")
    s.add_argument("--human-segment", metavar="FILE",
                   help="also write the human layer's segment here, to send later: appended to the machine layer "
                   "(cat) it is the two-layer file again, byte for byte; saicm info describes it (a folder for a "
                   "folder: each file's segment as <same path>.seg; DIR/ or an existing folder: DIR/NAME.seg)")
    s.add_argument("--existing", choices=EXISTING, help="folders: an output file that exists: refuse it, skip it "
                   "(go on after an interruption) or overwrite it (default)")
    s.add_argument("--log", metavar="FILE.jsonl", help="folders: append one JSON line per file as it is done")
    s.add_argument("-q", "--quiet", action="store_true", help=QUIET_HELP)
    s.set_defaults(func=cmd_strip)
