"""COCO detection metrics through pycocotools (never a hand-written AP).

`evaluate_coco(ground_truth, detections)`: `ground_truth` is a COCO annotation dict (the user's own file for
COCO folders, so crowd regions are ignored as COCO does; built from the records for other formats),
`detections` a list in the COCO results format ({"image_id", "category_id", "bbox": [x, y, w, h], "score"}).
Metrics are fractions in [0, 1]; a size range without any ground truth gives -1, as pycocotools reports it.
"""

import contextlib
import io
from typing import Any

import numpy as np

METRIC_NAMES = ("map", "map50", "map75", "map_small", "map_medium", "map_large")


def records_to_coco(records, class_names: list[str], category_ids: list[int]) -> dict[str, Any]:
    """A COCO annotation dict from DetectionSource records (labels 1..K -> `category_ids`)."""
    images, annotations = [], []
    for r in records:
        images.append({"id": r.image_id, "width": r.width, "height": r.height, "file_name": r.path})
        for (x1, y1, x2, y2), label in zip(r.boxes, r.labels, strict=True):
            w, h = x2 - x1, y2 - y1
            ann = {"id": len(annotations) + 1, "image_id": r.image_id, "category_id": category_ids[label - 1]}
            annotations.append(ann | {"bbox": [x1, y1, w, h], "area": w * h, "iscrowd": 0})
    categories = [{"id": c, "name": n} for c, n in zip(category_ids, class_names[1:], strict=True)]
    return {"images": images, "annotations": annotations, "categories": categories}


def evaluate_coco(
    ground_truth: dict[str, Any], detections: list[dict[str, Any]], image_ids: list[int] | None = None
) -> tuple[dict[str, float], dict[str, float]]:
    """(metrics, per-class AP by category name) of `detections` against `ground_truth` (bbox IoU)."""
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    with contextlib.redirect_stdout(io.StringIO()):  # pycocotools prints its progress
        gt = COCO()
        gt.dataset = {k: ground_truth[k] for k in ("images", "annotations", "categories")}
        gt.createIndex()
        names = {c["id"]: str(c.get("name", c["id"])) for c in ground_truth["categories"]}
        if not detections:
            return dict.fromkeys(METRIC_NAMES, 0.0), dict.fromkeys(names.values(), 0.0)
        dt = gt.loadRes([dict(d) for d in detections])
        ev = COCOeval(gt, dt, iouType="bbox")
        if image_ids is not None:
            ev.params.imgIds = sorted(image_ids)
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    metrics = {name: float(v) for name, v in zip(METRIC_NAMES, ev.stats[:6], strict=True)}
    # precision: (IoU thresholds, recall points, categories, area ranges, max dets); area "all", 100 dets.
    precision = ev.eval["precision"][:, :, :, 0, -1]
    per_class = {}
    for k, cat_id in enumerate(ev.params.catIds):
        p = precision[:, :, k]
        per_class[names[cat_id]] = float(np.mean(p[p > -1])) if (p > -1).any() else -1.0
    return metrics, per_class


def to_coco_results(
    detections: dict, image_id: int, category_ids: list[int], scale: tuple[float, float] = (1.0, 1.0)
) -> list[dict[str, Any]]:
    """One image's {"boxes" xyxy, "scores", "labels"} -> COCO results; `scale` (sx, sy) maps input pixels
    to the file's pixels."""
    sx, sy = scale
    out = []
    for (x1, y1, x2, y2), s, label in zip(
        detections["boxes"].tolist(), detections["scores"].tolist(), detections["labels"].tolist(), strict=True
    ):
        bbox = [x1 * sx, y1 * sy, (x2 - x1) * sx, (y2 - y1) * sy]
        out.append({"image_id": int(image_id), "category_id": category_ids[label - 1], "bbox": bbox, "score": s})
    return out
