"""Hostile images for the encoder: small files that ask for much time or memory, each read in a child process.

    python benchmarks/hostile_images.py -o hostile.json                     # the reader alone (load_image)
    python benchmarks/hostile_images.py --mode compress --time-limit 120    # `saicm compress` of each, whole

A web back-end that runs ``saicm.compress`` on uploads reads strangers' images with Pillow's readers. This crafts a
set of such files (progressive JPEG "scan bombs", JPEG and GIF headers claiming the pixel limit over a few bytes,
PNG chunk floods and zlib bombs in iCCP/zTXt, APNG, GIF, WebP and AVIF of thousands of frames, TIFFs of thousands of
pages, looping pages and strips that all point at the same rows, RLE BMP and TGA at the limit, 16-bit and palette
PNGs at the limit, huge EXIF and ICC blocks; ``--side`` sets the side of those "at the limit", 8192 by default) and
reads each in a child process (``--mode read``: ``saicm.codec.image_io.load_image`` of the path; ``bytes``:
``saicm.compress`` of the file's bytes, as a back-end passes them; ``compress``: ``python -m saicm compress``) under
an address-space limit (``--address-space-gb``, default 16) and a time limit (``--time-limit``, default 120 s).

It prints a table (file, bytes, seconds, peak resident memory, outcome, the last line said) and writes it as JSON
(``-o``). Outcomes: ``read``/``coded``, ``refused`` (one line), and the failures: ``traceback``, ``hang`` (time
limit), ``killed`` (a signal: out of memory under the limit, a crash). Exit status 1 if any failure. Timings are of
the machine as it is (other work on the CPU slows them); an image at the pixel limit is a real decode of that size.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import resource
import struct
import subprocess
import sys
import tempfile
import time
import zlib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _jpeg_scans(side: int, scans: int) -> bytes:
    """A flat progressive JPEG of ``side``² whose last scan (with its tables) is repeated to ``scans`` scans."""
    from PIL import Image

    sys.path.insert(0, str(ROOT))
    from saicm.codec.image_io import _jpeg_markers

    buf = io.BytesIO()
    Image.new("RGB", (side, side), (128, 128, 128)).save(buf, "JPEG", progressive=True, quality=90)
    data = buf.getvalue()
    marks = [pos for _, pos in _jpeg_markers(data)]
    sos = [p for p in marks if data[p + 1] == 0xDA]
    before = marks[marks.index(sos[-1]) - 1]
    unit = data[before if data[before + 1] == 0xC4 else sos[-1]: marks[-1]]
    return data[: marks[-1]] + unit * (scans - len(sos)) + b"\xff\xd9"


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def _png(w: int, h: int, before: bytes = b"", after: bytes = b"", depth: int = 8, ctype: int = 2,
         plte: bytes = b"") -> bytes:
    """A PNG of zeros (each row's filter byte and samples), with chunks ``before`` and ``after`` its IDAT."""
    row = b"\0" + bytes(w * {0: 1, 2: 3, 3: 1, 6: 4}[ctype] * depth // 8)
    z = zlib.compressobj(9)
    idat = b"".join(z.compress(row) for _ in range(h)) + z.flush()
    return (b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, depth, ctype, 0, 0, 0)) + plte + before
            + _chunk(b"IDAT", idat) + after + _chunk(b"IEND", b""))


def _tiff(width: int, height: int, strips: int, rows: int, pages: int = 1) -> bytes:
    """An uncompressed grey TIFF of ``pages`` pages of ``strips`` strips each, all pointing at the same ``rows``."""
    ifd = 2 + 12 * 8 + 4 + 8 * strips
    row_at, out = 8 + pages * ifd, bytearray(b"II*\x00" + struct.pack("<I", 8))
    for page in range(pages):
        at = len(out)
        offsets, counts = at + 2 + 12 * 8 + 4, at + 2 + 12 * 8 + 4 + 4 * strips
        tags = [(256, 4, 1, width), (257, 4, 1, height), (258, 3, 1, 8), (259, 3, 1, 1), (262, 3, 1, 1),
                (273, 4, strips, offsets if strips > 1 else row_at), (278, 4, 1, rows),
                (279, 4, strips, counts if strips > 1 else width * rows)]
        out += struct.pack("<H", 8) + b"".join(struct.pack("<HHII", *t) for t in tags)
        out += struct.pack("<I", at + ifd if page < pages - 1 else 0)
        out += struct.pack(f"<{strips}I", *[row_at] * strips) + struct.pack(f"<{strips}I", *[width * rows] * strips)
    return bytes(out + bytes(width * rows))


