"""`mobilenetv2 bench`: latency (batch 1) and throughput (batch N) of every inference path, side by side.

Timing: each path runs `warmup` calls first; then for `rounds` rounds every path runs a block of `block`
timed calls, the order of the paths rotating from round to round, so slow drifts of a shared machine (other
processes, clock changes) spread over all paths instead of landing on one. Median and p90 are over all timed
calls of a path.
"""

import contextlib
import logging
import os
import platform
import time
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from mobilenetv2.allocator import reusing_freed_memory
from mobilenetv2.bench.paths import ALL_PATHS, BenchPath, build_paths, temporary_workdir
from mobilenetv2.bench.report import write_outputs
from mobilenetv2.errors import UserError
from mobilenetv2.utils import cpu_name

log = logging.getLogger(__name__)


def time_paths(
    paths: list[BenchPath], x: np.ndarray, *, warmup: int, rounds: int, block: int, desc: str
) -> dict[str, list[float]]:
    """Seconds per call for each path, from interleaved blocks."""
    for path in paths:
        for _ in range(warmup):
            path.run(x)
    times: dict[str, list[float]] = {p.name: [] for p in paths}
    for r in tqdm(range(rounds), desc=desc, unit="round", leave=False):
        order = paths[r % len(paths) :] + paths[: r % len(paths)]
        for path in order:
            for _ in range(block):
                start = time.perf_counter()
                path.run(x)
                times[path.name].append(time.perf_counter() - start)
    return times


def wait_for_load(max_load: float | None, *, timeout_s: float = 1800, poll_s: float = 10) -> float:
    """Wait until the 1-minute load average is at most `max_load` (None: no wait), for at most `timeout_s`;
    returns the load average when timing starts (a shared machine: the builds are done, the timing waits)."""
    load = os.getloadavg()[0]
    if max_load is None or load <= max_load:
        return load
    log.info("bench: load average %.2f > %.2f, waiting (at most %.0f s) before timing", load, max_load, timeout_s)
    deadline = time.monotonic() + timeout_s
    while load > max_load and time.monotonic() < deadline:
        time.sleep(poll_s)
        load = os.getloadavg()[0]
    if load > max_load:
        log.warning("bench: load average still %.2f after %.0f s; timing anyway", load, timeout_s)
    return load


def stats(seconds: list[float], batch: int) -> dict[str, float]:
    ms = np.asarray(seconds) * 1000.0
    median = float(np.median(ms))
    return {
        "median_ms": median,
        "p90_ms": float(np.percentile(ms, 90)),
        "images_per_second": batch * 1000.0 / median,
        "calls": len(ms),
    }


def machine() -> dict[str, object]:
    import onnxruntime
    import openvino

    return {
        "cpu": cpu_name(),
        "logical_cpus": os.cpu_count(),
        "threads": torch.get_num_threads(),
        "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY", "unset (OpenMP threads spin)"),
        "load_average": list(os.getloadavg()),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "onnxruntime": onnxruntime.__version__,
        "openvino": openvino.__version__,
    } | optional_versions()


def optional_versions() -> dict[str, str]:
    """Versions of the optional runtimes (extras, not base dependencies) that are installed."""
    from importlib.metadata import PackageNotFoundError, version

    found = {}
    for name in ("ai-edge-litert", "litert-torch", "executorch", "tensorflow-cpu", "tensorflow"):
        with contextlib.suppress(PackageNotFoundError):
            found[name] = version(name)
    return found


def summarize(rows: list[dict]) -> dict[str, float | None]:
    """The ratios the targets are stated in (batch-1 medians; fp32 against fp32, like with like)."""
    by = {r["name"]: r["latency"]["median_ms"] for r in rows}
    fp32 = [r for r in rows if r["precision"] == "fp32"]
    own = [r["latency"]["median_ms"] for r in fp32 if r["group"] == "project"]
    peers = [r["latency"]["median_ms"] for r in fp32 if r["group"] == "peer"]
    ratios = {
        "fastest_project_fp32_over_fastest_peer_fp32": min(own) / min(peers) if own and peers else None,
    }
    ratios |= fastest_ratios(rows)
    for name in ("fast", "fast-eager"):
        if {name, "torchvision"} <= by.keys():
            ratios[f"{name.replace('-', '_')}_over_torchvision_eager"] = by[name] / by["torchvision"]
    for name in by:
        for unsplit in ("fast", "fast-eager"):  # the default unsplit path, and the same engine as the splits
            if name.startswith("split-") and unsplit in by:
                ratios[f"{name}_over_{unsplit.replace('-', '_')}"] = by[name] / by[unsplit]
    return ratios


