"""Figure 5: top-1 vs multiply-adds over the width x resolution grid, and latency vs multiply-adds measured here.

Accuracies are published ones (TF-slim READMEs for the MobileNet grids, the MobileNetV2 paper's Table 4 for
ShuffleNet and NASNet); multiply-adds are computed from our models at each resolution.
"""

import json
import logging
from collections.abc import Sequence
from pathlib import Path

from mobilenetv2.analysis import profile
from mobilenetv2.atomic import write_text_atomic
from mobilenetv2.paper.common import (
    fast_path,
    load_average,
    machine,
    markdown_table,
    measure_latency,
    save_figure,
    write_csv,
)
from mobilenetv2.paper.published import SLIM_V1, SLIM_V2, SOURCES, TABLE_4, Checkpoint
from mobilenetv2.registry import create_model

log = logging.getLogger(__name__)
FIELDS = (
    "family",
    "width",
    "resolution",
    "madds_ours_m",
    "madds_published_m",
    "top1",
    "source",
    "pixel1_ms",
    "latency_ms_here",
    "path",
)


def grid_point(family: str, model_name: str, width: float | None, row, source: str, *, repeats: int) -> dict:
    options = {} if width is None else {"width": width}
    model = create_model(model_name, **options).eval()
    madds = profile(model, row.resolution).macs / 1e6
    fast = fast_path(model)
    latency = measure_latency(fast or model, row.resolution, repeats=repeats) if repeats else None
    return {
        "family": family,
        "width": width,
        "resolution": row.resolution,
        "madds_ours_m": round(madds, 2),
        "madds_published_m": row.macs_m,
        "top1": row.top1,
        "source": source,
        "pixel1_ms": row.pixel1_ms,
        "latency_ms_here": None if latency is None else latency.median_ms,
        "path": "fast path" if fast is not None else "eval",
    }


def compute(*, repeats: int, v2: Sequence[Checkpoint], v1: Sequence[Checkpoint], baselines: Sequence) -> list[dict]:
    points = [grid_point("MobileNetV2", "mobilenet_v2", r.width, r, "slim-v2", repeats=repeats) for r in v2]
    points += [grid_point("MobileNetV1", "mobilenet_v1_100", r.width, r, "slim-v1", repeats=repeats) for r in v1]
    for row in baselines:
        if not row.model.startswith("mobilenet"):
            entry = Checkpoint(1.0, 224, row.madds_m, row.params_m, row.top1, top5=float("nan"))
            points.append(grid_point(row.network, row.model, None, entry, "mnv2-t4", repeats=repeats))
    return points


def plot(points: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (acc, lat) = plt.subplots(1, 2, figsize=(13, 5))
    for family, marker in (("MobileNetV2", "o"), ("MobileNetV1", "s")):
        for width in sorted({p["width"] for p in points if p["family"] == family}):
            series = sorted(
                (p for p in points if p["family"] == family and p["width"] == width), key=lambda p: p["madds_ours_m"]
            )
            xs = [p["madds_ours_m"] for p in series]
            acc.plot(xs, [p["top1"] for p in series], marker=marker, label=f"{family} {width:g}")
            lat.plot(xs, [p["latency_ms_here"] for p in series], marker=marker, label=f"{family} {width:g}")
    for p in points:
        if p["family"] not in ("MobileNetV2", "MobileNetV1"):
            acc.scatter(p["madds_ours_m"], p["top1"], marker="*", s=120, label=p["family"])
            lat.scatter(p["madds_ours_m"], p["latency_ms_here"], marker="*", s=120, label=p["family"])
    acc.set_xscale("log")
    acc.set_xlabel("multiply-adds (M, ours)")
    acc.set_ylabel("ImageNet top-1 (%, published)")
    acc.set_title("Accuracy vs MAdds")
    lat.set_xscale("log")
    lat.set_yscale("log")
    lat.set_xlabel("multiply-adds (M, ours)")
    lat.set_ylabel("CPU latency here (ms, batch 1, fp32)")
    lat.set_title("Latency vs MAdds (this machine)")
    for ax in (acc, lat):
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=7, ncol=2)
    save_figure(fig, path)
    plt.close(fig)


def mismatches(points: list[dict]) -> list[dict]:
    """Grid points whose published MAdds are 1M or more away from ours (more than rounding or truncation)."""
    return [p for p in points if abs(p["madds_published_m"] - p["madds_ours_m"]) >= 1.0]


def figure5(
    *,
    out_dir: str | Path,
    repeats: int = 5,
    v2: Sequence[Checkpoint] = SLIM_V2,
    v1: Sequence[Checkpoint] = SLIM_V1,
    baselines: Sequence = TABLE_4,
) -> str:
    """Write figure5.{png,csv,json,md} under `out_dir`; return the markdown. `repeats=0` skips latency;
    `v2`, `v1`, `baselines` pick the grid points (default: every published one)."""
    if repeats < 0:
        raise ValueError(f"repeats must be >= 0, got {repeats}")
    out = Path(out_dir)
    points = compute(repeats=repeats, v2=v2, v1=v1, baselines=baselines)
    cpu, load = machine(), load_average()
    write_csv(out / "figure5.csv", FIELDS, [[p[k] for k in FIELDS] for p in points])
    write_text_atomic(
        out / "figure5.json", json.dumps({"machine": cpu, "load_average": load, "points": points}, indent=1)
    )
    plot(points, out / "figure5.png")
    rows = [[p[k] if p[k] is not None else "-" for k in FIELDS] for p in points]
    odd = mismatches(points)
    notes = [
        "Sources: " + "; ".join(f"{k} = {SOURCES[k]}" for k in ("slim-v2", "slim-v1", "mnv2-t4")),
        f"Latency: batch 1, fp32, one thread, median of {repeats} runs, on {cpu} (load average {load}); "
        "MobileNetV2 through the fast path (`for_inference`), the others as plain eval models.",
        "Published MAdds 1M or more away from ours: "
        + (
            ", ".join(
                f"{p['family']} {p['width']}@{p['resolution']} ({p['madds_published_m']:g} vs {p['madds_ours_m']})"
                for p in odd
            )
            or "none"
        ),
    ]
    text = markdown_table(FIELDS, rows) + "\n\n" + "\n\n".join(notes)
    write_text_atomic(out / "figure5.md", text + "\n")
    return text
