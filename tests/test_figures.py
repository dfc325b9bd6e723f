"""What a reader of the figures and the HTML report needs: curves told apart without colour, legends that say
what each line is, a page a screen reader can use."""

import re

import pytest

pytest.importorskip("matplotlib")

from saicm.eval import results  # noqa: E402
from saicm.eval.plots import curves_figure  # noqa: E402


def _res(codec, points, metric="psnr", **extra):
    r = results.new_result(codec, {}, "synthetic", "psnr", 3)
    r["points"] = [{"quality": i, "bpp": b, metric: m, **extra} for i, (b, m) in enumerate(points)]
    return r


def _curves(fig):
    return [ln for ln in fig.axes[0].get_lines() if ln.get_marker() not in (None, "None", "")]


def _close(fig):
    import matplotlib.pyplot as plt

    plt.close(fig)


def test_curves_differ_in_marker_and_line_style_not_only_colour():
    """Every curve was a solid line with round markers told apart by colour alone: in grayscale or to a red-green
    colour-blind reader two of three curves looked the same, and from the 11th curve on colours repeated, so two
    curves were identical even in colour."""
    runs = [_res(f"codec{i}", [(0.1 * (i + 1), 30), (0.2 * (i + 1), 33)]) for i in range(12)]
    fig = curves_figure(runs, "psnr")
    try:
        lines = _curves(fig)
        assert len(lines) == 12
        shapes = {(ln.get_marker(), str(ln.get_linestyle())) for ln in lines}
        assert len(shapes) == 12  # without colour: marker and line style tell each curve apart
    finally:
        _close(fig)


def _legend_texts(fig):
    return [t.get_text() for t in fig.axes[0].get_legend().get_texts()]


@pytest.mark.parametrize("name", ["a$^$b", "cost $5 and $10", "_scratch-model", "<script> & co"])
def test_codec_names_are_shown_as_written(name):
    """A codec name with two dollar signs was typeset as mathematics, one with an unbalanced one ('a$^$b') made
    `saicm plot` fail with a matplotlib traceback, and a name starting with '_' (a model file '_scratch.pt') was
    left out of the legend while its curve was drawn."""
    fig = curves_figure([_res("jpeg", [(0.2, 30), (0.4, 33)]), _res(name, [(0.1, 30), (0.2, 33)])], "psnr",
                        title=f"{name} vs jpeg")
    try:
        fig.canvas.draw()
        assert _legend_texts(fig)[:2] == ["jpeg", name]
        texts = [t for t in fig.findobj(lambda a: hasattr(a, "get_parse_math")) if t.get_text()]
        assert all(not t.get_parse_math() for t in texts if "$" in t.get_text())
    finally:
        _close(fig)


def test_the_uncompressed_reference_is_in_the_legend():
    """The dotted line of the task's score on the uncompressed images was drawn once per results file and named
    nowhere: a reader could not tell what it was."""
    runs = [_res(c, [(0.2 * k, 30), (0.4 * k, 33)], "ap") for k, c in enumerate(("jpeg", "webp", "mine"), 1)]
    for r in runs:
        r["reference"] = {"ap": 34.0}
    fig = curves_figure(runs, "ap")
    try:
        refs = [ln for ln in fig.axes[0].get_lines() if ln not in _curves(fig)]
        assert len(refs) == 1
        assert _legend_texts(fig) == ["jpeg", "webp", "mine", "uncompressed images"]
    finally:
        _close(fig)
    runs[2]["reference"] = {"ap": 30.0}  # (another task model or dataset: each line says whose it is)
    fig = curves_figure(runs, "ap")
    try:
        assert _legend_texts(fig)[3:] == ["jpeg, webp: uncompressed", "mine: uncompressed"]
    finally:
        _close(fig)


@pytest.mark.parametrize("names", [[f"codec-{i}" for i in range(12)],
                                   ["jpeg", "saicm:/home/someone/experiments/2026-11/regions-a048-off02-n64-v5-seed1-"
                                    "finetuned-on-coco.pt,beta=0.3,width=3"]])
