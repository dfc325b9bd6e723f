import os
import numpy as np
import pytest
import torch
from PIL import Image

import saicm
from saicm.codec import container
from saicm.errors import FormatError, ImageError, ModelError, SaicmError
from saicm.models.determinism import synthesize_in_strips

from .conftest import natural_image, real_cost


def test_round_trip_rgb_size_and_rate_from_bytes(tiny_model):
    x = natural_image(70, 101)
    data = saicm.compress(x, model=tiny_model, quality=2)
    out = saicm.decompress(data, model=tiny_model)
    assert out.mode == "RGB" and out.size == (101, 70)
    info = saicm.describe(data)
    assert info["bpp"] == pytest.approx(8 * len(data) / (70 * 101))
    assert info["padding"] == {"bottom": 58, "right": 27}


def test_coded_files_are_read_from_binary_file_objects_too(tiny_model, tmp_path):
    """compress took file objects and decompress/describe refused them."""
    import io

    data = saicm.compress(natural_image(40, 50), model=tiny_model)
    assert np.array_equal(np.asarray(saicm.decompress(io.BytesIO(data), model=tiny_model)),
                          np.asarray(saicm.decompress(data, model=tiny_model)))
    (tmp_path / "a.saicm").write_bytes(data)
    with open(tmp_path / "a.saicm", "rb") as f:
        assert saicm.describe(f)["file_bytes"] == len(data)
    for enc in ("latin-1", "utf-8"):  # (utf-8 failed inside read() before the check)
        with open(tmp_path / "a.saicm", encoding=enc) as f, pytest.raises(FormatError, match="text mode"):
            saicm.decompress(f, model=tiny_model)


def test_decode_equals_the_quantised_latent_through_synthesis(tiny_model):
    """Exact decode: the entropy decoder returns round(y - μ) + μ bit for bit."""
    net, _ = saicm.load_model(tiny_model)
    x = torch.from_numpy(natural_image(64, 128)).permute(2, 0, 1)[None].float() / 255
    q = 3
    with torch.inference_mode():
        g, ig = net._gains(net._qindex(q, 1))
        y = net.g_a(x) * g
        z_hat = torch.round(net.h_a(y) - net.entropy_bottleneck._get_medians()) + net.entropy_bottleneck._get_medians()
        _, means = net._y_params(z_hat)
        y_hat = torch.round(y - means) + means
        expected = synthesize_in_strips(net.g_s, y_hat * ig, 16).clamp(0, 1)
        enc = net.compress(x, q)
        got = net.decompress(enc["strings"], enc["shape"], q)["x_hat"]
    assert torch.equal(got, expected)


def test_grayscale_stays_grayscale(tiny_model):
    g = Image.fromarray(natural_image()[:, :, 0], "L")
    out = saicm.decompress(saicm.compress(g, model=tiny_model), model=tiny_model)
    assert out.mode == "L" and out.size == g.size


def test_rgba_keeps_alpha_exactly(tiny_model):
    rgba = np.dstack([natural_image(), np.tile(np.arange(128, dtype=np.uint8), (96, 1))])
    out = saicm.decompress(saicm.compress(Image.fromarray(rgba, "RGBA"), model=tiny_model), model=tiny_model)
    assert out.mode == "RGBA"
    assert np.array_equal(np.asarray(out)[:, :, 3], rgba[:, :, 3])


def test_opaque_alpha_is_dropped(tiny_model):
    rgba = np.dstack([natural_image(), np.full((96, 128), 255, np.uint8)])
    data = saicm.compress(Image.fromarray(rgba, "RGBA"), model=tiny_model)
    assert saicm.describe(data)["alpha_bytes"] == 0


