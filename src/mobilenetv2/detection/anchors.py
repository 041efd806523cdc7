"""SSD anchors as the TF Object Detection API's multiple-grid generator makes them.

`create_ssd_anchors` (anchor_generators/multiple_grid_anchor_generator.py): scales linear from `min_scale` to
`max_scale` over the feature maps, aspect ratios {1, 2, 1/2, 3, 1/3} plus one box of ratio 1 at the scale
sqrt(s_k · s_k+1); with `reduce_lowest` the first map has only (0.1, 1), (s, 2), (s, 1/2). At 300x300 the maps
are 19, 10, 5, 3, 2, 1 cells wide: 19²·3 + (10² + 5² + 3² + 2² + 1)·6 = 1917 anchors.
Anchors are normalized xyxy boxes (x in [0, 1] of the width, y of the height), ordered (map, row, column,
box), the order the predictors' outputs are flattened in.
"""

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class AnchorSpec:
    num_layers: int = 6
    min_scale: float = 0.2
    max_scale: float = 0.95
    aspect_ratios: tuple[float, ...] = (1.0, 2.0, 0.5, 3.0, 1.0 / 3.0)
    interpolated_scale_aspect_ratio: float = 1.0
    reduce_lowest: bool = True


def box_specs(spec: AnchorSpec) -> list[list[tuple[float, float]]]:
    """(scale, aspect ratio) of every box at one location, per layer."""
    n = spec.num_layers
    scales = [spec.min_scale + (spec.max_scale - spec.min_scale) * i / (n - 1) for i in range(n)] + [1.0]
    layers = []
    for i, (scale, scale_next) in enumerate(zip(scales[:-1], scales[1:], strict=True)):
        if i == 0 and spec.reduce_lowest:
            layers.append([(0.1, 1.0), (scale, 2.0), (scale, 0.5)])
            continue
        boxes = [(scale, ar) for ar in spec.aspect_ratios]
        if spec.interpolated_scale_aspect_ratio > 0:
            boxes.append((math.sqrt(scale * scale_next), spec.interpolated_scale_aspect_ratio))
        layers.append(boxes)
    return layers


def boxes_per_location(spec: AnchorSpec) -> list[int]:
    return [len(b) for b in box_specs(spec)]


def grid_anchors(
    spec: AnchorSpec,
    feature_sizes: Sequence[tuple[int, int]],
    image_size: tuple[int, int],
    *,
    device: torch.device | None = None,
) -> torch.Tensor:
    """(A, 4) normalized xyxy anchors for maps of `feature_sizes` (H, W) over an image of `image_size` (H, W).

    As TF does, the base anchor is square in pixels: on a non-square image the normalized sizes are scaled by
    min(H, W) / H and min(H, W) / W. Centers sit at (i + 0.5) / H_map, (j + 0.5) / W_map.
    """
    if len(feature_sizes) != spec.num_layers:
        raise ValueError(f"expected {spec.num_layers} feature maps, got {len(feature_sizes)}")
    im_h, im_w = image_size
    base_h, base_w = min(image_size) / im_h, min(image_size) / im_w
    out = []
    for (fh, fw), boxes in zip(feature_sizes, box_specs(spec), strict=True):
        scale = torch.tensor([s for s, _ in boxes], dtype=torch.float64)
        ratio = torch.tensor([r for _, r in boxes], dtype=torch.float64).sqrt()
        heights, widths = scale / ratio * base_h, scale * ratio * base_w  # (B,)
        cy = (torch.arange(fh, dtype=torch.float64) + 0.5) / fh
        cx = (torch.arange(fw, dtype=torch.float64) + 0.5) / fw
        cy, cx = torch.meshgrid(cy, cx, indexing="ij")  # (fh, fw)
        cy, cx = cy[..., None].expand(fh, fw, len(boxes)), cx[..., None].expand(fh, fw, len(boxes))
        h, w = heights.expand(fh, fw, -1), widths.expand(fh, fw, -1)
        layer = torch.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], dim=-1)  # (fh, fw, B, 4)
        out.append(layer.reshape(-1, 4))
    return torch.cat(out).to(dtype=torch.float32, device=device)
