"""What a model is, as one typed record: architecture, options, task, preprocessing, class names, provenance.

`create_model` attaches it, weights files and exports carry it (as the JSON header), loading reattaches it, so
one file rebuilds a working model. `ModelMeta.from_header` is the one place a header read from a file is
checked, before anything is built from it.
"""

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any

from torch import nn

from mobilenetv2.errors import UserError
from mobilenetv2.preprocessing import Preprocessing, default_preprocessing

FORMAT_VERSION = 1
MAX_SIDE = 8192  # pixels: the largest input_size / resize a header may ask for
TASKS = ("classification", "detection", "segmentation")


@dataclass(frozen=True)
class ModelMeta:
    architecture: str
    options: dict[str, Any] = field(default_factory=dict)
    task: str = "classification"
    preprocessing: Preprocessing = field(default_factory=default_preprocessing)
    class_names: tuple[str, ...] | None = None
    provenance: dict[str, Any] = field(default_factory=lambda: {"source": "mobilenetv2"})

    def replace(self, **changes: Any) -> "ModelMeta":
        if "class_names" in changes and changes["class_names"] is not None:
            changes["class_names"] = tuple(changes["class_names"])
        return dataclasses.replace(self, **changes)

    def to_header(self) -> dict[str, Any]:
        """The JSON object weights files and exports store (key "mobilenetv2")."""
        return {
            "format_version": FORMAT_VERSION,
            "architecture": self.architecture,
            "task": self.task,
            "options": dict(self.options),
            "preprocessing": self.preprocessing.to_dict(),
            "class_names": list(self.class_names) if self.class_names is not None else None,
            "provenance": dict(self.provenance),
        }

    @classmethod
    def from_header(cls, header: Any, source: str) -> "ModelMeta":
        """Check a header's shape and types (UserError naming `source` and the field), then build the record."""
        if not isinstance(header, dict):
            raise UserError(f"{source}: the mobilenetv2 header is not a JSON object")
        version = header.get("format_version", 0)
        if not isinstance(version, int) or isinstance(version, bool):
            raise UserError(f"{source}: header format_version must be an integer, got {version!r}")
        if version > FORMAT_VERSION:
            raise UserError(f"{source} uses weights format {version}; this version reads up to {FORMAT_VERSION}")
        architecture = header.get("architecture")
        if not isinstance(architecture, str) or not architecture:
            raise UserError(f"{source}: the mobilenetv2 header names no architecture")
        task = header.get("task", "classification")
        if task not in TASKS:
            raise UserError(f"{source}: header task must be one of {', '.join(TASKS)}, got {task!r}")
        options = _mapping(header.get("options"), "options", source)
        for key, value in options.items():
            if isinstance(value, float) and not math.isfinite(value):
                raise UserError(f"{source}: header option {key} is not finite ({value!r})")
        names = header.get("class_names")
        if names is not None and (not isinstance(names, list) or not all(isinstance(n, str) for n in names)):
            raise UserError(f"{source}: header class_names must be a list of strings")
        return cls(
            architecture=architecture,
            options=options,
            task=task,
            preprocessing=_preprocessing(header.get("preprocessing"), source),
            class_names=tuple(names) if names is not None else None,
            provenance=_mapping(header.get("provenance"), "provenance", source) or {"source": "unknown"},
        )


def _mapping(value: Any, name: str, source: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise UserError(f"{source}: header {name} must be a mapping, got {type(value).__name__}")
    return dict(value)


def _preprocessing(value: Any, source: str) -> Preprocessing:
    d = _mapping(value, "preprocessing", source)
    try:
        pre = Preprocessing.from_dict(d)
        sizes = [int(s) for s in pre.input_size]
    except (TypeError, ValueError):
        raise UserError(f"{source}: header preprocessing is malformed ({d!r})") from None
    ok = len(sizes) == 2 and all(1 <= s <= MAX_SIDE for s in sizes)
    ok = ok and isinstance(pre.resize, int) and 1 <= pre.resize <= 2 * MAX_SIDE
    ok = ok and len(pre.mean) == len(pre.std) and all(isinstance(v, int | float) and 0 < v < math.inf for v in pre.std)
    ok = ok and all(isinstance(v, int | float) and math.isfinite(v) for v in pre.mean)
    if not ok:
        raise UserError(
            f"{source}: header preprocessing has invalid sizes (input_size 1..{MAX_SIDE} px, resize up to "
            f"twice that) or statistics ({d!r})"
        )
    return pre


def meta_of(model: nn.Module) -> ModelMeta:
    """The record attached by `create_model` / `load`; UserError for a model built some other way."""
    meta = getattr(model, "meta", None)
    if not isinstance(meta, ModelMeta):
        raise UserError(
            f"this {type(model).__name__} carries no mobilenetv2 metadata; build it with mobilenetv2.create_model "
            "or mobilenetv2.load"
        )
    return meta


def find_meta(model: nn.Module) -> ModelMeta | None:
    """The record, or None for a model built outside this package (a torchvision model in a benchmark)."""
    meta = getattr(model, "meta", None)
    return meta if isinstance(meta, ModelMeta) else None


def set_meta(model: nn.Module, meta: ModelMeta) -> nn.Module:
    """Attach (or replace) the record; the one place it is set."""
    object.__setattr__(model, "meta", meta)
    return model
