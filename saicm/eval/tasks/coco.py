"""COCO AP / AP50 of task-model detections, against official or pseudo ground truth.

Scores are pycocotools' COCOeval (the numbers every paper reports), on a
0–100 scale: ``box_ap``, ``box_ap50`` and, for instance segmentation,
``mask_ap``, ``mask_ap50``.

Official ground truth is a COCO annotation file; images are matched to its
``file_name`` by base name, or by stem when the extension differs (a decoded
``000000000009.png`` is scored against ``000000000009.jpg``).

A folder without labels is scored against *pseudo* ground truth: the same
task model's confident detections (score ≥ 0.5) on the original images. That
measures how much of the model's own answer survives compression, not how
right the answer is, so results say ``"ground_truth": "pseudo"`` and must not
be compared with figures against official labels.
"""

from __future__ import annotations

import collections
import contextlib
import io
import math
import numbers
import os
from pathlib import Path, PurePosixPath
from typing import Mapping, Sequence

from PIL import Image

from ...errors import SaicmError
from ..bootstrap import coco_replicates, draws
from .base import Detection, TaskModel

#: result key prefix for each pycocotools iouType
PREFIX = {"bbox": "box", "segm": "mask"}


@contextlib.contextmanager
def _quiet():
    """pycocotools prints progress and tables to stdout; keep stdout for our own output."""
    with contextlib.redirect_stdout(io.StringIO()):
        yield


def load_annotations(annotations, masks: bool = False):
    """A pycocotools ``COCO`` from a path, a COCO-format dict, or an existing ``COCO``.

    A path or dict is checked first (:func:`check_dataset`; ``masks``: its segmentations too, for mask AP)."""
    from pycocotools.coco import COCO

    if isinstance(annotations, COCO):
        return annotations
    if isinstance(annotations, Mapping):
        data = dict(annotations)
    else:
        import json

        from ..._fs import read_input
        from ...codec.container import not_a

        path = Path(annotations)
        raw = read_input(path)  # ("no such file", "is a folder, not a file", as every input is said)
        try:
            data = json.loads(raw)  # (JSON is UTF-8 in any locale; read_text decoded it in the locale's)
        except ValueError:  # (not UTF-8, or not JSON: the JSON decoder's "Expecting value: line 1 column 1")
            raise SaicmError(not_a("a COCO annotation file (JSON)", raw, advise=False)
                             or "not a COCO annotation file (not JSON)", str(path)) from None
        except RecursionError:  # (arrays nested thousands deep: the decoder's recursion limit, a traceback)
            raise SaicmError("not a COCO annotation file (JSON nested too deep)", str(path)) from None
    where = None if isinstance(annotations, Mapping) else str(annotations)
    if not isinstance(data, dict) or not all(k in data for k in ("images", "annotations", "categories")):
        raise SaicmError("not a COCO annotation file (needs images, annotations, categories)", where)
    check_dataset(data, where, masks=masks)
    coco = COCO()
    coco.dataset = data
    with _quiet():
        coco.createIndex()
    return coco


def _whole(v) -> bool:  # (NumPy's too: pseudo ground truth is made of a detector's numbers)
    return isinstance(v, numbers.Integral) and not isinstance(v, bool)


def _short(v) -> str:
    """A value of the file as a message shows it (a stranger's may be megabytes long)."""
    r = repr(v)
    return r if len(r) <= 60 else r[:57] + "..."


def _finite(v) -> bool:
    return isinstance(v, numbers.Real) and not isinstance(v, bool) and math.isfinite(v)


#: the longest outline (sum of its edges' longer sides) a segmentation may have, in widths plus heights of its
#: image: pycocotools' rasteriser holds ~40 bytes per pixel of outline (a crafted zigzag of a million points across
#: the image wanted hundreds of GB); people's outlines stay within a few
MAX_OUTLINE = 1000


