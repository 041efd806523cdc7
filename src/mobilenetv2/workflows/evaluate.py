"""`evaluate_weights`: accuracy, loss, per-class accuracy, confusion matrix and throughput of a weights file.

Writes (with `out_dir`): eval.json, per_class.csv, confusion.csv, confusion.png.
"""

import csv
import logging
from pathlib import Path
from typing import Any

import torch
from torch import nn

from mobilenetv2.atomic import atomic_path
from mobilenetv2.data.build import build_eval_source
from mobilenetv2.data.loader import TransformedDataset, eval_loader
from mobilenetv2.data.transforms import eval_transform
from mobilenetv2.meta import meta_of
from mobilenetv2.train.evaluate import EvalResult, evaluate
from mobilenetv2.train.records import plot_confusion, write_confusion_csv
from mobilenetv2.train.runtime import Runtime, pick_device, resolve_precision
from mobilenetv2.train.tasks.classification import KeepTarget
from mobilenetv2.utils import write_json

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
    ignore_class_mismatch: bool = False,
) -> dict[str, Any]:
    """Evaluate a model or weights file (see `load_weights`) on a built-in set or an image folder.

    The model's classes must be the data's (same count, same names where the file has names): anything else
    scores labels against unrelated outputs. `ignore_class_mismatch=True` compares by index anyway."""
    model = weights if isinstance(weights, nn.Module) else load_weights(str(weights), source)
    rt = Runtime(pick_device(device))
    meta = meta_of(model)
    pre = meta.preprocessing
    source = build_eval_source(dataset, data=data, resolution=tuple(pre.input_size), split=split)
    names = list(meta.class_names or source.class_names)
    num_classes = getattr(model, "num_classes", len(names))
    if len(source.class_names) > num_classes:
        raise ValueError(f"the data has {len(source.class_names)} classes, the model only {num_classes} outputs")
    mismatch = None
    if num_classes != len(source.class_names):
        mismatch = f"the model has {num_classes} classes, the data {len(source.class_names)}"
    elif meta.class_names is not None and list(meta.class_names) != list(source.class_names):
        first = next(i for i, (a, b) in enumerate(zip(names, source.class_names, strict=True)) if a != b)
        mismatch = f"class {first} is {names[first]!r} in the model, {source.class_names[first]!r} in the data"
    if mismatch and not ignore_class_mismatch:
        raise ValueError(f"{mismatch}; pass --ignore-class-mismatch to compare by index anyway")
    if mismatch:
        log.warning("%s; comparing by index", mismatch)
    model = model.to(rt.device, memory_format=torch.channels_last).eval()
    loader = eval_loader(
        TransformedDataset(source, KeepTarget(eval_transform(pre)), random=False),
        batch_size=batch_size,
        workers=workers,
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
    with atomic_path(out / "per_class.csv") as tmp, open(tmp, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["class", "images", "accuracy"])
        for i, name in enumerate(names):
            acc = report["per_class_accuracy"].get(name)
            writer.writerow([name, int(result.confusion[i].sum()), "" if acc is None else f"{acc:.6f}"])
    write_confusion_csv(result.confusion, list(names), out / "confusion.csv")
    plot_confusion(result.confusion, list(names), out / "confusion.png")
