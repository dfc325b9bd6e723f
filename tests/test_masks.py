"""Mask sources and the `saicm masks` job: known edges, α monotonicity, COCO, SAM path, errors."""

import json
import warnings

import numpy as np
import pytest
import torch
from PIL import Image

from .conftest import natural_image, run_cli
import saicm
from saicm.masks.edges import label_boundaries, paint_masks, segment_edges
from saicm.masks.regions import RegionSegmenter

ALPHAS = (0.98, 0.93, 0.78, 0.48)


def test_paint_masks_puts_smaller_masks_on_top():
    big = np.zeros((8, 8), bool)
    big[1:7, 1:7] = True
    small = np.zeros((8, 8), bool)
    small[3:5, 3:5] = True
    labels = paint_masks([small, big], (8, 8))  # order of the list must not matter
    assert labels[0, 0] == 0
    assert labels[1, 1] != labels[3, 3] != 0
    assert (labels[3:5, 3:5] == labels[3, 3]).all()


def test_label_boundaries_mark_exactly_the_label_change():
    labels = np.zeros((4, 6), int)
    labels[:, 3:] = 1
    e = label_boundaries(labels)
    expected = np.zeros((4, 6), bool)
    expected[:, 2] = True
    assert (e == expected).all()
    assert segment_edges(labels, width=3)[:, 1:4].all() and not segment_edges(labels, width=3)[:, 0].any()


def test_canny_edges_follow_label_changes():
    labels = np.zeros((32, 32), int)
    labels[:, 16:] = 7
    e = segment_edges(labels, method="canny")
    assert e.any() and e[:, 14:18].sum() == e.sum()


@pytest.mark.parametrize("name", ["astronaut", "coffee", "chelsea"])
def test_regions_lower_alpha_gives_more_segments_and_nested_edges(name):
    import skimage.data

    rgb = getattr(skimage.data, name)()[::2, ::2]
    counts, edges = [], []
    for a in ALPHAS:  # descending α
        labels = RegionSegmenter(alpha=a)(rgb)
        counts.append(len(np.unique(labels)))
        edges.append(segment_edges(labels))
    assert counts == sorted(counts) and counts[0] < counts[-1]
    for hi, lo in zip(edges, edges[1:]):
        assert not (hi & ~lo).any(), "edges at higher α must be a subset of edges at lower α"
    assert edges[0].sum() < edges[-1].sum()


def test_regions_rejects_alpha_outside_unit_interval():
    with pytest.raises(ValueError):
        RegionSegmenter(alpha=0)
    with pytest.raises(ValueError):
        RegionSegmenter(alpha=1.5)


@pytest.fixture
def folder(tmp_path):
    d = tmp_path / "imgs"
    (d / "sub").mkdir(parents=True)
    for i, p in enumerate([d / "a.png", d / "b.jpg", d / "sub" / "c.png"]):
        Image.fromarray(natural_image(72, 96, seed=i)).save(p)
    return d


def test_a_failed_image_is_said_before_the_summary_even_when_the_summary_cannot_be(folder, tmp_path):
    """`saicm masks` said its failed images after the summary (a log ended in them, unlike a folder job's), and not
    at all when standard output was closed or full (the summary's error stopped the command first)."""
    import os
    import subprocess
    import sys

    (folder / "broken.png").write_bytes(b"\x89PNG garbage")
    env = dict(os.environ, PYTHONWARNINGS="ignore")
    argv = [sys.executable, "-m", "saicm", "masks", str(folder), "-q"]
    r = subprocess.run([*argv, "-o", str(tmp_path / "m")], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                       text=True, env=env, timeout=600)
    lines = r.stdout.splitlines()
    assert r.returncode == 1 and lines[0].startswith("saicm: error: ") and "broken.png" in lines[0], lines
    assert lines[-1].startswith("3 written, 0 already done, 1 failed of 4 images"), lines
    r = subprocess.run([*argv, "-o", str(tmp_path / "m2")], stderr=subprocess.PIPE, text=True, env=env, timeout=600,
                       preexec_fn=lambda: os.close(1))
    assert r.returncode == 2 and "broken.png" in r.stderr and "cannot write to standard output" in r.stderr, r.stderr


def test_masks_cli_writes_1bit_pngs_manifest_and_resumes(folder, tmp_path):
    out = tmp_path / "m"
    r = run_cli("masks", folder, "-o", out, "--alpha", "0.5", "--preview", "--quiet")
    assert r.returncode == 0, r.stderr
    assert "3 written" in r.stdout
    for rel in ["a.png", "b.png", "sub/c.png"]:
        im = Image.open(out / rel)
        assert im.mode == "1" and im.size == (96, 72)
        assert (out / "previews" / rel).with_suffix(".jpg").is_file()
    spec = json.loads((out / "masks.json").read_text())
    assert spec["source"] == "regions" and spec["kind"] == "edges" and spec["settings"]["alpha"] == 0.5
    assert spec["saicm"] == saicm.__version__  # (the release that made them: none was recorded up to 0.29)
    lines = [json.loads(x) for x in (out / "manifest-0-of-1.jsonl").read_text().splitlines()]
    assert sorted(x["image"] for x in lines) == ["a.png", "b.jpg", "sub/c.png"]
    assert all(0 < x["fraction"] < 1 for x in lines)
    r = run_cli("masks", folder, "-o", out, "--alpha", "0.5", "--quiet")
    assert r.returncode == 0 and "0 written, 3 already done" in r.stdout
    r = run_cli("masks", folder, "-o", out, "--alpha", "0.9", "--quiet")
    assert r.returncode != 0 and "other settings" in r.stderr and "Traceback" not in r.stderr
    r = run_cli("masks", folder, "-o", out, "--alpha", "0.9", "--overwrite", "--quiet")
    assert r.returncode == 0 and "3 written" in r.stdout
    lines = (out / "manifest-0-of-1.jsonl").read_text().splitlines()
    assert len(lines) == 3  # the α = 0.5 lines were kept beside the new ones (6 lines for 3 images)


def test_off_a_terminal_masks_print_status_lines_not_silence(folder, tmp_path, monkeypatch, capsys):
    """`saicm masks` under nohup or `2> masks.log` printed nothing until its summary (SAM on a folder: hours): off a
    terminal, a line ``saicm masks: N/M images, ...`` at most every LINE_SECONDS; --quiet none."""
    from saicm import _progress
    from saicm.cli import main

    (folder / "broken.png").write_bytes(b"\x89PNG garbage")
    monkeypatch.setattr(_progress, "LINE_SECONDS", 0.0)
    assert main(["masks", str(folder), "-o", str(tmp_path / "m")]) == 1
    out, err = capsys.readouterr()
    lines = [x for x in err.splitlines() if x.startswith("saicm masks: ")]
    assert [x.split(": ", 1)[1].split(" images")[0] for x in lines] == ["1/4", "2/4", "3/4"], err
    assert "saicm masks: " not in out and "\r" not in err
    # the failed image as every command's failures are: `saicm: error: FILE: why` (it was `saicm: skipped FILE`)
    assert [x for x in err.splitlines() if "broken.png" in x][0].startswith(f"saicm: error: {folder / 'broken.png'}: ")
    assert main(["masks", str(folder), "-o", str(tmp_path / "q"), "--quiet"]) == 1
    assert "saicm masks: " not in capsys.readouterr().err


def test_a_mask_written_by_a_killed_run_gets_its_manifest_line(folder, tmp_path):
    """A run killed between writing a mask and its manifest line left that mask without a line for good (a rerun
    skips finished masks)."""
    out = tmp_path / "m"
    assert run_cli("masks", folder, "-o", out, "--quiet").returncode == 0
    manifest = out / "manifest-0-of-1.jsonl"
    lines = manifest.read_text().splitlines()
    manifest.write_text("\n".join(x for x in lines if json.loads(x)["image"] != "b.jpg") + "\n" + lines[-1][:9])
    r = run_cli("masks", folder, "-o", out, "--quiet")
    assert r.returncode == 0 and "3 already done" in r.stdout
    got = {}
    for x in manifest.read_text().splitlines():
        try:
            got[json.loads(x)["image"]] = json.loads(x)
        except ValueError:
            pass  # the cut line
    assert sorted(got) == ["a.png", "b.jpg", "sub/c.png"]
    before = {json.loads(x)["image"]: json.loads(x) for x in lines}["b.jpg"]
    assert got["b.jpg"]["fraction"] == before["fraction"] and got["b.jpg"]["segments"] is None