def rle_string_counts(s: str) -> list[int] | None:
    """The run lengths of a compressed COCO RLE string (pycocotools' ``rleFrString``), or None when it is not one:
    a character out of the alphabet, a number cut at the end (the C decoder read past the string) or longer than
    its 64 bits, a negative run."""
    counts: list[int] = []
    p, n = 0, len(s)
    while p < n:
        x = k = 0
        more = True
        while more:
            if p >= n or k >= 7:
                return None
            c = ord(s[p]) - 48
            if not 0 <= c < 64:
                return None
            x |= (c & 0x1F) << (5 * k)
            more = bool(c & 0x20)
            p += 1
            k += 1
            if not more and c & 0x10:
                x |= -1 << (5 * k)
        if len(counts) > 2:
            x += counts[-2]
        if x < 0:
            return None
        counts.append(x)
    return counts


def _segmentation_problem(seg, w: int, h: int) -> str | None:
    """What makes ``seg`` (an annotation's segmentation on a w×h image) unusable, or None."""
    if isinstance(seg, dict):  # RLE
        size, counts = seg.get("size"), seg.get("counts")
        if not (isinstance(size, list) and len(size) == 2 and all(map(_whole, size))):
            return "an RLE segmentation without a size [height, width]"
        if size != [h, w]:
            return f"an RLE segmentation of size {size[1]}x{size[0]} on a {w}x{h} image"
        if isinstance(counts, str):
            counts = rle_string_counts(counts)
            if counts is None:
                return "an RLE segmentation whose counts string is not a compressed RLE"
        elif not (isinstance(counts, list) and all(_whole(c) and c >= 0 for c in counts)):
            return "an RLE segmentation whose counts are not a list of run lengths (whole numbers, 0 or more)"
        if sum(counts) != w * h:
            return f"an RLE segmentation whose runs cover {sum(counts)} pixels, not the image's {w * h}"
        return None
    if not isinstance(seg, list) or not seg:
        return "no segmentation (a list of polygons or an RLE)"
    import numpy as np

    outline = 0.0
    for poly in seg:
        try:  # (as pycocotools reads it)
            xy = np.asarray(poly, dtype=np.float64) if isinstance(poly, list) else None
        except (TypeError, ValueError, OverflowError):
            xy = None
        if xy is None or xy.ndim != 1 or not np.isfinite(xy).all():
            return "a polygon that is not a list of finite numbers"
        if len(xy) < 6 or len(xy) % 2:
            return f"a polygon of {len(xy)} numbers (x, y pairs of 3 points or more)"
        xs, ys = xy[0::2], xy[1::2]
        if xs.min() < -w or xs.max() > 2 * w or ys.min() < -h or ys.max() > 2 * h:
            return (f"a polygon reaching ({xs[np.abs(xs).argmax()]:g}, {ys[np.abs(ys).argmax()]:g}), far outside "
                    f"its {w}x{h} image")
        outline += float(np.maximum(np.abs(xs - np.roll(xs, 1)), np.abs(ys - np.roll(ys, 1))).sum())
    if outline > MAX_OUTLINE * (w + h):
        return f"polygons of {outline:.0f} pixels of outline on a {w}x{h} image (more than {MAX_OUTLINE} times around it)"
    return None


