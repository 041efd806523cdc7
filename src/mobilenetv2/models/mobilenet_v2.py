"""MobileNetV2 (Sandler et al., CVPR 2018, arXiv:1801.04381), built from the paper's Table 2."""

from dataclasses import dataclass
from typing import Literal

import torch
from torch import nn

from mobilenetv2.layers import ConvNormAct, InvertedResidual
from mobilenetv2.layers.conv_norm_act import Padding
from mobilenetv2.layers.init import init_weights_
from mobilenetv2.layers.inverted_residual import BottleneckActivation, Shortcut
from mobilenetv2.models.features import FeatureInfo, FeaturesMixin


@dataclass(frozen=True)
class Bottleneck:
    """One row of Table 2: n layers of expansion t with c output channels, the first at stride s."""

    t: int
    c: int
    n: int
    s: int


# Table 2 (224x224 input): the stem is conv2d 3x3/2 with 32 channels, the head conv2d 1x1 with 1280.
STEM_CHANNELS = 32
HEAD_CHANNELS = 1280
TABLE_2 = (
    Bottleneck(t=1, c=16, n=1, s=1),
    Bottleneck(t=6, c=24, n=2, s=2),
    Bottleneck(t=6, c=32, n=3, s=2),
    Bottleneck(t=6, c=64, n=4, s=2),
    Bottleneck(t=6, c=96, n=3, s=1),
    Bottleneck(t=6, c=160, n=3, s=2),
    Bottleneck(t=6, c=320, n=1, s=1),
)
MIN_RESOLUTION = 32  # the network downsamples by 32; below that the last stage would see an empty map
# Bounds that keep a hostile weights header from allocating gigabytes before its tensors are checked; far above
# anything trained (the largest official width is 1.4; ImageNet-21k has 21,841 classes).
MAX_WIDTH = 8.0
MAX_CLASSES = 100_000
MAX_EXPANSION = 16.0


