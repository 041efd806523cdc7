from mobilenetv2.layers.conv_norm_act import ConvNormAct, make_activation
from mobilenetv2.layers.inverted_residual import InvertedResidual
from mobilenetv2.layers.padding import SamePad2d, same_padding

__all__ = ["ConvNormAct", "InvertedResidual", "SamePad2d", "make_activation", "same_padding"]
