"""Weights: our safetensors format (one file rebuilds a working model) and converters from other libraries.

`save`/`load`/`load_into`/`read_header` handle our files; `convert(path, source)` imports torchvision, timm and
Keras MobileNetV2 weights; `describe_file` is what `mobilenetv2 info FILE.safetensors` prints.
"""

from mobilenetv2.meta import FORMAT_VERSION
from mobilenetv2.weights.convert import SOURCES, convert, imagenet_class_names
from mobilenetv2.weights.describe import describe_file
from mobilenetv2.weights.format import (
    HEADER_KEY,
    load,
    load_into,
    load_state_dict_strict,
    read_header,
    read_meta,
    read_tensors,
    save,
)

__all__ = [
    "FORMAT_VERSION",
    "HEADER_KEY",
    "SOURCES",
    "convert",
    "describe_file",
    "imagenet_class_names",
    "load",
    "load_into",
    "load_state_dict_strict",
    "read_header",
    "read_meta",
    "read_tensors",
    "save",
]
