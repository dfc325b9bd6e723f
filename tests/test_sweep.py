"""Sweeps: schema, real byte counts, cache re-use, task hook."""

import json
import os
import sys
import warnings

import pytest

import numpy as np
import tqdm
from PIL import Image

from saicm.eval.cache import DecodeCache
from saicm.eval.codecs import Codec, get_codec
from saicm.eval.rd import sweep

from .conftest import natural_image


class CountingCodec(Codec):
    """JPEG that counts its encodes (to see the cache work)."""

    def __init__(self):
        self.inner = get_codec("jpeg")
        self.name = "jpeg"
        self.default_qualities = (20, 80)
        self.encodes = 0

    def encode(self, img, q):
        self.encodes += 1
        return self.inner.encode(img, q)

    def decode(self, data):
        return self.inner.decode(data)

    def config(self):
        return self.inner.config()


class MeanBrightness:
    name = "brightness"

    def evaluate(self, images, originals):
        return {"brightness": float(np.mean([np.asarray(i).mean() for i in images.values()]))}


def images():
    return {f"{i}.png": Image.fromarray(natural_image(170 + i, 180, seed=i)) for i in range(2)}


def test_sweep_points_reference_and_cache(tmp_path):
    codec = CountingCodec()
    cache = DecodeCache(tmp_path / "cache", codec.name, codec.config())
    res = sweep(codec, images(), task=MeanBrightness(), cache=cache, progress=False)
    assert codec.encodes == 4
    assert [p["quality"] for p in res["points"]] == [20, 80]  # ascending bpp
    lo, hi = res["points"]
    assert lo["bpp"] < hi["bpp"] and lo["psnr"] < hi["psnr"] and 0 < lo["ms_ssim"] <= 1
    total = sum(len(codec.inner.encode(img, 20)) for img in images().values())
    assert lo["bytes"] == total
    assert "brightness" in res["reference"] and "brightness" in lo
    again = sweep(codec, images(), task=MeanBrightness(), cache=cache, progress=False)
    assert codec.encodes == 4  # every decode came from the cache
    assert again["points"] == res["points"]


def test_an_exact_decode_says_why_its_point_has_no_psnr(tmp_path):
    """A flat image that JPEG at quality 100 decodes exactly has an infinite PSNR: the point's mean was written
    as null and left out of plots and BD-rates in silence."""
    import json

    import pytest

    from saicm.eval import results

    imgs = dict(images(), **{"flat.png": Image.fromarray(np.full((64, 64, 3), 128, np.uint8))})
    with pytest.warns(UserWarning, match="jpeg quality 100: 1 of 3 images decoded exactly .* written as null"):
        res = sweep(get_codec("jpeg"), imgs, [100], progress=False)
    assert [r["psnr"] for r in res["per_image"]["flat.png"]] == [float("inf")]
    results.save(res, tmp_path / "r.json")
    assert json.loads((tmp_path / "r.json").read_text())["points"][0]["psnr"] is None


def test_a_sweep_without_a_task_keeps_no_decoded_images(tmp_path):
    """A PSNR sweep (no task) held every decoded image of a quality until its end, beside the originals: twice
    the dataset's pixels in memory (a folder of 300 photos of 768×512: 350 MB more) for images nothing read."""
    import gc
    import weakref

    refs = []

    class Remembering(CountingCodec):
        def decode(self, data):
            img = super().decode(data)
            gc.collect()
            self.most = max(getattr(self, "most", 0), sum(r() is not None for r in refs))
            refs.append(weakref.ref(img))
            return img

    codec = Remembering()
    imgs = {f"{i}.png": Image.fromarray(natural_image(40, 48, seed=i)) for i in range(6)}
    sweep(codec, imgs, [50], progress=False)
    assert codec.encodes == 6 and codec.most <= 1
    task = Remembering()  # with a task, the decodes are its input: kept until it has run
    sweep(task, imgs, [50], task=MeanBrightness(), progress=False)
    assert task.most == 5


def test_cache_key_is_unchanged_and_made_without_converting_rgb_images(monkeypatch):
    """The decode cache's key of an image (SHA-256 of its (H, W, 3) shape and RGB pixels) keeps its value, so that
    caches written before stay valid; an RGB image is hashed as it is (converting it first copied its pixels twice
    more, once per image and quality of a sweep)."""
    import hashlib

    from saicm.eval.cache import image_hash

    rng = np.random.default_rng(4)
    images = [Image.fromarray(rng.integers(0, 256, (9, 11, 3), dtype=np.uint8)),
              Image.fromarray(rng.integers(0, 256, (7, 5), dtype=np.uint8))]

    def documented(img):
        a = np.asarray(img.convert("RGB"))
        return hashlib.sha256(str(a.shape).encode() + a.tobytes()).hexdigest()[:20]

    expected = [documented(img) for img in images]
    converted = []
    real = Image.Image.convert
    monkeypatch.setattr(Image.Image, "convert", lambda self, *a, **k: converted.append(self.mode) or real(self, *a, **k))
    assert [image_hash(img) for img in images] == expected
    assert converted == ["L"]  # (the grey image only)


