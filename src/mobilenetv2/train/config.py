"""Training configuration: one dataclass, filled from built-in defaults < a recipe file < explicit values.

`None` in a field means "not given": the recipe (or the default below) decides. `resolve()` returns a copy
with every field set, the learning rate scaled to the global batch, and everything validated; errors name
the command-line flag that sets the field.
"""

import dataclasses
import math
import tomllib
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

OPTIMIZERS = ("rmsprop_tf", "sgd", "adamw")
SCHEDULES = ("exponential", "cosine", "constant", "poly")
PRECISIONS = ("auto", "fp32", "bf16", "fp16")


@dataclass
class TrainConfig:
    model: str | None = None
    model_options: dict[str, Any] = field(default_factory=dict)
    weights: str | None = None
    dataset: str | None = None
    data: str | None = None
    resolution: int | tuple[int, int] | None = None
    preprocessing: str | None = None
    recipe: str | None = None
    epochs: int | None = None
    batch_size: int | None = None
    lr: float | None = None
    base_batch_size: int | None = None
    optimizer: str | None = None
    momentum: float | None = None
    rmsprop_decay: float | None = None
    rmsprop_eps: float | None = None
    weight_decay: float | None = None
    weight_decay_depthwise: bool | None = None
    weight_decay_norm_bias: bool | None = None
    schedule: str | None = None
    lr_decay: float | None = None
    lr_decay_epochs: float | None = None
    warmup_epochs: float | None = None
    label_smoothing: float | None = None
    ema_decay: float | None = None
    grad_clip: float | None = None
    dropout: float | None = None
    crop_scale: tuple[float, float] | None = None
    hflip: bool | None = None
    precision: str | None = None
    channels_last: bool | None = None
    compile: bool | None = None
    reuse_memory: bool | None = None
    sync_bn: bool | None = None
    freeze_bn: bool | None = None
    deterministic: bool | None = None
    seed: int | None = None
    workers: int | None = None
    threads: int | None = None
    out: str | None = None
    max_steps: int | None = None
    resume: bool | None = None
    checkpoint_every: int | None = None
    synthetic_size: int | None = None
    device: str | None = None
    progress: bool | None = None
    backbone_weights: str | None = None
    overwrite: bool | None = None
    lr_power: float | None = None  # poly schedule: lr · (1 - progress) ** lr_power (TF DeepLab: 0.9)
    scale_range: tuple[float, float] | None = None  # segmentation: random scale range (TF DeepLab 0.5-2.0)
    scale_step: float | None = None  # segmentation: scale step (0.25; 0 = continuous)
    ssd_crop: bool | None = None  # detection: TF's SSD random crop (ssd_random_crop) before the resize


# Used where neither the recipe nor the caller sets a field.
DEFAULTS: dict[str, Any] = {
    "model": "mobilenet_v2_100",
    "preprocessing": "torchvision",
    "epochs": 10,
    "batch_size": 96,
    "lr": 0.045,
    "optimizer": "rmsprop_tf",
    "momentum": 0.9,
    "rmsprop_decay": 0.9,
    "rmsprop_eps": 1.0,
    "weight_decay": 4e-5,
    "weight_decay_depthwise": False,
    "weight_decay_norm_bias": False,
    "schedule": "exponential",
    "lr_decay": 0.98,
    "lr_decay_epochs": 1.0,
    "warmup_epochs": 0.0,
    "label_smoothing": 0.0,
    "ema_decay": 0.0,
    "grad_clip": 0.0,
    "crop_scale": (0.08, 1.0),
    "hflip": True,
    "precision": "auto",
    "channels_last": True,
    "compile": False,
    "reuse_memory": True,
    "sync_bn": False,
    "freeze_bn": False,
    "deterministic": False,
    "seed": 0,
    "max_steps": 0,
    "resume": False,
    "checkpoint_every": 0,
    "synthetic_size": 256,
    "device": "auto",
    "progress": True,
    "overwrite": False,
    "lr_power": 0.9,
    "scale_range": (0.5, 2.0),
    "scale_step": 0.25,
    "ssd_crop": True,
}
# Fields that say where and how a run goes, never what it trains: a recipe file (e.g. another run's
# config.toml) cannot set them.
RUN_ONLY = ("out", "resume", "overwrite")


