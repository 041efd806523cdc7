"""TorchScript export: traced at the export size, frozen (BN folded, constants inlined), checked by loading it back."""

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
        torch.jit.save(frozen, str(path), _extra_files=extra)
    log.debug("wrote %s", path)
    return path


def load_torchscript(path: str | Path) -> torch.jit.ScriptModule:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", category=FutureWarning)
        return torch.jit.load(str(path), map_location="cpu").eval()


def run_torchscript(path: str | Path, x: np.ndarray) -> np.ndarray:
    module = load_torchscript(path)
    with torch.inference_mode():
        return module(torch.from_numpy(x)).numpy()
