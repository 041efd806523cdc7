"""Every built-in architecture, registered by name. Variants are rows of data, not copied functions."""

from mobilenetv2.models.deeplab import DeepLabV3MobileNetV2
from mobilenetv2.models.features import FeatureExtractor, FeatureInfo
from mobilenetv2.models.mobilenet_v1 import MobileNetV1
from mobilenetv2.models.mobilenet_v2 import TABLE_2, MobileNetV2, make_divisible
from mobilenetv2.models.nasnet import NASNetA
from mobilenetv2.models.shufflenet_v1 import ShuffleNetV1
from mobilenetv2.registry import register_model

MOBILENET_V2_WIDTHS = {"035": 0.35, "050": 0.5, "075": 0.75, "100": 1.0, "130": 1.3, "140": 1.4}

register_model("mobilenet_v2", MobileNetV2, {}, "MobileNetV2, any width (default 1.0)")
for _suffix, _width in MOBILENET_V2_WIDTHS.items():
    register_model(f"mobilenet_v2_{_suffix}", MobileNetV2, {"width": _width}, f"MobileNetV2 {_width}")

# The Table 4 baselines. ShuffleNet widths follow the official release (2.0x doubles the stem to 48).
MOBILENET_V1_WIDTHS = {"025": 0.25, "050": 0.5, "075": 0.75, "100": 1.0}
SHUFFLENET_V1_G3 = {"100": (1.0, 24), "150": (1.5, 24), "200": (2.0, 48)}
for _suffix, _width in MOBILENET_V1_WIDTHS.items():
    register_model(f"mobilenet_v1_{_suffix}", MobileNetV1, {"width": _width}, f"MobileNetV1 {_width}")
for _suffix, (_scale, _stem) in SHUFFLENET_V1_G3.items():
    _options = {"groups": 3, "scale": _scale, "stem_channels": _stem}
    register_model(f"shufflenet_v1_g3_{_suffix}", ShuffleNetV1, _options, f"ShuffleNet v1 {_scale}x, g=3")
register_model("nasnet_a_mobile", NASNetA, {"num_cells": 12, "filters": 44}, "NASNet-A Mobile (4 @ 1056)")
register_model(
    "deeplabv3_mobilenet_v2",
    DeepLabV3MobileNetV2,
    {},
    "Mobile DeepLabv3 (Table 7): MobileNetV2 OS16/8 + image pooling [+ ASPP], VOC's 21 classes",
    task="segmentation",
)

__all__ = [
    "DeepLabV3MobileNetV2",
    "TABLE_2",
    "FeatureExtractor",
    "FeatureInfo",
    "MobileNetV1",
    "MobileNetV2",
    "NASNetA",
    "ShuffleNetV1",
    "make_divisible",
]
