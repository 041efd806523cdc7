"""The two SSDLite units (Sec. 6.2): an extra feature layer and a depthwise-separable predictor.

Both follow the TF Object Detection API with `use_depthwise`: every regular 3x3 conv of SSD is replaced by a
3x3 depthwise conv + BN + ReLU6 followed by a 1x1 conv.
"""

import torch
from torch import nn

from mobilenetv2.layers.conv_norm_act import ConvNormAct, Padding


class ExtraLayer(nn.Module):
    """One of SSD's extra maps: 1x1 conv to depth/2 -> 3x3 depthwise stride 2 -> 1x1 conv to depth, each
    followed by BN + ReLU6 (TF: `layer_19_1_Conv2d_{i}_1x1_{d/2}`, `layer_19_2_Conv2d_{i}_3x3_s2_{d}` with
    its `_depthwise` part)."""

    def __init__(
        self,
        in_channels: int,
        mid_channels: int,
        out_channels: int,
        *,
        padding: Padding,
        bn_eps: float,
        bn_momentum: float,
    ) -> None:
        super().__init__()
        norm = {"padding": padding, "bn_eps": bn_eps, "bn_momentum": bn_momentum}
        self.reduce = ConvNormAct(in_channels, mid_channels, 1, **norm)
        self.depthwise = ConvNormAct(mid_channels, mid_channels, 3, stride=2, groups=mid_channels, **norm)
        self.expand = ConvNormAct(mid_channels, out_channels, 1, **norm)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.expand(self.depthwise(self.reduce(x)))  # (N, C, H, W) -> (N, out, ceil(H/2), ceil(W/2))


class SeparablePredictor(nn.Module):
    """3x3 depthwise + BN + ReLU6, then a 1x1 conv with bias to `out_channels` (boxes x code size, or boxes x
    classes). TF: `BoxPredictor_{i}/BoxEncodingPredictor_depthwise` + `BoxPredictor_{i}/BoxEncodingPredictor`
    (and `ClassPredictor_depthwise` + `ClassPredictor`)."""

    def __init__(
        self, in_channels: int, out_channels: int, *, padding: Padding, bn_eps: float, bn_momentum: float
    ) -> None:
        super().__init__()
        self.depthwise = ConvNormAct(
            in_channels, in_channels, 3, groups=in_channels, padding=padding, bn_eps=bn_eps, bn_momentum=bn_momentum
        )
        self.conv = nn.Conv2d(in_channels, out_channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(self.depthwise(x))
