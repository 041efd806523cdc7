"""LiteRT (TF-Lite) export: converted by litert-torch (torch.export -> StableHLO -> TFLite flatbuffer), run in
ai-edge-litert's interpreter with its default XNNPACK CPU delegate.

The file has a fixed input shape (batch, 3, H, W): litert-torch cannot lower a symbolic batch through the
flatten before the classifier, and fixed shapes are what TF-Lite deployments use anyway. The header travels in
the flatbuffer's `metadata` table (name "mobilenetv2", a buffer holding the JSON), where TF-Lite keeps free-form
data; the interpreter ignores entries it does not know. Needs `pip install mobilenetv2[tflite]`.
"""

import contextlib
import copy
import io
import json
import logging
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from mobilenetv2.errors import MissingRuntime, UserError
from mobilenetv2.export.metadata import KEY, export_metadata

log = logging.getLogger(__name__)


def need_litert_torch():
    try:
        import litert_torch
    except ImportError as exc:
        raise MissingRuntime(f"--format tflite needs litert-torch: pip install 'mobilenetv2[tflite]' ({exc})") from None
    return litert_torch


def need_litert():
    try:
        import ai_edge_litert.interpreter
        import ai_edge_litert.schema_py_generated
    except ImportError as exc:
        raise MissingRuntime(f".tflite files need ai-edge-litert: pip install 'mobilenetv2[tflite]' ({exc})") from None
    return ai_edge_litert


@contextlib.contextmanager
def quiet():
    """litert-torch prints a progress tree to stdout and JAX/absl chatter to the log (some of it on the root
    logger: one INFO line per lowered op); keep warnings only while it converts."""
    names = ("", "litert_torch", "jax", "absl", "torch._export", "torch.export")
    loggers = [logging.getLogger(n) for n in names]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.WARNING)
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            yield
    finally:
        for lg, level in zip(loggers, levels, strict=True):
            lg.setLevel(level)


def add_tflite_metadata(content: bytes, meta: dict[str, Any]) -> bytes:
    """`content` (a .tflite flatbuffer) with `meta` as JSON under our key in its metadata table."""
    import flatbuffers

    schema = need_litert().schema_py_generated

    model = schema.ModelT.InitFromPackedBuf(bytearray(content), 0)
    buffer = schema.BufferT()
    buffer.data = np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)
    model.buffers.append(buffer)
    entry = schema.MetadataT()
    entry.name, entry.buffer = KEY, len(model.buffers) - 1
    model.metadata = [m for m in (model.metadata or []) if m.name != KEY.encode()] + [entry]
    builder = flatbuffers.Builder(len(content) + 4096)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


def read_tflite_metadata(path: Path) -> str | None:
    schema = need_litert().schema_py_generated

    model = schema.Model.GetRootAs(path.read_bytes(), 0)
    for i in range(model.MetadataLength()):
        entry = model.Metadata(i)
        if entry.Name() == KEY.encode():
            return bytes(model.Buffers(entry.Buffer()).DataAsNumpy()).decode()
    return None


def convert(module: nn.Module, example: torch.Tensor, quant_config=None) -> bytes:
    litert_torch = need_litert_torch()
    with quiet():
        return litert_torch.convert(module, (example,), quant_config=quant_config).model_content()


class NearestImagePooling(nn.Module):
    """DeepLab's image pooling with its 1x1 map spread by a nearest-neighbour resize: the same values as the
    broadcast. litert-torch 0.10 lays the broadcast out wrongly (a RESHAPE back to NCHW feeding a BROADCAST_TO
    with the NHWC shape, which the interpreter refuses to allocate); RESIZE_NEAREST_NEIGHBOR it lays out right."""

    def __init__(self, pooling: nn.Module) -> None:
        super().__init__()
        self.pool, self.conv = pooling.pool, pooling.conv

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv(self.pool(x))  # (N, C, 1, 1)
        return F.interpolate(y, size=(int(x.shape[-2]), int(x.shape[-1])), mode="nearest")


def litert_ready(model: nn.Module, input_size: tuple[int, int]) -> nn.Module:
    """A copy of `model` (eval) as the converter should see it: constant TF-SAME pads for `input_size`, and
    DeepLab's image pooling as a resize (NearestImagePooling)."""
    from mobilenetv2.export.onnx import freeze_same_padding
    from mobilenetv2.models.deeplab import ImagePooling

    frozen = freeze_same_padding(model, input_size)
    poolings = [name for name, m in frozen.named_modules() if isinstance(m, ImagePooling)]
    if poolings and frozen is model:
        frozen = copy.deepcopy(model)
    for name in poolings:
        parent, _, attr = name.rpartition(".")
        owner = frozen.get_submodule(parent)
        setattr(owner, attr, NearestImagePooling(getattr(owner, attr)))
    return frozen.eval()


def export_tflite(
    model: nn.Module,
    path: str | Path,
    *,
    input_size: tuple[int, int],
    batch_size: int = 1,
    extra_meta: dict[str, Any] | None = None,
) -> Path:
    """Convert `model` (eval) for inputs of exactly (batch_size, 3, *input_size) and write it with the header
    (plus `extra_meta`). A model returning a tuple gives a file with as many outputs, in that order."""
    path = Path(path)
    content = convert(litert_ready(model, input_size), torch.zeros(batch_size, 3, *input_size))
    meta = export_metadata(model, input_size) | dict(extra_meta or {}) | {"batch_size": batch_size}
    path.write_bytes(add_tflite_metadata(content, meta))
    return path


