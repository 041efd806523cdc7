"""OpenVINO IR export (.xml + .bin), converted from our verified ONNX graph and checked in OpenVINO's CPU plugin."""

import logging
import tempfile
from pathlib import Path

import numpy as np
from torch import nn

from mobilenetv2.errors import UserError
from mobilenetv2.export.metadata import export_metadata, set_openvino_metadata
from mobilenetv2.export.onnx import export_onnx

log = logging.getLogger(__name__)


def compile_openvino(path: str | Path, *, precision: str = "f32", threads: int = 0, latency: bool = True):
    """A compiled CPU model. OpenVINO runs in bf16 by default on CPUs with AMX/avx512_bf16; `precision="f32"`
    pins full precision so outputs can be compared with PyTorch's."""
    import openvino as ov

    config = {
        "INFERENCE_PRECISION_HINT": precision,
        "PERFORMANCE_HINT": "LATENCY" if latency else "THROUGHPUT",
    }
    if threads:
        config["INFERENCE_NUM_THREADS"] = threads
    return ov.Core().compile_model(str(path), "CPU", config)


def run_openvino(path: str | Path, x: np.ndarray) -> np.ndarray:
    compiled = compile_openvino(path)
    return compiled(x.astype(np.float32))[0]


def export_openvino(model: nn.Module, path: str | Path, *, input_size: tuple[int, int]) -> Path:
    """Write `path` (.xml) and its .bin next to it."""
    import openvino as ov

    path = Path(path)
    if path.suffix != ".xml":
        raise UserError(f"an OpenVINO IR path must end in .xml (the weights go to .bin beside it), got {path}")
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        onnx_path = export_onnx(model, Path(tmp) / "model.onnx", input_size=input_size)
        ir = ov.convert_model(str(onnx_path))
    set_openvino_metadata(ir, export_metadata(model, input_size))
    # compress_to_fp16=False: the IR keeps fp32 weights (the default would halve them to fp16 on disk).
    ov.save_model(ir, str(path), compress_to_fp16=False)
    log.debug("wrote %s", path)
    return path