def recipe_names() -> list[str]:
    """The built-in recipes: every .toml file shipped in mobilenetv2/recipes."""
    folder = resources.files("mobilenetv2.recipes")
    return sorted(p.name.removesuffix(".toml") for p in folder.iterdir() if p.name.endswith(".toml"))


def flag(name: str) -> str:
    return f"--{name.replace('_', '-')}"


def load_recipe(name: str) -> dict[str, Any]:
    """A built-in recipe by name, or any TOML file (e.g. a run folder's config.toml)."""
    if name in recipe_names():
        text = resources.files("mobilenetv2.recipes").joinpath(f"{name}.toml").read_text()
    elif Path(name).is_file():
        text = Path(name).read_text()
    else:
        raise ValueError(f"--recipe must be one of {', '.join(recipe_names())} or a .toml file, got {name!r}")
    try:
        values = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ValueError(f"--recipe {name}: invalid TOML ({exc})") from None
    if not values:
        raise ValueError(f"--recipe {name}: the file sets nothing")
    known = {f.name for f in dataclasses.fields(TrainConfig)}
    unknown = sorted(set(values) - known - {"description", "lr_scaled_from"})
    if unknown:
        raise ValueError(f"--recipe {name}: unknown key {unknown[0]!r}")
    return {k: v for k, v in values.items() if k in known and k not in RUN_ONLY}


def resolve(cfg: TrainConfig) -> TrainConfig:
    """Fill every field (defaults < recipe < explicit), scale the lr to the batch size, validate.

    The model decides the task (registry), the task the default dataset, resolution and recipe."""
    from mobilenetv2.train.tasks import task_for_model

    explicit = {k: v for k, v in dataclasses.asdict(cfg).items() if v is not None}
    explicit_recipe = load_recipe(explicit["recipe"]) if explicit.get("recipe") else {}
    model = explicit.get("model") or explicit_recipe.get("model") or DEFAULTS["model"]
    task = task_for_model(model)
    dataset = explicit.get("dataset") or explicit_recipe.get("dataset") or task.default_dataset(explicit.get("data"))
    if dataset not in task.datasets:
        raise ValueError(f"--dataset must be one of {', '.join(task.datasets)} for {model}, got {dataset!r}")
    if explicit.get("data") and not task.reads_folder(dataset):
        raise ValueError(f"--data DIR reads a folder, but --dataset {dataset} is built in: drop one of the two")
    recipe_name = explicit.get("recipe") or task.default_recipe(dataset)
    recipe = explicit_recipe or load_recipe(recipe_name)
    values = {**DEFAULTS, **recipe, **explicit, "recipe": recipe_name, "model": model, "dataset": dataset}
    values["model_options"] = {**recipe.get("model_options", {}), **cfg.model_options}
    res = values.get("resolution") or task.default_resolution(values["dataset"])
    values["resolution"] = (res, res) if isinstance(res, int) else tuple(res)
    values["crop_scale"] = tuple(values["crop_scale"])
    # Linear scaling rule (Goyal et al. 2017): the recipe's lr is for base_batch_size images per step.
    values["base_batch_size"] = values.get("base_batch_size") or recipe.get("batch_size") or values["batch_size"]
    if "lr" not in explicit and values["batch_size"] != values["base_batch_size"]:
        values["lr"] = values["lr"] * (values["batch_size"] / values["base_batch_size"])
    if values.get("out") is None:
        values["out"] = f"runs/train-{values['dataset']}"
    values["crop_scale"] = tuple(float(v) for v in values["crop_scale"])
    values["scale_range"] = tuple(float(v) for v in values["scale_range"])
    resolved = TrainConfig(**values)
    validate(resolved)
    return resolved


def _check(ok: bool, name: str, requirement: str, value: Any) -> None:
    if not ok:
        raise ValueError(f"{flag(name)} must be {requirement}, got {value!r}")


