"""Unusual but legitimate inputs and outputs: rotated and 16-bit photos in an evaluation, links in an output folder,
long names, pipes, the job log, a file-size limit (each found by the paths audit of 0.21.0)."""

import errno
import json
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from saicm.cli import main
from saicm.codec import batch
from saicm.codec.image_io import load_image
from saicm.errors import ImageError, SaicmError

from .conftest import natural_image


def _rotated_jpeg(path):
    """A 40×24 JPEG whose EXIF says "rotate 90°": a phone photo; its picture is 24 wide and 40 high."""
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.fromarray(natural_image(24, 40)).save(path, exif=exif, quality=95)


def test_an_evaluation_reads_images_as_compress_reads_them(tmp_path):
    from saicm.eval.rd import load_rgb_folder

    d = tmp_path / "set"
    d.mkdir()
    _rotated_jpeg(d / "phone.jpg")
    deep = (natural_image(32, 48).astype(np.uint16) * 257)[..., 0]  # a 16-bit grey PNG, full range
    Image.fromarray(deep).save(d / "deep.png")
    images = load_rgb_folder(d)
    # the sweep stopped ("codec returned (40, 24) for an image of (24, 40)") and clipped 16-bit samples to 255
    assert images["phone.jpg"].size == (24, 40)
    for name in ("phone.jpg", "deep.png"):
        assert np.array_equal(np.asarray(images[name]), load_image(d / name).rgb)
    assert np.asarray(images["deep.png"]).mean() < 200  # scaled, not clipped to white
    (d / "empty.png").write_bytes(b"")
    (d / "text.jpg").write_bytes(b"not an image")
    with pytest.raises(ImageError) as e:  # every unreadable image in one error, not one per run
        load_rgb_folder(d)
    assert "2 of 4 images" in str(e.value) and "empty.png" in str(e.value) and "text.jpg" in str(e.value)


def test_an_evaluation_creates_its_output_folder_before_the_sweep(tmp_path):
    d = tmp_path / "set"
    d.mkdir()
    Image.fromarray(natural_image(32, 32)).save(d / "a.png")
    out = tmp_path / "new" / "deeper" / "r.json"  # the whole sweep ran, then "output folder does not exist"
    assert main(["eval", "--codec", "jpeg", "--qualities", "50", "--dataset", str(d), "--task", "psnr",
                 "-o", str(out), "--no-cache", "--quiet"]) == 0
    assert json.loads(out.read_text())["num_images"] == 1


def test_a_folder_job_never_writes_through_a_link_onto_an_input(tmp_path, capsys):
    src, out = tmp_path / "in", tmp_path / "out"
    src.mkdir()
    out.mkdir()
    for name in ("a", "b"):
        Image.fromarray(natural_image(32, 32)).save(src / f"{name}.png")
    photo = (src / "a.png").read_bytes()
    (out / "a.saicm").symlink_to(src / "a.png")  # its own input
    (out / "b.saicm").symlink_to(src / "a.png")  # another input
    assert main(["compress", str(src), "-o", str(out), "--quiet"]) == 1
    assert (src / "a.png").read_bytes() == photo  # the photo was replaced by its own coded file
    assert capsys.readouterr().err.count(f"is the input {src / 'a.png'}") == 2
    # (a photo under a .saicm name is no coded file: not counted done, and left alone)
    assert main(["compress", str(src), "-o", str(out), "--existing", "skip", "--quiet"]) == 1
    assert (src / "a.png").read_bytes() == photo


def test_output_names_up_to_the_file_systems_limit_are_written(tmp_path):
    img = tmp_path / "x.png"
    Image.fromarray(natural_image(32, 32)).save(img)
    for name in ("b" * 249 + ".saicm", "日本" * 41 + ".saicm"):  # 255 and 252 bytes: legal names
        assert main(["compress", str(img), "-o", str(tmp_path / name), "--quiet"]) == 0  # "File name too long"
        assert (tmp_path / name).stat().st_size > 0
    assert not [p for p in tmp_path.iterdir() if ".part" in p.name]


def test_an_image_is_read_from_a_pipe_to_a_limit(tmp_path):
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    png = tmp_path / "x.png"
    Image.fromarray(natural_image(32, 32)).save(png)

    def feed(data):
        with open(fifo, "wb") as f:
            try:
                f.write(data)
            except BrokenPipeError:
                pass

    t = threading.Thread(target=feed, args=(png.read_bytes(),), daemon=True)
    t.start()
    assert load_image(fifo).size == (32, 32)  # "empty file": a FIFO's size is 0
    t.join()
    t = threading.Thread(target=feed, args=(bytes(3 << 20),), daemon=True)  # an endless stream (/dev/zero) stops at a limit
    t.start()
    with pytest.raises(ImageError, match="more than"):
        load_image(fifo, max_pixels=64 * 64)
    t.join()


def test_compress_writes_to_standard_output_through_dev_stdout(tmp_path):
    img = tmp_path / "x.png"
    Image.fromarray(natural_image(32, 32)).save(img)
    r = subprocess.run([sys.executable, "-m", "saicm", "compress", str(img), "-o", "/dev/stdout", "--quiet"],
                       capture_output=True, timeout=300, env=dict(os.environ, OMP_NUM_THREADS="1"))
    assert r.returncode == 0, r.stderr  # (/proc/PID/fd/pipe:[N]: no such file)
    assert main(["compress", str(img), "-o", str(tmp_path / "ref.saicm"), "--quiet"]) == 0
    assert r.stdout == (tmp_path / "ref.saicm").read_bytes()


