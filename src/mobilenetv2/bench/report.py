"""bench.json, a markdown table (bench.md) and a bar plot (bench.png) of a latency/throughput run."""

import json
from pathlib import Path

from mobilenetv2.atomic import atomic_path, write_text_atomic


def format_table(result: dict) -> str:
    """Markdown: one row per path, batch-1 latency (median, p90), throughput at batch N, ratio to torchvision."""
    n = result["batch_size"]
    lines = [
        f"| path | group | runtime | precision | latency b1 median ms | p90 ms | vs torchvision | "
        f"throughput b{n} img/s |",
        "|---|---|---|---|---:|---:|---:|---:|",
    ]
    for r in sorted(result["rows"], key=lambda r: r["latency"]["median_ms"]):
        ratio = r.get("latency_vs_torchvision")
        lines.append(
            f"| {r['name']} | {r['group']} | {r['runtime']} | {r['precision']} | {r['latency']['median_ms']:.2f} | "
            f"{r['latency']['p90_ms']:.2f} | {f'{ratio:.2f}x' if ratio else '-'} | "
            f"{r['throughput']['images_per_second']:.1f} |"
        )
    m = result["machine"]
    h, w = result["resolution"]
    lines += [
        "",
        f"{result['model']}, {h}x{w}, {m['cpu']}, {m['threads']} threads, load average at start "
        f"{m['load_average'][0]:.2f}{timing_load(m)}; torch {m['torch']}, onnxruntime {m['onnxruntime']}, "
        f"openvino {m['openvino']}; "
        f"OpenMP wait policy: {m['omp_wait_policy']}; malloc: {m.get('malloc', 'C library default')}.",
    ]
    summary = {k: v for k, v in result["summary"].items() if v is not None}
    if summary:
        text = ", ".join(f"{k} = {v:.3f}" if isinstance(v, float) else f"{k} = {v}" for k, v in summary.items())
        lines.append(f"Ratios of medians (b1: batch 1, bN: the throughput batch; others batch 1): {text}.")
    return "\n".join(lines) + "\n"


def timing_load(machine: dict) -> str:
    loads = machine.get("load_average_timing")
    if not loads:
        return ""
    return f" (when timing started {loads[0]:.2f}, after batch 1 {loads[1]:.2f}, after batch N {loads[2]:.2f})"


def plot(result: dict, path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = sorted(result["rows"], key=lambda r: -r["latency"]["median_ms"])
    labels = [f"{r['name']} ({r['precision']})" for r in rows]
    colors = ["tab:blue" if r["group"] == "project" else "tab:gray" for r in rows]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(12, 0.45 * len(rows) + 1.5), sharey=True)
    medians = [r["latency"]["median_ms"] for r in rows]
    p90 = [r["latency"]["p90_ms"] - r["latency"]["median_ms"] for r in rows]
    ax1.barh(labels, medians, xerr=[[0] * len(rows), p90], color=colors)
    ax1.set_xlabel("batch-1 latency, ms (bar: median, whisker: p90)")
    ax2.barh(labels, [r["throughput"]["images_per_second"] for r in rows], color=colors)
    ax2.set_xlabel(f"throughput at batch {result['batch_size']}, images/s")
    m = result["machine"]
    fig.suptitle(
        f"{result['model']} {result['resolution'][0]}x{result['resolution'][1]} on {m['cpu']}, "
        f"{m['threads']} threads (blue: this project, gray: torchvision)"
    )
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)
    return path


def write_outputs(result: dict, out_dir: Path) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    write_text_atomic(out_dir / "bench.json", json.dumps(result, indent=1) + "\n")
    write_text_atomic(out_dir / "bench.md", format_table(result))
    plot(result, out_dir / "bench.png")
