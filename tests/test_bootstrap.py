"""Paired-bootstrap intervals for BD-rates: the draws, AP on a draw, the interval, and refusals."""

import json

import numpy as np
import pytest

from saicm.cli import main
from saicm.errors import SaicmError, SaicmWarning
from saicm.eval import results, tasks
from saicm.eval.bootstrap import bd_rate_ci, draws, spec

from .test_tasks import OBJECTS, det, gt_dict


def test_draws_are_fixed_by_seed_and_names():
    a, b = draws(5, 50, seed=3), draws(5, 50, seed=3)
    assert a.shape == (50, 5) and a.min() >= 0 and a.max() <= 4
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, draws(5, 50, seed=4))
    assert spec(["b.png", "a.png"], 10) == spec(["a.png", "b.png"], 10)
    assert spec(["a.png", "b.png"], 10)["images"] != spec(["a.png", "c.png"], 10)["images"]
    with pytest.raises(SaicmError, match="at least one image"):
        draws(0, 10)


def test_names_that_are_not_utf8_fix_draws_too(tmp_path, capsys):
    """A file name that is not UTF-8 (Latin-1 bytes, or any non-ASCII name in an ASCII locale) reaches saicm with
    surrogate escapes: hashing the names raised UnicodeEncodeError, so `saicm eval --task detection` stopped with a
    traceback before its first image and `saicm bdrate --ci` after its table's heading."""
    import hashlib

    names = ["a.png", "caf\udce9.png"]
    digest = hashlib.sha256(b"a.png\ncaf\xe9.png").hexdigest()[:16]  # the names' bytes on disk
    assert spec(names, 10)["images"] == digest != spec(["a.png", "cafe.png"], 10)["images"]
    assert spec(["a.png", "b.png"], 10)["images"] == hashlib.sha256(b"a.png\nb.png").hexdigest()[:16]  # as before
    a = {("caf\udce9" if i == 0 else "") + n: rows for i, (n, rows) in enumerate(_anchor().items())}
    t = {n: [(q, 0.8 * b, p) for q, b, p in rows] for n, rows in a.items()}
    results.save(_result("a", a), tmp_path / "a.json")
    results.save(_result("t", t), tmp_path / "t.json")
    assert main(["bdrate", str(tmp_path / "a.json"), str(tmp_path / "t.json"), "--metric", "psnr", "--ci"]) == 0
    assert "-20.0%" in capsys.readouterr().out


def test_ap_on_each_draw_is_the_ap_of_the_drawn_images():
    # a.jpg found perfectly (box and mask), b.jpg missed: AP 100 on a alone, 0 on b alone,
    # and 51/101 of 100 whenever both are drawn (duplicates change neither precision nor recall)
    gt = gt_dict(OBJECTS, masks=True)
    dets = {"a.jpg": [det(OBJECTS[0][2], mask=True)], "b.jpg": []}
    r = tasks.coco_ap(dets, gt, ("bbox", "segm"), bootstrap=40, seed=1)
    assert r["box_ap"] == pytest.approx(100 * 51 / 101, abs=1e-3)  # the full-set figure is unchanged
    expect = []
    for row in draws(2, 40, seed=1):  # rows index the sorted names: 0 = a.jpg, 1 = b.jpg
        expect.append(100.0 if set(row) == {0} else 0.0 if set(row) == {1} else round(100 * 51 / 101, 3))
    assert 0 < expect.count(100.0) < 40 and 0 < expect.count(0.0) < 40  # the seed draws all three cases
    for key in ("box_ap", "mask_ap", "box_ap50", "mask_ap50"):
        assert r["bootstrap"][key] == pytest.approx(expect, abs=1e-3)
    none = tasks.coco_ap({"a.jpg": [], "b.jpg": []}, gt, bootstrap=3)
    assert none["bootstrap"]["box_ap"] == [0.0, 0.0, 0.0]


