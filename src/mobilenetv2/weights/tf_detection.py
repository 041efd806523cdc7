"""TF Object Detection API SSDLite-MobileNetV2 frozen graphs -> our `ssdlite_mobilenet_v2` names and layouts.

A `frozen_inference_graph.pb` exported by the OD API (e.g. the zoo's `ssdlite_mobilenet_v2_coco`) is read with
protobuf alone (`tf_graph`). Every tensor is mapped by name:
  FeatureExtractor/MobilenetV2/Conv                      -> backbone.stem
  FeatureExtractor/MobilenetV2/expanded_conv[_i]/{expand,depthwise,project} -> backbone.blocks.{i}.*
  FeatureExtractor/MobilenetV2/Conv_1                    -> backbone.head
  FeatureExtractor/MobilenetV2/layer_19_1_Conv2d_{j+2}_1x1_*           -> extras.{j}.reduce
  FeatureExtractor/MobilenetV2/layer_19_2_Conv2d_{j+2}_3x3_s2_*_depthwise -> extras.{j}.depthwise
  FeatureExtractor/MobilenetV2/layer_19_2_Conv2d_{j+2}_3x3_s2_*        -> extras.{j}.expand
  BoxPredictor_{k}/{BoxEncoding,Class}Predictor[_depthwise] -> {box,class}_predictors.{k}.{conv,depthwise}
Layouts: conv kernels HWIO -> OIHW, depthwise [H, W, C, 1] -> [C, 1, H, W]; BN gamma/beta/moving_mean/
moving_variance -> weight/bias/running_mean/running_var. The settings the model needs (width, classes, padding,
BN epsilon, the last layer's channels) and the ones it must agree with (anchors, box coder, post-processing,
input scaling and size) are read from the graph's constants and ops, never assumed.
"""

import logging
import math
import re
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from mobilenetv2.errors import UserError
from mobilenetv2.weights.tf_graph import FrozenGraph, node_name

log = logging.getLogger(__name__)

FE = "FeatureExtractor/MobilenetV2"
NUM_BLOCKS = 17
BN_FIELDS = (("gamma", "weight"), ("beta", "bias"), ("moving_mean", "running_mean"), ("moving_variance", "running_var"))


@dataclass
class DetectionGraph:
    """What a frozen OD API graph holds, in our terms."""

    tensors: dict[str, torch.Tensor]  # our state_dict keys, PyTorch layouts
    num_classes: int  # class slots, background included
    head_channels: int  # channels of Conv_1 (layer_19)
    bn_eps: float
    padding: str  # "tf" (SAME) or "torch" (explicit symmetric padding, use_explicit_padding)
    input_size: tuple[int, int]  # (H, W) the preprocessor resizes to
    scaling: tuple[float, float]  # x -> a·x + b on 0..255 pixels
    anchors: list[list[tuple[float, float]]]  # (scale, aspect ratio) per box, per layer
    box_coder_scales: tuple[float, ...]
    postprocessing: dict[str, Any]
    notes: list[str] = field(default_factory=list)


def _conv(kernel: np.ndarray, *, depthwise: bool) -> torch.Tensor:
    t = torch.from_numpy(np.ascontiguousarray(kernel, dtype=np.float32))
    if depthwise:
        return t.permute(2, 3, 0, 1).contiguous()  # [H, W, C, 1] -> [C, 1, H, W]
    return t.permute(3, 2, 0, 1).contiguous()  # HWIO -> OIHW


