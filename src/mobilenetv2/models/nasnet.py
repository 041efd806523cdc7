"""NASNet-A Mobile (Zoph et al., CVPR 2018, arXiv:1707.07012), the "4 @ 1056" network of its Table 2.

A MobileNetV2 Table 4 baseline. The cells are the paper's Figure 4; the wiring facts (hidden-state order,
the ImageNet stem of two reduction cells, factorized reduction, ReLU before every conv) follow the official
TF-slim `nets/nasnet`. Training-only parts are left out: the auxiliary head and drop-path.
"""

from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

Op = Literal["sep_3x3", "sep_5x5", "sep_7x7", "avg_3x3", "max_3x3", "identity"]


@dataclass(frozen=True)
class Combination:
    """One of a cell's five blocks (Figure 4): op(hidden state `left`) + op(hidden state `right`).

    Hidden states: 0 = this cell's input, 1 = the cell before it, 2.. = earlier combinations of this cell.
    """

    left: int
    left_op: Op
    right: int
    right_op: Op


@dataclass(frozen=True)
class CellSpec:
    combinations: tuple[Combination, ...]
    output: tuple[int, ...]  # hidden states concatenated into the cell's output


# Figure 4 left: the normal cell (output 6F channels).
NORMAL_CELL = CellSpec(
    combinations=(
        Combination(0, "sep_5x5", 1, "sep_3x3"),
        Combination(1, "sep_5x5", 1, "sep_3x3"),
        Combination(0, "avg_3x3", 1, "identity"),
        Combination(1, "avg_3x3", 1, "avg_3x3"),
        Combination(0, "sep_3x3", 0, "identity"),
    ),
    output=(1, 2, 3, 4, 5, 6),
)
# Figure 4 right: the reduction cell; ops on states 0 and 1 have stride 2 (output 4F channels).
REDUCTION_CELL = CellSpec(
    combinations=(
        Combination(0, "sep_5x5", 1, "sep_7x7"),
        Combination(0, "max_3x3", 1, "sep_7x7"),
        Combination(0, "avg_3x3", 1, "sep_5x5"),
        Combination(3, "identity", 2, "avg_3x3"),
        Combination(2, "sep_3x3", 0, "max_3x3"),
    ),
    output=(3, 4, 5, 6),
)
BN_EPS = 1e-3  # slim's NASNet batch norm


def conv_bn(in_channels: int, out_channels: int, *, stride: int = 1, relu_first: bool = True) -> nn.Sequential:
    layers = [nn.ReLU()] if relu_first else []
    layers += [
        nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=False),
        nn.BatchNorm2d(out_channels, eps=BN_EPS),
    ]
    return nn.Sequential(*layers)


def pointwise(in_channels: int, out_channels: int) -> nn.Conv2d:
    conv = nn.Conv2d(in_channels, out_channels, 1, bias=False)
    conv.after_depthwise = True  # read by reset_parameters
    return conv


