"""The float transforms of the portable engine: onnxruntime sessions, OpenVINO's (optional), or the PyTorch modules.

Every back-end takes and returns numpy arrays (float32, NCHW), so everything else
in :mod:`saicm.engine` is shared. The ONNX graphs are built in memory from the model
file's own weights (:mod:`saicm.engine.onnx_export`) the first time a process uses a
model: 8 ms for an analysis or synthesis of the default model, no more than reading
and checking a cached copy took. Until 0.23.0 they were cached on disk under
``$SAICM_CACHE/onnx``; a cache that others could write let them choose what a user's
encoder and decoder computed (a security review), so nothing is written or read there
any more (old folders can be deleted).
"""

from __future__ import annotations


import functools
import os
import weakref

import numpy as np

from ..errors import ArgumentError
from .model import PortableModel
from .parallel import threads

#: what onnx_export builds (in each graph's producer field, with the model's checksum)
EXPORT_VERSION = 2


#: runs over more pixels than this grow a session's arena beyond what ordinary images need: the next smaller run
#: hands the excess back (runs of large images in a row keep it, which saves ~20 % of their time at 2.5 MP)
SHRINK_PIXELS = 1 << 19


#: the first onnxruntime built for NumPy 2 (older ones fail to import beside it: NumPy's warning block and a
#: traceback of ~90 lines; pip keeps an older onnxruntime already installed when NumPy 2 comes)
ORT_FOR_NUMPY2 = (1, 19)


@functools.lru_cache(maxsize=1)
def onnxruntime():
    """The ``onnxruntime`` module, for every user of it in saicm, after checking that it can run beside this NumPy:
    a one-line error naming both versions and the remedy if it cannot (checked before the import, which is what
    fails)."""
    from importlib import metadata

    try:
        have = metadata.version("onnxruntime")
    except metadata.PackageNotFoundError:  # (another build's name, onnxruntime-gpu...: the import will tell)
        have = None
    if have and int(np.__version__.split(".")[0]) >= 2 and _release(have) < ORT_FOR_NUMPY2:
        from ..errors import SaicmError

        raise SaicmError(f"onnxruntime {have} was built for NumPy 1 and cannot run beside NumPy {np.__version__}: "
                         "pip install \"onnxruntime>=1.19\" (or \"numpy<2\")")
    try:
        import onnxruntime as ort
    except ImportError as e:  # (a build that cannot load here, or none: a traceback at every command's first image)
        raise engine_error(f"onnxruntime{' ' + have if have else ''} cannot be imported ({_first_line(e)}): "
                           "pip install --force-reinstall \"onnxruntime>=1.17\"") from None
    return ort


def _first_line(e: BaseException, limit: int = 200) -> str:
    """The line of an exception's message (a C++ library's are many) that says what failed, cut to ``limit``
    characters: the last one that is not OpenVINO's "Exception from src/….cpp:116:" (where it was raised)."""
    lines = [ln.strip() for ln in str(e).splitlines() if ln.strip()]
    said = [ln for ln in lines if not ln.startswith("Exception from ")]
    line = (said or lines or [type(e).__name__])[-1 if said else 0]
    return line if len(line) <= limit else line[:limit] + "…"


def engine_error(message: str):
    """A :class:`~saicm.errors.SaicmError` about the engine's own library: every image would fail alike, so it
    stops a folder job (``stops_job``)."""
    from ..errors import SaicmError

    err = SaicmError(message)
    err.stops_job = True
    return err


def _release(version: str) -> tuple[int, ...]:
    """(1, 17) of "1.17.0", "1.17.3rc1"…"""
    parts = []
    for p in version.split(".")[:2]:
        digits = "".join(c for c in p if c.isdigit()) or "0"
        parts.append(int(digits))
    return tuple(parts)


def _quiet_run(shrink: bool = False):
    """Run options that keep onnxruntime's own log lines (a failed allocation's, in colour) off stderr; ``shrink``:
    free the session's unused arena chunks once the run ends. Without it a session keeps the largest arena it ever
    needed for the life of the process: one 1920x1280 image left a worker at 1.9 GB for every small image after
    it (a soak audit, 0.20.0)."""
    ort = onnxruntime()

    ro = ort.RunOptions()
    ro.log_severity_level = 4
    if shrink:
        ro.add_run_config_entry("memory.enable_memory_arena_shrinkage", "cpu:0")
    return ro


def run_pixels(part: str, x: np.ndarray) -> int:
    """The image pixels a run of ``part`` works at: the input's for an analysis, 256 per latent value for a
    synthesis (its activations grow to the image size), the latent's for the hyper-networks."""
    n = int(x.shape[-2]) * int(x.shape[-1])
    return n * 256 if part.endswith("g_s") else n


