"""`mobilenetv2 eval` for segmenters: every image of a split at its own size (batch 1, no padding), single-scale
or multi-scale + flip, one confusion matrix over the whole set; optionally each predicted mask saved as a
palette PNG named after its image."""

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

from mobilenetv2.data.seg_transforms import SegEvalTransform
from mobilenetv2.data.segmentation import save_mask
from mobilenetv2.errors import UserError
from mobilenetv2.preprocessing import Preprocessing
from mobilenetv2.segmentation.metrics import ConfusionMatrix, segmentation_metrics
from mobilenetv2.segmentation.multiscale import MF_SCALES, predict_logits

log = logging.getLogger(__name__)


@dataclass
class SegmentationResult:
    metrics: dict
    images: int
    seconds: float
    skipped: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {
            **self.metrics,
            "images": self.images,
            "seconds": round(self.seconds, 3),
            "skipped_files": len(self.skipped),
        }


@torch.no_grad()
def evaluate_segmenter(
    model: nn.Module,
    source,
    pre: Preprocessing,
    *,
    multi_scale: bool = False,
    scales: tuple[float, ...] | None = None,
    flip: bool | None = None,
    save_masks: str | Path | None = None,
    device: torch.device | str = "cpu",
    progress: bool = False,
) -> SegmentationResult:
    """`multi_scale=True` is Table 7's MF (scales 0.5..1.75 and flips) unless `scales`/`flip` say otherwise."""
    scales = tuple(scales) if scales else (MF_SCALES if multi_scale else (1.0,))
    flip = multi_scale if flip is None else flip
    names = list(source.class_names)
    num_classes = model.num_classes
    if len(names) > num_classes:
        raise UserError(f"the data has {len(names)} classes, the model only {num_classes} outputs")
    model = model.eval().to(device)
    transform = SegEvalTransform(pre, pad=False)
    cm = ConfusionMatrix(num_classes)
    out = Path(save_masks) if save_masks else None
    if out:
        out.mkdir(parents=True, exist_ok=True)
    skipped = list(getattr(source, "skipped", []))
    start, done = time.perf_counter(), 0
    min_size = getattr(model, "min_resolution", 1)
    indices = range(len(source))
    if progress:
        from tqdm import tqdm

        indices = tqdm(indices, desc="eval", unit="img")
    for i in indices:
        try:
            x, y = transform(*source.load(i))
        except UserError as exc:
            log.warning("skipping %s", exc)
            skipped.append(source.describe(i))
            continue
        logits = predict_logits(model, x[None].to(device), scales=scales, flip=flip, min_size=min_size)
        pred = logits.argmax(1)[0].cpu()
        cm.update(pred, y)
        done += 1
        if out:
            save_mask(pred.numpy().astype(np.uint8), out / f"{_name(source, i)}.png")
    metrics = segmentation_metrics(cm, names if len(names) == num_classes else None)
    metrics["scales"], metrics["flip"] = list(scales), flip
    return SegmentationResult(metrics, done, time.perf_counter() - start, skipped)


def _name(source, index: int) -> str:
    return source.name(index) if hasattr(source, "name") else Path(source.describe(index)).stem