def test_a_killed_runs_preview_and_temporary_file_are_made_good_by_the_rerun(folder, tmp_path):
    """A kill between a mask and its preview lost that preview for good (the rerun skipped the finished mask), and
    the hidden ``.NAME.*.part.png`` a kill leaves beside a mask being written stayed, one more per kill."""
    from saicm.cli import main

    out = tmp_path / "m"
    assert main(["masks", str(folder), "-o", str(out), "--preview", "--quiet"]) == 0
    lost = out / "previews" / "sub" / "c.jpg"
    before = np.asarray(Image.open(lost))
    lost.unlink()
    (out / "a.png").unlink()
    stale = out / ".a.png.x1y2.part.png"  # (as atomic_path names its temporary files)
    stale.write_bytes(b"half a mask")
    assert main(["masks", str(folder), "-o", str(out), "--preview", "--quiet"]) == 0
    assert np.array_equal(np.asarray(Image.open(lost)), before)  # (the same picture: the same mask and image)
    assert (out / "a.png").is_file() and not stale.exists()
    assert not list(out.rglob(".*.part.*"))


def test_a_run_lists_each_mask_folder_once_for_killed_runs_temporary_files(tmp_path, monkeypatch):
    """The hidden temporary files of killed runs are looked for once per folder, not by listing the folder again for
    every mask written (quadratic in a flat folder: COCO's 118k images), and still removed."""
    from saicm.cli import main
    from saicm.masks import job

    src = tmp_path / "src"
    src.mkdir()
    for k in range(6):
        Image.fromarray(natural_image(48, 64, seed=k)).save(src / f"i{k}.png")
    out = tmp_path / "m"
    assert main(["masks", str(src), "-o", str(out), "--quiet"]) == 0
    for k in (1, 3, 5):  # (made again by the rerun below)
        (out / f"i{k}.png").unlink()
    stale = out / ".i3.png.x1y2.part.png"  # (as atomic_path names its temporary files)
    stale.write_bytes(b"half a mask")
    swept = []
    real_sweep = job.remove_stale_parts
    monkeypatch.setattr(job, "remove_stale_parts", lambda dest: (swept.append(dest.name), real_sweep(dest)))
    assert main(["masks", str(src), "-o", str(out), "--quiet"]) == 0
    assert len(list(out.glob("i*.png"))) == 6 and not stale.exists()
    # (the folder is listed by the sweep only for the mask a killed run left a temporary file beside)
    assert swept == ["i3.png"]


def test_masks_never_take_their_own_output_or_share_a_mask(folder, tmp_path, capsys):
    from saicm.cli import main

    inside = folder / "masks"
    for _ in range(2):  # the second run read the first one's masks and previews as images
        assert main(["masks", str(folder), "-o", str(inside), "--preview", "--quiet"]) == 0
    assert sorted(str(p.relative_to(inside)) for p in inside.rglob("*.png")) == ["a.png", "b.png", "sub/c.png"]
    capsys.readouterr()
    cases = [([str(folder), "-o", str(folder)], "is the input folder"),  # each photo was its own mask
             ([str(folder / "a.png"), "-o", str(tmp_path / "m3")], "is a file"),  # said "input folder not found"
             ]
    Image.fromarray(natural_image(72, 96, seed=9)).save(folder / "a.jpg")  # beside a.png: one mask for both
    cases.append(([str(folder), "-o", str(tmp_path / "m2")], "a.jpg and a.png would share one mask"))
    for argv, needle in cases:
        assert main(["masks", *argv, "--quiet"]) == 2
        assert needle in capsys.readouterr().err, argv


def test_masks_shards_split_the_folder(folder, tmp_path):
    out = tmp_path / "m"
    for i in range(2):
        r = run_cli("masks", folder, "-o", out, "--shard", f"{i}/2", "--quiet")
        assert r.returncode == 0, r.stderr
    a = (out / "manifest-0-of-2.jsonl").read_text().splitlines()
    b = (out / "manifest-1-of-2.jsonl").read_text().splitlines()
    assert len(a) == 2 and len(b) == 1
    assert len(list(out.rglob("*.png"))) == 3
    r = run_cli("masks", folder, "-o", out, "--quiet")  # every mask done: no new, empty manifest-0-of-1
    assert r.returncode == 0 and "3 already done" in r.stdout and not (out / "manifest-0-of-1.jsonl").exists()
    assert "coverage" not in r.stdout  # (of the masks written now: it said "mean mask coverage n/a")
    assert "mean mask coverage " in run_cli("masks", folder, "-o", tmp_path / "again", "--quiet").stdout
    r = run_cli("masks", folder, "-o", out, "--shard", "2/2")
    assert r.returncode != 0 and "--shard" in r.stderr


def test_a_folder_is_not_relabelled_under_masks_of_other_settings(folder, tmp_path, capsys):
    """(An audit of session 38.) --overwrite in one shard relabelled the folder while the other shard kept masks of
    the old settings ("3 already done"); a folder of mask PNGs without masks.json was taken as finished masks of
    any kind."""
    from saicm.cli import main

    out = tmp_path / "m"
    for i in range(2):
        assert main(["masks", str(folder), "-o", str(out), "--shard", f"{i}/2", "--alpha", "0.78", "--quiet"]) == 0
    assert main(["masks", str(folder), "-o", str(out), "--shard", "0/2", "--alpha", "0.48", "--overwrite",
                 "--quiet"]) == 2
    assert "--overwrite with --shard" in capsys.readouterr().err
    assert json.loads((out / "masks.json").read_text())["settings"]["alpha"] == 0.78  # unchanged
    assert main(["masks", str(folder), "-o", str(out), "--shard", "0/2", "--alpha", "0.78", "--overwrite",
                 "--quiet"]) == 0  # redoing a shard with the folder's own settings is fine
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    Image.fromarray(np.zeros((4, 4), np.uint8)).save(foreign / "a.png")
    assert main(["masks", str(folder), "-o", str(foreign), "--quiet"]) == 2
    assert "no masks.json" in capsys.readouterr().err
    assert main(["masks", str(folder), "-o", str(foreign), "--overwrite", "--quiet"]) == 0


def test_options_a_source_does_not_use_are_said_and_random_sam_is_refused(folder, tmp_path, capsys):
    from saicm.cli import main

    assert main(["masks", str(folder), "-o", str(tmp_path / "t"), "--source", "sam", "--sam-model", "vit_tiny",
                 "--quiet"]) == 2
    assert "random" in capsys.readouterr().err and not (tmp_path / "t").exists()
    with pytest.warns(UserWarning, match="--sam-opt not used by --source regions"):
        assert main(["masks", str(folder), "-o", str(tmp_path / "r"), "--sam-opt", "points_per_side=8",
                     "--quiet"]) == 0
    with pytest.warns(UserWarning, match="--sam-model not used by --source regions"):
        assert main(["masks", str(folder), "-o", str(tmp_path / "m"), "--sam-model", "vit_l", "--quiet"]) == 0
    # --device gpu (refused by train and video encode) was passed in silence: only SAM runs on a device
    with pytest.warns(UserWarning, match="--device not used by --source regions"):
        assert main(["masks", str(folder), "-o", str(tmp_path / "d"), "--device", "gpu", "--quiet"]) == 0


def _coco_file(tmp_path, size=(40, 60)):
    h, w = size
    from pycocotools import mask as mask_utils

    rle_mask = np.zeros((h, w), np.uint8, order="F")
    rle_mask[30:35, 50:55] = 1
    rle = mask_utils.encode(rle_mask)
    rle["counts"] = rle["counts"].decode()
    data = {
        "images": [{"id": 1, "file_name": "x.png", "height": h, "width": w}],
        "annotations": [
            {"id": 1, "image_id": 1, "category_id": 1, "iscrowd": 0, "area": 100.0, "bbox": [10, 5, 10, 10],
             "segmentation": [[10, 5, 20, 5, 20, 15, 10, 15]]},
            {"id": 2, "image_id": 1, "category_id": 1, "iscrowd": 1, "area": 25.0, "bbox": [50, 30, 5, 5],
             "segmentation": rle},
        ],
        "categories": [{"id": 1, "name": "thing"}],
    }
    p = tmp_path / "ann.json"
    p.write_text(json.dumps(data))
    return p


