"""Architectures of the user's own: registered from $SAICM_ARCHITECTURES or an entry point, checked against the
contract, trained, exported and coded by the plain `saicm` command (workers included); save_model and model=."""

import json
import os
import re
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch
from PIL import Image

from tests.conftest import natural_image

#: a user's architecture: saicm's hyperprior with sizes of its own and one more (zero-initialised) layer
USER_ARCH = textwrap.dedent('''
    from torch import nn
    from saicm.models import register_architecture
    from saicm.models.hyperprior import GainedMeanScaleHyperprior

    class Refine(nn.Module):
        """x + conv(x), starting at x (a warm start codes as its --init until trained)."""

        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(3, 3, 3, padding=1)
            nn.init.zeros_(self.conv.weight)
            nn.init.zeros_(self.conv.bias)

        def forward(self, x):
            return x + self.conv(x)

    @register_architecture("{name}")
    class Mine(GainedMeanScaleHyperprior):
        NEW_PARAMETERS = ("g_s.7.",)  # what --init from another architecture leaves as initialised here

        def __init__(self, N=24, M=40, lambdas=(0.0067,)):
            super().__init__(N=N, M=M, lambdas=lambdas)
            self.g_s.append(Refine())  # training and decoding both run it
''')


def _saicm(*args, env=None, cwd=None):
    full = {k: v for k, v in os.environ.items() if k != "SAICM_ARCHITECTURES"}
    full.update(PYTHONWARNINGS="ignore", **(env or {}))
    return subprocess.run([sys.executable, "-m", "saicm", *map(str, args)], capture_output=True, text=True,
                          env=full, cwd=cwd, timeout=600)


@pytest.fixture(autouse=True)
def _registry_as_it_was():
    """The architectures these tests register leave the registry with them (other tests list the known ones)."""
    from saicm.models import registry

    registry.load_architectures()
    archs, loaded = dict(registry.ARCHITECTURES), set(registry._loaded)
    yield
    registry.ARCHITECTURES.clear()
    registry.ARCHITECTURES.update(archs)
    registry._loaded.clear()
    registry._loaded.update(loaded)


@pytest.fixture
def photos(tmp_path):
    d = tmp_path / "photos"
    d.mkdir()
    for i in range(3):
        Image.fromarray(natural_image(64, 64, seed=i)).save(d / f"p{i}.png")
    return d


def test_an_architecture_of_ones_own_trains_exports_and_codes_with_the_plain_command(tmp_path, photos, monkeypatch,
                                                                                      tiny_model):
    from saicm.cli import main
    from saicm.models.catalog import read_info

    arch = tmp_path / "my_arch.py"
    arch.write_text(USER_ARCH.format(name="test-user-arch"))
    env = {"SAICM_ARCHITECTURES": str(arch), "SAICM_MODELS": str(tmp_path / "models")}
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    run = tmp_path / "run"
    common = ["--data", str(photos), "--batch", "1", "--patch", "64"]
    assert main(["train", "--architecture", "test-user-arch", "--out", str(run), "--steps", "2", *common]) == 0
    info = read_info(run / "model.safetensors")
    # built at its own defaults (24/40): `saicm train` used to build every architecture at 64/128 without a word
    assert info.architecture == "test-user-arch" and (info.config["N"], info.config["M"]) == (24, 40)
    from saicm.eval.codecs import get_codec

    assert get_codec(str(run / "model.safetensors")).name == "run"  # in results (every run was "model")
    assert main(["train", "--resume", "--out", str(run), "--steps", "3", *common]) == 0
    # warm start from a model of saicm's architecture: the parameters it names as new start as it initialises them
    # (here: where they change nothing, so it decodes as the init model does)
    assert main(["train", "--architecture", "test-user-arch", "--init", str(tiny_model),
                 "--out", str(tmp_path / "warm"), "--steps", "0", *common]) == 0
    import saicm

    img, warm = natural_image(64, 64, seed=5), str(tmp_path / "warm" / "model.safetensors")
    assert np.array_equal(
        np.asarray(saicm.decompress(saicm.compress(img, model=str(tiny_model), quality=2), model=str(tiny_model))),
        np.asarray(saicm.decompress(saicm.compress(img, model=warm, quality=2), model=warm)))

    # the plain command, in processes of its own (folder workers included), finds it through the variable
    coded, decoded = tmp_path / "coded", tmp_path / "decoded"
    r = _saicm("compress", photos, "-o", coded, "--model", run / "model.safetensors", "--jobs", 2, "--quiet",
               env=env)
    assert r.returncode == 0, r.stderr
    assert sorted(p.name for p in coded.iterdir()) == ["p0.saicm", "p1.saicm", "p2.saicm"]
    assert main(["decompress", str(coded / "p0.saicm"), "-o", str(decoded / "p0.png"), "--model",
                 str(run / "model.safetensors")]) == 0
    assert np.asarray(Image.open(decoded / "p0.png")).shape == (64, 64, 3)

    # without the variable: one line that says where architectures of one's own come from
    r = _saicm("decompress", coded / "p0.saicm", "-o", decoded / "again.png", "--model", run / "model.safetensors")
    assert r.returncode == 1 and "Traceback" not in r.stderr
    assert "unknown architecture 'test-user-arch'" in r.stderr and "$SAICM_ARCHITECTURES" in r.stderr


