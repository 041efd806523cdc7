"""Our MobileNetV2 computes exactly what torchvision's does, at every width, given the same weights."""

import pytest
import torch
import torchvision

from conftest import randomize_bn_
from mobilenetv2 import create_model


def torchvision_key_map(model: torch.nn.Module) -> dict[str, str]:
    """torchvision `features.*` / `classifier.*` module prefixes -> ours, spelled out layer by layer."""
    prefixes = {"features.0.0": "stem.conv", "features.0.1": "stem.bn"}
    for i, block in enumerate(model.blocks):
        tv = f"features.{i + 1}.conv"
        parts = ["expand", "depthwise"] if block.expand is not None else ["depthwise"]
        for j, part in enumerate(parts):  # ConvBNReLU(conv, bn, relu6)
            prefixes[f"{tv}.{j}.0"] = f"blocks.{i}.{part}.conv"
            prefixes[f"{tv}.{j}.1"] = f"blocks.{i}.{part}.bn"
        prefixes[f"{tv}.{len(parts)}"] = f"blocks.{i}.project.conv"  # bare conv, then BN
        prefixes[f"{tv}.{len(parts) + 1}"] = f"blocks.{i}.project.bn"
    last = len(model.blocks) + 1
    prefixes[f"features.{last}.0"] = "head.conv"
    prefixes[f"features.{last}.1"] = "head.bn"
    prefixes["classifier.1"] = "classifier.1"
    return prefixes


def transplant(tv: torch.nn.Module, ours: torch.nn.Module) -> None:
    prefixes = torchvision_key_map(ours)
    mapped = {}
    for key, value in tv.state_dict().items():
        prefix, leaf = key.rsplit(".", 1)
        mapped[f"{prefixes[prefix]}.{leaf}"] = value
    ours.load_state_dict(mapped, strict=True)


@pytest.mark.parametrize("width", [0.35, 0.5, 0.75, 1.0, 1.3, 1.4])
def test_logits_equal_torchvision(width):
    tv = randomize_bn_(torchvision.models.mobilenet_v2(width_mult=width), seed=int(width * 100)).eval()
    ours = create_model("mobilenet_v2", width=width).eval()
    assert sum(p.numel() for p in ours.parameters()) == sum(p.numel() for p in tv.parameters())
    transplant(tv, ours)
    x = torch.randn(2, 3, 96, 80)
    with torch.no_grad():
        expected, got = tv(x), ours(x)
    assert (got - expected).abs().max().item() <= 1e-5


def test_parity_at_224():
    tv = randomize_bn_(torchvision.models.mobilenet_v2()).eval()
    ours = create_model("mobilenet_v2_100").eval()
    transplant(tv, ours)
    x = torch.randn(1, 3, 224, 224)
    with torch.no_grad():
        assert (ours(x) - tv(x)).abs().max().item() <= 1e-5
