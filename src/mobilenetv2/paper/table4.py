"""Table 4: params and multiply-adds of our models next to the paper's columns, with CPU latency measured here."""

import json
import logging
from collections.abc import Sequence
from pathlib import Path

import torch

from mobilenetv2.analysis import profile
from mobilenetv2.atomic import write_text_atomic
from mobilenetv2.paper.common import (
    fast_path,
    load_average,
    machine,
    markdown_table,
    measure_latency,
    params_without_bn,
    save_figure,
    slim_checkpoint_variables,
    write_csv,
)
from mobilenetv2.paper.published import SOURCES, TABLE_4
from mobilenetv2.registry import create_model

log = logging.getLogger(__name__)
RESOLUTION = 224
HEADERS = (
    "network",
    "model",
    "params (ours)",
    "params (paper)",
    "params (own source; ours counted its way)",
    "MAdds (ours)",
    "MAdds (paper)",
    "MAdds (own source)",
    "top-1 (paper)",
    "Pixel 1 ms (paper)",
    "CPU ms here, eval",
    "CPU ms here, fast path",
)


def own_convention_params(model: torch.nn.Module, source: str) -> int:
    """Our parameter count in the convention the network's own source uses (see published.py)."""
    if source == "slim-v1":
        return slim_checkpoint_variables(model)
    if source == "slim-v2":
        return params_without_bn(model)
    return sum(p.numel() for p in model.parameters())


def measure_row(row, *, repeats: int) -> dict:
    model = create_model(row.model).eval()
    prof = profile(model, RESOLUTION)
    eval_ms = measure_latency(model, RESOLUTION, repeats=repeats)
    fast = fast_path(model)
    fast_ms = measure_latency(fast, RESOLUTION, repeats=repeats) if fast is not None else None
    fast_text = "no fast path" if fast_ms is None else f"{fast_ms.median_ms:.2f} ms fast path"
    log.info("%s: %.2f ms eval, %s (median of %d, batch 1)", row.model, eval_ms.median_ms, fast_text, repeats)
    return {
        "network": row.network,
        "model": row.model,
        "params": prof.params,
        "params_paper_m": row.params_m,
        "own_source": row.own_source,
        "own_params_m": row.own_params_m,
        "params_own_convention": own_convention_params(model, row.own_source),
        "madds": prof.macs,
        "madds_paper_m": row.madds_m,
        "own_madds_m": row.own_madds_m,
        "top1_paper": row.top1,
        "pixel1_ms_paper": row.cpu_ms,
        "eval_ms": eval_ms.median_ms,
        "eval_min_ms": eval_ms.min_ms,
        "fast_ms": None if fast_ms is None else fast_ms.median_ms,
        "fast_min_ms": None if fast_ms is None else fast_ms.min_ms,
    }


def as_cells(r: dict) -> list:
    own = f"{r['own_params_m']}M ({r['params_own_convention']:,})"
    return [
        r["network"],
        f"`{r['model']}`",
        f"{r['params']:,}",
        f"{r['params_paper_m']}M",
        own,
        f"{r['madds'] / 1e6:.1f}M",
        f"{r['madds_paper_m']:g}M",
        f"{r['own_madds_m']:g}M",
        r["top1_paper"],
        r["pixel1_ms_paper"] if r["pixel1_ms_paper"] is not None else "-",
        r["eval_ms"],
        r["fast_ms"] if r["fast_ms"] is not None else "-",
    ]


def plot(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = [r["network"] for r in rows]
    x = range(len(rows))
    fig, axes = plt.subplots(1, 3, figsize=(15, 4))
    panels = (
        ("parameters (M)", [r["params"] / 1e6 for r in rows], [r["params_paper_m"] for r in rows]),
        ("multiply-adds (M)", [r["madds"] / 1e6 for r in rows], [r["madds_paper_m"] for r in rows]),
    )
    for ax, (title, ours, paper) in zip(axes, panels, strict=False):
        ax.bar([i - 0.2 for i in x], ours, 0.4, label="ours")
        ax.bar([i + 0.2 for i in x], paper, 0.4, label="paper (Table 4)")
        ax.set_title(title)
    ax = axes[2]
    ax.bar([i - 0.2 for i in x], [r["eval_ms"] for r in rows], 0.4, label="here, eval")
    ax.bar([i + 0.2 for i in x], [r["fast_ms"] or 0 for r in rows], 0.4, label="here, fast path")
    ax.scatter(list(x), [r["pixel1_ms_paper"] or float("nan") for r in rows], color="k", label="Pixel 1 (paper)")
    ax.set_title("CPU latency, batch 1 (ms)")
    for ax in axes:
        ax.set_xticks(list(x))
        ax.set_xticklabels(names, rotation=30, ha="right", fontsize=8)
        ax.legend(fontsize=8)
    save_figure(fig, path)
    plt.close(fig)


def table4(*, out_dir: str | Path, repeats: int = 20, models: Sequence[str] | None = None) -> str:
    """Write table4.{csv,md,json,png} under `out_dir`; return the markdown. `models` picks rows by our name."""
    if repeats < 1:
        raise ValueError(f"repeats must be >= 1, got {repeats}")
    out = Path(out_dir)
    picked = [row for row in TABLE_4 if models is None or row.model in models]
    if not picked:
        raise ValueError(f"no Table 4 row for {models}; known: {', '.join(r.model for r in TABLE_4)}")
    rows = [measure_row(row, repeats=repeats) for row in picked]
    cpu, load = machine(), load_average()
    cells = [as_cells(r) for r in rows]
    write_csv(out / "table4.csv", list(rows[0]), [list(r.values()) for r in rows])
    write_text_atomic(out / "table4.json", json.dumps({"machine": cpu, "load_average": load, "rows": rows}, indent=1))
    plot(rows, out / "table4.png")
    notes = [
        f"Ours at {RESOLUTION}x{RESOLUTION}, 1000 classes. Params = module parameters (BN gamma/beta included, "
        "running statistics excluded); MAdds = conv + classifier multiply-adds.",
        f"Latency: batch 1, fp32, one thread (the paper used one phone core), median of {repeats} runs after 2 "
        f"warm-up runs (minimum in table4.json), on {cpu} "
        f"(1-minute load average {load} while measuring: the machine is shared). 'eval' is the plain model "
        "under torch.inference_mode; 'fast path' is `mobilenetv2.infer.for_inference` (BN folded, "
        "channels_last), which supports MobileNetV2 only.",
        "Own source: " + "; ".join(f"{k} = {SOURCES[k]}" for k in sorted({r["own_source"] for r in rows})),
    ]
    text = "\n\n".join([markdown_table(HEADERS, cells), *notes])
    write_text_atomic(out / "table4.md", text + "\n")
    return text
