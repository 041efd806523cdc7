"""SSDLite-MobileNetV2: the TF OD API's anchors, coder, matcher and network shape."""

import pytest
import torch

from mobilenetv2 import create_model
from mobilenetv2.detection.anchors import AnchorSpec, boxes_per_location, grid_anchors
from mobilenetv2.detection.coder import decode, encode
from mobilenetv2.detection.matcher import match
from mobilenetv2.registry import task_of

TF_MAPS_300 = [(19, 19), (10, 10), (5, 5), (3, 3), (2, 2), (1, 1)]


def test_tf_anchor_count_at_300():
    assert boxes_per_location(AnchorSpec()) == [3, 6, 6, 6, 6, 6]
    assert grid_anchors(AnchorSpec(), TF_MAPS_300, (300, 300)).shape == (1917, 4)
    model = create_model("ssdlite_mobilenet_v2", width=0.35, num_classes=3).eval()
    with torch.no_grad():
        assert model.forward_raw(torch.zeros(1, 3, 300, 300)).anchors.shape == (1917, 4)
        assert model.forward_raw(torch.zeros(1, 3, 320, 320)).anchors.shape == (2034, 4)  # the paper's 320


def test_first_anchors_are_tf_lowest_layer_boxes():
    a = grid_anchors(AnchorSpec(), TF_MAPS_300, (300, 300))
    # (0.1, 1) centered on the first cell (0.5 / 19), then (0.2, 2) and (0.2, 0.5).
    c = 0.5 / 19
    assert torch.allclose(a[0], torch.tensor([c - 0.05, c - 0.05, c + 0.05, c + 0.05]), atol=1e-6)
    w, h = 0.2 * 2**0.5, 0.2 / 2**0.5
    assert torch.allclose(a[1], torch.tensor([c - w / 2, c - h / 2, c + w / 2, c + h / 2]), atol=1e-6)


def test_coder_round_trip():
    anchors = grid_anchors(AnchorSpec(), TF_MAPS_300, (300, 300))
    boxes = anchors + torch.rand_like(anchors) * 0.05
    boxes[:, 2:] = torch.maximum(boxes[:, 2:], boxes[:, :2] + 0.01)
    codes = encode(boxes, anchors)
    assert torch.allclose(decode(codes, anchors), boxes, atol=1e-5)
    assert torch.allclose(encode(anchors, anchors), torch.zeros_like(anchors), atol=1e-4)


def test_matcher_threshold_and_forced_match():
    anchors = torch.tensor([[0.0, 0.0, 10, 10], [20, 20, 30, 30], [0, 0, 11, 11]])
    gt = torch.tensor([[0.0, 0.0, 10, 10], [21, 21, 50, 50]])  # the second overlaps anchor 1 by IoU < 0.5
    m = match(gt, anchors)
    assert m.tolist() == [0, 1, 0]
    assert match(torch.zeros(0, 4), anchors).tolist() == [-1, -1, -1]


def test_registered_as_a_detector_with_tap_contract():
    model = create_model("ssdlite_mobilenet_v2", width=0.35, num_classes=5)
    assert task_of("ssdlite_mobilenet_v2") == "detection"
    assert model.taps == ("blocks.13.expansion", "head")
    assert model.meta.task == "detection"


def test_paper_head_size_at_81_classes():
    model = create_model("ssdlite_mobilenet_v2", num_classes=81)
    head = sum(p.numel() for n, p in model.named_parameters() if not n.startswith("backbone."))
    total = sum(p.numel() for p in model.parameters())
    assert round(head / 1e6, 1) == 2.1  # Table 5
    assert round(total / 1e6, 1) == 4.3  # Table 6
    with torch.no_grad():
        out = model.eval().forward_raw(torch.zeros(1, 3, 300, 300))
    assert out.box_codes.shape == (1, 1917, 4) and out.class_logits.shape == (1, 1917, 81)


@pytest.mark.parametrize("padding", ["torch", "tf"])
def test_train_and_eval_outputs_any_resolution(padding):
    model = create_model("ssdlite_mobilenet_v2", width=0.35, num_classes=4, padding=padding)
    x = torch.randn(2, 3, 64, 96)
    out = model.train()(x)
    out.box_codes.sum().backward(retain_graph=True)
    out.class_logits.sum().backward()
    assert all(p.grad is not None for p in model.parameters())
    model.eval()
    with torch.no_grad():
        dets = model(x)
        raw = model.forward_raw(x)
    assert len(dets) == 2 and raw.anchors.shape[0] == raw.box_codes.shape[1]
    d = dets[0]
    assert d["boxes"].shape[1] == 4 and len(d["boxes"]) <= 100
    assert d["labels"].min() >= 1 and d["labels"].max() <= 3
    assert (d["boxes"][:, 2] <= 96).all() and (d["boxes"][:, 3] <= 64).all()
    assert torch.equal(d["scores"], d["scores"].sort(descending=True).values)


def test_contract_forward_equals_forward_head_of_taps():
    model = create_model("ssdlite_mobilenet_v2", width=0.35, num_classes=3).eval()
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        feats = model.backbone.forward_features(x, model.taps)
        a = model.forward_head([feats[t] for t in model.taps], (64, 64))[0]
        b = model(x)[0]
    assert torch.equal(a["boxes"], b["boxes"]) and torch.equal(a["scores"], b["scores"])


def test_torchvision_head_style():
    model = create_model("ssdlite_mobilenet_v2", width=0.35, num_classes=3, head_style="torchvision")
    assert boxes_per_location(model.anchor_spec) == [6] * 6
    assert model.postprocessing.score == "softmax" and model.postprocessing.iou_threshold == 0.55
    with pytest.raises(ValueError, match="head_style"):
        create_model("ssdlite_mobilenet_v2", head_style="keras")
