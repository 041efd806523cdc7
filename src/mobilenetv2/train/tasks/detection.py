"""Object detection: SSDLite-MobileNetV2 (paper Sec. 6.2) on COCO-format folders, Pascal VOC or the built-in
digits-detection set; COCO metrics from pycocotools."""

import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar

import torch
from torch import nn
from torch.utils.data import DataLoader

from mobilenetv2.data.coco import CocoDetection, read_coco_json
from mobilenetv2.data.detection_source import DetectionSource
from mobilenetv2.data.detection_transforms import DetectionEvalTransform, DetectionTrainTransform
from mobilenetv2.data.digits_detection import ensure_digits_detection
from mobilenetv2.data.voc import VocDetection
from mobilenetv2.detection.coco_eval import evaluate_coco, records_to_coco, to_coco_results
from mobilenetv2.detection.loss import ssd_loss
from mobilenetv2.detection.postprocess import postprocess
from mobilenetv2.errors import UserError
from mobilenetv2.preprocessing import SIGNED_UNIT_MEAN, SIGNED_UNIT_STD, Preprocessing
from mobilenetv2.train.runtime import Runtime, all_gather_strings, autocast
from mobilenetv2.train.task import Evaluation, Task

log = logging.getLogger(__name__)
TF_RESOLUTION = 300  # ssdlite_mobilenet_v2_coco.config's fixed_shape_resizer (the paper says 320)
DIGITS_RESOLUTION = 128


class DetectionEvaluation(Evaluation):
    def write(self, out: Path) -> None:
        from mobilenetv2.train.records import write_json

        detections = self.details.pop("detections", [])
        super().write(out)
        write_json(out / "detections.json", detections)
        self.details["detections"] = detections


def detection_preprocessing(resolution: tuple[int, int]) -> Preprocessing:
    """TF's SSD input: the whole image resized to the input size (no crop), pixels to [-1, 1]."""
    return Preprocessing(
        input_size=resolution, resize=min(resolution), mean=SIGNED_UNIT_MEAN, std=SIGNED_UNIT_STD,
        extra={"resize": "stretch"},
    )  # fmt: skip


def detection_sources(dataset: str, data: str | None) -> tuple[DetectionSource, DetectionSource]:
    if dataset == "digits-detection":
        root = ensure_digits_detection(data)
        return CocoDetection(root, "train"), CocoDetection(root, "val")
    if not data:
        raise UserError(f"--dataset {dataset} needs --data DIR")
    if dataset == "voc":
        train = VocDetection(data, "train")
        return train, VocDetection(data, "val", class_names=train.class_names)
    train, val = CocoDetection(data, "train"), CocoDetection(data, "val")
    if train.class_names != val.class_names:
        raise UserError(f"{data}: instances_train.json and instances_val.json list different categories")
    return train, val


def ground_truth(source: DetectionSource) -> dict[str, Any]:
    """The user's own COCO file when there is one (crowd regions included), else one built from the records."""
    path = getattr(source, "annotation_path", None)
    if path:
        return read_coco_json(path)
    return records_to_coco(source.records, source.class_names, source.category_ids)


