"""The SSD training loss, TF's (the default) or torchvision's.

TF (ssdlite_mobilenet_v2_coco.config `loss`): weighted sigmoid cross-entropy over all C slots (background
included) + smooth L1 (delta 1) on the matched anchors' codes; hard example mining by classification loss:
NMS at IoU 0.99 over the decoded predictions (scored by their loss) keeps at most 3000 anchors per image,
then every positive among them and the hardest max(3 · positives, 3) negatives; both weights 1, the sum
divided by the number of matched anchors in the batch.
torchvision (models/detection/ssd.py): softmax cross-entropy, the 3 · positives hardest negatives, smooth L1,
divided by the number of matches.
"""

from typing import Literal

import torch
import torch.nn.functional as F
from torchvision.ops import nms

from mobilenetv2.detection.coder import decode, encode
from mobilenetv2.detection.matcher import match

NUM_HARD_EXAMPLES = 3000
MINING_IOU = 0.99
NEGATIVES_PER_POSITIVE = 3
MIN_NEGATIVES = 3


def ssd_loss(
    box_codes: torch.Tensor,
    class_logits: torch.Tensor,
    anchors: torch.Tensor,
    targets: list[dict[str, torch.Tensor]],
    image_size: tuple[int, int],
    style: Literal["tf", "torchvision"] = "tf",
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """(N, A, 4) codes, (N, A, C) logits, (A, 4) normalized anchors, targets with pixel xyxy "boxes" and
    "labels" in 1..C-1 -> (loss, {"loss_box", "loss_cls", "matches"}: the normalized parts and the count).

    Matching and mining run per image; the losses are computed for the whole batch at once."""
    h, w = image_size
    scale = torch.tensor([w, h, w, h], dtype=torch.float32, device=anchors.device)
    codes, logits = box_codes.float(), class_logits.float()
    n, num_anchors = codes.shape[:2]
    labels = torch.zeros(n, num_anchors, dtype=torch.long, device=anchors.device)
    positive = torch.zeros(n, num_anchors, dtype=torch.bool, device=anchors.device)
    matched = anchors.expand(n, -1, -1).clone()  # (N, A, 4): each positive anchor's ground-truth box
    for i, target in enumerate(targets):
        gt = target["boxes"].to(anchors.device, torch.float32) / scale
        matches = match(gt, anchors)
        pos = matches >= 0
        positive[i] = pos
        labels[i, pos] = target["labels"].to(anchors.device)[matches[pos]]
        matched[i, pos] = gt[matches[pos]]
    loc = torch.zeros(n, num_anchors, device=anchors.device)
    if positive.any():
        codes_target = encode(matched[positive], anchors.expand(n, -1, -1)[positive])
        loc[positive] = F.smooth_l1_loss(codes[positive], codes_target, beta=1.0, reduction="none").sum(-1)
    if style == "tf":
        onehot = F.one_hot(labels, logits.shape[-1]).to(logits.dtype)
        cls = F.binary_cross_entropy_with_logits(logits, onehot, reduction="none").sum(-1)  # (N, A)
        selected = torch.zeros_like(positive)
        for i in range(n):
            selected[i, _tf_mining(codes[i], anchors, cls[i], positive[i])] = True
    else:
        cls = F.cross_entropy(logits.flatten(0, 1), labels.flatten(), reduction="none").view(n, num_anchors)
        selected = _torchvision_mining(cls, positive)
    num_matches = int(positive.sum())
    normalizer = max(num_matches, 1)
    loss_box, loss_cls = loc[selected].sum() / normalizer, cls[selected].sum() / normalizer
    parts = {"loss_box": loss_box.detach(), "loss_cls": loss_cls.detach()}
    parts["matches"] = torch.tensor(float(num_matches), device=anchors.device)
    return loss_box + loss_cls, parts


@torch.no_grad()
def _tf_mining(codes: torch.Tensor, anchors: torch.Tensor, cls: torch.Tensor, positive: torch.Tensor) -> torch.Tensor:
    """Indices of the anchors TF's HardExampleMiner keeps (core/losses.py, loss_type CLASSIFICATION)."""
    boxes = decode(codes.detach(), anchors)
    selected = nms(boxes, cls.detach(), MINING_IOU)[:NUM_HARD_EXAMPLES]  # by decreasing loss
    is_pos = positive[selected]
    max_negatives = max(MIN_NEGATIVES, int(NEGATIVES_PER_POSITIVE * int(is_pos.sum())))
    keep = is_pos | (torch.cumsum((~is_pos).long(), 0) <= max_negatives)
    return selected[keep]


@torch.no_grad()
def _torchvision_mining(cls: torch.Tensor, positive: torch.Tensor) -> torch.Tensor:
    """(N, A) mask: every positive and, per image, the 3 · positives negatives of highest loss (torchvision's SSD)."""
    negative_loss = cls.detach().masked_fill(positive, -float("inf"))
    rank = negative_loss.argsort(dim=1, descending=True).argsort(dim=1)  # 0 = the hardest negative
    num_negative = NEGATIVES_PER_POSITIVE * positive.sum(dim=1, keepdim=True)
    return positive | (rank < num_negative)