def _run_coco_source(tmp_path, source):
    """One 40x60 image and the two-instance annotation file through ``saicm masks --source SOURCE``."""
    d = tmp_path / "imgs"
    d.mkdir()
    Image.fromarray(natural_image(40, 60)).save(d / "x.png")
    ann = _coco_file(tmp_path)
    out = tmp_path / "m"
    r = run_cli("masks", d, "-o", out, "--source", source, "--annotations", ann, "--quiet")
    assert r.returncode == 0, r.stderr
    return d / "x.png", ann, out, np.asarray(Image.open(out / "x.png").convert("L")) > 0


def test_coco_source_writes_union_of_polygons_and_rle(tmp_path):
    _, _, out, m = _run_coco_source(tmp_path, "coco")
    assert m[8:13, 12:18].all() and m[31:34, 51:54].all()
    assert not m[0:3].any() and not m[:, 25:45].any()
    assert json.loads((out / "masks.json").read_text())["kind"] == "objects"


def test_coco_source_errors(tmp_path):
    d = tmp_path / "imgs"
    d.mkdir()
    Image.fromarray(natural_image(40, 60)).save(d / "other.png")
    r = run_cli("masks", d, "-o", tmp_path / "m", "--source", "coco")
    assert r.returncode != 0 and "--annotations" in r.stderr
    r = run_cli("masks", d, "-o", tmp_path / "m2", "--source", "coco", "--annotations", _coco_file(tmp_path))
    assert r.returncode == 1 and "not in the annotation file" in r.stderr and "Traceback" not in r.stderr


def _coco_entries(tmp_path, names):
    """An annotation file of 40x60 images named ``names``, image i with one 2x2 square at row 2i (which it is)."""
    data = {"images": [{"id": i + 1, "file_name": n, "height": 40, "width": 60} for i, n in enumerate(names)],
            "annotations": [{"id": i + 1, "image_id": i + 1, "category_id": 1, "iscrowd": 0, "area": 4.0,
                             "bbox": [0, 2 * i, 2, 2],
                             "segmentation": [[0, 2 * i, 2, 2 * i, 2, 2 * i + 2, 0, 2 * i + 2]]}
                            for i in range(len(names))],
            "categories": [{"id": 1, "name": "thing"}]}
    p = tmp_path / "entries.json"
    p.write_text(json.dumps(data))
    return p


def test_coco_source_matches_images_of_one_name_in_sub_folders_by_their_folders(tmp_path):
    """Entries were looked up by base name alone: a/x.jpg and b/x.jpg, listed as such, both got the mask of the last
    one listed, in silence; two entries of one file name, the last one's; a Windows name (s\\x.jpg) none."""
    from saicm.errors import SaicmError
    from saicm.masks.coco import CocoObjects

    def row(objs, path):
        m, n = objs.union(tmp_path / path, (40, 60))
        assert n == 1
        return int(np.nonzero(m.any(1))[0][0])

    objs = CocoObjects(_coco_entries(tmp_path, ["a/x.jpg", "b/x.jpg", "y.jpg", "s\\z.jpg", "train/w.jpg"]))
    assert row(objs, "imgs/a/x.jpg") == 0 and row(objs, "imgs/b/x.jpg") == 2
    assert row(objs, "imgs/s/z.jpg") == 6
    assert row(objs, "imgs/deep/y.jpg") == 4  # (a name without folders: any folder's image of that name)
    assert row(objs, "imgs/w.jpg") == 8  # (the one entry of that name, listed in another folder: taken, as before)
    with pytest.raises(SaicmError, match=r"2 images of the annotation file fit it by name.*'a/x.jpg', 'b/x.jpg'"):
        objs.union(tmp_path / "imgs/c/x.jpg", (40, 60))
    twice = CocoObjects(_coco_entries(tmp_path, ["y.jpg", "y.jpg"]))
    with pytest.raises(SaicmError, match=r"lists this image 2 times \(file_name 'y.jpg', image ids 1, 2\)"):
        twice.union(tmp_path / "imgs/y.jpg", (40, 60))


def test_a_coco_mask_folder_of_0_31_gets_the_masks_it_took_from_another_folders_entry_made_again(tmp_path, capsys):
    """saicm 0.31.0 gave a/x.png the mask of b/x.png's entry (the last listed of that name); 0.32.0 matches each by its
    folders, but a rerun over a folder of 0.31.0 kept that mask in silence (its line holds no SHA-256: trusted). Such
    masks are made again, said in a warning, once; the others are kept and not read."""
    from saicm.cli import main

    imgs = tmp_path / "imgs"
    for sub in ("a", "b", "c"):
        (imgs / sub).mkdir(parents=True)
        Image.fromarray(natural_image(40, 60, seed=len(sub))).save(imgs / sub / ("y.png" if sub == "c" else "x.png"))
    ann = _coco_entries(tmp_path, ["a/x.png", "b/x.png", "c/y.png"])
    out, fresh = tmp_path / "m", tmp_path / "fresh"
    args = ["--source", "coco", "--annotations", str(ann), "--quiet"]
    assert main(["masks", str(imgs), "-o", str(fresh), *args]) == 0
    assert main(["masks", str(imgs), "-o", str(out), *args]) == 0
    manifest = out / "manifest-0-of-1.jsonl"  # as 0.31.0 left it: a/x.png's mask of b/x.png's entry, lines without
    manifest.write_text("".join(json.dumps({k: v for k, v in json.loads(x).items()  # their image's SHA-256
                                            if k not in ("image_sha256", "image_stat")}) + "\n"
                                for x in manifest.read_text().splitlines()))
    (out / "a" / "x.png").write_bytes((out / "b" / "x.png").read_bytes())
    capsys.readouterr()
    with pytest.warns(UserWarning, match="1 mask made by saicm 0.31.0 or before of the annotations of another image"):
        assert main(["masks", str(imgs), "-o", str(out), *args]) == 0
    assert "1 written, 2 already done" in capsys.readouterr().out
    assert (out / "a" / "x.png").read_bytes() == (fresh / "a" / "x.png").read_bytes()
    assert main(["masks", str(imgs), "-o", str(out), *args]) == 0
    assert "0 written, 3 already done" in capsys.readouterr().out


def test_coco_source_matches_a_lossless_copy_of_an_image_by_its_stem(tmp_path):
    """A folder of the dataset's JPEGs saved as PNG (lossless training copies) had no image in the annotation file,
    though eval matches the same folder by stem; a stem two entries share is refused, named."""
    from saicm.errors import SaicmError
    from saicm.masks.coco import CocoObjects

    objs = CocoObjects(_coco_entries(tmp_path, ["000009.jpg", "a/y.jpg", "b/y.jpeg"]))
    m, n = objs.union(tmp_path / "png/000009.png", (40, 60))
    assert n == 1 and m[0:2, 0:2].all() and m.sum() == 4
    assert objs.union(tmp_path / "png/a/y.png", (40, 60))[0][2:4, 0:2].all()  # (its folder tells the two y's apart)
    with pytest.raises(SaicmError, match=r"2 images of the annotation file fit it by name \('a/y.jpg', 'b/y.jpeg'\)"):
        objs.union(tmp_path / "png/y.png", (40, 60))
    with pytest.raises(SaicmError, match="image not in the annotation file"):
        objs.union(tmp_path / "png/000010.png", (40, 60))


def test_coco_masks_of_many_instances_are_not_all_decoded_at_once(tmp_path):
    """Every instance was decoded to an H×W mask (and copied to bool) before the union or the painting: a 12 MP
    image of 400 instances took 9.5 GB. The masks must be the same as made of all the decoded masks at once."""
    import tracemalloc

    from pycocotools import mask as mask_utils

    from saicm.masks.coco import CocoObjects

    h, w, n = 1000, 1000, 150
    rng = np.random.default_rng(0)
    anns = []
    for k in range(n):
        x, y = rng.uniform(0, w - 80, 2)
        s = float(rng.uniform(5, 80))
        anns.append({"id": k + 1, "image_id": 1, "category_id": 1, "iscrowd": 0, "area": s * s, "bbox": [x, y, s, s],
                     "segmentation": [[x, y, x + s, y, x + s / 2, y + s]]})
    p = tmp_path / "dense.json"
    p.write_text(json.dumps({"images": [{"id": 1, "file_name": "d.png", "width": w, "height": h}],
                             "annotations": anns, "categories": [{"id": 1, "name": "thing"}]}))
    objs = CocoObjects(p)
    tracemalloc.start()
    try:
        union, count = objs.union(tmp_path / "d.png", (h, w))
        labels, count2 = objs.labels(tmp_path / "d.png", (h, w))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 30 * h * w, f"{peak / 1e6:.0f} MB"  # (all at once: n·h·w bytes and more)
    masks = [mask_utils.decode(r).astype(bool) for r in objs.rles(tmp_path / "d.png", (h, w))]  # (all at once)
    assert count == count2 == n
    assert np.array_equal(union, np.logical_or.reduce(masks))
    assert np.array_equal(labels, paint_masks(masks, (h, w)))


