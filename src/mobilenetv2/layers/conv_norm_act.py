"""Conv -> BatchNorm -> activation, the unit every MobileNet layer is made of."""

from typing import Literal

import torch
from torch import nn

from mobilenetv2.layers.padding import SamePad2d

Padding = Literal["torch", "tf"]
Activation = Literal["relu6", "relu"] | None


def make_activation(name: Activation) -> nn.Module | None:
    if name is None:
        return None
    if name == "relu6":
        # Out of place: under autograd an in-place clamp first copies its input (its backward needs the old
        # values), which made a CPU training step ~5% slower. Inference runs the BN-folded fast path instead.
        return nn.ReLU6()
    if name == "relu":
        return nn.ReLU(inplace=True)  # relu_'s backward reads its output: no copy under autograd
    raise ValueError(f"unknown activation {name!r} (expected 'relu6', 'relu' or None)")


class ConvNormAct(nn.Module):
    """A conv with no bias, BatchNorm, then an optional activation.

    `padding="torch"` pads symmetrically (k // 2 · dilation); `padding="tf"` reproduces TF 'SAME', which only
    differs from it for strided convs over inputs the stride does not divide evenly into the kernel's reach.
    `norm=False` gives a plain conv with bias (used by heads without BN).
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int = 1,
        *,
        stride: int = 1,
        groups: int = 1,
        dilation: int = 1,
        activation: Activation = "relu6",
        norm: bool = True,
        padding: Padding = "torch",
        bn_eps: float = 1e-5,
        bn_momentum: float = 0.1,
    ) -> None:
        super().__init__()
        if padding not in ("torch", "tf"):
            raise ValueError(f"padding must be 'torch' or 'tf', got {padding!r}")
        dynamic = padding == "tf" and stride > 1
        self.pad = SamePad2d(kernel_size, stride, dilation) if dynamic else None
        static = 0 if dynamic else (kernel_size - 1) // 2 * dilation
        self.conv = nn.Conv2d(
            in_channels,
            out_channels,
            kernel_size,
            stride=stride,
            padding=static,
            dilation=dilation,
            groups=groups,
            bias=not norm,
        )
        self.bn = nn.BatchNorm2d(out_channels, eps=bn_eps, momentum=bn_momentum) if norm else None
        self.act = make_activation(activation)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.pad is not None:
            x = self.pad(x)
        x = self.conv(x)
        if self.bn is not None:
            x = self.bn(x)
        if self.act is not None:
            x = self.act(x)
        return x
