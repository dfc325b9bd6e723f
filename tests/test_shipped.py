"""The shipped weights: checksummed, documented, loadable, and a real codec."""

import hashlib
import subprocess
from pathlib import Path

import numpy as np
import torch
import pytest

import saicm
from saicm.errors import ModelError
from saicm.models.zoo import (DEFAULT_MODEL, RECOMMENDED_MACHINE_MODEL, RECOMMENDED_SCALABLE_MODEL, RETIRED_MODELS,
                              WEIGHTS_DIR, describe, resolve, shipped_models)

from .conftest import natural_image


@pytest.mark.parametrize("folder", [WEIGHTS_DIR, Path(__file__).resolve().parent.parent / "checkpoints"],
                         ids=["shipped", "checkpoints"])
def test_every_weight_file_is_in_sha256sums_and_matches(folder):
    """The shipped weights and the committed training checkpoints: SHA256SUMS lists exactly the files there."""
    sums = {}
    for line in (folder / "SHA256SUMS").read_text().splitlines():
        digest, name = line.split()
        sums[name.lstrip("*")] = digest
    files = sorted(p.name for p in folder.glob("*.safetensors"))
    assert files and sorted(sums) == files
    for name in files:
        assert hashlib.sha256((folder / name).read_bytes()).hexdigest() == sums[name], name


def test_every_shipped_model_has_a_model_card_with_its_checksum():
    cards = (WEIGHTS_DIR / "MODELS.md").read_text()
    for name in shipped_models():
        assert f"## {name}" in cards
        card = cards.split(f"## {name}", 1)[1].split("\n## ", 1)[0]
        digest = hashlib.sha256((WEIGHTS_DIR / f"{name}.safetensors").read_bytes()).hexdigest()
        assert f"SHA-256 of `{name}.safetensors`: `{digest}`" in card, name


def test_the_named_default_and_recommended_models_are_shipped():
    models = shipped_models()
    assert DEFAULT_MODEL in models and DEFAULT_MODEL.startswith("mse-")
    assert RECOMMENDED_MACHINE_MODEL in models and RECOMMENDED_MACHINE_MODEL.startswith("saicm-")
    assert RECOMMENDED_SCALABLE_MODEL in models
    assert models[RECOMMENDED_SCALABLE_MODEL].config["base"] == RECOMMENDED_MACHINE_MODEL


def test_shipped_scalable_model_layers():
    """Machine layer = the base model's file; human rate rises with its quality; the human image is the better."""
    from saicm.codec.scalable import strip
    from saicm.eval.metrics import psnr

    x = natural_image(128, 192, seed=5)
    machine = saicm.compress(x, model=RECOMMENDED_MACHINE_MODEL, quality=4)
    sizes = []
    for qa in range(1, 8):
        data = saicm.compress(x, model=RECOMMENDED_SCALABLE_MODEL, quality=4, human_quality=qa)
        assert strip(data) == machine
        sizes.append(len(data))
    assert sizes == sorted(sizes) and len(set(sizes)) == len(sizes)
    assert psnr(x, saicm.decompress(data, layer="human")) > psnr(x, saicm.decompress(data, layer="machine")) + 1


def test_a_retired_model_says_where_its_weights_are():
    models = shipped_models()
    for name, commit in RETIRED_MODELS.items():
        assert name not in models
        with pytest.raises(ModelError, match=f"no longer shipped.*git show {commit}:saicm/weights/{name}.safetensors"):
            resolve(name)
    # the named commit really holds the files (needs the repository's history: skipped in an sdist or shallow clone)
    repo = WEIGHTS_DIR.parents[1]
    git = ["git", "-C", str(repo)]
    if not (repo / ".git").exists():
        pytest.skip("not a git checkout: the retired weights' history is not here")
    import shutil

    if shutil.which("git") is None:
        pytest.skip("git is not installed: the retired weights' history cannot be read")
    r = subprocess.run(git + ["rev-parse", "--is-shallow-repository"], capture_output=True, text=True)
    if r.returncode != 0:  # (a repository of another user: "dubious ownership"; the skip said "shallow clone")
        pytest.skip(f"git cannot read this checkout: {r.stderr.strip()[:200]}")
    if r.stdout.strip() != "false":
        pytest.skip("shallow clone: the retired weights' commit is not here")
    spec = "".join(f"{c}:saicm/weights/{n}.safetensors\n" for n, c in RETIRED_MODELS.items())
    r = subprocess.run(git + ["cat-file", "--batch-check"], input=spec, capture_output=True, text=True)
    assert "missing" not in r.stdout, r.stdout


