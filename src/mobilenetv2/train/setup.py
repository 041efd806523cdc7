"""Building the pieces of a run from its config: model, data, loaders."""

import logging

import torch
from torch import nn

from mobilenetv2.data.build import build_sources, dataset_preprocessing
from mobilenetv2.data.loader import Source, TransformedDataset
from mobilenetv2.data.transforms import eval_transform, train_transform
from mobilenetv2.preprocessing import Preprocessing
from mobilenetv2.train.config import TrainConfig

log = logging.getLogger(__name__)


def build_model(cfg: TrainConfig, num_classes: int) -> nn.Module:
    """A fresh model, or one initialized from `cfg.weights` (any file `mobilenetv2.load` reads); a different
    class count replaces the classifier with a freshly initialized one (fine-tuning)."""
    from mobilenetv2.models.mobilenet_v2 import check_resolution
    from mobilenetv2.registry import create_model
    from mobilenetv2.weights import load

    options = dict(cfg.model_options)
    if cfg.dropout is not None:
        options.setdefault("dropout", cfg.dropout)
    if cfg.weights:
        model = load(cfg.weights)
        if getattr(model, "num_classes", num_classes) != num_classes:
            log.info("fine-tuning: new %d-class classifier (the weights have %d)", num_classes, model.num_classes)
            model.reset_classifier(num_classes)
            model.class_names = None
        model.model_options = {**model.model_options, "num_classes": num_classes}
        if "dropout" in options and hasattr(model, "classifier"):
            model.classifier[0].p = options["dropout"]
            model.model_options["dropout"] = options["dropout"]
    else:
        options["num_classes"] = num_classes
        model = create_model(cfg.model, **options)
    check_resolution(model, cfg.resolution)
    return model.train()


def build_data(cfg: TrainConfig) -> tuple[Source, Source, Preprocessing]:
    train_src, val_src = build_sources(
        cfg.dataset, data=cfg.data, resolution=cfg.resolution, synthetic_size=cfg.synthetic_size, seed=cfg.seed
    )
    return train_src, val_src, dataset_preprocessing(cfg.dataset, cfg.preprocessing, cfg.resolution)


def datasets(
    cfg: TrainConfig, train_src: Source, val_src: Source, pre: Preprocessing
) -> tuple[TransformedDataset, TransformedDataset]:
    augment = train_transform(pre, scale=cfg.crop_scale, hflip=cfg.hflip)
    return (
        TransformedDataset(train_src, augment, random=True),
        TransformedDataset(val_src, eval_transform(pre), random=False),
    )


def default_workers(cfg: TrainConfig) -> int:
    """In-memory sets decode nothing: the main process is fastest. Image folders: up to 8 workers."""
    if cfg.workers is not None:
        return cfg.workers
    if cfg.dataset != "imagefolder":
        return 0
    return min(8, max(1, (torch.get_num_threads() or 1)))


def freeze_batchnorm(model: nn.Module) -> None:
    """BN layers normalize with their running statistics (eval mode) while the rest trains."""
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.eval()
