"""The portable engine (format 3): exact integer hyper-synthesis, ANS tables, onnxruntime ⇄ PyTorch ⇄ OpenVINO files."""

import os
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import saicm
from saicm.codec import container
from saicm.engine import hypernet
from saicm.errors import SaicmError

from .conftest import assert_pixels_within_one, natural_image, run_without_torch

ROOT = Path(__file__).resolve().parent.parent
REF = ROOT / "tests" / "reference" / "astronaut-200x150.png"
V5 = "mse-hyperprior-n64-v5"


def _v5_state():
    from safetensors.numpy import load_file

    from saicm.models.catalog import resolve

    return load_file(str(resolve(V5).path))


# --- the integer hyper-synthesis ------------------------------------------------------------------

def _exact_conv3x3(x, conv):
    """A 3×3 integer layer (stride 1, padding 1) before its activation, computed the slow way: every tap summed in
    int64, the bias added, rounded half up by the layer's shift and clipped."""
    h, w = x.shape[1:]
    w_int = conv.weight.reshape(3, 3, conv.cout, conv.cin).astype(np.int64)
    xp = np.pad(x, ((0, 0), (1, 1), (1, 1)))
    acc = sum(np.einsum("oc,chw->ohw", w_int[i, j], xp[:, i: i + h, j: j + w]) for i in range(3) for j in range(3))
    return np.clip((acc + conv.bias[:, None, None] + (1 << (conv.shift - 1))) >> conv.shift,
                   -hypernet.ACT_LIMIT, hypernet.ACT_LIMIT)


