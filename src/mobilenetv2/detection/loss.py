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
    "labels" in 1..C-1 -> (loss, {"loss_box", "loss_cls", "matches"}: the normalized parts and the count)."""
    h, w = image_size
    scale = torch.tensor([w, h, w, h], dtype=torch.float32, device=anchors.device)
    loc_total = box_codes.new_zeros(())
    cls_total = box_codes.new_zeros(())
    num_matches = 0
    for codes, logits, target in zip(box_codes.float(), class_logits.float(), targets, strict=True):
        gt = target["boxes"].to(anchors.device, torch.float32) / scale
        matches = match(gt, anchors)
        positive = matches >= 0
        labels = torch.zeros(anchors.shape[0], dtype=torch.long, device=anchors.device)
        labels[positive] = target["labels"].to(anchors.device)[matches[positive]]
        loc = torch.zeros(anchors.shape[0], device=anchors.device)
        if positive.any():
            codes_target = encode(gt[matches[positive]], anchors[positive])
            loc[positive] = F.smooth_l1_loss(codes[positive], codes_target, beta=1.0, reduction="none").sum(-1)
        if style == "tf":
            onehot = F.one_hot(labels, logits.shape[-1]).to(logits.dtype)
            cls = F.binary_cross_entropy_with_logits(logits, onehot, reduction="none").sum(-1)  # (A,)
            selected = _tf_mining(codes, anchors, cls, positive)
        else:
            cls = F.cross_entropy(logits, labels, reduction="none")
            selected = _torchvision_mining(cls, positive)
        loc_total = loc_total + loc[selected].sum()
        cls_total = cls_total + cls[selected].sum()
        num_matches += int(positive.sum())
    normalizer = max(num_matches, 1)
    loss_box, loss_cls = loc_total / normalizer, cls_total / normalizer
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
    """Every positive and the 3 · positives negatives of highest loss (torchvision's SSD)."""
    negative_loss = cls.detach().masked_fill(positive, -float("inf"))
    num_negative = NEGATIVES_PER_POSITIVE * int(positive.sum())
    hardest = negative_loss.argsort(descending=True)[:num_negative]
    return torch.cat([positive.nonzero().flatten(), hardest])
