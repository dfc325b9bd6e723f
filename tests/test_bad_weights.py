"""Numerically hostile weights: model files holding NaN, infinities or huge values (a diverged run's, an fp16
rounding beyond its range, an edited file), and what coding with them does: refused in one line, never a traceback,
never a stream whose decode depends on the CPU."""

import numpy as np
import pytest

import saicm
from saicm.errors import ModelError


def _edited(src, dst, **values):
    """A copy of the weight file ``src`` at ``dst`` (its metadata kept) with ``values``: a tensor's name (dots as
    ``__``) → the value its first element (``(value, "all")``: every element) takes."""
    from safetensors import safe_open
    from safetensors.numpy import save_file

    with safe_open(str(src), framework="np") as f:
        meta, state = f.metadata(), {k: f.get_tensor(k) for k in f.keys()}
    for name, value in values.items():
        value, every = value if isinstance(value, tuple) else (value, None)
        a = state[name.replace("__", ".")].copy()
        with np.errstate(over="ignore"):
            if every:
                a[...] = value
            else:
                a.flat[0] = value
        state[name.replace("__", ".")] = a
    save_file(state, str(dst), metadata=meta)
    return dst


IMAGE = np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)


@pytest.mark.parametrize("edit", [dict(h_s__0__bias=np.nan), dict(h_s__4__bias=-np.inf),
                                  dict(gaussian_conditional__scale_table=np.nan),
                                  dict(entropy_bottleneck__quantiles=(np.inf, "all")), dict(g_s__0__weight=np.inf),
                                  dict(g_a__0__weight=np.nan), dict(log_inv_gain=np.nan),
                                  dict(g_s__6__bias=1e30)])  # (beyond fp16: infinite in the file)
@pytest.mark.parametrize("engine", ["auto", "compressai"])
def test_a_model_file_with_non_finite_weights_is_refused_in_one_line(tiny_model, tmp_path, edit, engine):
    """Such files were coded with: NaN biases of the hyper-synthesis and NaN coder-table scales went through an
    int64 cast whose result depends on the CPU (x86: -2**63, ARM: 0), so a file decoded differently on another
    machine; NaN in the analysis was a ValueError traceback ("LEB128 of a negative number"), in the synthesis
    a black image, said nowhere."""
    bad = _edited(tiny_model, tmp_path / "bad.safetensors", **edit)
    name = next(iter(edit)).replace("__", ".")
    with pytest.raises(ModelError, match=rf"1 tensor\(s\) of the weight file hold NaN or infinite values \({name}\)"):
        saicm.compress(IMAGE, model=bad, engine=engine)


def test_the_pytorch_model_of_such_a_file_is_refused_too(tiny_model, tmp_path):
    bad = _edited(tiny_model, tmp_path / "bad.safetensors", h_s__0__bias=np.nan, g_s__0__weight=np.inf)
    with pytest.raises(ModelError, match=r"2 tensor\(s\) .* NaN or infinite values \(g_s.0.weight, h_s.0.bias\)"):
        saicm.load_model(bad)


def test_a_context_model_with_non_finite_weights_is_refused(tmp_path):
    import torch

    from saicm.models import build_architecture, save_model

    torch.manual_seed(0)
    path = tmp_path / "ctx.safetensors"
    save_model(build_architecture("gained-context-hyperprior", N=16, M=24, lambdas=[0.003, 0.03], groups=[8, 16]),
               path)
    bad = _edited(path, tmp_path / "bad.safetensors", aggregate__0__4__bias=np.nan)
    with pytest.raises(ModelError, match=r"NaN or infinite values \(aggregate.0.4.bias\)"):
        saicm.compress(IMAGE, model=bad)


def test_a_scalable_model_with_a_non_finite_condition_network_is_refused(tmp_path):
    """The condition network decides the human layer's coder tables through the same integer cast."""
    from saicm.models.catalog import WEIGHTS_DIR

    bad = _edited(WEIGHTS_DIR / "scalable-off02v6-m4-cond.safetensors", tmp_path / "bad.safetensors",
                  cond__2__bias=np.nan)
    with pytest.raises(ModelError, match=r"NaN or infinite values \(cond.2.bias\)"):
        saicm.compress(IMAGE, model=bad)


def test_log_gains_whose_exp_overflows_float32_are_refused(tiny_model, tmp_path):
    """log-gains of 100 (a diverged run's: `saicm train --lr 1e5` wrote such a file) are finite in the file, but their
    gains are not: the file was coded with, NaN latents and all, until a traceback."""
    bad = _edited(tiny_model, tmp_path / "bad.safetensors", log_gain=(100.0, "all"))
    with pytest.raises(ModelError, match="gains beyond float32's range"):
        saicm.compress(IMAGE, model=bad)


