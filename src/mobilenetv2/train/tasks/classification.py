"""Image classification: the paper's ImageNet task (and the built-in digits), the first task of the loop."""

import logging
from collections.abc import Callable
from typing import Any, ClassVar

import torch
from torch import nn
from torch.utils.data import DataLoader

from mobilenetv2.data.build import build_sources, dataset_preprocessing, default_resolution
from mobilenetv2.data.loader import Source, stack_labels
from mobilenetv2.data.transforms import eval_transform, train_transform
from mobilenetv2.errors import UserError
from mobilenetv2.preprocessing import Preprocessing
from mobilenetv2.train.evaluate import evaluate
from mobilenetv2.train.runtime import Runtime
from mobilenetv2.train.step import cross_entropy
from mobilenetv2.train.task import Evaluation, Task

log = logging.getLogger(__name__)


class KeepTarget:
    """Adapts an image-only transform to the loop's (image, target[, generator]) -> (tensor, target)."""

    def __init__(self, transform: Callable) -> None:
        self.transform = transform

    def __call__(self, img, target, generator: torch.Generator | None = None):
        return (self.transform(img) if generator is None else self.transform(img, generator)), target


class ClassificationTask(Task):
    name = "classification"
    primary_metric = "top1"
    datasets: ClassVar[tuple[str, ...]] = ("digits", "synthetic", "imagefolder")
    folder_dataset = "imagefolder"

    @classmethod
    def default_resolution(cls, dataset: str) -> int:
        return default_resolution(dataset)

    @classmethod
    def default_recipe(cls, dataset: str) -> str:
        return "digits" if dataset == "digits" else "paper"

    def sources(self) -> tuple[Source, Source]:
        cfg = self.cfg
        return build_sources(
            cfg.dataset, data=cfg.data, resolution=cfg.resolution, synthetic_size=cfg.synthetic_size, seed=cfg.seed
        )

    def preprocessing(self) -> Preprocessing:
        return dataset_preprocessing(self.cfg.dataset, self.cfg.preprocessing, self.cfg.resolution)

    def train_transform(self, pre: Preprocessing) -> KeepTarget:
        return KeepTarget(train_transform(pre, scale=self.cfg.crop_scale, hflip=self.cfg.hflip))

    def eval_transform(self, pre: Preprocessing) -> KeepTarget:
        return KeepTarget(eval_transform(pre))

    def collate_targets(self, targets: list[Any]) -> torch.Tensor:
        return stack_labels(targets)

    def build_model(self, num_classes: int) -> nn.Module:
        """A fresh model, or one initialized from `cfg.weights` (any file `mobilenetv2.load` reads); a different
        class count replaces the classifier with a freshly initialized one (fine-tuning)."""
        from mobilenetv2.meta import meta_of, set_meta
        from mobilenetv2.models.mobilenet_v2 import check_resolution
        from mobilenetv2.registry import create_model
        from mobilenetv2.weights import load

        cfg = self.cfg
        options = self.model_options()
        if cfg.weights:
            model = load(cfg.weights)
            meta = meta_of(model)
            check_weights_agree(meta, options, cfg.weights)
            changed: dict[str, Any] = {"num_classes": num_classes}
            if getattr(model, "num_classes", num_classes) != num_classes:
                log.info("fine-tuning: new %d-class classifier (the weights have %d)", num_classes, model.num_classes)
                model.reset_classifier(num_classes)
                meta = meta.replace(class_names=None)
            if "dropout" in options and hasattr(model, "classifier"):
                model.classifier[0].p = options["dropout"]
                changed["dropout"] = options["dropout"]
            set_meta(model, meta.replace(options={**meta.options, **changed}))
        else:
            options["num_classes"] = num_classes
            model = create_model(cfg.model, **options)
        check_resolution(model, cfg.resolution)
        return model.train()

    def loss(self, forward: Callable, images: torch.Tensor, targets: torch.Tensor):
        return cross_entropy(forward, images, targets, label_smoothing=self.cfg.label_smoothing)

    def evaluate(
        self, model: nn.Module, loader: DataLoader, *, rt: Runtime, precision: str, channels_last: bool
    ) -> Evaluation:
        num_classes = model.num_classes
        result = evaluate(
            model, loader, num_classes=num_classes, rt=rt, precision=precision, channels_last=channels_last
        )
        return Evaluation(
            metrics={"loss": result.loss, "top1": result.top1, "top5": result.top5},
            skipped=result.skipped,
            images=result.images,
            seconds=result.seconds,
            details={"confusion": result.confusion},
        )


# Options a weights file fixes: a different value would build another architecture than the tensors fit.
ARCHITECTURE_OPTIONS = ("width", "expansion", "bottleneck_activation", "shortcut", "padding", "output_stride")


def check_weights_agree(meta: Any, options: dict[str, Any], weights: str) -> None:
    """UserError naming the flag when an architecture option contradicts what `weights` holds (training would
    run the file's model and record the flag's value)."""
    for key in ARCHITECTURE_OPTIONS:
        if key in options and key in meta.options and options[key] != meta.options[key]:
            flag = f"--{key.replace('_', '-')}"
            raise UserError(
                f"{flag} {options[key]} contradicts --weights {weights} ({key} {meta.options[key]}); drop {flag}"
            )
