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