def test_a_draw_of_images_without_objects_has_no_ap_with_or_without_detections():
    """AP is undefined on a draw whose images hold no object (None, as pycocotools' -1 gives when something was
    detected); with nothing detected anywhere every draw scored 0.0, those too."""
    gt = gt_dict(OBJECTS[:1])  # a.jpg: one object; empty.jpg: none
    expect = [None if set(row) == {1} else 0.0 for row in draws(2, 30, seed=2)]  # 0 = a.jpg, 1 = empty.jpg
    assert 0 < expect.count(None) < 30
    crowd = dict(gt, annotations=gt["annotations"] + [dict(gt["annotations"][0], id=9, iscrowd=1, image_id=next(
        i["id"] for i in gt["images"] if i["file_name"] == "empty.jpg"))])  # (a crowd is no object to find)
    for dets in ({"a.jpg": [], "empty.jpg": []}, {"a.jpg": [det((60, 60, 90, 90))], "empty.jpg": []}):
        for truth in (gt, crowd):
            r = tasks.coco_ap(dets, truth, bootstrap=30, seed=2)
            assert r["box_ap"] == 0.0
            assert r["bootstrap"]["box_ap"] == expect == r["bootstrap"]["box_ap50"]
    # the draws index the sorted names: listed in another order, the same draws
    r = tasks.coco_ap({"empty.jpg": [], "a.jpg": []}, gt, bootstrap=30, seed=2)
    assert r["bootstrap"]["box_ap"] == expect


def _result(codec, per_image, task="psnr"):
    """per_image: {name: [(quality, bpp, psnr), ...]} -> a results dict with mean points."""
    r = results.new_result(codec, {}, "synthetic", task, len(per_image))
    r["per_image"] = {n: [{"quality": q, "bpp": b, "psnr": p} for q, b, p in rows] for n, rows in per_image.items()}
    qs = [q for q, _, _ in next(iter(per_image.values()))]
    for j, q in enumerate(qs):
        r["points"].append({"quality": q, "bpp": float(np.mean([rows[j][1] for rows in per_image.values()])),
                            "psnr": float(np.mean([rows[j][2] for rows in per_image.values()]))})
    return r


def _anchor(n=12, seed=0):
    rng = np.random.default_rng(seed)
    out = {}
    for i in range(n):
        scale, base = rng.uniform(0.5, 2.0), rng.uniform(26, 32)
        out[f"{i:03d}.png"] = [(q, scale * 0.1 * 2 ** q, base + 3 * q) for q in range(1, 5)]
    return out


def test_a_uniform_saving_gives_a_point_interval():
    a = _anchor()
    t = {n: [(q, 0.8 * b, p) for q, b, p in rows] for n, rows in a.items()}
    ci = bd_rate_ci(_result("a", a), _result("t", t), "psnr", replicates=100)
    assert ci.percent == pytest.approx(-20.0, abs=1e-9)
    assert ci.low == pytest.approx(-20.0, abs=1e-9) and ci.high == pytest.approx(-20.0, abs=1e-9)
    assert ci.better == 1.0 and ci.draws == 100 and ci.failed == 0


def test_a_point_left_out_of_the_curve_is_left_out_of_every_draw():
    # an exact decode (infinite PSNR, stored null) drops its point from the curve; the draws averaged the other
    # images there and kept it, so the interval belonged to another curve (metrics audit, 0.20.0)
    a = _anchor()
    t = {n: [(q, 0.8 * b, p) for q, b, p in rows] for n, rows in a.items()}
    r = _result("t", t)
    first = next(iter(r["per_image"]))
    r["per_image"][first][-1]["psnr"] = None  # that image decodes exactly at the top point
    r["points"][-1]["psnr"] = None            # as saicm eval writes the point's mean (inf)
    ci = bd_rate_ci(_result("a", a), r, "psnr", replicates=100)
    assert ci.percent == pytest.approx(-20.0, abs=1e-9)  # the three other points: 20 % fewer bits for every image
    assert ci.low == pytest.approx(-20.0, abs=1e-9) and ci.high == pytest.approx(-20.0, abs=1e-9)


