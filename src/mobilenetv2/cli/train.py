"""`mobilenetv2 train`: train a model with a recipe (`paper`, `torchvision-v1`, `digits`), flags override it.

Distributed: `torchrun --nproc_per_node N -m mobilenetv2 train ...`.
"""

import argparse
import dataclasses

from mobilenetv2.cli._common import add_model_args, model_options, parse_resolution

# (flag, type, help); every default is None so the recipe decides unless the flag is given.
VALUE_FLAGS = (
    ("recipe", str, "paper, torchvision-v1, digits, or a .toml file (e.g. a run's config.toml)"),
    ("dataset", str, "digits (built in, default), synthetic, or imagefolder (with --data)"),
    ("data", str, "ImageFolder root holding train/ and val/ (implies --dataset imagefolder)"),
    ("weights", str, "initialize from a weights file; a different --num-classes resets the classifier"),
    ("backbone_weights", str, "detection/segmentation: initialize the backbone from a classification weights file"),
    ("preprocessing", str, "torchvision or inception crop/normalization preset"),
    ("epochs", int, "number of epochs"),
    ("batch_size", int, "global batch size (all processes together)"),
    ("lr", float, "learning rate as is (otherwise the recipe's, scaled linearly to --batch-size)"),
    ("optimizer", str, "rmsprop_tf or sgd"),
    ("momentum", float, "momentum"),
    ("rmsprop_decay", float, "RMSProp mean-square decay"),
    ("rmsprop_eps", float, "RMSProp epsilon (inside the square root)"),
    ("weight_decay", float, "L2 weight decay"),
    ("schedule", str, "exponential (staircase), cosine, constant or poly"),
    ("lr_power", float, "poly schedule: lr * (1 - progress) ** power (TF DeepLab 0.9)"),
    ("scale_step", float, "segmentation: random scale step (0.25; 0 = continuous)"),
    ("lr_decay", float, "exponential schedule: factor per --lr-decay-epochs"),
    ("lr_decay_epochs", float, "exponential schedule: epochs between decays"),
    ("warmup_epochs", float, "linear lr warm-up length in epochs"),
    ("label_smoothing", float, "label smoothing"),
    ("ema_decay", float, "weight EMA decay (0 = off; the official recipe uses 0.9999)"),
    ("grad_clip", float, "clip the gradient norm (0 = off)"),
    ("precision", str, "auto, fp32, bf16 or fp16 (autocast)"),
    ("seed", int, "random seed"),
    ("workers", int, "data loader worker processes"),
    ("threads", int, "CPU threads for PyTorch (default: the recipe's; 0 = PyTorch's default)"),
    ("out", str, "run folder"),
    ("max_steps", int, "stop after this many optimizer steps"),
    ("checkpoint_every", int, "also checkpoint every N steps (0 = end of each epoch only)"),
    ("synthetic_size", int, "images in --dataset synthetic's train split"),
    ("device", str, "auto, cpu, cuda, cuda:N"),
)
SWITCHES = (
    ("weight_decay_depthwise", "weight decay on depthwise conv weights too"),
    ("weight_decay_norm_bias", "weight decay on BatchNorm parameters and biases too"),
    ("hflip", "random horizontal flips"),
    ("ssd_crop", "detection: TF's SSD random crop (min object covered 0-1; default on)"),
    ("channels_last", "channels_last memory format"),
    ("compile", "torch.compile the model"),
    ("reuse_memory", "CPU: keep freed memory in malloc's heap for the next step (default on; see allocator.py)"),
    ("sync_bn", "SyncBatchNorm across processes (GPUs)"),
    ("freeze_bn", "BatchNorm uses its running statistics (fine-tuning with small batches)"),
    ("deterministic", "deterministic kernels (bitwise reproducible, resumable bitwise)"),
    ("resume", "continue the run in --out (its config.toml; flags given change only what may change)"),
    ("overwrite", "start afresh in an --out folder that already holds a run"),
    ("progress", "progress bars"),
)


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train", help="train a model (recipes: paper, torchvision-v1, digits, ...)")
    # No argparse default: the recipe, or with --resume the run's own config.toml, decides (mobilenet_v2_100 else).
    add_model_args(p, default=None)
    p.add_argument("--resolution", type=parse_resolution, help="input size N or HxW (digits: 32, else 224)")
    g = p.add_argument_group("training (defaults come from the recipe)")
    for name, kind, text in VALUE_FLAGS:
        g.add_argument(f"--{name.replace('_', '-')}", dest=name, type=kind, help=text)
    g.add_argument("--crop-scale", type=float, nargs=2, metavar=("MIN", "MAX"), help="random-resized-crop area")
    g.add_argument("--scale-range", type=float, nargs=2, metavar=("MIN", "MAX"), help="segmentation: random scale")
    for name, text in SWITCHES:
        g.add_argument(f"--{name.replace('_', '-')}", dest=name, action=argparse.BooleanOptionalAction, help=text)
    p.set_defaults(func=run, out_folder=True)  # --out names a folder (checked in cli.main)


def config_from_args(args: argparse.Namespace):
    from mobilenetv2.train import TrainConfig

    values = {f.name: getattr(args, f.name) for f in dataclasses.fields(TrainConfig) if hasattr(args, f.name)}
    values["model_options"] = model_options(args)
    if args.crop_scale is not None:
        values["crop_scale"] = tuple(args.crop_scale)
    if args.scale_range is not None:
        values["scale_range"] = tuple(args.scale_range)
    return TrainConfig(**values)


def run(args: argparse.Namespace) -> int:
    from mobilenetv2.train import train

    summary = train(config_from_args(args))
    shown = "  ".join(f"{k} {v:.4f}" for k, v in summary.items() if k.startswith("val_") and isinstance(v, float))
    rate = summary["train_images_per_second"]
    speed = f"{rate:.1f} img/s" if rate else "img/s not measured (run shorter than the warm-up steps)"
    print(f"{shown}  {speed}  -> {summary['out']}")
    return 0
