"""The command line and the Python API side by side (the README's "Python API alike"): the same inputs give the same
files, pixels, layers and header (``saicm compress/decompress/strip/info`` against ``saicm.compress/decompress/split/
describe``), and the same wrong input the same one line, the API's exception of the documented class."""

import json

import numpy as np
import pytest
from PIL import Image

import saicm
import saicm.video
from saicm.cli import main

from .conftest import natural_image

SCALABLE = "scalable-off02v6-m4-cond"


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """A folder holding an image (a.png), its two-layer file (two.saicm) and that file's machine layer alone
    (machine.saicm), cut short (cut.saicm)."""
    d = tmp_path_factory.mktemp("parity")
    Image.fromarray(natural_image(40, 56)).save(d / "a.png")
    two = saicm.compress(d / "a.png", model=SCALABLE, quality=1, human_quality=1)
    (d / "two.saicm").write_bytes(two)
    (d / "machine.saicm").write_bytes(saicm.strip(two))
    (d / "cut.saicm").write_bytes(two[: len(two) // 3])
    return d


def _run(capsys, *argv) -> tuple[int, str, str]:
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize("model", [None, SCALABLE])
def test_the_command_line_and_the_api_give_the_same_files_pixels_and_header(model, files, tmp_path, capsys):
    chosen = ["--model", model] if model else []
    assert _run(capsys, "compress", files / "a.png", "-o", tmp_path / "a.saicm", "-q", *chosen)[0] == 0
    data = saicm.compress(files / "a.png", model=model)  # (the defaults: model, quality, engine, layers)
    assert (tmp_path / "a.saicm").read_bytes() == data
    layers = ["auto", "machine"] if model else ["auto"]
    for layer in layers:
        png = tmp_path / f"{layer}.png"
        assert _run(capsys, "decompress", tmp_path / "a.saicm", "-o", png, "--layer", layer, "-q")[0] == 0
        assert np.array_equal(np.array(Image.open(png)), np.array(saicm.decompress(data, layer=layer)))
    code, out, _ = _run(capsys, "info", "--json", tmp_path / "a.saicm")
    assert code == 0 and json.loads(out) == saicm.describe(data)
    if model:
        argv = ["strip", tmp_path / "a.saicm", "-o", tmp_path / "m.saicm", "--human-segment", tmp_path / "h.seg"]
        assert _run(capsys, *argv)[0] == 0
        machine, segment = saicm.split(data)
        assert (tmp_path / "m.saicm").read_bytes() == machine == saicm.strip(data)
        assert (tmp_path / "h.seg").read_bytes() == segment
        code, out, _ = _run(capsys, "info", "--json", tmp_path / "h.seg")
        assert code == 0 and json.loads(out) == saicm.describe(segment)


#: the same wrong input to both: (command line, its exit status, the API's call, the class it raises); "{d}" is the
#: folder of the ``files`` fixture
ERRORS = {
    "compress: no image": (["compress", "{d}/gone.png", "-o", "{d}/x.saicm"], 2,
                           lambda d: saicm.compress(f"{d}/gone.png"), saicm.ImageError),
    "compress: over a byte budget": (["compress", "{d}/a.png", "-o", "{d}/x.saicm", "--max-bytes", "10"], 1,
                                     lambda d: saicm.compress(f"{d}/a.png", max_bytes=10), saicm.ImageError),
    "compress: unknown model": (["compress", "{d}/a.png", "-o", "{d}/x.saicm", "--model", "nope"], 2,
                                lambda d: saicm.compress(f"{d}/a.png", model="nope"), saicm.ModelError),
    "compress: quality out of range": (["compress", "{d}/a.png", "-o", "{d}/x.saicm", "--quality", "9"], 2,
                                       lambda d: saicm.compress(f"{d}/a.png", quality=9), saicm.ArgumentError),
    "compress: a coded file": (["compress", "{d}/machine.saicm", "-o", "{d}/x.saicm"], 1,
                               lambda d: saicm.compress(f"{d}/machine.saicm"), saicm.ImageError),
    "decompress: no file": (["decompress", "{d}/gone.saicm", "-o", "{d}/x.png"], 2,
                            lambda d: saicm.decompress(f"{d}/gone.saicm"), saicm.FormatError),
    "decompress: cut short": (["decompress", "{d}/cut.saicm", "-o", "{d}/x.png"], 1,
                              lambda d: saicm.decompress(f"{d}/cut.saicm"), saicm.FormatError),
    "decompress: an image": (["decompress", "{d}/a.png", "-o", "{d}/x.png"], 2,
                             lambda d: saicm.decompress(f"{d}/a.png"), saicm.FormatError),
    "decompress: no human layer": (["decompress", "{d}/machine.saicm", "-o", "{d}/x.png", "--layer", "human"], 1,
                                   lambda d: saicm.decompress(f"{d}/machine.saicm", layer="human"), saicm.FormatError),
    "decompress: another model": (["decompress", "{d}/machine.saicm", "-o", "{d}/x.png", "--model",
                                   "mse-hyperprior-n64-v5"], 1,
                                  lambda d: saicm.decompress(f"{d}/machine.saicm", model="mse-hyperprior-n64-v5"),
                                  saicm.ModelError),
    "strip: no file": (["strip", "{d}/gone.saicm", "-o", "{d}/x.saicm"], 2,
                       lambda d: saicm.strip(f"{d}/gone.saicm"), saicm.FormatError),
    "split: no file": (["strip", "{d}/gone.saicm", "-o", "{d}/x.saicm"], 2,
                       lambda d: saicm.split(f"{d}/gone.saicm"), saicm.FormatError),
    "strip: cut short": (["strip", "{d}/cut.saicm", "-o", "{d}/x.saicm"], 2,
                         lambda d: saicm.strip(f"{d}/cut.saicm"), saicm.FormatError),
    "info: no file": (["info", "{d}/gone.saicm"], 2, lambda d: saicm.describe(f"{d}/gone.saicm"), saicm.FormatError),
    "video decode: no file": (["video", "decode", "{d}/gone.saicmv", "-o", "{d}/frames"], 2,
                              lambda d: saicm.video.decode(f"{d}/gone.saicmv"), saicm.FormatError),
    "video decode to a folder: no file": (["video", "decode", "{d}/gone.saicmv", "-o", "{d}/frames"], 2,
                                          lambda d: saicm.video.decode_file(f"{d}/gone.saicmv", f"{d}/frames"),
                                          saicm.FormatError),
    "video info: no file": (["info", "{d}/gone.saicmv"], 2, lambda d: saicm.video.describe(f"{d}/gone.saicmv"),
                            saicm.FormatError),
}


@pytest.mark.parametrize("case", ERRORS)
def test_a_wrong_input_is_the_same_line_and_a_documented_class(case, files, capsys):
    """``saicm.decompress("gone.saicm")`` (and describe, strip, split, the clip decoders) raised a plain SaicmError
    where ``saicm.compress("gone.png")`` raised an ImageError: a service catching FormatError for a bad coded file
    let it through. ``saicm.compress(path, max_bytes=10)`` named no image where the command line names it."""
    argv, status, call, cls = ERRORS[case]
    code, _, err = _run(capsys, *(a.replace("{d}", str(files)) for a in argv))
    assert code == status and err.startswith("saicm: error: ") and err.count("\n") == 1, err
    with pytest.raises(cls) as e:
        call(files)
    assert isinstance(e.value, saicm.SaicmError)
    assert str(e.value) == err.removeprefix("saicm: error: ").strip()
    assert not (files / "x.saicm").exists() and not (files / "x.png").exists()


def test_describe_of_a_folder_is_a_format_error_where_info_describes_its_files(files, capsys):
    """``saicm.describe`` is of one coded file: a folder is a FormatError; ``saicm info FOLDER`` describes the coded
    files in it (since 0.39.0: it said "is a folder" as describe does)."""
    with pytest.raises(saicm.FormatError, match="folder"):
        saicm.describe(files)
    code, out, err = _run(capsys, "info", str(files))  # (cut.saicm, cut short, is said and makes the status)
    assert code == 2 and err.count("\n") == 1 and "cut.saicm" in err
    assert f"{'path':24s} {files / 'two.saicm'}" in out and out.splitlines()[-1].startswith("total    ")


def test_an_argument_error_names_no_file(files):
    """The caller's own argument is not the file's fault: ``saicm.decompress(path, layer="x")`` said
    "path: layer must be one of …" (``saicm.compress`` and the command line name no file for theirs)."""
    calls = [lambda: saicm.decompress(files / "two.saicm", layer="x"),
             lambda: saicm.decompress(files / "two.saicm", engine="gpu"),
             lambda: saicm.decompress(files / "two.saicm", max_pixels=0),
             lambda: saicm.video.decode(files / "two.saicm", threads=0)]
    for call in calls:
        with pytest.raises(saicm.ArgumentError) as e:
            call()
        assert e.value.path is None and str(files) not in str(e.value), e.value


def test_an_error_named_for_its_image_keeps_its_attributes(files):
    """Naming the image (as the command line names each file) keeps what the error carries: a byte budget's
    ``lowest`` (the size at quality 1) and ``alpha``."""
    with pytest.raises(saicm.ImageError) as e:
        saicm.compress(files / "a.png", max_bytes=10)
    assert e.value.path == str(files / "a.png") and e.value.lowest > 10 and e.value.alpha == 0
    assert str(e.value) == f"{files / 'a.png'}: {e.value.message}"


def _untimed(d):
    """A results dict without what differs from run to run (times, the date)."""
    if isinstance(d, dict):
        return {k: _untimed(v) for k, v in d.items() if not k.endswith("_s") and k not in ("created", "seconds")}
    return [_untimed(v) for v in d] if isinstance(d, list) else d


def test_eval_and_the_sweep_give_the_same_results_and_the_command_lines_qualities_are_said_to_be_a_list(
        files, tmp_path, capsys):
    """``saicm eval`` against ``saicm.eval.rd.sweep``: the same results. The sweep given the command line's
    ``"10,50"`` read it a character at a time: "lists a rate point twice (1,0,,,5,0)"."""
    from saicm.eval import results
    from saicm.eval.codecs import get_codec
    from saicm.eval.rd import load_rgb_folder, sweep

    folder = tmp_path / "images"
    folder.mkdir()
    (folder / "a.png").write_bytes((files / "a.png").read_bytes())
    argv = ["eval", "--codec", "jpeg", "--qualities", "10,50", "--dataset", folder, "-o", tmp_path / "r.json",
            "--no-cache", "-q"]
    assert _run(capsys, *argv)[0] == 0
    res = sweep(get_codec("jpeg"), load_rgb_folder(folder), [10, 50], dataset=str(folder), progress=False)
    results.save(res, tmp_path / "api.json")  # (as written: an image too small for MS-SSIM's NaN is null there)
    assert _untimed(results.load(tmp_path / "r.json")) == _untimed(results.load(tmp_path / "api.json"))
    for text in ("10,50", "1,3", b"10,50"):
        with pytest.raises(saicm.ArgumentError, match=r"a list of rate points, such as \[1, 3\], not the text"):
            sweep(get_codec("jpeg"), load_rgb_folder(folder), text, progress=False)
    for one in (50, 4.0):  # (one quality, not in a list: "'int' object is not iterable", a TypeError)
        with pytest.raises(saicm.ArgumentError, match=rf"such as \[{one}\], not one {type(one).__name__}"):
            sweep(get_codec("jpeg"), load_rgb_folder(folder), one, progress=False)
    from saicm.video.evaluate import sweep_clips  # (the clip sweep's too: the same rate points)

    with pytest.raises(saicm.ArgumentError, match=r"a list of rate points, such as \[1, 3\], not the text '1,3'"):
        sweep_clips(get_codec("nerv"), {}, "1,3", progress=False)


def test_the_sweeps_rate_points_may_be_numpy_numbers(files, tmp_path):
    """``sweep(codec, images, np.arange(10, 60, 40))`` raised NumPy's "truth value of an array ... is ambiguous" (a
    traceback), and a list of NumPy integers swept, then its results could not be saved ("Object of type int64 is
    not JSON serializable"): they are the same rate points as Python's numbers."""
    import numpy as np

    from saicm.eval import results
    from saicm.eval.codecs import get_codec
    from saicm.eval.rd import load_rgb_folder, sweep

    folder = tmp_path / "images"
    folder.mkdir()
    (folder / "a.png").write_bytes((files / "a.png").read_bytes())
    images = load_rgb_folder(folder)
    want = _untimed(sweep(get_codec("jpeg"), images, [10, 50], progress=False))
    for given in (np.arange(10, 60, 40), list(np.array([10, 50])), (np.int16(10), np.uint8(50))):
        res = sweep(get_codec("jpeg"), images, given, progress=False)
        results.save(res, tmp_path / "r.json")
        assert _untimed(res) == want and _untimed(results.load(tmp_path / "r.json"))["points"] == want["points"]
    with pytest.raises(saicm.ArgumentError, match=r"such as \[50\], not one int$"):
        sweep(get_codec("jpeg"), images, np.int64(50), progress=False)
    from saicm.eval.rd import rate_points  # (None, or none given: the codec's own)

    jpeg = get_codec("jpeg")
    assert rate_points(jpeg, None) == rate_points(jpeg, []) == list(jpeg.default_qualities) != []
