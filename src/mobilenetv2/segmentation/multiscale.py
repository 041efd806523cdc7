"""Evaluation-time multi-scale + flip ("MF", Table 7): logits of rescaled (and mirrored) inputs, each resized
back to the input's size, averaged (TF DeepLab `predict_labels_multi_scale`, merge by mean)."""

from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F

MF_SCALES = (0.5, 0.75, 1.0, 1.25, 1.5, 1.75)


def _scaled(size: int, scale: float) -> int:
    return max(1, int((size - 1) * scale + 1))  # TF DeepLab's scale_dimension


@torch.no_grad()
def predict_logits(
    model: Callable[[torch.Tensor], torch.Tensor],
    images: torch.Tensor,
    *,
    scales: Sequence[float] = (1.0,),
    flip: bool = False,
    min_size: int = 1,
) -> torch.Tensor:
    """(N, 3, H, W) -> (N, C, H, W) logits averaged over `scales` (and their left-right mirror with `flip`).

    `scales=(1.0,)` without flip is exactly `model(images)`. Scaled sizes below `min_size` are raised to it.
    """
    if not scales:
        raise ValueError("scales must not be empty")
    h, w = images.shape[-2:]
    total, count = None, 0
    for scale in scales:
        if scale <= 0:
            raise ValueError(f"scales must be > 0, got {scale}")
        size = (max(min_size, _scaled(h, scale)), max(min_size, _scaled(w, scale)))
        x = images if size == (h, w) else F.interpolate(images, size=size, mode="bilinear", align_corners=False)
        for mirrored in (False, True) if flip else (False,):
            logits = model(x.flip(-1) if mirrored else x)
            if mirrored:
                logits = logits.flip(-1)
            if logits.shape[-2:] != (h, w):
                logits = F.interpolate(logits, size=(h, w), mode="bilinear", align_corners=False)
            total = logits.float() if total is None else total + logits.float()
            count += 1
    return total / count