def test_an_uneven_saving_gives_an_interval_around_the_figure():
    a = _anchor()
    # half the images 40 % cheaper, the other half 10 % dearer
    t = {n: [(q, (0.6 if i % 2 else 1.1) * b, p) for q, b, p in rows] for i, (n, rows) in enumerate(a.items())}
    ci = bd_rate_ci(_result("a", a), _result("t", t), "psnr", replicates=200)
    assert ci.low < ci.percent < ci.high and ci.high - ci.low > 5
    assert -40 < ci.low and ci.high < 10
    narrow = bd_rate_ci(_result("a", a), _result("t", t), "psnr", level=0.5, replicates=200)
    assert ci.low < narrow.low < narrow.high < ci.high


def test_images_without_ms_ssim_count_as_in_the_points(tmp_path, monkeypatch):
    """MS-SSIM is NaN for images of 160 pixels or less a side; the points average it over the other images, and
    so must every draw (they averaged the NaN in: draws with that image failed, and the interval of a 20 %
    saving excluded the point)."""
    a = _anchor(6)

    def run(codec, factor):
        r = results.new_result(codec, {}, "synthetic", "psnr", len(a))
        r["per_image"] = {n: [{"quality": q, "bpp": factor * b, "psnr": p,
                               "ms_ssim": float("nan") if i == 0 else 0.9 + 0.01 * q + 0.001 * i}
                              for q, b, p in rows] for i, (n, rows) in enumerate(a.items())}
        for j, q in enumerate(range(1, 5)):
            ent = [rows[j] for rows in r["per_image"].values()]
            r["points"].append({"quality": q, "bpp": float(np.mean([e["bpp"] for e in ent])),
                                "ms_ssim": float(np.nanmean([e["ms_ssim"] for e in ent]))})
        return r

    import warnings

    def swapped(*a, **k):  # (it swaps the process's filters for every thread: a service's other threads lost the
        # filters they set meanwhile; the reentrancy audit)
        raise AssertionError("the draws' means swapped the process's warning filters")

    with monkeypatch.context() as m:
        m.setattr(warnings, "catch_warnings", swapped)
        ci = bd_rate_ci(run("a", 1.0), run("t", 0.8), "ms_ssim", replicates=100)
    assert ci.percent == pytest.approx(-20.0, abs=1e-9)
    assert ci.low == pytest.approx(-20.0, abs=1e-9) and ci.high == pytest.approx(-20.0, abs=1e-9)
    assert ci.failed == 0
    from saicm.eval.bootstrap import _nanmean

    values = np.array([[1.0, np.nan, 2.0], [np.nan, np.nan, 4.0], [0.3, np.nan, np.inf]])
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # (no "Mean of empty slice" for the column of NaN alone)
        means = _nanmean(values)
    assert means[0] == np.float64(0.65) and np.isnan(means[1]) and means[2] == np.inf
    # written as standard JSON (NaN is not JSON: other tools refused the files), read back the same
    for name, factor in (("a", 1.0), ("t", 0.8)):
        results.save(run(name, factor), tmp_path / f"{name}.json")
        text = (tmp_path / f"{name}.json").read_text()
        json.loads(text, parse_constant=lambda c: pytest.fail(f"non-standard JSON constant {c}"))
        assert '"ms_ssim": null' in text
    again = bd_rate_ci(results.load(tmp_path / "a.json"), results.load(tmp_path / "t.json"), "ms_ssim", replicates=100)
    assert (again.percent, again.low, again.high, again.failed) == pytest.approx((ci.percent, ci.low, ci.high, 0))


