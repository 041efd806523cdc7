"""Feature taps: use a classification network as a backbone (detection, segmentation)."""

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn


@dataclass(frozen=True)
class FeatureInfo:
    """A tensor a backbone can hand out: its name, channel count and reduction (input size / its size)."""

    name: str
    channels: int
    reduction: int


class FeaturesMixin:
    """Adds `forward_features` to a model with `stem`, `blocks` (InvertedResidual) and `head`.

    Tap names: "stem", "blocks.{i}" (output of bottleneck i, 0-based), "blocks.{i}.expansion" (the ReLU6
    output of its 1x1 expansion; TF-slim's `layer_{i+2}/expansion_output`), "head". SSDLite's first tap
    (Sec. 6.2) is "blocks.13.expansion": 576 channels at output stride 16 for width 1.
    """

    feature_info: list[FeatureInfo]

    def feature_names(self) -> list[str]:
        return [f.name for f in self.feature_info]

    def forward_features(self, x: torch.Tensor, names: Sequence[str]) -> dict[str, torch.Tensor]:
        known = set(self.feature_names())
        unknown = [n for n in names if n not in known]
        if unknown:
            raise ValueError(f"unknown feature {unknown[0]!r}; known: {', '.join(self.feature_names())}")
        wanted, out = set(names), {}
        x = self.stem(x)
        if "stem" in wanted:
            out["stem"] = x
        expansion = None
        chained = getattr(self, "shortcut", "bottleneck") == "expansion"
        for i, block in enumerate(self.blocks):
            if len(out) == len(wanted):
                return out
            if chained or f"blocks.{i}.expansion" in wanted:
                x, expansion = block.forward_with_expansion(x, expansion)
            else:
                x = block(x)  # through __call__, so forward hooks (analysis.profile) see the block
            if f"blocks.{i}.expansion" in wanted:
                out[f"blocks.{i}.expansion"] = expansion
            if f"blocks.{i}" in wanted:
                out[f"blocks.{i}"] = x
        if "head" in wanted:
            out["head"] = self.head(x)
        return out


class FeatureExtractor(nn.Module):
    """Wraps a model so `forward` returns the chosen taps as a list, in the order asked for."""

    def __init__(self, model: nn.Module, names: Sequence[str]) -> None:
        super().__init__()
        known = {f.name: f for f in model.feature_info}
        missing = [n for n in names if n not in known]
        if missing:
            raise ValueError(f"unknown feature {missing[0]!r}; known: {', '.join(known)}")
        self.model, self.names = model, list(names)
        self.feature_info = [known[n] for n in self.names]

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        feats = self.model.forward_features(x, self.names)
        return [feats[n] for n in self.names]
