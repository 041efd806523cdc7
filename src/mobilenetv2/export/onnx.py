"""ONNX export: opset 18, dynamic batch, BatchNorm folded, ReLU6 as Clip with constant bounds, checked in
onnxruntime.

The input's height and width are fixed at export time (the `input_size` given). For `padding="tf"` models the
TensorFlow SAME padding depends on H and W, so it is computed once for that size and fused into the convs; a
different size needs another export.
"""

import contextlib
import copy
import io
import logging
import warnings
from pathlib import Path

import numpy as np
import torch
from torch import nn

from mobilenetv2.errors import UserError
from mobilenetv2.export.metadata import export_metadata, set_onnx_metadata
from mobilenetv2.layers.padding import SamePad2d, same_padding

OPSET = 18
INPUT_NAME, OUTPUT_NAME = "input", "logits"
log = logging.getLogger(__name__)


def freeze_same_padding(model: nn.Module, input_size: tuple[int, int]) -> nn.Module:
    """A copy of `model` whose TF-SAME pads are constants for inputs of `input_size`, so the graph has no
    shape arithmetic (Shape -> Gather -> Sub ... -> Pad) left in it."""
    sizes: dict[str, tuple[int, int]] = {}

    def record(name: str):
        def hook(module: nn.Module, args: tuple[torch.Tensor]) -> None:
            sizes[name] = tuple(args[0].shape[-2:])  # (H, W) this pad sees

        return hook

    hooks = [m.register_forward_pre_hook(record(n)) for n, m in model.named_modules() if isinstance(m, SamePad2d)]
    if not hooks:
        return model
    try:
        with torch.no_grad():
            model(torch.zeros(1, 3, *input_size))
    finally:
        for h in hooks:
            h.remove()
    frozen = copy.deepcopy(model)
    for name, (h, w) in sizes.items():
        pad: SamePad2d = frozen.get_submodule(name)
        top, bottom = same_padding(h, pad.kernel, pad.stride, pad.dilation)
        left, right = same_padding(w, pad.kernel, pad.stride, pad.dilation)
        parent_name, _, attr = name.rpartition(".")
        setattr(frozen.get_submodule(parent_name), attr, nn.ZeroPad2d((left, right, top, bottom)))
    return frozen


def to_onnx_bytes(
    model: nn.Module, input_size: tuple[int, int], *, opset: int = OPSET, output_names: tuple[str, ...] = (OUTPUT_NAME,)
) -> bytes:
    """Trace `model` (eval) at batch 1 and return the optimized ONNX model, serialized."""
    import onnx

    model = freeze_same_padding(model, input_size)
    buffer = io.BytesIO()
    # The TorchScript-based exporter takes seconds where the torch.export-based one takes ~10x longer for this
    # model; onnxscript's optimizer then folds BN into the convs and leaves every constant an initializer.
    with quiet_loggers("torch.onnx", "onnxscript", "onnx_ir"), warnings.catch_warnings():
        warnings.simplefilter("ignore", category=DeprecationWarning)
        warnings.simplefilter("ignore", category=FutureWarning)
        warnings.simplefilter("ignore", category=torch.jit.TracerWarning)  # shapes are fixed at export
        warnings.filterwarnings("ignore", category=UserWarning, module=r"torch\.onnx")
        torch.onnx.export(
            model,
            (torch.zeros(1, 3, *input_size),),
            buffer,
            dynamo=False,
            opset_version=opset,
            input_names=[INPUT_NAME],
            output_names=list(output_names),
            dynamic_axes={INPUT_NAME: {0: "batch"}} | {name: {0: "batch"} for name in output_names},
            do_constant_folding=True,
        )
        proto = optimize(onnx.load_from_string(buffer.getvalue()))
    onnx.checker.check_model(proto, full_check=True)
    return proto.SerializeToString()


def optimize(proto):
    """Fold constants (including the ConstantOfShape the exporter builds pad amounts from, so constant pads
    fuse into the convs), fold BN into convs, drop Identity nodes."""
    import onnx_ir
    import onnxscript.optimizer
    import onnxscript.rewriter
    from onnxscript.rewriter.rules.common import fuse_pad_into_conv_rule

    ir_model = onnx_ir.from_proto(proto)

    def fold_everything(node) -> bool | None:
        return True if node.op_type == "ConstantOfShape" else None

    onnxscript.optimizer.optimize_ir(ir_model, should_fold=fold_everything)
    ir_model = onnxscript.rewriter.rewrite(ir_model, pattern_rewrite_rules=[fuse_pad_into_conv_rule])
    onnxscript.optimizer.optimize_ir(ir_model)
    return onnx_ir.to_proto(ir_model)


@contextlib.contextmanager
def quiet_loggers(*names: str):
    """The ONNX tool chain logs every rewrite at INFO; keep only its warnings."""
    loggers = [logging.getLogger(n) for n in names]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.WARNING)
    try:
        yield
    finally:
        for lg, level in zip(loggers, levels, strict=True):
            lg.setLevel(level)


def check_graph(path: str | Path) -> None:
    """UserError unless the graph is what runtimes expect: opset >= 17, a symbolic batch axis, and every
    Clip's bounds constant (an initializer or a Constant node, never computed)."""
    import onnx

    proto = onnx.load(str(path))
    opset = next((o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")), 0)
    if opset < 17:
        raise UserError(f"{path}: opset {opset} < 17")
    batch = proto.graph.input[0].type.tensor_type.shape.dim[0]
    if not batch.dim_param:
        raise UserError(f"{path}: the batch axis is fixed at {batch.dim_value}, expected a symbolic one")
    constants = {i.name for i in proto.graph.initializer}
    constants |= {o for n in proto.graph.node if n.op_type == "Constant" for o in n.output}
    for node in proto.graph.node:
        if node.op_type == "Clip" and not all(name in constants for name in node.input[1:] if name):
            raise UserError(f"{path}: Clip {node.name!r} has computed bounds {list(node.input[1:])}")


def ort_session(path: str | Path, *, threads: int = 0):
    """An onnxruntime CPU session with thread spinning off (spinning pools of two runtimes on few cores
    starve each other); threads=0 lets onnxruntime choose."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.add_session_config_entry("session.inter_op.allow_spinning", "0")
    return ort.InferenceSession(str(path), sess_options=options, providers=["CPUExecutionProvider"])


def run_onnx(path: str | Path, x: np.ndarray) -> np.ndarray:
    session = ort_session(path)
    return session.run(None, {session.get_inputs()[0].name: x.astype(np.float32)})[0]


def export_onnx(model: nn.Module, path: str | Path, *, input_size: tuple[int, int], opset: int = OPSET) -> Path:
    if opset < 17:
        raise UserError(f"opset must be >= 17, got {opset}")
    import onnx

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    proto = onnx.load_from_string(to_onnx_bytes(model, input_size, opset=opset))
    # The same header our weights files carry, so a deployed .onnx says how to prepare images and name classes.
    set_onnx_metadata(proto, export_metadata(model, input_size))
    path.write_bytes(proto.SerializeToString())
    check_graph(path)
    log.debug("wrote %s", path)
    return path
