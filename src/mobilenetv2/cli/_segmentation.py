"""`eval` and `predict` for weights files whose header says task "segmentation" (the commands dispatch here)."""

import argparse
import json
from pathlib import Path


def is_segmenter_file(path: str) -> bool:
    """True when `path` is one of our weights files and its header records a segmentation model."""
    from mobilenetv2.errors import UserError
    from mobilenetv2.weights import read_meta

    if not Path(path).is_file():
        return False
    try:
        return read_meta(path).task == "segmentation"
    except (UserError, ValueError, OSError):
        return False


def _device(name: str):
    from mobilenetv2.train.runtime import pick_device

    return pick_device(name)


def _eval_source(args: argparse.Namespace, class_names):
    from mobilenetv2.data.digits_segmentation import ensure_digits_segmentation
    from mobilenetv2.data.segmentation import segmentation_split
    from mobilenetv2.errors import UserError
    from mobilenetv2.train.tasks.segmentation import digits_spec

    names = list(class_names) if class_names else None
    if args.data:
        return segmentation_split(args.data, args.split, class_names=names)
    if args.dataset in (None, "digits-segmentation"):
        return segmentation_split(ensure_digits_segmentation(digits_spec(args.scenes)), args.split)
    raise UserError(f"--dataset {args.dataset} is not a segmentation dataset: pass --data DIR")


def run_eval(args: argparse.Namespace) -> int:
    from mobilenetv2.meta import meta_of
    from mobilenetv2.segmentation.evaluate import evaluate_segmenter
    from mobilenetv2.train.records import write_json
    from mobilenetv2.weights import load

    model = load(args.weights)
    meta = meta_of(model)
    source = _eval_source(args, meta.class_names)
    result = evaluate_segmenter(
        model,
        source,
        meta.preprocessing,
        multi_scale=args.multi_scale,
        save_masks=args.save_masks,
        device=_device(args.device),
    )
    report = result.to_dict()
    if args.out:
        write_json(Path(args.out) / "metrics.json", report)
    print(json.dumps(report, indent=1))
    return 0


def run_predict(args: argparse.Namespace) -> int:
    from mobilenetv2.infer.predict import expand_inputs
    from mobilenetv2.meta import meta_of
    from mobilenetv2.segmentation.predict import predict_masks
    from mobilenetv2.weights import load

    model = load(args.weights)
    meta = meta_of(model)
    paths = expand_inputs(args.images)
    records = predict_masks(
        model,
        paths,
        args.out or "predictions",
        meta.preprocessing,
        class_names=list(meta.class_names) if meta.class_names else None,
        multi_scale=args.multi_scale,
    )
    if args.json:
        print(json.dumps([{k: r[k] for k in ("file", "mask", "classes", "error")} for r in records], indent=1))
    else:
        for r in records:
            if r["error"]:
                print(f"{r['file']}: error: {r['error']}")
                continue
            top = sorted(r["classes"].items(), key=lambda kv: -kv[1])[:5]
            shown = ", ".join(f"{label} {100 * f:.1f}%" for label, f in top)
            print(f"{r['file']}: {r['mask']} ({shown})")
    return 1 if any(r["error"] for r in records) else 0
