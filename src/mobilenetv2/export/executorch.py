"""ExecuTorch export: torch.export with a dynamic batch, lowered with the XNNPACK partitioner (every conv, add,
pool and linear in XNNPACK delegates), saved as a .pte and run in ExecuTorch's Python runtime.

The batch is symbolic up to a bound, and ExecuTorch plans the program's input and output buffers for that bound
(allocated whole when the method loads): `max_batch` keeps them under PLANNED_BYTES (64 for a classifier at
224 px, fewer for a segmenter's full-size logits); the runner feeds larger batches in chunks of the file's bound.
Lowering keeps the bound that was declared: PyTorch's fake convolution asks whether the batch is below 16 (its
CPU backend choice) and, with the traced batch of 2 as the hint, narrows the range in the shared shape
environment to [2, 15]; ExecuTorch's memory planning reads that range, so without the repair every program
refused batches over 15 (`set_inputs() ... failed with error 0x10`, the INT8 check's batches of 50).

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

MAX_BATCH = 64
PLANNED_BYTES = 64 * 2**20  # input + outputs at the batch bound
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


@torch.no_grad()
def max_batch(module: nn.Module, input_size: tuple[int, int]) -> int:
    """The largest power of two <= MAX_BATCH whose planned input and outputs fit in PLANNED_BYTES (at least 1)."""
    outputs = module(torch.zeros(1, 3, *input_size))
    tensors = [outputs] if isinstance(outputs, torch.Tensor) else list(outputs)
    per_image = 3 * input_size[0] * input_size[1] * 4 + sum(t.numel() * t.element_size() for t in tensors)
    bound = MAX_BATCH
    while bound > 1 and bound * per_image > PLANNED_BYTES:
        bound //= 2
    return bound


def exported(module: nn.Module, input_size: tuple[int, int], bound: int):
    """torch.export of `module` with a symbolic batch in [1, bound] (traced at 2: a batch of 1 would be
    specialized; a bound of 1 exports a fixed batch)."""
    if bound == 1:
        return torch.export.export(module, (torch.zeros(1, 3, *input_size),))
    batch = torch.export.Dim("batch", min=1, max=bound)
    return torch.export.export(module, (torch.zeros(2, 3, *input_size),), dynamic_shapes=({0: batch},))


def keep_declared_ranges(edge) -> None:
    """Put the exported program's declared symbol ranges back into the shape environment memory planning reads
    (lowering narrows them: see the module docstring)."""
    program = edge.exported_program()
    for node in program.graph.nodes:
        value = node.meta.get("val")
        for size in getattr(value, "shape", ()):
            if isinstance(size, torch.SymInt) and size.node.expr in program.range_constraints:
                size.node.shape_env.var_to_range[size.node.expr] = program.range_constraints[size.node.expr]


def lower(program, path: Path, meta: dict[str, Any]) -> Path:
    exir = need_executorch()
    from executorch.backends.xnnpack.partition.xnnpack_partitioner import XnnpackPartitioner

    with quiet():
        edge = exir.to_edge_transform_and_lower(
            program, partitioner=[XnnpackPartitioner()], constant_methods={KEY: json.dumps(meta)}
        )
        keep_declared_ranges(edge)
        path.write_bytes(edge.to_executorch().buffer)
    return path


def export_executorch(
    model: nn.Module, path: str | Path, *, input_size: tuple[int, int], extra_meta: dict[str, Any] | None = None
) -> Path:
    """Export `model` (eval) for (N, 3, *input_size), N up to `max_batch`, with the header (plus `extra_meta`).
    A model returning a tuple gives a program with as many outputs, in that order."""
    from mobilenetv2.export.onnx import freeze_same_padding

    need_executorch()
    module = freeze_same_padding(model, input_size).eval()
    bound = max_batch(module, input_size)
    with quiet():
        program = exported(module, input_size, bound)
    meta = export_metadata(model, input_size) | dict(extra_meta or {}) | {"max_batch": bound}
    return lower(program, Path(path), meta)


def load_program(path: str | Path):
    need_executorch()
    from executorch.runtime import Runtime

    return Runtime.get().load_program(str(path))


def executorch_outputs_runner(path: str | Path) -> Callable[[np.ndarray], list[np.ndarray]]:
    """The .pte's forward in ExecuTorch's runtime (XNNPACK delegates with their own thread pool): a float32 NCHW
    batch in, every output as numpy out. A batch above the file's planned bound runs in chunks of the bound."""
    method = load_program(path).load_method("forward")
    bound = int(method.metadata.input_tensor_meta(0).sizes()[0])

    def run_chunk(x: np.ndarray) -> list[np.ndarray]:
        return [t.numpy() for t in method.execute([torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))])]

    def run(x: np.ndarray) -> list[np.ndarray]:
        if len(x) <= bound:
            return run_chunk(x)
        chunks = [run_chunk(x[i : i + bound]) for i in range(0, len(x), bound)]
        return [np.concatenate(parts) for parts in zip(*chunks, strict=True)]

    return run


def executorch_runner(path: str | Path) -> Callable[[np.ndarray], np.ndarray]:
    """The first output of `executorch_outputs_runner` (a classifier's logits, a segmenter's)."""
    run = executorch_outputs_runner(path)
    return lambda x: run(x)[0]


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

    from mobilenetv2.export.int8 import CALIBRATION_BATCH, batches
    from mobilenetv2.export.onnx import freeze_same_padding

    quantizer = XNNPACKQuantizer().set_global(get_symmetric_quantization_config(is_per_channel=True))
    module = freeze_same_padding(model, input_size).eval()
    bound = max_batch(module, input_size)
    with quiet():
        prepared = prepare_pt2e(exported(module, input_size, bound).module(), quantizer)
        with torch.no_grad():
            for item in batches(calibration, min(bound, CALIBRATION_BATCH)):
                prepared(torch.from_numpy(item))
        program = exported(convert_pt2e(prepared), input_size, bound)
    return lower(program, path, meta | {"max_batch": bound})