def separable_stack(in_channels: int, out_channels: int, kernel: int, stride: int) -> nn.Sequential:
    """slim's `separable_KxK_2`: twice (ReLU -> depthwise KxK -> pointwise 1x1 -> BN), the first strided."""
    layers: list[nn.Module] = []
    for i in range(2):
        ch = in_channels if i == 0 else out_channels
        layers += [
            nn.ReLU(),
            nn.Conv2d(ch, ch, kernel, stride=stride if i == 0 else 1, padding=kernel // 2, groups=ch, bias=False),
            pointwise(ch, out_channels),
            nn.BatchNorm2d(out_channels, eps=BN_EPS),
        ]
    return nn.Sequential(*layers)


def make_op(op: Op, in_channels: int, out_channels: int, stride: int) -> nn.Module:
    if op.startswith("sep_"):
        return separable_stack(in_channels, out_channels, int(op[-1]), stride)
    if op == "identity":
        same = stride == 1 and in_channels == out_channels
        return nn.Identity() if same else conv_bn(in_channels, out_channels, stride=stride)
    pool = (
        nn.AvgPool2d(3, stride=stride, padding=1, count_include_pad=False)  # TF 'SAME' pooling ignores padding
        if op == "avg_3x3"
        else nn.MaxPool2d(3, stride=stride, padding=1)
    )
    if in_channels == out_channels:
        return pool
    return nn.Sequential(pool, conv_bn(in_channels, out_channels, relu_first=False))


class FactorizedReduction(nn.Module):
    """Halve H and W of the previous cell's output without losing every other pixel: two 1x1 convs on the
    even and the odd (shifted by one) pixel grids, concatenated, then BN."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.act = nn.ReLU()
        self.subsample = nn.AvgPool2d(1, stride=2)
        self.path1 = nn.Conv2d(in_channels, out_channels // 2, 1, bias=False)
        self.path2 = nn.Conv2d(in_channels, out_channels // 2, 1, bias=False)
        self.bn = nn.BatchNorm2d(out_channels // 2 * 2, eps=BN_EPS)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.act(x)
        shifted = F.pad(x, (0, 1, 0, 1))[:, :, 1:, 1:]  # (N, C, H, W), moved up-left by one pixel
        out = torch.cat([self.path1(self.subsample(x)), self.path2(self.subsample(shifted))], dim=1)
        return self.bn(out)  # (N, F, ceil(H/2), ceil(W/2))


class Cell(nn.Module):
    """A NASNet cell with F filters: both inputs brought to F channels at the cell's input size, then
    the five combinations, then the concat of `spec.output`.

    `previous`: "same" (1x1 if the width differs), "reduce" (the previous output is twice as large) or
    "raw" (the first stem cell, whose previous state is its own input, used unchanged as in slim).
    """

    def __init__(
        self,
        spec: CellSpec,
        in_channels: int,
        prev_channels: int,
        filters: int,
        *,
        reduction: bool,
        previous: Literal["same", "reduce", "raw"],
    ) -> None:
        super().__init__()
        self.spec = spec
        self.prep_input = conv_bn(in_channels, filters)
        if previous == "reduce":
            self.prep_previous: nn.Module = FactorizedReduction(prev_channels, filters)
        elif previous == "same" and prev_channels != filters:
            self.prep_previous = conv_bn(prev_channels, filters)
        else:
            self.prep_previous = nn.Identity()
        state_channels = [filters, prev_channels if previous == "raw" else filters]
        ops = []
        for comb in spec.combinations:
            for index, op in ((comb.left, comb.left_op), (comb.right, comb.right_op)):
                stride = 2 if reduction and index < 2 else 1
                ops.append(make_op(op, state_channels[index], filters, stride))
            state_channels.append(filters)
        self.ops = nn.ModuleList(ops)
        self.out_channels = filters * len(spec.output)

    def forward(self, x: torch.Tensor, previous: torch.Tensor) -> torch.Tensor:
        states = [self.prep_input(x), self.prep_previous(previous)]
        for i, comb in enumerate(self.spec.combinations):
            states.append(self.ops[2 * i](states[comb.left]) + self.ops[2 * i + 1](states[comb.right]))
        return torch.cat([states[i] for i in self.spec.output], dim=1)


class NASNetA(nn.Module):
    """NASNet-A for ImageNet: `stem` (conv 3x3/2, valid), `cells.0..1` (stem reduction cells at F/4, F/2),
    `num_cells` normal cells in three stacks with a reduction cell (filters x2) between stacks, ReLU, pool,
    `classifier`. Mobile: 12 cells, F = 44, so the last cells output 6·4F = 1056 channels."""

    def __init__(
        self,
        *,
        num_cells: int = 12,
        filters: int = 44,
        stem_multiplier: float = 1.0,
        num_classes: int = 1000,
        dropout: float = 0.5,
        in_channels: int = 3,
    ) -> None:
        super().__init__()
        if num_cells < 3 or num_cells % 3:
            raise ValueError(f"num_cells must be a positive multiple of 3, got {num_cells}")
        if num_classes < 1:
            raise ValueError(f"num_classes must be >= 1, got {num_classes}")
        if not 0 <= dropout < 1:
            raise ValueError(f"dropout must be in [0, 1), got {dropout}")
        self.num_classes = num_classes
        stem_ch = int(32 * stem_multiplier)
        self.stem = nn.Sequential(
            nn.Conv2d(in_channels, stem_ch, 3, stride=2, bias=False), nn.BatchNorm2d(stem_ch, eps=BN_EPS)
        )
        cells: list[Cell] = []
        # Channels of the last two outputs, and whether the older one is at twice the size (after a reduction).
        prev_ch, cur_ch, prev_larger = stem_ch, stem_ch, False
        plan = [(REDUCTION_CELL, filters // 4), (REDUCTION_CELL, filters // 2)]
        per_stack = num_cells // 3
        for stack in range(3):
            if stack > 0:
                plan.append((REDUCTION_CELL, filters * 2**stack))
            plan += [(NORMAL_CELL, filters * 2**stack)] * per_stack
        for i, (spec, f) in enumerate(plan):
            reduction = spec is REDUCTION_CELL
            previous = "raw" if i == 0 else ("reduce" if prev_larger else "same")
            cell = Cell(spec, cur_ch, prev_ch, f, reduction=reduction, previous=previous)
            cells.append(cell)
            prev_ch, cur_ch, prev_larger = cur_ch, cell.out_channels, reduction
        self.cells = nn.ModuleList(cells)
        self.num_features = cur_ch
        self.act = nn.ReLU()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Sequential(nn.Dropout(dropout), nn.Linear(cur_ch, num_classes))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                # slim's variance scaling (fan in); a pointwise conv right after a depthwise one has no ReLU
                # in between, so it gets the linear gain. Keeps an untrained network's activations O(1).
                linear_input = getattr(m, "after_depthwise", False)
                nn.init.kaiming_normal_(m.weight, mode="fan_in", nonlinearity="linear" if linear_input else "relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, 0, 0.01)
                nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)  # (N, 32, (H-1)/2, (W-1)/2)
        previous = x
        for cell in self.cells:
            previous, x = x, cell(x, previous)
        x = torch.flatten(self.pool(self.act(x)), 1)  # (N, 1056)
        return self.classifier(x)