def test_shipped_models_hold_finite_weights():
    from safetensors.numpy import load_file

    from saicm.models.catalog import WEIGHTS_DIR, check_finite

    for path in sorted(WEIGHTS_DIR.glob("*.safetensors")):
        check_finite(load_file(str(path)), str(path))


@pytest.mark.parametrize("arch", ["gained-mean-scale-hyperprior", "gained-context-hyperprior"])
def test_latents_beyond_the_coders_range_are_one_line_on_the_portable_engine(tmp_path, arch):
    """A diverged but finite model (log-gains of 30: gains of 10¹³) made latents the coder cannot take: a ValueError
    traceback ("a latent value is out of the coder's range") on the portable engine, one line on CompressAI's."""
    import torch

    from saicm.models import build_architecture, save_model

    torch.manual_seed(0)
    path = tmp_path / "m.safetensors"
    extra = dict(groups=[8, 16]) if arch == "gained-context-hyperprior" else {}
    save_model(build_architecture(arch, N=16, M=24, lambdas=[0.003, 0.03], **extra), path)
    bad = _edited(path, tmp_path / "bad.safetensors", log_gain=(30.0, "all"))
    for engine in ("auto", "compressai"):
        with pytest.raises(ModelError, match="too many latent values outside the entropy model's range"):
            saicm.compress(IMAGE, model=bad, engine=engine)


@pytest.mark.parametrize("value", [np.nan, np.inf, -np.inf, 1e30, -2.0 ** 63])
def test_symbols_the_coder_cannot_take_are_refused_before_any_cast(tiny_model, value):
    """NaN or a value beyond int64 cast to int64 is undefined (x86: -2**63, then a ValueError traceback from the
    coder; ARM: 0, coded as if it were a zero): a latent from weights that diverged is refused before the cast,
    the hyper-latent (clipped) as the latent."""
    from saicm.engine.model import load
    from saicm.models.catalog import resolve

    pm = load(resolve(tiny_model))
    y = np.zeros((pm.M, 4, 4), np.float32)
    z = np.zeros((pm.N, 1, 1), np.float32)
    bad_y, bad_z = y.copy(), z.copy()
    bad_y[1, 2, 3], bad_z[0, 0, 0] = value, value
    assert len(pm.encode(y, z, 4)) == 2
    with pytest.raises(ModelError, match="outside the entropy model's range"):
        pm.encode(bad_y, z, 4)
    if np.isnan(value):  # (a huge hyper-latent value is clipped to the coder's range, as it was)
        with pytest.raises(ModelError, match="outside the entropy model's range"):
            pm.encode(y, bad_z, 4)
    else:
        assert len(pm.encode(y, bad_z, 4)) == 2


def test_a_diverged_run_keeps_its_last_good_checkpoint(tmp_path, monkeypatch):
    """A step that trains can leave weights whose every later step is skipped (an absurd --lr: `saicm train --lr 10
    --ckpt-every 5` stopped at step 21 naming "the last good checkpoint (step 20)", the weights of step 1 that no
    step could train from, and a resume with a lower --lr stopped the same way). Here a loss that is NaN from step 3 on
    stands for it: the checkpoints due at steps 4 and 6 are not written, the error names step 2's, and a resume from it
    with a sound loss goes on."""
    import torch
    from PIL import Image

    from saicm.train import losses
    from saicm.train.config import TrainConfig
    from saicm.train.trainer import train

    data = tmp_path / "data"
    data.mkdir()
    for i in range(2):
        Image.fromarray(np.random.default_rng(i).integers(0, 256, (64, 80, 3), dtype=np.uint8)).save(data / f"{i}.png")
    calls, sound = [], []

    def diverged(x, x_hat, mask, off_weight=0.0):
        calls.append(1)
        d = ((x - x_hat) ** 2).mean(dim=(1, 2, 3))
        return d * float("nan") if len(calls) > 2 and not sound else d

    monkeypatch.setitem(losses.DISTORTIONS, "diverged", diverged)
    out = tmp_path / "run"
    cfg = dict(data=str(data), out=str(out), N=8, M=16, lambdas=(0.005, 0.05), steps=10, batch=2, patch=64, lr=1e-3,
               log_every=1, ckpt_every=2, progress=False, max_bad_steps=5)
    with pytest.raises(saicm.SaicmError, match=r"the last good checkpoint is .*checkpoint.pt \(step 2\): go on from it "
                                               r"with the same command, --resume and a lower --lr"):
        train(TrainConfig(loss="diverged", **cfg))
    assert torch.load(out / "checkpoint.pt", weights_only=False)["step"] == 2
    sound.append(True)  # (what a lower --lr would do)
    train(TrainConfig(loss="diverged", resume=True, **cfg))
    assert torch.load(out / "checkpoint.pt", weights_only=False)["step"] == 10


