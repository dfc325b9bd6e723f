import os
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
#: the development data (../shared/data beside the checkout; $SAICM_TEST_DATA from a clone elsewhere)
SHARED = Path(os.environ.get("SAICM_TEST_DATA") or ROOT.parent / "shared" / "data")


def pytest_configure(config):
    """The suite's own cache (ONNX graphs, evaluation decodes) in a temporary folder, for every test and the processes
    they start: it read and wrote the user's ~/.cache/saicm (180 MB after some runs), and a read-only home made
    tests fail. Building every shipped model's graphs costs ~3 s; a test that needs another cache sets its own."""
    import atexit
    import tempfile

    # architectures of the user's own are not the suite's: an exported $SAICM_ARCHITECTURES that does not import here
    # failed every test that builds a model (and one that does adds names to the messages tests read)
    os.environ.pop("SAICM_ARCHITECTURES", None)
    # nor are a user's exported cache and imported models (the suite read and wrote that cache, and a model of theirs
    # named like a test's unknown name changed what the test saw): both in the session's own temporary folders
    for var, prefix in (("SAICM_CACHE", "saicm-test-cache-"), ("SAICM_MODELS", "saicm-test-models-")):
        folder = tempfile.mkdtemp(prefix=prefix)
        os.environ[var] = folder
        atexit.register(shutil.rmtree, folder, ignore_errors=True)


#: torch.compile builds its CPU kernels with a C++ compiler; tests of --compile skip without one
needs_cxx_compiler = pytest.mark.skipif(
    not any(shutil.which(c) for c in ("g++", "c++", "clang++")),
    reason="no C++ compiler: torch.compile cannot build its CPU kernels here")


def shared_path(*parts: str) -> Path:
    p = SHARED.joinpath(*parts)
    if not p.exists():
        pytest.skip(f"needs the shared data fixture {p} (not part of the repository; $SAICM_TEST_DATA points "
                    "at its folder)")
    return p


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory) -> Path:
    """A randomly initialised small model file, as the trainer would export it."""
    import torch

    from saicm.models import build_architecture, save_model

    torch.manual_seed(0)
    net = build_architecture("gained-mean-scale-hyperprior", N=16, M=24, lambdas=[0.002, 0.01, 0.05])
    path = tmp_path_factory.mktemp("models") / "tiny.safetensors"
    save_model(net, path)
    return path


def switch_contexts_on(net):
    """A context model's aggregation ends at zero (it codes like its hyperprior); random last layers make every
    context network change the coder's tables, as a trained one does. Returns ``net``."""
    import torch

    with torch.no_grad():
        for agg in net.aggregate:
            agg[-1].weight.normal_(0, 0.05)
    return net


def assert_pixels_within_one(a, b, identical: float = 0.999) -> None:
    """Decodes of the same file by float synthesis networks on different CPUs (other kernels, other summation
    order) may round a pixel the other way: every pixel within ±1, and nearly all identical. Where the coder's
    tables or the latent differed, far more pixels would differ, and by more."""
    a, b = np.asarray(a, dtype=int), np.asarray(b, dtype=int)
    assert a.shape == b.shape
    assert np.abs(a - b).max() <= 1
    assert (a == b).mean() >= identical


def natural_image(h: int = 96, w: int = 128, seed: int = 0) -> np.ndarray:
    """A smooth image with edges: gradients plus a few rectangles."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w]
    img = np.stack([xx * 255 / max(w - 1, 1), yy * 255 / max(h - 1, 1), (xx + yy) * 127 / max(h + w, 1)], -1)
    for _ in range(4):
        y0, x0 = rng.integers(0, h), rng.integers(0, w)
        img[y0: y0 + h // 4, x0: x0 + w // 4] = rng.integers(0, 256, 3)
    return img.astype(np.uint8)


def natural_folder(folder: Path, n: int, h: int, w: int, prefix: str = "") -> Path:
    """``folder`` made, holding ``n`` PNGs of :func:`natural_image` (seeds 0…n−1), named ``{prefix}{i}.png``."""
    folder.mkdir()
    for i in range(n):
        Image.fromarray(natural_image(h, w, seed=i)).save(folder / f"{prefix}{i}.png")
    return folder


@pytest.fixture
def image_file(tmp_path) -> Path:
    p = tmp_path / "img.png"
    Image.fromarray(natural_image()).save(p)
    return p


def run_without_torch(body: str, cache_dir):
    """Run Python statements ``body`` in a child where importing torch or compressai fails (a coding-only install,
    simulated), with an empty ``SAICM_CACHE``; ``from saicm.cli import main`` is done. Returns the CompletedProcess."""
    import subprocess

    code = ("import sys\n"
            "sys.modules['torch'] = sys.modules['compressai'] = None  # import torch -> ModuleNotFoundError\n"
            "from saicm.cli import main\n" + body)
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                          env=dict(os.environ, SAICM_CACHE=str(cache_dir)))


def run_cli(*args: str, cwd=None):
    """Run ``python -m saicm`` in a subprocess: what a user sees."""
    import subprocess

    env = dict(os.environ, PYTHONWARNINGS="ignore")
    return subprocess.run([sys.executable, "-m", "saicm", *map(str, args)], capture_output=True, text=True,
                          cwd=cwd, env=env, timeout=600)


def real_cost(data, original, lam, coded_bytes=None):
    """bpp from bytes written (``coded_bytes``, default the whole file) + λ·255²·MSE of the (default) decode:
    the quantity refinement lowers."""
    import saicm

    dec = np.asarray(saicm.decompress(data), dtype=np.float64) / 255
    h, w = original.shape[:2]
    n = len(data) if coded_bytes is None else coded_bytes
    return 8 * n / (h * w) + lam * 255**2 * np.mean((dec - original / 255.0) ** 2)


class RunsCode:
    """Pickles to a call of ``os.mkdir(marker)``: a file holding it runs code if unpickled without
    ``weights_only``; readers of files from strangers must refuse it (the marker folder must never appear)."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        import os

        return (os.mkdir, (str(self.marker),))


def free_port() -> int:
    """A TCP port free on this machine now, for a test's torch.distributed rendezvous (a fixed port fails when two
    test runs, or anything else, hold it)."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def photos_with_their_mask_folder(tmp_path) -> Path:
    """Three photos in tmp_path/photos and, inside it, the mask folder `saicm masks photos -o photos/masks --preview`
    makes (allowed: its output is no input of that job): 6 files that are no photos."""
    import saicm.cli

    d = natural_folder(tmp_path / "photos", 3, 40, 56)
    assert saicm.cli.main(["masks", str(d), "-o", str(d / "masks"), "--source", "regions", "--preview",
                           "--quiet"]) == 0
    return d