def test_an_architecture_from_an_installed_packages_entry_point(tmp_path):
    site = tmp_path / "site"
    (site / "userpkg").mkdir(parents=True)
    (site / "userpkg" / "__init__.py").write_text("")
    (site / "userpkg" / "arch.py").write_text(USER_ARCH.format(name="test-entry-point-arch"))
    dist = site / "userpkg-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: userpkg\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text("[saicm.architectures]\ntest-entry-point-arch = userpkg.arch\n")
    code = ("from saicm.models import build_architecture; m = build_architecture('test-entry-point-arch'); "
            "print(type(m).__name__, m.config['N'])")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                       env=dict(os.environ, PYTHONPATH=str(site), PYTHONWARNINGS="ignore"))
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["Mine", "24"]


def test_an_architecture_without_the_contract_or_that_fails_to_import_is_one_line(tmp_path, photos, monkeypatch,
                                                                                   capsys):
    from saicm.cli import main

    bare = tmp_path / "bare.py"
    bare.write_text(textwrap.dedent('''
        import torch
        from saicm.models import register_architecture

        @register_architecture("test-bare-arch")
        class Bare(torch.nn.Module):
            def __init__(self, N=8, M=8, lambdas=(0.01,)):
                super().__init__()
                self.conv = torch.nn.Conv2d(3, 3, 1)

            def forward(self, x, qidx):
                return {"x_hat": self.conv(x), "likelihoods": {}}
    '''))
    monkeypatch.setenv("SAICM_ARCHITECTURES", str(bare))
    assert main(["train", "--architecture", "test-bare-arch", "--data", str(photos), "--out", str(tmp_path / "run"),
                 "--steps", "1", "--batch", "1", "--patch", "64"]) != 0
    assert ("lacks what saicm needs: multiple, num_qualities, lambdas, config, compress, decompress, latent_shapes, "
            "aux_loss, update" in capsys.readouterr().err)
    assert not (tmp_path / "run" / "checkpoint.pt").exists()

    broken = tmp_path / "broken.py"
    broken.write_text("import torch\nraise RuntimeError('my bug')\n")
    monkeypatch.setenv("SAICM_ARCHITECTURES", f"{bare},{broken}")
    assert main(["train", "--architecture", "x", "--data", str(photos), "--out", str(tmp_path / "run2"),
                 "--steps", "1"]) != 0
    assert f"cannot import '{broken}': RuntimeError: my bug (run `python {broken}` for the traceback)" in \
        capsys.readouterr().err