def _out_of_memory(e: Exception) -> bool:
    """Whether an onnxruntime failure is an allocation that failed (its arena's, or C++'s bad_alloc)."""
    text = str(e)
    return "Failed to allocate memory" in text or "bad_alloc" in text


def session(graph, num_threads: int):
    """An onnxruntime CPU session of ``graph`` (serialized ModelProto bytes or a path) on ``num_threads`` threads,
    without busy-waiting after a run (the integer hyper-synthesis, on NumPy's BLAS threads, comes next)."""
    ort = onnxruntime()

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = num_threads
    opts.inter_op_num_threads = 1
    opts.log_severity_level = 4  # fatal only: saicm says what failed in one line (onnxruntime's came in colour)
    opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return ort.InferenceSession(graph, opts, providers=["CPUExecutionProvider"])


#: every live OnnxTransforms (and OpenVinoTransforms) of this process, for the fork hook below
_LIVE: "weakref.WeakSet[OnnxTransforms]" = weakref.WeakSet()


def _forget_sessions_after_fork() -> None:
    """In a forked child: the sessions (and OpenVINO requests) made by the parent own thread pools whose threads the
    child does not have, and freeing one joins them: it waited for good (``release_models``, a large image's
    sessions dropped, the interpreter's exit). They are set aside, never used nor freed here (an extra reference
    that nothing drops), and the child makes its own from the graphs kept in memory."""
    import ctypes

    for t in list(_LIVE):
        if t._sessions:
            ctypes.pythonapi.Py_IncRef(ctypes.py_object(t._sessions))
            t._sessions = {}
        t._grown = set()


if hasattr(os, "register_at_fork"):  # (Unix only)
    os.register_at_fork(after_in_child=_forget_sessions_after_fork)


class OnnxTransforms:
    """``g_a``, ``h_a`` and ``g_s`` in onnxruntime (sessions made on first use)."""

    name = "onnx"

    def __init__(self, model: PortableModel, num_threads: int | None = None):
        # what the graphs are built from, not the model itself: the model keeps its transforms (``model.transforms``),
        # and the cycle made a model that the LRU of 8 dropped wait, with its sessions, for Python's rare full
        # collection (a service coding with 9 models in turn grew to 1.9 GB in 135 calls, 0.33 GB of it live)
        self._path, self._state = model.info.path, model.state
        self.num_threads = num_threads or threads()
        self._sessions: dict[str, object] = {}
        self._graphs: dict[str, bytes] = {}  # (kept: a session dropped after large images is made again from it)
        self._grown: set[str] = set()  # parts whose last run was over SHRINK_PIXELS (their arena holds its memory)
        _LIVE.add(self)

    def _graph(self, part: str) -> bytes:
        """The graph of ``part``, built from the model's weights on first use (in memory, never from a file)."""
        data = self._graphs.get(part)
        if data is None:
            from ..models.catalog import full_checksum
            from .onnx_export import build_transform

            digest = full_checksum(self._path).hex()[:32]
            ident = f"saicm.engine.onnx_export {digest}-{part}-e{EXPORT_VERSION}"
            data = self._graphs[part] = build_transform(self._state, part, producer=ident)
        return data

    def _open(self, part: str, make):
        """``make(graph)`` of ``part``; onnxruntime's failed allocations as :class:`MemoryError`."""
        try:
            return make(self._graph(part))
        except Exception as e:
            if _out_of_memory(e):
                raise MemoryError(f"onnxruntime: {str(e)[:200]}") from None
            raise

    def _run(self, part: str, x: np.ndarray) -> np.ndarray:
        s = self._sessions.get(part)
        if s is None:
            s = self._sessions[part] = self._open(part, lambda g: session(g, self.num_threads))
        # per run, not per image: a strip-coded image's small edge tiles may shrink between its large tiles (measured
        # on 4160x2100: 2 shrinks in 16 runs, no time cost); a run beside another thread's frees only unused chunks
        big = run_pixels(part, x) > SHRINK_PIXELS
        shrink = not big and part in self._grown  # the first ordinary image after large ones: memory back
        if big:
            self._grown.add(part)
        elif self._grown:
            # the other transforms' grown arenas go too (an encode-only service never runs the synthesis again):
            # their sessions are dropped, and made again (from the graph kept in memory) when next used. The
            # hyper-analysis runs on the latent, small for every image, so a large image's own h_a run drops its g_a
            # session: each large image makes it again (0.25 s of system time, ~18 % of a 1920x1280 encode, since
            # 0.21.0). Kept on purpose: keeping g_a's session between large images (skipping h_a here) measured a peak
            # of 1.2 GB instead of 0.8 GB and 1.2 GB instead of 0.3 GB held after the image (perfhist audit, 0.35.0)
            # Sessions without onnxruntime's arena (enable_cpu_mem_arena off, nothing dropped) do not escape it: sys
            # time 0.32 s a 1920x1280 image against 0.37 s here and 0.07 s with the arena kept (v5, six in a row, one
            # thread; peak 0.94 / 0.86 / 1.28 GB): the cost is the page faults of memory handed back, not the session
            # (measured in-process with saicm.compress, 0.39.0)
            for other in self._grown - {part}:
                self._sessions.pop(other, None)
            self._grown.clear()
        try:
            return s.run(None, {"x": np.ascontiguousarray(x, dtype=np.float32)}, _quiet_run(shrink=shrink))[0]
        except Exception as e:  # onnxruntime's own classes: an allocation that failed is what Python calls it
            if _out_of_memory(e):
                raise MemoryError(f"onnxruntime: {str(e)[:200]}") from None
            raise

    def analysis(self, x: np.ndarray) -> np.ndarray:
        return self._run("g_a", x)

    def hyper_analysis(self, y: np.ndarray) -> np.ndarray:
        return self._run("h_a", y)

    def synthesis(self, y_hat: np.ndarray) -> np.ndarray:
        return self._run("g_s", y_hat)

    def analysis_tiles(self, rgb: np.ndarray, pb: int, pr: int, tick=None) -> np.ndarray:
        from ..codec.tiling import analyse_tiles_with

        return analyse_tiles_with(lambda a: self._run("g_a", a), rgb, pb, pr, tick=tick)

    def synthesis_tiles(self, y_hat: np.ndarray, height: int, width: int, tick=None) -> np.ndarray:
        from ..codec.tiling import synthesize_tiles_with

        return synthesize_tiles_with(lambda a: self._run("g_s", a), y_hat, height, width, tick=tick)


