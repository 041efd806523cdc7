"""Export to ONNX, OpenVINO IR, TorchScript, LiteRT (.tflite) and ExecuTorch (.pte), each run in its runtime and
compared with PyTorch right away.

`export_model` takes any module that maps (N, 3, H, W) to one tensor at a fixed `input_size` (the classifiers;
the segmenter, whose logits come at the input size), and a detector by its decoded boxes and scores
(export/detection.py), in every format."""

import dataclasses
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from functools import partial
from pathlib import Path
from typing import Literal

from torch import nn

from mobilenetv2.atomic import atomic_path
from mobilenetv2.errors import UserError
from mobilenetv2.export.metadata import read_metadata
from mobilenetv2.export.verify import VERIFY_BATCH, ExportResult, check_close
from mobilenetv2.meta import find_meta
from mobilenetv2.registry import task_of

Format = Literal["onnx", "openvino", "torchscript", "tflite", "executorch"]
FORMATS: dict[str, str] = {
    "onnx": ".onnx",
    "openvino": ".xml",
    "torchscript": ".pt",
    "tflite": ".tflite",
    "executorch": ".pte",
}
FIXED_BATCH_FORMATS = ("tflite",)  # the file is built for one batch size (the others have a symbolic batch)
log = logging.getLogger(__name__)


def export_model(
    model: nn.Module,
    path: str | Path,
    *,
    format: Format = "onnx",
    input_size: tuple[int, int] = (224, 224),
    batch_size: int | None = None,
    nms: bool = False,
) -> ExportResult:
    """Export `model` for inputs of (N, 3, *input_size), run the file in its runtime and compare the logits with
    PyTorch's; UserError when they differ by more than 1e-4. The file is written and verified under a temp
    name beside `path` and renamed over it only then, so a failed export leaves an earlier file intact.
    `batch_size`: the fixed N of a tflite file (default 1); the other formats take any N.
    A detector exports its decoded boxes and scores (and per-class NMS with `nms=True`, onnx and openvino):
    export/detection.py."""
    from mobilenetv2.export.executorch import export_executorch, run_executorch
    from mobilenetv2.export.litert import export_tflite, run_tflite
    from mobilenetv2.export.onnx import export_onnx, run_onnx
    from mobilenetv2.export.openvino import export_openvino, run_openvino
    from mobilenetv2.export.torchscript import export_torchscript, run_torchscript

    writers = {"onnx": (export_onnx, run_onnx), "openvino": (export_openvino, run_openvino)}
    writers["torchscript"] = (export_torchscript, run_torchscript)
    writers["executorch"] = (export_executorch, run_executorch)
    writers["tflite"] = (partial(export_tflite, batch_size=batch_size or 1), run_tflite)
    if batch_size is not None and (format not in FIXED_BATCH_FORMATS or batch_size < 1):
        raise UserError(f"batch_size applies to {', '.join(FIXED_BATCH_FORMATS)} (>= 1); {format} takes any batch")
    if format not in writers:
        raise UserError(f"unknown export format {format!r}; choose from {', '.join(writers)}")
    input_size = tuple(int(s) for s in input_size)
    if len(input_size) != 2 or min(input_size) < 1:
        raise UserError(f"input_size must be (H, W) with positive sizes, got {input_size}")
    path = check_output(path, format)
    write, run = writers[format]
    batch = (batch_size or 1) if format in FIXED_BATCH_FORMATS else VERIFY_BATCH
    was_training = model.training
    model.eval()
    meta = find_meta(model)
    if meta is not None and task_of(meta.architecture) == "detection":
        from mobilenetv2.export.detection import export_detector

        try:
            with staged_export(Path(path)) as tmp:
                result = export_detector(
                    model, tmp, format=format, input_size=input_size, nms=nms, batch_size=batch_size
                )
            return dataclasses.replace(result, path=Path(path))
        finally:
            model.train(was_training)
    if nms:
        raise UserError("nms applies to detection models only")
    try:
        with staged_export(path) as tmp:
            write(model, tmp, input_size=input_size)
            result = check_close(
                model, lambda x: run(tmp, x), path=path, format=format, input_size=input_size, batch=batch
            )
    finally:
        model.train(was_training)
    log.info("%s export verified: %s (max |diff| vs PyTorch %.2g)", format, path, result.max_abs_diff)
    return result


def check_output(path: str | Path, format: str, *, inputs: tuple[str | Path | None, ...] = ()) -> Path:
    """UserError unless `path` ends in `format`'s extension and neither it nor its companion (.bin) is one of
    `inputs` (exporting over the weights it reads would destroy them)."""
    path = Path(path)
    want = FORMATS.get(format)
    if want is not None and path.suffix.lower() != want:
        raise UserError(f"--out {path}: {format} exports must end in {want}")
    if path.exists() and not path.is_file():
        raise UserError(f"--out {path}: exists and is not a regular file")
    written = [path, path.with_suffix(".bin")] if path.suffix.lower() == ".xml" else [path]
    for source in (Path(i) for i in inputs if i is not None):
        for out in written:
            if out.resolve() == source.resolve() or (out.exists() and source.exists() and out.samefile(source)):
                raise UserError(f"--out {out} is the input file {source}; choose another output path")
    return path


@contextmanager
def staged_export(path: Path) -> Iterator[Path]:
    """A temp path with `path`'s suffix in its folder, renamed over `path` (and an .xml's .bin) on success."""
    with atomic_path(path, keep_suffix=True, companions=(".bin",) if path.suffix.lower() == ".xml" else ()) as tmp:
        yield tmp


def remove_export(path: Path) -> None:
    for p in (path, path.with_suffix(".bin")) if path.suffix == ".xml" else (path,):
        p.unlink(missing_ok=True)


__all__ = [
    "FIXED_BATCH_FORMATS",
    "FORMATS",
    "ExportResult",
    "Format",
    "check_output",
    "export_model",
    "read_metadata",
    "staged_export",
]
