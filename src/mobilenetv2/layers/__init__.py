from mobilenetv2.layers.conv_norm_act import ConvNormAct, make_activation
from mobilenetv2.layers.inverted_residual import InvertedResidual
from mobilenetv2.layers.padding import SamePad2d, same_padding
from mobilenetv2.layers.ssdlite import ExtraLayer, SeparablePredictor

__all__ = [
    "ConvNormAct",
    "ExtraLayer",
    "InvertedResidual",
    "SamePad2d",
    "SeparablePredictor",
    "make_activation",
    "same_padding",
]