def _unit(graph: FrozenGraph, scope: str, ours: str, used: set[str], *, depthwise: bool, bn: bool = True) -> dict:
    """One conv (+ BN) scope -> our tensors."""
    kernel = f"{scope}/depthwise_weights" if depthwise else f"{scope}/weights"
    if not graph.has(kernel):
        raise UserError(f"{graph.path.name}: no tensor {kernel!r}; not an SSDLite-MobileNetV2 graph of the OD API")
    used.add(kernel)
    out = {f"{ours}.conv.weight" if bn else f"{ours}.weight": _conv(graph.const(kernel), depthwise=depthwise)}
    if not bn:
        used.add(f"{scope}/biases")
        out[f"{ours}.bias"] = torch.from_numpy(graph.const(f"{scope}/biases").astype(np.float32))
        return out
    channels = out[f"{ours}.conv.weight"].shape[0]
    if not graph.has(f"{scope}/BatchNorm/moving_mean"):
        raise UserError(
            f"{graph.path.name}: {scope} has no BatchNorm (a graph with folded batch norms is not supported)"
        )
    for tf_name, our_name in BN_FIELDS:
        name = f"{scope}/BatchNorm/{tf_name}"
        if graph.has(name):
            used.add(name)
            value = torch.from_numpy(graph.const(name).astype(np.float32))
        else:  # slim batch_norm(scale=False) / (center=False) stores no gamma / beta
            value = torch.ones(channels) if tf_name == "gamma" else torch.zeros(channels)
        out[f"{ours}.bn.{our_name}"] = value
    out[f"{ours}.bn.num_batches_tracked"] = torch.tensor(0, dtype=torch.long)
    return out


def extra_scopes(graph: FrozenGraph) -> list[tuple[str, str, str]]:
    """(1x1 reduce, 3x3 depthwise, 1x1 expand) scopes of the extra layers, in order."""
    found = []
    for j in range(2, 100):
        reduce = [n for n in graph.nodes if re.fullmatch(rf"{FE}/layer_19_1_Conv2d_{j}_1x1_\d+/weights", n)]
        expand = [n for n in graph.nodes if re.fullmatch(rf"{FE}/layer_19_2_Conv2d_{j}_3x3_s2_\d+/weights", n)]
        if not reduce and not expand:
            break
        if not (reduce and expand):
            raise UserError(f"{graph.path.name}: extra layer {j} lacks its 1x1 or 3x3 part (not an SSDLite graph)")
        depthwise = expand[0].removesuffix("/weights") + "_depthwise"
        if not graph.has(f"{depthwise}/depthwise_weights"):
            raise UserError(
                f"{graph.path.name}: extra layer {j} is a regular 3x3 conv (ssd_mobilenet_v2, not SSDLite); "
                "ssdlite_mobilenet_v2 needs depthwise extra layers"
            )
        found.append((reduce[0].removesuffix("/weights"), depthwise, expand[0].removesuffix("/weights")))
    return found


def map_tensors(graph: FrozenGraph) -> tuple[dict[str, torch.Tensor], set[str]]:
    """Every weight of the graph under our names; also the set of graph constants used."""
    used: set[str] = set()
    t = _unit(graph, f"{FE}/Conv", "backbone.stem", used, depthwise=False)
    for i in range(NUM_BLOCKS):
        scope = f"{FE}/expanded_conv" + ("" if i == 0 else f"_{i}")
        parts = ("depthwise", "project") if i == 0 else ("expand", "depthwise", "project")
        for part in parts:
            t |= _unit(graph, f"{scope}/{part}", f"backbone.blocks.{i}.{part}", used, depthwise=part == "depthwise")
    t |= _unit(graph, f"{FE}/Conv_1", "backbone.head", used, depthwise=False)
    for j, (reduce, depthwise, expand) in enumerate(extra_scopes(graph)):
        t |= _unit(graph, reduce, f"extras.{j}.reduce", used, depthwise=False)
        t |= _unit(graph, depthwise, f"extras.{j}.depthwise", used, depthwise=True)
        t |= _unit(graph, expand, f"extras.{j}.expand", used, depthwise=False)
    k = 0
    while graph.has(f"BoxPredictor_{k}/BoxEncodingPredictor/weights"):
        for tf_part, ours in (("BoxEncodingPredictor", "box_predictors"), ("ClassPredictor", "class_predictors")):
            scope = f"BoxPredictor_{k}/{tf_part}"
            if not graph.has(f"{scope}_depthwise/depthwise_weights"):
                raise UserError(f"{graph.path.name}: {scope} has no depthwise part (not an SSDLite box predictor)")
            t |= _unit(graph, f"{scope}_depthwise", f"{ours}.{k}.depthwise", used, depthwise=True)
            t |= _unit(graph, scope, f"{ours}.{k}.conv", used, depthwise=False, bn=False)
        k += 1
    if k == 0:
        raise UserError(f"{graph.path.name}: no BoxPredictor_0; not a TF Object Detection API SSD graph")
    weights = re.compile(r"/(weights|depthwise_weights|biases|BatchNorm/\w+)$")
    extra = [
        n
        for n in graph.const_names()
        if (n.startswith(FE) or n.startswith("BoxPredictor")) and weights.search(n) and n not in used
    ]
    if extra:
        raise UserError(f"{graph.path.name}: unexpected tensor {extra[0]!r} for an SSDLite-MobileNetV2 graph")
    return t, used


