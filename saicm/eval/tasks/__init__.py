"""Task models and task metrics: what a recogniser still sees on decoded images.

::

    from saicm.eval import tasks

    model = tasks.load_task_model("picodet:models/picodet_s_416_coco.onnx",
                                  category_ids=tasks.category_ids("instances.json"))
    dets = tasks.run_task_model(model, images)             # {name: [Detection, ...]}
    tasks.coco_ap(dets, "instances.json")                  # {"box_ap": 41.9, "box_ap50": 58.3, ...}
    tasks.evaluate_task(model, decoded, originals=images)  # pseudo ground truth (no labels)

    faces = tasks.load_face_detector("haar")
    tasks.face_retention(faces(original), faces(decoded))  # 0..1, lower = more private

Modules: ``base`` (Detection, registry, ONNX session, NMS, letterbox),
``detectors`` (picodet, yolox, yolov8, yolov8-seg), ``coco`` (AP, pseudo
ground truth), ``faces`` (face detectors, retention). onnxruntime,
pycocotools and OpenCV are imported only when used.
"""

from .base import (COCO_CATEGORY_IDS, COCO_CLASS_NAMES, COCO_NAME_BY_ID, TASK_MODELS, Detection, Letterbox, TaskModel,
                   letterbox, load_task_model, nms, register_task_model)
from .coco import (category_ids, coco_ap, coco_class_ids, evaluate_task, load_annotations, match_annotated,
                   match_images, pseudo_ground_truth, run_task_model)
from .detectors import PicoDet, YOLOv8, YOLOv8Seg, YOLOX  # registers the kinds
from .faces import FACE_DETECTORS, box_iou, count_retained, face_retention, load_face_detector
from .sweeps import TASKS, DetectionTask, FaceTask, detection_drawer, make_task

__all__ = [
    "COCO_CATEGORY_IDS", "COCO_CLASS_NAMES", "COCO_NAME_BY_ID", "TASK_MODELS", "FACE_DETECTORS", "Detection",
    "Letterbox", "TaskModel",
    "PicoDet", "YOLOX", "YOLOv8", "YOLOv8Seg",
    "box_iou", "category_ids", "coco_ap", "coco_class_ids", "count_retained", "evaluate_task", "face_retention",
    "letterbox",
    "load_annotations", "load_face_detector", "load_task_model", "match_annotated", "match_images", "nms",
    "pseudo_ground_truth",
    "register_task_model", "run_task_model",
    "TASKS", "DetectionTask", "FaceTask", "detection_drawer", "make_task",
]
