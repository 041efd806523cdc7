"""Detection augmentation and resizing, the TF OD API's SSD recipe.

Training: SSD random crop (`ssd_random_crop`: one of 7 operations picked at random, min object covered
0 / .1 / .3 / .5 / .7 / .9 / 1, aspect ratio 0.5-2, area 0.1-1, up to 100 tries, the image kept whole with
probability 0.15; boxes kept when that fraction of them lies in the crop, then clipped), horizontal flip
(p = 0.5), and a resize to the fixed input size (TF's `fixed_shape_resizer`: aspect ratio not kept).
Evaluation: the resize only. Boxes are xyxy pixels of the image they go with; all randomness comes from the
torch.Generator the loader hands in.
"""

import torch
from PIL import Image
from torchvision.ops import box_area

from mobilenetv2.preprocessing import Preprocessing

MIN_OBJECT_COVERED = (0.0, 0.1, 0.3, 0.5, 0.7, 0.9, 1.0)
ASPECT_RANGE = (0.5, 2.0)
AREA_RANGE = (0.1, 1.0)
KEEP_WHOLE = 0.15
MAX_ATTEMPTS = 100

Target = dict[str, torch.Tensor]


def _uniform(gen: torch.Generator, low: float = 0.0, high: float = 1.0) -> float:
    return low + (high - low) * float(torch.rand((), generator=gen))


def _coverage(boxes: torch.Tensor, crop: torch.Tensor) -> torch.Tensor:
    """(K,) fraction of each box's area inside the crop (x1, y1, x2, y2)."""
    lt = torch.maximum(boxes[:, :2], crop[:2])
    rb = torch.minimum(boxes[:, 2:], crop[2:])
    inter = (rb - lt).clamp(min=0).prod(dim=1)
    return inter / box_area(boxes).clamp(min=1e-9)


def ssd_random_crop(img: Image.Image, target: Target, gen: torch.Generator) -> tuple[Image.Image, Target]:
    if _uniform(gen) < KEEP_WHOLE:
        return img, target
    covered = MIN_OBJECT_COVERED[int(torch.randint(len(MIN_OBJECT_COVERED), (), generator=gen))]
    w, h = img.size
    boxes = target["boxes"]
    for _ in range(MAX_ATTEMPTS):
        area, aspect = _uniform(gen, *AREA_RANGE), _uniform(gen, *ASPECT_RANGE)
        cw, ch = (area * aspect) ** 0.5 * w, (area / aspect) ** 0.5 * h
        if cw > w or ch > h or cw < 1 or ch < 1:
            continue
        x0, y0 = _uniform(gen, 0, w - cw), _uniform(gen, 0, h - ch)
        crop = torch.tensor([x0, y0, x0 + cw, y0 + ch])
        cover = _coverage(boxes, crop) if len(boxes) else torch.ones(0)
        if len(boxes) and float(cover.max()) < covered:
            continue
        keep = (cover >= covered) & (cover > 0)
        left, top = round(x0), round(y0)
        right, bottom = max(left + 1, round(x0 + cw)), max(top + 1, round(y0 + ch))
        shift = torch.tensor([left, top, left, top], dtype=torch.float32)
        kept = boxes[keep] - shift
        kept[:, 0::2] = kept[:, 0::2].clamp(0, right - left)
        kept[:, 1::2] = kept[:, 1::2].clamp(0, bottom - top)
        nonempty = (kept[:, 2] > kept[:, 0]) & (kept[:, 3] > kept[:, 1])
        out = dict(target, boxes=kept[nonempty], labels=target["labels"][keep][nonempty])
        return img.crop((left, top, right, bottom)), out
    return img, target


def hflip(img: Image.Image, target: Target) -> tuple[Image.Image, Target]:
    boxes = target["boxes"].clone()
    boxes[:, [0, 2]] = img.width - target["boxes"][:, [2, 0]]
    return img.transpose(Image.FLIP_LEFT_RIGHT), dict(target, boxes=boxes)


def resize_to_tensor(img: Image.Image, target: Target, pre: Preprocessing) -> tuple[torch.Tensor, Target]:
    """Resize to `pre.input_size` (H, W) with the boxes, scale to [0, 1] and normalize with mean/std."""
    h, w = pre.input_size
    sx, sy = w / img.width, h / img.height
    resample = Image.BILINEAR if pre.interpolation == "bilinear" else Image.BICUBIC
    x = torch.frombuffer(bytearray(img.resize((w, h), resample).tobytes()), dtype=torch.uint8)
    x = x.view(h, w, 3).permute(2, 0, 1).float().div_(255.0)
    mean = torch.tensor(pre.mean).view(3, 1, 1)
    std = torch.tensor(pre.std).view(3, 1, 1)
    boxes = target["boxes"] * torch.tensor([sx, sy, sx, sy])
    return (x - mean) / std, dict(target, boxes=boxes)


class DetectionTrainTransform:
    def __init__(self, pre: Preprocessing, *, crop: bool = True, flip: bool = True) -> None:
        self.pre, self.crop, self.flip = pre, crop, flip

    def __call__(self, img: Image.Image, target: Target, gen: torch.Generator) -> tuple[torch.Tensor, Target]:
        if self.crop:
            img, target = ssd_random_crop(img, target, gen)
        if self.flip and _uniform(gen) < 0.5:
            img, target = hflip(img, target)
        return resize_to_tensor(img, target, self.pre)


class DetectionEvalTransform:
    """Resize only; the target keeps `orig_size` (H, W) so detections can be mapped back to the file."""

    def __init__(self, pre: Preprocessing) -> None:
        self.pre = pre

    def __call__(self, img: Image.Image, target: Target) -> tuple[torch.Tensor, Target]:
        orig = torch.tensor([img.height, img.width])
        x, target = resize_to_tensor(img, target, self.pre)
        return x, dict(target, orig_size=orig)
