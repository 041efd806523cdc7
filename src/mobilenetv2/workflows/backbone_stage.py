"""Stage one of the detection and segmentation demos: the MobileNetV2 backbone trained as a digits classifier.

The paper's detector and segmenter start from an ImageNet classifier; the demos start from one trained on the
built-in UCI digits (the `digits` recipe at 32x32, its schedule compressed into BACKBONE_EPOCHS) at the width
of the task's recipe. It is written to OUT/backbone/ and passed to the task's training as `--backbone-weights`.
"""

from pathlib import Path
from typing import Any

from mobilenetv2.train.config import TrainConfig, load_recipe
from mobilenetv2.train.loop import train

BACKBONE_MODEL = "mobilenet_v2"
BACKBONE_EPOCHS = 10  # 95-97% val top-1 at widths 0.35-0.5, under a minute of one core


def train_digits_backbone(out: Path, task_recipe: str, *, max_steps: int, threads: int) -> dict[str, Any]:
    """Train the classifier into `out`/backbone at the width `task_recipe` sets; returns its training summary."""
    width = load_recipe(task_recipe).get("model_options", {}).get("width", 1.0)
    config = TrainConfig(
        model=BACKBONE_MODEL,
        model_options={"width": width},
        dataset="digits",
        recipe="digits",
        epochs=BACKBONE_EPOCHS,
        out=str(out / "backbone"),
        max_steps=max_steps,
        threads=threads,
        seed=0,
    )
    return train(config)


def backbone_weights(out: Path) -> str:
    """The stage-one weights file inside the demo folder `out`."""
    return str(out / "backbone" / "model.safetensors")