def test_a_file_of_replaced_weights_says_which_commit_holds_them(tmp_path, monkeypatch):
    """mse-hyperprior-n64's weights were replaced in place in 0.1.0 (commit fa6b324): a file the first ones wrote
    names the model, yet the retired model's commit (fda74cf) holds the later weights, which refuse it. The error
    names the commit whose weights match the file's checksum, with --model or without it."""
    from saicm.codec import container
    from saicm.models.catalog import REPLACED_WEIGHTS

    monkeypatch.setenv("SAICM_MODELS", str(tmp_path))  # (no weights of the user's own by that name)
    valid = container.unpack((Path(__file__).parent / "corpus" / "valid-64x64-v5-q1.saicm").read_bytes())
    for (name, sha), commit in REPLACED_WEIGHTS.items():
        valid.header.model, valid.header.weights_sha = name, bytes.fromhex(sha)
        data = container.pack(valid)
        hint = f"git show {commit}:saicm/weights/{name}.safetensors"
        with pytest.raises(ModelError, match="no longer ships") as e:
            saicm.decompress(data)
        assert hint in str(e.value)
        with pytest.raises(ModelError, match="checksum mismatch") as e:  # the retired file (here: any other)
            saicm.decompress(data, model=shipped_models()[DEFAULT_MODEL].path)
        assert hint in str(e.value)
    repo = WEIGHTS_DIR.parents[1]  # the commit holds those weights (needs the history, as the test above)
    r = subprocess.run(["git", "-C", str(repo), "rev-parse", "--is-shallow-repository"], capture_output=True,
                       text=True)
    if r.returncode != 0 or r.stdout.strip() != "false":
        pytest.skip("no git history here")
    for (name, sha), commit in REPLACED_WEIGHTS.items():
        blob = subprocess.run(["git", "-C", str(repo), "show", f"{commit}:saicm/weights/{name}.safetensors"],
                              capture_output=True, check=True).stdout
        assert hashlib.sha256(blob).hexdigest()[:16] == sha


def test_shipped_models_are_small_and_fp16():
    from safetensors import safe_open

    for info in shipped_models().values():
        assert info.path.stat().st_size < 20 * 2**20
        with safe_open(str(info.path), framework="pt") as f:
            dtypes = {str(f.get_slice(k).get_dtype()) for k in f.keys()}
        assert "F32" not in dtypes or dtypes <= {"F32", "I32", "I64", "F16"}
        assert "F16" in dtypes


def test_default_model_beats_a_flat_guess_and_rate_rises_with_quality():
    from saicm.eval.metrics import psnr

    net, info = saicm.load_model()
    x = natural_image(128, 192, seed=3)
    sizes, quality = [], []
    for q in range(1, net.num_qualities + 1):
        data = saicm.compress(x, model=info.name, quality=q)
        sizes.append(len(data))
        quality.append(psnr(x, saicm.decompress(data)))
    assert sizes == sorted(sizes) and len(set(sizes)) == len(sizes)
    assert quality[-1] > quality[0] + 2
    flat = np.broadcast_to(x.reshape(-1, 3).mean(0).round(), x.shape)
    assert quality[0] > psnr(x, flat) + 5


def test_every_shipped_model_codes_and_its_rate_rises_with_quality():
    x = natural_image(96, 160, seed=4)
    for name, info in shipped_models().items():
        net, _ = saicm.load_model(name)
        sizes = []
        for q in range(1, net.num_qualities + 1):
            data = saicm.compress(x, model=name, quality=q)
            assert np.asarray(saicm.decompress(data)).shape == x.shape, name
            sizes.append(len(data))
        assert sizes == sorted(sizes), (name, sizes)
        assert describe(info), f"{name} has no description"


def test_a_models_info_shows_what_it_is_not_its_files_strings():
    """``saicm.list_models()`` as a notebook cell's result was 21 KB of text: each info's repr held the file's
    metadata strings, which repeat its architecture and config and add the training record."""
    models = saicm.list_models()
    info = models["scalable-off02v6-m4-cond"]
    text = repr(info)
    assert text.startswith("ModelInfo(name='scalable-off02v6-m4-cond', path=") and "'base': " in text
    assert "training" not in text and "description" not in text and len(text) < 600, text
    assert info.meta["description"] and info.training  # (still there, named)
    assert len(repr(models)) < 600 * len(models)


def test_the_public_models_are_the_callers_own():
    """saicm.load_model handed out the cached module every decode uses (halving its weights broke later decodes in
    the process), and saicm.list_models the cached infos (changing a config broke that model's qualities)."""
    x = natural_image(64, 64, seed=2)
    data = saicm.compress(x, model="mse-hyperprior-n64-v5", engine="compressai")
    before = np.asarray(saicm.decompress(data))
    net, info = saicm.load_model("mse-hyperprior-n64-v5")
    assert net is not saicm.load_model("mse-hyperprior-n64-v5")[0]
    with torch.no_grad():
        net.g_s[0].weight.mul_(0.5)
    info.config["lambdas"] = [1.0]
    saicm.list_models()["mse-hyperprior-n64-v5"].config["lambdas"] = [1.0]
    assert np.array_equal(np.asarray(saicm.decompress(data)), before)
    assert saicm.list_models()["mse-hyperprior-n64-v5"].num_qualities == 7