def test_16bit_is_scaled_not_clipped(tmp_path, tiny_model):
    a = (np.linspace(0, 65535, 64 * 64).reshape(64, 64)).astype(np.uint16)
    p = tmp_path / "g16.png"
    Image.fromarray(a).save(p)
    from saicm.codec.image_io import load_image

    img = load_image(p)
    assert img.gray and img.rgb.max() == 255 and img.rgb.min() == 0
    assert abs(int(img.rgb[32, 0, 0]) - round(a[32, 0] / 257)) <= 1
    out = saicm.decompress(saicm.compress(p, model=tiny_model), model=tiny_model)
    assert out.size == (64, 64)


def test_exif_orientation_is_applied(tmp_path, tiny_model):
    im = Image.fromarray(natural_image(40, 90))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90° clockwise on display
    p = tmp_path / "rot.jpg"
    im.save(p, exif=exif.tobytes())
    out = saicm.decompress(saicm.compress(p, model=tiny_model), model=tiny_model)
    assert out.size == (40, 90)


@pytest.mark.parametrize("h,w", [(1, 1), (1, 200), (65, 3)])
def test_odd_sizes(tiny_model, h, w):
    out = saicm.decompress(saicm.compress(natural_image(h, w), model=tiny_model), model=tiny_model)
    assert out.size == (w, h)


def test_quality_out_of_range(tiny_model):
    with pytest.raises(ModelError, match="quality 9"):
        saicm.compress(natural_image(), model=tiny_model, quality=9)


def test_unknown_model():
    with pytest.raises(ModelError, match="unknown model") as e:
        saicm.compress(natural_image(), model="no-such-model")
    assert not isinstance(e.value, saicm.ArgumentError)  # a model, not the call's arguments


def test_bad_arguments_are_argument_errors_a_value_error_and_a_model_error(tiny_model):
    """A service tells its own configuration (ArgumentError, also a ValueError) from a client's file or image
    (FormatError, ImageError) and from a model it lacks (ModelError): they were all ModelError but the first two."""
    img = natural_image()
    data = saicm.compress(img, model=tiny_model)
    calls = [lambda: saicm.compress(img, model=tiny_model, quality=9),
             lambda: saicm.compress(img, model=tiny_model, quality="3"),
             lambda: saicm.compress(img, model=tiny_model, engine="gpu"),
             lambda: saicm.compress(img, model=tiny_model, refine=-1),
             lambda: saicm.compress(img, model=tiny_model, human_quality=2),
             lambda: saicm.compress(img, model=tiny_model, max_pixels=0),
             lambda: saicm.decompress(data, model=tiny_model, layer="x"),
             lambda: saicm.decompress(data, model=tiny_model, engine="gpu"),
             lambda: saicm.decompress(data, model=tiny_model, max_pixels=1.5)]
    for call in calls:
        with pytest.raises(saicm.ArgumentError) as e:
            call()
        assert isinstance(e.value, ValueError) and isinstance(e.value, ModelError), e.value
    with pytest.raises(FormatError) as e:
        saicm.decompress(data[:-3], model=tiny_model)
    assert not isinstance(e.value, ValueError)


def test_other_weights_are_refused(tiny_model, tmp_path):
    from saicm.models import build_architecture, save_model

    other = tmp_path / "tiny.safetensors"  # same name, different weights
    save_model(build_architecture("gained-mean-scale-hyperprior", N=16, M=24, lambdas=[0.002, 0.01, 0.05]), other)
    data = saicm.compress(natural_image(), model=tiny_model)
    with pytest.raises(ModelError, match="checksum"):
        saicm.decompress(data, model=other)


def test_empty_and_unreadable_images(tmp_path, tiny_model):
    empty = tmp_path / "empty.png"
    empty.write_bytes(b"")
    with pytest.raises(ImageError, match="empty"):
        saicm.compress(empty, model=tiny_model)
    junk = tmp_path / "junk.jpg"
    junk.write_bytes(b"not an image at all")
    with pytest.raises(ImageError, match="cannot read"):
        saicm.compress(junk, model=tiny_model)