#: a model from the contract table alone (no saicm base class): CompressAI's factorized prior, one string per image
ONE_STRING_ARCH = textwrap.dedent('''
    import torch
    from compressai.models import FactorizedPrior
    from saicm.models import register_architecture

    @register_architecture("test-one-string")
    class OneString(FactorizedPrior):
        multiple = 16

        def __init__(self, N=8, M=8, lambdas=(0.0067,)):
            super().__init__(N=N, M=M)
            self.register_buffer("lambdas", torch.tensor(lambdas, dtype=torch.float32))
            self.config = {"N": N, "M": M, "lambdas": list(lambdas)}

        @property
        def num_qualities(self):
            return len(self.lambdas)

        def forward(self, x, qidx=None):
            return super().forward(x)

        def compress(self, x, quality):
            return super().compress(x)

        def decompress(self, strings, shape, quality):
            return super().decompress(strings, shape)

        def latent_shapes(self, h, w):
            return [(h // 16, w // 16)]
''')


def test_an_architecture_from_the_contract_alone_trains_and_is_refused_where_format_1_cannot_hold_it(
        tmp_path, photos, monkeypatch, capsys):
    """A model with only the table's members (no saicm base class) crashed at the first step (aux_loss) or after
    training (update); one whose compress returns one string wrote files its own decoder refused as damaged
    (extensibility audit of 0.23.0)."""
    import saicm
    from saicm.cli import main

    arch = tmp_path / "one.py"
    arch.write_text(ONE_STRING_ARCH)
    monkeypatch.setenv("SAICM_ARCHITECTURES", str(arch))
    run = tmp_path / "run"
    assert main(["train", "--architecture", "test-one-string", "--data", str(photos), "--out", str(run),
                 "--steps", "2", "--batch", "1", "--patch", "64", "--lambdas", "0.0067", "--quiet"]) == 0
    from saicm.errors import ModelError

    with pytest.raises(ModelError, match="returned 1 strings; a format-1 file holds exactly two"):
        saicm.compress(natural_image(64, 64), model=run / "model.safetensors")


def test_saicm_s_strips_never_replace_an_architectures_own_coding():
    """Above 2²¹ latent values saicm coded subclasses of its hyperprior in strips with its own analysis, coder and
    synthesis: a decoder-side change in the subclass's decompress vanished on large images only."""
    from saicm.codec.pipeline import uses_strips
    from saicm.models.hyperprior import GainedMeanScaleHyperprior

    class Halved(GainedMeanScaleHyperprior):
        def decompress(self, strings, shape, quality):
            out = super().decompress(strings, shape, quality)
            return {"x_hat": out["x_hat"] * 0.5}

    big = 64 * 1024  # 4096² pixels: far above the strip threshold at M = 40
    assert uses_strips(GainedMeanScaleHyperprior(N=8, M=40), big, big)
    assert not uses_strips(Halved(N=8, M=40), big, big)


def test_a_changed_plugin_is_another_codec_to_the_decode_cache(tmp_path, monkeypatch):
    """The cache key held the weights' checksum but not the plugin's code: after an edit of the architecture,
    `saicm eval` reported the old decodes (33.70 dB where the code now gave 19.55; extensibility audit)."""
    from saicm.models import save_model
    from saicm.models.registry import architecture_class, plugin_code_digest

    arch = tmp_path / "my_arch.py"
    arch.write_text(USER_ARCH.format(name="test-code-key-arch"))
    monkeypatch.setenv("SAICM_ARCHITECTURES", str(arch))
    cls = architecture_class("test-code-key-arch")
    save_model(cls(), tmp_path / "m.safetensors")
    from saicm.eval.codecs import get_codec

    before = get_codec(str(tmp_path / "m.safetensors")).config()["code_sha256"]
    arch.write_text(USER_ARCH.format(name="test-code-key-arch").replace("return x + self.conv(x)",
                                                                          "return (x + self.conv(x)) * 0.5"))
    assert plugin_code_digest(cls) != before  # (the file is hashed as it is now)
    from saicm.models.hyperprior import GainedMeanScaleHyperprior

    assert plugin_code_digest(GainedMeanScaleHyperprior) is None  # saicm's own: keys as before