def validate(cfg: TrainConfig) -> None:
    for f in dataclasses.fields(cfg):
        value = getattr(cfg, f.name)
        for v in value if isinstance(value, tuple) else (value,):
            _check(not isinstance(v, float) or math.isfinite(v), f.name, "a finite number", value)
    _check(cfg.dataset not in ("imagefolder", "coco", "voc") or bool(cfg.data), "data", "a data folder", cfg.data)
    for name in ("epochs", "batch_size", "base_batch_size", "synthetic_size"):
        _check(getattr(cfg, name) >= 1, name, ">= 1", getattr(cfg, name))
    for name in ("max_steps", "checkpoint_every", "warmup_epochs", "weight_decay", "grad_clip", "ema_decay"):
        _check(getattr(cfg, name) >= 0, name, ">= 0", getattr(cfg, name))
    _check(cfg.workers is None or cfg.workers >= 0, "workers", ">= 0", cfg.workers)
    _check(cfg.threads is None or cfg.threads >= 0, "threads", ">= 0 (0 = PyTorch's default)", cfg.threads)
    _check(math.isfinite(cfg.lr) and cfg.lr > 0, "lr", "> 0", cfg.lr)
    _check(cfg.optimizer in OPTIMIZERS, "optimizer", f"one of {', '.join(OPTIMIZERS)}", cfg.optimizer)
    _check(cfg.schedule in SCHEDULES, "schedule", f"one of {', '.join(SCHEDULES)}", cfg.schedule)
    _check(cfg.precision in PRECISIONS, "precision", f"one of {', '.join(PRECISIONS)}", cfg.precision)
    _check(0 <= cfg.momentum < 1, "momentum", "in [0, 1)", cfg.momentum)
    _check(0 < cfg.rmsprop_decay < 1, "rmsprop_decay", "in (0, 1)", cfg.rmsprop_decay)
    _check(cfg.rmsprop_eps > 0, "rmsprop_eps", "> 0", cfg.rmsprop_eps)
    _check(0 < cfg.lr_decay <= 1, "lr_decay", "in (0, 1]", cfg.lr_decay)
    _check(cfg.lr_decay_epochs > 0, "lr_decay_epochs", "> 0", cfg.lr_decay_epochs)
    _check(0 <= cfg.label_smoothing < 1, "label_smoothing", "in [0, 1)", cfg.label_smoothing)
    _check(cfg.ema_decay < 1, "ema_decay", "< 1", cfg.ema_decay)
    _check(0 < cfg.crop_scale[0] <= cfg.crop_scale[1] <= 1, "crop_scale", "0 < min <= max <= 1", cfg.crop_scale)
    _check(len(cfg.scale_range) == 2 and 0 < cfg.scale_range[0] <= cfg.scale_range[1], "scale_range",
           "MIN MAX with 0 < MIN <= MAX", cfg.scale_range)  # fmt: skip
    _check(cfg.scale_step >= 0, "scale_step", ">= 0", cfg.scale_step)
    _check(cfg.lr_power > 0, "lr_power", "> 0", cfg.lr_power)
    _check(cfg.dropout is None or 0 <= cfg.dropout < 1, "dropout", "in [0, 1)", cfg.dropout)
    _check(min(cfg.resolution) >= 32, "resolution", ">= 32 (MobileNetV2 downsamples by 32)", cfg.resolution)


def to_toml(cfg: TrainConfig) -> str:
    """The resolved config as TOML, loadable again with `--recipe FILE`."""
    lines, tables = [], []
    # The saved lr is already scaled: record it as the lr for this batch size, so reloading does not rescale.
    values = {**dataclasses.asdict(cfg), "base_batch_size": cfg.batch_size}
    for key, value in values.items():
        if value is None or key == "resume":
            continue
        if isinstance(value, dict):
            tables.append(f"\n[{key}]")
            tables += [f"{k} = {_toml_value(v)}" for k, v in sorted(value.items())]
        else:
            lines.append(f"{key} = {_toml_value(value)}")
    return "\n".join(lines + tables) + "\n"


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    return '"' + str(value).replace("\\", "\\\\").replace('"', '\\"') + '"'
