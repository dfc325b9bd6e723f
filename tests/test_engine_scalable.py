"""The human layer in the portable engine (human-layer version 2): exact tables, both engines, any size, no PyTorch."""

import hashlib
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import saicm
from saicm.codec import container
from saicm.engine import hypernet
from saicm.errors import FormatError, SaicmError
from saicm.models.catalog import RECOMMENDED_SCALABLE_MODEL as SCAL

from .conftest import run_without_torch

#: a two-layer model over a hyperprior base: coded in strips, its decodes equal the one-piece ones (a context base's
#: contexts stop at each strip's edge)
SCAL_HP = "scalable-off02v5-m4-cond"

ROOT = Path(__file__).resolve().parent.parent
REF = ROOT / "tests" / "reference" / "astronaut-200x150.png"


def _pixels(data, engine="auto", layer="auto"):
    return np.asarray(saicm.decompress(data, engine=engine, layer=layer)).astype(np.int16)


def _psnr(a, ref):
    return 10 * math.log10(255 ** 2 / ((a.astype(np.float64) - ref) ** 2).mean())


@pytest.fixture(scope="module")
def files():
    return {e: saicm.compress(REF, model=SCAL, quality=3, human_quality=5, engine=e)
            for e in ("onnx", "torch", "compressai")}


def test_exact_exp_is_correctly_rounded_on_known_values():
    v = hypernet.exact_exp(np.float32([0.0, 1.0, -1.0, np.log(2.0)]))
    assert v.dtype == np.float32
    assert v[0] == 1.0 and v[1] == np.float32(math.e) and v[2] == np.float32(1 / math.e)
    assert v[3] == np.float32(math.exp(float(np.float32(np.log(2.0)))))


def test_versions_and_both_layers(files):
    src = np.asarray(Image.open(REF).convert("RGB")).astype(np.float64)
    base_only = saicm.compress(REF, model=saicm.load_model(SCAL)[0].base_info.path, quality=3)
    for engine in ("onnx", "torch"):
        machine, human = container.split_layers(files[engine])
        assert machine == base_only  # the machine layer is the base model's own file, byte for byte
        layer = container.unpack_human(human)
        assert layer.version == container.HUMAN_PORTABLE_VERSION and layer.strip_rows >= 1
    old = container.unpack_human(container.split_layers(files["compressai"])[1])
    assert old.version == container.HUMAN_VERSION
    new = container.unpack_human(container.split_layers(files["onnx"])[1])
    assert abs(new.payload_bytes - old.payload_bytes) <= 0.03 * old.payload_bytes + 16  # the same rate
    human, machine = _pixels(files["onnx"]), _pixels(files["onnx"], layer="machine")
    assert _psnr(human, src) > _psnr(machine, src) + 0.5  # the human layer adds detail
    assert abs(_psnr(human, src) - _psnr(_pixels(files["compressai"]), src)) < 0.1
    info = saicm.describe(files["onnx"])["layers"]
    assert info["human"]["version"] == 2 and info["human"]["strip_rows"] == new.strip_rows
    # what the human layer decodes on: the base weights (the machine layer's) and the machine layer's bytes
    import hashlib

    whole = saicm.describe(files["onnx"])
    assert info["human"]["base_sha256_prefix"] == whole["weights_sha256_prefix"]
    machine_bytes = container.split_layers(files["onnx"])[0]
    assert info["human"]["machine_sha256_prefix"] == hashlib.sha256(machine_bytes).digest()[:8].hex()


def test_human_layers_cross_engines_and_the_same_engine_reads_exactly(files):
    for engine in ("onnx", "torch"):
        a, b = _pixels(files[engine], "onnx"), _pixels(files[engine], "torch")
        assert np.abs(a - b).max() <= 1 and (a == b).mean() > 0.99
        assert np.array_equal(a, _pixels(files[engine], "onnx"))
    with pytest.raises(SaicmError, match="version 2"):
        saicm.decompress(files["onnx"], engine="compressai")
    # a version-1 human layer (CompressAI's) decodes with PyTorch under any engine, as format-1/2 files do (0.33.0)
    assert np.array_equal(_pixels(files["compressai"], "onnx"), _pixels(files["compressai"], "compressai"))


