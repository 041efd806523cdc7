"""Our weights format: safetensors tensors + a JSON header that rebuilds a working model from the file alone.

Header key "mobilenetv2" holds the model's `ModelMeta` record as JSON: {format_version, architecture, task, options,
preprocessing, class_names, provenance}.
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
from mobilenetv2.meta import ModelMeta, meta_of, set_meta
from mobilenetv2.preprocessing import Preprocessing

HEADER_KEY = "mobilenetv2"


def save(
    model: nn.Module,
    path: str | os.PathLike,
    *,
    preprocessing: Preprocessing | None = None,
    class_names: list[str] | None = None,
    provenance: dict[str, Any] | None = None,
) -> Path:
    """Write `model` (built by `create_model` or `load`) to a .safetensors file, atomically. The keywords
    replace the model's own record for this file."""
    from safetensors.torch import save_file

    meta = meta_of(model)
    options = dict(meta.options)
    if hasattr(model, "num_classes"):
        options["num_classes"] = model.num_classes
    changes: dict[str, Any] = {"options": options}
    if preprocessing is not None:
        changes["preprocessing"] = preprocessing
    if class_names is not None:
        changes["class_names"] = class_names
    if provenance is not None:
        changes["provenance"] = provenance
    header = meta.replace(**changes).to_header()
    tensors = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    with atomic_path(path) as tmp:
        save_file(tensors, str(tmp), metadata={HEADER_KEY: json.dumps(header)})
    return Path(path)


def read_header(path: str | os.PathLike) -> dict[str, Any]:
    """The JSON header of one of our weights files, checked (`ModelMeta.from_header`); UserError otherwise."""
    return read_meta(path).to_header()


def read_meta(path: str | os.PathLike) -> ModelMeta:
    """The checked metadata record of one of our weights files; UserError for anything that is not one."""
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
    return ModelMeta.from_header(header, str(path))


def read_tensors(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """Every tensor of a safetensors file (no code runs: safetensors is plain data)."""
    from safetensors.torch import load_file

    if not Path(path).is_file():
        raise FileNotFoundError(f"no such weights file: {path}")

    try:
        return load_file(str(path))
    except Exception as exc:
        raise UserError(f"{path}: cannot read tensors ({type(exc).__name__}: {exc})") from None


def check_shapes(expected: dict[str, tuple[int, ...]], found: dict[str, tuple[int, ...]], source: str) -> None:
    """UserError naming the first tensor missing from `found`, mis-shaped or unexpected there."""
    for key, shape in expected.items():
        if key not in found:
            raise UserError(f"{source}: missing tensor {key!r} (model expects shape {shape})")
        if found[key] != shape:
            raise UserError(f"{source}: tensor {key!r} has shape {found[key]}, the model expects {shape}")
    extra = [k for k in found if k not in expected]
    if extra:
        raise UserError(f"{source}: unexpected tensor {extra[0]!r}; the file is for another architecture")


def check_finite(tensors: dict[str, torch.Tensor], source: str) -> None:
    """UserError naming the first floating-point tensor holding NaN or Inf (such weights predict nonsense)."""
    for key, value in tensors.items():
        if value.is_floating_point() and not bool(torch.isfinite(value).all()):
            raise UserError(f"{source}: tensor {key!r} holds NaN or Inf values; refusing non-finite weights")


def load_state_dict_strict(model: nn.Module, tensors: dict[str, torch.Tensor], source: str) -> None:
    """Copy tensors into `model`, naming the first missing, unexpected, mis-shaped or non-finite tensor on
    failure."""
    own = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    check_shapes(own, {k: tuple(v.shape) for k, v in tensors.items()}, source)
    check_finite(tensors, source)
    model.load_state_dict(tensors, strict=True)


def tensor_shapes(path: str | os.PathLike) -> dict[str, tuple[int, ...]]:
    """The shape of every tensor in a safetensors file, read from its index (no tensor data is read)."""
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as f:
            return {k: tuple(f.get_slice(k).get_shape()) for k in f.keys()}  # noqa: SIM118 (a safe_open handle)
    except Exception as exc:
        raise UserError(f"{path}: cannot read tensors ({type(exc).__name__}: {exc})") from None


def check_header_fits(meta: ModelMeta, path: str | os.PathLike) -> None:
    """Build the header's model on the meta device (no memory, no init time) and check the file's tensor shapes
    against it, so a header that lies (num_classes 1e7, width 50) is refused before anything real is built."""
    from mobilenetv2.registry import create_model

    try:
        with torch.device("meta"):
            skeleton = create_model(meta.architecture, **meta.options)
    except (NotImplementedError, RuntimeError):  # a model whose constructor computes on tensors: checked after
        return
    expected = {k: tuple(v.shape) for k, v in skeleton.state_dict().items()}
    check_shapes(expected, tensor_shapes(path), f"{path} (header {meta.architecture} {meta.options})")


def load_into(model: nn.Module, path: str | os.PathLike) -> nn.Module:
    """Load a weights file into an already built model (shapes must match exactly); the file's record
    (preprocessing, class names, provenance) replaces the model's."""
    meta = read_meta(path)
    wanted = getattr(model, "meta", None)
    try:
        load_state_dict_strict(model, read_tensors(path), str(path))
    except UserError as exc:
        if wanted is None or meta.architecture == wanted.architecture:
            raise
        raise UserError(f"{path} holds {meta.architecture} weights, not {wanted.architecture}: {exc}") from None
    own = meta_of(model) if wanted is not None else meta
    return set_meta(
        model, own.replace(preprocessing=meta.preprocessing, class_names=meta.class_names, provenance=meta.provenance)
    )


def load(path: str | os.PathLike) -> nn.Module:
    """Rebuild the exact model a weights file describes, in eval mode."""
    from mobilenetv2.registry import create_model

    meta = read_meta(path)
    check_header_fits(meta, path)
    model = create_model(meta.architecture, **meta.options)
    load_state_dict_strict(model, read_tensors(path), str(path))
    return set_meta(model, meta.replace(options=meta_of(model).options)).eval()
