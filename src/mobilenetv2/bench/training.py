"""Training throughput: the project's training step against a plain torchvision MobileNetV2 + SGD loop.

Both train MobileNetV2 1.0 on the same random batch (B, 3, R, R), channels_last, in the same process.
Blocks of `steps` steps alternate (baseline, ours, baseline, ours, ...) so load changes on a shared machine hit
both alike; the reported figure is each side's median block. The baseline is fp32 eager; ours is what
`mobilenetv2 train` runs: our model, the paper recipe's TF RMSProp with its weight-decay groups, autocast at
the resolved precision, and torch.compile when asked.
"""

import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn

from mobilenetv2.bench.machine import cpu_name
from mobilenetv2.train.config import TrainConfig, resolve
from mobilenetv2.train.optim import build_optimizer
from mobilenetv2.train.records import write_json
from mobilenetv2.train.runtime import pick_device, resolve_precision
from mobilenetv2.train.step import TrainStep


def _baseline(device: torch.device) -> Callable[[torch.Tensor, torch.Tensor], None]:
    import torchvision

    model = torchvision.models.mobilenet_v2().to(device, memory_format=torch.channels_last).train()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.045, momentum=0.9, weight_decay=4e-5)
    criterion = nn.CrossEntropyLoss()

    def step(x: torch.Tensor, y: torch.Tensor) -> None:
        loss = criterion(model(x), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    return step


def _ours(device: torch.device, precision: str, compile: bool) -> Callable[[torch.Tensor, torch.Tensor], None]:
    from mobilenetv2.registry import create_model

    cfg = resolve(TrainConfig(recipe="paper", dataset="synthetic"))
    model = create_model("mobilenet_v2_100").to(device, memory_format=torch.channels_last).train()
    step = TrainStep(model, build_optimizer(model, cfg), device=device, precision=precision, compile=compile)
    return lambda x, y: step(x, y)


def _block(step: Callable, x: torch.Tensor, y: torch.Tensor, steps: int, device: torch.device) -> float:
    """Images per second over `steps` steps."""
    start = time.perf_counter()
    for _ in range(steps):
        step(x, y)
    if device.type == "cuda":
        torch.cuda.synchronize()
    return steps * len(x) / (time.perf_counter() - start)


def benchmark_training(
    *,
    batch_size: int = 32,
    resolution: int = 224,
    steps: int = 5,
    warmup: int = 2,
    rounds: int = 3,
    precision: str = "auto",
    compile: bool = False,
    device: str = "auto",
    out_dir: str | Path | None = None,
) -> dict[str, Any]:
    """Median img/s of both loops and their ratio (writes training_benchmark.json to `out_dir`)."""
    if min(batch_size, resolution, steps, rounds) < 1 or warmup < 0:
        raise ValueError("batch_size, resolution, steps and rounds must be >= 1, warmup >= 0")
    dev = pick_device(device)
    prec = resolve_precision(precision, dev)
    torch.manual_seed(0)
    x = torch.randn(batch_size, 3, resolution, resolution, device=dev).contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, 1000, (batch_size,), device=dev)
    loops = {"baseline": _baseline(dev), "ours": _ours(dev, prec, compile)}
    for step in loops.values():
        for _ in range(warmup):
            step(x, y)
    blocks: dict[str, list[float]] = {name: [] for name in loops}
    for _ in range(rounds):
        for name, step in loops.items():
            blocks[name].append(_block(step, x, y, steps, dev))
    base, ours = statistics.median(blocks["baseline"]), statistics.median(blocks["ours"])
    result = {
        "baseline_images_per_second": base,
        "ours_images_per_second": ours,
        "speedup": ours / base,
        "blocks": blocks,
        "baseline": "torchvision mobilenet_v2 + SGD(momentum 0.9), channels_last, fp32, eager",
        "ours": f"mobilenetv2 TrainStep + TF RMSProp (paper recipe), channels_last, {prec}"
        + (", torch.compile" if compile else ", eager"),
        "batch_size": batch_size,
        "resolution": resolution,
        "steps_per_block": steps,
        "rounds": rounds,
        "device": str(dev) if dev.type != "cpu" else f"cpu: {cpu_name()}",
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
    }
    if out_dir is not None:
        Path(out_dir).mkdir(parents=True, exist_ok=True)
        write_json(Path(out_dir) / "training_benchmark.json", result)
    return result