def test_a_folder_is_read_as_the_sweep_goes_and_gives_the_numbers_of_the_images_in_memory(tmp_path):
    """load_rgb_folder held every image of a folder for the whole sweep (several GB for 5,000 images): it reads each
    when the sweep asks for it, and the results (fingerprint included) are those of the same images in a dict."""
    from saicm.eval.rd import ImageFolder, load_rgb_folder

    d = tmp_path / "set"
    d.mkdir()
    for i, im in enumerate(images().values()):
        im.save(d / f"{i}.png")
    lazy = load_rgb_folder(d, held=0)
    assert isinstance(lazy, ImageFolder) and list(lazy) == ["0.png", "1.png"]
    assert lazy["0.png"] is not lazy["0.png"]  # (read at each ask: nothing held)
    a = sweep(get_codec("jpeg"), lazy, [30, 70], task=MeanBrightness())
    b = sweep(get_codec("jpeg"), {n: lazy[n] for n in lazy}, [30, 70], task=MeanBrightness())
    assert a["dataset_sha256"] == b["dataset_sha256"] and a["per_image"].keys() == b["per_image"].keys()
    untimed = [[{x: v for x, v in p.items() if not x.endswith("_s")} for p in r["points"]] for r in (a, b)]
    assert untimed[0] == untimed[1] and a["reference"] == b["reference"] and len(untimed[0]) == 2


def test_an_image_changed_during_a_sweep_is_refused_not_mixed_in(tmp_path):
    import pytest

    from saicm.errors import SaicmError
    from saicm.eval.rd import load_rgb_folder

    d = tmp_path / "set"
    d.mkdir()
    for i, im in enumerate(images().values()):
        im.save(d / f"{i}.png")
    lazy = load_rgb_folder(d, held=0)
    Image.fromarray(255 - np.asarray(lazy["1.png"])).save(d / "1.png")
    assert lazy["0.png"].size == Image.open(d / "0.png").size
    with pytest.raises(SaicmError, match="changed while the run read it"):
        lazy["1.png"]
    (d / "0.png").write_bytes(b"gone")
    with pytest.raises(SaicmError, match="readable when the run began: changed meanwhile"):
        lazy["0.png"]
    # image errors with their path, as train's images read again are (a SaicmError to the Python API: ImageError)
    from saicm.errors import ImageError

    for name in ("0.png", "1.png"):
        with pytest.raises(ImageError) as e:
            lazy[name]
        assert e.value.path == str(d / name) and str(e.value).count(str(d / name)) == 1


def test_asking_whether_a_folder_holds_a_name_reads_no_image(tmp_path):
    """``name in folder`` (report's check of --image, evaluate_task's of the originals) went through Mapping's own
    __contains__, which reads the image: a decode and a hash per question, and an image removed since the start
    raised SaicmError instead of answering True."""
    from saicm.eval.rd import load_rgb_folder

    d = tmp_path / "set"
    d.mkdir()
    for i, im in enumerate(images().values()):
        im.save(d / f"{i}.png")
    lazy = load_rgb_folder(d)
    (d / "1.png").unlink()
    assert "1.png" in lazy and "0.png" in lazy and "2.png" not in lazy and 3 not in lazy
    assert "1.png" in lazy.keys() and sorted(lazy.keys()) == ["0.png", "1.png"]