#: this process's OpenVINO ``Core`` (made on first use) and whether the no-bfloat16 warning was given
_OPENVINO: dict = {"core": None, "warned": False}


#: OpenVINO's model-conversion tools, which ``import openvino`` imports when it can
_OVC = "openvino.tools.ovc"


def _import_openvino():
    """OpenVINO's runtime without its model-conversion tools. ``import openvino`` imports ``openvino.tools.ovc``,
    whose import starts OpenVINO's telemetry without asking: unless the user opted out with OpenVINO's
    ``opt_in_out`` script, it writes ``~/intel/openvino_ga_cid`` and sends an "import" event to Intel's analytics.
    saicm codes images and reports to no one; it needs only the runtime (ONNX graphs are read by OpenVINO's C++
    front end). A process that imported the tools itself, before, keeps them; after, it can import them as usual."""
    import sys

    if "openvino" in sys.modules or _OVC in sys.modules:
        import openvino

        return openvino
    sys.modules[_OVC] = None  # (openvino's __init__ takes the ImportError: "ovc should reside in the main namespace")
    try:
        import openvino
    finally:
        if sys.modules.get(_OVC, 0) is None:
            del sys.modules[_OVC]
    return openvino


def openvino_request(graph, num_threads: int, precision: str):
    """An OpenVINO CPU inference request of ``graph`` (serialized ModelProto bytes, built in memory) at ``precision``
    (``f32`` or ``bf16``); a clear error if OpenVINO is not installed. On a CPU without bfloat16 units
    OpenVINO computes in float32 whatever the hint: a warning says so, once per process."""
    try:
        ov = _import_openvino()
    except ModuleNotFoundError as e:  # (MissingDependency, an ImportError too: a caller's `except ImportError` falls
        if e.name != "openvino":  # back; openvino._pyopenvino missing is a broken install, not none)
            raise _broken_openvino(e) from None
        from ..errors import MissingDependency

        raise MissingDependency("the openvino engines need OpenVINO, an optional dependency: "
                                "pip install \"saicm[openvino]\"") from None
    except Exception as e:  # installed, but it cannot load (a library of its own missing): not "install it"
        raise _broken_openvino(e) from None
    if not isinstance(graph, bytes):  # (graphs are never read from files: 0.23.0 dropped their disk cache)
        raise TypeError("openvino_request takes a serialized graph (bytes)")
    try:
        core = _OPENVINO["core"] = _OPENVINO["core"] or ov.Core()
        compiled = core.compile_model(core.read_model(graph), "CPU", {
            "INFERENCE_NUM_THREADS": num_threads, "INFERENCE_PRECISION_HINT": precision,
            "PERFORMANCE_HINT": "LATENCY", "ENABLE_CPU_PINNING": False})
    except Exception as e:  # (a build or version without what the graph or these settings need: its C++ traceback)
        if _out_of_memory(e):
            raise
        version = str(getattr(ov, "__version__", "")).split("-")[0]  # ("2026.4.1-22982-e213a147257-releases/…")
        raise engine_error(f"OpenVINO {version} cannot compile the transforms ({_first_line(e)}): pip install -U "
                           "\"saicm[openvino]\", or --engine onnx") from None
    got = compiled.get_property("INFERENCE_PRECISION_HINT")
    if precision == "bf16" and got != ov.Type.bf16 and not _OPENVINO["warned"]:
        _OPENVINO["warned"] = True
        from ..errors import warn as saicm_warn

        saicm_warn(f"this CPU has no bfloat16 units: OpenVINO runs the transforms in {got.get_type_name()}")
    return compiled.create_infer_request()


