"""Figure 6: the ablations, trained here. (a) linear vs ReLU6 bottleneck; (b) where the shortcut goes: between
bottlenecks (the paper's), between expansions, or none. Every variant gets the same budget and seeds; the
curves show the mean over seeds with the min-max spread.
"""

import csv
import json
import logging
import multiprocessing
import statistics
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path

from tqdm import tqdm

from mobilenetv2.atomic import write_text_atomic
from mobilenetv2.paper.common import markdown_table, save_figure, write_csv

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Variant:
    key: str
    label: str
    panels: tuple[str, ...]  # "a" (bottleneck activation) and/or "b" (shortcut placement)
    options: dict = field(default_factory=dict)


# The paper's network (linear bottleneck, bottleneck shortcut) is the baseline of both panels: trained once.
VARIANTS = (
    Variant("linear_bottleneck", "linear bottleneck, shortcut between bottlenecks", ("a", "b"), {}),
    Variant("relu6_bottleneck", "ReLU6 in bottleneck", ("a",), {"bottleneck_activation": "relu6"}),
    Variant("expansion_shortcut", "shortcut between expansions", ("b",), {"shortcut": "expansion"}),
    Variant("no_shortcut", "no residual connection", ("b",), {"shortcut": "none"}),
)


@dataclass(frozen=True)
class Budget:
    epochs: int = 4
    seeds: int = 2
    width: float = 0.35
    resolution: int = 32
    dataset: str | None = "digits"
    data: str | None = None  # an ImageFolder with train/ and val/ (replaces `dataset`)
    max_steps: int = 0  # cap on optimizer steps per run (0: the full epochs); for smoke tests
    jobs: int = 2  # runs trained at once, in separate processes with one thread each


def run_one(variant: Variant, seed: int, budget: Budget, run_dir: Path) -> list[dict]:
    """Train one variant with one seed; return its per-epoch metrics rows."""
    from mobilenetv2.train import TrainConfig, train

    options = {"width": budget.width, "bottleneck_activation": "linear", "shortcut": "bottleneck", **variant.options}
    train(
        TrainConfig(
            model="mobilenet_v2",
            model_options=options,
            dataset=None if budget.data else budget.dataset,
            data=budget.data,
            resolution=budget.resolution,
            recipe="digits",
            epochs=budget.epochs,
            seed=seed,
            max_steps=budget.max_steps,
            threads=1 if budget.jobs > 1 else None,
            out=str(run_dir),
            progress=False,
        )
    )
    with (run_dir / "metrics.csv").open() as f:
        return [{"variant": variant.key, "seed": seed, **row} for row in csv.DictReader(f)]


def summarize(rows: list[dict]) -> dict[str, dict]:
    """Per variant: val top-1 per epoch as mean/min/max over seeds, and the final epoch's mean/std."""
    out = {}
    for v in VARIANTS:
        by_epoch: dict[int, list[float]] = {}
        for r in rows:
            if r["variant"] == v.key:
                by_epoch.setdefault(int(r["epoch"]), []).append(float(r["val_top1"]))
        if not by_epoch:
            continue
        epochs = sorted(by_epoch)
        final = by_epoch[epochs[-1]]
        out[v.key] = {
            "epochs": epochs,
            "mean": [statistics.fmean(by_epoch[e]) for e in epochs],
            "min": [min(by_epoch[e]) for e in epochs],
            "max": [max(by_epoch[e]) for e in epochs],
            "final_mean": statistics.fmean(final),
            "final_std": statistics.stdev(final) if len(final) > 1 else 0.0,
            "seeds": len(final),
        }
    return out