def test_a_folder_within_the_memory_kept_is_read_once_not_at_every_rate_point(tmp_path, monkeypatch):
    """A sweep read every image of an ImageFolder again at each rate point (and hashed it again): +50 % CPU for a
    sweep of 24 photos whose decodes were all cached. The images within HELD_PIXELS are kept from the first read;
    those past it are read when asked for, and the results are the same."""
    import saicm.codec.image_io as image_io
    from saicm.eval.rd import load_rgb_folder

    d = tmp_path / "set"
    d.mkdir()
    for i, im in enumerate(images().values()):
        im.save(d / f"{i}.png")
    read = []
    real = image_io.load_image
    monkeypatch.setattr(image_io, "load_image", lambda p, *a, **k: read.append(p.name) or real(p, *a, **k))
    kept = load_rgb_folder(d)
    a = sweep(get_codec("jpeg"), kept, [30, 70], task=MeanBrightness())
    assert sorted(read) == ["0.png", "1.png"]  # (once each, when the folder was listed)
    assert kept["0.png"] is kept["0.png"]
    read.clear()
    first = images()["0.png"]
    part = load_rgb_folder(d, held=3 * first.width * first.height)  # (the first image only)
    b = sweep(get_codec("jpeg"), part, [30, 70], task=MeanBrightness())
    assert read.count("0.png") == 1 and read.count("1.png") >= 3  # (the second again at each rate point)
    untimed = [[{x: v for x, v in p.items() if not x.endswith("_s")} for p in r["points"]] for r in (a, b)]
    assert untimed[0] == untimed[1] and a["dataset_sha256"] == b["dataset_sha256"] and a["reference"] == b["reference"]


def test_work_on_the_originals_is_done_once_for_a_folder_read_as_the_sweep_goes():
    """The task's reference (detections on the originals, pseudo ground truth) was cached by the identities of the
    images: a folder whose images are new at each read was read whole to make the key and never matched it."""
    from saicm.eval.tasks.sweeps import _Cached

    class Fresh(dict):
        reads = 0

        def __getitem__(self, k):
            Fresh.reads += 1
            return Image.new("RGB", (4, 4))

        def values(self):
            return [self[k] for k in self]

    originals, computed = Fresh(a=None, b=None), []
    cache = _Cached()
    for _ in range(3):
        assert cache.get(originals, lambda: computed.append(1) or "ref") == "ref"
    assert computed == [1] and Fresh.reads == 0
    assert cache.get(Fresh(a=None), lambda: "other") == "other"  # another set of originals: computed anew


def test_a_task_used_again_on_a_dict_changed_in_place_measures_its_new_images():
    """A task's reference (faces or detections on the originals) was cached by the identity of the originals'
    mapping: a dict given again after its images were replaced or added was scored against the reference of the
    images it held before (a stale face count, or a KeyError for an added image)."""
    from saicm.eval.tasks.sweeps import FaceTask, _Cached

    task = FaceTask.__new__(FaceTask)  # (a detector of its own: bright images have two "faces", dark ones one)
    task.detector = lambda im: [(0, 0, 4, 4)] * (1 + int(np.asarray(im).mean() > 100))
    task._ref = _Cached()
    imgs = {"a.png": Image.new("RGB", (16, 16), 0)}
    assert task.evaluate(imgs, imgs)["faces_on_originals"] == 1
    imgs["a.png"] = Image.new("RGB", (16, 16), (255, 255, 255))  # the same dict, another picture
    assert task.evaluate(imgs, imgs)["faces_on_originals"] == 2
    imgs["b.png"] = Image.new("RGB", (16, 16), (255, 255, 255))  # and one more
    assert task.evaluate(imgs, imgs)["faces_on_originals"] == 4





def test_asking_whether_a_folder_read_as_the_sweep_goes_has_an_image_reads_none(tmp_path, monkeypatch):
    """``name in folder`` (evaluate_task's check of the originals, pseudo ground truth) decoded the image to answer,
    as Mapping's own ``__contains__`` does, and raised for one changed on disk instead of answering."""
    from saicm.codec import image_io
    from saicm.eval.rd import load_rgb_folder

    d = tmp_path / "set"
    d.mkdir()
    images()["0.png"].save(d / "0.png")
    lazy = load_rgb_folder(d)
    reads = []
    real = image_io.read_without_limit_option
    monkeypatch.setattr(image_io, "read_without_limit_option", lambda *a, **k: reads.append(a[0]) or real(*a, **k))
    (d / "0.png").write_bytes(b"changed")
    assert "0.png" in lazy and "1.png" not in lazy and lazy.get("1.png") is None and reads == []


