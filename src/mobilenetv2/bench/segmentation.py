"""`mobilenetv2 bench --model deeplabv3_mobilenet_v2`: batch-1 latency of our segmenter against torchvision's
MobileNetV3 segmenters (LR-ASPP and DeepLabv3, random weights), eager PyTorch and onnxruntime, with parameters
and multiply-adds (convolutions only, counted by hooks on the same input) in the table.

Timing as the classification bench (latency.py): warm-up calls, then interleaved blocks of timed calls.
"""

import logging
from pathlib import Path

import torch
from torch import nn

from mobilenetv2.bench.latency import machine, stats, time_paths
from mobilenetv2.bench.paths import BenchPath, ort_run, temporary_workdir, torch_run

log = logging.getLogger(__name__)

PEERS = ("lraspp_mobilenet_v3_large", "deeplabv3_mobilenet_v3_large")


class _Out(nn.Module):
    """torchvision's segmenters return {"out": logits}; benchmark and export the logits tensor."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)["out"]


def torchvision_segmenter(name: str, num_classes: int) -> nn.Module:
    import torchvision.models.segmentation as seg

    builder = getattr(seg, name)
    model = builder(weights=None, weights_backbone=None, num_classes=num_classes)
    if name.startswith("deeplabv3"):
        model.aux_classifier = None  # inference graph only
    return _Out(model).eval()


@torch.no_grad()
def conv_macs(model: nn.Module, x: torch.Tensor) -> int:
    from mobilenetv2.analysis.profile import conv_macs as one

    total = [0]
    hooks = [
        m.register_forward_hook(lambda m, _, out: total.__setitem__(0, total[0] + one(m, out)))
        for m in model.modules()
        if isinstance(m, nn.Conv2d)
    ]
    try:
        model(x)
    finally:
        for h in hooks:
            h.remove()
    return total[0]


def _onnx(model: nn.Module, path: Path, x: torch.Tensor) -> Path:
    torch.onnx.export(model, (x,), str(path), input_names=["input"], output_names=["logits"], dynamo=False)
    return path


def benchmark_segmentation(
    *,
    model_name: str,
    options: dict,
    resolution: tuple[int, int],
    threads: int = 2,
    warmup: int = 3,
    rounds: int = 5,
    block: int = 2,
    out_dir: str | Path | None = None,
) -> dict:
    from mobilenetv2.registry import create_model

    torch.set_num_threads(threads)
    ours = create_model(model_name, **options).eval()
    num_classes = ours.num_classes
    x = torch.zeros(1, 3, *resolution)
    models = {"ours": ours, **{p: torchvision_segmenter(p, num_classes) for p in PEERS}}
    info = {
        name: {"params": sum(p.numel() for p in m.parameters()), "macs": conv_macs(m, x)} for name, m in models.items()
    }
    paths, rows_meta = [], {}
    with temporary_workdir() as tmp:
        for name, model in models.items():
            label = model_name if name == "ours" else name
            onnx = _onnx(model, Path(tmp) / f"{name}.onnx", x)
            for runtime, run in (("pytorch", torch_run(model)), ("onnxruntime", ort_run(onnx, threads))):
                path = BenchPath(f"{label} {runtime}", "project" if name == "ours" else "peer", runtime, "fp32", run)
                paths.append(path)
                rows_meta[path.name] = (label, runtime, info[name])
        times = time_paths(paths, x.numpy(), warmup=warmup, rounds=rounds, block=block, desc="seg bench")
    rows = []
    for path in paths:
        label, runtime, counts = rows_meta[path.name]
        rows.append({"model": label, "runtime": runtime, **counts, **stats(times[path.name], 1)})
    result = {
        "resolution": list(resolution),
        "options": options,
        "num_classes": num_classes,
        "machine": machine(),
        "rows": rows,
    }
    if out_dir:
        from mobilenetv2.train.records import write_json

        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        write_json(out / "bench.json", result)
        (out / "bench.md").write_text(format_segmentation_table(result) + "\n")
    return result


def format_segmentation_table(result: dict) -> str:
    h, w = result["resolution"]
    load = result["machine"]["load_average"][0]
    lines = [
        f"batch-1 latency at {h}x{w}, {result['num_classes']} classes, random weights, fp32, "
        f"{result['machine']['threads']} threads, load average {load:.1f}",
        "| model | runtime | params | MAdds | median ms | p90 ms |",
        "|---|---|---|---|---|---|",
    ]
    for r in result["rows"]:
        lines.append(
            f"| {r['model']} | {r['runtime']} | {r['params'] / 1e6:.2f}M | {r['macs'] / 1e9:.2f}B | "
            f"{r['median_ms']:.1f} | {r['p90_ms']:.1f} |"
        )
    return "\n".join(lines)


def benchmark_segmentation_memory(
    *,
    model_name: str,
    options: dict,
    resolution: tuple[int, int],
    max_splits: int = 8,
    out_dir: str | Path | None = None,
) -> dict:
    """Peak live activation bytes (fp32, batch 1, every tensor storage counted as `bench --memory` counts
    them) of our segmenter under for_inference(splits=1..max_splits) and of torchvision's MobileNetV3
    segmenters (eager), all at `resolution` (H, W); our outputs are checked against the plain model."""
    from mobilenetv2.bench.memory import measure_forward
    from mobilenetv2.infer import for_inference
    from mobilenetv2.registry import create_model

    torch.manual_seed(0)
    ours = create_model(model_name, **options).eval()
    x = torch.randn(1, 3, *resolution)
    with torch.inference_mode():
        reference = ours(x)
    result: dict = {"model": model_name, "options": options, "resolution": list(resolution), "dtype": "float32"}
    result["peers"] = {p: measure_forward(torchvision_segmenter(p, ours.num_classes), x) for p in PEERS}
    result["ours_eager"] = measure_forward(ours, x)
    result["splits"] = {}
    for t in range(1, max_splits + 1):
        fast = for_inference(ours, splits=t, engine="eager")
        with torch.inference_mode():
            diff = float((fast(x) - reference).abs().max())
        result["splits"][str(t)] = {**measure_forward(fast, x), "max_abs_diff": diff}
    for row in result["splits"].values():
        row.pop("per_op", None)
        for peer, measured in result["peers"].items():
            row[f"ratio_to_{peer}"] = round(row["peak_bytes"] / measured["peak_bytes"], 4)
    for measured in (*result["peers"].values(), result["ours_eager"]):
        measured.pop("per_op", None)
    if out_dir:
        from mobilenetv2.train.records import write_json

        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        write_json(out / "memory.json", result)
        (out / "memory.md").write_text(format_segmentation_memory(result) + "\n")
    return result


def format_segmentation_memory(result: dict) -> str:
    h, w = result["resolution"]
    lines = [
        f"peak live activations at {h}x{w}, batch 1, fp32 (input and weights excluded)",
        "| path | peak MB | vs LR-ASPP | vs DeepLabv3-MNv3 | max abs diff |",
        "|---|---|---|---|---|",
    ]
    lr, dl = (result["peers"][p]["peak_bytes"] for p in PEERS)
    rows = [(f"torchvision {p}", m["peak_bytes"], None) for p, m in result["peers"].items()]
    rows.append(("ours eager", result["ours_eager"]["peak_bytes"], None))
    rows += [
        (f"ours for_inference splits={t}", r["peak_bytes"], r["max_abs_diff"]) for t, r in result["splits"].items()
    ]
    for name, peak, diff in rows:
        shown = "-" if diff is None else f"{diff:.1e}"
        lines.append(f"| {name} | {peak / 1e6:.1f} | {peak / lr:.3f} | {peak / dl:.3f} | {shown} |")
    return "\n".join(lines)
