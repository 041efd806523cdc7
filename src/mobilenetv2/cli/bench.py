"""`mobilenetv2 bench`: latency/throughput of every inference path (default), `--memory`, or `--train`."""

import argparse
from typing import Any

from mobilenetv2.cli._common import parse_resolution


def parse_splits(text: str) -> list[int]:
    try:
        values = [int(v) for v in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected integers like 2,3,4,5, got {text!r}") from None
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError(f"split counts must be >= 1, got {text!r}")
    return values


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("bench", help="latency/throughput table of every inference path; --memory; --train")
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--memory", action="store_true", help="peak activation memory per block, splits 1..t")
    mode.add_argument("--train", action="store_true", help="training step throughput")
    p.add_argument("--model", default="mobilenet_v2_100", help="registered model name (random init)")
    p.add_argument("--weights", help="a weights file of ours instead of --model")
    g = p.add_argument_group("segmentation models (vs torchvision's LR-ASPP / DeepLabv3 MobileNetV3)")
    g.add_argument("--aspp", action="store_true", default=None, help="DeepLab: with the ASPP branches")
    g.add_argument("--output-stride", type=int, choices=[8, 16], help="DeepLab output stride (default 16)")
    g.add_argument("--num-classes", type=int, help="segmentation classes with the background (default 21)")
    p.add_argument("--resolution", type=parse_resolution, default=(224, 224), help="N or HxW (default 224)")
    p.add_argument("--batch-size", type=int, help="throughput batch (default 8; --train: 32)")
    p.add_argument("--paths", help="comma-separated subset of the paths (default: all)")
    p.add_argument(
        "--splits",
        type=parse_splits,
        help="comma-separated t values of the split paths (default 2,3,4,5; --memory: the largest t, default 5)",
    )
    p.add_argument("--threads", type=int, default=2, help="threads every runtime gets (default 2)")
    p.add_argument("--warmup", type=int, help="untimed calls per path first (default 10; --train: 2 steps)")
    p.add_argument("--rounds", type=int, help="rounds of interleaved blocks (default 10; --train: 3)")
    p.add_argument("--block", type=int, default=5, help="timed calls per path per round")
    p.add_argument("--steps", type=int, default=5, help="--train: timed steps per round (default 5)")
    p.add_argument("--compile", action="store_true", help="--train: torch.compile our model")
    p.add_argument(
        "--reuse-memory",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="latency bench: malloc keeps freed memory for every path (default on; see allocator.py)",
    )
    p.add_argument(
        "--max-load",
        type=float,
        help="latency bench: after building the paths, wait (up to 30 min) for the 1-minute load average to fall "
        "to this before timing (a shared machine)",
    )
    p.add_argument("--rss", type=int, help="--memory: also each path's process peak RSS at this input size")
    p.add_argument("--out", help="write bench.json, bench.md and bench.png (or the --memory/--train outputs) here")
    p.set_defaults(func=run, out_folder=True)  # --out names a folder (checked in cli.main)


def _segmenter_options(args: argparse.Namespace) -> dict:
    """The segmenter's options the user gave (--aspp, --output-stride, --num-classes)."""
    given = {"aspp": args.aspp, "output_stride": args.output_stride, "num_classes": args.num_classes}
    return {k: v for k, v in given.items() if v is not None}


def run(args: argparse.Namespace) -> int:
    from mobilenetv2.errors import UserError

    if args.batch_size is not None and args.batch_size < 1:
        raise UserError(f"--batch-size must be >= 1, got {args.batch_size}")
    if args.memory and _is_segmenter(args.model):
        from mobilenetv2.bench.segmentation import benchmark_segmentation_memory, format_segmentation_memory

        result = benchmark_segmentation_memory(
            model_name=args.model,
            options=_segmenter_options(args),
            resolution=args.resolution,
            max_splits=max(args.splits or [8]),
            out_dir=args.out,
        )
        print(format_segmentation_memory(result))
        return 0
    if args.memory:
        from mobilenetv2.bench.memory import benchmark_memory

        result = benchmark_memory(
            model_name=args.model,
            resolution=args.resolution[0],
            max_splits=max(args.splits or [5]),
            out_dir=args.out,
            rss_resolution=args.rss,
        )
    elif args.train:
        from mobilenetv2.bench.training import benchmark_training

        result = benchmark_training(
            batch_size=args.batch_size or 32,
            resolution=args.resolution[0],
            steps=args.steps,
            rounds=3 if args.rounds is None else args.rounds,
            warmup=2 if args.warmup is None else args.warmup,
            compile=args.compile,
            threads=args.threads,
            out_dir=args.out,
        )
    elif _is_segmenter(args.model) and not args.weights:
        from mobilenetv2.bench.segmentation import benchmark_segmentation, format_segmentation_table

        result = benchmark_segmentation(
            model_name=args.model,
            options=_segmenter_options(args),
            resolution=args.resolution,
            threads=args.threads,
            warmup=3 if args.warmup is None else args.warmup,
            rounds=5 if args.rounds is None else args.rounds,
            block=args.block,
            out_dir=args.out,
        )
        print(format_segmentation_table(result))
        return 0
    elif _is_detector(args):
        import mobilenetv2
        from mobilenetv2.bench.detection import benchmark_detection, format_detection_table

        model = mobilenetv2.load(args.weights) if args.weights else mobilenetv2.create_model(args.model)
        result = benchmark_detection(
            model=model,
            model_label=args.weights or args.model,
            resolution=args.resolution,
            batch_size=args.batch_size or 8,
            paths=args.paths.split(",") if args.paths else None,
            threads=args.threads,
            warmup=3 if args.warmup is None else args.warmup,
            rounds=5 if args.rounds is None else args.rounds,
            block=args.block,
        )
        if args.out:
            import json
            from pathlib import Path

            Path(args.out).mkdir(parents=True, exist_ok=True)
            (Path(args.out) / "bench.json").write_text(json.dumps(result, indent=1, default=str))
            (Path(args.out) / "bench.md").write_text(format_detection_table(result) + "\n")
        print(format_detection_table(result))
        return 0
    else:
        from mobilenetv2.bench.latency import benchmark_latency
        from mobilenetv2.bench.report import format_table

        result = benchmark_latency(
            model_name=args.model,
            weights=args.weights,
            resolution=args.resolution,
            batch_size=args.batch_size or 8,
            paths=args.paths.split(",") if args.paths else None,
            splits=args.splits or [2, 3, 4, 5],
            threads=args.threads,
            warmup=10 if args.warmup is None else args.warmup,
            rounds=10 if args.rounds is None else args.rounds,
            block=args.block,
            reuse_memory=args.reuse_memory,
            max_load=args.max_load,
            out_dir=args.out,
        )
        print(format_table(result))
        return 0
    print(format_memory(result) if args.memory else format_training(result))
    if args.out is None:
        print("(the full JSON: add --out DIR)")
    return 0


def _is_segmenter(name: str) -> bool:
    from mobilenetv2.registry import list_models, task_of

    return name in list_models() and task_of(name) == "segmentation"


def format_memory(result: dict[str, Any]) -> str:
    """`bench --memory` as a terminal table: measured peak per path, its ratio and the prediction."""
    reference = result["torchvision_eager"]["peak_bytes"]
    lines = [
        f"{result['model']} @ {result['resolution']}x{result['resolution']}, batch 1, {result['dtype']}: "
        "peak live activations (every tensor storage counted; input and weights excluded)",
        f"{'path':<22}{'peak bytes':>14}{'vs torchvision':>16}{'predicted':>14}",
        f"{'torchvision eager':<22}{reference:>14,}{1.0:>16.3f}{'-':>14}",
    ]
    for t, r in result["splits"].items():
        predicted = r.get("predicted_peak_bytes")
        shown = f"{predicted:,}" if predicted is not None else "-"
        lines.append(f"{'fast, splits=' + t:<22}{r['peak_bytes']:>14,}{r['peak_bytes'] / reference:>16.3f}{shown:>14}")
    rss = result.get("rss", {})
    for key, run in rss.get("runs", {}).items():
        lines.append(f"peak RSS increase, {key} @ {rss['resolution']}: {run['peak_increase_bytes'] / 1e6:.0f} MB")
    return "\n".join(lines)


def format_training(result: dict[str, Any]) -> str:
    """`bench --train` as a terminal table: median img/s of each loop and our speedup over it."""
    ours = result["ours_images_per_second"]
    rows = [
        ("baseline", result["baseline_images_per_second"]),
        ("baseline-reuse", result["baseline_reuse_images_per_second"]),
        ("ours", ours),
    ]
    lines = [
        f"training step, batch {result['batch_size']}, {result['resolution']}x{result['resolution']}, "
        f"{result['threads']} threads, {result['device']}",
        f"{'loop':<16}{'img/s':>10}{'ours / loop':>13}",
    ]
    lines += [f"{name:<16}{ips:>10.2f}{ours / ips:>12.2f}x" for name, ips in rows]
    return "\n".join(lines)


def _is_detector(args: argparse.Namespace) -> bool:
    from mobilenetv2.registry import task_of

    if args.weights:
        from mobilenetv2.weights import read_header

        return task_of(read_header(args.weights)["architecture"]) == "detection"
    return task_of(args.model) == "detection"
