"""The context-model architecture (saicm/models/context.py): starts as the hyperprior it was initialised from,
round-trips exactly, decodes the same on every thread count and process, codes large images in strips, trains."""

import hashlib
import json
import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image

import saicm
from saicm.cli import main
from saicm.codec import container, tiling
from saicm.errors import SaicmError
from saicm.models import build_architecture, load_model, save_model

from .conftest import natural_image, run_without_torch, switch_contexts_on

ARCH = "gained-context-hyperprior"


def _from_v5(**extra) -> torch.nn.Module:
    src, info = load_model("mse-hyperprior-n64-v5")
    net = build_architecture(ARCH, **info.config, **extra)
    missing, unexpected = net.load_state_dict(src.state_dict(), strict=False)
    assert not unexpected and missing and all(k.startswith(net.NEW_PARAMETERS) for k in missing)
    return net


@pytest.fixture(scope="module")
def ctx_path(tmp_path_factory):
    """A context model from v5 with its contexts switched on (random aggregation outputs), saved as shipped."""
    torch.manual_seed(3)
    net = switch_contexts_on(_from_v5())
    path = tmp_path_factory.mktemp("ctx") / "ctx.safetensors"
    save_model(net, path)
    return path


def test_an_untrained_context_model_codes_like_its_hyperprior(tmp_path):
    """Zero-initialised aggregation: the same parameters per element, so the same rate and the same pixels."""
    from saicm.device import single_thread_kernels

    with single_thread_kernels():  # one thread, and the caller's count again after (later tests ran on one thread)
        net = _from_v5()
        path = tmp_path / "untrained-ctx.safetensors"  # (a mkdtemp() folder was left in /tmp by every run)
        save_model(net, path)
        img = natural_image(100, 140, seed=2)
        for q in (1, 7):
            # the portable engine: the same integer tables and means, so exactly the same latent and pixels
            ours = saicm.compress(img, model=path, quality=q)
            theirs = saicm.compress(img, model="mse-hyperprior-n64-v5", quality=q)
            assert container.unpack(ours).header.version == container.unpack(theirs).header.version == 3
            size = [sum(len(b) for b in container.unpack(d).strings) for d in (ours, theirs)]
            assert abs(size[0] - size[1]) <= 4 * 8  # the same symbols in 8 passes instead of one
            assert np.array_equal(np.asarray(saicm.decompress(ours, model=path)),
                                  np.asarray(saicm.decompress(theirs)))
            ours = saicm.compress(img, model=path, quality=q, engine="compressai")
            # the hyperprior as CompressAI codes it (float hyper-synthesis, format 1), like the context model
            theirs = saicm.compress(img, model="mse-hyperprior-n64-v5", quality=q, engine="compressai")
            size = [sum(len(b) for b in container.unpack(d).strings) for d in (ours, theirs)]
            assert abs(size[0] - size[1]) <= 4  # the same bits in another order
            a = np.asarray(saicm.decompress(ours, model=path)).astype(int)
            b = np.asarray(saicm.decompress(theirs)).astype(int)
            assert np.abs(a - b).max() <= 1


def test_round_trip_and_rate_with_contexts_on(ctx_path):
    img = natural_image(130, 170, seed=4)
    data = saicm.compress(img, model=ctx_path, quality=4)
    assert saicm.compress(img, model=ctx_path, quality=4) == data  # deterministic encoder
    out = np.asarray(saicm.decompress(data, model=ctx_path))
    assert out.shape == img.shape and np.abs(out.astype(int) - img.astype(int)).mean() < 20
    net, _ = load_model(ctx_path)
    x = torch.from_numpy(img).permute(2, 0, 1)[None].float() / 255
    x = torch.nn.functional.pad(x, (0, 192 - 170, 0, 192 - 130))
    # the decoder's latent is what the encoder quantised: the contexts read the same values at both ends
    lat = net.analyse(x, 4)
    enc = net.compress_latents(lat)
    z_hat = net.entropy_bottleneck.decompress(enc["strings"][1], enc["shape"])
    y_enc, _, _ = net._code_y(lat["y"], net._hyper_params(z_hat, None))
    y_dec = net.decompress_latent(enc["strings"], enc["shape"], 4)
    _, ig = net._gains(net._qindex(4, 1))
    assert torch.equal(y_dec, y_enc * ig)