def test_a_long_legend_goes_beside_the_axes_not_over_the_curves(names):
    """With 12 codecs the legend covered a third of the axes and the curves under it; a long codec name (a model
    given by its path) made the legend wider than the figure: cut off, the axes squeezed into a strip under it."""
    runs = [_res(n, [(0.1 * (i + 1), 30 + i), (0.2 * (i + 1), 33 + i)]) for i, n in enumerate(names)]
    fig = curves_figure(runs, "psnr")
    try:
        fig.canvas.draw()
        r = fig.canvas.get_renderer()
        ax, leg = fig.axes[0].get_window_extent(r), fig.axes[0].get_legend().get_window_extent(r)
        page = fig.bbox
        assert not ax.overlaps(leg)
        assert page.x0 <= leg.x0 and leg.x1 <= page.x1 and page.y0 <= leg.y0 and leg.y1 <= page.y1
        assert ax.width >= 0.6 * 6.4 * fig.dpi * 0.8  # the axes keep most of their width
        assert [t.replace("\n", "") for t in _legend_texts(fig)] == names  # wrapped, nothing cut
    finally:
        _close(fig)


def test_a_file_that_measured_the_metric_nowhere_is_left_out(tmp_path, capsys):
    """MS-SSIM is null (not measured) at every point of a results file of small images: `saicm plot --metric
    ms_ssim` and `saicm report --metrics ms_ssim` with that file among others failed ("was not measured at any
    point") instead of leaving it out, as a file without the metric is."""
    from saicm.cli import main

    a, b = _res("jpeg", [(0.2, 0.9), (0.4, 0.95)], "ms_ssim"), _res("tiny", [(0.1, None), (0.2, None)], "ms_ssim")
    for r, name in ((a, "a.json"), (b, "b.json")):
        results.save(r, tmp_path / name)
    files = [str(tmp_path / "a.json"), str(tmp_path / "b.json")]
    assert main(["plot", *files, "--metric", "ms_ssim", "-o", str(tmp_path / "c")]) == 0
    assert main(["report", *files, "--metrics", "ms_ssim", "-o", str(tmp_path / "r.html")]) == 0
    assert "not measured at any point" in (tmp_path / "r.html").read_text()  # (its BD-rate row says why: n/a)
    capsys.readouterr()
    assert main(["plot", files[1], "--metric", "ms_ssim", "-o", str(tmp_path / "d")]) == 2
    assert "ms_ssim" in capsys.readouterr().err and not list(tmp_path.glob("d.*"))


@pytest.mark.parametrize("metric, label", [("box_ap", "box AP (%)"), ("box_ap50", "box AP50 (%)"),
                                           ("mask_ap50", "mask AP50 (%)")])
def test_every_ap_in_results_files_has_its_unit_on_the_axis(metric, label):
    """box_ap, box_ap50 and mask_ap50 (in every detection and instance results file) were plotted with the bare key as
    the axis label: no unit, and not the words of the other AP axes."""
    fig = curves_figure([_res("jpeg", [(0.2, 30), (0.4, 33)], metric)], metric)
    try:
        assert fig.axes[0].get_ylabel() == label
    finally:
        _close(fig)


def test_ap_against_pseudo_ground_truth_says_so():
    """AP against pseudo ground truth (the detector's own detections on the originals: no labels) was plotted as
    "AP (%)", like AP against official labels, and the two on one plot looked comparable; the code says they must
    not be compared."""
    pseudo = _res("hnerv", [(0.1, 60), (0.3, 80)], "ap", ground_truth="pseudo")
    official = _res("jpeg", [(0.2, 30), (0.4, 33)], "ap", ground_truth="official")
    fig = curves_figure([pseudo], "ap")
    try:
        assert fig.axes[0].get_ylabel() == "AP (%) against pseudo ground truth"
    finally:
        _close(fig)
    fig = curves_figure([official, pseudo], "ap")
    try:
        assert fig.axes[0].get_ylabel() == "AP (%)"
        assert _legend_texts(fig) == ["jpeg", "hnerv (pseudo ground truth)"]
    finally:
        _close(fig)
    fig = curves_figure([_res("hnerv", [(0.1, 30), (0.3, 33)], "psnr", ground_truth="pseudo")], "psnr")
    try:
        assert fig.axes[0].get_ylabel() == "PSNR (dB)"  # (PSNR has no ground truth)
    finally:
        _close(fig)