def test_ctrl_c_in_a_run_of_skipped_steps_keeps_the_last_good_checkpoint(tmp_path, monkeypatch):
    """Ctrl-C while every step is skipped (the weights diverged) saved those weights as the checkpoint, "its
    checkpoint is saved ... go on with --resume", as a checkpoint due then did before it waited: the last good one is
    kept, and the message says so."""
    import torch
    from PIL import Image

    from saicm.train import losses, trainer
    from saicm.train.config import TrainConfig

    data = tmp_path / "data"
    data.mkdir()
    for i in range(2):
        Image.fromarray(np.random.default_rng(i).integers(0, 256, (64, 80, 3), dtype=np.uint8)).save(data / f"{i}.png")
    calls = []

    def diverged(x, x_hat, mask, off_weight=0.0):
        calls.append(1)
        d = ((x - x_hat) ** 2).mean(dim=(1, 2, 3))
        return d * float("nan") if len(calls) > 2 else d

    monkeypatch.setitem(losses.DISTORTIONS, "diverged", diverged)
    monkeypatch.setattr(trainer._StopAtStepEnd, "agreed", lambda self, device: len(calls) == 5)  # (in step 6)
    out = tmp_path / "run"
    cfg = dict(data=str(data), out=str(out), N=8, M=16, lambdas=(0.005, 0.05), steps=10, batch=2, patch=64, lr=1e-3,
               log_every=1, ckpt_every=2, progress=False, max_bad_steps=8)
    with pytest.raises(KeyboardInterrupt, match=r"interrupted after step 5, in a run of skipped steps \(not finite\): "
                                                r"the last good checkpoint \(step 2\) is kept .*a lower --lr"):
        trainer.train(TrainConfig(loss="diverged", **cfg))
    assert torch.load(out / "checkpoint.pt", weights_only=False)["step"] == 2


@pytest.mark.parametrize("value, precision, said", [
    (1e5, "fp16", r"1 tensor\(s\) hold values beyond fp16's range of ±65504 \(g_s.6.bias 1e\+05\)"),
    (-7e4, "fp16", r"beyond fp16's range of ±65504 \(g_s.6.bias 7e\+04\)"),
    (float("nan"), "fp16", r"1 tensor\(s\) hold NaN or infinite values \(g_s.6.bias\)"),
    (float("inf"), "fp32", r"NaN or infinite values \(g_s.6.bias\)")])
def test_weights_an_fp16_file_cannot_hold_are_refused_when_saved(tmp_path, value, precision, said):
    """fp16 rounds a weight beyond ±65504 (a diverged run's) to infinity: `saicm train`, `saicm export` and
    `import-checkpoint --precision fp16` wrote such files in silence (or failed with a ValueError traceback from the
    coder tables' update), and only their use said something was wrong."""
    import torch

    from saicm.models import build_architecture, save_model

    torch.manual_seed(0)
    net = build_architecture("gained-mean-scale-hyperprior", N=8, M=16, lambdas=[0.01, 0.1])
    with torch.no_grad():
        net.g_s[6].bias[0] = value
    with pytest.raises(ModelError, match="cannot save the model: .*" + said) as e:
        save_model(net, tmp_path / "m.safetensors", precision=precision)
    # (the way on for weights beyond fp16 alone: fp32 holds them; `import-checkpoint --precision fp16` of such a
    # checkpoint was told only that its training had diverged)
    assert ("import-checkpoint --precision fp32" in str(e.value)) == bool(np.isfinite(value))
    assert not (tmp_path / "m.safetensors").exists()
    with torch.no_grad():
        net.g_s[6].bias[0] = 6e4  # (within fp16's range)
    save_model(net, tmp_path / "m.safetensors")
    if np.isfinite(value):
        with torch.no_grad():
            net.g_s[6].bias[0] = value
        save_model(net, tmp_path / "m32.safetensors", precision="fp32")  # (fp32 holds it)


