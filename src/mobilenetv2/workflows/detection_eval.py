"""`evaluate_detector_weights`: COCO metrics of a detector's weights file on a COCO / VOC folder or the
built-in digits-detection set. Writes (with `out_dir`) metrics.json (map, map50, map75, map_small/medium/large,
per-class AP) and detections.json (COCO results format, in the files' pixels)."""

from pathlib import Path
from typing import Any

from mobilenetv2.data.coco import CocoDetection
from mobilenetv2.data.detection_transforms import DetectionEvalTransform
from mobilenetv2.data.loader import Collate, TransformedDataset, eval_loader
from mobilenetv2.data.voc import VocDetection
from mobilenetv2.errors import UserError
from mobilenetv2.meta import meta_of
from mobilenetv2.train.runtime import Runtime, pick_device, resolve_precision
from mobilenetv2.train.tasks.detection import detection_sources, evaluate_detector


def eval_source(dataset: str, data: str | None, split: str):
    if dataset == "digits-detection":
        train, val = detection_sources(dataset, data)
        return train if split == "train" else val
    if not data:
        raise UserError(f"--dataset {dataset} needs --data DIR")
    return VocDetection(data, split) if dataset == "voc" else CocoDetection(data, split)


def evaluate_detector_weights(
    weights: str | Path,
    *,
    dataset: str = "digits-detection",
    data: str | None = None,
    split: str = "val",
    batch_size: int = 16,
    workers: int = 0,
    device: str = "auto",
    precision: str = "fp32",
    out_dir: str | Path | None = None,
) -> dict[str, Any]:
    from mobilenetv2.weights import load

    model = load(str(weights))
    meta = meta_of(model)
    if meta.task != "detection":
        raise UserError(f"{weights}: a {meta.task} model, not a detector")
    source = eval_source(dataset, data, split)
    if len(source.class_names) != model.num_classes:
        raise UserError(
            f"the data has {len(source.class_names)} classes (with background), the model {model.num_classes}"
        )
    rt = Runtime(pick_device(device))
    model = model.to(rt.device).eval()
    loader = eval_loader(
        TransformedDataset(source, DetectionEvalTransform(meta.preprocessing), random=False),
        batch_size=batch_size,
        workers=workers,
        collate=Collate(list),
    )
    prec = resolve_precision(precision, rt.device)
    result = evaluate_detector(model, loader, source, rt=rt, precision=prec, channels_last=False)
    if out_dir is not None:
        result.write(Path(out_dir))
    skipped = sorted(set(result.skipped) | set(source.skipped))
    return {
        **result.metrics,
        "per_class_ap": result.details["per_class_ap"],
        "images": result.images,
        "images_per_second": result.images / result.seconds if result.seconds else 0.0,
        "skipped_files": len(skipped),
        "skipped_boxes": source.skipped_boxes,
        "dataset": dataset,
        "split": split,
        "precision": prec,
    }


def weights_task(path: str) -> str | None:
    """The task a weights file records, or None for files that are not ours (the classifier path handles them)."""
    if not str(path).endswith(".safetensors"):
        return None
    from mobilenetv2.weights import read_meta

    try:
        return read_meta(path).task
    except (UserError, FileNotFoundError):
        return None


__all__ = ["evaluate_detector_weights", "weights_task"]
