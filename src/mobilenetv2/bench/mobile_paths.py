"""The on-device runtimes `mobilenetv2 bench` times: our LiteRT and ExecuTorch exports, and the Keras peer.

- `litert` / `int8-litert`: our .tflite (litert-torch; INT8 full integer through its PT2E quantizer) in
  ai-edge-litert's interpreter, XNNPACK delegate; built at batch 1, the interpreter resizes it to the bench batch.
- `executorch` / `int8-executorch`: our .pte (XNNPACK partitioned; INT8 through the XNNPACKQuantizer) in
  ExecuTorch's runtime, whose XNNPACK thread pool is set to the bench's thread count.
- `keras-tflite` / `int8-keras-tflite` (peers): `keras.applications.MobileNetV2` (random init) converted by
  TensorFlow's own `TFLiteConverter` (INT8: full integer, int8 input and output, calibrated on the same random
  images), run in the same interpreter. It takes NHWC images: the bench's NCHW batch is transposed once, outside
  the timed calls. Needs TensorFlow; without it the rows are left out with a note (CI does not install it).
"""

import contextlib
import io
import logging
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
from torch import nn

log = logging.getLogger(__name__)

MOBILE_PROJECT_PATHS = ("litert", "executorch", "int8-litert", "int8-executorch")
MOBILE_PEER_PATHS = ("keras-tflite", "int8-keras-tflite")

Run = Callable[[np.ndarray], object]
Add = Callable[..., None]


def add_mobile_paths(
    add: Add, model: nn.Module, *, input_size: tuple[int, int], threads: int, workdir: Path, calibration: np.ndarray
) -> None:
    """Register the rows above through `add(name, group, runtime, precision, make)` (bench/paths.py)."""
    add("litert", "project", "litert-xnnpack", "fp32", lambda: our_tflite(model, input_size, threads, workdir))
    add("executorch", "project", "executorch-xnnpack", "fp32", lambda: our_pte(model, input_size, threads, workdir))
    add(
        "int8-litert",
        "project",
        "litert-xnnpack",
        "int8",
        lambda: our_tflite(model, input_size, threads, workdir, calibration),
    )
    add(
        "int8-executorch",
        "project",
        "executorch-xnnpack",
        "int8",
        lambda: our_pte(model, input_size, threads, workdir, calibration),
    )
    add("keras-tflite", "peer", "litert-xnnpack", "fp32", lambda: keras_tflite(input_size, threads, workdir))
    add(
        "int8-keras-tflite",
        "peer",
        "litert-xnnpack",
        "int8",
        lambda: keras_tflite(input_size, threads, workdir, calibration),
    )


def our_tflite(
    model: nn.Module, input_size: tuple[int, int], threads: int, workdir: Path, calibration: np.ndarray | None = None
) -> Run:
    from mobilenetv2.export import export_model
    from mobilenetv2.export.litert import need_litert, need_litert_torch, quantize_tflite, tflite_runner
    from mobilenetv2.export.metadata import export_metadata

    need_litert(), need_litert_torch()
    if calibration is None:
        path = export_model(model, workdir / "model.tflite", format="tflite", input_size=input_size).path
    else:
        meta = export_metadata(model, input_size) | {"precision": "int8"}
        path = quantize_tflite(model, workdir / "model.int8.tflite", input_size, calibration, meta)
    return tflite_runner(path, threads=threads)


def our_pte(
    model: nn.Module, input_size: tuple[int, int], threads: int, workdir: Path, calibration: np.ndarray | None = None
) -> Run:
    from mobilenetv2.export import export_model
    from mobilenetv2.export.executorch import executorch_runner, need_executorch, quantize_executorch
    from mobilenetv2.export.metadata import export_metadata

    need_executorch()
    set_executorch_threads(threads)
    if calibration is None:
        path = export_model(model, workdir / "model.pte", format="executorch", input_size=input_size).path
    else:
        meta = export_metadata(model, input_size) | {"precision": "int8"}
        path = quantize_executorch(model, workdir / "model.int8.pte", input_size, calibration, meta)
    return executorch_runner(path)


def set_executorch_threads(threads: int) -> None:
    try:
        from executorch.extension.pybindings.portable_lib import _unsafe_reset_threadpool
    except ImportError:
        log.warning("bench: this ExecuTorch cannot set its thread pool size; it uses its default")
        return
    _unsafe_reset_threadpool(threads)


def keras_tflite(
    input_size: tuple[int, int], threads: int, workdir: Path, calibration: np.ndarray | None = None
) -> Run:
    """The peer: Keras's MobileNetV2 through TF's converter, the deployment a TensorFlow user would pick."""
    from mobilenetv2.export.litert import need_litert, tflite_runner

    need_litert()
    try:
        import tensorflow as tf
    except ImportError as exc:
        raise ImportError(f"the Keras peer needs TensorFlow (pip install tensorflow-cpu) ({exc})") from None
    path = workdir / ("keras.int8.tflite" if calibration is not None else "keras.tflite")
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        keras_model = tf.keras.applications.MobileNetV2(input_shape=(*input_size, 3), weights=None)
        converter = tf.lite.TFLiteConverter.from_keras_model(keras_model)
        if calibration is not None:
            images = np.ascontiguousarray(calibration.transpose(0, 2, 3, 1))
            converter.optimizations = [tf.lite.Optimize.DEFAULT]
            converter.representative_dataset = lambda: ([images[i : i + 1]] for i in range(len(images)))
            converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
            converter.inference_input_type = converter.inference_output_type = tf.int8
        path.write_bytes(converter.convert())
    return nhwc(tflite_runner(path, threads=threads))


def nhwc(run: Callable[[np.ndarray], np.ndarray]) -> Run:
    """`run` on NHWC images fed the bench's NCHW batch: transposed once per distinct array (the bench passes the
    same array to every call), so the timed calls measure the model, not the transpose."""
    cache: dict[int, tuple[np.ndarray, np.ndarray]] = {}

    def call(x: np.ndarray) -> np.ndarray:
        held = cache.get(id(x))
        if held is None or held[0] is not x:
            cache.clear()
            held = cache[id(x)] = (x, np.ascontiguousarray(x.transpose(0, 2, 3, 1)))
        return run(held[1])

    return call
