"""Every built-in architecture, registered by name. Variants are rows of data, not copied functions."""

from mobilenetv2.models.features import FeatureExtractor, FeatureInfo
from mobilenetv2.models.mobilenet_v2 import TABLE_2, MobileNetV2, make_divisible
from mobilenetv2.registry import register_model

MOBILENET_V2_WIDTHS = {"035": 0.35, "050": 0.5, "075": 0.75, "100": 1.0, "130": 1.3, "140": 1.4}

register_model("mobilenet_v2", MobileNetV2, {}, "MobileNetV2, any width (default 1.0)")
for _suffix, _width in MOBILENET_V2_WIDTHS.items():
    register_model(f"mobilenet_v2_{_suffix}", MobileNetV2, {"width": _width}, f"MobileNetV2 {_width}")

__all__ = ["TABLE_2", "FeatureExtractor", "FeatureInfo", "MobileNetV2", "make_divisible"]
