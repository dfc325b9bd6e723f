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

import contextlib
import io
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


def load_annotations(annotations):
    """A pycocotools ``COCO`` from a path, a COCO-format dict, or an existing ``COCO``."""
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
    if not isinstance(data, dict) or not all(k in data for k in ("images", "annotations", "categories")):
        raise SaicmError("not a COCO annotation file (needs images, annotations, categories)",
                         None if isinstance(annotations, Mapping) else str(annotations))
    coco = COCO()
    coco.dataset = data
    with _quiet():
        coco.createIndex()
    return coco


def category_ids(annotations) -> list[int]:
    """Sorted category ids of an annotation file: class index i of a COCO model is the i-th."""
    return sorted(load_annotations(annotations).getCatIds())


def run_task_model(model: TaskModel, images: Mapping[str, Image.Image], progress: bool = False,
                   desc: str = "") -> dict[str, list[Detection]]:
    """``{name: detections}`` for every image, in the order given."""
    from tqdm import tqdm

    return {name: model(img) for name, img in tqdm(images.items(), desc=desc or model.kind, unit="img",
                                                   disable=True if not progress else None)}


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
                         f"(e.g. {missing[0]!r}; matched by file name)")
    return out



def match_annotated(images: Mapping, coco) -> dict:
    """:func:`match_images` of ``images`` (name → PIL image), each image's size checked against its annotation
    (a resized copy of the dataset gave an AP of 0 in silence): their ids."""
    ids = match_images(list(images), coco)
    for name, img in images.items():
        info = coco.imgs[ids[name]]
        w, h = info.get("width") or img.width, info.get("height") or img.height  # (a size not given: not checked)
        if (img.width, img.height) != (w, h):
            raise SaicmError(f"{name} is {img.width}x{img.height} but the annotations say {w}x{h}: evaluate the "
                             "images the annotations describe")
    return ids

def _results(detections: Mapping[str, list[Detection]], ids: Mapping[str, int], iou_type: str) -> list[dict]:
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

    coco = load_annotations(ground_truth)
    ids = match_images(list(detections), coco)
    kind = coco.dataset.get("info", {}).get("ground_truth", "official")
    scored = set(ids.values())
    out = {"ground_truth": kind, "num_images": len(ids),
           "num_objects": sum(1 for a in coco.dataset["annotations"]
                              if a["image_id"] in scored and not a.get("iscrowd", 0))}
    if kind == "pseudo":
        out["pseudo_min_score"] = coco.dataset["info"].get("min_score")
    idx = draws(len(ids), bootstrap, seed) if bootstrap else None
    boot = out["bootstrap"] = {} if bootstrap else None
    for iou_type in iou_types:
        if iou_type not in PREFIX:
            raise SaicmError(f"unknown COCO iou type {iou_type!r} (use bbox or segm)")
        p = PREFIX[iou_type]
        rows = _results(detections, ids, iou_type)
        if out["num_objects"] == 0 or not rows:
            # no object: AP undefined; no detection at all (loadRes cannot take an empty list): 0
            value = None if out["num_objects"] == 0 else 0.0
            out[f"{p}_ap"] = out[f"{p}_ap50"] = value
            if boot is not None:
                boot[f"{p}_ap"] = boot[f"{p}_ap50"] = [value] * bootstrap
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

    cats = list(COCO_CATEGORY_IDS if category_ids is None else category_ids)
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


def evaluate_task(model: TaskModel, images: Mapping[str, Image.Image], annotations=None,
                  originals: Mapping[str, Image.Image] | None = None, min_score: float = 0.5,
                  progress: bool = False) -> dict:
    """Task metrics of ``model`` on ``images`` (e.g. decoded ones).

    With ``annotations`` (a COCO file): official AP. Without: pseudo AP against
    the model's detections on ``originals`` (same names; default ``images``
    themselves, which is the uncompressed reference).
    """
    dets = run_task_model(model, images, progress)
    if annotations is not None:
        coco = load_annotations(annotations)
        match_annotated(images, coco)
        res = coco_ap(dets, coco, model.iou_types)
    else:
        originals = images if originals is None else originals
        missing = [n for n in images if n not in originals]
        if missing:
            raise SaicmError(f"{len(missing)} images have no original to build pseudo ground truth "
                             f"(e.g. {missing[0]!r})")
        ref = dets if originals is images else run_task_model(model, {n: originals[n] for n in images}, progress)
        gt = pseudo_ground_truth(ref, {n: originals[n].size for n in images}, min_score,
                                 getattr(model, "category_ids", None))
        res = coco_ap(dets, gt, model.iou_types)
    res["task_model"] = model.config()
    return res
