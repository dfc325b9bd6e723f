"""Rate control (``saicm compress --max-bytes N``, ``saicm.compress(..., max_bytes=N)``): the highest quality whose
file, as written, fits the budget."""

import json

import pytest
from PIL import Image

import saicm
from saicm.cli import main
from saicm.models.catalog import DEFAULT_MODEL

from .conftest import natural_image

MODEL = DEFAULT_MODEL  # the model used when none is named, 7 qualities (a context model since 0.37.0)


@pytest.fixture(scope="module")
def sizes():
    """The file's bytes at every quality of the shipped model, for the tiny image."""
    img = natural_image()
    return [len(saicm.compress(img, model=MODEL, quality=q)) for q in range(1, 8)]


def test_the_highest_quality_that_fits_is_chosen_and_one_higher_would_not(sizes):
    img = natural_image()
    assert sizes == sorted(sizes) and len(set(sizes)) == 7  # (the image tells the qualities apart)
    for budget in (sizes[0], sizes[2], sizes[2] + 1, sizes[3] - 1, sizes[5], sizes[6] + 1000):
        data = saicm.compress(img, model=MODEL, max_bytes=budget)
        q = saicm.describe(data)["quality"]
        assert len(data) <= budget
        assert q == 7 or sizes[q] > budget  # (sizes[q]: the file of quality q + 1)
        assert data == saicm.compress(img, model=MODEL, quality=q)  # the very file of that quality


def test_an_image_that_does_not_fit_even_at_the_lowest_quality_is_an_image_error(sizes):
    with pytest.raises(saicm.ImageError, match=rf"does not fit in {sizes[0] - 1} bytes: .* {sizes[0]} bytes at "
                       r"the lowest quality \(1\)"):
        saicm.compress(natural_image(), model=MODEL, max_bytes=sizes[0] - 1)


def test_the_analysis_runs_once_and_only_the_coding_per_trial_quality(sizes, monkeypatch):
    from saicm.engine.model import load
    from saicm.engine.runtime import transforms
    from saicm.models.catalog import resolve

    t = transforms(load(resolve(MODEL)), "onnx")
    calls = {"analysis": 0, "hyper_analysis": 0}
    for name in calls:
        def counted(*a, _f=getattr(t, name), _n=name):
            calls[_n] += 1
            return _f(*a)
        monkeypatch.setattr(t, name, counted)
    saicm.compress(natural_image(), model=MODEL, max_bytes=sizes[3])
    assert calls == {"analysis": 1, "hyper_analysis": 3}  # bisection over 7 qualities: 3 trials


def test_compressais_coder_is_budgeted_too():
    """Format 1 (``engine="compressai"``, and the architectures the engine does not code): a whole encoding per trial."""
    img = natural_image()
    sizes = [len(saicm.compress(img, model=MODEL, quality=q, engine="compressai")) for q in (4, 5)]
    data = saicm.compress(img, model=MODEL, max_bytes=sizes[1] - 1, engine="compressai")
    d = saicm.describe(data)
    assert d["format_version"] == 1 and d["quality"] == 4 and data == saicm.compress(img, model=MODEL, quality=4,
                                                                                     engine="compressai")


@pytest.mark.parametrize("kwargs, needle", [
    ({"quality": 3, "max_bytes": 1000}, "give --quality or --max-bytes, not both"),
    ({"max_bytes": 0}, "max_bytes must be a whole number >= 1, got 0"),
    ({"max_bytes": 500.5}, "max_bytes must be a whole number >= 1, got 500.5"),
    ({"max_bytes": True}, "max_bytes must be a whole number >= 1, got True"),
])
def test_budgets_that_make_no_sense_are_argument_errors(kwargs, needle):
    with pytest.raises(saicm.ArgumentError, match=needle):
        saicm.compress(natural_image(), model=MODEL, **kwargs)


def test_a_scalable_model_spends_the_budget_on_its_machine_layer():
    img = natural_image()
    model = "scalable-off02v5-m4-cond"
    machine = [len(saicm.strip(saicm.compress(img, model=model, quality=q, human_quality=2))) for q in (3, 4)]
    data = saicm.compress(img, model=model, max_bytes=machine[0], human_quality=2)
    d = saicm.describe(data)
    assert len(saicm.strip(data)) <= machine[0] < machine[1]
    assert d["quality"] == 3 and d["layers"]["human"]["quality"] == 2