def interpreter(path: str | Path, *, threads: int | None = None):
    """ai-edge-litert's interpreter (XNNPACK delegate, its default) with tensors allocated."""
    with contextlib.redirect_stderr(io.StringIO()):
        it = need_litert().interpreter.Interpreter(model_path=str(path), num_threads=threads)
    it.allocate_tensors()
    return it


def output_order(it) -> list[dict]:
    """The output details in the order PyTorch returned them: litert-torch names the signature's outputs
    output_0, output_1, ... (the tensor order in the file need not follow)."""
    signature = it.get_signature_runner()
    named = signature.get_output_details()
    order = [named[name]["index"] for name in it.get_signature_list()["serving_default"]["outputs"]]
    del signature  # it holds references into the interpreter, which then refuses to invoke
    by_index = {d["index"]: d for d in it.get_output_details()}
    return [by_index[i] for i in order]


def tflite_outputs_runner(path: str | Path, *, threads: int | None = None) -> Callable[[np.ndarray], list[np.ndarray]]:
    """A float32 in, float32 out callable on the file returning every output (in PyTorch's order); an integer
    (full-INT8) input or output is quantized / dequantized with the scale and zero point the file declares.
    Another batch than the file's: the input is resized (the interpreter re-plans the graph; our classifiers
    have no batch-dependent reshape), or, where the graph refuses (a detector's reshapes fix the batch), the
    batch runs in chunks of the file's batch (the last one zero-padded)."""
    it = interpreter(path, threads=threads)
    inp = it.get_input_details()[0]
    outs = output_order(it) if len(it.get_output_details()) > 1 else it.get_output_details()
    shape = tuple(int(s) for s in inp["shape"])
    in_scale, in_zero = inp["quantization"]
    state = {"batch": shape[0], "resizable": True}

    def dequantize(y: np.ndarray, detail: dict) -> np.ndarray:
        if y.dtype == np.float32:
            return y  # get_tensor returns a copy
        scale, zero = detail["quantization"]
        return (y.astype(np.float32) - zero) * scale

    def run_one(x: np.ndarray) -> list[np.ndarray]:
        if inp["dtype"] != np.float32:
            info = np.iinfo(inp["dtype"])
            x = np.clip(np.round(x / in_scale) + in_zero, info.min, info.max)
        it.set_tensor(inp["index"], np.ascontiguousarray(x, dtype=inp["dtype"]))
        it.invoke()
        return [dequantize(it.get_tensor(d["index"]), d) for d in outs]

    def resize(batch: int) -> bool:
        try:
            it.resize_tensor_input(inp["index"], [batch, *shape[1:]])
            it.allocate_tensors()
            ok = all(int(d["shape"][0]) == batch for d in it.get_output_details())
        except (RuntimeError, ValueError):
            ok = False
        if not ok and batch != shape[0]:
            state["resizable"] = False
            resize(shape[0])
        state["batch"] = batch if ok else shape[0]
        return ok

    def run(x: np.ndarray) -> list[np.ndarray]:
        if tuple(x.shape[1:]) != shape[1:]:
            raise UserError(f"{path} takes inputs of shape {list(shape)}, got {list(x.shape)}")
        n = len(x)
        if n != state["batch"] and not (state["resizable"] and resize(n)) and state["batch"] != shape[0]:
            resize(shape[0])
        if n == state["batch"]:
            return run_one(x)
        b = state["batch"]
        padded = np.concatenate([x, np.zeros((-n % b, *x.shape[1:]), dtype=x.dtype)])
        chunks = [run_one(padded[i : i + b]) for i in range(0, len(padded), b)]
        return [np.concatenate(parts)[:n] for parts in zip(*chunks, strict=True)]

    return run


def tflite_runner(path: str | Path, *, threads: int | None = None) -> Callable[[np.ndarray], np.ndarray]:
    """The first output of `tflite_outputs_runner` (a classifier's logits, a segmenter's)."""
    run = tflite_outputs_runner(path, threads=threads)
    return lambda x: run(x)[0]


def run_tflite(path: str | Path, x: np.ndarray) -> np.ndarray:
    return tflite_runner(path)(x.astype(np.float32))


def quantize_tflite(
    model: nn.Module, path: Path, input_size: tuple[int, int], calibration: np.ndarray, meta: dict, batch_size: int = 1
) -> Path:
    """Full-integer INT8 through litert-torch's PT2E quantizer: symmetric per-channel int8 weights, per-tensor
    int8 activations (histogram-calibrated), int8 input and output."""
    need_litert_torch()
    from litert_torch.quantize.pt2e_quantizer import PT2EQuantizer, get_symmetric_quantization_config
    from litert_torch.quantize.quant_config import QuantConfig
    from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e

    example = torch.zeros(batch_size, 3, *input_size)
    quantizer = PT2EQuantizer().set_global(get_symmetric_quantization_config(is_per_channel=True))
    with quiet():
        graph = torch.export.export(litert_ready(model, input_size), (example,)).module()
        prepared = prepare_pt2e(graph, quantizer)
        with torch.no_grad():
            for i in range(0, len(calibration) - batch_size + 1, batch_size):
                prepared(torch.from_numpy(calibration[i : i + batch_size]))
        quantized = convert_pt2e(prepared, fold_quantize=False)
    content = convert(quantized, example, quant_config=QuantConfig(pt2e_quantizer=quantizer))
    path.write_bytes(add_tflite_metadata(content, meta | {"batch_size": batch_size}))
    return path
