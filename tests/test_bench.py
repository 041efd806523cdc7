"""`mobilenetv2 bench`: the CLI runs end to end on a tiny setting and writes its table, JSON and plot (no timing
assertions: speed is what the command measures, not what tests check)."""

import json
import sys
import types

import pytest

from mobilenetv2.cli import main


def test_bench_writes_table_json_and_plot(tmp_path, capsys):
    argv = ["bench", "--model", "mobilenet_v2_035", "--resolution", "32", "--paths", "eager,onnxruntime,torchvision"]
    argv += ["--warmup", "1", "--rounds", "2", "--block", "1", "--batch-size", "2", "--out", str(tmp_path)]
    assert main(argv) == 0
    table = capsys.readouterr().out
    result = json.loads((tmp_path / "bench.json").read_text())
    assert {r["name"] for r in result["rows"]} == {"eager", "onnxruntime", "torchvision"}
    for row in result["rows"]:
        assert row["precision"] == "fp32" and row["latency"]["calls"] == 2
        assert row["latency"]["median_ms"] > 0 and row["latency"]["p90_ms"] >= row["latency"]["median_ms"]
        assert row["name"] in table
    assert result["machine"]["cpu"] and result["machine"]["threads"] == 2
    assert result["summary"]["fastest_project_fp32_over_fastest_peer_fp32"] > 0
    assert (tmp_path / "bench.png").stat().st_size > 0 and (tmp_path / "bench.md").read_text().startswith("| path")


def test_bench_rejects_unknown_paths(capsys):
    assert main(["bench", "--paths", "eager,warp-drive"]) == 2
    assert "unknown bench path 'warp-drive'" in capsys.readouterr().err


MEMORY_RESULT = {
    "model": "mobilenet_v2_035",
    "resolution": 64,
    "dtype": "float32",
    "torchvision_eager": {"peak_bytes": 1000},
    "splits": {"1": {"peak_bytes": 600, "predicted_peak_bytes": 640}, "2": {"peak_bytes": 400}},
}
TRAIN_RESULT = {
    "baseline_images_per_second": 10.0,
    "baseline_reuse_images_per_second": 15.0,
    "ours_images_per_second": 20.0,
    "batch_size": 32,
    "resolution": 64,
    "threads": 2,
    "device": "cpu: test",
}


@pytest.mark.parametrize(
    ("flag", "module", "function", "keyword", "result", "shown"),
    [
        ("--memory", "mobilenetv2.bench.memory", "benchmark_memory", "max_splits", MEMORY_RESULT, "fast, splits=2"),
        ("--train", "mobilenetv2.bench.training", "benchmark_training", "batch_size", TRAIN_RESULT, "2.00x"),
    ],
)
def test_bench_dispatches_to_the_other_benchmarks_and_prints_a_table(
    flag, module, function, keyword, result, shown, monkeypatch, capsys
):
    """`--memory` and `--train` print a short table (the JSON goes to the --out files), not raw JSON."""
    calls = []
    stub = types.ModuleType(module)
    setattr(stub, function, lambda **kw: calls.append(kw) or result)
    monkeypatch.setitem(sys.modules, module, stub)
    assert main(["bench", flag, "--resolution", "64"]) == 0
    assert calls and calls[0]["resolution"] == 64 and keyword in calls[0]
    out = capsys.readouterr().out
    assert shown in out and "{" not in out and len(out.splitlines()) < 10


def test_training_benchmark_runs_every_loop_in_its_own_process(tmp_path):
    from mobilenetv2.bench.training import LOOPS, benchmark_training

    result = benchmark_training(batch_size=2, resolution=32, steps=1, warmup=0, rounds=1, threads=1, out_dir=tmp_path)
    saved = json.loads((tmp_path / "training_benchmark.json").read_text())
    assert set(saved["blocks"]) == set(LOOPS) and all(len(v) == 1 and v[0] > 0 for v in saved["blocks"].values())
    assert saved["speedup"] == result["ours_images_per_second"] / result["baseline_images_per_second"]
    assert "malloc reuse" in saved["ours"] and saved["threads"] == 1


def test_bench_times_the_inductor_paths_next_to_the_others(tmp_path):
    """PyTorch's compiler paths: the model under torch.compile (fp32) and PT2E INT8 (torchao), at 2 batch sizes."""
    pytest.importorskip("torchao")
    paths = "compiled,int8-torch-pt2e,int8-onnxruntime"
    argv = ["bench", "--model", "mobilenet_v2_035", "--resolution", "32", "--paths", paths]
    argv += ["--warmup", "1", "--rounds", "1", "--block", "1", "--batch-size", "2", "--out", str(tmp_path)]
    assert main(argv) == 0
    rows = {r["name"]: r for r in json.loads((tmp_path / "bench.json").read_text())["rows"]}
    assert set(rows) == set(paths.split(","))
    assert rows["int8-torch-pt2e"]["precision"] == "int8" and rows["int8-torch-pt2e"]["runtime"] == "pytorch-inductor"
    assert rows["compiled"]["precision"] == "fp32" and rows["compiled"]["runtime"] == "pytorch-inductor"


def test_bench_int8_peers_run_torchvisions_qdq_export(tmp_path):
    """The INT8 peers: torchvision's MobileNetV2 through torch.onnx.export, quantized to QDQ by onnxruntime's
    quantize_static (our calibration and settings), run in onnxruntime and in OpenVINO."""
    import numpy as np
    import onnx

    import mobilenetv2
    from mobilenetv2.bench.paths import build_paths

    names = ["int8-onnxruntime", "int8-qdq-openvino", "int8-torchvision-onnxruntime", "int8-torchvision-openvino"]
    model = mobilenetv2.create_model("mobilenet_v2_035")
    built = build_paths(model, input_size=(32, 32), names=names, splits=[], threads=1, workdir=tmp_path)
    assert [(p.name, p.group, p.precision) for p in built] == [
        ("int8-onnxruntime", "project", "int8"),
        ("int8-qdq-openvino", "project", "int8"),
        ("int8-torchvision-onnxruntime", "peer", "int8"),
        ("int8-torchvision-openvino", "peer", "int8"),
    ]
    ops = {n.op_type for n in onnx.load(str(tmp_path / "torchvision.int8.onnx")).graph.node}
    assert {"QuantizeLinear", "DequantizeLinear", "Conv"} <= ops
    x = np.zeros((2, 3, 32, 32), dtype=np.float32)
    assert all(len(p.run(x)) == 1 for p in built)


def test_bench_waits_for_the_load_to_fall_before_timing(monkeypatch):
    from mobilenetv2.bench import latency

    loads = iter([5.0, 4.0, 2.0, 9.0])
    monkeypatch.setattr(latency.os, "getloadavg", lambda: (next(loads), 0.0, 0.0))
    assert latency.wait_for_load(2.5, poll_s=0) == 2.0
    monkeypatch.setattr(latency.os, "getloadavg", lambda: (7.0, 0.0, 0.0))
    assert latency.wait_for_load(2.5, timeout_s=0, poll_s=0) == 7.0  # gives up, times anyway
    assert latency.wait_for_load(None) == 7.0
