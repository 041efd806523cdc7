"""The SSD loss, the post-processing and the pycocotools metrics."""

import torch

from mobilenetv2 import create_model
from mobilenetv2.detection.anchors import AnchorSpec, grid_anchors
from mobilenetv2.detection.coco_eval import evaluate_coco
from mobilenetv2.detection.coder import decode
from mobilenetv2.detection.loss import ssd_loss
from mobilenetv2.detection.postprocess import TF, _nms_top_k, _one_image

TARGETS = [
    {"boxes": torch.tensor([[8.0, 8, 40, 48], [36, 30, 60, 60]]), "labels": torch.tensor([1, 2])},
    {"boxes": torch.zeros(0, 4), "labels": torch.zeros(0, dtype=torch.long)},
]


def _overfit(style: str) -> list[float]:
    torch.manual_seed(0)
    model = create_model("ssdlite_mobilenet_v2", width=0.35, num_classes=3, head_style=style).train()
    x = torch.rand(2, 3, 64, 64)
    opt = torch.optim.Adam(model.parameters(), 1e-3)
    losses = []
    for _ in range(12):
        loss, parts = ssd_loss(*model(x), TARGETS, (64, 64), style)
        assert torch.isfinite(loss) and parts["matches"] >= 2
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return losses


def test_tf_loss_finite_and_decreasing():
    losses = _overfit("tf")  # sigmoid over every slot of the mined anchors: falls more slowly than softmax
    assert losses[-1] < 0.85 * losses[0]


def test_torchvision_loss_finite_and_decreasing():
    losses = _overfit("torchvision")
    assert losses[-1] < 0.7 * losses[0]


def test_postprocess_equals_nms_over_every_anchor():
    torch.manual_seed(0)
    anchors = grid_anchors(AnchorSpec(), [(19, 19), (10, 10), (5, 5), (3, 3), (2, 2), (1, 1)], (300, 300))
    boxes = decode(torch.randn(1917, 4), anchors).clamp(0, 1) * 300
    scores = torch.rand(1917, 6) ** 3
    fast = _one_image(boxes, scores, TF)
    full, _ = _nms_top_k(boxes, scores, 1917, TF)
    assert torch.equal(fast["boxes"], full["boxes"]) and torch.equal(fast["labels"], full["labels"])
    assert len(fast["boxes"]) == 100


def _gt() -> dict:
    images = [{"id": i, "width": 100, "height": 100, "file_name": f"{i}.png"} for i in (1, 2, 5)]
    anns = [
        {"id": 1, "image_id": 1, "category_id": 3, "bbox": [10, 10, 30, 40], "area": 1200, "iscrowd": 0},
        {"id": 2, "image_id": 2, "category_id": 7, "bbox": [50, 20, 20, 20], "area": 400, "iscrowd": 0},
        {"id": 3, "image_id": 2, "category_id": 3, "bbox": [0, 0, 60, 90], "area": 5400, "iscrowd": 0},
    ]
    return {"images": images, "annotations": anns, "categories": [{"id": 3, "name": "a"}, {"id": 7, "name": "b"}]}


def test_pycocotools_map_is_one_on_perfect_detections():
    gt = _gt()
    keys = ("image_id", "category_id", "bbox")
    dets = [{k: a[k] for k in keys} | {"score": 0.9} for a in gt["annotations"]]
    metrics, per_class = evaluate_coco(gt, dets)
    assert metrics["map"] == 1.0 and metrics["map50"] == 1.0 and metrics["map75"] == 1.0
    assert per_class == {"a": 1.0, "b": 1.0}
    metrics, _ = evaluate_coco(gt, [])
    assert metrics["map"] == 0.0
