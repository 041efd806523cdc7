"""`mobilenetv2 info NAME`: exact parameters, multiply-adds and activation memory, per layer."""

import argparse
import json
import os

from mobilenetv2.cli._common import add_model_args, model_options, parse_resolution


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("info", help="per-layer params, multiply-adds and activation memory of a model")
    add_model_args(p, positional=True)
    p.add_argument("--resolution", type=parse_resolution, default=(224, 224), help="N or HxW (default 224)")
    p.add_argument("--splits", type=int, default=1, help="predict the peak with Sec. 5.1's split into t slices")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of the table")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from mobilenetv2.analysis import profile
    from mobilenetv2.analysis.heads import format_head_split, head_split
    from mobilenetv2.analysis.report import format_profile
    from mobilenetv2.models.mobilenet_v2 import check_resolution
    from mobilenetv2.registry import create_model, task_of

    if os.path.exists(args.model) or args.model.endswith(".safetensors"):
        from mobilenetv2.weights import describe_file

        print(describe_file(args.model, as_json=args.json))
        return 0
    model = create_model(args.model, **model_options(args))
    check_resolution(model, args.resolution)
    result = profile(model, args.resolution, splits=args.splits)
    plan = _split_plan(model, args.resolution, args.splits)
    table7 = _table7(args.model, model, args.resolution, result)
    detector = task_of(args.model) == "detection"
    if args.json:
        extra = {"peak_schedule": plan} if plan else {}
        if detector:
            extra["head_split"] = head_split(result)
        print(json.dumps(result.to_dict() | extra, indent=1))
    else:
        print(format_profile(result))
        if table7:
            print("\n".join(table7))
        if detector:
            print(format_head_split(result))
        if plan:
            split = ", ".join(f"{name} {t}" for name, t in plan.items() if t > 1)
            print(f"peak schedule (for_inference(splits={args.splits})): slices per op {split}; every other op whole")
    return 0


def _split_plan(model, resolution: tuple[int, int], splits: int) -> dict[str, int] | None:
    from mobilenetv2.models import MobileNetV2

    if splits < 2 or not isinstance(model, MobileNetV2) or model.shortcut == "expansion":
        return None
    from mobilenetv2.infer.plan import split_plan

    return split_plan(model, resolution, splits)


def _table7(name: str, model, resolution: tuple[int, int], result) -> list[str] | None:
    from mobilenetv2.registry import task_of

    if task_of(name) != "segmentation":
        return None
    from mobilenetv2.segmentation.table7 import table7_lines

    return table7_lines(model, resolution, result.params, result.macs)