def test_plugin_failures_of_every_kind_are_one_line_and_tried_again(tmp_path, monkeypatch):
    from saicm.errors import ModelError
    from saicm.models.registry import architecture_class, missing_members

    monkeypatch.setenv("SAICM_ARCHITECTURES", "my_arch.py")  # relative: a file of whatever folder one decodes in
    with pytest.raises(ModelError, match="absolute path"):
        architecture_class("anything")
    # a path that names no file to import is said with the name given, and without the hint to run it for a
    # traceback (none of its code ran): the relative name's line said "$PWD/my_arch.py" whatever the name, and both
    # it and a missing file's added "run `python NAME` for the traceback"
    (tmp_path / "folder.py").mkdir()
    for given, says in (("sub/other_arch.py", "a relative path; give the file's absolute path, such as "
                                              "$PWD/sub/other_arch.py"),
                        (str(tmp_path / "missing.py"), "no such file"), (str(tmp_path / "folder.py"), "not a file")):
        monkeypatch.setenv("SAICM_ARCHITECTURES", given)
        with pytest.raises(ModelError) as e:
            architecture_class("anything")
        assert str(e.value) == f"$SAICM_ARCHITECTURES: cannot import {given!r}: {says}"
    exits = tmp_path / "exits.py"
    exits.write_text("import sys\nsys.exit(3)\n")
    monkeypatch.setenv("SAICM_ARCHITECTURES", str(exits))
    with pytest.raises(ModelError, match=r"cannot import .*exits.py': it called exit\(3\)"):
        architecture_class("anything")
    interrupted = tmp_path / "interrupted.py"
    interrupted.write_text("raise KeyboardInterrupt\n")
    monkeypatch.setenv("SAICM_ARCHITECTURES", str(interrupted))
    with pytest.raises(KeyboardInterrupt):
        architecture_class("anything")
    interrupted.write_text(USER_ARCH.format(name="test-mended-arch"))  # mended: tried again, registered
    assert architecture_class("test-mended-arch").__name__ == "Mine"
    # the message shortens a long $SAICM_ARCHITECTURES to 80 characters: its start is named whatever the temporary
    # folder's length (under a longer one, e.g. macOS's $TMPDIR, the file's name itself was cut)
    named = re.escape(str(interrupted)[:40])
    with pytest.raises(ModelError, match=rf"\$SAICM_ARCHITECTURES \({named}.*\) registers no 'nothing'"):
        architecture_class("nothing")

    from saicm.models.registry import register_architecture

    for i in range(7):  # many long names of the user's own: the message stays one bounded line, saicm's first
        register_architecture(f"test-{'x' * 100}-{i}")(type(f"Long{i}", (torch.nn.Module,), {}))
    monkeypatch.setenv("SAICM_ARCHITECTURES", str(interrupted) + "," * 200)
    with pytest.raises(ModelError) as e:
        architecture_class("nothing")
    assert len(str(e.value)) < 400 and "known: gained-context-hyperprior" in str(e.value)

    class NoForward(torch.nn.Module):
        multiple, num_qualities, lambdas, config = 64, 1, torch.ones(1), {}
        compress = decompress = latent_shapes = aux_loss = update = None

    assert missing_members(NoForward()) == ["forward"]  # (nn.Module has a forward that only raises)


def test_the_same_class_imported_twice_registers_once_another_under_its_name_is_refused(tmp_path):
    from saicm.models.registry import ARCHITECTURES, register_architecture

    class Dup(torch.nn.Module):
        pass

    try:
        register_architecture("test-dup-arch")(Dup)
        register_architecture("test-dup-arch")(Dup)  # a script importing its own module also named in the variable

        class Other(torch.nn.Module):
            pass

        with pytest.raises(ValueError, match="registered twice"):
            register_architecture("test-dup-arch")(Other)
    finally:
        ARCHITECTURES.pop("test-dup-arch", None)


