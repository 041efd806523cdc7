"""mobilenetv2: MobileNetV2 (Sandler et al., CVPR 2018), exactly."""

from mobilenetv2.analysis import profile
from mobilenetv2.infer import for_inference
from mobilenetv2.models import FeatureExtractor, MobileNetV2
from mobilenetv2.registry import create_model, list_models, register_model
from mobilenetv2.weights import convert, load, save

__version__ = "0.1.0"

__all__ = [
    "FeatureExtractor",
    "MobileNetV2",
    "convert",
    "create_model",
    "for_inference",
    "list_models",
    "load",
    "profile",
    "register_model",
    "save",
]
