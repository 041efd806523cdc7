"""for_inference of models on the MobileNetV2 backbone (CONTRACT.md: `backbone`, `taps`, `forward_head`): the
backbone's ops are planned and split like the classifier's, the head runs BN-folded; outputs equal the model's."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import mobilenetv2
from conftest import randomize_bn_
from mobilenetv2.layers import ConvNormAct
from mobilenetv2.models import MobileNetV2
from test_infer import ENGINES, assert_close


class TinyHeadModel(nn.Module):
    """A backbone and a 1x1 ConvNormAct per tap, then a plain conv; the last map is resized to the image (as a
    segmentation head does) and everything is returned flattened side by side (as detection boxes are)."""

    def __init__(self, taps: tuple[str, ...], **backbone_options) -> None:
        super().__init__()
        self.backbone = MobileNetV2(width=0.35, **backbone_options)
        self.backbone.classifier = nn.Identity()
        self.taps = taps
        channels = {f.name: f.channels for f in self.backbone.feature_info}
        self.units = nn.ModuleList(ConvNormAct(channels[t], 8, 1) for t in taps)
        self.out = nn.Conv2d(8, 3, 1)

    def forward_head(self, features: list[torch.Tensor], image_size: tuple[int, int]) -> torch.Tensor:
        maps = [self.out(unit(f)) for unit, f in zip(self.units, features, strict=True)]
        maps[-1] = F.interpolate(maps[-1], size=image_size, mode="bilinear", align_corners=False)
        return torch.cat([m.flatten(1) for m in maps], 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features = self.backbone.forward_features(x, self.taps)
        return self.forward_head([features[t] for t in self.taps], tuple(x.shape[-2:]))


def trained_like(taps: tuple[str, ...], **options) -> nn.Module:
    return randomize_bn_(TinyHeadModel(taps, **options)).eval()


@pytest.mark.parametrize("splits", [1, 3])
@pytest.mark.parametrize(
    "taps, options",
    [
        (("blocks.13.expansion", "head"), {}),  # SSDLite's taps
        (("blocks.16",), {"output_stride": 16}),  # Mobile DeepLabv3's
        (("stem", "blocks.3"), {"padding": "tf"}),
    ],
    ids=str,
)
def test_models_on_the_backbone_match_the_plain_model(taps, options, splits):
    model = trained_like(taps, **options)
    x = torch.randn(2, 3, 45, 37)
    with torch.no_grad():
        expected = model(x)
    for engine in ENGINES if splits == 1 else ("eager", "auto"):
        fast = mobilenetv2.for_inference(model, splits=splits, engine=engine)
        for _ in range(3 if fast.compiled_ops() else 1):
            assert_close(fast(x), expected)
    names = fast.op_names()
    last = "head" if "head" in taps else taps[-1]
    assert names[-1] == last and not any(isinstance(m, nn.BatchNorm2d) for m in fast.plan.head.module.modules())
    assert ("stem" in names) == ("stem" in taps)  # a stem tap keeps the stem an op of its own
    if splits > 1:
        assert max(fast.op_splits()) == splits
    if "blocks.13.expansion" in taps:  # its expansion output is a tap: the op runs whole and keeps it
        assert dict(zip(names, fast.op_splits(), strict=True))["blocks.13"] == 1


def test_bad_taps_are_refused():
    model = TinyHeadModel(("blocks.3",))
    model.taps = ("blocks.99",)
    with pytest.raises(ValueError, match="taps must name backbone features"):
        mobilenetv2.for_inference(model)


def test_ssdlite_detections_match_the_plain_model():
    model = randomize_bn_(mobilenetv2.create_model("ssdlite_mobilenet_v2", width=0.35)).eval()
    x = torch.randn(1, 3, 128, 128)
    with torch.no_grad():
        expected = model(x)
    for engine in ("eager", "auto"):
        fast = mobilenetv2.for_inference(model, splits=3, engine=engine)
        for _ in range(3 if fast.compiled_ops() else 1):
            found = fast(x)
        for got, want in zip(found, expected, strict=True):
            assert got.keys() == want.keys()
            for key in want:
                assert_close(got[key].float(), want[key].float())
