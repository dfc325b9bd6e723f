"""saicm in a locked-down container or batch node: no home, a read-only working folder and temporary folder, no
writable /dev/shm. What cannot be written there is one line naming the path and the variable that moves it, and
what can go on without it goes on (the container audit, 0.30.0)."""

import os
import subprocess
import sys
import warnings

import pytest
from PIL import Image

from saicm.errors import SaicmWarning

from .conftest import natural_image


def test_a_kernel_cache_folder_torch_cannot_make_is_one_line(tmp_path):
    """Importing CompressAI makes PyTorch's kernel cache folder; where it cannot, ``saicm eval`` printed a traceback
    of ~50 lines ending in tempfile's "No usable temporary directory" (a read-only /tmp), naming neither variable."""
    images = tmp_path / "images"
    images.mkdir()
    Image.fromarray(natural_image(64, 64)).save(images / "a.png")
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    env = dict(os.environ, PYTHONWARNINGS="ignore", TORCHINDUCTOR_CACHE_DIR=str(blocker / "cache"))
    r = subprocess.run([sys.executable, "-m", "saicm", "eval", "--codec", "mse-hyperprior-n64-v5", "--qualities", "1",
                        "--dataset", str(images), "-o", str(tmp_path / "r.json"), "--no-cache", "--quiet"],
                       capture_output=True, text=True, env=env, timeout=600)
    if r.returncode == 0:
        import pytest

        pytest.skip("this CompressAI does not make PyTorch's kernel cache folder at import")
    lines = r.stderr.strip().splitlines()
    assert "Traceback" not in r.stderr and len(lines) == 1, r.stderr
    assert "TORCHINDUCTOR_CACHE_DIR" in lines[0] and "TMPDIR" in lines[0] and str(blocker / "cache") in lines[0]


def test_a_kernel_cache_folder_torch_cannot_make_stops_a_nerv_fit_in_one_line(tmp_path):
    """NeRV's fit imports no CompressAI: PyTorch's compiler (and its kernel cache folder) came with the first
    optimiser, a traceback of ~30 lines from ``saicm video encode`` (a read-only /tmp)."""
    from pathlib import Path

    clip = tmp_path / "frames"
    r = subprocess.run([sys.executable, "-m", "saicm", "video", "decode",
                        str(Path(__file__).parent / "reference" / "shapes-64x48-8f-tiny.saicmv"), "-o", str(clip)],
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    env = dict(os.environ, PYTHONWARNINGS="ignore", TORCHINDUCTOR_CACHE_DIR=str(blocker / "cache"))
    r = subprocess.run([sys.executable, "-m", "saicm", "video", "encode", str(clip), "--preset", "xs", "--epochs", "1",
                        "--prune-epochs", "0", "--qat-epochs", "0", "-o", str(tmp_path / "v.saicmv"), "--quiet"],
                       capture_output=True, text=True, env=env, timeout=600)
    lines = r.stderr.strip().splitlines()
    assert r.returncode != 0 and "Traceback" not in r.stderr and len(lines) == 1, r.stderr
    assert "TORCHINDUCTOR_CACHE_DIR" in lines[0] and str(blocker / "cache") in lines[0]
    assert not (tmp_path / "v.saicmv").exists()


def test_a_folder_job_without_worker_processes_is_coded_in_this_process(tmp_path, capsys, monkeypatch):
    """``--jobs 2`` where no pool of processes can be made (its locks are files in /dev/shm: read-only or missing in
    a container) codes the folder in this process, said once; it was a traceback ending in ``OSError``."""
    import errno

    from saicm.cli import main
    from saicm.codec import batch

    def no_pool(*args, **kwargs):
        raise OSError(errno.EROFS, "Read-only file system")

    monkeypatch.setattr(batch, "ProcessPoolExecutor", no_pool)
    images = tmp_path / "images"
    images.mkdir()
    for name in ("a", "b"):
        Image.fromarray(natural_image(48, 40)).save(images / f"{name}.png")
    assert main(["compress", str(images), "-o", str(tmp_path / "coded"), "--jobs", "2", "--quiet"]) == 0
    assert sorted(p.name for p in (tmp_path / "coded").iterdir()) == ["a.saicm", "b.saicm"]
    err = capsys.readouterr().err
    assert "Traceback" not in err and err.count("saicm: warning: cannot start worker processes") == 1, err
    assert "/dev/shm" in err


def test_standard_output_without_a_temporary_folder_names_tmpdir(tmp_path):
    """``-o /dev/stdout`` is staged in a temporary file; with none to be had (a read-only /tmp, TMPDIR missing) the
    error was tempfile's "No usable temporary directory found in [...]" under the input's name, as if the input
    were at fault, naming no variable."""
    photo = tmp_path / "photo.png"
    Image.fromarray(natural_image(48, 40)).save(photo)
    code = ("import sys, tempfile\n"
            f"tempfile.tempdir = {str(tmp_path / 'missing')!r}  # (what gettempdir() gives)\n"
            "from saicm.cli import main\n"
            f"sys.exit(main(['compress', {str(photo)!r}, '-o', '/dev/stdout', '--quiet']))\n")
    with open(tmp_path / "out", "wb") as out:
        r = subprocess.run([sys.executable, "-c", code], stdout=out, stderr=subprocess.PIPE, text=True,
                           env=dict(os.environ, PYTHONWARNINGS="ignore"), timeout=600)
    lines = r.stderr.strip().splitlines()
    assert r.returncode != 0 and len(lines) == 1 and "Traceback" not in r.stderr, r.stderr
    assert lines[0].startswith("saicm: error: /dev/stdout: ") and "TMPDIR" in lines[0], lines[0]
    assert (tmp_path / "out").read_bytes() == b""


def test_matplotlib_without_a_config_folder_is_one_line(tmp_path):
    """``saicm plot`` and ``saicm report`` with no home, no MPLCONFIGDIR and no writable temporary folder: matplotlib's
    import failed, a traceback of ~30 lines."""
    from .test_eval_cli import write_result

    a = write_result(tmp_path / "a.json", "anchor", [(0.2, 30), (0.4, 33), (0.8, 36)])
    env = {k: v for k, v in os.environ.items() if k not in ("MPLCONFIGDIR", "XDG_CONFIG_HOME", "XDG_CACHE_HOME")}
    (tmp_path / "a-file").write_text("")
    env.update(HOME=str(tmp_path / "a-file" / "home"), PYTHONWARNINGS="ignore")  # (a home no one can make)
    for argv in (["plot", str(a), "-o", str(tmp_path / "curves")], ["report", str(a), "-o", str(tmp_path / "r.html")]):
        code = ("import sys, tempfile\n"
                f"tempfile.tempdir = {str(tmp_path / 'missing')!r}  # (what gettempdir() gives)\n"
                "from saicm.cli import main\n"
                f"sys.exit(main({argv!r}))\n")
        r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=600)
        lines = r.stderr.strip().splitlines()
        # (before it, matplotlib's own line saying which folder it could not make, when $HOME names one)
        assert r.returncode == 2 and "Traceback" not in r.stderr and len(lines) <= 2, r.stderr
        assert lines[-1].startswith("saicm: error: matplotlib ") and "MPLCONFIGDIR" in lines[-1], lines[-1]
        assert sorted(p.name for p in tmp_path.iterdir()) == ["a-file", "a.json"]


