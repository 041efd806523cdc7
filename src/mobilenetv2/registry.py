"""A strict, tiny model registry: one builder per architecture, variants registered as data."""

import difflib
import fnmatch
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from torch import nn


@dataclass(frozen=True)
class ModelEntry:
    name: str
    builder: Callable[..., nn.Module]
    defaults: dict[str, Any] = field(default_factory=dict)
    description: str = ""
    task: str = "classification"


# What a model does decides how `train`, `eval`, `predict`, `export` and `info` treat it.
TASKS = ("classification", "detection", "segmentation")
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


def create_model(name: str, *, weights: str | None = None, **options: Any) -> nn.Module:
    """Build a registered model; `options` override the variant's defaults (e.g. `width`, `num_classes`).

    With `weights`, load a weights file into exactly that architecture (see `mobilenetv2.weights`).
    """
    entry = get_entry(name)
    resolved = resolve_options(name, **options)
    try:
        model = entry.builder(**resolved)
    except TypeError as exc:
        raise ValueError(f"{name}: {exc}") from None
    model.model_name = name
    model.model_options = resolved
    if weights is not None:
        from mobilenetv2.weights import load_into

        load_into(model, weights)
    return model


def _load_builtin() -> None:
    # Importing the models package registers every built-in architecture exactly once.
    import mobilenetv2.models  # noqa: F401


def task_of(name: str) -> str:
    """The task of a registered model ("classification", "detection" or "segmentation")."""
    return get_entry(name).task
