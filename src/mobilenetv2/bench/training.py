"""Training throughput: the project's training step against a plain torchvision MobileNetV2 + SGD loop.

Each loop runs in its own worker process, set up the way its user would run it: "baseline" is torchvision's
`mobilenet_v2` + SGD(momentum 0.9), channels_last, fp32, eager, in a process as Python starts it;
"baseline-reuse" is the same loop with malloc keeping freed memory (see allocator.py), to show what that one
process setting gives any loop; "ours" is what `mobilenetv2 train` runs: our model, the paper recipe's TF
RMSProp with its weight-decay groups, autocast at the resolved precision, torch.compile when asked, malloc
reuse as `train` sets it. All train MobileNetV2 1.0 on the same random batch (B, 3, R, R). Blocks of `steps`
steps alternate between the workers (one runs while the others wait), so load changes on a shared machine hit
every loop alike; the reported figure is each loop's median block.
"""

import multiprocessing as mp
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn

from mobilenetv2.utils import cpu_name, write_json

LOOPS = ("baseline", "baseline-reuse", "ours")
DESCRIPTIONS = {
    "baseline": "torchvision mobilenet_v2 + SGD(momentum 0.9), channels_last, fp32, eager, default malloc",
    "baseline-reuse": "the baseline with malloc keeping freed memory (mobilenetv2.allocator)",
}


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
    from mobilenetv2.train.config import TrainConfig, resolve
    from mobilenetv2.train.optim import build_optimizer
    from mobilenetv2.train.step import TrainStep

    cfg = resolve(TrainConfig(recipe="paper", dataset="synthetic"))
    model = create_model("mobilenet_v2_100").to(device, memory_format=torch.channels_last).train()
    step = TrainStep(model, build_optimizer(model, cfg), device=device, precision=precision, compile=compile)
    return lambda x, y: step(x, y)


def _worker(conn, loop: str, setup: dict[str, Any]) -> None:
    """Build `loop`, warm it up, then run a block of steps per request; answers img/s ("stop" ends it)."""
    from mobilenetv2.allocator import reuse_freed_memory
    from mobilenetv2.train.runtime import pick_device

    try:
        torch.set_num_threads(setup["threads"])
        device = pick_device(setup["device"])
        if loop != "baseline" and device.type == "cpu":
            reuse_freed_memory()  # what `mobilenetv2 train` does on CPU
        torch.manual_seed(0)
        b, r = setup["batch_size"], setup["resolution"]
        x = torch.randn(b, 3, r, r, device=device).contiguous(memory_format=torch.channels_last)
        y = torch.randint(0, 1000, (b,), device=device)
        step = _ours(device, setup["precision"], setup["compile"]) if loop == "ours" else _baseline(device)
        for _ in range(setup["warmup"]):
            step(x, y)
        conn.send("ready")
        while conn.recv() == "block":
            start = time.perf_counter()
            for _ in range(setup["steps"]):
                step(x, y)
            if device.type == "cuda":
                torch.cuda.synchronize()
            conn.send(setup["steps"] * b / (time.perf_counter() - start))
    except Exception as exc:  # reported by the parent as one line
        conn.send(f"error: {type(exc).__name__}: {exc}")


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
    threads: int | None = None,
    out_dir: str | Path | None = None,
) -> dict[str, Any]:
    """Median img/s of each loop and the ratios (writes training_benchmark.json to `out_dir`)."""
    from mobilenetv2.errors import UserError
    from mobilenetv2.train.runtime import pick_device, resolve_precision

    if min(batch_size, resolution, steps, rounds) < 1 or warmup < 0:
        raise ValueError("batch_size, resolution, steps and rounds must be >= 1, warmup >= 0")
    dev = pick_device(device)
    setup = {
        "batch_size": batch_size,
        "resolution": resolution,
        "steps": steps,
        "warmup": warmup,
        "precision": resolve_precision(precision, dev),
        "compile": compile,
        "device": str(dev),
        "threads": threads or torch.get_num_threads(),
    }
    ctx = mp.get_context("spawn")
    workers = {}
    try:
        for loop in LOOPS:  # one at a time, so warm-ups do not overlap
            parent, child = ctx.Pipe()
            proc = ctx.Process(target=_worker, args=(child, loop, setup), daemon=True)
            proc.start()
            workers[loop] = (proc, parent)
            _answer(loop, parent.recv(), UserError)
        blocks: dict[str, list[float]] = {loop: [] for loop in LOOPS}
        for r in range(rounds):
            order = LOOPS[r % len(LOOPS) :] + LOOPS[: r % len(LOOPS)]
            for loop in order:
                workers[loop][1].send("block")
                blocks[loop].append(_answer(loop, workers[loop][1].recv(), UserError))
    finally:
        for proc, conn in workers.values():
            if proc.is_alive():
                conn.send("stop")
            proc.join(timeout=30)
            if proc.is_alive():
                proc.kill()
    median = {loop: statistics.median(v) for loop, v in blocks.items()}
    result = {
        "baseline_images_per_second": median["baseline"],
        "baseline_reuse_images_per_second": median["baseline-reuse"],
        "ours_images_per_second": median["ours"],
        "speedup": median["ours"] / median["baseline"],
        "speedup_vs_baseline_reuse": median["ours"] / median["baseline-reuse"],
        "blocks": blocks,
        **{k.replace("-", "_"): v for k, v in DESCRIPTIONS.items()},
        "ours": f"mobilenetv2 TrainStep + TF RMSProp (paper recipe), channels_last, {setup['precision']}"
        + (", torch.compile" if compile else ", eager")
        + (", malloc reuse (as `mobilenetv2 train` on CPU)" if dev.type == "cpu" else ""),
        "batch_size": batch_size,
        "resolution": resolution,
        "steps_per_block": steps,
        "rounds": rounds,
        "device": str(dev) if dev.type != "cpu" else f"cpu: {cpu_name()}",
        "threads": setup["threads"],
        "torch": torch.__version__,
    }
    if out_dir is not None:
        Path(out_dir).mkdir(parents=True, exist_ok=True)
        write_json(Path(out_dir) / "training_benchmark.json", result)
    return result


def _answer(loop: str, message: object, error: type[Exception]) -> Any:
    if isinstance(message, str) and message.startswith("error:"):
        raise error(f"bench --train: the {loop} loop failed ({message[7:]})")
    return message
