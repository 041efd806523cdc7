"""TensorFlow 'SAME' padding, so weights trained in TensorFlow/Keras run exactly.

TF pads a stride-2 conv over an even input by 0 on the top/left and 1 on the bottom/right; PyTorch's
static `padding=1` pads both sides, which shifts every sampled window by one pixel.
"""

import math

import torch
import torch.nn.functional as F
from torch import nn


def same_padding(size: int, kernel: int, stride: int, dilation: int) -> tuple[int, int]:
    """(before, after) padding TensorFlow's SAME uses along one axis of length `size`."""
    effective = (kernel - 1) * dilation + 1
    total = max((math.ceil(size / stride) - 1) * stride + effective - size, 0)
    return total // 2, total - total // 2


class SamePad2d(nn.Module):
    """Pads an NCHW tensor the way TF 'SAME' would for the conv that follows it."""

    def __init__(self, kernel: int, stride: int, dilation: int = 1) -> None:
        super().__init__()
        self.kernel, self.stride, self.dilation = kernel, stride, dilation

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        top, bottom = same_padding(x.shape[-2], self.kernel, self.stride, self.dilation)
        left, right = same_padding(x.shape[-1], self.kernel, self.stride, self.dilation)
        if top == bottom == left == right == 0:
            return x
        return F.pad(x, (left, right, top, bottom))

    def extra_repr(self) -> str:
        return f"kernel={self.kernel}, stride={self.stride}, dilation={self.dilation}"
