"""TF's argmax matcher (matchers/argmax_matcher.py) with the SSD settings: IoU >= 0.5 matches, and every
ground-truth box is forced onto its best anchor even below the threshold (`force_match_for_each_row`)."""

import torch
from torchvision.ops import box_iou

MATCH_THRESHOLD = 0.5


def match(gt_boxes: torch.Tensor, anchors: torch.Tensor, threshold: float = MATCH_THRESHOLD) -> torch.Tensor:
    """(K, 4) ground truth, (A, 4) anchors (both xyxy, same frame) -> (A,) index of the matched box or -1."""
    if gt_boxes.numel() == 0:
        return torch.full((anchors.shape[0],), -1, dtype=torch.long, device=anchors.device)
    iou = box_iou(gt_boxes, anchors)  # (K, A)
    best_iou, best_gt = iou.max(dim=0)
    matches = torch.where(best_iou >= threshold, best_gt, torch.full_like(best_gt, -1))
    # Forced matches; when two boxes share a best anchor the first box keeps it, as in TF (assigned last).
    best_anchor = iou.argmax(dim=1)  # (K,)
    for k in reversed(range(best_anchor.shape[0])):
        matches[best_anchor[k]] = k
    return matches
