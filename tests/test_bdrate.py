import math

import pytest

from saicm.errors import SaicmError
from saicm.eval.bdrate import BDRateError, bd_rate


def test_same_curve_is_zero():
    r, m = [0.1, 0.2, 0.4, 0.8], [28, 31, 34, 37]
    assert bd_rate(r, m, r, m).percent == pytest.approx(0.0, abs=1e-9)


def test_half_the_rate_everywhere_is_minus_50_percent():
    r, m = [0.1, 0.2, 0.4, 0.8], [28, 31, 34, 37]
    res = bd_rate(r, m, [x / 2 for x in r], m)
    assert res.percent == pytest.approx(-50.0, abs=1e-9)
    assert res.interval == (28, 37)


def test_known_shift_on_a_log_linear_curve():
    # metric = 10·log10(rate)+c: +1 dB at the same rate = rate × 10^(-0.1) at the same metric.
    rates = [0.1, 0.2, 0.4, 0.8, 1.6]
    ref = [10 * math.log10(x) + 40 for x in rates]
    test = [v + 1 for v in ref]
    assert bd_rate(rates, ref, rates, test).percent == pytest.approx((10 ** -0.1 - 1) * 100, abs=1e-6)


def test_only_the_overlap_counts():
    res = bd_rate([0.1, 0.2, 0.4], [30, 32, 34], [0.1, 0.2, 0.4], [33, 35, 37])
    assert res.interval == (33, 34)
    assert res.coverage == (0.25, 0.25)


def test_no_overlap_and_not_monotone_are_reported():
    with pytest.raises(SaicmError, match="do not overlap"):  # (the one type an API caller catches)
        bd_rate([0.1, 0.2], [20, 21], [0.1, 0.2], [30, 31])
    with pytest.raises(BDRateError, match="not monotone"):
        bd_rate([0.1, 0.2, 0.3], [20, 22, 21], [0.1, 0.2], [20, 22], envelope=False)
    # the default is the envelope, as the command line and bd_rate_ci (it was strict here alone)
    assert bd_rate([0.1, 0.2, 0.3], [20, 22, 21], [0.1, 0.2], [20, 22]).dropped == (("reference", 0.3, 21),)
    with pytest.raises(BDRateError, match="at least 2"):
        bd_rate([0.1], [20], [0.1, 0.2], [20, 22])


def test_envelope_drops_dominated_points_and_says_which():
    ref_r, ref_m = [0.1, 0.2, 0.3, 0.4], [30, 33, 32, 35]  # the 0.3 point is dominated
    res = bd_rate(ref_r, ref_m, ref_r, ref_m, envelope=True)
    assert res.percent == pytest.approx(0.0, abs=1e-9)
    assert ("reference", 0.3, 32) in res.dropped and ("test", 0.3, 32) in res.dropped


def test_a_point_at_the_same_rate_with_a_lower_value_is_dominated():
    # the envelope kept (0.1, 30) beside (0.1, 31), and --strict accepted it: a flat step of the interpolant
    # (metrics audit, 0.20.0)
    res = bd_rate([0.1, 0.1, 0.4], [30, 31, 34], [0.1, 0.4], [31, 34], envelope=True)
    assert res.dropped == (("reference", 0.1, 30),) and res.percent == pytest.approx(0.0, abs=1e-9)
    with pytest.raises(BDRateError, match="same rate"):
        bd_rate([0.1, 0.1, 0.4], [30, 31, 34], [0.1, 0.4], [31, 34], envelope=False)


def test_interval_restricts_the_integration_to_a_known_value():
    # test log-rate = ref log-rate + 0.01·m: the mean difference over [lo, hi] is 0.01·(lo+hi)/2 exactly
    m = [28.0, 30.0, 32.0, 34.0, 36.0]
    ref = [math.exp(0.1 * v) for v in m]
    test = [math.exp(0.11 * v) for v in m]
    full = bd_rate(ref, m, test, m)
    assert full.percent == pytest.approx((math.exp(0.01 * 32) - 1) * 100, abs=1e-6)
    part = bd_rate(ref, m, test, m, interval=(30, 33))
    assert part.interval == (30, 33)
    assert part.percent == pytest.approx((math.exp(0.01 * 31.5) - 1) * 100, abs=1e-6)
    assert bd_rate(ref, m, test, m, interval=(0, 99)).interval == (28, 36)  # clipped to the overlap
    with pytest.raises(BDRateError, match="do not intersect"):
        bd_rate(ref, m, test, m, interval=(40, 50))