def test_a_cache_that_cannot_be_written_names_the_variable_that_moves_it(tmp_path, capsys, monkeypatch):
    """``saicm eval`` goes on without a decode cache it cannot write (a read-only home), said once; the warning named
    ``--cache`` alone, which a job whose command line is fixed (a container's entry point) cannot add."""
    from saicm.cli import main

    images = tmp_path / "images"
    images.mkdir()
    Image.fromarray(natural_image(48, 40)).save(images / "a.png")
    (tmp_path / "a-file").write_text("")
    monkeypatch.setenv("SAICM_CACHE", str(tmp_path / "a-file" / "cache"))
    with warnings.catch_warnings(record=True) as caught:  # (a SaicmWarning, said as "saicm: warning: ...")
        warnings.simplefilter("always")
        assert main(["eval", "--codec", "jpeg", "--qualities", "50", "--dataset", str(images), "-o",
                     str(tmp_path / "r.json"), "--quiet"]) == 0
    said = " ".join(str(w.message) for w in caught if issubclass(w.category, SaicmWarning))
    assert said.count("cannot write the cache in ") == 1 and "Traceback" not in capsys.readouterr().err, said
    assert "$SAICM_CACHE" in said and "--no-cache" in said
    assert (tmp_path / "r.json").is_file()


def test_clips_are_read_and_written_without_a_temporary_folder(tmp_path, capsys, monkeypatch):
    """ffmpeg's messages went to a temporary file: with no writable temporary folder (a container's read-only /tmp)
    ``saicm video decode -o x.mkv`` and reading a clip were a traceback ending in "No usable temporary directory"."""
    import tempfile
    from pathlib import Path

    import pytest

    from saicm.cli import main

    pytest.importorskip("imageio_ffmpeg")
    if not hasattr(os, "memfd_create"):
        pytest.skip("files in memory are Linux's")
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "missing"))  # (what gettempdir() gives)
    clip = Path(__file__).parent / "reference" / "shapes-64x48-8f-tiny.saicmv"
    assert main(["video", "decode", str(clip), "-o", str(tmp_path / "v.mkv")]) == 0
    assert main(["video", "frames", str(tmp_path / "v.mkv"), "-o", str(tmp_path / "frames")]) == 0
    assert len(list((tmp_path / "frames").glob("*.png"))) == 8
    assert "Traceback" not in capsys.readouterr().err


