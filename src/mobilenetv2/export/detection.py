"""Detector export: boxes decoded in the graph, per-class NMS in the graph as an option, verified in the runtime.

The exported graph maps (N, 3, H, W) to
  - `boxes` (N, A, 4): every anchor's decoded box, normalized xyxy (x by the width, y by the height), unclipped
    (TF clips after NMS);
  - `scores` (N, A, C - 1): foreground class scores (sigmoid or softmax, as the model's post-processing says);
  - with `nms=True` also `selected` (K, 3) int64 rows (image, class - 1, anchor): ONNX NonMaxSuppression per
    image and class (IoU, score threshold and per-class cap from the model's post-processing). Taking each
    image's `max_detections` best of them by score, clipping and dropping empty boxes is left to the caller
    (`detections_from_selected`), as the number of boxes differs per image.
Verification compares the structured outputs: boxes and scores with PyTorch's within 1e-4, and the selection
with our NMS run on the runtime's own boxes and scores (exact).

The on-device formats (tflite, executorch) return `boxes` and `scores` only (NMS is left to the app, as with
TF-Lite's own SSD exports when the detection post-processing op is not used); their anchors are computed once
for the input size and held as a float32 constant (LiteRT has no float64 arithmetic, and a fixed-size graph
needs no anchor arithmetic).
"""

import logging
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torchvision.ops import nms

from mobilenetv2.detection.coder import decode
from mobilenetv2.detection.postprocess import class_scores
from mobilenetv2.errors import UserError
from mobilenetv2.export.verify import FP32_TOLERANCE, ExportResult, verification_input
from mobilenetv2.meta import find_meta, set_meta

log = logging.getLogger(__name__)
OUTPUTS = ("boxes", "scores")
NMS_OUTPUT = "selected"
MOBILE_FORMATS = ("tflite", "executorch")


@torch.library.custom_op("mobilenetv2::multiclass_nms", mutates_args=())
def multiclass_nms(
    boxes: torch.Tensor, scores: torch.Tensor, max_per_class: int, iou_threshold: float, score_threshold: float
) -> torch.Tensor:
    """ONNX NonMaxSuppression's contract: boxes (N, A, 4), scores (N, C, A) -> (K, 3) int64 (image, class,
    anchor), per image then class, each class's boxes by decreasing score."""
    rows = []
    for b in range(boxes.shape[0]):
        for c in range(scores.shape[1]):
            s = scores[b, c]
            keep = torch.nonzero(s > score_threshold).squeeze(1)
            kept = keep[nms(boxes[b, keep], s[keep], iou_threshold)][:max_per_class]
            image, cls = torch.full_like(kept, b), torch.full_like(kept, c)
            rows.append(torch.stack([image, cls, kept], dim=1))
    return torch.cat(rows) if rows else torch.zeros((0, 3), dtype=torch.long)


@multiclass_nms.register_fake
def _(boxes, scores, max_per_class, iou_threshold, score_threshold):
    k = torch.library.get_ctx().new_dynamic_size()
    return boxes.new_empty((k, 3), dtype=torch.long)


def _nms_symbolic(g, boxes, scores, max_per_class, iou_threshold, score_threshold):
    from torch.onnx import symbolic_helper

    limit = symbolic_helper._maybe_get_const(max_per_class, "i")
    iou = symbolic_helper._maybe_get_const(iou_threshold, "f")
    threshold = symbolic_helper._maybe_get_const(score_threshold, "f")
    return g.op(
        "NonMaxSuppression",
        boxes,
        scores,
        g.op("Constant", value_t=torch.tensor([limit], dtype=torch.long)),
        g.op("Constant", value_t=torch.tensor([iou], dtype=torch.float)),
        g.op("Constant", value_t=torch.tensor([threshold], dtype=torch.float)),
    )