def test_coco_source_says_when_an_exif_orientation_turns_the_image_from_its_annotations(tmp_path):
    """saicm reads images upright: a JPEG stored with orientation 3 (180°) kept its size, and its mask, made of
    annotations of the picture as stored, was written turned from its objects without a word; one on its side
    (6) was refused as of another size, the turn unsaid."""
    from saicm.errors import SaicmError
    from saicm.masks.coco import CocoObjects

    objs = CocoObjects(_coco_entries(tmp_path, ["r3.jpg", "r6.jpg", "r1.jpg"]))
    for name, orientation in (("r3.jpg", 3), ("r6.jpg", 6), ("r1.jpg", 1)):
        exif = Image.Exif()
        exif[0x0112] = orientation
        Image.fromarray(natural_image(40, 60)).save(tmp_path / name, exif=exif)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        objs.union(tmp_path / "r1.jpg", (40, 60))  # (upright as stored: nothing to say)
    with pytest.warns(UserWarning, match="r3.jpg is turned by its EXIF orientation.*taken as describing the turned"):
        objs.union(tmp_path / "r3.jpg", (40, 60))
    with pytest.raises(SaicmError, match=r"annotations are for 60x40, image is 40x60 \(turned by its EXIF orientation"):
        objs.union(tmp_path / "r6.jpg", (60, 40))


def test_coco_masks_follow_the_annotations_content_not_their_path(tmp_path, capsys):
    """The settings recorded the annotations' path as typed: a copy of the same file was refused as other settings,
    and a file changed in place kept its old masks; a folder of saicm < 0.18 (path recorded) still goes on."""
    from saicm.cli import main

    x, ann, out, _ = _run_coco_source(tmp_path, "coco")
    copy = tmp_path / "copy.json"
    copy.write_bytes(ann.read_bytes())
    with pytest.warns(UserWarning, match="--edge-method not used by --source coco"):  # objects, not edges
        assert main(["masks", str(x.parent), "-o", str(out), "--source", "coco", "--annotations", str(copy),
                     "--edge-method", "canny", "--quiet"]) == 0  # the same content by another path: done
    changed = json.loads(ann.read_text())
    changed["annotations"] = changed["annotations"][:1]
    ann.write_text(json.dumps(changed))
    assert main(["masks", str(x.parent), "-o", str(out), "--source", "coco", "--annotations", str(ann),
                 "--quiet"]) == 2
    assert "other settings" in capsys.readouterr().err
    old = json.loads((out / "masks.json").read_text())  # as saicm 0.17 wrote it, naming the (unchanged) copy
    old["settings"] = {"annotations": str(copy)}
    (out / "masks.json").write_text(json.dumps(old))
    assert main(["masks", str(x.parent), "-o", str(out), "--source", "coco", "--annotations", str(copy),
                 "--quiet"]) == 0
    record = json.loads((out / "masks.json").read_text())
    assert "annotations_sha256" in record["settings"]
    assert record["saicm"] == saicm.__version__  # (rewritten by this release: it says so, as a new record does)


@pytest.fixture(scope="module")
def tiny_sam_checkpoint(tmp_path_factory):
    from saicm.masks.sam import build_sam

    torch.manual_seed(0)
    p = tmp_path_factory.mktemp("sam") / "sam_tiny.pth"
    torch.save(build_sam("vit_tiny", None).state_dict(), p)
    return p


def test_sam_source_runs_end_to_end_with_a_random_tiny_model(tmp_path, tiny_sam_checkpoint):
    d = tmp_path / "imgs"
    d.mkdir()
    Image.fromarray(natural_image(64, 80)).save(d / "x.png")
    out = tmp_path / "m"
    r = run_cli("masks", d, "-o", out, "--sam-checkpoint", tiny_sam_checkpoint, "--sam-model", "vit_tiny",
                "--alpha", "0.01", "--sam-opt", "points_per_side=4", "--sam-opt", "stability_score_thresh=0.0",
                "--quiet")
    assert r.returncode == 0, r.stderr
    spec = json.loads((out / "masks.json").read_text())
    assert spec["source"] == "sam" and spec["settings"]["points_per_side"] == 4 and spec["settings"]["alpha"] == 0.01
    assert Image.open(out / "x.png").size == (80, 64)


def test_a_sam_folder_records_its_checkpoint_and_refuses_another(tmp_path, tiny_sam_checkpoint, capsys):
    """Resuming a SAM mask folder with other weights of the same variant (another fine-tune, a random init) mixed
    two models' masks under one record: the record named the variant, not the weights."""
    from saicm.cli import main
    from saicm.masks.sam import build_sam

    torch.manual_seed(1)
    other = tmp_path / "other_tiny.pth"
    torch.save(build_sam("vit_tiny", None).state_dict(), other)
    d = tmp_path / "imgs"
    d.mkdir()
    Image.fromarray(natural_image(32, 40)).save(d / "a.png")
    out = tmp_path / "m"
    opts = ["--sam-model", "vit_tiny", "--sam-opt", "points_per_side=2", "--quiet"]
    assert main(["masks", str(d), "-o", str(out), "--sam-checkpoint", str(tiny_sam_checkpoint), *opts]) == 0
    import hashlib

    record = json.loads((out / "masks.json").read_text())
    assert record["settings"]["checkpoint_sha256"] == hashlib.sha256(tiny_sam_checkpoint.read_bytes()).hexdigest()
    Image.fromarray(natural_image(32, 40, seed=3)).save(d / "b.png")
    assert main(["masks", str(d), "-o", str(out), "--sam-checkpoint", str(other), *opts]) == 2
    assert "checkpoint_sha256" in capsys.readouterr().err and not (out / "b.png").exists()
    # a folder of saicm <= 0.30.0 (its record names no checkpoint) resumes, saying it cannot check the weights
    del record["settings"]["checkpoint_sha256"]
    (out / "masks.json").write_text(json.dumps(record))
    with pytest.warns(UserWarning, match="names no SAM checkpoint"):
        assert main(["masks", str(d), "-o", str(out), "--sam-checkpoint", str(other), *opts]) == 0
    assert (out / "b.png").exists() and "checkpoint_sha256" not in json.loads((out / "masks.json").read_text())["settings"]


def test_a_sam_option_given_at_its_default_is_the_same_setting_as_none(tmp_path, tiny_sam_checkpoint, capsys):
    """`--sam-opt points_per_side=32` (SAM's default) was recorded, and a resume without it refused as other settings,
    and the other way round (the SAM mask audit); a record of saicm <= 0.30 holding the default resumes too."""
    from saicm.cli import main

    d = tmp_path / "imgs"
    d.mkdir()
    Image.fromarray(natural_image(32, 40)).save(d / "a.png")
    out = tmp_path / "m"
    base = ["masks", str(d), "-o", str(out), "--sam-checkpoint", str(tiny_sam_checkpoint), "--sam-model", "vit_tiny",
            "--sam-opt", "points_per_side=2", "--quiet"]
    assert main([*base, "--sam-opt", "box_nms_thresh=0.7"]) == 0  # (0.7: the generator's default)
    record = json.loads((out / "masks.json").read_text())
    assert "box_nms_thresh" not in record["settings"] and record["settings"]["points_per_side"] == 2
    Image.fromarray(natural_image(32, 40, seed=3)).save(d / "b.png")
    assert main(base) == 0 and (out / "b.png").exists()
    record["settings"]["box_nms_thresh"] = 0.7  # as 0.30.0 wrote it
    (out / "masks.json").write_text(json.dumps(record))
    Image.fromarray(natural_image(32, 40, seed=4)).save(d / "c.png")
    assert main(base) == 0 and (out / "c.png").exists()
    assert main([*base, "--sam-opt", "box_nms_thresh=0.5"]) == 2  # another value is another setting
    assert "box_nms_thresh" in capsys.readouterr().err


