"""Confusion-matrix metrics (255 ignored) and multi-scale + flip evaluation."""

import math

import numpy as np
import pytest
import torch

from mobilenetv2 import create_model
from mobilenetv2.segmentation import ConfusionMatrix, predict_logits, segmentation_metrics


def reference_miou(pred: np.ndarray, true: np.ndarray, num_classes: int) -> float:
    """Per-class IoU from set counts, independently of ConfusionMatrix."""
    keep = true != 255
    ious = []
    for c in range(num_classes):
        p, t = (pred == c) & keep, (true == c) & keep
        union = (p | t).sum()
        if union:
            ious.append((p & t).sum() / union)
    return float(np.mean(ious))


def test_perfect_prediction_scores_one():
    target = torch.randint(0, 5, (2, 9, 7))
    target[0, 0, :] = 255
    cm = ConfusionMatrix(5)
    cm.update(target.clamp(max=4), target)
    m = segmentation_metrics(cm)
    assert m["miou"] == 1.0 and m["pixel_accuracy"] == 1.0
    assert m["pixels"] == int((target != 255).sum())


def test_matches_an_independent_count_and_ignores_255():
    rng = np.random.default_rng(0)
    true = rng.integers(0, 4, (3, 20, 20)).astype(np.int64)
    true[:, :3] = 255
    pred = np.where(rng.random(true.shape) < 0.7, np.where(true == 255, 0, true), rng.integers(0, 4, true.shape))
    cm = ConfusionMatrix(4)
    for p, t in zip(pred, true, strict=True):  # accumulated over the set, not averaged per image
        cm.update(torch.from_numpy(p), torch.from_numpy(t))
    assert cm.miou() == pytest.approx(reference_miou(pred, true, 4))
    keep = true != 255
    assert cm.pixel_accuracy() == pytest.approx((pred[keep] == true[keep]).mean())
    # What the model predicts on ignored pixels does not matter.
    cm2 = ConfusionMatrix(4)
    cm2.update(torch.from_numpy(np.where(true == 255, 3, pred)), torch.from_numpy(true))
    assert torch.equal(cm.counts, cm2.counts)


def test_absent_class_is_left_out_of_the_mean():
    cm = ConfusionMatrix(3)
    cm.update(torch.tensor([0, 0, 1, 1]), torch.tensor([0, 0, 1, 0]))
    iou = cm.iou()
    assert math.isnan(iou[2]) and cm.miou() == pytest.approx((2 / 3 + 1 / 2) / 2)
    assert segmentation_metrics(cm, ["bg", "a", "b"])["per_class_iou"]["b"] is None


def test_labels_outside_the_classes_are_an_error():
    with pytest.raises(ValueError, match="outside"):
        ConfusionMatrix(3).update(torch.tensor([0]), torch.tensor([7]))


def test_multi_scale_with_one_scale_is_the_plain_forward():
    model = create_model("deeplabv3_mobilenet_v2", width=0.35, num_classes=4).eval()
    x = torch.randn(2, 3, 48, 40)
    with torch.no_grad():
        assert torch.equal(predict_logits(model, x, scales=(1.0,), flip=False), model(x))
        mf = predict_logits(model, x, scales=(0.5, 0.75, 1.0, 1.25, 1.5, 1.75), flip=True)
        flipped = predict_logits(model, x.flip(-1), scales=(1.0,), flip=True)
    assert mf.shape == (2, 4, 48, 40)
    # The flip average of a mirrored input is the mirror of the flip average.
    assert torch.allclose(flipped.flip(-1), predict_logits(model, x, scales=(1.0,), flip=True), atol=1e-5)