def test_a_resume_from_a_checkpoint_with_non_finite_weights_is_refused_at_once(tmp_path):
    """It skipped --max-bad-steps steps, then said to go on from that same checkpoint with a lower --lr (a loop)."""
    import torch
    from PIL import Image

    from saicm.train.config import TrainConfig
    from saicm.train.trainer import train

    data = tmp_path / "data"
    data.mkdir()
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (64, 80, 3), dtype=np.uint8)).save(data / "0.png")
    out = tmp_path / "run"
    cfg = dict(data=str(data), out=str(out), N=8, M=16, lambdas=(0.005, 0.05), steps=2, batch=2, patch=64,
               progress=False, max_bad_steps=3)
    train(TrainConfig(**cfg))
    ck = torch.load(out / "checkpoint.pt", weights_only=False)
    ck["model"]["g_s.0.weight"][0, 0, 0, 0] = float("inf")
    torch.save(ck, out / "checkpoint.pt")
    log = (out / "log.jsonl").read_text()
    with pytest.raises(saicm.SaicmError, match=r"checkpoint's weights hold NaN or infinite values \(g_s.0.weight\): "
                                               "no step can train from them; start the run again in a new --out"):
        train(TrainConfig(**dict(cfg, steps=10), resume=True))
    assert (out / "log.jsonl").read_text() == log  # (no step was taken)


def test_the_finite_check_of_torch_weights_makes_no_mask_of_them_and_misses_nothing(monkeypatch):
    """Every model load checks its weights (zoo.instantiate): ``isfinite().all()`` made a boolean mask of every tensor,
    0.2 s of a 76 M-parameter TCM's 0.8 s load with one thread; a finite sum says the same, with no mask."""
    import torch

    from saicm.models.catalog import non_finite

    seen = []
    isfinite = torch.Tensor.isfinite
    monkeypatch.setattr(torch.Tensor, "isfinite", lambda self: seen.append(self.numel()) or isfinite(self))
    state = {"w": torch.randn(64, 64), "h": torch.randn(300).half(), "b": torch.randn(7).bfloat16(),
             "sum overflows": torch.full((4,), 60000.0, dtype=torch.half), "n": torch.arange(3),
             "a": np.ones(3, np.float32)}
    assert non_finite(state) == []
    assert max(seen) <= 4  # (the sums, and the one tensor whose sum overflowed fp16)
    for dtype in (torch.float32, torch.half, torch.bfloat16):
        for bad in (float("nan"), float("inf"), -float("inf")):
            t = torch.randn(1000).to(dtype)
            t[500] = bad
            assert non_finite({"ok": torch.ones(2, dtype=dtype), "bad": t}) == ["bad"]
        assert non_finite({"inf-inf": torch.tensor([float("inf"), -float("inf")], dtype=dtype)}) == ["inf-inf"]
    assert non_finite({"np": np.array([1, np.nan], np.float16)}) == ["np"]


@pytest.mark.parametrize("name", ["log_gain", "log_inv_gain"])
def test_gains_either_way_beyond_float32_are_refused(tiny_model, tmp_path, name):
    """The decoder's inverse gains overflow as the encoder's gains do (mutation audit: only log_gain was checked)."""
    bad = _edited(tiny_model, tmp_path / "bad.safetensors", **{name: (100.0, "all")})
    with pytest.raises(ModelError, match="gains beyond float32's range"):
        saicm.compress(IMAGE, model=bad)


def test_symbols_up_to_the_escape_limit_are_taken_and_beyond_it_refused():
    """The edge of symbols(): ±ESCAPE_LIMIT is a symbol a file may carry, one more is not (mutation audit)."""
    from saicm.engine.model import symbols
    from saicm.entropy.tables import ESCAPE_LIMIT

    edge = np.array([ESCAPE_LIMIT, -ESCAPE_LIMIT, 0.0])
    assert symbols(edge).tolist() == [ESCAPE_LIMIT, -ESCAPE_LIMIT, 0] and symbols(np.zeros(0)).size == 0
    for value in (ESCAPE_LIMIT + 1.0, -ESCAPE_LIMIT - 1.0):
        with pytest.raises(ModelError, match="outside the entropy model's range"):
            symbols(np.array([0.0, value]))


