"""A strict, tiny model registry: one builder per architecture, variants registered as data."""

import difflib
import fnmatch
import inspect
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from torch import nn

from mobilenetv2.meta import TASKS, ModelMeta, set_meta


@dataclass(frozen=True)
class ModelEntry:
    name: str
    builder: Callable[..., nn.Module]
    defaults: dict[str, Any] = field(default_factory=dict)
    description: str = ""
    task: str = "classification"


_MODELS: dict[str, ModelEntry] = {}


def register_model(
    name: str,
    builder: Callable[..., nn.Module],
    defaults: dict[str, Any] | None = None,
    description: str = "",
    task: str = "classification",
) -> None:
    if name in _MODELS:
        raise ValueError(f"model {name!r} is already registered")
    if task not in TASKS:
        raise ValueError(f"task must be one of {', '.join(TASKS)}, got {task!r}")
    _MODELS[name] = ModelEntry(name, builder, dict(defaults or {}), description, task)


def list_models(pattern: str = "*") -> list[str]:
    """Registered names matching a shell-style pattern (`mobilenet_v2_*`), sorted."""
    _load_builtin()
    return sorted(n for n in _MODELS if fnmatch.fnmatch(n, pattern))


def get_entry(name: str) -> ModelEntry:
    _load_builtin()
    if name not in _MODELS:
        close = difflib.get_close_matches(name, list(_MODELS), n=3, cutoff=0.5)
        hint = f"; did you mean {', '.join(close)}?" if close else f"; known: {', '.join(sorted(_MODELS))}"
        raise ValueError(f"unknown model {name!r}{hint}")
    return _MODELS[name]


def resolve_options(name: str, **options: Any) -> dict[str, Any]:
    """The full keyword set a name builds with: its registered defaults overridden by `options`."""
    entry = get_entry(name)
    return {**entry.defaults, **{k: v for k, v in options.items() if v is not None}}


def create_model(name: str, **options: Any) -> nn.Module:
    """Build a registered model; `options` override the variant's defaults (e.g. `width`, `num_classes`).

    The model carries a `ModelMeta` record (architecture, resolved options, task); `mobilenetv2.load(path)`
    rebuilds a model from a weights file, `mobilenetv2.weights.load_into(model, path)` fills a built one.
    """
    entry = get_entry(name)
    resolved = resolve_options(name, **options)
    accepted = option_names(name)
    unknown = sorted(set(resolved) - accepted)
    if unknown:
        flag = "--" + unknown[0].replace("_", "-")
        raise ValueError(f"{name} has no option {unknown[0]!r} ({flag}); it takes: {', '.join(sorted(accepted))}")
    model = entry.builder(**resolved)
    return set_meta(model, ModelMeta(architecture=name, options=resolved, task=entry.task))


def option_names(name: str) -> set[str]:
    """The keyword options a registered model's builder takes."""
    params = inspect.signature(get_entry(name).builder).parameters.values()
    return {p.name for p in params if p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD) and p.name != "self"}


# The built-in variants, as data. MobileNetV2's presets are the paper's widths plus the official 1.3; the Table 4
# baselines follow their releases (ShuffleNet 2.0x doubles the stem to 48).
MOBILENET_V2_WIDTHS = {"035": 0.35, "050": 0.5, "075": 0.75, "100": 1.0, "130": 1.3, "140": 1.4}
MOBILENET_V1_WIDTHS = {"025": 0.25, "050": 0.5, "075": 0.75, "100": 1.0}
SHUFFLENET_V1_G3 = {"100": (1.0, 24), "150": (1.5, 24), "200": (2.0, 48)}


def _load_builtin() -> None:
    """Registers every built-in architecture once, on the first look-up (the registry imports the models;
    the models never import the registry)."""
    if "mobilenet_v2" in _MODELS:
        return
    from mobilenetv2.models import DeepLabV3MobileNetV2, MobileNetV1, MobileNetV2, NASNetA, ShuffleNetV1, SSDLite

    register_model("mobilenet_v2", MobileNetV2, {}, "MobileNetV2, any width (default 1.0)")
    for suffix, width in MOBILENET_V2_WIDTHS.items():
        register_model(f"mobilenet_v2_{suffix}", MobileNetV2, {"width": width}, f"MobileNetV2 {width}")
    for suffix, width in MOBILENET_V1_WIDTHS.items():
        register_model(f"mobilenet_v1_{suffix}", MobileNetV1, {"width": width}, f"MobileNetV1 {width}")
    for suffix, (scale, stem) in SHUFFLENET_V1_G3.items():
        options = {"groups": 3, "scale": scale, "stem_channels": stem}
        register_model(f"shufflenet_v1_g3_{suffix}", ShuffleNetV1, options, f"ShuffleNet v1 {scale}x, g=3")
    register_model("nasnet_a_mobile", NASNetA, {"num_cells": 12, "filters": 44}, "NASNet-A Mobile (4 @ 1056)")
    register_model(
        "deeplabv3_mobilenet_v2",
        DeepLabV3MobileNetV2,
        {},
        "Mobile DeepLabv3 (Table 7): MobileNetV2 at OS16/8 + image pooling [+ ASPP]; VOC's 21 classes",
        task="segmentation",
    )
    register_model("ssdlite_mobilenet_v2", SSDLite, {}, "SSDLite-MobileNetV2 (Sec. 6.2, TF OD API)", task="detection")


def task_of(name: str) -> str:
    """The task of a registered model ("classification", "detection" or "segmentation")."""
    return get_entry(name).task