def test_an_import_into_a_model_folder_that_cannot_be_made_is_one_line(tmp_path, capsys, monkeypatch):
    """``saicm import-checkpoint`` writes to your model folder (``~/.local/share/saicm/models``): with no home (an
    arbitrary UID without a passwd entry) or a read-only one it was a traceback of five chained exceptions."""
    from saicm.cli import main

    import pytest

    torch = pytest.importorskip("torch")
    from compressai.models import MeanScaleHyperprior

    net = MeanScaleHyperprior(N=16, M=24)
    net.update(force=True)
    ckpt = tmp_path / "checkpoint.pth.tar"
    torch.save({"state_dict": net.state_dict()}, ckpt)
    (tmp_path / "a-file").write_text("")
    monkeypatch.setenv("SAICM_MODELS", str(tmp_path / "a-file" / "models"))
    assert main(["import-checkpoint", str(ckpt), "--arch", "mbt2018-mean", "--lam", "0.0067", "--name", "mine"]) == 2
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err
    assert "SAICM_MODELS" in lines[0] and "--out" in lines[0] and "cannot create output folder" in lines[0]
    # a folder the user named with --out is their own choice: its error names no model folder nor SAICM_MODELS
    out = tmp_path / "a-file" / "mine"
    assert main(["import-checkpoint", str(ckpt), "--arch", "mbt2018-mean", "--lam", "0.0067", "--name", "mine",
                 "--out", str(out)]) == 2
    assert capsys.readouterr().err.strip() == (f"saicm: error: {tmp_path / 'a-file'}: cannot create output folder "
                                               "(a file, not a folder, is in the way)")


def test_no_home_folder_is_never_made(tmp_path, capsys, monkeypatch):
    """A user with no home (``HOME=/nonexistent``, Debian's for system users; or no $HOME and no passwd entry):
    ``saicm eval`` tried to make its default decode cache in /nonexistent (and did, as root), and
    ``import-checkpoint`` its model folder there; the eval goes on without the cache, the import stops in one line."""
    import saicm._fs
    from saicm.cli import main

    no_home = tmp_path / "nonexistent"  # (standing in for /nonexistent: the tests may run as root)
    monkeypatch.setattr(saicm._fs, "NO_HOME", no_home)
    monkeypatch.setenv("HOME", str(no_home))
    for var in ("SAICM_CACHE", "XDG_CACHE_HOME", "SAICM_MODELS", "XDG_DATA_HOME"):
        monkeypatch.delenv(var, raising=False)
    images = tmp_path / "images"
    images.mkdir()
    Image.fromarray(natural_image(48, 40)).save(images / "a.png")
    assert main(["eval", "--codec", "jpeg", "--qualities", "50", "--dataset", str(images), "-o",
                 str(tmp_path / "r.json"), "--quiet"]) == 0
    err = capsys.readouterr().err
    assert err.count("saicm: warning: you have no home folder for the decode cache") == 1, err
    assert "$SAICM_CACHE" in err and (tmp_path / "r.json").is_file()
    ckpt = tmp_path / "checkpoint.pth.tar"
    ckpt.write_bytes(b"not read: the folder is checked first")
    assert main(["import-checkpoint", str(ckpt), "--arch", "mbt2018-mean", "--lam", "0.0067", "--name", "mine"]) == 2
    err = capsys.readouterr().err
    assert "you have no home folder for your model folder" in err and "SAICM_MODELS" in err, err
    assert not no_home.exists()


def test_a_failure_written_to_a_standard_stream_names_no_earlier_output(tmp_path):
    """A file that fails where an earlier run's output is says that output is left as it was; ``-o /dev/stdout`` (or
    ``/dev/null``) is no earlier output, yet a failure there said "(/dev/stdout, an earlier output, is left as it
    was)" (a container's job piping its output, with stdin closed: "/dev/stdin: is a device, not an image (...)")."""
    not_an_image = tmp_path / "x.png"
    not_an_image.write_bytes(b"not an image")
    for dest in ("/dev/stdout", "/dev/null"):
        if not os.path.exists(dest):
            continue
        with open(tmp_path / "out", "wb") as out:
            r = subprocess.run([sys.executable, "-m", "saicm", "compress", str(not_an_image), "-o", dest],
                               stdout=out, stderr=subprocess.PIPE, text=True, timeout=600,
                               env=dict(os.environ, PYTHONWARNINGS="ignore"))
        assert r.returncode != 0 and "Traceback" not in r.stderr, r.stderr
        assert "earlier output" not in r.stderr, r.stderr


