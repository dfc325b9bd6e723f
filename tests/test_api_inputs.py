"""Inputs of the Python API found by property-based testing (hypothesis) of ``saicm.compress``, ``decompress``,
``describe``, ``strip`` and ``split``: each case here is the minimal example a failing property gave."""

import os

import numpy as np
import pytest
from PIL import Image

import saicm

from .conftest import natural_image


class _Fs(os.PathLike):
    """An ``os.PathLike`` whose ``str()`` is not its path (as ``os.DirEntry``'s is ``<DirEntry 'x.png'>``)."""

    def __init__(self, path):
        self.path = str(path)

    def __fspath__(self):
        return self.path


def test_a_path_like_is_read_by_its_path_not_its_str(tmp_path, tiny_model):
    """compress(os.DirEntry) said "<DirEntry 'a.png'>: no such file" for a file that is there (its str() is no path);
    decompress read it but named the file by that str() in its errors."""
    Image.fromarray(natural_image(20, 30)).save(tmp_path / "a.png")
    data = saicm.compress(tmp_path / "a.png", model=tiny_model, quality=1)
    (tmp_path / "a.saicm").write_bytes(data)
    entries = {e.name: e for e in os.scandir(tmp_path)}
    for png in (entries["a.png"], _Fs(tmp_path / "a.png")):
        assert saicm.compress(png, model=tiny_model, quality=1) == data
    for coded in (entries["a.saicm"], _Fs(tmp_path / "a.saicm")):
        assert saicm.describe(coded)["file_bytes"] == len(data)
        assert saicm.decompress(coded, model=tiny_model).size == (30, 20)
        with pytest.raises(saicm.ModelError) as e:
            saicm.decompress(coded, model="mse-hyperprior-n64-v5")
        assert str(e.value).startswith(str(tmp_path / "a.saicm") + ": ")
    with pytest.raises(saicm.ImageError) as e:
        saicm.compress(_Fs(tmp_path / "gone.png"), model=tiny_model)
    assert str(e.value) == f"{tmp_path / 'gone.png'}: no such file"
    assert saicm.compress(tmp_path / "a.png", model=_Fs(tiny_model), quality=1) == data


@pytest.mark.parametrize("fn", ["decompress", "describe", "strip", "split"])
def test_a_path_holding_a_nul_is_a_saicm_error(fn, tmp_path):
    """A str holding a NUL (a coded file's bytes decoded as text, a name from a form) raised ValueError("embedded
    null byte") from os.stat: not a SaicmError."""
    with pytest.raises(saicm.SaicmError) as e:
        getattr(saicm, fn)(str(tmp_path / "a\x00.saicm"))
    assert "\n" not in str(e.value)


@pytest.mark.parametrize("fn", ["decompress", "describe", "strip", "split"])
def test_an_empty_path_is_no_such_file_not_a_folder(fn):
    """decompress("") said "is a folder, not a file" (Path("") is the working folder); compress said no such file."""
    with pytest.raises(saicm.SaicmError, match="^no such file$"):
        getattr(saicm, fn)("")


def test_a_pil_image_moved_to_another_frame_is_said_to_be_coded_at_that_frame(tiny_model):
    """A GIF opened by the caller and moved to its third frame (``seek(2)``) was coded at that frame (the PIL image
    as given) under the warning "3 frames, only the first is coded"."""
    import io
    import warnings

    frames = [Image.fromarray(np.full((16, 16, 3), v, np.uint8)) for v in (0, 128, 255)]
    buf = io.BytesIO()
    frames[0].save(buf, "GIF", save_all=True, append_images=frames[1:])
    for at in (0, 2):
        im = Image.open(io.BytesIO(buf.getvalue()))
        im.seek(at)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            data = saicm.compress(im, model=tiny_model, quality=3)
        said = [str(w.message) for w in caught if issubclass(w.category, saicm.SaicmWarning)]
        assert said == ["the image: 3 frames, " + ("only the first is coded" if at == 0 else
                        "only frame 3, the one the image is at, is coded") + " (saicm codes still images; clips: "
                        "saicm video)"]
        assert data == saicm.compress(frames[at], model=tiny_model, quality=3)


