"""The bottleneck residual block of Table 1: expand (1x1, ReLU6) -> depthwise 3x3 (ReLU6) -> project (1x1, linear)."""

from typing import Literal

import torch
from torch import nn

from mobilenetv2.layers.conv_norm_act import ConvNormAct, Padding

BottleneckActivation = Literal["linear", "relu6"]
Shortcut = Literal["bottleneck", "expansion", "none"]


class InvertedResidual(nn.Module):
    """k -> k' channels at stride s through an expansion of `hidden` channels (t·k, rounded to 8).

    `bottleneck_activation="relu6"` puts a ReLU6 after the projection (Figure 6a's non-linear bottleneck).
    `shortcut` picks where the residual lives (Figure 6b):
      - "bottleneck": x + F(x) between the thin tensors, when stride is 1 and k == k' (the paper's choice);
      - "expansion": the previous block's expansion output is added to this block's expansion output (the
        classic residual placement between the wide tensors); the model decides which blocks qualify and sets
        `skip_from_previous_expansion`;
      - "none": no residual at all.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        hidden_channels: int,
        *,
        stride: int = 1,
        dilation: int = 1,
        bottleneck_activation: BottleneckActivation = "linear",
        shortcut: Shortcut = "bottleneck",
        padding: Padding = "torch",
        bn_eps: float = 1e-5,
        bn_momentum: float = 0.1,
    ) -> None:
        super().__init__()
        norm = {"padding": padding, "bn_eps": bn_eps, "bn_momentum": bn_momentum}
        self.in_channels, self.out_channels, self.hidden_channels = in_channels, out_channels, hidden_channels
        self.stride, self.dilation = stride, dilation
        # t = 1 (the first bottleneck) has no expansion: the depthwise acts on the input directly.
        self.expand = (
            ConvNormAct(in_channels, hidden_channels, 1, activation="relu6", **norm)
            if hidden_channels != in_channels
            else None
        )
        self.depthwise = ConvNormAct(
            hidden_channels,
            hidden_channels,
            3,
            stride=stride,
            dilation=dilation,
            groups=hidden_channels,
            activation="relu6",
            **norm,
        )
        project_act = None if bottleneck_activation == "linear" else "relu6"
        self.project = ConvNormAct(hidden_channels, out_channels, 1, activation=project_act, **norm)
        self.has_skip = shortcut == "bottleneck" and stride == 1 and in_channels == out_channels
        self.skip_from_previous_expansion = False

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_with_expansion(x, None)[0]

    def forward_with_expansion(
        self, x: torch.Tensor, previous_expansion: torch.Tensor | None
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Returns (block output, expansion output or None when t = 1)."""
        expansion = self.expand(x) if self.expand is not None else None  # (N, t·k, H, W)
        if expansion is not None and self.skip_from_previous_expansion and previous_expansion is not None:
            expansion = expansion + previous_expansion
        out = self.project(self.depthwise(expansion if expansion is not None else x))  # (N, k', H/s, W/s)
        if self.has_skip:
            out = out + x
        return out, expansion
