"""saicm.engine.onnx_export: the ONNX transforms compute what the PyTorch model computes."""

import os
import subprocess
import sys

import numpy as np
import pytest

ort = pytest.importorskip("onnxruntime")
torch = pytest.importorskip("torch")

from saicm.engine.onnx_export import PARTS, build_all, build_transform  # noqa: E402
from saicm.errors import ModelError  # noqa: E402

NAME = "mse-hyperprior-n64-v5"
TOL = 1e-4  # max abs difference, relative to the output's largest magnitude


@pytest.fixture(scope="module")
def net():
    from saicm.models.zoo import load_model

    return load_model(NAME)[0]


@pytest.fixture(scope="module")
def sessions():
    from safetensors.numpy import load_file

    from saicm.models.catalog import resolve

    models = build_all(load_file(str(resolve(NAME).path)))
    return {part: ort.InferenceSession(b, providers=["CPUExecutionProvider"]) for part, b in models.items()}


def _inputs(net, h: int, w: int, batch: int = 1, seed: int = 0) -> dict[str, np.ndarray]:
    """Realistic inputs of each part for an h×w image: the image, its gained latent, a latent ~ 3·N(0, 1)."""
    rng = np.random.default_rng(seed)
    x = rng.random((batch, 3, h, w), dtype=np.float32)
    with torch.no_grad():
        y = net.g_a(torch.from_numpy(x)) * net.log_gain[-1].exp()[:, None, None]
    latent = (3 * rng.standard_normal((batch, y.shape[1], h // 16, w // 16))).astype(np.float32)
    return {"g_a": x, "h_a": y.contiguous().numpy(), "g_s": latent}


def _compare(net, sessions, h: int, w: int, batch: int = 1) -> dict[str, float]:
    errors = {}
    for part, x in _inputs(net, h, w, batch).items():
        with torch.no_grad():
            ref = getattr(net, part)(torch.from_numpy(x)).contiguous().numpy()
        out = sessions[part].run(["y"], {"x": x})[0]
        assert out.shape == ref.shape, part
        errors[part] = float(np.abs(out - ref).max() / np.abs(ref).max())
    return errors


def test_matches_torch(net, sessions):
    errors = _compare(net, sessions, 128, 192)
    print("relative max abs diff, 128x192:", errors)
    assert max(errors.values()) <= TOL, errors


def test_dynamic_shapes(net, sessions):
    """Non-square size (latent 4×20), batch of 2, with the same graphs."""
    errors = _compare(net, sessions, 64, 320, batch=2)
    print("relative max abs diff, 2x64x320:", errors)
    assert max(errors.values()) <= TOL, errors


def test_other_sizes(tiny_model):
    """Layer sizes come from the weights: a random N=16, M=24 model (the suite's tiny model file)."""
    from safetensors.numpy import load_file

    from saicm.models.zoo import load_model

    net = load_model(tiny_model)[0]
    sessions = {part: ort.InferenceSession(b, providers=["CPUExecutionProvider"])
                for part, b in build_all(load_file(str(tiny_model))).items()}
    errors = _compare(net, sessions, 64, 96)
    assert max(errors.values()) <= TOL, errors


def test_graph_interface(sessions):
    for part, s in sessions.items():
        (i,), (o,) = s.get_inputs(), s.get_outputs()
        assert (i.name, o.name, i.type) == ("x", "y", "tensor(float)")
        assert isinstance(i.shape[0], str) and isinstance(i.shape[2], str) and isinstance(i.shape[3], str)
    assert set(sessions) == set(PARTS) == {"g_a", "h_a", "g_s"}


def test_bad_state():
    with pytest.raises(ModelError):
        build_transform({}, "g_a")
    with pytest.raises(ValueError):
        build_transform({}, "h_s")


def test_graphs_pass_the_onnx_checker():
    """The hand-serialized protobuf (saicm.engine.onnx_proto) is a valid ModelProto for the onnx package."""
    onnx = pytest.importorskip("onnx", reason="the onnx package is not installed (it is not a dependency)")
    from safetensors.numpy import load_file

    from saicm.models.catalog import resolve

    for part, data in build_all(load_file(str(resolve(NAME).path))).items():
        m = onnx.load_from_string(data)
        onnx.checker.check_model(m, full_check=True)
        assert m.ir_version == 8 and m.opset_import[0].version == 17
        assert [i.name for i in m.graph.input] == ["x"] and [o.name for o in m.graph.output] == ["y"]
        assert m.graph.node[-1].output[0] == "y" and len(m.graph.initializer) >= 6  # 3 convs at least


def test_no_torch_import():
    code = ("import sys, saicm.engine.onnx_export; "
            "bad = [m for m in ('torch', 'compressai', 'saicm.models', 'onnx') if m in sys.modules]; "
            "assert not bad, bad")
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")])))
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60, cwd=root, env=env)
