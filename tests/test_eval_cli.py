"""Results files → BD-rate table and plots, through the CLI."""

import contextlib
import json
import os
import warnings

import pytest

from saicm.cli import main
from saicm.errors import SaicmWarning
from saicm.eval import results


@contextlib.contextmanager
def saicm_warnings():
    """The messages of every SaicmWarning said inside (Python's once-per-place filter off), in a list."""
    said: list[str] = []
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        yield said
    said.extend(str(w.message) for w in caught if issubclass(w.category, SaicmWarning))


def write_result(path, codec, points, metric="psnr"):
    r = results.new_result(codec, {}, "synthetic", "psnr", 3)
    r["points"] = [{"quality": i, "bpp": b, metric: m} for i, (b, m) in enumerate(points)]
    results.save(r, path)
    return path


def test_bdrate_cli_known_value_and_json(tmp_path, capsys):
    a = write_result(tmp_path / "a.json", "anchor", [(0.2, 30), (0.4, 33), (0.8, 36)])
    b = write_result(tmp_path / "b.json", "half", [(0.1, 30), (0.2, 33), (0.4, 36)])
    c = write_result(tmp_path / "c.json", "far", [(0.1, 10), (0.2, 12)])
    assert main(["bdrate", str(a), str(b), str(c), "--metric", "psnr", "--json", str(tmp_path / "t.json")]) == 0
    out = capsys.readouterr().out
    assert "-50.0%" in out and "do not overlap" in out
    table = json.loads((tmp_path / "t.json").read_text())
    assert abs(table["rows"][0]["bd_rate"] + 50) < 1e-9
    assert table["rows"][1]["bd_rate"] is None
    # what the table came from (its rows could not be tied to their files: metrics audit, 0.20.0)
    assert table["anchor_file"] == str(a) and [row["file"] for row in table["rows"]] == [str(b), str(c)]
    assert table["dataset"] == "synthetic" and table["num_images"] == 3
    assert table["method"] == "PCHIP on log-rate, monotone envelope" and table["interval"] is None


@pytest.mark.skipif(not os.path.exists("/dev/stdout"), reason="needs /dev/stdout")
def test_json_to_standard_output_is_json_alone(tmp_path):
    """`saicm bdrate A B --json /dev/stdout | jq` and `saicm eval ... -o /dev/stdout | jq`: refused for lacking a
    .json suffix, although '-o -' is refused with "name an output file or folder, or -o /dev/stdout"; the tables
    now go to standard error, the JSON alone to standard output."""
    import subprocess
    import sys

    from PIL import Image

    from .conftest import natural_image

    a = write_result(tmp_path / "a.json", "anchor", [(0.2, 30), (0.4, 33), (0.8, 36)])
    b = write_result(tmp_path / "b.json", "half", [(0.1, 30), (0.2, 33), (0.4, 36)])
    d = tmp_path / "ds"
    d.mkdir()
    Image.fromarray(natural_image(40, 48, seed=1)).save(d / "0.png")
    env = dict(os.environ, PYTHONWARNINGS="ignore")
    for argv, check in (
            (["bdrate", str(a), str(b), "--json", "/dev/stdout"], lambda t: abs(t["rows"][0]["bd_rate"] + 50) < 1e-9),
            (["eval", "--codec", "jpeg", "--qualities", "50", "--dataset", str(d), "-o", "/dev/stdout", "--no-cache",
              "--quiet"], lambda t: t["codec"] == "jpeg" and len(t["points"]) == 1)):
        r = subprocess.run([sys.executable, "-m", "saicm", *argv], capture_output=True, text=True, env=env, timeout=600)
        assert r.returncode == 0, r.stderr
        assert check(json.loads(r.stdout)), r.stdout
        assert ("-50.0%" if argv[0] == "bdrate" else "wrote /dev/stdout") in r.stderr


def test_bdrate_warns_when_ap_was_scored_against_other_ground_truth_or_by_another_task_model(tmp_path, capsys):
    """AP against pseudo ground truth (the detector's own detections) and AP against labels, or AP read by two
    detectors, gave a BD-rate without a word, in `saicm bdrate` and in the report's tables (a figures audit)."""
    from saicm.eval.report import build_report

    def ap_result(name, codec, bpps, gt, task_model="yolox:models/yolox_nano.onnx"):
        r = results.new_result(codec, {}, "coco", "detection", 3)
        r["points"] = [{"quality": i, "bpp": b, "ap": 20 + 10 * i, "ground_truth": gt} for i, b in enumerate(bpps)]
        r["task_model"] = task_model
        results.save(r, tmp_path / name)
        return tmp_path / name

    a = ap_result("a.json", "anchor", [0.2, 0.4, 0.8], "official")
    same = ap_result("b.json", "same", [0.1, 0.2, 0.4], "official", "yolox:/elsewhere/yolox_nano.onnx")
    pseudo = ap_result("c.json", "pseudo", [0.1, 0.2, 0.4], "pseudo")
    other = ap_result("d.json", "other", [0.1, 0.2, 0.4], "official", "picodet:models/picodet_s.onnx")
    assert main(["bdrate", str(a), str(same), str(pseudo), str(other), "--metric", "ap"]) == 0
    rows = {line.split()[0]: line for line in capsys.readouterr().out.splitlines() if line.startswith("  ")}
    assert "WARNING" not in rows["same"]  # the same detector named by another path
    assert "other ground truth than the anchor's (pseudo vs official)" in rows["pseudo"]
    assert "another task model than the anchor's" in rows["other"] and "WARNING" in rows["other"]
    page = build_report([results.load(f) for f in (a, same, pseudo)], tmp_path / "r.html", metrics=["ap"])
    assert page.read_text().count("not comparable") == 1


def test_comparison_warnings_only_for_what_is_known_to_differ():
    """No warning where one side says nothing of its ground truth (a results file from before it was recorded), nor
    about task models for a metric no task model reads (PSNR), nor from points that did not measure the metric
    (mutation audit: none of the three was checked)."""
    def res(gt, task_model, metric="ap", unmeasured_gt=None):
        points = [{"quality": i, "bpp": 0.1 * (i + 1), metric: 30.0 + i, **({"ground_truth": gt} if gt else {})}
                  for i in range(3)]
        if unmeasured_gt:
            points.append({"quality": 3, "bpp": 0.5, metric: None, "ground_truth": unmeasured_gt})
        return {"points": points, "task_model": task_model}

    yolox, pico = "yolox:models/yolox_nano.onnx", "picodet:models/picodet_s.onnx"
    assert results.comparison_warnings(res(None, yolox), res("official", yolox), "ap") == []
    assert results.comparison_warnings(res("official", yolox), res(None, yolox), "ap") == []
    assert results.comparison_warnings(res(None, yolox, "psnr"), res(None, pico, "psnr"), "psnr") == []
    assert results.comparison_warnings(res("official", yolox), res("official", yolox, unmeasured_gt="pseudo"),
                                       "ap") == []
    assert results.comparison_warnings(res("official", yolox), res("pseudo", yolox), "ap") == [
        "AP against other ground truth than the anchor's (pseudo vs official)"]


def test_bdrate_json_rows_carry_the_not_comparable_warning(tmp_path, capsys):
    """The table's 'not comparable' warning was printed only: `saicm bdrate --json` (read with `| jq`, or by a
    script) gave the row of AP against pseudo ground truth like any other (release audit)."""
    def ap_result(name, codec, bpps, gt):
        r = results.new_result(codec, {}, "coco", "detection", 3)
        r["points"] = [{"quality": i, "bpp": b, "ap": 20 + 10 * i, "ground_truth": gt} for i, b in enumerate(bpps)]
        r["task_model"] = "yolox:models/yolox_nano.onnx"
        results.save(r, tmp_path / name)
        return tmp_path / name

    a = ap_result("a.json", "anchor", [0.2, 0.4, 0.8], "official")
    same = ap_result("b.json", "same", [0.1, 0.2, 0.4], "official")
    pseudo = ap_result("c.json", "pseudo", [0.1, 0.2, 0.4], "pseudo")
    assert main(["bdrate", str(a), str(same), str(pseudo), "--metric", "ap", "--json", str(tmp_path / "t.json")]) == 0
    rows = {r["codec"]: r for r in json.loads((tmp_path / "t.json").read_text())["rows"]}
    assert rows["same"]["not_comparable"] == []
    assert rows["pseudo"]["not_comparable"] == ["AP against other ground truth than the anchor's (pseudo vs official)"]
    assert "not comparable" in capsys.readouterr().out  # (the table says it as before)


