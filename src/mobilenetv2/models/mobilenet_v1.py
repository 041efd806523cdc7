"""MobileNetV1 (Howard et al., 2017, arXiv:1704.04861), built from the paper's Table 1.

The MobileNetV2 paper's Table 4 baseline. Activations are ReLU6 as in the official TF-slim
`mobilenet_v1.py` (the V1 paper's text says ReLU; `activation="relu"` gives that).
"""

from dataclasses import dataclass
from typing import Literal

import torch
from torch import nn

from mobilenetv2.layers import ConvNormAct
from mobilenetv2.layers.init import init_weights_


@dataclass(frozen=True)
class SeparableLayer:
    """One row pair of Table 1: depthwise 3x3 at stride s, then pointwise 1x1 to c channels."""

    s: int
    c: int


# Table 1 (224x224 input): conv 3x3/2 with 32 channels, then 13 depthwise-separable layers.
STEM_CHANNELS = 32
TABLE_1 = (
    SeparableLayer(s=1, c=64),
    SeparableLayer(s=2, c=128),
    SeparableLayer(s=1, c=128),
    SeparableLayer(s=2, c=256),
    SeparableLayer(s=1, c=256),
    SeparableLayer(s=2, c=512),
    *(SeparableLayer(s=1, c=512) for _ in range(5)),
    SeparableLayer(s=2, c=1024),
    SeparableLayer(s=1, c=1024),
)
MIN_DEPTH = 8  # slim's `min_depth`: no layer narrower than this, whatever the width


def scaled(channels: int, width: float) -> int:
    """Width multiplier α of Sec. 3.3: every layer has int(c·α) channels (never below 8, as slim)."""
    return max(int(channels * width), MIN_DEPTH)


class DepthwiseSeparable(nn.Module):
    """3x3 depthwise (BN, act) -> 1x1 pointwise (BN, act): Figure 3 right of the V1 paper."""

    def __init__(self, in_channels: int, out_channels: int, *, stride: int, activation: str) -> None:
        super().__init__()
        self.depthwise = ConvNormAct(
            in_channels, in_channels, 3, stride=stride, groups=in_channels, activation=activation
        )
        self.pointwise = ConvNormAct(in_channels, out_channels, 1, activation=activation)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pointwise(self.depthwise(x))  # (N, c_in, H, W) -> (N, c_out, H/s, W/s)


class MobileNetV1(nn.Module):
    """MobileNetV1: `stem` (conv 3x3/2), `blocks.0..12` (depthwise separable), pool, `classifier`."""

    def __init__(
        self,
        *,
        width: float = 1.0,
        num_classes: int = 1000,
        dropout: float = 0.001,
        in_channels: int = 3,
        activation: Literal["relu6", "relu"] = "relu6",
    ) -> None:
        super().__init__()
        if not width > 0:
            raise ValueError(f"width must be > 0, got {width}")
        if num_classes < 1:
            raise ValueError(f"num_classes must be >= 1, got {num_classes}")
        if not 0 <= dropout < 1:
            raise ValueError(f"dropout must be in [0, 1), got {dropout}")
        if activation not in ("relu6", "relu"):
            raise ValueError(f"activation must be 'relu6' or 'relu', got {activation!r}")
        self.width, self.num_classes = width, num_classes
        in_ch = scaled(STEM_CHANNELS, width)
        self.stem = ConvNormAct(in_channels, in_ch, 3, stride=2, activation=activation)
        blocks = []
        for row in TABLE_1:
            out_ch = scaled(row.c, width)
            blocks.append(DepthwiseSeparable(in_ch, out_ch, stride=row.s, activation=activation))
            in_ch = out_ch
        self.blocks = nn.ModuleList(blocks)
        self.num_features = in_ch
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Sequential(nn.Dropout(dropout), nn.Linear(in_ch, num_classes))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        init_weights_(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)  # (N, 32α, H/2, W/2)
        for block in self.blocks:
            x = block(x)
        x = torch.flatten(self.pool(x), 1)  # (N, 1024α)
        return self.classifier(x)
