"""Keras applications MobileNetV2 `.h5` files -> our module names, layouts and conventions.

Three HDF5 layouts are read, all with h5py and none by running Keras:
  - weights-only (Keras 2 `save_weights("x.h5")`, the layout of the official keras-applications files):
    the root lists `layer_names`, each layer group lists `weight_names`;
  - full model (`model.save("x.h5")`): the same under a `model_weights` group, plus a `model_config`;
  - Keras 3 `.weights.h5`: `layers/<class>/vars/<i>` with the layer's name in the `vars` group's attributes.
Keras MobileNetV2 differs from PyTorch conventions in padding (TF 'SAME' / asymmetric zero-padding before
stride-2 convs), BatchNorm epsilon (1e-3), tensor layouts (HWIO kernels) and input scaling ([-1, 1]).
"""

import importlib.util
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from mobilenetv2.errors import UserError

log = logging.getLogger(__name__)

KERAS_BN_EPS = 1e-3
NUM_BLOCKS = 17


@dataclass
class KerasWeights:
    tensors: dict[str, torch.Tensor]  # our keys, PyTorch layouts
    layout: str  # "keras2-weights", "keras-full-model" or "keras3-weights"
    has_top: bool
    num_classes: int | None  # after dropping a background class
    file_classes: int | None  # as stored (1001 for TF-slim heads)
    input_size: tuple[int, int] | None  # from a full model's config, when it fixes one
    notes: list[str] = field(default_factory=list)


def layer_names() -> dict[str, str]:
    """{Keras layer name: our module} for every layer that holds weights."""
    names = {"Conv1": "stem.conv", "bn_Conv1": "stem.bn", "Conv_1": "head.conv", "Conv_1_bn": "head.bn"}
    for i in range(NUM_BLOCKS):
        prefix = "expanded_conv" if i == 0 else f"block_{i}"
        parts = ("depthwise", "project") if i == 0 else ("expand", "depthwise", "project")
        for part in parts:
            names[f"{prefix}_{part}"] = f"blocks.{i}.{part}.conv"
            names[f"{prefix}_{part}_BN"] = f"blocks.{i}.{part}.bn"
    names["predictions"] = "classifier.1"
    return names


def read(path: Path) -> KerasWeights:
    import h5py

    try:
        f = h5py.File(path, "r")
    except OSError:
        raise UserError(f"{path} is not an HDF5 file (Keras .h5 expected)") from None
    try:
        with f:
            arrays, layout = _layer_arrays(f, path)
            input_size = _input_size(f)
        return _to_ours(arrays, layout, input_size, path)
    except UserError:
        raise
    except (KeyError, IndexError, TypeError, ValueError, OSError, RuntimeError) as exc:
        # h5py raises KeyError for a group or dataset the attributes name but the file lacks
        detail = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise UserError(f"{path}: a malformed Keras weights file ({type(exc).__name__}: {detail})") from None


def _decode(value: object) -> str:
    return value.decode("utf8") if isinstance(value, bytes) else str(value)


def _layer_arrays(f, path: Path) -> tuple[dict[str, list[np.ndarray]], str]:
    """{layer name: its weight arrays in Keras order} (conv: kernel; BN: gamma, beta, mean, variance;
    dense: kernel, bias), plus the layout's name."""
    if "layers" in f and "layer_names" not in f.attrs:
        arrays = {}
        for group in f["layers"].values():
            if "vars" in group and len(group["vars"]) and "name" in group["vars"].attrs:
                v = group["vars"]
                arrays[_decode(v.attrs["name"])] = [v[str(i)][()] for i in range(len(v))]
        if not arrays:
            raise UserError(f"{path}: a Keras 3 weights file whose layers carry no names; re-save it as .h5")
        return arrays, "keras3-weights"
    root, layout = (f["model_weights"], "keras-full-model") if "model_weights" in f else (f, "keras2-weights")
    if "layer_names" not in root.attrs:
        raise UserError(f"{path} is an HDF5 file but not a Keras weights file (no layer_names)")
    arrays = {}
    for name in (_decode(n) for n in root.attrs["layer_names"]):
        if name not in root:
            raise UserError(f"{path}: layer_names lists {name!r} but the file has no such group")
        group = root[name]
        weights = [_decode(w) for w in group.attrs.get("weight_names", [])]
        absent = [w for w in weights if w not in group]
        if absent:
            raise UserError(f"{path}: layer {name!r} lists weight {absent[0]!r} but the file has no such dataset")
        arrays[name] = [group[w][()] for w in weights]
    return arrays, layout


