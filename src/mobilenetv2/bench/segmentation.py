"""`mobilenetv2 bench --model deeplabv3_mobilenet_v2`: batch-1 latency of our segmenter against torchvision's
MobileNetV3 segmenters (LR-ASPP and DeepLabv3, random weights), eager PyTorch and onnxruntime, with parameters
and multiply-adds (convolutions only, counted by hooks on the same input) in the table.

Timing as the classification bench (latency.py): warm-up calls, then interleaved blocks of timed calls.
`bench --memory` reports both the peak of live tensor storages (memory.py's `LiveBytes`) and each path's process
peak RSS, the latter in a fresh process per path (memory.py's `peak_rss_increase`).
"""

import copy
import json
import logging
import sys
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
    rss: bool = True,
    out_dir: str | Path | None = None,
) -> dict:
    """Peak live activation bytes (fp32, batch 1, every tensor storage counted as `bench --memory` counts
    them) of our segmenter under for_inference(splits=1..max_splits) and of torchvision's MobileNetV3
    segmenters (eager), all at `resolution` (H, W); our outputs are checked against the plain model. With
    `rss`, each row also gets `peak_rss_increase_bytes`, measured in a fresh process (see `rss_child`). The
    `labels` rows run `output="labels"` (the argmax at the input size without the full-size logits) at
    splits 1 and `max_splits`, checked against the argmax of the plain model's logits."""
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
    # output="labels": the argmax at the input size, band by band, never the full-size logits (segmentation.labels)
    labeller = copy.deepcopy(ours)
    labeller.output = "labels"
    result["labels"] = {}
    expected = reference.argmax(dim=1)
    for t in sorted({1, max_splits}):
        fast = for_inference(labeller, splits=t, engine="eager")
        with torch.inference_mode():
            agreement = float((fast(x).long() == expected).float().mean())
        result["labels"][str(t)] = {**measure_forward(fast, x), "label_agreement": agreement}
    for row in (*result["splits"].values(), *result["labels"].values()):
        row.pop("per_op", None)
        for peer, measured in result["peers"].items():
            row[f"ratio_to_{peer}"] = round(row["peak_bytes"] / measured["peak_bytes"], 4)
    for measured in (*result["peers"].values(), result["ours_eager"]):
        measured.pop("per_op", None)
    if rss:
        rows = {**{p: result["peers"][p] for p in PEERS}, "eager": result["ours_eager"]}
        rows |= {f"splits_{t}": row for t, row in result["splits"].items()}
        rows |= {f"labels_{t}": row for t, row in result["labels"].items()}
        for path, row in rows.items():
            row["peak_rss_increase_bytes"] = measure_rss(model_name, options, resolution, path)
    if out_dir:
        from mobilenetv2.train.records import write_json

        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        write_json(out / "memory.json", result)
        (out / "memory.md").write_text(format_segmentation_memory(result) + "\n")
    return result


def measure_rss(model_name: str, options: dict, resolution: tuple[int, int], path: str) -> int:
    """Peak RSS increase (bytes) of one forward of `path` (a peer's name, "eager" or "splits_<t>") at
    `resolution`, in a fresh process: a process's high-water mark only ever grows, so paths cannot share one."""
    from mobilenetv2.bench.memory import run_rss_child

    h, w = resolution
    log.info("peak RSS: %s at %dx%d", path, h, w)
    args = [model_name, json.dumps(options), f"{h}x{w}", path]
    return run_rss_child("mobilenetv2.bench.segmentation", args)["peak_increase_bytes"]


def rss_child(model_name: str, options: dict, resolution: tuple[int, int], path: str) -> dict[str, int]:
    """In a fresh process: build the path (weights from seed 0, as the parent), then measure one forward.

    glibc's mmap and trim thresholds are pinned at their initial 128 KiB (which also stops their adaptation):
    every large tensor is then an mmap returned to the OS when freed, so the RSS follows the live tensors.
    With the adaptive default, freed tensors may stay in the heap depending on the allocation history: the
    same split path measured 342-406 MB at 1024x2048 over three runs, against a stable 201 MB pinned."""
    from mobilenetv2.allocator import GLIBC_DEFAULT, set_thresholds
    from mobilenetv2.bench.memory import peak_rss_increase
    from mobilenetv2.infer import for_inference
    from mobilenetv2.registry import create_model

    set_thresholds(GLIBC_DEFAULT, GLIBC_DEFAULT)
    torch.manual_seed(0)
    ours = create_model(model_name, **options).eval()
    if path in PEERS:
        run = torchvision_segmenter(path, ours.num_classes)
    elif path == "eager":
        run = ours
    elif path.startswith("splits_"):
        run = for_inference(ours, splits=int(path.removeprefix("splits_")), engine="eager")
    elif path.startswith("labels_"):
        ours.output = "labels"
        run = for_inference(ours, splits=int(path.removeprefix("labels_")), engine="eager")
    else:
        raise ValueError(f"unknown RSS path {path!r}")
    return peak_rss_increase(run, torch.randn(1, 3, *resolution))


def format_segmentation_memory(result: dict) -> str:
    h, w = result["resolution"]
    lr, dl = (result["peers"][p] for p in PEERS)
    has_rss = "peak_rss_increase_bytes" in lr
    lines = [
        f"peak live activations (input and weights excluded){' and process peak RSS increase' if has_rss else ''} "
        f"at {h}x{w}, batch 1, fp32",
        "| path | peak MB | vs LR-ASPP | vs DeepLabv3-MNv3 |"
        + (" peak RSS MB | vs LR-ASPP | vs DeepLabv3-MNv3 |" if has_rss else "")
        + " max abs diff |",
        "|---|---|---|---|" + ("---|---|---|" if has_rss else "") + "---|",
    ]
    rows = [(f"torchvision {p}", m, None) for p, m in result["peers"].items()]
    rows.append(("ours eager", result["ours_eager"], None))
    rows += [(f"ours for_inference splits={t}", r, r["max_abs_diff"]) for t, r in result["splits"].items()]
    rows += [(f"ours labels, splits={t}", r, None) for t, r in result.get("labels", {}).items()]
    for name, row, diff in rows:
        cells = [f"{row['peak_bytes'] / 1e6:.1f}", *(f"{row['peak_bytes'] / p['peak_bytes']:.3f}" for p in (lr, dl))]
        if has_rss:
            rss = row["peak_rss_increase_bytes"]
            cells += [f"{rss / 1e6:.0f}", *(f"{rss / p['peak_rss_increase_bytes']:.3f}" for p in (lr, dl))]
        if "label_agreement" in row:
            cells.append(f"labels = argmax on {100 * row['label_agreement']:.2f}% of pixels")
        else:
            cells.append("-" if diff is None else f"{diff:.1e}")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


if __name__ == "__main__":
    name, options, size, which = sys.argv[1], json.loads(sys.argv[2]), sys.argv[3], sys.argv[4]
    h, w = (int(v) for v in size.split("x"))
    print(json.dumps(rss_child(name, options, (h, w), which)))
