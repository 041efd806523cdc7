"""Measured activation memory: the live-storage tracker, and Sec. 5.1's split lowering the real peak."""

import json

import pytest
import torch
import torchvision

import mobilenetv2
from mobilenetv2.analysis import profile
from mobilenetv2.bench.memory import LiveBytes, benchmark_memory, measure_forward, rss_child


def test_tracker_counts_live_storages_once_and_forgets_freed_ones():
    weight = torch.ones(100)
    with torch.inference_mode(), LiveBytes(ignore=[weight]) as tracker:
        a = torch.zeros(1000)  # 4000 bytes
        b = a + 1  # 4000 more, live together: peak 8000
        b.add_(1)  # in place: nothing new
        view = b.view(10, 100)  # a view: nothing new
        del a
        c = torch.zeros(500)  # 2000 bytes while b (4000) lives
        w = weight.t()  # a parameter's view: never counted
        assert tracker.current == 6000
        del b, view, c, w
    assert tracker.peak == 8000
    assert tracker.largest == 4000
    assert tracker.current == 0


def fast_peak(model: torch.nn.Module, x: torch.Tensor, splits: int) -> dict:
    fast = mobilenetv2.for_inference(model, splits=splits, engine="eager")
    return measure_forward(fast, x)


@pytest.fixture(scope="module")
def small():
    model = mobilenetv2.create_model("mobilenet_v2_035").eval()
    return model, torch.randn(1, 3, 96, 96)


def test_splitting_lowers_the_measured_peak_and_the_expansion_never_exists_whole(small):
    model, x = small
    peaks = {t: fast_peak(model, x, t) for t in (1, 2, 4)}
    assert peaks[1]["peak_bytes"] > peaks[2]["peak_bytes"] > peaks[4]["peak_bytes"]
    # blocks.1 expands 8 -> 48 channels at 48x48: the largest tensor of the unsplit forward.
    expansion = 48 * 48 * 48 * 4
    assert peaks[1]["largest_tensor_bytes"] == expansion
    assert peaks[4]["largest_tensor_bytes"] < expansion / 2
    assert all(p["left_alive_bytes"] == 0 for p in peaks.values())


@pytest.mark.parametrize("splits", [2, 3])
def test_measured_peak_is_within_the_analysis_bound(small, splits):
    model, x = small
    measured = fast_peak(model, x, splits)["peak_bytes"]
    predicted = profile(model, 96, splits=splits).memory.predicted_peak_bytes
    assert 0.9 * predicted <= measured <= predicted


def test_split_peak_is_a_fraction_of_torchvision_eager(small):
    model, x = small
    reference = torchvision.models.mobilenet_v2(width_mult=0.35).eval()
    names = [("features", reference.features)]
    tv_peak = measure_forward(reference, x, names)["peak_bytes"]
    assert fast_peak(model, x, 4)["peak_bytes"] < 0.5 * tv_peak


def test_benchmark_writes_json_and_plot(tmp_path):
    result = benchmark_memory(model_name="mobilenet_v2_035", resolution=64, max_splits=2, out_dir=tmp_path)
    saved = json.loads((tmp_path / "memory.json").read_text())
    assert saved["splits"]["2"]["peak_bytes"] == result["splits"]["2"]["peak_bytes"]
    assert set(saved["splits"]) == {"1", "2"}
    assert saved["torchvision_eager"]["peak_bytes"] > saved["splits"]["2"]["peak_bytes"]
    assert "blocks.1" in saved["splits"]["1"]["per_op"]
    assert (tmp_path / "memory.png").stat().st_size > 1000


def test_rss_child_reports_a_peak_increase():
    small = rss_child("mobilenet_v2_035", 64, "fast-eager", 2)
    large = rss_child("mobilenet_v2_035", 768, "fast-eager", 1)
    # The unsplit forward at 768x768 holds 8 -> 48 channel expansions of 384x384 (28 MB) at once.
    assert large["peak_increase_bytes"] > 20e6 > small["peak_increase_bytes"] >= 0


@pytest.mark.parametrize("splits", [1, 2, 5])
def test_each_op_states_its_own_measured_peak(small, splits):
    """The plan's live bytes per op (what the peak schedule plans with) equal the measured per-op peaks. The
    first op is left out: its input is the caller's image, which the tracker does not count."""
    model, x = small
    fast = mobilenetv2.for_inference(model, splits=splits, schedule="uniform", engine="eager")
    per_op = measure_forward(fast, x)["per_op"]
    stated = fast.plan.live_bytes(tuple(x.shape[-2:]))
    assert [op.name for op in fast.plan.ops] == [*fast.op_names(), "classifier"]
    for op, live in list(zip(fast.plan.ops, stated, strict=True))[1:]:
        assert live == per_op[op.name], op.name


@pytest.mark.parametrize("splits", [2, 5, 8])
def test_peak_schedule_keeps_the_uniform_peak_with_fewer_slices(small, splits):
    model, x = small
    uniform = mobilenetv2.for_inference(model, splits=splits, schedule="uniform", engine="eager")
    peak = mobilenetv2.for_inference(model, splits=splits, engine="eager")
    measured = {f: measure_forward(f, x)["peak_bytes"] for f in (uniform, peak)}
    assert measured[peak] == measured[uniform]
    assert max(peak.op_splits()) == splits and min(peak.op_splits()) == 1  # late, small ops run whole
    assert sum(peak.op_splits()) < sum(uniform.op_splits())


def test_the_split_plan_is_read_without_building_a_fast_model(small):
    """`info --splits` reads the plan: the same slices per op as the runnable model's."""
    from mobilenetv2.infer.plan import split_plan

    model, x = small
    fast = mobilenetv2.for_inference(model, splits=5, engine="eager")
    assert split_plan(model, (224, 224), 5) == dict(zip(fast.op_names(), fast.op_splits(), strict=True))


@pytest.mark.slow
def test_segmenter_memory_bench_has_a_storage_and_an_rss_column(tmp_path):
    from mobilenetv2.bench.segmentation import benchmark_segmentation_memory, format_segmentation_memory

    result = benchmark_segmentation_memory(
        model_name="deeplabv3_mobilenet_v2",
        options={"width": 0.35},
        resolution=(64, 96),
        max_splits=1,
        out_dir=tmp_path,
    )
    rows = [*result["peers"].values(), result["ours_eager"], result["splits"]["1"]]
    assert all(row["peak_bytes"] > 0 and row["peak_rss_increase_bytes"] >= 0 for row in rows)
    assert result["splits"]["1"]["max_abs_diff"] < 1e-4
    table = format_segmentation_memory(json.loads((tmp_path / "memory.json").read_text()))
    assert "peak RSS MB" in table and "ours for_inference splits=1" in table