def test_a_callers_file_object_is_left_open(tmp_path, tiny_model):
    """saicm.compress(f) closed the caller's file object (Pillow's Image.close closes the file it read): f.seek(0)
    after it raised "I/O operation on closed file" (decompress left it open)."""
    import io

    img = natural_image(20, 30)
    buf = io.BytesIO()
    Image.fromarray(img).save(buf, "PNG")
    (tmp_path / "a.png").write_bytes(buf.getvalue())
    data = saicm.compress(img, model=tiny_model, quality=1)
    with open(tmp_path / "a.png", "rb") as f:
        for fp in (f, io.BytesIO(buf.getvalue())):
            assert saicm.compress(fp, model=tiny_model, quality=1) == data
            assert not fp.closed
            fp.seek(0)
            assert fp.read() == buf.getvalue()



def test_an_image_opened_in_text_mode_is_an_image_error_saying_so(tmp_path, tiny_model):
    """saicm.compress(open(path)) without "b": a TypeError from deep inside ("string argument without an encoding")
    for a file that read as text, "cannot read image (UnicodeDecodeError ...)" for a PNG (saicm.decompress said
    "opened in text mode")."""
    import io

    Image.fromarray(natural_image(20, 30)).save(tmp_path / "a.png")
    (tmp_path / "a.ppm").write_text("P3\n1 1\n255\n0 0 0\n")  # (an image of text)

    class TextReader:  # a file object of the caller's own that reads str
        def __init__(self):
            self._f = io.StringIO("P3\n1 1\n255\n0 0 0\n")

        def read(self, n=-1):
            return self._f.read(n)

        def seek(self, *a):
            return self._f.seek(*a)

        def tell(self):
            return self._f.tell()

    with open(tmp_path / "a.png", encoding="latin-1") as png, open(tmp_path / "a.ppm") as ppm:
        for fp in (png, ppm, io.StringIO("P3\n1 1\n255\n0 0 0\n"), TextReader()):
            with pytest.raises(saicm.ImageError, match=r"text.*'rb'"):
                saicm.compress(fp, model=tiny_model, quality=1)


def test_a_coded_file_object_is_read_from_where_it_is_and_one_at_its_end_is_told_to_seek(tiny_model):
    """decompress, describe, strip and the video decoders read a file object from where it is (np.load's and
    torch.load's rule: a coded file inside a file of one's own is read at its offset); a BytesIO just written to,
    at its end, was "an empty file" with no word of where it was read."""
    import io

    data = saicm.compress(natural_image(20, 30), model=tiny_model, quality=1)
    f = io.BytesIO(b"MY-CONTAINER" + data)
    f.seek(12)
    assert saicm.decompress(f, model=tiny_model).size == (30, 20)  # read at its offset, not from byte 0
    f = io.BytesIO()
    f.write(data)
    for fn in (lambda g: saicm.decompress(g, model=tiny_model), saicm.describe, saicm.strip, saicm.video.describe):
        with pytest.raises(saicm.FormatError, match=rf"at its end \(byte {len(data):,}\).*seek\(0\)"):
            fn(f)
    f.seek(0)
    assert saicm.describe(f)["file_bytes"] == len(data)
    class TextLike:  # a text reader that is no io.TextIOBase, at its end: text mode said, not seek(0)
        def read(self):
            return ""

        def seekable(self):
            return True

        def tell(self):
            return 5

    with pytest.raises(saicm.FormatError, match="opened in text mode"):
        saicm.decompress(TextLike(), model=tiny_model)
    with pytest.raises(saicm.FormatError, match="empty") as e:  # an empty one is still empty
        saicm.decompress(io.BytesIO(), model=tiny_model)
    assert "seek" not in str(e.value)
