"""LIC-TCM: the released checkpoints' layout, import, real-bitstream coding, bit-exact decoding, the imported
ICM-v1 scalable pair, training. Random weights written in the released layout; tiny configurations except
for the key/shape/parameter-count check of the full one."""

import hashlib
import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import saicm
from saicm.cli import main
from saicm.codec import container
from saicm.errors import FormatError, ModelError, bytes_text
from saicm.models.determinism import single_thread_kernels
from saicm.models.tcm import RELEASED, RELEASED_ICA, TCM, WindowAttention

from .conftest import ROOT, natural_image

#: a tiny TCM (windows 4 and 2: padded sides multiples of 64, at least 128)
TINY = dict(N=8, M=20, num_slices=5, max_support_slices=5, depths=[1, 1, 1, 1, 1, 1], head_dims=[4] * 6, window=4,
            hyper_depth=2, hyper_window=2, hyper_head_dim=4, atten_window=4, atten_head_dim=4, atten_inter_dim=8,
            cc_hidden=[16, 16], z_channels=8)
#: its ICM-v1-style additional codec: m = 4 slices of 4 channels, a synthesis of the base's 20 channels
TINY_ICA = dict(TINY, M=16, num_slices=4, synthesis_channels=20)

#: facts about the released checkpoints (../shared/docs/checkpoints/*.json): SHA-256 of their "key [shape]" lines
#: in state-dict order after update(), and parameters per top module
DOCS = ROOT.parent / "shared" / "docs" / "checkpoints"
RELEASED_FACTS = {
    "tcm": ("sa-icm_tcm_state_dict.json", "8eabd81479cc842c29fafc7dbe8965fab8b44e3774b8fea57c0885c616536b5e", {
        "g_a": 7787896, "g_s": 21099588, "h_a": 3168584, "h_mean_s": 8397704, "h_scale_s": 8397704,
        "atten_mean": 4264720, "atten_scale": 4264720, "cc_mean_transforms": 6176800,
        "cc_scale_transforms": 6176800, "lrp_transforms": 6821920, "entropy_bottleneck": 11712}),
    "ica": ("icm-v1_ica_state_dict.json", "eed34a30ec69c04b2fbe9c13d08a85a14fd3a0241003bafb052e3bec4993fcd9", {
        "g_a": 7640376, "g_s": 21099588, "h_a": 3004744, "h_mean_s": 7807624, "h_scale_s": 7807624,
        "atten_mean": 3313088, "atten_scale": 3313088, "cc_mean_transforms": 4167296,
        "cc_scale_transforms": 4167296, "lrp_transforms": 4683392, "entropy_bottleneck": 11712}),
}


@pytest.mark.parametrize("kind", ["tcm", "ica"])
def test_full_configuration_has_exactly_the_released_keys_shapes_and_parameter_counts(kind):
    torch.manual_seed(0)
    model = TCM(**(RELEASED if kind == "tcm" else RELEASED_ICA))
    model.update(force=True)
    keys = {k: list(v.shape) for k, v in model.state_dict().items()}
    by_module = {}
    for name, p in model.named_parameters():
        top = name.split(".")[0]
        by_module[top] = by_module.get(top, 0) + p.numel()
    fname, digest, params = RELEASED_FACTS[kind]
    assert by_module == params
    assert sum(by_module.values()) == (76_568_148 if kind == "tcm" else 67_015_828)
    facts = DOCS / fname
    if facts.is_file():  # the readable comparison, where the facts folder is at hand
        ref = json.loads(facts.read_text())
        assert sorted(set(ref["keys"]) - set(keys)) == [] and sorted(set(keys) - set(ref["keys"])) == []
        assert [k for k in keys if keys[k] != ref["keys"][k]] == []
        assert by_module == ref["n_params_by_top_module"] and len(keys) == ref["n_state_dict_entries"]
        assert {k: str(v.dtype)[6:] for k, v in model.state_dict().items() if v.dtype != torch.float32} == \
            ref["dtypes_not_float32"]
    text = "\n".join(f"{k} {v}" for k, v in keys.items())
    assert hashlib.sha256(text.encode()).hexdigest() == digest