class DecodedDetector(nn.Module):
    """A detector's export graph: decoded boxes and class scores of every anchor, optionally NMS."""

    def __init__(self, model: nn.Module, *, nms: bool = False, anchors: torch.Tensor | None = None) -> None:
        super().__init__()
        self.model, self.nms = model, nms
        self.config = model.postprocessing
        self.anchors = anchors  # (A, 4) for one input size, or None: the model's own for each input

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        raw = self.model.forward_raw(x)
        anchors = raw.anchors if self.anchors is None else self.anchors
        boxes = decode(raw.box_codes, anchors)  # (N, A, 4) normalized xyxy
        scores = class_scores(raw.class_logits, self.config.score)  # (N, A, C - 1)
        if not self.nms:
            return boxes, scores
        c = self.config
        selected = multiclass_nms(
            boxes, scores.transpose(1, 2).contiguous(), c.max_per_class, c.iou_threshold, c.score_threshold
        )
        return boxes, scores, selected


def detections_from_selected(boxes: np.ndarray, scores: np.ndarray, selected: np.ndarray, max_detections: int):
    """(image, class, anchor) rows of the graph's NMS -> one dict per image like our model's eval output, in
    normalized xyxy: each image's `max_detections` best, clipped to [0, 1], empty boxes dropped (TF's order)."""
    out = []
    for b in range(boxes.shape[0]):
        rows = selected[selected[:, 0] == b]
        s = scores[b, rows[:, 2], rows[:, 1]]
        order = np.argsort(-s, kind="stable")
        rows, s = rows[order], s[order]
        box = np.clip(boxes[b, rows[:, 2]], 0.0, 1.0)
        nonempty = (box[:, 2] - box[:, 0]) * (box[:, 3] - box[:, 1]) > 0
        keep = np.flatnonzero(nonempty)[:max_detections]
        out.append({"boxes": box[keep], "scores": s[keep], "labels": rows[keep, 1] + 1})
    return out


@torch.no_grad()
def fixed_anchors(model: nn.Module, input_size: tuple[int, int]) -> torch.Tensor:
    """The detector's (A, 4) anchors for inputs of `input_size`, float32."""
    return model.forward_raw(torch.zeros(1, 3, *input_size)).anchors.to(torch.float32).clone()


def export_detector(
    model: nn.Module,
    path: Path,
    *,
    format: str,
    input_size: tuple[int, int],
    nms: bool,
    batch_size: int | None = None,
):
    """Write the detector's export graph, run it in its runtime, compare with PyTorch (UserError, nothing left
    at `path`, beyond 1e-4). `batch_size`: a tflite file's fixed batch (default 1)."""
    from mobilenetv2.export import remove_export

    if format not in ("onnx", "openvino", *MOBILE_FORMATS):
        raise UserError(f"a detector exports to onnx, openvino, tflite or executorch, not {format}")
    if nms and format in MOBILE_FORMATS:
        raise UserError(f"--nms applies to onnx and openvino; a {format} detector returns decoded boxes and scores")
    anchors = fixed_anchors(model, input_size) if format in MOBILE_FORMATS else None
    wrapper = DecodedDetector(model, nms=nms, anchors=anchors).eval()
    meta = find_meta(model)
    if meta is not None:
        set_meta(wrapper, meta)
    names = (*OUTPUTS, NMS_OUTPUT) if nms else OUTPUTS
    if format in MOBILE_FORMATS:
        path = write_mobile(wrapper, Path(path), format=format, input_size=input_size, batch_size=batch_size)
    else:
        torch.onnx.register_custom_op_symbolic("mobilenetv2::multiclass_nms", _nms_symbolic, 11)
        path = write_graph(wrapper, Path(path), format=format, input_size=input_size, output_names=names)
    try:
        result = verify(wrapper, outputs_runner(path, format, names), path=path, format=format, input_size=input_size)
    except UserError:
        remove_export(path)
        raise
    log.info("%s detector export verified: %s (max |diff| vs PyTorch %.2g)", format, path, result.max_abs_diff)
    return result


def outputs_runner(path: Path, format: str, names: tuple[str, ...]):
    """The exported file in its runtime: a float32 NCHW batch in, the outputs `names` (in that order) out."""
    if format == "onnx":
        from mobilenetv2.export.onnx import ort_session

        session = ort_session(path)
        return lambda x: session.run(list(names), {session.get_inputs()[0].name: x})
    if format == "openvino":
        from mobilenetv2.export.openvino import compile_openvino

        compiled = compile_openvino(path)
        return lambda x: [compiled(x)[o] for o in compiled.outputs]
    if format == "tflite":
        from mobilenetv2.export.litert import tflite_outputs_runner

        return tflite_outputs_runner(path)
    from mobilenetv2.export.executorch import executorch_outputs_runner

    return executorch_outputs_runner(path)


