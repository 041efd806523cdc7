"""Shared by the paper's tables and figures: result files, CPU latency, parameter conventions."""

import csv
import logging
import os
import statistics
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from mobilenetv2.atomic import atomic_path
from mobilenetv2.utils import cpu_name, torch_threads

log = logging.getLogger(__name__)


def markdown_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join("" if v is None else str(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def write_csv(path: Path, headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    with atomic_path(path) as tmp, tmp.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(headers)
        writer.writerows(rows)


def machine() -> str:
    """The CPU model (as lscpu names it) and its core count."""
    return f"{cpu_name()} ({os.cpu_count()} cores)"


def load_average() -> float:
    return round(os.getloadavg()[0], 2) if hasattr(os, "getloadavg") else float("nan")


@dataclass(frozen=True)
class Latency:
    median_ms: float
    min_ms: float


@torch.inference_mode()
def measure_latency(model: nn.Module, resolution: int, *, repeats: int, warmup: int = 2, threads: int = 1) -> Latency:
    """Wall time of one batch-1 fp32 forward pass at `resolution` on `threads` intra-op threads.

    One thread by default, like the paper's single large phone core (and less disturbed on a shared machine).
    """
    with torch_threads(threads):
        x = torch.randn(1, 3, resolution, resolution)
        for _ in range(warmup):
            model(x)
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            model(x)
            times.append((time.perf_counter() - start) * 1000)
    return Latency(round(statistics.median(times), 2), round(min(times), 2))


def fast_path(model: nn.Module) -> nn.Module | None:
    """The project's fast inference path (BN folded, channels_last) where it supports the model, else None."""
    try:
        from mobilenetv2.infer import for_inference
    except ImportError:
        try:
            from mobilenetv2.infer.fast import for_inference
        except ImportError:
            return None
    try:
        return for_inference(model, splits=1)
    except ValueError:
        return None


def slim_checkpoint_variables(model: nn.Module, num_classes: int = 1001) -> int:
    """Parameters the way a TF-slim checkpoint counts them: conv weights and biases, three variables per
    BatchNorm channel (beta, moving mean, moving variance; no gamma) and a `num_classes` logits layer."""
    total = 0
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            total += m.weight.numel() + (m.bias.numel() if m.bias is not None else 0)
        elif isinstance(m, nn.BatchNorm2d):
            total += 3 * m.num_features
        elif isinstance(m, nn.Linear):
            total += (m.in_features + (m.bias is not None)) * num_classes
    return total


def params_without_bn(model: nn.Module) -> int:
    """Module parameters with every BatchNorm's gamma/beta left out (the TF-slim MobileNetV2 README's count)."""
    skip = {id(p) for m in model.modules() if isinstance(m, nn.BatchNorm2d) for p in m.parameters()}
    return sum(p.numel() for p in model.parameters() if id(p) not in skip)


def save_figure(fig: Any, path: Path) -> None:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110, bbox_inches="tight", format=path.suffix.lstrip(".") or "png")
    log.info("wrote %s", path)
