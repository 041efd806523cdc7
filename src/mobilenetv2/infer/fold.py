"""BatchNorm folding: an eval-mode conv -> BN pair becomes one conv with a bias.

BN(conv(x)) = γ·(W*x + b - μ)/√(σ² + ε) + β = (s·W)*x + (s·(b - μ) + β) with s = γ/√(σ² + ε), per output
channel. The product is formed in float64 so folding adds no rounding beyond the final cast.
"""

import copy
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


def folded_copy(module: nn.Module, *, leave_out: nn.Module | None = None) -> nn.Module:
    """An eval-mode deep copy of `module` with every ConvNormAct's BN folded into its conv (which gains a bias;
    padding and activation are kept). `leave_out`, a submodule, becomes an nn.Identity in the copy (it is not
    copied at all). Parameters of the copy do not require gradients."""
    memo = {id(leave_out): nn.Identity()} if leave_out is not None else {}
    folded = copy.deepcopy(module, memo).eval()
    for unit in folded.modules():
        if isinstance(unit, ConvNormAct) and unit.bn is not None:
            weight, bias = fold_conv_bn(unit.conv, unit.bn)
            unit.conv.weight = nn.Parameter(weight)
            unit.conv.bias = nn.Parameter(bias)
            unit.bn = None
    folded.requires_grad_(False)
    return folded