def test_sam_checkpoint_errors_are_one_line(tmp_path, tiny_sam_checkpoint, capsys):
    from saicm.cli import main

    d = tmp_path / "imgs"
    d.mkdir()
    Image.fromarray(natural_image(32, 32)).save(d / "x.png")
    cases = [
        (["--sam-checkpoint", tmp_path / "missing.pth"], "not found"),
        (["--sam-checkpoint", tiny_sam_checkpoint, "--sam-model", "vit_b"], "vit_tiny checkpoint, but --sam-model is vit_b"),
        (["--source", "sam"], "needs --sam-checkpoint"),
        (["--sam-checkpoint", tiny_sam_checkpoint, "--sam-model", "vit_tiny", "--sam-opt", "bogus=1"], "unknown SAM"),
    ]
    junk = tmp_path / "junk.pth"
    junk.write_bytes(b"not a checkpoint")
    cases.append((["--sam-checkpoint", junk], "not a PyTorch checkpoint"))
    # The first as a user runs it (a process of its own: no traceback on stderr); the others in this process
    # (each process pays PyTorch's import): an error must come back as an exit code, not an exception.
    args, msg = cases[0]
    r = run_cli("masks", d, "-o", tmp_path / "m", *args)
    assert r.returncode != 0 and msg in r.stderr and "Traceback" not in r.stderr, r.stderr
    for args, msg in cases[1:]:
        assert main(["masks", str(d), "-o", str(tmp_path / "m"), *map(str, args)]) != 0, args
        err = capsys.readouterr().err
        assert msg in err, (args, err)


def test_a_cut_short_checkpoint_is_called_so(tmp_path, tiny_sam_checkpoint):
    """A download or copy that stopped part way (a 2.5 GB vit_h file) was "not a PyTorch checkpoint": it is one,
    without its end."""
    from saicm.errors import SaicmError
    from saicm.masks.sam import build_sam

    data = tiny_sam_checkpoint.read_bytes()
    cut = tmp_path / "cut.pth"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(SaicmError, match="cut short"):
        build_sam("vit_tiny", cut)


def test_a_sam_checkpoint_that_does_not_fit_names_the_weights(tmp_path, tiny_sam_checkpoint):
    """It said "checkpoint does not fit vit_tiny: Error(s) in loading state_dict for Sam:", naming nothing."""
    from saicm.errors import SaicmError
    from saicm.masks.sam import build_sam

    state = torch.load(tiny_sam_checkpoint, weights_only=True)
    del state["mask_decoder.iou_token.weight"]
    state["mask_decoder.mask_tokens.weight"] = torch.zeros(2, 3)
    p = tmp_path / "damaged.pth"
    torch.save(state, p)
    with pytest.raises(SaicmError, match=r"missing: mask_decoder\.iou_token\.weight.*"
                       r"mask_decoder\.mask_tokens\.weight is 2x3, not 4x256"):
        build_sam("vit_tiny", p)


def test_a_data_parallel_sam_fine_tune_loads_and_other_files_are_told_for_masks(tmp_path, tiny_sam_checkpoint):
    """A SAM fine-tune saved from DataParallel/DDP (every name behind ``module.``) was refused as "not a Segment
    Anything checkpoint"; it loads as the same weights. A saicm model or an image given as the checkpoint was told
    "give it with --model" (compress's advice: masks has no --model)."""
    from saicm.errors import SaicmError
    from saicm.masks.sam import build_sam

    state = torch.load(tiny_sam_checkpoint, weights_only=True)
    wrapped = tmp_path / "ddp.pth"
    torch.save({"model": {"module." + k: v for k, v in state.items()}}, wrapped)
    loaded = build_sam("vit_tiny", wrapped).state_dict()
    assert loaded.keys() == state.keys() and all(torch.equal(loaded[k], state[k]) for k in state)
    image = tmp_path / "photo.png"
    Image.fromarray(natural_image(8, 8)).save(image)
    with pytest.raises(SaicmError) as e:
        build_sam("vit_tiny", image)
    assert str(e.value).endswith("photo.png: a PNG image, not a SAM checkpoint: --sam-checkpoint takes a "
                                 "segment-anything .pth file (Meta's release: sam_vit_b_01ec64.pth, or a fine-tune "
                                 "saved the same way)")


@pytest.mark.parametrize("opt, said", [
    ("points_per_side=0", "points_per_side must be at least 1"),
    ("points_per_batch=0", "points_per_batch must be at least 1"),
    ("crop_n_layers=-1", "crop_n_layers must be at least 0"),
    ("crop_n_points_downscale_factor=0", "crop_n_points_downscale_factor must be at least 1"),
    ("stability_score_thresh=nan", "stability_score_thresh must be a number in [0, 1]"),
    ("box_nms_thresh=1.5", "box_nms_thresh must be a number in [0, 1]"),
    ("stability_score_offset=inf", "stability_score_offset must be a finite number"),
])
def test_sam_options_out_of_range_are_refused_before_anything_is_written(opt, said, tmp_path, tiny_sam_checkpoint,
                                                                          capsys):
    """They passed to SamAutomaticMaskGenerator: a ZeroDivisionError or IndexError traceback after the model was
    loaded, and a masks.json recording them, so the run with the option put right was refused as other settings."""
    from saicm.cli import main

    d = tmp_path / "imgs"
    d.mkdir()
    Image.fromarray(natural_image(32, 32)).save(d / "x.png")
    out = tmp_path / "m"
    assert main(["masks", str(d), "-o", str(out), "--sam-checkpoint", str(tiny_sam_checkpoint), "--sam-model",
                 "vit_tiny", "--sam-opt", "points_per_side=2", "--sam-opt", opt, "--quiet"]) == 2
    assert said in capsys.readouterr().err and not out.exists()


def _coco_file_with(tmp_path, segmentation):
    """The two-instance annotation file with the first instance's segmentation replaced (a stranger's file)."""
    p = _coco_file(tmp_path)
    data = json.loads(p.read_text())
    data["annotations"][0]["segmentation"] = segmentation
    p.write_text(json.dumps(data))  # (NaN written as NaN: Python's JSON reads it back)
    return p


@pytest.mark.parametrize("segmentation, said", [
    ([[10, 5, float("nan"), 5, 20, 15]], "a polygon that is not a list of finite numbers"),
    ([[0, 0, 1e12, 0, 1e12, 1e12]], "a polygon reaching (1e+12, 1e+12), far outside its 60x40 image"),
    ({"size": [100000, 100000], "counts": [10]}, "an RLE segmentation of size 100000x100000 on a 60x40 image"),
])
def test_coco_source_refuses_segmentations_that_crashed_pycocotools(tmp_path, segmentation, said):
    """pycocotools' rasteriser died of a segmentation fault (exit 139, not a word) on a polygon of NaN or huge
    coordinates and on an RLE claiming a huge size: the file is refused in one line naming the annotation."""
    d = tmp_path / "imgs"
    d.mkdir()
    Image.fromarray(natural_image(40, 60)).save(d / "x.png")
    ann = _coco_file_with(tmp_path, segmentation)
    r = run_cli("masks", d, "-o", tmp_path / "m", "--source", "coco", "--annotations", ann, "--quiet")
    assert r.returncode == 2 and "Traceback" not in r.stderr, (r.returncode, r.stderr)
    assert f"{ann}: not a usable COCO annotation file: annotations[0] (id 1) has {said}" in r.stderr, r.stderr


