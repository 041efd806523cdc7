"""Export to ONNX, OpenVINO IR and TorchScript, each run in its runtime and compared with PyTorch right away."""

import logging
from pathlib import Path
from typing import Literal

from torch import nn

from mobilenetv2.errors import UserError
from mobilenetv2.export.metadata import read_metadata
from mobilenetv2.export.verify import ExportResult, check_close
from mobilenetv2.meta import find_meta
from mobilenetv2.registry import task_of

Format = Literal["onnx", "openvino", "torchscript"]
FORMATS: dict[str, str] = {"onnx": ".onnx", "openvino": ".xml", "torchscript": ".pt"}
log = logging.getLogger(__name__)


def export_model(
    model: nn.Module,
    path: str | Path,
    *,
    format: Format = "onnx",
    input_size: tuple[int, int] = (224, 224),
    nms: bool = False,
) -> ExportResult:
    """Export `model` for inputs of (N, 3, *input_size), run the file in its runtime and compare the logits with
    PyTorch's; UserError (nothing left at `path`) when they differ by more than 1e-4. A detector exports its
    decoded boxes and scores (and per-class NMS with `nms=True`): see export/detection.py."""
    from mobilenetv2.export.onnx import export_onnx, run_onnx
    from mobilenetv2.export.openvino import export_openvino, run_openvino
    from mobilenetv2.export.torchscript import export_torchscript, run_torchscript

    writers = {"onnx": (export_onnx, run_onnx), "openvino": (export_openvino, run_openvino)}
    writers["torchscript"] = (export_torchscript, run_torchscript)
    if format not in writers:
        raise UserError(f"unknown export format {format!r}; choose from {', '.join(writers)}")
    input_size = tuple(int(s) for s in input_size)
    if len(input_size) != 2 or min(input_size) < 1:
        raise UserError(f"input_size must be (H, W) with positive sizes, got {input_size}")
    write, run = writers[format]
    was_training = model.training
    model.eval()
    meta = find_meta(model)
    if meta is not None and task_of(meta.architecture) == "detection":
        from mobilenetv2.export.detection import export_detector

        try:
            return export_detector(model, Path(path), format=format, input_size=input_size, nms=nms)
        finally:
            model.train(was_training)
    if nms:
        raise UserError("nms applies to detection models only")
    try:
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


__all__ = ["FORMATS", "ExportResult", "Format", "export_model", "read_metadata"]