def make_set(folder: Path, side: int) -> list[Path]:
    """Write the hostile set (and three ordinary files to compare) into ``folder``."""
    import numpy as np
    from PIL import Image

    files: dict[str, bytes | None] = {}
    rng = np.random.default_rng(0)
    buf = io.BytesIO()
    Image.fromarray((rng.random((768, 1024, 3)) * 255).astype(np.uint8)).save(buf, "JPEG", progressive=True)
    files["ordinary-progressive-1024x768.jpg"] = buf.getvalue()
    files["jpeg-10000-scans-1024.jpg"] = _jpeg_scans(1024, 10_000)
    files["jpeg-2000-scans-4096.jpg"] = _jpeg_scans(4096, 2_000)
    files[f"jpeg-101-scans-{side}.jpg"] = _jpeg_scans(side, 101)
    buf = io.BytesIO()
    Image.new("RGB", (16, 16), (200, 10, 10)).save(buf, "JPEG")
    small = bytearray(buf.getvalue())
    sof = small.find(b"\xff\xc0")
    for s in (65500, side):
        claim = bytearray(small)
        claim[sof + 5: sof + 9] = struct.pack(">HH", s, s)
        files[f"jpeg-sof-{s}x{s}-633-bytes.jpg"] = bytes(claim)
    files["jpeg-1M-comment-markers.jpg"] = bytes(small[:2]) + b"\xff\xfe\x00\x02" * 1_000_000 + bytes(small[2:])
    icc = b"".join(b"\xff\xe2" + struct.pack(">H", 2 + 14 + 65000) + b"ICC_PROFILE\0" + bytes([i + 1, 255])
                   + bytes(65000) for i in range(255))
    files["jpeg-16MB-icc-of-zeros.jpg"] = bytes(small[:2]) + icc + bytes(small[2:])
    files["png-iccp-zlib-bomb.png"] = _png(64, 64, _chunk(b"iCCP", b"x\0\0" + zlib.compress(bytes(200_000_000), 9)))
    files["png-1000-ztxt-of-1MB.png"] = _png(64, 64, _chunk(b"zTXt", b"k\0\0" + zlib.compress(bytes(10**6), 9)) * 1000)
    files["png-1M-unknown-chunks.png"] = _png(64, 64, _chunk(b"abCd", b"") * 1_000_000)
    files["png-1M-text-chunks-after-idat.png"] = _png(64, 64, after=_chunk(b"tEXt", b"k\0v") * 1_000_000)
    files[f"png-{side}-16bit-grey.png"] = _png(side, side, depth=16, ctype=0)
    files[f"png-{side}-16bit-rgba.png"] = _png(side, side, depth=16, ctype=6)
    files[f"png-{side}-palette-trns.png"] = _png(side, side, ctype=3, plte=_chunk(b"PLTE", bytes(768))
                                                 + _chunk(b"tRNS", b"\0"))
    entries = b"".join(struct.pack("<HHII", 0x9000 + i, 5, 131072, 8 + 2 + 12 * 5000 + 4) for i in range(5000))
    files["png-exif-5000-tags-on-1MB.png"] = _png(64, 64, _chunk(
        b"eXIf", b"II*\0" + struct.pack("<IH", 8, 5000) + entries + bytes(4) + bytes(1 << 20)))
    for name, kw in (("apng-10000-frames.png", {}), ("webp-10000-frames.webp", {"lossless": True})):
        frames = [Image.new("RGB", (16, 16), (i % 256, 0, 0)) for i in range(10_000)]
        buf = io.BytesIO()
        frames[0].save(buf, name.rsplit(".")[-1].replace("png", "PNG").upper(), save_all=True,
                       append_images=frames[1:], duration=10, **kw)
        files[name] = buf.getvalue()
    files["apng-claims-2^31-frames.png"] = _png(64, 64, _chunk(b"acTL", struct.pack(">II", 2**31 - 1, 0)))
    frames = [Image.new("P", (1, 1), i % 256) for i in range(200_000)]
    buf = io.BytesIO()
    frames[0].save(buf, "GIF", save_all=True, append_images=frames[1:], duration=10, optimize=False)
    files["gif-200000-frames.gif"] = buf.getvalue()
    buf = io.BytesIO()
    Image.new("P", (1, 1), 0).save(buf, "GIF")
    gif = bytearray(buf.getvalue())
    for s in (65535, side):
        gif[6:10] = struct.pack("<HH", s, s)
        files[f"gif-screen-{s}x{s}-frame-1x1.gif"] = bytes(gif)
    buf = io.BytesIO()
    Image.new("RGB", (side, side)).save(buf, "WEBP", lossless=True)
    files[f"webp-{side}.webp"] = buf.getvalue()
    files["tiff-3-pages.tif"] = _tiff(8, 8, 1, 8, pages=3)
    files["tiff-100000-pages.tif"] = _tiff(8, 8, 1, 8, pages=100_000)
    loop = bytearray(_tiff(8, 8, 1, 8, pages=2))
    loop[8 + 2 + 12 * 8: 8 + 2 + 12 * 8 + 4] = struct.pack("<I", 8)  # (the first page's next is itself)
    files["tiff-page-loop.tif"] = bytes(loop)
    files[f"tiff-{side}-strip-per-row.tif"] = _tiff(side, side, side, 1)
    files["tiff-4096-200000-strips-same-rows.tif"] = _tiff(4096, 4096, 200_000, 64)
    rle = (b"\xff\x07" * (side // 255) + bytes([side % 255, 7]) + b"\x00\x00") * side + b"\x00\x01"
    head = struct.pack("<IiiHHIIiiII", 40, side, side, 1, 8, 1, len(rle), 2835, 2835, 256, 0)
    files[f"bmp-rle8-{side}.bmp"] = (b"BM" + struct.pack("<IHHI", 14 + 40 + 1024 + len(rle), 0, 0, 14 + 40 + 1024)
                                     + head + bytes(1024) + rle)
    files[f"tga-rle-{side}.tga"] = (struct.pack("<BBBHHBHHHHBB", 0, 0, 10, 0, 0, 0, 0, 0, side, side, 24, 0x20)
                                    + b"\xff\x00\x00\x00" * (side * side // 128))
    buf = io.BytesIO()
    Image.new("RGB", (64, 64)).save(buf, "JPEG2000", no_jp2=True)  # (a bare codestream: its size is in SIZ alone)
    j2k = bytearray(buf.getvalue())
    siz = j2k.find(b"\xff\x51")
    j2k[siz + 6: siz + 14] = struct.pack(">II", side, side)
    j2k[siz + 22: siz + 30] = struct.pack(">II", side, side)
    files[f"j2k-{side}-171-bytes.j2k"] = bytes(j2k)
    try:
        buf = io.BytesIO()
        Image.new("RGB", (side, side)).save(buf, "AVIF", speed=10)
        files[f"avif-{side}.avif"] = buf.getvalue()
    except Exception:  # (a Pillow without an AVIF encoder)
        pass
    paths = []
    for name, data in files.items():
        (folder / name).write_bytes(data)
        paths.append(folder / name)
    return paths


# (the children say a SaicmError in one line and exit 1, as the command line does)
_CHILD = ("import sys, saicm\nfrom saicm.codec.image_io import load_image\ntry:\n    {}\n"
          "except saicm.SaicmError as e:\n    sys.exit(f'error: {{e}}')\n")
READ = _CHILD.format("im = load_image(sys.argv[1], int(sys.argv[2])); print('read', im.rgb.shape[1], 'x', "
                     "im.rgb.shape[0])")
BYTES = _CHILD.format("saicm.compress(open(sys.argv[1], 'rb').read(), max_pixels=int(sys.argv[2])); print('coded')")


def run_one(path: Path, mode: str, time_limit: float, address_space: int, out: Path, max_pixels: int) -> dict:
    """One file read in a child process: wall seconds, peak resident memory, outcome, the last line said."""
    cmd = {"read": [sys.executable, "-c", READ, str(path), str(max_pixels)],
           "bytes": [sys.executable, "-c", BYTES, str(path), str(max_pixels)],
           "compress": [sys.executable, "-m", "saicm", "compress", str(path), "-o", str(out), "--quiet",
                        "--existing", "overwrite", "--max-pixels", str(max_pixels)]}[mode]

    def limit():
        resource.setrlimit(resource.RLIMIT_AS, (address_space, address_space))

    env = dict(os.environ, OMP_NUM_THREADS="1", SAICM_THREADS="1",
               PYTHONPATH=os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p))
    with tempfile.TemporaryFile() as so, tempfile.TemporaryFile() as se:
        start = time.monotonic()
        child = subprocess.Popen(cmd, stdout=so, stderr=se, preexec_fn=limit, env=env, cwd=out.parent)
        hung = False
        while True:
            pid, status, usage = os.wait4(child.pid, os.WNOHANG)
            if pid:
                break
            if time.monotonic() - start > time_limit:
                child.kill()
                hung = True
            time.sleep(0.02)
        seconds = time.monotonic() - start
        child.returncode = 0  # (reaped here)
        so.seek(0)
        se.seek(0)
        said = (so.read() + se.read()).decode(errors="replace").replace(f"{path.parent}{os.sep}", "").strip()
        said = said.splitlines()
    code = os.waitstatus_to_exitcode(status)
    traceback = any(line.startswith("Traceback") for line in said)
    outcome = ("hang" if hung else "killed" if code < 0 else "traceback" if traceback else
               ("read" if mode == "read" else "coded") if code == 0 else "refused")
    return {"file": path.name, "bytes": path.stat().st_size, "seconds": round(seconds, 2),
            "peak_mb": round(usage.ru_maxrss / 1024), "outcome": outcome, "exit": code,
            "said": (said[-1] if said else "")[:160]}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--mode", choices=("read", "bytes", "compress"), default="read",
                   help="read: load_image of the path (default); bytes: saicm.compress of its bytes; compress: the CLI")
    p.add_argument("--side", type=int, default=8192, help="side of the images at the pixel limit (default 8192)")
    p.add_argument("--max-pixels", type=int, default=1 << 26, help="the reader's pixel limit (default saicm's, "
                   "67,108,864 = 8192x8192): a service's own, such as 4194304, refuses the images at --side 8192")
    p.add_argument("--time-limit", type=float, default=120.0, help="seconds a file may take (default 120)")
    p.add_argument("--address-space-gb", type=float, default=16.0, help="the children's address-space limit, GB "
                   "(default 16, as ulimit -v 16000000)")
    p.add_argument("--only", help="comma-separated substrings of the file names to run")
    p.add_argument("-o", "--output", help="JSON report")
    p.add_argument("--make", help=argparse.SUPPRESS)  # (the set is made in a child: a child's peak memory counts its
    args = p.parse_args(argv)  # parent's at the fork, and making the set takes 0.6 GB)
    if args.make:
        make_set(Path(args.make), args.side)
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "images"
        folder.mkdir()
        subprocess.run([sys.executable, __file__, "--make", str(folder), "--side", str(args.side)], check=True)
        paths = sorted(folder.iterdir(), key=lambda q: q.stat().st_mtime_ns)
        if args.only:
            paths = [q for q in paths if any(s in q.name for s in args.only.split(","))]
        print("| file | bytes | seconds | peak RSS (MB) | outcome | said |\n|---|---:|---:|---:|---|---|", flush=True)
        rows = []
        for path in paths:
            row = run_one(path, args.mode, args.time_limit, int(args.address_space_gb * 2**30),
                          Path(tmp) / "out.saicm", args.max_pixels)
            rows.append(row)
            print(f"| {row['file']} | {row['bytes']:,} | {row['seconds']:.1f} | {row['peak_mb']:,} | {row['outcome']} "
                  f"| {row['said'].replace('|', '/')} |", flush=True)
    failures = [r for r in rows if r["outcome"] in ("traceback", "hang", "killed")]
    if args.output:
        Path(args.output).write_text(json.dumps({"mode": args.mode, "side": args.side, "max_pixels": args.max_pixels,
                                                 "time_limit": args.time_limit,
                                                 "address_space_gb": args.address_space_gb, "rows": rows}, indent=1))
    print(f"{len(rows)} files: {len(failures)} failures (traceback, hang or killed)")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