def test_the_reports_curves_name_the_bd_rate_anchor(tmp_path):
    """The report's BD-rate tables are against its first results file, but its plots did not say which curve that
    was."""
    runs = [_res("jpeg", [(0.2, 30), (0.4, 33)]), _res("webp", [(0.1, 30), (0.2, 33)])]
    fig = curves_figure(runs, "psnr", anchor=runs[0])
    try:
        assert _legend_texts(fig) == ["jpeg (BD-rate anchor)", "webp"]
    finally:
        _close(fig)
    from saicm.eval.report import build_report

    out = build_report(runs, tmp_path / "r.html")
    assert "jpeg (BD-rate anchor)" in out.read_text()  # (in the SVG: the legend's text, as a comment)


def _page_structure(page):
    from html.parser import HTMLParser

    class P(HTMLParser):
        def __init__(self):
            super().__init__()
            self.tags, self.stack, self.svg_titles = [], [], 0

        def handle_starttag(self, tag, attrs):
            self.tags.append((tag, dict(attrs)))
            if tag == "title" and self.stack and self.stack[-1] == "svg":
                self.svg_titles += 1
            self.stack.append(tag)

        def handle_endtag(self, tag):
            while self.stack and self.stack.pop() != tag:
                pass

    p = P()
    p.feed(page)
    return p


def test_the_report_can_be_read_with_a_screen_reader(tmp_path):
    """The crops had no alt text; each plot was an SVG of glyph outlines with no role or title, so a screen reader
    read nothing, or a stream of unnamed shapes, and the values plotted were nowhere in text; the page named no
    language."""
    from PIL import Image

    from saicm.eval.report import build_report

    runs = [_res("jpeg", [(0.2, 30.5), (0.4, 33.25)]), _res("webp", [(0.1, 30), (0.2, 33)])]
    crops = [("original: a.png", Image.new("RGB", (8, 8))), ("webp q30: 0.25 bpp", Image.new("RGB", (8, 8)))]
    page = build_report(runs, tmp_path / "r.html", metrics=("psnr",), crops=crops).read_text()
    p = _page_structure(page)
    assert ("html", {"lang": "en"}) in p.tags
    imgs = [a for t, a in p.tags if t == "img"]
    assert [a.get("alt") for a in imgs] == ["original: a.png", "webp q30: 0.25 bpp"]
    svgs = [a for t, a in p.tags if t == "svg"]
    assert svgs and all(a.get("role") == "img" and a.get("aria-labelledby") for a in svgs)
    assert p.svg_titles == len(svgs)
    assert "PSNR (dB) against bits per pixel" in page
    # the plotted values, as a table a screen reader can walk
    assert "<caption>" in page and "0.4000" in page and "33.25" in page
    # every table (BD-rates, values, runs) is named by a caption and its headers are column headers
    assert page.count("<table>") == page.count("<table><caption>") == 3
    assert "<th>" not in page and page.count("<th scope=col>") == 3 + 3 + 6


def test_the_reports_plots_share_no_element_ids(tmp_path):
    """Each inline SVG defined the same ids (figure_1, axes_1, the glyphs DejaVuSans-30, ...): with two metrics a
    page had some 140 duplicate ids, invalid HTML, each plot's references resolved by whichever came first."""
    import re
    from collections import Counter

    from saicm.eval.report import build_report

    runs = [_res("jpeg", [(0.2, 30), (0.4, 33)]), _res("webp", [(0.1, 30), (0.2, 33)])]
    for r in runs:
        for p in r["points"]:
            p["ms_ssim"] = p["psnr"] / 40
    page = build_report(runs, tmp_path / "r.html", metrics=("psnr", "ms_ssim")).read_text()
    ids = Counter(re.findall(r'\bid="([^"]+)"', page))
    assert ids and not [k for k, n in ids.items() if n > 1]
    for svg in re.findall(r"<svg.*?</svg>", page, flags=re.S):  # every reference resolves within its own plot
        own = set(re.findall(r'\bid="([^"]+)"', svg))
        refs = set(re.findall(r'href="#([^"]+)"', svg)) | set(re.findall(r"url\(#([^)]+)\)", svg))
        assert refs and refs <= own


