"""The inference paths `mobilenetv2 bench` times: the project's own and what a user would pick instead.

Each path is built once (exports and INT8 quantization happen here, outside the timed region) and becomes a
callable on a float32 NCHW numpy batch. Every runtime gets the same thread count.
"""

import logging
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from mobilenetv2.bench.mobile_paths import MOBILE_PEER_PATHS, MOBILE_PROJECT_PATHS, add_mobile_paths

log = logging.getLogger(__name__)

Run = Callable[[np.ndarray], object]


@dataclass(frozen=True)
class BenchPath:
    """One row of the table: `group` is "project" or "peer"; `precision` what the arithmetic runs in."""

    name: str
    group: str
    runtime: str
    precision: str
    run: Run


PROJECT_PATHS = (
    "eager",
    "fast",
    "fast-eager",
    "compiled",
    "split",
    "split-uniform",
    "onnxruntime",
    "openvino",
    "torchscript",
    "int8-onnxruntime",
    "int8-openvino",
    "int8-qdq-openvino",
    "int8-torch-x86",
    "int8-torch-pt2e",
    *MOBILE_PROJECT_PATHS,
)
PEER_PATHS = (
    "torchvision",
    "torchvision-onnxruntime",
    "torchvision-openvino",
    "int8-torchvision-onnxruntime",
    "int8-torchvision-openvino",
    *MOBILE_PEER_PATHS,
)
ALL_PATHS = PROJECT_PATHS + PEER_PATHS


def torch_run(module: nn.Module, *, channels_last: bool = False) -> Run:
    def run(x: np.ndarray) -> torch.Tensor:
        t = torch.from_numpy(x)
        with torch.inference_mode():
            return module(t.contiguous(memory_format=torch.channels_last) if channels_last else t)

    return run


def ort_run(path: Path, threads: int) -> Run:
    from mobilenetv2.export.onnx import ort_session

    session = ort_session(path, threads=threads)
    name = session.get_inputs()[0].name
    return lambda x: session.run(None, {name: x})


def openvino_run(path: Path, threads: int) -> Run:
    from mobilenetv2.export.openvino import compile_openvino

    request = compile_openvino(path, threads=threads).create_infer_request()
    return lambda x: request.infer([x])


def torchvision_onnx(input_size: tuple[int, int], path: Path) -> Path:
    """torchvision's mobilenet_v2 through torch.onnx.export's defaults, as a user would export it."""
    import warnings

    from torchvision.models import mobilenet_v2

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            mobilenet_v2().eval(),
            (torch.zeros(1, 3, *input_size),),
            str(path),
            dynamo=False,
            opset_version=18,
            input_names=["input"],
            dynamic_axes={"input": {0: "batch"}},
        )
    return path


def torchvision_qdq(fp32: Path, path: Path, calibration: np.ndarray) -> Path:
    """The INT8 peer: torchvision's ONNX export quantized by onnxruntime's `quantize_static` to QDQ, with the same
    settings and calibration images as our `int8-onnxruntime` row (export/int8.py): what a torchvision user
    shipping ONNX does, so the rows differ by the graph only. OpenVINO runs the same QDQ file (it executes the
    Q/DQ pairs as int8 kernels)."""
    from mobilenetv2.export.int8 import quantize_onnx

    return quantize_onnx(fp32, path, calibration)


def int8_calibration(input_size: tuple[int, int], count: int = 32) -> np.ndarray:
    """Speed does not depend on what the ranges are calibrated on: a few random images suffice for timing."""
    return np.random.default_rng(0).standard_normal((count, 3, *input_size)).astype(np.float32)