def test_the_fingerprint_of_a_folder_read_as_the_sweep_goes_is_that_of_its_images_in_a_dict(tmp_path, monkeypatch):
    """(Mutation audit.) dataset_sha256 is ``NAME\\tWxH\\tSHA256(RGB)\\n`` per image, sorted by name: results files of
    earlier versions are compared by it (dropping the size passed). An ImageFolder gives it from the lines it kept,
    without reading its images again (reading them again, or keying the lines by the base name, passed), and images
    in sub-folders are read without being taken for changed ones."""
    import hashlib

    from saicm.codec import image_io
    from saicm.eval import rd

    d = tmp_path / "set"
    (d / "sub").mkdir(parents=True)
    imgs = images()
    imgs["0.png"].save(d / "0.png")
    imgs["1.png"].save(d / "sub" / "1.png")
    lazy = rd.load_rgb_folder(d)
    assert list(lazy) == ["0.png", "sub/1.png"] and lazy["sub/1.png"].size == imgs["1.png"].size
    lines = "".join(f"{n}\t{im.width}x{im.height}\t{hashlib.sha256(im.tobytes()).hexdigest()}\n"
                    for n, im in (("0.png", imgs["0.png"]), ("sub/1.png", imgs["1.png"])))
    expected = hashlib.sha256(lines.encode()).hexdigest()
    assert rd.dataset_fingerprint({"0.png": imgs["0.png"], "sub/1.png": imgs["1.png"]}) == expected
    reads = []
    real = image_io.read_without_limit_option
    monkeypatch.setattr(image_io, "read_without_limit_option", lambda *a, **k: reads.append(a[0]) or real(*a, **k))
    assert rd.dataset_fingerprint(lazy) == expected and reads == []
    res = rd.start_result(get_codec("jpeg"), str(d), None, lazy)
    assert res["dataset_sha256"] == expected and reads == []  # (a new result reads no image either)


def test_a_folder_whose_first_image_is_damaged_names_every_damaged_one(tmp_path):
    """(Mutation audit.) The first image unreadable: the error names it and the others, not a NameError."""
    import pytest

    from saicm.errors import ImageError
    from saicm.eval.rd import load_rgb_folder

    d = tmp_path / "set"
    d.mkdir()
    (d / "0.png").write_bytes(b"not an image")
    images()["1.png"].save(d / "1.png")
    (d / "2.png").write_bytes(b"")
    with pytest.raises(ImageError, match=r"2 of 3 images cannot be read: .*0\.png.*2\.png"):
        load_rgb_folder(d)


def test_the_progress_bar_counts_the_task_model(monkeypatch):
    """The bar counted encodes only: it showed nothing while the reference was scored, stood at 100 % (no time
    left) while the last point's task model ran, and its time left was that of the encodes alone (half of a JPEG
    sweep's with a detector); its rate swung with each point's task model (a moving average)."""
    bars = []

    class Bar:
        def __init__(self, total, smoothing=0.3, **kw):
            self.total, self.n, self.smoothing, self.disable = total, 0, smoothing, True
            bars.append(self)

        def update(self, n):
            self.n += n

        def close(self):
            pass

    seen = []

    class Watching(MeanBrightness):
        def evaluate(self, images, originals):
            seen.append((bars[-1].n, bars[-1].total) if bars else None)
            return super().evaluate(images, originals)

    monkeypatch.setattr(tqdm, "tqdm", Bar)
    monkeypatch.setenv("TERM", "xterm")  # (a bar drawn: on a terminal, not TERM=dumb)
    monkeypatch.delenv("TQDM_DISABLE", raising=False)
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True, raising=False)
    sweep(get_codec("jpeg"), images(), [30, 60], task=Watching())
    assert seen == [(0, 10), (4, 10), (8, 10)]  # the reference, then each point's task model, counted in the bar
    assert bars[-1].n == bars[-1].total and bars[-1].smoothing == 0


def test_timings_of_cached_decodes_made_elsewhere_are_counted_and_said(tmp_path, monkeypatch):
    """A cached decode keeps the encode_s and decode_s of the run that made it: a sweep with SAICM_THREADS=2 over a
    cache filled with 1 thread wrote the 1-thread figures under `machine` threads 2, in silence."""
    import pytest

    from saicm import _provenance

    cache = DecodeCache(tmp_path / "cache", "jpeg", get_codec("jpeg").config())
    one = {"cpu": "X", "cpus": 2, "threads": 1, "OMP_NUM_THREADS": None}
    monkeypatch.setattr(_provenance, "machine", lambda: one)
    first = sweep(get_codec("jpeg"), images(), [30, 60], cache=cache, progress=False)
    assert first["timings_from_cache"] == 0
    monkeypatch.setattr(_provenance, "machine", lambda: dict(one, threads=2))
    with pytest.warns(UserWarning, match="4 of 4 encodes' timings .* from the cache"):
        other = sweep(get_codec("jpeg"), images(), [30, 60], cache=cache, progress=False)
    assert other["timings_from_cache"] == 4 and other["points"] == first["points"]
    assert all("machine" not in e for v in other["per_image"].values() for e in v)  # (the cache's own field)
    monkeypatch.setattr(_provenance, "machine", lambda: dict(one))
    assert sweep(get_codec("jpeg"), images(), [30, 60], cache=cache, progress=False)["timings_from_cache"] == 0
    for meta in (tmp_path / "cache").rglob("*.json"):  # entries as saicm 0.29.0 wrote them: no machine recorded
        entry = json.loads(meta.read_text())
        if isinstance(entry, dict) and entry.pop("machine", None) is not None:
            meta.write_text(json.dumps(entry))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # counted, not warned of at every run of an upgraded user's cache
        assert sweep(get_codec("jpeg"), images(), [30, 60], cache=cache, progress=False)["timings_from_cache"] == 4