def test_api_takes_paths_and_image_bytes_and_refuses_what_it_would_misread(tmp_path, tiny_model):
    """compress: a path, the bytes of an image file or a file object give the same file; arrays whose values
    it would misread (0-255 floats came back nearly white, out-of-range integers wrapped) are refused.
    decompress, describe, strip: bytes or a path. Anything else: one SaicmError, not a TypeError."""
    import io

    img = natural_image()
    src = tmp_path / "a.png"
    Image.fromarray(img).save(src)
    data = saicm.compress(src, model=tiny_model)
    assert saicm.compress(src.read_bytes(), model=tiny_model) == data
    assert saicm.compress(io.BytesIO(src.read_bytes()), model=tiny_model) == data
    assert saicm.compress(img.astype(np.float32) / 255, model=tiny_model) == data
    assert saicm.compress(img.astype(np.int64), model=tiny_model) == data
    coded = tmp_path / "a.saicm"
    coded.write_bytes(data)
    for arg in (coded, str(coded)):
        assert np.array_equal(np.asarray(saicm.decompress(arg, model=tiny_model)),
                              np.asarray(saicm.decompress(data, model=tiny_model)))
        assert saicm.describe(arg) == saicm.describe(data)
        assert saicm.strip(arg) == data
    refused = [
        (img.astype(np.float32), "read as 0-1, this one spans 0 to 255"),
        (img.astype(np.int32) + 256, "read as 0-255"),
        (np.full((8, 8, 3), np.nan, np.float32), "NaN"),
        (img.astype(np.complex64), "dtype complex64"),
        (None, "not NoneType"),
        (b"junk", "not a format Pillow reads"),
        (b"", "empty"),
    ]
    for arg, needle in refused:
        with pytest.raises(ImageError, match=needle):
            saicm.compress(arg, model=tiny_model)
    with pytest.raises(FormatError, match="bytes of a .saicm file, its path or a binary file object, not int"):
        saicm.decompress(3)
    frames = [Image.fromarray(img), Image.fromarray(img[::-1])]
    frames[0].save(tmp_path / "anim.gif", save_all=True, append_images=frames[1:])
    with pytest.warns(UserWarning, match="2 frames, only the first is coded"):  # was silent
        saicm.compress(tmp_path / "anim.gif", model=tiny_model)
    with pytest.raises(FormatError, match="saicm video decode"):  # was "wrong magic"
        saicm.decompress(b"SAICV" + bytes(64))
    for q in ("3", 2.7, True):  # 2.7 was truncated to 2, "3" taken as 3
        with pytest.raises(ModelError, match="quality must be a whole number"):
            saicm.compress(src, model=tiny_model, quality=q)
    assert saicm.compress(src, model=tiny_model, quality=np.int64(2)) == saicm.compress(src, model=tiny_model, quality=2)
    with pytest.raises(SaicmError, match=r"nope\.saicm: no such file"):
        saicm.describe(tmp_path / "nope.saicm")
    bad = tmp_path / "bad.saicm"
    bad.write_bytes(b"JUNK!" + data[5:])
    with pytest.raises(FormatError, match=r"bad\.saicm: not a \.saicm file"):
        saicm.strip(bad)


def test_corrupt_payload_with_recomputed_crc_fails_cleanly(tiny_model):
    """A stream that passes the CRC but was not produced by the encoder still errors, not crashes."""
    data = saicm.compress(natural_image(), model=tiny_model)
    s = container.unpack(data)
    s.header.shapes = [(50, 50)]  # a latent shape that does not fit the image
    bad = container.pack(s)
    with pytest.raises(FormatError):
        saicm.decompress(bad, model=tiny_model)


def test_strip_synthesis_matches_whole_synthesis(tiny_model):
    net, _ = saicm.load_model(tiny_model)
    y = torch.randn(1, 24, 37, 5) * 4
    with torch.inference_mode():
        whole = net.g_s(y)
        strips = synthesize_in_strips(net.g_s, y, 16)
    assert strips.shape == whole.shape
    assert (strips - whole).abs().max() < 1e-4


