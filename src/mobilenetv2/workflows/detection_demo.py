"""`run_detection_demo`: SSDLite-MobileNetV2 on the built-in digits-detection set, backbone first.

As the paper's detector starts from an ImageNet classifier, the demo first trains the MobileNetV2 backbone as
a classifier on the built-in UCI digits (`digits` recipe at the detector's width, 32x32), then trains the
detector with the `ssdlite-digits` recipe (`--backbone-weights` from stage one), evaluates it on the held-out
split with pycocotools, exports it to ONNX (verified in onnxruntime), and writes report.md with the training
curves and a grid of predicted validation images into the run folder.
"""

import logging
import os
import time
from datetime import UTC, datetime
from pathlib import Path

from PIL import Image

from mobilenetv2.atomic import write_text_atomic
from mobilenetv2.train.config import TrainConfig
from mobilenetv2.train.loop import train
from mobilenetv2.utils import torch_threads
from mobilenetv2.workflows.backbone_stage import backbone_weights, train_digits_backbone
from mobilenetv2.workflows.detection_eval import eval_source, evaluate_detector_weights
from mobilenetv2.workflows.export_file import export_from_file

log = logging.getLogger(__name__)

DEMO_TARGET_MAP50 = 0.7
DEMO_SECONDS = 900
GRID = (4, 3)  # columns, rows of predicted validation images
RECIPE = "ssdlite-digits"


def run_detection_demo(
    *, out: str | Path | None = None, max_steps: int = 0, threads: int = 1, resolution: int | None = None
) -> Path:
    """Run the demo into `out` (default runs/demo-detection-<UTC time>); returns the path of report.md."""
    start = time.perf_counter()
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    out = Path(out or f"runs/demo-detection-{stamp}")
    backbone = train_digits_backbone(out, RECIPE, max_steps=max_steps, threads=threads)
    summary = train(
        TrainConfig(
            model="ssdlite_mobilenet_v2",
            dataset="digits-detection",
            recipe=RECIPE,
            resolution=resolution,
            backbone_weights=backbone_weights(out),
            out=str(out),
            max_steps=max_steps,
            threads=threads,
            seed=0,
        )
    )
    with torch_threads(threads):  # train() restored PyTorch's default; the rest runs on the demo's threads too
        report = evaluate_detector_weights(out / "model.safetensors", out_dir=out / "eval")
        exported = export_from_file(str(out / "model.safetensors"), format="onnx", out=str(out / "model.onnx"))
        write_grid(out / "model.safetensors", out / "predictions.png")
    seconds = time.perf_counter() - start
    path = write_report(
        out, summary=summary, backbone=backbone, evaluation=report, exported=exported, seconds=seconds, threads=threads
    )
    log.info("detection demo finished in %.0f s: val mAP@0.5 %.4f", seconds, report["map50"])
    return path


def write_grid(weights: Path, path: Path, score_threshold: float = 0.3) -> None:
    from mobilenetv2.infer.detect import detect_files, draw_detections

    source = eval_source("digits-detection", None, "val")
    cols, rows = GRID
    files = [source.records[i].path for i in range(min(cols * rows, len(source)))]
    results = detect_files(files, weights=weights, score_threshold=score_threshold)
    tiles = [draw_detections(Image.open(r.file).convert("RGB"), r.detections) for r in results]
    w, h = tiles[0].size
    scale = max(1, 256 // w)
    grid = Image.new("RGB", (cols * w * scale, rows * h * scale), "white")
    for i, tile in enumerate(tiles):
        grid.paste(
            tile.resize((w * scale, h * scale), Image.NEAREST), ((i % cols) * w * scale, (i // cols) * h * scale)
        )
    grid.save(path)


def write_report(
    out: Path, *, summary: dict, backbone: dict, evaluation: dict, exported, seconds: float, threads: int
) -> Path:
    ok = evaluation["map50"] >= DEMO_TARGET_MAP50
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    per_class = ", ".join(f"{k} {v:.2f}" for k, v in evaluation["per_class_ap"].items())
    lines = [
        "# SSDLite-MobileNetV2 demo: digits-detection",
        "",
        f"SSDLite-MobileNetV2 ({summary['model_options']}) trained with the `{RECIPE}` recipe, "
        f"{summary['epochs']:g} epochs, {summary['precision']} on {summary['device']} with {threads} thread(s), "
        f"its backbone first trained as a digits classifier ({backbone['epochs']:g} epochs, "
        f"val top-1 {backbone['val_top1']:.4f}, `backbone/`); "
        f"load average at the end {load:.1f} on {os.cpu_count()} cores.",
        "",
        "| measure | value |",
        "|---|---|",
        f"| val COCO mAP@0.5 | {evaluation['map50']:.4f} (target {DEMO_TARGET_MAP50}: {'met' if ok else 'NOT met'}) |",
        f"| val COCO mAP@[.5:.95] | {evaluation['map']:.4f} |",
        f"| val COCO mAP@0.75 | {evaluation['map75']:.4f} |",
        f"| per-class AP | {per_class} |",
        f"| training throughput | {summary['train_images_per_second']:.1f} img/s |",
        f"| training wall time (backbone + detector) | {backbone['wall_seconds']:.0f} s + "
        f"{summary['wall_seconds']:.0f} s |",
        f"| ONNX export (`model.onnx`, decoded boxes) | max abs diff vs PyTorch {exported.max_abs_diff:.1e} |",
        f"| demo wall time (train + eval + export + grid) | {seconds:.0f} s (target < {DEMO_SECONDS} s) |",
        f"| skipped files / boxes | {summary['skipped_files']} / {summary.get('skipped_boxes', 0)} |",
        "",
        "![training curves](curves.png)",
        "",
        "![predictions on held-out images](predictions.png)",
        "",
        "Files: `model.safetensors`, `model.onnx`, `metrics.csv`, `summary.json`, `eval/metrics.json`, "
        "`eval/detections.json` (COCO results format), `tensorboard/`, `backbone/` (the stage-one classifier).",
        "",
    ]
    path = out / "report.md"
    write_text_atomic(path, "\n".join(lines))
    return path