def test_the_job_log_never_appends_to_an_image_or_a_coded_file(tmp_path, capsys):
    img = tmp_path / "x.png"
    Image.fromarray(natural_image(32, 32)).save(img)
    photo = img.read_bytes()
    coded = tmp_path / "y.saicm"
    assert main(["compress", str(img), "-o", str(coded), "--quiet"]) == 0
    before = coded.read_bytes()
    other = tmp_path / "notes.txt"
    other.write_text("my notes\n")
    for log in (img, coded, tmp_path / "new.jpg", other):
        assert main(["compress", str(img), "-o", str(tmp_path / "z.saicm"), "--log", str(log), "--quiet"]) == 2
    assert img.read_bytes() == photo and coded.read_bytes() == before and other.read_text() == "my notes\n"
    assert not (tmp_path / "new.jpg").exists() and not (tmp_path / "z.saicm").exists()
    log = tmp_path / "job.jsonl"
    for _ in range(2):  # a log of its own is appended to, run after run
        assert main(["compress", str(img), "-o", str(tmp_path / "z.saicm"), "--log", str(log), "--quiet"]) == 0
    assert [json.loads(ln)["status"] for ln in log.read_text().splitlines()] == ["written", "written"]


def test_a_file_size_limit_names_the_output_and_the_stopping_error_is_logged(tmp_path):
    img = tmp_path / "x.png"
    Image.fromarray(natural_image(256, 256)).save(img)

    def limit():
        import resource

        resource.setrlimit(resource.RLIMIT_FSIZE, (2000, 2000))

    assert main(["compress", str(img), "-o", str(tmp_path / "x.saicm"), "--quiet"]) == 0
    r = subprocess.run([sys.executable, "-m", "saicm", "decompress", str(tmp_path / "x.saicm"), "-o",
                        str(tmp_path / "x-out.png")], capture_output=True, text=True, timeout=300, preexec_fn=limit,
                       env=dict(os.environ, OMP_NUM_THREADS="1"))
    assert r.returncode != 0 and "x-out.png: cannot write output (File too large)" in r.stderr, r.stderr

    # an error that stops a folder job (a full disk) has its file's line in the log, as every other file has
    jobs = [batch.Job(tmp_path / f"{n}.png", tmp_path / f"{n}.saicm") for n in "ab"]

    def full(job):
        e = SaicmError("cannot write output (No space left on device)", str(job.dst))
        e.errno = errno.ENOSPC
        raise e

    with open(tmp_path / "log.jsonl", "w") as log, pytest.raises(SaicmError):
        batch.run(full, jobs, progress=False, log=log)
    lines = [json.loads(ln) for ln in (tmp_path / "log.jsonl").read_text().splitlines()]
    assert [(ln["input"], ln["status"]) for ln in lines] == [(str(jobs[0].src), "failed")]


def test_progress_bars_are_drawn_on_a_terminal_only(tmp_path, capsys):
    """Into a log file, an evaluation's bar was one long line of carriage returns (a folder job's never was)."""
    from saicm.eval.cache import DecodeCache
    from saicm.eval.codecs import get_codec
    from saicm.eval.rd import sweep

    images = {"a.png": Image.fromarray(natural_image(32, 32))}
    sweep(get_codec("jpeg"), images, [30, 60], cache=DecodeCache(tmp_path / "c", "jpeg", {}), progress=True)
    err = capsys.readouterr().err
    assert "100%" not in err and "2/2 [" not in err and "\r" not in err, err  # (no bar; status lines instead)


