"""``saicm masks``: edge or object masks of an image folder (the work lives in :mod:`saicm.masks`)."""

from __future__ import annotations

import argparse
import sys

from .argtypes import QUIET_HELP, fraction, positive, warn_unused


def cmd_masks(a: argparse.Namespace) -> int:
    from ..masks.job import MaskSpec, make_source, parse_shard, run_masks
    from ..masks.sam import parse_options

    shard = parse_shard(a.shard)
    source = a.source or ("sam" if a.sam_checkpoint else "regions")
    if source == "sam" and a.sam_model == "vit_tiny" and not a.sam_checkpoint:
        from ..errors import SaicmError

        raise SaicmError("vit_tiny is the test suite's miniature SAM: without a --sam-checkpoint its weights are "
                         "random and its masks mean nothing")
    warn_unused({"--alpha": a.alpha if source in ("coco", "coco-edges") else None,
                 "--sam-checkpoint": a.sam_checkpoint if source != "sam" else None,
                 "--sam-opt": a.sam_opt if source != "sam" else None,
                 "--sam-model": a.sam_model if source != "sam" else None,
                 # (only SAM runs on a device: --device gpu, refused by train and video encode, passed in silence)
                 "--device": a.device if source != "sam" and a.device != "auto" else None,
                 "--edge-method": a.edge_method if source == "coco" else None,
                 "--annotations": a.annotations if source in ("regions", "sam") else None}, f"--source {source}")
    opts = parse_options(a.sam_opt) if source == "sam" else {}
    alpha = {} if a.alpha is None else {"alpha": a.alpha}  # (not given: make_source's default)
    make, settings = make_source(source, **alpha, annotations=a.annotations,
                                 sam_checkpoint=a.sam_checkpoint, sam_model=a.sam_model or "vit_b", sam_options=opts,
                                 device=a.device)
    spec = MaskSpec(source=source, settings=settings, edge_method=a.edge_method or "boundary", edge_width=a.edge_width)
    s = run_masks(a.input, a.output, spec, make, shard=shard, preview=a.preview, overwrite=a.overwrite,
                  progress=not a.quiet)
    # (before the summary, as a folder job's are: a log ended in them, the summary above; and with standard output
    # closed or full the summary's error stopped the command before any was said)
    for f in s["failed"]:
        print(f"saicm: error: {f}", file=sys.stderr)  # (as a folder job's failures: `grep 'saicm: error'` finds them)
    # (of the masks written now: a re-run over a finished folder said "mean mask coverage n/a")
    frac = "" if s["mean_fraction"] is None else f"; mean mask coverage {100 * s['mean_fraction']:.2f}%"
    print(f"{s['written']} written, {s['skipped']} already done, {len(s['failed'])} failed of {s['images']} "
          f"images (shard {shard[0]}/{shard[1]}){frac}"
          + (f"; manifest {s['manifest']}" if s["manifest"] else ""))
    if s["written"] and s["mean_fraction"] == 0:  # (a SAM run of far too high an alpha said "coverage 0.00%" alone)
        from ..errors import warn

        warn(f"every mask written ({s['written']}) is empty: training on them would count no pixel's distortion, "
             "rate alone" + (" (no segment edges at this --alpha: a lower one gives more segments)"
                             if spec.kind == "edges" else ""))
    return 1 if s["failed"] else 0


def register(sub) -> None:
    from ..device import DEVICE_HELP
    from ..masks import SOURCES

    m = sub.add_parser("masks", help="edge or object masks of an image folder, for SA-ICM/Object-ICM training",
                       formatter_class=argparse.RawDescriptionHelpFormatter,
                       description="Write one 1-bit PNG mask per image (same relative path) plus a manifest.\n"
                       "Resumable (finished masks are skipped) and shardable (--shard I/N).\n\n"
                       "sources:\n"
                       "  regions  weight-free segmenter (default without a SAM checkpoint);\n"
                       "           alpha in (0,1], lower alpha -> more segments -> more edge pixels\n"
                       "  sam      Segment Anything automatic masks; alpha = pred_iou_thresh; needs\n"
                       "           --sam-checkpoint (vit_b/vit_l/vit_h from Meta's release)\n"
                       "  coco     union of COCO object masks (--annotations; crowd regions included),\n"
                       "           for Object-ICM\n"
                       "  coco-edges\n"
                       "           edges of the COCO instances painted like SAM's masks (--annotations):\n"
                       "           people's object outlines in place of SAM's, an SA-ICM variant\n\n"
                       "Edge sources paint their segments into a map (larger first) and mark label\n"
                       "changes (--edge-method boundary, exact) or Canny edges of the map (canny).")
    m.add_argument("input", help="image folder (searched recursively)")
    m.add_argument("-o", "--output", required=True, help="mask folder")
    m.add_argument("--source", choices=SOURCES,
                   help="mask source (default: sam with --sam-checkpoint, else regions)")
    m.add_argument("--alpha", type=fraction, help="confidence α in (0, 1] of sam and regions (default 0.78)")
    m.add_argument("--sam-checkpoint", help="path of a Segment Anything checkpoint (.pth)")
    m.add_argument("--sam-model", help="vit_b, vit_l or vit_h: the checkpoint's model (default vit_b)")
    m.add_argument("--sam-opt", action="append", metavar="KEY=VALUE",
                   help="override a SamAutomaticMaskGenerator setting, e.g. points_per_side=16 (repeatable)")
    m.add_argument("--annotations", help="COCO instances JSON for --source coco / coco-edges")
    m.add_argument("--edge-method", choices=["boundary", "canny"],
                   help="how edge sources turn segments into edges: boundary (exact 1-pixel label changes; default, saicm's) or "
                   "canny (Canny on the segment map, the paper's); not used by --source coco")
    m.add_argument("--edge-width", type=positive, default=1, help="dilate the masks (edges; with --source coco, the "
                   "objects) to this width in pixels (default 1: as drawn)")
    m.add_argument("--shard", help="I/N: process every N-th image starting at I (0-based)")
    m.add_argument("--preview", action="store_true", help="also write overlay JPEGs under OUT/previews/")
    m.add_argument("--overwrite", action="store_true", help="redo existing masks (and accept new settings)")
    m.add_argument("--device", default="auto", help="where SAM runs: " + DEVICE_HELP)
    m.add_argument("-q", "--quiet", action="store_true", help=QUIET_HELP)
    m.set_defaults(func=cmd_masks)