def _results(tmp_path, name, **changes):
    import json

    d = {"schema": "saicm-results/1", "codec": name, "points": [
        {"quality": q, "bpp": 0.1 * q, "psnr": 28.0 + 2 * q} for q in (1, 2, 3, 4)]}
    d.update(changes)
    p = tmp_path / f"{name}.json"
    p.write_text(json.dumps(d))
    return p


def test_a_point_not_measured_is_left_out_of_curves_and_bd_rates(tmp_path):
    """An exact decode's PSNR is written null (documented: skipped by plots and BD-rates); bdrate and plot refused
    the whole file instead."""
    from saicm.eval import results
    from saicm.cli import main

    pts = [{"quality": q, "bpp": 0.1 * q, "psnr": 28.0 + 2 * q} for q in (1, 2, 3)] + [
        {"quality": 4, "bpp": 0.4, "psnr": None}]
    p = _results(tmp_path, "withnull", points=pts)
    assert results.curve(results.load(p), "psnr") == ([0.1, 0.2, 0.30000000000000004], [30.0, 32.0, 34.0])
    assert main(["bdrate", str(_results(tmp_path, "anchor")), str(p)]) == 0
    assert main(["plot", str(_results(tmp_path, "anchor")), str(p), "--metric", "psnr",
                 "-o", str(tmp_path / "x.png")]) == 0


@pytest.mark.parametrize("changes, what", [
    ({"reference": "x"}, "reference"),
    ({"per_image": {"a.png": "garbage"}}, "per_image"),
    ({"per_image": {"a.png": [{"bpp": 0.1}]}}, "per_image"),
    ({"points": [{"bpp": 0.1, "psnr": 30}], "per_image": {"a.png": [{"quality": 1, "bpp": 0.1}]}}, "by quality"),
    ({"points": [{"bpp": 0.0, "psnr": 30}]}, "positive, finite bpp"),
    ({"points": [{"bpp": float("nan"), "psnr": 30}]}, "positive, finite bpp"),
    ({"points": [{"bpp": 0.1, "quality": 0.5}], "per_image": {"a.png": [{"quality": 1, "bpp": 0.1}]}},
     "whole-number"),
])
def test_malformed_results_are_refused_when_read(tmp_path, changes, what):
    """(A float quality, e.g. a JPEG XL distance, and a null reference stay valid: test below.)"""
    """A hand-written results file with a string reference or per-image entries without a quality gave tracebacks
    in plot, report and bdrate --ci."""
    from saicm.errors import SaicmError
    from saicm.eval import results

    with pytest.raises(SaicmError, match=what):
        results.load(_results(tmp_path, "bad", **changes))


def test_other_tools_qualities_and_a_null_reference_stay_valid(tmp_path):
    from saicm.eval import results

    pts = [{"quality": 0.5 * q, "bpp": 0.1 * q, "psnr": 28.0 + 2 * q} for q in (1, 2, 3)]
    r = results.load(_results(tmp_path, "jxl", points=pts, reference=None))
    assert r["reference"] == {} and results.curve(r, "psnr")[1] == [30.0, 32.0, 34.0]


def test_compressai_eval_json_is_read_by_bdrate_and_plot(tmp_path, capsys):
    """CompressAI's eval JSON (python -m compressai.utils.eval_model ... -o FILE: lists under "results", one value
    per rate point) was refused as "not a saicm-results/1 file"; bdrate and plot read it as a PSNR curve named by
    its "name"."""
    import json

    from saicm.cli import main
    from saicm.errors import SaicmError
    from saicm.eval import results

    cai = tmp_path / "mbt2018-mean-ans.json"
    cai.write_text(json.dumps({"name": "mbt2018-mean-mse", "description": "Inference (ans)", "results": {
        "psnr-rgb": [34.0, 30.0, 32.0], "ms-ssim-rgb": [0.98, 0.95, 0.97], "bpp": [0.4, 0.1, 0.2],
        "encoding_time": [0.1, 0.1, 0.1], "decoding_time": [0.2, 0.2, 0.2]}}))
    r = results.load(cai)
    assert r["codec"] == "mbt2018-mean-mse" and r["task"] == "psnr"
    assert results.curve(r, "psnr") == ([0.1, 0.2, 0.4], [30.0, 32.0, 34.0])
    assert results.curve(r, "ms_ssim")[1] == [0.95, 0.97, 0.98]
    assert main(["bdrate", str(_results(tmp_path, "anchor")), str(cai)]) == 0
    assert "mbt2018-mean-mse" in capsys.readouterr().out
    assert main(["plot", str(cai), str(_results(tmp_path, "anchor")), "--metric", "psnr",
                 "-o", str(tmp_path / "x.png")]) == 0
    bad = tmp_path / "short.json"
    bad.write_text(json.dumps({"name": "x", "results": {"bpp": [0.1, 0.2], "psnr-rgb": [30.0]}}))
    with pytest.raises(SaicmError, match="psnr-rgb"):
        results.load(bad)