DECODE = """
import sys, hashlib, torch
torch.set_num_threads(int(sys.argv[1]))
import saicm, numpy as np
print(hashlib.sha256(open(sys.argv[2], "rb").read()).hexdigest())
print(hashlib.sha256(saicm.compress(np.load(sys.argv[4]), model=sys.argv[3], quality=5, engine=sys.argv[5])).hexdigest())
img = saicm.decompress(open(sys.argv[2], "rb").read(), model=sys.argv[3])
print(hashlib.sha256(np.asarray(img).tobytes()).hexdigest())
"""


@pytest.mark.parametrize("engine", ["auto", "compressai"])
def test_encode_and_decode_do_not_depend_on_threads_or_process(ctx_path, tmp_path, engine):
    """Both coders (the portable engine's integer contexts, format 3; the PyTorch model's on one thread,
    format 1): the same bytes and pixels in another process on two threads."""
    img = natural_image(150, 210, seed=6)
    np.save(tmp_path / "img.npy", img)
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        data = saicm.compress(img, model=ctx_path, quality=5, engine=engine)
        here = hashlib.sha256(np.asarray(saicm.decompress(data, model=ctx_path)).tobytes()).hexdigest()
    finally:
        torch.set_num_threads(n)
    (tmp_path / "a.saicm").write_bytes(data)
    proc = subprocess.run([sys.executable, "-c", DECODE, "2", str(tmp_path / "a.saicm"), str(ctx_path),
                           str(tmp_path / "img.npy"), engine], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    file_hash, reencoded, decoded = proc.stdout.split()
    assert reencoded == file_hash  # two threads, another process: the same bytes
    assert decoded == here


@pytest.mark.parametrize("engine,version", [("auto", container.PORTABLE_VERSION),
                                            ("compressai", container.STRIPS_VERSION)])
def test_large_images_in_strips(ctx_path, monkeypatch, engine, version):
    """One stream per strip of latent rows, contexts inside the strip; decodes exactly what the encoder
    quantised (the pixels are close to the one-piece decode)."""
    monkeypatch.setattr(tiling, "STRIP_SYMBOLS", 1000)
    monkeypatch.setattr(tiling, "STRIP_TARGET", 128 * 8 * 2)
    img = natural_image(120, 128, seed=8)
    data = saicm.compress(img, model=ctx_path, quality=3, engine=engine)
    out = np.asarray(saicm.decompress(data, model=ctx_path)).astype(int)
    whole = np.asarray(saicm.decompress(_whole(img, ctx_path, monkeypatch, engine), model=ctx_path)).astype(int)
    assert container.unpack(data).header.version == version and len(container.unpack(data).strings) > 2
    assert out.shape == whole.shape and np.abs(out - whole).mean() < 3


def _whole(img, path, monkeypatch, engine):
    monkeypatch.setattr(tiling, "STRIP_SYMBOLS", 1 << 40)
    monkeypatch.setattr(tiling, "STRIP_TARGET", 1 << 24)  # one strip
    return saicm.compress(img, model=path, quality=3, engine=engine)


@pytest.mark.parametrize("engine", ["auto", "compressai"])
def test_damaged_streams_fail_with_one_line_or_decode_to_garbage(ctx_path, engine):
    data = bytearray(saicm.compress(natural_image(64, 64, seed=1), model=ctx_path, quality=2, engine=engine))
    rng = np.random.default_rng(0)
    for _ in range(20):
        bad = bytearray(data)
        for i in rng.integers(40, len(bad), 4):
            bad[i] ^= int(rng.integers(1, 256))
        try:
            saicm.decompress(bytes(bad), model=ctx_path)
        except SaicmError as e:
            assert "\n" not in str(e)


def test_training_from_a_hyperprior_on_the_command_line(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    Image.fromarray(natural_image(140, 150, seed=1)).save(data / "0.png")
    args = ["train", "--data", str(data), "--out", str(tmp_path / "run"), "--architecture", ARCH, "--init",
            "mse-hyperprior-n64-v5", "--steps", "2", "--batch", "1", "--patch", "128", "--quant", "ste",
            "--log-every", "1", "--quiet", "--lr", "1e-3"]
    for prefix in ("g_a", "g_s", "h_a", "h_s", "entropy_bottleneck", "log_gain", "log_inv_gain"):
        args += ["--freeze", prefix]
    assert main(args) == 0
    log = [json.loads(line) for line in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log] == [1, 2] and all(np.isfinite(r["loss"]) for r in log)
    net, info = load_model(tmp_path / "run" / "model.safetensors")
    v5, _ = load_model("mse-hyperprior-n64-v5")
    assert info.architecture == ARCH and info.config["groups"] == [16, 16, 32, 64]
    assert torch.equal(net.g_a[0].weight, v5.g_a[0].weight)  # frozen: unchanged
    assert any(float(a[-1].weight.abs().sum()) > 0 for a in net.aggregate)  # the contexts learned something


def test_training_gives_a_context_model_contexts_of_another_size(ctx_path, tmp_path, capsys):
    """``--context-hidden`` / ``--context-kernel`` from a context model: its transforms and hyperprior carried over,
    the contexts built anew at the new size (what a lighter context costs is trained, not guessed); refused for an
    architecture without contexts."""
    data = tmp_path / "data"
    data.mkdir()
    Image.fromarray(natural_image(140, 150, seed=1)).save(data / "0.png")
    common = ["--data", str(data), "--steps", "1", "--batch", "1", "--patch", "128", "--quiet", "--lr", "1e-4"]
    assert main(["train", "--out", str(tmp_path / "run"), "--architecture", ARCH, "--init", str(ctx_path),
                 "--context-hidden", "32", "--context-kernel", "3", "--freeze", "g_a", *common]) == 0
    net, info = load_model(tmp_path / "run" / "model.safetensors")
    src, _ = load_model(ctx_path)
    assert info.config["hidden"] == 32 and info.config["channel_kernel"] == 3
    assert net.channel[1][0].weight.shape[:3] == (32, 16, 3) and net.aggregate[0][0].weight.shape[0] == 32
    assert torch.equal(net.g_a[0].weight, src.g_a[0].weight)
    n_small = sum(p.numel() for n, p in net.named_parameters() if n.startswith(net.NEW_PARAMETERS))
    n_big = sum(p.numel() for n, p in src.named_parameters() if n.startswith(src.NEW_PARAMETERS))
    assert n_small < 0.4 * n_big  # 416,320 against 1,224,960 (the spatial contexts keep their size)
    assert main(["train", "--out", str(tmp_path / "bad"), "--init", "mse-hyperprior-n64-v5", "--context-hidden", "32",
                 *common]) != 0
    assert "apply to context models" in capsys.readouterr().err


def test_a_new_context_model_of_other_sizes_trains_or_is_refused_in_one_line(tmp_path, capsys):
    data = tmp_path / "data"
    data.mkdir()
    Image.fromarray(natural_image(140, 150, seed=1)).save(data / "0.png")
    common = ["train", "--data", str(data), "--architecture", ARCH, "--N", "16", "--steps", "1", "--batch", "1",
              "--patch", "128", "--quiet"]
    assert main([*common, "--out", str(tmp_path / "a"), "--M", "32", "--context-hidden", "8",
                 "--context-kernel", "3"]) == 0
    _, info = load_model(tmp_path / "a" / "model.safetensors")
    assert info.config["groups"] == [4, 4, 8, 16] and (info.config["hidden"], info.config["channel_kernel"]) == (8, 3)
    capsys.readouterr()
    assert main([*common, "--out", str(tmp_path / "g"), "--M", "32", "--context-groups", "8,24",
                 "--no-checkerboard"]) == 0
    net, info = load_model(tmp_path / "g" / "model.safetensors")
    assert info.config["groups"] == [8, 24] and info.config["checkerboard"] is False
    assert [type(s).__name__ for s in net.spatial] == ["Identity", "Identity"]
    # from that model, without the options: its layout kept (no contexts start anew)
    assert main([*common, "--out", str(tmp_path / "g2"), "--init", str(tmp_path / "g" / "model.safetensors")]) == 0
    net2, info2 = load_model(tmp_path / "g2" / "model.safetensors")
    assert info2.config["groups"] == [8, 24] and info2.config["checkerboard"] is False
    assert main([*common, "--out", str(tmp_path / "b"), "--M", "36"]) != 0
    assert "M=36 is not a multiple of 8" in capsys.readouterr().err
    assert main([*common, "--out", str(tmp_path / "b"), "--M", "32", "--context-groups", "8,8"]) != 0
    assert "summing to M=32" in capsys.readouterr().err
    assert main(["train", "--data", str(data), "--out", str(tmp_path / "b"), "--no-checkerboard", "--steps", "1",
                 "--quiet"]) != 0
    assert "apply to" in capsys.readouterr().err
    assert main([*common, "--out", str(tmp_path / "c"), "--context-kernel", "4"]) != 0
    assert "odd" in capsys.readouterr().err


def test_bad_groups_are_refused():
    with pytest.raises(ValueError, match="groups"):
        build_architecture(ARCH, N=8, M=16, lambdas=[0.01], groups=[8, 4])


# --- the portable engine (saicm.engine.context): exact integer contexts ----------------------------------

def test_portable_files_cross_back_ends_and_cost_what_the_pytorch_coder_does(ctx_path):
    img = natural_image(130, 200, seed=9)
    files = {e: saicm.compress(img, model=ctx_path, quality=4, engine=e) for e in ("onnx", "torch", "compressai")}
    assert [container.unpack(files[e]).header.version for e in files] == [3, 3, 1]
    for e in ("onnx", "torch"):
        a, b = (np.asarray(saicm.decompress(files[e], model=ctx_path, engine=d)).astype(int) for d in ("onnx", "torch"))
        assert np.abs(a - b).max() <= 1
        assert np.array_equal(a, np.asarray(saicm.decompress(files[e], model=ctx_path, engine="onnx")))
        assert abs(len(files[e]) - len(files["compressai"])) <= 0.02 * len(files["compressai"]) + 32


def test_integer_contexts_match_the_float_networks(ctx_path):
    """The engine's means of every pass against the PyTorch contexts fed the same decoded latent and hyperprior
    parameters: equal to the integer weights' rounding (measured 3e-5 at most), so few symbols change table."""
    from saicm.engine import hypernet
    from saicm.engine.model import load
    from saicm.models.catalog import read_info

    pm = load(read_info(ctx_path))
    net, _ = load_model(ctx_path)
    rng = np.random.default_rng(2)
    p = pm._hyper_rows(rng.integers(-3, 4, (pm.N, 3, 4)))(0, 12)  # hyperprior parameters of a random hyper-latent
    y = rng.normal(0, 4, (pm.M, 12, 16)) * 0.5
    units, passes = pm._code(p, y=y)
    f = lambda a: torch.from_numpy(np.ldexp(a.astype(np.float64), -hypernet.FRAC)).float()[None]  # noqa: E731
    params, y_hat = f(p), f(units)
    anchors = torch.from_numpy(((np.arange(12)[:, None] + np.arange(16)[None]) % 2 == 0))
    worst, n = 0.0, 0
    with torch.no_grad():
        for k, (a, b) in enumerate(net._bounds()):
            side = net._side(params, a, b)
            ch = net._channel_context(k, side, y_hat[:, :a] if a else None)
            for sel, hat in ((anchors, None), (~anchors, torch.where(anchors, y_hat[:, a:b], 0))):
                _, means = net._group_params(k, side, ch, hat)
                sym, _ = passes[n]
                ours = units[a:b][:, sel.numpy()] - (sym << hypernet.FRAC)
                worst = max(worst, float(np.abs(np.ldexp(ours.astype(np.float64), -hypernet.FRAC)
                                                - means[0][:, sel].double().numpy()).max()))
                n += 1
    assert n == len(passes) == 8 and worst < 1e-3


def test_context_models_code_without_pytorch(ctx_path, tmp_path):
    img = tmp_path / "in.png"
    Image.fromarray(natural_image(96, 130, seed=3)).save(img)
    r = run_without_torch(
        "import sys, numpy as np, saicm\n"
        f"d = saicm.compress(r'{img}', model=r'{ctx_path}', quality=3)\n"
        f"out = np.asarray(saicm.decompress(d, model=r'{ctx_path}'))\n"
        "print(out.shape, len(d), [m for m in ('torch', 'compressai') if sys.modules.get(m)])\n", tmp_path / "cache")
    assert r.returncode == 0, r.stderr[-2000:]
    shape, _, mods = r.stdout.strip().partition(")")
    assert shape == "(96, 130, 3" and mods.strip().endswith("[]")


def test_portable_engine_codes_the_other_layouts(tmp_path):
    """One pass per group (``checkerboard=False``) and other group splits, on both transform back-ends."""
    torch.manual_seed(4)
    for cfg in ({"groups": [8, 16], "checkerboard": False}, {"groups": [4, 4, 16], "checkerboard": True},
                {"groups": [8, 16], "hidden": 12, "channel_kernel": 3}):  # a lighter context
        net = switch_contexts_on(build_architecture(ARCH, N=16, M=24, lambdas=[0.003, 0.03], **cfg))
        path = tmp_path / f"ctx-{len(cfg['groups'])}.safetensors"
        save_model(net, path)
        img = natural_image(70, 90, seed=7)
        data = saicm.compress(img, model=path, quality=2)
        assert container.unpack(data).header.version == container.PORTABLE_VERSION
        a, b = (np.asarray(saicm.decompress(data, model=path, engine=e)).astype(int) for e in ("onnx", "torch"))
        assert a.shape == (70, 90, 3) and np.abs(a - b).max() <= 1
        c = np.asarray(saicm.decompress(saicm.compress(img, model=path, quality=2, engine="compressai"), model=path))
        assert c.shape == (70, 90, 3)  # the PyTorch coder (format 1) reads the same options from the file
        ref = saicm.compress(img, model=path, quality=2, engine="compressai")
        assert abs(len(data) - len(ref)) <= 0.05 * len(ref) + 32


def test_coder_tables_of_an_entropy_model_not_updated_are_refused_and_otherwise_its_own():
    """The one rule of the TCM and context models' coders: tables that ``update()`` never filled are a ValueError
    (coding with them would write nothing decodable), filled ones are the model's own CDFs, lengths and offsets."""
    from compressai.entropy_models import GaussianConditional

    from saicm.entropy.bounded import coder_tables

    gc = GaussianConditional(None)
    with pytest.raises(ValueError, match="call update"):
        coder_tables(gc)
    gc.update_scale_table(torch.tensor([0.5, 2.0]))
    cdf, lengths, offsets = coder_tables(gc)
    assert len(cdf) == len(lengths) == len(offsets) == 2 and lengths == gc.cdf_length.tolist()
    assert all(len(c) >= n for c, n in zip(cdf, lengths)) and offsets == gc.offset.tolist()
