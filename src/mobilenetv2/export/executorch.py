"""ExecuTorch export: torch.export with a dynamic batch, lowered with the XNNPACK partitioner (every conv, add,
pool and linear in XNNPACK delegates), saved as a .pte and run in ExecuTorch's Python runtime.

The header travels in the file as a constant method named "mobilenetv2" returning the JSON string (ExecuTorch's
place for configuration in a program: `program.load_method("mobilenetv2").execute([])`). Needs
`pip install mobilenetv2[executorch]`.
"""

import contextlib
import json
import logging
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from mobilenetv2.errors import MissingRuntime
from mobilenetv2.export.metadata import KEY, export_metadata

MAX_BATCH = 1024
log = logging.getLogger(__name__)


def need_executorch():
    try:
        import executorch.exir as exir
    except ImportError as exc:
        raise MissingRuntime(
            f"--format executorch needs executorch: pip install 'mobilenetv2[executorch]' ({exc})"
        ) from None
    return exir


@contextlib.contextmanager
def quiet():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


def exported(module: nn.Module, input_size: tuple[int, int]):
    """torch.export of `module` with a symbolic batch (traced at 2: a batch of 1 would be specialized)."""
    batch = torch.export.Dim("batch", min=1, max=MAX_BATCH)
    return torch.export.export(module, (torch.zeros(2, 3, *input_size),), dynamic_shapes=({0: batch},))


def lower(program, path: Path, meta: dict[str, Any]) -> Path:
    exir = need_executorch()
    from executorch.backends.xnnpack.partition.xnnpack_partitioner import XnnpackPartitioner

    with quiet():
        edge = exir.to_edge_transform_and_lower(
            program, partitioner=[XnnpackPartitioner()], constant_methods={KEY: json.dumps(meta)}
        )
        path.write_bytes(edge.to_executorch().buffer)
    return path


def export_executorch(model: nn.Module, path: str | Path, *, input_size: tuple[int, int]) -> Path:
    from mobilenetv2.export.onnx import freeze_same_padding

    need_executorch()
    with quiet():
        program = exported(freeze_same_padding(model, input_size).eval(), input_size)
    return lower(program, Path(path), export_metadata(model, input_size))


def load_program(path: str | Path):
    need_executorch()
    from executorch.runtime import Runtime

    return Runtime.get().load_program(str(path))


def executorch_runner(path: str | Path) -> Callable[[np.ndarray], np.ndarray]:
    """The .pte's forward in ExecuTorch's runtime (XNNPACK delegates with their own thread pool), numpy in/out."""
    method = load_program(path).load_method("forward")

    def run(x: np.ndarray) -> np.ndarray:
        return method.execute([torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))])[0].numpy()

    return run


def run_executorch(path: str | Path, x: np.ndarray) -> np.ndarray:
    return executorch_runner(path)(x)


def read_executorch_metadata(path: Path) -> str | None:
    program = load_program(path)
    if KEY not in program.method_names:
        return None
    return program.load_method(KEY).execute([])[0]


def quantize_executorch(
    model: nn.Module, path: Path, input_size: tuple[int, int], calibration: np.ndarray, meta: dict
) -> Path:
    """PT2E with ExecuTorch's XNNPACKQuantizer (symmetric per-channel int8 weights, per-tensor int8
    activations), lowered to XNNPACK's int8 kernels; float input and output (quantized inside the program)."""
    need_executorch()
    from executorch.backends.xnnpack.quantizer.xnnpack_quantizer import (
        XNNPACKQuantizer,
        get_symmetric_quantization_config,
    )
    from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e

    from mobilenetv2.export.int8 import batches
    from mobilenetv2.export.onnx import freeze_same_padding

    quantizer = XNNPACKQuantizer().set_global(get_symmetric_quantization_config(is_per_channel=True))
    with quiet():
        prepared = prepare_pt2e(exported(freeze_same_padding(model, input_size).eval(), input_size).module(), quantizer)
        with torch.no_grad():
            for item in batches(calibration):
                prepared(torch.from_numpy(item))
        program = exported(convert_pt2e(prepared), input_size)
    return lower(program, path, meta)
