"""Mobile DeepLabv3 (paper Sec. 6.3, Table 7): MobileNetV2 features at output stride 16 or 8 plus a DeepLabv3 head.

As TF DeepLab builds it (tensorflow/models research/deeplab, `model.py`, `core/feature_extractor.py`):
  - "MNetV2*": the head reads the second-last feature map, the 320-channel output of the last bottleneck
    (our `blocks.16`, TF's `layer_18`), not the 1280-channel 1x1 conv; the backbone reaches output stride
    16 or 8 with atrous depthwise convolutions (MobileNetV2's `output_stride` option);
  - the head (`_extract_features` with `aspp_with_batch_norm`): image pooling (global average -> 1x1 conv ->
    upsample) and a 1x1 conv ("aspp0"), plus three 3x3 atrous convs with `aspp` (rates 6/12/18 at OS 16,
    doubled at OS 8), concatenated -> 1x1 conv ("concat_projection") -> dropout (keep 0.9) -> 1x1 logits
    with bias and no BN -> bilinear upsampling to the input;
  - every head conv but the logits is conv -> BN (decay 0.9997, eps 1e-5) -> ReLU (not ReLU6);
  - no decoder for MobileNetV2.
Table 7: OS16 without ASPP 2.11M params, with ASPP 4.52M (regular 3x3 convs; `aspp_separable=True` builds
TF's depthwise-separable form instead, far lighter).
"""

from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from mobilenetv2.layers import ConvNormAct
from mobilenetv2.layers.conv_norm_act import Padding
from mobilenetv2.models.mobilenet_v2 import MobileNetV2

TAP = "blocks.16"  # TF DeepLab's `layer_18`: 320 channels at width 1
HEAD_CHANNELS = 256  # TF DeepLab's `depth`
ASPP_RATES_OS16 = (6, 12, 18)  # doubled at output stride 8 (`atrous_rates` 12, 24, 36 in the TF configs)
TF_BN_MOMENTUM = 1 - 0.9997  # TF decay d is PyTorch momentum 1 - d
LOGITS_INIT_STD = 0.01  # `_get_branch_logits`: truncated normal, stddev 0.01


class ImagePooling(nn.Module):
    """Global average -> 1x1 conv BN ReLU -> back to the feature map's size (image-level features)."""

    def __init__(self, in_channels: int, out_channels: int, *, bn_eps: float, bn_momentum: float) -> None:
        super().__init__()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.conv = ConvNormAct(in_channels, out_channels, 1, activation="relu", bn_eps=bn_eps, bn_momentum=bn_momentum)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv(self.pool(x))  # (N, C, 1, 1)
        # Bilinear upsampling of a 1x1 map is a broadcast: every position gets the same vector.
        return y.expand(-1, -1, x.shape[-2], x.shape[-1])


def aspp_branch(
    in_channels: int, out_channels: int, rate: int, *, separable: bool, bn_eps: float, bn_momentum: float
) -> nn.Module:
    """A 3x3 atrous conv BN ReLU, or TF's `_split_separable_conv2d`: depthwise BN ReLU, then 1x1 BN ReLU."""
    norm = {"bn_eps": bn_eps, "bn_momentum": bn_momentum, "activation": "relu"}
    if not separable:
        return ConvNormAct(in_channels, out_channels, 3, dilation=rate, **norm)
    return nn.Sequential(
        ConvNormAct(in_channels, in_channels, 3, dilation=rate, groups=in_channels, **norm),
        ConvNormAct(in_channels, out_channels, 1, **norm),
    )