def test_refinement_lowers_the_real_rd_cost_and_any_decoder_reads_it():
    img = natural_image(96, 128, seed=3)
    net, info = saicm.load_model("mse-hyperprior-n64-v3")
    lam = float(net.lambdas[2])
    plain = saicm.compress(img, model="mse-hyperprior-n64-v3", quality=3)
    refined = saicm.compress(img, model="mse-hyperprior-n64-v3", quality=3, refine=40)
    assert refined != plain
    assert saicm.decompress(refined).size == (128, 96)
    assert real_cost(refined, img, lam) < 0.97 * real_cost(plain, img, lam)
    # Written by the portable engine (decodes without PyTorch); CompressAI's coder on request.
    assert container.unpack(refined).header.version == container.PORTABLE_VERSION
    old = saicm.compress(img, model="mse-hyperprior-n64-v3", quality=3, refine=40, engine="compressai")
    assert container.unpack(old).header.version == container.VERSION
    assert real_cost(old, img, lam) < 0.97 * real_cost(plain, img, lam)
    # The shared, cached model collected no gradients.
    assert all(p.grad is None for p in net.parameters())


def test_refinement_errors():
    with pytest.raises(ModelError, match="0 or more"):
        saicm.compress(natural_image(), model="mse-hyperprior-n64-v3", refine=-1)
    with pytest.raises(ModelError, match="trained with --loss saicm"):
        saicm.compress(natural_image(), model="saicm-regions-a048-n64-v3", refine=5)


def test_refinement_needs_an_architecture_that_supports_it(monkeypatch, tiny_model):
    from types import SimpleNamespace

    from saicm.models import zoo

    net, info = saicm.load_model(tiny_model)
    bare = SimpleNamespace(num_qualities=net.num_qualities, multiple=net.multiple)
    monkeypatch.setattr(zoo, "load_model", lambda model: (bare, info))
    with pytest.raises(ModelError, match="does not support refinement"):
        saicm.compress(natural_image(), model=tiny_model, refine=2)


def test_refinement_of_an_architecture_without_it_says_so_before_the_loss():
    """An imported SA-ICM tcm (its card records the edge loss) was refused for its training loss, as if an MSE
    tcm could be refined: the architecture, which cannot, is said first (the import audit)."""
    from types import SimpleNamespace

    from saicm.codec.pipeline import check_refine

    tcm = SimpleNamespace(name="sa-icm-a078", architecture="tcm", training={"loss": "saicm"})
    with pytest.raises(ModelError, match=r"^sa-icm-a078 \(tcm\) does not support refinement$"):
        check_refine(tcm, 3)
    check_refine(tcm, 0)  # (no refinement asked: nothing to refuse)
    mse = SimpleNamespace(name="m", architecture="gained-mean-scale-hyperprior", training={"loss": "saicm"})
    with pytest.raises(ModelError, match="trained with --loss saicm"):
        check_refine(mse, 3)


@pytest.mark.parametrize("kw", [dict(refine=None), dict(refine="2"), dict(refine=2.5), dict(refine=True),
                                dict(refine=float("inf")), dict(max_pixels="abc"), dict(max_pixels=1.5),
                                dict(max_pixels=float("nan")), dict(max_pixels=True), dict(max_pixels=[1])])
def test_refine_and_max_pixels_take_whole_numbers_only(tiny_model, kw):
    """They were truncated (2.5, True, "2") or raised TypeError/ValueError/OverflowError."""
    with pytest.raises(ModelError, match="whole number"):
        saicm.compress(natural_image(32, 32), model=tiny_model, **kw)


def test_a_device_is_not_read_as_a_coded_file():
    """saicm.decompress('/dev/zero') read until memory ran out (MemoryError)."""
    if not os.path.exists("/dev/zero"):
        pytest.skip("no /dev/zero here")
    with pytest.raises(FormatError, match="is a device"):
        saicm.decompress("/dev/zero")


