"""`mobilenetv2 demo --task segmentation`: Mobile DeepLabv3 on the built-in digit scenes.

As the paper (Sec. 6.3) starts from an ImageNet classifier, the demo first trains a MobileNetV2 classifier of
the recipe's width on the training digits (the `digits` recipe, shortened), then trains `deeplabv3_mobilenet_v2`
(the recipe's width, output stride and head size) with its backbone initialised from that classifier, with
the `digits-segmentation` recipe through the one training loop. It evaluates the weights file on the held-out
scenes (scenes of digits neither training stage saw) and writes report.md with the curves, the per-class IoU,
overlays of held-out scenes (image | truth | prediction) and the time of each stage.
"""

import json
import logging
import os
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
from PIL import Image

from mobilenetv2.train.config import TrainConfig
from mobilenetv2.train.loop import train
from mobilenetv2.utils import torch_threads
from mobilenetv2.workflows.backbone_stage import (
    BACKBONE_EPOCHS,
    BACKBONE_MODEL,
    backbone_weights,
    train_digits_backbone,
)

log = logging.getLogger(__name__)

DEMO_MODEL = "deeplabv3_mobilenet_v2"  # width, output stride, head size: the recipe's [model_options]
DEMO_SCENES = 1200  # training scenes (and a quarter as many held out)
DEMO_TARGET_MIOU = 0.7
DEMO_SECONDS = 900
DEMO_THREADS = 1  # see train/demo.py: on a busy 2-core machine two threads wait for each other
OVERLAY_SCENES = 8


def run_demo(
    *, out: str | Path | None = None, max_steps: int = 0, threads: int = DEMO_THREADS, scenes: int = DEMO_SCENES
) -> Path:
    """Run the demo into `out` (default runs/demo-segmentation-<UTC time>); returns the path of report.md."""
    from mobilenetv2.meta import meta_of
    from mobilenetv2.segmentation.evaluate import evaluate_segmenter
    from mobilenetv2.train.records import write_json
    from mobilenetv2.weights import load

    start = time.perf_counter()
    load_before = os.getloadavg()
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    out = Path(out or f"runs/demo-segmentation-{stamp}")
    stages: dict[str, float] = {}
    backbone_top1 = train_digits_backbone(out, "digits-segmentation", max_steps=max_steps, threads=threads)["val_top1"]
    stages["backbone (digit classifier)"] = time.perf_counter() - start
    cfg = TrainConfig(
        model=DEMO_MODEL,
        dataset="digits-segmentation",
        recipe="digits-segmentation",
        backbone_weights=backbone_weights(out),
        out=str(out),
        max_steps=max_steps,
        threads=threads,
        synthetic_size=scenes,
        seed=0,
    )
    summary = train(cfg)
    stages["segmenter (scenes, training, per-epoch evaluation)"] = time.perf_counter() - start - sum(stages.values())
    model = load(out / "model.safetensors")
    val = _val_source(scenes)
    pre = meta_of(model).preprocessing
    # train() restores the caller's thread count; at PyTorch's default (all cores) the evaluation of the
    # held-out scenes took 40 s on the busy 2-core machine instead of 3 s with one thread.
    with torch_threads(threads):
        result = evaluate_segmenter(model, val, pre)
        write_json(out / "eval" / "metrics.json", result.to_dict())
        stages["held-out evaluation"] = time.perf_counter() - start - sum(stages.values())
        write_overlays(model, val, pre, out / "overlays.png")
        stages["overlays"] = time.perf_counter() - start - sum(stages.values())
    seconds = time.perf_counter() - start
    load_after = os.getloadavg()
    record = {"seconds": seconds, "stages_seconds": stages, "miou": result.metrics["miou"],
              "backbone_val_top1": backbone_top1, "load_average": [load_before[0], load_after[0]]}  # fmt: skip
    write_json(out / "demo.json", record)
    path = write_report(out, summary=summary, metrics=result.metrics, seconds=seconds, threads=threads,
                        load=(load_before[0], load_after[0]), stages=stages, backbone_top1=backbone_top1)  # fmt: skip
    log.info("segmentation demo finished in %.0f s: val mIoU %.4f", seconds, result.metrics["miou"])
    return path


