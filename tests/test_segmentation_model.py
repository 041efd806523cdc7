"""Mobile DeepLabv3 (Table 7): structure, exact counts, contract shape, `mobilenetv2 info`."""

import pytest
import torch

from mobilenetv2 import create_model, profile
from mobilenetv2.cli import main
from mobilenetv2.registry import task_of

NAME = "deeplabv3_mobilenet_v2"


def conv_bn(cin: int, cout: int, k: int = 1, groups: int = 1) -> int:
    return cin // groups * cout * k * k + 2 * cout  # conv without bias + BN gamma/beta


def backbone_params(width: float) -> int:
    """MobileNetV2 up to blocks.16: the classifier model less its 1x1 head conv and its linear classifier."""
    full = create_model("mobilenet_v2", width=width, num_classes=1000)
    head = sum(p.numel() for p in full.head.parameters()) + sum(p.numel() for p in full.classifier.parameters())
    return sum(p.numel() for p in full.parameters()) - head


@pytest.mark.parametrize(("aspp", "separable"), [(False, False), (True, False), (True, True)])
def test_params_equal_a_direct_count(aspp, separable):
    model = create_model(NAME, num_classes=21, aspp=aspp, aspp_separable=separable)
    c, d = 320, 256
    head = 2 * conv_bn(c, d) + 256 * 21 + 21  # image pooling, 1x1 branch, logits (with bias)
    if aspp:
        head += 3 * (conv_bn(c, c, 3, groups=c) + conv_bn(c, d) if separable else conv_bn(c, d, 3))
    head += conv_bn(d * (2 + (3 if aspp else 0)), d)  # concat projection
    assert sum(p.numel() for p in model.parameters()) == backbone_params(1.0) + head


def test_table7_parameter_counts():
    assert round(sum(p.numel() for p in create_model(NAME).parameters()) / 1e6, 2) == 2.11
    assert round(sum(p.numel() for p in create_model(NAME, aspp=True).parameters()) / 1e6, 2) == 4.52