def build_paths(
    model: nn.Module,
    *,
    input_size: tuple[int, int],
    names: list[str],
    splits: list[int],
    threads: int,
    workdir: Path,
) -> list[BenchPath]:
    """Build the requested paths for `model` (eval), exporting into `workdir`. "split" and "split-uniform"
    give one row per t in `splits` ("split-2", "split-uniform-2", ...): the fast path split with the peak and
    the uniform schedule. "fast" and the split rows run for_inference's default engine (oneDNN Graph where
    available, split ops eagerly), "fast-eager" its per-op Python engine."""
    from mobilenetv2.export import export_model

    model = model.eval()
    built: list[BenchPath] = []
    onnx_file = workdir / "model.onnx"

    def add(name: str, group: str, runtime: str, precision: str, make: Callable[[], Run], row: str = "") -> None:
        if name not in names:
            return
        try:
            built.append(BenchPath(row or name, group, runtime, precision, make()))
        except ImportError as exc:  # a path whose library is not there yet is left out, with the reason
            log.warning("bench: %s left out (%s)", name, exc)

    def need_onnx() -> Path:
        if not onnx_file.exists():
            export_model(model, onnx_file, format="onnx", input_size=input_size)
        return onnx_file

    def fast(t: int, schedule: str = "peak", engine: str = "auto") -> Run:
        from mobilenetv2.infer import for_inference

        return torch_run(for_inference(model, splits=t, schedule=schedule, engine=engine), channels_last=True)

    from mobilenetv2.infer.graph import graph_available

    fast_runtime = "pytorch-onednn-graph" if graph_available() else "pytorch"  # what engine="auto" runs
    add("eager", "project", "pytorch", "fp32", lambda: torch_run(model))
    add("fast", "project", fast_runtime, "fp32", lambda: fast(1))
    add("fast-eager", "project", "pytorch", "fp32", lambda: fast(1, engine="eager"))
    add("compiled", "project", "pytorch-inductor", "fp32", lambda: compiled(model, input_size))
    split_runtime = "pytorch+onednn-graph" if graph_available() else "pytorch"  # split ops eager, the rest compiled
    for t in splits:
        add("split", "project", split_runtime, "fp32", lambda t=t: fast(t), row=f"split-{t}")
    for t in splits:
        add("split-uniform", "project", "pytorch", "fp32", lambda t=t: fast(t, "uniform"), row=f"split-uniform-{t}")
    add("onnxruntime", "project", "onnxruntime", "fp32", lambda: ort_run(need_onnx(), threads))
    add("openvino", "project", "openvino", "fp32", lambda: openvino_run(export_ir(model, workdir, input_size), threads))
    add("torchscript", "project", "pytorch", "fp32", lambda: torch_run(export_ts(model, workdir, input_size)))
    qdq_file = workdir / "model.int8.onnx"

    def need_qdq() -> Path:
        return qdq_file if qdq_file.exists() else int8_onnx(need_onnx(), workdir)

    add("int8-onnxruntime", "project", "onnxruntime", "int8", lambda: ort_run(need_qdq(), threads))
    add("int8-openvino", "project", "openvino", "int8", lambda: openvino_run(int8_ir(need_onnx(), workdir), threads))
    # The same QDQ file in OpenVINO (which runs its Q/DQ pairs as int8 kernels): the route of the INT8 peers.
    add("int8-qdq-openvino", "project", "openvino", "int8", lambda: openvino_run(need_qdq(), threads))
    add("int8-torch-x86", "project", "pytorch", "int8", lambda: torch_run(int8_torch(model, input_size)))
    add("int8-torch-pt2e", "project", "pytorch-inductor", "int8", lambda: torch_run(int8_pt2e(model, input_size)))
    calibration = int8_calibration(input_size)
    add_mobile_paths(add, model, input_size=input_size, threads=threads, workdir=workdir, calibration=calibration)
    add("torchvision", "peer", "pytorch", "fp32", lambda: torch_run(torchvision_eager()))
    tv_onnx, tv_qdq = workdir / "torchvision.onnx", workdir / "torchvision.int8.onnx"

    def need_tv_onnx() -> Path:
        return tv_onnx if tv_onnx.exists() else torchvision_onnx(input_size, tv_onnx)

    def need_tv_qdq() -> Path:
        return tv_qdq if tv_qdq.exists() else torchvision_qdq(need_tv_onnx(), tv_qdq, calibration)

    add("torchvision-onnxruntime", "peer", "onnxruntime", "fp32", lambda: ort_run(need_tv_onnx(), threads))
    add("torchvision-openvino", "peer", "openvino", "fp32", lambda: openvino_run(need_tv_onnx(), threads))
    add("int8-torchvision-onnxruntime", "peer", "onnxruntime", "int8", lambda: ort_run(need_tv_qdq(), threads))
    add("int8-torchvision-openvino", "peer", "openvino", "int8", lambda: openvino_run(need_tv_qdq(), threads))
    return built