def make_divisible(value: float, divisor: int = 8) -> int:
    """Round to the nearest multiple of `divisor`, never below it and never more than 10% under `value`."""
    rounded = max(divisor, int(value + divisor / 2) // divisor * divisor)
    if rounded < 0.9 * value:
        rounded += divisor
    return rounded


def head_channels(width: float) -> int:
    """The last 1x1 conv keeps 1280 channels below width 1 (Sec. 4) and scales above it."""
    return make_divisible(HEAD_CHANNELS * width) if width > 1.0 else HEAD_CHANNELS


class MobileNetV2(FeaturesMixin, nn.Module):
    """MobileNetV2 with the paper's width multiplier, expansion, ablation switches and dilation.

    Module layout: `stem` (conv 3x3/2), `blocks.0..16` (bottlenecks), `head` (conv 1x1 -> 1280·max(1, α)),
    global average pool, `classifier` (dropout + linear).
    """

    def __init__(
        self,
        *,
        width: float = 1.0,
        num_classes: int = 1000,
        expansion: float = 6.0,
        dropout: float = 0.2,
        in_channels: int = 3,
        bottleneck_activation: BottleneckActivation = "linear",
        shortcut: Shortcut = "bottleneck",
        padding: Padding = "torch",
        bn_eps: float = 1e-5,
        bn_momentum: float = 0.1,
        output_stride: Literal[8, 16, 32] = 32,
        last_channels: int | None = None,
    ) -> None:
        super().__init__()
        validate_options(width, num_classes, expansion, dropout, bottleneck_activation, shortcut, output_stride)
        validate_norm(bn_eps, bn_momentum)
        if last_channels is not None and last_channels < 1:
            raise ValueError(f"last_channels must be >= 1, got {last_channels}")
        self.width, self.num_classes, self.output_stride = width, num_classes, output_stride
        self.shortcut = shortcut
        norm = {"padding": padding, "bn_eps": bn_eps, "bn_momentum": bn_momentum}

        stem_out = make_divisible(STEM_CHANNELS * width)
        self.stem = ConvNormAct(in_channels, stem_out, 3, stride=2, **norm)
        features = [FeatureInfo("stem", stem_out, 2)]

        # Once the running stride reaches output_stride, strided layers keep stride 1 and dilate the
        # depthwise convs that follow instead (TF-slim's / DeepLab's rule).
        current_stride, rate = 2, 1
        blocks: list[InvertedResidual] = []
        in_ch = stem_out
        for row in TABLE_2:
            out_ch = make_divisible(row.c * width)
            t = row.t if row.t == 1 else expansion
            for i in range(row.n):
                stride = row.s if i == 0 else 1
                if stride > 1 and current_stride >= output_stride:
                    layer_stride, layer_rate, rate = 1, rate, rate * stride
                else:
                    layer_stride, layer_rate = stride, rate
                    current_stride *= stride
                hidden = in_ch if t == 1 else make_divisible(in_ch * t)
                block = InvertedResidual(
                    in_ch,
                    out_ch,
                    hidden,
                    stride=layer_stride,
                    dilation=layer_rate,
                    bottleneck_activation=bottleneck_activation,
                    shortcut=shortcut,
                    **norm,
                )
                name = f"blocks.{len(blocks)}"
                if block.expand is not None:
                    features.append(FeatureInfo(f"{name}.expansion", hidden, current_stride // layer_stride))
                features.append(FeatureInfo(name, out_ch, current_stride))
                blocks.append(block)
                in_ch = out_ch
        if shortcut == "expansion":
            for prev, block in zip(blocks, blocks[1:], strict=False):
                block.skip_from_previous_expansion = (
                    prev.expand is not None
                    and block.expand is not None
                    and prev.stride == 1
                    and prev.hidden_channels == block.hidden_channels
                )
        self.blocks = nn.ModuleList(blocks)

        # last_channels overrides the paper's 1280·max(1, α) (TF's SSD feature extractors scale it with any α).
        self.num_features = last_channels or head_channels(width)
        self.head = ConvNormAct(in_ch, self.num_features, 1, **norm)
        features.append(FeatureInfo("head", self.num_features, current_stride))
        self.feature_info = features
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Sequential(nn.Dropout(dropout), nn.Linear(self.num_features, num_classes))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        init_weights_(self)

    def forward_body(self, x: torch.Tensor) -> torch.Tensor:
        """(N, 3, H, W) -> (N, 1280·max(1, α), H/os, W/os): everything before pooling."""
        x = self.stem(x)
        if self.shortcut == "expansion":
            expansion = None
            for block in self.blocks:
                x, expansion = block.forward_with_expansion(x, expansion)
        else:
            for block in self.blocks:
                x = block(x)
        return self.head(x)

    def forward_head(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(torch.flatten(self.pool(x), 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_body(x))

    def one_op_groups(self) -> list[list[str]]:
        """Units that run as one op under Sec. 5.1's split: the stem with a t = 1 first bottleneck (Table 3's
        note), and the last 1x1 conv with the pooling that consumes it (1280 channels only exist at 1x1)."""
        first = ["stem", "blocks.0"] if self.blocks[0].expand is None else ["stem"]
        return [first, ["head", "pool"]]

    def reset_classifier(self, num_classes: int) -> None:
        """Replace the classifier (fine-tuning to a new label set); the dropout is kept."""
        if num_classes < 1:
            raise ValueError(f"num_classes must be >= 1, got {num_classes}")
        self.num_classes = num_classes
        self.classifier[1] = nn.Linear(self.num_features, num_classes)
        nn.init.normal_(self.classifier[1].weight, 0, 0.01)
        nn.init.zeros_(self.classifier[1].bias)


def check_resolution(model: nn.Module, resolution: tuple[int, int]) -> None:
    """Raise ValueError when an input of `resolution` (H, W) is too small for the network."""
    smallest = getattr(model, "min_resolution", MIN_RESOLUTION)
    if min(resolution) < smallest:
        size = "x".join(str(r) for r in resolution)
        raise ValueError(f"resolution {size} is too small: this network needs at least {smallest}x{smallest}")


def validate_norm(bn_eps: float, bn_momentum: float) -> None:
    if not (isinstance(bn_eps, int | float) and 0 < bn_eps < 1):
        raise ValueError(f"bn_eps must be in (0, 1), got {bn_eps}")
    if not (isinstance(bn_momentum, int | float) and 0 <= bn_momentum <= 1):
        raise ValueError(f"bn_momentum must be in [0, 1], got {bn_momentum}")


def validate_options(
    width: float,
    num_classes: int,
    expansion: float,
    dropout: float,
    bottleneck_activation: str,
    shortcut: str,
    output_stride: int,
) -> None:
    """Raise ValueError naming the option, before any layer is built."""
    if not (isinstance(width, int | float) and 0 < width <= MAX_WIDTH):
        raise ValueError(f"width must be in (0, {MAX_WIDTH}], got {width}")
    if not (isinstance(num_classes, int) and 1 <= num_classes <= MAX_CLASSES):
        raise ValueError(f"num_classes must be an integer in [1, {MAX_CLASSES}], got {num_classes}")
    if not (isinstance(expansion, int | float) and 1 <= expansion <= MAX_EXPANSION):
        raise ValueError(f"expansion must be in [1, {MAX_EXPANSION}], got {expansion}")
    if not 0 <= dropout < 1:
        raise ValueError(f"dropout must be in [0, 1), got {dropout}")
    if bottleneck_activation not in ("linear", "relu6"):
        raise ValueError(f"bottleneck_activation must be 'linear' or 'relu6', got {bottleneck_activation!r}")
    if shortcut not in ("bottleneck", "expansion", "none"):
        raise ValueError(f"shortcut must be 'bottleneck', 'expansion' or 'none', got {shortcut!r}")
    if output_stride not in (8, 16, 32):
        raise ValueError(f"output_stride must be 8, 16 or 32, got {output_stride}")
