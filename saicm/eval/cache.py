"""Decoded-image cache keyed by (codec, codec config, quality, image content).

A sweep that is interrupted or re-run (another task model, one more quality)
re-uses every decode it already made: the decoded PNG (lossless) is stored with
the exact byte count and timings of the encode that produced it. The key holds
a hash of the codec's config (e.g. the model's weight checksum), so new weights
never hit stale entries.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
from PIL import Image

from .._fs import cache_dir, write_atomic, write_bytes_atomic


def default_cache_dir() -> Path:
    return cache_dir() / "decoded"


def image_hash(img: Image.Image) -> str:
    a = np.asarray(img.convert("RGB"))
    h = hashlib.sha256(str(a.shape).encode())
    h.update(a.tobytes())
    return h.hexdigest()[:20]


def codec_key(codec_name: str, config: dict) -> str:
    blob = json.dumps({"codec": codec_name, "config": config}, sort_keys=True, default=str)
    return codec_name.replace("/", "_") + "-" + hashlib.sha256(blob.encode()).hexdigest()[:12]


class DecodeCache:
    def __init__(self, root: str | Path | None, codec_name: str, config: dict):
        self.enabled = root is not None
        self.dir = Path(root or ".") / codec_key(codec_name, config)

    def _paths(self, quality, ihash: str) -> tuple[Path, Path]:
        stem = self.dir / f"q{quality}" / ihash
        return stem.with_suffix(".png"), stem.with_suffix(".json")

    def get(self, quality, ihash: str):
        if not self.enabled:
            return None
        png, meta = self._paths(quality, ihash)
        if not (png.is_file() and meta.is_file()):
            return None
        try:
            info = json.loads(meta.read_text())
            img = Image.open(png)
            img.load()
        except (OSError, ValueError):
            return None  # a damaged entry is simply recomputed
        return img.convert("RGB"), info

    def put(self, quality, ihash: str, img: Image.Image, info: dict) -> None:
        if not self.enabled:
            return
        png, meta = self._paths(quality, ihash)
        png.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(png, lambda tmp: img.save(tmp, format="PNG", compress_level=1))
        write_bytes_atomic(meta, json.dumps(info).encode())