def test_a_kernel_cache_folder_torch_cannot_make_stops_a_folder_job_once(tmp_path):
    """A folder coded through PyTorch (``--refine``) where its kernel cache folder cannot be made: the first file
    failed in one line, and the second retried the import of PyTorch's compiler, half of which the first had left
    behind: a traceback ending in torch_geometric's AttributeError. The job stops at the first, in one line."""
    images = tmp_path / "images"
    images.mkdir()
    for name in ("a", "b", "c"):
        Image.fromarray(natural_image(48, 40)).save(images / f"{name}.png")
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    env = dict(os.environ, PYTHONWARNINGS="ignore", TORCHINDUCTOR_CACHE_DIR=str(blocker / "cache"))
    r = subprocess.run([sys.executable, "-m", "saicm", "compress", str(images), "-o", str(tmp_path / "coded"),
                        "--refine", "1", "--quiet"], capture_output=True, text=True, env=env, timeout=600)
    if r.returncode == 0:
        import pytest

        pytest.skip("this PyTorch and CompressAI make no kernel cache folder at import")
    lines = r.stderr.strip().splitlines()
    assert "Traceback" not in r.stderr and len(lines) == 1, r.stderr
    assert "TORCHINDUCTOR_CACHE_DIR" in lines[0] and r.returncode == 2


def test_a_shared_library_pytorch_cannot_load_is_not_told_as_its_kernel_cache_folder(monkeypatch):
    """An ``OSError`` while PyTorch's compiler is imported was always told as the kernel cache folder it could not
    make (TMPDIR to move), and remembered for the process: a shared library it could not load (dlopen's error, no
    errno: ``libcudnn.so.9: cannot open shared object file``) is no folder's, and passes as it is, not remembered.
    A folder's error (an errno) is still the one line."""
    import importlib.abc

    import pytest

    from saicm.errors import SaicmError
    from saicm.train import compiling

    class Failing(importlib.abc.MetaPathFinder):
        def __init__(self, error):
            self.error = error

        def find_spec(self, name, path=None, target=None):
            if name == "torch._dynamo":
                raise self.error
            return None

    import torch  # noqa: F401

    monkeypatch.delitem(sys.modules, "torch._dynamo", raising=False)
    monkeypatch.setattr(compiling, "_kernel_cache_failed", None)
    dlopen = OSError("libcudnn.so.9: cannot open shared object file: No such file or directory")
    monkeypatch.setattr(sys, "meta_path", [Failing(dlopen), *sys.meta_path])
    with pytest.raises(OSError) as caught:
        compiling.import_dynamo()
    assert caught.value is dlopen and compiling.check_kernel_cache(raise_=False) is None
    monkeypatch.setattr(sys, "meta_path", [Failing(PermissionError(13, "Permission denied", "/tmp/torchinductor_x")),
                                           *sys.meta_path[1:]])
    with pytest.raises(SaicmError, match="kernel cache folder.*TORCHINDUCTOR_CACHE_DIR"):
        compiling.import_dynamo()


@pytest.mark.skipif(not hasattr(os, "geteuid"), reason="folder owners and modes (POSIX)")
def test_compiling_refuses_a_kernel_cache_folder_others_may_write(tmp_path, monkeypatch):
    """PyTorch takes the kernel cache folder it finds (``torchinductor_$USER`` in a shared /tmp: another user may
    make it first) and loads the compiled kernels in it: their planted code would run as the user (the local-user
    audit). --compile refuses such a folder in one line; one of the user's own is used."""
    from saicm.errors import SaicmError
    from saicm.train.compiling import CompiledStep

    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o777)  # (as /tmp/torchinductor_$USER made by someone else for all to write)
    monkeypatch.setenv("TORCHINDUCTOR_CACHE_DIR", str(shared))
    with pytest.raises(SaicmError, match=r"--compile: PyTorch's kernel cache folder .*shared is not yours alone.*"
                                         r"TORCHINDUCTOR_CACHE_DIR"):
        CompiledStep(lambda x: x + 1)
    own = tmp_path / "own"
    own.mkdir(mode=0o700)
    monkeypatch.setenv("TORCHINDUCTOR_CACHE_DIR", str(own))
    assert CompiledStep(lambda x: x + 1) is not None