def test_two_layer_coding_refuses_a_quality_with_a_budget_too():
    """saicm.codec.scalable.compress_layers (which saicm.compress calls after its own checks) dropped a quality given
    with a budget in silence, coding at the budget's choice."""
    from saicm.codec.scalable import compress_layers

    for engine in ("auto", "compressai"):
        with pytest.raises(saicm.ArgumentError, match="give --quality or --max-bytes, not both"):
            compress_layers(natural_image(), model="scalable-off02v5-m4-cond", quality=7, max_bytes=10**6,
                            engine=engine)


def test_cli_budget_per_file_of_a_folder_with_the_quality_in_the_log(tmp_path, sizes, capsys):
    src = tmp_path / "in"
    src.mkdir()
    Image.fromarray(natural_image()).save(src / "a.png")
    Image.fromarray(natural_image(seed=3)).save(src / "b.png")
    budget = sizes[3]  # a.png's quality 4
    log = tmp_path / "job.jsonl"
    assert main(["compress", str(src), "-o", str(tmp_path / "out"), "--max-bytes", str(budget), "--jobs", "2",
                 "--log", str(log), "--quiet"]) == 0
    lines = {json.loads(x)["input"].rsplit("/", 1)[1]: json.loads(x) for x in log.read_text().splitlines()}
    assert lines["a.png"]["quality"] == 4 and lines["a.png"]["bytes"] == sizes[3]
    b = natural_image(seed=3)
    qb = lines["b.png"]["quality"]
    assert lines["b.png"]["bytes"] == (tmp_path / "out" / "b.saicm").stat().st_size <= budget
    assert qb == 7 or len(saicm.compress(b, model=MODEL, quality=qb + 1)) > budget


def test_a_file_over_a_smaller_budget_says_that_the_earlier_output_is_left_as_it_was(tmp_path, sizes, capsys):
    """A rerun with a smaller budget (and --existing overwrite, the folders' default): a file that fits at no quality
    fails, and the earlier run's larger file stayed beside the error, unsaid: an uplink sending the folder sent it
    (the edge-camera audit). The error names it."""
    src = tmp_path / "in"
    src.mkdir()
    Image.fromarray(natural_image()).save(src / "a.png")
    out = tmp_path / "out"
    assert main(["compress", str(src), "-o", str(out), "--max-bytes", str(sizes[6]), "--quiet"]) == 0
    capsys.readouterr()
    assert main(["compress", str(src), "-o", str(out), "--max-bytes", str(sizes[0] - 1), "--quiet"]) == 1
    err = capsys.readouterr().err
    assert "does not fit in" in err and f"({out / 'a.saicm'}, an earlier output, is left as it was)" in err
    assert (out / "a.saicm").stat().st_size == sizes[6]
    (out / "a.saicm").unlink()
    assert main(["compress", str(src), "-o", str(out), "--max-bytes", str(sizes[0] - 1), "--quiet"]) == 1
    assert "an earlier output" not in capsys.readouterr().err


def test_the_log_of_a_scalable_folder_job_holds_each_layer(tmp_path):
    """A scalable folder job's --log held the whole file's bytes and the base model's quality only: with
    --max-bytes (the machine layer's budget) every line looked over budget, and the human layer's model, quality
    and bytes were nowhere in it (a scalable operator's audit)."""
    src = tmp_path / "in"
    src.mkdir()
    Image.fromarray(natural_image()).save(src / "a.png")
    model = "scalable-off02v5-m4-cond"
    budget = len(saicm.strip(saicm.compress(natural_image(), model=model, quality=3, human_quality=2)))
    log = tmp_path / "job.jsonl"
    assert main(["compress", str(src), "-o", str(tmp_path / "out"), "--model", model, "--max-bytes", str(budget),
                 "--human-quality", "2", "--log", str(log), "--quiet"]) == 0
    line = json.loads(log.read_text())
    data = (tmp_path / "out" / "a.saicm").read_bytes()
    assert line["bytes"] == len(data) > budget  # (the whole file: the human layer comes on top)
    assert line["machine_bytes"] == len(saicm.strip(data)) <= budget
    assert line["machine_bytes"] + line["human_bytes"] == len(data)
    assert (line["human_model"], line["human_quality"]) == (model, 2)