@pytest.mark.parametrize("segmentation, said", [
    ([[10, 5, 20, 5]], "a polygon of 4 numbers"),  # (pycocotools took it for a box: a TypeError)
    ([[10, 5, 20, 5, 20]], "a polygon of 5 numbers"),
    ([["a", "b", "c", "d", "e", "f"]], "not a list of finite numbers"),
    ([], "no segmentation"),
    (None, "no segmentation"),
    ({"counts": [10]}, "without a size"),
    ({"size": [40, 60], "counts": [10, 20]}, "runs cover 30 pixels, not the image's 2400"),
    ({"size": [40, 60], "counts": [-5, 2405]}, "not a list of run lengths"),
    ({"size": [40, 60], "counts": "0o"}, "counts string is not a compressed RLE"),  # (the C decoder read past it)
    ({"size": [40, 60], "counts": "\u00ff!"}, "counts string is not a compressed RLE"),
    ([[0, 0, 60, 40, 0, 40, 60, 0] * 20000], "pixels of outline"),  # (a zigzag: GBs in the rasteriser)
])
def test_coco_source_refuses_malformed_segmentations_in_one_line(tmp_path, segmentation, said):
    from saicm.errors import SaicmError
    from saicm.masks.coco import CocoObjects

    ann = _coco_file_with(tmp_path, segmentation)
    with pytest.raises(SaicmError, match="annotations\\[0\\] \\(id 1\\) has ") as e:
        CocoObjects(ann)
    assert said in str(e.value) and str(e.value).startswith(f"{ann}: ") and "\n" not in str(e.value)


def test_coco_source_refuses_images_without_size_or_with_a_doubled_id(tmp_path):
    from saicm.errors import SaicmError
    from saicm.masks.coco import CocoObjects

    p = _coco_file(tmp_path)
    good = json.loads(p.read_text())
    for change, said in [(lambda d: d["images"][0].pop("height"), "images[0] (id 1) has no height"),
                         (lambda d: d["images"][0].update(height="40"), "height '40' is not a whole number"),
                         (lambda d: d["images"][0].pop("file_name"), "images[0] (id 1) has no file_name"),
                         (lambda d: d["images"].append(dict(d["images"][0], file_name="y.png")),
                          "images[1] (id 1): its id is given twice"),
                         (lambda d: d.update(images={}), "'images' is not a list")]:
        data = json.loads(json.dumps(good))
        change(data)
        p.write_text(json.dumps(data))
        with pytest.raises(SaicmError, match="not a usable COCO annotation file") as e:
            CocoObjects(p)
        assert said in str(e.value), str(e.value)


def test_coco_edges_source_outlines_painted_instances(tmp_path):
    image, ann, out, e = _run_coco_source(tmp_path, "coco-edges")
    # Same instances as the union test, as a painted segment map: its exact label boundaries.
    from saicm.masks.coco import CocoObjects
    from saicm.masks.edges import label_boundaries

    labels, n = CocoObjects(ann).labels(image, (40, 60))
    assert n == 2 and set(np.unique(labels)) == {0, 1, 2}
    assert labels[10, 15] == 1 and labels[32, 52] == 2  # the larger polygon painted first
    np.testing.assert_array_equal(e, label_boundaries(labels))
    assert e.any() and not e[10:13, 13:17].any()  # outlines only, not the inside
    assert json.loads((out / "masks.json").read_text())["kind"] == "edges"


def test_masks_saved_as_jpeg_or_resized_are_read_and_photos_are_refused(tmp_path):
    """A mask is black and white; one saved as JPEG or resized keeps grey edges (1-25 % of its pixels) and is a
    mask, read with its noise off; a photo (nearly all grey) in a mask's place was thresholded to all-on."""
    import pytest

    from saicm.errors import SaicmError
    from saicm.masks.job import load_mask

    truth = np.zeros((96, 128), bool)
    truth[20:70, 30:90] = True
    truth[40:50, 50:70] = False
    Image.fromarray(truth).convert("L").save(tmp_path / "m.jpg", quality=95)
    Image.fromarray(truth).convert("L").resize((64, 48), Image.BILINEAR).save(tmp_path / "small.png")
    Image.fromarray(natural_image(96, 128, seed=3)).save(tmp_path / "photo.png")
    assert (load_mask(tmp_path / "m.jpg") == truth).mean() > 0.995  # JPEG ringing near 0 stays off
    small = load_mask(tmp_path / "small.png")
    assert small.shape == (48, 64) and abs(small.mean() - truth.mean()) < 0.05
    with pytest.raises(SaicmError, match="photo.png: not a mask: .* of its pixels are grey"):
        load_mask(tmp_path / "photo.png")


def test_a_mask_whose_on_and_off_are_in_its_alpha_channel_is_refused(tmp_path):
    """A mask exported with transparency (on: opaque white, off: transparent white, as image editors save a layer)
    read as all on: the whole image weighed as edges or objects, unsaid. An opaque RGBA or a palette mask whose
    transparent entry is unused is read as before."""
    import pytest

    from saicm.errors import SaicmError
    from saicm.masks.job import load_mask

    truth = np.zeros((48, 64), bool)
    truth[10:20, 5:40] = True
    rgba = np.full((48, 64, 4), 255, np.uint8)
    rgba[..., 3] = np.where(truth, 255, 0)
    Image.fromarray(rgba, "RGBA").save(tmp_path / "alpha.png")
    with pytest.raises(SaicmError, match=r"alpha\.png: not a mask: 89 % of its pixels are transparent"):
        load_mask(tmp_path / "alpha.png")
    grey = np.where(truth, 255, 0).astype(np.uint8)
    Image.fromarray(np.dstack([grey] * 3 + [np.full_like(grey, 255)]), "RGBA").save(tmp_path / "opaque.png")
    assert np.array_equal(load_mask(tmp_path / "opaque.png"), truth)
    p = Image.fromarray(grey).convert("P")
    p.info["transparency"] = 7  # (an index no pixel uses)
    p.save(tmp_path / "p.png", transparency=7)
    assert np.array_equal(load_mask(tmp_path / "p.png"), truth)


def test_a_sharded_overwrite_cannot_adopt_foreign_masks(folder, tmp_path, capsys):
    from saicm.cli import main

    foreign = tmp_path / "foreign"
    foreign.mkdir()
    Image.fromarray(np.zeros((4, 4), np.uint8)).save(foreign / "a.png")
    assert main(["masks", str(folder), "-o", str(foreign), "--overwrite", "--shard", "0/2", "--quiet"]) == 2
    assert "without --shard" in capsys.readouterr().err and not (foreign / "masks.json").exists()


def test_masks_without_their_extra_leave_no_half_made_folder(folder, tmp_path):
    """On a coding-only install `saicm masks` said what to install, but left masks.json and a manifest behind."""
    from .conftest import run_without_torch

    out = tmp_path / "m"
    r = run_without_torch(f"sys.modules['skimage'] = None\nprint(main(['masks', r'{folder}', '-o', r'{out}', "
                          "'--quiet']))\n", tmp_path / "cache")
    assert r.stdout.strip() == "2" and "saicm[train]" in r.stderr, r.stderr
    assert not out.exists()


def test_the_progress_bar_is_drawn_on_a_terminal_only(folder, tmp_path):
    """Without --quiet, `saicm masks` drew its bar into a log file or pipe (a cron log or CI log got one
    carriage-return-joined line of updates); compress, decompress and eval draw theirs on a terminal only."""
    r = run_cli("masks", folder, "-o", tmp_path / "m")
    assert r.returncode == 0, r.stderr
    assert "\r" not in r.stderr and "img/s" not in r.stderr, r.stderr


def test_a_shard_started_beside_one_with_other_settings_is_refused_not_mixed_in(tmp_path, monkeypatch):
    """Shards of an array job start together: two with other settings both found no masks.json, both wrote one
    (the last stayed) and the folder held masks of both settings under one label. The record appearing while the
    second writes its own is read and checked, as if it had been there."""
    from saicm import SaicmError
    from saicm.masks import job

    out = tmp_path / "masks"
    out.mkdir()
    other = job.MaskSpec("regions", {"alpha": 0.9})
    mine = job.MaskSpec("regions", {"alpha": 0.3})
    real = job.write_atomic

    def the_other_shard_first(dest, writer, *args, **kw):
        if dest.name == "masks.json" and not dest.exists():
            real(dest, lambda t: t.write_text(json.dumps(other.as_dict())))  # (the other shard, meanwhile)
        return real(dest, writer, *args, **kw)

    monkeypatch.setattr(job, "write_atomic", the_other_shard_first)
    with pytest.raises(SaicmError, match="other settings"):
        job._check_spec(out, mine, overwrite=False, sharded=True)
    assert json.loads((out / "masks.json").read_text()) == other.as_dict()
    (out / "masks.json").unlink()
    job._check_spec(out, other, overwrite=False, sharded=True)  # the same settings: both go on
    assert json.loads((out / "masks.json").read_text()) == other.as_dict()  # (the other shard's record)
    monkeypatch.undo()
    (out / "masks.json").unlink()
    job._check_spec(out, other, overwrite=False, sharded=False)
    assert json.loads((out / "masks.json").read_text()) == {**other.as_dict(), "saicm": saicm.__version__}
    (out / "masks.json").write_text(json.dumps({**other.as_dict(), "saicm": "0.30.0"}))  # another release's record
    job._check_spec(out, other, overwrite=False, sharded=True)  # the release is no setting: the same masks
    assert json.loads((out / "masks.json").read_text())["saicm"] == "0.30.0"  # (kept: which release made them)


