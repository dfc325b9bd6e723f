"""Sweeps: schema, real byte counts, cache re-use, task hook."""

import numpy as np
from PIL import Image

from saicm.eval.cache import DecodeCache
from saicm.eval.codecs import Codec, get_codec
from saicm.eval.rd import sweep

from .conftest import natural_image


class CountingCodec(Codec):
    """JPEG that counts its encodes (to see the cache work)."""

    def __init__(self):
        self.inner = get_codec("jpeg")
        self.name = "jpeg"
        self.default_qualities = (20, 80)
        self.encodes = 0

    def encode(self, img, q):
        self.encodes += 1
        return self.inner.encode(img, q)

    def decode(self, data):
        return self.inner.decode(data)

    def config(self):
        return self.inner.config()


class MeanBrightness:
    name = "brightness"

    def evaluate(self, images, originals):
        return {"brightness": float(np.mean([np.asarray(i).mean() for i in images.values()]))}


def images():
    return {f"{i}.png": Image.fromarray(natural_image(170 + i, 180, seed=i)) for i in range(2)}


def test_sweep_points_reference_and_cache(tmp_path):
    codec = CountingCodec()
    cache = DecodeCache(tmp_path / "cache", codec.name, codec.config())
    res = sweep(codec, images(), task=MeanBrightness(), cache=cache, progress=False)
    assert codec.encodes == 4
    assert [p["quality"] for p in res["points"]] == [20, 80]  # ascending bpp
    lo, hi = res["points"]
    assert lo["bpp"] < hi["bpp"] and lo["psnr"] < hi["psnr"] and 0 < lo["ms_ssim"] <= 1
    total = sum(len(codec.inner.encode(img, 20)) for img in images().values())
    assert lo["bytes"] == total
    assert "brightness" in res["reference"] and "brightness" in lo
    again = sweep(codec, images(), task=MeanBrightness(), cache=cache, progress=False)
    assert codec.encodes == 4  # every decode came from the cache
    assert again["points"] == res["points"]
