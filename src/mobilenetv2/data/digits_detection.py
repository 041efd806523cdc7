"""`--dataset digits-detection`: a deterministic synthetic detection set that needs no download.

UCI handwritten digits (scikit-learn's `load_digits`, 8x8) are scaled to 28..56 pixels and pasted, 1 to 3 per
image and not overlapping, onto crops of the two photos scikit-learn ships (`load_sample_images`: china.jpg,
flower.jpg). Each digit's box is the exact extent of its pasted ink. Train and val use disjoint digit
samples. The set is written once as a COCO folder (`annotations/instances_{train,val}.json`, `train/`,
`val/`), so the COCO loader reads it like any user's data.
"""

import json
import logging
import os
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from PIL import Image

log = logging.getLogger(__name__)

DIGIT_NAMES = [str(d) for d in range(10)]
VERSION = 2  # 2: digits 28-56 px, at most 3 (1: 14-48 px, at most 4 — too few anchor matches at 128 px)


@dataclass(frozen=True)
class DigitsDetectionSpec:
    image_size: int = 128
    train_images: int = 4000
    val_images: int = 300
    min_digit: int = 28
    max_digit: int = 56
    max_digits: int = 3
    seed: int = 0


def default_root(spec: DigitsDetectionSpec) -> Path:
    base = os.environ.get("MOBILENETV2_CACHE") or Path.home() / ".cache" / "mobilenetv2"
    name = f"digits-detection-v{VERSION}-{spec.image_size}px-{spec.train_images}-{spec.val_images}"
    name += f"-d{spec.min_digit}-{spec.max_digit}x{spec.max_digits}-s{spec.seed}"
    return Path(base) / name


def ensure_digits_detection(root: str | Path | None = None, spec: DigitsDetectionSpec | None = None) -> Path:
    """The COCO folder of `spec` at `root` (default: a cache folder), written first if it is not there yet."""
    spec = spec or DigitsDetectionSpec()
    root = Path(root) if root else default_root(spec)
    marker = root / "digits_detection.json"
    if marker.is_file() and json.loads(marker.read_text()) == {**asdict(spec), "version": VERSION}:
        return root
    tmp = root.with_name(root.name + f".tmp{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    write_digits_detection(tmp, spec)
    if root.exists():
        shutil.rmtree(root)
    tmp.rename(root)
    log.info("wrote the digits-detection set to %s", root)
    return root


def write_digits_detection(root: Path, spec: DigitsDetectionSpec) -> None:
    from sklearn.datasets import load_digits, load_sample_images

    digits = load_digits()
    photos = [np.asarray(p, dtype=np.uint8) for p in load_sample_images().images]
    order = np.random.RandomState(spec.seed).permutation(len(digits.images))
    cut = int(0.8 * len(order))
    pools = {"train": order[:cut], "val": order[cut:]}
    (root / "annotations").mkdir(parents=True)
    for split, count in (("train", spec.train_images), ("val", spec.val_images)):
        rng = np.random.RandomState(spec.seed * 1000 + (1 if split == "train" else 2))
        (root / split).mkdir()
        images, annotations = [], []
        for i in range(count):
            img, boxes = _compose(rng, photos, digits.images, digits.target, pools[split], spec)
            name = f"{i:05d}.png"
            Image.fromarray(img).save(root / split / name)
            images.append({"id": i + 1, "file_name": name, "width": spec.image_size, "height": spec.image_size})
            for (x1, y1, x2, y2), label in boxes:
                ann = {"id": len(annotations) + 1, "image_id": i + 1, "category_id": label + 1, "iscrowd": 0}
                ann |= {"bbox": [x1, y1, x2 - x1, y2 - y1], "area": (x2 - x1) * (y2 - y1)}
                annotations.append(ann)
        categories = [{"id": d + 1, "name": n} for d, n in enumerate(DIGIT_NAMES)]
        doc = {"images": images, "annotations": annotations, "categories": categories}
        (root / "annotations" / f"instances_{split}.json").write_text(json.dumps(doc))
    (root / "digits_detection.json").write_text(json.dumps({**asdict(spec), "version": VERSION}))


def _compose(rng, photos, digit_images, digit_labels, pool, spec: DigitsDetectionSpec):
    s = spec.image_size
    photo = photos[rng.randint(len(photos))]
    side = rng.randint(s, min(photo.shape[:2]) + 1)
    y0, x0 = rng.randint(photo.shape[0] - side + 1), rng.randint(photo.shape[1] - side + 1)
    crop = Image.fromarray(photo[y0 : y0 + side, x0 : x0 + side]).resize((s, s), Image.BILINEAR)
    canvas = np.asarray(crop, dtype=np.float32)
    boxes: list[tuple[tuple[int, int, int, int], int]] = []
    for _ in range(rng.randint(1, spec.max_digits + 1)):
        index = pool[rng.randint(len(pool))]
        size = rng.randint(spec.min_digit, spec.max_digit + 1)
        alpha = np.asarray(
            Image.fromarray((digit_images[index] / 16.0 * 255).astype(np.uint8)).resize((size, size), Image.BILINEAR),
            dtype=np.float32,
        )
        alpha /= 255.0
        ys, xs = np.nonzero(alpha > 0.1)
        for _attempt in range(20):
            px, py = rng.randint(s - size + 1), rng.randint(s - size + 1)
            box = (px + int(xs.min()), py + int(ys.min()), px + int(xs.max()) + 1, py + int(ys.max()) + 1)
            if all(_disjoint(box, other) for other, _ in boxes):
                break
        else:
            continue
        region = canvas[py : py + size, px : px + size]
        # Ink that contrasts with what lies under it: bright on dark backgrounds, dark on bright ones.
        base = 255.0 if region.mean() < 110 else 0.0
        color = np.clip(base + rng.uniform(-60, 60, size=3) * (1 if base == 0 else -1), 0, 255)
        canvas[py : py + size, px : px + size] = region * (1 - alpha[..., None]) + color * alpha[..., None]
        boxes.append((box, int(digit_labels[index])))
    return canvas.round().astype(np.uint8), boxes


def _disjoint(a, b, margin: int = 2) -> bool:
    return a[2] + margin <= b[0] or b[2] + margin <= a[0] or a[3] + margin <= b[1] or b[3] + margin <= a[1]