class DeepLabHead(nn.Module):
    """(N, in, h, w) features -> (N, num_classes, h, w) logits at the feature map's resolution."""

    def __init__(
        self,
        in_channels: int,
        num_classes: int,
        *,
        channels: int = HEAD_CHANNELS,
        rates: tuple[int, ...] = (),
        separable: bool = False,
        dropout: float = 0.1,
        bn_eps: float = 1e-5,
        bn_momentum: float = TF_BN_MOMENTUM,
    ) -> None:
        super().__init__()
        norm = {"bn_eps": bn_eps, "bn_momentum": bn_momentum}
        self.image_pooling = ImagePooling(in_channels, channels, **norm)
        self.conv = ConvNormAct(in_channels, channels, 1, activation="relu", **norm)
        self.aspp = nn.ModuleList(aspp_branch(in_channels, channels, r, separable=separable, **norm) for r in rates)
        self.project = ConvNormAct(channels * (2 + len(rates)), channels, 1, activation="relu", **norm)
        self.dropout = nn.Dropout(dropout)
        self.logits = nn.Conv2d(channels, num_classes, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        branches = [self.image_pooling(x), self.conv(x), *(branch(x) for branch in self.aspp)]
        y = self.project(torch.cat(branches, dim=1))  # (N, channels, h, w)
        return self.logits(self.dropout(y))


class DeepLabV3MobileNetV2(nn.Module):
    """Mobile DeepLabv3: (N, 3, H, W) -> (N, num_classes, H, W) logits; num_classes counts the background.

    Follows the backbone contract (docs/segmentation.md): `backbone` is a MobileNetV2 whose 1x1 head conv and
    classifier are unused (replaced by nn.Identity), `taps = ("blocks.16",)`, `forward_head(features, size)`.
    """

    def __init__(
        self,
        *,
        width: float = 1.0,
        num_classes: int = 21,
        output_stride: Literal[8, 16] = 16,
        aspp: bool = False,
        aspp_separable: bool = False,
        head_channels: int = HEAD_CHANNELS,
        dropout: float = 0.1,
        padding: Padding = "torch",
        bn_eps: float = 1e-5,
        bn_momentum: float = TF_BN_MOMENTUM,
    ) -> None:
        super().__init__()
        if output_stride not in (8, 16):
            raise ValueError(f"output_stride must be 8 or 16 for DeepLab, got {output_stride}")
        if num_classes < 2:
            raise ValueError(f"num_classes must be >= 2 (it counts the background), got {num_classes}")
        if head_channels < 1:
            raise ValueError(f"head_channels must be >= 1, got {head_channels}")
        if aspp_separable and not aspp:
            raise ValueError("aspp_separable needs aspp=True")
        self.num_classes, self.output_stride = num_classes, output_stride
        self.backbone = MobileNetV2(
            width=width, output_stride=output_stride, padding=padding, bn_eps=bn_eps, bn_momentum=bn_momentum
        )
        # The classification end is never run: drop its weights, keep the names (tap names stay valid).
        self.backbone.head = nn.Identity()
        self.backbone.pool = nn.Identity()
        self.backbone.classifier = nn.Identity()
        self.taps: tuple[str, ...] = (TAP,)
        in_channels = next(f.channels for f in self.backbone.feature_info if f.name == TAP)
        rates = tuple(r * 16 // output_stride for r in ASPP_RATES_OS16) if aspp else ()
        self.head = DeepLabHead(
            in_channels,
            num_classes,
            channels=head_channels,
            rates=rates,
            separable=aspp_separable,
            dropout=dropout,
            bn_eps=bn_eps,
            bn_momentum=bn_momentum,
        )
        self.head.apply(_init_head)

    @property
    def min_resolution(self) -> int:
        return self.output_stride  # at least one feature-map cell

    @property
    def output(self) -> Literal["logits", "labels"]:
        """What forward returns: "logits" (N, num_classes, H, W) (default), or "labels" (N, H, W), their argmax,
        computed band by band without the full-size logits (`segmentation.labels`; uint8 up to 256 classes).
        `for_inference` copies the setting: `seg.output = "labels"; for_inference(seg, splits=8)`."""
        return getattr(self, "_output", "logits")

    @output.setter
    def output(self, value: str) -> None:
        if value not in ("logits", "labels"):
            raise ValueError(f"output must be 'logits' or 'labels', got {value!r}")
        self._output = value

    def forward_head(self, features: list[torch.Tensor], image_size: tuple[int, int]) -> torch.Tensor:
        """features[0]: (N, 320·α, H/os, W/os) -> (N, num_classes, *image_size) logits (or labels, see `output`)."""
        logits = self.head(features[0])
        if self.output == "labels":
            from mobilenetv2.segmentation.labels import upsampled_labels

            return upsampled_labels(logits, tuple(image_size))
        return F.interpolate(logits, size=tuple(image_size), mode="bilinear", align_corners=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        feats = self.backbone.forward_features(x, self.taps)
        return self.forward_head([feats[name] for name in self.taps], (x.shape[-2], x.shape[-1]))

    def one_op_groups(self) -> list[list[str]]:
        """Sec. 5.1's fused units, named as `analysis.profile` names this model's layers."""
        return [[f"backbone.{n}" for n in group] for group in self.backbone.one_op_groups()[:1]]

    def reset_classifier(self, num_classes: int) -> None:
        """New, freshly initialised logits for another label set (fine-tuning)."""
        if num_classes < 2:
            raise ValueError(f"num_classes must be >= 2 (it counts the background), got {num_classes}")
        self.num_classes = num_classes
        self.head.logits = nn.Conv2d(self.head.logits.in_channels, num_classes, 1)
        _init_head(self.head.logits)


def _init_head(m: nn.Module) -> None:
    if isinstance(m, nn.Conv2d):
        if m.bias is not None:  # the logits conv
            nn.init.normal_(m.weight, 0, LOGITS_INIT_STD)
            nn.init.zeros_(m.bias)
        else:
            nn.init.kaiming_normal_(m.weight, mode="fan_out")
    elif isinstance(m, nn.BatchNorm2d):
        nn.init.ones_(m.weight)
        nn.init.zeros_(m.bias)
