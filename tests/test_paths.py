"""Generated pages name datasets and files relative to a root, never by absolute path."""

import os

import numpy as np
import pytest

from saicm.cli import main
from saicm.eval import results
from saicm.eval.paths import display_path, display_spec
from saicm.eval.report import build_report


def test_display_path_rules(tmp_path, monkeypatch):
    work = tmp_path / "work"
    data = tmp_path / "elsewhere" / "coco128" / "images"
    (work / "sub").mkdir(parents=True)
    data.mkdir(parents=True)
    monkeypatch.chdir(work)
    assert display_path(str(work / "sub")) == "sub"                       # under the current directory
    assert display_path(str(work)) == "."
    assert display_path(str(data)) == "coco128/images"                    # elsewhere: last two components
    assert display_path("../elsewhere/coco128/./images") == "../elsewhere/coco128/images"  # relative: as written
    assert display_path(str(data), root=tmp_path) == "elsewhere/coco128/images"
    assert display_path("../elsewhere/coco128/images", root=tmp_path) == "elsewhere/coco128/images"
    assert display_path(str(work / "sub"), root=data) == "work/sub"       # outside the root: last two
    assert display_path("") == "" and display_path(None) == ""
    assert display_spec(f"picodet:{data}/m.onnx") == "picodet:images/m.onnx"
    assert display_spec({"kind": "yolox", "path": str(data / "m.onnx")}, root=tmp_path) == \
        "yolox:elsewhere/coco128/images/m.onnx"
    assert display_spec("centerface") == "centerface"


def test_display_path_never_names_the_user(tmp_path, monkeypatch):
    """The last two components of ``~/photos`` are the home folder's name and ``photos``: the user's login name in
    a report or a published model's ``training`` record (a privacy audit: ``saicm train --data ~/photos`` recorded
    ``alice/photos``). Components up to the home folder, or a folder named as the user (``/scratch/alice``), are
    left out."""
    import getpass

    home = tmp_path / "home" / "alice"
    (home / "cctv" / "street").mkdir(parents=True)
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setattr(getpass, "getuser", lambda: "alice")
    assert display_path(str(home / "cctv")) == "cctv"
    assert display_path(str(home / "cctv" / "street")) == "cctv/street"
    assert display_path(str(home)) == "~"
    assert display_path(str(tmp_path / "scratch" / "alice" / "photos")) == "photos"
    assert display_path("../home/alice/cctv") == "cctv"                        # relative, as written, too
    assert display_path(str(home / "cctv"), root=tmp_path) == "cctv"            # under a root above the home folder
    assert display_path(str(tmp_path / "data" / "alicia" / "photos")) == "alicia/photos"  # (whole names only)
    monkeypatch.setattr(getpass, "getuser", lambda: (_ for _ in ()).throw(OSError("no user")))
    assert display_path(str(home / "cctv")) == "cctv"                          # (no login name: the home folder)


def test_a_model_trained_on_the_home_folder_does_not_name_its_user(tmp_path, monkeypatch):
    """``saicm train --data ~/photos``: the weights, which go to every decoder, said ``alice/photos``."""
    from saicm.train.trainer import recorded_settings

    home = tmp_path / "alice"
    (tmp_path / "work").mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.chdir(tmp_path / "work")
    t = recorded_settings({"data": [str(home / "photos")], "out": str(home / "run"), "init": "mse-hyperprior-n64-v5"})
    assert t == {"data": ["photos"], "out": "run", "init": "mse-hyperprior-n64-v5"}


def _result(path, codec, dataset, points):
    r = results.new_result(codec, {}, dataset, "detection", 3)
    r["task_model"] = f"picodet:{os.path.dirname(dataset)}/models/picodet.onnx"
    r["points"] = [{"quality": i, "bpp": b, "psnr": m} for i, (b, m) in enumerate(points)]
    results.save(r, path)
    return path


def test_report_names_no_absolute_path(tmp_path, monkeypatch):
    data = tmp_path / "shared" / "data" / "coco128" / "images"
    data.mkdir(parents=True)  # an existing folder: the report used to print its resolved absolute path
    a = _result(tmp_path / "a.json", "jpeg", str(data), [(0.2, 30), (0.4, 33), (0.8, 36)])
    b = _result(tmp_path / "b.json", "webp", str(data), [(0.1, 30), (0.2, 33), (0.4, 36)])
    work = tmp_path / "main"
    work.mkdir()
    monkeypatch.chdir(work)

    out = work / "r.html"
    assert main(["report", str(a), str(b), "-o", str(out)]) == 0
    page = out.read_text()
    assert str(tmp_path) not in page
    assert "Dataset: coco128/images." in page and "picodet:models/picodet.onnx" in page

    build_report([results.load(a), results.load(b)], out, root=tmp_path / "shared")
    page = out.read_text()
    assert str(tmp_path) not in page
    assert "Dataset: data/coco128/images." in page and "picodet:data/coco128/models/picodet.onnx" in page


def test_plot_names_no_absolute_path(tmp_path):
    data = tmp_path / "shared" / "data" / "coco128" / "images"
    a = _result(tmp_path / "a.json", "jpeg", str(data), [(0.2, 30), (0.4, 33), (0.8, 36)])
    assert main(["plot", str(a), "--metric", "psnr", "-o", str(tmp_path / "curves")]) == 0
    assert str(tmp_path).encode() not in (tmp_path / "curves.svg").read_bytes()


def test_an_unknown_model_says_when_the_model_folder_is_not_one(tmp_path, monkeypatch):
    """A $SAICM_MODELS that is a file was named as where your models are found, without a word."""
    import saicm

    f = tmp_path / "afile"
    f.write_text("x")
    monkeypatch.setenv("SAICM_MODELS", str(f))
    with pytest.raises(saicm.SaicmError, match="which is not a folder"):
        saicm.compress(np.zeros((8, 8, 3), np.uint8), model="mine")
    monkeypatch.setenv("SAICM_MODELS", str(tmp_path / "nowhere"))
    with pytest.raises(saicm.SaicmError, match="which does not exist"):
        saicm.compress(np.zeros((8, 8, 3), np.uint8), model="mine")


def test_report_names_one_folder_once_by_its_fingerprint(tmp_path, monkeypatch):
    """The same images given to one run by a relative path and to another by an absolute one: one dataset (the
    page listed both names); other pictures, or results without a fingerprint, keep their own names."""
    data = tmp_path / "shared" / "photos" / "test"
    data.mkdir(parents=True)
    work = tmp_path / "elsewhere" / "main"
    work.mkdir(parents=True)
    monkeypatch.chdir(work)
    a = results.load(_result(tmp_path / "a.json", "jpeg", os.path.relpath(data), [(0.2, 30), (0.4, 33), (0.8, 36)]))
    b = results.load(_result(tmp_path / "b.json", "webp", str(data), [(0.1, 30), (0.2, 33), (0.4, 36)]))
    out = work / "r.html"

    build_report([a, b], out)
    assert "Dataset: ../../shared/photos/test, photos/test." in out.read_text()  # no fingerprint: two names
    a["dataset_sha256"] = b["dataset_sha256"] = "ab" * 32
    build_report([a, b], out)
    assert "Dataset: ../../shared/photos/test." in out.read_text()
    b["dataset_sha256"] = "cd" * 32
    build_report([a, b], out)
    assert "Dataset: ../../shared/photos/test, photos/test." in out.read_text()
    a["dataset_sha256"] = b["dataset_sha256"] = 0  # (no SHA-256: no fingerprint; mutation audit)
    build_report([a, b], out)
    assert "Dataset: ../../shared/photos/test, photos/test." in out.read_text()
