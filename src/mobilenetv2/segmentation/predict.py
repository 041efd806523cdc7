"""`mobilenetv2 predict` for segmenters: per image, the class mask (palette PNG) and a colour overlay."""

import logging
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import nn

from mobilenetv2.data.images import open_image
from mobilenetv2.data.seg_transforms import image_tensor
from mobilenetv2.data.segmentation import save_mask, voc_palette
from mobilenetv2.errors import UserError
from mobilenetv2.preprocessing import Preprocessing
from mobilenetv2.segmentation.multiscale import MF_SCALES, predict_logits

log = logging.getLogger(__name__)
OVERLAY_ALPHA = 0.5


def overlay(image: Image.Image, mask: np.ndarray, alpha: float = OVERLAY_ALPHA) -> Image.Image:
    """The image with every non-background pixel blended towards its class colour."""
    colours = np.asarray(voc_palette(), dtype=np.float32).reshape(256, 3)[mask]
    pixels = np.asarray(image, dtype=np.float32)
    blend = np.where((mask > 0)[..., None], (1 - alpha) * pixels + alpha * colours, pixels)
    return Image.fromarray(np.clip(blend + 0.5, 0, 255).astype(np.uint8))


@torch.no_grad()
def predict_masks(
    model: nn.Module,
    paths: list[str],
    out_dir: str | Path,
    pre: Preprocessing,
    *,
    class_names: list[str] | None = None,
    multi_scale: bool = False,
    device: torch.device | str = "cpu",
) -> list[dict]:
    """One record per file: {"file", "mask", "overlay", "classes": {label: pixel fraction}, "error"}."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    model = model.eval().to(device)
    names = list(class_names or [str(i) for i in range(model.num_classes)])
    scales, flip = (MF_SCALES, True) if multi_scale else ((1.0,), False)
    records, used = [], set()
    for path in paths:
        record = {"file": path, "mask": None, "overlay": None, "classes": {}, "error": None}
        try:
            image = open_image(path)
            x = image_tensor(image, pre)[None].to(device)
            mask = predict_mask(model, x, scales=scales, flip=flip)
        except (UserError, FileNotFoundError, IsADirectoryError) as exc:
            record["error"] = str(exc)
            records.append(record)
            continue
        stem = _unique(Path(path).stem, used)
        mask_path, overlay_path = out / f"{stem}.png", out / f"{stem}_overlay.jpg"
        save_mask(mask, mask_path)
        overlay(image, mask).save(overlay_path, quality=90)
        counts = np.bincount(mask.reshape(-1), minlength=len(names))
        record.update(
            mask=str(mask_path),
            overlay=str(overlay_path),
            classes={names[c]: float(n) / mask.size for c, n in enumerate(counts) if n > 0 and c < len(names)},
        )
        records.append(record)
    return records


def predict_mask(model: nn.Module, x: torch.Tensor, *, scales, flip: bool) -> np.ndarray:
    """(1, 3, H, W) -> (H, W) uint8 labels. One scale without flip runs the model with `output="labels"`
    (segmentation.labels: the argmax without the full-size logits, the same mask); MF averages logits."""
    min_size = getattr(model, "min_resolution", 1)
    if tuple(scales) == (1.0,) and not flip and min(x.shape[-2:]) >= min_size and hasattr(model, "output"):
        previous = model.output
        model.output = "labels"
        try:
            with torch.inference_mode():
                return model(x)[0].cpu().numpy().astype(np.uint8)
        finally:
            model.output = previous
    logits = predict_logits(model, x, scales=scales, flip=flip, min_size=min_size)
    return logits.argmax(1)[0].cpu().numpy().astype(np.uint8)


def _unique(stem: str, used: set[str]) -> str:
    name, k = stem, 1
    while name in used:
        k += 1
        name = f"{stem}_{k}"
    used.add(name)
    return name