def test_a_device_is_not_read_as_an_image_either():
    """saicm.compress('/dev/zero') said "empty file" (a character device's size is 0)."""
    if not os.path.exists("/dev/zero"):
        pytest.skip("no /dev/zero here")
    with pytest.raises(ImageError, match="is a device, not an image"):
        saicm.compress("/dev/zero")


def test_library_integration_contract(tiny_model):
    """What a service embedding saicm relies on (integrator audit of 0.21.0): every error class is reachable from
    `saicm` and every failure is a SaicmError; the models package hands out the caller's own copy, never the
    cached model that coding uses; a PIL 32-bit image made in memory is read by the rule of integer arrays."""
    import sys

    import torch
    from PIL import Image

    from saicm import errors
    from saicm.engine.runtime import openvino_request

    for name in ("SaicmError", "FormatError", "ImageError", "ModelError", "ArgumentError", "MissingDependency",
                 "SaicmWarning"):
        assert getattr(saicm, name) is getattr(errors, name) and name in saicm.__all__
    # a missing OpenVINO: MissingDependency, an ImportError too (it was a ModelError: `except ImportError` missed it)
    saved = sys.modules.get("openvino")
    sys.modules["openvino"] = None
    try:
        with pytest.raises(ImportError) as e:
            openvino_request(b"", 1, "f32")
        assert isinstance(e.value, saicm.MissingDependency) and "saicm[openvino]" in str(e.value)
    finally:
        if saved is None:
            del sys.modules["openvino"]
        else:
            sys.modules["openvino"] = saved
    # a caller's stream failing: one SaicmError from decompress, as from compress (it was a bare OSError)
    class Failing:
        def read(self, *args):
            raise OSError("network down")

    # (each its input's class: the coded file's a FormatError since 0.39.0, which `except FormatError` catches)
    from saicm.video import decode as decode_clip

    for fn, cls in ((saicm.compress, saicm.ImageError), (saicm.decompress, saicm.FormatError),
                    (decode_clip, saicm.FormatError)):
        with pytest.raises(cls, match="network down"):
            fn(Failing())
    # saicm.models.load_model is the caller's own copy (it was the cached model: halving its weights changed every
    # later PyTorch-path coding in the process)
    from saicm.models import load_model

    img = natural_image(32, 32)
    before = saicm.compress(img, model=tiny_model, engine="compressai")
    net, _ = load_model(tiny_model)
    with torch.no_grad():
        for p in net.parameters():
            p.mul_(0.5)
    assert saicm.compress(img, model=tiny_model, engine="compressai") == before
    # mode I in memory: 255 is white and 300 is refused (300 was coded almost black, 255 white)
    from saicm.codec.image_io import load_image

    assert load_image(Image.fromarray(np.full((32, 32), 255, np.int32))).rgb.min() == 255
    with pytest.raises(ImageError, match="read as 0-255"):
        saicm.compress(Image.fromarray(np.full((32, 32), 300, np.int32)), model=tiny_model)



def test_calls_that_draw_no_bar_leave_the_multiprocessing_start_method_unset(tiny_model, tmp_path):
    """A refined encode with no progress asked for, and a clip's decode to frames asked for it with standard error
    not a terminal, made a (disabled) tqdm bar, whose first one makes a lock for child processes and so fixes the
    process's start method: the caller's own ``multiprocessing.set_start_method("spawn")`` afterwards raised "context
    has already been set" (and tqdm's monitor thread was left running)."""
    import subprocess
    import sys
    from pathlib import Path

    clip = Path(__file__).parent / "reference" / "shapes-64x48-8f-tiny.saicmv"
    code = ("import multiprocessing, sys, threading, numpy, saicm, saicm.video\n"
            "img = numpy.full((32, 32, 3), 100, numpy.uint8)\n"
            "saicm.decompress(saicm.compress(img, model=sys.argv[1], quality=1, refine=1), model=sys.argv[1])\n"
            "saicm.video.decode_file(sys.argv[2], sys.argv[3], progress=True)\n"
            "multiprocessing.set_start_method('spawn')\n"
            "print(sorted(t.name for t in threading.enumerate() if t.name.startswith('tqdm')))\n")
    r = subprocess.run([sys.executable, "-c", code, str(tiny_model), str(clip), str(tmp_path / "frames")],
                       capture_output=True, text=True, timeout=300, env=dict(os.environ, PYTHONWARNINGS="ignore"))
    assert r.returncode == 0 and r.stdout.strip() == "[]", r.stderr[-2000:]
    assert len(list((tmp_path / "frames").glob("*.png"))) == 8