def test_files_that_cannot_be_paired_are_refused():
    a = _anchor()
    other = dict(list(a.items())[:-1])
    last = sorted(a)[-1]
    # the message names what differs (it said only "not measured on the same images")
    with pytest.raises(SaicmError, match=f"not measured on the same images.*only in a: {last}; only in t: none"):
        bd_rate_ci(_result("a", a), _result("t", other), "psnr")
    odd = _result("t", a)  # a hand-made file whose per-image values are not what its points average
    first = sorted(odd["per_image"])[0]
    odd["per_image"][first][0]["psnr"] += 5.0
    with pytest.raises(SaicmError, match="mean of its per-image values.*the same sweep"):
        bd_rate_ci(_result("a", a), odd, "psnr")
    bare = _result("t", a)
    del bare["per_image"]
    with pytest.raises(SaicmError, match="results for t have no per-image entries"):
        bd_rate_ci(_result("a", a), bare, "psnr")
    ra, rt = _result("a", a, "detection"), _result("t", a, "detection")
    for r in (ra, rt):
        for p in r["points"]:
            p["ap"] = p["psnr"]
    with pytest.raises(SaicmError, match="no bootstrap draws of ap.*--bootstrap"):
        bd_rate_ci(ra, rt, "ap")
    ra["bootstrap"] = spec(list(a), 3)
    rt["bootstrap"] = spec(list(a), 4)
    with pytest.raises(SaicmError, match="different draws"):
        bd_rate_ci(ra, rt, "ap")


def test_stored_ap_draws_are_used_for_ap(tmp_path):
    a = _anchor(n=6)
    ra, rt = _result("a", a, "detection"), _result("t", {n: [(q, 0.5 * b, p) for q, b, p in rows]
                                                         for n, rows in a.items()}, "detection")
    for r in (ra, rt):
        r["bootstrap"] = spec(list(a), 5)
        for p in r["points"]:
            p["ap"] = p["psnr"]
            p["bootstrap"] = {"box_ap": [p["psnr"]] * 5}  # the same AP on every draw
    ci = bd_rate_ci(ra, rt, "ap")
    assert ci.draws == 5 and ci.low == pytest.approx(-50.0) and ci.high == pytest.approx(-50.0)
    results.save(ra, tmp_path / "a.json")
    results.save(rt, tmp_path / "t.json")
    assert main(["bdrate", str(tmp_path / "a.json"), str(tmp_path / "t.json"), "--metric", "ap", "--ci", "90",
                 "--json", str(tmp_path / "table.json")]) == 0
    row = json.loads((tmp_path / "table.json").read_text())["rows"][0]
    assert row["ci"] == pytest.approx([-50.0, -50.0]) and row["ci_level"] == 90 and row["ci_draws"] == 5


def test_bias_corrected_percentiles_known_values():
    from saicm.eval.bootstrap import percentiles

    assert percentiles(0.95, 0.3, 200) == pytest.approx([2.5, 97.5])  # (the default method ignores where the estimate falls)
    assert percentiles(0.95, 0.5, 200, "bc") == pytest.approx([2.5, 97.5])  # centred draws: no correction
    # the estimate at the 28.5 % point (YOLOX, v5 against VVC): z0 = -0.5681, bounds at Φ(2·z0 ∓ 1.96)
    assert percentiles(0.95, 0.285, 200, "bc") == pytest.approx([0.0981, 79.50], abs=0.01)
    assert percentiles(0.95, 0.0, 200, "bc")[0] > 0  # every draw above: z0 stays finite