@pytest.mark.parametrize(("output_stride", "aspp", "size"), [(16, False, (64, 48)), (8, True, (37, 53))])
def test_output_has_the_input_size(output_stride, aspp, size):
    model = create_model(NAME, width=0.35, num_classes=5, output_stride=output_stride, aspp=aspp).eval()
    x = torch.randn(2, 3, *size)
    out = model(x)
    assert out.shape == (2, 5, *size)
    feats = model.backbone.forward_features(x, model.taps)
    assert torch.allclose(model.forward_head([feats[t] for t in model.taps], size), out)
    assert feats["blocks.16"].shape[-1] == -(-size[1] // output_stride)


def test_contract_and_registry():
    model = create_model(NAME, width=0.35)
    assert task_of(NAME) == "segmentation"
    assert model.taps == ("blocks.16",)
    assert model.output_stride == 16 and model.num_classes == 21
    assert model.head.aspp is not None and len(model.head.aspp) == 0
    rates = [b.conv.dilation[0] for b in create_model(NAME, width=0.35, aspp=True, output_stride=8).head.aspp]
    assert rates == [12, 24, 36]
    bn = model.head.project.bn
    assert bn.eps == 1e-5 and bn.momentum == pytest.approx(3e-4)
    assert isinstance(model.head.project.act, torch.nn.ReLU)


def test_macs_match_table7_without_aspp():
    p = profile(create_model(NAME), 513)
    assert round(p.macs / 1e9, 2) == 2.74  # Table 7: 2.75B
    assert [r.name for r in p.layers][:2] == ["backbone.stem", "backbone.blocks.0"]


def test_bad_options_are_one_clear_error():
    with pytest.raises(ValueError, match="output_stride"):
        create_model(NAME, output_stride=32)
    with pytest.raises(ValueError, match="aspp_separable"):
        create_model(NAME, aspp_separable=True)


def test_info_prints_table7(capsys):
    assert main(["info", NAME, "--resolution", "129", "--width", "0.35", "--aspp"]) == 0
    out = capsys.readouterr().out
    assert "Table 7" in out and "OS16 with ASPP" in out and "head.aspp.2" in out


def test_backbone_weights_come_from_a_classifier_file(tmp_path):
    from mobilenetv2.errors import UserError
    from mobilenetv2.train.config import TrainConfig
    from mobilenetv2.train.tasks.segmentation import SegmentationTask, load_backbone
    from mobilenetv2.weights import save

    classifier = create_model("mobilenet_v2", width=0.35, num_classes=10)
    path = save(classifier, tmp_path / "cls.safetensors")
    cfg = TrainConfig(model=NAME, model_options={"width": 0.35}, backbone_weights=str(path))
    seg = SegmentationTask(cfg).build_model(5)
    assert torch.equal(seg.backbone.blocks[16].project.conv.weight, classifier.blocks[16].project.conv.weight)
    assert torch.equal(seg.backbone.stem.bn.running_var, classifier.stem.bn.running_var)
    with pytest.raises(UserError, match="backbone"):
        load_backbone(create_model(NAME, width=0.5), str(path))


def test_poly_schedule():
    from mobilenetv2.train.config import TrainConfig, resolve
    from mobilenetv2.train.optim import lr_at

    cfg = resolve(TrainConfig(model=NAME, recipe="deeplab-paper", data="unused", epochs=10))
    assert cfg.schedule == "poly" and cfg.lr == 0.007 and cfg.batch_size == 8 and cfg.resolution == (513, 513)
    assert lr_at(cfg, 0, 100) == pytest.approx(0.007)
    assert lr_at(cfg, 500, 100) == pytest.approx(0.007 * 0.5**0.9)
    assert lr_at(cfg, 1000, 100) == 0.0


@pytest.mark.parametrize("splits", [1, 3])
def test_for_inference_equals_the_model(splits):
    from conftest import randomize_bn_
    from mobilenetv2.infer import for_inference

    model = randomize_bn_(create_model(NAME, width=0.35, num_classes=5, aspp=True, output_stride=8)).eval()
    x = torch.randn(1, 3, 72, 56)
    with torch.no_grad():
        assert torch.allclose(for_inference(model, splits=splits)(x), model(x), atol=1e-4)


def test_labels_output_is_the_argmax_without_the_full_size_logits():
    """output="labels": the same masks as argmax(logits), eager and split, with far less memory at large sizes."""
    from conftest import randomize_bn_
    from mobilenetv2.bench.memory import measure_forward
    from mobilenetv2.infer import for_inference

    model = randomize_bn_(create_model(NAME, width=0.35, num_classes=21)).eval()
    x = torch.randn(2, 3, 200, 328)  # 200 / 13 logit rows: the bands do not divide the height evenly
    with torch.inference_mode():
        expected = model(x).argmax(dim=1)
        logits_split = for_inference(model, splits=4, engine="eager")
        model.output = "labels"
        labels = model(x)
        labels_split = for_inference(model, splits=4, engine="eager")
        assert labels.dtype == torch.uint8 and labels.shape == (2, 200, 328)
        assert torch.equal(labels.long(), expected)
        assert torch.equal(labels_split(x).long(), expected)
    big = torch.randn(1, 3, 256, 512)
    assert measure_forward(labels_split, big)["peak_bytes"] < 0.7 * measure_forward(logits_split, big)["peak_bytes"]
    with pytest.raises(ValueError, match="logits"):
        model.output = "masks"


def test_predict_mask_single_scale_uses_labels_and_restores_the_output():
    from conftest import randomize_bn_
    from mobilenetv2.segmentation.predict import predict_mask

    model = randomize_bn_(create_model(NAME, width=0.35, num_classes=21)).eval()
    x = torch.randn(1, 3, 96, 136)
    with torch.inference_mode():
        expected = model(x).argmax(dim=1)[0].numpy()
    assert (predict_mask(model, x, scales=(1.0,), flip=False) == expected).all()
    assert model.output == "logits"
    assert predict_mask(model, x, scales=(0.5, 1.0), flip=True).shape == expected.shape
