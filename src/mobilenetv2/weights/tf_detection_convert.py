"""`convert(path, "tf-detection")`: a TF OD API SSDLite-MobileNetV2 frozen graph -> ssdlite_mobilenet_v2.

The graph's settings choose the model (width, classes, padding, BN epsilon) and are checked against it (anchors,
box coder, post-processing); the converted model is then compared with TensorFlow's own run of the graph when
TensorFlow is importable (raw box encodings `concat` and class logits `concat_1`, on a fixed uint8 image).
"""

import logging
import math
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from mobilenetv2.errors import UserError
from mobilenetv2.meta import meta_of, set_meta
from mobilenetv2.preprocessing import SIGNED_UNIT_MEAN, SIGNED_UNIT_STD, Preprocessing
from mobilenetv2.registry import create_model
from mobilenetv2.weights import tf_detection
from mobilenetv2.weights.convert import CHECK_SEED, CHECK_TOLERANCE, _library, _provenance
from mobilenetv2.weights.format import load_state_dict_strict
from mobilenetv2.weights.tf_graph import read_graph

log = logging.getLogger(__name__)


def convert_graph(path: Path) -> nn.Module:
    graph = read_graph(path)
    d = tf_detection.read(graph)
    options = tf_detection.model_options(d)
    spec = anchor_spec(d, create_model("ssdlite_mobilenet_v2", **options).anchor_spec)
    notes = []
    if spec is not None:  # the graph's aspect ratios differ by rounding (0.3333 for 1/3): adopt them
        options["aspect_ratios"] = list(spec.aspect_ratios)
        notes.append(f"anchor aspect ratios {options['aspect_ratios']} (the graph's constants)")
    model = create_model("ssdlite_mobilenet_v2", **options)
    load_state_dict_strict(model, d.tensors, f"{path} (tf-detection)")
    model.eval()
    notes += check_postprocessing(model, d)
    check = self_check(model, path, d.input_size)
    provenance = _provenance(path, "tf-detection", "TF Object Detection API frozen GraphDef", notes, check)
    provenance["graph"] = {
        "input_size": list(d.input_size),
        "anchors": [[list(box) for box in layer] for layer in d.anchors],
        "anchor_spec": _jsonable(asdict(model.anchor_spec)),
        "box_coder_scales": list(d.box_coder_scales),
        "postprocessing": d.postprocessing,
        "bn_eps": d.bn_eps,
        "padding": "SAME" if d.padding == "tf" else "explicit",
    }
    meta = meta_of(model).replace(
        preprocessing=detection_preprocessing(d.input_size), class_names=None, provenance=provenance
    )
    return set_meta(model, meta)


def _jsonable(d: dict[str, Any]) -> dict[str, Any]:
    return {k: list(v) if isinstance(v, tuple) else v for k, v in d.items()}


def detection_preprocessing(input_size: tuple[int, int]) -> Preprocessing:
    """The OD API's fixed_shape_resizer (the whole image stretched to H x W, no crop), then (2/255)·x - 1."""
    return Preprocessing(
        input_size=input_size,
        resize=max(input_size),
        interpolation="bilinear",
        mean=SIGNED_UNIT_MEAN,
        std=SIGNED_UNIT_STD,
        extra={
            "scaling": "[-1, 1]: (2/255)·x - 1, the graph's Preprocessor",
            "resize": f"stretch to {input_size[0]}x{input_size[1]} (fixed_shape_resizer), no crop",
        },
    )


def _spec_from_boxes(anchors: list[list[tuple[float, float]]]):
    """The AnchorSpec (TF's ssd_anchor_generator fields) whose boxes are the graph's, or None."""
    from mobilenetv2.detection.anchors import AnchorSpec, box_specs

    lowest = anchors[0]
    reduce_lowest = len(lowest) == 3 and math.isclose(lowest[0][0], 0.1, rel_tol=1e-5)
    min_scale = lowest[1][0] if reduce_lowest else lowest[0][0]
    max_scale = anchors[-1][0][0]
    second = anchors[1] if len(anchors) > 1 else anchors[0]
    interpolated = second[-1][1] if len(second) > 1 and second[-1][0] != second[0][0] else 0.0
    ratios = tuple(r for _, r in (second[:-1] if interpolated else second))
    spec = AnchorSpec(len(anchors), min_scale, max_scale, ratios, interpolated, reduce_lowest)
    expected = box_specs(spec)
    if len(expected) != len(anchors) or any(len(a) != len(b) for a, b in zip(expected, anchors, strict=True)):
        return None
    for a, b in zip(expected, anchors, strict=True):
        if not np.allclose(np.array(a), np.array(b), rtol=1e-5, atol=1e-6):
            return None
    return spec


