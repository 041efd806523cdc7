"""What a run writes besides checkpoints: metrics.csv / metrics.json, TensorBoard events, summary.json, curves."""

import csv
import json
from pathlib import Path
from typing import Any

from mobilenetv2.atomic import atomic_path, write_text_atomic

METRIC_COLUMNS = (
    "epoch",
    "step",
    "train_loss",
    "train_top1",
    "val_loss",
    "val_top1",
    "val_top5",
    "lr",
    "epoch_seconds",
)


def write_json(path: Path, obj: Any) -> None:
    write_text_atomic(path, json.dumps(obj, indent=1) + "\n")


def write_metrics(out: Path, history: list[dict[str, Any]]) -> None:
    """Rewritten whole every epoch from the checkpointed history, so a resumed run never duplicates rows."""
    with atomic_path(out / "metrics.csv") as tmp, open(tmp, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=METRIC_COLUMNS, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(history)
    write_json(out / "metrics.json", history)


class TensorBoard:
    """Scalars under `out/tensorboard`; on resume, events after the resumed step are purged."""

    def __init__(self, out: Path, *, purge_step: int | None) -> None:
        from torch.utils.tensorboard import SummaryWriter

        self.writer = SummaryWriter(log_dir=str(out / "tensorboard"), purge_step=purge_step)

    def scalars(self, values: dict[str, float], step: int) -> None:
        for key, value in values.items():
            self.writer.add_scalar(key, value, step)

    def close(self) -> None:
        self.writer.close()


def plot_curves(history: list[dict[str, Any]], path: Path) -> Path | None:
    """Loss, accuracy and learning rate per epoch in one PNG."""
    if not history:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    epochs = [row["epoch"] for row in history]
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.6))
    axes[0].plot(epochs, [r["train_loss"] for r in history], label="train")
    axes[0].plot(epochs, [r["val_loss"] for r in history], label="val")
    axes[0].set_title("loss")
    axes[1].plot(epochs, [100 * r["train_top1"] for r in history], label="train top-1")
    axes[1].plot(epochs, [100 * r["val_top1"] for r in history], label="val top-1")
    axes[1].plot(epochs, [100 * r["val_top5"] for r in history], label="val top-5", linestyle="--")
    axes[1].set_title("accuracy (%)")
    axes[2].plot(epochs, [r["lr"] for r in history])
    axes[2].set_title("learning rate (end of epoch)")
    for ax in axes:
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
    axes[0].legend()
    axes[1].legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_confusion(confusion, class_names: list[str], path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = len(class_names)
    size = min(4 + 0.35 * n, 30)
    fig, ax = plt.subplots(figsize=(size, size))
    ax.imshow(confusion.numpy(), cmap="Blues")
    if n <= 40:
        ax.set_xticks(range(n), class_names, rotation=90)
        ax.set_yticks(range(n), class_names)
        for i in range(n):
            for j in range(n):
                if confusion[i, j] > 0:
                    ax.text(j, i, int(confusion[i, j]), ha="center", va="center", fontsize=7)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def write_confusion_csv(confusion, class_names: list[str], path: Path) -> Path:
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["true \\ predicted", *class_names])
        for name, row in zip(class_names, confusion.tolist(), strict=True):
            writer.writerow([name, *row])
    return path
