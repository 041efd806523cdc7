"""Raw SSD outputs -> detections: decode, clip to the image, per-class NMS, cap per class and in total.

TF OD API (ssdlite_mobilenet_v2_coco.config, `post_processing`): sigmoid scores, background slot dropped,
score threshold 1e-8, IoU 0.6, 100 per class, 100 in all; NMS runs on the decoded boxes, which are clipped to the
image window after it (post_processing.multiclass_non_max_suppression: sort, clip_to_window dropping the boxes
left without area, then the 100 best). torchvision's SSDLite: softmax, threshold 0.001, the 300 best candidates
per class, IoU 0.55, 300 in all, boxes clipped before NMS.
"""

from dataclasses import dataclass
from typing import Literal

import torch
from torchvision.ops import batched_nms

from mobilenetv2.detection.coder import decode

Detections = dict[str, torch.Tensor]  # {"boxes": (K, 4) xyxy in input pixels, "scores": (K,), "labels": (K,)}


@dataclass(frozen=True)
class PostProcessing:
    score: Literal["sigmoid", "softmax"] = "sigmoid"
    score_threshold: float = 1e-8
    iou_threshold: float = 0.6
    max_per_class: int = 100
    max_detections: int = 100
    candidates_per_class: int | None = None  # keep only this many best-scoring anchors per class before NMS
    clip_after_nms: bool = True  # TF: clip after NMS and drop empty boxes; torchvision: clip before NMS


TF = PostProcessing()
TORCHVISION = PostProcessing("softmax", 0.001, 0.55, 300, 300, 300, clip_after_nms=False)


def class_scores(logits: torch.Tensor, score: str) -> torch.Tensor:
    """(..., C) logits with the background in slot 0 -> (..., C - 1) foreground scores."""
    probs = torch.sigmoid(logits) if score == "sigmoid" else torch.softmax(logits, dim=-1)
    return probs[..., 1:]


def postprocess(
    box_codes: torch.Tensor,
    logits: torch.Tensor,
    anchors: torch.Tensor,
    image_size: tuple[int, int],
    config: PostProcessing = TF,
) -> list[Detections]:
    """(N, A, 4) codes, (N, A, C) logits, (A, 4) normalized anchors -> one dict per image.

    Labels are 1..C-1 (0 is the background); boxes are clipped to the (H, W) image and sorted by score.
    """
    h, w = image_size
    scale = torch.tensor([w, h, w, h], dtype=box_codes.dtype, device=box_codes.device)
    boxes_all = decode(box_codes.float(), anchors)
    if not config.clip_after_nms:
        boxes_all = boxes_all.clamp(0.0, 1.0)
    boxes_all = boxes_all * scale  # (N, A, 4) pixels
    scores_all = class_scores(logits.float(), config.score)  # (N, A, C - 1)
    return [_one_image(b, s, config, scale) for b, s in zip(boxes_all, scores_all, strict=True)]


def _one_image(boxes: torch.Tensor, scores: torch.Tensor, config: PostProcessing, size: torch.Tensor) -> Detections:
    # Greedy NMS decides each box from the higher-scoring ones only, so NMS over a class's k best anchors
    # returns a prefix of the NMS over all of them: when that prefix already holds `max_per_class` boxes it is
    # the exact answer. k grows until it is (TF's result, at a fraction of the cost of NMS over every anchor).
    fixed = config.candidates_per_class
    k = fixed if fixed is not None else 4 * config.max_per_class
    while True:
        k = min(k, scores.shape[0])
        result, full = _nms_top_k(boxes, scores, k, config, size)
        if fixed is not None or full or k == scores.shape[0]:
            return result
        k *= 4


def _nms_top_k(
    boxes: torch.Tensor, scores: torch.Tensor, k: int, config: PostProcessing, size: torch.Tensor
) -> tuple[Detections, bool]:
    """NMS over each class's k best anchors; also whether every class that could have more did reach its cap."""
    num_classes = scores.shape[1]
    top_scores, anchor_idx = scores.topk(k, dim=0)  # (k, C - 1), sorted down each column
    class_idx = torch.arange(num_classes, device=scores.device).expand(k, -1)
    keep = top_scores > config.score_threshold
    anchor_idx, class_idx, flat = anchor_idx[keep], class_idx[keep], top_scores[keep]
    cand = boxes[anchor_idx]
    kept = batched_nms(cand, flat, class_idx, config.iou_threshold)  # sorted by decreasing score
    labels = class_idx[kept]
    kept_per_class = torch.bincount(labels, minlength=num_classes)
    # A class is settled when it reached its cap, or when all of its above-threshold anchors were candidates.
    exhausted = top_scores[-1] <= config.score_threshold
    full = bool(((kept_per_class >= config.max_per_class) | exhausted).all())
    kept = kept[_rank_in_class(labels) < config.max_per_class]
    out = cand[kept]
    if config.clip_after_nms:  # (w, h, w, h) window; boxes left without area are dropped, as TF does
        out = torch.minimum(out.clamp(min=0.0), size)
        nonempty = (out[:, 2] - out[:, 0]) * (out[:, 3] - out[:, 1]) > 0
        kept, out = kept[nonempty], out[nonempty]
    kept, out = kept[: config.max_detections], out[: config.max_detections]
    return {"boxes": out, "scores": flat[kept], "labels": class_idx[kept] + 1}, full


def _rank_in_class(labels: torch.Tensor) -> torch.Tensor:
    """Position of each entry among the entries of its class, in the given order."""
    if labels.numel() == 0:
        return labels
    order = torch.sort(labels, stable=True).indices
    sorted_labels = labels[order]
    _, counts = torch.unique_consecutive(sorted_labels, return_counts=True)
    starts = torch.repeat_interleave(torch.cumsum(counts, 0) - counts, counts)
    rank = torch.empty_like(labels)
    rank[order] = torch.arange(labels.numel(), device=labels.device) - starts
    return rank