def test_decodes_cached_by_another_saicm_version_are_counted_and_said(tmp_path, monkeypatch):
    """The decode cache's key is the codec's weights and settings, not saicm's version: a decoder fixed by an upgrade
    kept serving the old decodes in silence (the cache audit). Results count them, a warning names the versions."""
    import pytest

    from saicm import __version__

    cache = DecodeCache(tmp_path / "cache", "jpeg", get_codec("jpeg").config())
    first = sweep(get_codec("jpeg"), images(), [30, 60], cache=cache, progress=False)
    assert first["decodes_from_other_versions"] == 0
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # this version's own entries: nothing said
        again = sweep(get_codec("jpeg"), images(), [30, 60], cache=cache, progress=False)
    assert again["decodes_from_other_versions"] == 0 and again["points"] == first["points"]
    metas = sorted(m for m in (tmp_path / "cache").rglob("*.json")
                   if isinstance(json.loads(m.read_text()), dict) and "saicm_version" in json.loads(m.read_text()))
    assert len(metas) == 4
    for i, meta in enumerate(metas[:3]):  # one entry as 0.31.0 wrote it (no version), two of "0.1.0" (another
        # version whatever this one is: "0.40.0" here was this saicm's own once the version came to it)
        entry = json.loads(meta.read_text())
        entry["saicm_version"] = "0.1.0"
        if i == 0:
            del entry["saicm_version"]
        meta.write_text(json.dumps(entry))
    with pytest.warns(UserWarning, match=r"3 of 4 decodes come from the cache, not recorded as made by this saicm "
                                         rf"{__version__} \(2 by saicm 0.1.0, 1 by a saicm that did not record its "
                                         r"version \(0.32.0 or before\)\)") as said:
        old = sweep(get_codec("jpeg"), images(), [30, 60], cache=cache, progress=False)
    assert old["decodes_from_other_versions"] == 3 and old["points"] == first["points"]
    assert any(str(cache.dir) in str(w.message) for w in said)  # (the cheaper way: this codec's folder alone)
    assert all("saicm_version" not in e for v in old["per_image"].values() for e in v)  # (the cache's own field)
    fresh = sweep(get_codec("jpeg"), images(), [30, 60], cache=None, progress=False)
    assert fresh["decodes_from_other_versions"] == 0


def test_unversioned_cached_decodes_are_said_without_contradiction_under_0_32_0(tmp_path, monkeypatch):
    """Upgrading from 0.32.0 to a tree that still says 0.32.0 (today's unreleased changes), a cache of 0.32.0's said
    "made by another saicm than this 0.32.0 (6 by saicm 0.32.0 or before)" (the upgrade audit): an entry without a
    version is said to be one that did not record it."""
    import pytest

    import saicm.eval.rd as rd

    monkeypatch.setattr(rd, "__version__", "0.32.0")
    cache = DecodeCache(tmp_path / "cache", "jpeg", get_codec("jpeg").config())
    sweep(get_codec("jpeg"), images(), [30], cache=cache, progress=False)
    for meta in (tmp_path / "cache").rglob("*.json"):
        entry = json.loads(meta.read_text())
        if isinstance(entry, dict) and "saicm_version" in entry:
            del entry["saicm_version"]  # (as 0.32.0 wrote it)
            meta.write_text(json.dumps(entry))
    with pytest.warns(UserWarning) as said:
        again = sweep(get_codec("jpeg"), images(), [30], cache=cache, progress=False)
    assert again["decodes_from_other_versions"] == 2
    text = " ".join(str(w.message) for w in said if "decodes come from the cache" in str(w.message))
    assert "not recorded as made by this saicm 0.32.0 (2 by a saicm that did not record its version" in text
    assert "another saicm than this 0.32.0" not in text