def test_the_crops_say_which_image_they_are():
    """The crops' first panel was captioned "original": the page named the image it showed nowhere."""
    from PIL import Image

    from saicm.eval.report import matched_rate_crops

    panels = matched_rate_crops([], {"cat.png": Image.new("RGB", (8, 8))}, "cat.png", 0.25, get_codec=None)
    assert panels[0][0] == "original: cat.png"


def test_a_report_of_one_results_file_says_there_is_no_bd_rate(tmp_path):
    """A report of one results file had, beside its plot, a BD-rate table of headers and no rows."""
    from saicm.eval.report import build_report

    page = build_report([_res("jpeg", [(0.2, 30.5), (0.4, 33)])], tmp_path / "r.html").read_text()
    assert "BD-rate needs a second results file" in page and "codec vs jpeg" not in page
    assert "<td class=num>30.50</td>" in page and "<td class=num>33.00</td>" in page  # (were 30.5 and 33)


def test_a_report_of_a_metric_that_is_not_a_score_gives_no_bd_rate(tmp_path):
    """`saicm report --metrics quality` (or encode_s) plotted it and set a BD-rate beside it, a number without
    meaning (`saicm bdrate` refuses such a metric since 0.30.0); the plot stays, the table says why there is none."""
    from saicm.eval.report import build_report

    runs = [_res("jpeg", [(0.2, 30.5), (0.4, 33.25)], encode_s=0.1), _res("webp", [(0.1, 30), (0.2, 33)], encode_s=0.2)]
    page = build_report(runs, tmp_path / "r.html", metrics=["psnr", "encode_s"]).read_text()
    assert page.count("No BD-rate: encode_s is not a score.") == 1 and page.count("codec vs jpeg") == 1


def test_a_report_naming_a_file_name_that_is_not_utf8_is_written(tmp_path):
    """An image or dataset name that is not UTF-8 (Latin-1 bytes; any non-ASCII name in an ASCII locale) holds
    Python's surrogate escapes: writing the page raised UnicodeEncodeError after all its work (`saicm report
    --image` of such a file), and nothing was written. Bytes that are UTF-8 show as their characters, others as
    \\xNN."""
    from PIL import Image

    from saicm.eval.report import build_report

    runs = [_res("jpeg", [(0.2, 30.5), (0.4, 33.25)]), _res("webp", [(0.1, 30), (0.2, 33)])]
    for r in runs:
        r["dataset"] = "photos/caf\udce9"
    crops = [("original: caf\udce9.png", Image.new("RGB", (8, 8))),
             ("original: na\udcc3\udcafve.png", Image.new("RGB", (8, 8)))]
    page = build_report(runs, tmp_path / "r.html", crops=crops).read_bytes().decode("utf-8")
    assert "original: caf\\xe9.png" in page and "original: na\u00efve.png" in page and "photos/caf\\xe9" in page


def test_plots_ignore_the_users_matplotlibrc(tmp_path, monkeypatch):
    """A matplotlibrc with ``text.usetex: True`` (common among those who write papers) sent every label through
    LaTeX: `saicm plot` and `saicm report` ended in a traceback without a LaTeX install, and a codec name with
    ``_`` fails in LaTeX with one. The figures are drawn in matplotlib's defaults."""
    import matplotlib

    from saicm.eval.plots import plot_curves
    from saicm.eval.report import build_report

    monkeypatch.setitem(matplotlib.rcParams, "text.usetex", True)
    monkeypatch.setitem(matplotlib.rcParams, "axes.formatter.use_locale", True)
    runs = [_res("my_codec", [(0.2, 30.5), (0.4, 33.25)]), _res("webp", [(0.1, 30), (0.2, 33)])]
    png, svg = plot_curves(runs, "psnr", tmp_path / "c")
    assert png.stat().st_size > 0 and "my_codec" in svg.read_text()
    assert "my_codec" in build_report(runs, tmp_path / "r.html").read_text()
    assert matplotlib.rcParams["text.usetex"]  # (the user's settings are theirs again afterwards)


