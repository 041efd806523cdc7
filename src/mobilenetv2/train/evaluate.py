"""Evaluation sums over a loader: loss, top-1/top-5 hits and the confusion matrix, reducible across processes."""

import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader

from mobilenetv2.train.runtime import Runtime, all_gather_strings, all_sum, autocast


@dataclass
class EvalResult:
    loss: float
    top1: float
    top5: float
    images: int
    seconds: float
    confusion: torch.Tensor  # (num_classes, num_classes) int64, rows = true class, columns = predicted
    skipped: list[str] = field(default_factory=list)

    @property
    def images_per_second(self) -> float:
        return self.images / self.seconds if self.seconds > 0 else 0.0

    def per_class_accuracy(self) -> list[float | None]:
        totals = self.confusion.sum(1)
        return [
            (self.confusion[i, i].item() / totals[i].item()) if totals[i] > 0 else None
            for i in range(len(self.confusion))
        ]


def forward_batches(
    model: nn.Module, loader: DataLoader, *, rt: Runtime, precision: str, channels_last: bool, skipped: list[str]
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """(float32 model output, targets) on the device for every non-empty batch of `loader`, under autocast;
    the files a batch could not read are appended to `skipped`. Every task's evaluation runs through this."""
    memory_format = torch.channels_last if channels_last else torch.contiguous_format
    for batch in loader:
        skipped += batch.skipped
        if len(batch) == 0:
            continue
        x = batch.images.to(rt.device, memory_format=memory_format, non_blocking=True)
        y = batch.targets.to(rt.device)
        with autocast(precision, rt.device):
            logits = model(x)
        yield logits.float(), y


@torch.no_grad()
def evaluate(
    model: nn.Module,
    loader: DataLoader,
    *,
    num_classes: int,
    rt: Runtime,
    precision: str = "fp32",
    channels_last: bool = True,
) -> EvalResult:
    """Every process evaluates its shard; sums are combined so each process returns the full-set result."""
    was_training = model.training
    model.eval()
    sums = torch.zeros(4, dtype=torch.float64)  # loss, top-1 hits, top-5 hits, images
    confusion = torch.zeros(num_classes, num_classes, dtype=torch.int64)
    skipped: list[str] = []
    start = time.perf_counter()
    for logits, y in forward_batches(
        model, loader, rt=rt, precision=precision, channels_last=channels_last, skipped=skipped
    ):
        k = min(5, logits.shape[1])
        top = logits.topk(k, dim=1).indices  # (B, k)
        hits = top == y[:, None]
        sums += torch.tensor(
            [
                F.cross_entropy(logits, y, reduction="sum").item(),
                hits[:, 0].sum().item(),
                hits.any(1).sum().item(),
                len(y),
            ],
            dtype=torch.float64,
        )
        confusion.index_put_((y.cpu(), top[:, 0].cpu()), torch.ones(len(y), dtype=torch.int64), accumulate=True)
    seconds = time.perf_counter() - start
    sums = all_sum(sums.to(rt.device), rt).cpu()
    confusion = all_sum(confusion.to(rt.device), rt).cpu()
    model.train(was_training)
    n = max(sums[3].item(), 1.0)
    return EvalResult(
        loss=sums[0].item() / n,
        top1=sums[1].item() / n,
        top5=sums[2].item() / n,
        images=int(sums[3].item()),
        seconds=seconds,
        confusion=confusion,
        skipped=all_gather_strings(skipped, rt),
    )