def test_bdrate_fails_when_no_row_has_a_value_and_warns_on_a_narrow_overlap(tmp_path, capsys):
    a = write_result(tmp_path / "a.json", "anchor", [(0.2, 30), (0.4, 33), (0.8, 36)])
    far = write_result(tmp_path / "far.json", "far", [(0.1, 10), (0.2, 12)])
    assert main(["bdrate", str(a), str(far)]) == 1  # it exited 0 with only n/a rows
    assert "no BD-rate could be computed" in capsys.readouterr().err
    sliver = write_result(tmp_path / "s.json", "sliver", [(0.3, 35), (0.9, 40)])  # covers 35-36 dB only
    assert main(["bdrate", str(a), str(sliver), str(far)]) == 0  # one row has a value
    assert "covers under half of both curves' ranges" in capsys.readouterr().out
    assert main(["bdrate", str(a), str(sliver), "--interval", "35,35.5"]) == 0  # narrowed on purpose: no warning
    assert "WARNING" not in capsys.readouterr().out


def test_non_monotone_is_reported(tmp_path, capsys):
    a = write_result(tmp_path / "a.json", "anchor", [(0.2, 30), (0.4, 33), (0.8, 36)])
    b = write_result(tmp_path / "b.json", "bumpy", [(0.2, 30), (0.3, 34), (0.4, 33), (0.8, 36)])
    main(["bdrate", str(a), str(b)])
    assert "dropped non-monotone points: 1" in capsys.readouterr().out
    main(["bdrate", str(a), str(b), "--strict"])
    assert "not monotone" in capsys.readouterr().out


def test_bdrate_and_report_say_whose_point_was_dropped_and_where(tmp_path, capsys):
    """A dropped point was a count alone ("1 non-monotone point(s) dropped"): an anchor's dropped point was
    counted on every row of the table, as if each test's curve had lost one, and the reader could not tell which
    point of the plot was left out."""
    from saicm.eval import results
    from saicm.eval.report import build_report

    a = write_result(tmp_path / "a.json", "anchor", [(0.2, 30), (0.3, 34), (0.4, 33), (0.8, 36)])
    b = write_result(tmp_path / "b.json", "smooth", [(0.1, 30), (0.2, 33), (0.4, 36)])
    assert main(["bdrate", str(a), str(b)]) == 0
    assert "[dropped non-monotone points: 1: the anchor's at 0.4000 bpp (33)]" in capsys.readouterr().out
    page = build_report([results.load(a), results.load(b)], tmp_path / "r.html").read_text()
    assert "dropped non-monotone points: 1: the anchor&#x27;s at 0.4000 bpp (33)" in page  # (bdrate's words)


def test_bdrate_and_report_give_a_row_the_same_notes(tmp_path, capsys):
    """`saicm bdrate` and `saicm report` built a row's notes each in its own code, and their words had parted ("the
    test's" and "this one's", a count before or after the points); one list now (results.row_notes), both say it."""
    import html
    import re

    from saicm.eval import results
    from saicm.eval.report import build_report

    a = write_result(tmp_path / "a.json", "anchor", [(0.2, 30), (0.3, 34), (0.4, 33), (0.8, 36)])
    b = write_result(tmp_path / "b.json", "smooth", [(0.1, 30), (0.2, 33), (0.4, 36)])
    data = json.loads(b.read_text())
    data["points"].append({"quality": 9, "bpp": 0.6, "bytes": 600})  # (a point without psnr: left out)
    data["points"][-1]["psnr"] = None
    b.write_text(json.dumps(data))
    notes = results.row_notes(results.load(a), results.load(b), "psnr",
                              __import__("saicm.eval.bdrate", fromlist=["x"]).bd_rate(
                                  *results.curve(results.load(a), "psnr"), *results.curve(results.load(b), "psnr"),
                                  envelope=True))
    assert len(notes) == 2 and notes[1].startswith("the test's 1 point without a psnr value")
    assert main(["bdrate", str(a), str(b)]) == 0
    out = capsys.readouterr().out
    page = html.unescape(build_report([results.load(a), results.load(b)], tmp_path / "r.html").read_text())
    for n in notes:
        assert f"[{n}]" in out and f"; {n}" in page


def test_plot_writes_png_and_svg(tmp_path, capsys):
    a = write_result(tmp_path / "a.json", "anchor", [(0.2, 30), (0.4, 33), (0.8, 36)])
    b = write_result(tmp_path / "b.json", "other-codec", [(0.3, 31), (0.6, 35)])
    assert main(["plot", str(a), str(b), "--metric", "psnr", "-o", str(tmp_path / "curves")]) == 0
    png = (tmp_path / "curves.png").read_bytes()
    svg = (tmp_path / "curves.svg").read_text()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and "<svg" in svg
    assert "other-codec" in svg and "anchor" in svg  # both curves are in the legend
    assert not list(tmp_path.glob("*.part*"))
    capsys.readouterr()
    assert main(["plot", str(a), "--metric", "ap", "-o", str(tmp_path / "empty")]) == 2  # wrote an empty plot
    assert "no results file has metric 'ap' (they have: psnr)" in capsys.readouterr().err
    assert not list(tmp_path.glob("empty*"))
    assert main(["plot", str(a), "--metric", "ap", "-o", str(tmp_path / "no" / "empty")]) == 2
    assert not (tmp_path / "no").exists()  # (refused before its folder is made)
    # a missing folder is made, as eval -o makes its own (it was refused; before that, a matplotlib traceback)
    assert main(["plot", str(a), "-o", str(tmp_path / "no" / "curves")]) == 0
    assert (tmp_path / "no" / "curves.png").is_file() and (tmp_path / "no" / "curves.svg").is_file()


def test_outputs_never_replace_inputs_and_are_checked_before_the_work(tmp_path, capsys):
    a = write_result(tmp_path / "a.json", "anchor", [(0.2, 30), (0.4, 33), (0.8, 36)])
    b = write_result(tmp_path / "b.json", "test", [(0.2, 31), (0.4, 34), (0.8, 37)])
    d = _folder(tmp_path, 1)
    image = next(d.iterdir())
    before = image.read_bytes(), a.read_bytes(), b.read_bytes()
    cases = [  # each was exit 0, an input replaced, or a traceback after the whole sweep
        (["eval", "--codec", "jpeg", "--dataset", str(d), "-o", str(image)], "with a .json suffix"),
        (["eval", "--codec", "jpeg", "--dataset", str(d), "-o", str(tmp_path)], "is a folder"),
        (["report", str(a), str(b), "-o", str(a)], "with a .html suffix"),
        (["report", str(a), str(b), "-o", str(tmp_path / "r") + "/"], "is a folder"),
        (["bdrate", str(a), str(b), "--json", str(b)], "is the input file"),
    ]
    for argv, needle in cases:
        assert main(argv) == 2, argv
        err = capsys.readouterr().err
        assert needle in err and "Traceback" not in err, (argv, err)
    assert (image.read_bytes(), a.read_bytes(), b.read_bytes()) == before
    for argv, needle in ((["--qualities", "50,50"], "a rate point twice"), (["--qualities", "30,101"], "0-100")):
        assert main(["eval", "--codec", "jpeg", "--dataset", str(d), "-o", str(tmp_path / "q.json"), *argv]) == 2
        assert needle in capsys.readouterr().err  # 101 ran as Pillow's 100; 50,50 stored two points
    assert main(["report", str(a), str(b), "--metrics", "psnr,bogus", "-o", str(tmp_path / "r.html")]) == 2
    assert "no results file has metric 'bogus'" in capsys.readouterr().err  # was an empty plot
    measured = json.loads(a.read_text())
    measured["per_image"] = {"elsewhere.png": []}
    a.write_text(json.dumps(measured))
    assert main(["report", str(a), str(b), "--images", str(d), "-o", str(tmp_path / "r.html")]) == 2
    assert "is not among the images anchor was measured on" in capsys.readouterr().err  # crops of another folder
    (d / "bad.png").write_bytes(b"not a png")  # was a PIL traceback
    assert main(["eval", "--codec", "jpeg", "--dataset", str(d), "-o", str(tmp_path / "e.json")]) == 2
    assert "bad.png: cannot read image" in capsys.readouterr().err