def test_off_centre_draws_are_noted_and_bc_moves_the_interval_towards_the_estimate(tmp_path, capsys):
    a = _anchor(n=6)
    ra, rt = _result("a", a, "detection"), _result("t", {n: [(q, 0.5 * b, p) for q, b, p in rows]
                                                         for n, rows in a.items()}, "detection")
    shifts = [0.0] + [-1.0] * 8 + [1.0]  # nine of ten draws: the test codec scores lower (dearer) than on all images
    for r, sh in ((ra, [0.0] * 10), (rt, shifts)):
        r["bootstrap"] = spec(list(a), 10)
        for p in r["points"]:
            p["ap"] = p["psnr"]
            p["bootstrap"] = {"box_ap": [p["psnr"] + d for d in sh]}
    pc = bd_rate_ci(ra, rt, "ap")
    bc = bd_rate_ci(ra, rt, "ap", method="bc")
    assert pc.below == pytest.approx(0.15) and pc.median > pc.percent and bc.method == "bc"
    assert bc.low < pc.low and bc.high <= pc.high  # shifted down, towards the full-set figure
    with pytest.raises(SaicmError, match="interval method"):
        bd_rate_ci(ra, rt, "ap", method="bca")
    results.save(ra, tmp_path / "a.json")
    results.save(rt, tmp_path / "t.json")
    args = ["bdrate", str(tmp_path / "a.json"), str(tmp_path / "t.json"), "--metric", "ap", "--ci"]
    assert main(args) == 0
    assert "NOTE: the estimate is at the 15% point of its draws" in capsys.readouterr().out
    assert main(args + ["--ci-method", "bc", "--json", str(tmp_path / "bc.json")]) == 0
    out = capsys.readouterr().out
    assert "bias-corrected" in out and "NOTE" not in out
    row = json.loads((tmp_path / "bc.json").read_text())["rows"][0]
    assert row["ci_method"] == "bc" and row["ci"] == pytest.approx([bc.low, bc.high])
    assert row["ci_estimate_below"] == pytest.approx(0.15)  # one draw below, one equal (counted half)


def test_cli_prints_the_interval_and_explains_a_missing_draw(tmp_path, capsys):
    a = _anchor()
    results.save(_result("a", a), tmp_path / "a.json")
    results.save(_result("t", {n: [(q, 0.8 * b, p) for q, b, p in rows] for n, rows in a.items()}), tmp_path / "t.json")
    assert main(["bdrate", str(tmp_path / "a.json"), str(tmp_path / "t.json"), "--ci"]) == 0
    out = capsys.readouterr().out
    assert "95% CI -20.0% to -20.0%" in out and "too few" not in out  # 12 images
    few = _anchor(n=3)
    results.save(_result("a", few), tmp_path / "a3.json")
    results.save(_result("t", {n: [(q, 0.8 * b, p) for q, b, p in rows] for n, rows in few.items()}),
                 tmp_path / "t3.json")
    assert main(["bdrate", str(tmp_path / "a3.json"), str(tmp_path / "t3.json"), "--ci"]) == 0
    assert "WARNING: 3 images: too few for the interval" in capsys.readouterr().out  # it looked as sure as any
    assert main(["bdrate", str(tmp_path / "a.json"), str(tmp_path / "a.json")]) == 0
    assert "2 of these results name their codec 'a'" in capsys.readouterr().err
    assert main(["bdrate", str(tmp_path / "a.json"), str(tmp_path / "t.json"), "--metric", "ap", "--ci"]) != 0
    assert "no metric 'ap'" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["bdrate", str(tmp_path / "a.json"), str(tmp_path / "t.json"), "--ci", "120"])
    assert "confidence level" in capsys.readouterr().err


def test_draws_of_per_image_metrics_can_be_asked_for(tmp_path, capsys):
    """200 draws put a Monte Carlo error of about 0.1 point on the endpoints of a PSNR interval (the stats audit,
    2026-12-07), as large as the decimal printed, and `bdrate --ci` had no way to ask for more: --draws N."""
    a = _anchor()
    t = {n: [(q, (0.7 if i % 2 else 0.9) * b, p) for q, b, p in rows] for i, (n, rows) in enumerate(a.items())}
    results.save(_result("a", a), tmp_path / "a.json")
    results.save(_result("t", t), tmp_path / "t.json")
    args = ["bdrate", str(tmp_path / "a.json"), str(tmp_path / "t.json"), "--ci"]
    assert main(args + ["--draws", "1000", "--json", str(tmp_path / "b.json")]) == 0
    row = json.loads((tmp_path / "b.json").read_text())["rows"][0]
    ci = bd_rate_ci(results.load(tmp_path / "a.json"), results.load(tmp_path / "t.json"), "psnr", replicates=1000)
    assert row["ci_draws"] == 1000 and row["ci"] == pytest.approx([ci.low, ci.high])
    assert "of 1000 draws" in capsys.readouterr().out
    assert main(args + ["--json", str(tmp_path / "c.json")]) == 0  # the default is unchanged: 200
    assert json.loads((tmp_path / "c.json").read_text())["rows"][0]["ci_draws"] == 200
    capsys.readouterr()
    with pytest.warns(SaicmWarning, match="--draws not used by bdrate without --ci"):  # said, not ignored unsaid
        assert main(args[:-1] + ["--draws", "1000"]) == 0
    ap = _ap_run("nerv:seed=0", [0.1, 0.2], [40.0, 60.0], [[40.0, 30.0, 50.0], [60.0, 50.0, 70.0]])
    results.save(ap, tmp_path / "ap.json")
    # AP draws are made by saicm eval --bootstrap N: one line says so (the stored 3 draws were used, unsaid)
    assert main(["bdrate", str(tmp_path / "ap.json"), str(tmp_path / "ap.json"), "--metric", "ap", "--ci",
                 "--draws", "1000"]) != 0
    err = capsys.readouterr().err
    assert "--draws" in err and "--bootstrap" in err and "Traceback" not in err


