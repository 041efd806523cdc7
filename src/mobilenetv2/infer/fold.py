"""BatchNorm folding: an eval-mode conv -> BN pair becomes one conv with a bias.

BN(conv(x)) = γ·(W*x + b - μ)/√(σ² + ε) + β = (s·W)*x + (s·(b - μ) + β) with s = γ/√(σ² + ε), per output
channel. The product is formed in float64 so folding adds no rounding beyond the final cast.
"""

from dataclasses import dataclass

import torch
from torch import nn

from mobilenetv2.layers import ConvNormAct
from mobilenetv2.layers.padding import SamePad2d


@dataclass(frozen=True)
class Geometry:
    """Everything about a conv but its weights. `same_pad` is TF 'SAME' padding computed per input size."""

    kernel: int
    stride: int
    dilation: int
    padding: int
    same_pad: bool
    relu6: bool


def fold_conv_bn(conv: nn.Conv2d, bn: nn.BatchNorm2d | None) -> tuple[torch.Tensor, torch.Tensor]:
    """(weight, bias) of one conv equal to `bn(conv(x))` with BN in eval mode; `bn=None` keeps the conv."""
    weight = conv.weight.detach().double()
    bias = conv.bias.detach().double() if conv.bias is not None else weight.new_zeros(weight.shape[0])
    if bn is not None:
        scale = bn.weight.detach().double() / torch.sqrt(bn.running_var.double() + bn.eps)
        weight = weight * scale.view(-1, 1, 1, 1)
        bias = (bias - bn.running_mean.double()) * scale + bn.bias.detach().double()
    dtype = conv.weight.dtype
    return weight.to(dtype).contiguous(), bias.to(dtype).contiguous()


def fold_unit(unit: ConvNormAct) -> tuple[torch.Tensor, torch.Tensor, Geometry]:
    """Folded (weight, bias) and geometry of a ConvNormAct whose activation is ReLU6 or None."""
    if unit.act is not None and not isinstance(unit.act, nn.ReLU6):
        raise ValueError(f"cannot fold {type(unit.act).__name__}: the fast path fuses ReLU6 or no activation")
    conv = unit.conv
    geometry = Geometry(
        kernel=conv.kernel_size[0],
        stride=conv.stride[0],
        dilation=conv.dilation[0],
        padding=conv.padding[0],
        same_pad=isinstance(unit.pad, SamePad2d),
        relu6=unit.act is not None,
    )
    weight, bias = fold_conv_bn(conv, unit.bn)
    return weight, bias, geometry
