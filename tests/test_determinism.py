"""Decoding is a function of the bitstream alone, whatever the thread count."""

import hashlib
import subprocess
import sys

import saicm

from .conftest import natural_image

DECODE = """
import sys, hashlib, torch
torch.set_num_threads(int(sys.argv[1]))
import saicm, numpy as np
img = saicm.decompress(open(sys.argv[2], "rb").read(), model=sys.argv[3])
print(hashlib.sha256(np.asarray(img).tobytes()).hexdigest())
"""


def _decode_in_subprocess(threads: int, stream, model) -> str:
    r = subprocess.run([sys.executable, "-c", DECODE, str(threads), str(stream), str(model)],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    return r.stdout.strip()


def test_decode_is_bit_exact_across_processes_and_thread_counts(tmp_path):
    _, info = saicm.load_model()  # the shipped default: real weights, real rates
    stream = tmp_path / "x.saicm"
    stream.write_bytes(saicm.compress(natural_image(200, 328, seed=5), model=info.path, quality=4))
    one = _decode_in_subprocess(1, stream, info.path)
    two = _decode_in_subprocess(2, stream, info.path)
    three = _decode_in_subprocess(3, stream, info.path)
    here = hashlib.sha256(saicm.decompress(stream.read_bytes(), model=info.path).tobytes()).hexdigest()
    assert one == two == three == here
