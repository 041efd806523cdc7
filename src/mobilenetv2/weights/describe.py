"""`describe_file`: what a weights file holds (header, tensors, parameters, multiply-adds), as text or JSON."""

import json
import os
from pathlib import Path
from typing import Any

from mobilenetv2.meta import meta_of
from mobilenetv2.weights.format import load, read_header


def file_summary(path: str | os.PathLike) -> dict[str, Any]:
    """Header plus the model's parameters and multiply-adds at the file's input size."""
    from mobilenetv2.analysis import profile

    header = read_header(path)
    model = load(path)
    size = tuple(meta_of(model).preprocessing.input_size)
    result = profile(model, size)
    names = header.get("class_names")
    return {
        "path": str(path),
        "bytes": Path(path).stat().st_size,
        "architecture": header["architecture"],
        "options": header.get("options", {}),
        "preprocessing": header.get("preprocessing"),
        "num_classes": getattr(model, "num_classes", None),
        "class_names": names,
        "provenance": header.get("provenance"),
        "params": result.params,
        "macs": result.macs,
        "resolution": list(size),
    }


def describe_file(path: str | os.PathLike, as_json: bool = False) -> str:
    summary = file_summary(path)
    if as_json:
        return json.dumps(summary, indent=1)
    return "\n".join(_lines(summary))


def _lines(s: dict[str, Any]) -> list[str]:
    pre = s["preprocessing"] or {}
    names = s["class_names"]
    classes = f"{s['num_classes']}"
    if names:
        classes += f" named ({', '.join(names[:3])}, ...)" if len(names) > 3 else f" named ({', '.join(names)})"
    else:
        classes += " (unnamed)"
    options = " ".join(f"{k}={v}" for k, v in sorted(s["options"].items()))
    h, w = pre.get("input_size", ["?", "?"])
    prov = s["provenance"] or {}
    lines = [
        f"file           {s['path']} ({s['bytes'] / 1e6:.1f} MB)",
        f"architecture   {s['architecture']}",
        f"options        {options}",
        f"preprocessing  resize {pre.get('resize')} ({pre.get('interpolation')}), center crop {h}x{w}, "
        f"mean {_floats(pre.get('mean'))} std {_floats(pre.get('std'))}",
        f"classes        {classes}",
        f"params         {s['params']:,}",
        f"MACs           {s['macs']:,} at {s['resolution'][0]}x{s['resolution'][1]}",
    ]
    for key in ("source", "file", "sha256", "layout", "converted_by"):
        if prov.get(key):
            lines.append(f"provenance     {key}: {prov[key]}")
    for note in prov.get("notes") or []:
        lines.append(f"provenance     note: {note}")
    check = prov.get("self_check")
    if check:
        diff = "n/a" if check.get("max_abs_diff") is None else f"{check['max_abs_diff']:.3g}"
        lines.append(
            f"self-check     {check.get('compared')} vs {check.get('reference') or 'nothing'}: max abs diff {diff}"
        )
    return lines


def _floats(values: Any) -> str:
    return "(" + ", ".join(f"{v:g}" for v in values or []) + ")"