def test_a_scalable_models_refusal_names_the_machine_layer_it_measured():
    """A scalable model's budget that quality 1 does not fit said "the file is N bytes" of the machine layer's N:
    the two-layer file is larger, and an operator took the figure for the file's (a scalable operator's audit)."""
    img = natural_image()
    model = "scalable-off02v5-m4-cond"
    machine = len(saicm.strip(saicm.compress(img, model=model, quality=1, human_quality=2)))
    with pytest.raises(saicm.ImageError, match=rf"^does not fit in 100 bytes: its machine layer \(what saicm strip "
                       rf"keeps\) is {machine} bytes at the lowest quality \(1\)$"):
        saicm.compress(img, model=model, max_bytes=100, human_quality=2)


def test_cli_refusals_are_one_line(tmp_path, image_file, sizes, capsys):
    out = tmp_path / "x.saicm"
    code = main(["compress", str(image_file), "-o", str(out), "--quality", "3", "--max-bytes", "1000"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "give --quality or --max-bytes, not both" in err[0]
    assert not out.exists()
    # a file that does not fit: a failed file (exit 1, as an image that cannot be read), nothing written
    code = main(["compress", str(image_file), "-o", str(out), "--max-bytes", str(sizes[0] - 1)])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 1 and len(err) == 1 and "img.png: does not fit in" in err[0], err
    assert not out.exists()


def test_compressais_coder_chooses_by_the_budget_not_its_default_quality():
    """(Mutation audit: the test above asks for quality 4, the default one, so a budget that was passed on to
    CompressAI's coder and ignored, or a bisection over qualities 1..6, or every trial coding the default quality,
    all passed.) The top quality, a low one, and the refusals of a budget with a quality or of 0, as the engine's."""
    img = natural_image()
    sizes = [len(saicm.compress(img, model=MODEL, quality=q, engine="compressai")) for q in range(1, 8)]
    for budget, want in ((sizes[6], 7), (sizes[1], 2), (sizes[1] - 1, 1)):
        data = saicm.compress(img, model=MODEL, max_bytes=budget, engine="compressai")
        assert saicm.describe(data)["quality"] == want and len(data) == sizes[want - 1]
    for kwargs, needle in (({"quality": 3, "max_bytes": 10 ** 6}, "not both"), ({"max_bytes": 0}, "got 0")):
        with pytest.raises(saicm.ArgumentError, match=needle):
            saicm.compress(img, model=MODEL, engine="compressai", **kwargs)


def test_a_budget_of_one_byte_is_a_budget_not_fitted_rather_than_refused(sizes):
    """(Mutation audit: ``max_bytes <= 1`` refused passed.) 1 is a whole number >= 1: the image does not fit it,
    an ImageError naming what is measured ("the file") and its bytes at quality 1."""
    with pytest.raises(saicm.ImageError, match=rf"does not fit in 1 bytes: the file is {sizes[0]} bytes at the "
                                               r"lowest quality \(1\)"):
        saicm.compress(natural_image(), model=MODEL, max_bytes=1)


def test_the_engines_compress_refuses_a_budget_with_a_quality_itself():
    """(Mutation audit: its own check removed passed, as saicm.compress checks first.) ``saicm.engine.codec.compress``
    takes ``max_bytes`` too: with a quality, or not a whole number >= 1, it is refused there as well."""
    from saicm.engine.codec import compress
    from saicm.models.catalog import resolve

    for kwargs in ({"quality": 3, "max_bytes": 10 ** 6}, {"max_bytes": 0}):
        with pytest.raises(saicm.ArgumentError):
            compress(natural_image(), resolve(MODEL), **kwargs)


@pytest.mark.parametrize("engine", ["auto", "compressai"])
def test_a_scalable_models_budgeted_file_is_the_file_of_the_quality_chosen(engine):
    """(Mutation audit: the human layer coded on top of the quality asked for, not the one the budget chose, and the
    budget not passed on to CompressAI's coder of two-layer files, passed.) Both layers are those of that quality."""
    img = natural_image()
    model = "scalable-off02v5-m4-cond"
    machine = [len(saicm.strip(saicm.compress(img, model=model, quality=q, human_quality=2, engine=engine)))
               for q in (3, 4)]
    assert machine[0] < machine[1]
    data = saicm.compress(img, model=model, max_bytes=machine[0], human_quality=2, engine=engine)
    assert data == saicm.compress(img, model=model, quality=3, human_quality=2, engine=engine)
    assert saicm.describe(data)["quality"] == 3


def test_existing_skip_does_not_count_a_file_over_the_budget_as_done(tmp_path, sizes, capsys):
    """--existing skip counted any existing output as done: a file another command wrote (a higher budget, a
    --quality) was skipped with exit 0 though over --max-bytes, and the log's line said nothing of its size."""
    src = tmp_path / "in"
    src.mkdir()
    Image.fromarray(natural_image()).save(src / "a.png")
    Image.fromarray(natural_image()).save(src / "b.png")
    out = tmp_path / "out"
    assert main(["compress", str(src), "-o", str(out), "--quality", "5", "--quiet"]) == 0
    (out / "b.saicm").write_bytes(saicm.compress(natural_image(), model=MODEL, quality=2))
    capsys.readouterr()
    log = tmp_path / "job.jsonl"
    before = (out / "a.saicm").read_bytes()
    assert main(["compress", str(src), "-o", str(out), "--max-bytes", str(sizes[3]), "--existing", "skip",
                 "--log", str(log), "--quiet"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"does not fit in {sizes[3]} bytes (it is {sizes[4]} bytes, quality 5)" in err
    assert (out / "a.saicm").read_bytes() == before  # kept
    lines = {json.loads(x)["input"].rsplit("/", 1)[1]: json.loads(x) for x in log.read_text().splitlines()}
    assert lines["a.png"]["status"] == "failed"
    b = lines["b.png"]
    assert b["status"] == "skipped" and (b["bytes"], b["quality"]) == (sizes[1], 2)  # the uplink's audit


def test_existing_skip_says_a_file_of_the_former_default_model_is_one_when_no_model_is_named(tmp_path, capsys):
    """After an upgrade that changed the default model (0.37.0), a folder job naming no model with --existing skip
    found every earlier output coded by another model, and said only that: it says which was the default before and
    how to go on with it; a job naming another model is not told."""
    from saicm.models.catalog import FORMER_DEFAULT_MODELS

    old = "mse-hyperprior-n64-v5"
    assert old in FORMER_DEFAULT_MODELS and old != DEFAULT_MODEL
    src = tmp_path / "in"
    src.mkdir()
    Image.fromarray(natural_image()).save(src / "a.png")
    out = tmp_path / "out"
    assert main(["compress", str(src), "-o", str(out), "--model", old, "--quiet"]) == 0
    capsys.readouterr()
    assert main(["compress", str(src), "-o", str(out), "--existing", "skip", "--quiet"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"({old} q4, not {DEFAULT_MODEL})" in err, err
    assert f"{old} was the default model before {FORMER_DEFAULT_MODELS[old]}: --model {old} goes on with it" in err
    assert main(["compress", str(src), "-o", str(out), "--existing", "skip", "--quiet", "--model",
                 "mse-context-n64-v6"]) == 1
    assert "was the default model" not in capsys.readouterr().err
    assert main(["compress", str(src), "-o", str(out), "--existing", "skip", "--quiet", "--model", old]) == 0
    from saicm.codec.pipeline import existing_file
    from saicm.errors import ImageError

    with pytest.raises(ImageError) as e:  # (a caller in Python names its model: not told of former defaults)
        existing_file(out / "a.saicm", model=DEFAULT_MODEL)
    assert "coded by another model" in e.value.message and "was the default" not in e.value.message


def test_existing_skip_does_not_count_another_models_or_qualitys_file_as_done(tmp_path, capsys):
    """--existing skip counted an output coded at another quality (or by another model) as done, with exit 0 and
    not a word: a rerun asking for quality 4 kept the quality-1 files of an earlier run (the cache audit)."""
    src = tmp_path / "in"
    src.mkdir()
    Image.fromarray(natural_image()).save(src / "a.png")
    out = tmp_path / "out"
    assert main(["compress", str(src), "-o", str(out), "--quality", "1", "--quiet"]) == 0
    before = (out / "a.saicm").read_bytes()
    capsys.readouterr()
    for argv, said in ((["--quality", "4"], f"(exists, coded at another quality ({MODEL} q1, not q4)"),
                       ([], f"(exists, coded at another quality ({MODEL} q1, not q4)"),  # (the default, 4)
                       (["--model", "mse-context-n64-v6", "--quality", "1"],
                        f"exists, coded by another model ({MODEL} q1, not mse-context-n64-v6)")):
        assert main(["compress", str(src), "-o", str(out), "--existing", "skip", "--quiet", *argv]) == 1, argv
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and said[1:] in err and "kept, not counted done" in err, (argv, err)
        assert (out / "a.saicm").read_bytes() == before
    assert main(["compress", str(src), "-o", str(out), "--existing", "skip", "--quality", "1", "--quiet"]) == 0


def test_existing_skip_does_not_count_a_two_layer_file_of_other_qualities_as_done(tmp_path, capsys):
    """The check above skipped two-layer files' qualities: a scalable model's rerun at --quality 6 --human-quality 6
    kept the q1/q1 files of an earlier run, exit 0 and not a word. Each layer's quality counts (the machine layer's
    not with --max-bytes)."""
    from saicm.models.catalog import RECOMMENDED_SCALABLE_MODEL as scalable

    src = tmp_path / "in"
    src.mkdir()
    Image.fromarray(natural_image(64, 96)).save(src / "a.png")
    out = tmp_path / "out"
    job = ["compress", str(src), "-o", str(out), "--model", scalable, "--quiet"]
    assert main([*job, "--quality", "1", "--human-quality", "1"]) == 0
    before = (out / "a.saicm").read_bytes()
    capsys.readouterr()
    for argv, said in ((["--quality", "6", "--human-quality", "1"], "exists, coded at another quality ("),
                       (["--quality", "1", "--human-quality", "6"],
                        f"exists, its human layer coded at another quality ({scalable} q1, not q6)")):
        assert main([*job, "--existing", "skip", *argv]) == 1, argv
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and said in err and "kept, not counted done" in err, (argv, err)
        assert (out / "a.saicm").read_bytes() == before
    assert main([*job, "--existing", "skip", "--quality", "1", "--human-quality", "1"]) == 0
    assert main([*job, "--existing", "skip", "--max-bytes", "100000", "--human-quality", "1"]) == 0


def test_every_log_line_of_a_budgeted_job_holds_its_budget(tmp_path, sizes):
    """Runs with other budgets append to one log: a written line said nothing of the limit its file was held to, and
    a failed one only in its error's words."""
    src = tmp_path / "in"
    src.mkdir()
    Image.fromarray(natural_image()).save(src / "a.png")
    log = tmp_path / "day.jsonl"
    out = str(tmp_path / "out")
    assert main(["compress", str(src), "-o", out, "--max-bytes", str(sizes[2]), "--log", str(log), "--quiet"]) == 0
    assert main(["compress", str(src), "-o", out, "--max-bytes", str(sizes[0] - 1), "--log", str(log),
                 "--quiet"]) == 1
    assert main(["compress", str(src), "-o", out, "--quality", "2", "--log", str(log), "--quiet"]) == 0
    lines = [json.loads(x) for x in log.read_text().splitlines()]
    assert [(x["status"], x.get("max_bytes")) for x in lines] == [("written", sizes[2]), ("failed", sizes[0] - 1),
                                                                   ("written", None)]


def test_a_refusal_names_the_share_of_a_lossless_alpha_channel(sizes):
    """An RGBA frame whose noisy alpha channel (lossless, the same at every quality) alone was over the budget was
    refused as if the image were too large ("downscale the image, or pass --quality 1", neither of which helps)."""
    import numpy as np

    rgb = natural_image()
    alpha = np.random.default_rng(0).integers(0, 256, rgb.shape[:2], dtype=np.uint8)
    rgba = np.dstack([rgb, alpha])
    with pytest.raises(saicm.ImageError, match=r"lowest quality \(1\) \(\d+ of them the alpha channel, coded "
                       r"losslessly at every quality: without it the image would fit\)"):
        saicm.compress(rgba, model=MODEL, max_bytes=sizes[2])
    with pytest.raises(saicm.ImageError, match=r"its machine layer .* \(\d+ of them the alpha channel"):
        saicm.compress(rgba, model="scalable-off02v5-m4-cond", max_bytes=sizes[2])


def test_existing_skip_counts_a_two_layer_file_of_the_jobs_scalable_model_as_done(tmp_path, capsys):
    """A two-layer file names its base model as its model and the scalable one as its human layer's: a rerun with
    the scalable model (the one that wrote it) counts it done, not as "coded by another model"."""
    from saicm.models.catalog import RECOMMENDED_SCALABLE_MODEL as S

    src = tmp_path / "in"
    src.mkdir()
    Image.fromarray(natural_image()).save(src / "a.png")
    out = tmp_path / "out"
    assert main(["compress", str(src), "-o", str(out), "--model", S, "--quality", "1", "--quiet"]) == 0
    before = (out / "a.saicm").read_bytes()
    capsys.readouterr()
    assert main(["compress", str(src), "-o", str(out), "--model", S, "--quality", "1", "--existing", "skip",
                 "--quiet"]) == 0, capsys.readouterr().err
    assert (out / "a.saicm").read_bytes() == before
