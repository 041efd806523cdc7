"""`evaluate_weights`: accuracy, loss, per-class accuracy, confusion matrix and throughput of a weights file.

Writes (with `out_dir`): eval.json, per_class.csv, confusion.csv, confusion.png.
"""

import csv
import logging
from pathlib import Path
from typing import Any

import torch
from torch import nn

from mobilenetv2.data.build import build_eval_source, dataset_preprocessing, default_resolution
from mobilenetv2.data.loader import TransformedDataset, eval_loader
from mobilenetv2.data.transforms import eval_transform
from mobilenetv2.train.evaluate import EvalResult, evaluate
from mobilenetv2.train.records import plot_confusion, write_confusion_csv, write_json
from mobilenetv2.train.runtime import Runtime, pick_device, resolve_precision

log = logging.getLogger(__name__)


def load_weights(path: str, source: str | None = None) -> nn.Module:
    """Our .safetensors files as they are; torchvision/timm/Keras files through `mobilenetv2.convert`."""
    from mobilenetv2.weights import convert, load

    return convert(path, source) if source else load(path)


def evaluate_weights(
    weights: str | Path | nn.Module,
    *,
    source: str | None = None,
    dataset: str = "digits",
    data: str | None = None,
    split: str = "val",
    batch_size: int = 100,
    workers: int = 0,
    device: str = "auto",
    precision: str = "fp32",
    out_dir: str | Path | None = None,
) -> dict[str, Any]:
    """Evaluate a model or weights file (see `load_weights`) on a built-in set or an image folder."""
    model = weights if isinstance(weights, nn.Module) else load_weights(str(weights), source)
    rt = Runtime(pick_device(device))
    pre = getattr(model, "preprocessing", None)
    if pre is None:
        res = default_resolution(dataset)
        pre = dataset_preprocessing(dataset, "torchvision", (res, res))
    source = build_eval_source(dataset, data=data, resolution=tuple(pre.input_size), split=split)
    names = getattr(model, "class_names", None) or source.class_names
    num_classes = getattr(model, "num_classes", len(names))
    if len(source.class_names) > num_classes:
        raise ValueError(f"the data has {len(source.class_names)} classes, the model only {num_classes} outputs")
    if list(names[: len(source.class_names)]) != list(source.class_names):
        log.warning("the model's class names differ from the folder names; comparing by index")
    model = model.to(rt.device, memory_format=torch.channels_last).eval()
    loader = eval_loader(
        TransformedDataset(source, eval_transform(pre), random=False), batch_size=batch_size, workers=workers
    )
    prec = resolve_precision(precision, rt.device)
    result = evaluate(model, loader, num_classes=num_classes, rt=rt, precision=prec)
    report = _report(result, names, source_skipped=source.skipped, dataset=dataset, split=split, precision=prec)
    if out_dir is not None:
        _write(Path(out_dir), result, names, report)
    return report


def _report(
    result: EvalResult, names: list[str], *, source_skipped: list[str], dataset: str, split: str, precision: str
) -> dict[str, Any]:
    skipped = sorted(set(result.skipped) | set(source_skipped))
    return {
        "top1": result.top1,
        "top5": result.top5,
        "loss": result.loss,
        "images": result.images,
        "images_per_second": result.images_per_second,
        "per_class_accuracy": dict(zip(names, result.per_class_accuracy(), strict=False)),
        "skipped_files": len(skipped),
        "dataset": dataset,
        "split": split,
        "precision": precision,
    }


def _write(out: Path, result: EvalResult, names: list[str], report: dict[str, Any]) -> None:
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / "eval.json", report)
    with open(out / "per_class.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["class", "images", "accuracy"])
        for i, name in enumerate(names):
            acc = report["per_class_accuracy"].get(name)
            writer.writerow([name, int(result.confusion[i].sum()), "" if acc is None else f"{acc:.6f}"])
    write_confusion_csv(result.confusion, list(names), out / "confusion.csv")
    plot_confusion(result.confusion, list(names), out / "confusion.png")