def plot(summary: dict[str, dict], budget: Budget, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    fig, axes = plt.subplots(1, 2, figsize=(12, 4.5), sharey=True)
    titles = {"a": "(a) impact of non-linearity in the bottleneck", "b": "(b) impact of residual blocks"}
    for ax, panel in zip(axes, ("a", "b"), strict=True):
        for v in VARIANTS:
            s = summary.get(v.key)
            if s is None or panel not in v.panels:
                continue
            (line,) = ax.plot(s["epochs"], [100 * m for m in s["mean"]], marker="o", label=v.label)
            lo, hi = [100 * m for m in s["min"]], [100 * m for m in s["max"]]
            ax.fill_between(s["epochs"], lo, hi, color=line.get_color(), alpha=0.2)
        ax.set_title(titles[panel])
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(True, alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=8)
    source = budget.data or budget.dataset
    axes[0].set_ylabel(f"val top-1 (%), {source}, width {budget.width:g} @ {budget.resolution}")
    save_figure(fig, path)
    plt.close(fig)


def figure6(
    *,
    out_dir: str | Path,
    budget: Budget,
    runs_dir: str | Path | None = None,
    variants: Sequence[str] | None = None,
) -> str:
    """Train every variant x seed, write figure6.{png,csv,json,md} under `out_dir`; return the markdown.

    Runs go seed by seed (every variant with seed 0 first) and the outputs are rewritten after each run, so an
    interrupted ablation still leaves a complete figure for the seeds it finished. `variants` picks by key.
    """
    if budget.epochs < 1 or budget.seeds < 1 or budget.jobs < 1:
        raise ValueError(
            f"--epochs, --seeds and --jobs must be >= 1, got {budget.epochs}, {budget.seeds}, {budget.jobs}"
        )
    chosen = [v for v in VARIANTS if variants is None or v.key in variants]
    if not chosen:
        raise ValueError(f"no variant among {variants}; known: {', '.join(v.key for v in VARIANTS)}")
    out = Path(out_dir)
    runs = Path(runs_dir) if runs_dir is not None else out / "figure6_runs"
    jobs = [(v, s, budget, runs / v.key / f"seed{s}") for s in range(budget.seeds) for v in chosen]
    rows: list[dict] = []
    text = ""
    if budget.jobs > 1:
        # On a few shared cores, single-threaded runs side by side waste less time in thread synchronisation.
        with ProcessPoolExecutor(budget.jobs, mp_context=multiprocessing.get_context("spawn")) as pool:
            futures = [pool.submit(run_one, *job) for job in jobs]
            for future in tqdm(as_completed(futures), total=len(futures), desc="figure6 runs", unit="run"):
                rows += future.result()
                text = write_outputs(sorted(rows, key=lambda r: (r["variant"], r["seed"])), budget, out)
        return text
    for job in tqdm(jobs, desc="figure6 runs", unit="run"):
        rows += run_one(*job)
        text = write_outputs(rows, budget, out)
    return text


def mean_and_spread(s: dict) -> str:
    """ "86.2 ± 2.2" over several seeds; one seed has no spread, so just "86.2 (1 seed)"."""
    if s["seeds"] < 2:
        return f"{100 * s['final_mean']:.1f} (1 seed)"
    return f"{100 * s['final_mean']:.1f} ± {100 * s['final_std']:.1f}"


def write_outputs(rows: list[dict], budget: Budget, out: Path) -> str:
    summary = summarize(rows)
    fields = list(rows[0])
    write_csv(out / "figure6.csv", fields, [[r.get(k) for k in fields] for r in rows])
    write_text_atomic(out / "figure6.json", json.dumps({"budget": budget.__dict__, "summary": summary}, indent=1))
    plot(summary, budget, out / "figure6.png")
    table = [
        [v.label, ", ".join(v.panels), s["seeds"], mean_and_spread(s)] for v in VARIANTS if (s := summary.get(v.key))
    ]
    text = (
        f"MobileNetV2 width {budget.width:g} at {budget.resolution}x{budget.resolution} on "
        f"{budget.data or budget.dataset}, recipe 'digits', {budget.epochs} epochs, same budget and seeds for "
        "every variant. Final-epoch validation top-1 over the seeds run:\n\n"
        + markdown_table(["variant", "panel", "seeds", "final val top-1 (%) mean ± std"], table)
    )
    write_text_atomic(out / "figure6.md", text + "\n")
    return text