def test_off_a_terminal_the_reference_is_said_before_it_is_scored(monkeypatch, capsys):
    """Off a terminal (nohup, a log file) nothing was printed while the task model scored the originals: tens of
    seconds on COCO128 before the first image's line (the evaluation-stop audit)."""
    said = []

    class Watching(MeanBrightness):
        def evaluate(self, images, originals):
            said.append(capsys.readouterr().err)
            return super().evaluate(images, originals)

    monkeypatch.setattr(tqdm.tqdm, "__init__", _off_terminal_bar(tqdm.tqdm.__init__))
    sweep(get_codec("jpeg"), images(), [30], task=Watching())
    assert "saicm eval: jpeg: brightness on the 2 originals (the reference)" in said[0]


def _off_terminal_bar(init):
    def off(self, *args, **kw):  # (a bar that tqdm disables, as off a terminal)
        init(self, *args, **{**kw, "disable": True})

    return off


def test_mse_of_8_bit_images_is_the_float_mean_exactly_with_no_float_copies(monkeypatch):
    """psnr() made float64 copies of both images and their difference (0.6 GB at 9 MP; the large-image audit
    measured `saicm eval` of one 16 MP photo at 5 GB): 8-bit images are now summed as integers by blocks, to the same
    value. Other sample types keep the float path."""
    from saicm.eval import metrics

    rng = np.random.default_rng(7)
    a = rng.integers(0, 256, (37, 53, 3), dtype=np.uint8)
    b = rng.integers(0, 256, (37, 53, 3), dtype=np.uint8)
    want = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    monkeypatch.setattr(metrics, "_BLOCK", 1000)  # several blocks, the last one short
    assert metrics.mse(a, b) == want and metrics.mse(Image.fromarray(a), b) == want
    assert metrics.psnr(a, a) == float("inf") and metrics.psnr(a, b) == 10 * np.log10(255 ** 2 / want)
    wide = a.astype(np.uint16) * 256
    assert metrics.mse(wide, wide + 1) == 1.0  # (not 8-bit: the float path, not wrapped around)
    import tracemalloc

    big = np.zeros((1024, 1024, 3), np.uint8)  # 3 M samples: one float64 copy is 25 MB
    tracemalloc.start()
    try:
        metrics.mse(big, big)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 20e6, peak  # (two blocks of 8 MB at most; the float path held 75 MB)


def test_a_task_sweep_with_a_cache_holds_one_decode_at_a_time(tmp_path):
    """The task read every decode of a rate point from a dict the sweep filled first (memory grew with the folder,
    the scale audit); with a cache it reads each back from there, the same pixels."""
    import gc
    import weakref

    made, alive = [], []

    class Watched(CountingCodec):
        def decode(self, data):
            img = super().decode(data)
            made.append((weakref.ref(img), np.asarray(img).copy()))
            return img

    class Counting(MeanBrightness):
        def evaluate(self, images, originals):
            if images is not originals:
                gc.collect()
                alive.append(sum(r() is not None for r, _ in made))
                seen = [np.asarray(images[n]) for n in images]
                assert all(np.array_equal(a, px) for a, (_, px) in zip(seen, made[-len(seen):]))
            return super().evaluate(images, originals)

    folder = {f"{i}.png": Image.fromarray(natural_image(64, 48, seed=i)) for i in range(6)}
    codec = Watched()
    cache = DecodeCache(tmp_path / "cache", codec.name, codec.config())
    res = sweep(codec, folder, [20, 80], task=Counting(), cache=cache, progress=False)
    assert max(alive) <= 1, alive  # (the last one coded, still in the sweep's hands); it was all 6
    plain = sweep(Watched(), folder, [20, 80], task=MeanBrightness(), progress=False)  # no cache: held, as before
    assert [p["brightness"] for p in plain["points"]] == [p["brightness"] for p in res["points"]]


