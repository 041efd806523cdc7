"""Post-training static INT8 quantization (per-channel weights, per-tensor activations calibrated on user images),
in the runtime of the chosen format, then checked against fp32 PyTorch on held-out images.

- onnx: onnxruntime `quantize_static`, QDQ format, uint8 activations / int8 per-channel weights (7-bit range),
  min-max ranges;
- openvino: NNCF `nncf.quantize` (symmetric per-channel int8 weights, overflow fix on every layer) on the IR;
- torchscript: PyTorch's FX graph mode with the x86 backend (fbgemm/oneDNN kernels), traced and frozen;
- tflite: litert-torch's PT2E quantizer, full integer (int8 weights per channel, int8 activations, int8 input and
  output), run in LiteRT/XNNPACK (litert.py);
- executorch: PT2E with ExecuTorch's XNNPACKQuantizer, lowered to XNNPACK's int8 kernels (executorch.py).
"""

import logging
import tempfile
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from torch import nn

from mobilenetv2.errors import UserError
from mobilenetv2.export.calibration import CalibrationSet, load_calibration
from mobilenetv2.export.metadata import (
    export_metadata,
    set_onnx_metadata,
    set_openvino_metadata,
    torchscript_extra_files,
)
from mobilenetv2.export.verify import ExportResult
from mobilenetv2.meta import find_meta

CALIBRATION_BATCH = 16
DEFAULT_MIN_AGREEMENT = 0.95
log = logging.getLogger(__name__)


def batches(x: np.ndarray, size: int = CALIBRATION_BATCH) -> list[np.ndarray]:
    return [x[i : i + size] for i in range(0, len(x), size)]


