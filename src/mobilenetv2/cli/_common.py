"""Options shared by the commands that build a model."""

import argparse
from typing import Any


def add_model_args(
    parser: argparse.ArgumentParser, *, positional: bool = False, default: str | None = "mobilenet_v2_100"
) -> None:
    if positional:
        parser.add_argument("model", metavar="NAME", help="registered model name (see `mobilenetv2 list`)")
    else:
        shown = f" (default {default})" if default else ""
        parser.add_argument("--model", default=default, help=f"registered model name{shown}")
    g = parser.add_argument_group("model options (override the variant's defaults)")
    g.add_argument("--width", type=float, help="width multiplier alpha (> 0)")
    g.add_argument("--num-classes", type=int, help="classifier outputs")
    g.add_argument("--expansion", type=float, help="expansion factor t of bottlenecks 2..17 (default 6)")
    g.add_argument("--dropout", type=float, help="dropout before the classifier")
    g.add_argument("--bottleneck-activation", choices=["linear", "relu6"], help="Figure 6a ablation")
    g.add_argument("--shortcut", choices=["bottleneck", "expansion", "none"], help="Figure 6b ablation")
    g.add_argument("--padding", choices=["torch", "tf"], help="symmetric, or TensorFlow SAME")
    g.add_argument("--output-stride", type=int, choices=[8, 16, 32], help="dilate once this stride is reached")
    g.add_argument("--bn-eps", type=float, help="BatchNorm epsilon")
    g.add_argument("--bn-momentum", type=float, help="BatchNorm momentum (PyTorch convention)")
    g.add_argument("--aspp", action="store_true", default=None, help="DeepLab: add the three 3x3 atrous branches")


def model_options(args: argparse.Namespace) -> dict[str, Any]:
    """The model keywords the user actually gave (None means: keep the variant's default)."""
    keys = (
        "width",
        "num_classes",
        "expansion",
        "dropout",
        "bottleneck_activation",
        "shortcut",
        "padding",
        "output_stride",
        "bn_eps",
        "bn_momentum",
        "aspp",
    )
    return {k: getattr(args, k) for k in keys if getattr(args, k, None) is not None}


def parse_resolution(text: str) -> tuple[int, int]:
    """'224' or '224x160' (height x width)."""
    try:
        parts = [int(p) for p in text.lower().split("x")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"resolution must be N or HxW, got {text!r}") from None
    if len(parts) == 1:
        parts = parts * 2
    if len(parts) != 2 or min(parts) < 1:
        raise argparse.ArgumentTypeError(f"resolution must be N or HxW with positive sizes, got {text!r}")
    return parts[0], parts[1]