def _measured_on_other_images(tmp_path):
    """Two results files whose per-image entries name other images (2 and 3, 1 shared)."""
    a = write_result(tmp_path / "a.json", "anchor", [(0.2, 30), (0.4, 33), (0.8, 36)])
    b = write_result(tmp_path / "b.json", "test", [(0.2, 31), (0.4, 34), (0.8, 37)])
    for path, names in ((a, ["x.png", "y.png"]), (b, ["x.png", "z.png", "w.png"])):
        d = json.loads(path.read_text())
        d["per_image"] = {n: [] for n in names}
        path.write_text(json.dumps(d))
    return a, b


def test_bdrate_says_when_the_images_differ(tmp_path, capsys):
    a, b = _measured_on_other_images(tmp_path)
    assert main(["bdrate", str(a), str(b)]) == 0
    assert "WARNING: other images than the anchor's: 3 vs 2, 1 shared" in capsys.readouterr().out  # was silent


def test_report_says_when_the_images_differ(tmp_path):
    # a folder that gained or lost images between two codecs' runs: `bdrate` warned, the report's table was silent
    a, b = _measured_on_other_images(tmp_path)
    out = tmp_path / "r.html"
    assert main(["report", str(a), str(b), "-o", str(out)]) == 0
    assert "WARNING: other images than the anchor&#x27;s: 3 vs 2, 1 shared" in out.read_text()


def test_bad_results_file_is_one_line_error(tmp_path, capsys):
    bad = tmp_path / "bad.json"
    good = write_result(tmp_path / "a.json", "anchor", [(0.2, 30), (0.4, 33), (0.8, 36)])
    d = json.loads(good.read_text())
    cases = {
        "{}": "not a saicm-results/1 file",
        "[1, 2]": "not a saicm-results/1 file",  # was AttributeError
        json.dumps({**d, "points": None}): "a codec name and a list of points are required",  # was TypeError
        json.dumps({k: v for k, v in d.items() if k != "codec"}): "a codec name",  # was KeyError
        json.dumps({**d, "points": [{"psnr": 30}]}): "every point needs a positive, finite bpp",  # was KeyError
        json.dumps({**d, "points": [{"bpp": 0.2, "psnr": "30"}, {"bpp": 0.4, "psnr": 33}]}): "not a finite number",
    }
    for text, needle in cases.items():
        bad.write_text(text)
        for argv in (["bdrate", str(good), str(bad)], ["plot", str(bad), "-o", str(tmp_path / "p")]):
            assert main(argv) == 2, (text, argv)
            err = capsys.readouterr().err
            assert needle in err and "Traceback" not in err, (text, err)


def test_report_is_one_self_contained_html(tmp_path):
    from PIL import Image

    from .conftest import natural_image

    imgs = tmp_path / "imgs"
    imgs.mkdir()
    Image.fromarray(natural_image(64, 80)).save(imgs / "a.png")
    a = write_result(tmp_path / "a.json", "jpeg", [(0.2, 30), (0.4, 33), (0.8, 36)])
    r = results.load(a)
    r["per_image"] = {"a.png": [{"quality": 30, "bpp": 0.3, "psnr": 31.0}]}
    results.save(r, a)
    b = write_result(tmp_path / "b.json", "webp", [(0.1, 30), (0.2, 33), (0.4, 36)])
    out = tmp_path / "r.html"
    assert main(["report", str(a), str(b), "-o", str(out), "--images", str(imgs), "--target-bpp", "0.3"]) == 0
    page = out.read_text()
    assert page.startswith("<!doctype html>") and page.count("<svg") == 1
    assert "-50.0%" in page and "data:image/png;base64," in page and "jpeg q30" in page
    for ref in ("src='http", 'src="http', "<link", "<script src"):
        assert ref not in page  # nothing is fetched from outside


def test_report_crops_skip_codecs_it_cannot_rebuild_or_whose_weights_differ(tmp_path, tiny_model):
    """An external codec's results (or a model evaluated by path) made `report --images` fail; a model of the same
    name with other weights gave crops of the wrong model under the results' figures."""
    from PIL import Image

    from .conftest import natural_image

    imgs = tmp_path / "imgs"
    imgs.mkdir()
    Image.fromarray(natural_image(64, 80)).save(imgs / "a.png")
    files = []
    for name, cfg in (("jpeg", {}), ("theirs", {}), (str(tiny_model), {"weights_sha256_prefix": "00" * 8})):
        f = write_result(tmp_path / f"{len(files)}.json", name, [(0.2, 30), (0.4, 33), (0.8, 36)])
        r = results.load(f)
        r["per_image"] = {"a.png": [{"quality": 1, "bpp": 0.3, "psnr": 31.0}]}
        r["codec_config"] = cfg
        results.save(r, f)
        files.append(str(f))
    out = tmp_path / "r.html"
    with pytest.warns(UserWarning) as caught:
        assert main(["report", *files, "-o", str(out), "--images", str(imgs), "--target-bpp", "0.3"]) == 0
    said = " ".join(str(w.message) for w in caught)
    assert "no crop of theirs" in said and "not the weights these results measured" in said
    assert out.read_text().count("<figcaption>") == 2  # the original and jpeg


def _folder(tmp_path, n=2):
    from .conftest import natural_folder

    return natural_folder(tmp_path / "ds", n, 170, 200)


def test_eval_psnr_writes_schema_and_reuses_cache(tmp_path, capsys):
    d = _folder(tmp_path)
    out = tmp_path / "r.json"
    args = ["eval", "--codec", "jpeg", "--qualities", "20,80", "--dataset", str(d), "--task", "psnr",
            "-o", str(out), "--cache", str(tmp_path / "c"), "--quiet"]
    assert main(args) == 0
    r = results.load(out)
    assert r["num_images"] == 2 and [p["quality"] for p in r["points"]] == [20, 80]
    assert all({"bpp", "psnr", "ms_ssim", "encode_s", "decode_s", "bytes"} <= set(p) for p in r["points"])
    cached = sorted(p.name for p in (tmp_path / "c").rglob("*.png"))
    assert len(cached) == 4
    assert (tmp_path / "c").stat().st_mode & 0o777 == 0o700  # copies of the user's images: theirs alone
    assert main(args) == 0
    assert results.load(out)["points"] == r["points"]


def test_a_cache_inside_the_dataset_folder_is_no_test_image(tmp_path, monkeypatch):
    """`--cache photos/cache` (or a relative $SAICM_CACHE run from the dataset's folder): the second sweep read the
    first's decoded PNGs as test images too (4 images became 8, PSNR 27.4 dB became 38.7), unsaid (disk audit)."""
    import warnings

    def said(argv) -> str:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            assert main(argv) == 0
        return " ".join(str(w.message) for w in caught)

    d = _folder(tmp_path)
    args = ["eval", "--codec", "jpeg", "--qualities", "50", "--dataset", str(d), "--task", "psnr",
            "-o", str(tmp_path / "r.json"), "--quiet"]
    assert "lies inside the dataset folder" in said(args + ["--cache", str(d / "cache")])
    first = results.load(tmp_path / "r.json")
    assert list((d / "cache").rglob("*.png"))
    assert "2 decoded images of a saicm decode cache" in said(args + ["--cache", str(d / "cache")])
    second = results.load(tmp_path / "r.json")
    assert second["num_images"] == first["num_images"] == 2 and second["points"] == first["points"]  # (cached)
    from saicm.train.data import list_images

    with warnings.catch_warnings(record=True) as caught:  # training's images: the photos alone, said
        warnings.simplefilter("always")
        assert [p.name for p in list_images(d)] == ["0.png", "1.png"]
    assert "left out of the training images" in str(caught[0].message)
    # the default cache through a relative $SAICM_CACHE of "." in the dataset's folder; a hidden one is no input
    monkeypatch.chdir(d)
    import shutil

    for where, warned in ((".", True), (".c", False)):
        for old in ("cache", "decoded"):  # (the caches of the runs before: found and said wherever they are)
            shutil.rmtree(d / old, ignore_errors=True)
        monkeypatch.setenv("SAICM_CACHE", where)
        for _ in range(2):
            text = said(args)
            r = results.load(tmp_path / "r.json")
            assert r["num_images"] == 2 and [p["psnr"] for p in r["points"]] == [p["psnr"] for p in first["points"]]
        assert ("decode cache" in text) == warned