def test_compressai_eval_json_without_a_name_or_points(tmp_path):
    """(Mutation audit: naming the curve by a missing "name", accepting no rate point, each passed.) A CompressAI
    file without a name is named by its file; one without points is refused, not an empty curve."""
    import json

    from saicm.errors import SaicmError
    from saicm.eval import results

    for name in ({}, {"name": ""}):
        f = tmp_path / "bmshj2018.json"
        f.write_text(json.dumps({**name, "results": {"bpp": [0.2, 0.1], "psnr": [31.0, 29.0]}}))
        r = results.load(f)
        assert r["codec"] == "bmshj2018" and [p["bpp"] for p in r["points"]] == [0.1, 0.2]
    f.write_text(json.dumps({"name": "x", "results": {"bpp": [], "psnr-rgb": []}}))
    with pytest.raises(SaicmError, match=r"corrupt CompressAI results \(bpp: not a list"):
        results.load(f)
    # both an RGB and another PSNR (older CompressAI files, or a hand merge): the RGB one, whatever the order
    for keys in (("psnr", "psnr-rgb"), ("psnr-rgb", "psnr")):
        f.write_text(json.dumps({"name": "x", "results": {"bpp": [0.1], **{k: [40.0 if k == "psnr-rgb" else 1.0]
                                                                              for k in keys}}}))
        assert results.load(f)["points"][0]["psnr"] == 40.0


def test_compressai_rates_from_entropy_estimation_are_not_called_file_sizes(tmp_path, capsys):
    """CompressAI's eval_model --entropy-estimation writes the entropy model's estimate of the bits, and its
    description says "Inference (entropy estimation)": bdrate compared it with coded files' bits and said nothing,
    and the report page said "Rates are from real file sizes" of it."""
    import json
    import warnings

    from saicm.cli import main
    from saicm.eval import results
    from saicm.eval.report import build_report

    est = tmp_path / "est.json"
    est.write_text(json.dumps({"name": "mbt-est", "description": "Inference (entropy estimation)", "results": {
        "psnr-rgb": [30.0, 32.0, 34.0], "bpp": [0.1, 0.2, 0.4]}}))
    coded = tmp_path / "coded.json"
    coded.write_text(json.dumps({"name": "mbt-ans", "description": "Inference (ans)", "results": {
        "psnr-rgb": [30.0, 32.0, 34.0], "bpp": [0.11, 0.21, 0.41]}}))
    anchor = _results(tmp_path, "anchor")
    assert main(["bdrate", str(anchor), str(est), str(coded)]) == 0
    out = capsys.readouterr().out.splitlines()
    said = "its rates estimated by CompressAI's entropy model (eval_model --entropy-estimation), not coded"
    assert f"[WARNING: {said}: not comparable]" in out[1] and "WARNING" not in out[2]
    assert main(["bdrate", str(est), str(coded)]) == 0
    assert "the anchor's rates estimated" in capsys.readouterr().out
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert main(["plot", str(anchor), str(est), "-o", str(tmp_path / "p")]) == 0
    assert any("est.json: mbt-est: rates estimated" in str(w.message) for w in caught) \
        or "est.json: mbt-est: rates estimated" in capsys.readouterr().err
    page = build_report([results.load(f) for f in (anchor, est, coded)], tmp_path / "r.html").read_text()
    assert "Rates are from real file sizes, except those of mbt-est: rates estimated" in page
    page = build_report([results.load(f) for f in (anchor, coded)], tmp_path / "r.html").read_text()
    assert "Rates are from real file sizes. " in page and "estimated" not in page


def test_dropped_points_name_four_and_count_the_rest():
    """The words for dropped points name the first four and count the others (mutation testing found the cut
    unasserted: a curve of many dropped points made a row as long as the file)."""
    from saicm.eval.bdrate import dropped_points

    four = [("reference", 0.1 * i, 30.0 + i) for i in range(1, 5)]
    assert dropped_points(four) == ("the anchor's at 0.1000 bpp (31), the anchor's at 0.2000 bpp (32), the anchor's "
                                    "at 0.3000 bpp (33), the anchor's at 0.4000 bpp (34)")
    six = four + [("test", 0.5, 35.5), ("test", 0.6, 36.0)]
    assert dropped_points(six) == dropped_points(four) + " and 2 more"