def anchor_boxes(graph: FrozenGraph) -> list[list[tuple[float, float]]]:
    """(scale, aspect ratio) of the boxes at one location, per layer: MultipleGridAnchorGenerator's tile_anchors
    computes heights = scales / sqrt(aspect_ratios); both lists are constants of the graph."""
    layers = []
    for sqrt in sorted(graph.find("Sqrt", r"^MultipleGridAnchorGenerator/"), key=_suffix):
        ratios = graph.input_const(sqrt, 0)
        divs = [n for n in graph.find("RealDiv", r"^MultipleGridAnchorGenerator/") if _feeds(graph, sqrt, n, 1)]
        scales = graph.input_const(divs[0], 0) if divs else None
        if ratios is None or scales is None or ratios.shape != scales.shape:
            continue
        layers.append([(float(s), float(r)) for s, r in zip(scales.ravel(), ratios.ravel(), strict=True)])
    if not layers:
        raise UserError(f"{graph.path.name}: no MultipleGridAnchorGenerator scales/aspect ratios found")
    return layers


def _suffix(name: str) -> int:
    m = re.search(r"_(\d+)$", name)
    return int(m.group(1)) if m else 0


def _feeds(graph: FrozenGraph, src: str, dst: str, index: int) -> bool:
    inputs = graph.inputs(dst)
    return len(inputs) > index and node_name(inputs[index]) == src


def box_coder_scales(graph: FrozenGraph) -> tuple[float, ...]:
    """FasterRcnnBoxCoder decode divides ty, tx, th, tw (the unstacked codes) by its scale factors."""
    scales = []
    for k in range(4):
        ref = "Postprocessor/Decode/unstack" + ("" if k == 0 else f":{k}")
        divs = [n for n in graph.find("RealDiv", r"^Postprocessor/Decode/") if graph.inputs(n)[0] == ref]
        value = graph.input_const(divs[0], 1) if divs else None
        scales.append(1.0 if value is None else float(value))  # no division: no scale factors
    return tuple(scales)


def _scalar(graph: FrozenGraph, pattern: str) -> float | None:
    names = sorted((n for n in graph.nodes if re.search(pattern, n) and graph.op(n) == "Const"), key=_suffix)
    return float(graph.const(names[0])) if names else None


def postprocessing(graph: FrozenGraph) -> dict[str, Any]:
    """Score conversion and BatchMultiClassNonMaxSuppression settings."""
    convert = graph.op("Postprocessor/convert_scores") if graph.has("Postprocessor/convert_scores") else "Sigmoid"
    scale = _scalar(graph, r"^Postprocessor/scale_logits/y$")
    nms = r"BatchMultiClassNonMaxSuppression/.*MultiClassNonMaxSuppression/"
    minimums = sorted(
        (n for n in graph.find("Minimum", nms + r"Minimum(_\d+)?$") if graph.input_const(n, 0) is not None),
        key=_suffix,
    )
    return {
        "score": {"Sigmoid": "sigmoid", "Softmax": "softmax", "Identity": "identity"}.get(convert, convert),
        "logit_scale": 1.0 if scale is None else scale,
        "iou_threshold": _scalar(graph, nms + r"non_max_suppression/iou_threshold$"),
        "score_threshold": _scalar(graph, nms + r"non_max_suppression/score_threshold$"),
        "max_per_class": int(graph.input_const(minimums[0], 0)) if minimums else None,
        "max_detections": int(graph.input_const(minimums[-1], 0)) if minimums else None,
    }


