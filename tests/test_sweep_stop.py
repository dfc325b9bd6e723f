"""Stopping a sweep: SIGTERM (a scheduler's) or Ctrl-C stops it after the image in progress, whose decode is cached;
elsewhere, or without a cache, at once. Each case runs in a child process that signals itself (a SIGTERM left to
its default ends the process where it stands)."""

import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

CHILD = textwrap.dedent("""
    import json, os, signal, sys
    import numpy as np
    from PIL import Image
    from saicm.eval.cache import DecodeCache
    from saicm.eval.codecs import get_codec
    from saicm.eval.rd import sweep

    where, cache_dir = sys.argv[1], sys.argv[2]
    state = {"encodes": 0, "went_on": False}
    jpeg = get_codec("jpeg")

    class Codec:
        name, default_qualities = "jpeg", (30, 60)

        def encode(self, img, q):
            state["encodes"] += 1
            if where == "encode" and state["encodes"] == 2:
                os.kill(os.getpid(), signal.SIGTERM)
                state["went_on"] = True
            return jpeg.encode(img, q)

        def decode(self, data):
            return jpeg.decode(data)

        def size(self, data):
            return len(data)

        def check_quality(self, q):
            pass

        def config(self):
            return jpeg.config()

    class Task:
        name = "t"

        def evaluate(self, images, originals):
            if where == "task" and images is not originals:
                os.kill(os.getpid(), signal.SIGTERM)
                state["went_on"] = True
            return {}

    rng = np.random.default_rng(0)
    imgs = {f"{i}.png": Image.fromarray(rng.integers(0, 256, (16, 24, 3), dtype=np.uint8)) for i in range(3)}
    cache = DecodeCache(cache_dir if cache_dir != "-" else None, "jpeg", jpeg.config())
    try:
        sweep(Codec(), imgs, [30, 60], task=Task(), cache=cache, progress=False)
    except KeyboardInterrupt as e:
        print(json.dumps(dict(state, message=str(e))))
        sys.exit(130)
    print(json.dumps(dict(state, message=None)))
""")


def _run(tmp_path: Path, where: str, cache: bool = True) -> tuple[int, dict]:
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[1]))
    p = subprocess.run([sys.executable, "-c", CHILD, where, str(tmp_path / "c") if cache else "-"],
                       capture_output=True, text=True, env=env, timeout=300)
    return p.returncode, (json.loads(p.stdout) if p.stdout.strip() else {"stderr": p.stderr})


@pytest.mark.skipif(not hasattr(signal, "SIGTERM") or os.name == "nt", reason="POSIX signals")
def test_sigterm_during_an_encode_stops_after_the_image_with_its_decode_cached(tmp_path):
    """A scheduler's SIGTERM during an encode (minutes an image with --refine) ended the process where it stood:
    no word, the image's encode lost. It now finishes that image, caches it and stops, saying what is kept."""
    code, out = _run(tmp_path, "encode")
    assert code == 130, out
    assert out["went_on"] and out["encodes"] == 2  # the image in progress finished, no other begun
    assert "after jpeg quality 30, image 2 of 3" in out["message"] and "cached" in out["message"]
    assert len(list((tmp_path / "c").rglob("*.png"))) == 2  # its decode kept for the next run
    assert not list((tmp_path / "c").rglob(".*"))  # no half-written entry


@pytest.mark.skipif(not hasattr(signal, "SIGTERM") or os.name == "nt", reason="POSIX signals")
def test_sigterm_in_the_task_model_or_without_a_cache_stops_at_once(tmp_path):
    """Nothing is kept by waiting for the task model (its results are not cached) or for an image with no cache to
    keep it: the first signal stops there."""
    code, out = _run(tmp_path, "task")
    assert code == 130 and not out["went_on"] and out["encodes"] == 3, out
    assert "in the task model at jpeg quality 30" in out["message"]
    code, out = _run(tmp_path, "encode", cache=False)
    assert code == 130 and not out["went_on"] and out["encodes"] == 2, out
    assert "nothing is kept" in out["message"]