def test_a_mask_is_read_upright_as_its_image_is(tmp_path):
    """Images are turned as their EXIF orientation says, masks were not: a mirrored mask (orientation 2) of a phone's
    picture has the image's size, so no check caught that its edges lay on the wrong side."""
    from saicm.masks.job import load_mask

    m = np.zeros((6, 8), np.uint8)
    m[:, :2] = 255  # on at the left, as stored
    exif = Image.Exif()
    exif[0x0112] = 2  # shown mirrored left-right
    Image.fromarray(m).save(tmp_path / "m.png", exif=exif)
    got = load_mask(tmp_path / "m.png")
    assert got.shape == (6, 8) and got[:, -2:].all() and not got[:, :-2].any()


def test_coco_source_reads_segmentations_without_the_fields_only_scoring_needs(tmp_path):
    """Masks are drawn from segmentations alone: a file without bbox, area or iscrowd (which COCOeval needs, not
    the rasteriser) is read (mutation audit: checking it as for scoring passed)."""
    from saicm.masks.coco import CocoObjects

    p = _coco_file(tmp_path)
    data = json.loads(p.read_text())
    for a in data["annotations"]:
        for k in ("bbox", "area", "iscrowd"):
            a.pop(k)
    p.write_text(json.dumps(data))
    CocoObjects(p)


def test_a_folder_of_other_settings_is_refused_naming_what_differs(tmp_path):
    """The refusal named the folder's source and settings only: another --edge-width or --edge-method was refused
    with a message showing no value that differed."""
    from saicm.errors import SaicmError
    from saicm.masks.job import MaskSpec, _check_spec

    spec = MaskSpec(source="regions", settings={"alpha": 0.78}, edge_method="boundary", edge_width=1)
    _check_spec(tmp_path, spec, overwrite=False)
    from dataclasses import replace

    with pytest.raises(SaicmError, match=r"other settings \(edge_width 1, not 3\)"):
        _check_spec(tmp_path, replace(spec, edge_width=3), overwrite=False)
    with pytest.raises(SaicmError, match=r"other settings \(alpha 0.78, not 0.5; edge_method 'boundary', not 'canny'\)"):
        _check_spec(tmp_path, replace(spec, settings={"alpha": 0.5}, edge_method="canny"), overwrite=False)


def test_a_run_whose_masks_are_all_empty_says_so(tmp_path, folder):
    """A SAM run at too high an alpha wrote empty masks and said only "mean mask coverage 0.00%": training on them
    counts no pixel's distortion (the SAM mask audit). Flat images have no segment edges; photos have some."""
    from saicm.cli import main
    from saicm.errors import SaicmWarning

    flat = tmp_path / "flat"
    flat.mkdir()
    for i in range(2):
        Image.new("RGB", (64, 48), (90, 120, 30)).save(flat / f"{i}.png")
    with pytest.warns(SaicmWarning, match=r"every mask written \(2\) is empty.*lower one gives more segments"):
        assert main(["masks", str(flat), "-o", str(tmp_path / "m"), "--quiet"]) == 0
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error", SaicmWarning)
        assert main(["masks", str(folder), "-o", str(tmp_path / "p"), "--quiet"]) == 0


def test_an_image_replaced_under_its_name_gets_a_new_mask_on_a_rerun(folder, tmp_path, capsys):
    """A rerun skipped every image whose mask existed, by name alone: an image edited or replaced in place (another
    photo of the same size: a camera's are all alike) kept the mask of the old picture, which training then used in
    silence. The manifest records the SHA-256 of the image each mask was made of, and a rerun makes the mask of a
    changed image again, with a warning; lines of saicm 0.31.0 and before (no SHA-256) are trusted as before."""
    from saicm.cli import main

    out = tmp_path / "m"
    assert main(["masks", str(folder), "-o", str(out), "--quiet"]) == 0
    old = np.asarray(Image.open(out / "a.png"))
    Image.fromarray(natural_image(72, 96, seed=7)).save(folder / "a.png")  # another picture, the same name and size
    capsys.readouterr()
    with pytest.warns(UserWarning, match="1 image changed since its mask was made"):
        assert main(["masks", str(folder), "-o", str(out), "--quiet"]) == 0
    assert "1 written, 2 already done" in capsys.readouterr().out
    new = np.asarray(Image.open(out / "a.png"))
    assert not np.array_equal(new, old)
    fresh = tmp_path / "fresh"
    assert main(["masks", str(folder), "-o", str(fresh), "--quiet"]) == 0
    assert np.array_equal(new, np.asarray(Image.open(fresh / "a.png")))  # the new picture's mask
    assert main(["masks", str(folder), "-o", str(out), "--quiet"]) == 0
    assert "0 written, 3 already done" in capsys.readouterr().out  # made once, then skipped again
    manifest = out / "manifest-0-of-1.jsonl"  # a manifest of 0.31.0: no SHA-256, the masks trusted
    manifest.write_text("".join(json.dumps({k: v for k, v in json.loads(x).items() if k != "image_sha256"}) + "\n"
                                for x in manifest.read_text().splitlines()))
    Image.fromarray(natural_image(72, 96, seed=8)).save(folder / "a.png")
    assert main(["masks", str(folder), "-o", str(out), "--quiet"]) == 0
    assert "0 written, 3 already done" in capsys.readouterr().out


def _rerun_reads_no_image(folder, out, monkeypatch, capsys) -> list:
    """A rerun of ``masks`` over ``folder`` into ``out`` (three images, all done) that hashes no image; returns the list
    the later runs' hashed images are appended to."""
    from saicm.cli import main
    from saicm.masks import job

    hashed = []
    real = job._image_digest
    monkeypatch.setattr(job, "_image_digest", lambda p: hashed.append(p) or real(p))
    capsys.readouterr()
    assert main(["masks", str(folder), "-o", str(out), "--quiet"]) == 0
    assert "0 written, 3 already done" in capsys.readouterr().out
    assert hashed == []
    return hashed


def test_a_rerun_over_unchanged_images_does_not_read_them_to_hash_them(folder, tmp_path, capsys, monkeypatch):
    """The manifest's SHA-256 of each image was computed again at every rerun, reading every image's bytes (a rerun
    after a kill over COCO's 118k images: 18 GB read before anything was done). An image whose size, times and inode
    are those its line records is not read; one replaced with its size and modification time kept is."""
    import os

    from saicm.cli import main

    out = tmp_path / "m"
    assert main(["masks", str(folder), "-o", str(out), "--quiet"]) == 0
    hashed = _rerun_reads_no_image(folder, out, monkeypatch, capsys)
    st = os.stat(folder / "a.png")  # another picture of the same size, its modification time kept (cp -p)
    other = tmp_path / "other.png"
    Image.fromarray(natural_image(72, 96, seed=7)).save(other)
    data = other.read_bytes()[: st.st_size].ljust(st.st_size, b"\0")
    (folder / "a.png").write_bytes(data)
    os.utime(folder / "a.png", ns=(st.st_atime_ns, st.st_mtime_ns))
    with pytest.warns(UserWarning, match="1 image changed since its mask was made"):
        main(["masks", str(folder), "-o", str(out), "--quiet"])
    assert [p.name for p in hashed] == ["a.png"]