def test_a_cache_entry_that_cannot_be_the_images_decode_is_made_again(tmp_path):
    """A cache entry is trusted only when it can stand for the image's decode: a decode of another size was handed
    to the task in silence (a 64x48 black entry scored 0 % faces kept for a photo kept at 100 %), and a side file
    of valid JSON but another shape was a traceback. Either is a miss: coded again, and the entry written over."""
    import pytest

    codec = CountingCodec()
    cache = DecodeCache(tmp_path / "cache", codec.name, codec.config())
    first = sweep(codec, images(), [20], task=MeanBrightness(), cache=cache, progress=False)
    assert codec.encodes == 2
    pngs = sorted((tmp_path / "cache").rglob("*.png"))
    metas = sorted((tmp_path / "cache").rglob("*.json"))
    assert len(pngs) == len(metas) == 2
    Image.new("RGB", (64, 48)).save(pngs[0])  # a valid PNG, another size
    for bad in ("{}", "[]", "null", '{"bytes": "x", "bpp": 1, "psnr": 1, "ms_ssim": 1, "encode_s": 1, "decode_s": 1}'):
        metas[1].write_text(bad)
        again = sweep(codec, images(), [20], task=MeanBrightness(), cache=cache, progress=False)
        assert again["points"][0]["brightness"] == pytest.approx(first["points"][0]["brightness"])
        assert again["points"][0]["bytes"] == first["points"][0]["bytes"]
    assert codec.encodes == 2 + 2 + 3  # both bad entries once, then the side file alone each time
    assert Image.open(pngs[0]).size != (64, 48)  # written over with the decode
    sweep(codec, images(), [20], task=MeanBrightness(), cache=cache, progress=False)
    assert codec.encodes == 7  # the entries made again are used


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="FIFOs (POSIX)")
def test_a_cache_entry_that_is_a_fifo_or_a_link_is_made_again_not_waited_on(tmp_path):
    """An entry is a regular file saicm renamed into place: a FIFO in its place was opened for reading and waited
    for a writer for good (the sweep hung), and a link to /dev/zero was read until memory ran out (crafted cache
    entries, 2026-12-07). Either is a miss: coded again, and the entry written over."""
    codec = CountingCodec()
    cache = DecodeCache(tmp_path / "cache", codec.name, codec.config())
    first = sweep(codec, images(), [20], task=MeanBrightness(), cache=cache, progress=False)
    pngs = sorted((tmp_path / "cache").rglob("*.png"))
    assert codec.encodes == 2 and len(pngs) == 2
    pngs[0].unlink()
    os.mkfifo(pngs[0])
    pngs[1].unlink()
    pngs[1].symlink_to("/dev/zero")
    again = sweep(codec, images(), [20], task=MeanBrightness(), cache=cache, progress=False)
    assert again["points"][0]["brightness"] == pytest.approx(first["points"][0]["brightness"])
    assert codec.encodes == 4 and all(p.is_file() and not p.is_symlink() for p in pngs)  # (made again, in place)


def test_a_cache_entry_of_a_decompression_bomb_header_is_made_again(tmp_path):
    """A PNG entry whose header says 60,000 x 60,000 (crafted cache entries) was Pillow's DecompressionBombError
    traceback; it is a miss like any damaged entry: coded again, and written over."""
    import struct
    import zlib

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    codec = CountingCodec()
    cache = DecodeCache(tmp_path / "cache", codec.name, codec.config())
    first = sweep(codec, images(), [20], task=MeanBrightness(), cache=cache, progress=False)
    pngs = sorted((tmp_path / "cache").rglob("*.png"))
    pngs[0].write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 60000, 60000, 8, 2, 0, 0, 0))
                        + chunk(b"IDAT", zlib.compress(b"\0" * 1000)) + chunk(b"IEND", b""))
    again = sweep(codec, images(), [20], task=MeanBrightness(), cache=cache, progress=False)
    assert again["points"][0]["brightness"] == pytest.approx(first["points"][0]["brightness"])
    assert codec.encodes == 3 and Image.open(pngs[0]).size != (60000, 60000)


def test_a_cache_entry_in_another_image_format_is_made_again_not_decoded(tmp_path):
    """Entries are PNGs saicm wrote; one in another format (a planted or foreign file: the same pixels as a BMP here,
    PSD or FITS data for a Pillow decoder's advisory) was decoded by whatever plugin its first bytes chose and used as
    the decode. Only PNG is read: any other is a miss, coded again and written over."""
    codec = CountingCodec()
    cache = DecodeCache(tmp_path / "cache", codec.name, codec.config())
    first = sweep(codec, images(), [20], task=MeanBrightness(), cache=cache, progress=False)
    pngs = sorted((tmp_path / "cache").rglob("*.png"))
    with Image.open(pngs[0]) as im:
        im.load()
        im.save(pngs[0], format="BMP")
    again = sweep(codec, images(), [20], task=MeanBrightness(), cache=cache, progress=False)
    assert again["points"][0]["brightness"] == pytest.approx(first["points"][0]["brightness"])
    assert codec.encodes == 3
    with Image.open(pngs[0]) as im:
        assert im.format == "PNG"


