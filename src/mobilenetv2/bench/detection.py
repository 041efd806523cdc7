"""`bench --model ssdlite_mobilenet_v2`: every detector path side by side with torchvision's SSDLite.

Paths (each ends in final detections, NMS included, except the `-raw` rows): eager PyTorch (`model(x)`),
`for_inference(model)` (`fast`: the backbone planned and BN-folded on the default engine, the head folded;
`fast-eager`: the per-op engine), both channels_last,
ONNX Runtime and OpenVINO running our exported graph with NMS in it (`--nms` export; the per-image top-k of the
selection is a few numpy lines, timed too), and the same graphs without NMS (`-raw`: decoded boxes + scores).
Peer: torchvision's `ssdlite320_mobilenet_v3_large` (weights=None), eager and exported to ONNX as torchvision
exports it (its own postprocess traced). Multiply-adds of convolutions and linear layers are counted for both
with forward hooks at the benchmark resolution.
"""

import logging
import warnings
from pathlib import Path

import numpy as np
import torch
from torch import nn

from mobilenetv2.bench.latency import machine, stats, time_paths
from mobilenetv2.bench.paths import BenchPath, openvino_run, ort_run, temporary_workdir, torch_run

log = logging.getLogger(__name__)
PATHS = (
    "eager",
    "fast",
    "fast-eager",
    "onnxruntime",
    "openvino",
    "onnxruntime-raw",
    "openvino-raw",
    "torchvision",
    "torchvision-onnxruntime",
)


def conv_macs(model: nn.Module, input_size: tuple[int, int]) -> int:
    """Multiply-adds of every Conv2d and Linear for one (1, 3, H, W) input, from the shapes they see."""
    total = 0

    def hook(module: nn.Module, args, output) -> None:
        nonlocal total
        if isinstance(module, nn.Conv2d):
            kh, kw = module.kernel_size
            total += output.numel() * (module.in_channels // module.groups) * kh * kw
        else:
            total += output.numel() * module.in_features

    hooks = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, nn.Conv2d | nn.Linear)]
    try:
        with torch.inference_mode():
            model.eval()(torch.zeros(1, 3, *input_size))
    finally:
        for h in hooks:
            h.remove()
    return total


def torchvision_ssdlite() -> nn.Module:
    """torchvision's SSDLite (it resizes every image to 320x320 inside, as its weights expect)."""
    from torchvision.models.detection import ssdlite320_mobilenet_v3_large

    return ssdlite320_mobilenet_v3_large(weights=None, weights_backbone=None).eval()


