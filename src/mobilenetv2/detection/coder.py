"""The Faster R-CNN box coder with SSD's scales (10, 10, 5, 5), in TF's (ty, tx, th, tw) order.

ty = 10 · (cy - cy_a) / h_a, tx = 10 · (cx - cx_a) / w_a, th = 5 · log(h / h_a), tw = 5 · log(w / w_a)
(box_coders/faster_rcnn_box_coder.py, with its 1e-8 guard on sizes). The order is TF's so that converted
predictor weights need no permutation.
"""

import math

import torch
from torchvision.ops import box_convert

SCALES = (10.0, 10.0, 5.0, 5.0)
EPS = 1e-8
MAX_LOG_SIZE = math.log(1000.0 / 16)  # decoding clamps th/5, tw/5 here (as torchvision does): no inf boxes


def encode(boxes: torch.Tensor, anchors: torch.Tensor, scales: tuple[float, ...] = SCALES) -> torch.Tensor:
    """(..., 4) xyxy boxes matched to (..., 4) xyxy anchors -> (..., 4) codes (ty, tx, th, tw)."""
    cx, cy, w, h = box_convert(boxes, "xyxy", "cxcywh").unbind(-1)
    acx, acy, aw, ah = box_convert(anchors, "xyxy", "cxcywh").unbind(-1)
    w, h, aw, ah = w + EPS, h + EPS, aw + EPS, ah + EPS
    sy, sx, sh, sw = scales
    return torch.stack(
        [sy * (cy - acy) / ah, sx * (cx - acx) / aw, sh * torch.log(h / ah), sw * torch.log(w / aw)], dim=-1
    )


def decode(codes: torch.Tensor, anchors: torch.Tensor, scales: tuple[float, ...] = SCALES) -> torch.Tensor:
    """(..., 4) codes (ty, tx, th, tw) and xyxy anchors -> (..., 4) xyxy boxes."""
    acx, acy, aw, ah = box_convert(anchors, "xyxy", "cxcywh").unbind(-1)
    sy, sx, sh, sw = scales
    ty, tx, th, tw = codes.unbind(-1)
    h = torch.exp((th / sh).clamp(max=MAX_LOG_SIZE)) * ah
    w = torch.exp((tw / sw).clamp(max=MAX_LOG_SIZE)) * aw
    cy, cx = ty / sy * ah + acy, tx / sx * aw + acx
    return box_convert(torch.stack([cx, cy, w, h], dim=-1), "cxcywh", "xyxy")