def input_size(graph: FrozenGraph) -> tuple[int, int]:
    """(H, W) of the preprocessor's bilinear resize (fixed_shape_resizer), else the anchor generator's image."""
    for name in graph.find("ResizeBilinear", r"^Preprocessor/"):
        size = graph.input_const(name, 1)
        if size is not None and size.size == 2:
            return int(size[0]), int(size[1])
    h, w = _scalar(graph, r"^MultipleGridAnchorGenerator/ToFloat/x$"), _scalar(graph, r"ToFloat_1/x$")
    if h is None or w is None:
        raise UserError(f"{graph.path.name}: cannot tell the input size (no Preprocessor resize)")
    return int(h), int(w)


def scaling(graph: FrozenGraph) -> tuple[float, float]:
    """ssd_mobilenet_v2 preprocess: (2 / 255) · x - 1 as Preprocessor/mul and Preprocessor/sub."""
    a, b = _scalar(graph, r"^Preprocessor/mul/x$"), _scalar(graph, r"^Preprocessor/sub/y$")
    if a is None or b is None:
        raise UserError(f"{graph.path.name}: no Preprocessor/mul, Preprocessor/sub (the [-1, 1] input scaling)")
    return a, -b


def conv_padding(graph: FrozenGraph) -> str:
    """'tf' when every conv pads SAME; 'torch' for use_explicit_padding (symmetric Pad, then VALID)."""
    modes = {
        graph.attr(n, "padding").s.decode()
        for op in ("Conv2D", "DepthwiseConv2dNative")
        for n in graph.find(op, rf"^({FE}|BoxPredictor)")
    }
    if modes == {"SAME"}:
        return "tf"
    if modes <= {"SAME", "VALID"} and graph.find("Pad", rf"^{FE}/"):
        return "torch"
    raise UserError(f"{graph.path.name}: unsupported conv padding {sorted(modes)}")


def bn_epsilon(graph: FrozenGraph) -> float:
    eps = {
        round(graph.attr(n, "epsilon").f, 9)
        for op in ("FusedBatchNorm", "FusedBatchNormV2", "FusedBatchNormV3")
        for n in graph.find(op)
    }
    if len(eps) != 1:
        raise UserError(f"{graph.path.name}: BatchNorm epsilons {sorted(eps)} (one value expected)")
    return float(eps.pop())


def read(graph: FrozenGraph) -> DetectionGraph:
    tensors, _ = map_tensors(graph)
    anchors = anchor_boxes(graph)
    boxes0 = tensors["box_predictors.0.conv.weight"].shape[0] // 4
    class_slots = tensors["class_predictors.0.conv.weight"].shape[0]
    if boxes0 != len(anchors[0]) or class_slots % boxes0:
        raise UserError(
            f"{graph.path.name}: BoxPredictor_0 predicts {boxes0} boxes per location, the anchors {len(anchors[0])}"
        )
    a, b = scaling(graph)
    if not (math.isclose(a, 2 / 255, rel_tol=1e-5) and math.isclose(b, -1.0, rel_tol=1e-5)):
        raise UserError(f"{graph.path.name}: input scaling {a:.6g}·x + {b:.6g}, not MobileNetV2's (2/255)·x - 1")
    return DetectionGraph(
        tensors=tensors,
        num_classes=class_slots // boxes0,
        head_channels=int(tensors["backbone.head.conv.weight"].shape[0]),
        bn_eps=bn_epsilon(graph),
        padding=conv_padding(graph),
        input_size=input_size(graph),
        scaling=(a, b),
        anchors=anchors,
        box_coder_scales=box_coder_scales(graph),
        postprocessing=postprocessing(graph),
    )