def test_human_layers_on_openvino(files):
    """Both layers through OpenVINO's transforms (optional): float32 within ±1 of onnxruntime, bfloat16 within
    ±2; a two-layer file written with bfloat16 transforms decodes everywhere."""
    pytest.importorskip("openvino", reason="OpenVINO is not installed (the optional extra saicm[openvino])")
    ref = _pixels(files["onnx"], "onnx")
    assert np.abs(_pixels(files["onnx"], "openvino") - ref).max() <= 1
    assert np.abs(_pixels(files["onnx"], "openvino-bf16") - ref).max() <= 2
    assert np.abs(_pixels(files["onnx"], "openvino", "machine") - _pixels(files["onnx"], "onnx", "machine")).max() <= 1
    bf16 = saicm.compress(REF, model=SCAL, quality=3, human_quality=5, engine="openvino-bf16")
    assert abs(len(bf16) - len(files["onnx"])) <= 0.03 * len(files["onnx"])
    assert np.abs(_pixels(bf16, "onnx") - _pixels(bf16, "torch")).max() <= 1


def test_human_decode_is_the_same_in_processes_with_one_and_two_threads(files, tmp_path):
    path = tmp_path / "two.saicm"
    path.write_bytes(files["onnx"])
    code = ("import hashlib, numpy as np, saicm; "
            f"print(hashlib.sha256(np.asarray(saicm.decompress(open(r'{path}', 'rb').read())).tobytes()).hexdigest())")
    seen = {hashlib.sha256(np.asarray(saicm.decompress(files["onnx"])).tobytes()).hexdigest()}
    for n in ("1", "2"):
        env = dict(os.environ, SAICM_THREADS=n, OPENBLAS_NUM_THREADS=n, OMP_NUM_THREADS=n, MKL_NUM_THREADS=n)
        r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300)
        assert r.returncode == 0, r.stderr
        seen.add(r.stdout.strip())
    assert len(seen) == 1


def test_integer_condition_network_is_close_to_the_float_one(files):
    import torch

    from saicm.engine.codec import open_portable
    from saicm.engine.scalable import load_scalable
    from saicm.models.catalog import resolve

    ps = load_scalable(resolve(SCAL))
    stream = container.unpack(container.split_layers(files["onnx"])[0])
    h = stream.header
    units = open_portable(stream).decode_units(stream.strings, h.shapes[0], h.strip_rows)
    got = np.ldexp(ps._offset(units, h.quality).astype(np.float64), -hypernet.FRAC)
    net, _ = saicm.load_model(SCAL)
    with torch.no_grad():
        ref = net.cond(torch.from_numpy(ps.base.dequantise(units, h.quality)))[0].double().numpy()
    assert got.shape == ref.shape
    assert np.abs(got - ref).max() < 5e-3 and np.abs(got - ref).mean() < 5e-4


@pytest.mark.parametrize("model", [SCAL_HP, "scalable-off02v6-m4-cond"])
def test_images_coded_in_strips_and_tiles(monkeypatch, model):
    """Above the strip threshold (lowered here to keep the test small) both layers are coded in strips and
    analysed and synthesised by tiles; over a hyperprior base the human image is the same as without strips, to
    float precision; over a context-model base (contexts inside each strip) the latent moves by under a step at
    the strips' edges, so the pixels are close, not equal (as for single-layer context files: test_context)."""
    from saicm.codec import tiling

    img = np.asarray(Image.open(REF).convert("RGB").resize((400, 300)))
    whole = saicm.compress(img, model=model, quality=3, human_quality=4)
    monkeypatch.setattr(tiling, "STRIP_SYMBOLS", 1 << 10)
    monkeypatch.setattr(tiling, "STRIP_TARGET", 1 << 11)
    striped = saicm.compress(img, model=model, quality=3, human_quality=4)
    layer = container.unpack_human(container.split_layers(striped)[1])
    assert layer.strip_rows < 20 and len(layer.strings) > 2  # 20 latent rows: several strips
    a, b = _pixels(whole), _pixels(striped)
    assert a.shape == b.shape == (300, 400, 3)
    if model == SCAL_HP:
        assert np.abs(a - b).max() <= 1 and np.abs(a - b).mean() < 0.05
    else:
        assert np.abs(a - b).mean() < 3
    assert np.abs(_pixels(striped, "torch") - b).max() <= 1


