"""Every built-in architecture (registered by name in registry.py)."""

from mobilenetv2.models.deeplab import DeepLabV3MobileNetV2
from mobilenetv2.models.features import FeatureExtractor, FeatureInfo
from mobilenetv2.models.mobilenet_v1 import MobileNetV1
from mobilenetv2.models.mobilenet_v2 import TABLE_2, MobileNetV2, make_divisible
from mobilenetv2.models.nasnet import NASNetA
from mobilenetv2.models.shufflenet_v1 import ShuffleNetV1
from mobilenetv2.models.ssdlite import SSDLite

__all__ = [
    "DeepLabV3MobileNetV2",
    "TABLE_2",
    "FeatureExtractor",
    "FeatureInfo",
    "MobileNetV1",
    "MobileNetV2",
    "NASNetA",
    "SSDLite",
    "ShuffleNetV1",
    "make_divisible",
]