def _typed_exports(source: str) -> dict[str, tuple[str, str]]:
    """Name → (module, attribute) of what a module's TYPE_CHECKING block exports to a type checker: imports in the
    ``X as X`` form, and ``X = _y`` of a private import. Any other import there (``a as b``, a bare ``a``) is not
    exported under mypy --strict (--no-implicit-reexport, which reads no computed ``__all__``), so it fails."""
    import ast

    tree = ast.parse(source)
    block = next((n for n in tree.body if isinstance(n, ast.If) and getattr(n.test, "id", "") == "TYPE_CHECKING"),
                 None)
    assert block is not None, "no TYPE_CHECKING block"
    out, private = {}, {}
    for n in block.body:
        if isinstance(n, ast.ImportFrom):
            for a in n.names:
                if a.asname == a.name:
                    out[a.name] = (n.module or "", a.name)
                else:
                    assert a.asname and a.asname.startswith("_"), f"{a.name} as {a.asname}: not exported"
                    private[a.asname] = (n.module or "", a.name)
        elif isinstance(n, ast.Assign):
            out[n.targets[0].id] = private[n.value.id]
    return out


def test_type_checkers_see_the_whole_api():
    """saicm ships py.typed, and what a type checker reads under TYPE_CHECKING names exactly the lazily imported
    API (mypy typed every saicm.X as Any, and with py.typed alone the module __getattr__ still hid them), each
    exported to mypy --strict (``from saicm import compress`` was 'does not explicitly export')."""
    from pathlib import Path

    root = Path(saicm.__file__).parent
    assert (root / "py.typed").is_file()
    typed = _typed_exports((root / "__init__.py").read_text())
    assert set(typed) == set(saicm._API) | {"video"}
    pyproject = root.parent / "pyproject.toml"
    if pyproject.is_file():  # a checkout: the wheel gets it; an installed package has it (above)
        assert '"py.typed"' in pyproject.read_text()


@pytest.mark.parametrize("package, api", [("saicm.video", "_API"), ("saicm.models", "_LAZY")])
def test_type_checkers_see_the_lazy_names_of_the_subpackages(package, api):
    """saicm.video and saicm.models import their names on first use too: without a TYPE_CHECKING block naming
    them, mypy typed every documented saicm.video.encode / decode and saicm.models.save_model /
    register_architecture as Any (the package's py.typed promised types; a typo in a keyword went unseen)."""
    import importlib
    import inspect

    mod = importlib.import_module(package)
    typed = _typed_exports(inspect.getsource(mod))
    assert set(typed) == set(getattr(mod, api))
    for name, (module, attr) in typed.items():  # each names the module and attribute the lazy import takes
        spec = getattr(mod, api)[name]
        where, lazy_attr = spec if isinstance(spec, tuple) else (spec, name)
        assert (where.rsplit(".", 1)[-1], lazy_attr) == (module, attr)


