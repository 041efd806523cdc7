"""Segmentation datasets: Pascal VOC 2012's layout and a plain `images/` + `masks/` layout.

Both yield `load(i) -> (PIL RGB image, mask)`, the mask a PIL "L" image of class indices (0 = background,
255 = ignore). VOC's `SegmentationClass/*.png` are palette PNGs whose indices are the labels; RGB masks in
the VOC colours are mapped back to indices. Images that cannot be decoded, masks that cannot be read, and
masks whose size differs from their image raise UserError at load time: the loader skips and counts them.
Ids without an image or mask are skipped (and counted) when the split is scanned.
"""

import logging
import os
from pathlib import Path

import numpy as np
from PIL import Image

from mobilenetv2.data.images import IMAGE_EXTENSIONS, open_image
from mobilenetv2.errors import UserError

log = logging.getLogger(__name__)

IGNORE_INDEX = 255
VOC_CLASSES = [
    "background", "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow",
    "diningtable", "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa", "train", "tvmonitor",
]  # fmt: skip
CLASS_FILES = ("classes.txt", "class_names.txt", "labels.txt")


def voc_palette() -> list[int]:
    """The VOC colour map (256 RGB triples, flattened): bit-interleaved class index; 255 is (224, 224, 192)."""
    palette = []
    for i in range(256):
        r = g = b = 0
        c = i
        for j in range(8):
            r |= ((c >> 0) & 1) << (7 - j)
            g |= ((c >> 1) & 1) << (7 - j)
            b |= ((c >> 2) & 1) << (7 - j)
            c >>= 3
        palette += [r, g, b]
    return palette


def save_mask(mask: np.ndarray, path: str | os.PathLike) -> None:
    """(H, W) uint8 class indices -> palette PNG (VOC colours), readable back as the same indices."""
    img = Image.fromarray(np.asarray(mask, dtype=np.uint8), mode="P")
    img.putpalette(voc_palette())
    img.save(path)


def read_mask(path: str | os.PathLike) -> Image.Image:
    """A mask file as an "L" image of class indices; UserError when it cannot be read."""
    try:
        with Image.open(path) as img:
            img.load()
            if img.mode in ("P", "L"):
                return Image.fromarray(np.asarray(img, dtype=np.uint8), mode="L")
            if img.mode in ("RGB", "RGBA"):
                return _rgb_to_indices(np.asarray(img.convert("RGB")), path)
            raise UserError(f"{path}: mask mode {img.mode} is not a label image (expected palette, L or VOC RGB)")
    except UserError:
        raise
    except FileNotFoundError:
        raise UserError(f"{path}: mask file is missing") from None
    except (OSError, ValueError, SyntaxError) as exc:
        raise UserError(f"{path}: not a readable mask ({type(exc).__name__}: {exc})") from None


def _rgb_to_indices(rgb: np.ndarray, path) -> Image.Image:
    palette = np.asarray(voc_palette(), dtype=np.int64).reshape(256, 3)
    keys = palette @ np.array([65536, 256, 1])
    lookup = {int(k): i for i, k in reversed(list(enumerate(keys)))}
    codes = rgb.astype(np.int64) @ np.array([65536, 256, 1])
    uniq, inverse = np.unique(codes, return_inverse=True)
    missing = [u for u in uniq.tolist() if u not in lookup]
    if missing:
        raise UserError(f"{path}: RGB mask colour #{missing[0]:06x} is not a VOC class colour")
    indices = np.array([lookup[u] for u in uniq.tolist()], dtype=np.uint8)[inverse].reshape(rgb.shape[:2])
    return Image.fromarray(indices, mode="L")


class _MaskPairs:
    """(image path, mask path) pairs with class names; `load` checks the pair agrees."""

    class_names: list[str]

    def __init__(self) -> None:
        self.samples: list[tuple[str, str]] = []
        self.skipped: list[str] = []

    def __len__(self) -> int:
        return len(self.samples)

    def load(self, index: int) -> tuple[Image.Image, Image.Image]:
        image_path, mask_path = self.samples[index]
        image = open_image(image_path)
        mask = read_mask(mask_path)
        if mask.size != image.size:
            raise UserError(
                f"{mask_path}: mask is {mask.size[0]}x{mask.size[1]}, its image {image.size[0]}x{image.size[1]}"
            )
        return image, mask

    def describe(self, index: int) -> str:
        return self.samples[index][0]

    def name(self, index: int) -> str:
        """The image's file name without extension (predicted masks are saved under it)."""
        return Path(self.samples[index][0]).stem

    def _finish(self, where: Path) -> None:
        if self.skipped:
            log.warning(
                "%s: skipped %d ids without image or mask (first: %s)", where, len(self.skipped), self.skipped[0]
            )
        if not self.samples:
            raise UserError(f"{where}: no image/mask pairs found")