def _val_source(scenes: int):
    from mobilenetv2.data.digits_segmentation import ensure_digits_segmentation
    from mobilenetv2.data.segmentation import segmentation_split
    from mobilenetv2.train.tasks.segmentation import digits_spec

    return segmentation_split(ensure_digits_segmentation(digits_spec(scenes)), "val")


def write_overlays(model, source, pre, path: Path, count: int = OVERLAY_SCENES) -> None:
    """A grid: one column per held-out scene; rows image, true mask, predicted mask (VOC colours)."""
    import torch

    from mobilenetv2.data.seg_transforms import image_tensor
    from mobilenetv2.data.segmentation import voc_palette
    from mobilenetv2.segmentation.predict import overlay

    palette = np.asarray(voc_palette(), dtype=np.uint8).reshape(256, 3)
    tiles = []
    model.eval()
    for i in range(min(count, len(source))):
        image, mask = source.load(i)
        with torch.no_grad():
            pred = model(image_tensor(image, pre)[None]).argmax(1)[0].numpy().astype(np.uint8)
        tiles.append([np.asarray(image), palette[np.asarray(mask)], np.asarray(overlay(image, pred))])
    h, w = tiles[0][0].shape[:2]
    grid = np.zeros((3 * h, len(tiles) * w, 3), dtype=np.uint8)
    for c, column in enumerate(tiles):
        for r, tile in enumerate(column):
            grid[r * h : (r + 1) * h, c * w : (c + 1) * w] = tile
    Image.fromarray(grid).resize((grid.shape[1] * 3, grid.shape[0] * 3), Image.NEAREST).save(path)


def write_report(
    out: Path,
    *,
    summary: dict,
    metrics: dict,
    seconds: float,
    threads: int,
    load,
    stages: dict[str, float],
    backbone_top1: float,
) -> Path:
    ok = metrics["miou"] >= DEMO_TARGET_MIOU
    per_class = metrics["per_class_iou"]
    lines = [
        "# Mobile DeepLabv3 demo: digit scenes",
        "",
        f"`{DEMO_MODEL}` {json.dumps(summary.get('model_options', {}))}, its backbone initialised from a "
        f"`{BACKBONE_MODEL}` classifier trained on the training digits ({BACKBONE_EPOCHS} epochs of the `digits` "
        f"recipe, held-out top-1 {backbone_top1:.4f}), trained with the `digits-segmentation` recipe "
        f"({summary.get('epochs', '?')} epochs, {summary.get('steps', '?')} steps) on "
        f"{summary.get('device', 'cpu')} with {threads} thread(s); load average {load[0]:.1f} before, "
        f"{load[1]:.1f} after (2-core machine shared with other jobs).",
        "",
        "| measure | value |",
        "|---|---|",
        f"| held-out mIoU | {metrics['miou']:.4f} (target {DEMO_TARGET_MIOU}: {'met' if ok else 'NOT met'}) |",
        f"| held-out pixel accuracy | {metrics['pixel_accuracy']:.4f} |",
        f"| demo wall time (all stages) | {seconds:.0f} s (target < {DEMO_SECONDS} s) |",
        *(f"| - {name} | {t:.0f} s |" for name, t in stages.items()),
        "",
        "| class | IoU |",
        "|---|---|",
        *(f"| {name} | {'-' if v is None else f'{v:.3f}'} |" for name, v in per_class.items()),
        "",
        "![training curves](curves.png)",
        "",
        "Held-out scenes (top: image, middle: true mask with the 255 ignore band, bottom: prediction):",
        "",
        "![overlays](overlays.png)",
        "",
    ]
    path = out / "report.md"
    path.write_text("\n".join(lines))
    return path
