"""Semantic segmentation (paper Sec. 6.3): Mobile DeepLabv3 on VOC-layout folders or the built-in digit scenes.

Targets are (H, W) int64 masks with 255 = ignore. The loss is per-pixel cross-entropy over the labelled
pixels; the evaluation accumulates one confusion matrix over the whole validation set (reduced across
processes) and reports `miou` (the primary metric) and `pixel_accuracy`, with per-class IoU in metrics.json.
"""

import logging
import time
from collections.abc import Callable
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader

from mobilenetv2.data.digits_segmentation import SceneSpec, ensure_digits_segmentation
from mobilenetv2.data.loader import Source
from mobilenetv2.data.seg_transforms import SegEvalTransform, SegTrainTransform
from mobilenetv2.data.segmentation import IGNORE_INDEX, segmentation_split
from mobilenetv2.errors import UserError
from mobilenetv2.preprocessing import SIGNED_UNIT_MEAN, SIGNED_UNIT_STD, Preprocessing
from mobilenetv2.segmentation.metrics import ConfusionMatrix, segmentation_metrics
from mobilenetv2.train.evaluate import forward_batches
from mobilenetv2.train.runtime import Runtime, all_gather_strings, all_sum
from mobilenetv2.train.task import Evaluation, Task

log = logging.getLogger(__name__)

DIGITS_RESOLUTION = 64  # the synthetic scenes' size
VOC_CROP = 513  # TF DeepLab's train and eval crop


