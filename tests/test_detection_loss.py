"""The SSD loss, the post-processing and the pycocotools metrics."""

import pytest
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
    boxes = decode(torch.randn(1917, 4), anchors) * 300
    scores = torch.rand(1917, 6) ** 3
    size = torch.tensor([300.0, 300, 300, 300])
    fast = _one_image(boxes, scores, TF, size)
    full, _ = _nms_top_k(boxes, scores, 1917, TF, size)
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
    assert per_class == pytest.approx({"a": 1.0, "b": 1.0})
    metrics, _ = evaluate_coco(gt, [])
    assert metrics["map"] == 0.0


def test_tf_targets_include_the_background_slot():
    """Sigmoid over every slot: a negative anchor's target is 1 in slot 0, a positive's 1 in its class slot."""
    anchors = torch.tensor([[0.0, 0.0, 0.5, 0.5], [0.5, 0.5, 1.0, 1.0]])
    target = [{"boxes": torch.tensor([[0.0, 0.0, 32.0, 32.0]]), "labels": torch.tensor([2])}]
    right = torch.full((1, 2, 3), -20.0)
    right[0, 0, 2] = right[0, 1, 0] = 20.0  # anchor 0 says class 2, anchor 1 says background
    codes = torch.zeros(1, 2, 4)
    _, parts = ssd_loss(codes, right, anchors, target, (64, 64))
    assert parts["loss_cls"] < 1e-6 and parts["matches"] == 1
    wrong = right.clone()
    wrong[0, 1, 0] = -20.0  # background slot off on the negative: penalised
    _, parts = ssd_loss(codes, wrong, anchors, target, (64, 64))
    assert parts["loss_cls"] > 10


def test_tf_mining_keeps_every_positive_and_three_negatives_per_positive():
    from mobilenetv2.detection.loss import _tf_mining

    anchors = grid_anchors(AnchorSpec(), [(4, 4), (2, 2), (1, 1), (1, 1), (1, 1), (1, 1)], (64, 64))
    codes = torch.zeros(anchors.shape[0], 4)
    cls = torch.rand(anchors.shape[0])
    positive = torch.zeros(anchors.shape[0], dtype=torch.bool)
    positive[[0, 5]] = True
    cls[positive] = 0.0  # lowest loss: still kept
    kept = _tf_mining(codes, anchors, cls, positive)
    assert positive[kept].sum() == 2 and (~positive[kept]).sum() == 6
    negatives = kept[~positive[kept]]
    assert cls[negatives].min() >= cls[~positive].topk(6).values.min()  # the hardest ones
    none = _tf_mining(codes, anchors, cls, torch.zeros_like(positive))
    assert len(none) == 3  # at least 3 negatives on an image without objects


@pytest.mark.slow
def test_tf_overfit_lifts_matched_class_scores_above_background():
    """One batch, a few dozen steps: every matched anchor's own class outscores the background slot, and
    the post-processed score is that class's sigmoid (slot 0 excluded)."""
    torch.manual_seed(0)
    model = create_model("ssdlite_mobilenet_v2", width=0.35, num_classes=3).train()
    x = torch.rand(2, 3, 64, 64)
    opt = torch.optim.Adam(model.parameters(), 3e-3)
    for _ in range(40):
        loss, _ = ssd_loss(*model(x), TARGETS, (64, 64))
        opt.zero_grad()
        loss.backward()
        opt.step()
    from mobilenetv2.detection.matcher import match

    out = model(x)
    probs = torch.sigmoid(out.class_logits[0])
    matches = match(TARGETS[0]["boxes"] / 64, out.anchors)
    pos = matches >= 0
    labels = TARGETS[0]["labels"][matches[pos]]
    own = probs[pos].gather(1, labels[:, None]).squeeze(1)
    assert (own > probs[pos, 0]).all() and (own > 0.5).all()
