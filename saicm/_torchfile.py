"""Reading PyTorch pickles (checkpoints, released weights) that may come from strangers.

One rule for every ``torch.load`` in saicm: data only (``weights_only=True``: tensors, numbers, strings and
plain containers), so that no file can run code when it is read, and every failure is one ``SaicmError`` line.
"""

from __future__ import annotations

import zipfile
from pathlib import Path

from .errors import SaicmError

#: the first byte of the pickle that begins a legacy (pre-zip) ``torch.save`` file
_PICKLE_START = b"\x80"
#: the first bytes of a zip archive's first entry, as a (current) ``torch.save`` file begins
_ZIP_START = b"PK\x03\x04"


def load_data_only(path: str | Path, what: str = "checkpoint", error: type[SaicmError] = SaicmError,
                   hint: str = "", other_kind: str | None = None):
    """``torch.load(path, weights_only=True)`` on the CPU; ``error`` (one line naming ``path``) when the file is
    missing, is not a PyTorch file, is damaged, or holds objects other than tensors and plain data (refused:
    unpickling those could run code). ``hint`` is appended to the message. A file of a kind saicm knows (an image,
    a .saicm file, a model) is told as such, with what to do with it, or ``other_kind`` in place of that advice
    (a command that reads the file for another purpose: compress's advice was given to ``masks``)."""
    import torch

    path = Path(path)
    if path.is_dir():  # (it said "not found" of a folder that is there)
        raise error(f"is a folder, not a file: name the {what}", str(path))
    if not path.is_file():
        raise error(f"{what} not found", str(path))
    with open(path, "rb") as f:
        head = f.read(64)
    if head[:4] == _ZIP_START and not zipfile.is_zipfile(path):  # (its index is at the end: it "was no checkpoint")
        raise error(f"cannot read the {what}: cut short or damaged (a PyTorch file without its end: an interrupted "
                    f"download or copy?){hint}", str(path))
    if not (zipfile.is_zipfile(path) or head[:1] == _PICKLE_START):
        from .codec.container import not_a

        # (saicm export model.safetensors: it is one already, and --model takes it)
        said = not_a(f"a {what}", head, advise=other_kind is None)
        if said and other_kind:
            said += f": {other_kind}"
        raise error((said or f"cannot read the {what}: not a PyTorch checkpoint") + hint, str(path))
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - any unreadable file is one line, not a traceback
        if "Weights only load failed" in str(e):
            import re

            # (which object, and a way on: a numpy number as a checkpoint's 'loss' refused a whole released-layout file)
            held = re.search(r"Unsupported global: GLOBAL ([\w.]+)", str(e))
            why = ("it holds objects other than tensors and plain data" + (f" ({held.group(1)})" if held else "")
                   + "; refused, as reading it could run code (if you trust the file, save its weights alone, e.g. "
                   "its state dict, with torch.save and give that)")
        else:
            why = f"not a PyTorch checkpoint, or damaged ({type(e).__name__})"
        raise error(f"cannot read the {what}: {why}{hint}", str(path)) from None


class _Writes:
    """A file for ``torch.save`` that keeps the ``OSError`` of a failed write: written to a path or a file,
    PyTorch's own writer reports a full disk as ``RuntimeError: ... unexpected pos`` (or ``basic_ios::clear``)."""

    def __init__(self, f):
        self._f = f
        self.error: OSError | None = None

    def write(self, data) -> int:
        try:
            return self._f.write(data)
        except OSError as e:
            self.error = e
            raise

    def flush(self) -> None:
        self._f.flush()


def save_atomic(state, path: str | Path) -> None:
    """``torch.save(state)`` to ``path`` atomically (:func:`saicm._fs.atomic_path`: the file there is replaced only
    by a whole one); a full disk or a file-size limit is one line naming ``path``, not a traceback."""
    import torch

    from ._fs import atomic_path

    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        out = _Writes(f)
        try:
            torch.save(state, out)
        except RuntimeError:
            if out.error is None:
                raise
            raise out.error from None
