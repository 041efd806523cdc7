"""What `mobilenetv2 export` does: rebuild a model from a weights file (or a registered name), export, verify."""

from pathlib import Path
from typing import Any

from mobilenetv2.errors import UserError
from mobilenetv2.export import FORMATS, ExportResult, export_model
from mobilenetv2.meta import meta_of


def default_output(weights: str | None, model_name: str | None, format: str, *, int8: bool) -> Path:
    """model.safetensors -> model.onnx (model.int8.onnx with --int8); NAME.onnx for --model NAME."""
    stem = Path(weights).with_suffix("") if weights else Path(str(model_name))
    return Path(f"{stem}{'.int8' if int8 else ''}{FORMATS[format]}")


def build_model(weights: str | None, model_name: str | None, options: dict[str, Any]):
    from mobilenetv2.registry import create_model
    from mobilenetv2.weights import load

    if (weights is None) == (model_name is None):
        raise UserError("give a weights file, or --model NAME for a randomly initialized model (not both)")
    if weights is not None:
        if options:
            raise UserError(f"model options ({', '.join(options)}) come from the weights file; drop them")
        return load(weights)
    return create_model(model_name, **options).eval()


def export_from_file(
    weights: str | None,
    *,
    model_name: str | None = None,
    model_options: dict[str, Any] | None = None,
    format: str = "onnx",
    out: str | None = None,
    input_size: tuple[int, int] | None = None,
    int8: bool = False,
    calibration: str | None = None,
    calibration_size: int = 300,
    min_agreement: float = 0.95,
    batch_size: int | None = None,
    nms: bool = False,
) -> ExportResult:
    """Export weights (ours) or a fresh `model_name`; `input_size` defaults to the weights' preprocessing."""
    from mobilenetv2.export import check_output
    from mobilenetv2.models.mobilenet_v2 import check_resolution

    if format not in FORMATS:
        raise UserError(f"unknown format {format!r}; choose from {', '.join(FORMATS)}")
    if batch_size is not None and format != "tflite":
        raise UserError(f"--batch-size applies to --format tflite (a fixed batch); {format} takes any batch")
    if calibration is not None and not int8:
        raise UserError("--calibration only applies with --int8")
    if int8 and not 0 <= min_agreement <= 1:
        raise UserError(f"--min-agreement must be in [0, 1], got {min_agreement}")
    if int8 and calibration is None:
        raise UserError("--int8 needs --calibration DATA (an image folder, or 'digits')")
    path = check_output(
        Path(out) if out else default_output(weights, model_name, format, int8=int8), format, inputs=(weights,)
    )
    model = build_model(weights, model_name, dict(model_options or {}))
    if input_size is None:
        input_size = tuple(meta_of(model).preprocessing.input_size)
    check_resolution(model, input_size)
    if not int8:
        return export_model(model, path, format=format, input_size=input_size, batch_size=batch_size, nms=nms)
    task = meta_of(model).task
    if task != "classification":  # calibration and the agreement check are top-1 over labelled images
        raise UserError(f"--int8 quantizes classification models; {meta_of(model).architecture} is a {task} model")
    from mobilenetv2.export.int8 import export_int8

    return export_int8(
        model,
        path,
        format=format,
        input_size=input_size,
        calibration=calibration,
        limit=calibration_size,
        min_agreement=min_agreement,
        batch_size=batch_size,
    )