def _ap_run(codec, bpps, aps, draws_by_q, seed_spec=None):
    """A detection result of two images with stored AP draws per point."""
    r = results.new_result(codec, {"seed": codec[-1]}, "clip", "detection", 2)
    r["bootstrap"] = seed_spec or spec(["f0.png", "f1.png"], 3)
    r["per_image"] = {n: [{"quality": q, "bpp": b, "psnr": 30.0 + q} for q, b in zip((1, 2), bpps)]
                      for n in ("f0.png", "f1.png")}
    r["points"] = [{"quality": q, "bpp": b, "bytes": int(b * 1000), "box_ap": ap, "ap": ap,
                    "bootstrap": {"box_ap": d}} for q, b, ap, d in zip((1, 2), bpps, aps, draws_by_q)]
    return r


def test_the_mean_of_seeds_averages_points_images_and_draws():
    a = _ap_run("nerv:seed=0", [0.1, 0.2], [40.0, 60.0], [[40.0, 30.0, None], [60.0, 50.0, 70.0]])
    b = _ap_run("nerv:seed=1", [0.3, 0.4], [20.0, 80.0], [[20.0, 10.0, 5.0], [80.0, 70.0, 90.0]])
    m = results.mean_of_runs([a, b])
    assert m["codec"] == "nerv (mean of 2 runs)"
    assert results._common_name(["nerv:epochs=150", "nerv:epochs=150,seed=1"]) == "nerv:epochs=150"
    assert results._common_name(["nerv:seed=1", "sa-nerv:seed=1"]) == "nerv:seed=1 | sa-nerv:seed=1"
    assert [p["bpp"] for p in m["points"]] == pytest.approx([0.2, 0.3])
    assert [p["ap"] for p in m["points"]] == pytest.approx([30.0, 70.0])
    assert [p["bytes"] for p in m["points"]] == pytest.approx([200.0, 300.0])
    # draw by draw; a draw where one run had no AP has none in the mean
    assert m["points"][0]["bootstrap"]["box_ap"][:2] == pytest.approx([30.0, 20.0])
    assert m["points"][0]["bootstrap"]["box_ap"][2] is None
    assert m["points"][1]["bootstrap"]["box_ap"] == pytest.approx([70.0, 60.0, 80.0])
    assert m["per_image"]["f1.png"][1]["bpp"] == pytest.approx(0.3)
    assert m["per_image"]["f1.png"][1]["psnr"] == pytest.approx(32.0)
    assert [c["codec"] for c in m["codec_config"]["mean_of"]] == ["nerv:seed=0", "nerv:seed=1"]
    assert a["points"][0]["ap"] == 40.0  # the inputs are not modified
    # the mean pairs with another codec measured on the same draws
    ci = bd_rate_ci(m, a, "ap")
    assert ci.draws > 0