def test_a_killed_writers_temporary_files_leave_the_cache(tmp_path):
    """A sweep killed while it wrote an entry (kill -9, a power cut) left its temporary file
    (``.KEY.png.XXXX.part.png``) in the cache for good: nothing wrote the same name again. The next sweep that writes
    in that quality's folder removes them; one a live writer holds (another sweep on the same cache) is left."""
    import pytest

    fcntl = pytest.importorskip("fcntl")  # (where there are no locks, every such file is a killed writer's)
    codec = CountingCodec()
    cache = DecodeCache(tmp_path / "cache", codec.name, codec.config())
    sweep(codec, dict(list(images().items())[:1]), [20], cache=cache, progress=False)
    folder = cache.dir / "q20"
    stale = [folder / ".0123456789abcdef0123.png.k1ll3d_x.part.png",
             folder / ".0123456789abcdef0123.json.a2b.part.json"]
    for p in stale:
        p.write_bytes(b"half an entry")
    live = folder / ".fedcba9876543210fedc.png.w0rk1ng.part.png"
    held = open(live, "wb")
    fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
    try:
        sweep(codec, images(), [20], cache=DecodeCache(tmp_path / "cache", codec.name, codec.config()),
              progress=False)
        assert not any(p.exists() for p in stale)
        assert live.exists()
    finally:
        held.close()


def test_a_sweep_whose_entries_are_all_cached_removes_killed_writers_files_too(tmp_path):
    """The rerun that finds every entry cached (the usual one after a kill -9 near a sweep's end) writes none, and
    only a write swept a quality folder: the killed writer's temporary decode stayed for good (disk audit)."""
    pytest.importorskip("fcntl")
    codec = CountingCodec()
    cache = DecodeCache(tmp_path / "cache", codec.name, codec.config())
    sweep(codec, images(), [20], cache=cache, progress=False)
    stale = cache.dir / "q20" / ".0123456789abcdef0123.png.k1ll3d_x.part.png"
    stale.write_bytes(b"half an entry")
    sweep(codec, images(), [20], cache=DecodeCache(tmp_path / "cache", codec.name, codec.config()), progress=False)
    assert codec.encodes == len(images()) and not stale.exists()  # (all from the cache, the file gone)


def test_a_clip_encode_cached_by_saicm_0_31_is_read_without_a_checksum(tmp_path):
    """A cached encode whose side file names no SHA-256 (saicm 0.31.0 and before wrote none) is read as it is, not
    encoded again; one that names it is read when the bytes match, and its checksum is not handed back with the
    entry's information."""
    import json

    from saicm.eval.cache import DecodeCache, EncodedCache

    store = EncodedCache(DecodeCache(tmp_path / "cache", "x", {"a": 1}))
    store.put(3, "k", b"stream bytes", {"encode_s": 1.5})
    assert store.get(3, "k") == (b"stream bytes", {"encode_s": 1.5})
    (meta,) = (tmp_path / "cache").rglob("k.json")
    assert json.loads(meta.read_text())["sha256"]
    meta.write_text(json.dumps({"encode_s": 1.5}))  # (as 0.31.0 wrote it)
    assert store.get(3, "k") == (b"stream bytes", {"encode_s": 1.5})


def test_a_blank_saicm_cache_is_unset_for_the_default_cache_s_closing(tmp_path, monkeypatch):
    """``SAICM_CACHE=" "`` counts as unset (the default cache is used): the default cache, left open by saicm before
    0.23.0, is closed to 0700 as without the variable."""
    import os

    from saicm.eval.cache import close_old_default_cache, default_cache_dir

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    monkeypatch.setenv("SAICM_CACHE", " ")
    root = default_cache_dir()
    assert root == tmp_path / "saicm" / "decoded"
    root.mkdir(parents=True)
    os.chmod(root, 0o755)
    close_old_default_cache()
    assert os.stat(root).st_mode & 0o777 == 0o700


def test_a_mask_folder_inside_the_dataset_is_not_evaluated(tmp_path):
    """`saicm masks photos -o photos/masks --preview` (allowed) and then `saicm eval --dataset photos`: the masks and
    their previews were coded and scored as test photos, 9 images for 3, unsaid."""
    import saicm
    from saicm.eval.rd import load_rgb_folder

    from .conftest import photos_with_their_mask_folder

    d = photos_with_their_mask_folder(tmp_path)
    with pytest.warns(saicm.SaicmWarning, match=r"6 files of 1 mask folder \(masks.json\) inside the test data folder "
                                                r"left out .*photos/masks"):
        images = load_rgb_folder(d)
    assert list(images) == ["0.png", "1.png", "2.png"]
    with pytest.warns(saicm.SaicmWarning, match=r"photos/masks is a mask folder \(masks.json\): its masks .* scored"):
        assert len(load_rgb_folder(d / "masks")) == 6  # (the mask folder itself: said, as training refuses it)