def test_pseudo_ground_truth_curves_only_say_so_when_mixed_with_official_ones():
    """All curves against pseudo ground truth: the axis says it once, the legend names the codecs alone; only points
    that measured the metric say what it was scored against (mutation audit: neither was checked)."""
    from saicm.eval.plots import pseudo_ground_truth

    a = _res("hnerv", [(0.1, 60), (0.3, 80)], "ap", ground_truth="pseudo")
    b = _res("nerv", [(0.1, 50), (0.3, 70)], "ap", ground_truth="pseudo")
    fig = curves_figure([a, b], "ap")
    try:
        assert fig.axes[0].get_ylabel() == "AP (%) against pseudo ground truth"
        assert _legend_texts(fig) == ["hnerv", "nerv"]
    finally:
        _close(fig)
    c = _res("jpeg", [(0.2, 30), (0.4, 33)], "ap", ground_truth="official")
    c["points"].append({"quality": 9, "bpp": 0.5, "ap": None, "ground_truth": "pseudo"})  # (not measured there)
    assert not pseudo_ground_truth(c, "ap") and pseudo_ground_truth(a, "ap")


def test_a_legend_of_five_entries_stays_inside_and_of_six_goes_beside():
    """LEGEND_INSIDE_MAX is the bound, both ways (mutation audit: moving it by one was not caught); a codec name
    just over LEGEND_WRAP characters is wrapped."""
    from saicm.eval.plots import LEGEND_INSIDE_MAX, LEGEND_WRAP

    for n, beside in ((LEGEND_INSIDE_MAX, False), (LEGEND_INSIDE_MAX + 1, True)):
        runs = [_res(f"c{i}", [(0.1 * (i + 1), 30), (0.2 * (i + 1), 33)]) for i in range(n)]
        fig = curves_figure(runs, "psnr")
        try:
            assert (fig.get_size_inches()[0] > 6.4) == beside, n  # (widened for a legend beside the axes)
        finally:
            _close(fig)
    name = "x" * (LEGEND_WRAP + 4)
    fig = curves_figure([_res(name[:20] + " " + name[20:], [(0.1, 30), (0.2, 33)])], "psnr")
    try:
        assert "\n" in _legend_texts(fig)[0]
    finally:
        _close(fig)


def test_each_uncompressed_line_is_drawn_in_its_curves_colour_when_there_are_several():
    """One reference value: a grey line; several (other task models): each in the colour of the first curve it
    belongs to, as its legend entry says (mutation audit: the colour was not checked)."""
    from matplotlib.colors import to_hex

    from saicm.eval.plots import curve_style

    runs = [_res(c, [(0.2 * k, 30), (0.4 * k, 33)], "ap") for k, c in enumerate(("jpeg", "webp", "mine"), 1)]
    for r, ref in zip(runs, (34.0, 34.0, 30.0)):
        r["reference"] = {"ap": ref}
    fig = curves_figure(runs, "ap")
    try:
        refs = [ln for ln in fig.axes[0].get_lines() if ln not in _curves(fig)]
        assert [to_hex(ln.get_color()) for ln in refs] == [curve_style(0)["color"].lower(),
                                                           curve_style(2)["color"].lower()]
    finally:
        _close(fig)


def test_the_table_of_values_plotted_escapes_names_and_keeps_four_decimals_below_two(tmp_path):
    """The values table of the report, its plots' titles and its crops' alt text: a name is text, not markup; an
    MS-SSIM (below 2) keeps four decimals where 0.95 would hide the differences (mutation audit: none was
    checked)."""
    from saicm.eval.report import build_report

    runs = [_res("jpeg", [(0.2, 0.9512), (0.4, 0.9634)], "ms_ssim"), _res("<b>x&y", [(0.1, 0.9401), (0.2, 0.9555)],
                                                                          "ms_ssim")]
    from PIL import Image

    crops = [('original: a "b" <c>.png', Image.new("RGB", (8, 8)))]  # (a file name is the crop's alt text)
    page = build_report(runs, tmp_path / "r.html", metrics=("ms_ssim",), crops=crops).read_text()
    assert 'alt="original: a &quot;b&quot; &lt;c&gt;.png"' in page
    table = page[page.index("<summary>Values plotted"):]
    table = table[:table.index("</table>")]
    assert "<td>&lt;b&gt;x&amp;y</td>" in table and "<b>" not in table
    assert "<td class=num>0.9512</td>" in table and "<td class=num>0.9555</td>" in table
    assert "a curve for each of jpeg, &lt;b&gt;x&amp;y;" in page and "<b>x" not in page  # (the plot's title too)


