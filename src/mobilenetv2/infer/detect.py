"""Detect objects in image files with a detector's weights file: boxes in the original image's pixels.

Every input gets one result, in input order; an unreadable file gets an error and the others still run.
With `out_dir`, each image is also written as PNG with its boxes and labels drawn.
"""

import dataclasses
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from PIL import Image, ImageDraw

from mobilenetv2.data.detection_transforms import resize_to_tensor
from mobilenetv2.data.images import MAX_PIXELS, open_image
from mobilenetv2.errors import UserError
from mobilenetv2.infer.predict import expand_inputs
from mobilenetv2.meta import meta_of

COLORS = ((230, 25, 75), (60, 180, 75), (255, 225, 25), (0, 130, 200), (245, 130, 48), (145, 30, 180))


@dataclass
class DetectionResult:
    file: str
    detections: list[dict[str, Any]] = field(default_factory=list)  # [{box, label, class_id, score}]
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"file": self.file, "detections": self.detections, "error": self.error}


def detect_image(model, img: Image.Image, labels: list[str]) -> list[dict[str, Any]]:
    """Detections of one PIL image: [{"box": [x1, y1, x2, y2] (original pixels), "label", "class_id", "score"}]."""
    pre = meta_of(model).preprocessing
    x, _ = resize_to_tensor(img, {"boxes": torch.zeros(0, 4)}, pre)
    h, w = pre.input_size
    with torch.inference_mode():
        det = model(x[None])[0]
    scale = torch.tensor([img.width / w, img.height / h] * 2)
    out = []
    boxes, scores, classes = (det["boxes"] * scale).tolist(), det["scores"].tolist(), det["labels"].tolist()
    for box, score, label in zip(boxes, scores, classes, strict=True):
        name = labels[label] if label < len(labels) else str(label)
        out.append({"box": [round(v, 2) for v in box], "label": name, "class_id": int(label), "score": round(score, 5)})
    return out


def draw_detections(img: Image.Image, detections: list[dict[str, Any]]) -> Image.Image:
    img = img.copy()
    draw = ImageDraw.Draw(img)
    for d in detections:
        color = COLORS[d["class_id"] % len(COLORS)]
        draw.rectangle(d["box"], outline=color, width=max(1, round(min(img.size) / 200)))
        x1, y1 = d["box"][:2]
        draw.text((x1 + 2, max(0, y1 - 11)), f"{d['label']} {d['score']:.2f}", fill=color)
    return img


def detect_files(
    inputs: list[str],
    *,
    weights: str | os.PathLike,
    score_threshold: float = 0.3,
    max_detections: int = 100,
    out_dir: str | os.PathLike | None = None,
    max_pixels: int = MAX_PIXELS,
) -> list[DetectionResult]:
    from mobilenetv2.weights import load

    if max_detections < 1:
        raise ValueError(f"--max-detections must be >= 1, got {max_detections}")
    if not 0 <= score_threshold <= 1:
        raise ValueError(f"--score-threshold must be in [0, 1], got {score_threshold}")
    files = expand_inputs(inputs)
    if not files:
        raise UserError("no input images given")
    model = load(weights).eval()
    if meta_of(model).task != "detection":
        raise UserError(f"{weights}: a {meta_of(model).task} model, not a detector")
    model.postprocessing = dataclasses.replace(
        model.postprocessing,
        score_threshold=max(score_threshold, model.postprocessing.score_threshold),
        max_detections=max_detections,
    )
    labels = list(meta_of(model).class_names or [str(i) for i in range(model.num_classes)])
    if out_dir is not None:
        Path(out_dir).mkdir(parents=True, exist_ok=True)
    results = []
    for path in files:
        result = DetectionResult(file=path)
        try:
            if not os.path.isfile(path):
                raise UserError(f"no such file: {path}" if not os.path.isdir(path) else f"{path}: no images in it")
            img = open_image(path, max_pixels=max_pixels)
            result.detections = detect_image(model, img, labels)
            if out_dir is not None:
                draw_detections(img, result.detections).save(Path(out_dir) / (Path(path).stem + ".png"))
        except (UserError, OSError) as exc:
            result.error = str(exc).splitlines()[0]
        results.append(result)
    return results


def format_detections(results: list[DetectionResult]) -> str:
    lines = []
    for r in results:
        if r.error is not None:
            lines.append(f"{r.file}: error: {r.error.removeprefix(f'{r.file}: ')}")
            continue
        lines.append(f"{r.file}: {len(r.detections)} detections")
        for d in r.detections:
            box = ", ".join(f"{v:.1f}" for v in d["box"])
            lines.append(f"  {d['score']:.3f}  {d['label']} ({d['class_id']})  [{box}]")
    return "\n".join(lines)