def test_resampling_the_runs_widens_draws_by_the_seed_spread_and_pairs_two_codecs():
    draws = [[10.0, 20.0, 30.0], [40.0, 50.0, 60.0]]
    a = _ap_run("nerv:seed=0", [0.1, 0.2], [40.0, 60.0], draws)
    same = _ap_run("nerv:seed=1", [0.1, 0.2], [40.0, 60.0], draws)
    # identical runs: any resample of them gives their draws
    m = results.mean_of_runs([a, same], resample_runs=True)
    assert m["points"][0]["bootstrap"]["box_ap"] == pytest.approx(draws[0])
    assert m["codec"] == "nerv (mean of 2 runs, runs resampled)"
    # runs 0 and 100 AP apart: each draw is the mean of a resample, so 0, 50 or 100 above the first run's draw
    far = _ap_run("nerv:seed=1", [0.1, 0.2], [140.0, 160.0], [[110.0, 120.0, 130.0], [140.0, 150.0, 160.0]])
    m = results.mean_of_runs([a, far], resample_runs=True)
    shifts = [d - base for d, base in zip(m["points"][0]["bootstrap"]["box_ap"], draws[0])]
    assert all(s in (0.0, 50.0, 100.0) for s in shifts)
    assert shifts == [100.0, 100.0, 50.0]  # the fixed resamples: runs (1, 1), (1, 1), (1, 0)
    assert m["points"][0]["ap"] == pytest.approx(90.0)  # the points stay the plain means
    # fixed resamples: another codec averaged the same way draws the same runs
    picks = results.mean_of_runs([a, far], resample_runs=True)["points"][1]["bootstrap"]["box_ap"]
    assert picks == m["points"][1]["bootstrap"]["box_ap"]
    assert [d - base for d, base in zip(picks, draws[1])] == shifts  # the same resample at every point of a draw
    without = results.mean_of_runs([a, far])
    assert without["points"][0]["bootstrap"]["box_ap"] == pytest.approx([60.0, 70.0, 80.0])


def test_runs_of_different_measurements_are_not_averaged():
    a = _ap_run("nerv:seed=0", [0.1, 0.2], [40.0, 60.0], [[1.0] * 3, [2.0] * 3])
    other_draws = _ap_run("nerv:seed=1", [0.1, 0.2], [40.0, 60.0], [[1.0] * 3, [2.0] * 3],
                          seed_spec=spec(["f0.png", "f1.png"], 3, seed=7))
    with pytest.raises(SaicmError, match="differ in bootstrap"):
        results.mean_of_runs([a, other_draws])
    one_point = _ap_run("nerv:seed=2", [0.1, 0.2], [40.0, 60.0], [[1.0] * 3, [2.0] * 3])
    one_point["points"] = one_point["points"][:1]
    with pytest.raises(SaicmError, match="different rate points"):
        results.mean_of_runs([a, one_point])
    with pytest.raises(SaicmError, match="at least two"):
        results.mean_of_runs([a])
    # the same clip named by another path is one measurement; another clip or frame range is not
    moved = _ap_run("nerv:seed=3", [0.1, 0.2], [40.0, 60.0], [[1.0] * 3, [2.0] * 3])
    a["dataset"], moved["dataset"] = "../data/video/clip.avi#0:30@384x288", "/work/data/video/clip.avi#0:30@384x288"
    a["task_model"], moved["task_model"] = "yolox:../models/yolox_nano.onnx", "yolox:/work/models/yolox_nano.onnx"
    assert results.mean_of_runs([a, moved])["dataset"] == a["dataset"]
    for other in ("/work/data/video/clip2.avi#0:30@384x288", "/work/data/video/clip.avi#0:60@384x288"):
        moved["dataset"] = other
        with pytest.raises(SaicmError, match="differ in dataset"):
            results.mean_of_runs([a, moved])
    moved["dataset"], moved["task_model"] = a["dataset"], "picodet:/work/models/picodet_s_416_coco.onnx"
    with pytest.raises(SaicmError, match="differ in task_model"):
        results.mean_of_runs([a, moved])