def test_a_cache_others_may_write_is_not_used(tmp_path, capsys):
    """Entries of a cache folder another user can write are anyone's: a planted one scored a codec 0.0065 bpp at
    99 dB (a security review)."""
    d = _folder(tmp_path, 1)
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o777)
    args = ["eval", "--codec", "jpeg", "--qualities", "50", "--dataset", str(d), "--task", "psnr",
            "-o", str(tmp_path / "r.json"), "--cache", str(shared), "--quiet"]
    with saicm_warnings() as said:
        assert main(args) == 0
    assert "is not yours alone" in " ".join(said) and not list(shared.iterdir())
    shared.chmod(0o700)  # the user's own: used
    with saicm_warnings() as said:
        assert main(args) == 0
    assert "not yours" not in " ".join(said) and list(shared.rglob("*.png"))


@pytest.mark.skipif(not hasattr(os, "geteuid"), reason="folders of other users: POSIX")
def test_a_cache_folder_others_may_write_since_the_start_is_neither_read_nor_written(tmp_path, capsys):
    """The cache's folders were checked once, when it was opened: a $SAICM_CACHE in /tmp not there yet, made by
    another user during the sweep (or the root swapped for theirs through a parent they may write), had its planted
    entries read as the decodes (0.026 bpp at 99 dB, no word said) and the user's decodes written there."""
    import json as _json

    from PIL import Image

    from saicm.eval.cache import DecodeCache, image_hash

    img = Image.new("RGB", (16, 12), (10, 20, 30))
    root = tmp_path / "shared" / "decoded"  # not there as the cache is opened
    cache = DecodeCache(root, "jpeg", {"quality": 1})
    assert cache.enabled
    planted = cache.dir / "q50"  # another user's folders (anyone may write them), with an entry for the image
    planted.mkdir(parents=True)
    for p in (root.parent, root, cache.dir, planted):
        p.chmod(0o777)
    img.save(planted / f"{image_hash(img)}.png")
    (planted / f"{image_hash(img)}.json").write_text(_json.dumps({"bytes": 1, "bpp": 0.026, "psnr": 99.0}))
    with saicm_warnings() as said:
        assert cache.get(50, image_hash(img)) is None
    assert "is not yours alone" in " ".join(said)
    # a root that was the user's alone when the cache was opened, then replaced: nothing written into it
    mine = tmp_path / "mine"
    cache = DecodeCache(mine, "jpeg", {"quality": 1})
    cache.put(50, "a" * 20, img, {"bytes": 1})
    assert cache.get(50, "a" * 20) is not None
    mine.rename(tmp_path / "moved")
    mine.mkdir(mode=0o777)
    mine.chmod(0o777)
    with saicm_warnings() as said:
        cache.put(50, "b" * 20, img, {"bytes": 1})
    assert "is not yours alone" in " ".join(said) and not list(mine.rglob("*.png"))


def test_the_cache_is_reused_under_a_group_writable_umask(tmp_path, capsys):
    """Under umask 002 (Fedora's, RHEL's) the codec and quality folders came out 0775 and the second sweep refused
    its own cache as another user's (a review of 0.23.0's change): every folder of the cache is made 0700."""
    d = _folder(tmp_path, 1)
    args = ["eval", "--codec", "jpeg", "--qualities", "50", "--dataset", str(d), "--task", "psnr",
            "-o", str(tmp_path / "r.json"), "--cache", str(tmp_path / "c"), "--quiet"]
    old = os.umask(0o002)
    try:
        assert main(args) == 0 and main(args) == 0
    finally:
        os.umask(old)
    assert "not yours" not in capsys.readouterr().err
    assert all(p.stat().st_mode & 0o777 == 0o700 for p in (tmp_path / "c").rglob("*") if p.is_dir())


