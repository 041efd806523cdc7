"""MobileNetV2's own options: ablation switches, TF padding, output stride, feature taps, input sizes."""

import pytest
import torch
import torch.nn.functional as F

from mobilenetv2 import FeatureExtractor, create_model
from mobilenetv2.layers.padding import same_padding


def test_linear_bottleneck_has_no_activation_after_projection():
    linear = create_model("mobilenet_v2_035", bottleneck_activation="linear")
    relu6 = create_model("mobilenet_v2_035", bottleneck_activation="relu6")
    assert all(b.project.act is None for b in linear.blocks)
    assert all(isinstance(b.project.act, torch.nn.ReLU6) for b in relu6.blocks)
    x = torch.randn(1, 3, 64, 64)
    relu6.eval()
    with torch.no_grad():
        # A non-linear bottleneck's block outputs are clipped to [0, 6].
        out = relu6.forward_features(x, ["blocks.3"])["blocks.3"]
    assert out.min() >= 0


def test_bottleneck_shortcut_only_where_shapes_match():
    model = create_model("mobilenet_v2")
    skips = [i for i, b in enumerate(model.blocks) if b.has_skip]
    # Table 2: the repeated layers of each row (n > 1) at stride 1 with equal channels.
    assert skips == [2, 4, 5, 7, 8, 9, 11, 12, 14, 15]


def test_no_shortcut_option_removes_all_residuals():
    model = create_model("mobilenet_v2", shortcut="none")
    assert not any(b.has_skip or b.skip_from_previous_expansion for b in model.blocks)


def test_expansion_shortcut_connects_equal_expansions():
    model = create_model("mobilenet_v2", shortcut="expansion")
    assert not any(b.has_skip for b in model.blocks)
    linked = [i for i, b in enumerate(model.blocks) if b.skip_from_previous_expansion]
    # Block i receives block i-1's expansion when i-1 kept the resolution and both expand the same width.
    assert linked == [3, 5, 6, 8, 9, 10, 12, 13, 15, 16]
    x = torch.randn(2, 3, 64, 64)
    model.eval()
    plain = create_model("mobilenet_v2", shortcut="none").eval()
    plain.load_state_dict(model.state_dict())
    with torch.no_grad():
        # Untrained logits are tiny without residuals: compare relative to their size.
        assert not torch.allclose(model(x), plain(x), rtol=1e-3, atol=0)


def test_shortcut_changes_the_function_not_the_parameters():
    counts = {
        s: sum(p.numel() for p in create_model("mobilenet_v2", shortcut=s).parameters())
        for s in ("bottleneck", "expansion", "none")
    }
    assert len(set(counts.values())) == 1


@pytest.mark.parametrize(
    ("size", "stride", "expected"), [(224, 2, (0, 1)), (225, 2, (1, 1)), (7, 1, (1, 1)), (8, 2, (0, 1))]
)
def test_tf_same_padding(size, stride, expected):
    assert same_padding(size, 3, stride, 1) == expected


def test_tf_padding_matches_a_manual_asymmetric_pad():
    model = create_model("mobilenet_v2_035", padding="tf").eval()
    stem = model.stem
    x = torch.randn(1, 3, 32, 32)
    manual = F.conv2d(F.pad(x, (0, 1, 0, 1)), stem.conv.weight, stride=2)
    with torch.no_grad():
        torch.testing.assert_close(stem.bn(stem.conv(stem.pad(x))), stem.bn(manual))
    torch_pad = create_model("mobilenet_v2_035", padding="torch").eval()
    torch_pad.load_state_dict(model.state_dict())
    with torch.no_grad():
        assert not torch.allclose(model(torch.randn(1, 3, 64, 64)), torch_pad(torch.randn(1, 3, 64, 64)))


@pytest.mark.parametrize("output_stride", [8, 16, 32])
def test_output_stride(output_stride):
    model = create_model("mobilenet_v2_050", output_stride=output_stride).eval()
    with torch.no_grad():
        body = model.forward_body(torch.randn(1, 3, 128, 96))
    assert body.shape[-2:] == (128 // output_stride, 96 // output_stride)
    assert model.feature_info[-1].reduction == output_stride
    dilations = [b.depthwise.conv.dilation[0] for b in model.blocks]
    assert max(dilations) == 32 // output_stride


def test_output_stride_keeps_the_weights():
    a, b = create_model("mobilenet_v2_050"), create_model("mobilenet_v2_050", output_stride=8)
    assert {k: v.shape for k, v in a.state_dict().items()} == {k: v.shape for k, v in b.state_dict().items()}


def test_ssdlite_tap_is_the_expansion_of_layer_15():
    model = create_model("mobilenet_v2_100").eval()
    info = {f.name: f for f in model.feature_info}
    tap = info["blocks.13.expansion"]
    assert (tap.channels, tap.reduction) == (576, 16)
    extractor = FeatureExtractor(model, ["blocks.13.expansion", "head"])
    with torch.no_grad():
        feats = extractor(torch.randn(1, 3, 320, 320))
    assert feats[0].shape == (1, 576, 20, 20)
    assert feats[1].shape == (1, 1280, 10, 10)


def test_every_declared_feature_has_its_declared_shape():
    model = create_model("mobilenet_v2_075", output_stride=16).eval()
    with torch.no_grad():
        feats = model.forward_features(torch.randn(1, 3, 128, 128), model.feature_names())
    for f in model.feature_info:
        assert feats[f.name].shape[1:] == (f.channels, 128 // f.reduction, 128 // f.reduction), f.name


def test_head_features_equal_forward_body():
    model = create_model("mobilenet_v2_035").eval()
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(model.forward_features(x, ["head"])["head"], model.forward_body(x))


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"width": 0}, r"width must be in \(0, 8.0\]"),
        ({"width": -1.0}, r"width must be in \(0, 8.0\]"),
        ({"output_stride": 4}, "output_stride must be 8, 16 or 32"),
        ({"shortcut": "dense"}, "shortcut must be"),
        ({"bottleneck_activation": "gelu"}, "bottleneck_activation must be"),
        ({"num_classes": 0}, "num_classes must be an integer in"),
        ({"dropout": 1.5}, "dropout must be in"),
        ({"padding": "reflect"}, "padding must be"),
    ],
)
def test_bad_options_fail_with_the_option_named(options, message):
    with pytest.raises(ValueError, match=message):
        create_model("mobilenet_v2", **options)


def test_unknown_model_suggests_close_names():
    with pytest.raises(ValueError, match="did you mean mobilenet_v2"):
        create_model("mobilenetv2_100")


def test_reset_classifier():
    model = create_model("mobilenet_v2_035")
    model.reset_classifier(7)
    assert model(torch.randn(2, 3, 32, 32)).shape == (2, 7)