def test_a_refusal_of_many_broken_tensors_names_three_and_says_there_are_more(tmp_path):
    """check_finite's and save_model's lists stop at three names and say "..." (mutation audit)."""
    import torch

    from saicm.models import build_architecture, save_model
    from saicm.models.catalog import check_finite

    state = {f"t{i}": np.array([np.nan if i else 1.0], np.float32) for i in range(5)}
    with pytest.raises(ModelError, match=r"^.*4 tensor\(s\) .* values \(t1, t2, t3, \.\.\.\)"):
        check_finite(state, "x")
    with pytest.raises(ModelError, match=r"2 tensor\(s\) .* values \(t1, t2\):"):
        check_finite({k: state[k] for k in ("t0", "t1", "t2")}, "x")
    model = build_architecture("gained-mean-scale-hyperprior", N=16, M=24, lambdas=[0.003, 0.03])
    with torch.no_grad():
        for p in list(model.parameters())[:4]:
            p.view(-1)[0] = float("nan")
    with pytest.raises(ModelError, match=r"4 tensor\(s\) hold NaN or infinite values \([^)]*, \.\.\.\)"):
        save_model(model, tmp_path / "m.safetensors")
    assert not list(tmp_path.iterdir())


def test_a_save_refusing_nan_lists_the_nan_tensors_not_those_beyond_fp16(tmp_path):
    """Both kinds at once: the message counts and names the NaN ones (mutation audit: the names came from either)."""
    import torch

    from saicm.models import build_architecture, save_model

    net = build_architecture("gained-mean-scale-hyperprior", N=8, M=16, lambdas=[0.01, 0.1])
    with torch.no_grad():
        net.g_s[6].bias[0] = 1e5
        net.g_a[0].bias[0] = float("nan")
    with pytest.raises(ModelError, match=r"1 tensor\(s\) hold NaN or infinite values \(g_a.0.bias\): "):
        save_model(net, tmp_path / "m.safetensors")


def test_a_checkpoint_due_on_a_skipped_step_is_written_at_the_next_step_that_trains(tmp_path, monkeypatch):
    """--ckpt-every 4 with step 4 skipped: written at step 5, then at 8 as due, and at the end; never at the skipped
    step, never at every step after (mutation audit: the waiting checkpoint and its reset were not checked)."""
    from PIL import Image

    from saicm.train import losses, trainer
    from saicm.train.config import TrainConfig

    data = tmp_path / "data"
    data.mkdir()
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (64, 80, 3), dtype=np.uint8)).save(data / "0.png")
    calls, saved = [], []

    def skipped_at_4(x, x_hat, mask, off_weight=0.0):
        calls.append(1)
        d = ((x - x_hat) ** 2).mean(dim=(1, 2, 3))
        return d * float("nan") if len(calls) == 4 else d

    def recorded(path, model, opt, aux_opt, done, *rest):
        saved.append(done)
        return save(path, model, opt, aux_opt, done, *rest)

    save = trainer._save_checkpoint
    monkeypatch.setattr(trainer, "_save_checkpoint", recorded)
    monkeypatch.setitem(losses.DISTORTIONS, "skipped4", skipped_at_4)
    with pytest.warns(UserWarning, match="1 of 10 steps were skipped"):
        trainer.train(TrainConfig(data=str(data), out=str(tmp_path / "run"), N=8, M=16, lambdas=(0.005, 0.05),
                                  steps=10, batch=2, patch=64, log_every=5, ckpt_every=4, progress=False,
                                  max_bad_steps=5, loss="skipped4"))
    assert len(calls) == 10 and saved == [5, 8, 10]



def test_a_loaded_model_with_its_coder_tables_saves_again(tiny_model, tmp_path):
    """Its integer CDF tables hold values up to 2**16, beyond fp16's range, and are no weights: the save check
    leaves them alone (mutation audit: a save of a model whose tables were filled was not checked)."""
    from saicm.models import save_model

    from saicm.models.zoo import load_model

    model, _ = load_model(tiny_model)
    assert any(not v.is_floating_point() and v.numel() and int(v.max()) > 65504 for v in model.state_dict().values())
    save_model(model, tmp_path / "again.safetensors")
    assert saicm.load_model(tmp_path / "again.safetensors") is not None


def test_lambdas_beyond_fp16_are_refused_when_saved_not_written_as_infinity(tmp_path):
    """save_model rounds every float buffer through fp16 before it writes, the lambdas too (stored as fp32 after):
    a lambda beyond ±65504 became infinity in the file, which every reader then refused as "a diverged training
    run" (the save check left the lambdas out; mutation audit)."""
    import torch

    from saicm.models import build_architecture, save_model

    net = build_architecture("gained-mean-scale-hyperprior", N=8, M=16, lambdas=[0.01, 1e5])
    with pytest.raises(ModelError, match=r"beyond fp16's range of ±65504 \(lambdas 1e\+05\)"):
        save_model(net, tmp_path / "m.safetensors")
    assert not list(tmp_path.iterdir())
    save_model(net, tmp_path / "m32.safetensors", precision="fp32")
    assert saicm.load_model(tmp_path / "m32.safetensors") is not None