def backbone_signature(width: float) -> tuple[int, ...]:
    """(stem, the 7 stage outputs) channels of our MobileNetV2 at `width` (TF's with min_depth 8)."""
    from mobilenetv2.models import TABLE_2, make_divisible
    from mobilenetv2.models.mobilenet_v2 import STEM_CHANNELS

    return (make_divisible(STEM_CHANNELS * width), *(make_divisible(row.c * width) for row in TABLE_2))


def candidate_widths(tensors: dict[str, torch.Tensor]) -> list[float]:
    """Widths whose backbone channel counts match the graph's (a graph only fixes them up to rounding)."""
    from mobilenetv2.models import TABLE_2
    from mobilenetv2.registry import MOBILENET_V2_WIDTHS

    last_of_stage = [sum(row.n for row in TABLE_2[: i + 1]) - 1 for i in range(len(TABLE_2))]
    found = (
        tensors["backbone.stem.conv.weight"].shape[0],
        *(tensors[f"backbone.blocks.{b}.project.conv.weight"].shape[0] for b in last_of_stage),
    )
    widths = [*MOBILENET_V2_WIDTHS.values(), *(k / 100 for k in range(5, 401))]
    matches = [w for w in dict.fromkeys(widths) if backbone_signature(w) == tuple(found)]
    if not matches:
        raise UserError(
            f"backbone channels {found} (stem, stages) match no MobileNetV2 width between 0.05 and 4 "
            "(a graph with min_depth 16 below width 0.75 has wider early layers than MobileNetV2)"
        )
    return matches


def model_options(d: DetectionGraph) -> dict[str, Any]:
    """create_model options of ssdlite_mobilenet_v2 that reproduce the graph: the first candidate width whose
    whole network (extra layers and predictors included) has the graph's shapes."""
    from mobilenetv2.models.mobilenet_v2 import head_channels
    from mobilenetv2.registry import create_model

    tried = []
    for width in candidate_widths(d.tensors):
        options: dict[str, Any] = {"width": width, "num_classes": d.num_classes, "padding": d.padding}
        options["bn_eps"] = d.bn_eps
        if d.head_channels != head_channels(width):  # TF's SSD extractor scales layer_19 below width 1 too
            options["last_channels"] = d.head_channels
        try:
            model = create_model("ssdlite_mobilenet_v2", **options)
        except (TypeError, ValueError) as exc:
            raise UserError(f"ssdlite_mobilenet_v2 cannot take the graph's options {options}: {exc}") from None
        shapes = {k: tuple(v.shape) for k, v in model.state_dict().items()}
        mismatch = [k for k, v in d.tensors.items() if shapes.get(k) != tuple(v.shape)]
        if not mismatch and set(shapes) == set(d.tensors):
            return options
        tried.append((width, mismatch[0] if mismatch else "tensor set"))
    width, key = tried[0]
    raise UserError(
        f"no ssdlite_mobilenet_v2 has the graph's shapes (width {width}: {key} is "
        f"{tuple(d.tensors[key].shape) if key in d.tensors else 'missing'})"
    )


def reference(path, images: np.ndarray) -> dict[str, np.ndarray] | None:
    """TF's own outputs of the frozen graph on uint8 NHWC `images` (raw `concat`, `concat_1` and the final
    detections); None when TensorFlow is not installed."""
    import importlib.util

    if importlib.util.find_spec("tensorflow") is None:
        return None
    import tensorflow as tf

    names = ["concat", "concat_1", "detection_boxes", "detection_scores", "detection_classes", "num_detections"]
    graph_def = tf.compat.v1.GraphDef()
    with open(path, "rb") as f:
        graph_def.ParseFromString(f.read())
    graph = tf.Graph()
    with graph.as_default():
        tf.compat.v1.import_graph_def(graph_def, name="")
    with tf.compat.v1.Session(graph=graph) as sess:
        values = sess.run([f"{n}:0" for n in names], {"image_tensor:0": images})
    return dict(zip(names, values, strict=True))
