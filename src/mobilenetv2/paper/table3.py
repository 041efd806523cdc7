"""Table 3: the largest tensor at each spatial size (16-bit, batch 1, "Kb" = 1000 bytes), computed from our
models in three ways next to the paper's printed numbers, plus the peak with Sec. 5.1's split trick.

  - between ops: only tensors handed from one op to the next (a bottleneck, or any unit, is one op; the
    tensors inside it are never whole under the split trick). This is the paper's stated method.
  - every tensor: every conv/pool/unit output, as a plain layer-by-layer execution materializes them.
  - at input size: between-op tensors, each counted at the spatial size of its op's *input* (how the paper's
    MobileNetV2 column reads for 56x56, 28x28 and 14x14: Table 2 lists each row by its input size).
"""

import json
import math
from pathlib import Path

import torch
from torch import nn

from mobilenetv2.analysis import profile
from mobilenetv2.analysis.memory import memory_report
from mobilenetv2.analysis.profile import units
from mobilenetv2.atomic import write_text_atomic
from mobilenetv2.paper.common import markdown_table, save_figure, write_csv
from mobilenetv2.paper.published import TABLE_3, TABLE_3_MAX_KB, TABLE_3_SIZES
from mobilenetv2.registry import create_model

RESOLUTION = 224
BYTES = 2  # the paper's 16-bit floats
SPLITS = (1, 2, 4, 8)
# ShuffleNet 2x with g=2 (ShuffleNet Table 1: 200/400/800 at 1x): the channel counts the paper's column shows.
SHUFFLENET_G2_2X = {"groups": 2, "scale": 2.0, "stem_channels": 48}


def _size(shape: tuple[int, ...]) -> str:
    return f"{shape[2]}x{shape[3]}" if len(shape) == 4 else "1x1"


def _best(pairs: list[tuple[str, int, int]]) -> dict[str, tuple[int, float]]:
    """(size, channels, elements) -> {size: (max channels, max Kb)}."""
    out: dict[str, tuple[int, float]] = {}
    for size, channels, elements in pairs:
        old = out.get(size, (0, 0.0))
        out[size] = (max(old[0], channels), max(old[1], round(elements * BYTES / 1000, 1)))
    return out


@torch.no_grad()
def every_tensor(model: nn.Module) -> dict[str, tuple[int, float]]:
    """Largest conv / pool / unit output at each size in a plain forward pass."""
    shapes: list[tuple[int, ...]] = []
    kinds = (nn.Conv2d, nn.MaxPool2d, nn.AvgPool2d, nn.AdaptiveAvgPool2d, nn.Linear)
    modules = [m for m in model.modules() if isinstance(m, kinds)] + [m for _, m in units(model)]
    hooks = [m.register_forward_hook(lambda _m, _a, out: shapes.append(tuple(out.shape))) for m in modules]
    try:
        model.eval()(torch.zeros(1, 3, RESOLUTION, RESOLUTION))
    finally:
        for h in hooks:
            h.remove()
    return _best([(_size(s), s[1], math.prod(s)) for s in shapes])


def model_views(model: nn.Module) -> dict:
    prof = profile(model, RESOLUTION, bytes_per_element=BYTES)
    between = {r.size: (r.max_channels, r.kb) for r in prof.memory.table3}
    at_input = []
    for op in prof.memory.ops:
        in_shape, out_shape = _unit_shape(prof, op.units[0], "input"), _unit_shape(prof, op.units[-1], "output")
        channels, area = out_shape[1], math.prod(in_shape[2:]) if len(in_shape) == 4 else 1
        at_input.append((_size(in_shape), channels, channels * area))  # c x (input size)^2, Table 2's reading
    groups = model.one_op_groups() if hasattr(model, "one_op_groups") else None
    reports = {t: memory_report(prof.layers, groups, splits=t, bytes_per_element=BYTES) for t in SPLITS}
    peaks = {t: r.predicted_peak_bytes for t, r in reports.items()}
    return {
        "between_ops": between,
        "every_tensor": every_tensor(model),
        "at_input_size": _best(at_input),
        "peak_kb": {str(t): round(b / 1000, 1) for t, b in peaks.items()},
        "peak_one_op_kb": round(prof.memory.peak_one_op_bytes / 1000, 1),
    }


