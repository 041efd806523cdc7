"""`mobilenetv2 predict IMAGES... --weights W`: top-k classes of image files, folders and globs."""

import argparse
import json
import sys


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("predict", help="classify images with a weights file (top-k classes)")
    p.add_argument("images", nargs="+", metavar="IMAGE", help="image files, folders (searched recursively), globs")
    p.add_argument("--weights", metavar="FILE", help="a mobilenetv2 .safetensors weights file (required)")
    p.add_argument("--topk", type=int, default=5, help="classes to show per image (default 5)")
    p.add_argument("--json", action="store_true", help="print a JSON list: {file, top: [{index, label, prob}], error}")
    p.add_argument("--batch-size", type=int, default=16, help="images per forward pass (default 16)")
    p.add_argument("--splits", type=int, default=1, help="run Sec. 5.1's memory-efficient split inference")
    p.add_argument(
        "--engine",
        choices=["auto", "graph", "eager"],
        default="auto",
        help="for_inference engine: auto (default), graph (oneDNN Graph), eager (one call per op)",
    )
    p.add_argument("--max-pixels", type=int, default=None, help="refuse larger images (default: PIL's bomb limit)")
    g = p.add_argument_group("detectors and segmenters (the weights file's header says the task)")
    g.add_argument(
        "--score-threshold", type=float, default=0.3, help="detection: keep detections scoring at least this"
    )
    g.add_argument("--max-detections", type=int, default=100, help="detection: at most this many per image")
    g.add_argument(
        "--out",
        metavar="DIR",
        help="detection: images with boxes drawn; segmentation: <name>.png masks and <name>_overlay.jpg "
        "(default predictions)",
    )
    g.add_argument("--multi-scale", action="store_true", help="segmentation: scales 0.5..1.75 and flips")
    p.set_defaults(func=run, out_folder=True)  # --out names a folder (checked in cli.main)


def run(args: argparse.Namespace) -> int:
    from mobilenetv2.cli._segmentation import is_segmenter_file, run_predict
    from mobilenetv2.data.images import MAX_PIXELS
    from mobilenetv2.errors import UserError
    from mobilenetv2.infer.predict import PredictionInterrupted, predict_files

    if args.weights is not None and is_segmenter_file(args.weights):
        return run_predict(args)
    if args.weights is None:
        raise UserError(
            "predict needs --weights FILE: a model with random weights predicts nothing useful "
            "(convert pretrained weights with `mobilenetv2 convert`, or train with `mobilenetv2 train`)"
        )
    from mobilenetv2.workflows.detection_eval import weights_task

    if weights_task(args.weights) == "detection":
        return _detect(args)
    try:
        results = predict_files(
            args.images,
            weights=args.weights,
            topk=args.topk,
            batch_size=args.batch_size,
            splits=args.splits,
            engine=args.engine,
            max_pixels=MAX_PIXELS if args.max_pixels is None else args.max_pixels,
        )
    except PredictionInterrupted as stop:  # Ctrl-C: print what was predicted before it
        show(stop.done, args.json)
        print(f"interrupted after {len(stop.done)} of {stop.total} files", file=sys.stderr)
        return 130
    show(results, args.json)
    return 1 if any(r.error is not None for r in results) else 0


def show(results: list, as_json: bool) -> None:
    from mobilenetv2.infer.predict import format_predictions

    if as_json:
        print(json.dumps([r.to_dict() for r in results], indent=1))
    elif results:
        print(format_predictions(results))


def _detect(args: argparse.Namespace) -> int:
    from mobilenetv2.data.images import MAX_PIXELS
    from mobilenetv2.infer.detect import detect_files, format_detections

    results = detect_files(
        args.images,
        weights=args.weights,
        score_threshold=args.score_threshold,
        max_detections=args.max_detections,
        out_dir=args.out,
        max_pixels=args.max_pixels or MAX_PIXELS,
    )
    print(json.dumps([r.to_dict() for r in results], indent=1) if args.json else format_detections(results))
    return 1 if any(r.error is not None for r in results) else 0
