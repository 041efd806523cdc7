"""Our MobileNetV2 computes exactly what torchvision's does, at every width, given the same weights."""

import pytest
import torch
import torchvision

from conftest import randomize_bn_
from mobilenetv2 import create_model
from mobilenetv2.weights.torchvision import key_map


def transplant(tv: torch.nn.Module, ours: torch.nn.Module) -> None:
    # The converter's explicit key map (torchvision features.* -> stem / blocks.i.{expand,depthwise,project} / head).
    source = tv.state_dict()
    mapping = key_map(set(source))
    ours.load_state_dict({mapping[k]: v for k, v in source.items()}, strict=True)


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