def check_dataset(data: dict, where: str | None = None, *, scored: bool = True, masks: bool = False) -> None:
    """Refuse, in one line naming the entry, a COCO dataset that pycocotools would stop on with a traceback (a key
    missing, a value of the wrong type), crash on (a polygon of NaN or huge coordinates, an RLE claiming a huge
    size: a segmentation fault) or score wrong in silence (a box of NaN, infinite or negative size).

    ``scored``: what COCOeval reads is checked (each annotation's bbox, area, iscrowd); ``masks``: each
    segmentation of an annotated image too (against the image's width and height, then required)."""

    def bad(what: str):
        raise SaicmError(f"not a usable COCO annotation file: {what}", where)

    if not isinstance(data, dict):
        bad("not a JSON object")
    for key in ("images", "annotations", "categories"):
        if key in data and not isinstance(data[key], list):
            bad(f"{key!r} is not a list")
    sizes: dict[int, tuple] = {}
    for i, im in enumerate(data.get("images") or ()):
        if not isinstance(im, dict) or not _whole(im.get("id")):
            bad(f"images[{i}] has no id (a whole number)")
        name = f"images[{i}] (id {im['id']})"
        if im["id"] in sizes:
            bad(f"{name}: its id is given twice")
        if not (isinstance(im.get("file_name"), str) or _whole(im.get("file_name"))):  # (a number: matched as text)
            bad(f"{name} has no file_name")
        for k in ("width", "height"):
            v = im.get(k)
            if v is None and masks:
                bad(f"{name} has no {k} (masks need it)")
            if v is not None and not (_whole(v) and v > 0):
                bad(f"{name}: {k} {_short(v)} is not a whole number above 0")
        sizes[im["id"]] = (im.get("width"), im.get("height"))
    for i, c in enumerate(data.get("categories") or ()):
        if not isinstance(c, dict) or not _whole(c.get("id")):
            bad(f"categories[{i}] has no id (a whole number)")
    for i, a in enumerate(data.get("annotations") or ()):
        if not isinstance(a, dict) or not _whole(a.get("id")):
            bad(f"annotations[{i}] has no id (a whole number)")
        name = f"annotations[{i}] (id {a['id']})"
        for k in ("image_id", "category_id"):
            if not _whole(a.get(k)):
                bad(f"{name} has no {k} (a whole number)")
        w, h = sizes.get(a["image_id"], (None, None))
        if scored:
            box = a.get("bbox")
            if not (isinstance(box, list) and len(box) == 4 and all(map(_finite, box))):
                bad(f"{name}: bbox {_short(box)} is not four finite numbers [x, y, width, height]")
            if box[2] < 0 or box[3] < 0:
                bad(f"{name}: bbox {_short(box)} has a negative width or height")
            if w and h and (box[0] < -w or box[0] + box[2] > 2 * w or box[1] < -h or box[1] + box[3] > 2 * h):
                bad(f"{name}: bbox {_short(box)} is far outside its {w}x{h} image")
            if not (_finite(a.get("area")) and a["area"] >= 0):
                bad(f"{name} has no area (a number, 0 or more: COCOeval needs it)")
            if a.get("iscrowd") not in (0, 1):  # (False and True are 0 and 1)
                bad(f"{name}: iscrowd {_short(a.get('iscrowd'))} is not 0 or 1 (COCOeval needs it)")
        if masks and a["image_id"] in sizes:  # (an annotation of no listed image is never drawn)
            why = _segmentation_problem(a.get("segmentation"), w, h)
            if why:
                bad(f"{name} has {why}")


def category_ids(annotations) -> list[int]:
    """Sorted category ids of an annotation file: class index i of a COCO model is the i-th."""
    return sorted(load_annotations(annotations).getCatIds())


def coco_class_ids(annotations) -> list[int | None] | None:
    """The annotations' category id of each of the 80 COCO classes (class index order), matched by name (case and
    spaces aside; None for a class they do not have), or None when they are not COCO's classes: a category with
    objects annotated whose name is not a COCO class's, or a name given to two of them. (A category without objects,
    as the "objects" parent category some tools export, is not held against them.)"""
    from .base import COCO_CLASS_NAMES

    coco = load_annotations(annotations)
    used = {a["category_id"] for a in coco.dataset["annotations"]}
    index = {n: i for i, n in enumerate(COCO_CLASS_NAMES)}
    out: list[int | None] = [None] * len(COCO_CLASS_NAMES)
    for c in coco.dataset["categories"]:
        name = c.get("name")
        i = index.get(" ".join(name.lower().split())) if isinstance(name, str) else None
        if i is None or out[i] is not None:
            if c["id"] in used or (i is not None and out[i] in used):
                return None
            continue
        out[i] = c["id"]
    return out if any(c is not None for c in out) else None


def run_task_model(model: TaskModel, images: Mapping[str, Image.Image], progress: bool = False,
                   desc: str = "") -> dict[str, list[Detection]]:
    """``{name: detections}`` for every image, in the order given."""
    from ..._progress import progress_bar

    return {name: model(img) for name, img in progress_bar(images.items(), desc=desc or model.kind, unit="img",
                                                           progress=progress)}


def file_name(fn) -> str:
    """An annotation's ``file_name`` as the file system's names are read in this locale (the name's UTF-8 bytes,
    decoded as ``os.listdir`` decodes them), so that a non-ASCII name matches its file in any locale."""
    fn = str(fn)
    try:
        return os.fsdecode(fn.encode("utf-8", "surrogateescape"))
    except UnicodeError:  # (a lone surrogate a JSON escape wrote: no bytes stand for it)
        return fn