def test_a_plotted_svg_and_png_say_what_they_show_in_words(tmp_path):
    """`saicm plot`'s standalone SVG had no <title> (the report's inline ones do): a screen reader read nothing
    but glyph outlines. Its title is the plot's title, else what the curves are; the PNG carries the same words."""
    from PIL import Image

    from saicm.eval.plots import plot_curves

    runs = [_res("my_codec", [(0.2, 30.5), (0.4, 33.25)]), _res("webp", [(0.1, 30), (0.2, 33)])]
    png, svg = plot_curves(runs, "psnr", tmp_path / "c")
    text = svg.read_text()
    assert re.search(r"<title>PSNR[^<]*against bits per pixel, a curve for each of my_codec, webp</title>", text)
    assert "a curve for each of my_codec, webp" in Image.open(png).text["Description"]
    _, svg = plot_curves(runs, "psnr", tmp_path / "d", title="Kodak & friends")
    assert "<title>Kodak &amp; friends</title>" in svg.read_text()


def test_a_plots_words_name_only_the_curves_drawn(tmp_path):
    """A results file without the metric is left out of the figure, and of its words (mutation audit: naming every
    file passed; a screen reader would have been told of a curve that is not there)."""
    from PIL import Image

    from saicm.eval.plots import curves_description, plot_curves

    runs = [_res("jpeg", [(0.2, 30.5), (0.4, 33.25)]), _res("yolo_only", [(0.1, 20), (0.2, 25)], metric="ap")]
    assert curves_description(runs, "psnr").endswith("a curve for each of jpeg")
    png, _ = plot_curves(runs, "psnr", tmp_path / "c")
    assert "yolo_only" not in Image.open(png).text["Description"]


def test_a_strangers_codec_names_are_escaped_in_the_figures_and_the_page(tmp_path):
    """A results file is a stranger's text: a codec name holding a lone surrogate ("\\ud800" is valid JSON) made
    matplotlib raise a TypeError traceback from `saicm plot` and `saicm report`; a NUL or an escape was a missing
    glyph in the figure and a character that is not HTML in the page; a right-to-left override reversed what
    followed it. All show as escapes; markup in names stays text."""
    import json

    from saicm.cli import main

    names = ["x\ud800y", "nul\x00esc\x1b[31m", "rlo\u202eevil", "</svg><script>alert(1)</script>"]
    files = []
    for i, name in enumerate(["jpeg", *names]):
        f = tmp_path / f"r{i}.json"
        r = _res(name, [(0.1 * (i + 1), 30), (0.2 * (i + 1), 33), (0.4 * (i + 1), 36)])
        f.write_text(json.dumps(r))
        files.append(str(f))
    assert main(["plot", *files, "-o", str(tmp_path / "p"), "--title", "t\ud800\x07"]) == 0
    svg = (tmp_path / "p.svg").read_text(encoding="utf-8")
    assert "x\\ud800y" in svg and "\x00" not in svg and "\u202e" not in svg
    assert main(["report", *files, "-o", str(tmp_path / "r.html"), "--title", "t\ud800\x07"]) == 0
    page = (tmp_path / "r.html").read_text(encoding="utf-8")
    for shown in ("x\\ud800y", "nul\\x00esc\\x1b[31m", "rlo\\u202eevil", "&lt;/svg&gt;&lt;script&gt;", "t\\ud800\\x07"):
        assert shown in page, shown
    assert not re.search("[\x00-\x08\x0b\x0c\x0e-\x1f\u202a-\u202e\u2066-\u2069]", page)
    assert "<script" not in page.lower()