def fastest_ratios(rows: list[dict]) -> dict[str, float]:
    """Fastest project path over fastest peer, by precision, at batch 1 (latency) and batch N (per-call time),
    and `fast` (PyTorch only, no export) over the fastest fp32 peer; each name says which rows won."""
    ratios: dict[str, float | str] = {}
    for label, key in (("b1", "latency"), ("bN", "throughput")):
        for precision in ("fp32", "int8"):
            own = [r for r in rows if r["precision"] == precision and r["group"] == "project"]
            peers = [r for r in rows if r["precision"] == precision and r["group"] == "peer"]
            if not (own and peers):
                continue
            best_own = min(own, key=lambda r: r[key]["median_ms"])
            best_peer = min(peers, key=lambda r: r[key]["median_ms"])
            name = f"{label}_fastest_{precision}_project_over_peer"
            ratios[name] = best_own[key]["median_ms"] / best_peer[key]["median_ms"]
            ratios[f"{name}_rows"] = f"{best_own['name']} / {best_peer['name']}"
            fast = next((r for r in rows if r["name"] == "fast"), None)
            if precision == "fp32" and fast is not None:
                ratios[f"{label}_fast_over_fastest_peer_fp32"] = fast[key]["median_ms"] / best_peer[key]["median_ms"]
    return ratios


def benchmark_latency(
    *,
    model_name: str = "mobilenet_v2_100",
    weights: str | None = None,
    resolution: tuple[int, int] = (224, 224),
    batch_size: int = 8,
    paths: list[str] | None = None,
    splits: list[int] | tuple[int, ...] = (2, 3, 4, 5),
    threads: int = 2,
    warmup: int = 10,
    rounds: int = 10,
    block: int = 5,
    reuse_memory: bool = True,
    max_load: float | None = None,
    out_dir: str | Path | None = None,
) -> dict:
    """Time every path at batch 1 (latency) and `batch_size` (throughput); writes bench.json, bench.md and
    bench.png into `out_dir` when given. Returns the same dict as bench.json.

    `reuse_memory`: malloc keeps freed memory for every path (allocator.py). Otherwise a path's speed depends on
    what ran before it: glibc adapts its mmap threshold to the blocks freed so far, and torchvision's eager
    forward measured 22 ms in a fresh process against 16 ms with freed memory reused.
    `max_load`: once every path is built, wait for the 1-minute load average to fall to it (wait_for_load); the
    load average when timing starts and ends is recorded either way."""
    import mobilenetv2

    names = list(paths or ALL_PATHS)
    unknown = [n for n in names if n not in ALL_PATHS]
    if unknown:
        raise UserError(f"unknown bench path {unknown[0]!r}; choose from {', '.join(ALL_PATHS)}")
    splits = sorted(set(splits))
    if min(warmup, rounds - 1, block - 1, batch_size - 1, threads - 1, *(t - 1 for t in splits)) < 0:
        raise UserError("warmup must be >= 0; rounds, block, batch size, threads and splits >= 1")
    torch.set_num_threads(threads)
    if os.environ.get("OMP_WAIT_POLICY", "").upper() != "PASSIVE":
        # Read by OpenMP when torch loads, so it cannot be changed from here. On a busy 2-core machine spinning
        # OpenMP threads measured 354 ms vs 93 ms passive for the same torchvision forward.
        log.warning(
            "OMP_WAIT_POLICY is not PASSIVE: PyTorch's threads spin; on shared cores run as "
            "`OMP_WAIT_POLICY=PASSIVE mobilenetv2 bench` for comparable numbers"
        )
    model = mobilenetv2.load(weights) if weights else mobilenetv2.create_model(model_name).eval()
    rng = np.random.default_rng(0)
    # Malloc reuse for every path while they are built and timed (the process defaults come back after).
    with reusing_freed_memory(reuse_memory) as reusing, temporary_workdir() as tmp:
        built = build_paths(
            model, input_size=resolution, names=names, splits=splits, threads=threads, workdir=Path(tmp)
        )
        if not built:
            raise UserError("no bench path could be built")
        result_rows = []
        timings = {}
        timing_load = [wait_for_load(max_load)]
        for label, batch in (("latency", 1), ("throughput", batch_size)):
            x = rng.standard_normal((batch, 3, *resolution)).astype(np.float32)
            timings[label] = time_paths(built, x, warmup=warmup, rounds=rounds, block=block, desc=f"{label} b{batch}")
            timing_load.append(os.getloadavg()[0])
        for p in built:
            row = {"name": p.name, "group": p.group, "runtime": p.runtime, "precision": p.precision}
            row["latency"] = stats(timings["latency"][p.name], 1)
            row["throughput"] = stats(timings["throughput"][p.name], batch_size)
            result_rows.append(row)
    base = next((r["latency"]["median_ms"] for r in result_rows if r["name"] == "torchvision"), None)
    for r in result_rows:
        r["latency_vs_torchvision"] = r["latency"]["median_ms"] / base if base else None
    result = {
        "model": weights or model_name,
        "resolution": list(resolution),
        "batch_size": batch_size,
        "splits": splits,
        "timing": {"warmup": warmup, "rounds": rounds, "block": block},
        "machine": machine()
        | {
            "malloc": "reuse freed memory" if reusing else "C library default",
            # 1-minute load average when timing started, after the batch-1 blocks, after the batch-N blocks
            "load_average_timing": [round(v, 2) for v in timing_load],
        },
        "rows": result_rows,
        "summary": summarize(result_rows),
    }
    if out_dir is not None:
        write_outputs(result, Path(out_dir))
    return result
