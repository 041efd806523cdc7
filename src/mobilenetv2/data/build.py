"""Pick a dataset by name and the preprocessing that goes with it."""

from mobilenetv2.data.datasets import Digits, ImageFolder, Synthetic
from mobilenetv2.data.loader import Source
from mobilenetv2.data.transforms import preprocessing_for
from mobilenetv2.preprocessing import SIGNED_UNIT_MEAN, SIGNED_UNIT_STD, Preprocessing

DATASETS = ("digits", "synthetic", "imagefolder")
DIGITS_RESOLUTION = 32  # 8x8 digits upsampled; the smallest input MobileNetV2's stride of 32 accepts
SYNTHETIC_CLASSES = 10


def default_resolution(dataset: str) -> int:
    return DIGITS_RESOLUTION if dataset == "digits" else 224


def dataset_preprocessing(dataset: str, preset: str, resolution: tuple[int, int]) -> Preprocessing:
    """Digits are upsampled whole (no crop: a crop would cut strokes off); other sets use the preset."""
    if dataset == "digits":
        return Preprocessing(input_size=resolution, resize=min(resolution), mean=SIGNED_UNIT_MEAN, std=SIGNED_UNIT_STD)
    return preprocessing_for(preset, resolution)


def build_sources(
    dataset: str,
    *,
    data: str | None,
    resolution: tuple[int, int],
    synthetic_size: int = 256,
    seed: int = 0,
) -> tuple[Source, Source]:
    """(train, val) sources. `imagefolder` reads `data/train` and `data/val`."""
    if dataset == "digits":
        return Digits("train"), Digits("val")
    if dataset == "synthetic":
        common = {"num_classes": SYNTHETIC_CLASSES, "resolution": resolution, "seed": seed}
        return (
            Synthetic(size=synthetic_size, split="train", **common),
            Synthetic(size=max(synthetic_size // 4, SYNTHETIC_CLASSES), split="val", **common),
        )
    if dataset == "imagefolder":
        if not data:
            raise ValueError("--dataset imagefolder needs --data DIR (a folder with train/ and val/)")
        train = ImageFolder(f"{data}/train")
        return train, ImageFolder(f"{data}/val", class_names=train.class_names)
    raise ValueError(f"--dataset must be one of {', '.join(DATASETS)}, got {dataset!r}")


def build_eval_source(dataset: str, *, data: str | None, resolution: tuple[int, int], split: str = "val") -> Source:
    """One split for evaluation; for `imagefolder`, `data` may be the split folder itself or hold `val/`."""
    if dataset == "imagefolder":
        if not data:
            raise ValueError("--data DIR is required to evaluate on an image folder")
        from pathlib import Path

        root = Path(data) / split if (Path(data) / split).is_dir() else Path(data)
        return ImageFolder(root)
    train, val = build_sources(dataset, data=data, resolution=resolution)
    return train if split == "train" else val
