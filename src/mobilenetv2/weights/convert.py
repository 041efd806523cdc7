"""`convert(path, source)`: weights from torchvision, timm, Keras or a TF OD API graph -> our model, checked.

Every converter maps tensors by explicit names (never by position), infers the width multiplier from the
channel counts, loads strictly (every tensor used, every shape equal), then runs the model on a fixed input
and compares it with the source library's own forward when that library is importable.
"""

import logging
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import torch
from torch import nn

from mobilenetv2.errors import UserError
from mobilenetv2.meta import meta_of, set_meta
from mobilenetv2.models import TABLE_2, make_divisible
from mobilenetv2.models.mobilenet_v2 import STEM_CHANNELS, head_channels
from mobilenetv2.preprocessing import SIGNED_UNIT_MEAN, SIGNED_UNIT_STD, Preprocessing, default_preprocessing
from mobilenetv2.registry import MOBILENET_V2_WIDTHS, create_model
from mobilenetv2.weights import keras as keras_source
from mobilenetv2.weights import timm as timm_source
from mobilenetv2.weights import torchvision as torchvision_source
from mobilenetv2.weights.format import load_state_dict_strict
from mobilenetv2.weights.safety import load_torch_file, require_file, sha256

log = logging.getLogger(__name__)

SOURCES = ("torchvision", "timm", "keras", "tf-detection")
CHECK_SEED = 0
# Any input of at least 32 pixels exercises every tensor; 96 keeps every stride-2 input even (TF SAME asymmetric).
CHECK_SIZE = (96, 96)
# Relative to the largest reference logit: fp32 reorderings stay far below this, a wrong mapping far above.
CHECK_TOLERANCE = 1e-4


def convert(path: str | Path, source: str) -> nn.Module:
    """Read a torchvision/timm state_dict (.pth, .safetensors) or a Keras MobileNetV2 .h5 into our MobileNetV2,
    or a TF Object Detection API SSDLite-MobileNetV2 frozen graph (.pb, `tf-detection`) into ssdlite_mobilenet_v2.

    Returns the model in eval mode with its record (`meta_of(model)`: preprocessing, class names, provenance)
    complete, so `mobilenetv2.save` writes a complete file; `provenance["self_check"]` holds the max abs diff.
    """
    path = require_file(path)
    if source not in SOURCES:
        raise UserError(f"unknown source {source!r}; choose one of {', '.join(SOURCES)}")
    if source == "tf-detection":
        from mobilenetv2.weights.tf_detection_convert import convert_graph  # it uses this module's helpers

        model = convert_graph(path)
    else:
        model = _convert_keras(path) if source == "keras" else _convert_torch(path, source)
    meta = meta_of(model)
    check = meta.provenance["self_check"]
    log.info(
        "%s: %s width %s, %d classes, max abs diff vs %s: %s",
        path.name,
        meta.architecture,
        model.width,
        model.num_classes,
        check["reference"] or "no reference",
        "n/a" if check["max_abs_diff"] is None else f"{check['max_abs_diff']:.3g}",
    )
    return model


def channel_signature(width: float) -> tuple[int, ...]:
    """(stem, the 7 stage outputs, head) channels of MobileNetV2 at `width`."""
    stages = tuple(make_divisible(row.c * width) for row in TABLE_2)
    return (make_divisible(STEM_CHANNELS * width), *stages, head_channels(width))


def infer_width(tensors: dict[str, torch.Tensor]) -> float:
    """The width multiplier whose channel counts match the tensors (registered widths first)."""
    last_of_stage = [sum(row.n for row in TABLE_2[: i + 1]) - 1 for i in range(len(TABLE_2))]
    found = (
        tensors["stem.conv.weight"].shape[0],
        *(tensors[f"blocks.{b}.project.conv.weight"].shape[0] for b in last_of_stage),
        tensors["head.conv.weight"].shape[0],
    )
    candidates = [*MOBILENET_V2_WIDTHS.values(), *(k / 100 for k in range(5, 401))]
    for width in candidates:
        if channel_signature(width) == tuple(found):
            return width
    raise UserError(f"channel counts {found} (stem, stages, head) match no MobileNetV2 width between 0.05 and 4")


def build(width: float, *, num_classes: int, padding: str, bn_eps: float) -> nn.Module:
    """Our model at `width`: the registered preset when one exists (mobilenet_v2_100, ...), else mobilenet_v2."""
    options: dict[str, Any] = {"num_classes": num_classes}
    if padding != "torch":
        options["padding"] = padding
    if bn_eps != 1e-5:
        options["bn_eps"] = bn_eps
    for suffix, preset in MOBILENET_V2_WIDTHS.items():
        if preset == width:
            return create_model(f"mobilenet_v2_{suffix}", **options)
    return create_model("mobilenet_v2", width=width, **options)


def imagenet_class_names() -> list[str] | None:
    """ImageNet-1k's 1000 class names in the standard synset order (tench first), from torchvision's
    offline weights metadata; None without torchvision."""
    return torchvision_source.imagenet_class_names()