def _naive_window_attention(att: WindowAttention, x: torch.Tensor) -> torch.Tensor:
    """Token by token, from the description: regions of w×w (shifted: boundaries moved by w/2, the wrapped
    strip its own region), logits q·k/√d + bias[h, r1−r2+w−1, c1−c2+w−1], softmax, heads concatenated."""
    _, h, w_, c = x.shape
    w, s = att.window, att.shift
    groups_r = [(i - s) % h // w if not (s and i < s) else -1 for i in range(h)]
    groups_c = [(j - s) % w_ // w if not (s and j < s) else -1 for j in range(w_)]
    qkv = att.embedding_layer(x[0]).view(h, w_, 3, att.heads, att.head_dim)
    out = torch.zeros(h, w_, att.heads, att.head_dim)
    params = att.relative_position_params
    for i in range(h):
        for j in range(w_):
            keys = [(a, b) for a in range(h) for b in range(w_) if groups_r[a] == groups_r[i] and groups_c[b] == groups_c[j]]
            for hd in range(att.heads):
                q = qkv[i, j, 0, hd]
                logits = torch.stack([q @ qkv[a, b, 1, hd] * att.scale + params[hd, i - a + w - 1, j - b + w - 1]
                                      for a, b in keys])
                p = logits.softmax(0)
                out[i, j, hd] = sum(p[n] * qkv[a, b, 2, hd] for n, (a, b) in enumerate(keys))
    return att.linear(out.reshape(h, w_, c))[None]


@pytest.mark.parametrize("shifted,chunk", [(False, None), (True, None), (True, 512)])
def test_window_attention_matches_a_token_by_token_reading_of_the_facts(shifted, chunk, monkeypatch):
    if chunk:  # windows attended one by one (what bounds the memory of large images)
        monkeypatch.setattr("saicm.models.tcm.ATTENTION_CHUNK", chunk)
    torch.manual_seed(3)
    att = WindowAttention(8, 4, 4, shifted).eval()
    with torch.no_grad():
        att.relative_position_params.normal_(0, 1)
        x = torch.randn(1, 8, 12, 8)
        assert torch.allclose(att(x), _naive_window_attention(att, x), atol=1e-5)


def _released_file(path: Path, cfg: dict, seed: int, old_names: bool = False, tables: bool = False,
                   prefix: str = "module.") -> dict:
    """Random weights saved the way the authors' training script saves them."""
    torch.manual_seed(seed)
    model = TCM(**cfg)
    with torch.no_grad():  # make every tensor matter (GDN, biases, relative positions)
        for n, p in model.named_parameters():
            if not n.endswith("quantiles"):
                p.add_(torch.randn_like(p) * 0.02)
    if tables:
        model.update(force=True)
    sd = model.state_dict()
    keys = {}
    for k, v in sd.items():
        if old_names:
            for new, old in (("matrices.", "_matrix"), ("biases.", "_bias"), ("factors.", "_factor")):
                k = k.replace("entropy_bottleneck." + new, "entropy_bottleneck." + old)
        keys[prefix + k] = v
    torch.save({"epoch": 49, "loss": torch.tensor(1.0), "state_dict": keys,
                "optimizer": {"state": {}, "param_groups": [{"lr": 1e-4, "params": [0]}]}}, path)
    return sd


def _import(*args) -> int:
    return main(["import-checkpoint", *map(str, args)])


@pytest.fixture(scope="module")
def pair(tmp_path_factory):
    """A tiny machine model and its additional model in the released layout, imported (fp32) side by side."""
    d = tmp_path_factory.mktemp("tcm")
    machine_sd = _released_file(d / "icm.pth.tar", TINY, seed=1, old_names=True)
    _released_file(d / "ica.pth.tar", TINY_ICA, seed=2)
    out = d / "models"
    assert _import(d / "icm.pth.tar", "--name", "tiny-icm", "--alpha", "0.78", "--config", json.dumps(TINY),
                   "--out", out) == 0
    assert _import(d / "ica.pth.tar", "--arch", "tcm-ica", "--base", out / "tiny-icm.safetensors",
                   "--name", "tiny-icm-v1", "--config", json.dumps(TINY_ICA)) == 0
    return {"dir": d, "machine": out / "tiny-icm.safetensors", "scalable": out / "tiny-icm-v1.safetensors",
            "machine_sd": machine_sd}


def test_import_loads_every_weight_bit_for_bit_and_writes_a_card(pair):
    net, info = saicm.load_model(pair["machine"])
    assert info.architecture == "tcm" and net.num_qualities == 1 and info.config["lambdas"] == [0.05]
    own = net.state_dict()
    for k, v in pair["machine_sd"].items():
        if v.numel() and not k.startswith(("entropy_bottleneck._", "gaussian_conditional._", "gaussian_conditional.scale_table")):
            assert torch.equal(own[k].float(), v.float()), k
    assert own["gaussian_conditional._quantized_cdf"].numel() > 0  # the file's empty tables were computed
    card = (pair["machine"].parent / "tiny-icm.md").read_text()
    assert "α = 0.78" in card and "fp32" in card and hashlib.sha256(
        pair["machine"].read_bytes()).hexdigest() in card
    size = pair["machine"].stat().st_size  # (in binary units, as every size saicm says: it was 10⁶-byte "MB")
    assert re.search(rf"- weights: `tiny-icm.safetensors`, {re.escape(bytes_text(size))}, SHA-256 ", card), card
    assert re.search(r"- weights: `tiny-icm.safetensors`, [\d.,]+ (KiB|MiB), ", card)
    assert "tiny-icm" in (pair["scalable"].parent / "tiny-icm-v1.md").read_text()


def test_tables_in_the_file_are_kept_in_fp32_and_recomputed_in_fp16(tmp_path):
    from safetensors import safe_open

    sd = _released_file(tmp_path / "t.pth.tar", TINY, seed=4, tables=True, prefix="")
    for precision in ("fp32", "fp16"):
        assert _import(tmp_path / "t.pth.tar", "--name", precision, "--config", json.dumps(TINY), "--out", tmp_path,
                       "--precision", precision) == 0
        with safe_open(str(tmp_path / f"{precision}.safetensors"), "pt") as f:
            assert f.get_tensor("g_a.0.conv1.weight").dtype == getattr(torch, {"fp32": "float32", "fp16": "float16"}[precision])
            kept = [torch.equal(f.get_tensor(k), sd[k]) for k in
                    ("entropy_bottleneck._quantized_cdf", "gaussian_conditional._quantized_cdf", "entropy_bottleneck._offset")]
        assert all(kept) if precision == "fp32" else not all(kept)
        assert ("kept from the file" in (tmp_path / f"{precision}.md").read_text()) == (precision == "fp32")


def _one_line_error(capsys, code: int, *needles: str) -> str:
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1, err
    for n in needles:
        assert n in err, err
    return err


def test_wrong_or_partial_files_are_refused_naming_the_first_mismatching_keys(pair, tmp_path, capsys):
    good = torch.load(pair["dir"] / "icm.pth.tar", weights_only=True)
    cfg = json.dumps(TINY)

    def attempt(state, *needles):
        p = tmp_path / "bad.pth.tar"
        torch.save({"state_dict": state}, p)
        return _one_line_error(capsys, _import(p, "--name", "bad", "--config", cfg, "--out", tmp_path), *needles)

    partial = dict(good["state_dict"])
    del partial["module.g_s.0.conv.weight"], partial["module.lrp_transforms.2.0.bias"]
    attempt(partial, "2 missing", "g_s.0.conv.weight", "lrp_transforms.2.0.bias")
    extra = dict(good["state_dict"], **{"module.g_a.99.weight": torch.zeros(1)})
    attempt(extra, "1 unexpected", "g_a.99.weight")
    shaped = dict(good["state_dict"], **{"module.h_a.0.skip.weight": torch.zeros(16, 3, 1, 1)})
    attempt(shaped, "wrong shape", "h_a.0.skip.weight [16, 3, 1, 1] (expected [16, 20, 1, 1])")
    # the additional model given as a machine model: the hint says how to import it
    err = _one_line_error(capsys, _import(pair["dir"] / "ica.pth.tar", "--name", "bad", "--config", cfg,
                                          "--out", tmp_path), "--arch tcm-ica")
    assert "missing" in err
    # and the machine model given as the additional one: told --arch tcm, not --arch tcm-ica again
    err = _one_line_error(capsys, _import(pair["dir"] / "icm.pth.tar", "--arch", "tcm-ica", "--base", pair["machine"],
                                          "--name", "bad", "--config", json.dumps(TINY_ICA)),
                          "its latent has 20 channels, not 16", "is imported with --arch tcm)")
    assert "--arch tcm-ica" not in err
    # a checkpoint of another width: the hint names the option that imports it
    wide = dict(TINY, N=16)
    _released_file(tmp_path / "wide.pth.tar", wide, seed=5)
    _one_line_error(capsys, _import(tmp_path / "wide.pth.tar", "--name", "bad", "--config", cfg, "--out", tmp_path),
                    "wrong shape", "its width is N = 16, not 8: import it with --config '{\"N\": 16}'")
    assert _import(tmp_path / "wide.pth.tar", "--name", "wide", "--config", json.dumps(wide), "--out", tmp_path) == 0
    (tmp_path / "junk.pth.tar").write_bytes(b"not a checkpoint")
    _one_line_error(capsys, _import(tmp_path / "junk.pth.tar", "--name", "bad", "--out", tmp_path), "junk.pth.tar")
    assert not (tmp_path / "bad.safetensors").exists()
    # never into the shipped-weights folder
    from saicm.models.catalog import WEIGHTS_DIR

    _one_line_error(capsys, _import(pair["dir"] / "icm.pth.tar", "--name", "bad", "--config", cfg,
                                    "--out", WEIGHTS_DIR), "shipped-weights folder")


def test_a_checkpoint_holding_nan_or_infinite_weights_is_refused(pair, tmp_path, capsys):
    """A diverged run's checkpoint (one NaN weight in g_s) was imported silently, and its decodes held garbage."""
    state = dict(torch.load(pair["dir"] / "icm.pth.tar", weights_only=True)["state_dict"])
    w = state["module.g_s.0.conv.weight"].clone()
    w.view(-1)[0] = float("nan")
    state["module.g_s.0.conv.weight"] = w
    torch.save({"state_dict": state}, tmp_path / "nan.pth.tar")
    _one_line_error(capsys, _import(tmp_path / "nan.pth.tar", "--name", "nan", "--config", json.dumps(TINY),
                                    "--out", tmp_path), "NaN or infinite", "g_s.0.conv.weight")
    assert not (tmp_path / "nan.safetensors").exists()


def test_a_checkpoint_refused_for_an_object_names_it_and_a_way_on(pair, tmp_path, capsys):
    """Newer training code stores numpy numbers (a 'loss'); the whole file was refused as "holds objects other than
    tensors and plain data" without saying which, nor what to do."""
    import numpy as np

    state = torch.load(pair["dir"] / "icm.pth.tar", weights_only=True)["state_dict"]
    torch.save({"state_dict": state, "loss": np.float64(1.5)}, tmp_path / "np.pth.tar")
    _one_line_error(capsys, _import(tmp_path / "np.pth.tar", "--name", "np", "--out", tmp_path),
                    "numpy", "refused, as reading it could run code", "save its weights alone")


def test_coder_tables_left_out_of_the_file_are_computed(pair, tmp_path):
    """A state dict saved without the coder-table buffers (CompressAI fills them only in update()) was refused as
    "7 missing"; empty ones were computed, and absent ones are now too."""
    state = torch.load(pair["dir"] / "icm.pth.tar", weights_only=True)["state_dict"]
    kept = {k: v for k, v in state.items()
            if not k.endswith(("._quantized_cdf", "._offset", "._cdf_length", ".scale_table"))}
    assert len(state) - len(kept) == 7
    torch.save({"state_dict": kept}, tmp_path / "no-tables.pth.tar")
    assert _import(tmp_path / "no-tables.pth.tar", "--name", "nt", "--config", json.dumps(TINY), "--out", tmp_path) == 0
    own = saicm.load_model(tmp_path / "nt.safetensors")[0].state_dict()
    ref = saicm.load_model(pair["machine"])[0].state_dict()
    assert own.keys() == ref.keys() and all(torch.equal(own[k], ref[k]) for k in ref)


def test_a_state_dict_in_safetensors_or_under_a_model_entry_is_imported(pair, tmp_path, capsys):
    """A released-layout state dict saved as .safetensors was refused with "give it with --model" (which then said
    "not a saicm model file"), and one under a 'model' entry as "no state dict"."""
    from safetensors.torch import save_file

    state = torch.load(pair["dir"] / "icm.pth.tar", weights_only=True)["state_dict"]
    save_file({k: v.contiguous() for k, v in state.items()}, str(tmp_path / "icm.safetensors"))
    torch.save({"model": state, "epoch": 3}, tmp_path / "wrapped.pth.tar")
    ref = saicm.load_model(pair["machine"])[0].state_dict()
    for src, name in ((tmp_path / "icm.safetensors", "st"), (tmp_path / "wrapped.pth.tar", "wrapped")):
        assert _import(src, "--name", name, "--config", json.dumps(TINY), "--out", tmp_path / "out") == 0
        own = saicm.load_model(tmp_path / "out" / f"{name}.safetensors")[0].state_dict()
        assert all(torch.equal(own[k], ref[k]) for k in ref)
    # a saicm model file needs no import; a dict without a state dict names its entries
    _one_line_error(capsys, _import(pair["machine"], "--name", "again", "--out", tmp_path / "out"),
                    "already a saicm model file")
    torch.save({"weights": {"a": 1}, "epoch": 3}, tmp_path / "odd.pth.tar")
    _one_line_error(capsys, _import(tmp_path / "odd.pth.tar", "--name", "odd", "--out", tmp_path / "out"),
                    "no state dict", "its entries: weights, epoch")


@pytest.mark.parametrize("args, needle", [
    (["--name", "a/b"], "is not a model name"),
    (["--name", "mse-hyperprior-n64-v5"], "is a shipped model's name"),
    (["--name", "x", "--preset", "XL"], "unknown --preset 'XL' (known: "),
    (["--name", "x", "--config", "{N: 64}"], "--config is not JSON"),
    (["--name", "x", "--config", "[64]"], "--config takes a JSON object"),
    (["--name", "x", "--arch", "tcm-ica"], "needs --base"),
    (["--name", "x", "--arch", "tcm-ica", "--base", "mse-hyperprior-n64-v5"],
     "is a gained-mean-scale-hyperprior model, not an imported tcm"),
    (["--name", "x", "--out", "{tmp}/x.safetensors"], "--out takes a folder"),
    (["--name", "x", "--arch", "mbt2018-mean", "--lam", "0.01", "--alpha", "0.78"],
     "--alpha does not apply to --arch mbt2018-mean"),
    (["--name", "x", "--arch", "mbt2018-mean", "--lam", "0.01", "--config", "{}"],
     "--config does not apply to --arch mbt2018-mean"),
])
def test_import_refuses_bad_options_before_reading_the_checkpoint(args, needle, tmp_path, capsys):
    """Every refusal of import-checkpoint's options is one line and status 2, before the (~300 MB) checkpoint is
    read: the file here is no checkpoint at all, so a check that let the options through would say that instead."""
    junk = tmp_path / "icm.pth.tar"
    junk.write_bytes(b"not a checkpoint")
    args = [a.replace("{tmp}", str(tmp_path)) for a in args]
    out = [] if "--out" in args or "--base" in args else ["--out", tmp_path / "models"]
    _one_line_error(capsys, _import(junk, *args, *out), needle)
    assert not list(tmp_path.rglob("*.safetensors")) and not list(tmp_path.rglob("*.md"))


def test_import_never_replaces_a_model_without_force_nor_puts_a_pair_apart(pair, tmp_path, capsys):
    src, cfg = pair["dir"] / "icm.pth.tar", json.dumps(TINY)
    _one_line_error(capsys, _import(tmp_path / "missing.pth.tar", "--name", "x", "--out", tmp_path),
                    "checkpoint file not found")
    held = tmp_path / "mine.safetensors"
    held.write_bytes(b"someone's model")
    _one_line_error(capsys, _import(src, "--name", "mine", "--config", cfg, "--out", tmp_path),
                    "already exists (use --force")
    assert held.read_bytes() == b"someone's model"
    assert _import(src, "--name", "mine", "--config", cfg, "--out", tmp_path, "--force") == 0
    assert saicm.load_model(held)[1].architecture == "tcm"
    # the additional model's file goes beside its base (its header finds the base there), never elsewhere
    _one_line_error(capsys, _import(pair["dir"] / "ica.pth.tar", "--arch", "tcm-ica", "--base", pair["machine"],
                                    "--name", "apart", "--config", json.dumps(TINY_ICA), "--out", tmp_path),
                    "must lie beside its base")
    assert not (tmp_path / "apart.safetensors").exists()
def test_real_bitstream_decode_equals_the_clamped_forward_exactly(pair):
    net, _ = saicm.load_model(pair["machine"])
    img = natural_image(60, 150, seed=3)  # 60 rows: padded to the model's minimum, 128 (more than one multiple)
    with single_thread_kernels():  # the encoder's analysis on one thread too, as the forward below
        data = saicm.compress(img, model=pair["machine"])
    s = container.unpack(data)
    assert (s.header.pad_bottom, s.header.pad_right) == (68, 42)
    assert s.header.shapes == net.latent_shapes(128, 192) == [(2, 3)]
    decoded = np.asarray(saicm.decompress(data, model=pair["machine"]))
    from saicm.codec.pipeline import prepare

    _, x, _, _ = prepare(img, net.multiple, None, net.min_size)
    with torch.no_grad(), single_thread_kernels():
        out = net.compress(x)
        assert [tuple(out["shape"])] == s.header.shapes
        x_hat = net.decompress(out["strings"], out["shape"])["x_hat"]
        ref = net(x)["x_hat"].clamp(0, 1)
    assert torch.equal(x_hat, ref)
    pixels = ref[0, :, :60, :150].mul(255).round().byte().permute(1, 2, 0).numpy()
    assert np.array_equal(decoded, pixels)


def test_a_header_with_other_padding_is_refused(pair):
    data = saicm.compress(natural_image(60, 150), model=pair["machine"])
    s = container.unpack(data)
    s.header.pad_bottom = 4  # 64 rows: a multiple of the model's 64, but below its minimum of 128
    with pytest.raises(FormatError, match="padding"):
        saicm.decompress(container.pack(s), model=pair["machine"])


def test_imported_models_are_found_by_name_in_the_user_model_folder(pair, monkeypatch):
    monkeypatch.setenv("SAICM_MODELS", str(pair["machine"].parent))
    data = saicm.compress(natural_image(64, 64), model="tiny-icm")
    assert saicm.describe(data)["model"] == "tiny-icm"
    assert saicm.decompress(data).size == (64, 64)  # the header's name finds it
    monkeypatch.setenv("SAICM_MODELS", str(pair["dir"]))
    with pytest.raises(ModelError, match="coded with model 'tiny-icm'.*does not ship"):
        saicm.decompress(data)


def test_the_imported_icm_v1_pair_decodes_both_layers_from_one_file(pair):
    img = natural_image(100, 150, seed=7)
    with single_thread_kernels():
        data = saicm.compress(img, model=pair["scalable"])
    machine_only = saicm.compress(img, model=pair["machine"])
    assert data.startswith(machine_only) and len(data) > len(machine_only)  # the machine layer is the base's stream
    layers = saicm.describe(data)["layers"]
    assert layers["human"]["model"] == "tiny-icm-v1" and layers["human"]["latent_shapes"] == [[2, 3]]
    human = np.asarray(saicm.decompress(data, model=pair["scalable"]))
    machine = np.asarray(saicm.decompress(data, layer="machine", model=pair["machine"]))
    assert np.array_equal(machine, np.asarray(saicm.decompress(machine_only, model=pair["machine"])))
    assert not np.array_equal(human, machine)
    # the human layer is the fused forward: ICA's g_s(ŷ_machine + ŷ_add on the first 16 channels)
    net, _ = saicm.load_model(pair["scalable"])
    from saicm.codec.pipeline import prepare

    _, x, _, _ = prepare(img, net.multiple, None, net.min_size)
    with torch.no_grad(), single_thread_kernels():
        ref = net(x)["x_hat"].clamp(0, 1)
    pixels = ref[0, :, :100, :150].mul(255).round().byte().permute(1, 2, 0).numpy()
    assert np.array_equal(human, pixels)
    assert net.config["additional"]["architecture"] == "tcm" and net.channels == 16


DECODE = """
import sys, hashlib, torch
torch.set_num_threads(int(sys.argv[1]))
import saicm, numpy as np
for path, model in zip(sys.argv[2::2], sys.argv[3::2]):
    img = saicm.decompress(open(path, "rb").read(), model=model)
    print(hashlib.sha256(np.asarray(img).tobytes()).hexdigest())
"""


def test_decode_is_bit_exact_across_processes_and_thread_counts(pair, tmp_path):
    img = natural_image(130, 200, seed=5)
    one, two = tmp_path / "one.saicm", tmp_path / "two.saicm"
    one.write_bytes(saicm.compress(img, model=pair["machine"]))
    two.write_bytes(saicm.compress(img, model=pair["scalable"]))
    args = [one, pair["machine"], two, pair["scalable"]]
    proc = subprocess.Popen([sys.executable, "-c", DECODE, "2", *map(str, args)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)  # another process, two threads
    n = torch.get_num_threads()
    torch.set_num_threads(1)  # this process, one thread (models loaded here are cached: a fresh load each)
    try:
        here = [hashlib.sha256(np.asarray(saicm.decompress(f.read_bytes(), model=m)).tobytes()).hexdigest()
                for f, m in ((one, pair["machine"]), (two, pair["scalable"]))]
    finally:
        torch.set_num_threads(n)
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err[-2000:]
    assert out.split() == here


def test_train_tcm_from_the_command_line(tmp_path, capsys):
    data = tmp_path / "data"
    data.mkdir()
    for i in range(2):
        Image.fromarray(natural_image(260, 300, seed=i)).save(data / f"{i}.png")
    common = ["train", "--data", data, "--architecture", "tcm", "--N", "4", "--M", "10", "--steps", "2",
              "--batch", "1", "--log-every", "1", "--quiet"]
    code = main([*map(str, common), "--out", str(tmp_path / "small"), "--patch", "128"])
    _one_line_error(capsys, code, "--patch 256")
    code = main([*map(str, common), "--out", str(tmp_path / "rates"), "--patch", "256", "--lambdas", "0.01,0.05"])
    _one_line_error(capsys, code, "single-rate")
    assert main([*map(str, common), "--out", str(tmp_path / "run"), "--patch", "256", "--lambdas", "0.02"]) == 0
    log = [json.loads(line) for line in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log] == [1, 2] and all(np.isfinite(r["loss"]) for r in log)
    final = tmp_path / "run" / "model.safetensors"
    net, info = saicm.load_model(final)
    assert info.architecture == "tcm" and info.config["N"] == 4 and info.config["lambdas"] == [0.02]
    assert net.min_size == 256 and net.multiple == 128
    assert saicm.decompress(saicm.compress(natural_image(40, 50), model=final), model=final).size == (50, 40)


def test_train_tcm_without_sizes_builds_the_released_ones(monkeypatch):
    """Without --N/--M, tcm was built at the trainer's 64/128, which its 5 slices refuse (M = 128)."""
    from saicm.models import registry, tcm
    from saicm.train.config import TrainConfig

    built = {}

    class Stop(Exception):
        pass

    def capture(name, **opts):
        built.update(opts)
        raise Stop

    monkeypatch.setattr(registry, "build_architecture", capture)
    with pytest.raises(Stop):
        tcm.TCM.from_train_config(TrainConfig(data=["x"], out="y", architecture="tcm"), None)
    assert (built["N"], built["M"]) == (128, 320)
    with pytest.raises(Stop):
        tcm.TCM.from_train_config(TrainConfig(data=["x"], out="y", architecture="tcm", N=4, M=10), None)
    assert (built["N"], built["M"]) == (4, 10)


def test_the_imported_pair_fine_tunes_with_its_base_frozen(pair, tmp_path, monkeypatch):
    from saicm.train.config import TrainConfig
    from saicm.train.trainer import train

    monkeypatch.setenv("SAICM_MODELS", str(pair["machine"].parent))  # the run folder has no base beside it
    data = tmp_path / "data"
    data.mkdir()
    Image.fromarray(natural_image(140, 150, seed=1)).save(data / "0.png")
    final = train(TrainConfig(data=str(data), out=str(tmp_path / "run"), init=str(pair["scalable"]), steps=1,
                              batch=1, patch=128, progress=False))
    net, info = saicm.load_model(final)
    assert info.architecture == "scalable-fusion" and net.config["additional"]["architecture"] == "tcm"
    before, _ = saicm.load_model(pair["scalable"])
    assert not torch.equal(net.g_s[0].conv.weight, before.g_s[0].conv.weight)  # the human synthesis moved
    data = saicm.compress(natural_image(100, 150), model=final)
    assert saicm.decompress(data, model=final).size == (150, 100)


def test_a_scalable_model_trained_over_an_imported_tcm_codes_with_the_auto_engine(pair, tmp_path):
    """``saicm train --base IMPORTED-TCM`` builds the built-in additional codec, which the portable engine codes, over
    a base it does not: ``--engine auto`` (the default) refused the model ("use --engine compressai"), where auto is
    that fallback."""
    from saicm.engine.scalable import supports_scalable
    from saicm.models import build_architecture, save_model
    from saicm.models.catalog import full_checksum, read_info

    torch.manual_seed(0)
    out = pair["machine"].parent
    net = build_architecture("scalable-fusion", base="tiny-icm", base_sha256=full_checksum(pair["machine"]).hex(), N=8,
                             slice_channels=4, m=2, lambdas=[0.01], model_dir=str(out))
    path = out / "tiny-sc-hyper.safetensors"
    save_model(net, path)
    data = saicm.compress(natural_image(64, 64, seed=1), model=path)  # (ModelError: use --engine compressai)
    assert saicm.decompress(data, model=path).size == (64, 64)
    assert not supports_scalable(read_info(path))
    assert saicm.describe(data)["format_version"] == 1  # auto codes it with CompressAI: eval's label said format 3
    from saicm.eval.codecs import get_codec

    for layer in ("machine", "human"):
        assert "format" not in get_codec(f"{path},layer={layer}").config()


def test_a_tcm_file_decoded_with_another_machines_tables_is_refused(pair, monkeypatch):
    """TCM files are format 1: their tables come from float networks, which another CPU can round into another
    table; the channel-wise stream then desynchronises. Its decode now codes its symbols again and refuses a
    stream they do not give back (``decoder.finish()``; without it this decoded garbage, 0.25.0 review)."""
    from compressai.entropy_models import GaussianConditional

    data = saicm.compress(natural_image(60, 150, seed=3), model=pair["machine"])
    saicm.decompress(data, model=pair["machine"])  # (its own tables: decodes)
    real = GaussianConditional.build_indexes

    def one_off(self, scales):
        idx = real(self, scales).clone()
        flat = idx.view(-1)
        flat[0] = flat[0] + 1 if int(flat[0]) + 1 < len(self.scale_table) else flat[0] - 1
        return idx

    monkeypatch.setattr(GaussianConditional, "build_indexes", one_off)
    with pytest.raises(saicm.SaicmError, match="does not decode consistently"):
        saicm.decompress(data, model=pair["machine"])


@pytest.mark.parametrize("tz", ["Etc/GMT-14", "Etc/GMT+12"])
def test_cards_are_dated_by_the_utc_day_whatever_the_local_zone(tz, monkeypatch):
    """import-checkpoint dated its cards by the local day, the results files by UTC: at any hour one of these two
    zones is on another day than UTC."""
    import datetime
    import time

    from saicm.models.released import _today

    monkeypatch.setenv("TZ", tz)
    time.tzset()
    try:
        utc_day = lambda: datetime.datetime.now(datetime.timezone.utc).date().isoformat()  # noqa: E731
        before = utc_day()
        day = _today()
        assert day in {before, utc_day()}  # (either side of a UTC midnight passed during the call)
    finally:
        monkeypatch.undo()
        time.tzset()


def test_a_checkpoint_holding_infinite_weights_in_many_tensors_is_refused_naming_three(pair, tmp_path, capsys):
    """Infinite values are refused as NaN ones are (a diverged run's overflow); of many such tensors the message
    names three and says there are more."""
    state = dict(torch.load(pair["dir"] / "icm.pth.tar", weights_only=True)["state_dict"])
    bad = [k for k, v in state.items() if v.is_floating_point() and v.numel() > 1 and "g_s" in k][:4]
    assert len(bad) == 4
    for k in bad:
        w = state[k].clone()
        w.view(-1)[0] = float("-inf")
        state[k] = w
    torch.save({"state_dict": state}, tmp_path / "inf.pth.tar")
    _one_line_error(capsys, _import(tmp_path / "inf.pth.tar", "--name", "inf", "--config", json.dumps(TINY),
                                    "--out", tmp_path), "4 tensor(s) hold NaN or infinite values",
                    bad[0].replace("module.", ""), ", ...)")
    assert not (tmp_path / "inf.safetensors").exists()


def test_a_checkpoint_of_a_preset_s_or_m_width_is_told_the_preset_that_imports_it():
    """Of a released width (N = 64: preset S, 96: M) the hint names ``--preset`` beside ``--config``; of another
    width, and of the additional model (which has no presets), ``--config`` alone."""
    from torch import nn

    from saicm.errors import ModelError
    from saicm.models.tcm import check_released_keys

    class Block(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv1 = nn.Conv2d(3, 16, 1)

    model = nn.Module()
    model.g_a = nn.Sequential(Block())
    for n, told in ((64, " or --preset S)"), (96, " or --preset M)"), (80, "--config '{\"N\": 80}')")):
        state = {"g_a.0.conv1.weight": torch.zeros(2 * n, 3, 1, 1), "g_a.0.conv1.bias": torch.zeros(2 * n)}
        with pytest.raises(ModelError) as e:
            check_released_keys(model, state)
        assert f"its width is N = {n}, not 8" in str(e.value) and told in str(e.value), str(e.value)
        with pytest.raises(ModelError) as e:
            check_released_keys(model, state, "the released ICM-v1 additional model (ica)")
        assert "--preset" not in str(e.value), str(e.value)


def test_a_checkpoint_holding_ema_weights_says_they_are_not_the_ones_imported(tmp_path, monkeypatch):
    """A trainer's checkpoint with an exponential moving average of the weights beside them ({"state_dict": ...,
    "ema": ...}, often the better model) was imported from 'state_dict' with the EMA passed over in silence; it is
    said, with the command that saves the EMA entry as a file of its own (which then imports as any state dict)."""
    import os
    import re
    import subprocess
    import sys

    from saicm.errors import SaicmWarning
    from saicm.models.tcm import read_released_checkpoint

    weights, ema = {"g_a.0.weight": torch.zeros(2, 3)}, {"g_a.0.weight": torch.ones(2, 3)}
    ckpt = tmp_path / "it's a ckpt.pth.tar"  # (a quote in the path broke the command said: the review's note)
    torch.save({"state_dict": weights, "ema": ema, "epoch": 7}, ckpt)
    with pytest.warns(SaicmWarning, match=r"also holds EMA weights \('ema'\), not imported: the 'state_dict' entry "
                                          r"is") as said:
        assert torch.equal(read_released_checkpoint(ckpt)["g_a.0.weight"], weights["g_a.0.weight"])
    command = re.search(r'\((python -c ".*)\) and import that', str(said[0].message)).group(1)
    monkeypatch.chdir(tmp_path)
    subprocess.run(["bash", "-c", 'python() { "$PY" "$@"; }; ' + command], check=True, timeout=120,
                   env=dict(os.environ, PY=sys.executable))  # (run as the user would paste it into a shell)
    assert torch.equal(read_released_checkpoint(tmp_path / "ema.pth")["g_a.0.weight"], ema["g_a.0.weight"])
    import warnings

    with warnings.catch_warnings():  # (no EMA entry: nothing said; "schema" is no EMA)
        warnings.simplefilter("error")
        torch.save({"model": weights, "schema": {"x": torch.zeros(1)}}, tmp_path / "plain.pth.tar")
        read_released_checkpoint(tmp_path / "plain.pth.tar")


def test_a_checkpoint_of_half_precision_weights_written_at_fp32_is_said(pair, tmp_path, capsys):
    """fp16 weights imported at the default fp32 made a file twice their size, the same values, unsaid; with
    --precision fp16 the weights are kept bit for bit at half the size."""
    import warnings

    sd = torch.load(pair["dir"] / "icm.pth.tar", weights_only=True)
    half = {k: (v.half() if v.is_floating_point() else v) for k, v in sd["state_dict"].items()}
    torch.save({"state_dict": half}, tmp_path / "half.pth.tar")
    args = ("--name", "h32", "--config", json.dumps(TINY), "--out", tmp_path)
    with pytest.warns(UserWarning, match=r"half.pth.tar holds fp16 weights: .* --precision fp16 keeps them"):
        assert _import(tmp_path / "half.pth.tar", *args) == 0
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert _import(tmp_path / "half.pth.tar", "--precision", "fp16", "--name", "h16", "--config",
                       json.dumps(TINY), "--out", tmp_path) == 0
        assert _import(pair["dir"] / "icm.pth.tar", "--name", "f32", "--config", json.dumps(TINY),
                       "--out", tmp_path) == 0  # fp32 weights at fp32: nothing said
    a, _ = saicm.load_model(tmp_path / "h32.safetensors")
    b, _ = saicm.load_model(tmp_path / "h16.safetensors")
    for (k, x), y in zip(a.named_parameters(), b.parameters()):
        assert torch.equal(x.float(), y.float()), k  # the same weights, bit for bit
