"""Export to ONNX, OpenVINO IR, TorchScript, LiteRT (.tflite) and ExecuTorch (.pte), each run in its runtime and
compared with PyTorch right away.

`export_model` takes any module that maps (N, 3, H, W) to one tensor, at a fixed `input_size`: the classifiers
today, the detection and segmentation heads once they return a single tensor."""

import logging
from functools import partial
from pathlib import Path
from typing import Literal

from torch import nn

from mobilenetv2.atomic import atomic_path
from mobilenetv2.errors import UserError
from mobilenetv2.export.metadata import read_metadata
from mobilenetv2.export.verify import VERIFY_BATCH, ExportResult, check_close

Format = Literal["onnx", "openvino", "torchscript", "tflite", "executorch"]
FORMATS: dict[str, str] = {
    "onnx": ".onnx",
    "openvino": ".xml",
    "torchscript": ".pt",
    "tflite": ".tflite",
    "executorch": ".pte",
}
FIXED_BATCH_FORMATS = ("tflite",)  # the file is built for one batch size (the others have a symbolic batch)
ATOMIC_FORMATS = ("tflite", "executorch")  # written beside the target, verified, then renamed over it
log = logging.getLogger(__name__)


def export_model(
    model: nn.Module,
    path: str | Path,
    *,
    format: Format = "onnx",
    input_size: tuple[int, int] = (224, 224),
    batch_size: int | None = None,
) -> ExportResult:
    """Export `model` for inputs of (N, 3, *input_size), run the file in its runtime and compare the logits with
    PyTorch's; UserError (nothing left at `path`) when they differ by more than 1e-4. `batch_size`: the fixed
    N of a tflite file (default 1); the other formats take any N."""
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
    write, run = writers[format]
    batch = (batch_size or 1) if format in FIXED_BATCH_FORMATS else VERIFY_BATCH
    was_training = model.training
    model.eval()
    try:
        if format in ATOMIC_FORMATS:
            with atomic_path(path) as tmp:  # a failed check raises here: the temp file goes, `path` stays as it was
                write(model, tmp, input_size=input_size)
                result = check_close(
                    model, lambda x: run(tmp, x), path=Path(path), format=format, input_size=input_size, batch=batch
                )
        else:
            path = write(model, path, input_size=input_size)
            try:
                result = check_close(model, lambda x: run(path, x), path=path, format=format, input_size=input_size)
            except UserError:
                remove_export(path)
                raise
    finally:
        model.train(was_training)
    log.info("%s export verified: %s (max |diff| vs PyTorch %.2g)", format, path, result.max_abs_diff)
    return result


def remove_export(path: Path) -> None:
    for p in (path, path.with_suffix(".bin")) if path.suffix == ".xml" else (path,):
        p.unlink(missing_ok=True)


__all__ = ["FIXED_BATCH_FORMATS", "FORMATS", "ExportResult", "Format", "export_model", "read_metadata"]