def test_the_reports_bd_rate_table_says_its_range_as_bdrate_does_and_warns_of_a_narrow_one(tmp_path):
    """The page's range column was headed "interval" (read as a confidence interval beside a BD-rate) and rounded
    to two decimals (an MS-SSIM range read 0.94–1.00), and the page said nothing of how much of each curve the
    overlap covers, where `saicm bdrate` prints it and warns under half of both."""
    from saicm.eval.report import build_report

    runs = [_res("jpeg", [(0.2, 0.9412), (0.4, 0.9701), (0.8, 0.9952)], metric="ms_ssim"),
            _res("sliver", [(0.3, 0.9901), (0.6, 0.9978)], metric="ms_ssim")]
    page = build_report(runs, tmp_path / "r.html", metrics=("ms_ssim",)).read_text()
    assert "ms_ssim range integrated (not a confidence interval)" in page
    assert "0.990–0.995 (covers 9% of the anchor&#x27;s range, 66% of this one&#x27;s)" in page
    assert "a narrow comparison" not in page  # (66 % of one curve)
    runs = [_res("jpeg", [(0.2, 30), (0.4, 33), (0.8, 36)]), _res("sliver", [(0.6, 35), (1.2, 45)])]
    page = build_report(runs, tmp_path / "r.html").read_text()
    assert "35.000–36.000 (covers 17% of the anchor&#x27;s range, 10% of this one&#x27;s)" in page
    assert "WARNING: the overlap covers under half of both curves&#x27; ranges: a narrow comparison" in page


def test_a_hand_made_files_points_are_drawn_in_rate_order(tmp_path):
    """`saicm eval` writes points sorted by rate; a hand-made or converted file with points in another order was
    drawn in file order: its line went back and forth along the rate axis (0.4, 0.1, 0.2 bpp), a curve that is
    not the codec's."""
    import json

    f = tmp_path / "unsorted.json"
    f.write_text(json.dumps({"schema": "saicm-results/1", "codec": "unsorted", "points": [
        {"quality": 3, "bpp": 0.4, "psnr": 36}, {"quality": 1, "bpp": 0.1, "psnr": 30},
        {"quality": 2, "bpp": 0.2, "psnr": 33}]}))
    fig = curves_figure([results.load(f)], "psnr")
    try:
        line = _curves(fig)[0]
        assert list(line.get_xdata()) == [0.1, 0.2, 0.4] and list(line.get_ydata()) == [30, 33, 36]
    finally:
        _close(fig)


def test_crops_skip_per_image_entries_without_a_rate():
    """`saicm report --images` of a hand-made file whose per-image entry had a null or no bpp was a TypeError or
    KeyError traceback; the crop is matched among the entries that have a rate."""
    from PIL import Image

    from saicm.eval.codecs import get_codec
    from saicm.eval.report import matched_rate_crops

    r = _res("jpeg", [(0.2, 30), (0.4, 33)])
    r["per_image"] = {"cat.png": [{"quality": 10, "bpp": None, "psnr": 30}, {"quality": 50, "psnr": 31},
                                  {"quality": 90, "bpp": 0.5, "psnr": 33}]}
    img = Image.new("RGB", (32, 32), (120, 60, 30))
    panels = matched_rate_crops([r], {"cat.png": img}, "cat.png", 0.25, get_codec=get_codec)
    assert [c for c, _ in panels] == ["original: cat.png", "jpeg q90: 0.500 bpp, 33.00 dB"]
    r["per_image"]["cat.png"] = [{"quality": 10, "bpp": None}]
    assert len(matched_rate_crops([r], {"cat.png": img}, "cat.png", 0.25, get_codec=get_codec)) == 1


