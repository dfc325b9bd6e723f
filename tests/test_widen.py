"""Widening a trained model (``saicm train --init MODEL --N WIDER``): the wide model starts as the narrow one."""

import pytest
import torch
from PIL import Image

from .conftest import natural_image, switch_contexts_on
from saicm.cli import main
from saicm.models import build_architecture, save_model
from saicm.models.widen import widen_state
from saicm.models.zoo import load_model

LAMBDAS = [0.003, 0.03]


def _narrow(arch: str):
    torch.manual_seed(0)
    net = build_architecture(arch, N=16, M=24, lambdas=LAMBDAS, **({"groups": [8, 16]} if "context" in arch else {}))
    if "context" in arch:
        switch_contexts_on(net)
    with torch.no_grad():  # a density that is not the initial one, as after training
        for p in net.entropy_bottleneck.parameters():
            p.add_(0.3 * torch.randn_like(p))
    return net


@pytest.mark.parametrize("arch", ["gained-mean-scale-hyperprior", "gained-context-hyperprior"])
def test_the_widened_model_codes_and_decodes_as_the_narrow_one(arch):
    narrow = _narrow(arch)
    torch.manual_seed(1)
    wide = build_architecture(arch, **{**narrow.config, "N": 24})
    wide.load_state_dict(widen_state(narrow, wide), strict=True)
    assert wide.g_a[0].weight.shape[0] == 24 and wide.entropy_bottleneck.quantiles.shape[0] == 24
    # the new parts are live (not all zero), where they change nothing yet
    assert wide.g_a[2].weight[16:].abs().sum() > 0 and wide.g_a[2].weight[:16, 16:].abs().sum() == 0
    narrow.update(force=True), wide.update(force=True)
    narrow.eval(), wide.eval()
    x = torch.from_numpy(natural_image(128, 192, seed=3)).permute(2, 0, 1)[None].float() / 255
    with torch.no_grad():
        for q in (1, 2):
            a, b = narrow.compress(x, q), wide.compress(x, q)
            assert a["strings"][0] == b["strings"][0]  # y: the same bytes
            pa = narrow.decompress(a["strings"], a["shape"], q)["x_hat"]
            pb = wide.decompress(b["strings"], b["shape"], q)["x_hat"]
            assert (pa - pb).abs().max() < 1e-4
            qi = narrow._qindex(q, 1)
            oa, ob = narrow(x, qi, quant="ste"), wide(x, qi, quant="ste")
            assert torch.allclose(oa["x_hat"], ob["x_hat"], atol=1e-4)
            bits = {k: [-float(o["likelihoods"][k].log2().sum()) for o in (oa, ob)] for k in ("y", "z")}
            assert bits["y"][0] == pytest.approx(bits["y"][1], rel=1e-4)
            # the new z channels hold zeros, each coded as the cheapest existing channel codes a zero
            z = ob["likelihoods"]["z"]
            donor = -torch.log2(z[:, 16:]).reshape(-1)
            assert torch.allclose(donor, donor[:1].expand_as(donor), rtol=1e-5)
            assert bits["z"][1] - bits["z"][0] == pytest.approx(float(donor.sum()), rel=1e-3, abs=1e-2)
            _, at_zero = narrow.entropy_bottleneck(torch.zeros(1, 16, 1, 1), training=False)
            assert float(donor[0]) == pytest.approx(float((-torch.log2(at_zero)).min()), rel=1e-4)


def test_train_widens_an_init_model_and_its_new_channels_learn(tmp_path, capsys):
    data = tmp_path / "data"
    data.mkdir()
    for i in range(2):
        Image.fromarray(natural_image(140, 150, seed=i)).save(data / f"{i}.png")
    src = tmp_path / "narrow.safetensors"
    save_model(_narrow("gained-mean-scale-hyperprior"), src)
    common = ["train", "--data", str(data), "--init", str(src), "--steps", "3", "--batch", "1", "--patch", "64",
              "--lr", "1e-3", "--quiet"]
    assert main([*common, "--out", str(tmp_path / "w"), "--N", "24"]) == 0
    net, info = load_model(tmp_path / "w" / "model.safetensors")
    assert info.config["N"] == 24 and info.config["M"] == 24
    # the zeros through which the old channels read the new ones received gradients and moved
    assert net.g_s[2].weight[16:, :16].abs().sum() > 0
    # the same command resumes from its checkpoint (the widened model rebuilt, then the checkpoint loaded)
    assert main([*common, "--out", str(tmp_path / "w"), "--N", "24", "--steps", "4", "--resume"]) == 0
    capsys.readouterr()
    # the same N as --init: no widening
    assert main([*common, "--out", str(tmp_path / "s"), "--N", "16", "--steps", "1"]) == 0
    assert load_model(tmp_path / "s" / "model.safetensors")[1].config["N"] == 16
    assert main([*common, "--out", str(tmp_path / "n"), "--N", "8"]) != 0
    assert "widened, not narrowed" in capsys.readouterr().err
