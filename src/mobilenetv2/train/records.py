"""What a run writes besides checkpoints: metrics.csv / metrics.json, TensorBoard events, summary.json, curves."""

import csv
from pathlib import Path
from typing import Any

from mobilenetv2.atomic import atomic_path
from mobilenetv2.utils import finite_or_none as finite_or_none
from mobilenetv2.utils import write_json as write_json


def write_metrics(out: Path, history: list[dict[str, Any]]) -> None:
    """Rewritten whole every epoch from the checkpointed history, so a resumed run never duplicates rows."""
    with atomic_path(out / "metrics.csv") as tmp, open(tmp, "w", newline="") as f:
        columns = [k for k, v in (history[0] if history else {}).items() if isinstance(v, int | float)]
        writer = csv.DictWriter(f, fieldnames=columns, extrasaction="ignore")
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


def plot_curves(history: list[dict[str, Any]], path: Path, *, primary: str = "top1") -> Path | None:
    """Loss, the task's metrics (train and val, as percentages) and the learning rate per epoch in one PNG."""
    if not history:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    epochs = [row["epoch"] for row in history]
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.6))
    axes[0].plot(epochs, [r["train_loss"] for r in history], label="train")
    if "val_loss" in history[0]:
        axes[0].plot(epochs, [r["val_loss"] for r in history], label="val")
    axes[0].set(title="loss", ylabel="loss")
    metrics = [k for k in history[0] if k.startswith(("train_", "val_")) and not k.endswith("loss")]
    for key in metrics:
        style = "-" if key.endswith(primary) else "--"
        axes[1].plot(epochs, [100 * r[key] for r in history], style, label=key.replace("_", " "))
    axes[1].set(title=f"{primary} and other metrics", ylabel="%")
    axes[2].plot(epochs, [r["lr"] for r in history])
    axes[2].set(title="learning rate (end of epoch)", ylabel="learning rate")
    for ax in axes:
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
    axes[0].legend()
    axes[1].legend(fontsize=8)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)
    return path


def plot_confusion(confusion, class_names: list[str], path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = len(class_names)
    size = min(4 + 0.35 * n, 30)
    fig, ax = plt.subplots(figsize=(size + 1, size))
    image = ax.imshow(confusion.numpy(), cmap="Blues")
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04, label="images")
    if n <= 40:
        ax.set_xticks(range(n), class_names, rotation=90)
        ax.set_yticks(range(n), class_names)
        dark = confusion.max().item() / 2  # counts on cells darker than half the scale are drawn in white
        for i in range(n):
            for j in range(n):
                if confusion[i, j] > 0:
                    colour = "white" if confusion[i, j] > dark else "black"
                    ax.text(j, i, int(confusion[i, j]), ha="center", va="center", fontsize=7, color=colour)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(f"confusion matrix ({int(confusion.sum())} images)")
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)
    return path


def write_confusion_csv(confusion, class_names: list[str], path: Path) -> Path:
    with atomic_path(path) as tmp, open(tmp, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["true \\ predicted", *class_names])
        for name, row in zip(class_names, confusion.tolist(), strict=True):
            writer.writerow([name, *row])
    return path
