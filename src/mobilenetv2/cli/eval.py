"""`mobilenetv2 eval WEIGHTS`: top-1/top-5, loss, per-class accuracy, confusion matrix, throughput."""

import argparse
import json


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("eval", help="evaluate weights on an image folder or a built-in dataset")
    p.add_argument("weights", help="a .safetensors file of ours, or another library's file with --source")
    p.add_argument("--source", choices=["torchvision", "timm", "keras"], help="convert WEIGHTS from this library")
    p.add_argument(
        "--dataset",
        choices=["digits", "synthetic", "imagefolder", "digits-detection", "coco", "voc", "digits-segmentation"],
        help="default: digits, or imagefolder with --data (detectors: digits-detection, or coco with --data; "
        "segmenters: digits-segmentation, or a VOC / images+masks folder with --data)",
    )
    p.add_argument("--data", help="image folder: a split folder of class subfolders, or a root holding --split")
    p.add_argument("--split", default="val", choices=["train", "val"], help="split to evaluate (default val)")
    p.add_argument("--batch-size", type=int, default=100, help="images per batch")
    p.add_argument("--workers", type=int, default=0, help="data loader worker processes")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N")
    p.add_argument("--precision", default="fp32", choices=["auto", "fp32", "bf16", "fp16"], help="autocast")
    p.add_argument(
        "--out",
        help="write eval.json, per_class.csv, confusion.csv, confusion.png (detectors: metrics.json, detections.json)",
    )
    p.add_argument(
        "--ignore-class-mismatch",
        action="store_true",
        help="score by class index even when the model's classes differ from the data's",
    )
    g = p.add_argument_group("segmentation weights (the file's header says task segmentation)")
    g.add_argument("--multi-scale", action="store_true", help="Table 7's MF: scales 0.5..1.75 + left-right flips")
    g.add_argument(
        "--save-masks", metavar="DIR", help="save each predicted mask as a palette PNG named after its image"
    )
    g.add_argument("--scenes", type=int, default=1200, help="digits-segmentation: the training run's --synthetic-size")
    p.set_defaults(func=run, out_folder=True)  # --out names a folder (checked in cli.main)


def _common(args: argparse.Namespace) -> dict:
    """The keywords every task's evaluation of a file takes from the command line."""
    return {
        "split": args.split,
        "batch_size": args.batch_size,
        "workers": args.workers,
        "device": args.device,
        "precision": args.precision,
        "out_dir": args.out,
    }


def run(args: argparse.Namespace) -> int:
    from mobilenetv2.cli._segmentation import is_segmenter_file, run_eval
    from mobilenetv2.workflows.evaluate import evaluate_weights

    if args.batch_size < 1:
        raise ValueError(f"--batch-size must be >= 1, got {args.batch_size}")
    if args.source is None and is_segmenter_file(args.weights):
        return run_eval(args)
    from mobilenetv2.workflows.detection_eval import evaluate_detector_weights, weights_task

    if args.source is None and weights_task(args.weights) == "detection":
        report = evaluate_detector_weights(
            args.weights,
            dataset=args.dataset or ("coco" if args.data else "digits-detection"),
            data=args.data,
            **_common(args),
        )
        print(json.dumps({k: v for k, v in report.items() if k != "per_class_ap"}, indent=1))
        return 0
    report = evaluate_weights(
        args.weights,
        source=args.source,
        dataset=args.dataset or ("imagefolder" if args.data else "digits"),
        data=args.data,
        **_common(args),
        ignore_class_mismatch=args.ignore_class_mismatch,
    )
    brief = {k: v for k, v in report.items() if k != "per_class_accuracy"}
    print(json.dumps(brief, indent=1))
    return 0