def match_images(names: Sequence[str], coco) -> dict[str, int]:
    """Image name → annotation image id; SaicmError if any is missing.

    Tried in order: the whole name, its base name, its stem (when unique), so
    ``sub/x.png`` finds ``x.jpg``.
    """
    full, base, stem = {}, {}, {}
    for img in coco.dataset["images"]:
        fn = file_name(img["file_name"]).replace("\\", "/")
        for table, key in ((full, fn), (base, PurePosixPath(fn).name), (stem, PurePosixPath(fn).stem)):
            table[key] = None if key in table else img["id"]  # None: ambiguous
    out, missing = {}, []
    for name in names:
        n = str(name).replace("\\", "/")
        for table, key in ((full, n), (base, PurePosixPath(n).name), (stem, PurePosixPath(n).stem)):
            if table.get(key) is not None:
                out[name] = table[key]
                break
        else:
            missing.append(name)
    if missing:
        raise SaicmError(f"{len(missing)} of {len(names)} images are not in the annotations "
                         f"(e.g. '{missing[0]}'; matched by file name)")  # (not repr(): see cmd_report)
    first: dict[int, str] = {}
    for name, img_id in out.items():  # (two images scored as one: the second's detections were false positives)
        if img_id in first:
            raise SaicmError(f"'{first[img_id]}' and '{name}' both match the annotations' image "
                             f"{file_name(coco.imgs[img_id]['file_name'])!r}: keep one of them in the folder, or name "
                             "them in the annotations as they are named in the folder (sub-folders included)")
        first[img_id] = name
    return out



def match_annotated(images: Mapping, coco) -> dict:
    """:func:`match_images` of ``images`` (name → PIL image), each image's size checked against its annotation
    (a resized copy of the dataset gave an AP of 0 in silence): their ids."""
    ids = match_images(list(images), coco)
    for name, img in images.items():
        info = coco.imgs[ids[name]]
        w, h = info.get("width") or img.width, info.get("height") or img.height  # (a size not given: not checked)
        if (img.width, img.height) != (w, h):
            turned = (" (turned by its EXIF orientation, as saicm reads every image: annotations of the picture as "
                      "stored do not fit it)" if (img.height, img.width) == (w, h) else "")
            raise SaicmError(f"{name} is {img.width}x{img.height}{turned} but the annotations say {w}x{h}: evaluate "
                             "the images the annotations describe")
    return ids


def exif_turned(folder, names) -> list[str]:
    """The images of ``names`` (as :func:`saicm.eval.rd.load_rgb_folder` names those of ``folder``) that an EXIF
    orientation turns or mirrors when saicm reads them: annotations of the picture as stored (by tools that ignore the
    tag) do not describe them, and a turn by 180° keeps the size the size check compares."""
    out = []
    for name in names:
        try:
            with Image.open(Path(folder) / name) as img:
                orientation = img.getexif().get(0x0112)
        except Exception:  # (a broken EXIF block: read as stored)
            continue
        if orientation in range(2, 9):
            out.append(name)
    return out

def _results(detections: Mapping[str, list[Detection]], ids: Mapping[str, int], iou_type: str,
             coco=None) -> list[dict]:
    rows = []
    for name, dets in detections.items():
        for d in dets:
            x1, y1, x2, y2 = d.box
            row = {"image_id": ids[name], "category_id": int(d.category_id), "score": float(d.score)}
            if iou_type == "bbox":
                row["bbox"] = [x1, y1, x2 - x1, y2 - y1]
            else:
                if d.mask is None:
                    raise SaicmError("mask AP needs a segmentation task model (these detections have no masks)")
                info = coco.imgs.get(ids[name], {}) if coco is not None else {}
                want = [info.get("height"), info.get("width")]
                size = d.mask.get("size") if isinstance(d.mask, dict) else None
                if None not in want and size is not None and list(size) != want:
                    # (pycocotools scores a mask of another size an IoU of 0 in silence: a mask AP of 0)
                    raise SaicmError(f"a mask of {name} is {size[1]}x{size[0]} but the image is {want[1]}x{want[0]}: "
                                     "masks must be at the original image's size (the letterbox or resize undone)")
                row["segmentation"] = d.mask  # only the mask: loadRes would overwrite it from a bbox
            rows.append(row)
    return rows