def _convert_torch(path: Path, source: str) -> nn.Module:
    module = torchvision_source if source == "torchvision" else timm_source
    state_dict = load_torch_file(path)
    mapping = module.key_map(set(state_dict))  # {source key: our key}, spelled out layer by layer
    extra = [k for k in state_dict if k not in mapping]
    if extra:
        raise UserError(f"{path}: unexpected tensor {extra[0]!r} for a {source} MobileNetV2")
    tensors = {mapping[k]: v for k, v in state_dict.items()}
    width = infer_width(tensors)
    num_classes = int(tensors["classifier.1.weight"].shape[0])
    model = build(width, num_classes=num_classes, padding="torch", bn_eps=1e-5)
    load_state_dict_strict(model, tensors, f"{path} ({source})")
    model.eval()
    # timm's MobileNetV2 configs resize with bicubic interpolation, torchvision's with bilinear; both crop 0.875.
    interpolation = "bicubic" if source == "timm" else "bilinear"
    reference = module.reference_model(state_dict, width=width, num_classes=num_classes)
    check = self_check(model, reference, reference_name=_library(source), input_size=CHECK_SIZE)
    return set_meta(
        model,
        meta_of(model).replace(
            preprocessing=Preprocessing(input_size=(224, 224), resize=256, interpolation=interpolation),
            class_names=imagenet_class_names() if num_classes == 1000 else None,
            provenance=_provenance(path, source, "pytorch state_dict", [], check),
        ),
    )


def _convert_keras(path: Path) -> nn.Module:
    weights = keras_source.read(path)
    width = infer_width(weights.tensors)
    num_classes = weights.num_classes or 1000
    model = build(width, num_classes=num_classes, padding="tf", bn_eps=keras_source.KERAS_BN_EPS)
    tensors = dict(weights.tensors)
    if not weights.has_top:
        classifier = model.classifier[1]
        tensors["classifier.1.weight"] = torch.zeros_like(classifier.weight)
        tensors["classifier.1.bias"] = torch.zeros_like(classifier.bias)
    load_state_dict_strict(model, tensors, f"{path} (keras)")
    model.eval()
    size = weights.input_size or (224, 224)
    reference = keras_source.reference_model(
        path, width=width, has_top=weights.has_top, num_classes=weights.file_classes or 1000, input_size=CHECK_SIZE
    )
    if reference is not None and weights.file_classes == 1001:
        reference = _without_background(reference)
    check = self_check(
        model, reference, reference_name=_library("keras"), input_size=CHECK_SIZE, logits=weights.has_top
    )
    return set_meta(
        model,
        meta_of(model).replace(
            preprocessing=keras_preprocessing(size),
            class_names=imagenet_class_names() if weights.num_classes == 1000 else None,
            provenance=_provenance(path, "keras", weights.layout, weights.notes, check),
        ),
    )


def _without_background(reference):
    """Keras's 1001-class logits with column 0 (background) dropped, as in the converted model."""

    def run(x: torch.Tensor) -> torch.Tensor:
        return reference(x)[:, 1:]

    return run


def keras_preprocessing(input_size: tuple[int, int]) -> Preprocessing:
    """Keras/TF-slim MobileNetV2 inputs: pixels scaled to [-1, 1] (x / 127.5 - 1), a 0.875 central crop."""
    base = default_preprocessing(input_size)
    return Preprocessing(
        input_size=base.input_size,
        resize=base.resize,
        interpolation="bilinear",
        mean=SIGNED_UNIT_MEAN,
        std=SIGNED_UNIT_STD,
        extra={"scaling": "[-1, 1] (keras.applications.mobilenet_v2.preprocess_input)"},
    )


@torch.no_grad()
def self_check(
    model: nn.Module,
    reference,
    *,
    reference_name: str,
    input_size: tuple[int, int],
    logits: bool = True,
) -> dict[str, Any]:
    """Run the converted model on a fixed input (seeded normal, batch 1); compare with `reference` if any."""
    x = torch.randn(1, 3, *input_size, generator=torch.Generator().manual_seed(CHECK_SEED))
    ours = model(x) if logits else model.pool(model.forward_body(x)).flatten(1)
    if not torch.isfinite(ours).all():
        raise UserError("the converted model produces non-finite outputs on a fixed input; the file is corrupt")
    result: dict[str, Any] = {
        "input": f"seeded normal {tuple(x.shape)}",
        "compared": "logits" if logits else "pooled features",
        "reference": None,
        "max_abs_diff": None,
    }
    if reference is None:
        log.warning("%s is not installed: the converted model ran, but was compared with nothing", reference_name)
        return result
    expected = reference(x)
    diff = (ours - expected).abs().max().item()
    limit = CHECK_TOLERANCE * max(1.0, expected.abs().max().item())
    result.update(reference=reference_name, max_abs_diff=diff)
    if not diff <= limit:
        raise UserError(f"the converted model differs from {reference_name} by {diff:.3g} (limit {limit:.3g})")
    return result


def _library(name: str) -> str:
    try:
        return f"{name} {version(name)}"
    except PackageNotFoundError:
        return name


def _provenance(path: Path, source: str, layout: str, notes: list[str], check: dict) -> dict[str, Any]:
    return {
        "source": source,
        "file": path.name,
        "sha256": sha256(path),
        "layout": layout,
        "converted_by": _library("mobilenetv2"),
        "notes": notes,
        "self_check": check,
    }
