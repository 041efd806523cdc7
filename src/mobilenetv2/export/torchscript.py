"""TorchScript export: traced at the export size, frozen (BN folded, constants inlined), checked by loading it back."""

import io
import logging
import warnings
from pathlib import Path

import numpy as np
import torch
from torch import nn

from mobilenetv2.export.metadata import export_metadata, torchscript_extra_files
from mobilenetv2.export.onnx import freeze_same_padding

log = logging.getLogger(__name__)


def export_torchscript(model: nn.Module, path: str | Path, *, input_size: tuple[int, int]) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    extra = torchscript_extra_files(export_metadata(model, input_size))
    # Constant TF-SAME pads keep the trace free of shape arithmetic the tracer would bake in with warnings.
    model = freeze_same_padding(model, input_size)
    # TorchScript is deprecated in favour of torch.export but remains what C++ (libtorch) and mobile load.
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore", category=FutureWarning)
        traced = torch.jit.trace(model, torch.zeros(1, 3, *input_size))
        frozen = torch.jit.freeze(traced)
        save_scripted(frozen, path, extra)
    log.debug("wrote %s", path)
    return path


def save_scripted(module: torch.jit.ScriptModule, path: Path, extra: dict[str, str]) -> None:
    """torch.jit.save to memory, then one Python write: torch's own file writer aborts the whole process
    (std::terminate) when the disk fills, where a Python write raises OSError(ENOSPC) the caller handles."""
    buffer = io.BytesIO()
    torch.jit.save(module, buffer, _extra_files=extra)
    Path(path).write_bytes(buffer.getvalue())


def load_torchscript(path: str | Path) -> torch.jit.ScriptModule:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", category=FutureWarning)
        return torch.jit.load(str(path), map_location="cpu").eval()


def run_torchscript(path: str | Path, x: np.ndarray) -> np.ndarray:
    module = load_torchscript(path)
    with torch.inference_mode():
        return module(torch.from_numpy(x)).numpy()