def torchvision_eager() -> nn.Module:
    from torchvision.models import mobilenet_v2

    return mobilenet_v2().eval()


def export_ir(model: nn.Module, workdir: Path, input_size: tuple[int, int]) -> Path:
    from mobilenetv2.export import export_model

    return export_model(model, workdir / "model.xml", format="openvino", input_size=input_size).path


def export_ts(model: nn.Module, workdir: Path, input_size: tuple[int, int]) -> nn.Module:
    from mobilenetv2.export import export_model
    from mobilenetv2.export.torchscript import load_torchscript

    return load_torchscript(export_model(model, workdir / "model.pt", format="torchscript", input_size=input_size).path)


def int8_onnx(fp32: Path, workdir: Path) -> Path:
    from mobilenetv2.export.int8 import quantize_onnx

    size = tuple(int(d.dim_value) for d in _onnx_input_dims(fp32)[2:])
    return quantize_onnx(fp32, workdir / "model.int8.onnx", int8_calibration(size))


def int8_ir(fp32: Path, workdir: Path) -> Path:
    from mobilenetv2.export.int8 import quantize_openvino

    size = tuple(int(d.dim_value) for d in _onnx_input_dims(fp32)[2:])
    return quantize_openvino(fp32, workdir / "model.int8.xml", int8_calibration(size))


def int8_torch(model: nn.Module, input_size: tuple[int, int]) -> nn.Module:
    from mobilenetv2.export.int8 import quantize_torch_x86

    return quantize_torch_x86(model, input_size, int8_calibration(input_size))


def compiled(model: nn.Module, input_size: tuple[int, int]) -> Run:
    """The model under torch.compile (Inductor, frozen weights, C++ wrapper): BN folding and weight packing done by
    PyTorch's compiler instead of `for_inference`. Needs a C++ compiler; compiles on the first call per shape."""
    import copy
    import warnings

    import torch._inductor.config as inductor_config

    module = torch.compile(copy.deepcopy(model).eval())

    def run(x: np.ndarray) -> torch.Tensor:
        with torch.no_grad(), inductor_config.patch(freezing=True, cpp_wrapper=True), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return module(torch.from_numpy(x))

    return _compiled_now(lambda: run(np.zeros((1, 3, *input_size), dtype=np.float32)), run, "the model")


def int8_pt2e(model: nn.Module, input_size: tuple[int, int]):
    from mobilenetv2.export.int8 import quantize_torch_pt2e

    run = quantize_torch_pt2e(model, input_size, int8_calibration(input_size))
    return _compiled_now(lambda: run(torch.zeros(1, 3, *input_size)), run, "the PT2E model")


def _compiled_now(first_call: Callable[[], object], run: Callable, what: str) -> Callable:
    """Make the first call (Inductor compiles there, not in the timed calls); a path that cannot compile (e.g. no
    C++ compiler) is left out of the table with the reason, like a missing library."""
    try:
        first_call()
    except Exception as exc:
        raise ImportError(f"Inductor could not compile {what}: {str(exc).splitlines()[0]}") from None
    return run


def _onnx_input_dims(path: Path):
    import onnx

    return onnx.load(str(path), load_external_data=False).graph.input[0].type.tensor_type.shape.dim


def temporary_workdir() -> tempfile.TemporaryDirectory:
    return tempfile.TemporaryDirectory(prefix="mobilenetv2-bench-")