def test_the_documented_api_says_what_it_takes_returns_and_raises():
    """help(saicm.compress) and its annotations against docs/usage.md: model= was unannotated (Any under mypy),
    compress's docstring listed paths, PIL images and arrays only (it takes an image file's bytes and binary file
    objects too), decompress's and the describes' omitted file objects, none named the exceptions, and make_task
    returned None for "psnr" without saying so."""
    import typing

    import saicm.video
    from saicm.eval.tasks.sweeps import make_task
    from saicm.models.catalog import ModelInfo

    for fn in (saicm.compress, saicm.decompress):
        assert ModelInfo in typing.get_args(typing.get_type_hints(fn)["model"])
        assert "binary file object" in fn.__doc__ and "MemoryError" in fn.__doc__
        assert all(e in fn.__doc__ for e in ("ModelError", "ArgumentError", "MissingDependency", "SaicmError"))
    assert "bytes of an image file" in saicm.compress.__doc__ and "ImageError" in saicm.compress.__doc__
    assert "FormatError" in saicm.decompress.__doc__ and "FormatError" in saicm.describe.__doc__
    for fn in (saicm.describe, saicm.video.decode, saicm.video.describe):
        assert "binary file object" in fn.__doc__
    for fn in (saicm.video.decode, saicm.video.describe):
        assert "data" in typing.get_type_hints(fn)
    assert type(None) in typing.get_args(typing.get_type_hints(make_task)["return"])
    assert make_task("psnr") is None


def test_help_names_the_extra_of_a_public_function_the_install_lacks(tmp_path, monkeypatch):
    """On a coding-only install, help(saicm) listed load_model as a bare ``load_model(*args, **kwargs)`` with no
    text: nothing said that it needs PyTorch (release audit; the call itself said so in one line)."""
    import pydoc

    from saicm._lazy import lazy_getattr

    (tmp_path / "needs_torch_mod.py").write_text(
        "raise ModuleNotFoundError(\"No module named 'torch'\", name='torch')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    fn = lazy_getattr("pkg", {"load_model": ("needs_torch_mod", "open_model")}, {})("load_model")
    text = pydoc.render_doc(fn, renderer=pydoc.plaintext)
    assert "this needs torch" in text and 'pip install "saicm[train]"' in text
    with pytest.raises(saicm.MissingDependency):
        fn()


def test_a_missing_extra_says_why_it_is_needed_when_the_caller_knows():
    """needing_pytorch(WHY): an extra's missing module is a MissingDependency starting with WHY (a format-1 file on
    a coding-only install was "this needs torch", not why); without a why, no stray ": "; another missing module is
    not turned into one (mutation audit of 0.30.0: the why could be dropped or always joined with no fast test
    failing, the tests of it needing a coding-only install)."""
    from saicm.errors import MissingDependency, needing_pytorch

    torch_missing = ModuleNotFoundError("No module named 'torch'", name="torch")
    assert str(MissingDependency.of(torch_missing)).startswith("this needs torch, which the coding-only install lacks")
    with pytest.raises(MissingDependency, match=r"^a format-1 stream decodes with PyTorch: this needs torch, ") as e:
        with needing_pytorch("a format-1 stream decodes with PyTorch"):
            raise torch_missing
    assert isinstance(e.value, ImportError) and e.value.__cause__ is None
    with pytest.raises(ModuleNotFoundError) as e:
        with needing_pytorch("why"):
            raise ModuleNotFoundError("No module named 'not_an_extra'", name="not_an_extra")
    assert not isinstance(e.value, MissingDependency)


def test_a_missing_dependency_named_for_its_file_says_the_file():
    """A format-1 file decoded on a coding-only install: ``naming`` (decompress's) set the error's ``path``, but its
    one line, ``str()`` (an ImportError's is its ``msg``), still named no file (the command line said which of a
    folder's files needs PyTorch before 0.39.0's naming kept the error's attributes)."""
    from saicm.errors import MissingDependency, naming, needing_pytorch

    with pytest.raises(MissingDependency) as e:
        with naming("old.saicm"), needing_pytorch("a format-1 stream decodes with PyTorch"):
            raise ModuleNotFoundError("No module named 'torch'", name="torch")
    assert e.value.path == "old.saicm" and isinstance(e.value, ImportError)
    assert str(e.value) == f"old.saicm: {e.value.message}" and e.value.message.startswith("a format-1 stream")