def _exact_deconv(x, w, b_units, shift):
    """Reference transposed convolution in int64 (exact, slow): the same definition, no float anywhere."""
    cin, h, wd = x.shape
    _, cout, k, _ = w.shape
    full = np.zeros((cout, 2 * h + k, 2 * wd + k), np.int64)
    for i in range(k):
        for j in range(k):
            full[:, i: i + 2 * h: 2, j: j + 2 * wd: 2] += np.einsum("co,chw->ohw", w[:, :, i, j], x)
    acc = full[:, k // 2: k // 2 + 2 * h, k // 2: k // 2 + 2 * wd] + b_units[:, None, None]
    return (acc + (1 << (shift - 1))) >> shift


@pytest.mark.parametrize("threads", ["1", "3"])
def test_integer_layers_match_exact_int64_arithmetic(monkeypatch, threads):
    """Every layer kind against int64 arithmetic, on one thread and split in blocks over three
    (rows of a convolution's output and of a transposed one's input, columns of a pointwise layer)."""
    monkeypatch.setenv("SAICM_THREADS", threads)
    st = _v5_state()
    layer = hypernet._layer(st["h_s.0.weight"], st["h_s.0.bias"], transposed=True, leaky=False)
    rng = np.random.default_rng(0)
    x = rng.integers(-hypernet.ACT_LIMIT, hypernet.ACT_LIMIT + 1, (64, 3, 4), dtype=np.int64)  # worst magnitudes
    w_int = layer.weight.reshape(layer.cout, layer.k, layer.k, layer.cin).transpose(3, 0, 1, 2).astype(np.int64)
    want = np.clip(_exact_deconv(x, w_int, layer.bias, layer.shift), -hypernet.ACT_LIMIT, hypernet.ACT_LIMIT)
    assert np.array_equal(hypernet._deconv(x, layer), want)
    conv = hypernet._layer(st["h_s.4.weight"], st["h_s.4.bias"], transposed=False, leaky=True)
    x = rng.integers(-hypernet.ACT_LIMIT, hypernet.ACT_LIMIT + 1, (192, 5, 7), dtype=np.int64)
    want = _exact_conv3x3(x, conv)
    want = np.where(want < 0, (want + 50) // 100, want)  # LeakyReLU(1/100), rounded half up
    assert np.array_equal(hypernet._conv(x, conv), want)
    rng_w = np.random.default_rng(1)  # a pointwise layer on a list of positions (the context aggregation), ReLU
    point = hypernet._layer(rng_w.normal(0, 0.1, (40, 30, 1, 1)), rng_w.normal(0, 0.1, 40), transposed=False,
                            leaky=False, relu=True)
    x = rng.integers(-hypernet.ACT_LIMIT, hypernet.ACT_LIMIT + 1, (30, 1, 1001), dtype=np.int64)
    acc = np.einsum("oc,cn->on", point.weight[0].astype(np.int64), x[:, 0]) + point.bias[:, None]
    want = np.maximum(np.clip((acc + (1 << (point.shift - 1))) >> point.shift, -hypernet.ACT_LIMIT,
                              hypernet.ACT_LIMIT), 0)
    assert np.array_equal(hypernet._conv(x, point)[:, 0], want)


@pytest.mark.parametrize("threads", ["1", "2", "3", "7"])
def test_transposed_layers_of_other_kernel_sizes_match_exact_int64_arithmetic(monkeypatch, threads):
    """The transposed layer runs as four stride-1 convolutions, one per output phase: every kernel size from 1 to 9
    (which taps a phase takes and their offsets differ with its parity; a 1×1 kernel leaves three phases without
    taps), inputs of one pixel, one row and one column, channel counts that do not split evenly, and blocks of input
    rows on up to seven threads, one row per block too (BLOCK_VALUES)."""
    from saicm.engine import parallel

    monkeypatch.setenv("SAICM_THREADS", threads)
    monkeypatch.setattr(parallel, "usable_cpus", lambda: 8)  # (threads() takes at most four per CPU)
    rng = np.random.default_rng(2)
    cases = [(5, 7, 3, 4, 3), (6, 5, 4, 5, 5), (3, 2, 2, 2, 2), (3, 5, 7, 4, 6), (4, 4, 1, 3, 3)]
    cases += [(int(rng.integers(1, 5)), int(rng.integers(1, 5)), k, h, w) for k in range(1, 10)
              for h, w in [(1, 1), (1, 6), (6, 1), (7, 2)]]
    whole = hypernet.BLOCK_VALUES
    for cin, cout, k, h, w in cases:
        layer = hypernet._layer(rng.normal(0, 0.3, (cin, cout, k, k)), rng.normal(0, 1, cout), transposed=True,
                                leaky=True)
        x = rng.integers(-hypernet.ACT_LIMIT, hypernet.ACT_LIMIT + 1, (cin, h, w), dtype=np.int64)
        w_int = layer.weight.reshape(cout, k, k, cin).transpose(3, 0, 1, 2).astype(np.int64)
        want = np.clip(_exact_deconv(x, w_int, layer.bias, layer.shift), -hypernet.ACT_LIMIT, hypernet.ACT_LIMIT)
        want = np.where(want < 0, (want + 50) // 100, want)
        for block in (whole, 1):
            monkeypatch.setattr(hypernet, "BLOCK_VALUES", block)
            assert np.array_equal(hypernet._deconv(x, layer), want), (k, cin, cout, h, w, block)


@pytest.mark.parametrize("threads", ["1", "3"])
def test_a_pointwise_stack_on_parts_is_the_stack_on_their_concatenation(monkeypatch, threads):
    """The context model's aggregation runs on its inputs' parts (hyperprior, channel context) without building
    their concatenation, and leaves out the parts that are zero: the same integers as the whole, inputs beyond the
    activation limit saturating alike. The first layer's columns are cached by first column and width (a cache by
    first column alone gave a wider part the narrower one's columns: mutation review of session 60)."""
    monkeypatch.setenv("SAICM_THREADS", threads)
    rng = np.random.default_rng(3)
    stack = hypernet.IntegerConvStack([
        hypernet._layer(rng.normal(0, 0.1, (24, 18, 1, 1)), rng.normal(0, 0.1, 24), transposed=False, leaky=False,
                        relu=True),
        hypernet._layer(rng.normal(0, 0.1, (10, 24, 1, 1)), rng.normal(0, 0.1, 10), transposed=False, leaky=False)])
    n = 1001
    first = rng.integers(-2 * hypernet.ACT_LIMIT, 2 * hypernet.ACT_LIMIT, (6, n), dtype=np.int64)
    last = rng.integers(-hypernet.ACT_LIMIT, hypernet.ACT_LIMIT + 1, (6, n), dtype=np.int64)
    whole = np.concatenate([first, np.zeros((6, n), np.int64), last])[:, None, :]
    assert np.array_equal(stack.pointwise([(0, first), (12, last)]), stack(whole)[:, 0])
    assert np.array_equal(stack.pointwise([(12, last)]), stack(np.concatenate([0 * first, 0 * first, last])[:, None])[:, 0])
    both = np.concatenate([first, last])  # a part from a first column cached for a narrower one: its own columns
    assert np.array_equal(stack.pointwise([(0, both)]), stack(np.concatenate([both, 0 * first])[:, None])[:, 0])
    with pytest.raises(ValueError, match="1×1"):
        hypernet.IntegerConvStack(hypernet.IntegerHyperSynthesis(_v5_state()).layers).pointwise([(0, first)])


def _int64_requantize(acc, layer):
    """The activation of an accumulator by the definition, in int64: round half up by the layer's shift (or shift
    left), saturate, then ReLU or LeakyReLU (slope 1/100, rounded half up)."""
    a = np.asarray(acc, np.int64)
    a = (a + (1 << (layer.shift - 1))) >> layer.shift if layer.shift > 0 else a << -layer.shift
    a = np.clip(a, -hypernet.ACT_LIMIT, hypernet.ACT_LIMIT)
    if layer.relu:
        a = np.maximum(a, 0)
    return np.where(a < 0, (a + 50) // 100, a) if layer.leaky else a


@pytest.mark.parametrize("shift", [-3, 0, 1, 16, 27, 40])
@pytest.mark.parametrize("activation", ["leaky", "relu", "none"])
def test_requantisation_in_float64_is_the_int64_definition(shift, activation):
    """Activations are rounded, saturated and activated in float64 (faster than int64 and back; saicm 0.40.2): the
    same integers for accumulators up to the 2**52 bound, at the halves where rounding turns, at the saturation
    limit and where LeakyReLU's rounding turns (-50/-51, -150/-151 …), and for a negative shift."""
    import dataclasses

    layer = hypernet._layer(np.ones((1, 1, 1, 1)), np.zeros(1), transposed=False, leaky=activation == "leaky",
                            relu=activation == "relu")
    layer = dataclasses.replace(layer, shift=shift)
    unit = 1 << max(shift, 0)
    edges = [0, 1, -1, unit // 2, unit // 2 - 1, -(unit // 2), -(unit // 2) - 1, 2 ** 52 - 1, -(2 ** 52 - 1)]
    edges += [v * unit + d for v in (50, 51, 149, 150, 151, hypernet.ACT_LIMIT, hypernet.ACT_LIMIT + 1)
              for d in (0, unit // 2 - 1, unit // 2) for v in (v, -v)]
    top = min(2 ** 52, (hypernet.ACT_LIMIT + 200) * unit)  # (the bound on every accumulator: 2**52)
    rng = np.random.default_rng(shift + 100)
    acc = np.array([v for v in edges if abs(v) < 2 ** 52] + list(rng.integers(-2 ** 52 + 1, 2 ** 52, 20000)) +
                   list(rng.integers(-top + 1, top, 20000)), np.int64)
    if shift < 0:
        acc = acc >> 20  # (shifted left, the float64 route must not overflow int64 either)
    got = hypernet._requantize(acc.astype(np.float64), layer)
    assert got.dtype == np.float64 and np.array_equal(got, _int64_requantize(acc, layer))


def test_leaky_relu_in_float64_is_exact_for_every_negative_activation():
    """LeakyReLU's ``floor((a + 50) / 100)`` in float64 (saicm 0.40.2) is the int64 ``(a + 50) // 100`` for every
    activation from -ACT_LIMIT to 0, all 2**25 of them (the docstring's argument: the division's rounding error,
    below 2**-27, cannot reach the next integer, at least 0.01 away), and never a negative zero."""
    import dataclasses

    layer = hypernet._layer(np.ones((1, 1, 1, 1)), np.zeros(1), transposed=False, leaky=True)
    layer = dataclasses.replace(layer, shift=0)  # (an accumulator is then its activation)
    step = 1 << 21
    for lo in range(-hypernet.ACT_LIMIT, 0, step):
        a = np.arange(lo, lo + step, dtype=np.int64)
        got = hypernet._requantize(a.astype(np.float64), layer)
        assert np.array_equal(got, (a + 50) // 100) and not np.signbit(got[got == 0]).any(), lo


def test_integer_weights_respect_the_exactness_bound():
    hs = hypernet.IntegerHyperSynthesis(_v5_state())
    for layer in hs.layers:
        w = np.abs(layer.weight.astype(np.int64))
        sums = w.reshape(layer.cout, layer.k * layer.k, layer.cin).sum(axis=(1, 2)) if layer.transposed \
            else w.sum(axis=(0, 2))
        assert sums.max() <= hypernet.WEIGHT_SUM_LIMIT
        assert np.abs(layer.bias).max() <= hypernet.BIAS_LIMIT
        # |acc| ≤ Σ|w|·ACT_LIMIT + |b| < 2**53: every float64 product and partial sum is exact
        assert int(sums.max()) * hypernet.ACT_LIMIT + int(np.abs(layer.bias).max()) < 2 ** 53


def test_a_layer_whose_biases_are_clipped_says_so_and_a_shipped_one_does_not():
    """A layer of near-zero weights (an early checkpoint: saicm zero-initialises some last layers) gets a large
    shift, and its biases were clipped in silence: exact at both ends, but not the model's tables (extremes audit:
    a bias of -3.0 came out as -2.0)."""
    import warnings

    with pytest.warns(saicm.SaicmWarning, match=r"near-zero weights \(Σ\|w\| 1\.0e-03\).*beyond ±2 are clipped"):
        layer = hypernet._layer(np.full((2, 1, 1, 1), 1e-3), np.array([0.5, -3.0]), transposed=False, leaky=False)
    assert layer.shift == 35 and layer.bias[1] == -hypernet.BIAS_LIMIT  # (clipped, as before: the format's rule)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        hypernet.IntegerHyperSynthesis(_v5_state())  # the shipped model's layers: nothing clipped, nothing said
        hypernet._layer(np.full((2, 1, 1, 1), 1e-3), np.array([0.5, -1.9]), transposed=False, leaky=False)


def test_integer_weights_take_the_largest_shift_within_the_bound():
    """Known shifts (mutation audit of 0.24.0: the bound's ``<=``, the cap of 40 and the all-zero case could each
    be moved with no test failing, and the shift decides the coder tables, so a file written before such a change
    would decode to garbage after it). One output summing exactly to 2**26 keeps that shift; a sum of 3 takes
    2**24 (3·2**25 is past the bound); tiny and all-zero weights stop at 2**40."""
    def shift(w):
        wi, s = hypernet._integer_weights(np.asarray(w, np.float64), axes=(1,))
        assert np.array_equal(wi, np.rint(np.ldexp(np.asarray(w, np.float64), s)))
        return s

    assert shift([[1.0]]) == 26 and shift([[0.5, -0.5]]) == 26  # Σ|w|·2**26 = WEIGHT_SUM_LIMIT exactly
    assert shift([[3.0]]) == 24 and shift([[1.0 + 2 ** -20]]) == 25
    assert shift([[1.0 + 2 ** -28]]) == 26  # the float estimate says 25; the rounded integers fit at 26
    assert shift([[2.0 ** -20]]) == 40 and shift([[2.0 ** -14]]) == 40 and shift([[2.0 ** -13]]) == 39
    assert shift([[0.0, 0.0]]) == 40 and shift(np.zeros((0, 3))) == 40


def test_a_convolution_on_one_row_uses_every_tap():
    """A 3×3 layer on a one-row input (the condition network on a 16-pixel-high image) must not take the pointwise
    path, which reads only the first tap, and a 1×1 layer on several rows must not either (``k == 1 and h == 1`` →
    ``or`` and either ``==`` → ``!=`` survived: every test input had several rows, the only 1×1 layer one row;
    mutation audit of 0.24.0)."""
    rng = np.random.default_rng(2)
    conv = hypernet._layer(rng.normal(0, 0.1, (6, 4, 3, 3)), rng.normal(0, 0.1, 6), transposed=False, leaky=False)
    x = rng.integers(-hypernet.ACT_LIMIT, hypernet.ACT_LIMIT + 1, (4, 1, 9), dtype=np.int64)
    assert np.array_equal(hypernet._conv(x, conv), _exact_conv3x3(x, conv))
    point = hypernet._layer(rng.normal(0, 0.1, (6, 4, 1, 1)), rng.normal(0, 0.1, 6), transposed=False, leaky=False)
    for rows in (2, 3):  # 1×1 on several rows
        x = rng.integers(-hypernet.ACT_LIMIT, hypernet.ACT_LIMIT + 1, (4, rows, 5), dtype=np.int64)
        acc = np.einsum("oc,chw->ohw", point.weight[0].astype(np.int64), x) + point.bias[:, None, None]
        want = np.clip((acc + (1 << (point.shift - 1))) >> point.shift, -hypernet.ACT_LIMIT, hypernet.ACT_LIMIT)
        assert np.array_equal(hypernet._conv(x, point), want)


def test_layers_split_in_many_row_blocks_give_the_one_block_result(monkeypatch):
    """Large latents are computed in blocks of rows (BLOCK_VALUES bounds the memory); at the tested sizes every layer
    ran in one block, so the block arithmetic (``r1 - r0`` → ``r1 + r0`` in the transposed layer) could break with no
    test failing, and only images of tens of megapixels would have found it (mutation audit of 0.24.0)."""
    st = _v5_state()
    hs = hypernet.IntegerHyperSynthesis(st)
    z = np.random.default_rng(4).integers(-2 ** 20, 2 ** 20, (64, 5, 7))
    whole = hs(z)
    assert whole.dtype == np.int64  # (float64 between the layers, the last one written as int64)
    monkeypatch.setattr(hypernet, "BLOCK_VALUES", 1)  # one row (one column) per block
    assert np.array_equal(hs(z), whole)


def test_a_condition_network_whose_input_does_not_fit_its_scale_is_refused():
    rng = np.random.default_rng(3)
    state = {f"cond.{i}.weight": rng.normal(0, 0.1, (4, 4, 3, 3)) for i in (0, 2, 4)}
    state.update({f"cond.{i}.bias": np.zeros(4) for i in (0, 2, 4)})
    hypernet.condition_network(state, "cond", np.ones(4, np.float32))
    for scale in (np.ones(3, np.float32), np.ones(5, np.float32), np.ones((4, 1), np.float32)):
        with pytest.raises(ValueError, match=r"cond\.0\.weight \(4, 4, 3, 3\) does not take"):
            hypernet.condition_network(state, "cond", scale)
    state["cond.0.weight"] = state["cond.0.weight"][:, :, :, 0]  # not a 4-d convolution weight
    with pytest.raises(ValueError, match="does not take"):
        hypernet.condition_network(state, "cond", np.ones(4, np.float32))


def test_the_integer_networks_saturate_their_input_like_every_activation():
    """A crafted file's latent reaches the integer networks far beyond ±ACT_LIMIT (a scalable model's condition
    network reads the machine layer's decoded y, whose escapes go to ±2²³, ×2¹⁵): the input saturates first, so
    every sum stays below 2⁵³ and exact. Without it the result was another function of the input, and no test
    failed (mutation audit of session 57)."""
    net = hypernet.IntegerHyperSynthesis(_v5_state())
    rng = np.random.default_rng(2)
    x = rng.integers(-hypernet.ACT_LIMIT, hypernet.ACT_LIMIT + 1, (net.in_channels, 3, 4), dtype=np.int64)
    x[:, 1, 1] = 1 << 38
    x[::2, 2, 3] = -(1 << 38)
    np.testing.assert_array_equal(net(x), net(np.clip(x, -hypernet.ACT_LIMIT, hypernet.ACT_LIMIT)))


def test_integer_hyper_synthesis_is_close_to_the_float_one():
    import torch

    from saicm.models.zoo import load_model

    net, _ = load_model(V5)
    hs = hypernet.IntegerHyperSynthesis(_v5_state())
    rng = np.random.default_rng(1)
    z = rng.integers(-6, 7, (64, 3, 5))
    med = net._z_medians().numpy().reshape(-1).astype(np.float64)
    med_units = np.rint(np.ldexp(med, hypernet.FRAC)).astype(np.int64)
    got = np.ldexp(hs((z << hypernet.FRAC) + med_units[:, None, None]).astype(np.float64), -hypernet.FRAC)
    with torch.no_grad():
        ref = net.h_s(torch.from_numpy(z + np.ldexp(med_units, -hypernet.FRAC)[:, None, None]).float()[None])[0]
    assert np.abs(got - ref.double().numpy()).max() < 5e-3  # measured ~1e-3 at most


def test_hyper_synthesis_is_the_same_for_any_thread_count():
    code = ("import hashlib, numpy as np; from safetensors.numpy import load_file; "
            "from saicm.engine.hypernet import IntegerHyperSynthesis; from saicm.models.catalog import resolve; "
            f"hs = IntegerHyperSynthesis(load_file(str(resolve('{V5}').path))); "
            "z = np.random.default_rng(3).integers(-2**20, 2**20, (64, 6, 9)); "
            "print(hashlib.sha256(hs(z).tobytes()).hexdigest())")
    out = set()
    for n, engine_threads in (("1", "1"), ("2", "1"), ("1", "2"), ("2", "3")):  # BLAS's, the engine's
        env = dict(os.environ, OPENBLAS_NUM_THREADS=n, OMP_NUM_THREADS=n, MKL_NUM_THREADS=n,
                   SAICM_THREADS=engine_threads)
        r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
        assert r.returncode == 0, r.stderr
        out.add(r.stdout.strip())
    assert len(out) == 1


def test_scale_index_is_the_binary_search():
    """The lookup-table scale → coder-table index equals ``searchsorted`` on every scale, at and around each
    threshold, beyond both ends (a crafted hyper-latent's scales), and for thresholds it cannot tabulate."""
    thr = hypernet.scale_thresholds(_v5_state()["gaussian_conditional.scale_table"].astype(np.float32))
    rng = np.random.default_rng(1)
    # one threshold (a 2-entry scale table) and a first threshold of −1 took the lookup-table path, which
    # failed on an empty gap array or sent every negative scale to index 1 (mutation audit of 0.23.0)
    for t in (thr, np.array([0, 1, 2, 3]), np.array([5, 7, 1 << 40]), np.array([3, 3, 9]), np.array([-4, 2]),
              np.array([7]), np.array([-1, 5])):
        index = hypernet.ScaleIndex(t)
        s = np.concatenate([t - 1, t, t + 1, rng.integers(-(1 << 24), 1 << 26, 20000),
                            [np.iinfo(np.int64).min, np.iinfo(np.int64).max, 0]])
        got = index(s.reshape(2, -1) if s.size % 2 == 0 else s)
        assert got.dtype == np.int32
        assert np.array_equal(got.reshape(-1), np.searchsorted(t, s, side="left"))
    assert hypernet.ScaleIndex(thr).lut is not None  # the shipped tables take the fast path
    assert hypernet.ScaleIndex(np.array([0, 1, 2, 3])).lut is not None  # a first threshold of 0 as well
    assert hypernet.ScaleIndex(np.array([5, 7, 1 << 40])).lut is None  # too wide a table: binary search


# --- the entropy tables -----------------------------------------------------------------------------

def test_tables_roundtrip_with_escapes_and_reject_garbage():
    from saicm.entropy.tables import CdfTables

    st = _v5_state()
    t = CdfTables(st["gaussian_conditional._quantized_cdf"], st["gaussian_conditional._cdf_length"],
                  st["gaussian_conditional._offset"])
    rng = np.random.default_rng(0)
    idx = rng.integers(0, len(t), 5000)
    sym = np.rint(rng.normal(0, 1, 5000) * np.exp(idx / 12)).astype(np.int64)
    sym[:3] = [10 ** 6, -(10 ** 6), 0]  # far outside every table: escapes
    data = t.encode(sym, idx)
    assert np.array_equal(t.decode(data, idx), sym)
    for bad in (data[:-1], data + b"\0", b"\xff\xff\xff\xff\xff\xff", b""):
        with pytest.raises(SaicmError):
            t.decode(bad, idx)


@pytest.mark.parametrize("n_tables", [3, 300])  # 8-bit and 16-bit sort keys
def test_tables_roundtrip_for_any_number_of_tables(n_tables):
    from saicm.entropy.tables import CdfTables

    rng = np.random.default_rng(n_tables)
    cdf = np.zeros((n_tables, 6), np.int64)
    for i in range(n_tables):
        cdf[i, 1:] = np.sort(rng.choice(np.arange(1, 1 << 16), 4, replace=False)).tolist() + [1 << 16]
    t = CdfTables(cdf, np.full(n_tables, 6), np.full(n_tables, -2))
    idx = rng.integers(0, n_tables, 4000)
    sym = rng.integers(-3, 6, 4000)
    data = t.encode(sym, idx)
    assert np.array_equal(t.decode(data, idx), sym)
    assert t.decode(data, idx[::-1].copy()).tolist() != sym.tolist()  # the tables decide the symbols


def test_passes_decode_one_by_one_with_tables_chosen_from_earlier_passes():
    """A context model's string: the tables of a pass depend on the symbols before it; one pass is exactly
    :meth:`encode`'s string; a decoder that reads too few passes, or a damaged string, is refused."""
    from saicm.entropy.tables import CdfTables

    st = _v5_state()
    t = CdfTables(st["gaussian_conditional._quantized_cdf"], st["gaussian_conditional._cdf_length"],
                  st["gaussian_conditional._offset"])
    rng = np.random.default_rng(5)
    passes, prev = [], np.zeros(300, np.int64)
    for n in range(4):
        tables = (np.abs(prev) * 3 + n) % len(t)  # decided by the previous pass's symbols
        sym = np.rint(rng.normal(0, 3, 300)).astype(np.int64)
        sym[n] = 5000 * (-1) ** n  # an escape in every pass
        passes.append((sym, tables))
        prev = sym
    data = t.encode_passes(passes)
    dec, prev = t.decoder(data), np.zeros(300, np.int64)
    for n, (sym, tables) in enumerate(passes):
        got = dec.decode((np.abs(prev) * 3 + n) % len(t))
        assert np.array_equal(got, sym)
        prev = got
    dec.finish()
    assert t.encode_passes(passes[:1]) == t.encode(*passes[0])
    short = t.decoder(data)
    short.decode(passes[0][1])
    with pytest.raises(SaicmError):
        short.finish()
    for bad in (data[:-1], data + b"\0", data[:5]):
        with pytest.raises(SaicmError):
            d = t.decoder(bad)
            for _, tables in passes:
                d.decode(tables)
            d.finish()


# --- files: both engines ------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def files():
    import saicm

    return {e: saicm.compress(REF, model=V5, quality=4, engine=e) for e in ("onnx", "torch")}


def _decode(data, engine):
    import saicm

    return np.asarray(saicm.decompress(data, engine=engine)).astype(np.int16)


def test_portable_files_cross_engines(files):
    for data in files.values():
        assert container.unpack(data).header.version == container.PORTABLE_VERSION
        a, b = _decode(data, "onnx"), _decode(data, "torch")
        assert np.abs(a - b).max() <= 1
        assert np.array_equal(a, _decode(data, "onnx"))  # the same engine reads its own file exactly
    src = np.asarray(Image.open(REF).convert("RGB")).astype(np.float64)
    for data in files.values():
        mse = ((_decode(data, "onnx") - src) ** 2).mean()
        assert 10 * np.log10(255 ** 2 / mse) > 28


def test_portable_decode_is_the_same_on_one_and_two_threads(files):
    from saicm.engine.codec import open_portable
    from saicm.engine.runtime import OnnxTransforms

    stream = container.unpack(files["onnx"])
    pm = open_portable(stream)
    h = stream.header
    y = pm.decode(stream.strings, h.shapes[0], h.quality, h.strip_rows)
    outs = [OnnxTransforms(pm, n).synthesis(y) for n in (1, 2)]
    assert np.abs(outs[0] - outs[1]).max() < 1e-5
    assert np.array_equal(np.rint(np.clip(outs[0], 0, 1) * 255), np.rint(np.clip(outs[1], 0, 1) * 255))


def test_graphs_are_built_in_memory_and_a_planted_cache_is_never_read(files, tmp_path, monkeypatch):
    """The graphs were cached under $SAICM_CACHE/onnx, checked only by a SHA-256 written beside them by whoever
    wrote the graph: in a cache others could write, a planted synthesis decoded every image wrong without a word,
    and a planted analysis could read the user's files into the output (a security review, 0.22.0). Building
    them costs what reading and checking them did; nothing is read from or written to the cache any more."""
    from saicm.engine.codec import open_portable
    from saicm.engine.onnx_export import build_transform
    from saicm.engine.runtime import OnnxTransforms
    from saicm.models.catalog import full_checksum

    monkeypatch.setenv("SAICM_CACHE", str(tmp_path))
    stream = container.unpack(files["onnx"])
    pm = open_portable(stream)
    h = stream.header
    y = pm.decode(stream.strings, h.shapes[0], h.quality, h.strip_rows)
    ref = OnnxTransforms(pm, 1).synthesis(y)
    assert ref.shape[-2:] == (16 * y.shape[-2], 16 * y.shape[-1])
    assert not list(tmp_path.rglob("*")), list(tmp_path.rglob("*"))  # nothing written
    # what 0.22.0 would have read: another transform's valid graph under the synthesis's name, with its checksum
    import hashlib

    digest = full_checksum(pm.info.path).hex()[:32]
    planted = build_transform(pm.state, "h_a", producer=f"saicm.engine.onnx_export {digest}-g_s-e2")
    (tmp_path / "onnx").mkdir()
    (tmp_path / "onnx" / f"{digest}-g_s-e2.onnx").write_bytes(planted)
    (tmp_path / "onnx" / f"{digest}-g_s-e2.onnx.sha256").write_text(hashlib.sha256(planted).hexdigest() + "\n")
    assert np.array_equal(OnnxTransforms(pm, 1).synthesis(y), ref)


def test_onnxruntime_out_of_memory_is_a_memory_error(files, monkeypatch, tmp_path):
    """onnxruntime's failed allocations came out as its own exception classes and a 40-line traceback: folder jobs
    stopped at the first image too large for the memory instead of reporting it and going on."""
    from saicm.engine import runtime

    class Fail(Exception):  # (what onnxruntime raises: onnxruntime.capi.onnxruntime_pybind11_state.Fail)
        pass

    class Session:
        def run(self, *args, **kwargs):
            raise Fail("[ONNXRuntimeError] : 1 : FAIL : BFCArena::AllocateRawInternal Failed to allocate memory for "
                       "requested buffer of size 84934656")

    from saicm.cli import main
    from saicm.engine.codec import open_portable

    monkeypatch.setenv("SAICM_CACHE", str(tmp_path))
    monkeypatch.setenv("SAICM_THREADS", "3")  # transforms of their own (the model keeps them per thread count)
    monkeypatch.setattr(runtime, "session", lambda graph, n: Session())
    out = tmp_path / "out.png"
    try:
        with pytest.raises(MemoryError, match="onnxruntime: .*Failed to allocate memory"):
            saicm.decompress(files["onnx"])
        (tmp_path / "in.saicm").write_bytes(files["onnx"])
        assert main(["decompress", str(tmp_path / "in.saicm"), "-o", str(out), "--quiet"]) == 1  # one line
        assert not out.exists()
    finally:  # the cached model must not keep the failing sessions for later tests
        open_portable(container.unpack(files["onnx"])).transforms.pop(("onnx", 3), None)


# --- OpenVINO (optional): float32 and bfloat16 transforms, the same exact tables -------------------------------

def _openvino():
    import importlib.util

    if importlib.util.find_spec("openvino") is None:  # (not imported here: saicm imports it without its telemetry)
        pytest.skip("OpenVINO is not installed (the optional extra saicm[openvino]; make install brings it)")


def test_the_openvino_engines_send_no_telemetry(tmp_path):
    """`import openvino` imports its model-conversion tools, whose import starts Intel's telemetry without asking:
    coding with --engine openvino wrote ~/intel/openvino_ga_cid and ~/intel/stats and sent an "import" event
    (a test-suite audit found them in an empty $HOME). saicm needs only OpenVINO's runtime: nothing is written."""
    _openvino()
    home = tmp_path / "home"
    home.mkdir()
    code = ("import sys, saicm\n"
            f"data = saicm.compress({str(REF)!r}, model={V5!r}, quality=1, engine='openvino-bf16')\n"
            "saicm.decompress(data, engine='openvino')\n"
            "print('openvino' in sys.modules, 'openvino.tools.ovc' in sys.modules)\n")
    env = {**os.environ, "HOME": str(home), "PYTHONWARNINGS": "ignore"}
    for var in ("CI", "TF_BUILD", "JENKINS_URL"):  # (OpenVINO's telemetry stays off in CI jobs it recognises)
        env.pop(var, None)
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, env=env)
    assert p.returncode == 0, p.stderr[-2000:]
    assert p.stdout.split() == ["True", "False"]  # OpenVINO ran; its conversion tools were not imported
    assert list(home.iterdir()) == []


@pytest.mark.parametrize("model", [V5, "mse-context-n64-v6"])
def test_openvino_engines_read_and_write_the_same_format(model, monkeypatch):
    """Every file decodes on every engine: the coder tables are the integer networks', whatever computes the
    transforms. Float32 OpenVINO pixels are within ±1 of onnxruntime's; bfloat16 ones within ±2 (bfloat16
    activations; on a CPU without bfloat16 units OpenVINO computes float32 and lands within ±1); each engine
    reads its own decode exactly, on one thread as on two."""
    import saicm

    _openvino()
    files = {e: saicm.compress(REF, model=model, quality=4, engine=e) for e in ("onnx", "openvino", "openvino-bf16")}
    for e, data in files.items():
        assert container.unpack(data).header.version == container.PORTABLE_VERSION
        ref = _decode(data, "onnx")
        assert np.abs(_decode(data, "openvino") - ref).max() <= 1, e
        bf16 = _decode(data, "openvino-bf16")
        assert np.abs(bf16 - ref).max() <= 2, e
        monkeypatch.setenv("SAICM_THREADS", "1")
        assert np.array_equal(bf16, _decode(data, "openvino-bf16"))
        monkeypatch.delenv("SAICM_THREADS")
    assert abs(len(files["openvino-bf16"]) - len(files["onnx"])) <= 0.02 * len(files["onnx"])


def test_the_bfloat16_bound_that_decompress_states_holds_on_screen_content():
    """`decompress --help` said bf16 pixels differ from float32 ones "by up to 2" (README: "pixels ±2"): a figure
    of photos. On screen content the bfloat16 synthesis moves more: a 64×64 2-pixel checkerboard at v5's top
    quality decoded 4 away from onnxruntime's pixels (5 with mse-context-n64-v6) on an AVX-512 BF16 CPU (an
    extreme-content audit). The bound the help states is the one such an image keeps (on a CPU without bfloat16
    units OpenVINO computes float32 and lands within ±1)."""
    import re

    from saicm.cli import build_parser

    _openvino()
    parser = build_parser()
    sub = next(a for a in parser._actions if a.__class__.__name__ == "_SubParsersAction").choices["decompress"]
    help_text = " ".join(sub.format_help().split())
    bounds = [int(n) for n in re.findall(r"bf16 pixels .*?up to (\d+)", help_text)]
    assert bounds, help_text
    yy, xx = np.mgrid[:64, :64]
    checker = np.repeat(((yy // 2 + xx // 2) % 2 * 255).astype(np.uint8)[..., None], 3, axis=2)
    data = saicm.compress(checker, model=V5, quality=7)
    assert np.abs(_decode(data, "openvino-bf16") - _decode(data, "onnx")).max() <= max(bounds)


def test_evaluation_codes_and_decodes_with_the_engine_it_names():
    """``saicm eval --codec MODEL,engine=openvino-bf16`` decodes with OpenVINO too (not onnxruntime), under its
    own name and configuration (so cached results of another engine are not taken for it)."""
    from saicm.eval.codecs import get_codec

    _openvino()
    img = Image.open(REF).convert("RGB")
    plain, bf16 = get_codec(V5), get_codec(f"{V5},engine=openvino-bf16")
    assert bf16.name == f"{V5}@openvino-bf16" and bf16.config() != plain.config()
    data = plain.encode(img, 4)
    ours = np.asarray(bf16.decode(data)).astype(np.int16)
    assert np.array_equal(ours, _decode(data, "openvino-bf16"))
    assert np.abs(ours - np.asarray(plain.decode(data)).astype(np.int16)).max() <= 2


def test_a_cpu_without_bfloat16_units_is_named_once(monkeypatch):
    """OpenVINO computes float32 where the CPU has no bfloat16 units, whatever the hint: saicm says so, once."""
    import types
    import warnings

    from saicm.engine import runtime

    class Type:
        def __init__(self, name):
            self.name = name

        def __eq__(self, other):
            return self.name == other.name

        def get_type_name(self):
            return self.name

    compiled = types.SimpleNamespace(get_property=lambda key: Type("f32"), create_infer_request=lambda: "request")
    core = types.SimpleNamespace(read_model=lambda graph: graph, compile_model=lambda model, device, cfg: compiled)
    fake = types.SimpleNamespace(Core=lambda: core, Type=types.SimpleNamespace(bf16=Type("bf16")))
    monkeypatch.setitem(sys.modules, "openvino", fake)
    monkeypatch.setattr(runtime, "_OPENVINO", {"core": None, "warned": False})
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert runtime.openvino_request(b"graph", 2, "f32") == "request"
        assert not caught  # float32 asked, float32 given
        for _ in range(3):
            assert runtime.openvino_request(b"graph", 2, "bf16") == "request"
    assert [str(w.message) for w in caught] == ["this CPU has no bfloat16 units: OpenVINO runs the transforms in f32"]


def test_openvino_missing_is_a_clear_error(monkeypatch, tmp_path):
    import saicm
    from saicm.cli import main
    from saicm.engine.model import load
    from saicm.models.catalog import resolve

    pm = load(resolve(V5))
    kept = dict(pm.transforms)  # sessions made by earlier tests would hide the missing import
    pm.transforms.clear()
    monkeypatch.setitem(sys.modules, "openvino", None)  # import openvino → ImportError
    try:
        for engine in ("openvino", "openvino-bf16"):
            with pytest.raises(SaicmError, match=r'pip install "saicm\[openvino\]"'):
                saicm.compress(REF, model=V5, engine=engine)
        data = saicm.compress(REF, model=V5, quality=1)
        with pytest.raises(SaicmError, match="OpenVINO"):
            saicm.decompress(data, engine="openvino-bf16")
        (tmp_path / "a.saicm").write_bytes(data)
        # a missing extra stops the job (every file would fail alike), as PyTorch's does: exit 2, not a file's 1
        assert main(["decompress", str(tmp_path / "a.saicm"), "-o", str(tmp_path / "a.png"), "--engine", "openvino",
                     "--quiet"]) == 2
        assert not (tmp_path / "a.png").exists()
    finally:
        pm.transforms.clear()
        pm.transforms.update(kept)


# --- files written on other CPUs ------------------------------------------------------------------------

#: Format-3 files and the SHA-256 of the integer latents they decode to (the machine layer's ŷ in units of
#: 2**-FRAC, then the human layer's for a two-layer file): the astronaut files were written by saicm 0.8.0 on an
#: Intel Xeon with AVX-512 (2026-12-03; v7's by saicm 0.36.0 on an AMD Zen 4), the corpus file by saicm 0.4.0 on an AMD
#: Zen 3 with AVX2. The tables are exact integers, so every CPU must decode the same latents; the pixels (float
#: synthesis) within ±1.
CROSS_CPU = {
    "reference/astronaut-200x150-v5-q1-v3.saicm": "888b476adc9defd83ee264fb84d9329048a5179d531b9efb3ee75225de61b5f8",
    "reference/astronaut-200x150-v5-q4-v3.saicm": "17dc7ee849ea56b8fe16586295774e03da39bf4740cdd68787eeca542137ddb8",
    "reference/astronaut-200x150-v5-q7-v3.saicm": "20fd7f6bc3ed47705567acb6190698b797dac8ea71f49ba76c23c5464ab12820",
    "reference/astronaut-200x150-ctx-v5-s2c-q4-v3.saicm":
        "ba334548a9de5b95fbe2ec5f73c3873ab9394a156308879cd7bee4cd6575f60c",
    "reference/astronaut-200x150-mse-context-n64-v5-q4-v3.saicm":  # the shipped context model, saicm 0.11.0 (Intel)
        "0a06635afeb5fbb0ef48833f79e776373b94dfb7540419e42786b532e55cda80",
    "reference/astronaut-200x150-mse-context-n64-v6-q4-v3.saicm":  # its successor, saicm 0.13.0 (Intel)
        "e18d75a64fd3c45324bf66b7438926741f58ecebe63519b7d148fc0273efbe19",
    "reference/astronaut-200x150-mse-context-n64-v7-q4-v3.saicm":  # and its successor, saicm 0.36.0 (AMD Zen 4)
        "44339bb9c0ed3937273a3dc70c8cfc376335b08e1686128877a0f9b893504fd4",
    "reference/astronaut-200x150-scalable-b1-h4-v3.saicm":
        "b7927086d603f71d11670392522940371debb27b679715b8590fec8830ec3f77",
    "corpus/v3-valid-64x64-v5-q1.saicm": "dbda845100ad0164318340258b39ad8960d5733f4187780732ba54801e10f43e",
}
CTX = ROOT / "checkpoints" / "ctx-v5-s2c.safetensors"


def _reencoded(pm, strings, z_shape, rows, offset=None):
    """The decoded integer latent and the strings this CPU's tables give it when coded again."""
    n, (h, w) = pm.N, z_shape
    z_sym = pm.z_tables.decode(strings[0], pm._z_tables_index((n, h, w)).reshape(-1)).reshape(n, h, w)
    units = pm.decode_units(strings, z_shape, rows, offset)
    y = np.ldexp(units.astype(np.float64), -hypernet.FRAC)
    return units, pm.encode(y, z_sym + pm.medians[:, None, None], rows, offset)


@pytest.mark.parametrize("name", list(CROSS_CPU))
def test_files_from_other_cpus_decode_to_the_same_integer_latents(name):
    """Decoded here, a file gives the latents it gave on the CPU that pinned it (exact integers), and those
    latents coded again with this CPU's tables give the file's strings byte for byte: the tables that decided
    the writer's code are the ones this CPU computes."""
    import hashlib

    import saicm
    from saicm.engine.codec import open_portable
    from saicm.engine.scalable import load_scalable
    from saicm.models.catalog import resolve

    path = ROOT / "tests" / name
    model = str(CTX) if "ctx-" in name else None
    data = path.read_bytes()
    machine, human = container.split_layers(data)
    stream = container.unpack(machine)
    assert stream.header.version == container.PORTABLE_VERSION
    h = stream.header
    units, again = _reencoded(open_portable(stream, model), stream.strings, h.shapes[0], h.strip_rows)
    assert again == stream.strings
    digest = hashlib.sha256(units.tobytes())
    if human is not None:
        layer = container.unpack_human(human)
        ps = load_scalable(resolve(layer.model))
        offset = ps._offset(units, h.quality)
        human_units, again = _reencoded(ps.add, layer.strings, layer.shapes[0], layer.strip_rows, offset)
        assert again == layer.strings
        digest.update(human_units.tobytes())
    assert digest.hexdigest() == CROSS_CPU[name]
    stored = path.with_suffix(".decoded.png")
    if stored.exists():
        assert_pixels_within_one(saicm.decompress(data, model=model), Image.open(stored))


def test_rate_matches_the_compressai_coder():
    import saicm

    new = saicm.compress(REF, model=V5, quality=4, engine="onnx")
    old = saicm.compress(REF, model=V5, quality=4, engine="compressai")
    assert container.unpack(old).header.version == 1
    assert abs(len(new) - len(old)) <= 0.02 * len(old) + 16


def test_coding_without_pytorch(tmp_path):
    code = ("import sys, saicm, numpy as np; "
            f"d = saicm.compress(r'{REF}', quality=2); img = saicm.decompress(d); "
            "assert img.size == (200, 150), img.size; "
            "bad = [m for m in ('torch', 'compressai') if m in sys.modules]; print(bad)")
    env = dict(os.environ, SAICM_CACHE=str(tmp_path))  # (the graphs are built from the file, in memory)
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "[]"
    assert not (tmp_path / "onnx").exists()  # nothing cached on disk


def test_a_trained_model_runs_on_the_engine(tiny_model):
    import saicm

    data = saicm.compress(REF, model=tiny_model, quality=2, engine="onnx")
    a = _decode_with(data, tiny_model, "onnx")
    b = _decode_with(data, tiny_model, "torch")
    assert a.shape == (150, 200, 3) and np.abs(a - b).max() <= 1


def _decode_with(data, model, engine):
    import saicm

    return np.asarray(saicm.decompress(data, model=model, engine=engine)).astype(np.int16)


def test_unsupported_models_and_engines_are_clear_errors(tmp_path):
    import saicm

    with pytest.raises(SaicmError, match="engine"):
        saicm.compress(REF, model=V5, engine="tpu")
    data = saicm.compress(REF, model=V5, quality=1)
    with pytest.raises(SaicmError, match="portable"):
        saicm.decompress(data, engine="compressai")


# --- hostile files --------------------------------------------------------------------------------------

def _repack(stream: container.Stream) -> bytes:
    return container.pack(stream)


def test_crafted_portable_streams_fail_cleanly(files):
    import saicm

    stream = container.unpack(files["onnx"])
    rng = np.random.default_rng(7)
    outcomes = {"error": 0, "decoded": 0}
    cases = []
    for i in range(60):  # payload mutations behind a valid CRC: they reach the entropy decoder
        strings = [bytearray(s) for s in stream.strings]
        k = int(rng.integers(len(strings)))
        if len(strings[k]):
            for _ in range(int(rng.integers(1, 4))):
                strings[k][int(rng.integers(len(strings[k])))] = int(rng.integers(256))
        if i % 5 == 0:
            strings[k] = strings[k][: int(rng.integers(len(strings[k]) + 1))]
        cases.append(container.Stream(stream.header, [bytes(s) for s in strings], stream.alpha))
    h = stream.header
    for shapes, rows, n in (([(1, 1)], h.strip_rows, 2), (h.shapes, 1, 2), (h.shapes, 65535, 1),
                            ([(65535, 65535)], h.strip_rows, 2)):
        cases.append(container.Stream(container.Header(**{**h.__dict__, "shapes": shapes, "strip_rows": rows}),
                                      stream.strings[:n], None))
    for s in cases:
        try:
            img = saicm.decompress(_repack(s), engine="onnx")
            assert img.size == (h.width, h.height)
            outcomes["decoded"] += 1
        except SaicmError:
            outcomes["error"] += 1
    assert outcomes["error"] >= 4  # every layout lie is refused; payload damage may decode to garbage
    # a string claiming more ANS words than it holds, and an endless LEB128 number
    for payload in (b"\xff\xff\xff\x0f", b"\x80" * 64):
        bad = container.Stream(h, [payload] + stream.strings[1:], None)
        with pytest.raises(SaicmError):
            saicm.decompress(_repack(bad))


def test_portable_header_layout_is_version_two_layout():
    """Format 3 shares version 2's header layout: strip rows (u16) and a u32 string count."""
    h = container.Header(model="m", weights_sha=b"\0" * 8, quality=1, height=64, width=64, shapes=[(1, 1)],
                         version=container.PORTABLE_VERSION, strip_rows=4)
    data = container.pack(container.Stream(h, [b"ab", b"c"]))
    body = data[:-4]
    assert struct.unpack(">I", data[-4:])[0] == zlib.crc32(body)
    assert body.endswith(struct.pack(">HI", 4, 2) + struct.pack(">I", 2) + b"ab" + struct.pack(">I", 1) + b"c")
    assert container.unpack(data).strings == [b"ab", b"c"]


def test_without_pytorch_installed_coding_works_and_the_rest_says_what_to_install(tmp_path):
    """A coding-only install, simulated: importing torch or compressai fails in the child."""
    out = tmp_path / "a.saicm"
    folder = tmp_path / "photos"
    folder.mkdir()
    for k in range(3):
        (folder / f"{k}.png").write_bytes(REF.read_bytes())
    # (eval: an image above 160 pixels a side, whose MS-SSIM needs PyTorch; smaller ones import none since 0.31.0)
    large = tmp_path / "large"
    large.mkdir()
    Image.open(REF).resize((240, 200)).save(large / "x.png")
    r = run_without_torch(
            f"assert main(['compress', r'{REF}', '-o', r'{out}', '--quiet']) == 0\n"
            f"assert main(['decompress', r'{out}', '-o', r'{tmp_path / 'a.png'}', '--quiet']) == 0\n"
            f"print(main(['compress', r'{REF}', '-o', r'{tmp_path / 'b.saicm'}', '--engine', 'torch', '--quiet']))\n"
            f"print(main(['decompress', r'{ROOT / 'tests/reference/astronaut-200x150-v5-q1.saicm'}', '-o', "
            f"r'{tmp_path / 'c.png'}', '--quiet']))\n"
            f"print(main(['compress', r'{folder}', '-o', r'{tmp_path / 'f'}', '--engine', 'torch', '--quiet']))\n"
            # an evaluation command: saicm[eval], not [train]
            f"print(main(['eval', '--codec', 'jpeg', '--dataset', r'{large}', '-o', r'{tmp_path / 'e.json'}', '--quiet']))\n",
            tmp_path / "cache")
    assert r.returncode == 0, r.stderr
    # all refused (exit 2, as train or eval), one line each, no traceback; the folder's job said it once per image
    assert r.stdout.splitlines()[-4:] == ["2", "2", "2", "2"]
    lines = [ln for ln in r.stderr.splitlines() if "pip install" in ln]
    assert len(lines) == 4 and all(ln.startswith("saicm: error:") for ln in lines)
    assert ["saicm[train]" in ln for ln in lines] == [True] * 3 + [False] and "saicm[eval]" in lines[3]
    assert "Traceback" not in r.stderr


def test_without_pytorch_the_api_names_what_to_install(tmp_path):
    """saicm.load_model on a coding-only install raised a bare ModuleNotFoundError, and hasattr(saicm,
    "load_model") / from saicm import * raised too: the name is there, and calling it is one SaicmError line."""
    r = run_without_torch(
        "import saicm\n"
        "assert hasattr(saicm, 'load_model')\n"
        "from saicm import *\n"
        "try:\n    saicm.load_model('mse-hyperprior-n64-v5')\n"
        "except saicm.SaicmError as e:\n    print('refused:', e)\n"
        # calls that need PyTorch only for some arguments raised a bare ModuleNotFoundError from deep inside
        f"for call in [lambda: saicm.compress(r'{REF}', engine='torch'), lambda: saicm.compress(r'{REF}', refine=2),\n"
        f"             lambda: saicm.decompress(r'{ROOT / 'tests/reference/astronaut-200x150-v5-q1.saicm'}')]:\n"
        "    try:\n        call()\n    except saicm.SaicmError as e:\n        print('refused:', e)\n", tmp_path / "cache")
    assert r.returncode == 0, r.stderr
    assert r.stdout.count("refused: this needs torch") == 3 and r.stdout.count('pip install "saicm[train]"') == 4
    # (the old file: its format is why, said, as "this needs torch" alone did not)
    assert "q1.saicm: a format-1 stream decodes with PyTorch and CompressAI's coder (saicm before 0.4.0" in r.stdout
    # (and today's writers of it: a TCM model's file is no old file; docs/format.md)
    assert "--engine compressai and the models the portable engine does not code, such as TCM" in r.stdout
    v1 = ROOT / "tests/reference/astronaut-96x64-scalable-b1-h4-v1.saicm"  # a two-layer file of saicm 0.3/0.4
    r = run_without_torch("import saicm\nfor layer in ('human', 'machine'):\n    try:\n"
                          f"        saicm.decompress(r'{v1}', layer=layer)\n"
                          "    except saicm.SaicmError as e:\n        print('refused:', e)\n", tmp_path / "cache")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert "v1.saicm: a human layer of version 1 decodes with PyTorch" in lines[0] and "torch" in lines[0]
    assert "the scalable models the portable engine does not code" in lines[0]
    assert "v1.saicm: a format-1 stream decodes with PyTorch" in lines[1] and "saicm[train]" in lines[1]
    clip = ROOT / "tests/reference/shapes-64x48-8f-tiny.saicmv"  # a clip's header is read without PyTorch (0.33.0)
    r = run_without_torch(f"import saicm\nd = saicm.describe(r'{clip}')\nprint(d['file_type'], d['frames'])\n"
                          "try:\n    saicm.video.decode(r'" + str(clip) + "')\n"
                          "except saicm.SaicmError as e:\n    print('refused:', e)\n", tmp_path / "cache")
    assert r.returncode == 0 and "saicmv 8" in r.stdout, r.stderr
    assert "refused: this needs torch" in r.stdout  # (its network does)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_integer_networks_run_in_a_child_forked_after_their_threads_started(monkeypatch):
    """The engine's thread pool does not survive fork: a child forked after the parent used it must make its own
    (a pool inherited without its threads would wait forever), and compute the same bits."""
    import multiprocessing as mp

    monkeypatch.setenv("SAICM_THREADS", "2")
    hs = hypernet.IntegerHyperSynthesis(_v5_state())
    z = np.random.default_rng(5).integers(-2**20, 2**20, (64, 4, 5))
    want = hs(z)  # starts the pool here
    with mp.get_context("fork").Pool(1) as pool:
        got = pool.apply_async(hs, (z,)).get(timeout=60)
    assert np.array_equal(got, want)


def _release_then_code(data):
    import saicm

    saicm.release_models()  # frees the sessions this child inherited (a forked worker's clean-up)
    return saicm.compress(REF, model=V5, quality=4)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_a_child_forked_after_onnxruntime_ran_frees_and_codes(monkeypatch):
    """onnxruntime sessions made in the parent hold threads a forked child does not have: freeing one there
    (release_models, the drop of a large image's sessions, the interpreter's exit) joined them and waited for good
    (a multiprocessing fork pool hung after the parent coded a 1024x768 image). A child makes sessions of its own."""
    import multiprocessing as mp

    monkeypatch.setenv("SAICM_THREADS", "2")
    want = saicm.compress(REF, model=V5, quality=4)  # the parent's sessions, with their threads
    with mp.get_context("fork").Pool(1) as pool:
        got = pool.apply_async(_release_then_code, (want,)).get(timeout=60)
    assert got == want


def test_integer_networks_from_several_threads_agree_and_restore_blas_threads(monkeypatch):
    """Several threads coding at once share the engine's pool and its one-thread BLAS limit; the limit is lifted
    when the last one is done (BLAS keeps the thread count it had) and every result is the same bits."""
    from concurrent.futures import ThreadPoolExecutor

    from threadpoolctl import ThreadpoolController

    monkeypatch.setenv("SAICM_THREADS", "2")
    blas = ThreadpoolController().select(user_api="blas")
    before = [lib["num_threads"] for lib in blas.info()]
    hs = hypernet.IntegerHyperSynthesis(_v5_state())
    z = np.random.default_rng(6).integers(-2**20, 2**20, (64, 3, 4))
    want = hs(z)
    with ThreadPoolExecutor(3) as ex:
        outs = list(ex.map(lambda _: hs(z), range(12)))
    assert all(np.array_equal(o, want) for o in outs)
    assert [lib["num_threads"] for lib in ThreadpoolController().select(user_api="blas").info()] == before


def test_the_thread_count_is_bounded_and_bad_values_are_unset(monkeypatch):
    """SAICM_THREADS=99999 gave every onnxruntime session 99,999 threads (the process limit ran out)."""
    from saicm.engine.parallel import threads, usable_cpus

    cpus = usable_cpus()  # (the affinity and a container's CPU quota, not the machine's count)
    for value, want in (("99999", 4 * cpus), ("1", 1), ("0", cpus), ("-1", cpus), ("abc", cpus), ("2.5", cpus)):
        monkeypatch.setenv("SAICM_THREADS", value)
        assert threads() == want, value


def test_saicm_threads_alone_bounds_numpys_blas_threads():
    """SAICM_THREADS=1 alone still ran NumPy's OpenBLAS on every core (126 % CPU for a one-core edge box); a user's
    own OMP_NUM_THREADS still wins."""
    import subprocess

    code = ("import os, saicm, numpy; from threadpoolctl import threadpool_info; "
            "print(os.environ.get('OMP_NUM_THREADS'), [i['num_threads'] for i in threadpool_info() "
            "if i['user_api'] == 'blas'])")
    env = {k: v for k, v in os.environ.items()
           if k not in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "SAICM_THREADS")}
    out = {}
    for extra in ({"SAICM_THREADS": "1"}, {"SAICM_THREADS": "1", "OMP_NUM_THREADS": "2"}, {}):
        r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                           env=dict(env, **extra))
        assert r.returncode == 0, r.stderr
        out[tuple(extra.items())] = r.stdout.split(None, 1)
    assert out[(("SAICM_THREADS", "1"),)] == ["1", "[1]\n"]
    assert out[(("SAICM_THREADS", "1"), ("OMP_NUM_THREADS", "2"))] == ["2", "[2]\n"]
    assert out[()][0] == "None"


def test_a_thread_count_int_cannot_read_counts_as_unset(monkeypatch):
    from saicm.engine.parallel import threads, usable_cpus

    monkeypatch.setenv("SAICM_THREADS", "²")  # a digit to str.isdigit, not to int()
    assert threads() == usable_cpus()


def test_a_blank_folder_variable_counts_as_unset(monkeypatch, tmp_path):
    """SAICM_CACHE=" " (an env file's stray space) made a folder named " " in whatever folder `saicm eval` ran
    from, and SAICM_MODELS=" " looked models up there; blank, each is unset, as SAICM_THREADS is."""
    from pathlib import Path

    from saicm._fs import cache_dir
    from saicm.models.catalog import user_model_dir

    monkeypatch.setenv("HOME", str(tmp_path))
    for var in ("XDG_CACHE_HOME", "XDG_DATA_HOME"):
        monkeypatch.delenv(var, raising=False)
    for blank in (" ", "\t", ""):
        monkeypatch.setenv("SAICM_CACHE", blank)
        monkeypatch.setenv("SAICM_MODELS", blank)
        assert cache_dir() == tmp_path / ".cache" / "saicm", repr(blank)
        assert user_model_dir() == tmp_path / ".local" / "share" / "saicm" / "models", repr(blank)
    monkeypatch.setenv("SAICM_CACHE", "~/c")
    assert cache_dir() == tmp_path / "c"
    monkeypatch.setenv("SAICM_MODELS", "rel")  # (as given: from the working folder)
    assert user_model_dir() == Path("rel")


def test_a_user_without_a_home_folder_still_codes(monkeypatch, tmp_path):
    """A service account with no $HOME and no passwd entry got a traceback ("Could not determine home directory")
    from every command; the cache and the user's model folder now lie where nothing is found or created."""
    from pathlib import Path

    from saicm._fs import NO_HOME, cache_dir
    from saicm.models.catalog import user_model_dir

    def no_home():
        raise RuntimeError("Could not determine home directory.")

    for var in ("HOME", "SAICM_CACHE", "SAICM_MODELS", "XDG_CACHE_HOME", "XDG_DATA_HOME"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setattr(Path, "home", staticmethod(no_home))
    assert cache_dir().is_relative_to(NO_HOME) and user_model_dir().is_relative_to(NO_HOME)
    monkeypatch.setattr(os.path, "expanduser", lambda p: p)  # (no passwd entry either: `~` stays as it is)
    monkeypatch.setenv("SAICM_CACHE", "~/cache")
    assert cache_dir() == Path("~/cache")  # left as it is, not a traceback
    monkeypatch.delenv("SAICM_CACHE")
    data = saicm.compress(natural_image(64, 64))  # the graphs are built in memory
    assert saicm.decompress(data).size == (64, 64)
    assert saicm.list_models()


def test_onnxruntime_keeps_no_telemetry_in_the_users_home(tmp_path):
    """onnxruntime wrote a device id and an event database under ~/.cache/Microsoft on every run; a user's own
    setting of its opt-out still wins."""
    code = ("import os, saicm\nprint(os.environ['ORT_DISABLE_TELEMETRY'])\n"
            "saicm.decompress(saicm.compress(__import__('numpy').zeros((32, 32, 3), 'uint8')))\n")
    env = {k: v for k, v in os.environ.items() if k != "ORT_DISABLE_TELEMETRY"}
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                       env=dict(env, HOME=str(tmp_path), XDG_CACHE_HOME=str(tmp_path / "xdg"),
                                SAICM_CACHE=str(tmp_path / "c")))
    assert r.returncode == 0 and r.stdout.strip() == "1", r.stderr
    assert not (tmp_path / ".cache" / "Microsoft").exists()
    r = subprocess.run([sys.executable, "-c", "import os, saicm; print(os.environ['ORT_DISABLE_TELEMETRY'])"],
                       capture_output=True, text=True, env=dict(os.environ, ORT_DISABLE_TELEMETRY="0"))
    assert r.stdout.strip() == "0", r.stderr


def test_the_extras_table_agrees_with_pyproject():
    """errors.EXTRAS (module → extra, for the one-line 'pip install' message) is kept by hand beside pyproject.toml:
    it lacked pytorch_msssim and openvino. Each extra's requirement has its modules there, under that extra (or
    under one the extra holds), and nothing else is."""
    import re
    import tomllib
    from importlib.metadata import packages_distributions

    from saicm.errors import EXTRAS

    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]

    def holds(extra: str) -> set[str]:  # the extras an extra installs, itself included
        out = {extra}
        for req in extras[extra]:
            m = re.match(r"saicm\[([\w,]+)\]", req)
            out |= {x for e in (m.group(1).split(",") if m else []) for x in holds(e)}
        return out

    dist_of = {mod: {d.lower().replace("_", "-") for d in dists} for mod, dists in packages_distributions().items()}
    wanted = {}
    for extra in ("train", "eval", "openvino"):
        for req in extras[extra]:
            name = re.match(r"[A-Za-z0-9_.-]+", req).group(0).lower().replace("_", "-")
            if name not in ("saicm", "numpy"):
                wanted[name] = extra
    mods = {d: [m for m, ds in dist_of.items() if d in ds and not m.startswith("_")] for d in wanted}
    installed = {d: m for d, m in mods.items() if m}
    assert len(installed) >= 8  # (make installs every extra)
    for dist, modules in installed.items():
        assert any(m in EXTRAS for m in modules), f"{dist} ({modules}) of saicm[{wanted[dist]}] is not in EXTRAS"
        for m in modules:
            if m in EXTRAS:
                assert wanted[dist] in holds(EXTRAS[m]), (m, EXTRAS[m], wanted[dist])
    known = {m for ms in mods.values() for m in ms}
    assert not [m for m in EXTRAS if m in dist_of and m not in known], "EXTRAS names a module of no extra"


def test_large_transform_runs_hand_their_arena_back(monkeypatch):
    """onnxruntime kept each session's arena at its largest size for the life of the process: one 1920x1280 image
    left a worker at 1.9 GB for every small image after it (soak audit, 0.20.0). The first ordinary run after runs
    over SHRINK_PIXELS hands its own arena's excess back and drops the other grown sessions (an encode-only service
    never runs the synthesis again); large runs in a row keep theirs (shrinking after each cost ~20 %)."""
    from saicm.engine import runtime

    seen, opened = [], []

    class Session:
        def run(self, outputs, feeds, ro):
            try:
                seen.append(ro.get_run_config_entry("memory.enable_memory_arena_shrinkage"))
            except RuntimeError:  # (onnxruntime: no such entry)
                seen.append("")
            return [feeds["x"]]

    t = runtime.OnnxTransforms.__new__(runtime.OnnxTransforms)
    t._sessions, t._grown = {}, set()
    t._open = lambda part, make: opened.append(part) or Session()
    x_small = np.zeros((1, 3, 512, 768), np.float32)          # 0.39 MP
    x_big = np.zeros((1, 3, 1280, 1920), np.float32)          # 2.5 MP
    y_small = np.zeros((1, 128, 32, 48), np.float32)          # a 768x512 image's latent
    y_big = np.zeros((1, 128, 80, 120), np.float32)           # a 1920x1280 image's latent
    runs = [("g_a", x_small), ("g_s", y_small), ("g_a", x_big), ("g_a", x_big), ("g_s", y_big), ("g_a", x_small),
            ("g_a", x_small), ("h_a", y_big), ("g_s", y_small), ("g_s", y_small)]
    for part, x in runs:
        t._run(part, x)
    assert seen == ["", "", "", "", "", "cpu:0", "", "", "", ""]
    assert opened == ["g_a", "g_s", "h_a", "g_s"]  # g_s's grown session was dropped with g_a's shrink


def test_release_models_ends_the_engines_idle_threads():
    """release_models() dropped the models but left the integer networks' thread pools (soak audit, 0.20.0)."""
    import threading
    import time

    from saicm.engine import parallel

    parallel._pool(2).submit(lambda: None).result()
    workers = [t for t in threading.enumerate() if t.name.startswith("saicm-int")]
    assert workers and parallel._pools
    saicm.release_models()
    assert parallel._pools == {}
    deadline = time.monotonic() + 5
    while any(t.is_alive() for t in workers) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert not any(t.is_alive() for t in workers)
    parallel._pool(2).submit(lambda: None).result()  # later work makes a new pool


def test_blocks_go_on_when_another_thread_releases_the_pools(monkeypatch):
    from concurrent.futures import ThreadPoolExecutor

    from saicm.engine import parallel

    monkeypatch.setenv("SAICM_THREADS", "2")
    dead = ThreadPoolExecutor(2)
    dead.shutdown()
    real, calls = parallel._pool, []

    def pool(n):  # the first pool handed out was shut down by release_models before the blocks were queued
        calls.append(n)
        return dead if len(calls) == 1 else real(n)

    monkeypatch.setattr(parallel, "_pool", pool)
    out = [0] * 4
    parallel.run_blocks(lambda s: out.__setitem__(s, s + 1), range(4))
    assert out == [1, 2, 3, 4] and len(calls) == 2
    calls.clear()
    with parallel._lock:
        parallel._pools[2] = dead  # still the registered pool: a real error, not retried
    try:
        with pytest.raises(RuntimeError):
            parallel.run_blocks(lambda s: None, range(4))
    finally:
        with parallel._lock:
            parallel._pools.pop(2, None)



def test_one_pool_per_thread_count_whatever_the_block_count(monkeypatch):
    # SAICM_THREADS=4 kept pools of 2 and 4 threads (6 idle threads) as the block counts varied (soak audit)
    import threading

    from saicm.engine import parallel

    monkeypatch.setenv("SAICM_THREADS", "4")
    saicm.release_models()
    out = [0] * 4
    parallel.run_blocks(lambda s: out.__setitem__(s, 1), range(2))
    parallel.run_blocks(lambda s: out.__setitem__(s, 2), range(4))
    assert out == [2, 2, 2, 2] and list(parallel._pools) == [4]
    assert sum(t.name.startswith("saicm-int") for t in threading.enumerate()) <= 4
    saicm.release_models()


def test_an_onnxruntime_built_for_numpy_1_beside_numpy_2_is_one_line_not_a_traceback(monkeypatch):
    """onnxruntime < 1.19 was built for NumPy 1; beside NumPy 2 (pip keeps an installed onnxruntime when NumPy 2
    comes) its import printed NumPy's warning block and a ~90-line traceback (the install audit). The versions
    are read before the import, and said in one line with the remedy."""
    from importlib import metadata

    from saicm.engine import runtime
    from saicm.errors import SaicmError

    real = metadata.version
    monkeypatch.setattr(metadata, "version", lambda name: "1.17.0" if name == "onnxruntime" else real(name))
    monkeypatch.setattr(runtime.np, "__version__", "2.1.3")
    runtime.onnxruntime.cache_clear()
    try:
        with pytest.raises(SaicmError, match=r"^onnxruntime 1.17.0 was built for NumPy 1 and cannot run beside NumPy "
                                             r"2.1.3: pip install \"onnxruntime>=1.19\""):
            runtime.onnxruntime()
        monkeypatch.setattr(runtime.np, "__version__", "1.26.4")  # NumPy 1: the same onnxruntime is fine
        runtime.onnxruntime.cache_clear()
        assert runtime.onnxruntime().InferenceSession
    finally:
        runtime.onnxruntime.cache_clear()
    assert runtime._release("1.19.2") >= runtime.ORT_FOR_NUMPY2 > runtime._release("1.18.1rc2")


@pytest.mark.parametrize("budget", [None, 10 ** 6])
def test_the_runtimes_analysis_output_is_not_held_through_the_coding(monkeypatch, budget):
    """The coding holds a copy of the analysis, not onnxruntime's output array: held through the hyper-analysis and the
    entropy coding (and a budget's trials), that array kept the memory the analysis had freed from going back (peak
    memory of a 1920x1280 photo 95 MB higher than before budgets, 130 MB with one)."""
    import weakref

    from saicm.engine.model import load
    from saicm.engine.runtime import transforms
    from saicm.models.catalog import resolve

    t = transforms(load(resolve(V5)), "onnx")
    outputs, held = [], []

    def analysis(x, _f=t.analysis):
        y = _f(x)
        outputs.append(weakref.ref(y))
        return y

    def hyper_analysis(y, _f=t.hyper_analysis):
        held.append(any(r() is not None for r in outputs))
        return _f(y)

    monkeypatch.setattr(t, "analysis", analysis)
    monkeypatch.setattr(t, "hyper_analysis", hyper_analysis)
    data = saicm.compress(natural_image(), model=V5, max_bytes=budget)
    assert len(outputs) == 1 and held and not any(held)
    assert data == saicm.compress(natural_image(), model=V5, quality=saicm.describe(data)["quality"])


def test_hyper_synthesis_by_blocks_is_the_whole(monkeypatch):
    """The integer hyper-synthesis runs by blocks of hyper-latent rows with a halo (the large-image audit: on the
    whole latent at once it took ~20 bytes per pixel, 2 GB of a 100 MP compress): every row range a strip asks for is
    the whole computation's, for blocks of one row up, extreme symbols included, with and without an offset."""
    from saicm.engine import model as engine_model
    from saicm.models.catalog import resolve

    pm = engine_model.load(resolve(V5))
    rng = np.random.default_rng(5)
    z = rng.integers(-40, 41, size=(pm.N, 7, 5)).astype(np.int64)
    z[:, 3, 2] = engine_model.Z_LIMIT * 4  # (clipped, as the coder does)
    whole = pm.hyper((np.clip(z, -engine_model.Z_LIMIT, engine_model.Z_LIMIT) << hypernet.FRAC)
                     + pm.median_units[:, None, None])
    offset = rng.integers(-1000, 1000, size=whole.shape).astype(np.int64)
    for values in (1, whole.shape[0] * 16 * 5 * 2, 1 << 24):  # blocks of 1 row, 2 rows, all
        monkeypatch.setattr(engine_model, "HYPER_ROWS_VALUES", values)
        for strip in (1, 3, 4, 5, 28):
            rows = pm._hyper_rows(z)
            shifted = pm._hyper_rows(z, offset)
            for r in range(0, 28, strip):
                np.testing.assert_array_equal(rows(r, r + strip), whole[:, r: r + strip])
                np.testing.assert_array_equal(shifted(r, r + strip), whole[:, r: r + strip] + offset[:, r: r + strip])
        skipping = pm._hyper_rows(z)  # (ranges with gaps between them, each from the row it names)
        for r0, r1 in ((1, 2), (6, 9), (21, 22), (23, 28)):
            np.testing.assert_array_equal(skipping(r0, r1), whole[:, r0:r1])
    with pytest.raises(saicm.errors.FormatError, match="condition"):
        pm._hyper_rows(z, offset[:, :-1])


@pytest.mark.parametrize("kernels, reach", [((9, 9, 7), 4), ((3, 3, 1), 2)])
def test_the_blocks_halo_is_what_the_hyper_synthesis_reaches_for_any_kernels(monkeypatch, kernels, reach):
    """The halo was a constant 2 rows, right for the shipped 5×5, 5×5, 3×3 alone (the review's open item): a model
    with larger kernels (an imported one) would have decoded blocks unlike the whole. It is the network's reach.
    A 3×3 transposed convolution reaches ⌈1/2⌉ = 1 input row: with ⌊·⌋ (exact for 9×9 and 5×5 ones) the halo of
    3×3, 3×3, 1×1 was 0, its blocks unlike the whole, and no test failed (mutation audit of session 57)."""
    import copy

    from saicm.engine import model as engine_model
    from saicm.models.catalog import resolve

    pm = copy.copy(engine_model.load(resolve(V5)))
    rng = np.random.default_rng(3)
    n, m2 = pm.N, pm.hyper.layers[-1].cout
    k1, k2, k3 = kernels
    layers = [hypernet._layer(rng.normal(0, 0.05, (n, n, k1, k1)), rng.normal(0, 0.1, n), transposed=True, leaky=True),
              hypernet._layer(rng.normal(0, 0.05, (n, n, k2, k2)), rng.normal(0, 0.1, n), transposed=True, leaky=True),
              hypernet._layer(rng.normal(0, 0.05, (m2, n, k3, k3)), rng.normal(0, 0.1, m2), transposed=False,
                              leaky=False)]
    pm.hyper = hypernet.IntegerConvStack(layers)
    assert pm.hyper.reach == reach  # 9, 9, 7: 2 + 2/2 + 3/4; 3, 3, 1: 1 + 1/2 + 0
    z = rng.integers(-20, 21, size=(n, 9, 3)).astype(np.int64)
    whole = pm.hyper((z << hypernet.FRAC) + pm.median_units[:, None, None])
    monkeypatch.setattr(engine_model, "HYPER_ROWS_VALUES", 1)  # blocks of one hyper-latent row
    rows = pm._hyper_rows(z)
    for r in range(0, 36, 4):
        np.testing.assert_array_equal(rows(r, r + 4), whole[:, r: r + 4])


def test_hyper_synthesis_memory_is_bounded_by_blocks(monkeypatch):
    """The block's int64 output, not the latent's, bounds what the hyper-synthesis holds: every call of the integer
    network gets at most the block's rows plus the halo."""
    from saicm.engine import model as engine_model
    from saicm.models.catalog import resolve

    pm = engine_model.load(resolve(V5))
    seen = []
    real = type(pm.hyper).__call__
    monkeypatch.setattr(type(pm.hyper), "__call__", lambda self, x: seen.append(x.shape[1]) or real(self, x))
    monkeypatch.setattr(engine_model, "HYPER_ROWS_VALUES", pm.hyper.layers[-1].cout * 16 * 4 * 4)  # 4 rows
    z = np.zeros((pm.N, 40, 4), np.int64)
    rows = pm._hyper_rows(z)
    for r in range(0, 160, 7):
        rows(r, r + 7)
    assert pm.hyper.reach == 2 and seen and max(seen) <= 4 + 2 * pm.hyper.reach
    assert sum(seen) < 40 * 3


def test_bias_clipping_is_said_only_past_the_limit_and_names_a_transposed_layers_own_sums():
    """The edges of the clipped-bias warning (mutation audit of 0.30.0: ``>`` moved to ``>=``, the upper clip moved
    by one, and a transposed layer's Σ|w| taken over its inputs instead of its outputs, each with no test failing).
    A bias exactly at the limit fits and is said nothing; one past it at either end is clipped to the limit; a
    transposed layer (Cin, Cout, k, k) names the largest sum of one output channel, over its inputs."""
    import warnings

    w = np.full((2, 1, 1, 1), 1e-3)  # shift 35: the limit is ±2.0 exactly
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        layer = hypernet._layer(w, np.array([2.0, -2.0]), transposed=False, leaky=False)
    assert layer.bias.tolist() == [hypernet.BIAS_LIMIT, -hypernet.BIAS_LIMIT]
    with pytest.warns(saicm.SaicmWarning, match="clipped"):
        layer = hypernet._layer(w, np.array([3.0, -3.0]), transposed=False, leaky=False)
    assert layer.bias.tolist() == [hypernet.BIAS_LIMIT, -hypernet.BIAS_LIMIT]
    # 3 inputs, 2 outputs: Σ|w| of an output is 3e-3 (of an input 2e-3)
    with pytest.warns(saicm.SaicmWarning, match=r"a 2-channel layer .*\(Σ\|w\| 3\.0e-03\).*beyond ±4 are clipped"):
        layer = hypernet._layer(np.full((3, 2, 1, 1), 1e-3), np.array([5.0, 0.0]), transposed=True, leaky=False)
    assert layer.transposed and layer.bias[0] == hypernet.BIAS_LIMIT


def test_hyper_synthesis_rows_asked_out_of_order_are_refused(monkeypatch):
    """Rows above the last range asked are dropped as the blocks go down: asking for them again is an error, not
    rows of another part of the image (mutation audit of 0.30.0: the check could go with no test failing, and the
    rows then came from a negative slice, silently)."""
    from saicm.engine import model as engine_model
    from saicm.models.catalog import resolve

    pm = engine_model.load(resolve(V5))
    monkeypatch.setattr(engine_model, "HYPER_ROWS_VALUES", pm.hyper.layers[-1].cout * 16 * 4)  # 1 row a block
    z = np.random.default_rng(2).integers(-20, 21, size=(pm.N, 6, 4)).astype(np.int64)
    rows = pm._hyper_rows(z)
    rows(8, 12)
    for r0, r1 in ((0, 4), (7, 9)):
        with pytest.raises(ValueError, match="out of order"):
            rows(r0, r1)


def test_hyper_synthesis_blocks_of_the_default_size_bound_a_wide_image():
    """With the shipped block size (not one a test sets), a wide hyper-latent is computed by blocks whose output is
    about HYPER_ROWS_VALUES values, not at once (mutation audit of 0.30.0: the default could grow to the whole latent
    with no test failing, the tests above each setting their own). A stand-in network of one output channel keeps
    the arrays small: 4096 hyper-latent columns make 2**23 values 128 rows."""
    import types

    from saicm.engine import model as engine_model

    seen = []

    class Network:
        layers = [types.SimpleNamespace(cout=1)]
        reach = 2  # (the shipped models' halo)

        def __call__(self, x):
            seen.append(x.shape[1])
            return np.zeros((1, 4 * x.shape[1], 4 * x.shape[2]), np.int64)

    fake = types.SimpleNamespace(median_units=np.zeros(1, np.int64), hyper=Network())
    zh, zw = 300, 4096
    rows = engine_model.PortableModel._hyper_rows(fake, np.zeros((1, zh, zw), np.int64))
    for r in range(0, 4 * zh, 60):
        assert rows(r, r + 60).shape == (1, 60, 4 * zw)
    step = engine_model.HYPER_ROWS_VALUES // (16 * zw)
    assert step == 128 and len(seen) == 3 and max(seen) <= step + 2 * Network.reach


def test_an_engine_library_that_cannot_load_or_compile_is_one_line_that_stops_a_job(monkeypatch):
    """An onnxruntime that cannot be imported (a shared library of its own missing) was a traceback at every command;
    an OpenVINO installed but broken was "needs OpenVINO, pip install saicm[openvino]" (or an OSError naming the
    image); one that cannot compile the graphs (a version or build without a setting) was its C++ traceback."""
    import types

    from saicm.engine import runtime

    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # import onnxruntime → ImportError
    runtime.onnxruntime.cache_clear()
    try:
        with pytest.raises(SaicmError, match=r"onnxruntime .*cannot be imported \(.*\): pip install --force-reinstall")\
                as e:
            runtime.onnxruntime()
        assert e.value.stops_job and "\n" not in str(e.value)
    finally:
        runtime.onnxruntime.cache_clear()
    for broken in (ImportError("libopenvino.so.2430: cannot open shared object file"),
                   OSError("libtbb.so.12: cannot open shared object file"),
                   ModuleNotFoundError("No module named 'openvino._pyopenvino'", name="openvino._pyopenvino")):
        def fail(broken=broken):
            raise broken

        monkeypatch.setattr(runtime, "_import_openvino", fail)
        with pytest.raises(SaicmError, match=r"OpenVINO is installed but cannot be imported \(.*(libopenvino|libtbb|"
                                             r"_pyopenvino).*\)") as e:
            runtime.openvino_request(b"graph", 1, "f32")
        assert e.value.stops_job and not isinstance(e.value, ImportError)

    def refuse(model, device, config):
        raise RuntimeError("Exception from src/inference/src/core.cpp:116:\n[ NOT_FOUND ] Unsupported property "
                           "ENABLE_CPU_PINNING by CPU plugin.\n")

    core = types.SimpleNamespace(read_model=lambda graph: graph, compile_model=refuse)
    fake = types.SimpleNamespace(Core=lambda: core, __version__="2023.0.0-10926-b4452d56304-releases/2023/0")
    monkeypatch.setattr(runtime, "_import_openvino", lambda: fake)
    monkeypatch.setattr(runtime, "_OPENVINO", {"core": None, "warned": False})
    with pytest.raises(SaicmError, match=r"OpenVINO 2023\.0\.0 cannot compile the transforms \(\[ NOT_FOUND \] "
                                         r"Unsupported property ENABLE_CPU_PINNING by CPU plugin\.\): .*"
                                         r"--engine onnx$"):
        runtime.openvino_request(b"graph", 1, "f32")


def test_the_line_said_of_an_engine_librarys_error_is_the_one_that_says_what_failed(monkeypatch):
    """_first_line (mutation audit: only a message whose last line said it was checked): OpenVINO's "Exception
    from" lines left out wherever they are, the last of the others, blank lines ignored, a long one cut; and an
    allocation that failed while compiling stays the out-of-memory error it is, not "cannot compile"."""
    import types

    from saicm.engine import runtime

    first = runtime._first_line
    assert first(RuntimeError("Exception from src/a.cpp:1:\nwhat failed\nwhy it failed\n\n")) == "why it failed"
    assert first(RuntimeError("what failed\nException from src/a.cpp:1:\n")) == "what failed"
    assert first(RuntimeError("Exception from src/a.cpp:1:\n")) == "Exception from src/a.cpp:1:"
    assert first(RuntimeError("")) == "RuntimeError"
    assert first(RuntimeError("x" * 500)) == "x" * 200 + "\u2026" and first(RuntimeError("x" * 200)) == "x" * 200

    def no_memory(model, device, config):
        raise RuntimeError("Exception from src/core.cpp:1:\nstd::bad_alloc")

    core = types.SimpleNamespace(read_model=lambda graph: graph, compile_model=no_memory)
    monkeypatch.setattr(runtime, "_import_openvino", lambda: types.SimpleNamespace(Core=lambda: core))
    monkeypatch.setattr(runtime, "_OPENVINO", {"core": None, "warned": False})
    with pytest.raises(RuntimeError, match="bad_alloc") as e:
        runtime.openvino_request(b"graph", 1, "f32")
    assert not isinstance(e.value, SaicmError)


@pytest.mark.parametrize("model", [V5, "mse-context-n64-v6", "scalable-off02v6-m4-cond"])
def test_a_model_dropped_from_the_cache_is_freed_at_once(model):
    """A portable model and its transforms referred to each other (``model.transforms`` → ``OnnxTransforms.model``):
    one the LRU of 8 dropped waited for Python's rare full collection with its onnxruntime sessions. A service
    coding with 9 models in turn held 33 of them after 54 calls, 1.9 GB after 135, 0.33 GB live (soak audit)."""
    import gc
    import weakref

    from saicm.engine import model as engine_model
    from saicm.engine.scalable import load_scalable
    from saicm.models.catalog import release_model_caches, resolve

    data = saicm.compress(natural_image(64, 64), model=model, quality=2)
    saicm.decompress(data)
    info = resolve(model)
    cached = load_scalable(info) if model.startswith("scalable") else engine_model.load(info)
    models = [cached, cached.add, cached.base] if model.startswith("scalable") else [cached]
    assert all(m.transforms for m in models[-2:])  # their sessions made
    dropped = [weakref.ref(m) for m in models]
    del cached, models
    gc.collect()
    gc.disable()
    try:
        release_model_caches()
        assert [d() for d in dropped] == [None] * len(dropped)
    finally:
        gc.enable()


def test_a_model_file_changed_on_disk_leaves_no_copy_of_its_older_version_in_memory(tmp_path):
    """The cache of loaded models was keyed by file and version alone: a model file rewritten, or only touched (a
    chmod, a backup's hard link: its change time moves), took another of the 8 places at each change, each a copy of
    its model with its sessions and working set, never asked for again (8 copies of one model: +0.3 GB for
    64x64 images; soak audit). The older version goes when the new one is loaded."""
    import gc
    import shutil
    import weakref

    from saicm.engine import model as engine_model
    from saicm.models.catalog import resolve

    path = tmp_path / "mine.safetensors"
    shutil.copy(resolve(V5).path, path)
    image = natural_image(64, 64)
    saicm.compress(image, model=str(path), quality=2)
    first = weakref.ref(engine_model.load(resolve(str(path))))
    gc.collect()
    gc.disable()
    try:
        os.chmod(path, 0o600)  # (metadata alone: the change time moves, the weights are the same)
        data = saicm.compress(image, model=str(path), quality=2)
        assert first() is None
        assert engine_model.load(resolve(str(path))) is engine_model.load(resolve(str(path)))  # (still cached)
        assert np.asarray(saicm.decompress(data, model=str(path))).shape == (64, 64, 3)
    finally:
        gc.enable()
    from saicm.models import zoo

    # the PyTorch models alike (the same cache since: one copy of each ~20 MB model, not 8)
    saicm.compress(image, model=str(path), quality=2, engine="torch")
    first = weakref.ref(zoo.load_model(str(path))[0])
    gc.collect()
    os.chmod(path, 0o644)
    saicm.compress(image, model=str(path), quality=2, engine="torch")
    assert first() is None and zoo.load_model(str(path))[0] is zoo.load_model(str(path))[0]
