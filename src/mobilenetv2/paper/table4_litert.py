"""Table 4's "CPU" column, regenerated: each Table 4 model of ours as a LiteRT (.tflite) file, run batch 1 in
ai-edge-litert's interpreter with the XNNPACK delegate on one thread, next to the paper's Pixel 1 milliseconds.

The paper timed TF-Lite on one large core of a Pixel 1; this runs the same runtime family on one core of this
machine's CPU, so only the ratios between models compare (each model's time over MobileNetV2 1.0's, in both
columns). Needs `pip install mobilenetv2[tflite]`; a model the converter refuses gets its reason in the row.
"""

import json
import logging
import statistics
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from mobilenetv2.analysis import profile
from mobilenetv2.atomic import write_text_atomic
from mobilenetv2.paper.common import load_average, machine, markdown_table, write_csv
from mobilenetv2.paper.published import TABLE_4
from mobilenetv2.registry import create_model

log = logging.getLogger(__name__)
RESOLUTION = 224
REFERENCE = "mobilenet_v2_100"  # the ratios' denominator
HEADERS = (
    "network",
    "model",
    "MAdds (ours)",
    "Pixel 1 ms (paper)",
    "LiteRT ms here (median)",
    "min ms",
    "paper / MobileNetV2",
    "here / MobileNetV2",
)


def convert_row(row, workdir: Path) -> tuple[dict, Path | None]:
    """The row's facts and its verified .tflite file (None, with the converter's error in the row, if refused)."""
    from mobilenetv2.export import export_model

    model = create_model(row.model).eval()
    result = {
        "network": row.network,
        "model": row.model,
        "madds": profile(model, RESOLUTION).macs,
        "pixel1_ms_paper": row.cpu_ms,
    }
    start = time.perf_counter()
    try:
        path = export_model(model, workdir / f"{row.model}.tflite", format="tflite", input_size=(224, 224)).path
    except Exception as exc:  # the converter's own error, kept in the row (the other models still run)
        log.warning("%s: litert-torch could not convert it (%s)", row.model, exc)
        return result | {"error": str(exc).splitlines()[0][:200]}, None
    log.info("%s: converted and verified in %.0f s", row.model, time.perf_counter() - start)
    return result | {"convert_seconds": round(time.perf_counter() - start, 1)}, path


def time_interleaved(paths: list[Path], *, repeats: int, warmup: int = 3, threads: int = 1) -> list[list[float]]:
    """Milliseconds of `repeats` batch-1 invokes of each file on `threads` XNNPACK threads, in rounds (one invoke
    of every file per round), so that a change in the machine's load reaches every model alike."""
    from mobilenetv2.export.litert import tflite_runner

    runs = [tflite_runner(p, threads=threads) for p in paths]
    x = np.random.default_rng(0).standard_normal((1, 3, RESOLUTION, RESOLUTION)).astype(np.float32)
    for run in runs:
        for _ in range(warmup):
            run(x)
    times: list[list[float]] = [[] for _ in runs]
    for _ in range(repeats):
        for run, spent in zip(runs, times, strict=True):
            start = time.perf_counter()
            run(x)
            spent.append((time.perf_counter() - start) * 1000)
    return times


def measure(rows, *, repeats: int, workdir: Path) -> list[dict]:
    converted = [convert_row(row, workdir) for row in rows]
    ready = [(r, p) for r, p in converted if p is not None]
    times = time_interleaved([p for _, p in ready], repeats=repeats)
    for (r, _), spent in zip(ready, times, strict=True):
        r |= {"litert_ms": round(statistics.median(spent), 2), "litert_min_ms": round(min(spent), 2)}
        log.info("%s: LiteRT %.2f ms (median of %d, 1 thread)", r["model"], r["litert_ms"], repeats)
    return [r | {"litert_ms": r.get("litert_ms"), "litert_min_ms": r.get("litert_min_ms")} for r, _ in converted]


def ratio(value: float | None, reference: float | None) -> str:
    return "-" if value is None or not reference else f"{value / reference:.2f}"


def table4_litert(*, out_dir: str | Path, repeats: int = 20, models: Sequence[str] | None = None) -> str:
    """Write table4_litert.{md,csv,json} under `out_dir`; return the markdown. `models` picks rows by name."""
    from mobilenetv2.export.litert import need_litert, need_litert_torch

    need_litert(), need_litert_torch()
    if repeats < 1:
        raise ValueError(f"repeats must be >= 1, got {repeats}")
    picked = [row for row in TABLE_4 if models is None or row.model in models]
    if not picked:
        raise ValueError(f"no Table 4 row for {models}; known: {', '.join(r.model for r in TABLE_4)}")
    with tempfile.TemporaryDirectory(prefix="mobilenetv2-table4-") as tmp:
        rows = measure(picked, repeats=repeats, workdir=Path(tmp))
    cpu, load = machine(), load_average()
    ref = next((r for r in rows if r["model"] == REFERENCE), None)
    cells = [
        [
            r["network"],
            f"`{r['model']}`",
            f"{r['madds'] / 1e6:.1f}M",
            r["pixel1_ms_paper"] if r["pixel1_ms_paper"] is not None else "-",
            r["litert_ms"] if r["litert_ms"] is not None else f"not converted: {r['error']}",
            r["litert_min_ms"] if r["litert_min_ms"] is not None else "-",
            ratio(r["pixel1_ms_paper"], ref and ref["pixel1_ms_paper"]),
            ratio(r["litert_ms"], ref and ref["litert_ms"]),
        ]
        for r in rows
    ]
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    write_csv(out / "table4_litert.csv", list(rows[0]), [[r.get(k) for k in rows[0]] for r in rows])
    summary = {"machine": cpu, "load_average": load, "threads": 1, "rows": rows}
    write_text_atomic(out / "table4_litert.json", json.dumps(summary, indent=1))
    notes = [
        f"Ours at {RESOLUTION}x{RESOLUTION}, fp32, random weights (speed does not depend on them), converted by "
        "litert-torch (`mobilenetv2 export --format tflite`, verified within 1e-4 of PyTorch) and run batch 1 "
        f"in ai-edge-litert's interpreter, XNNPACK delegate, 1 thread; median of {repeats} invokes after 3 "
        "warm-up invokes, in rounds of one invoke per model (a load change reaches every model alike), on "
        f"{cpu} (1-minute load average {load} at the end).",
        "Pixel 1 ms: the paper's Table 4 (TF-Lite, one large core of a Google Pixel 1). Different hardware: "
        "compare the ratio columns (each model's time over MobileNetV2 1.0's).",
    ]
    text = "\n\n".join([markdown_table(HEADERS, cells), *notes])
    write_text_atomic(out / "table4_litert.md", text + "\n")
    return text
