"""Running out of memory (``ulimit -v``, a container's limit) is said as such, in one line, and a folder job goes
on; no test here needs more than a few kilobytes (the failures are raised by monkeypatching)."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image, ImageFile


def test_an_image_too_large_for_the_memory_left_is_out_of_memory_not_unreadable(tmp_path, monkeypatch, capsys):
    """Under `ulimit -v 350M` a 12 MP photo's compress said "cannot read image (MemoryError: )", as of a damaged
    file (which a user might delete): Pillow's failed allocation is now the job's "out of memory coding it"."""
    from saicm import cli

    src = tmp_path / "a.png"
    Image.fromarray(np.full((16, 24, 3), 90, np.uint8)).save(src)

    def load(self):
        raise MemoryError()

    monkeypatch.setattr(ImageFile.ImageFile, "load", load)
    assert cli.main(["compress", str(src), "-o", str(tmp_path / "a.saicm"), "--quiet"]) == 1
    err = capsys.readouterr().err
    assert "out of memory coding it" in err and "cannot read image" not in err
    assert not (tmp_path / "a.saicm").exists()


@pytest.mark.parametrize("error", [
    MemoryError(),  # (NumPy's, Python's)
    RuntimeError("[enforce fail at alloc_cpu.cpp:127] DefaultCPUAllocator: can't allocate memory: you tried to "
                 "allocate 4000000000000 bytes"),  # PyTorch's CPU allocator (SAM's masks)
])
def test_a_mask_folder_goes_on_past_an_image_too_large_for_the_memory(tmp_path, error):
    """Running out of memory making one image's mask ended the whole masks job in a traceback (a MemoryError; SAM's
    PyTorch says it in a RuntimeError); it is now that image's failure (named), and the others' masks are written.
    Another RuntimeError still ends the job."""
    from saicm.masks.job import MaskSpec, run_masks

    src = tmp_path / "imgs"
    src.mkdir()
    for name in ("a.png", "big.png", "c.png"):
        Image.fromarray(np.full((32, 48, 3), 90, np.uint8)).save(src / name)

    def make(rgb, path, error=error):
        if path.name == "big.png":
            raise error
        m = np.zeros(rgb.shape[:2], np.int32)
        m[8:24, 10:30] = 1
        return m, 2

    summary = run_masks(src, tmp_path / "masks", MaskSpec(source="regions", settings={}), make, progress=False)
    assert summary["written"] == 2
    assert len(summary["failed"]) == 1 and "big.png: out of memory making its mask" in summary["failed"][0]
    assert (tmp_path / "masks" / "a.png").is_file() and not (tmp_path / "masks" / "big.png").exists()
    with pytest.raises(RuntimeError, match="a bug"):
        run_masks(src, tmp_path / "other", MaskSpec(source="regions", settings={}),
                  lambda rgb, path: make(rgb, path, RuntimeError("a bug")), progress=False)


@pytest.mark.parametrize("size,text", [
    (0, "0 bytes"), (1, "1 byte"), (999, "999 bytes"), (1000, "1.0 KiB"), (73_728, "72 KiB"),
    (9.94 * 2**20, "9.9 MiB"), (9.95 * 2**20, "10 MiB"), (900 << 20, "900 MiB"), (3 * 2**28, "768 MiB"),
    (999 << 20, "999 MiB"), (999.49 * 2**20, "999 MiB"), (999.5 * 2**20, "1.0 GiB"), (1000 << 20, "1.0 GiB"),
    (1 << 30, "1.0 GiB"), (3 * 2**30, "3.0 GiB"), (4000 << 20, "3.9 GiB"), (6.4e9, "6.0 GiB"),
    (3 * 2**31, "6.0 GiB"), (111_974_400_000, "104 GiB"), (5 << 40, "5.0 TiB"), (3000 << 50, "3,000 PiB"),
])
def test_sizes_are_said_in_binary_units_named_as_such(size, text):
    """The "GB" of saicm's messages were 2³⁰ bytes in some (memory limits, the in-memory video decode's refusal)
    and 10⁹ in others (the same clip's frames in the video limit's message): one function says them all, in KiB,
    MiB, GiB (one decimal below 10, whole above; the next unit from 1,000 of one)."""
    from saicm.errors import bytes_text

    assert bytes_text(size) == text


def test_a_model_budget_refusal_says_its_size_in_binary_units():
    """The model-building budget's refusal said its limit shifted by 20 bits and called it "MB" (docs/safety.md
    quotes it): it says it as every size is said."""
    from saicm.errors import ModelError
    from saicm.models.zoo import AllocationBudget

    with pytest.raises(ModelError, match=r"^x: the model's stored configuration asks for more than 83 MiB of "
                                         r"tensors, far beyond"):
        AllocationBudget(83 << 20, "x")._refuse()
    with pytest.raises(ModelError, match=r"more than 1.5 GiB of tensors"):
        AllocationBudget(3 << 29, "x")._refuse()