def test_the_default_cache_made_open_by_an_older_saicm_is_closed_and_a_chosen_one_is_left_alone(
        tmp_path, monkeypatch, capsys):
    """saicm before 0.23.0 made the default cache root 0755: other users could read the decodes of the user's
    images. The default root is now closed to 0700 (with a note) when it is the user's own folder; a folder named
    with --cache or $SAICM_CACHE keeps the mode its owner chose (a review of the first version of this change)."""
    d = _folder(tmp_path, 1)
    monkeypatch.delenv("SAICM_CACHE", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    from saicm.eval.cache import default_cache_dir

    root = default_cache_dir()
    root.mkdir(parents=True)
    root.chmod(0o755)
    args = ["eval", "--codec", "jpeg", "--qualities", "50", "--dataset", str(d), "--task", "psnr",
            "-o", str(tmp_path / "r.json"), "--quiet"]
    assert main(args) == 0
    assert root.stat().st_mode & 0o777 == 0o700 and list(root.rglob("*.png"))
    assert "is now yours alone" in capsys.readouterr().err
    assert main(args) == 0 and "yours alone" not in capsys.readouterr().err  # said once
    for chosen, extra in ((tmp_path / "team", ["--cache", str(tmp_path / "team")]), (tmp_path / "env", [])):
        chosen.mkdir()
        chosen.chmod(0o750)
        if not extra:
            monkeypatch.setenv("SAICM_CACHE", str(chosen))
            (chosen / "decoded").mkdir()
            (chosen / "decoded").chmod(0o750)
        assert main([*args, *extra]) == 0
        assert chosen.stat().st_mode & 0o777 == 0o750 and list(chosen.rglob("*.png"))
        if not extra:
            assert (chosen / "decoded").stat().st_mode & 0o777 == 0o750
    assert "not yours" not in capsys.readouterr().err


def test_eval_faces_task_runs_without_faces(tmp_path, capsys):
    """No face on the originals: no share to report, and the table had no face_retention column and no
    'uncompressed' line, with nothing said (a newcomer's small test images: the column the docs name was missing)."""
    d = _folder(tmp_path, 1)
    out = tmp_path / "f.json"
    assert main(["eval", "--codec", "jpeg", "--qualities", "30", "--dataset", str(d), "--task", "faces",
                 "-o", str(out), "--no-cache", "--quiet"]) == 0
    r = results.load(out)
    assert r["task"] == "faces" and r["points"][0]["face_retention"] is None  # no faces: no share to report
    assert "the face detector found no faces on the originals" in capsys.readouterr().out


def test_eval_instance_task_without_objects_says_so(tmp_path, capsys):
    """Pseudo ground truth with no object on the originals: detection said that AP is undefined, instance said
    nothing (a table of n/a and no 'uncompressed' line)."""
    import numpy as np

    from .test_tasks import tiny_onnx

    out0 = np.zeros((1, 4 + 80 + 1, 1), np.float32)  # one candidate, every class score 0: no object
    out0[0, :4, 0] = [16, 16, 16, 16]
    model = tiny_onnx(tmp_path / "seg.onnx", [out0, np.ones((1, 1, 8, 8), np.float32)])
    d = _folder(tmp_path, 1)
    assert main(["eval", "--codec", "jpeg", "--qualities", "30", "--dataset", str(d), "--task", "instance",
                 "--task-model", f"yolov8-seg:{model}", "--bootstrap", "0", "-o", str(tmp_path / "i.json"),
                 "--no-cache", "--quiet"]) == 0
    assert "the task model found no objects on the originals" in capsys.readouterr().out


def test_eval_detection_needs_a_task_model(tmp_path, capsys):
    d = _folder(tmp_path, 1)
    assert main(["eval", "--codec", "jpeg", "--dataset", str(d), "--task", "detection", "-o", str(tmp_path / "x.json")]) == 2
    assert "needs --task-model" in capsys.readouterr().err


def test_eval_detection_on_coco128_subset(tmp_path):
    from .conftest import shared_path

    images = shared_path("coco128", "images")
    ann = shared_path("coco128", "annotations", "instances_train2017.json")
    model = shared_path("models", "picodet_s_416_coco.onnx")
    out = tmp_path / "d.json"
    assert main(["eval", "--codec", "jpeg", "--qualities", "5,90", "--dataset", str(images), "--annotations",
                 str(ann), "--task", "detection", "--task-model", f"picodet:{model}", "--limit", "4",
                 "--bootstrap", "7", "-o", str(out), "--no-cache", "--quiet"]) == 0
    r = results.load(out)
    lo, hi = r["points"]
    assert r["reference"]["ground_truth"] == "official"
    assert lo["ap"] < hi["ap"] <= r["reference"]["ap"] + 5
    assert r["bootstrap"]["replicates"] == 7 and all(len(p["bootstrap"]["box_ap"]) == 7 for p in r["points"])


def test_bdrate_interval_option(tmp_path, capsys):
    a = write_result(tmp_path / "a.json", "anchor", [(0.2, 30), (0.4, 33), (0.8, 36)])
    b = write_result(tmp_path / "b.json", "half", [(0.1, 30), (0.2, 33), (0.4, 36)])
    assert main(["bdrate", str(a), str(b), "--interval", "31,34"]) == 0
    assert "-50.0%   over psnr 31.000–34.000" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        main(["bdrate", str(a), str(b), "--interval", "34,31"])
    assert "LO < HI" in capsys.readouterr().err


def test_a_cache_that_cannot_be_a_folder_is_one_line_before_any_work(tmp_path, capsys):
    d = _folder(tmp_path, 1)
    f = tmp_path / "afile"
    f.write_text("x")
    assert main(["eval", "--codec", "jpeg", "--qualities", "30", "--dataset", str(d), "--task", "psnr",
                 "--cache", str(f), "-o", str(tmp_path / "r.json"), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "cannot create output folder" in err and "Traceback" not in err


def test_an_unwritable_default_cache_costs_only_the_cache(tmp_path, monkeypatch, capsys):
    # a read-only home or XDG_CACHE_HOME=/dev/null: a 57-line traceback after the first encode (contributor audit)
    from PIL import Image

    ds = tmp_path / "ds"
    ds.mkdir()
    Image.new("RGB", (48, 32), (120, 60, 30)).save(ds / "a.png")
    blocker = tmp_path / "not-a-folder"
    blocker.write_bytes(b"")
    monkeypatch.setenv("SAICM_CACHE", str(blocker))
    out = tmp_path / "r.json"
    with saicm_warnings() as said:
        assert main(["eval", "--codec", "jpeg", "--dataset", str(ds), "--task", "psnr", "--qualities", "30,50",
                     "-o", str(out), "--quiet"]) == 0
    assert " ".join(said).count("cannot write the cache") == 1 and "Traceback" not in capsys.readouterr().err
    assert sorted(p["quality"] for p in json.loads(out.read_text())["points"]) == [30, 50]


def test_a_cache_the_user_cannot_read_costs_only_the_cache(tmp_path, monkeypatch, capsys):
    """`sudo saicm eval` where sudo keeps $HOME leaves root's 0700 folders in the user's ~/.cache/saicm/decoded; a
    shared --cache may be closed to them: the user's next sweep was a traceback (PermissionError) before its first
    image. (Simulated: root reads any folder.)"""
    d = _folder(tmp_path, 2)
    cache = tmp_path / "c"
    args = ["eval", "--codec", "jpeg", "--qualities", "50", "--dataset", str(d), "--task", "psnr",
            "-o", str(tmp_path / "r.json"), "--cache", str(cache), "--quiet"]
    assert main(args) == 0
    first = results.load(tmp_path / "r.json")["points"]
    capsys.readouterr()
    real_stat = os.stat
    closed = str(next(cache.iterdir()))  # (the codec's folder: root's, 0700)

    def stat(path, *a, **kw):
        if os.fspath(path).startswith(closed + os.sep):
            raise PermissionError(13, "Permission denied", os.fspath(path))
        return real_stat(path, *a, **kw)

    real_open = os.open

    def open_(path, *a, dir_fd=None, **kw):  # (entries are read through their folders' descriptors)
        if os.fspath(path) == closed or os.fspath(path).startswith(closed + os.sep) or (
                dir_fd is not None and os.fspath(path) == os.path.basename(closed)):
            raise PermissionError(13, "Permission denied", os.fspath(path))
        return real_open(path, *a, dir_fd=dir_fd, **kw)

    monkeypatch.setattr(os, "stat", stat)
    monkeypatch.setattr(os, "open", open_)
    with saicm_warnings() as said:
        assert main(args) == 0  # at the first entry looked up
    assert " ".join(said).count("cannot read the cache") == 1 and "Traceback" not in capsys.readouterr().err
    closed = str(cache)  # the codec's folder itself out of reach: at the start
    with saicm_warnings() as said:
        assert main(args) == 0
    assert " ".join(said).count("cannot read the cache") == 1 and "Traceback" not in capsys.readouterr().err
    strip = lambda ps: [{k: v for k, v in p.items() if not k.endswith("_s")} for p in ps]  # noqa: E731
    assert strip(results.load(tmp_path / "r.json")["points"]) == strip(first)


def test_every_quality_is_checked_before_the_sweep_codes_anything(tmp_path, monkeypatch, capsys):
    # --qualities 30,101 coded the whole folder at 30, then refused 101 (contributor audit)
    from saicm.eval import codecs

    coded = []
    for cls in (codecs.JPEG, codecs.HEVC, codecs.SaicmCodec, codecs.Simulcast):
        monkeypatch.setattr(cls, "encode", lambda self, img, q, real=cls.encode: coded.append(q) or real(self, img, q))
    d = _folder(tmp_path, 2)
    for argv, needle in ((["--codec", "jpeg", "--qualities", "30,101"], "0-100"),
                         (["--codec", "hevc", "--qualities", "30,99"], "QP"),
                         (["--codec", "mse-hyperprior-n64-v5", "--qualities", "1,9"],
                          "quality 9 out of range for mse-hyperprior-n64-v5 (1..7)"),  # compress's words
                         (["--codec", "simulcast:mse-hyperprior-n64-v5+mse-hyperprior-n64-v4,base=pair",
                           "--qualities", "2,8"], "quality 8 out of range for simulcast-"),
                         (["--codec", "simulcast:mse-hyperprior-n64-v3+mse-hyperprior-n64-v5,base=pair",
                           "--qualities", "2,7"], "the machine model mse-hyperprior-n64-v3) (1..6)")):
        assert main(["eval", *argv, "--dataset", str(d), "-o", str(tmp_path / "q.json"), "--no-cache"]) == 2
        assert needle in capsys.readouterr().err
    assert coded == []


def test_a_sweeps_cache_warnings_are_saicm_warnings_and_a_file_in_its_place_is_said_so(tmp_path, capsys):
    """A sweep's caller in Python (saicm.eval.rd.sweep in a notebook) could neither silence nor catch what the decode
    cache said (printed on standard error, not a SaicmWarning), and a file in the cache's place was said to be a
    folder others may write."""
    from PIL import Image

    from saicm.eval import codecs, rd
    from saicm.eval.cache import DecodeCache

    blocker = tmp_path / "file"
    blocker.write_bytes(b"")
    codec = codecs.get_codec("jpeg")
    images = {"a.png": Image.new("RGB", (16, 16), (1, 2, 3))}
    with saicm_warnings() as said:
        cache = DecodeCache(blocker, codec.name, codec.config())
        assert cache.get(50, "k") is None  # (said once, at the start: not again at each entry)
        cache.put(50, "k", images["a.png"], {"bytes": 1})
    assert len(said) == 1 and said[0].startswith(f"the cache folder {blocker} is a file: going on without the cache"), said
    assert not cache.enabled
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SaicmWarning)
        rd.sweep(codec, images, [50], cache=DecodeCache(blocker, codec.name, codec.config()), progress=False)
    assert capsys.readouterr().err == ""


def test_a_cache_that_cannot_be_written_still_serves_what_it_holds(tmp_path, monkeypatch, capsys):
    from PIL import Image

    from saicm.eval.cache import DecodeCache

    cache = DecodeCache(tmp_path / "c", "jpeg", {})
    img = Image.new("RGB", (8, 8), (1, 2, 3))
    cache.put(30, "k1", img, {"bytes": 10})

    def refuse(path, value):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(cache, "_write", refuse)
    with saicm_warnings() as said:
        cache.put(40, "k2", img, {"bytes": 11})  # a shared cache made read-only: said once, then not written
        cache.put(50, "k3", img, {"bytes": 12})
    assert " ".join(said).count("cannot write the cache") == 1
    hit = cache.get(30, "k1")
    assert hit is not None and hit[1] == {"bytes": 10} and cache.get(40, "k2") is None


def test_the_codec_help_names_every_registered_codec():
    # the list is written by hand (building it from the registry would import the codecs into every --help):
    # simulcast was missing from it
    import argparse
    import re

    from saicm.cli import build_parser
    from saicm.eval.codecs import CODECS

    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    codec_help = next(a.help for a in sub.choices["eval"]._actions if "--codec" in a.option_strings)
    named = set(re.findall(r"[a-z][a-z0-9-]*", codec_help))
    assert not [name for name in CODECS if name not in named]


def test_results_name_the_software_and_the_images_by_content(tmp_path, capsys):
    """A results file named its dataset by a path and the saicm version alone: a re-run on a folder where one image
    had changed (or by another build of the libraries) could not be told from the original. It records the
    libraries and a fingerprint of the pixels, the same for the same images elsewhere."""
    import shutil

    import saicm
    from PIL import Image

    from .conftest import natural_image

    d = _folder(tmp_path)
    copy = tmp_path / "elsewhere" / "ds"
    shutil.copytree(d, copy)

    def run(folder, out):
        assert main(["eval", "--codec", "jpeg", "--qualities", "30,70", "--dataset", str(folder), "--task", "psnr",
                     "-o", str(out), "--no-cache", "--quiet"]) == 0
        return results.load(out)

    a, b = run(d, tmp_path / "a.json"), run(copy, tmp_path / "b.json")
    assert a["software"]["saicm"] == saicm.__version__ == a["saicm_version"] and "python" in a["software"]
    assert len(a["dataset_sha256"]) == 64 and a["dataset_sha256"] == b["dataset_sha256"]
    Image.fromarray(natural_image(170, 200, seed=7)).save(copy / "1.png")
    assert run(copy, tmp_path / "c.json")["dataset_sha256"] != a["dataset_sha256"]
    capsys.readouterr()  # a BD-rate across the two says so (the names are the same: nothing else could tell)
    assert main(["bdrate", str(tmp_path / "a.json"), str(tmp_path / "b.json"), str(tmp_path / "c.json")]) == 0
    out = capsys.readouterr().out
    assert out.count("other pictures than the anchor's under the same names") == 1


def test_dataset_fingerprint_hashes_rgb_pixels_as_documented_without_converting_them(monkeypatch):
    """dataset_sha256 is the SHA-256 of one line NAME, WIDTHxHEIGHT, SHA-256 of the RGB pixels per image (values in
    results files must not change); an RGB image is hashed as it is: converting it to RGB first copied its pixels
    twice more, 6 % of the CPU of a sweep whose decodes were all cached."""
    import hashlib

    import numpy as np
    from PIL import Image

    from saicm.eval import rd

    rng = np.random.default_rng(3)
    images = {"b/grey.png": Image.fromarray(rng.integers(0, 256, (7, 5), dtype=np.uint8)),
              "a.png": Image.fromarray(rng.integers(0, 256, (9, 11, 3), dtype=np.uint8))}
    lines = "".join(f"{n}\t{images[n].width}x{images[n].height}\t"
                    f"{hashlib.sha256(np.asarray(images[n].convert('RGB')).tobytes()).hexdigest()}\n"
                    for n in sorted(images))
    expected = hashlib.sha256(lines.encode()).hexdigest()
    converted = []
    real = Image.Image.convert
    monkeypatch.setattr(Image.Image, "convert", lambda self, *a, **k: converted.append(self.mode) or real(self, *a, **k))
    assert rd.dataset_fingerprint(images) == expected
    assert converted == ["L"]  # (the grey image only)


def test_limit_and_report_read_only_the_images_they_use(tmp_path, monkeypatch, capsys):
    """`saicm eval --limit 2` of a folder of thousands decoded every image before keeping two (19 s and 0.5 GB for
    3,000 small PNGs; hours for a production folder), and failed on a damaged image it would never have used;
    `saicm report --images` did the same to show one image's crops."""
    import saicm.codec.image_io as image_io

    d = _folder(tmp_path, n=3)
    (d / "9-damaged.png").write_bytes(b"\x89PNG\r\n\x1a\n damaged")
    read = []
    real = image_io.load_image
    monkeypatch.setattr(image_io, "load_image", lambda p, *a, **k: read.append(p.name) or real(p, *a, **k))
    out = tmp_path / "r.json"
    assert main(["eval", "--codec", "jpeg", "--qualities", "50", "--dataset", str(d), "--task", "psnr", "-o",
                 str(out), "--no-cache", "--quiet", "--limit", "2"]) == 0
    r = results.load(out)
    assert r["num_images"] == 2 and sorted(r["per_image"]) == ["0.png", "1.png"]
    assert set(read) == {"0.png", "1.png"}  # (read again as the sweep codes them: ImageFolder)
    read.clear()
    r["per_image"] = {"1.png": [{"quality": 50, "bpp": 0.3, "psnr": 31.0}]}
    results.save(r, out)
    page = tmp_path / "r.html"
    assert main(["report", str(out), "-o", str(page), "--images", str(d), "--image", "1.png"]) == 0
    assert set(read) == {"1.png"}
    assert main(["report", str(out), "-o", str(page), "--images", str(d), "--image", "nope.png"]) == 2
    assert "no image 'nope.png'" in capsys.readouterr().err


@pytest.mark.skipif(os.name == "nt" or os.uname().sysname == "Darwin", reason="file names are bytes on Linux only")
def test_a_report_names_an_image_that_is_not_utf8_by_its_bytes(tmp_path):
    """`saicm report --image` of a name that is not UTF-8, absent from the folder or from the results: the error
    quoted it with repr(), `'caf\\udce9.png'` (a character no file name holds), where every other message shows the
    name's bytes, `caf\\xe9.png`."""
    import shutil
    import subprocess
    import sys

    d = _folder(tmp_path, n=1)
    out = tmp_path / "r.json"
    assert main(["eval", "--codec", "jpeg", "--qualities", "50", "--dataset", str(d), "-o", str(out), "--no-cache",
                 "--quiet"]) == 0
    stranger = os.fsdecode(b"caf\xe9.png")
    for present in (False, True):
        if present:  # (in the folder, not among the images measured)
            shutil.copyfile(d / "0.png", d / stranger)
        r = subprocess.run([sys.executable, "-m", "saicm", "report", str(out), "-o", str(tmp_path / "r.html"),
                            "--images", str(d), "--image", stranger], capture_output=True, timeout=600,
                           env=dict(os.environ, PYTHONWARNINGS="ignore"))
        assert r.returncode == 2 and b"'caf\\xe9.png'" in r.stderr and b"udc" not in r.stderr, r.stderr


def test_off_a_terminal_a_sweep_prints_status_lines_not_silence(tmp_path, monkeypatch, capsys):
    """`saicm eval` under nohup or `2> eval.log` printed nothing for the whole sweep (eight minutes for 3,000 images,
    the batch audit): a line per quality, and within one at most every LINE_SECONDS; --quiet none."""
    import re

    from saicm import _progress

    d = _folder(tmp_path, 3)
    monkeypatch.setattr(_progress, "LINE_SECONDS", 0.0)
    argv = ["eval", "--codec", "jpeg", "--qualities", "30,70", "--dataset", str(d), "--task", "psnr", "--no-cache"]
    assert main([*argv, "-o", str(tmp_path / "a.json")]) == 0
    lines = [x for x in capsys.readouterr().err.splitlines() if x.startswith("saicm eval: ")]
    assert [x.rsplit(": ", 1)[1].split(",")[0] for x in lines[:3]] == ["1/3 images", "2/3 images", "3/3 images"]
    # (the run's time left, as the bar shows it on a terminal: the lines said only how far a quality had come)
    assert all(re.search(r", about \d+ s left$", x) for x in lines[:3]), lines
    assert lines[0].startswith("saicm eval: jpeg") and " quality 30: " in lines[0]
    done = [x for x in lines if " done (" in x]
    assert len(done) == 2 and "done (2/2): " in done[1] and " bpp, PSNR " in done[1] and "\r" not in "".join(lines)
    monkeypatch.setattr(_progress, "LINE_SECONDS", 1e9)  # throttled: the first line and the qualities' lines alone
    assert main([*argv, "-o", str(tmp_path / "b.json")]) == 0
    lines = [x for x in capsys.readouterr().err.splitlines() if x.startswith("saicm eval: ")]
    assert len(lines) == 3 and " quality 30: 1/3 images" in lines[0] and all(" done (" in x for x in lines[1:]), lines
    assert main([*argv, "-o", str(tmp_path / "c.json"), "--quiet"]) == 0
    assert "saicm eval: " not in capsys.readouterr().err


def test_the_dataset_fingerprint_is_of_names_sizes_and_pixels_not_of_order():
    """dataset_fingerprint, as documented: one line NAME, WIDTHxHEIGHT, pixels' SHA-256 per image by sorted name
    (mutation audit: leaving out the name, the size or the sorting passed)."""
    import numpy as np
    from PIL import Image

    from saicm.eval.rd import dataset_fingerprint

    a = Image.fromarray(np.arange(24, dtype=np.uint8).reshape(2, 4, 3))
    b = Image.fromarray(np.arange(24, dtype=np.uint8).reshape(4, 2, 3))  # the same bytes, other sides
    base = dataset_fingerprint({"a.png": a, "b.png": b})
    assert dataset_fingerprint({"b.png": b, "a.png": a}) == base  # (the order of a folder's listing)
    assert dataset_fingerprint({"a.png": a, "c.png": b}) != base  # (a renamed image)
    assert dataset_fingerprint({"x.png": a}) != dataset_fingerprint({"x.png": b})  # (other sides, same bytes)


def test_other_pictures_are_warned_of_only_under_the_same_names_and_other_fingerprints():
    """comparison_warnings' dataset_sha256 check (mutation audit: warning when the fingerprints are equal and not
    when they differ passed the CLI test, which counted one warning among two tests): the same fingerprint, none;
    another one under the same names, one; other names (another --limit), none (said apart by the names)."""
    def res(fingerprint, names=("a.png", "b.png")):
        return {"points": [{"quality": 1, "bpp": 0.1, "psnr": 30.0}], "dataset_sha256": fingerprint,
                "per_image": {n: [] for n in names}}

    same, other = "1" * 64, "2" * 64
    assert results.comparison_warnings(res(same), res(same), "psnr") == []
    assert results.comparison_warnings(res(same), res(other), "psnr") == [
        "other pictures than the anchor's under the same names (dataset_sha256 differs)"]
    assert results.comparison_warnings(res(same), res(other, ("a.png",)), "psnr") == []
    assert results.comparison_warnings(res(same), res(None), "psnr") == []  # (an older file: nothing known)


def test_results_name_the_machine_their_timings_ran_on(tmp_path, monkeypatch):
    """encode_s and decode_s were saved without the CPU or the thread count they ran with (the notes' left-alone
    list): two results files' timings could not be told apart by machine."""
    from saicm import _provenance
    from saicm.eval import results

    monkeypatch.setenv("SAICM_THREADS", "3")
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    monkeypatch.setattr(_provenance, "cpu_model", lambda: "Some CPU 9000")
    out = tmp_path / "r.json"
    assert main(["eval", "--codec", "jpeg", "--qualities", "50", "--dataset", str(_folder(tmp_path)), "-o", str(out),
                 "--no-cache", "--quiet"]) == 0
    m = results.load(out)["machine"]
    from saicm.engine.parallel import usable_cpus

    assert m == {"cpu": "Some CPU 9000", "cpus": usable_cpus(), "threads": min(3, 4 * usable_cpus()),
                 "OMP_NUM_THREADS": "1"}


def test_the_cpu_model_is_read_from_cpuinfo_where_there_is_one():
    from saicm._provenance import cpu_model

    if not os.path.exists("/proc/cpuinfo"):
        pytest.skip("no /proc/cpuinfo here")
    names = [ln.split(":", 1)[1].strip() for ln in open("/proc/cpuinfo") if ln.startswith("model name")]
    if not names:
        pytest.skip("/proc/cpuinfo names no model here")
    assert cpu_model() == " ".join(names[0].split())


def test_bdrate_json_does_not_replace_a_results_file(tmp_path, capsys):
    """`--json` is a flag of `info` and `models` but takes the file to write in `bdrate`: `saicm bdrate --json A B C`
    (a flag meant) replaced the results file A with the table of B against C (a CLI consistency audit)."""
    a = write_result(tmp_path / "a.json", "anchor", [(0.2, 30), (0.4, 33), (0.8, 36)])
    b = write_result(tmp_path / "b.json", "half", [(0.1, 30), (0.2, 33), (0.4, 36)])
    c = write_result(tmp_path / "c.json", "test", [(0.2, 31), (0.4, 34), (0.8, 37)])
    before = a.read_bytes()
    assert main(["bdrate", "--json", str(a), str(b), str(c)]) == 2
    err = capsys.readouterr().err
    assert "a.json: is a results file: --json takes the file to write" in err and "Traceback" not in err
    assert a.read_bytes() == before
    # a table written before is replaced as it always was
    t = tmp_path / "t.json"
    assert main(["bdrate", str(a), str(b), "--json", str(t)]) == 0
    assert main(["bdrate", str(a), str(c), "--json", str(t)]) == 0
    assert json.loads(t.read_text())["rows"][0]["codec"] == "test"


def test_eval_cache_with_no_cache_is_said_not_used(tmp_path, capsys):
    """`--cache DIR --no-cache` left DIR alone in silence (options a command does not use are named in a warning,
    as --task-model of --task psnr is) (a CLI consistency audit)."""
    import saicm

    d = _folder(tmp_path, 1)
    with pytest.warns(saicm.SaicmWarning, match="--cache not used by --no-cache"):
        assert main(["eval", "--codec", "jpeg", "--qualities", "50", "--dataset", str(d), "--cache",
                     str(tmp_path / "c"), "--no-cache", "--quiet", "-o", str(tmp_path / "r.json")]) == 0
    assert not (tmp_path / "c").exists()


def test_report_crop_options_without_images_are_said_not_used(tmp_path):
    """`report --image X --task-model K:P --target-bpp B` without --images drew no crops and said nothing of them (a
    CLI consistency audit: unused options are named, as eval and masks name theirs)."""
    import saicm

    a = write_result(tmp_path / "a.json", "anchor", [(0.2, 30), (0.4, 33), (0.8, 36)])
    with pytest.warns(saicm.SaicmWarning, match="--image, --task-model, --target-bpp not used by report without "
                      "--images"):
        assert main(["report", str(a), "-o", str(tmp_path / "r.html"), "--image", "x.png", "--task-model",
                     "picodet:none.onnx", "--target-bpp", "0.5"]) == 0


def test_bdrate_ci_method_without_ci_is_said_not_used(tmp_path):
    """`bdrate A B --ci-method bc` without --ci computed no interval and said nothing of --ci-method (a CLI
    consistency audit)."""
    import saicm

    a = write_result(tmp_path / "a.json", "anchor", [(0.2, 30), (0.4, 33), (0.8, 36)])
    b = write_result(tmp_path / "b.json", "half", [(0.1, 30), (0.2, 33), (0.4, 36)])
    with pytest.warns(saicm.SaicmWarning, match="--ci-method not used by bdrate without --ci"):
        assert main(["bdrate", str(a), str(b), "--ci-method", "bc"]) == 0


@pytest.mark.parametrize("field", ["bytes", "bpp", "quality", "encode_s", "decode_s"])
def test_bdrate_refuses_a_field_that_is_not_a_score(tmp_path, capsys, field):
    # --metric quality gave +324.6 % (JPEG's quality scale against a model's), --metric bytes +0.1 %, --metric
    # encode_s "needs at least 2 points" (bdstandard audit, 0.30.0)
    a = write_result(tmp_path / "a.json", "anchor", [(0.2, 30), (0.4, 33), (0.8, 36)])
    b = write_result(tmp_path / "b.json", "half", [(0.1, 30), (0.2, 33), (0.4, 36)])
    for p, q in ((a, 10), (b, 1)):
        r = results.load(p)
        for i, pt in enumerate(r["points"]):
            pt.update(bytes=int(pt["bpp"] * 1e5), quality=q * (i + 1), encode_s=0.1 / (i + 1), decode_s=0.05)
        results.save(r, p)
    assert main(["bdrate", str(a), str(b), "--metric", field, "--json", str(tmp_path / "t.json")]) == 2
    err = capsys.readouterr().err
    assert f"--metric {field} is not a score" in err and not (tmp_path / "t.json").exists()
    assert main(["bdrate", str(a), str(b)]) == 0  # (psnr, as before)


def test_a_model_replaced_with_its_modification_time_kept_is_not_the_old_one_in_the_same_process(tmp_path):
    """The process's caches of a weight file (its checksum, metadata, portable model) were keyed by its path and
    modification time alone: a retrained model put in place of the one a notebook had coded with, its time kept
    (``cp -p``, ``rsync -t``, ``touch -r``), kept the old checksum (the decode cache's key of the old weights) and
    the old model, in silence."""
    import os
    import shutil

    from PIL import Image

    from saicm.codec.pipeline import compress
    from saicm.eval.codecs import get_codec
    from saicm.models.catalog import WEIGHTS_DIR, file_checksum

    from .conftest import natural_image

    path = tmp_path / "model.safetensors"
    shutil.copyfile(WEIGHTS_DIR / "mse-hyperprior-n64-v5.safetensors", path)
    img = Image.fromarray(natural_image(64, 64, seed=3))
    before = (get_codec(str(path)).config()["weights_sha256_prefix"], compress(img, model=str(path), quality=1))
    st = os.stat(path)
    shutil.copyfile(WEIGHTS_DIR / "mse-hyperprior-n64-v4.safetensors", path)  # in place: the same inode
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    after = (get_codec(str(path)).config()["weights_sha256_prefix"], compress(img, model=str(path), quality=1))
    assert after[0] == file_checksum(WEIGHTS_DIR / "mse-hyperprior-n64-v4.safetensors").hex() != before[0]
    assert after[1] != before[1]


def test_results_name_the_task_model_file_by_its_content_and_bdrate_tells_two_apart(tmp_path, capsys):
    """A results file named its task model by the text of --task-model alone, and bdrate compared file names: a
    detector replaced under its name (a fine-tuned export at the same path) passed for the anchor's, and AP read by
    two detectors was compared without a word. eval records ``task_model_sha256``; bdrate warns when they differ."""
    import hashlib
    import shutil

    import cv2
    from PIL import Image

    from .conftest import natural_image

    cascade = tmp_path / "faces.xml"
    shutil.copyfile(cv2.data.haarcascades + "haarcascade_frontalface_default.xml", cascade)
    d = tmp_path / "imgs"
    d.mkdir()
    Image.fromarray(natural_image(40, 48, seed=1)).save(d / "0.png")
    out = tmp_path / "r.json"
    assert main(["eval", "--codec", "jpeg", "--qualities", "50", "--dataset", str(d), "--task", "faces",
                 "--task-model", f"haar:{cascade}", "-o", str(out), "--no-cache", "-q"]) == 0
    assert results.load(out)["task_model_sha256"] == hashlib.sha256(cascade.read_bytes()).hexdigest()

    def ap(sha):
        points = [{"quality": i, "bpp": 0.1 * (i + 1), "ap": 30.0 + i, "ground_truth": "official"} for i in range(3)]
        return {"points": points, "task_model": "yolox:models/yolox_nano.onnx", "task_model_sha256": sha}

    assert results.comparison_warnings(ap("a" * 64), ap("a" * 64), "ap") == []
    assert results.comparison_warnings(ap("a" * 64), ap("b" * 64), "ap") == [
        "another task model than the anchor's under the same name (task_model_sha256 differs)"]
    assert results.comparison_warnings(ap("a" * 64), ap(None), "ap") == []  # (a file of 0.31.0 and before: unknown)


def test_a_model_rewritten_in_place_with_its_size_and_time_kept_is_read_again(tmp_path):
    """The caches of a process key a weight file by its modification and change times, size and inode: a file
    rewritten in place (the same inode), its size the same and its modification time put back, differs by its
    change time alone, and its checksum, metadata and PyTorch model are read again (by any one key alone the
    process kept the old ones)."""
    import os
    import shutil
    import time

    import torch

    from saicm.models.catalog import WEIGHTS_DIR, full_checksum, read_info
    from saicm.models.zoo import load_model

    path = tmp_path / "model.safetensors"
    shutil.copyfile(WEIGHTS_DIR / "mse-hyperprior-n64-v5.safetensors", path)
    first = (full_checksum(path), read_info(path).meta["description"], load_model(str(path))[0].state_dict())
    st = os.stat(path)
    data = bytearray(path.read_bytes())
    data[-4:] = bytes(b ^ 0x5A for b in data[-4:])  # (the last tensor's last value: the same size, other weights)
    time.sleep(0.02)  # (a change time that can move on a coarse clock)
    with open(path, "r+b") as f:
        f.write(data)
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert (os.stat(path).st_ino, os.stat(path).st_size, os.stat(path).st_mtime_ns) == \
        (st.st_ino, st.st_size, st.st_mtime_ns)
    assert full_checksum(path) != first[0]
    again = load_model(str(path))[0].state_dict()
    assert any(not torch.equal(again[k], first[2][k]) for k in first[2])
    # another model's metadata under the same name, size apart, the modification time kept
    shutil.copyfile(WEIGHTS_DIR / "mse-hyperprior-n64-v4.safetensors", path)
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert read_info(path).meta["description"] == \
        read_info(WEIGHTS_DIR / "mse-hyperprior-n64-v4.safetensors").meta["description"] != first[1]


def test_without_cache_leaves_out_entries_alone_and_says_it_once(tmp_path):
    """Only a PNG named as a cache entry with its .json beside it is a decode (a photo under such a name is not),
    one entry is enough to be said, and a cache in the folder is said once (mutation audit)."""
    import warnings

    from saicm.eval.cache import without_cache

    entry = tmp_path / "cache" / "jpeg-0123456789ab" / "q50"
    entry.mkdir(parents=True)
    decoded = entry / ("ab" * 10 + ".png")
    lookalike = entry / ("cd" * 10 + ".png")
    photo = tmp_path / "photo.png"
    for f in (decoded, lookalike, photo):
        f.write_bytes(b"png")
    decoded.with_suffix(".json").write_text("{}")
    files = [decoded, lookalike, photo]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert without_cache(tmp_path, files, "test", cache=tmp_path / "cache") == [lookalike, photo]
    assert len(caught) == 1 and str(caught[0].message).startswith("1 decoded images of a saicm decode cache")
