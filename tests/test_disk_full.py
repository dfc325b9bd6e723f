"""Outputs on a full disk (or past a file-size limit): one line naming the output, the file there kept, nothing left.

A real full disk needs a small file system (a tmpfs, root only); a file-size limit (``RLIMIT_FSIZE``, which Python
turns into ``OSError(EFBIG)``: it ignores SIGXFSZ) gives the same failure half-way through a write, anywhere.
"""

from __future__ import annotations

import contextlib
import errno
import os
import sys
from pathlib import Path

import pytest

from saicm.errors import SaicmError

resource = pytest.importorskip("resource", reason="needs POSIX resource limits")


@contextlib.contextmanager
def file_size_limit(nbytes: int):
    """Files written inside cannot grow past ``nbytes`` (this process's soft limit, put back after)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    resource.setrlimit(resource.RLIMIT_FSIZE, (nbytes, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))


def _left(folder) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX file-size limit")
def test_a_write_that_runs_out_of_room_is_one_line_naming_the_output(tmp_path):
    """The disk filling after the temporary file was made (every output but the first byte's) was a traceback:
    eval's results, plot, report, bdrate --json, strip, export, video frames and decode."""
    from saicm._fs import write_atomic, write_bytes_atomic

    dest = tmp_path / "r.json"
    dest.write_bytes(b"the results of yesterday")
    with file_size_limit(1000), \
            pytest.raises(SaicmError, match=r"r\.json: cannot write output \(File too large\)") as e:
        write_bytes_atomic(dest, b"x" * 5000)
    assert e.value.errno == errno.EFBIG
    assert dest.read_bytes() == b"the results of yesterday" and _left(tmp_path) == ["r.json"]

    def writer(tmp):  # (what a writer library raises: a full disk in the middle of its writes)
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    with pytest.raises(SaicmError, match=r"p\.png: cannot write output \(No space left on device\)") as e:
        write_atomic(tmp_path / "p.png", writer)
    assert e.value.errno == errno.ENOSPC and _left(tmp_path) == ["r.json"]


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX file-size limit")
def test_a_folder_output_that_runs_out_of_room_is_one_line_and_leaves_nothing(tmp_path):
    from saicm._fs import atomic_folder

    with file_size_limit(1000), pytest.raises(SaicmError, match=r"frames: cannot write output \(File too large\)"):
        with atomic_folder(tmp_path / "frames") as tmp:
            (tmp / "frame_000000.png").write_bytes(b"x" * 5000)
    assert _left(tmp_path) == []


def test_a_folder_job_still_says_a_full_disk_stops_it(tmp_path):
    """The error, now a SaicmError from the temporary file's writing, still ends the job in the line it had."""
    from saicm.codec import batch

    def full(job):
        from saicm._fs import write_atomic

        def writer(tmp):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

        write_atomic(job.dst, writer)
        return {}

    jobs = [batch.Job(tmp_path / f"{i}.png", tmp_path / "out" / f"{i}.saicm") for i in range(2)]
    with pytest.raises(SaicmError, match=r"0\.saicm: cannot write output \(No space left on device\): the job "
                                         "stops here") as e:
        batch.run(full, jobs, workers=1, progress=False)
    assert e.value.errno == errno.ENOSPC


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX file-size limit")
def test_a_checkpoint_or_model_file_that_runs_out_of_room_is_one_line_and_keeps_the_last_one(tmp_path):
    """PyTorch's writer said a full disk as ``RuntimeError: [enforce fail at inline_container.cc] unexpected pos``
    and safetensors' as ``SafetensorError``: tracebacks in the middle of a training run, a video encode, an
    export; the checkpoint before stays whole, for --resume."""
    torch = pytest.importorskip("torch")
    from saicm._torchfile import load_data_only
    from saicm.models.zoo import build_architecture, save_model
    from saicm.video.train import _save_checkpoint  # (saicm train's writes its checkpoint the same way)

    ckpt = tmp_path / "checkpoint.pt"
    _save_checkpoint(ckpt, {"step": 10, "w": torch.zeros(4)})
    with file_size_limit(4000), pytest.raises(SaicmError, match=r"checkpoint\.pt: cannot write output \(File too "
                                                                 r"large\)"):
        _save_checkpoint(ckpt, {"step": 20, "w": torch.zeros(100_000)})
    assert load_data_only(ckpt)["step"] == 10 and _left(tmp_path) == ["checkpoint.pt"]

    model = build_architecture("gained-mean-scale-hyperprior", N=8, M=8)
    with file_size_limit(4000), pytest.raises(SaicmError, match=r"m\.safetensors: cannot write output \(File too "
                                                                 r"large\)"):
        save_model(model, tmp_path / "m.safetensors")
    assert _left(tmp_path) == ["checkpoint.pt"]


@pytest.mark.parametrize("where", ["output", "checkpoint"])
def test_a_video_encode_into_a_folder_it_cannot_write_is_refused_before_the_fit(tmp_path, monkeypatch, where):
    """The fit ran to its end (a named --checkpoint elsewhere) or to its first checkpoint, then stopped on the
    read-only folder, the work lost."""
    np = pytest.importorskip("numpy")
    pytest.importorskip("torch")
    from saicm.video import api

    ro = tmp_path / "ro"
    ro.mkdir()
    real_access = os.access
    monkeypatch.setattr(os, "access", lambda path, mode, **kw: Path(path) != ro and real_access(path, mode, **kw))
    monkeypatch.setattr(api, "fit", lambda *a, **k: pytest.fail("the fit ran"))  # (as root, chmod would not do)
    out, ckpt = (ro / "a.saicmv", tmp_path / "a.ckpt") if where == "output" else (tmp_path / "a.saicmv", ro / "c")
    tiny = {"pe_levels": 8, "mlp_hidden": [16], "c0": 8, "channels": [16, 12, 8, 8, 6]}
    with pytest.raises(SaicmError, match="ro: cannot write to this output folder"):
        api.encode(np.zeros((4, 48, 64, 3), np.uint8), out, preset=tiny, epochs=2, checkpoint=ckpt, progress=False)


def test_frames_go_into_an_empty_folder_that_cannot_be_replaced(tmp_path, monkeypatch):
    """An empty -o folder that is a mount point (a fresh disk) cannot be removed nor renamed onto: the frames were
    written beside it (on the other disk), then all lost at the end to ``OSError: [Errno 16] Device or resource
    busy``; now they are written inside it, and a killed job's temporary folder there does not block a rerun."""
    np = pytest.importorskip("numpy")
    from saicm.video.io import write_png_frames

    mnt = tmp_path / "mnt"
    mnt.mkdir()
    real_rmdir, real_replace = os.rmdir, os.replace

    def busy(path, *a, **k):
        if Path(path) == mnt:
            raise OSError(errno.EBUSY, os.strerror(errno.EBUSY), str(path))

    monkeypatch.setattr(os, "rmdir", lambda p, *a, **k: (busy(p), real_rmdir(p, *a, **k))[1])
    monkeypatch.setattr(os, "replace", lambda a, b, *x, **k: (busy(b), real_replace(a, b, *x, **k))[1])
    (mnt / ".mnt.abc123.part").mkdir()  # (a killed job's)
    frames = np.zeros((2, 8, 8, 3), np.uint8)
    write_png_frames([(0, frames)], mnt, meta={})
    assert _left(mnt) == [".mnt.abc123.part", "frame_000000.png", "frame_000001.png", "frames.json"]
    with pytest.raises(SaicmError, match="not an empty folder"):
        write_png_frames([(0, frames)], mnt)
    assert _left(mnt) == [".mnt.abc123.part", "frame_000000.png", "frame_000001.png", "frames.json"]


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX file-size limit")
def test_the_demo_leaves_no_cut_coded_file_by_its_name(tmp_path):
    """The demo's two-layer files were written in place: a full disk (or a kill) left a cut .saicm by its name."""
    pytest.importorskip("torch")
    from PIL import Image

    from saicm.demo import _layers_demo
    from saicm.models.catalog import RECOMMENDED_SCALABLE_MODEL, shipped_models

    if RECOMMENDED_SCALABLE_MODEL not in shipped_models():
        pytest.skip("the scalable model is not shipped in this install")
    rng = __import__("numpy").random.default_rng(0)
    img = Image.fromarray(rng.integers(0, 256, (64, 64, 3), dtype="uint8"))
    with file_size_limit(600), pytest.raises(SaicmError, match="cannot write output"):
        _layers_demo(tmp_path, {"original": img, "image": "x"}, RECOMMENDED_SCALABLE_MODEL)
    assert _left(tmp_path) == []


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs /dev/full (a device always full)")
def test_a_job_log_on_a_full_disk_is_one_line(tmp_path, tiny_model, capsys):
    """--log on a full disk ended the job in three chained tracebacks (the write, the flush, the close)."""
    from PIL import Image

    from saicm.cli import main

    from .conftest import natural_image

    Image.fromarray(natural_image(32, 32)).save(tmp_path / "a.png")
    code = main(["compress", str(tmp_path / "a.png"), "-o", str(tmp_path / "a.saicm"), "--model", str(tiny_model),
                 "--log", "/dev/full", "--quiet"])
    err = capsys.readouterr().err
    assert code == 2 and err == "saicm: error: /dev/full: cannot write the log (No space left on device)\n", err


def test_a_rerun_after_a_full_disk_starts_its_log_lines_on_a_line_of_their_own(tmp_path, tiny_model, capsys):
    """A full disk stops the job with half a JSON line in --log; the documented way on (free space, run again with
    --existing skip and the same --log) appended the next record to that half line: both were lost to a JSON
    reader."""
    import json

    from PIL import Image

    from saicm.cli import main

    from .conftest import natural_image

    (tmp_path / "in").mkdir()
    for name in ("a", "b"):
        Image.fromarray(natural_image(32, 32)).save(tmp_path / "in" / f"{name}.png")
    log = tmp_path / "job.jsonl"
    log.write_text('{"input": "x.png", "output": "x.saicm", "status": "written"}\n{"input": "in/a.png", "outp')
    assert main(["compress", str(tmp_path / "in"), "-o", str(tmp_path / "out"), "--model", str(tiny_model),
                 "--log", str(log), "--quiet"]) == 0
    lines = log.read_text().splitlines()
    assert len(lines) == 4 and lines[1] == '{"input": "in/a.png", "outp'
    assert [json.loads(line)["status"] for line in (lines[0], *lines[2:])] == ["written"] * 3


def test_a_rerun_appending_to_a_whole_log_adds_no_empty_line(tmp_path, tiny_model, capsys):
    """Only a log ending in half a line gets a newline before the next record (mutation audit: one before every
    appended run, a blank line in the JSON Lines, passed; `json.loads` of each line then fails on it)."""
    import json

    from PIL import Image

    from saicm.cli import main

    from .conftest import natural_image

    (tmp_path / "in").mkdir()
    Image.fromarray(natural_image(32, 32)).save(tmp_path / "in" / "a.png")
    log = tmp_path / "job.jsonl"
    for existing in ("refuse", "skip"):
        assert main(["compress", str(tmp_path / "in"), "-o", str(tmp_path / "out"), "--model", str(tiny_model),
                     "--log", str(log), "--quiet", "--existing", existing]) == 0
    lines = log.read_text().splitlines()
    assert [json.loads(line)["status"] for line in lines] == ["written", "skipped"]


def test_an_image_and_a_clip_do_not_replace_each_others_coded_files(tmp_path, tiny_model, capsys, monkeypatch):
    """`compress frame.png -o clip.saicmv` replaced the clip's file (hours of fitting) with an image's, and
    `video encode clip -o photo.saicm` an image's with the clip's; each is refused, before any work."""
    np = pytest.importorskip("numpy")
    from PIL import Image

    from saicm.cli import main
    from saicm.video import api

    from .conftest import natural_image

    Image.fromarray(natural_image(32, 32)).save(tmp_path / "a.png")
    (tmp_path / "clip.saicmv").write_bytes(b"a clip")
    code = main(["compress", str(tmp_path / "a.png"), "-o", str(tmp_path / "clip.saicmv"), "--model", str(tiny_model)])
    assert code == 2 and "names a coded clip (.saicmv)" in capsys.readouterr().err
    assert (tmp_path / "clip.saicmv").read_bytes() == b"a clip"

    (tmp_path / "photo.saicm").write_bytes(b"a photo")
    monkeypatch.setattr(api, "fit", lambda *a, **k: pytest.fail("the fit ran"))
    with pytest.raises(SaicmError, match=r"names an image's coded file \(\.saicm\)"):
        api.encode(np.zeros((2, 48, 64, 3), np.uint8), tmp_path / "photo.saicm", progress=False)
    assert (tmp_path / "photo.saicm").read_bytes() == b"a photo"


def test_a_killed_video_fit_leaves_no_checkpoint_parts_behind_its_resumption(tmp_path):
    """kill -9 while a checkpoint was written left its temporary file (as big as the checkpoint); a resumed fit,
    killed again, added one each time (saicm train removes its own)."""
    np = pytest.importorskip("numpy")
    pytest.importorskip("torch")
    from saicm.video import api

    stale = tmp_path / ".a.saicmv.ckpt.k1ll3d9x.part.ckpt"
    stale.write_bytes(b"half a checkpoint")
    other = tmp_path / ".b.saicmv.ckpt.k1ll3d9x.part.ckpt"  # (another output's: not this fit's to remove)
    other.write_bytes(b"x")
    tiny = {"pe_levels": 8, "mlp_hidden": [16], "c0": 8, "channels": [16, 12, 8, 8, 6]}
    api.encode(np.zeros((2, 48, 64, 3), np.uint8), tmp_path / "a.saicmv", preset=tiny, epochs=1, prune=0,
               qat_epochs=0, progress=False)
    assert _left(tmp_path) == [".b.saicmv.ckpt.k1ll3d9x.part.ckpt", "a.saicmv"]


def test_a_results_file_written_again_takes_away_the_parts_of_killed_writers(tmp_path):
    """saicm eval killed (kill -9) as it wrote its results file left ``.r.json.XXXX.part.json`` beside it, for good:
    the next write of that results file removes them (another file's are left)."""
    from saicm.eval import results

    stale = tmp_path / ".r.json.k1ll3d9x.part.json"
    stale.write_bytes(b'{"codec": "jpeg", "poi')
    other = tmp_path / ".s.json.k1ll3d9x.part.json"
    other.write_bytes(b"{")
    r = results.new_result("jpeg", {}, "photos", "psnr", 1)
    r["points"] = [{"quality": 50, "bpp": 1.0, "psnr": 30.0}]
    results.save(r, tmp_path / "r.json")
    assert _left(tmp_path) == [".s.json.k1ll3d9x.part.json", "r.json"]
    assert results.load(tmp_path / "r.json")["points"][0]["psnr"] == 30.0
