"""`--dataset digits-segmentation`: deterministic synthetic scenes with exact per-pixel labels, no download.

Each scene is a crop of one of the two photos scikit-learn ships (`load_sample_images`: china.jpg,
flower.jpg) with `max_digits` (default 1) UCI digits (sklearn `load_digits`, the classification demo's 80/20
split: train scenes use train digits, val scenes the held-out ones) pasted as cards: a square of a light random
colour with the digit inked on it in a dark one. The label of a pixel is exactly what was painted there: 0 background,
the card of digit d -> class d + 1; pixels whose 3x3 neighbourhood holds two labels form a 255 (ignore)
band at every object border. Scenes are written once in the VOC layout
(JPEGImages/, SegmentationClass/ palette PNGs, ImageSets/Segmentation/{train,val}.txt, classes.txt) under
a cache folder, so the same VOC loader reads them.
"""

import colorsys
import logging
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from mobilenetv2.data.segmentation import IGNORE_INDEX, save_mask

log = logging.getLogger(__name__)

CLASS_NAMES = ["background", *(str(d) for d in range(10))]
# Bump when the generator changes: the cache folder name includes it. 3: one 30-44 px card per scene (2: 1-3
# cards of 24-40 px; at output stride 16 a 24 px card is 1.5 logit cells, and the demo's mIoU stalled at 0.2).
VERSION = 3
INK_THRESHOLD = 0.4  # of the digit's 0..16 intensity range, after bilinear upsampling


@dataclass(frozen=True)
class SceneSpec:
    size: int = 64  # square scenes
    train: int = 1200
    val: int = 300
    digit_min: int = 30  # card side, pixels (the 8x8 digit upsampled on it): 2-3 logit cells at output stride 16
    digit_max: int = 44
    max_digits: int = 1  # cards per scene (each placed only where it overlaps no other)
    seed: int = 0

    def folder_name(self) -> str:
        return (
            f"digits-segmentation-v{VERSION}-{self.size}px-{self.train}-{self.val}"
            f"-d{self.digit_min}-{self.digit_max}x{self.max_digits}-s{self.seed}"
        )


def cache_dir() -> Path:
    root = os.environ.get("MOBILENETV2_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "mobilenetv2")
    return Path(root)


def ensure_digits_segmentation(spec: SceneSpec = SceneSpec(), root: str | os.PathLike | None = None) -> Path:
    """The scenes' VOC folder, generated on first use (atomically: a half-written folder is never used)."""
    target = Path(root) if root is not None else cache_dir() / spec.folder_name()
    if (target / "COMPLETE").is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".tmp-", dir=target.parent))
    try:
        write_scenes(tmp, spec)
        (tmp / "COMPLETE").write_text(f"{spec}\n")
        if target.exists():  # an incomplete folder from an interrupted run
            shutil.rmtree(target)
        os.replace(tmp, target)
    except FileExistsError:  # another process finished first
        shutil.rmtree(tmp, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return target


def write_scenes(root: Path, spec: SceneSpec) -> None:
    from sklearn.datasets import load_sample_images

    from mobilenetv2.data.datasets import digits_split

    photos = [np.asarray(p) for p in load_sample_images().images]
    for sub in ("JPEGImages", "SegmentationClass", "ImageSets/Segmentation"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    (root / "classes.txt").write_text("\n".join(CLASS_NAMES) + "\n")
    for split_id, (split, count) in enumerate((("train", spec.train), ("val", spec.val))):
        digits, labels = digits_split(split)
        ids = []
        for i in range(count):
            rng = np.random.default_rng((spec.seed, split_id, i))
            image, mask = render_scene(rng, photos, digits, labels, spec)
            name = f"{split}_{i:05d}"
            Image.fromarray(image).save(root / "JPEGImages" / f"{name}.jpg", quality=95)
            save_mask(mask, root / "SegmentationClass" / f"{name}.png")
            ids.append(name)
        (root / "ImageSets" / "Segmentation" / f"{split}.txt").write_text("\n".join(ids) + "\n")
    log.info("wrote %d + %d digit scenes to %s", spec.train, spec.val, root)


def render_scene(rng: np.random.Generator, photos, digits: np.ndarray, labels: np.ndarray, spec: SceneSpec):
    """(H, W, 3) uint8 image and (H, W) uint8 labels of one scene."""
    s = spec.size
    photo = photos[int(rng.integers(len(photos)))]
    side = int(rng.integers(s, min(photo.shape[:2]) // 2 + 1))
    top, left = int(rng.integers(photo.shape[0] - side + 1)), int(rng.integers(photo.shape[1] - side + 1))
    crop = Image.fromarray(photo[top : top + side, left : left + side]).resize((s, s), Image.BILINEAR)
    image = np.asarray(crop, dtype=np.float32).copy()
    label = np.zeros((s, s), dtype=np.uint8)
    placed: list[tuple[int, int, int]] = []
    for _ in range(int(rng.integers(1, spec.max_digits + 1))):
        k = int(rng.integers(len(labels)))
        d = int(rng.integers(spec.digit_min, min(spec.digit_max, s) + 1))
        spot = _free_spot(rng, s, d, placed)
        if spot is None:
            continue
        y, x = spot
        placed.append((y, x, d))
        # A card of a light colour with the digit inked on it in a dark one; the card is the object. (Thin
        # strokes alone are not representable by logits at output stride 8 upsampled bilinearly.)
        card = _colour(rng, saturation=(0.15, 0.45), value=(0.8, 1.0))
        ink_colour = _colour(rng, saturation=(0.5, 1.0), value=(0.05, 0.4))
        margin = max(1, d // 8)
        image[y : y + d, x : x + d] = card
        ink = _ink(digits[k], d - 2 * margin)
        image[y + margin : y + d - margin, x + margin : x + d - margin][ink] = ink_colour
        label[y : y + d, x : x + d] = int(labels[k]) + 1
    return np.clip(image + 0.5, 0, 255).astype(np.uint8), with_ignore_band(label)


def _colour(rng: np.random.Generator, *, saturation: tuple[float, float], value: tuple[float, float]) -> np.ndarray:
    sat = saturation[0] + (saturation[1] - saturation[0]) * float(rng.random())
    val = value[0] + (value[1] - value[0]) * float(rng.random())
    return np.array(colorsys.hsv_to_rgb(float(rng.random()), sat, val)) * 255.0


def _ink(digit: np.ndarray, size: int) -> np.ndarray:
    """The digit's pixels at `size` x `size`: bilinear upsampling of the 8x8 intensities, thresholded."""
    up = Image.fromarray(digit.astype(np.float32), mode="F").resize((size, size), Image.BILINEAR)
    return np.asarray(up) > INK_THRESHOLD * 255.0


def _free_spot(rng: np.random.Generator, s: int, d: int, placed) -> tuple[int, int] | None:
    for _ in range(20):
        y, x = int(rng.integers(s - d + 1)), int(rng.integers(s - d + 1))
        if all(y + d <= py or py + pd <= y or x + d <= px or px + pd <= x for py, px, pd in placed):
            return y, x
    return None


def with_ignore_band(label: np.ndarray) -> np.ndarray:
    """255 wherever the 3x3 neighbourhood (clipped at the image edge) holds more than one label."""
    padded = np.pad(label, 1, mode="edge")
    h, w = label.shape
    windows = [padded[dy : dy + h, dx : dx + w] for dy in range(3) for dx in range(3)]
    lo, hi = np.minimum.reduce(windows), np.maximum.reduce(windows)
    out = label.copy()
    out[lo != hi] = IGNORE_INDEX
    return out