def _input_size(f) -> tuple[int, int] | None:
    """(H, W) of the model's input when a full-model file's config fixes it."""
    if "model_config" not in f.attrs:
        return None
    try:
        config = json.loads(_decode(f.attrs["model_config"]))
        first = config["config"]["layers"][0]["config"]
        shape = first.get("batch_shape") or first.get("batch_input_shape")
        h, w = shape[1], shape[2]
    except (KeyError, IndexError, TypeError, ValueError):
        return None
    return (int(h), int(w)) if h and w else None


def _conv(kernel: np.ndarray, *, depthwise: bool) -> torch.Tensor:
    t = torch.from_numpy(np.ascontiguousarray(kernel))
    if depthwise:
        return t.permute(2, 3, 0, 1).contiguous()  # [H, W, C, 1] -> [C, 1, H, W]
    return t.permute(3, 2, 0, 1).contiguous()  # HWIO -> OIHW


def _to_ours(arrays: dict, layout: str, input_size, path: Path) -> KerasWeights:
    names = layer_names()
    missing = [k for k in names if k != "predictions" and k not in arrays]
    if missing:
        raise UserError(f"{path} is not a Keras MobileNetV2 weights file: no layer {missing[0]!r}")
    tensors: dict[str, torch.Tensor] = {}
    for keras_name, ours in names.items():
        if keras_name == "predictions" or keras_name not in arrays:
            continue
        values = arrays[keras_name]
        if ours.endswith(".conv"):
            tensors[f"{ours}.weight"] = _conv(values[0], depthwise=".depthwise." in ours)
        else:
            gamma, beta, mean, var = (torch.from_numpy(np.asarray(v)) for v in values)
            tensors.update({f"{ours}.weight": gamma, f"{ours}.bias": beta})
            tensors.update({f"{ours}.running_mean": mean, f"{ours}.running_var": var})
            tensors[f"{ours}.num_batches_tracked"] = torch.tensor(0, dtype=torch.long)
    notes: list[str] = []
    has_top = bool(arrays.get("predictions"))
    num_classes = file_classes = None
    if has_top:
        kernel, bias = (torch.from_numpy(np.asarray(v)) for v in arrays["predictions"])
        weight = kernel.t().contiguous()  # Dense [in, out] -> Linear [out, in]
        file_classes = int(weight.shape[0])
        if weight.shape[0] == 1001:
            weight, bias = weight[1:].contiguous(), bias[1:].contiguous()
            notes.append("dropped class 0 (TF-slim background) of a 1001-class head: 1000 ImageNet classes remain")
            log.info("%s: 1001-class head, dropped index 0 (background)", path.name)
        tensors["classifier.1.weight"], tensors["classifier.1.bias"] = weight, bias
        num_classes = int(weight.shape[0])
    else:
        notes.append("file has no top (no 'predictions' layer): the classifier is untrained (zeros)")
        log.warning("%s has no top: the classifier is untrained (zeros); fine-tune or use forward_body", path.name)
    return KerasWeights(tensors, layout, has_top, num_classes, file_classes, input_size, notes)


def reference_model(path: Path, *, width: float, has_top: bool, num_classes: int, input_size: tuple[int, int]):
    """Keras's own MobileNetV2 with the file's weights, as a function NCHW tensor -> tensor (logits, or
    pooled features without top); None when Keras is not installed."""
    if importlib.util.find_spec("keras") is None:
        return None
    import keras

    try:
        model = keras.applications.MobileNetV2(
            input_shape=(*input_size, 3),
            alpha=width,
            include_top=has_top,
            weights=None,
            classes=num_classes,
            pooling=None if has_top else "avg",
            classifier_activation=None,
        )
        model.load_weights(str(path))
    except Exception as exc:  # an old or incompatible Keras: report it, and check without a reference
        log.warning("Keras %s could not load %s for the self-check (%s)", keras.__version__, path.name, exc)
        return None

    def run(x: torch.Tensor) -> torch.Tensor:
        out = model(x.permute(0, 2, 3, 1).numpy(), training=False)
        return torch.from_numpy(np.array(out))

    return run
