"""Activation memory as actually used: the peak of live tensor bytes during one forward pass (Sec. 5.1).

`LiveBytes` is a TorchDispatchMode that sees every tensor an op returns, counts each new storage once, and
uncounts it when the storage is freed (a weakref finalizer on the storage). Parameters, buffers and the
caller's input are never counted; neither are a kernel's private scratch buffers. The figure is therefore
the same whatever allocator runs underneath. Per-op peaks come from forward hooks that name the op running
(for a for_inference model: its `on_op` callback, called before each of its ops).

`benchmark_memory` measures torchvision's eager `mobilenet_v2` and our fast path for splits 1..t this way at
batch 1, and (optionally) the process peak RSS of a large input in fresh subprocesses.
"""

import json
import logging
import subprocess
import sys
import weakref
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves

from mobilenetv2.atomic import atomic_path, write_text_atomic

log = logging.getLogger(__name__)


class LiveBytes(TorchDispatchMode):
    """Tracks bytes of tensor storages created while active and still alive; `peak` and per-op `op_peaks`."""

    def __init__(self, *, ignore: list[torch.Tensor]) -> None:
        super().__init__()
        self.ignored = {t.untyped_storage().data_ptr() for t in ignore}
        self.live: dict[int, int] = {}
        self.current = self.peak = self.largest = 0  # largest: the biggest single storage seen
        self.op = "input"
        self.op_peaks: dict[str, int] = {}

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for leaf in tree_leaves(out):
            if isinstance(leaf, torch.Tensor) and leaf.device.type != "meta" and not leaf.is_mkldnn:
                self.track(leaf)
        return out

    def track(self, tensor: torch.Tensor) -> None:
        storage = tensor.untyped_storage()
        key = storage.data_ptr()
        if key in self.live or key in self.ignored or storage.nbytes() == 0:
            return  # a view, an in-place result, or a parameter
        self.live[key] = storage.nbytes()
        self.current += storage.nbytes()
        weakref.finalize(storage, self.release, key)
        self.peak = max(self.peak, self.current)
        self.largest = max(self.largest, storage.nbytes())
        self.op_peaks[self.op] = max(self.op_peaks.get(self.op, 0), self.current)

    def release(self, key: int) -> None:
        self.current -= self.live.pop(key, 0)

    def enter_op(self, name: str) -> None:
        self.op = name
        self.op_peaks[name] = max(self.op_peaks.get(name, 0), self.current)


def measure_forward(model: nn.Module, x: torch.Tensor, ops: list[tuple[str, nn.Module]] = ()) -> dict[str, Any]:
    """Peak live activation bytes of `model(x)`, overall and per named op (each op's input counts in it). `ops`
    are (name, module) pairs whose calls name the op running; a for_inference model names its own ops."""
    from mobilenetv2.infer.fast import FastMobileNetV2

    with torch.inference_mode():
        model(x)  # first call: a fast model packs its weights for this input shape (kept; not activations)
    fast = isinstance(model, FastMobileNetV2)
    weights = model.plan.tensors() if fast else [*model.parameters(), *model.buffers()]
    tracker = LiveBytes(ignore=[x, *weights])
    handles = [module.register_forward_pre_hook(lambda m, a, n=name: tracker.enter_op(n)) for name, module in ops]
    try:
        with torch.inference_mode(), tracker:
            out = model(x, on_op=tracker.enter_op) if fast else model(x)
        del out
    finally:
        for handle in handles:
            handle.remove()
    return {
        "peak_bytes": tracker.peak,
        "largest_tensor_bytes": tracker.largest,
        "per_op": tracker.op_peaks,
        "left_alive_bytes": tracker.current,
    }