def test_save_model_leaves_the_callers_model_as_it_was(tmp_path):
    """It rounded the caller's weights to fp16 in place and left the model in eval mode (a training loop that
    saved a snapshot went on training in eval mode, with rounded weights)."""
    from saicm.models import build_architecture, load_model, save_model

    torch.manual_seed(0)
    net = build_architecture("gained-mean-scale-hyperprior", N=16, M=24, lambdas=[0.002, 0.01]).train()
    before = {k: v.clone() for k, v in net.state_dict().items()}
    save_model(net, tmp_path / "snap.safetensors")
    assert net.training
    assert all(torch.equal(before[k], v) for k, v in net.state_dict().items())
    assert any(v.is_floating_point() and not torch.equal(v.half().float(), v) for v in before.values())
    loaded, _ = load_model(str(tmp_path / "snap.safetensors"))
    w = "g_a.0.weight"
    assert torch.equal(loaded.state_dict()[w], before[w].half().float())


def test_model_takes_a_name_a_path_or_load_models_info_and_refuses_a_module_in_one_line(tiny_model):
    import saicm

    img = natural_image(64, 64)
    module, info = saicm.load_model(str(tiny_model))
    assert saicm.compress(img, model=info, quality=2) == saicm.compress(img, model=str(tiny_model), quality=2)
    with pytest.raises(saicm.SaicmError, match="takes a model name or a .safetensors path, not a PyTorch module"):
        saicm.compress(img, model=module)
    with pytest.raises(saicm.SaicmError, match="not a dict"):
        saicm.compress(img, model={"name": "x"})
    assert json.dumps(saicm.describe(saicm.compress(img, model=info, quality=2))["quality"]) == "2"


def test_the_forward_pass_takes_one_rate_point_and_says_what_it_needs(tiny_model):
    """A research loop's natural calls raised PyTorch's IndexError / size mismatches: model(x, 3), a quality as
    qidx, an unpadded image; a negative index ran silently at another rate point."""
    from saicm.models import load_model

    model, _ = load_model(str(tiny_model))
    x = torch.rand(2, 3, 64, 64)
    want = model(x, torch.tensor([1, 1]))["x_hat"]
    for same in (1, torch.tensor(1), torch.tensor([1]), [1, 1]):  # one for the batch, or a list (eval: exact)
        assert torch.equal(model(x, same)["x_hat"], want)
    for bad, match in ((3, r"qidx is 0-based: 0..2 \(quality q is qidx q - 1\), got \[3, 3\]"),
                       (torch.tensor([3, 3]), "0-based"), (torch.tensor([-1, 0]), "0-based"), (-1, "0-based"),
                       (1.7, "whole number"), (True, "whole number"), (torch.tensor([1.0, 1.0]), "whole numbers"),
                       (torch.tensor([0, 0, 0]), r"one per sample, shape \(2,\)")):
        with pytest.raises(ValueError, match=match):
            model(x, bad)
    with pytest.raises(ValueError, match="multiples of 64"):
        model(torch.rand(1, 3, 100, 100), 0)


def test_the_api_prints_no_warning_of_compressais_import_and_leaves_the_users_own(tiny_model):
    """PyTorch's two-line FutureWarning about CompressAI's torch.jit.script reached every API user's stderr."""
    code = (f"import saicm, torch\nsaicm.load_model({str(tiny_model)!r})\nprint('loaded', flush=True)\n"
            "import warnings\nwarnings.warn('`torch.jit.script` is deprecated (the user\\'s own)', FutureWarning)\n")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONWARNINGS"}
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, env=env)
    assert r.returncode == 0 and r.stdout.strip() == "loaded", r.stderr
    assert r.stderr.count("`torch.jit.script` is deprecated") == 1 and "the user's own" in r.stderr  # not hidden