def coco_ap(detections: Mapping[str, list[Detection]], ground_truth, iou_types: Sequence[str] = ("bbox",),
            bootstrap: int = 0, seed: int = 0) -> dict:
    """AP and AP50 (0–100) of ``{image name: detections}`` for each iouType ("bbox", "segm").

    ``ground_truth``: an annotation file path, a COCO-format dict (as from
    :func:`pseudo_ground_truth`, which marks itself pseudo) or a ``COCO``.
    Only the given images are scored. A metric is None when the ground truth
    of these images has no object at all (AP undefined).
    ``bootstrap``: also AP and AP50 on that many draws of the images with
    replacement (:mod:`saicm.eval.bootstrap`), under ``out["bootstrap"]``.
    """
    from pycocotools.cocoeval import COCOeval

    coco = load_annotations(ground_truth, masks="segm" in iou_types)
    ids = match_images(list(detections), coco)
    kind = coco.dataset.get("info", {}).get("ground_truth", "official")
    scored = set(ids.values())
    out = {"ground_truth": kind, "num_images": len(ids),
           "num_objects": sum(1 for a in coco.dataset["annotations"]
                              if a["image_id"] in scored and not a.get("iscrowd", 0))}
    if kind == "pseudo":
        out["pseudo_min_score"] = coco.dataset["info"].get("min_score")
    idx = draws(len(ids), bootstrap, seed) if bootstrap else None
    if bootstrap:  # objects per sorted image name, for draws without a detection
        import numpy as np

        count = collections.Counter(a["image_id"] for a in coco.dataset["annotations"] if not a.get("iscrowd", 0))
        per_image = np.array([count[ids[n]] for n in sorted(ids)])
    boot = out["bootstrap"] = {} if bootstrap else None
    for iou_type in iou_types:
        if iou_type not in PREFIX:
            raise SaicmError(f"unknown COCO iou type {iou_type!r} (use bbox or segm)")
        p = PREFIX[iou_type]
        rows = _results(detections, ids, iou_type, coco)
        if out["num_objects"] == 0 or not rows:
            # no object: AP undefined; no detection at all (loadRes cannot take an empty list): 0
            value = None if out["num_objects"] == 0 else 0.0
            out[f"{p}_ap"] = out[f"{p}_ap50"] = value
            if boot is not None:  # a draw of images without objects: undefined there too, as pycocotools says
                boot[f"{p}_ap"] = boot[f"{p}_ap50"] = [None if n == 0 else 0.0 for n in per_image[idx].sum(axis=1)]
            continue
        with _quiet():
            ev = COCOeval(coco, coco.loadRes(rows), iou_type)
            ev.params.imgIds = sorted(set(ids.values()))
            ev.evaluate()
            ev.accumulate()
            ev.summarize()
        ap, ap50 = ev.stats[0], ev.stats[1]
        out[f"{p}_ap"] = None if ap < 0 else round(100.0 * float(ap), 3)
        out[f"{p}_ap50"] = None if ap50 < 0 else round(100.0 * float(ap50), 3)
        if boot is not None:
            pos = {img_id: j for j, img_id in enumerate(ev.params.imgIds)}
            reps = coco_replicates(ev, [pos[ids[n]] for n in sorted(ids)], idx)
            boot[f"{p}_ap"], boot[f"{p}_ap50"] = reps["ap"], reps["ap50"]
    return out


