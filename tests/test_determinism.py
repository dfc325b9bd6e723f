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


THREADS = """
import threading, torch
from saicm.device import single_thread_kernels
from saicm.models.determinism import synthesize_in_strips
torch.set_num_threads(2)
a_in, a_out, b_in = threading.Event(), threading.Event(), threading.Event()
seen, strips = {}, []

def a():  # a call in one thread of a service...
    with single_thread_kernels():
        a_in.set()
        b_in.wait()
    a_out.set()

def strip(t):  # (in B's workers: their first kernels after A has ended)
    b_in.set()
    a_out.wait()
    strips.append(torch.get_num_threads())
    return t

def b():  # ...and one that begins, in a thread new to PyTorch, while it runs, and ends after it
    a_in.wait()
    with single_thread_kernels() as n:
        seen["n"] = n
        synthesize_in_strips(strip, torch.zeros(1, 1, 64, 1), scale=1)

ts = [threading.Thread(target=f) for f in (a, b)]
[t.start() for t in ts]
[t.join() for t in ts]
later = []
t = threading.Thread(target=lambda: later.append(torch.get_num_threads()))
t.start()
t.join()
print(seen["n"], sorted(set(strips)), later[0], torch.get_num_threads())
"""


def test_threads_coding_at_once_leave_pytorch_its_thread_count():
    """A call that began in a thread new to PyTorch while another ran took 1 for the process's count: it ran its
    strips on one worker, and left every later thread one (a service's thread pool, after two PyTorch-path calls
    at once). Workers started after the other call ended still run their kernels on one thread."""
    r = subprocess.run([sys.executable, "-c", THREADS], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    assert r.stdout.split() == ["2", "[1]", "2", "2"]


NESTED_AND_FORKED = r"""
import os, torch
from saicm.device import single_thread_kernels
torch.set_num_threads(2)
with single_thread_kernels() as n:
    with single_thread_kernels() as inner:
        pass
    print(n, inner, torch.get_num_threads())  # (the outer call's kernels still on one thread)
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # a child forked inside the call: its own nested call still says the process's count
        with single_thread_kernels() as child:
            pass
        os.write(w, f"{child} {torch.get_num_threads()}".encode())
        os._exit(0)
    os.waitpid(pid, 0)
    print(os.read(r, 100).decode())
print(torch.get_num_threads())
"""


def test_a_nested_call_leaves_the_outer_one_on_one_thread_also_in_a_forked_child():
    """A call inside another (one thread) gives the outer one's kernels their single thread back only when the outer
    one leaves; in a child forked inside a call, a nested call yields the process's count, not 1 (mutation audit:
    restoring at any depth, and a child counting no call in progress, were not caught)."""
    r = subprocess.run([sys.executable, "-c", NESTED_AND_FORKED], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    assert r.stdout.split() == ["2", "2", "1", "2", "1", "2"]