def test_the_rate_axis_says_a_human_layers_rate_counts_both_layers():
    """A two-layer model's human-layer curve is drawn at the bytes of both layers (the file a person's decoder
    needs), as saicm eval measures it; the axis said "bits per pixel (from file sizes)" alone, read beside
    single-layer codecs as the human layer's own bits."""
    human = _res("scal-human-b4", [(0.4, 30), (0.6, 33)])
    human["codec_config"] = {"layer": "human", "base_quality": 4}
    for runs, label in (([_res("jpeg", [(0.2, 30), (0.4, 33)])], "bits per pixel (from file sizes)"),
                        ([_res("jpeg", [(0.2, 30), (0.4, 33)]), human],
                         "bits per pixel (from file sizes; human layer: both layers)")):
        fig = curves_figure(runs, "psnr")
        try:
            assert fig.axes[0].get_xlabel() == label
        finally:
            _close(fig)
    est = _res("mbt-est", [(0.2, 30), (0.4, 33)])
    est["codec_config"] = {"source": "CompressAI eval JSON", "description": "Inference (entropy estimation)"}
    fig = curves_figure([human, est], "psnr")
    try:
        assert fig.axes[0].get_xlabel() == ("bits per pixel (from file sizes; human layer: both layers; some "
                                            "estimated, not coded)")
    finally:
        _close(fig)


def test_a_report_of_the_same_files_is_the_same_page(tmp_path):
    """Each plot's SVG carried the time it was drawn (matplotlib's dc:date): two reports of the same results files
    differed, so a reviewer could not tell by comparing them that nothing had changed."""
    import time

    from saicm.eval.report import build_report

    runs = [_res("jpeg", [(0.2, 30.5), (0.4, 33.25)]), _res("webp", [(0.1, 30), (0.2, 33)])]
    first = build_report(runs, tmp_path / "a.html").read_bytes()
    time.sleep(1.1)
    assert build_report(runs, tmp_path / "b.html").read_bytes() == first


def test_a_plot_of_the_same_files_is_the_same_svg(tmp_path):
    """`saicm plot`'s SVG carried the time it was drawn and randomly salted element ids (the report's plots were
    made the same for the same files, the plot command's were not): two plots of the same results differed."""
    import time

    from saicm.eval.plots import plot_curves

    runs = [_res("jpeg", [(0.2, 30.5), (0.4, 33.25)]), _res("webp", [(0.1, 30), (0.2, 33)])]
    first = [p.read_bytes() for p in plot_curves(runs, "psnr", tmp_path / "a")]
    time.sleep(1.1)
    assert [p.read_bytes() for p in plot_curves(runs, "psnr", tmp_path / "b")] == first


def test_the_rate_axis_speaks_of_the_curves_drawn_and_reference_lines_show_names_as_escapes():
    """A human layer's file that has no curve in this figure (no value of its metric) adds nothing to the rate
    axis' label; the legend of several reference lines names their codecs with control characters as escapes, as
    the curves' legend does (mutation testing found both unasserted)."""
    human = _res("scal-human-b4", [(0.4, 30), (0.6, 33)])
    human["codec_config"] = {"layer": "human", "base_quality": 4}
    for p in human["points"]:
        p["ap"] = None
    a, b = _res("a\x1b[31m", [(0.2, 30), (0.4, 33)]), _res("b", [(0.2, 31), (0.4, 34)])
    for r, ref in ((a, 40.0), (b, 41.0)):
        r["reference"] = {"ap": ref}
        for p in r["points"]:
            p["ap"] = p["psnr"]
    fig = curves_figure([a, b, human], "ap")
    try:
        assert fig.axes[0].get_xlabel() == "bits per pixel (from file sizes)"
        texts = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
        assert "a\\x1b[31m: uncompressed" in texts and not any("\x1b" in t for t in texts), texts
    finally:
        _close(fig)


def test_the_table_of_values_names_the_points_left_out_of_its_plot(tmp_path):
    """Under the table of values plotted, a file's points without a value of the metric are named as not plotted
    (mutation testing found the line unasserted)."""
    from saicm.eval.report import build_report

    a = _res("anchor", [(0.2, 30), (0.4, 33), (0.8, 36)])
    b = _res("holes", [(0.1, 30), (0.2, 33), (0.4, 36), (0.9, 38)])
    b["points"][3]["psnr"] = None
    page = build_report([a, b], tmp_path / "r.html").read_text()
    assert ("<p>holes: 1 point without a psnr value (null) left out, at 0.9000 bpp (not plotted).</p></details>"
            in page)
