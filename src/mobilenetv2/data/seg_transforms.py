"""Joint image + mask transforms for segmentation, as TF DeepLab's `input_preprocess.preprocess_image_and_label`.

Training: random scale from {0.5, 0.75, ..., 2.0} (bilinear for the image, nearest for the mask), pad to the
crop size with the mean pixel (image) and the ignore label (mask) at the bottom/right, random crop, random
left-right flip. Evaluation: no resizing; pad to the eval size the same way (TF pads to 513x513). Randomness
comes only from the generator handed in, so a sample's augmentation depends on (seed, epoch, index).
Outputs: (3, H, W) float32 normalized with the preprocessing's mean/std, and a (H, W) int64 mask.
"""

from dataclasses import dataclass

import numpy as np
import torch
import torchvision.transforms.functional as TF
from PIL import Image

from mobilenetv2.data.segmentation import IGNORE_INDEX
from mobilenetv2.errors import UserError
from mobilenetv2.preprocessing import Preprocessing

# TF DeepLab's train flags: min_scale_factor 0.5, max_scale_factor 2.0, scale_factor_step_size 0.25.
SCALE_RANGE = (0.5, 2.0)
SCALE_STEP = 0.25


def scale_values(low: float, high: float, step: float) -> list[float]:
    """The discrete scales TF draws from uniformly: low, low + step, ..., high (just low when low == high)."""
    if not 0 < low <= high:
        raise ValueError(f"scale range must satisfy 0 < min <= max, got ({low}, {high})")
    if step <= 0 or low == high:
        return [low] if low == high else []
    count = int(round((high - low) / step)) + 1
    return [round(low + i * step, 6) for i in range(count)]


def mask_tensor(mask: Image.Image) -> torch.Tensor:
    return torch.from_numpy(np.array(mask, dtype=np.uint8)).long()  # (H, W)


def _to_tensor(img: Image.Image, pre: Preprocessing) -> torch.Tensor:
    return TF.normalize(TF.to_tensor(img), list(pre.mean), list(pre.std))


def _mean_pixel(pre: Preprocessing) -> tuple[int, ...]:
    return tuple(int(round(m * 255)) for m in pre.mean)


def pad_pair(img: Image.Image, mask: Image.Image, size: tuple[int, int], fill: tuple[int, ...]):
    """Pad bottom/right up to `size` (H, W): the image with `fill` (the mean pixel), the mask with 255."""
    h, w = size
    if img.height >= h and img.width >= w:
        return img, mask
    new_w, new_h = max(w, img.width), max(h, img.height)
    padded = Image.new("RGB", (new_w, new_h), fill)
    padded.paste(img, (0, 0))
    padded_mask = Image.new("L", (new_w, new_h), IGNORE_INDEX)
    padded_mask.paste(mask, (0, 0))
    return padded, padded_mask


def _check_pair(img: Image.Image, mask: Image.Image) -> None:
    if mask.size != img.size:
        raise UserError(f"mask is {mask.size[0]}x{mask.size[1]}, its image {img.size[0]}x{img.size[1]}")


@dataclass
class SegTrainTransform:
    """(PIL image, PIL mask, generator) -> (image tensor, mask tensor) of the crop size."""

    pre: Preprocessing
    crop: tuple[int, int] = (513, 513)
    scale_range: tuple[float, float] = SCALE_RANGE
    scale_step: float = SCALE_STEP
    hflip: bool = True

    def __post_init__(self) -> None:
        self.scales = scale_values(*self.scale_range, self.scale_step)

    def __call__(self, img: Image.Image, mask: Image.Image, generator: torch.Generator):
        _check_pair(img, mask)
        if self.scales:
            scale = self.scales[int(torch.randint(len(self.scales), (1,), generator=generator))]
        else:  # step 0: continuous uniform scale
            u = float(torch.rand(1, generator=generator))
            scale = self.scale_range[0] + u * (self.scale_range[1] - self.scale_range[0])
        if scale != 1.0:
            w, h = max(1, round(img.width * scale)), max(1, round(img.height * scale))
            img = img.resize((w, h), Image.BILINEAR)
            mask = mask.resize((w, h), Image.NEAREST)
        img, mask = pad_pair(img, mask, self.crop, _mean_pixel(self.pre))
        ch, cw = self.crop
        top = int(torch.randint(img.height - ch + 1, (1,), generator=generator))
        left = int(torch.randint(img.width - cw + 1, (1,), generator=generator))
        box = (left, top, left + cw, top + ch)
        img, mask = img.crop(box), mask.crop(box)
        if self.hflip and float(torch.rand(1, generator=generator)) < 0.5:
            img, mask = img.transpose(Image.FLIP_LEFT_RIGHT), mask.transpose(Image.FLIP_LEFT_RIGHT)
        return _to_tensor(img, self.pre), mask_tensor(mask)


@dataclass
class SegEvalTransform:
    """(PIL image, PIL mask) -> tensors padded to `pre.input_size` (the eval crop). An image larger than that
    is first shrunk to fit (keeping its aspect ratio; the mask by nearest neighbour). `pad=False` keeps the
    native size (batch-1 evaluation)."""

    pre: Preprocessing
    pad: bool = True

    def __call__(self, img: Image.Image, mask: Image.Image):
        _check_pair(img, mask)
        if self.pad:
            h, w = self.pre.input_size
            if img.height > h or img.width > w:
                s = min(h / img.height, w / img.width)
                size = (max(1, int(img.width * s)), max(1, int(img.height * s)))
                img, mask = img.resize(size, Image.BILINEAR), mask.resize(size, Image.NEAREST)
            img, mask = pad_pair(img, mask, (h, w), _mean_pixel(self.pre))
        return _to_tensor(img, self.pre), mask_tensor(mask)


def image_tensor(img: Image.Image, pre: Preprocessing) -> torch.Tensor:
    """A prediction input: the whole image at its own size, normalized."""
    return _to_tensor(img, pre)
