"""ShuffleNet v1 (Zhang et al., CVPR 2018, arXiv:1707.01083), built from the paper's Table 1.

A MobileNetV2 Table 4 baseline. Facts not in the paper's text follow the authors' official release
(megvii-model/ShuffleNet-Series, ShuffleNetV1): the 2.0x network doubles the stem to 48 channels while
1.5x keeps 24; a stride-2 unit's main branch outputs (out - in) channels so the concat gives `out`; the
classifier has no bias (which is why 2.0x counts 5,449,776 parameters, the release's "5.4M").
"""

from dataclasses import dataclass

import torch
from torch import nn

from mobilenetv2.layers import ConvNormAct
from mobilenetv2.layers.init import init_weights_


@dataclass(frozen=True)
class Stage:
    """One row group of Table 1: `repeats` units, the first at stride 2, all with `multiple` x the stage-2 width."""

    repeats: int
    multiple: int


# Table 1 (224x224 input): conv1 3x3/2 (24), max pool 3x3/2, then stages 2-4 at output stride 8/16/32.
STEM_CHANNELS = 24
TABLE_1 = (Stage(repeats=4, multiple=1), Stage(repeats=8, multiple=2), Stage(repeats=4, multiple=4))
# Table 1: output channels of stage 2 at 1x for each number of groups g.
STAGE2_CHANNELS = {1: 144, 2: 200, 3: 240, 4: 272, 8: 384}


def channel_shuffle(x: torch.Tensor, groups: int) -> torch.Tensor:
    """Sec. 3.1: (N, g·n, H, W) -> view (N, g, n, H, W) -> transpose -> flatten, so each group sees all groups."""
    return x.unflatten(1, (groups, -1)).transpose(1, 2).flatten(1, 2)


class ShuffleUnit(nn.Module):
    """Figure 2 (b)/(c): 1x1 GConv (BN, ReLU) -> shuffle -> 3x3 DWConv (BN, no ReLU) -> 1x1 GConv (BN).

    Stride 1: ReLU(x + main(x)). Stride 2: ReLU(concat(avgpool3x3/2(x), main(x))), the main branch
    producing out - in channels. The bottleneck is out / 4 channels.
    """

    def __init__(
        self, in_channels: int, out_channels: int, *, stride: int, groups: int, group_first: bool = True
    ) -> None:
        super().__init__()
        mid = out_channels // 4
        main_out = out_channels - in_channels if stride == 2 else out_channels
        first_groups = groups if group_first else 1
        for channels in (mid, main_out) + ((in_channels,) if group_first else ()):
            if channels % groups:
                raise ValueError(f"{channels} channels do not split into {groups} groups")
        self.stride, self.groups = stride, groups
        self.shuffle = group_first and groups > 1
        self.compress = ConvNormAct(in_channels, mid, 1, groups=first_groups, activation="relu")
        self.depthwise = ConvNormAct(mid, mid, 3, stride=stride, groups=mid, activation=None)
        self.expand = ConvNormAct(mid, main_out, 1, groups=groups, activation=None)
        self.shortcut_pool = nn.AvgPool2d(3, stride=2, padding=1) if stride == 2 else None
        self.act = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.compress(x)  # (N, out/4, H, W)
        if self.shuffle:
            out = channel_shuffle(out, self.groups)
        out = self.expand(self.depthwise(out))  # (N, out or out - in, H/s, W/s)
        if self.shortcut_pool is None:
            return self.act(out + x)
        return self.act(torch.cat([self.shortcut_pool(x), out], dim=1))


def stage_channels(groups: int, scale: float) -> tuple[int, ...]:
    if groups not in STAGE2_CHANNELS:
        raise ValueError(f"groups must be one of {sorted(STAGE2_CHANNELS)}, got {groups}")
    if not scale > 0:
        raise ValueError(f"scale must be > 0, got {scale}")
    return tuple(int(STAGE2_CHANNELS[groups] * scale) * stage.multiple for stage in TABLE_1)


class ShuffleNetV1(nn.Module):
    """ShuffleNet v1 `scale`x with g groups: `stem`, `maxpool`, `blocks.0..15` (units), pool, `classifier`."""

    def __init__(
        self,
        *,
        groups: int = 3,
        scale: float = 1.0,
        stem_channels: int = STEM_CHANNELS,
        num_classes: int = 1000,
        dropout: float = 0.0,
        in_channels: int = 3,
    ) -> None:
        super().__init__()
        if num_classes < 1:
            raise ValueError(f"num_classes must be >= 1, got {num_classes}")
        if not 0 <= dropout < 1:
            raise ValueError(f"dropout must be in [0, 1), got {dropout}")
        self.groups, self.scale, self.num_classes = groups, scale, num_classes
        self.stem = ConvNormAct(in_channels, stem_channels, 3, stride=2, activation="relu")
        self.maxpool = nn.MaxPool2d(3, stride=2, padding=1)
        blocks, in_ch = [], stem_channels
        for stage_index, (stage, out_ch) in enumerate(zip(TABLE_1, stage_channels(groups, scale), strict=True)):
            for i in range(stage.repeats):
                # Sec. 3.3: the first pointwise layer of stage 2 is not grouped (its input is only 24 wide).
                group_first = not (stage_index == 0 and i == 0)
                stride = 2 if i == 0 else 1
                blocks.append(ShuffleUnit(in_ch, out_ch, stride=stride, groups=groups, group_first=group_first))
                in_ch = out_ch
        self.blocks = nn.ModuleList(blocks)
        self.num_features = in_ch
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Sequential(nn.Dropout(dropout), nn.Linear(in_ch, num_classes, bias=False))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        init_weights_(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(self.stem(x))  # (N, stem, H/4, W/4)
        for block in self.blocks:
            x = block(x)
        x = torch.flatten(self.pool(x), 1)  # (N, 4·stage-2 width)
        return self.classifier(x)