def test_a_rerun_over_a_folder_of_0_31_does_not_read_its_images_to_hash_them(folder, tmp_path, capsys, monkeypatch):
    """A folder whose manifest lines were written by saicm 0.31.0 (neither ``image_sha256`` nor ``image_stat``) has
    its masks trusted as they are: every rerun by 0.32.0 still read each of its images' bytes to hash them, a hash
    that decided nothing and was never recorded (a COCO folder's 18 GB at every rerun). A new image is hashed."""
    from saicm.cli import main

    out = tmp_path / "m"
    assert main(["masks", str(folder), "-o", str(out), "--quiet"]) == 0
    manifest = out / "manifest-0-of-1.jsonl"
    manifest.write_text("".join(json.dumps({k: v for k, v in json.loads(x).items()
                                            if k not in ("image_sha256", "image_stat")}) + "\n"
                                for x in manifest.read_text().splitlines()))
    hashed = _rerun_reads_no_image(folder, out, monkeypatch, capsys)
    Image.fromarray(natural_image(72, 96, seed=9)).save(folder / "d.png")
    assert main(["masks", str(folder), "-o", str(out), "--quiet"]) == 0
    assert "1 written, 3 already done" in capsys.readouterr().out
    assert [p.name for p in hashed] == ["d.png"]


def test_a_rerun_trusts_a_mask_whose_image_cannot_be_hashed_and_says_nothing_changed(folder, tmp_path, capsys,
                                                                                      monkeypatch):
    """An image whose bytes cannot be hashed on a rerun (a read error) counts as unchanged: its mask is kept, not made
    again as if the picture had been replaced; a new image's hash that fails leaves its mask made all the same (the
    manifest line then names no SHA-256)."""
    import hashlib

    from saicm.cli import main

    out = tmp_path / "m"
    assert main(["masks", str(folder), "-o", str(out), "--quiet"]) == 0
    capsys.readouterr()

    def unreadable(*args, **kwargs):
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(hashlib, "file_digest", unreadable)
    Image.fromarray(natural_image(72, 96, seed=9)).save(folder / "d.png")
    assert main(["masks", str(folder), "-o", str(out), "--quiet"]) == 0
    assert "1 written, 3 already done" in capsys.readouterr().out
    line = [json.loads(x) for x in (out / "manifest-0-of-1.jsonl").read_text().splitlines()][-1]
    assert line["image"] == "d.png" and line["image_sha256"] is None


def test_a_mask_found_without_its_line_gets_one_naming_its_images_sha256(folder, tmp_path, capsys):
    """A mask written by a run killed before its manifest line gets its line from the rerun, with the SHA-256 of the
    image: a later change of that image is then seen (a line without one would trust the mask for good)."""
    from saicm.cli import main

    out = tmp_path / "m"
    assert main(["masks", str(folder), "-o", str(out), "--quiet"]) == 0
    manifest = out / "manifest-0-of-1.jsonl"
    manifest.write_text("".join(x + "\n" for x in manifest.read_text().splitlines()
                                if json.loads(x)["image"] != "a.png"))  # (killed before a.png's line)
    assert main(["masks", str(folder), "-o", str(out), "--quiet"]) == 0
    line = [json.loads(x) for x in manifest.read_text().splitlines()][-1]
    assert line["image"] == "a.png" and line["segments"] is None and len(line["image_sha256"]) == 64
    Image.fromarray(natural_image(72, 96, seed=7)).save(folder / "a.png")
    capsys.readouterr()
    with pytest.warns(UserWarning, match="1 image changed since its mask was made"):
        assert main(["masks", str(folder), "-o", str(out), "--quiet"]) == 0
    assert "1 written, 2 already done" in capsys.readouterr().out


def test_a_manifest_sha256_that_is_no_string_counts_as_none(folder, tmp_path, capsys):
    """A line whose ``image_sha256`` is not a string (hand-edited, another tool's) names no image, as a line of saicm
    0.31.0 (the mask is trusted), rather than a picture no image matches (every mask made again; a list: a
    TypeError traceback)."""
    from saicm.cli import main

    out = tmp_path / "m"
    assert main(["masks", str(folder), "-o", str(out), "--quiet"]) == 0
    manifest = out / "manifest-0-of-1.jsonl"
    for odd in (12345, ["ab"]):
        manifest.write_text("".join(json.dumps({**json.loads(x), "image_sha256": odd}) + "\n"
                                    for x in manifest.read_text().splitlines()))
        capsys.readouterr()
        assert main(["masks", str(folder), "-o", str(out), "--quiet"]) == 0
        assert "0 written, 3 already done" in capsys.readouterr().out


def test_every_manifest_s_sha256_of_an_image_counts(folder, tmp_path, capsys):
    """An image listed in two manifests (shards of two runs, ``--shard 0/2`` then ``--shard 0/1``) was made of the
    picture either names (the last line of each): both count, whichever manifest is read last, and the mask of the
    image as it is now is kept."""
    from saicm.cli import main

    out = tmp_path / "m"
    assert main(["masks", str(folder), "-o", str(out), "--quiet"]) == 0
    lines = [json.loads(x) for x in (out / "manifest-0-of-1.jsonl").read_text().splitlines()]
    now = "".join(json.dumps(x) + "\n" for x in lines)
    stale = "".join(json.dumps({**x, "image_sha256": "0" * 64} if x["image"] == "a.png" else x) + "\n" for x in lines)
    for first, second in ((now, stale), (stale, now)):
        (out / "manifest-0-of-1.jsonl").write_text(first)
        (out / "manifest-0-of-2.jsonl").write_text(second)
        capsys.readouterr()
        assert main(["masks", str(folder), "-o", str(out), "--quiet"]) == 0
        assert "0 written, 3 already done" in capsys.readouterr().out


def test_a_killed_runs_temporary_preview_is_removed_when_the_preview_is_made_again(folder, tmp_path):
    """The hidden ``.NAME.*.part.jpg`` a kill leaves beside a preview being written is removed when the rerun makes
    that preview (one more per kill, else)."""
    from saicm.cli import main

    out = tmp_path / "m"
    assert main(["masks", str(folder), "-o", str(out), "--preview", "--quiet"]) == 0
    (out / "previews" / "sub" / "c.jpg").unlink()
    stale = out / "previews" / "sub" / ".c.jpg.x1y2.part.jpg"  # (as atomic_path names its temporary files)
    stale.write_bytes(b"half a preview")
    assert main(["masks", str(folder), "-o", str(out), "--preview", "--quiet"]) == 0
    assert (out / "previews" / "sub" / "c.jpg").is_file() and not stale.exists()


def test_a_mask_whose_transparent_pixels_are_black_is_read_as_its_grey_levels(tmp_path):
    """The refusal of masks with their on and off in the alpha channel (off transparent white, read as all on)
    refused masks whose transparent pixels are black too, which their grey levels read right, as 0.32.0 read them:
    a grey PNG whose transparent value is 0 (Pillow's save(transparency=0)), white on a transparent black layer."""
    from saicm.masks.job import load_mask

    truth = np.zeros((48, 64), bool)
    truth[10:20, 5:40] = True
    grey = np.where(truth, 255, 0).astype(np.uint8)
    Image.fromarray(grey).save(tmp_path / "trns.png", transparency=0)
    assert np.array_equal(load_mask(tmp_path / "trns.png"), truth)
    Image.fromarray(np.dstack([grey] * 4), "RGBA").save(tmp_path / "layer.png")  # (off: transparent black)
    assert np.array_equal(load_mask(tmp_path / "layer.png"), truth)


def test_looking_for_mask_folders_walks_each_folder_once_not_each_files_parents(tmp_path, monkeypatch):
    """The search for mask folders inside a training or test folder (every `saicm train` and `saicm eval`) tested
    every parent of every file, up to the file system's root: 8.6 s for 100,000 files in 1,000 folders, so minutes
    before an ImageNet-sized run started. Each folder is walked once; a mask folder among them is still found."""
    import pathlib

    from saicm.masks.job import without_mask_folders

    root = tmp_path / "photos"
    (root / "masks").mkdir(parents=True)
    (root / "masks" / "masks.json").write_text('{"kind": "edges"}')
    files = [root / f"c{c}" / f"{i}.jpg" for c in range(20) for i in range(100)] + [root / "masks" / "0.png"]
    calls = []
    real = pathlib.PurePath.is_relative_to
    monkeypatch.setattr(pathlib.PurePath, "is_relative_to", lambda self, *a: calls.append(1) or real(self, *a))
    with pytest.warns(saicm.SaicmWarning, match="1 files of 1 mask folder"):
        kept = without_mask_folders(root, files, "training")
    assert kept == files[:-1]
    assert len(calls) < 2 * len(files), len(calls)  # (about one per file to leave the masks out, not one per parent)
