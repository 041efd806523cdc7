"""Images for INT8 calibration and for checking the quantized model afterwards, preprocessed as the weights say."""

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from mobilenetv2.errors import UserError
from mobilenetv2.preprocessing import Preprocessing

HOLDOUT_FRACTION = 0.2  # of a single image folder, kept out of calibration to measure agreement on
log = logging.getLogger(__name__)


@dataclass
class CalibrationSet:
    """`calibration`: (N, 3, H, W) float32 the quantizer sees; `check`/`labels`: held-out images (and labels)
    the INT8 model is compared with fp32 on. `labels` index into `class_names`."""

    calibration: np.ndarray
    check: np.ndarray
    labels: np.ndarray
    class_names: list[str]
    source: str


def preprocess(source, indices: list[int], preprocessing: Preprocessing, desc: str) -> tuple[np.ndarray, np.ndarray]:
    from mobilenetv2.data.transforms import eval_transform

    transform = eval_transform(preprocessing)
    images, labels, skipped = [], [], []
    for i in tqdm(indices, desc=desc, unit="img", leave=False, disable=len(indices) < 200):
        try:  # the loader's policy for train and eval: an undecodable file is skipped and counted
            image, label = source.load(i)
        except UserError as exc:
            skipped.append(str(exc))
            continue
        images.append(transform(image).numpy())
        labels.append(label)
    if skipped:
        log.warning("%s: skipped %d unreadable images (first: %s)", desc, len(skipped), skipped[0])
    if not images:
        raise UserError(f"no readable {desc} images ({len(skipped)} skipped; first: {skipped[0] if skipped else '-'})")
    return np.stack(images).astype(np.float32), np.asarray(labels, dtype=np.int64)


def spread(count: int, limit: int) -> list[int]:
    """Up to `limit` indices spread evenly over `count` items (so every class of a sorted folder appears)."""
    return sorted({int(i) for i in np.linspace(0, count - 1, num=min(limit, count))})


def load_calibration(
    calibration: str, preprocessing: Preprocessing, *, limit: int = 300, check_limit: int = 1000
) -> CalibrationSet:
    """`digits`: calibrate on the digits train split, check on its val split. A folder with `train/` and `val/`:
    the same with those. Any other image folder (class subfolders): calibrate on 80%, check on the other 20%."""
    from mobilenetv2.data.datasets import Digits, ImageFolder

    if limit < 1:
        raise UserError(f"the calibration size must be >= 1, got {limit}")
    if calibration == "digits":
        train, val = Digits("train"), Digits("val")
    elif (Path(calibration) / "train").is_dir() and (Path(calibration) / "val").is_dir():
        train = ImageFolder(Path(calibration) / "train")
        val = ImageFolder(Path(calibration) / "val", class_names=train.class_names)
    else:
        folder = ImageFolder(calibration)
        order = np.random.default_rng(0).permutation(len(folder)).tolist()
        held = max(1, int(len(order) * HOLDOUT_FRACTION)) if len(order) > 1 else 0
        check_idx, calib_idx = sorted(order[:held]) or sorted(order), sorted(order[held:])
        calib, _ = preprocess(folder, calib_idx[:: max(1, len(calib_idx) // limit)][:limit], preprocessing, "calib")
        check, labels = preprocess(folder, check_idx[:check_limit], preprocessing, "check")
        return CalibrationSet(calib, check, labels, folder.class_names, calibration)
    calib, _ = preprocess(train, spread(len(train), limit), preprocessing, "calibration")
    check, labels = preprocess(val, spread(len(val), check_limit), preprocessing, "check")
    return CalibrationSet(calib, check, labels, list(train.class_names), calibration)