def torchvision_ops(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """torchvision's mobilenet_v2 units under the same op names (its stem and first block form one op)."""
    feats = model.features
    names = ["stem+blocks.0", "stem+blocks.0", *[f"blocks.{i}" for i in range(1, len(feats) - 2)], "head+pool"]
    return [*zip(names, feats, strict=True), ("classifier", model.classifier)]


def measure_splits(model: nn.Module, resolution: int, max_splits: int) -> dict[int, dict[str, Any]]:
    from mobilenetv2.analysis import profile
    from mobilenetv2.infer import for_inference

    x = torch.randn(1, 3, resolution, resolution)
    results = {}
    for t in range(1, max_splits + 1):
        fast = for_inference(model, splits=t, engine="eager")  # per-op calls, so every storage is seen
        result = measure_forward(fast, x)
        result["op_splits"] = dict(zip(fast.op_names(), fast.op_splits(), strict=True))
        result["predicted_peak_bytes"] = profile(model, resolution, splits=t).memory.predicted_peak_bytes
        results[t] = result
    return results


def benchmark_memory(
    *,
    model_name: str = "mobilenet_v2_100",
    resolution: int = 224,
    max_splits: int = 5,
    out_dir: str | Path | None = None,
    rss_resolution: int | None = None,
) -> dict[str, Any]:
    """Measured peak activation bytes (fp32, batch 1) of torchvision's eager mobilenet_v2 and of our fast path
    with splits 1..max_splits; with `rss_resolution`, also each path's process peak RSS on that input size."""
    import torchvision

    from mobilenetv2.models import MobileNetV2
    from mobilenetv2.registry import create_model

    torch.manual_seed(0)
    model = create_model(model_name).eval()
    if not isinstance(model, MobileNetV2):
        raise ValueError(f"bench --memory measures MobileNetV2 variants; {model_name} is {type(model).__name__}")
    width = model.width
    reference = torchvision.models.mobilenet_v2(width_mult=width).eval()
    x = torch.randn(1, 3, resolution, resolution)
    result: dict[str, Any] = {
        "model": model_name,
        "resolution": resolution,
        "batch": 1,
        "dtype": "float32",
        "input_bytes": x.numel() * x.element_size(),
        "counted": "bytes of tensor storages allocated during the forward and alive at once; the caller's "
        "input, parameters and kernel-internal scratch excluded",
        "torchvision_eager": measure_forward(reference, x, torchvision_ops(reference)),
        "splits": {str(t): r for t, r in measure_splits(model, resolution, max_splits).items()},
    }
    reference_peak = result["torchvision_eager"]["peak_bytes"]
    for r in result["splits"].values():
        r["ratio_to_torchvision"] = round(r["peak_bytes"] / reference_peak, 4)
    if rss_resolution:
        result["rss"] = measure_rss(model_name, rss_resolution, max_splits)
    if out_dir is not None:
        write_outputs(result, Path(out_dir))
    return result


def measure_rss(model_name: str, resolution: int, splits: int) -> dict[str, Any]:
    """Peak RSS increase of one forward on a (1, 3, R, R) input, each path in a fresh process (Linux)."""
    runs = {}
    from mobilenetv2.infer.graph import graph_available

    cases = [("torchvision_eager", 1, "torchvision_eager")]
    if graph_available():  # the default engine: oneDNN Graph (at t > 1 for the whole ops after the split ones)
        cases += [("fast", t, f"fast_splits_{t}") for t in sorted({1, splits})]
    cases += [("fast-eager", t, f"fast_eager_splits_{t}") for t in sorted({1, 2, splits})]
    for path, t, key in cases:
        log.info("peak RSS: %s splits=%d at %dx%d", path, t, resolution, resolution)
        runs[key] = run_rss_child("mobilenetv2.bench.memory", [model_name, str(resolution), path, str(t)])
    return {"resolution": resolution, "runs": runs}


def run_rss_child(module: str, args: list[str]) -> dict[str, Any]:
    """`python -m module *args` in a fresh process (a process's RSS high-water mark only grows, so each path
    needs its own); the JSON object the child prints last."""
    done = subprocess.run([sys.executable, "-m", module, *args], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"RSS child failed: {done.stderr.strip().splitlines()[-1:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def _status_kib(field: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"{field} missing from /proc/self/status")


def rss_child(model_name: str, resolution: int, path: str, splits: int) -> dict[str, int]:
    """Run in a fresh process: set everything up (weights, input, a small warm-up), then one big forward.

    The peak is the kernel's high-water mark of this process's RSS (VmHWM), reset just before the forward
    (`/proc/self/clear_refs`), less the RSS after the setup. The graph engine ("fast") first runs twice at full
    size, which is when it compiles for that shape, then the heap is trimmed; whatever it keeps from those
    calls (compiled partitions, cached buffers) counts, since it is part of what running at that size costs.
    ru_maxrss is not used: Linux keeps it across exec, so a child starts with its parent's peak."""
    import torchvision

    from mobilenetv2.infer import for_inference
    from mobilenetv2.registry import create_model

    model = create_model(model_name).eval()
    if path == "torchvision_eager":
        run = torchvision.models.mobilenet_v2(width_mult=model.width).eval()
    else:
        run = for_inference(model, splits=splits, engine="eager" if path == "fast-eager" else "auto")
    x = torch.randn(1, 3, resolution, resolution)
    # The graph engine compiles per input shape, over its first two calls.
    return peak_rss_increase(run, x, compile_calls=2 if path == "fast" else 0)


def peak_rss_increase(run, x: torch.Tensor, *, compile_calls: int = 0) -> dict[str, int]:
    """The process's peak RSS increase over one `run(x)` (VmHWM reset just before it), after a 64x64 warm-up
    and `compile_calls` full-size calls whose leftovers count (the freed heap is trimmed first)."""
    from mobilenetv2.allocator import trim_heap

    with torch.inference_mode():
        run(torch.randn(1, 3, 64, 64))
        before = _status_kib("VmRSS")
        for _ in range(compile_calls):
            run(x)
        if compile_calls:
            # Profiling and compiling leave ~250 MB of freed heap behind at 2048x2048: hand it back, as a
            # server would once after compiling its shapes.
            trim_heap()
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")  # resets VmHWM to the current RSS
        kept = _status_kib("VmRSS") - before
        run(x)
        peak = _status_kib("VmHWM")
    return {
        "rss_before_kib": before,
        "kept_from_warmup_kib": kept,
        "peak_rss_kib": peak,
        "peak_increase_bytes": (peak - before) * 1024,
    }


def write_outputs(result: dict[str, Any], out_dir: Path) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    write_text_atomic(out_dir / "memory.json", json.dumps(result, indent=1))
    plot_memory(result, out_dir / "memory.png")
    log.info("wrote %s and %s", out_dir / "memory.json", out_dir / "memory.png")


def plot_memory(result: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    reference = result["torchvision_eager"]["per_op"]
    names = [n for n in result["splits"]["1"]["per_op"] if n != "input"]
    fig, ax = plt.subplots(figsize=(10, 4.5))
    ax.plot(names, [reference.get(n, 0) / 1e6 for n in names], "k-o", label="torchvision eager", markersize=3)
    for t, r in result["splits"].items():
        ax.plot(names, [r["per_op"].get(n, 0) / 1e6 for n in names], "-o", markersize=3, label=f"splits={t}")
    ax.set_ylabel("peak live activations (MB)")
    ax.set_title(f"{result['model']} {result['resolution']}x{result['resolution']} fp32, batch 1: peak per op")
    ax.tick_params(axis="x", labelrotation=60, labelsize=7)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=120, format="png")
    plt.close(fig)


if __name__ == "__main__":
    name, res, which, t = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4])
    print(json.dumps(rss_child(name, res, which, t)))