def anchor_spec(d: tf_detection.DetectionGraph, ours):
    """None when the graph's anchors are the model's (within float32 rounding of the graph's constants); the
    graph's spec when only the aspect ratios differ by rounding (the zoo configs write 1/3 as 0.3333)."""
    spec = _spec_from_boxes(d.anchors)
    if spec is None:
        raise UserError(f"the graph's anchors {d.anchors} are not a multiple-grid layout ssdlite_mobilenet_v2 makes")
    same_shape = (spec.num_layers, spec.reduce_lowest, len(spec.aspect_ratios)) == (
        ours.num_layers,
        ours.reduce_lowest,
        len(ours.aspect_ratios),
    )
    values = [spec.min_scale, spec.max_scale, spec.interpolated_scale_aspect_ratio, *spec.aspect_ratios]
    mine = [ours.min_scale, ours.max_scale, ours.interpolated_scale_aspect_ratio, *ours.aspect_ratios]
    if not same_shape or not np.allclose(values, mine, rtol=1e-3):
        raise UserError(f"the graph's anchors ({spec}) differ from ssdlite_mobilenet_v2's ({ours})")
    if np.allclose(spec.aspect_ratios, ours.aspect_ratios, rtol=1e-6):
        return None
    return spec


def check_postprocessing(model: nn.Module, d: tf_detection.DetectionGraph) -> list[str]:
    from mobilenetv2.detection.coder import SCALES

    if not np.allclose(d.box_coder_scales, SCALES):
        raise UserError(f"the graph's box coder scales {d.box_coder_scales} are not SSD's {SCALES}")
    p = d.postprocessing
    if p["logit_scale"] != 1.0 or p["score"] not in ("sigmoid", "softmax"):
        raise UserError(f"unsupported score conversion {p['score']} with logit scale {p['logit_scale']}")
    found = {"score": p["score"]}
    for key in ("score_threshold", "iou_threshold", "max_per_class", "max_detections"):
        if p[key] is not None:
            found[key] = type(getattr(model.postprocessing, key))(p[key])
    config = replace(model.postprocessing, **found)
    close = all(
        math.isclose(getattr(config, k), getattr(model.postprocessing, k), rel_tol=1e-6) for k in found if k != "score"
    )
    if config.score == model.postprocessing.score and close:
        return []
    model.postprocessing = config
    note = f"post-processing from the graph: {config}"
    log.warning("%s (kept in the header's provenance; a reloaded model uses the defaults)", note)
    return [note]


@torch.no_grad()
def self_check(model: nn.Module, path: Path, input_size: tuple[int, int]) -> dict[str, Any]:
    """Raw outputs on a seeded uint8 image of the graph's input size (TF's resize is then the identity)."""
    rng = np.random.default_rng(CHECK_SEED)
    image = rng.integers(0, 256, (1, *input_size, 3), dtype=np.uint8)
    x = torch.from_numpy(image).permute(0, 3, 1, 2).float() * (2 / 255) - 1
    raw = model.forward_raw(x)
    if not (torch.isfinite(raw.box_codes).all() and torch.isfinite(raw.class_logits).all()):
        raise UserError("the converted model produces non-finite outputs on a fixed input; the graph is corrupt")
    result: dict[str, Any] = {
        "input": f"seeded uint8 image {tuple(image.shape)} NHWC",
        "compared": "raw box encodings (concat) and class logits (concat_1)",
        "reference": None,
        "max_abs_diff": None,
    }
    ref = tf_detection.reference(path, image)
    if ref is None:
        log.warning("tensorflow is not installed: the converted model ran, but was compared with nothing")
        return result
    diffs = {
        "concat": (raw.box_codes - torch.from_numpy(ref["concat"][:, :, 0])).abs().max().item(),
        "concat_1": (raw.class_logits - torch.from_numpy(ref["concat_1"])).abs().max().item(),
    }
    scale = max(1.0, float(np.abs(ref["concat_1"]).max()), float(np.abs(ref["concat"]).max()))
    diff = max(diffs.values())
    result.update(reference=_library("tensorflow"), max_abs_diff=diff, per_output=diffs)
    limit = CHECK_TOLERANCE * scale
    if not diff <= limit:
        raise UserError(f"the converted model differs from TensorFlow by {diff:.3g} (limit {limit:.3g})")
    return result