def pseudo_ground_truth(detections: Mapping[str, list[Detection]], image_sizes: Mapping[str, tuple[int, int]],
                        min_score: float = 0.5, category_ids: Sequence[int] | None = None) -> dict:
    """COCO-format ground truth from detections on the original images (score ≥ ``min_score``).

    ``image_sizes``: ``{name: (width, height)}``. Masks become RLE
    segmentations, so the same dict scores both boxes and masks. The dict is
    marked ``info.ground_truth = "pseudo"`` and :func:`coco_ap` reports it.
    """
    from .base import COCO_CATEGORY_IDS

    # (None: a COCO class a name-matched model does not score, whose detections it drops)
    cats = [c for c in (COCO_CATEGORY_IDS if category_ids is None else category_ids) if c is not None]
    images, anns = [], []
    for i, name in enumerate(detections, start=1):
        if name not in image_sizes:
            raise SaicmError(f"no image size for {name!r}")
        w, h = image_sizes[name]
        images.append({"id": i, "file_name": str(name), "width": int(w), "height": int(h)})
        for d in detections[name]:
            if d.score < min_score:
                continue
            x1, y1, x2, y2 = d.box
            ann = {"id": len(anns) + 1, "image_id": i, "category_id": int(d.category_id),
                   "bbox": [x1, y1, x2 - x1, y2 - y1], "area": float((x2 - x1) * (y2 - y1)), "iscrowd": 0}
            if d.mask is not None:
                from pycocotools import mask as mask_utils

                ann["segmentation"] = d.mask
                ann["area"] = float(mask_utils.area(d.mask))
            anns.append(ann)
            if int(d.category_id) not in cats:
                cats.append(int(d.category_id))
    return {"info": {"description": "pseudo ground truth: task-model detections on the original images",
                     "ground_truth": "pseudo", "min_score": min_score},
            "images": images, "annotations": anns,
            "categories": [{"id": c, "name": str(c)} for c in sorted(cats)]}


def check_class_names(model: TaskModel, annotations) -> None:
    """Refuse a model of the 80 COCO classes whose category ids are not the ones the annotations give those classes
    by name: a model loaded with the default (COCO's) ids, or by position, and scored against a file numbering
    COCO's classes otherwise (1..80, alphabetical) was scored in silence against the wrong classes (YOLOX-nano on
    16 COCO128 images: 10.7 AP instead of 44.4). ``saicm eval`` matches them by name (:func:`coco_class_ids`)."""
    from .base import COCO_CLASS_NAMES

    ids = getattr(model, "category_ids", None)
    if ids is None or len(ids) != len(COCO_CLASS_NAMES):
        return
    named = coco_class_ids(annotations)
    wrong = [i for i, c in enumerate(named or ()) if c is not None and ids[i] != c]
    if wrong:
        i = wrong[0]
        raise SaicmError(f"the {getattr(model, 'kind', '') or 'task'} model scores COCO class {i} "
                         f"({COCO_CLASS_NAMES[i]!r}) as category {ids[i]}, but the annotations call "
                         f"{COCO_CLASS_NAMES[i]!r} category {named[i]} ({len(wrong)} classes differ): load it with "
                         "coco_class_ids=saicm.eval.tasks.coco_class_ids(annotations)")


def evaluate_task(model: TaskModel, images: Mapping[str, Image.Image], annotations=None,
                  originals: Mapping[str, Image.Image] | None = None, min_score: float = 0.5,
                  progress: bool = False) -> dict:
    """Task metrics of ``model`` on ``images`` (e.g. decoded ones).

    With ``annotations`` (a COCO file): official AP. Without: pseudo AP against
    the model's detections on ``originals`` (same names; default ``images``
    themselves, which is the uncompressed reference).
    """
    if annotations is not None:
        coco = load_annotations(annotations, masks="segm" in model.iou_types)
        match_annotated(images, coco)
        check_class_names(model, coco)
        res = coco_ap(run_task_model(model, images, progress), coco, model.iou_types)
    else:
        originals = images if originals is None else originals
        missing = [n for n in images if n not in originals]
        if missing:
            raise SaicmError(f"{len(missing)} images have no original to build pseudo ground truth "
                             f"(e.g. {missing[0]!r})")
        dets = run_task_model(model, images, progress)
        ref = dets if originals is images else run_task_model(model, {n: originals[n] for n in images}, progress)
        gt = pseudo_ground_truth(ref, {n: originals[n].size for n in images}, min_score,
                                 getattr(model, "category_ids", None))
        res = coco_ap(dets, gt, model.iou_types)
    res["task_model"] = model.config()
    return res