class NoPreprocessingHint(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return "pre-processing before quantization" not in record.getMessage()


def quantize_onnx(fp32_path: Path, path: Path, calibration: np.ndarray, meta: dict | None = None) -> Path:
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.items = iter(batches(calibration))

        def get_next(self) -> dict[str, np.ndarray] | None:
            item = next(self.items, None)
            return None if item is None else {"input": item}

    hint = NoPreprocessingHint()  # onnxruntime suggests its own shape pre-pass; our graph is already optimized
    logging.getLogger().addFilter(hint)
    try:
        quantize_static(
            str(fp32_path),
            str(path),
            Reader(),
            quant_format=QuantFormat.QDQ,
            per_channel=True,
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8,
            # 7-bit weights: x86 CPUs without VNNI multiply u8 x s8 pairs into saturating int16 sums (AVX2
            # vpmaddubsw); full-range weights overflow there (measured on digits: 85% -> 97.5% top-1 agreement).
            reduce_range=True,
        )
    finally:
        logging.getLogger().removeFilter(hint)
    if meta is not None:
        import onnx

        proto = onnx.load(str(path))
        set_onnx_metadata(proto, meta)
        onnx.save(proto, str(path))
    return path


def quantize_openvino(fp32_path: Path, path: Path, calibration: np.ndarray, meta: dict | None = None) -> Path:
    import nncf
    import openvino as ov
    from nncf.quantization.advanced_parameters import AdvancedQuantizationParameters, OverflowFix

    model = ov.Core().read_model(str(fp32_path))
    items = batches(calibration, 1)
    # The same int16-saturation guard as onnxruntime's reduce_range, for every layer (NNCF's default only
    # protects the first): measured on digits, 92% -> 97% top-1 agreement on this AVX2 CPU.
    advanced = AdvancedQuantizationParameters(overflow_fix=OverflowFix.ENABLE)
    quantized = nncf.quantize(model, nncf.Dataset(items), subset_size=len(items), advanced_parameters=advanced)
    if meta is not None:
        set_openvino_metadata(quantized, meta)
    ov.save_model(quantized, str(path))
    return path


def quantize_torch_x86(model: nn.Module, input_size: tuple[int, int], calibration: np.ndarray) -> nn.Module:
    """FX graph mode with the x86 qconfig: per-channel int8 weights, uint8 activations; BN folded, ReLU6 fused."""
    from torch.ao.quantization import get_default_qconfig_mapping
    from torch.ao.quantization.quantize_fx import convert_fx, prepare_fx

    from mobilenetv2.export.onnx import freeze_same_padding

    torch.backends.quantized.engine = "x86"
    example = (torch.zeros(1, 3, *input_size),)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        prepared = prepare_fx(freeze_same_padding(model, input_size), get_default_qconfig_mapping("x86"), example)
        with torch.no_grad():
            for item in batches(calibration):
                prepared(torch.from_numpy(item))
        return convert_fx(prepared)


def quantize_torch_pt2e(model: nn.Module, input_size: tuple[int, int], calibration: np.ndarray) -> nn.Module:
    """PyTorch 2 export quantization with torchao's X86InductorQuantizer (per-channel int8 weights, uint8
    activations), compiled by Inductor with frozen weights: PyTorch's current INT8 route on x86 CPUs. Needs
    `torchao` and a C++ compiler; the first calls compile (seconds per input shape). Measured by `bench` only."""
    import torch._inductor.config as inductor_config
    import torchao.quantization.pt2e.quantizer.x86_inductor_quantizer as x86
    from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e

    from mobilenetv2.export.onnx import freeze_same_padding

    example = (torch.zeros(2, 3, *input_size),)  # batch 2: export would fix a batch of 1 as a constant
    batch = torch.export.Dim("batch", min=1, max=1024)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        graph = torch.export.export(
            freeze_same_padding(model, input_size).eval(), example, dynamic_shapes=({0: batch},)
        ).module()
        quantizer = x86.X86InductorQuantizer().set_global(x86.get_default_x86_inductor_quantization_config())
        prepared = prepare_pt2e(graph, quantizer)
        with torch.no_grad():
            for item in batches(calibration):
                prepared(torch.from_numpy(item))
        compiled = torch.compile(convert_pt2e(prepared), dynamic=True)

    def run(x: torch.Tensor) -> torch.Tensor:
        with torch.no_grad(), inductor_config.patch(freezing=True), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # Inductor's own deprecation chatter while it compiles
            return compiled(x)

    return run


def save_torchscript_int8(module: nn.Module, path: Path, input_size: tuple[int, int], meta: dict) -> Path:
    from mobilenetv2.export.torchscript import save_scripted

    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        frozen = torch.jit.freeze(torch.jit.trace(module, torch.zeros(1, 3, *input_size)))
        save_scripted(frozen, path, torchscript_extra_files(meta))
    return path


def quantize_mobile(
    model: nn.Module,
    path: Path,
    format: str,
    input_size: tuple[int, int],
    calibration: np.ndarray,
    meta: dict,
    batch_size: int,
) -> Path:
    """The on-device formats quantize from the PyTorch model (PT2E), not from an ONNX graph."""
    if format == "tflite":
        from mobilenetv2.export.litert import quantize_tflite

        return quantize_tflite(model, path, input_size, calibration, meta, batch_size=batch_size)
    from mobilenetv2.export.executorch import quantize_executorch

    return quantize_executorch(model, path, input_size, calibration, meta)


def runner(format: str, path: Path) -> Callable[[np.ndarray], np.ndarray]:
    if format == "tflite":
        from mobilenetv2.export.litert import tflite_runner

        return tflite_runner(path)
    if format == "executorch":
        from mobilenetv2.export.executorch import executorch_runner

        return executorch_runner(path)
    if format == "onnx":
        from mobilenetv2.export.onnx import ort_session

        session = ort_session(path)
        return lambda x: session.run(None, {session.get_inputs()[0].name: x})[0]
    if format == "openvino":
        from mobilenetv2.export.openvino import compile_openvino

        compiled = compile_openvino(path)
        return lambda x: compiled(x)[0]
    from mobilenetv2.export.torchscript import load_torchscript

    torch.backends.quantized.engine = "x86"
    module = load_torchscript(path)

    def run(x: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            return module(torch.from_numpy(x)).numpy()

    return run


def compare(model: nn.Module, run: Callable[[np.ndarray], np.ndarray], data: CalibrationSet) -> dict:
    """Top-1 agreement of INT8 with fp32 PyTorch on the held-out images; accuracies when labels apply."""
    fp32_logits, int8_logits = [], []
    with torch.inference_mode():
        for item in batches(data.check, 50):
            fp32_logits.append(model(torch.from_numpy(item)).numpy())
            int8_logits.append(run(item))
    fp32_logits, int8_logits = np.concatenate(fp32_logits), np.concatenate(int8_logits)
    fp32, int8 = fp32_logits.argmax(1), int8_logits.argmax(1)
    report = {
        "images": len(fp32),
        "top1_agreement": float((fp32 == int8).mean()),
        "max_abs_logit_diff": float(np.abs(fp32_logits - int8_logits).max()),
    }
    meta = find_meta(model)
    if meta is not None and list(meta.class_names or []) == data.class_names:
        report["fp32_top1"] = float((fp32 == data.labels).mean())
        report["int8_top1"] = float((int8 == data.labels).mean())
    return report


def export_int8(
    model: nn.Module,
    path: str | Path,
    *,
    format: str = "onnx",
    input_size: tuple[int, int],
    calibration: str,
    limit: int = 300,
    min_agreement: float = DEFAULT_MIN_AGREEMENT,
    batch_size: int | None = None,
) -> ExportResult:
    """Quantize `model` for `format`'s runtime with images from `calibration`; UserError (nothing written) when
    INT8 top-1 agrees with fp32 on fewer than `min_agreement` of the held-out images. `batch_size`: the fixed
    batch of a tflite file (default 1)."""
    from mobilenetv2.export import check_output, staged_export
    from mobilenetv2.export.onnx import export_onnx
    from mobilenetv2.preprocessing import default_preprocessing

    model = model.eval()
    meta = find_meta(model)
    preprocessing = meta.preprocessing if meta is not None else default_preprocessing(input_size)
    if tuple(preprocessing.input_size) != tuple(input_size):
        preprocessing = default_preprocessing(input_size)
    if format not in ("onnx", "openvino", "torchscript", "tflite", "executorch"):
        raise UserError(f"unknown format {format!r}")
    if not 0 <= min_agreement <= 1:
        raise UserError(f"--min-agreement must be in [0, 1], got {min_agreement}")
    path = check_output(path, format)
    data = load_calibration(calibration, preprocessing, limit=limit)
    meta = export_metadata(model, input_size) | {"precision": "int8"}
    with staged_export(path) as staged:
        with tempfile.TemporaryDirectory() as tmp:
            if format in ("tflite", "executorch"):
                quantize_mobile(model, staged, format, input_size, data.calibration, meta, batch_size or 1)
            elif format == "onnx":
                fp32 = export_onnx(model, Path(tmp) / "fp32.onnx", input_size=input_size)
                quantize_onnx(fp32, staged, data.calibration, meta)
            elif format == "openvino":
                fp32 = export_onnx(model, Path(tmp) / "fp32.onnx", input_size=input_size)
                quantize_openvino(fp32, staged, data.calibration, meta)
            else:
                quantized = quantize_torch_x86(model, input_size, data.calibration)
                save_torchscript_int8(quantized, staged, input_size, meta)
        report = compare(model, runner(format, staged), data)
        log.info("INT8 %s on %d held-out images of %s: %s", format, report["images"], calibration, report)
        if report["top1_agreement"] < min_agreement:
            raise UserError(
                f"INT8 top-1 agrees with fp32 on {report['top1_agreement']:.1%} of held-out images "
                f"(< {min_agreement:.0%}); try more or more representative calibration images"
            )
    return ExportResult(
        path=path,
        format=format,
        max_abs_diff=report["max_abs_logit_diff"],
        input_size=tuple(input_size),
        precision="int8",
        top1_agreement=report["top1_agreement"],
        details=report,
    )
