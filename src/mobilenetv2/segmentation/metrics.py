"""Segmentation metrics from one confusion matrix accumulated over the whole set (TF DeepLab's and
torchvision's convention): mIoU = mean over classes of TP / (TP + FP + FN), label 255 ignored.

A class that appears neither in the labels nor in the predictions has no IoU (0 / 0); it is left out of the
mean, as `tf.metrics.mean_iou` leaves out zero denominators.
"""

import math

import torch

IGNORE_INDEX = 255


class ConfusionMatrix:
    """counts[t, p]: pixels of true class t predicted as p. Sum-reducible across processes (`counts`)."""

    def __init__(self, num_classes: int, *, ignore_index: int = IGNORE_INDEX) -> None:
        if num_classes < 1:
            raise ValueError(f"num_classes must be >= 1, got {num_classes}")
        self.num_classes, self.ignore_index = num_classes, ignore_index
        self.counts = torch.zeros(num_classes, num_classes, dtype=torch.int64)

    @torch.no_grad()
    def update(self, prediction: torch.Tensor, target: torch.Tensor) -> None:
        """prediction, target: integer tensors of one shape (e.g. (N, H, W)); target may hold ignore_index."""
        if prediction.shape != target.shape:
            raise ValueError(f"prediction {tuple(prediction.shape)} and target {tuple(target.shape)} differ in shape")
        t, p = target.reshape(-1).long().cpu(), prediction.reshape(-1).long().cpu()
        keep = t != self.ignore_index
        t, p = t[keep], p[keep]
        c = self.num_classes
        if t.numel() and (int(t.min()) < 0 or int(t.max()) >= c):
            bad = int(t[(t < 0) | (t >= c)][0])
            raise ValueError(f"label {bad} is outside 0..{c - 1} (and not the ignore label {self.ignore_index})")
        if p.numel() and (int(p.min()) < 0 or int(p.max()) >= c):
            raise ValueError(f"predicted class outside 0..{c - 1}")
        self.counts += torch.bincount(t * c + p, minlength=c * c).reshape(c, c)

    def iou(self) -> list[float]:
        """Per-class IoU; NaN for a class absent from both labels and predictions."""
        counts = self.counts.double()
        tp = counts.diag()
        union = counts.sum(0) + counts.sum(1) - tp
        return [float(tp[i] / union[i]) if union[i] > 0 else math.nan for i in range(self.num_classes)]

    def miou(self) -> float:
        present = [v for v in self.iou() if not math.isnan(v)]
        return sum(present) / len(present) if present else 0.0

    def pixel_accuracy(self) -> float:
        total = int(self.counts.sum())
        return float(self.counts.diag().sum()) / total if total else 0.0


def segmentation_metrics(cm: ConfusionMatrix, class_names: list[str] | None = None) -> dict:
    """{"miou", "pixel_accuracy", "per_class_iou": {name: IoU or None}, "pixels"} as plain fractions."""
    names = class_names or [str(i) for i in range(cm.num_classes)]
    return {
        "miou": cm.miou(),
        "pixel_accuracy": cm.pixel_accuracy(),
        "per_class_iou": {n: (None if math.isnan(v) else v) for n, v in zip(names, cm.iou(), strict=True)},
        "pixels": int(cm.counts.sum()),
    }
