"""Device selection for training and SAM masks: auto, explicit CPU, and clear errors."""

import os
import subprocess
import sys

import pytest
import torch

from saicm.device import resolve_device
from saicm.errors import SaicmError

no_cuda = pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a CUDA device")


def test_auto_and_cpu():
    assert resolve_device("cpu").type == "cpu"
    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    assert resolve_device(None) == resolve_device("auto")


@no_cuda
@pytest.mark.parametrize("spec", ["cuda", "cuda:1", "CUDA"])
def test_missing_cuda_is_an_error_not_a_silent_cpu_run(spec):
    with pytest.raises(SaicmError, match="sees no CUDA device"):
        resolve_device(spec)


def test_unknown_device_names_the_choices():
    with pytest.raises(SaicmError, match="unknown --device 'tpu'.*auto"):
        resolve_device("tpu")


_TRAIN_ON_CUDA = """import sys
from saicm.cli import main
try:
    code = main(sys.argv[1:])
except SystemExit as e:
    code = e.code
print(code, 'compressai' in sys.modules, 'saicm.train.trainer' in sys.modules)
"""


@no_cuda
def test_train_cli_refuses_a_missing_gpu_in_one_line_before_loading_the_trainer(tmp_path):
    """Said before the trainer's imports (CompressAI's alone took 3-6 s to say there is no GPU)."""
    r = subprocess.run([sys.executable, "-c", _TRAIN_ON_CUDA, "train", "--data", str(tmp_path), "--out",
                        str(tmp_path / "r"), "--device", "cuda", "--steps", "1"], capture_output=True, text=True,
                       env=dict(os.environ, CUDA_VISIBLE_DEVICES=""))
    assert r.stdout.split() == ["2", "False", "False"], r.stdout + r.stderr
    assert "sees no CUDA device" in r.stderr and "Traceback" not in r.stderr
    assert not (tmp_path / "r").exists()


def test_a_process_group_on_cuda_makes_the_process_gpu_current_first(monkeypatch):
    """``barrier()`` under NCCL runs on the current CUDA device: ``video encode`` under torchrun left it at GPU 0 in
    every process (a hang, or every process's context on GPU 0). Checked without a GPU: the calls are recorded."""
    import torch.distributed as dist

    from saicm.device import start_process_group

    calls = []
    monkeypatch.setattr(dist, "is_initialized", lambda: False)
    monkeypatch.setattr(torch.cuda, "set_device", lambda d: calls.append(("set_device", d)))
    monkeypatch.setattr(dist, "init_process_group", lambda backend, **k: calls.append(("init", backend)))
    start_process_group(torch.device("cuda", 1))
    assert calls == [("set_device", torch.device("cuda", 1)), ("init", "nccl")]
    calls.clear()
    start_process_group(torch.device("cpu"))
    assert calls == [("init", "gloo")]


def test_more_processes_than_gpus_says_so(monkeypatch):
    """torchrun --nproc_per_node=4 on a machine of 2 GPUs: the process of LOCAL_RANK 2 said "--device cuda: only 2
    CUDA device(s) visible", as if --device had named a GPU; it names the process's LOCAL_RANK and the way on.
    (Without a GPU: PyTorch's count is stood in for.)"""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    assert resolve_device("cuda", 1) == torch.device("cuda", 1)
    with pytest.raises(SaicmError, match=r"LOCAL_RANK, 2, and only 2 CUDA device\(s\) are visible: start at most 2 "
                                         r"process\(es\) per machine \(torchrun --nproc_per_node\)"):
        resolve_device("auto", 2)
    with pytest.raises(SaicmError, match=r"^--device cuda:2: only 2 CUDA device\(s\) visible$"):
        resolve_device("cuda:2", 0)