def torchvision_onnx(model: nn.Module, input_size: tuple[int, int], path: Path) -> Path:
    """torchvision's detector as torchvision's ONNX tests export it (opset 11+, a list of images in)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            model,
            ([torch.rand(3, *input_size)],),
            str(path),
            dynamo=False,
            opset_version=18,
            input_names=["images"],
            output_names=["boxes", "scores", "labels"],
        )
    return path


def _select(outputs, max_detections: int):
    from mobilenetv2.export.detection import detections_from_selected

    boxes, scores, selected = outputs[:3]
    return detections_from_selected(np.asarray(boxes), np.asarray(scores), np.asarray(selected), max_detections)


def build(model: nn.Module, input_size: tuple[int, int], names: list[str], threads: int, workdir: Path):
    from mobilenetv2.export import export_model

    built: list[BenchPath] = []
    cap = model.postprocessing.max_detections

    def add(name, group, runtime, make):
        if name in names:
            try:
                built.append(BenchPath(name, group, runtime, "fp32", make()))
            except Exception as exc:  # a path that cannot be built is left out, with the reason
                log.warning("bench: %s left out (%s: %s)", name, type(exc).__name__, str(exc).splitlines()[0])

    def exported(fmt: str, nms: bool) -> Path:
        path = workdir / f"det{'-nms' if nms else ''}{'.onnx' if fmt == 'onnx' else '.xml'}"
        return path if path.exists() else export_model(model, path, format=fmt, input_size=input_size, nms=nms).path

    def ov_outputs(path: Path):
        from mobilenetv2.export.openvino import compile_openvino

        request = compile_openvino(path, threads=threads).create_infer_request()
        return lambda x: [v for v in request.infer([x]).values()]

    def with_selection(run):  # the graph's NMS rows -> each image's best `cap` detections, as users would
        return lambda x: _select(run(x), cap)

    def fast(engine: str):
        from mobilenetv2.infer import for_inference

        return torch_run(for_inference(model, engine=engine), channels_last=True)

    from mobilenetv2.infer.graph import graph_available

    add("eager", "project", "pytorch", lambda: torch_run(model))
    add("fast", "project", "pytorch-onednn-graph" if graph_available() else "pytorch", lambda: fast("auto"))
    add("fast-eager", "project", "pytorch", lambda: fast("eager"))
    add("onnxruntime", "project", "onnxruntime", lambda: with_selection(ort_run(exported("onnx", True), threads)))
    add("openvino", "project", "openvino", lambda: with_selection(ov_outputs(exported("openvino", True))))
    add("onnxruntime-raw", "project", "onnxruntime", lambda: ort_run(exported("onnx", False), threads))
    add("openvino-raw", "project", "openvino", lambda: openvino_run(exported("openvino", False), threads))
    peer = torchvision_ssdlite()
    add("torchvision", "peer", "pytorch", lambda: lambda x: peer(list(torch.from_numpy(x))))
    tv_path = workdir / "torchvision_ssdlite.onnx"

    def tv_ort():
        from mobilenetv2.export.onnx import ort_session

        session = ort_session(torchvision_onnx(peer, input_size, tv_path), threads=threads)
        return lambda x: [session.run(None, {"images": img}) for img in x]

    add("torchvision-onnxruntime", "peer", "onnxruntime", tv_ort)
    return built, peer


def benchmark_detection(
    *,
    model: nn.Module,
    model_label: str,
    resolution: tuple[int, int],
    batch_size: int,
    paths: list[str] | None,
    threads: int,
    warmup: int,
    rounds: int,
    block: int,
) -> dict:
    """Batch-1 latency and batch-`batch_size` throughput of every detector path (same dict shape as the
    classifier bench, plus the multiply-adds of both networks)."""
    names = [p for p in (paths or PATHS) if p in PATHS]
    torch.set_num_threads(threads)
    model = model.eval()
    rng = np.random.default_rng(0)
    with temporary_workdir() as tmp:
        built, peer = build(model, resolution, names, threads, Path(tmp))
        timings = {}
        for label, batch in (("latency", 1), ("throughput", batch_size)):
            x = rng.standard_normal((batch, 3, *resolution)).astype(np.float32)
            timings[label] = time_paths(built, x, warmup=warmup, rounds=rounds, block=block, desc=f"{label} b{batch}")
    macs = {"project": conv_macs(model, resolution), "peer": conv_macs(peer, (320, 320))}
    rows = []
    for p in built:
        row = {"name": p.name, "group": p.group, "runtime": p.runtime, "precision": p.precision, "macs": macs[p.group]}
        row["latency"] = stats(timings["latency"][p.name], 1)
        row["throughput"] = stats(timings["throughput"][p.name], batch_size)
        rows.append(row)
    return {
        "model": model_label,
        "resolution": list(resolution),
        "batch_size": batch_size,
        "timing": {"warmup": warmup, "rounds": rounds, "block": block},
        "machine": machine(),
        "macs": macs,
        "rows": rows,
    }


def format_detection_table(result: dict) -> str:
    lines = [
        f"{result['model']} at {result['resolution'][0]}x{result['resolution'][1]} "
        f"vs torchvision ssdlite320_mobilenet_v3_large (MACs: ours {result['macs']['project'] / 1e6:.0f}M, "
        f"torchvision {result['macs']['peer'] / 1e6:.0f}M)",
        f"| path | group | runtime | MACs | batch-1 latency ms (median) | batch-{result['batch_size']} images/s |",
        "|---|---|---|---|---|---|",
    ]
    for r in result["rows"]:
        lines.append(
            f"| {r['name']} | {r['group']} | {r['runtime']} | {r['macs'] / 1e6:.0f}M | "
            f"{r['latency']['median_ms']:.1f} | {r['throughput']['images_per_second']:.1f} |"
        )
    return "\n".join(lines)