def test_control_characters_in_names_reach_the_terminal_escaped(tmp_path, capsys):
    """A name holding a newline split a one-line error in two; one holding ESC[31m coloured the terminal."""
    bad = tmp_path / "bad\nname\x1b[31m.jpg"
    bad.write_bytes(b"not an image")
    assert main(["compress", str(bad), "-o", str(tmp_path / "x.saicm"), "--quiet"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "\x1b" not in err and "bad\\x0aname\\x1b[31m.jpg" in err, err


def test_the_job_log_can_be_a_stream(tmp_path):
    """Checking a log's first byte read from a FIFO (or /dev/stderr on a terminal) and waited for ever."""
    img = tmp_path / "x.png"
    Image.fromarray(natural_image(32, 32)).save(img)
    fifo = tmp_path / "log"
    os.mkfifo(fifo)
    got = []

    def read():
        with open(fifo) as f:
            got.extend(f.read().splitlines())

    t = threading.Thread(target=read, daemon=True)
    t.start()
    r = subprocess.run([sys.executable, "-m", "saicm", "compress", str(img), "-o", str(tmp_path / "x.saicm"),
                        "--log", str(fifo), "--quiet"], capture_output=True, text=True, timeout=120,
                       env=dict(os.environ, OMP_NUM_THREADS="1"))
    t.join(30)
    assert r.returncode == 0, r.stderr
    assert [json.loads(ln)["status"] for ln in got] == ["written"]


def test_a_stop_by_sigterm_does_not_ask_for_ctrl_c(capsys):
    """`timeout`'s SIGTERM printed "(Ctrl-C again to stop now)": there is no keyboard to press it on."""
    import signal

    from saicm._signals import StopRequest

    for sig, says in ((signal.SIGTERM, "(SIGINT to stop now)"), (signal.SIGINT, "Ctrl-C again to stop now")):
        stop = StopRequest("stopping after the files in progress", enabled=False)
        stop._handle(sig, None)
        assert stop.requested and says in capsys.readouterr().err


def test_an_output_folder_on_a_read_only_file_system_says_so(tmp_path, monkeypatch, capsys):
    import types

    src = tmp_path / "in"
    src.mkdir()
    Image.fromarray(natural_image(32, 32)).save(src / "a.png")
    monkeypatch.setattr(os, "access", lambda *a, **k: False)
    monkeypatch.setattr(os, "statvfs", lambda p: types.SimpleNamespace(f_flag=os.ST_RDONLY))
    assert main(["compress", str(src), "-o", str(tmp_path / "out"), "--quiet"]) == 2
    assert "(read-only file system; nothing written)" in capsys.readouterr().err  # ("permission denied")


def test_an_output_that_appears_while_coding_is_kept_under_existing_refuse_and_skip(tmp_path, monkeypatch):
    """Two jobs writing one folder: the check before the work passed for both, and the later rename replaced the
    first job's file. Under refuse and skip the file is published only where none exists."""
    from saicm import _fs

    src = tmp_path / "a.png"
    src.write_bytes(b"x")

    def competing(job):  # another job writes the output while this one codes, then this one finishes
        job.dst.write_bytes(b"theirs")
        _fs.write_bytes_atomic(job.dst, b"mine")
        return {}

    for mode in ("refuse", "skip", "overwrite"):
        dst = tmp_path / mode / "a.saicm"
        dst.parent.mkdir()
        out = batch._run_one(competing, batch.Job(src, dst, keep=mode == "refuse", skip=mode == "skip"))
        assert dst.read_bytes() == (b"mine" if mode == "overwrite" else b"theirs"), mode
        assert sorted(p.name for p in dst.parent.iterdir()) == ["a.saicm"], mode  # no temporary file left
        if mode == "refuse":
            assert out.error and "exists: not overwritten" in out.error and str(dst) in out.error
        else:
            assert out.error is None and out.skipped == (mode == "skip")
    # where no hard link can be made (no links on FAT, EACCES on some network mounts): checked, then renamed (and
    # still refused when the file is there); other files written meanwhile are replaced as usual
    for code in (errno.EPERM, errno.EACCES, errno.EINVAL):
        monkeypatch.setattr(_fs.os, "link", lambda *a, c=code: (_ for _ in ()).throw(OSError(c, "no link")))
        dst = tmp_path / f"nolinks{code}" / "a.saicm"
        dst.parent.mkdir()
        other = dst.parent / "other.json"
        other.write_text("old")
        with _fs.no_replace(dst):
            _fs.write_bytes_atomic(dst, b"first")
            with pytest.raises(_fs.OutputExists, match="not overwritten"):
                _fs.write_bytes_atomic(dst, b"second")
            _fs.write_bytes_atomic(other, b"new")  # not the job's output: replaced
        assert dst.read_bytes() == b"first" and other.read_bytes() == b"new" and len(list(dst.parent.iterdir())) == 2
    _fs.write_bytes_atomic(dst, b"third")  # outside no_replace: replaced, as always
    assert dst.read_bytes() == b"third"


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="reads which file a descriptor is from /proc")
def test_an_output_is_on_the_disk_before_it_takes_its_name(tmp_path, monkeypatch):
    """After a power cut a renamed file whose data was still cached could be empty, and --existing skip counts it
    done: the temporary file is synced before the rename (a file system that cannot sync still gets its file)."""
    from saicm import _fs

    events = []
    real_fsync, real_replace = os.fsync, os.replace
    monkeypatch.setattr(_fs.os, "fsync", lambda fd: (events.append(("fsync", os.readlink(f"/proc/self/fd/{fd}"))),
                                                     real_fsync(fd)))
    monkeypatch.setattr(_fs.os, "replace", lambda a, b: (events.append(("replace", str(a))), real_replace(a, b)))
    _fs.write_bytes_atomic(tmp_path / "a.saicm", b"data")
    assert [e[0] for e in events] == ["fsync", "replace"] and events[0][1] == events[1][1], events
    assert (tmp_path / "a.saicm").read_bytes() == b"data"

    def cannot(fd):
        raise OSError(errno.EINVAL, "not supported")

    monkeypatch.setattr(_fs.os, "fsync", cannot)
    _fs.write_bytes_atomic(tmp_path / "b.saicm", b"more")
    assert (tmp_path / "b.saicm").read_bytes() == b"more"


def test_existing_skip_codes_an_empty_output_again(tmp_path):
    src = tmp_path / "a.png"
    src.write_bytes(b"x")
    dst = tmp_path / "a.saicm"
    dst.write_bytes(b"")  # what a power cut can leave of a file renamed before its data reached the disk
    out = batch._run_one(lambda job: (job.dst.write_bytes(b"coded"), {})[1], batch.Job(src, dst, skip=True))
    assert not out.skipped and out.error is None and dst.read_bytes() == b"coded"
    out = batch._run_one(lambda job: {}, batch.Job(src, dst, skip=True))  # a whole one is still skipped
    assert out.skipped


def test_writing_a_file_never_changes_the_process_umask(tmp_path, monkeypatch):
    """Reading the umask by setting it (``os.umask(0)``, then back) let any other thread's new files come out
    0666 meanwhile, and two threads at once could leave it 0 for good (a multi-threaded service writing outputs)."""
    if not os.path.exists("/proc/self/status") or "Umask:" not in open("/proc/self/status").read():
        pytest.skip("the system does not say the umask without setting it")
    from saicm import _fs

    real = os.umask
    before = real(0o027)
    set_to = []
    monkeypatch.setattr(os, "umask", lambda m: set_to.append(m) or real(m))
    try:
        _fs.write_bytes_atomic(tmp_path / "a.bin", b"x", durable=False)
        with _fs.atomic_folder(tmp_path / "d"):
            pass
    finally:
        real(before)
    assert set_to == []
    assert (tmp_path / "a.bin").stat().st_mode & 0o777 == 0o640
    assert (tmp_path / "d").stat().st_mode & 0o777 == 0o750


def test_only_a_killed_jobs_temporary_folder_is_not_content_of_an_output_folder(tmp_path):
    """atomic_folder takes an empty folder holding a killed job's ``.NAME.*.part`` folder, but a file of that name
    is the user's: the folder is not empty (mutation audit: the is_dir() half was not checked)."""
    from saicm import _fs
    from saicm.errors import SaicmError

    dest = tmp_path / "out"
    dest.mkdir()
    (dest / ".out.abc.part").mkdir()  # a killed job's
    with _fs.atomic_folder(dest) as tmp:
        (tmp / "a.png").write_bytes(b"x")
    assert (dest / "a.png").read_bytes() == b"x"
    other = tmp_path / "other"
    other.mkdir()
    (other / ".other.abc.part").write_bytes(b"mine")  # a file: not a temporary folder
    with pytest.raises(SaicmError, match="output exists and is not an empty folder"):
        with _fs.atomic_folder(other):
            pass
    # a file or a device in the way is named for what it is: "/dev/full: not an empty folder" misled
    (tmp_path / "plain").write_bytes(b"")
    for path, what in ((tmp_path / "plain", "is a file, not a folder"), (Path(os.devnull), "a device or FIFO")):
        with pytest.raises(SaicmError, match=what):
            with _fs.atomic_folder(path):
                pass


@pytest.mark.parametrize("made", [False, True])
def test_an_output_folder_another_job_wrote_meanwhile_is_refused_not_mixed(tmp_path, made):
    """Two `saicm video frames CLIP -o fr` at once: into an empty folder both moved their files in (frames of both
    ranges, one frames.json); into a new one the second renamed its folder onto the first's (a traceback: Directory
    not empty). The second is one line, and writes nothing."""
    from saicm import _fs
    from saicm.errors import SaicmError

    dest = tmp_path / "fr"
    if made:
        dest.mkdir()
    with pytest.raises(SaicmError, match="another job wrote it meanwhile"):
        with _fs.atomic_folder(dest) as tmp:
            (tmp / "frame_000010.png").write_bytes(b"mine")
            (tmp / "frames.json").write_bytes(b"mine")
            if not made:
                dest.mkdir()
            (dest / "frame_000000.png").write_bytes(b"theirs")  # (the other job's, published meanwhile)
            (dest / "frames.json").write_bytes(b"theirs")
    assert sorted(p.name for p in dest.iterdir()) == ["frame_000000.png", "frames.json"]
    assert (dest / "frames.json").read_bytes() == b"theirs" and not list(tmp_path.glob(".fr.*"))
    empty = tmp_path / "empty"
    empty.mkdir()
    with _fs.atomic_folder(empty) as tmp:  # alone: written, and nothing of the lock left among the files
        (tmp / "a.png").write_bytes(b"x")
    assert [p.name for p in empty.iterdir()] == ["a.png"]


def test_text_goes_to_standard_output_when_there_is_no_output_file():
    """text_stream(None) (no output named) is standard output, not a TypeError."""
    import sys

    from saicm._fs import text_stream

    assert text_stream(None) is sys.stdout


def test_removing_a_killed_writers_parts_removes_those_alone(tmp_path):
    """remove_stale_parts deletes atomic_path's temporary files of that name, not other hidden files beginning with
    it (a user's ``.last.pt.notes``) nor another file's (mutation audit: a pattern without ``.part`` passed)."""
    import os
    import tempfile

    from saicm import _fs

    dest = tmp_path / "last.pt"
    dest.write_bytes(b"whole")
    fd, stale = tempfile.mkstemp(prefix=".last.pt.", suffix=".part.pt", dir=tmp_path)  # as atomic_path names it
    os.close(fd)
    kept = [tmp_path / ".last.pt.notes", tmp_path / ".last.pt.x.part.png", tmp_path / ".other.pt.x.part.pt"]
    for p in kept:
        p.write_bytes(b"keep")
    _fs.remove_stale_parts(dest)
    assert not os.path.exists(stale)
    assert all(p.exists() for p in kept) and dest.read_bytes() == b"whole"


_WRITER = """import sys
from saicm._fs import atomic_path
with atomic_path(sys.argv[1]) as tmp:
    tmp.write_bytes(b"half")
    print(tmp, flush=True)
    sys.stdin.read()
    tmp.write_bytes(b"whole, from the writer")
"""


@pytest.mark.skipif(sys.platform == "win32", reason="advisory locks (fcntl)")
def test_removing_stale_parts_leaves_a_live_writers_and_removes_a_killed_ones(tmp_path):
    """Two jobs writing one checkpoint (two `saicm eval` of a NeRV codec on one clip share its cached checkpoint):
    the second's start removed the first's temporary file while it was written, and the first failed as it
    finished it (FileNotFoundError). Only a file no live process holds is a killed writer's."""
    from saicm import _fs

    dest = tmp_path / "fit.ckpt"
    env = os.environ | {"PYTHONPATH": os.pathsep.join(sys.path)}
    writer = subprocess.Popen([sys.executable, "-c", _WRITER, str(dest)], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    part = writer.stdout.readline().strip()
    assert part and os.path.exists(part)
    _fs.remove_stale_parts(dest)
    assert os.path.exists(part)  # a live writer's: left
    out, err = writer.communicate("", timeout=60)
    assert writer.returncode == 0, err
    assert dest.read_bytes() == b"whole, from the writer" and not os.path.exists(part)

    killed = subprocess.Popen([sys.executable, "-c", _WRITER, str(dest)], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    part = killed.stdout.readline().strip()
    killed.kill()
    killed.communicate(timeout=60)
    assert os.path.exists(part)
    _fs.remove_stale_parts(dest)
    assert not os.path.exists(part)  # a killed writer's: removed
    assert dest.read_bytes() == b"whole, from the writer"


def test_the_umask_read_where_the_system_does_not_say_it_is_left_as_it_was(tmp_path, monkeypatch):
    """Without /proc (macOS, BSD) _umask() reads the mask by setting it, and must put it back (mutation audit:
    leaving 0o077 behind was not caught, every later file of the process would have been private)."""
    import builtins

    from saicm import _fs

    def no_proc(path, *a, **k):
        if str(path).startswith("/proc/"):
            raise FileNotFoundError(2, "No such file or directory", str(path))
        return builtins.open(path, *a, **k)

    monkeypatch.setattr(_fs, "open", no_proc, raising=False)
    before = os.umask(0o022)
    try:
        assert _fs._umask() == 0o022
        assert os.umask(0o022) == 0o022  # (still what it was)
    finally:
        os.umask(before)


@pytest.mark.skipif(sys.platform == "win32", reason="advisory locks (fcntl)")
def test_a_live_writers_part_is_left_where_locks_need_a_writable_descriptor(tmp_path, monkeypatch):
    """On NFS, flock is emulated with fcntl locks, and an exclusive one needs a file opened for writing: the check
    opened the part read-only, its lock failed (EBADF), which was taken for "no locks here", and a live writer's
    file was removed. (Simulated: flock refuses a read-only descriptor, as the NFS client does.)"""
    import errno
    import fcntl

    from saicm import _fs

    real = fcntl.flock

    def nfs_flock(fd, op):
        if op & fcntl.LOCK_EX and fcntl.fcntl(fd, fcntl.F_GETFL) & os.O_ACCMODE == os.O_RDONLY:
            raise OSError(errno.EBADF, "Bad file descriptor")
        return real(fd, op)

    dest = tmp_path / "fit.ckpt"
    env = os.environ | {"PYTHONPATH": os.pathsep.join(sys.path)}
    writer = subprocess.Popen([sys.executable, "-c", _WRITER, str(dest)], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        part = writer.stdout.readline().strip()
        monkeypatch.setattr(fcntl, "flock", nfs_flock)
        _fs.remove_stale_parts(dest)
        assert os.path.exists(part)  # a live writer's: left
    finally:
        monkeypatch.undo()
        out, err = writer.communicate("", timeout=60)
    assert writer.returncode == 0, err
    assert dest.read_bytes() == b"whole, from the writer"


def _open_descriptors() -> int:
    return len(os.listdir("/proc/self/fd"))


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="counts descriptors in /proc")
def test_atomic_writes_release_their_locked_descriptors(tmp_path):
    """atomic_path holds its temporary file open (locked) while it is written: each write must close it (mutation
    audit: leaving it open passed every test; a folder job of a few thousand files would then run out of
    descriptors, EMFILE, and every write would hold its lock until the process ended)."""
    from saicm import _fs

    before = _open_descriptors()
    for i in range(20):
        with _fs.atomic_path(tmp_path / f"f{i}.bin") as tmp:
            tmp.write_bytes(b"x")
    assert _open_descriptors() == before


@pytest.mark.skipif(sys.platform == "win32", reason="advisory locks (fcntl)")
def test_a_temporary_file_removed_before_its_lock_is_not_written(tmp_path, monkeypatch):
    """Another job's remove_stale_parts may remove a temporary file between its making and its locking: the writer
    must make another, not write at a path whose lock it does not hold (mutation audit: skipping the link-count
    check passed; the file written there would be unlocked, removable again as a killed writer's)."""
    from saicm import _fs

    real, removed = _fs._lock_nowait, []

    def removed_first(fd):
        if not removed:  # the first temporary file goes as another process's remove_stale_parts would take it
            removed.append(os.readlink(f"/proc/self/fd/{fd}").removesuffix(" (deleted)"))
            os.unlink(removed[0])
        return real(fd)

    if not os.path.isdir("/proc/self/fd"):
        pytest.skip("names descriptors through /proc")
    monkeypatch.setattr(_fs, "_lock_nowait", removed_first)
    with _fs.atomic_path(tmp_path / "out.bin") as tmp:
        assert removed and str(tmp) != removed[0]
        tmp.write_bytes(b"whole")
    assert (tmp_path / "out.bin").read_bytes() == b"whole"


@pytest.mark.skipif(sys.platform == "win32", reason="advisory locks (fcntl)")
def test_publishing_into_an_output_folder_waits_for_the_job_holding_it(tmp_path):
    """atomic_folder moves its files into an existing empty folder under that folder's lock, waiting for a job that
    holds it (mutation audit: not waiting, going on unlocked, passed: two jobs could then move their files in at
    once, each having found the folder empty)."""
    import fcntl

    from saicm import _fs

    dest = tmp_path / "frames"
    dest.mkdir()
    other = os.open(dest / _fs.LOCK_NAME, os.O_RDWR | os.O_CREAT)  # another job, publishing now
    fcntl.flock(other, fcntl.LOCK_EX)
    written, failed = threading.Event(), []

    def job():
        try:
            with _fs.atomic_folder(dest) as tmp:
                (tmp / "frame_000000.png").write_bytes(b"mine")
                written.set()
        except BaseException as e:  # noqa: BLE001
            failed.append(e)
            written.set()

    t = threading.Thread(target=job)
    t.start()
    try:
        assert written.wait(30)
        t.join(0.5)
        assert t.is_alive() and not failed  # waiting for the lock
        assert not (dest / "frame_000000.png").exists()  # nothing moved in meanwhile
    finally:
        os.close(other)  # (the other job ends)
        t.join(30)
    assert not failed and (dest / "frame_000000.png").read_bytes() == b"mine"


@pytest.mark.skipif(sys.platform == "win32", reason="advisory locks (fcntl)")
def test_a_held_folder_names_this_process_whatever_its_lock_file_held_before(tmp_path):
    """exclusive() writes its process id over what a lock file held (mutation audit: not truncating it passed; a
    longer id left by an earlier holder made the next refusal name no process, or the wrong one)."""
    from saicm import _fs

    (tmp_path / _fs.LOCK_NAME).write_text("1234567890123\n")
    with _fs.exclusive(tmp_path, "wait"):
        assert (tmp_path / _fs.LOCK_NAME).read_text() == f"{os.getpid()} {_fs._host()}\n"  # (and its machine's)


def test_every_folder_reader_names_the_links_it_does_not_follow(tmp_path):
    """Folder jobs warned of links to folders and broken links they leave out; eval, train and masks, which read
    folders by the same rule, left them out in silence (the hostile-data audit)."""
    import warnings

    from saicm.eval.rd import load_rgb_folder
    from saicm.train.data import list_images

    d = tmp_path / "set"
    d.mkdir()
    Image.fromarray(natural_image(32, 32)).save(d / "a.png")
    (d / "gone.png").symlink_to(tmp_path / "nowhere.png")
    (d / "elsewhere").symlink_to(tmp_path, target_is_directory=True)
    for read in (lambda: load_rgb_folder(d), lambda: list_images(d)):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            got = read()
        said = [str(w.message) for w in caught]
        assert len(got) == 1 and len(said) == 1, said
        assert said[0].startswith("2 symbolic links not followed (to a folder, or broken): ") and "gone.png" in said[0]


def test_the_links_left_out_are_named_in_sorted_order(tmp_path, monkeypatch):
    """The warning named the first three links in the folder's listing order (arbitrary: another machine, another
    three); the files themselves come sorted, and so do the names of the ones left out now."""
    import warnings

    from saicm import _fs

    real = os.walk
    monkeypatch.setattr(_fs.os, "walk", lambda *a, **k: ((r, d, n[::-1]) for r, d, n in real(*a, **k)))
    for name in "bcdea":
        (tmp_path / f"{name}.png").symlink_to(tmp_path / f"gone-{name}.png")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert _fs.input_files(tmp_path, lambda p: p.is_file()) == []
    assert [str(w.message) for w in caught] == [
        "5 symbolic links not followed (to a folder, or broken): "
        + ", ".join(str(tmp_path / f"{n}.png") for n in "abc") + " …"]


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs on this system")
def test_folder_readers_name_the_fifos_they_leave_out(tmp_path):
    """A FIFO named like an image was left out of every folder job in silence (the earlier notes' left-alone list);
    it is left out (reading one waits forever) and named in one warning."""
    import warnings

    from saicm._fs import input_files
    from saicm.codec.image_io import is_image_file
    from saicm.eval.rd import load_rgb_folder

    d = tmp_path / "set"
    d.mkdir()
    Image.fromarray(natural_image(32, 32)).save(d / "a.png")
    os.mkfifo(d / "camera.png")
    for read in (lambda: load_rgb_folder(d), lambda: input_files(d, is_image_file)):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            got = read()
        said = [str(w.message) for w in caught]
        assert len(got) == 1 and said == [f"1 special file (a FIFO, socket or device) left out: {d / 'camera.png'}"]


@pytest.mark.skipif(sys.platform == "win32", reason="advisory locks (fcntl)")
def test_a_lock_file_goes_with_its_holder_and_a_waiter_holds_the_file_there_now(tmp_path):
    """exclusive() removes its lock file as it lets go (run folders kept `.saicm.lock` for ever); a job that was
    waiting on the removed file takes the file there now, so that it and a third job cannot both hold the folder
    (atomic_folder removed the file under the lock already, with that race)."""
    import fcntl

    from saicm import _fs

    lock = tmp_path / _fs.LOCK_NAME
    got, release = threading.Event(), threading.Event()

    def waiter():
        with _fs.exclusive(tmp_path, "", wait=True):
            got.set()
            release.wait(30)

    with _fs.exclusive(tmp_path, "held"):
        t = threading.Thread(target=waiter)
        t.start()
        time.sleep(0.3)  # (the waiter has opened the file and waits on it)
        assert not got.is_set()
    try:
        assert got.wait(30)
        third = os.open(lock, os.O_RDWR | os.O_CREAT)  # the file there now: held by the waiter
        try:
            with pytest.raises(BlockingIOError):
                fcntl.flock(third, fcntl.LOCK_EX | fcntl.LOCK_NB)
        finally:
            os.close(third)
    finally:
        release.set()
        t.join(30)
    assert not lock.exists()


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="counts /proc/self/fd")
@pytest.mark.parametrize("call, fd", [("from saicm._signals import _discard_stderr as f\nf()", 2),
                                      ("from saicm._process import _discard_stdout as f\nf(sys.stdout)", 1)],
                         ids=["stderr-stop", "stdout-broken-pipe"])
def test_pointing_a_stream_at_dev_null_leaves_no_descriptor_open(call, fd, tmp_path):
    """A stop asked while stderr's reader is gone points stderr at /dev/null (saicm._signals), and a broken pipe
    stdout (or stderr, by the command line): the descriptor opened for that stayed open beside the stream's copy of
    it, one more at each in-process main() whose reader went away (the soak audit)."""
    said = tmp_path / "said.txt"
    code = (f"import os, sys\nbefore = set(os.listdir('/proc/self/fd'))\n{call}\n"
            "after = set(os.listdir('/proc/self/fd'))\n"
            f"open({str(said)!r}, 'w').write(repr(sorted(after - before)) + '\\n' + "
            f"os.path.realpath('/proc/self/fd/{fd}'))\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert said.read_text().splitlines() == ["[]", os.devnull]


@pytest.mark.skipif(sys.platform == "win32", reason="advisory locks (fcntl)")
def test_a_named_lock_is_its_own_file_and_holds_only_itself(tmp_path):
    """(Mutation audit: ``exclusive(name=...)`` locking the folder's own lock file passed.) One output file's lock
    (``.FILE.lock``) is that file, holding this process's id while held and gone after; the folder's lock is
    another, free meanwhile."""
    from saicm import _fs

    with _fs.exclusive(tmp_path, "x", name=".a.saicmv.ckpt.lock"):
        assert (tmp_path / ".a.saicmv.ckpt.lock").read_text() == f"{os.getpid()} {_fs._host()}\n"
        assert not (tmp_path / _fs.LOCK_NAME).exists()
        code = ("import sys\nfrom saicm._fs import exclusive\nwith exclusive(sys.argv[1], 'x'):\n    pass\n"
                "with exclusive(sys.argv[1], 'x', name='.a.saicmv.ckpt.lock'):\n    pass\n")
        r = subprocess.run([sys.executable, "-c", code, str(tmp_path)], capture_output=True, text=True)
        assert r.returncode == 1 and "in use by another saicm process (pid " in r.stderr, r.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == []


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs on this system")
def test_only_fifos_sockets_and_devices_are_named_special_and_at_most_three_of_them(tmp_path):
    """(Mutation audit: a regular file taken for special, a vanished one taken for special, the plural and the cut
    after three names, each passed.) A text file beside the images is left out in silence, as before."""
    import socket
    import warnings

    from saicm._fs import input_files, is_special
    from saicm.codec.image_io import is_image_file

    d = tmp_path / "set"
    d.mkdir()
    Image.fromarray(natural_image(32, 32)).save(d / "a.png")
    (d / "notes.txt").write_text("not an image")
    (d / ".a.part.png").write_bytes((d / "a.png").read_bytes())  # (hidden: a killed job's part, left out)
    os.mkfifo(d / ".cam.png")
    for n in range(4):
        os.mkfifo(d / f"cam{n}.png")
    s = socket.socket(socket.AF_UNIX)
    try:
        s.bind(str(d / "sock"))
        assert [is_special(d / n) for n in ("a.png", "notes.txt", "cam0.png", "sock", "none")] == [
            False, False, True, True, False]
    except OSError:  # (a path too long for a socket's address)
        pass
    finally:
        s.close()
    (d / "sock").unlink(missing_ok=True)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert input_files(d, is_image_file) == [d / "a.png"]
    said = [str(w.message) for w in caught]
    head = "4 special files (a FIFO, socket or device) left out: "
    assert len(said) == 1 and said[0].startswith(head) and said[0].endswith(" …"), said
    named = said[0][len(head):-2].split(", ")  # (three of them, in the order the folder lists them)
    assert len(named) == 3 and set(named) < {str(d / f"cam{n}.png") for n in range(4)}, said
    assert not is_special(d / "none") and not is_special(d / "notes.txt") and is_special(d / "cam0.png")


@pytest.mark.skipif(sys.platform == "win32", reason="advisory locks (fcntl)")
def test_a_lock_file_this_user_cannot_write_is_locked_read_only(tmp_path, monkeypatch):
    """(Mutation audit: going on unlocked passed.) Another user's lock file in a folder shared by a group opens
    read-only for this one (simulated: opening it for writing is refused): the folder is held all the same."""
    from saicm import _fs

    lock = tmp_path / _fs.LOCK_NAME
    lock.write_text("")
    real = os.open

    def refused(path, flags, *a):
        if str(path) == str(lock) and flags & os.O_RDWR:
            raise PermissionError(13, "Permission denied", str(path))
        return real(path, flags, *a)

    monkeypatch.setattr(os, "open", refused)
    with _fs.exclusive(tmp_path, "x"):
        monkeypatch.setattr(os, "open", real)
        code = "import sys\nfrom saicm._fs import exclusive\nwith exclusive(sys.argv[1], 'x'):\n    pass\n"
        r = subprocess.run([sys.executable, "-c", code, str(tmp_path)], capture_output=True, text=True)
        assert r.returncode == 1 and "in use by another saicm process" in r.stderr, r.stderr


def test_a_lock_file_replaced_by_another_is_not_the_same_file(tmp_path):
    """(Mutation audit: comparing nothing when the path is there passed.) A waiter that locked a removed lock file
    while a third job made a new one there holds nothing: ``_same_file`` tells the two apart."""
    from saicm import _fs

    path = tmp_path / _fs.LOCK_NAME
    path.write_text("")
    old = os.open(path, os.O_RDONLY)
    try:
        assert _fs._same_file(old, path)
        path.unlink()
        assert not _fs._same_file(old, path)
        path.write_text("")  # (the third job's)
        new = os.open(path, os.O_RDONLY)
        try:
            assert not _fs._same_file(old, path) and _fs._same_file(new, path)
        finally:
            os.close(new)
    finally:
        os.close(old)


def test_a_file_system_whose_lock_file_never_matches_does_not_hang_the_lock(tmp_path, monkeypatch):
    """A file system reporting another inode for the lock file at every look (the re-check above failing for
    ever) made ``exclusive`` open the file anew without end: after a bounded number of tries it keeps the lock it
    holds, and lets go of it as always."""
    from saicm import _fs

    looks = []

    def never(fd, path):
        looks.append(1)
        if len(looks) > 1000:
            raise RuntimeError("exclusive() keeps looking")
        return False

    monkeypatch.setattr(_fs, "_same_file", never)
    with _fs.exclusive(tmp_path, "x"):
        assert (tmp_path / _fs.LOCK_NAME).read_text().split()[0] == str(os.getpid())
    assert len(looks) == _fs._LOCK_TRIES and not (tmp_path / _fs.LOCK_NAME).exists()


def _as_another_users(monkeypatch, path):
    """``path`` opened as another user's file the user may not write (0644): root may write any."""
    real = os.open

    def open_(p, flags, *a, **kw):
        if os.fspath(p) == os.fspath(path) and flags & (os.O_WRONLY | os.O_RDWR):
            raise PermissionError(errno.EACCES, "Permission denied", os.fspath(p))
        return real(p, flags, *a, **kw)

    monkeypatch.setattr(os, "open", open_)
    return real


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="FIFOs")
@pytest.mark.parametrize("where", ["lock", "part"])
def test_another_users_fifo_named_as_a_lock_or_part_file_does_not_hang(tmp_path, monkeypatch, where):
    """Another user's FIFO named as saicm's lock file (``saicm video encode -o /tmp/out.saicmv``:
    ``/tmp/.out.saicmv.ckpt.lock``) or as a killed writer's temporary file (``saicm eval -o shared/r.json``:
    ``shared/.r.json.XXXXXXXX.part.json``), not writable by the user, was opened for reading and waited for a writer
    for good: the encode hung before its fit, the sweep after it. It is left alone: the job goes on (unlocked)."""
    from saicm import _fs

    fifo = tmp_path / (".out.saicmv.ckpt.lock" if where == "lock" else ".r.json.AAAAAAAA.part.json")
    os.mkfifo(fifo, 0o644)
    real_open = _as_another_users(monkeypatch, fifo)
    done = []

    def job():
        if where == "lock":
            with _fs.exclusive(tmp_path, "hint", name=fifo.name):
                done.append(1)
        else:
            _fs.remove_stale_parts(tmp_path / "r.json")
            done.append(1)

    t = threading.Thread(target=job, daemon=True)
    t.start()
    t.join(3)
    hung = t.is_alive()
    if hung:  # (let the old code's reader go: a writer comes and goes)
        os.close(real_open(fifo, os.O_WRONLY | os.O_NONBLOCK))
        t.join(10)
    assert not hung and done and fifo.exists()


@pytest.mark.skipif(sys.platform == "win32", reason="links and modes of POSIX")
def test_a_temporary_file_replaced_by_a_link_while_written_gives_no_file_the_outputs_mode(tmp_path):
    """In a folder another user may write (a group's project folder), the temporary file beside the output could be
    replaced, while it was written, by a link to a private file of the user's: the chmod that gives the output its
    mode followed it (``~/.ssh/id_rsa`` 0600 became 0644) and the link was published as the output. A writer that
    recreates the file (its own) is still published with the umask's mode."""
    from saicm import _fs

    secret = tmp_path / "id_rsa"
    secret.write_text("private\n")
    secret.chmod(0o600)
    (tmp_path / "proj").mkdir()

    def swapped(tmp):
        tmp.write_bytes(b"results")
        os.unlink(tmp)
        os.symlink(secret, tmp)  # (the other user's move)

    with pytest.raises(SaicmError, match="temporary file was replaced"):
        _fs.write_atomic(tmp_path / "proj" / "r.json", swapped)
    assert secret.stat().st_mode & 0o777 == 0o600 and secret.read_text() == "private\n"
    assert os.listdir(tmp_path / "proj") == []

    def recreated(tmp):
        os.unlink(tmp)
        tmp.write_bytes(b"new")

    _fs.write_atomic(tmp_path / "proj" / "r.json", recreated)
    mode = (tmp_path / "proj" / "r.json").stat().st_mode & 0o777
    assert (tmp_path / "proj" / "r.json").read_bytes() == b"new" and mode == 0o666 & ~_fs._umask()


@pytest.mark.skipif(sys.platform == "win32", reason="links and modes of POSIX")
def test_a_temporary_folder_replaced_by_a_link_while_written_gives_no_file_its_mode_nor_its_files(tmp_path):
    """The temporary folder of PNG frames (``saicm video frames``, ``video decode -o FOLDER``) could be replaced, while
    it was written, by a link to a private file or folder of the user's, as the temporary file of one output could:
    the folder was published and then given the output's mode by its name (``~/.ssh/id_rsa`` 0600 became 0755),
    and into an empty output folder the files of the folder the link named were moved (``~/.ssh``'s keys, into a
    shared folder). One line now, nothing written or moved."""
    from saicm import _fs

    secret = tmp_path / "id_rsa"
    secret.write_text("private\n")
    secret.chmod(0o600)
    keys = tmp_path / "ssh"
    keys.mkdir()
    (keys / "id_ed25519").write_text("private\n")
    (tmp_path / "proj").mkdir()
    (tmp_path / "proj" / "empty").mkdir()
    for dest, target in ((tmp_path / "proj" / "frames", secret), (tmp_path / "proj" / "empty", keys)):
        with pytest.raises(SaicmError, match="temporary folder was replaced"):
            with _fs.atomic_folder(dest) as tmp:
                (tmp / "frame_0000.png").write_bytes(b"frame")
                os.rename(tmp, tmp_path / "moved")  # (the other user's move)
                os.symlink(target, tmp)
        shutil.rmtree(tmp_path / "moved")
    assert secret.stat().st_mode & 0o777 == 0o600 and secret.read_text() == "private\n"
    assert os.listdir(keys) == ["id_ed25519"]
    assert not (tmp_path / "proj" / "frames").exists() and os.listdir(tmp_path / "proj" / "empty") == []
    with _fs.atomic_folder(tmp_path / "proj" / "frames") as tmp:  # (untouched: published with the umask's mode)
        (tmp / "frame_0000.png").write_bytes(b"frame")
    assert (tmp_path / "proj" / "frames").stat().st_mode & 0o777 == 0o777 & ~_fs._umask()


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() != 0, reason="makes another user's FIFO (root)")
def test_another_users_fifo_at_the_output_name_is_replaced_not_written_into(tmp_path, monkeypatch):
    """Another user's FIFO planted at the output's name (in /tmp or a shared folder) was written into as ``-o
    /dev/null`` is: the command waited for a reader for good, and the coded file went to whoever read it. It is
    replaced as a file would be; where the folder lets only its owner replace it (sticky, as /tmp), one line says so
    (it was the input's name and "Operation not permitted")."""
    from saicm import _fs

    out = tmp_path / "out.saicm"
    os.mkfifo(out, 0o666)
    os.chown(out, 65534, 65534)
    done = []
    t = threading.Thread(target=lambda: done.append(_fs.write_bytes_atomic(out, b"coded")), daemon=True)
    t.start()
    t.join(3)
    if t.is_alive():  # (the old code's writer waits: a reader comes and goes)
        os.close(os.open(out, os.O_RDONLY | os.O_NONBLOCK))
        t.join(10)
        pytest.fail("wrote into another user's FIFO")
    assert done and out.is_file() and out.read_bytes() == b"coded"
    theirs = tmp_path / "theirs.saicm"
    os.symlink(tmp_path / "elsewhere", theirs)
    os.chown(theirs, 65534, 65534, follow_symlinks=False)

    def sticky_replace(src, dst):
        raise PermissionError(errno.EPERM, "Operation not permitted")

    monkeypatch.setattr(os, "replace", sticky_replace)
    with pytest.raises(SaicmError, match="another user's file .* is there"):
        _fs.write_bytes_atomic(theirs, b"coded")
    assert os.path.islink(theirs) and not (tmp_path / "elsewhere").exists()
