"""What a task supplies to the one training loop: its data, its model, its loss and its evaluation.

The loop (loop.py) owns everything every task needs: device and precision, DDP, AMP, EMA, gradient clipping,
atomic checkpoints with bitwise resume, progress, records, curves and the run folder. A `Task` owns the rest.
Which task runs is decided by the model: the registry records each model's task.
"""

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import torch
from PIL import Image
from torch import nn
from torch.utils.data import DataLoader

from mobilenetv2.data.loader import Source
from mobilenetv2.preprocessing import Preprocessing
from mobilenetv2.train.config import TrainConfig
from mobilenetv2.train.runtime import Runtime

TrainTransform = Callable[[Image.Image, Any, torch.Generator], tuple[torch.Tensor, Any]]
EvalTransform = Callable[[Image.Image, Any], tuple[torch.Tensor, Any]]


@dataclass
class Evaluation:
    """A whole-set evaluation: plain-number `metrics` (fractions in [0, 1]; the task's primary metric among
    them), the files that could not be read, and whatever the task writes beside metrics.json."""

    metrics: dict[str, float]
    skipped: list[str] = field(default_factory=list)
    images: int = 0
    seconds: float = 0.0
    details: dict[str, Any] = field(default_factory=dict)

    def write(self, out: Path) -> None:
        """metrics.json (and the task's own files, in subclasses) into `out`."""
        from mobilenetv2.train.records import write_json

        out.mkdir(parents=True, exist_ok=True)
        write_json(out / "metrics.json", {**self.metrics, **self.details, "skipped_files": len(self.skipped)})


class Task:
    """One instance per run, built from the resolved config. Subclasses set the class attributes and
    implement the methods that raise NotImplementedError."""

    name: ClassVar[str]
    primary_metric: ClassVar[str]  # key of Evaluation.metrics, higher is better ("top1", "map", "miou")
    datasets: ClassVar[tuple[str, ...]]  # --dataset values; the first is the default
    folder_dataset: ClassVar[str]  # what a bare `--data DIR` means
    folder_datasets: ClassVar[tuple[str, ...]] = ()  # other --dataset values that read --data DIR

    def __init__(self, cfg: TrainConfig) -> None:
        self.cfg = cfg

    @classmethod
    def default_dataset(cls, data: str | None) -> str:
        return cls.folder_dataset if data else cls.datasets[0]

    @classmethod
    def reads_folder(cls, dataset: str) -> bool:
        return dataset == cls.folder_dataset or dataset in cls.folder_datasets

    @classmethod
    def default_resolution(cls, dataset: str) -> int:
        return 224

    @classmethod
    def default_recipe(cls, dataset: str) -> str:
        return "paper"

    def sources(self) -> tuple[Source, Source]:
        raise NotImplementedError

    def preprocessing(self) -> Preprocessing:
        raise NotImplementedError

    def train_transform(self, pre: Preprocessing) -> TrainTransform:
        raise NotImplementedError

    def eval_transform(self, pre: Preprocessing) -> EvalTransform:
        raise NotImplementedError

    def collate_targets(self, targets: list[Any]) -> Any:
        raise NotImplementedError

    def targets_to(self, targets: Any, device: torch.device) -> Any:
        return targets.to(device, non_blocking=True)

    def summary_extras(self) -> dict[str, Any]:
        """Task-specific entries of summary.json (detection: `skipped_boxes`)."""
        return {}

    def num_classes(self, train: Source) -> int:
        return len(train.class_names)

    def model_options(self) -> dict[str, Any]:
        """The model keywords the run gives: its model options, with `--dropout` unless they set it."""
        options = dict(self.cfg.model_options)
        if self.cfg.dropout is not None:
            options.setdefault("dropout", self.cfg.dropout)
        return options

    def build_model(self, num_classes: int) -> nn.Module:
        raise NotImplementedError

    def loss(self, forward: Callable, images: torch.Tensor, targets: Any) -> tuple[torch.Tensor, dict[str, Any]]:
        """(loss, per-batch sums of 0-d tensors for the epoch row); runs under the loop's autocast."""
        raise NotImplementedError

    def evaluate(
        self, model: nn.Module, loader: DataLoader, *, rt: Runtime, precision: str, channels_last: bool
    ) -> Evaluation:
        raise NotImplementedError