def test_importing_compressai_keeps_the_warning_filters_the_program_set_meanwhile(tiny_model):
    """The import of CompressAI (seconds, at the first PyTorch model) ran in ``warnings.catch_warnings()``, which put
    the whole filter list back afterwards: a filter a service's other thread set meanwhile was lost. Set here from
    within the import (an import hook asked for ``compressai``), where another thread's would come."""
    code = ("import sys, warnings, saicm\n"
            "class Mine(UserWarning): pass\n"
            "class Hook:\n"
            "    def find_spec(self, name, path=None, target=None):\n"
            "        if name == 'compressai':\n"
            "            warnings.simplefilter('error', Mine)\n"
            "        return None\n"
            "sys.meta_path.insert(0, Hook())\n"
            f"saicm.load_model({str(tiny_model)!r})\n"
            "assert 'compressai' in sys.modules\n"
            "print([f[0] for f in warnings.filters if f[2] is Mine])\n")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONWARNINGS"}
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, env=env)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "['error']"
    assert "`torch.jit.script` is deprecated" not in r.stderr  # (still silenced)


def test_loading_a_model_leaves_pytorchs_random_generator_as_it_was(tiny_model):
    """Building a model before its weights are read initialised every layer from PyTorch's global generator: a
    program's own seeded draws came out otherwise after ``saicm.load_model`` (or a first coding with PyTorch)."""
    import saicm

    torch.manual_seed(7)
    want = torch.rand(4)
    torch.manual_seed(7)
    net, _ = saicm.load_model(tiny_model)
    assert torch.equal(torch.rand(4), want)
    again, _ = saicm.load_model(tiny_model)  # (the same weights: the file's, whatever the initialisation drew)
    assert all(torch.equal(a, b) for a, b in zip(net.state_dict().values(), again.state_dict().values()))


def test_a_model_is_loaded_on_the_cpu_whatever_the_callers_default_device(tiny_model):
    """A notebook's ``torch.set_default_device("cuda")`` built the model on the GPU, where the private generator of
    its initial weights (a CPU one) cannot draw: "the model's stored configuration does not fit". The meta device
    stands for the GPU here (no GPU on CI); the model is the CPU's, as coding runs there, with the file's weights."""
    import saicm

    want, _ = saicm.load_model(tiny_model)
    with torch.device("meta"):
        net, _ = saicm.load_model(tiny_model)
    assert {t.device.type for t in net.state_dict().values()} == {"cpu"}
    assert all(torch.equal(a, b) for a, b in zip(net.state_dict().values(), want.state_dict().values()))


def test_a_plugin_package_edited_in_another_module_than_its_classes_is_another_codec(tmp_path, monkeypatch):
    """The decode cache's key held the source files of the architecture's classes alone: a package whose layers
    live in a module of their own (``mycodec/layers.py``) was edited with the same key, and `saicm eval` served the
    old code's decodes. Every ``.py`` file of the package counts."""
    import sys

    from saicm.models.registry import architecture_class, plugin_code_digest

    pkg = tmp_path / "cachecheck_codec"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    layers = USER_ARCH.split("@register_architecture")[0]  # the imports and the Refine layer
    (pkg / "layers.py").write_text(layers)
    (pkg / "model.py").write_text(textwrap.dedent('''
        from saicm.models import register_architecture
        from saicm.models.hyperprior import GainedMeanScaleHyperprior

        from .layers import Refine


        @register_architecture("test-package-code-key")
        class Mine(GainedMeanScaleHyperprior):
            def __init__(self, N=24, M=40, lambdas=(0.0067,)):
                super().__init__(N=N, M=M, lambdas=lambdas)
                self.g_s.append(Refine())
    '''))
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setenv("SAICM_ARCHITECTURES", "cachecheck_codec.model")
    try:
        cls = architecture_class("test-package-code-key")
        before = plugin_code_digest(cls)
        (pkg / "layers.py").write_text(layers.replace("return x + self.conv(x)", "return (x + self.conv(x)) * 0.5"))
        assert plugin_code_digest(cls) != before
    finally:
        for name in [n for n in sys.modules if n.split(".")[0] == "cachecheck_codec"]:
            del sys.modules[name]