def test_tall_images_keep_the_human_layer_within_its_string_count(monkeypatch):
    """A human layer holds at most 255 strings (a u8 count): an image with more latent rows than that, at one row
    per strip, is coded with two rows per strip instead of failing (it raised struct.error at 16448×4080)."""
    from saicm.codec import tiling

    img = np.asarray(Image.open(REF).convert("RGB").resize((64, 4160)))  # 260 latent rows
    whole = saicm.compress(img, model=SCAL_HP, quality=1, human_quality=1)
    monkeypatch.setattr(tiling, "STRIP_TARGET", 1)  # one latent row per strip wanted
    striped = saicm.compress(img, model=SCAL_HP, quality=1, human_quality=1)
    layer = container.unpack_human(container.split_layers(striped)[1])
    assert layer.strip_rows == 2 and len(layer.strings) == 1 + 130
    assert np.abs(_pixels(whole) - _pixels(striped)).max() <= 1
    too_many = container.HumanLayer(model="m", weights_sha=bytes(8), base_sha=bytes(8), machine_sha=bytes(8),
                                    quality=1, shapes=[(1, 1)], strings=[b""] * 256,
                                    version=container.HUMAN_PORTABLE_VERSION, strip_rows=1)
    with pytest.raises(FormatError, match="at most 255 strings"):
        container.pack_human(too_many)


def test_two_layer_files_without_pytorch(tmp_path):
    out = tmp_path / "two.saicm"
    r = run_without_torch(
            f"assert main(['compress', r'{REF}', '-o', r'{out}', '--model', '{SCAL}', '--quiet']) == 0\n"
            f"assert main(['decompress', r'{out}', '-o', r'{tmp_path / 'h.png'}', '--quiet']) == 0\n"
            f"assert main(['decompress', r'{out}', '-o', r'{tmp_path / 'm.png'}', '--layer', 'machine', '--quiet']) == 0\n"
            f"assert main(['strip', r'{out}', '-o', r'{tmp_path / 'm.saicm'}']) == 0\n", tmp_path / "cache")
    assert r.returncode == 0, r.stderr
    assert Image.open(tmp_path / "h.png").size == (200, 150)
    assert not (tmp_path / "cache" / "onnx").exists()  # the graphs are built in memory


def _with_layer(data: bytes, **changes) -> bytes:
    machine, human = container.split_layers(data)
    layer = container.unpack_human(human)
    for k, v in changes.items():
        setattr(layer, k, v)
    return machine + container.pack_human(layer)


def test_crafted_human_layers_are_refused_in_one_line(files):
    data = files["onnx"]
    layer = container.unpack_human(container.split_layers(data)[1])
    z = layer.shapes[0]
    bad = {
        "no strip rows": dict(strip_rows=0),
        "one strip row (more strips than strings)": dict(strip_rows=1),
        "a strip missing": dict(strings=layer.strings[:-1]),
        "shapes of another size": dict(shapes=[(z[0] + 1, z[1])]),
        "quality 0": dict(quality=0),
        "quality 99": dict(quality=99),
    }
    for what, change in bad.items():
        with pytest.raises(SaicmError) as e:
            saicm.decompress(_with_layer(data, **change))
        assert "\n" not in str(e.value), what
    # a version-2 human layer on a format-1 machine layer (the same image, CompressAI's coder)
    v1_machine = container.split_layers(files["compressai"])[0]
    human = container.unpack_human(container.split_layers(data)[1])
    human.machine_sha = hashlib.sha256(v1_machine).digest()[:8]
    with pytest.raises(FormatError, match="format 3"):
        saicm.decompress(v1_machine + container.pack_human(human))
    # damaged payloads behind a valid CRC, and the strings read by the version-1 decoder (which saicm 0.4.0 wrote
    # over format-3 machine layers too): garbage or a clean error, never a crash
    for payload in ([b""] * len(layer.strings), [b"\xff" * 9] * len(layer.strings)):
        for version in container.HUMAN_VERSIONS:
            try:
                saicm.decompress(_with_layer(data, strings=payload, version=version))
            except SaicmError as e:
                assert "\n" not in str(e)
    rng = np.random.default_rng(5)
    for _ in range(20):
        strings = [bytearray(s) for s in layer.strings]
        k = int(rng.integers(len(strings)))
        if strings[k]:
            strings[k][int(rng.integers(len(strings[k])))] ^= 1 << int(rng.integers(8))
        try:
            assert saicm.decompress(_with_layer(data, strings=[bytes(s) for s in strings])).size == (200, 150)
        except SaicmError as e:
            assert "\n" not in str(e)
