"""``saicm strip``: the scalable (two-layer) file commands.

Compressing with a scalable model and decoding either layer go through the
core ``compress`` / ``decompress`` commands (``--human-quality``, ``--layer``);
what only two-layer files need lives here.
"""

from __future__ import annotations

import argparse


def cmd_strip(a: argparse.Namespace) -> int:
    import sys

    from .._fs import text_stream
    from ..codec.scalable import strip_file

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


def register(sub) -> None:
    s = sub.add_parser("strip", help="drop the human layer of a two-layer file (no re-encoding)",
                       description="Write the machine layer of a two-layer (scalable) .saicm file: byte for byte "
                       "the stream its base model writes for that image, decodable alone. The human layer can be "
                       "sent later, appended to it (--human-segment writes it; cat MACHINE SEGMENT > TWO.saicm). The "
                       "machine layer is itself an image "
                       "people can view (not a privacy measure: docs/scalable.md), and it keeps a non-opaque alpha "
                       "channel of the image losslessly.")
    s.add_argument("input", help="two-layer .saicm file")
    s.add_argument("-o", "--output", required=True, help="machine-layer .saicm file to write")
    s.add_argument("--human-segment", metavar="FILE",
                   help="also write the human layer's segment here, to send later: appended to the machine layer "
                   "(cat) it is the two-layer file again, byte for byte; saicm info describes it")
    s.set_defaults(func=cmd_strip)