def digits_spec(train_scenes: int) -> SceneSpec:
    """The built-in scenes: `train_scenes` (--synthetic-size; the recipe's 1,200) and a quarter as many held out."""
    return SceneSpec(size=DIGITS_RESOLUTION, train=train_scenes, val=max(1, train_scenes // 4))


class SegmentationTask(Task):
    name = "segmentation"
    primary_metric = "miou"
    datasets: ClassVar[tuple[str, ...]] = ("digits-segmentation", "voc")
    folder_dataset = "voc"  # `--data DIR`: a VOC folder, DIR/{train,val}/{images,masks}, or images/ + masks/

    @classmethod
    def default_resolution(cls, dataset: str) -> int:
        return DIGITS_RESOLUTION if dataset == "digits-segmentation" else VOC_CROP

    @classmethod
    def default_recipe(cls, dataset: str) -> str:
        return "digits-segmentation" if dataset == "digits-segmentation" else "deeplab-paper"

    def sources(self) -> tuple[Source, Source]:
        cfg = self.cfg
        if cfg.dataset == "digits-segmentation":
            root = ensure_digits_segmentation(digits_spec(cfg.synthetic_size))
        else:
            root = cfg.data
        train = segmentation_split(root, "train")
        return train, segmentation_split(root, "val", class_names=train.class_names)

    def preprocessing(self) -> Preprocessing:
        # TF DeepLab feeds MobileNetV2 pixels in [-1, 1]; evaluation pads to the crop size (no resizing).
        h, w = self.cfg.resolution
        return Preprocessing(
            input_size=(h, w), resize=min(h, w), mean=SIGNED_UNIT_MEAN, std=SIGNED_UNIT_STD, extra={"eval": "pad"}
        )

    def train_transform(self, pre: Preprocessing) -> SegTrainTransform:
        cfg = self.cfg
        scale = tuple(cfg.scale_range) if cfg.scale_range is not None else (0.5, 2.0)
        step = cfg.scale_step if cfg.scale_step is not None else 0.25
        return SegTrainTransform(pre, crop=tuple(cfg.resolution), scale_range=scale, scale_step=step, hflip=cfg.hflip)

    def eval_transform(self, pre: Preprocessing) -> SegEvalTransform:
        return SegEvalTransform(pre)

    def collate_targets(self, targets: list[Any]) -> torch.Tensor:
        if not targets:
            return torch.empty(0, 0, 0, dtype=torch.long)
        return torch.stack(targets)  # (B, H, W)

    def build_model(self, num_classes: int) -> nn.Module:
        """A fresh segmenter (its backbone initialised from `cfg.backbone_weights`, a MobileNetV2 classifier
        file, when given), or one from `cfg.weights`; a different class count gets fresh logits."""
        from mobilenetv2.registry import create_model
        from mobilenetv2.weights import load

        cfg = self.cfg
        options = self.model_options()
        if cfg.weights:
            model = load(cfg.weights)
            if getattr(model, "num_classes", None) != num_classes:
                log.info("fine-tuning: new %d-class logits (the weights have %d)", num_classes, model.num_classes)
                model.reset_classifier(num_classes)
        else:
            model = create_model(cfg.model, **{**options, "num_classes": num_classes})
            if cfg.backbone_weights:
                load_backbone(model, cfg.backbone_weights)
        return model.train()

    def loss(self, forward: Callable, images: torch.Tensor, targets: torch.Tensor):
        logits = forward(images)  # (B, C, H, W)
        loss = F.cross_entropy(logits.float(), targets, ignore_index=IGNORE_INDEX)
        with torch.no_grad():
            labelled = targets != IGNORE_INDEX
            hits = ((logits.argmax(1) == targets) & labelled).sum(dim=(1, 2)).double()
            # Per-image pixel accuracy, summed over the batch (the loop divides by the images).
            accuracy = (hits / labelled.sum(dim=(1, 2)).clamp(min=1)).sum()
        return loss, {"pixel_accuracy": accuracy}

    def evaluate(
        self, model: nn.Module, loader: DataLoader, *, rt: Runtime, precision: str, channels_last: bool
    ) -> Evaluation:
        was_training = model.training
        model.eval()
        cm = ConfusionMatrix(model.num_classes)
        loss_sum = torch.zeros(2, dtype=torch.float64)
        skipped: list[str] = []
        start = time.perf_counter()
        batches = forward_batches(
            model, loader, rt=rt, precision=precision, channels_last=channels_last, skipped=skipped
        )
        with torch.no_grad():
            for logits, y in batches:
                if (y != IGNORE_INDEX).any():
                    loss_sum[0] += float(F.cross_entropy(logits, y, ignore_index=IGNORE_INDEX)) * len(y)
                loss_sum[1] += len(y)
                cm.update(logits.argmax(1), y)
        model.train(was_training)
        cm.counts = all_sum(cm.counts.double(), rt).round().long()
        loss_sum = all_sum(loss_sum, rt)
        names = list(getattr(loader.dataset.source, "class_names", []) or []) or None
        metrics = segmentation_metrics(cm, names if names and len(names) == cm.num_classes else None)
        return Evaluation(
            metrics={
                "loss": float(loss_sum[0] / max(1.0, float(loss_sum[1]))),
                "miou": metrics["miou"],
                "pixel_accuracy": metrics["pixel_accuracy"],
            },
            skipped=all_gather_strings(skipped, rt),
            images=int(loss_sum[1]),
            seconds=time.perf_counter() - start,
            details={"per_class_iou": metrics["per_class_iou"], "pixels": metrics["pixels"]},
        )


def load_backbone(model: nn.Module, path: str) -> None:
    """Copy a MobileNetV2 classifier's stem and blocks into `model.backbone` (its head and classifier unused)."""
    from mobilenetv2.weights import load

    classifier = load(path)
    wanted = model.backbone.state_dict()
    state = {k: v for k, v in classifier.state_dict().items() if k in wanted}
    missing = sorted(set(wanted) - set(state))
    wrong = [k for k, v in state.items() if v.shape != wanted[k].shape]
    if missing or wrong:
        first = (missing or wrong)[0]
        raise UserError(f"--backbone-weights {path}: not a MobileNetV2 backbone of this width ({first!r} differs)")
    model.backbone.load_state_dict(state, strict=False)
    log.info("backbone initialised from %s (%d tensors)", path, len(state))
