"""Device selection for training and SAM masks: auto, explicit CPU, and clear errors."""

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


@no_cuda
def test_train_cli_refuses_a_missing_gpu_in_one_line(tmp_path):
    r = subprocess.run([sys.executable, "-m", "saicm", "train", "--data", str(tmp_path), "--out", str(tmp_path / "r"),
                        "--device", "cuda", "--steps", "1"], capture_output=True, text=True)
    assert r.returncode != 0
    assert "sees no CUDA device" in r.stderr and "Traceback" not in r.stderr
