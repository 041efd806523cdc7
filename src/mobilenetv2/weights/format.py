"""Our weights format: safetensors tensors + a JSON header that rebuilds a working model from the file alone.

Header key "mobilenetv2" holds {format_version, architecture, options, preprocessing, class_names, provenance}.
Nothing here unpickles anything.
"""

import json
import os
from pathlib import Path
from typing import Any

import torch
from torch import nn

from mobilenetv2.atomic import atomic_path
from mobilenetv2.errors import UserError
from mobilenetv2.preprocessing import Preprocessing, default_preprocessing

FORMAT_VERSION = 1
HEADER_KEY = "mobilenetv2"


def save(
    model: nn.Module,
    path: str | os.PathLike,
    *,
    preprocessing: Preprocessing | None = None,
    class_names: list[str] | None = None,
    provenance: dict[str, Any] | None = None,
) -> Path:
    """Write `model` (built by `create_model`) to a .safetensors file, atomically."""
    from safetensors.torch import save_file

    name = getattr(model, "model_name", None)
    if name is None:
        raise UserError("save() needs a model built by mobilenetv2.create_model (it records the architecture)")
    options = dict(getattr(model, "model_options", {}))
    if hasattr(model, "num_classes"):
        options["num_classes"] = model.num_classes
    if preprocessing is None:
        preprocessing = getattr(model, "preprocessing", None) or default_preprocessing()
    if class_names is None:
        class_names = getattr(model, "class_names", None)
    header = {
        "format_version": FORMAT_VERSION,
        "architecture": name,
        "options": options,
        "preprocessing": preprocessing.to_dict(),
        "class_names": list(class_names) if class_names is not None else None,
        "provenance": provenance or getattr(model, "provenance", None) or {"source": "mobilenetv2"},
    }
    tensors = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    with atomic_path(path) as tmp:
        save_file(tensors, str(tmp), metadata={HEADER_KEY: json.dumps(header)})
    return Path(path)


def read_header(path: str | os.PathLike) -> dict[str, Any]:
    """The JSON header of one of our weights files; UserError for anything that is not one."""
    from safetensors import safe_open

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no such weights file: {path}")
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
    except Exception as exc:  # safetensors raises its own error types for corrupt files
        raise UserError(f"{path} is not a readable safetensors file ({type(exc).__name__}: {exc})") from None
    if HEADER_KEY not in meta:
        raise UserError(f"{path} is a safetensors file without a mobilenetv2 header; convert it first")
    try:
        header = json.loads(meta[HEADER_KEY])
    except json.JSONDecodeError:
        raise UserError(f"{path}: the mobilenetv2 header is not valid JSON") from None
    if not isinstance(header, dict) or not isinstance(header.get("architecture"), str):
        raise UserError(f"{path}: the mobilenetv2 header names no architecture")
    if int(header.get("format_version", 0)) > FORMAT_VERSION:
        raise UserError(
            f"{path} uses weights format {header['format_version']}; this version reads up to {FORMAT_VERSION}"
        )
    return header


def read_tensors(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """Every tensor of a safetensors file (no code runs: safetensors is plain data)."""
    from safetensors.torch import load_file

    if not Path(path).is_file():
        raise FileNotFoundError(f"no such weights file: {path}")

    try:
        return load_file(str(path))
    except Exception as exc:
        raise UserError(f"{path}: cannot read tensors ({type(exc).__name__}: {exc})") from None


def load_state_dict_strict(model: nn.Module, tensors: dict[str, torch.Tensor], source: str) -> None:
    """Copy tensors into `model`, naming the first missing, unexpected or mis-shaped tensor on failure."""
    own = model.state_dict()
    for key, value in own.items():
        if key not in tensors:
            raise UserError(f"{source}: missing tensor {key!r} (model expects shape {tuple(value.shape)})")
        if tuple(tensors[key].shape) != tuple(value.shape):
            raise UserError(
                f"{source}: tensor {key!r} has shape {tuple(tensors[key].shape)}, "
                f"the model expects {tuple(value.shape)}"
            )
    extra = [k for k in tensors if k not in own]
    if extra:
        raise UserError(f"{source}: unexpected tensor {extra[0]!r}; the file is for another architecture")
    model.load_state_dict(tensors, strict=True)


def _attach(model: nn.Module, header: dict[str, Any]) -> None:
    model.preprocessing = Preprocessing.from_dict(header.get("preprocessing") or {})
    model.class_names = header.get("class_names")
    model.provenance = header.get("provenance")


def load_into(model: nn.Module, path: str | os.PathLike) -> nn.Module:
    """Load a weights file into an already built model (shapes must match exactly)."""
    header = read_header(path)
    wanted = getattr(model, "model_name", None)
    try:
        load_state_dict_strict(model, read_tensors(path), str(path))
    except UserError as exc:
        if wanted is None or header["architecture"] == wanted:
            raise
        raise UserError(f"{path} holds {header['architecture']} weights, not {wanted}: {exc}") from None
    _attach(model, header)
    return model


def load(path: str | os.PathLike) -> nn.Module:
    """Rebuild the exact model a weights file describes, in eval mode."""
    from mobilenetv2.registry import create_model

    header = read_header(path)
    model = create_model(header["architecture"], **header.get("options", {}))
    load_state_dict_strict(model, read_tensors(path), str(path))
    _attach(model, header)
    return model.eval()