class DetectionTask(Task):
    name = "detection"
    primary_metric = "map"
    datasets: ClassVar[tuple[str, ...]] = ("digits-detection", "coco", "voc")
    folder_dataset = "coco"
    folder_datasets: ClassVar[tuple[str, ...]] = ("voc",)

    @classmethod
    def default_resolution(cls, dataset: str) -> int:
        return DIGITS_RESOLUTION if dataset == "digits-detection" else TF_RESOLUTION

    @classmethod
    def default_recipe(cls, dataset: str) -> str:
        return "ssdlite-digits" if dataset == "digits-detection" else "ssdlite-paper"

    def sources(self) -> tuple[DetectionSource, DetectionSource]:
        self.train_source, self.val_source = detection_sources(self.cfg.dataset, self.cfg.data)
        return self.train_source, self.val_source

    def summary_extras(self) -> dict[str, Any]:
        return {"skipped_boxes": self.train_source.skipped_boxes + self.val_source.skipped_boxes}

    def preprocessing(self) -> Preprocessing:
        return detection_preprocessing(self.cfg.resolution)

    def train_transform(self, pre: Preprocessing) -> DetectionTrainTransform:
        return DetectionTrainTransform(pre, crop=bool(self.cfg.ssd_crop), flip=bool(self.cfg.hflip))

    def eval_transform(self, pre: Preprocessing) -> DetectionEvalTransform:
        return DetectionEvalTransform(pre)

    def collate_targets(self, targets: list[Any]) -> list[dict[str, torch.Tensor]]:
        return list(targets)

    def targets_to(self, targets: list[dict[str, torch.Tensor]], device: torch.device) -> list:
        return [{k: v.to(device) for k, v in t.items()} for t in targets]

    def build_model(self, num_classes: int) -> nn.Module:
        from mobilenetv2.registry import create_model
        from mobilenetv2.weights import load

        cfg = self.cfg
        if cfg.weights:
            model = load(cfg.weights)
            if getattr(model, "num_classes", None) != num_classes:
                raise UserError(f"{cfg.weights}: {model.num_classes} classes, the data has {num_classes}")
        else:
            model = create_model(cfg.model, **{**cfg.model_options, "num_classes": num_classes})
        if cfg.backbone_weights:
            load_backbone(model, cfg.backbone_weights)
        return model.train()

    def loss(self, forward: Callable, images: torch.Tensor, targets: list) -> tuple[torch.Tensor, dict]:
        out = forward(images)
        style = "torchvision" if self.cfg.model_options.get("head_style") == "torchvision" else "tf"
        loss, parts = ssd_loss(*out, targets, tuple(images.shape[-2:]), style)
        n = images.shape[0]
        return loss, {"loss_box": parts["loss_box"] * n, "loss_cls": parts["loss_cls"] * n}

    @torch.no_grad()
    def evaluate(
        self, model: nn.Module, loader: DataLoader, *, rt: Runtime, precision: str, channels_last: bool
    ) -> Evaluation:
        source = self.val_source
        return evaluate_detector(model, loader, source, rt=rt, precision=precision, channels_last=channels_last)


@torch.no_grad()
def evaluate_detector(
    model: nn.Module, loader: DataLoader, source: DetectionSource, *, rt: Runtime, precision: str, channels_last: bool
) -> DetectionEvaluation:
    """COCO metrics of `model` over `loader` (every process its shard; results gathered on all of them)."""
    was_training = model.training
    model.eval()
    memory_format = torch.channels_last if channels_last else torch.contiguous_format
    results: list[dict[str, Any]] = []
    skipped: list[str] = []
    images, start = 0, time.perf_counter()
    for batch in loader:
        skipped += batch.skipped
        if len(batch) == 0:
            continue
        x = batch.images.to(rt.device, memory_format=memory_format)
        size = (int(x.shape[-2]), int(x.shape[-1]))
        with autocast(precision, rt.device):
            raw = model.forward_raw(x)
        dets = postprocess(raw.box_codes, raw.class_logits, raw.anchors, size, model.postprocessing)
        for d, t in zip(dets, batch.targets, strict=True):
            oh, ow = t["orig_size"].tolist()
            scale = (ow / size[1], oh / size[0])
            results += to_coco_results(d, int(t["image_id"]), source.category_ids, scale)
        images += len(batch)
    if rt.distributed:
        import torch.distributed as dist

        gathered: list[Any] = [None] * rt.world_size
        dist.all_gather_object(gathered, (results, images))
        results = [r for part, _ in gathered for r in part]
        images = sum(n for _, n in gathered)
    seconds = time.perf_counter() - start
    model.train(was_training)
    gt = ground_truth(source)
    evaluated = [r.image_id for r in source.records]
    metrics, per_class = evaluate_coco(gt, results, image_ids=evaluated)
    return DetectionEvaluation(
        metrics=metrics,
        skipped=all_gather_strings(skipped, rt),
        images=images,
        seconds=seconds,
        details={"per_class_ap": per_class, "skipped_boxes": source.skipped_boxes, "detections": results},
    )


def load_backbone(model: nn.Module, path: str) -> None:
    """Copy a classification MobileNetV2's weights (same width) into the detector's backbone."""
    from mobilenetv2.models import MobileNetV2
    from mobilenetv2.weights import load

    classifier = load(path)
    if not isinstance(classifier, MobileNetV2):
        raise UserError(f"--backbone-weights {path}: not a MobileNetV2 classification file")
    if classifier.width != model.backbone.width:
        raise UserError(
            f"--backbone-weights {path}: width {classifier.width}, the detector's is {model.backbone.width}"
        )
    state = {k: v for k, v in classifier.state_dict().items() if not k.startswith("classifier.")}
    missing, unexpected = model.backbone.load_state_dict(state, strict=False)
    if unexpected or [k for k in missing if not k.startswith("classifier")]:
        raise UserError(f"--backbone-weights {path}: layers differ ({(unexpected or missing)[0]})")
    log.info("backbone initialised from %s", path)