class VOCSegmentation(_MaskPairs):
    """`root/JPEGImages/<id>.jpg`, `root/SegmentationClass/<id>.png`, `root/ImageSets/Segmentation/<split>.txt`.
    `root` may also be a VOCdevkit folder (VOC2012/ inside) or hold VOCdevkit/."""

    def __init__(self, root: str | os.PathLike, split: str = "train", *, class_names: list[str] | None = None):
        super().__init__()
        self.root = find_voc_root(Path(root))
        self.class_names = list(class_names or read_class_names(self.root) or VOC_CLASSES)
        list_file = self.root / "ImageSets" / "Segmentation" / f"{split}.txt"
        if not list_file.is_file():
            raise UserError(f"{list_file}: no such split list (expected ImageSets/Segmentation/{split}.txt)")
        for line in list_file.read_text().split():
            image = self.root / "JPEGImages" / f"{line}.jpg"
            if not image.is_file():
                image = next((p for p in self.root.glob(f"JPEGImages/{line}.*") if p.is_file()), image)
            mask = self.root / "SegmentationClass" / f"{line}.png"
            if image.is_file() and mask.is_file():
                self.samples.append((str(image), str(mask)))
            else:
                self.skipped.append(str(mask if image.is_file() else image))
        self._finish(list_file)


class MaskFolder(_MaskPairs):
    """`root/images/<name>.<ext>` with `root/masks/<name>.png`; class names, one per line with the background
    first, from `classes.txt` in root or its parent (else "0", "1", ... up to the largest label seen)."""

    def __init__(self, root: str | os.PathLike, *, class_names: list[str] | None = None) -> None:
        super().__init__()
        self.root = Path(root)
        images, masks = self.root / "images", self.root / "masks"
        if not images.is_dir() or not masks.is_dir():
            raise UserError(f"{self.root}: expected images/ and masks/ folders")
        for path in sorted(images.iterdir()):
            if path.name.startswith(".") or not path.is_file():
                continue
            mask = masks / f"{path.stem}.png"
            if path.suffix.lower() in IMAGE_EXTENSIONS and mask.is_file() and path.stat().st_size > 0:
                self.samples.append((str(path), str(mask)))
            else:
                self.skipped.append(str(path))
        self._finish(self.root)
        names = class_names or read_class_names(self.root) or read_class_names(self.root.parent)
        self.class_names = list(names) if names else self._names_from_masks()

    def _names_from_masks(self) -> list[str]:
        top = 0
        for _, mask in self.samples:
            try:
                values = np.unique(np.asarray(read_mask(mask)))
            except UserError:
                continue
            values = values[values != IGNORE_INDEX]
            top = max(top, int(values.max()) if values.size else 0)
        log.warning("%s: no classes.txt; naming classes 0..%d from the masks", self.root, top)
        return [str(i) for i in range(max(top + 1, 2))]


def read_class_names(folder: Path) -> list[str] | None:
    for name in CLASS_FILES:
        path = folder / name
        if path.is_file():
            names = [line.strip() for line in path.read_text().splitlines() if line.strip()]
            if len(names) < 2:
                raise UserError(f"{path}: needs at least two class names (the background first)")
            return names
    return None


def find_voc_root(root: Path) -> Path:
    for candidate in (root, root / "VOC2012", root / "VOCdevkit" / "VOC2012"):
        if (candidate / "ImageSets" / "Segmentation").is_dir():
            return candidate
    raise UserError(f"{root}: not a VOC folder (no ImageSets/Segmentation/)")


def is_voc(root: str | os.PathLike) -> bool:
    try:
        find_voc_root(Path(root))
    except UserError:
        return False
    return True


def segmentation_split(root: str | os.PathLike, split: str, *, class_names: list[str] | None = None) -> _MaskPairs:
    """One split of a segmentation folder: VOC (`ImageSets/Segmentation/<split>.txt`), `root/<split>/images`,
    or `root` itself holding images/ + masks/."""
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"no such data folder: {root}")
    if is_voc(root):
        return VOCSegmentation(root, split, class_names=class_names)
    if (root / split / "images").is_dir():
        return MaskFolder(root / split, class_names=class_names)
    if (root / "images").is_dir():
        return MaskFolder(root, class_names=class_names)
    raise UserError(f"{root}: expected a VOC layout, {split}/images + {split}/masks, or images/ + masks/")
