"""``saicm strip``: the scalable (two-layer) file commands.

Compressing with a scalable model and decoding either layer go through the
core ``compress`` / ``decompress`` commands (``--human-quality``, ``--layer``);
what only two-layer files need lives here.
"""

from __future__ import annotations

import argparse


def cmd_strip(a: argparse.Namespace) -> int:
    from ..codec.scalable import strip_file

    r = strip_file(a.input, a.output)
    what = "human layer dropped" if r["had_human_layer"] else "no human layer: copied unchanged"
    alpha = (f"; it keeps the image's alpha channel, lossless, {r['alpha_bytes']} bytes" if r["alpha_bytes"]
             else "")
    print(f"{a.output}: {r['bytes_out']} bytes (from {r['bytes_in']}; {what}{alpha})")
    return 0


def register(sub) -> None:
    s = sub.add_parser("strip", help="drop the human layer of a two-layer file (no re-encoding)",
                       description="Write the machine layer of a two-layer (scalable) .saicm file: byte for byte "
                       "the stream its base model writes for that image, decodable alone. The human layer can be "
                       "sent later, appended to it (cat MACHINE HUMAN_SEGMENT). The machine layer is itself an image "
                       "people can view (not a privacy measure: docs/scalable.md), and it keeps a non-opaque alpha "
                       "channel of the image losslessly.")
    s.add_argument("input", help="two-layer .saicm file")
    s.add_argument("-o", "--output", required=True, help="machine-layer .saicm file to write")
    s.set_defaults(func=cmd_strip)
