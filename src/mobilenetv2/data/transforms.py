"""Image transforms: resize + center crop for evaluation, random-resized crop + flip for training.

Two presets: "torchvision" (crop 224 of 256, ImageNet mean/std) and "inception" (TF-slim's inception
preprocessing: central crop 0.875, pixels scaled to [-1, 1], distorted crops covering 5-100% of the image).
Training randomness comes from an explicit `torch.Generator`, so a sample's augmentation depends only on
(seed, epoch, index): the same for any number of loader workers or processes, and after a resume.
"""

import math
from collections.abc import Sequence

import torch
import torchvision.transforms.functional as TF
from PIL import Image
from torchvision.transforms import InterpolationMode

from mobilenetv2.preprocessing import SIGNED_UNIT_MEAN, SIGNED_UNIT_STD, Preprocessing, default_preprocessing

PRESETS = ("torchvision", "inception")
# Area range of the training crop: torchvision's RandomResizedCrop default, TF-slim's distorted_bounding_box_crop.
CROP_SCALE = {"torchvision": (0.08, 1.0), "inception": (0.05, 1.0)}


def preprocessing_for(preset: str, resolution: tuple[int, int]) -> Preprocessing:
    """Eval preprocessing of a preset at `resolution` (H, W); both presets crop 87.5% of the shorter side."""
    if preset not in PRESETS:
        raise ValueError(f"unknown preprocessing preset {preset!r}; expected one of {', '.join(PRESETS)}")
    pre = default_preprocessing(resolution)
    if preset == "inception":
        return Preprocessing(input_size=pre.input_size, resize=pre.resize, mean=SIGNED_UNIT_MEAN, std=SIGNED_UNIT_STD)
    return pre


def _interpolation(name: str) -> InterpolationMode:
    try:
        return InterpolationMode(name)
    except ValueError:
        raise ValueError(f"unknown interpolation {name!r}") from None


def _normalize(img: Image.Image, pre: Preprocessing) -> torch.Tensor:
    return TF.normalize(TF.to_tensor(img), list(pre.mean), list(pre.std))  # (3, H, W) float32


class EvalTransform:
    """PIL RGB -> (3, H, W) float32: resize the shorter side to `pre.resize`, center-crop `pre.input_size`."""

    def __init__(self, pre: Preprocessing) -> None:
        self.pre = pre
        self.interpolation = _interpolation(pre.interpolation)

    def __call__(self, img: Image.Image) -> torch.Tensor:
        img = TF.resize(img, self.pre.resize, interpolation=self.interpolation)
        img = TF.center_crop(img, list(self.pre.input_size))
        return _normalize(img, self.pre)


def eval_transform(pre: Preprocessing) -> EvalTransform:
    return EvalTransform(pre)


def random_crop_box(
    width: int, height: int, scale: Sequence[float], ratio: Sequence[float], generator: torch.Generator
) -> tuple[int, int, int, int]:
    """(top, left, h, w) of a crop covering `scale` of the area with aspect ratio in `ratio` (log-uniform);
    after 10 failed tries, the largest central crop within the ratio range (the usual fallback)."""
    area = width * height
    log_ratio = (math.log(ratio[0]), math.log(ratio[1]))
    for _ in range(10):
        u = torch.rand(4, generator=generator).tolist()
        target = area * (scale[0] + u[0] * (scale[1] - scale[0]))
        aspect = math.exp(log_ratio[0] + u[1] * (log_ratio[1] - log_ratio[0]))
        w = round(math.sqrt(target * aspect))
        h = round(math.sqrt(target / aspect))
        if 0 < w <= width and 0 < h <= height:
            return int(u[2] * (height - h + 1)), int(u[3] * (width - w + 1)), h, w
    in_ratio = width / height
    if in_ratio < min(ratio):
        w, h = width, round(width / min(ratio))
    elif in_ratio > max(ratio):
        w, h = round(height * max(ratio)), height
    else:
        w, h = width, height
    return (height - h) // 2, (width - w) // 2, h, w


class TrainTransform:
    """PIL RGB -> (3, H, W) float32: random-resized crop to `pre.input_size`, optional horizontal flip."""

    def __init__(
        self,
        pre: Preprocessing,
        *,
        scale: Sequence[float] = (0.08, 1.0),
        ratio: Sequence[float] = (3 / 4, 4 / 3),
        hflip: bool = True,
    ) -> None:
        if not 0 < scale[0] <= scale[1] <= 1:
            raise ValueError(f"crop scale must satisfy 0 < min <= max <= 1, got {tuple(scale)}")
        self.pre, self.scale, self.ratio, self.hflip = pre, tuple(scale), tuple(ratio), hflip
        self.interpolation = _interpolation(pre.interpolation)

    def __call__(self, img: Image.Image, generator: torch.Generator | None = None) -> torch.Tensor:
        if generator is None:
            generator = torch.Generator().manual_seed(int(torch.randint(2**62, (1,)).item()))
        top, left, h, w = random_crop_box(img.width, img.height, self.scale, self.ratio, generator)
        img = TF.resized_crop(img, top, left, h, w, list(self.pre.input_size), interpolation=self.interpolation)
        if self.hflip and torch.rand(1, generator=generator).item() < 0.5:
            img = TF.hflip(img)
        return _normalize(img, self.pre)


def train_transform(
    pre: Preprocessing,
    *,
    scale: Sequence[float] = (0.08, 1.0),
    ratio: Sequence[float] = (3 / 4, 4 / 3),
    hflip: bool = True,
) -> TrainTransform:
    return TrainTransform(pre, scale=scale, ratio=ratio, hflip=hflip)