def _broken_openvino(e: BaseException):
    return engine_error(f"OpenVINO is installed but cannot be imported ({_first_line(e)}): pip install "
                        "--force-reinstall \"saicm[openvino]\", or --engine onnx")


class OpenVinoTransforms(OnnxTransforms):
    """The same ONNX graphs compiled by OpenVINO (an optional dependency), in float32 (``openvino``) or
    bfloat16 (``openvino-bf16``: on CPUs with bfloat16 units, Intel AMX or AVX-512 BF16 (AMD Zen 4), much faster transforms for
    +0.03 % rate; the pixels then differ from the float32 decode by up to 2, docs/engine.md)."""

    def __init__(self, model: PortableModel, num_threads: int | None = None, precision: str = "f32"):
        super().__init__(model, num_threads)
        self.precision = precision
        self.name = "openvino" if precision == "f32" else "openvino-bf16"

    def _run(self, part: str, x: np.ndarray) -> np.ndarray:
        r = self._sessions.get(part)
        if r is None:
            r = self._sessions[part] = self._open(part, lambda g: openvino_request(g, self.num_threads, self.precision))
        return r.infer([np.ascontiguousarray(x, dtype=np.float32)])[0].copy()


class TorchTransforms:
    """The same transforms from the PyTorch model (``saicm.models``); needs torch and CompressAI."""

    name = "torch"

    def __init__(self, model: PortableModel):
        from ..models.zoo import load_model

        net, _ = load_model(model.info.path)
        self.g_a, self.h_a, self.g_s = (net.get_submodule(p) for p in model.torch_parts)

    def _run(self, fn, x: np.ndarray) -> np.ndarray:
        import torch

        with torch.inference_mode():
            t = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))
            return fn(t.contiguous(memory_format=torch.channels_last)).float().contiguous().numpy()

    def analysis(self, x: np.ndarray) -> np.ndarray:
        return self._run(self.g_a, x)

    def hyper_analysis(self, y: np.ndarray) -> np.ndarray:
        return self._run(self.h_a, y)

    def synthesis(self, y_hat: np.ndarray) -> np.ndarray:
        from ..models.determinism import synthesize_in_strips

        return self._run(lambda t: synthesize_in_strips(self.g_s, t, scale=16), y_hat)

    def analysis_tiles(self, rgb: np.ndarray, pb: int, pr: int, tick=None) -> np.ndarray:
        from ..codec.tiling import analyse_tiles

        return analyse_tiles(self.g_a, rgb, pb, pr, tick=tick).numpy()

    def synthesis_tiles(self, y_hat: np.ndarray, height: int, width: int, tick=None) -> np.ndarray:
        import torch

        from ..codec.tiling import synthesize_tiles

        return synthesize_tiles(self.g_s, torch.from_numpy(y_hat), height, width, tick=tick)


BACKENDS = ("onnx", "torch", "openvino", "openvino-bf16")


def transforms(model: PortableModel, backend: str):
    """The transforms of ``model`` on ``backend`` (kept with the model, so sessions are made once per process)."""
    if backend not in BACKENDS:
        raise ArgumentError(f"unknown engine {backend!r} (one of {', '.join(BACKENDS)})")
    key = (backend, threads())
    t = model.transforms.get(key)
    if t is None:
        if backend == "torch":
            t = TorchTransforms(model)
        elif backend.startswith("openvino"):
            t = OpenVinoTransforms(model, key[1], "bf16" if backend.endswith("bf16") else "f32")
        else:
            t = OnnxTransforms(model, key[1])
        model.transforms[key] = t
    return t
