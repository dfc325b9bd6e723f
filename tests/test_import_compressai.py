"""``saicm import-checkpoint --arch mbt2018-mean``: a model trained with CompressAI, coded by saicm (an audit of
session 38 found no route for one: import-checkpoint took LIC-TCM only, and a .pth given as --model was "unknown")."""

import numpy as np
import pytest
import torch

import saicm
from saicm.cli import main

from .conftest import natural_image


@pytest.fixture(scope="module")
def compressai_checkpoint(tmp_path_factory):
    """A CompressAI MeanScaleHyperprior (N=16, M=24) after a few training steps, saved as CompressAI's example
    trainer does ({"state_dict": ...}, with DataParallel's 'module.' prefixes)."""
    from compressai.models import MeanScaleHyperprior

    torch.manual_seed(0)
    net = MeanScaleHyperprior(N=16, M=24)
    opt = torch.optim.Adam(net.parameters(), 1e-3)
    x = torch.from_numpy(natural_image(64, 64)).permute(2, 0, 1)[None].float() / 255
    for _ in range(3):
        out = net(x)
        loss = sum((-torch.log2(v).sum() / 4096) for v in out["likelihoods"].values()) + \
            0.01 * 255 ** 2 * ((out["x_hat"] - x) ** 2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    net.update(force=True)
    net.eval()
    p = tmp_path_factory.mktemp("cai") / "checkpoint.pth.tar"
    torch.save({"epoch": 3, "state_dict": {"module." + k: v for k, v in net.state_dict().items()}}, p)
    return p, net


def test_a_compressai_model_codes_as_compressai_decodes_it(compressai_checkpoint, tmp_path, capsys):
    src, net = compressai_checkpoint
    assert main(["import-checkpoint", str(src), "--arch", "mbt2018-mean", "--lam", "0.0067", "--name", "cai",
                 "--out", str(tmp_path)]) == 0
    model = tmp_path / "cai.safetensors"
    assert "gained-mean-scale-hyperprior" in capsys.readouterr().out and (tmp_path / "cai.md").is_file()
    img = natural_image(64, 128, seed=3)  # (CompressAI codes multiples of 64 only)
    x = torch.from_numpy(img).permute(2, 0, 1)[None].float() / 255
    with torch.inference_mode():
        ref = net.decompress(**{k: v for k, v in net.compress(x).items()})["x_hat"]
    ref = (ref.clamp(0, 1)[0].permute(1, 2, 0).numpy() * 255 + 0.5).astype(np.uint8)
    for engine in ("compressai", "auto"):  # CompressAI's coder in saicm's container, and the portable engine
        data = saicm.compress(img, model=model, engine=engine)
        dec = np.asarray(saicm.decompress(data, model=model, engine=engine)).astype(int)
        assert np.abs(dec - ref).max() <= 1 and np.mean(dec != ref) < 0.01, engine
    got = saicm.load_model(model)[0].state_dict()  # the imported weights are CompressAI's, bit for bit (fp32)
    assert all(torch.equal(got[k], v) for k, v in net.state_dict().items())


def test_a_checkpoint_of_a_compiled_model_is_imported(compressai_checkpoint, tmp_path):
    """A model trained under torch.compile saves its names behind ``_orig_mod.`` (as DataParallel's behind
    ``module.``, which were read): every key was refused as unexpected."""
    src, net = compressai_checkpoint
    compiled = tmp_path / "compiled.pth.tar"
    torch.save({"state_dict": {"_orig_mod." + k: v for k, v in net.state_dict().items()}}, compiled)
    assert main(["import-checkpoint", str(compiled), "--arch", "mbt2018-mean", "--lam", "0.0067", "--name", "cc",
                 "--out", str(tmp_path)]) == 0
    got = saicm.load_model(tmp_path / "cc.safetensors")[0].state_dict()
    assert all(torch.equal(got[k], v) for k, v in net.state_dict().items())


def test_import_errors_say_what_to_do(compressai_checkpoint, tmp_path, capsys):
    src, _ = compressai_checkpoint
    assert main(["import-checkpoint", str(src), "--arch", "mbt2018-mean", "--name", "x", "--out", str(tmp_path)]) == 2
    assert "needs --lam" in capsys.readouterr().err
    # (CompressAI's zoo spelling, with an underscore, is the same architecture: it said "invalid choice")
    assert main(["import-checkpoint", str(src), "--arch", "mbt2018_mean", "--name", "x", "--out", str(tmp_path)]) == 2
    assert "needs --lam" in capsys.readouterr().err
    assert main(["import-checkpoint", str(src), "--name", "x", "--out", str(tmp_path)]) == 2  # default --arch tcm
    assert "import it with --arch mbt2018-mean" in capsys.readouterr().err
    assert main(["compress", str(src), "--model", str(src)]) == 2
    assert "saicm import-checkpoint" in capsys.readouterr().err
    bad = tmp_path / "tcm-like.pth"
    torch.save({"state_dict": {"g_a.0.weight": torch.zeros(8, 3, 5, 5)}}, bad)
    assert main(["import-checkpoint", str(bad), "--arch", "mbt2018-mean", "--lam", "0.01", "--name", "x",
                 "--out", str(tmp_path)]) == 2
    assert "does not fit CompressAI's MeanScaleHyperprior" in capsys.readouterr().err


def test_the_autoregressive_model_is_named_as_unsupported(tmp_path, capsys):
    from compressai.models import JointAutoregressiveHierarchicalPriors

    p = tmp_path / "mbt2018.pth"
    torch.save(JointAutoregressiveHierarchicalPriors(N=8, M=12).state_dict(), p)
    for arch in ("mbt2018-mean", "tcm"):
        assert main(["import-checkpoint", str(p), "--arch", arch, "--lam", "0.01", "--name", "x",
                     "--out", str(tmp_path)]) == 2
        err = capsys.readouterr().err
        assert "mbt2018-mean" not in err.split("is not")[0] or arch == "tcm", err
        if arch == "mbt2018-mean":
            assert "autoregressive model (mbt2018" in err


def test_a_checkpoint_whose_name_is_not_utf8_is_imported(compressai_checkpoint, tmp_path, capsys):
    """The source's file name goes into the model's description and card: one that is not UTF-8 (Latin-1 bytes;
    any non-ASCII name in an ASCII locale) stopped the import with a UnicodeEncodeError traceback in safetensors.
    Its bytes show as \\xNN where they are not UTF-8."""
    import json
    import os
    import shutil

    src = os.path.join(os.fsencode(tmp_path), b"ck-caf\xe9.pth.tar")
    shutil.copyfile(compressai_checkpoint[0], src)
    assert main(["import-checkpoint", os.fsdecode(src), "--arch", "mbt2018-mean", "--lam", "0.0067", "--name", "c",
                 "--out", str(tmp_path)]) == 0
    capsys.readouterr()
    assert "- source: `ck-caf\\xe9.pth.tar`" in (tmp_path / "c.md").read_text(encoding="utf-8")
    assert main(["info", str(tmp_path / "c.safetensors"), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["description"].endswith("imported from ck-caf\\xe9.pth.tar")


@pytest.mark.parametrize("cls, named", [("FactorizedPrior", "bmshj2018-factorized"),
                                        ("ScaleHyperprior", "bmshj2018-hyperprior"),
                                        ("Cheng2020Anchor", "cheng2020-anchor"),
                                        ("Cheng2020Attention", "cheng2020-attn")])
def test_other_compressai_models_are_named_when_refused(cls, named, tmp_path, capsys):
    """A CompressAI model other than mbt2018-mean was refused as "no g_a.6.weight / h_s.4.weight of its layout" (a
    ScaleHyperprior has both), cheng2020 as "autoregressive model (mbt2018", and with the default --arch tcm by a
    list of hundreds of missing keys: the refusal names the zoo model the file holds."""
    import compressai.models

    net = getattr(compressai.models, cls)(N=8) if cls.startswith("Cheng") else \
        getattr(compressai.models, cls)(N=8, M=12)
    p = tmp_path / "other.pth.tar"
    torch.save({"state_dict": net.state_dict()}, p)
    for arch in ("mbt2018-mean", "tcm"):
        assert main(["import-checkpoint", str(p), "--arch", arch, "--lam", "0.01", "--name", "x",
                     "--out", str(tmp_path)]) == 2
        err = capsys.readouterr().err
        assert f"CompressAI's {named}" in err or f"a CompressAI {named}" in err or f"({named}," in err, err
        assert "missing" not in err and len(err.splitlines()) == 1, err


def test_a_state_dict_without_coder_tables_is_imported(compressai_checkpoint, tmp_path, capsys):
    """The coder tables (_quantized_cdf, _offset, _cdf_length, scale_table) are computed when a file's are empty;
    a state dict saved without those buffers at all was refused as "7 missing" though nothing else was."""
    _, net = compressai_checkpoint
    p = tmp_path / "no-tables.pth"
    torch.save({k: v for k, v in net.state_dict().items()
                if not k.rpartition(".")[2] in ("_quantized_cdf", "_offset", "_cdf_length", "scale_table")}, p)
    assert main(["import-checkpoint", str(p), "--arch", "mbt2018-mean", "--lam", "0.0067", "--name", "nt",
                 "--out", str(tmp_path)]) == 0
    assert "computed" in capsys.readouterr().out
    got = saicm.load_model(tmp_path / "nt.safetensors")[0].state_dict()
    assert all(torch.equal(got[k], v) for k, v in net.state_dict().items())  # (net's tables were update()'s too)


def test_an_imported_model_takes_compressai_calls_without_a_quality(compressai_checkpoint, tmp_path, capsys):
    """CompressAI's net.compress(x) / net.decompress(strings, shape): an imported model has one rate point, yet
    its compress and decompress required a quality (a TypeError); a model of several rate points still needs one."""
    src, net = compressai_checkpoint
    assert main(["import-checkpoint", str(src), "--arch", "mbt2018-mean", "--lam", "0.0067", "--name", "q",
                 "--out", str(tmp_path)]) == 0
    m = saicm.load_model(tmp_path / "q.safetensors")[0]
    x = torch.from_numpy(natural_image(64, 64, seed=5)).permute(2, 0, 1)[None].float() / 255
    with torch.inference_mode():
        out = m.compress(x)
        assert out["strings"] == m.compress(x, 1)["strings"]
        assert torch.equal(m.decompress(**out)["x_hat"], m.decompress(out["strings"], out["shape"], 1)["x_hat"])
        v5 = saicm.load_model("mse-hyperprior-n64-v5")[0]
        with pytest.raises(ValueError, match="pass quality"):
            v5.compress(x)
