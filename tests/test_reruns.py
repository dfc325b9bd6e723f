"""Folder jobs rerun over days (``--existing skip``): what counts as done is an output of the input as it is now.

The cases below are the minimal sequences a stateful property test of compress / decompress / strip reruns found
(add, replace, corrupt images and outputs between runs); each is a plain, deterministic test.
"""

import json
import os

from PIL import Image

from saicm.cli import main

from .conftest import natural_image

MODEL = "mse-hyperprior-n64-v3"  # the smallest shipped model


def _folder(tmp_path, n=2):
    src = tmp_path / "in"
    src.mkdir()
    for i in range(n):
        Image.fromarray(natural_image(32, 48, seed=i)).save(src / f"im{i}.png")
    return src


def _log(path):
    return {os.path.basename(x["input"]): x for x in map(json.loads, path.read_text().splitlines())}


def test_existing_skip_does_not_count_a_damaged_output_as_done(tmp_path, capsys):
    """A cut-short or damaged .saicm under the output's name (a copy that failed, a disk's bad block) was counted
    done by ``compress --existing skip`` (exit 0, its log line ``skipped`` with its bytes only): only
    ``decompress`` found it, much later. It is no file of the job's model and quality: kept, one line, exit 1."""
    src, out = _folder(tmp_path), tmp_path / "out"
    job = ["compress", str(src), "-o", str(out), "--model", MODEL, "--quiet"]
    assert main(job) == 0
    cut = (out / "im0.saicm").read_bytes()[:100]
    (out / "im0.saicm").write_bytes(cut)
    capsys.readouterr()
    log = tmp_path / "job.jsonl"
    assert main([*job, "--existing", "skip", "--log", str(log)]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "im0.saicm" in err and "not counted done" in err, err
    assert (out / "im0.saicm").read_bytes() == cut  # kept, as a file of another quality is
    lines = _log(log)
    assert lines["im0.png"]["status"] == "failed" and lines["im1.png"]["status"] == "skipped"