def _unit_shape(prof, name: str, which: str) -> tuple[int, ...]:
    row = next(r for r in prof.layers if r.name == name)
    return row.input_shape if which == "input" else row.output_shape


def _fmt(cell) -> str:
    return "-" if cell is None else f"{cell[0]}/{cell[1]:g}"


def compute() -> dict:
    views = {name: model_views(create_model(name)) for name in TABLE_3}
    from mobilenetv2.models import ShuffleNetV1

    views["shufflenet_v1_g2_200"] = model_views(ShuffleNetV1(**SHUFFLENET_G2_2X))
    return views


def render(views: dict) -> tuple[str, list[list]]:
    headers = ["size", "view"] + list(views)
    rows, csv_rows = [], []
    for i, size in enumerate(TABLE_3_SIZES):
        paper = [_fmt((TABLE_3[n][i].channels, TABLE_3[n][i].kb)) if n in TABLE_3 else "-" for n in views]
        rows.append([size, "**paper**", *paper])
        for view in ("between_ops", "every_tensor", "at_input_size"):
            rows.append([size, view.replace("_", " "), *(_fmt(v[view].get(size)) for v in views.values())])
            csv_rows += [[size, view, n, *v[view].get(size, (None, None))] for n, v in views.items()]
    max_row = ["max", "**paper**", *(f"{TABLE_3_MAX_KB[n]}K" if n in TABLE_3_MAX_KB else "-" for n in views)]
    rows.append(max_row)
    for view in ("between_ops", "every_tensor"):
        rows.append(
            ["max", view.replace("_", " "), *(f"{max(kb for _, kb in v[view].values()):g}K" for v in views.values())]
        )
    table = markdown_table(headers, rows)
    peak_headers = ["model", "one op, in + out (t -> inf)", *(f"t = {t}" for t in SPLITS)]
    peak_rows = [[n, v["peak_one_op_kb"], *(v["peak_kb"][str(t)] for t in SPLITS)] for n, v in views.items()]
    peaks = markdown_table(peak_headers, peak_rows)
    text = (
        f"Channels/Kb of the largest tensor at each size, {RESOLUTION}x{RESOLUTION} input, 16-bit, batch 1 "
        "(Kb = 1000 bytes).\n\n"
        f"{table}\n\nPeak live activation memory in Kb (16-bit) with Sec. 5.1's split into t slices: an op's input + "
        "output + 1/t of its inner tensors (only MobileNetV2's bottlenecks declare inner tensors; the other "
        f"networks are shown with t-independent peaks).\n\n{peaks}"
    )
    return text, csv_rows


def plot(views: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(15, 4), sharey=True)
    x = range(len(TABLE_3_SIZES))
    for ax, name in zip(axes, TABLE_3, strict=True):
        series = {
            "paper": [c.kb for c in TABLE_3[name]],
            "ours, between ops": [views[name]["between_ops"].get(s, (0, 0))[1] for s in TABLE_3_SIZES],
            "ours, every tensor": [views[name]["every_tensor"].get(s, (0, 0))[1] for s in TABLE_3_SIZES],
        }
        for k, (label, values) in enumerate(series.items()):
            ax.bar([i + (k - 1) * 0.27 for i in x], values, 0.27, label=label)
        ax.set_yscale("log")
        ax.set_title(name)
        ax.set_xticks(list(x))
        ax.set_xticklabels(TABLE_3_SIZES, fontsize=8)
    axes[0].set_ylabel("largest tensor (Kb, 16-bit)")
    axes[0].legend(fontsize=8)
    save_figure(fig, path)
    plt.close(fig)


def table3(*, out_dir: str | Path) -> str:
    """Write table3.{md,csv,json,png} under `out_dir`; return the markdown."""
    out = Path(out_dir)
    views = compute()
    text, csv_rows = render(views)
    write_csv(out / "table3.csv", ["size", "view", "model", "channels", "kb"], csv_rows)
    write_text_atomic(out / "table3.json", json.dumps(views, indent=1))
    write_text_atomic(out / "table3.md", text + "\n")
    plot(views, out / "table3.png")
    return text
