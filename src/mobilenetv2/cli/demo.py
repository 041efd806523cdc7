"""`mobilenetv2 demo`: train MobileNetV2 on the built-in digits, evaluate, export to ONNX, write a report."""

import argparse


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo", help="train + evaluate + export on the built-in digits (CPU, a few minutes)")
    p.add_argument("--out", help="run folder (default runs/demo-<UTC time>)")
    p.add_argument("--max-steps", type=int, default=0, help="stop training early (smoke test); 0 = full recipe")
    p.add_argument("--threads", type=int, default=1, help="CPU threads (default 1: reproducible, robust when busy)")
    p.add_argument(
        "--task",
        choices=["classification", "detection", "segmentation"],
        default="classification",
        help="classification (digits, default), detection (SSDLite on digits-detection) or segmentation "
        "(Mobile DeepLabv3 on the built-in digit scenes)",
    )
    p.add_argument("--resolution", type=int, help="detection: input size (default: the recipe's 128)")
    p.set_defaults(func=run, out_folder=True)  # --out names a folder (checked in cli.main)


def run(args: argparse.Namespace) -> int:
    if args.max_steps < 0:
        raise ValueError(f"--max-steps must be >= 0, got {args.max_steps}")
    if args.threads < 1:
        raise ValueError(f"--threads must be >= 1, got {args.threads}")
    if args.task == "detection":
        from mobilenetv2.workflows.detection_demo import run_detection_demo

        print(
            run_detection_demo(out=args.out, max_steps=args.max_steps, threads=args.threads, resolution=args.resolution)
        )
        return 0
    if args.task == "segmentation":
        from mobilenetv2.workflows.segmentation_demo import run_demo as run_segmentation_demo

        print(run_segmentation_demo(out=args.out, max_steps=args.max_steps, threads=args.threads))
        return 0
    from mobilenetv2.workflows.demo import run_demo

    print(run_demo(out=args.out, max_steps=args.max_steps, threads=args.threads))
    return 0
