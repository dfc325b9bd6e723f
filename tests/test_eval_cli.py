"""Results files → BD-rate table and plots, through the CLI."""

import json

from saicm.cli import main
from saicm.eval import results


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


def test_non_monotone_is_reported(tmp_path, capsys):
    a = write_result(tmp_path / "a.json", "anchor", [(0.2, 30), (0.4, 33), (0.8, 36)])
    b = write_result(tmp_path / "b.json", "bumpy", [(0.2, 30), (0.3, 34), (0.4, 33), (0.8, 36)])
    main(["bdrate", str(a), str(b)])
    assert "dropped non-monotone points: 1" in capsys.readouterr().out
    main(["bdrate", str(a), str(b), "--strict"])
    assert "not monotone" in capsys.readouterr().out


def test_plot_writes_png_and_svg(tmp_path):
    a = write_result(tmp_path / "a.json", "anchor", [(0.2, 30), (0.4, 33), (0.8, 36)])
    assert main(["plot", str(a), "--metric", "psnr", "-o", str(tmp_path / "curves")]) == 0
    png = (tmp_path / "curves.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and b"<svg" in (tmp_path / "curves.svg").read_bytes()


def test_bad_results_file_is_one_line_error(tmp_path, capsys):
    bad = tmp_path / "bad.json"
    bad.write_text("{}")
    assert main(["bdrate", str(bad), str(bad)]) == 2
    assert "not a saicm-results/1 file" in capsys.readouterr().err


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