def write_mobile(wrapper: DecodedDetector, path: Path, *, format: str, input_size, batch_size: int | None) -> Path:
    """The wrapper as a .tflite (fixed batch) or .pte (XNNPACK) file whose outputs are boxes, scores."""
    extra = {"outputs": list(OUTPUTS), "boxes": "normalized xyxy"}
    path.parent.mkdir(parents=True, exist_ok=True)
    if format == "tflite":
        from mobilenetv2.export.litert import export_tflite

        return export_tflite(wrapper, path, input_size=input_size, batch_size=batch_size or 1, extra_meta=extra)
    from mobilenetv2.export.executorch import export_executorch

    return export_executorch(wrapper, path, input_size=input_size, extra_meta=extra)


def write_graph(wrapper: nn.Module, path: Path, *, format: str, input_size, output_names) -> Path:
    import onnx

    from mobilenetv2.export.metadata import export_metadata, set_onnx_metadata, set_openvino_metadata
    from mobilenetv2.export.onnx import check_graph, to_onnx_bytes

    path.parent.mkdir(parents=True, exist_ok=True)
    proto = onnx.load_from_string(to_onnx_bytes(wrapper, input_size, output_names=output_names))
    meta = export_metadata(wrapper, input_size) | {"outputs": list(output_names), "boxes": "normalized xyxy"}
    if format == "onnx":
        set_onnx_metadata(proto, meta)
        path.write_bytes(proto.SerializeToString())
        check_graph(path)
        return path
    import tempfile

    import openvino as ov

    if path.suffix != ".xml":
        raise UserError(f"an OpenVINO IR path must end in .xml (the weights go to .bin beside it), got {path}")
    with tempfile.TemporaryDirectory() as tmp:
        onnx_path = Path(tmp) / "model.onnx"
        onnx_path.write_bytes(proto.SerializeToString())
        ir = ov.convert_model(str(onnx_path))
    set_openvino_metadata(ir, meta)
    ov.save_model(ir, str(path), compress_to_fp16=False)
    return path


@torch.inference_mode()
def verify(wrapper: DecodedDetector, run, *, path: Path, format: str, input_size) -> ExportResult:
    x = verification_input(input_size)
    expected = [t.numpy() for t in wrapper(x)]
    actual = run(x.numpy())
    diffs = {}
    for name, e, a in zip(OUTPUTS, expected, actual, strict=False):
        if e.shape != tuple(a.shape):
            raise UserError(f"{format} export {path}: {name} has shape {tuple(a.shape)}, PyTorch's {e.shape}")
        diffs[name] = float(np.max(np.abs(e.astype(np.float64) - a)))
    diff = max(diffs.values())
    if not diff <= FP32_TOLERANCE:
        raise UserError(f"{format} export {path} differs from PyTorch by {diffs} (> {FP32_TOLERANCE:g}); not exported")
    details = {f"max_abs_diff_{k}": v for k, v in diffs.items()}
    if wrapper.nms:
        boxes, scores = (torch.from_numpy(np.asarray(a)) for a in actual[:2])
        c = wrapper.config
        ours = multiclass_nms(
            boxes, scores.transpose(1, 2).contiguous(), c.max_per_class, c.iou_threshold, c.score_threshold
        )
        theirs = np.asarray(actual[2]).astype(np.int64)
        if {tuple(r) for r in ours.tolist()} != {tuple(r) for r in theirs.tolist()} or len(theirs) != len(ours):
            raise UserError(f"{format} export {path}: the graph's NMS keeps {len(theirs)} boxes, ours {len(ours)}")
        details["nms_selected"] = int(len(theirs))
    return ExportResult(path=path, format=format, max_abs_diff=diff, input_size=tuple(input_size), details=details)
