"""`mobilenetv2 export WEIGHTS --format onnx|openvino|torchscript|tflite|executorch`: export, run in the runtime,
compare with PyTorch."""

import argparse
import json

from mobilenetv2.cli._common import add_model_args, model_options, parse_resolution

FORMATS = ("onnx", "openvino", "torchscript", "tflite", "executorch")  # mobilenetv2.export.FORMATS, without torch


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("export", help="export to ONNX / OpenVINO / TorchScript / LiteRT / ExecuTorch, verified")
    p.add_argument("weights", nargs="?", help="a .safetensors weights file of ours (or use --model NAME)")
    p.add_argument("--format", default="onnx", choices=list(FORMATS), help="default onnx")
    p.add_argument("--out", help="output file (default: WEIGHTS with .onnx / .xml / .pt / .tflite / .pte)")
    p.add_argument("--batch-size", type=int, help="tflite: the fixed batch the file is built for (default 1)")
    p.add_argument("--resolution", type=parse_resolution, help="N or HxW (default: the weights' input size)")
    p.add_argument("--int8", action="store_true", help="post-training static INT8 quantization (needs --calibration)")
    p.add_argument("--calibration", help="calibration images: an image folder (class subfolders ok), or 'digits'")
    p.add_argument("--calibration-size", type=int, default=300, help="calibration images to use (default 300)")
    p.add_argument(
        "--min-agreement", type=float, default=0.95, help="--int8: least top-1 agreement with fp32 to accept"
    )
    p.add_argument(
        "--nms", action="store_true", help="detectors: per-class NMS in the graph too (boxes are always decoded)"
    )
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    add_model_args(p)
    p.set_defaults(func=run, model=None)


def run(args: argparse.Namespace) -> int:
    from mobilenetv2.workflows.export_file import export_from_file

    result = export_from_file(
        args.weights,
        model_name=args.model,
        model_options=model_options(args),
        format=args.format,
        out=args.out,
        input_size=args.resolution,
        int8=args.int8,
        calibration=args.calibration,
        calibration_size=args.calibration_size,
        min_agreement=args.min_agreement,
        batch_size=args.batch_size,
        nms=args.nms,
    )
    if args.json:
        print(json.dumps(result.to_dict(), indent=1))
    else:
        check = f"top-1 agreement {result.top1_agreement:.2%}" if result.top1_agreement is not None else ""
        check = check or f"max |diff| vs PyTorch {result.max_abs_diff:.2g}"
        print(f"wrote {result.path} ({result.format}, {result.precision}, verified: {check})")
    return 0
