"""The header every export carries: architecture, options, input size, preprocessing and class names.

The same facts our weights files hold, stored where each format keeps free-form data: ONNX `metadata_props`
(key "mobilenetv2"), OpenVINO's model `rt_info` (key "mobilenetv2"), TorchScript's extra files
("mobilenetv2.json"), the TF-Lite flatbuffer's metadata table (name "mobilenetv2"), and an ExecuTorch constant
method ("mobilenetv2", returning the JSON string). The value is one JSON object. `read_metadata(path)` reads it
back from any of them.
"""

import json
import warnings
from pathlib import Path
from typing import Any

from torch import nn

from mobilenetv2.errors import UserError
from mobilenetv2.meta import find_meta

KEY = "mobilenetv2"
TORCHSCRIPT_FILE = "mobilenetv2.json"


def export_metadata(model: nn.Module, input_size: tuple[int, int]) -> dict[str, Any]:
    """Architecture, options, preprocessing and class names of `model` (those it carries), for the export."""
    meta = find_meta(model)
    if meta is None:
        return {"architecture": type(model).__name__, "options": {}, "input_size": list(input_size)}
    header = meta.to_header()
    return {key: header[key] for key in ("architecture", "task", "options", "preprocessing", "class_names")} | {
        "input_size": list(input_size)
    }


def set_onnx_metadata(proto, meta: dict[str, Any]) -> None:
    """Put `meta` under our key in an ONNX ModelProto's metadata_props (replacing an earlier value)."""
    for i, entry in reversed(list(enumerate(proto.metadata_props))):
        if entry.key == KEY:
            del proto.metadata_props[i]
    entry = proto.metadata_props.add()
    entry.key, entry.value = KEY, json.dumps(meta)


def set_openvino_metadata(model, meta: dict[str, Any]) -> None:
    """Put `meta` under our key in an OpenVINO model's rt_info (saved with the IR)."""
    model.set_rt_info(json.dumps(meta), [KEY])


def torchscript_extra_files(meta: dict[str, Any]) -> dict[str, str]:
    """`_extra_files` for `torch.jit.save` that carry `meta`."""
    return {TORCHSCRIPT_FILE: json.dumps(meta)}


def read_metadata(path: str | Path) -> dict[str, Any] | None:
    """The header of an exported .onnx, .xml (OpenVINO IR), .pt (TorchScript), .tflite (LiteRT) or .pte
    (ExecuTorch) file; None when it has none."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"no such file: {path}")
    if path.suffix == ".onnx":
        import onnx

        props = {p.key: p.value for p in onnx.load(str(path), load_external_data=False).metadata_props}
        text = props.get(KEY)
    elif path.suffix == ".xml":
        import openvino as ov

        model = ov.Core().read_model(str(path))
        text = model.get_rt_info([KEY]).astype(str) if model.has_rt_info([KEY]) else None
    elif path.suffix == ".pt":
        import torch

        extra = {TORCHSCRIPT_FILE: ""}
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", category=FutureWarning)
            torch.jit.load(str(path), map_location="cpu", _extra_files=extra)
        text = extra[TORCHSCRIPT_FILE] or None
    elif path.suffix == ".tflite":
        from mobilenetv2.export.litert import read_tflite_metadata

        text = read_tflite_metadata(path)
    elif path.suffix == ".pte":
        from mobilenetv2.export.executorch import read_executorch_metadata

        text = read_executorch_metadata(path)
    else:
        raise UserError(f"{path}: not an export (.onnx, .xml, .pt, .tflite or .pte)")
    return json.loads(text) if text else None
