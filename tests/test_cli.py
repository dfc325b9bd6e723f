"""The command line as a user meets it: outputs, exit codes, one-line errors."""

import json
import os
import re
import shutil
import signal
import subprocess
import sys
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import pytest
from PIL import Image

import saicm
from saicm.cli import main

from .conftest import natural_image, run_cli


def test_compress_decompress_info_single_file(tmp_path, image_file, tiny_model, capsys):
    out = tmp_path / "a.saicm"
    assert main(["compress", str(image_file), "-o", str(out), "--model", str(tiny_model), "--quality", "2"]) == 0
    assert out.stat().st_size > 0
    assert "bpp" in capsys.readouterr().out
    png = tmp_path / "a.png"
    assert main(["decompress", str(out), "-o", str(png), "--model", str(tiny_model)]) == 0
    assert Image.open(png).size == Image.open(image_file).size
    capsys.readouterr()
    assert main(["info", str(out), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["model"] == "tiny" and info["quality"] == 2 and info["file_bytes"] == out.stat().st_size


def test_a_quoted_tilde_in_the_output_is_named_before_the_work(tmp_path, image_file, tiny_model, monkeypatch):
    import warnings

    monkeypatch.chdir(tmp_path)
    with pytest.warns(saicm.SaicmWarning, match=r"~/a.saicm: '~' is not your home folder.*\$HOME/a.saicm"):
        assert main(["compress", str(image_file), "-o", "~/a.saicm", "--model", str(tiny_model)]) == 0
    assert (tmp_path / "~" / "a.saicm").is_file()
    with warnings.catch_warnings():
        warnings.simplefilter("error", saicm.SaicmWarning)  # a folder named '~' exists here: the user has seen it
        assert main(["compress", str(image_file), "-o", "~/b.saicm", "--model", str(tiny_model)]) == 0


def test_folder_with_a_bad_file_writes_the_rest_and_fails(tmp_path, tiny_model, capsys):
    src = tmp_path / "in"
    (src / "sub").mkdir(parents=True)
    Image.fromarray(natural_image(seed=1)).save(src / "one.png")
    Image.fromarray(natural_image(seed=2)).save(src / "sub" / "two.jpg")
    (src / "broken.png").write_bytes(b"\x89PNG garbage")
    dst = tmp_path / "out"
    code = main(["compress", str(src), "-o", str(dst), "--model", str(tiny_model), "--quiet"])
    assert code == 1
    assert (dst / "one.saicm").is_file() and (dst / "sub" / "two.saicm").is_file()
    assert not (dst / "broken.saicm").exists()
    err = capsys.readouterr().err
    assert "broken.png" in err and "Traceback" not in err
    dec = tmp_path / "dec"
    assert main(["decompress", str(dst), "-o", str(dec), "--model", str(tiny_model), "--quiet", "--jobs", "2"]) == 0
    assert sorted(p.relative_to(dec).as_posix() for p in dec.rglob("*.png")) == ["one.png", "sub/two.png"]


def test_a_file_name_that_is_not_utf8_is_shown_with_its_bytes_escaped(tmp_path):
    """A name's undecodable bytes print as \\xNN (they printed as \\udcNN, a character no file name holds), in a
    UTF-8 and in an ASCII locale; other characters the output cannot encode as \\uXXXX."""
    import subprocess

    name = os.fsencode(tmp_path) + b"/caf\xe9 \xff.saicm"  # Latin-1 bytes: not UTF-8
    with open(name, "wb") as f:
        f.write(b"junk")
    for env in ({"PYTHONUTF8": "1"}, {"LC_ALL": "C", "PYTHONCOERCECLOCALE": "0", "PYTHONUTF8": "0"}):
        r = subprocess.run([sys.executable, "-m", "saicm", "info", name], capture_output=True, timeout=120,
                           env=dict(os.environ, **env))
        assert r.returncode == 2
        assert r.stderr.rstrip(b"\n").endswith(b"caf\\xe9 \\xff.saicm: not a .saicm file (wrong magic)"), r.stderr
    from saicm._process import _undecodable_bytes_as_escapes

    err = UnicodeEncodeError("ascii", "a\u00e9\udcff\u2192", 1, 4, "")
    assert _undecodable_bytes_as_escapes(err) == ("\\u00e9\\xff\\u2192", 4)


def test_an_ascii_output_shows_a_utf8_name_and_a_latin1_one_apart(tmp_path):
    """With PYTHONIOENCODING=ascii (a log collector's), `café.saicm` (UTF-8 on disk) and a Latin-1 `caf\\xe9.saicm`
    were both shown as `caf\\xe9.saicm`: a character below U+0100 was written as \\xNN, which is how messages show
    a name's undecodable byte; it is \\u00e9."""
    import subprocess

    utf8, latin1 = os.fsencode(tmp_path) + b"/caf\xc3\xa9.saicm", os.fsencode(tmp_path) + b"/caf\xe9.saicm"
    for name in (utf8, latin1):
        with open(name, "wb") as f:
            f.write(b"junk")
    r = subprocess.run([sys.executable, "-m", "saicm", "info", utf8, latin1], capture_output=True, timeout=120,
                       env=dict(os.environ, PYTHONIOENCODING="ascii", PYTHONUTF8="1"))
    assert r.returncode == 2
    lines = r.stderr.decode("ascii").splitlines()
    assert [line.rsplit("/", 1)[-1] for line in lines] == ["caf\\u00e9.saicm: not a .saicm file (wrong magic)",
                                                            "caf\\xe9.saicm: not a .saicm file (wrong magic)"]


def test_models_prints_in_an_ascii_locale_without_utf8_mode(tmp_path):
    """The C locale without UTF-8 mode gives standard output Python's "surrogateescape", which raised on the λ of
    `saicm models` (a traceback, status 1): characters ASCII lacks print as \\uXXXX there, and a file name's
    undecodable bytes still come back as they are."""
    import subprocess

    env = dict(os.environ, LC_ALL="C", PYTHONCOERCECLOCALE="0", PYTHONUTF8="0", SAICM_MODELS=str(tmp_path))
    r = subprocess.run([sys.executable, "-m", "saicm", "models"], capture_output=True, timeout=120, env=env)
    assert r.returncode == 0, r.stderr
    assert b"q1 \\u03bb=" in r.stdout and b"Traceback" not in r.stderr
    from saicm._process import _name_bytes_else_escapes

    err = UnicodeEncodeError("ascii", "a\u03bb\udce9b", 1, 3, "")
    assert _name_bytes_else_escapes(err) == (b"\\u03bb\xe9", 3)


def test_a_name_that_is_not_utf8_prints_as_its_bytes_on_stdout_too(tmp_path, image_file, tiny_model):
    """In a UTF-8 locale (not the C one) standard output is "strict": the summary line of a file name that is not
    UTF-8 printed it as \\udcNN, a character no file name holds, where messages show \\xNN."""
    import shutil
    import subprocess

    name = os.fsencode(tmp_path) + b"/caf\xe9.png"
    shutil.copyfile(image_file, name)
    r = subprocess.run([sys.executable, "-m", "saicm", "compress", name, "--model", str(tiny_model)],
                       capture_output=True, timeout=120, env=dict(os.environ, PYTHONIOENCODING="utf-8:strict"))
    assert r.returncode == 0, r.stderr
    assert b"/caf\\xe9.saicm: " in r.stdout and b"udc" not in r.stdout, r.stdout


def test_models_json_lists_qualities(capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("SAICM_MODELS", str(tmp_path))  # the shipped ones only
    assert main(["models", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert rows and all(r["qualities"] and len(r["sha256"]) == 64 for r in rows)
    assert [q["quality"] for q in rows[0]["qualities"]] == list(range(1, len(rows[0]["qualities"]) + 1))
    from saicm.models.catalog import default_model_name

    assert [r["name"] for r in rows if r["default"]] == [default_model_name()]
    from saicm.models.catalog import RECOMMENDED_MACHINE_MODEL, RECOMMENDED_SCALABLE_MODEL

    # which of the seven SA-ICM and two two-layer models to pick: the recommended ones are marked (0.38.0)
    assert {r["name"]: r["recommended"] for r in rows if r["recommended"]} == {
        RECOMMENDED_MACHINE_MODEL: "sa-icm", RECOMMENDED_SCALABLE_MODEL: "two-layer"}
    assert main(["models"]) == 0
    listed = capsys.readouterr().out
    assert f"\n{RECOMMENDED_MACHINE_MODEL} (recommended SA-ICM model): " in listed
    assert f"\n{RECOMMENDED_SCALABLE_MODEL} (recommended two-layer model): " in listed
    default = next(r for r in rows if r["default"])
    # its file's size as every size is said (it was 10⁶-byte "MB", where memory messages' "GB" were 2³⁰ bytes)
    size = f"{default['bytes'] / 2**20:.1f} MiB"
    assert f"\n{default['name']} (default): " in listed and f", {size}, sha256 {default['sha256'][:12]}\n" in listed
    assert default["training"]["steps"] > 0  # how it was trained (the cards cite it; no command showed it)
    # `saicm info` of a model file: the same row, read from the file
    assert main(["info", default["file"], "--json"]) == 0
    assert json.loads(capsys.readouterr().out) | {"source": "shipped", "default": True} == default
    assert main(["info", default["file"]]) == 0
    out = capsys.readouterr().out
    assert "architecture" in out and "training.steps" in out and default["sha256"] in out


def test_models_lists_the_users_own_models_too(capsys, tmp_path, monkeypatch, tiny_model):
    """`saicm models` showed the shipped models only, though every command finds the user's by name."""
    import shutil

    monkeypatch.setenv("SAICM_MODELS", str(tmp_path))
    shutil.copy(tiny_model, tmp_path / "mine.safetensors")
    (tmp_path / "broken.safetensors").write_bytes(b"junk")
    assert main(["models"]) == 0
    out = capsys.readouterr().out
    assert f"your models, found by name in {tmp_path}" in out and "\nmine: gained-mean-scale-hyperprior" in out
    assert "not a readable model: " in out and "broken.safetensors" in out
    assert main(["models", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [(r["name"], r["source"]) for r in rows if r["source"] == "user"] == [("mine", "user")]


def test_a_model_folder_the_user_cannot_read_is_said_not_a_traceback(capsys, tmp_path, monkeypatch, image_file):
    """A $HOME of another user (kept by `sudo -u`, a cron job's) whose ~/.local/share/saicm/models cannot be looked
    at: `saicm models` and any model name that is not shipped were a traceback (PermissionError). (Simulated: root
    reads any folder.)"""
    closed = tmp_path / "theirs" / "models"
    monkeypatch.setenv("SAICM_MODELS", str(closed))
    real_stat, real_listdir = os.stat, os.listdir

    def denied(real):
        def call(path, *a, **kw):
            if os.fspath(path).startswith(str(closed)):
                raise PermissionError(13, "Permission denied", os.fspath(path))
            return real(path, *a, **kw)
        return call

    monkeypatch.setattr(os, "stat", denied(real_stat))
    monkeypatch.setattr(os, "listdir", denied(real_listdir))
    assert main(["models"]) == 0
    out = capsys.readouterr().out
    assert f"{closed}: your model folder cannot be read (Permission denied)" in out
    assert main(["models", "--json"]) == 0
    assert all(r["source"] == "shipped" for r in json.loads(capsys.readouterr().out))
    code = main(["compress", str(image_file), "-o", str(tmp_path / "x.saicm"), "--model", "mine"])
    _assert_one_line_error(code, capsys.readouterr().err, "unknown model 'mine'", "which cannot be read")


def _assert_one_line_error(code, stderr, *needles):
    assert code != 0
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    assert "Traceback" not in stderr
    for n in needles:
        assert n in lines[0], lines[0]


def test_bad_inputs_exit_nonzero_with_one_line_and_no_output(tmp_path, image_file, tiny_model, capsys):
    good = tmp_path / "good.saicm"
    assert main(["compress", str(image_file), "-o", str(good), "--model", str(tiny_model)]) == 0
    data = good.read_bytes()
    cases = {
        "truncated.saicm": (data[: len(data) // 2], "CRC"),
        "magic.saicm": (b"JUNK!" + data[5:], "magic"),
        "flipped.saicm": (data[:40] + bytes([data[40] ^ 1]) + data[41:], "CRC"),
        "version.saicm": (data[:5] + b"\x07" + data[6:], "version 7"),
        "empty.saicm": (b"", "empty file"),
    }
    for name, (blob, needle) in cases.items():
        p = tmp_path / name
        p.write_bytes(blob)
        out = tmp_path / (name + ".png")
        code = main(["decompress", str(p), "-o", str(out), "--model", str(tiny_model)])
        _assert_one_line_error(code, capsys.readouterr().err, name, needle)
        assert not out.exists()
        assert not list(tmp_path.glob("*.part*"))


def test_unknown_model_and_unwritable_output(tmp_path, image_file, tiny_model, capsys):
    code = main(["compress", str(image_file), "-o", str(tmp_path / "x.saicm"), "--model", "nope"])
    _assert_one_line_error(code, capsys.readouterr().err, "unknown model 'nope'")
    blocker = tmp_path / "a-file"
    blocker.write_bytes(b"")
    code = main(["compress", str(image_file), "-o", str(blocker / "x.saicm"), "--model", str(tiny_model)])
    _assert_one_line_error(code, capsys.readouterr().err, "a-file/x.saicm", "cannot write output")


def test_a_quality_the_model_lacks_is_refused_once_before_a_folder_is_coded(tmp_path, tiny_model, capsys):
    """It was checked per image: a folder made an output folder of nothing and one error per image (exit 1)."""
    folder = tmp_path / "in"
    folder.mkdir()
    for i in range(2):
        Image.fromarray(natural_image(seed=i)).save(folder / f"{i}.png")
    out = tmp_path / "out"
    for argv, needle in ((["--quality", "9"], "quality 9 out of range"),
                         (["--human-quality", "1"], "single-layer model: a human-layer quality (--human-quality")):
        code = main(["compress", str(folder), "-o", str(out), "--model", str(tiny_model), *argv])
        assert code == 2
        _assert_one_line_error(code, capsys.readouterr().err, needle)
        assert not out.exists()
    for named in ("out.saicm", "out.txt"):  # a folder's outputs went to a folder so named
        code = main(["compress", str(folder), "-o", str(tmp_path / named), "--model", str(tiny_model)])
        _assert_one_line_error(code, capsys.readouterr().err, f"names a .{named[4:]} file")
        assert not (tmp_path / named).exists()


def test_decompress_says_first_that_its_input_is_not_a_coded_file(tmp_path, capsys):
    """`saicm decompress photo.png` said that photo.png, its own default output, would be overwritten."""
    photo = tmp_path / "photo.png"
    Image.fromarray(natural_image()).save(photo)
    _assert_one_line_error(main(["decompress", str(photo)]), capsys.readouterr().err,
                           "photo.png: a PNG image, not a .saicm file: code it with 'saicm compress'")
    clip = tmp_path / "clip.saicmv"
    clip.write_bytes(b"SAICV" + bytes(64))  # its -o clip.mkv was refused as an image suffix Pillow cannot write
    _assert_one_line_error(main(["decompress", str(clip), "-o", str(tmp_path / "clip.mkv")]), capsys.readouterr().err,
                           "clip.saicmv: a NeRV clip (.saicmv): decode it with 'saicm video decode'")


def test_no_input_is_replaced_by_an_output(tmp_path, tiny_model, capsys):
    """The default decode of photo.saicm is photo.png, which may be the photo that was coded: it is never
    written over (it was, silently); an output that is the input itself is refused for every command."""
    photo = tmp_path / "photo.png"
    Image.fromarray(natural_image()).save(photo)
    original = photo.read_bytes()
    m = ["--model", str(tiny_model)]
    assert main(["compress", str(photo), "--quiet"] + m) == 0
    coded = tmp_path / "photo.saicm"
    capsys.readouterr()
    _assert_one_line_error(main(["decompress", str(coded)] + m), capsys.readouterr().err,
                           "photo.png", "exists: not overwritten")
    _assert_one_line_error(main(["decompress", str(coded), "-o", str(tmp_path)] + m), capsys.readouterr().err,
                           "photo.png", "exists: not overwritten")
    _assert_one_line_error(main(["compress", str(photo), "-o", str(photo)] + m), capsys.readouterr().err,
                           "is the input file")
    _assert_one_line_error(main(["strip", str(coded), "-o", str(tmp_path / "." / "photo.saicm")]),
                           capsys.readouterr().err, "is the input file")
    assert photo.read_bytes() == original
    assert main(["decompress", str(coded), "-o", str(photo)] + m) == 0  # named with -o: the user's choice
    assert photo.read_bytes() != original
    new_dir = tmp_path / "new"
    assert main(["decompress", str(coded), "-o", str(new_dir) + os.sep] + m) == 0  # a folder, made
    assert (new_dir / "photo.png").is_file()
    _assert_one_line_error(main(["decompress", str(coded), "-o", "-"] + m), capsys.readouterr().err,
                           "standard output is not supported")  # was a file named "-"
    for name in ("out.xyz", "out"):  # were PNG bytes under any name
        code = main(["decompress", str(coded), "-o", str(tmp_path / name)] + m)
        assert code == 2  # a usage error, checked before the job (it was 1, the code of a job that failed)
        _assert_one_line_error(code, capsys.readouterr().err, "cannot write a", ".png, .jpg")
        assert not (tmp_path / name).exists()


def test_folders_keep_every_input_and_leave_existing_decodes_alone(tmp_path, tiny_model, capsys):
    src = tmp_path / "d"
    src.mkdir()
    img = natural_image()
    Image.fromarray(img).save(src / "x.png")
    Image.fromarray(img[:64, :80]).save(src / "x.jpg", quality=95)  # another size: told apart by its header
    Image.fromarray(img[::-1]).save(src / "y.png")
    m = ["--model", str(tiny_model), "--quiet"]
    out = tmp_path / "c"
    assert main(["compress", str(src), "-o", str(out)] + m) == 0
    assert sorted(p.name for p in out.iterdir()) == ["x.jpg.saicm", "x.png.saicm", "y.saicm"]
    assert saicm.describe((out / "x.jpg.saicm").read_bytes())["width"] == 80  # both kept
    assert saicm.describe((out / "x.png.saicm").read_bytes())["width"] == 128
    assert main(["decompress", str(out), "-o", str(out)] + m) == 0  # into itself: x.jpg.png, x.png.png, y.png
    before = (out / "y.png").read_bytes()
    capsys.readouterr()
    assert main(["decompress", str(out), "-o", str(out)] + m) == 1
    assert capsys.readouterr().err.count("exists: not overwritten") == 3
    assert (out / "y.png").read_bytes() == before


def test_saicm_warnings_are_one_line_and_other_libraries_keep_their_format(tmp_path):
    from PIL import Image

    import saicm.cli as cli
    from saicm.errors import SaicmWarning, format_warning

    own = format_warning("a.gif: 3 frames", UserWarning, str(Path(cli.__file__).parent / "codec" / "x.py"), 9)
    assert own == "saicm: warning: a.gif: 3 frames\n"
    # attributed to the caller's frame (a notebook's cell, the entry script): one line by its category
    assert format_warning("x", SaicmWarning, "/usr/bin/saicm", 6) == "saicm: warning: x\n"
    other = format_warning("zero-element", UserWarning, "/lib/torch/nn/init.py", 5)
    assert other.startswith("/lib/torch/nn/init.py:5: UserWarning: zero-element")  # not passed off as saicm's
    # end to end, as a user runs it, in one process and in a folder job's workers (both printed two-line Python
    # warnings naming the entry script or concurrent/futures/process.py: paths audit)
    frames = [Image.new("RGB", (64, 64), c) for c in ("red", "blue")]
    for name in ("a", "b"):
        frames[0].save(tmp_path / f"{name}.gif", save_all=True, append_images=frames[1:])
    env = dict(os.environ, OMP_NUM_THREADS="1")
    for argv in (["compress", str(tmp_path / "a.gif"), "-o", str(tmp_path / "a.saicm"), "--quiet"],
                 ["compress", str(tmp_path), "-o", str(tmp_path / "out"), "--jobs", "2", "--quiet"]):
        r = subprocess.run([sys.executable, "-m", "saicm", *argv], capture_output=True, text=True, env=env,
                           timeout=300)
        assert r.returncode == 0, r.stderr
        lines = [ln for ln in r.stderr.splitlines() if "frames" in ln]
        assert lines and all(ln.startswith("saicm: warning: ") for ln in lines), r.stderr
        assert "UserWarning" not in r.stderr and "process.py" not in r.stderr, r.stderr


def _warns_like_pillow(job):  # a folder job for the pool: a library's warning (Pillow's on a corrupt EXIF block)
    import warnings

    warnings.warn_explicit("Corrupt EXIF data.  Expecting to read 12 bytes but only got 0. ", UserWarning,
                           "/lib/PIL/TiffImagePlugin.py", 982, module="PIL.TiffImagePlugin", registry={})
    warnings.warn_explicit("Corrupt EXIF data.  Expecting to read 12 bytes but only got 0. ", UserWarning,
                           "/lib/PIL/TiffImagePlugin.py", 982, module="PIL.TiffImagePlugin", registry={})
    from saicm.errors import warn

    warn("the same note of saicm's for every file")
    return {}


#: the warning of a folder job whose workers' threads outnumber the CPUs: `--jobs 2` says it where one CPU is usable
#: (a one-vCPU CI runner, `taskset -c 0`, a CPU quota under 2) or $SAICM_THREADS asks for more; a test of other
#: warnings leaves it out (two failed so on one CPU)
_THE_MACHINES_CORES = re.compile(r"^saicm: warning: --jobs \d+ on \d+ CPUs?: .* share the cores")


@pytest.mark.parametrize("workers", [1, 2])
def test_other_libraries_warnings_in_a_folder_job_name_their_file_in_one_line(tmp_path, workers):
    """Pillow's "Corrupt EXIF data" (a photo's orientation may be lost with it) in `saicm compress DIR 2> job.log`
    was Python's two lines naming TiffImagePlugin.py, once per worker process: which files had it, unsaid. Each is
    one line naming the file (once per file), its origin in brackets; saicm's own still once per process."""
    code = f"""
import sys
sys.path.insert(0, {str(Path(__file__).parent.parent)!r})
from pathlib import Path
from saicm.codec import batch
from saicm.errors import install_warning_format
from tests.test_cli import _warns_like_pillow
install_warning_format()
jobs = [batch.Job(Path({str(tmp_path)!r}) / f"{{i}}.jpg", Path({str(tmp_path)!r}) / f"{{i}}.saicm") for i in range(3)]
batch.run(_warns_like_pillow, jobs, workers={workers}, progress=False)
"""
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                       env=dict(os.environ, OMP_NUM_THREADS="1"))
    assert r.returncode == 0, r.stderr
    said = "".join(x for x in r.stderr.splitlines(keepends=True) if not _THE_MACHINES_CORES.search(x))
    exif = sorted(x for x in said.splitlines() if "EXIF" in x)
    assert exif == [f"saicm: warning: {tmp_path / f'{i}.jpg'}: Corrupt EXIF data.  Expecting to read 12 bytes but "
                    "only got 0. (UserWarning, TiffImagePlugin.py:982)" for i in range(3)], r.stderr
    assert "warnings.warn" not in said and said.count("\n") == 3 + said.count("same note"), r.stderr
    assert 1 <= said.count("saicm: warning: the same note of saicm's for every file") <= workers, r.stderr


def _fails(job):  # a folder job whose every file fails
    from saicm.errors import ImageError

    raise ImageError("cannot read image (not a format Pillow reads)", str(job.src))


def _two_failing_files_to(err, tmp_path, monkeypatch):
    """A folder job of two files that both fail, its standard error ``err`` (status lines at once); returns ``err``."""
    from saicm import _progress
    from saicm.codec import batch

    monkeypatch.setattr(sys, "stderr", err)
    monkeypatch.setattr(_progress, "LINE_SECONDS", 0.0)
    jobs = [batch.Job(tmp_path / f"{i}.png", tmp_path / f"{i}.saicm") for i in range(2)]
    batch.run(_fails, jobs, workers=1, desc="compress", progress=True, errors=err)
    return err


def test_a_folder_jobs_lines_are_each_one_write(tmp_path, monkeypatch):
    """A status line and a failure were written as the text, then its newline (print, tqdm.write): the worker
    processes' warnings, written to the same `2> job.log`, landed between ("saicm compress: 1/3 files/…/x.py:946:
    UserWarning…"). Each line is one write."""
    import io

    class Writes(io.StringIO):
        def __init__(self):
            super().__init__()
            self.calls = []

        def write(self, text):
            if text:
                self.calls.append(text)
            return super().write(text)

        def isatty(self):
            return False

    err = _two_failing_files_to(Writes(), tmp_path, monkeypatch)
    assert err.calls and all(c.endswith("\n") and c.count("\n") == 1 for c in err.calls), err.calls
    assert sum(c.startswith("saicm: error: ") for c in err.calls) == 2
    assert sum(c.startswith("saicm compress: ") for c in err.calls) == 2


def test_on_a_terminal_a_folder_job_draws_its_bar_and_prints_no_status_lines(tmp_path, monkeypatch):
    """The status lines are for a standard error that is no terminal: on one the bar says it all (mutation audit
    of 0.30.0: the lines could be printed under the bar too with no test failing)."""
    import io

    class Terminal(io.StringIO):
        def isatty(self):
            return True

    err = _two_failing_files_to(Terminal(), tmp_path, monkeypatch)
    assert "2/2" in err.getvalue() and "saicm compress: " not in err.getvalue(), err.getvalue()


def test_status_lines_start_at_once_then_come_at_most_every_line_seconds(monkeypatch, capsys):
    """The first status line is said as soon as there is one, then one at most every LINE_SECONDS unless forced,
    each ``saicm COMMAND: STATUS`` in one write; none when off (mutation audit of 0.30.0: the throttle, the forcing,
    the switch, the first line's start and the prefix could each be changed with no test failing, the other tests
    setting LINE_SECONDS to 0 or 1e9)."""
    import io

    from saicm import _progress

    now = [5.0]  # (time.monotonic(): seconds since the machine started; the first line waited for LINE_SECONDS
    # after boot, a job started by a boot script, when the last line's time started at 0; the flaky-tests audit)
    monkeypatch.setattr(_progress.time, "monotonic", lambda: now[0])
    lines = _progress.StatusLines("compress", True)
    said = []
    for dt, status, force in ((0, "a", False), (10, "b", False), (0, "c", True), (29.9, "d", False),
                              (0.1, "e", False), (1, "f", False)):
        now[0] += dt
        lines.say(status, force)
        said.append(capsys.readouterr().err)
    assert said == ["saicm compress: a\n", "", "saicm compress: c\n", "", "saicm compress: e\n", ""]
    _progress.StatusLines("compress", False).say("x", force=True)
    assert capsys.readouterr().err == ""
    stream = io.StringIO()
    _progress.write_line("a line", stream=stream)
    assert stream.getvalue() == "a line\n" and capsys.readouterr().err == ""


def test_warnings_naming_says_the_outer_file_and_leaves_saicms_own_warnings_as_they_are(monkeypatch):
    """Inside another, warnings_naming leaves the naming to the outer one (its file is the one being done); a
    warning raised in saicm's own files, of any category, is said as it is, not as a library's (mutation audit of
    0.30.0: the nesting guard, and saicm's files counted as its own, could each go with no test failing)."""
    import warnings

    from saicm import errors
    from saicm.codec import image_io

    monkeypatch.setattr(errors, "_command_line", True)  # (as on the command line; alone, no main() had set it)

    with warnings.catch_warnings(record=True) as got:
        warnings.simplefilter("always")
        with errors.warnings_naming("outer.png"):
            with errors.warnings_naming("inner.png"):
                warnings.warn_explicit("a library's words (naming test)", UserWarning, "/lib/PIL/Image.py", 12)
            warnings.warn_explicit("saicm's own words (naming test)", UserWarning, image_io.__file__, 34)
    said = [(w.category, str(w.message)) for w in got]
    assert said == [(errors.SaicmWarning, "outer.png: a library's words (naming test) (UserWarning, Image.py:12)"),
                    (UserWarning, "saicm's own words (naming test)")], said


def test_a_librarys_warning_reading_an_image_of_a_set_names_the_image(tmp_path, monkeypatch):
    """`saicm eval`, `train` and `masks` read their images through read_without_limit_option: Pillow's "Corrupt EXIF
    data" was Python's two lines naming TiffImagePlugin.py, once per process, whichever of the set's images had it.
    It is a SaicmWarning naming the image (once per image and process), its origin in brackets."""
    import warnings

    from saicm import errors
    from saicm.codec.image_io import read_without_limit_option
    from saicm.errors import SaicmWarning

    monkeypatch.setattr(errors, "_command_line", True)  # (as install_warning_format leaves it: the command line)

    exif = (b"Exif\x00\x00II*\x00\x08\x00\x00\x00\x05\x00\x12\x01\x03\x00\x01\x00\x00\x00\x09\x00\x00\x00"
            b"\x0f\x01\x02\x00\xff\x00\x00\x00\x00\xff\x00\x00")
    for name in ("a.jpg", "b.jpg"):
        Image.new("RGB", (32, 24), "red").save(tmp_path / name, exif=exif)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("default")
        for name in ("a.jpg", "b.jpg", "a.jpg"):
            read_without_limit_option(tmp_path / name, "eval")
    corrupt = [w for w in caught if "Corrupt EXIF" in str(w.message)]
    assert [str(w.message).split(": ")[0] for w in corrupt] == [str(tmp_path / "a.jpg"), str(tmp_path / "b.jpg")]
    assert all(w.category is SaicmWarning and str(w.message).endswith("(UserWarning, TiffImagePlugin.py:982)")
               for w in corrupt), [str(w.message) for w in corrupt]


def test_reading_an_image_of_a_set_from_python_leaves_the_callers_warnings_alone(tmp_path, monkeypatch):
    """From Python (``saicm.eval.rd.load_rgb_folder`` in a service), the reading recorded every warning of the process
    (``warnings.catch_warnings`` swaps its state for all threads): another thread's warning of the caller's came out
    as a SaicmWarning naming the image, and Pillow's own lost its category. Only the command line names them."""
    import threading
    import warnings

    from saicm import errors
    from saicm.codec.image_io import read_without_limit_option
    from saicm.errors import SaicmWarning

    monkeypatch.setattr(errors, "_command_line", False)  # (a library's caller: no command line ran in this process)
    exif = (b"Exif\x00\x00II*\x00\x08\x00\x00\x00\x05\x00\x12\x01\x03\x00\x01\x00\x00\x00\x09\x00\x00\x00"
            b"\x0f\x01\x02\x00\xff\x00\x00\x00\x00\xff\x00\x00")
    Image.new("RGB", (32, 24), "red").save(tmp_path / "a.jpg", exif=exif)
    started, done = threading.Event(), threading.Event()

    def callers_thread():
        started.wait(30)
        warnings.warn("the caller's own warning", RuntimeWarning)
        done.set()

    from saicm.codec import image_io

    real = image_io.load_image

    def load_image(path):  # (the caller's thread warns while the image is read)
        started.set()
        done.wait(30)
        return real(path)

    monkeypatch.setattr(image_io, "load_image", load_image)
    t = threading.Thread(target=callers_thread)
    t.start()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        read_without_limit_option(tmp_path / "a.jpg", "eval")
        t.join(30)
    said = {str(w.message): w.category for w in caught}
    assert said.get("the caller's own warning") is RuntimeWarning, said
    assert not any(c is SaicmWarning for c in said.values()), said


def test_folder_output_names_never_collide():
    from saicm.codec.batch import _output_names

    cases = {("x.png", "x.jpg", "y.png"): ["x.png.saicm", "x.jpg.saicm", "y.saicm"],
             ("x.png", "x.jpg", "x.png.jpg"): ["x.png.saicm", "x.jpg.saicm", "x.png.jpg.saicm"],  # 2nd round
             ("a/x.png", "b/x.jpg"): ["a/x.saicm", "b/x.saicm"],
             # one file on macOS's and Windows' file systems (one output replaced the other; platform audit)
             ("Photo.png", "photo.jpg", "y.png"): ["Photo.png.saicm", "photo.jpg.saicm", "y.saicm"]}
    for rel, want in cases.items():
        assert [str(n) for n in _output_names([Path(r) for r in rel], ".saicm")] == want


def test_demo_refuses_a_file_as_its_folder_and_checks_before_writing(tmp_path, capsys):
    a_file = tmp_path / "a.png"
    a_file.write_bytes(b"x")
    _assert_one_line_error(main(["demo", "-o", str(a_file)]), capsys.readouterr().err, "is a file, not an output folder")
    for argv, needle in ((["--quality", "99"], "quality 99 out of range"), (["--model", "nope"], "unknown model")):
        code = main(["demo", "-o", str(tmp_path / "out")] + argv)
        assert code == 2 and needle in capsys.readouterr().err
        assert not (tmp_path / "out").exists()  # nothing made before the check


def test_numeric_options_out_of_range_are_refused_by_the_parser(capsys):
    """Counts and sizes that would divide by zero, drop images or crash deep inside (--batch 0, --log-every 0,
    --limit -1 took all but the last image, --lr -1 trained backwards) are refused before any work starts."""
    import pytest

    cases = [
        (["train", "--data", "d", "--out", "o", "--batch", "0"], "--batch: expected a whole number >= 1, got '0'"),
        (["train", "--data", "d", "--out", "o", "--log-every", "0"], "--log-every: expected a whole number >= 1"),
        (["train", "--data", "d", "--out", "o", "--ckpt-every", "0"], "--ckpt-every: expected a whole number >= 1"),
        (["train", "--data", "d", "--out", "o", "--lr=-1e-4"],
         "--lr: expected a learning rate > 0 and at most 1, got '-1e-4'"),
        (["train", "--data", "d", "--out", "o", "--lr", "nan"], "--lr: expected a learning rate > 0"),
        (["train", "--data", "d", "--out", "o", "--M", "0"], "--M: expected a whole number >= 1"),
        (["eval", "--codec", "jpeg", "--dataset", "d", "-o", "o", "--limit", "-1"], "--limit: expected a whole"),
        (["compress", "x.png", "--jobs", "0"], "--jobs: expected a whole number >= 1"),
        (["compress", "x.png", "--refine", "-5"], "--refine: expected a whole number >= 0"),
        (["report", "r.json", "--target-bpp", "0"], "--target-bpp: expected a number > 0"),
        (["import-checkpoint", "x.pth", "--arch", "tcm", "--name", "n", "--lam", "inf"],
         "--lam: expected a number > 0, got 'inf'"),  # the file was written, then refused by every reader
        # not numbers at all, and the list and range types
        (["compress", "x.png", "--jobs", "two"], "--jobs: expected a whole number >= 1, got 'two'"),
        (["eval", "--codec", "jpeg", "--dataset", "d", "-o", "o", "--qualities", "10,x"],
         "--qualities: expected comma-separated integers, got '10,x'"),
        (["train", "--data", "d", "--out", "o", "--lambdas", "0.01,x"], "--lambdas: expected comma-separated numbers"),
        (["train", "--data", "d", "--out", "o", "--off-mask-weight", "-1"], "--off-mask-weight: expected a number >= 0"),
        (["bdrate", "a.json", "b.json", "--interval", "2,1"], "--interval: expected LO,HI with LO < HI, got '2,1'"),
    ]
    for argv, needle in cases:
        with pytest.raises(SystemExit) as e:
            main(argv)
        assert e.value.code == 2, argv
        assert needle in capsys.readouterr().err, argv
    for argv in (["train", "--data", "d", "--out", "o", "--steps", "0"],):  # 0 stays valid: a warm start only
        args = __import__("saicm.cli", fromlist=["build_parser"]).build_parser().parse_args(argv)
        assert args.steps == 0


def test_user_errors_in_a_real_process_have_no_traceback(tmp_path, tiny_model):
    empty = tmp_path / "empty.jpg"
    empty.write_bytes(b"")
    r = run_cli("compress", empty, "-o", tmp_path / "e.saicm", "--model", tiny_model)
    _assert_one_line_error(r.returncode, r.stderr, "empty.jpg", "empty file")
    assert not (tmp_path / "e.saicm").exists()
    junk = tmp_path / "junk.saicm"
    junk.write_bytes(b"SAICM\x01" + b"\x00" * 40)
    r = run_cli("decompress", junk, "-o", tmp_path / "j.png")
    _assert_one_line_error(r.returncode, r.stderr, "junk.saicm", "CRC")


def test_a_reader_that_goes_away_stops_the_output_quietly():
    """`saicm models | head -1`: the pipe closes before saicm writes; no traceback, the shell's SIGPIPE status."""
    import subprocess

    p = subprocess.Popen([sys.executable, "-m", "saicm", "models"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         env=dict(os.environ, PYTHONWARNINGS="ignore"))
    p.stdout.close()  # before the child has imported anything, so its first write meets a closed pipe
    err = p.stderr.read().decode()
    assert p.wait(timeout=120) == 141
    assert err == ""


def test_help_explains_every_command():
    r = run_cli("--help")
    assert r.returncode == 0
    for cmd in ("compress", "decompress", "info", "models", "demo", "train", "export"):
        assert cmd in r.stdout


def test_outputs_get_normal_permissions(tmp_path, image_file, tiny_model):
    out = tmp_path / "p.saicm"
    assert main(["compress", str(image_file), "-o", str(out), "--model", str(tiny_model)]) == 0
    mask = os.umask(0)
    os.umask(mask)
    assert out.stat().st_mode & 0o777 == 0o666 & ~mask


def test_side_by_side_wraps_long_captions_inside_each_panel():
    from PIL import Image

    from saicm.demo import _wrap, caption_font, side_by_side

    font = caption_font()
    lines = _wrap("regions α=0.78: 199 segments, 7.3% edge px", font, 120)
    assert len(lines) > 1 and all(font.getlength(l) <= 120 for l in lines if " " in l)
    panels = [("short", Image.new("RGB", (100, 200))), ("a much longer caption than the panel is wide " * 2,
                                                        Image.new("RGB", (100, 200)))]
    one = side_by_side(panels[:1], height=200)
    two = side_by_side(panels, height=200)
    assert one.width == 100 and two.width == 204
    assert two.height > one.height  # the long caption took more lines, not more width


def test_compress_refine_shows_its_steps_and_refuses_masked_models(tmp_path, image_file, capsys, monkeypatch):
    out = tmp_path / "r.saicm"
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True, raising=False)  # (the bar is drawn on a terminal)
    assert main(["compress", str(image_file), "-o", str(out), "--model", "mse-hyperprior-n64-v3", "--refine", "3"]) == 0
    captured = capsys.readouterr()
    assert "refine:" in captured.err and "0/3 [" in captured.err  # the step bar (tqdm throttles later updates)
    assert main(["decompress", str(out), "-o", str(tmp_path / "r.png")]) == 0
    code = main(["compress", str(image_file), "-o", str(tmp_path / "m.saicm"), "--model", "object-coco-n64-v3",
                 "--refine", "3"])
    _assert_one_line_error(code, capsys.readouterr().err, "trained with --loss object")
    assert not (tmp_path / "m.saicm").exists()


def test_every_quiet_option_is_also_q_and_says_what_it_keeps(capsys):
    """`saicm compress DIR -o OUT -q` was "unrecognized arguments: -q" (only --quiet existed), and the help said "no
    progress bar", not whether errors are still printed (an operator's question for an unattended job)."""
    import argparse

    from saicm.cli import build_parser

    parser = build_parser()
    found = []

    def walk(p, path):
        for a in p._actions:
            if isinstance(a, argparse._SubParsersAction):
                for name, sub in a.choices.items():
                    walk(sub, [*path, name])
            elif "--quiet" in a.option_strings:
                found.append((" ".join(path), a))

    walk(parser, [])
    assert {c for c, _ in found} >= {"compress", "decompress", "eval", "masks", "train", "strip", "video encode"}
    for command, a in found:
        assert "-q" in a.option_strings, command
        assert "errors" in a.help and "still printed" in a.help, command


def test_off_a_terminal_a_refined_compress_prints_status_lines_not_silence(tmp_path, image_file, capsys, monkeypatch):
    """`saicm compress photo.jpg --refine 200 2> job.log` ran for many minutes with nothing said (the step bar is
    drawn on a terminal only): off one, a line ``saicm compress: refine step I/N`` at most every LINE_SECONDS."""
    from saicm import _progress

    monkeypatch.setattr(_progress, "LINE_SECONDS", 0.0)
    argv = ["compress", str(image_file), "--model", "mse-hyperprior-n64-v3", "--quality", "2", "--refine", "3"]
    assert main([*argv, "-o", str(tmp_path / "r.saicm")]) == 0
    err = capsys.readouterr().err
    lines = [x for x in err.splitlines() if x.startswith("saicm compress: ")]
    assert lines == [f"saicm compress: refine step {i}/3 (quality 2)" for i in (1, 2, 3)], err
    assert "\r" not in err
    assert main([*argv, "-o", str(tmp_path / "q.saicm"), "--quiet"]) == 0
    assert "saicm compress: " not in capsys.readouterr().err


def test_demo_shows_the_sa_icm_model_fine_tuned_from_the_mse_model_it_runs(monkeypatch):
    from saicm import demo
    from saicm.models.catalog import ModelInfo

    def info(name, init=None):
        meta = {"training": json.dumps({"init": init})} if init else {}
        return ModelInfo(name=name, path=Path(name), architecture="a", config={}, meta=meta)

    models = {n: info(n, i) for n, i in [("mse-a", None), ("mse-b", None), ("saicm-x", "mse-a"), ("saicm-y", "mse-b"),
                                         ("saicm-z", "mse-b"), ("mse-c", "mse-b"), ("mse-d", "mse-c"),
                                         ("mse-loop", "mse-loop")]}
    monkeypatch.setattr(demo, "shipped_models", lambda: models)
    assert demo.machine_model_for("mse-b", preferred=None) == "saicm-y"  # several from it: the first ...
    assert demo.machine_model_for("mse-b", preferred="saicm-z") == "saicm-z"  # ... unless one is recommended
    assert demo.machine_model_for("mse-a", preferred="saicm-z") == "saicm-x"  # the recommended one is not from it
    assert demo.machine_model_for("mse-d", preferred="saicm-z") == "saicm-z"  # through the ancestors
    assert demo.machine_model_for("mse-a") == "saicm-x"
    assert demo.machine_model_for("mse-d", preferred=None) == "saicm-y"  # none from it: its nearest ancestor
    assert demo.machine_model_for("mse-loop") == "saicm-x"  # a cycle in the metadata ends the walk
    assert demo.machine_model_for("other") == "saicm-x"  # none from it: the first
    assert demo.machine_model_for("other", preferred="saicm-z") == "saicm-z"  # ... unless one is recommended


def test_the_demo_shows_the_recommended_sa_icm_model_beside_the_default_model():
    """The default model (a context model since 0.37.0) was started from checkpoints, not from a shipped model: the
    demo showed the first SA-ICM model by name (a 0.1.0-era v3) instead of the recommended one, the two-layer
    model's machine layer."""
    from saicm import demo
    from saicm.models.catalog import RECOMMENDED_MACHINE_MODEL, default_model_name

    assert demo.machine_model_for(default_model_name()) == RECOMMENDED_MACHINE_MODEL


def test_the_demo_shows_the_best_sa_icm_model_of_each_family():
    """Since 0.38.0 the recommended SA-ICM model is the context model's; beside v5 the demo still shows v5's best one
    (off02), not the first of v5's SA-ICM models, and beside v6 the context one."""
    from saicm import demo
    from saicm.models.catalog import BEST_MACHINE_MODELS, RECOMMENDED_MACHINE_MODEL

    assert RECOMMENDED_MACHINE_MODEL == BEST_MACHINE_MODELS[0] == "saicm-regions-a048-off02-n64-v6"
    assert demo.machine_model_for("mse-hyperprior-n64-v5") == "saicm-regions-a048-off02-n64-v5"
    assert demo.machine_model_for("mse-context-n64-v6") == "saicm-regions-a048-off02-n64-v6"
    assert demo.machine_model_for("mse-hyperprior-n64-v3") == "saicm-regions-a048-n64-v3"  # its only family member


def test_demo_says_the_edge_loss_of_the_sa_icm_model_it_shows():
    """The demo called every SA-ICM model it showed "trained with the edge loss (0.2 x MSE off the edges)", also a
    plain one (saicm-regions-a048-n64-v3, beside --model mse-hyperprior-n64-v3 or -v4): the weight off the edges
    is the one its training record holds."""
    from saicm import demo
    from saicm.models.catalog import ModelInfo

    def info(off):
        return ModelInfo(name="saicm-x", path=Path("x"), architecture="a", config={},
                         meta={"training": json.dumps({"loss": "saicm", "off_mask_weight": off})})

    assert demo.edge_loss_words(info(0.2)) == "the edge loss (0.2 x MSE off the edges)"
    assert demo.edge_loss_words(info(0.05)) == "the edge loss (0.05 x MSE off the edges)"
    assert demo.edge_loss_words(info(0.0)) == "the edge loss (the pixels off the edges free)"
    assert demo.edge_loss_words(ModelInfo(name="saicm-x", path=Path("x"), architecture="a", config={}, meta={})) \
        == "the edge loss"  # no training record: nothing more said


def test_demo_codes_decodes_and_compares_end_to_end(tmp_path, capsys, monkeypatch):
    """`saicm demo` (the README's first command) as a whole, on two small images in place of the sample photos:
    the files it names are written, the decodes are the .saicm files' own, the SA-ICM model and the two-layer
    file are shown beside the MSE model."""
    import numpy as np

    from saicm import demo
    from saicm.models.catalog import default_model_name

    images = {"a": Image.fromarray(natural_image(64, 96, seed=1)), "b": Image.fromarray(natural_image(48, 64, seed=2))}
    monkeypatch.setattr(demo, "sample_images", lambda: images)
    out = tmp_path / "demo"
    assert main(["demo", "-o", str(out), "--quality", "2"]) == 0
    said = capsys.readouterr().out
    model, scalable = demo.machine_model_for(default_model_name()), demo.RECOMMENDED_SCALABLE_MODEL
    assert f"SA-ICM model {model}" in said and f"scalable model {scalable}" in said
    for name, img in images.items():
        assert np.array_equal(np.asarray(Image.open(out / "original" / f"{name}.png")), np.asarray(img))
        for tag in ("", f".{model}"):
            coded = out / f"{name}{tag}.saicm"
            assert saicm.describe(coded.read_bytes())["model"] == (model if tag else default_model_name())
            assert np.array_equal(np.asarray(Image.open(out / f"{name}{tag}.decoded.png")),
                                  np.asarray(saicm.decompress(coded.read_bytes())))
    two, machine = out / f"a.{scalable}.saicm", out / f"a.{scalable}.machine.saicm"
    assert saicm.strip(two.read_bytes()) == machine.read_bytes() and two.stat().st_size > machine.stat().st_size
    for png in ("a_side_by_side.png", "a_layers.png"):
        assert Image.open(out / png).height > 384  # the panels (384 rows) under their captions
    assert "quality 2 of 1.." in said and "mean bpp" in said
    assert "MSE model alone: " in said and f"dB ({default_model_name()} q2)" in said  # named beside the layers


def _slow_touch(job):  # a folder job for the pool (module level: the workers import it)
    import time

    time.sleep(0.3)
    job.dst.write_text("done")
    return {}


def _slow_atomic(job):  # a folder job writing as saicm does: a temporary file, renamed when whole
    import time

    from saicm._fs import atomic_path

    with atomic_path(job.dst) as tmp:
        tmp.write_text("half")
        time.sleep(0.3)
        tmp.write_text("done")
    return {}


def _fast_touch(job):  # a folder job for the pool, finishing in the reverse of the order it was given
    import time

    time.sleep(0.05 * (3 - int(job.src.stem[-1])))
    return {"name": job.src.name}


def test_folder_results_come_in_the_same_order_serial_or_parallel(tmp_path):
    """A parallel run sorted its results by path string, a serial run kept the folder's order (Path order: `a/…`
    before `a-b/…`, the reverse of string order), so `--jobs 2` listed the same folder in another order."""
    from saicm.codec import batch

    names = ["a/x0.png", "a-b/x1.png", "z/x2.png", "b/x3.png"]  # not sorted either way
    jobs = [batch.Job(tmp_path / n, tmp_path / "out" / n) for n in names]
    serial = [o.info["name"] for o in batch.run(_fast_touch, jobs, workers=1, progress=False)]
    parallel = [o.info["name"] for o in batch.run(_fast_touch, jobs, workers=2, progress=False)]
    assert serial == parallel == ["x0.png", "x1.png", "x2.png", "x3.png"]


def test_off_a_terminal_a_folder_job_prints_status_lines_not_silence(tmp_path, tiny_model, monkeypatch, capsys):
    """`saicm compress FOLDER` under nohup or `2> job.log` printed nothing from its start to its summary (hours
    for a large folder; `saicm eval` says where it is): off a terminal, a line ``saicm compress: N/M files`` at most
    every LINE_SECONDS, with the failures counted; --quiet none, and no carriage returns."""
    from saicm import _progress

    src = tmp_path / "in"
    src.mkdir()
    for i in range(3):
        Image.fromarray(natural_image(seed=i)).save(src / f"{i}.png")
    (src / "broken.png").write_bytes(b"\x89PNG garbage")
    monkeypatch.setattr(_progress, "LINE_SECONDS", 0.0)
    assert main(["compress", str(src), "-o", str(tmp_path / "a"), "--model", str(tiny_model)]) == 1
    out, err = capsys.readouterr()
    lines = [x for x in err.splitlines() if x.startswith("saicm compress: ")]
    assert [x.split(": ", 1)[1].split(" files")[0] for x in lines] == ["1/4", "2/4", "3/4", "4/4"], err
    assert lines[-1] == "saicm compress: 4/4 files, 1 failed" and "\r" not in err
    assert "saicm compress: " not in out  # (standard output: the summary alone)
    assert main(["decompress", str(tmp_path / "a"), "-o", str(tmp_path / "d"), "--model", str(tiny_model)]) == 0
    assert [x for x in capsys.readouterr().err.splitlines() if x.startswith("saicm ")][-1] == (
        "saicm decompress: 3/3 files")
    monkeypatch.setattr(_progress, "LINE_SECONDS", 1e9)  # throttled: the first line alone
    assert main(["decompress", str(tmp_path / "a"), "-o", str(tmp_path / "e"), "--model", str(tiny_model)]) == 0
    assert [x.split(",")[0] for x in capsys.readouterr().err.splitlines() if x.startswith("saicm decompress: ")] == [
        "saicm decompress: 1/3 files"]
    assert main(["compress", str(src), "-o", str(tmp_path / "b"), "--model", str(tiny_model), "--quiet"]) == 1
    err = capsys.readouterr().err
    assert "saicm compress: " not in err and "saicm: error: " in err  # (--quiet: the errors still said)


def test_a_folder_jobs_status_lines_say_its_time_left_at_the_rate_of_the_files_coded(tmp_path, monkeypatch, capsys):
    """`saicm compress` of 50,000 frames under nohup said "1673/50000 files" every 30 s and nothing of when it would
    end (the encode's and eval's lines say it): each line says the time left, at the rate of the files coded (those
    skipped by --existing skip, already there, take no time and do not count)."""
    from saicm import _progress
    from saicm.codec import batch

    clock = [0.0]

    def job(j):
        clock[0] += 2.0  # (each file coded takes 2 s)
        return {}

    monkeypatch.setattr(batch.time, "monotonic", lambda: clock[0])
    monkeypatch.setattr(_progress, "LINE_SECONDS", 0.0)
    for i in range(6):
        (tmp_path / f"{i}.png").write_bytes(b"")
    (tmp_path / "out").mkdir()
    for i in range(2):
        (tmp_path / "out" / f"{i}.x").write_bytes(b"x")
    jobs = [batch.Job(tmp_path / f"{i}.png", tmp_path / "out" / f"{i}.x", skip=True) for i in range(6)]
    batch.run(job, jobs, desc="compress")
    lines = [x for x in capsys.readouterr().err.splitlines() if x.startswith("saicm compress: ")]
    assert lines == ["saicm compress: 1/6 files, 1 skipped", "saicm compress: 2/6 files, 2 skipped",
                     "saicm compress: 3/6 files, 2 skipped, about 6 s left",
                     "saicm compress: 4/6 files, 2 skipped, about 4 s left",
                     "saicm compress: 5/6 files, 2 skipped, about 2 s left", "saicm compress: 6/6 files, 2 skipped"]


def test_an_interrupted_folder_job_drops_its_queue(tmp_path, monkeypatch):
    """Ctrl-C in `saicm compress FOLDER --jobs 2` said "interrupted" and then coded the rest of the folder (the
    pool waited for every queued job), and a terminal's SIGINT made each worker drop its file and take the next."""
    import signal
    import time

    from saicm.codec import batch

    jobs = [batch.Job(tmp_path / f"{i}.png", tmp_path / "out" / f"{i}.saicm") for i in range(40)]
    real, calls = batch.wait, []

    def interrupted_at_the_second_wait(fs, **kw):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(fs, **kw)

    monkeypatch.setattr(batch, "wait", interrupted_at_the_second_wait)  # (the interrupt the flag does not take)
    (tmp_path / "out").mkdir()
    with pytest.raises(KeyboardInterrupt):
        batch.run(_slow_atomic, jobs, workers=2, progress=False)
    time.sleep(1)  # (a worker left running would write its file by now)
    done = list((tmp_path / "out").iterdir())
    assert len(done) <= 2, done  # the workers stop at once: no file started after, none finished after
    assert all(p.read_text() == "done" for p in done)  # and their temporary files are gone (they were left)
    monkeypatch.setenv("OMP_NUM_THREADS", "1")  # (what _init_worker sets)
    monkeypatch.setenv("SAICM_THREADS", "1")
    kept = [getattr(signal, n) for n in ("SIGINT", "SIGTERM", "SIGUSR1", "SIGUSR2") if hasattr(signal, n)]
    # (_init_worker's handlers, put back for pytest: a SIGUSR1 left ignored was inherited by later tests' children)
    before = {sig: signal.getsignal(sig) for sig in kept}
    monkeypatch.setattr(batch, "_detach_from_signals_and_die_with_parent", lambda: None)  # (not pytest's own)
    monkeypatch.setattr(batch, "_limit_blas", lambda threads: None)  # (nor pytest's BLAS, for the later tests)
    try:
        batch._init_worker(1)
        assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN  # a worker finishes its file on Ctrl-C
        monkeypatch.setattr(batch, "_in_job", True)  # (idle, a worker ends at once: os._exit, not here)
        with pytest.raises(SystemExit):  # and unwinds on SIGTERM in a file, so that its temporary file is removed
            signal.getsignal(signal.SIGTERM)(signal.SIGTERM, None)
    finally:
        for sig, handler in before.items():
            signal.signal(sig, handler)


_WORKER_SIGTERMED_IN_A_FILE = """
import os, signal, sys
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from saicm._fs import atomic_path
from saicm.codec import batch

batch._detach_from_signals_and_die_with_parent = lambda: None  # (the test's child stays in its group)
batch._init_worker(1)
out = Path(sys.argv[1])

def code(job):
    with atomic_path(job.dst) as tmp:
        tmp.write_bytes(b"half")
        os.kill(os.getpid(), signal.SIGTERM)  # what the pool sends its live workers when another one died
        signal.sigtimedwait([signal.SIGUSR1], 5)  # (SIGTERM's handler runs at the next bytecode)
    return {}

print(batch._run_in_worker(code, batch.Job(out / "a.png", out / "a.saicm")), flush=True)
print("the worker lived on", flush=True)
"""


def test_a_worker_sent_sigterm_in_a_file_dies_once_its_temporary_file_is_gone(tmp_path):
    """When a --jobs worker died (the OOM killer, kill -9), the pool sent SIGTERM to the others, which unwound
    their file and went back to waiting for work (the pool's worker loop takes a SystemExit for the file's
    result): the pool's shutdown then waited for them, and the folder job hung for good (a dependency audit
    saw it once, with 0 CPU for minutes). A worker sent SIGTERM now dies, after its temporary output is removed."""
    (tmp_path / "a.png").write_bytes(b"")
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    p = subprocess.run([sys.executable, "-c", _WORKER_SIGTERMED_IN_A_FILE, str(tmp_path)], capture_output=True,
                       text=True, timeout=120, env=env)
    assert "lived on" not in p.stdout, p.stdout
    assert p.returncode == 128 + signal.SIGTERM, (p.returncode, p.stderr[-2000:])
    assert sorted(x.name for x in tmp_path.iterdir()) == ["a.png"]  # no output, and no temporary file left


def _photos(folder, n=3, seed=0):
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        Image.fromarray(natural_image(seed=seed + i)).save(folder / f"{i}.png")
    return folder


def test_a_folder_decoded_into_the_originals_folder_leaves_them_alone_and_skip_resumes(tmp_path, tiny_model,
                                                                                         capsys):
    """`decompress coded -o originals` wrote the lossy decodes over the lossless originals without a word; and a
    rerun after an interruption could only redo everything."""
    orig = _photos(tmp_path / "orig")
    before = {p.name: p.read_bytes() for p in orig.iterdir()}
    m = ["--model", str(tiny_model), "--quiet"]
    assert main(["compress", str(orig), "-o", str(tmp_path / "coded")] + m) == 0
    assert main(["decompress", str(tmp_path / "coded"), "-o", str(orig)] + m) == 1
    assert capsys.readouterr().err.count("exists: not overwritten") == 3
    assert {p.name: p.read_bytes() for p in orig.iterdir()} == before
    out = tmp_path / "dec"
    (tmp_path / "coded" / "1.saicm").rename(tmp_path / "1.saicm")  # as if the job had stopped after two files
    assert main(["decompress", str(tmp_path / "coded"), "-o", str(out)] + m) == 0
    (tmp_path / "1.saicm").rename(tmp_path / "coded" / "1.saicm")
    stamp = {p.name: p.stat().st_mtime_ns for p in out.iterdir()}
    log = tmp_path / "log.jsonl"
    assert main(["decompress", str(tmp_path / "coded"), "-o", str(out), "--existing", "skip", "--log", str(log)]
                + m) == 0
    assert "decompressed 1 of 3 files; 2 already there (skipped)" in capsys.readouterr().out
    lines = [json.loads(x) for x in log.read_text().splitlines()]  # one line per file, as it was done
    assert sorted((Path(x["input"]).name, x["status"]) for x in lines) == [
        ("0.saicm", "skipped"), ("1.saicm", "written"), ("2.saicm", "skipped")]
    assert next(x for x in lines if x["status"] == "written")["width"] == 128
    assert all(out.joinpath(n).stat().st_mtime_ns == t for n, t in stamp.items())
    assert main(["decompress", str(tmp_path / "coded" / "0.saicm"), "-o", str(out / "0.png"), "--existing",
                 "skip"] + m) == 0
    assert "0.png: exists: skipped" in capsys.readouterr().out
    assert main(["decompress", str(tmp_path / "coded"), "-o", str(orig), "--existing", "overwrite"] + m) == 0
    assert {p.name: p.read_bytes() for p in orig.iterdir()} != before  # asked for


def test_folder_scans_say_what_they_cannot_read_and_skip_hidden_files(tmp_path, tiny_model, capsys, monkeypatch):
    """An unreadable subfolder was left out without a word (exit 0); hidden files (a killed job's .part files,
    macOS's ._x.jpg) were taken as inputs; `compress .` raised a traceback."""
    src = _photos(tmp_path / "src", 2)
    (src / ".1.png.abcd.part.png").write_bytes(b"\x89PNG truncated")  # a killed job's temporary file
    _photos(src / ".hidden", 1)
    m = ["--model", str(tiny_model), "--quiet"]
    assert main(["compress", str(src), "-o", str(tmp_path / "c")] + m) == 0
    assert sorted(p.name for p in (tmp_path / "c").rglob("*")) == ["0.saicm", "1.saicm"]
    locked = _photos(src / "locked", 1)
    real_scandir = os.scandir

    def scandir(path="."):  # a folder this user may not read (as root, chmod 0 would not stop the scan)
        if Path(path) == locked:
            raise PermissionError(13, "Permission denied", str(path))
        return real_scandir(path)

    monkeypatch.setattr(os, "scandir", scandir)
    assert main(["compress", str(src), "-o", str(tmp_path / "c2")] + m) == 1
    assert "locked: cannot read folder (Permission denied)" in capsys.readouterr().err
    assert sorted(p.name for p in (tmp_path / "c2").iterdir()) == ["0.saicm", "1.saicm"]
    for cmd in (["masks", str(src), "-o", str(tmp_path / "m")], ["train", "--data", str(src), "--out",
                                                                   str(tmp_path / "t"), "--steps", "1"]):
        assert main(cmd + ["--quiet"]) == 2  # the other folder inputs refuse it in one line
        assert "locked: cannot read folder" in capsys.readouterr().err
    monkeypatch.setattr(os, "scandir", real_scandir)
    shutil.rmtree(locked)
    (src / "gone.png").symlink_to(tmp_path / "nowhere.png")  # a broken link was skipped without a word
    with pytest.warns(UserWarning, match=r"1 symbolic link not followed \(to a folder, or broken\): .*gone.png"):
        assert main(["compress", str(src), "-o", str(tmp_path / "c3")] + m) == 0
    (src / "gone.png").unlink()
    (src / "._0.png").write_bytes(b"\x00\x05\x16\x07 macOS metadata")  # taken as an image by masks
    assert main(["masks", str(src), "-o", str(tmp_path / "m2"), "--quiet"]) == 0
    cwd = os.getcwd()
    os.chdir(src)
    try:
        assert main(["compress", ".", "--model", str(tiny_model), "--quiet"]) == 0  # beside it: src-saicm
    finally:
        os.chdir(cwd)
    assert sorted(p.name for p in (tmp_path / "src-saicm").iterdir()) == ["0.saicm", "1.saicm"]


def test_a_folder_whose_outputs_cannot_be_written_is_refused_before_any_work(tmp_path, tiny_model, capsys,
                                                                           monkeypatch):
    src = _photos(tmp_path / "src", 2)
    ro = tmp_path / "ro"
    ro.mkdir()
    real_access = os.access
    monkeypatch.setattr(os, "access", lambda path, mode, **kw: Path(path) != ro and real_access(path, mode, **kw))
    code = main(["compress", str(src), "-o", str(ro), "--model", str(tiny_model)])  # (as root, chmod would not do)
    assert code == 2 and "cannot write to this output folder" in capsys.readouterr().err
    monkeypatch.setattr(os, "access", real_access)
    (tmp_path / "afile").write_text("x")
    code = main(["compress", str(src), "-o", str(tmp_path / "afile"), "--model", str(tiny_model)])
    assert code == 2 and "is a file: a folder's outputs go to a folder" in capsys.readouterr().err
    code = main(["compress", str(src / "0.png"), "-o", str(tmp_path / "afile" / "x.saicm"), "--model",
                 str(tiny_model)])
    assert code == 1 and "a file, not a folder, is in the way" in capsys.readouterr().err


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs POSIX FIFOs and symbolic links")
def test_outputs_write_through_links_and_into_fifos(tmp_path, tiny_model):
    """The output was renamed onto its path: a link was replaced by a file, and as root `-o /dev/null` replaced
    the device with a file (a FIFO stands in for it here)."""
    import threading

    img = _photos(tmp_path / "src", 1) / "0.png"
    target = tmp_path / "real.saicm"
    target.write_bytes(b"old")
    link = tmp_path / "link.saicm"
    link.symlink_to(target)
    assert main(["compress", str(img), "-o", str(link), "--model", str(tiny_model), "--quiet"]) == 0
    assert link.is_symlink() and target.read_bytes()[:5] == b"SAICM"
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    got = []
    reader = threading.Thread(target=lambda: got.append(open(fifo, "rb").read()), daemon=True)
    reader.start()
    assert main(["compress", str(img), "-o", str(fifo), "--model", str(tiny_model), "--quiet"]) == 0
    reader.join(30)
    assert got and got[0] == target.read_bytes()
    import stat

    assert stat.S_ISFIFO(os.stat(fifo).st_mode)  # still the FIFO
    got.clear()
    reader = threading.Thread(target=lambda: got.append(open(fifo, "rb").read()), daemon=True)
    reader.start()  # a decode into a device or FIFO (no suffix: PNG) was refused for want of a suffix
    assert main(["decompress", str(target), "-o", str(fifo), "--model", str(tiny_model), "--quiet"]) == 0
    reader.join(30)
    assert got and got[0][:8] == b"\x89PNG\r\n\x1a\n"
    if hasattr(os, "geteuid") and os.geteuid() == 0:  # another user's link (root can make one): never followed
        victim = tmp_path / "victim.txt"
        victim.write_text("mine")
        planted = tmp_path / "planted.saicm"
        planted.symlink_to(victim)
        os.lchown(planted, 4321, 4321)
        assert main(["compress", str(img), "-o", str(planted), "--model", str(tiny_model), "--quiet"]) == 0
        assert victim.read_text() == "mine" and not planted.is_symlink()  # the link was replaced, not its target
        theirs = tmp_path / "their-pipe"  # nor a FIFO behind it (it handed them the data)
        os.mkfifo(theirs)
        planted.unlink()
        planted.symlink_to(theirs)
        os.lchown(planted, 4321, 4321)
        assert main(["compress", str(img), "-o", str(planted), "--model", str(tiny_model), "--quiet"]) == 0
        assert not planted.is_symlink() and planted.read_bytes()[:5] == b"SAICM"
        # nor in a folder that other user owns (a shared cache): their link there replaced the user's ~/.bashrc
        shared = tmp_path / "shared"
        shared.mkdir()
        planted = shared / "graph.onnx.sha256"
        planted.symlink_to(victim)
        os.lchown(planted, 4321, 4321)
        os.chown(shared, 4321, 4321)
        from saicm._fs import write_bytes_atomic

        write_bytes_atomic(planted, b"checksum")
        assert victim.read_text() == "mine" and planted.read_bytes() == b"checksum" and not planted.is_symlink()


def _memory_hungry(job):
    if job.src.stem == "1":
        raise MemoryError
    job.dst.write_text("done")
    return {"name": job.src.name}


def _pytorch_memory_hungry(job):
    if job.src.stem == "1":  # (PyTorch's CPU allocator: a RuntimeError, not a MemoryError)
        raise RuntimeError("[enforce fail at alloc_cpu.cpp:127] DefaultCPUAllocator: can't allocate memory")
    if job.src.stem == "3":
        raise RuntimeError("a bug")
    job.dst.write_text("done")
    return {"name": job.src.name}


def test_one_file_pytorch_has_no_memory_for_does_not_end_the_folder(tmp_path):
    """A folder job went on past a file whose coding raised MemoryError, not past one whose coding PyTorch's
    allocator had no memory for (a RuntimeError: the PyTorch engine, CompressAI's models): the job ended there.
    Any other RuntimeError still ends it."""
    import io

    from saicm.codec import batch

    jobs = [batch.Job(tmp_path / f"{i}.png", tmp_path / "out" / f"{i}.saicm") for i in range(4)]
    (tmp_path / "out").mkdir()
    err = io.StringIO()
    with pytest.raises(RuntimeError, match="a bug"):
        batch.run(_pytorch_memory_hungry, jobs, workers=1, progress=False, errors=err)
    assert "1.png: out of memory coding it" in err.getvalue()
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["0.saicm", "2.saicm"]


def _killed_worker(job):
    if job.src.stem == "1":
        os.kill(os.getpid(), 9)  # what the OOM killer does
    import time

    time.sleep(0.3)
    job.dst.write_text("done")
    return {"name": job.src.name}


def test_one_file_out_of_memory_or_a_killed_worker_does_not_end_the_folder(tmp_path, capsys):
    """A MemoryError, or a worker killed by the OOM killer, ended the job with a traceback: the files after it
    were never coded, and exit 1 claimed they were."""
    import io

    from saicm.codec import batch

    jobs = [batch.Job(tmp_path / f"{i}.png", tmp_path / "out" / f"{i}.saicm") for i in range(4)]
    for workers in (1, 2):
        err = io.StringIO()
        outcomes = batch.run(_memory_hungry, jobs, workers=workers, progress=False, errors=err)
        assert [o.error is None for o in outcomes] == [True, False, True, True]
        assert "1.png: out of memory" in err.getvalue() and err.getvalue().count("saicm: error:") == 1
    for p in (tmp_path / "out").iterdir():
        p.unlink()
    outcomes = batch.run(_killed_worker, jobs, workers=2, progress=False)
    assert "worker process coding it died" in outcomes[1].error  # it killed its worker twice, alone the second time
    assert [o.error is None for o in outcomes] == [True, False, True, True]  # the file beside it was tried again
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["0.saicm", "2.saicm", "3.saicm"]


def _killed_while_writing(job):
    from saicm._fs import write_atomic

    def writer(tmp):
        tmp.write_bytes(b"half a file")
        if job.src.stem == "1":
            os.kill(os.getpid(), 9)  # the OOM killer, in the middle of the output's temporary file

    write_atomic(job.dst, writer)
    return {}


def test_a_worker_killed_while_writing_leaves_no_temporary_file(tmp_path):
    """A worker killed by the OOM killer left its file's hidden `.1.saicm.*.part.saicm` in the output folder (one
    more per kill: the file is tried again, and dies again), which nothing ever removed."""
    from saicm.codec import batch

    jobs = [batch.Job(tmp_path / f"{i}.png", tmp_path / "out" / f"{i}.saicm") for i in range(3)]
    (tmp_path / "out").mkdir()
    other = tmp_path / "out" / ".0.saicm.x.part"  # not such a temporary file: left alone
    other.write_text("mine")
    outcomes = batch.run(_killed_while_writing, jobs, workers=2, progress=False)
    assert [o.error is None for o in outcomes] == [True, False, True]
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [".0.saicm.x.part", "0.saicm", "2.saicm"]


_A_WORKER_STARTED_AS_ANOTHER_DIES = """
import sys, time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from saicm.codec import batch

def until(ready):
    deadline = time.time() + 120
    while not ready() and time.time() < deadline:
        time.sleep(0.02)

def code(job):
    import os
    mark, go = job.dst.with_name("coding-0"), job.dst.with_name("go")
    if job.src.stem == "0" and not mark.exists():
        mark.write_text("")
        until(go.exists)
        os.kill(os.getpid(), 9)  # the OOM killer, while the pool starts its second worker
    job.dst.write_text("done")
    return {}

real = ProcessPoolExecutor._spawn_process
late = [True]

def spawn_late(self):  # the second worker, started as the first one dies (as under load)
    if not self._processes or not late:
        return real(self)
    late.clear()
    out = Path(sys.argv[1])
    until((out / "coding-0").exists)  # the first worker codes file 0
    known = set(self._processes)
    real(self)
    new = {pid: p for pid, p in self._processes.items() if pid not in known}
    for pid in new:  # not yet known to the pool when ...
        del self._processes[pid]
    (out / "go").write_text("")  # ... the first one dies, and the pool's thread has stopped the workers it knew
    until(lambda: self._broken and self._call_queue._closed)
    self._processes.update(new)

if __name__ == "__main__":
    ProcessPoolExecutor._spawn_process = spawn_late
    out = Path(sys.argv[1])
    jobs = [batch.Job(out / f"{i}.png", out / f"{i}.saicm") for i in range(2)]
    print([o.error for o in batch.run(code, jobs, workers=2, progress=False)], flush=True)
"""


@pytest.mark.skipif(not hasattr(ProcessPoolExecutor, "_spawn_process"), reason="a pool that starts its workers "
                    "as files are given (CPython 3.9 and later)")
def test_a_worker_started_while_another_dies_does_not_hang_the_folder_job(tmp_path):
    """A --jobs pool starts its workers as files are given; when one died (the OOM killer) while the pool was
    starting another, the pool's own thread terminated only the workers it knew of: the new one got no signal and
    no word to stop, and the pool's shutdown waited for it for good (a stress run of OOM kills under load hung
    once in 28 runs, with 0 CPU). Every worker of a broken pool now ends, and the files are tried again."""
    script = tmp_path / "job.py"
    script.write_text(_A_WORKER_STARTED_AS_ANOTHER_DIES)
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONWARNINGS="ignore",
               PYTHONPATH=str(Path(saicm.__file__).parent.parent))
    try:
        p = subprocess.run([sys.executable, str(script), str(tmp_path)], capture_output=True, text=True,
                           timeout=240, env=env, cwd=tmp_path)
    except subprocess.TimeoutExpired:
        pytest.fail("the folder job hung after a worker died while another was starting")
    assert p.returncode == 0 and p.stdout.split("\n")[0] == "[None, None]", (p.stdout, p.stderr[-2000:])
    assert sorted(x.name for x in tmp_path.glob("*.saicm")) == ["0.saicm", "1.saicm"]


def _terminated_at_1(job):
    import signal
    import time

    started = time.time()  # (written as the file: when it started, against when the job was signalled)
    if job.src.stem == "1":
        (job.dst.parent.parent / "signalled").write_text(repr(time.time()))
        os.kill(os.getppid() if job.src.parent.name == "pool" else os.getpid(), signal.SIGTERM)
    time.sleep(0.2)
    job.dst.write_text(repr(started))
    return {"name": job.src.name}


@pytest.mark.parametrize("workers", [1, 2])
def test_sigterm_stops_a_folder_job_after_the_files_in_progress(tmp_path, workers):
    """SIGTERM (what schedulers and `timeout` send) killed a serial job at once and left a --jobs job's workers
    running after it; an interrupted job said nothing of what it had done."""
    import signal

    from saicm.codec import batch

    src = tmp_path / ("pool" if workers > 1 else "serial")
    jobs = [batch.Job(src / f"{i}.png", tmp_path / "out" / f"{i}.saicm") for i in range(12)]
    with pytest.raises(batch.Interrupted, match=r"interrupted: \d+ of 12 files .* not done") as e:
        batch.run(_terminated_at_1, jobs, workers=workers, progress=False)
    done = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert "1.saicm" in done and len(e.value.outcomes) == len(done)
    # no file starts after the signal but one already handed to a worker: how many were done before it depends on
    # when file 1 started (a worker still importing this module took it late while the other coded 0, 2 and 3:
    # "at most 3 files" failed once in 39 runs under load)
    signalled = float((tmp_path / "signalled").read_text())
    after = [n for n in done if n != "1.saicm" and float((tmp_path / "out" / n).read_text()) > signalled]
    assert len(after) <= workers - 1, (after, done)
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL  # put back


def _disk_full_at_1(job):
    import errno

    if job.src.stem == "1":
        raise OSError(errno.ENOSPC, "No space left on device")
    job.dst.write_text("done")
    return {}


def test_log_lines_are_json_whatever_the_file_names():
    """A file name that is not UTF-8 (os.walk gives it lone surrogates) ended the job with a traceback."""
    from saicm.codec import batch

    o = batch.Outcome(batch.Job(Path("a/b\udcff.png"), Path("o/b\udcff.saicm")), info={"bytes": 3, "bpp": 1 / 3})
    rec = json.loads(batch.log_line(o))
    when = rec.pop("time")  # (when it was done, UTC to the second: a day's log told it by its order alone)
    assert rec == {"input": "a/b\udcff.png", "output": "o/b\udcff.saicm", "status": "written", "bytes": 3,
                   "bpp": 0.333333}
    from datetime import datetime, timezone

    assert abs((datetime.now(timezone.utc) - datetime.fromisoformat(when)).total_seconds()) < 60
    rec["input"].encode("utf-8", "surrogateescape")  # the name's bytes come back


def test_a_full_disk_stops_the_folder_job_in_one_line(tmp_path):
    """A full disk failed every later file the same way, each after its work was done."""
    from saicm.codec import batch

    jobs = [batch.Job(tmp_path / f"{i}.png", tmp_path / "out" / f"{i}.saicm") for i in range(4)]
    (tmp_path / "out").mkdir()
    with pytest.raises(saicm.SaicmError, match=r"1.saicm: cannot write output \(No space left on device\): the job "
                                               "stops here"):
        batch.run(_disk_full_at_1, jobs, workers=1, progress=False)
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["0.saicm"]


def _slow_folder_job_under_way(tmp_path):
    """A folder job of 6 slow files on 2 workers in its own process group (each worker leaves ``pid<PID>`` in
    ``tmp_path``), once its first files are done and the pool runs the next ones."""
    import time

    script = tmp_path / "job.py"
    script.write_text(
        "import os, sys, time\nfrom pathlib import Path\nfrom saicm.codec import batch\n"
        "def slow(job):\n    (job.dst.parent / f'pid{os.getpid()}').touch()\n    time.sleep(1.5)\n"
        "    job.dst.write_text('done')\n    return {}\n"
        "if __name__ == '__main__':\n"
        "    d = Path(sys.argv[1])\n"
        "    jobs = [batch.Job(d / f'{i}.png', d / f'{i}.saicm') for i in range(6)]\n"
        "    try:\n        batch.run(slow, jobs, workers=2, progress=False, errors=sys.stderr)\n"
        "    except batch.Interrupted as e:\n        print('INTERRUPTED', e)\n")
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(Path(saicm.__file__).parent.parent))
    proc = subprocess.Popen([sys.executable, str(script), str(tmp_path)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True, env=env, cwd=tmp_path)
    deadline = time.time() + 60
    while not (tmp_path / "0.saicm").exists() and time.time() < deadline:
        time.sleep(0.05)  # the first files are done: the pool runs the next ones
    time.sleep(0.3)
    return proc


@pytest.mark.skipif(not hasattr(os, "killpg"), reason="needs POSIX process groups")
def test_sigterm_to_the_whole_process_group_lets_the_files_in_progress_finish(tmp_path):
    """`timeout`, `kill -- -PGID` and terminals signal a whole process group: the workers died with their files,
    which were reported as lost to the out-of-memory killer."""
    import signal

    proc = _slow_folder_job_under_way(tmp_path)
    os.killpg(proc.pid, signal.SIGTERM)
    out, err = proc.communicate(timeout=60)
    import re

    written = sorted(p.name for p in tmp_path.glob("*.saicm"))
    said = re.search(r"INTERRUPTED interrupted: (\d+) of 6 files", out)
    assert said and int(said.group(1)) == len(written), (out, err)  # every file in progress finished
    assert 2 <= len(written) < 6 and "saicm: error" not in err, (out, err)  # none lost with its worker


@pytest.mark.skipif(sys.platform == "win32", reason="needs POSIX signals")
def test_a_schedulers_sigusr1_to_every_process_stops_after_the_files_in_progress(tmp_path):
    """Slurm's --signal=USR1@60 (a warning ahead of the time limit) reaches every process of the job, the pool's
    workers too: its default action ended the job and its workers where they stood (status 138, the files in
    progress lost, their .part files left). It is a stop request like SIGTERM, and the workers leave it to the
    parent: the files in progress are written, the rest are not started."""
    import re
    import signal

    proc = _slow_folder_job_under_way(tmp_path)
    workers = {int(p.name[3:]) for p in tmp_path.glob("pid*")}
    for pid in [proc.pid, *workers]:  # (a scheduler signals every process of the job, not a process group)
        try:
            os.kill(pid, signal.SIGUSR1)
        except ProcessLookupError:
            pass
    out, err = proc.communicate(timeout=60)
    written = sorted(p.name for p in tmp_path.glob("*.saicm"))
    said = re.search(r"INTERRUPTED interrupted: (\d+) of 6 files", out)
    assert proc.returncode == 0 and said and int(said.group(1)) == len(written), (proc.returncode, out, err)
    assert 2 <= len(written) < 6 and "saicm: error" not in err and not list(tmp_path.glob(".*.part*")), (out, err)


def _terminated_while_writing(job):
    import signal
    import time

    from saicm._fs import atomic_path

    with atomic_path(job.dst) as tmp:
        tmp.write_text("half")
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(2)
    return {}


def test_sigterm_during_a_single_file_leaves_no_temporary_file(tmp_path):
    """SIGTERM ended a one-file job where it stood, leaving its hidden .part file behind for good."""
    import signal

    from saicm.codec import batch

    job = batch.Job(tmp_path / "a.png", tmp_path / "out" / "a.saicm")
    (tmp_path / "out").mkdir()
    with pytest.raises(KeyboardInterrupt):
        batch.run(_terminated_while_writing, [job], progress=False)
    assert list((tmp_path / "out").iterdir()) == []
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL


def test_max_pixels_help_is_built_from_the_limits(monkeypatch, capsys):
    # the help said "default 67,108,864: 8192x8192" with the square hard-coded, and the video help "2^26" and "2^31"
    from saicm.codec import limits

    assert limits.pixels_text(1 << 26) == "67,108,864 = 8192x8192"
    assert limits.pixels_text(1 << 31) == "2,147,483,648 = 2^31" and limits.pixels_text(1000) == "1,000"
    monkeypatch.setattr(limits, "DEFAULT_MAX_PIXELS", 1 << 24)
    monkeypatch.setattr(limits, "DEFAULT_MAX_VIDEO_PIXELS", 1 << 29)
    for argv in (["compress", "--help"], ["decompress", "--help"], ["video", "decode", "--help"]):
        with pytest.raises(SystemExit):
            main(argv)
        text = " ".join(capsys.readouterr().out.split())
        assert "16,777,216 = 4096x4096" in text and "8192" not in text and "2^26" not in text, argv
    with pytest.raises(SystemExit):
        main(["video", "decode", "--help"])
    assert "536,870,912 = 2^29" in " ".join(capsys.readouterr().out.split())


@pytest.mark.parametrize("name,file_type,version", [
    ("astronaut-200x150-v5-q4-v3.saicm", "saicm", 3), ("astronaut-200x150-scalable-b1-h4-v3.saicm", "saicm-two-layer", 3),
    ("shapes-64x48-8f-tiny.saicmv", "saicmv", 1)])
def test_info_json_names_the_file_type_and_an_integer_format_version_for_every_file(name, file_type, version, capsys):
    # .saicmv files said only "format": ".saicmv version 1", .saicm files "format_version": 3: one key for both
    assert main(["info", str(Path(__file__).parent / "reference" / name), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["file_type"] == file_type and info["format_version"] == version


def test_info_of_several_files_describes_each_and_says_which_cannot_be_read(tmp_path, capsys):
    """`saicm info *.saicm` was refused (one file only): an archive of files had to be described one process each."""
    ref = Path(__file__).parent / "reference"
    a, b = ref / "astronaut-200x150-v5-q4-v3.saicm", ref / "shapes-64x48-8f-tiny.saicmv"
    bad = tmp_path / "bad.saicm"
    bad.write_bytes(b"not a saicm file")
    assert main(["info", str(a), str(bad), str(b), "--json"]) == 2  # the readable ones are still described
    out, err = capsys.readouterr()
    lines = [json.loads(line) for line in out.splitlines()]  # JSON Lines: one object per file, with its path
    assert [d["path"] for d in lines] == [str(a), str(b)]
    assert [d["file_type"] for d in lines] == ["saicm", "saicmv"]
    assert lines[0]["file_bytes"] == a.stat().st_size
    assert err.count("saicm: error:") == 1 and "bad.saicm" in err
    assert main(["info", str(a), str(b)]) == 0
    blocks = capsys.readouterr().out.split("\n\n")
    assert blocks.pop() == f"{'total':24s} 2 files, {a.stat().st_size + b.stat().st_size:,} bytes\n"
    assert len(blocks) == 2 and blocks[0].startswith("path") and str(a) in blocks[0].splitlines()[0]
    assert "model                    mse-hyperprior-n64-v5" in blocks[0] and str(b) in blocks[1].splitlines()[0]
    assert main(["info", str(a), "--json"]) == 0  # one file: one indented object, without a path (as before)
    assert "path" not in json.loads(capsys.readouterr().out)


def test_info_of_several_files_separates_the_blocks_shown_by_one_blank_line(tmp_path, capsys):
    """A file that could not be read still had its blank line: the output began with blank lines when the first
    files failed, and two blocks were two blank lines apart around a failed file (release audit)."""
    ref = Path(__file__).parent / "reference"
    a, b = ref / "astronaut-200x150-v5-q4-v3.saicm", ref / "shapes-64x48-8f-tiny.saicmv"
    bad = tmp_path / "bad.saicm"
    bad.write_bytes(b"not a saicm file")
    assert main(["info", str(bad), str(a), str(bad), str(b)]) == 2
    out = capsys.readouterr().out
    assert out.startswith("path") and "\n\n\n" not in out
    blocks = out.split("\n\n")
    assert blocks.pop().startswith("total                    2 files, ")  # (the files described)
    assert len(blocks) == 2 and str(a) in blocks[0].splitlines()[0] and str(b) in blocks[1].splitlines()[0]


def test_info_of_a_folder_describes_its_coded_files_and_segments_and_totals_each_layers_bytes(tmp_path, capsys):
    """`saicm info DIR` said "is a folder, not a file", and no command gave a day's bytes of each layer without a
    script over --json (fleet audit of 0.38.0): a folder is its .saicm, .saicmv and .seg files, recursively (hidden
    ones, model files and others left out), and a line of totals ends the blocks (not in --json)."""
    import shutil

    import saicm

    ref = Path(__file__).parent / "reference"
    two, clip = ref / "astronaut-200x150-scalable-b1-h4-v3.saicm", ref / "shapes-64x48-8f-tiny.saicmv"
    day = tmp_path / "day"
    (day / "cam2").mkdir(parents=True)
    shutil.copy(two, day / "a.saicm")
    shutil.copy(clip, day / "cam2" / "c.saicmv")
    machine, segment = saicm.split(two.read_bytes())
    (day / "cam2" / "a.seg").write_bytes(segment)
    (day / ".a.saicm.part").write_bytes(b"x")  # (a killed job's temporary file, hidden)
    (day / "notes.txt").write_text("x")
    (day / "gone.saicm").symlink_to(tmp_path / "nowhere")  # (a broken link: warned of, not described)
    shutil.copy(two, day / "B.SAICM")  # (a camera's upper-case name)
    with pytest.warns(UserWarning, match="symbolic link not followed"):
        assert main(["info", str(day)]) == 0
    out = capsys.readouterr().out
    heads = [b.splitlines()[0] for b in out.split("\n\n")[:-1]]
    assert heads == [f"{'path':24s} {day / p}" for p in ("B.SAICM", "a.saicm", "cam2/a.seg", "cam2/c.saicmv")]
    (day / "B.SAICM").unlink()
    (day / "gone.saicm").unlink()
    assert main(["info", str(day)]) == 0
    out = capsys.readouterr().out
    total = two.stat().st_size + clip.stat().st_size + len(segment)
    assert out.split("\n\n")[-1] == (
        f"{'total':24s} 3 files, {total:,} bytes (two-layer files: 1, machine layers {len(machine):,} bytes, human "
        f"layers {len(segment):,} bytes; human-layer segments: 1, {len(segment):,} bytes)\n")
    assert main(["info", str(day), "--json"]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [d["file_type"] for d in lines] == ["saicm-two-layer", "saicm-human-segment", "saicmv"]
    (tmp_path / "empty").mkdir()
    assert main(["info", str(tmp_path / "empty"), str(day / "a.saicm")]) == 2  # (the others still described)
    out, err = capsys.readouterr()
    assert "empty: a folder holding no .saicm, .saicmv or .seg file" in err and "total" not in out


def test_info_of_several_model_files_is_json_lines_with_their_paths(tmp_path, tiny_model, capsys):
    """`saicm info a.safetensors b.saicm --json`: a model file among several is a JSON line with its path too, and a
    block headed by it in text (mutation audit: printing its text form there was not caught)."""
    coded = Path(__file__).parent / "reference" / "astronaut-200x150-v5-q4-v3.saicm"
    assert main(["info", str(tiny_model), str(coded), "--json"]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [d["path"] for d in lines] == [str(tiny_model), str(coded)]
    assert lines[0]["architecture"] == "gained-mean-scale-hyperprior" and lines[1]["file_type"] == "saicm"
    assert main(["info", str(coded), str(tiny_model)]) == 0
    blocks = capsys.readouterr().out.split("\n\n")
    assert blocks.pop() == f"{'total':24s} 2 files, {coded.stat().st_size + Path(tiny_model).stat().st_size:,} bytes\n"
    assert len(blocks) == 2 and blocks[1].splitlines()[0] == f"{'path':24s} {tiny_model}"


def test_info_text_of_a_two_layer_file_gives_each_layers_format_version(capsys):
    """The text form named no human-layer version (1, CompressAI's coder, is not portable across CPUs; 2 is) and
    called file_bytes and bpp the machine layer's: they are the whole file's."""
    path = Path(__file__).parent / "reference" / "astronaut-200x150-scalable-b1-h4-v3.saicm"
    assert main(["info", str(path)]) == 0
    lines = {ln[:24].strip(): ln[24:].strip() for ln in capsys.readouterr().out.splitlines()}
    assert lines["machine layer"].endswith("q1, format 3)")
    assert lines["human layer"].endswith("q4, human-layer version 2)")
    assert int(lines["file_bytes"]) == path.stat().st_size and "whole file" in lines["layers"]


def test_warnings_point_at_the_callers_code(tmp_path):
    # they pointed at saicm's own files (_lazy.py, image_io.py), so a notebook saw each once per session
    import warnings

    from PIL import Image

    import saicm

    frames = [Image.new("RGB", (32, 32), (i * 40, 0, 0)) for i in range(3)]
    gif = tmp_path / "anim.gif"
    frames[0].save(gif, save_all=True, append_images=frames[1:])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        saicm.compress(gif)
    hits = [w for w in caught if "only the first is coded" in str(w.message)]
    assert hits and all(w.filename == __file__ for w in hits), [(w.filename, w.lineno) for w in hits]


def test_the_api_functions_go_to_a_process_pool(tmp_path, image_file, tiny_model):
    """`pool.map(saicm.compress, paths)`, `executor.submit(saicm.decompress, data)`: pickle finds a function by its
    module and name, and every public function was refused ("not the same object as saicm.codec.pipeline
    .compress"): they are wrappers, named where they are public. The pool runs in a process of its own (with a
    time limit): inside the full suite's pytest process a spawn pool's worker once waited for good."""
    import pickle
    import subprocess

    import saicm

    for f in (saicm.compress, saicm.decompress, saicm.describe, saicm.load_model, saicm.video.decode):
        assert pickle.loads(pickle.dumps(f)) is f
    script = (
        "import sys\n"
        "from concurrent.futures import ProcessPoolExecutor\n"
        "from multiprocessing import get_context\n"
        "import saicm\n"
        "if __name__ == '__main__':\n"
        "    with ProcessPoolExecutor(1, mp_context=get_context('spawn')) as pool:\n"
        "        data = pool.submit(saicm.compress, sys.argv[1], sys.argv[2], 2).result(timeout=300)\n"
        "        print(pool.submit(saicm.describe, data).result(timeout=300)['quality'])\n"
        "    sys.stdout.flush()\n"
        "    assert data == saicm.compress(sys.argv[1], sys.argv[2], 2)\n")
    env = dict(os.environ, PYTHONWARNINGS="ignore")
    r = subprocess.run([sys.executable, "-c", script, str(image_file), str(tiny_model)], capture_output=True,
                       text=True, timeout=600, env=env, cwd=tmp_path)
    assert r.returncode == 0 and r.stdout.split() == ["2"], r.stderr[-2000:]


def test_dir_of_the_package_shows_the_api_before_first_use():
    # dir(saicm) and a notebook's tab completion showed none of the API (attributes are imported on first use)
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-c", "import saicm; print(' '.join(dir(saicm)))"], capture_output=True,
                         text=True, check=True).stdout.split()
    assert {"compress", "decompress", "describe", "strip", "load_model", "release_models", "video"} <= set(out)
    assert not {"TYPE_CHECKING", "lazy_getattr", "os"} & set(out)  # (its own helpers are not API: typing audit)
    import pydoc

    import saicm

    assert saicm.load_model.__name__ == "load_model"  # help() was headed by the function's own name, open_model
    assert pydoc.render_doc(saicm.load_model, renderer=pydoc.plaintext).splitlines()[2].startswith("load_model(")
    for package, names in (("saicm.video", {"encode", "decode", "Clip", "read_clip"}),
                           ("saicm.models", {"load_model", "save_model", "register_architecture", "ModelInfo"})):
        out = subprocess.run([sys.executable, "-c", f"import {package} as p; print(' '.join(dir(p)))"],
                             capture_output=True, text=True, check=True).stdout.split()
        assert names <= set(out) and not {"TYPE_CHECKING", "lazy_getattr"} & set(out), (package, out)


@pytest.mark.skipif(not os.path.islink("/dev/stdout"), reason="needs /dev/stdout (Linux)")
def test_dev_stdout_into_a_file_the_shell_opened_is_written_where_it_stands(tmp_path, image_file, tiny_model):
    """`{ echo header; saicm compress x -o /dev/stdout; } >> out`: saicm renamed a new file onto the path /dev/stdout
    led to (the header and what came before were lost; a second command wrote a file named 'out (deleted)'), and a
    decode refused /dev/stdout for want of a suffix when standard output was a file."""
    import subprocess

    out = tmp_path / "out"
    out.write_bytes(b"before\n")
    env = dict(os.environ, PYTHONWARNINGS="ignore")
    with open(out, "ab") as f:  # (the shell's >>)
        f.write(b"header\n")
        f.flush()
        for argv in (["compress", image_file, "-o", "/dev/stdout", "--model", tiny_model],
                     ["compress", image_file, "-o", "/dev/stdout", "--model", tiny_model, "--quality", "1"]):
            r = subprocess.run([sys.executable, "-m", "saicm", *map(str, argv)], stdout=f, stderr=subprocess.PIPE,
                               env=env, timeout=600)
            assert r.returncode == 0, r.stderr
            assert b"bpp" in r.stderr  # (the summary: on standard error)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["img.png", "out"]  # no 'out (deleted)', no temporary
    data = out.read_bytes()
    assert data.startswith(b"before\nheader\nSAICM") and data.count(b"SAICM") == 2
    coded = data[len(b"before\nheader\n"):data.index(b"SAICM", 20)]
    assert saicm.describe(coded)["quality"] == 2
    with open(tmp_path / "dec", "wb") as f:
        src = tmp_path / "a.saicm"
        src.write_bytes(coded)
        r = subprocess.run([sys.executable, "-m", "saicm", "decompress", str(src), "-o", "/dev/stdout", "--model",
                            str(tiny_model)], stdout=f, stderr=subprocess.PIPE, env=env, timeout=600)
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "dec").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.skipif(not os.path.exists("/dev/stdout"), reason="needs /dev/stdout")
def test_a_reader_of_a_decode_on_standard_output_that_goes_away_stops_it_quietly(tmp_path, image_file, tiny_model):
    """`saicm decompress x.saicm -o /dev/stdout | head -c 8` exited 1 with 'saicm: error: x.saicm: Broken pipe', as if
    the file had failed; usage.md promises 141 and no message, as `saicm models | head -1` does."""
    import subprocess

    coded = tmp_path / "a.saicm"
    assert main(["compress", str(image_file), "-o", str(coded), "--model", str(tiny_model), "--quiet"]) == 0
    for argv in (["decompress", coded, "-o", "/dev/stdout", "--model", tiny_model],
                 ["compress", image_file, "-o", "/dev/stdout", "--model", tiny_model]):
        p = subprocess.Popen([sys.executable, "-m", "saicm", *map(str, argv)], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, env=dict(os.environ, PYTHONWARNINGS="ignore"))
        p.stdout.close()  # before the child has written anything
        err = p.stderr.read().decode()
        assert p.wait(timeout=600) == 141, err
        assert err == ""


def test_standard_output_and_error_sent_to_one_file_keep_their_order(tmp_path, image_file, tiny_model):
    """`saicm info a.saicm missing.saicm b.saicm > all.txt 2>&1`: Python buffered standard output off a terminal,
    so the error about the second file came out above the first file's block."""
    import subprocess

    coded = tmp_path / "a.saicm"
    assert main(["compress", str(image_file), "-o", str(coded), "--model", str(tiny_model), "--quiet"]) == 0
    env = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}  # (as a user runs it)
    with open(tmp_path / "all.txt", "wb") as f:
        r = subprocess.run([sys.executable, "-m", "saicm", "info", str(coded), str(tmp_path / "missing.saicm"),
                            str(coded)], stdout=f, stderr=subprocess.STDOUT, env=env, timeout=600)
    assert r.returncode == 2
    lines = (tmp_path / "all.txt").read_text().splitlines()
    said = [k for k, line in enumerate(lines) if line.startswith(("path ", "saicm: error: "))]
    assert [lines[k].split()[0] for k in said] == ["path", "saicm:", "path"], lines


def test_a_reader_of_standard_error_that_goes_away_stops_the_command_with_status_141(tmp_path):
    """`saicm eval ... 2>&1 | head -1`, `saicm compress photos/ 2>&1 | head -1`: the reader of standard error went
    away, and the command stopped quietly as promised, but the status was 120 (Python's, for standard error's
    buffer failing again at exit), not 141 as for standard output's reader."""
    import subprocess

    src = _photos(tmp_path / "src", 1)
    (src / "1.png").write_bytes((src / "0.png").read_bytes()[:100])  # (its error is the first line said)
    # (as a user runs it: PYTHONUNBUFFERED, set by some CI images, changed where the failed text was left)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"} | {"PYTHONWARNINGS": "ignore"}
    r, w = os.pipe()
    os.close(r)  # the reader is gone before the command says anything
    try:
        p = subprocess.Popen([sys.executable, "-m", "saicm", "info", str(src / "0.png"), str(src / "1.png")],
                             stdout=subprocess.DEVNULL, stderr=w, env=env)
    finally:
        os.close(w)
    assert p.wait(timeout=600) == 141


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs /dev/full (Linux)")
def test_standard_output_that_cannot_be_written_is_one_line_and_status_2(tmp_path, image_file, tiny_model):
    """`saicm models > /dev/full` (a full disk) ended in a traceback, status 1; with standard output closed (`>&-`)
    `saicm info x.saicm` printed nothing, said nothing and exited 0."""
    import subprocess

    coded = tmp_path / "a.saicm"
    assert main(["compress", str(image_file), "-o", str(coded), "--model", str(tiny_model), "--quiet"]) == 0
    env = dict(os.environ, PYTHONWARNINGS="ignore")
    # (several files: `info` goes on past a file it cannot read, but not past standard output, said once per file)
    for argv in (["models"], ["info", coded, "--json"], ["info", coded, coded], ["info", coded, coded, "--json"]):
        with open("/dev/full", "wb") as full:
            r = subprocess.run([sys.executable, "-m", "saicm", *map(str, argv)], stdout=full, stderr=subprocess.PIPE,
                               text=True, env=env, timeout=600)
        _assert_one_line_error(r.returncode, r.stderr, "standard output", "No space left on device")
        assert r.returncode == 2
    r = subprocess.run([sys.executable, "-m", "saicm", "info", str(coded)], stdout=subprocess.DEVNULL,
                       stderr=subprocess.PIPE, text=True, env=env, timeout=600, preexec_fn=lambda: os.close(1))
    _assert_one_line_error(r.returncode, r.stderr, "standard output", "closed")
    assert r.returncode == 2


@pytest.mark.skipif(not os.path.exists("/dev/stdout"), reason="needs /dev/stdout")
def test_a_closed_standard_output_is_not_taken_by_the_next_file_opened(tmp_path, image_file, tiny_model):
    """`saicm compress a.png -o /dev/stdout --log run.jsonl >&-`: the log file took the free descriptor 1, and the
    coded image was written into the log (which then began with the file's magic)."""
    import subprocess

    log = tmp_path / "run.jsonl"
    env = dict(os.environ, PYTHONWARNINGS="ignore")
    r = subprocess.run([sys.executable, "-m", "saicm", "compress", str(image_file), "-o", "/dev/stdout", "--model",
                        str(tiny_model), "--log", str(log), "--quiet"], stderr=subprocess.PIPE, text=True, env=env,
                       timeout=600, preexec_fn=lambda: os.close(1))
    assert r.returncode == 1 and "standard output is closed" in r.stderr, r.stderr
    rows = [json.loads(line) for line in log.read_text().splitlines()]  # JSON lines alone: no coded bytes
    assert len(rows) == 1 and rows[0]["status"] == "failed" and "standard output is closed" in rows[0]["error"]


@pytest.mark.skipif(not os.path.exists("/dev/stderr"), reason="needs /dev/stderr")
def test_a_closed_standard_error_is_not_taken_by_the_next_file_opened(tmp_path, image_file, tiny_model):
    """The same for descriptor 2 (`... -o /dev/stderr --log run.jsonl 2>&-`): every standard descriptor the process
    started without is held, not only standard output's (mutation audit: leaving 2 out was not caught)."""
    import subprocess

    log = tmp_path / "run.jsonl"
    env = dict(os.environ, PYTHONWARNINGS="ignore")
    r = subprocess.run([sys.executable, "-m", "saicm", "compress", str(image_file), "-o", "/dev/stderr", "--model",
                        str(tiny_model), "--log", str(log), "--quiet"], stdout=subprocess.PIPE, text=True, env=env,
                       timeout=600, preexec_fn=lambda: os.close(2))
    assert r.returncode == 1, r.stdout
    assert not log.read_bytes().startswith(b"SAIC")  # (the coded file's magic: it was written into the log)
    rows = [json.loads(line) for line in log.read_text().splitlines()]
    assert len(rows) == 1 and rows[0]["status"] == "failed" and "standard error is closed" in rows[0]["error"]


def _on_a_terminal(argv, env) -> tuple[int, bytes]:
    """The status and what the terminal showed of ``saicm ARGV`` with standard error on a pseudo-terminal (80x24)."""
    import fcntl
    import struct
    import subprocess
    import termios

    leader, follower = os.openpty()
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 80, 0, 0))
    p = subprocess.Popen([sys.executable, "-m", "saicm", *map(str, argv)], stdin=subprocess.DEVNULL,
                         stdout=subprocess.DEVNULL, stderr=follower, env=env)
    os.close(follower)
    seen = b""
    while True:
        try:
            chunk = os.read(leader, 65536)
        except OSError:  # (the command has ended: the terminal's other side is closed)
            break
        if not chunk:
            break
        seen += chunk
    os.close(leader)
    return p.wait(timeout=600), seen


@pytest.mark.skipif(not hasattr(os, "openpty"), reason="needs a pseudo-terminal")
@pytest.mark.parametrize("jobs", ["1", "2"])
def test_a_warning_during_a_folder_job_on_a_terminal_is_a_line_of_its_own(tmp_path, tiny_model, jobs):
    """On a terminal, a file's warning (an animated GIF: only its first frame is coded) was written after the bar's
    text, on the bar's line (`compress:  33%|███ | 1/3 [00:00<00:01]saicm: warning: ...`), by the command and by a
    worker process alike: it goes on a line of its own, as the job's errors do."""
    src = _photos(tmp_path / "src", 2)
    frame = Image.fromarray(natural_image(seed=5))
    frame.save(src / "moving.gif", save_all=True, append_images=[frame.rotate(90)])
    env = {k: v for k, v in os.environ.items() if k != "PYTHONWARNINGS"}  # (saicm's own warning must be said)
    code, seen = _on_a_terminal(["compress", src, "-o", tmp_path / "coded", "--model", tiny_model, "--jobs", jobs],
                                env | {"TERM": "xterm"})
    assert code == 0, seen
    # (what stays on each line of the screen: the terminal ends lines with \r\n)
    shown = [line.rstrip(b"\r").split(b"\r")[-1] for line in seen.split(b"\n")]
    said = [line for line in shown if b"saicm: warning:" in line
            and not _THE_MACHINES_CORES.search(line.decode("utf-8", "replace"))]
    assert len(said) == 1 and said[0].startswith(b"saicm: warning: ") and b"2 frames" in said[0], seen


@pytest.mark.skipif(not hasattr(os, "openpty"), reason="needs a pseudo-terminal")
def test_a_dumb_terminal_gets_status_lines_not_a_bar(tmp_path, tiny_model, monkeypatch):
    """TERM=dumb (Emacs' shell and compilation buffers) cannot redraw a line: the bar's carriage returns showed as
    ^M, one long line of bars. It gets the status lines said off a terminal."""
    src = _photos(tmp_path / "src", 2)
    code, seen = _on_a_terminal(["compress", src, "-o", tmp_path / "coded", "--model", tiny_model],
                                dict(os.environ, TERM="dumb", PYTHONWARNINGS="ignore"))
    assert code == 0, seen
    assert b"\r" not in seen.replace(b"\r\n", b"\n"), seen  # (the terminal ends each line with \r\n)
    assert b"saicm compress: 1/2 files" in seen and b"%|" not in seen, seen
    from saicm._progress import bar_disable

    monkeypatch.setenv("TERM", "dumb")
    assert bar_disable(True) is True and bar_disable(False) is True
    monkeypatch.setenv("TERM", "xterm")
    assert bar_disable(True) is None and bar_disable(False) is True
    code, seen = _on_a_terminal(["compress", src, "-o", tmp_path / "coded2", "--model", tiny_model],
                                dict(os.environ, TERM="xterm", PYTHONWARNINGS="ignore"))
    assert code == 0 and b"%|" in seen and b"saicm compress: " not in seen, seen  # (a terminal that can: the bar)
    # tqdm's own TQDM_DISABLE (a CI job given a terminal) had no effect, saicm setting every bar's disable: it gets
    # the status lines too, as the environment table says
    for value, off in (("1", True), ("true", True), ("0", None), ("", None)):
        monkeypatch.setenv("TQDM_DISABLE", value)
        assert bar_disable(True) is off, value
    code, seen = _on_a_terminal(["compress", src, "-o", tmp_path / "coded3", "--model", tiny_model],
                                dict(os.environ, TERM="xterm", TQDM_DISABLE="1", PYTHONWARNINGS="ignore"))
    assert code == 0 and b"%|" not in seen and b"saicm compress: 1/2 files" in seen, seen


def test_the_bar_made_where_none_is_drawn_does_what_the_callers_use_of_tqdms(monkeypatch, capsys):
    """saicm._progress.NoBar stands for a disabled tqdm bar at every call site: the same writes (to standard output
    by default, a line each, ``file=`` and ``end=`` as given: a fit's events and a folder job's errors), counts,
    iteration, context manager and the methods the callers call; an error inside the ``with`` goes through."""
    import io

    import tqdm

    from saicm._progress import NoBar, progress_bar

    bars = [progress_bar(range(3), total=5, initial=2, progress=False),
            tqdm.tqdm(range(3), total=5, initial=2, disable=True)]
    assert isinstance(bars[0], NoBar)
    for bar in bars:
        assert bar.disable and list(bar) == [0, 1, 2]
        bar.update(3)
        bar.update()
        bar.n = bar.n + 1
        bar.set_postfix(loss="1.0")
        bar.set_postfix_str("x")
        bar.set_description("d")
        bar.refresh()
        bar.write("event")
        err = io.StringIO()
        bar.write("saicm: error: e\n", file=err, end="")
        bar.write("two", file=err)
        assert err.getvalue() == "saicm: error: e\ntwo\n"
        bar.close()
        bar.close()
        with pytest.raises(KeyboardInterrupt):
            with bar as b:
                assert b is bar
                raise KeyboardInterrupt
    assert bars[0].n == 7 and bars[0].total == bars[1].total == 5  # (a disabled tqdm bar does not count)
    assert capsys.readouterr().out == "event\n" * 2
    monkeypatch.setattr(sys.stderr, "isatty", lambda: False, raising=False)  # (off a terminal, progress wanted)
    assert isinstance(progress_bar(total=2, progress=True), NoBar)


def test_with_standard_error_closed_a_job_runs_and_its_messages_stay_off_standard_output(tmp_path, tiny_model):
    """`saicm compress photos/ -o coded/ 2>&-`: the bar's write to a None sys.stderr raised before the first file
    (status 1, nothing coded, not a word); and `compress a.png -o /dev/stdout 2>&- > a.saicm` appended its summary
    line ("/dev/stdout: 1234 bytes, ...": print's file=None is standard output) to the coded bytes."""
    import subprocess

    src = _photos(tmp_path / "src", 2)
    env = dict(os.environ, PYTHONWARNINGS="ignore")
    r = subprocess.run([sys.executable, "-m", "saicm", "compress", str(src), "-o", str(tmp_path / "coded"),
                        "--model", str(tiny_model)], stdout=subprocess.PIPE, text=True, env=env, timeout=600,
                       preexec_fn=lambda: os.close(2))
    assert r.returncode == 0 and r.stdout == "compressed 2 of 2 files\n", r.stdout
    assert sorted(p.name for p in (tmp_path / "coded").iterdir()) == ["0.saicm", "1.saicm"]
    r = subprocess.run([sys.executable, "-m", "saicm", "compress", str(src / "0.png"), "-o", "/dev/stdout",
                        "--model", str(tiny_model)], stdout=subprocess.PIPE, env=env, timeout=600,
                       preexec_fn=lambda: os.close(2))
    assert r.returncode == 0
    assert r.stdout == (tmp_path / "coded" / "0.saicm").read_bytes()  # the coded file alone


@pytest.mark.skipif(not os.path.exists("/dev/stdout"), reason="needs /dev/stdout")
def test_a_log_on_standard_output_is_json_lines_alone(tmp_path, tiny_model):
    """`saicm compress photos/ -o coded/ --log /dev/stdout | jq`: the summary line ("compressed 2 of 2 files") came
    after the JSON lines on standard output, and the reader stopped on it."""
    import subprocess

    src = _photos(tmp_path / "src", 2)
    env = dict(os.environ, PYTHONWARNINGS="ignore")
    for argv in (["compress", src, "-o", tmp_path / "coded", "--model", tiny_model],
                 ["decompress", tmp_path / "coded", "-o", tmp_path / "dec", "--model", tiny_model],
                 ["compress", src / "0.png", "-o", tmp_path / "one.saicm", "--model", tiny_model]):
        r = subprocess.run([sys.executable, "-m", "saicm", *map(str, argv), "--log", "/dev/stdout"],
                           capture_output=True, text=True, env=env, timeout=600)
        assert r.returncode == 0, r.stderr
        records = [json.loads(line) for line in r.stdout.splitlines()]
        assert records and all(rec["status"] == "written" for rec in records)
        assert ("compressed 2 of 2" in r.stderr or "decompressed 2 of 2" in r.stderr or "one.saicm: " in r.stderr)


def test_a_dash_for_standard_input_or_output_names_what_is_taken_instead(tmp_path, image_file, tiny_model, capsys):
    """`-o -` said "writing to standard output is not supported" (and `-o /dev/stdout` is); an input `-` said only
    "-: no such file" (saicm reads /dev/stdin)."""
    m = ["--model", str(tiny_model)]
    code = main(["compress", str(image_file), "-o", "-"] + m)
    assert code == 2
    _assert_one_line_error(code, capsys.readouterr().err, "-o /dev/stdout")
    for argv in (["compress", "-", "-o", str(tmp_path / "a.saicm")] + m, ["info", "-"],
                 ["decompress", "-", "-o", str(tmp_path / "a.png")] + m):
        code = main(argv)
        assert code == 2
        _assert_one_line_error(code, capsys.readouterr().err, "no such file", "/dev/stdin")


def _main_runs_the_function_given(monkeypatch) -> None:
    """``saicm.cli.main([fn])`` runs ``fn(args)``: the command line's own handling of a command, without its
    parser (for tests of what main() does around any command)."""
    import argparse

    import saicm.cli as cli

    class Parser:
        def parse_args(self, argv):
            return argparse.Namespace(func=argv[0])

        def parse_known_args(self, argv):  # (what main() calls: an unknown option is its command's parser's to refuse)
            return self.parse_args(argv), []

    monkeypatch.setattr(cli, "build_parser", lambda: Parser())


def test_main_in_two_threads_at_once_leaves_stdout_as_it_was(monkeypatch):
    """main() swapped sys.stdout for its checked wrapper and back on its own: two calls that overlapped (a service
    running commands in threads) left the first one's wrapper as sys.stdout for good."""
    import threading

    import saicm.cli as cli

    a_in, b_in, a_done = threading.Event(), threading.Event(), threading.Event()

    def a(args):  # begins first, ends first
        a_in.set()
        b_in.wait(60)
        return 0

    def b(args):  # begins while a runs, ends after it
        b_in.set()
        a_done.wait(60)
        return 0

    _main_runs_the_function_given(monkeypatch)
    before = sys.stdout
    monkeypatch.setattr(sys, "stdout", before)  # (put back after the test whatever happens)
    ta = threading.Thread(target=lambda: (cli.main([a]), a_done.set()))
    ta.start()
    a_in.wait(60)
    tb = threading.Thread(target=lambda: cli.main([b]))
    tb.start()
    ta.join(60)
    tb.join(60)
    assert sys.stdout is before


def test_a_job_log_whose_reader_went_away_stops_quietly_not_as_a_write_error():
    """--log /dev/stdout | head: the log's BrokenPipeError stays one (main's quiet stop, status 141), while a full
    disk is a SaicmError naming the log (mutation audit: turning the broken pipe into an error was not caught)."""
    import errno

    from saicm.codec.batch import JobLog as _JobLog
    from saicm.errors import SaicmError

    class Failing:
        def __init__(self, e):
            self.e = e

        def write(self, text):
            raise self.e

        flush = close = lambda self: None

    with pytest.raises(BrokenPipeError):
        _JobLog(Failing(BrokenPipeError(errno.EPIPE, "Broken pipe")), "/dev/stdout").write("{}\n")
    with pytest.raises(SaicmError, match="cannot write the log") as e:
        _JobLog(Failing(OSError(errno.ENOSPC, "No space left on device")), "run.jsonl").write("{}\n")
    assert e.value.errno == errno.ENOSPC


def test_a_job_log_that_fails_on_closing_says_so_once_and_never_hides_the_jobs_own_error():
    """The log's close writes its buffer: a full disk there is the log's one-line error; but not a second time after
    a write already said so, nor over an error of the job itself (mutation audit: neither was checked)."""
    import errno

    from saicm.codec.batch import JobLog as _JobLog
    from saicm.errors import SaicmError

    class FullDisk:
        def write(self, text=""):
            raise OSError(errno.ENOSPC, "No space left on device")

        flush = close = write

    with pytest.raises(SaicmError, match="run.jsonl: cannot write the log"):
        with _JobLog(FullDisk(), "run.jsonl"):
            pass  # (nothing written that failed: the close says it)
    with pytest.raises(KeyboardInterrupt):
        with _JobLog(FullDisk(), "run.jsonl"):
            raise KeyboardInterrupt  # (the job's own error is the one reported)
    log = _JobLog(FullDisk(), "run.jsonl")
    with log:
        with pytest.raises(SaicmError):
            log.write("{}\n")  # said once; the close is quiet


def test_main_words_only_the_errors_of_a_full_disk_as_cannot_write(monkeypatch, capsys):
    """An OSError reaching main() is "cannot write" only when it is about the disk (WRITE_ERRNOS); any other (an
    I/O error, a permission) is not reworded as one (mutation audit: rewording every OSError was not caught)."""
    import errno

    import saicm.cli as cli

    def raising(e):
        def func(args):
            raise e
        return func

    _main_runs_the_function_given(monkeypatch)
    assert cli.main([raising(OSError(errno.EDQUOT, "Disk quota exceeded", "/x/log.jsonl"))]) == 2
    assert capsys.readouterr().err == "saicm: error: /x/log.jsonl: cannot write (Disk quota exceeded)\n"
    with pytest.raises(PermissionError):
        cli.main([raising(PermissionError(errno.EACCES, "Permission denied", "/x/y"))])
    assert "cannot write" not in capsys.readouterr().err


def test_every_main_call_runs_with_the_checked_stdout_until_the_last_one_ends(monkeypatch):
    """Overlapping and successive main() calls each run with the checked wrapper as sys.stdout: not taken off while
    another call still runs, and put on again by a later call (mutation audit: neither was checked)."""
    import threading

    import saicm.cli as cli
    from saicm._process import _CheckedStdout

    seen = []
    b_in, a_done = threading.Event(), threading.Event()

    def a(args):  # ends while b runs
        b_in.wait(60)
        seen.append(("a", type(sys.stdout)))
        return 0

    def b(args):  # looks after a ended
        b_in.set()
        a_done.wait(60)
        seen.append(("b", type(sys.stdout)))
        return 0

    _main_runs_the_function_given(monkeypatch)
    before = sys.stdout
    monkeypatch.setattr(sys, "stdout", before)
    tb = threading.Thread(target=lambda: cli.main([b]))
    tb.start()
    cli.main([a])
    a_done.set()
    tb.join(60)
    assert sys.stdout is before
    cli.main([a])  # (one more, alone)
    assert seen == [("a", _CheckedStdout), ("b", _CheckedStdout), ("a", _CheckedStdout)]
    assert sys.stdout is before


def test_a_folder_jobs_summary_names_its_failed_files(tmp_path, capsys):
    """Among thousands of files the errors printed as they happened scroll away, and the summary said "4 failed"
    only (the batch audit): it names them, the first five and how many more."""
    d = tmp_path / "in"
    d.mkdir()
    Image.fromarray(natural_image(32, 32)).save(d / "good.png")
    for i in range(7):
        (d / f"bad{i}.png").write_bytes(b"not an image")
    assert main(["compress", str(d), "-o", str(tmp_path / "out"), "--jobs", "1"]) == 1
    summary = [x for x in capsys.readouterr().out.splitlines() if x.startswith("compressed ")]
    names = ", ".join(str(d / f"bad{i}.png") for i in range(5))
    assert summary == [f"compressed 1 of 8 files; 7 failed: {names} and 2 more (--log FILE records each)"], summary


def test_info_of_a_model_shows_a_bounded_number_of_training_sessions(tiny_model, tmp_path, capsys):
    """A line per training session (one per --resume) with no cap: a stranger's model file holding a million
    made `saicm info` print a million lines. Sixteen, then how many there are; --json gives every one."""
    import torch

    from saicm.models import build_architecture, save_model

    torch.manual_seed(0)
    net = build_architecture("gained-mean-scale-hyperprior", N=16, M=24, lambdas=[0.002, 0.01, 0.05])
    sessions = [{"from_step": i, "saicm": "0.27.0", "threads": 1} for i in range(40)]
    path = tmp_path / "many.safetensors"
    save_model(net, path, extra_meta={"training": {"steps": 40, "sessions": sessions}})
    assert main(["info", str(path)]) == 0
    out = capsys.readouterr().out
    assert out.count("training.sessions[") == 16 and "training.sessions[15]" in out
    assert "… (40 in all; --json gives every one)" in out
    assert main(["info", str(path), "--json"]) == 0
    assert len(json.loads(capsys.readouterr().out)["training"]["sessions"]) == 40


@pytest.mark.parametrize("training", [{"steps": 3}, {"loss": ["mse"], "data": [3, None]}, {"loss": "mse", "data": 7}])
def test_info_of_a_model_with_a_strange_training_record_is_shown_not_a_traceback(training, tmp_path, capsys):
    """A training record without "loss" (or with a list for it, numbers for its data) was a TypeError traceback
    in `saicm info` and `saicm models`: a model file comes from strangers too."""
    import torch

    from saicm.models import build_architecture, save_model

    torch.manual_seed(0)
    net = build_architecture("gained-mean-scale-hyperprior", N=16, M=24, lambdas=[0.002, 0.01, 0.05])
    path = tmp_path / "odd.safetensors"
    save_model(net, path, extra_meta={"training": training})
    assert main(["info", str(path)]) == 0
    out = capsys.readouterr().out
    assert "description" in out and ("loss not recorded" in out or "plain MSE" in out)


def test_a_training_session_line_says_modified_only_for_modified_sources():
    """`saicm info MODEL` names the commit a session ran from, marked "modified" when saicm's sources differed from
    it (mutation audit: the mark inverted passed; a clean checkout's run would have been said modified)."""
    from saicm.cli import _session_text

    s = {"from_step": 0, "saicm": "0.26.1", "commit": "0123456789abcdef", "python": "3.11", "torch": "2.5",
         "threads": 2, "processes": 1, "device": "cpu", "data": {"images": 5, "sha256": "ab" * 32}}
    assert "saicm 0.26.1 (0123456789ab), python 3.11, torch 2.5;" in _session_text(s | {"dirty": False})
    assert "(0123456789ab, modified)" in _session_text(s | {"dirty": True})
    assert "saicm 0.26.1, python" in _session_text({k: v for k, v in s.items() if k != "commit"})
    assert _session_text("not a session") == "not a session"


def test_a_training_session_line_shows_its_options_as_they_were_given():
    """A session's options (saicm 0.31: steps, batch, patch, lr, amp, compile) as the command line's: a flag only
    when it was on, nothing for a session that recorded none (mutation audit of 0.30.0: ``--compile False`` shown,
    ``--compile`` left out, or a bare "; " for no options, each with no test failing)."""
    from saicm.cli import _session_options_text, _session_text

    options = {"steps": 150, "batch": 2, "patch": 64, "lr": 1e-4, "amp": "bf16", "compile": True}
    assert _session_options_text(options) == "; --steps 150 --batch 2 --patch 64 --lr 0.0001 --amp bf16 --compile"
    assert (_session_options_text(options | {"compile": False, "amp": None})
            == "; --steps 150 --batch 2 --patch 64 --lr 0.0001")
    s = {"from_step": 0, "saicm": "0.30.0", "python": "3.11", "threads": 2, "processes": 1, "device": "cpu",
         "data": {"images": 5, "sha256": "ab" * 32}}
    assert _session_text(s | {"options": options}).endswith("sha256 " + "ab" * 32 + _session_options_text(options))
    for none in ({}, None, "junk"):  # (sessions of saicm 0.30.0 and before recorded none)
        assert _session_options_text(none) == ""
        assert _session_text(s | {"options": none}).endswith("sha256 " + "ab" * 32)


@pytest.mark.parametrize("argv, said", [
    (["compress", "x.png", "--quality", "abc"], "argument --quality: expected a whole number, got 'abc'"),
    (["compress", "x.png", "--human-quality", "1.5"], "argument --human-quality: expected a whole number, got '1.5'"),
    (["demo", "--quality", "x"], "argument --quality: expected a whole number, got 'x'"),
    (["masks", "d", "-o", "m", "--alpha", "5"], "argument --alpha: expected a number in (0, 1], got '5'"),
    (["import-checkpoint", "x.pth", "--name", "n", "--alpha", "x"], "argument --alpha: expected a number in (0, 1]"),
    (["video", "encode", "x.mp4", "-o", "x.saicmv", "--lr", "0"], "argument --lr: expected a learning rate > 0 and at "
     "most 1, got '0'"),
    (["video", "encode", "x.mp4", "-o", "x.saicmv", "--edge-weight", "-1"], "argument --edge-weight: expected a "
     "number >= 0"),
    (["video", "encode", "x.mp4", "-o", "x.saicmv", "--beta", "2"], "argument --beta: expected a number from 0 to 1"),
    (["video", "encode", "x.mp4", "-o", "x.saicmv", "--prune", "x"], "argument --prune: expected a number from 0 to 1"),
    (["video", "encode", "x.mp4", "-o", "x.saicmv", "--seed", "1.5"], "argument --seed: expected a whole number"),
    (["video", "encode", "x.mp4", "-o", "x.saicmv", "--bits", "x"], "argument --bits: expected a whole number"),
    # (above 1 a run only diverges, and 1e41 was PyTorch's overflow traceback at the first step)
    (["train", "--data", "d", "--out", "o", "--lr", "1e41"], "argument --lr: expected a learning rate > 0 and at most 1"),
    (["video", "encode", "x.mp4", "-o", "x.saicmv", "--lr", "2"], "argument --lr: expected a learning rate > 0 and at "
     "most 1"),
])
def test_a_bad_number_is_said_as_every_number_option_says_it(argv, said, capsys):
    """argparse's "invalid int value: 'abc'" (--quality, --seed, --bits) and "invalid float value" (--alpha, --lr,
    ...) where --jobs, --limit, --threads and train's --lr say what they expect; video encode's --lr, --beta,
    --edge-weight, --prune and masks' --alpha were checked only later, in other words ("epochs and batch must be at
    least 1 and the learning rate positive" of --lr 0) (a CLI consistency audit)."""
    with pytest.raises(SystemExit) as e:
        main(argv)
    assert e.value.code == 2 and said in capsys.readouterr().err


def _all_parsers(parser, prefix=()):
    import argparse

    yield prefix, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from _all_parsers(sub, (*prefix, name))


def test_every_help_fits_80_columns_and_says_every_option(monkeypatch):
    """`saicm masks --help` printed its description as written, in lines of 140 and 84 columns, and `compress
    --help` a usage line of 84 (its --engine choices); `eval --task`, `report --title` and `export`'s checkpoint
    said nothing, and `video`'s --max-pixels no N (a CLI consistency audit)."""
    from saicm.cli import build_parser

    monkeypatch.setenv("COLUMNS", "80")
    parsers = list(_all_parsers(build_parser()))
    assert len(parsers) > 15
    for names, parser in parsers:
        text = parser.format_help()
        wide = [line for line in text.splitlines() if len(line) > 80]
        assert not wide, (names, wide)
        if names:
            silent = [a.dest for a in parser._actions if not a.help and a.dest != "help"
                      and a.__class__.__name__ != "_SubParsersAction"]
            assert not silent, (names, silent)
    video = dict(parsers)[("video", "encode")].format_help()
    assert "--max-pixels N" in video


def test_decompress_format_not_used_with_an_output_file_is_said(tmp_path, capsys):
    """`decompress x.saicm -o x.png --format bmp` wrote a PNG and said nothing of --format (a CLI consistency
    audit: options a command does not use are named in a warning, as `eval` and `masks` name theirs)."""
    img = tmp_path / "a.png"
    Image.fromarray(natural_image(64, 64)).save(img)
    assert main(["compress", str(img), "-o", str(tmp_path / "a.saicm"), "--quiet"]) == 0
    capsys.readouterr()
    with pytest.warns(saicm.SaicmWarning, match="--format bmp not used: -o names the file, written as PNG"):
        assert main(["decompress", str(tmp_path / "a.saicm"), "-o", str(tmp_path / "x.png"), "--format", "bmp"]) == 0
    assert Image.open(tmp_path / "x.png").format == "PNG"
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # where --format names the output, or says what -o says, no warning
        assert main(["decompress", str(tmp_path / "a.saicm"), "-o", str(tmp_path / "d") + "/", "--format", "bmp"]) == 0
        assert main(["decompress", str(tmp_path / "a.saicm"), "-o", str(tmp_path / "y.tif"), "--format", "tiff"]) == 0
        assert main(["decompress", str(tmp_path / "a.saicm"), "-o", str(tmp_path / "z.png")]) == 0
    assert Image.open(tmp_path / "d" / "a.bmp").format == "BMP"


def test_train_takes_o_for_its_run_folder_as_every_writing_command_does():
    """`saicm train -o RUN` said "the following arguments are required: --out": train was the one command that
    writes and took no -o (import-checkpoint's --out has it) (a CLI consistency audit)."""
    from saicm.cli import build_parser

    assert build_parser().parse_args(["train", "-o", "run", "--data", "photos"]).out == "run"
    for names, parser in _all_parsers(build_parser()):
        writes = [a for a in parser._actions if a.dest in ("out", "output")]
        assert all("-o" in a.option_strings for a in writes), names


def test_help_says_what_bdrate_json_takes_and_the_shipped_default_quality(monkeypatch):
    """`bdrate --json JSON` read as the flag of `info --json` (a results file was replaced, see test_eval_cli);
    `compress --quality` said "4 of the shipped models' 7" where the v3 models have 6 (a CLI consistency audit)."""
    from saicm.cli import build_parser
    from saicm.models.catalog import model_table

    monkeypatch.setenv("COLUMNS", "200")
    parsers = dict(_all_parsers(build_parser()))
    assert "--json FILE.json" in parsers[("bdrate",)].format_help()
    shipped = [r for r in model_table() if r["source"] == "shipped"]
    counts = {len(r["qualities"]) for r in shipped}
    assert {r["default_quality"] for r in shipped} == {4} and counts == {6, 7}
    assert "4 for every shipped model, of 7, or of 6 for the v3 models" in parsers[("compress",)].format_help()


def test_an_unknown_option_is_refused_with_the_commands_own_usage(capsys):
    """`saicm compress x.jpg --bogus` printed the top-level usage (`saicm [-h] [--version] COMMAND ...`), which says
    nothing of compress's options (the observability audit); nested commands alike."""
    from saicm.cli import main

    for argv, prog in ((["compress", "x.jpg", "--bogus"], "saicm compress"),
                       (["video", "decode", "x.saicmv", "-o", "y", "--bogus"], "saicm video decode")):
        with pytest.raises(SystemExit) as e:
            main(argv)
        err = capsys.readouterr().err
        assert e.value.code == 2 and err.startswith(f"usage: {prog} "), err
        assert ("--quality" if prog == "saicm compress" else "--max-pixels") in err  # (the command's options shown)
        assert err.rstrip().endswith(f"{prog}: error: unrecognized arguments: --bogus"), err
    with pytest.raises(SystemExit):  # an option before the command is not the command's
        main(["--bogus", "compress", "x.jpg"])
    err = capsys.readouterr().err
    assert err.startswith("usage: saicm [-h]") and err.rstrip().endswith("saicm: error: unrecognized arguments: --bogus")


def test_a_one_file_job_draws_no_bar_of_files(monkeypatch, capsys, tmp_path):
    """A job of one file shows that file's own steps, not a bar of files (``1/1 img``) on a terminal; two files
    get one."""
    from saicm import _progress
    from saicm.codec import batch

    monkeypatch.setattr(_progress, "bar_disable", lambda progress: not progress)  # (a terminal's bar where wanted)
    jobs = [batch.Job(tmp_path / f"{n}.png", tmp_path / f"{n}.saicm") for n in "ab"]
    for job in jobs:
        job.src.write_bytes(b"x")
    batch.run(_one_byte, jobs[:1], 1, "compress", True)
    assert "img" not in capsys.readouterr().err
    batch.run(_one_byte, jobs, 1, "compress", True)
    assert "2/2" in capsys.readouterr().err


def _one_byte(job) -> dict:
    return {"bytes": 1}


def test_time_left_is_said_in_seconds_minutes_or_hours():
    from saicm._progress import time_left

    assert time_left(0, 10, 5.0) == "" and time_left(10, 10, 5.0) == ""  # (none done yet; all done)
    assert time_left(1, 2, 0.3) == ", about 1 s left"  # (never "0 s")
    assert time_left(1, 2, 75.0) == ", about 75 s left"
    assert time_left(1, 2, 120.0) == ", about 2 min left"
    assert time_left(1, 2, 4000.0) == ", about 67 min left"
    assert time_left(1, 2, 5400.0) == ", about 1 h 30 min left"


def test_a_stage_meter_times_each_stage_from_its_own_start_and_draws_one_bar(monkeypatch, capsys):
    """A stage's time left is reckoned from when its first part began (the previous stage's end), not from the
    start of the work; on a terminal its bar follows the parts done, and no status line is said beside it."""
    from saicm import _progress

    clock = [100.0]
    monkeypatch.setattr(_progress.time, "monotonic", lambda: clock[0])
    monkeypatch.setattr(_progress, "LINE_SECONDS", 0.0)
    with _progress.StageMeter("compress", True) as meter:
        clock[0] = 1000.0  # (a long first stage)
        meter("analysis", 2, 2, "tile")
        clock[0] = 1010.0  # (the next stage's first part: 10 s)
        meter("coding", 1, 4, "strip")
    err = capsys.readouterr().err.splitlines()
    assert err == ["saicm compress: coding 1/4 strips, about 30 s left"], err
    # work between two stages (the gain and hyper-analysis before the coding) is not the next stage's first part: it
    # said "about 2 min left" for 2 s of coding (the performance audit)
    with _progress.StageMeter("compress", True) as meter:
        meter("analysis", 2, 2, "tile")
        clock[0] = 1100.0  # (40 s of other work)
        meter.mark()
        clock[0] = 1101.0
        meter("coding", 1, 4, "strip")
    assert capsys.readouterr().err.splitlines() == ["saicm compress: coding 1/4 strips, about 3 s left"]
    monkeypatch.setattr(_progress, "bar_disable", lambda progress: False)  # (a terminal's bar)
    with _progress.StageMeter("compress", True) as meter:
        meter("analysis", 3, 6, "tile")
        assert meter.bar.n == 3 and not meter.bar.disable
        meter("analysis", 5, 6, "tile")
        assert meter.bar.n == 5
    assert "saicm compress:" not in capsys.readouterr().err
    with _progress.StageMeter("compress", False) as meter:  # (off: nothing at all)
        meter("analysis", 1, 6, "tile")
        assert meter.bar is None
    assert capsys.readouterr().err == ""


_SETTINGS_AFTER_MAIN = """
import sys, warnings
def state():
    return (sys.stdout.line_buffering, sys.stdout.errors, sys.stderr.errors, len(warnings.filters),
            warnings.formatwarning.__module__)
before = state()
from saicm.cli import main
import saicm.errors
assert main(["models", "--json"]) == 0
after = state()
sys.stdout.flush()
sys.stderr.write(repr((before, after, saicm.errors._command_line)) + "\\n")
"""


def test_main_called_from_python_leaves_the_streams_and_warnings_as_it_found_them(tmp_path):
    """saicm.cli.main() called from Python (a notebook, another tool) left standard output line-buffered (its
    standard error shares the file here, as a notebook's log or ``2>&1`` does), both streams' error handlers
    reconfigured, Deprecation- and FutureWarnings hidden and warnings formatted as saicm's for the rest of the
    session."""
    log = tmp_path / "both.log"
    with open(log, "w") as both:
        subprocess.run([sys.executable, "-c", _SETTINGS_AFTER_MAIN], stdout=both, stderr=both, check=True,
                       timeout=120, env=dict(os.environ, PYTHONIOENCODING="utf-8:strict"))
    before, after, command_line = eval(log.read_text().splitlines()[-1])
    assert before[:3] == (False, "strict", "backslashreplace")  # (each of them changed by main while it runs)
    assert after == before and command_line is False, (before, after)


def test_a_command_out_of_memory_is_one_line_naming_the_limit(monkeypatch, capsys):
    """`saicm eval` under `ulimit -v 4G` ended in a 20-line MemoryError traceback (onnxruntime's failed allocation,
    exit 1): a command out of memory is now one line naming the limits that apply, exit 2."""
    import resource

    from saicm import cli
    from saicm.engine import parallel

    def out_of_memory(args):
        raise MemoryError("onnxruntime: failed to allocate")

    monkeypatch.setattr(cli, "cmd_models", out_of_memory)
    monkeypatch.setattr(parallel, "cgroup_memory_limit", lambda *a: 900 << 20)
    monkeypatch.setattr(resource, "getrlimit", lambda which: (4000 << 20, resource.RLIM_INFINITY))
    assert cli.main(["models"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert err.startswith("saicm: error: out of memory within an address-space limit of 3.9 GiB (ulimit -v) and a "
                          "memory limit of 900 MiB (the cgroup's) (onnxruntime: failed to allocate)")

    monkeypatch.setattr(parallel, "cgroup_memory_limit", lambda *a: None)  # no limit known: still one line
    monkeypatch.setattr(resource, "getrlimit", lambda which: (resource.RLIM_INFINITY, resource.RLIM_INFINITY))
    assert cli.main(["models"]) == 2
    assert capsys.readouterr().err == ("saicm: error: out of memory (onnxruntime: failed to allocate): run it with "
                                       "more memory, or with fewer or smaller images\n")
    from saicm.commands import training  # training's own advice: its batch and crops, not images

    monkeypatch.setattr(training, "cmd_train", out_of_memory)
    assert cli.main(["train", "--data", ".", "--out", "run"]) == 2
    assert capsys.readouterr().err.endswith("run it with more memory, or with a smaller --batch or --patch (or --amp "
                                            "bf16)\n")


def test_main_leaves_a_standard_error_put_there_meanwhile_open(monkeypatch):
    """main() put back the standard error it found by closing whatever sys.stderr was when it returned, taking it
    for its stand-in for a closed one: another thread's contextlib.redirect_stderr(buffer), entered while a command
    ran, had its buffer closed and replaced (its getvalue() a ValueError)."""
    import io

    from saicm import _process, cli

    buffer, before = io.StringIO(), sys.stderr

    def redirected_meanwhile(args):  # (what another thread's redirect_stderr does while the command runs)
        sys.stderr = buffer
        return 0

    monkeypatch.setattr(cli, "cmd_models", redirected_meanwhile)
    try:
        assert cli.main(["models"]) == 0
        assert sys.stderr is buffer and not buffer.closed
    finally:
        sys.stderr = before
    monkeypatch.setattr(cli, "cmd_models", lambda args: 0)
    sys.stderr = None  # (closed, 2>&-: the stand-in main() put there is taken away again, closed)
    try:
        assert cli.main(["models"]) == 0 and sys.stderr is None and _process._stderr_stand_in.closed
    finally:
        sys.stderr = before


def test_pytorch_out_of_memory_is_one_line_and_another_runtime_error_is_not_hidden(monkeypatch, capsys):
    """PyTorch's CPU allocator says it is out of memory in a RuntimeError, not a MemoryError: `saicm train` with a
    batch too large for the memory (or eval and compress on PyTorch) ended in a traceback, where a MemoryError was
    one line (only `saicm video encode` knew the RuntimeError). Any other RuntimeError is still raised."""
    from saicm import cli
    from saicm.engine import parallel

    def out_of_memory(args):
        raise RuntimeError("[enforce fail at alloc_cpu.cpp:127] err == 0. DefaultCPUAllocator: can't allocate memory: "
                           "you tried to allocate 4000000000000 bytes. Error code 12 (Cannot allocate memory)")

    monkeypatch.setattr(cli, "cmd_models", out_of_memory)
    monkeypatch.setattr(parallel, "cgroup_memory_limit", lambda *a: None)
    assert cli.main(["models"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("saicm: error: out of memory") and err.count("\n") == 1, err

    def other(args):
        raise RuntimeError("a bug")

    monkeypatch.setattr(cli, "cmd_models", other)
    with pytest.raises(RuntimeError, match="a bug"):
        cli.main(["models"])


def test_the_jobs_help_names_the_memory_limit_that_bounds_the_workers(capsys):
    """Folder jobs' workers are bounded by a container's memory limit (one per GiB, WORKER_MEMORY) since this
    release, as docs/usage.md says; `--help` named the bound of four per CPU alone."""
    from saicm.cli import main
    from saicm.codec.batch import WORKER_MEMORY

    assert WORKER_MEMORY == 1 << 30  # (the help says it without importing the folder jobs' module)
    for command in ("compress", "decompress"):
        with pytest.raises(SystemExit):
            main([command, "--help"])
        assert "one per GiB of a container's memory limit" in " ".join(capsys.readouterr().out.split())


def test_out_of_memory_names_no_cgroup_v1_non_limit_and_no_long_message(monkeypatch, capsys):
    """cgroup v1 says "no limit" with a number near 2**63: no limit is named for it; an allocator's message of 200
    characters (onnxruntime's) is left out of the one line, one with a newline too (mutation testing found both
    unasserted)."""
    import resource

    from saicm import cli
    from saicm.engine import parallel

    said = ["onnxruntime: " + "x" * 190, "first line\nsecond line"]

    def out_of_memory(args):
        raise MemoryError(said.pop(0))

    monkeypatch.setattr(cli, "cmd_models", out_of_memory)
    monkeypatch.setattr(parallel, "cgroup_memory_limit", lambda *a: 9223372036854771712)
    monkeypatch.setattr(resource, "getrlimit", lambda which: (resource.RLIM_INFINITY, resource.RLIM_INFINITY))
    for _ in range(2):
        assert cli.main(["models"]) == 2
        assert capsys.readouterr().err == ("saicm: error: out of memory: run it with more memory, or with fewer or "
                                           "smaller images\n")


def test_main_calls_at_once_put_the_settings_back_when_the_last_one_ends():
    """Two main() calls running at once (threads of a notebook): what the first found is put back when the last
    ends, not what the second found (the first's changes) (mutation testing found the count unasserted)."""
    import warnings

    from saicm import cli

    before = list(warnings.filters)
    try:
        cli._process_settings_on()
        warnings.simplefilter("ignore")  # (as a command changes them)
        cli._process_settings_on()
        cli._process_settings_off()
        assert warnings.filters[0][0] == "ignore"  # (one still runs)
        cli._process_settings_off()
        assert warnings.filters == before
    finally:
        warnings.filters[:] = before
        warnings._filters_mutated()




def test_info_of_a_folder_says_a_subfolder_it_cannot_read(tmp_path, capsys, monkeypatch):
    """`saicm info DIR` with a subfolder it could not read described the others and said nothing, status 0: the
    errors os.walk passed on were appended to a list then replaced by the files found (review of 0.39.0)."""
    import shutil

    ref = Path(__file__).parent / "reference" / "astronaut-200x150-scalable-b1-h4-v3.saicm"
    (tmp_path / "day" / "locked").mkdir(parents=True)
    shutil.copy(ref, tmp_path / "day" / "a.saicm")
    shutil.copy(ref, tmp_path / "day" / "locked" / "b.saicm")
    scandir = os.scandir

    def denied(path="."):  # (as a folder of mode 000 is to a user other than root)
        if os.fspath(path).endswith("locked"):
            raise PermissionError(13, "Permission denied", os.fspath(path))
        return scandir(path)

    monkeypatch.setattr(os, "scandir", denied)
    assert main(["info", str(tmp_path / "day")]) == 2
    out, err = capsys.readouterr()
    assert f"{tmp_path / 'day' / 'locked'}: cannot read folder (Permission denied)" in err
    assert f"path                     {tmp_path / 'day' / 'a.saicm'}" in out and "b.saicm" not in out
