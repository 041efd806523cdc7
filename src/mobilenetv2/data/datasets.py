"""Datasets: ImageFolder (`train/` and `val/`, the ImageNet layout), the built-in UCI digits, synthetic images.

Every dataset yields PIL RGB images and integer labels through `load(index) -> (image, label)`; samples
that cannot be decoded raise UserError, which the loader turns into a skipped, counted file.
"""

import logging
import os
from pathlib import Path

import numpy as np
from PIL import Image

from mobilenetv2.data.images import IMAGE_EXTENSIONS, open_image, walk_files

log = logging.getLogger(__name__)

DIGITS_VAL_FRACTION = 0.2
DIGITS_SPLIT_SEED = 0


class ImageFolder:
    """`root/<class>/<image>`; classes are the sorted subfolder names. Zero-byte files and files without an
    image extension are skipped at scan time (with a warning and counted); undecodable ones when loaded."""

    def __init__(self, root: str | os.PathLike, *, class_names: list[str] | None = None) -> None:
        self.root = Path(root)
        if not self.root.is_dir():
            raise FileNotFoundError(f"no such data folder: {self.root}")
        found = sorted(d.name for d in self.root.iterdir() if d.is_dir() and not d.name.startswith("."))
        if not found:
            raise ValueError(f"{self.root} has no class subfolders (expected {self.root}/<class>/<image files>)")
        if class_names is not None and found != class_names:
            extra = sorted(set(found) - set(class_names)) or sorted(set(class_names) - set(found))
            raise ValueError(f"{self.root}: its classes differ from the training split's (e.g. {extra[0]!r})")
        self.class_names = found
        self.samples: list[tuple[str, int]] = []
        self.skipped: list[str] = []
        for label, name in enumerate(found):
            for path, problem in walk_files(self.root / name):
                if problem is None:
                    self._add(Path(path), label)
                elif not Path(path).name.startswith("."):  # dangling or looping symlinks, FIFOs: counted
                    self.skipped.append(path)
        if self.skipped:
            log.warning("%s: skipped %d unusable files (first: %s)", self.root, len(self.skipped), self.skipped[0])
        if not self.samples:
            raise ValueError(f"{self.root} contains no readable images")

    def _add(self, path: Path, label: int) -> None:
        if path.name.startswith("."):
            return
        if path.suffix.lower() not in IMAGE_EXTENSIONS or path.stat().st_size == 0:
            self.skipped.append(str(path))
            return
        self.samples.append((str(path), label))

    def __len__(self) -> int:
        return len(self.samples)

    def load(self, index: int) -> tuple[Image.Image, int]:
        path, label = self.samples[index]
        return open_image(path), label

    def describe(self, index: int) -> str:
        return self.samples[index][0]


def digits_split(split: str) -> tuple[np.ndarray, np.ndarray]:
    """The UCI digits (sklearn, 1,797 8x8 images with values 0..16) split 80/20, stratified, fixed seed."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    if split not in ("train", "val"):
        raise ValueError(f"split must be 'train' or 'val', got {split!r}")
    digits = load_digits()
    images = np.clip(digits.images * (255.0 / 16.0) + 0.5, 0, 255).astype(np.uint8)  # (1797, 8, 8)
    x_train, x_val, y_train, y_val = train_test_split(
        images,
        digits.target,
        test_size=DIGITS_VAL_FRACTION,
        random_state=DIGITS_SPLIT_SEED,
        stratify=digits.target,
    )
    return (x_train, y_train) if split == "train" else (x_val, y_val)


class Digits:
    """The built-in real dataset: 1,437 train / 360 val 8x8 grayscale digits, served as RGB images."""

    class_names = [str(i) for i in range(10)]
    skipped: list[str] = []

    def __init__(self, split: str) -> None:
        self.images, self.labels = digits_split(split)

    def __len__(self) -> int:
        return len(self.labels)

    def load(self, index: int) -> tuple[Image.Image, int]:
        return Image.fromarray(self.images[index], mode="L").convert("RGB"), int(self.labels[index])

    def describe(self, index: int) -> str:
        return f"digits[{index}]"


class Synthetic:
    """Deterministic random images for tests and benchmarks: a class-dependent color plus noise, so a model
    can learn it. Image i depends only on (seed, split, i)."""

    skipped: list[str] = []

    def __init__(self, *, size: int, num_classes: int, resolution: tuple[int, int], split: str, seed: int = 0):
        self.size, self.num_classes, self.resolution = size, num_classes, resolution
        self.seed = seed * 2 + (split == "val")
        self.class_names = [f"class_{i}" for i in range(num_classes)]
        self.colors = np.random.default_rng(seed).integers(0, 256, size=(num_classes, 3))

    def __len__(self) -> int:
        return self.size

    def load(self, index: int) -> tuple[Image.Image, int]:
        rng = np.random.default_rng((self.seed, index))
        label = index % self.num_classes
        h, w = self.resolution
        noise = rng.normal(0, 40, size=(h, w, 3))
        pixels = np.clip(self.colors[label] + noise, 0, 255).astype(np.uint8)
        return Image.fromarray(pixels, mode="RGB"), label

    def describe(self, index: int) -> str:
        return f"synthetic[{index}]"
