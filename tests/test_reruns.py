"""Folder jobs rerun over days (``--existing skip``): what counts as done is an output of the input as it is now.

The cases below are the minimal sequences a stateful property test of compress / decompress / strip reruns found
(add, replace, corrupt images and outputs between runs); each is a plain, deterministic test.
"""

import json
import os

import numpy as np
from PIL import Image

import saicm
from saicm.cli import main
from saicm.codec import batch

from .conftest import natural_folder, natural_image

MODEL = "mse-hyperprior-n64-v3"  # the smallest shipped model


def _folder(tmp_path, n=2):
    return natural_folder(tmp_path / "in", n, 32, 48, prefix="im")


def _age(path, seconds):
    """``path``'s modification time set back by ``seconds`` (a file written that long ago)."""
    st = os.stat(path)
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns - int(seconds * 1e9)))


def _log(path):
    return {os.path.basename(x["input"]): x for x in map(json.loads, path.read_text().splitlines())}


def test_existing_skip_does_not_count_a_damaged_output_as_done(tmp_path, capsys):
    """A cut-short or damaged .saicm under the output's name (a copy that failed, a disk's bad block) was counted
    done by ``compress --existing skip`` (exit 0, its log line ``skipped`` with its bytes only): only
    ``decompress`` found it, much later. It is no file of the job's model and quality: kept, one line, exit 1."""
    src, out = _folder(tmp_path), tmp_path / "out"
    job = ["compress", str(src), "-o", str(out), "--model", MODEL, "--quiet"]
    assert main(job) == 0
    cut = (out / "im0.saicm").read_bytes()[:100]
    (out / "im0.saicm").write_bytes(cut)
    capsys.readouterr()
    log = tmp_path / "job.jsonl"
    assert main([*job, "--existing", "skip", "--log", str(log)]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "im0.saicm" in err and "not counted done" in err, err
    assert (out / "im0.saicm").read_bytes() == cut  # kept, as a file of another quality is
    lines = _log(log)
    assert lines["im0.png"]["status"] == "failed" and lines["im1.png"]["status"] == "skipped"


def test_existing_skip_codes_an_image_changed_since_its_output_again(tmp_path, capsys):
    """An image replaced under its name after its output was written (a retake, an edited photo, a file that was
    damaged and is now whole, or damaged and was whole) kept the old picture's output, counted done with exit 0:
    a rerun skipped by name alone. An output older than its input is coded again; the others are still skipped."""
    src, out = _folder(tmp_path), tmp_path / "out"
    job = ["compress", str(src), "-o", str(out), "--model", MODEL, "--quiet"]
    assert main(job) == 0
    for p in src.iterdir():
        _age(p, 120)
    for p in out.iterdir():
        _age(p, 60)  # (written after its input, a minute ago: the replacement below is newer, whatever the clock)
    Image.fromarray(natural_image(32, 48, seed=7)).save(src / "im0.png")
    log = tmp_path / "job.jsonl"
    assert main([*job, "--existing", "skip", "--log", str(log)]) == 0
    assert (out / "im0.saicm").read_bytes() == saicm.compress(src / "im0.png", model=MODEL)
    lines = _log(log)
    assert lines["im0.png"]["status"] == "written" and lines["im1.png"]["status"] == "skipped"
    (src / "im1.png").write_bytes(b"no longer an image")  # damaged since: not done, and its old output not sent
    assert main([*job, "--existing", "skip"]) == 1
    assert "im1.png" in capsys.readouterr().err


def test_existing_skip_decodes_a_file_coded_again_since_its_decode(tmp_path):
    """``decompress --existing skip`` kept the decode of a .saicm file that was coded again since (another
    quality, a new picture), counted done."""
    src, coded, dec = _folder(tmp_path), tmp_path / "coded", tmp_path / "dec"
    assert main(["compress", str(src), "-o", str(coded), "--model", MODEL, "--quality", "1", "--quiet"]) == 0
    assert main(["decompress", str(coded), "-o", str(dec), "--quiet"]) == 0
    for p in dec.iterdir():
        _age(p, 60)
    assert main(["compress", str(src), "-o", str(coded), "--model", MODEL, "--quality", "6", "--quiet"]) == 0
    assert main(["decompress", str(coded), "-o", str(dec), "--existing", "skip", "--quiet"]) == 0
    for name in ("im0", "im1"):
        want = saicm.decompress((coded / f"{name}.saicm").read_bytes())
        assert np.array_equal(np.asarray(Image.open(dec / f"{name}.png")), np.asarray(want)), name


def test_an_up_to_date_output_is_still_skipped(tmp_path):
    """The other way round: an output newer than its input is done (the resume after an interruption), and one
    whose input is newer is not; a file whose time cannot be read is left to the check of its contents."""
    src, dst = tmp_path / "a.png", tmp_path / "a.saicm"
    src.write_bytes(b"x")
    dst.write_bytes(b"coded")
    _age(src, 60)
    assert batch._run_one(lambda job: {}, batch.Job(src, dst, skip=True)).skipped
    _age(dst, 120)
    out = batch._run_one(lambda job: (job.dst.write_bytes(b"new"), {})[1], batch.Job(src, dst, skip=True))
    assert not out.skipped and out.error is None and dst.read_bytes() == b"new"


def test_times_in_the_future_decide_as_make_says_and_are_said_once(tmp_path, monkeypatch):
    """Times in the future decide as any other (as in make) and each kind is said once per process: an input dated
    in the future (a camera's clock) is coded again at each rerun until its time comes (keeping its output kept a
    stale one after an edit); an output dated in the future (a file server's clock ahead) is done (remaking it
    remade every output at every rerun on such a server)."""
    import time
    import warnings

    monkeypatch.setattr(batch, "_said_future", set(), raising=False)
    src, dst = tmp_path / "a.png", tmp_path / "a.saicm"
    src.write_bytes(b"x")
    dst.write_bytes(b"coded")
    future = time.time_ns() + 365 * 86400 * 10**9
    os.utime(src, ns=(future, future))
    rewrite = lambda job: (job.dst.write_bytes(b"new"), {})[1]  # noqa: E731
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for _ in range(2):  # (the second rerun as well: the output written now is still older than the input)
            out = batch._run_one(rewrite, batch.Job(src, dst, skip=True))
            assert not out.skipped and out.error is None and dst.read_bytes() == b"new"
            dst.write_bytes(b"coded")
    assert len(caught) == 1 and "modification time in the future" in str(caught[0].message)
    assert "until that time comes" in str(caught[0].message)
    os.utime(src, ns=(future - 2 * 365 * 86400 * 10**9,) * 2)  # an input of a year ago ...
    os.utime(dst, ns=(future, future))  # ... and its output dated a year ahead (a file server's clock)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert batch._run_one(rewrite, batch.Job(src, dst, skip=True)).skipped and dst.read_bytes() == b"coded"
        assert batch._run_one(rewrite, batch.Job(src, dst, skip=True)).skipped
    assert len(caught) == 1 and "every such output" in str(caught[0].message)
    os.utime(src, ns=(0, 0))  # an input of 1970 (epoch 0): its output is newer, done
    assert batch._run_one(rewrite, batch.Job(src, dst, skip=True)).skipped


def test_existing_skip_never_writes_through_a_link_onto_another_input(tmp_path):
    """An output that is a link to an input is not counted done under skip either, and an older one is never coded
    again through the link (which would replace that input with another image's coded file)."""
    src, out = _folder(tmp_path), tmp_path / "out"
    out.mkdir()
    (out / "im1.saicm").symlink_to(src / "im0.png")
    _age(src / "im0.png", 60)  # (the link's target is older than im1.png: "stale")
    photo = (src / "im0.png").read_bytes()
    assert main(["compress", str(src), "-o", str(out), "--model", MODEL, "--existing", "skip", "--quiet"]) == 1
    assert (src / "im0.png").read_bytes() == photo


def test_an_interrupt_as_the_command_starts_is_one_line(monkeypatch, capsys):
    """Ctrl-C (or a scheduler's SIGINT) in the first half second, while the command's parser imports the command
    families, printed a 20-line traceback of argparse and importlib; later it is one line and status 130."""
    import saicm.cli as cli

    def interrupted():
        raise KeyboardInterrupt

    monkeypatch.setattr(cli, "build_parser", interrupted)
    try:
        code = main(["models"])
    except KeyboardInterrupt:  # (raised on: pytest would take it for the user's and stop the session)
        code = "traceback"
    assert code == 130
    assert capsys.readouterr().err == "saicm: interrupted\n"


def test_an_output_of_the_same_time_or_seconds_ahead_is_done_in_silence(tmp_path, monkeypatch):
    """An output dated as its input (a file system that keeps whole seconds, FAT's two, coding both within one)
    is not older than it; one a few seconds in the future (a file server's clock ahead) is no clock set back
    (mutation audit: neither edge was checked)."""
    import time
    import warnings

    monkeypatch.setattr(batch, "_said_future", set(), raising=False)
    src, dst = tmp_path / "a.png", tmp_path / "a.saicm"
    src.write_bytes(b"x")
    dst.write_bytes(b"coded")
    rewrite = lambda job: (job.dst.write_bytes(b"new"), {})[1]  # noqa: E731
    then = time.time_ns() - 3600 * 10**9
    os.utime(src, ns=(then, then))
    os.utime(dst, ns=(then, then))
    assert batch._run_one(rewrite, batch.Job(src, dst, skip=True)).skipped
    ahead = time.time_ns() + 10 * 10**9
    os.utime(dst, ns=(ahead, ahead))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert batch._run_one(rewrite, batch.Job(src, dst, skip=True)).skipped and dst.read_bytes() == b"coded"
