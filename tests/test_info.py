"""`mobilenetv2 info` and `mobilenetv2.profile`: exact counts against torchvision and published figures."""

import json

import pytest
import torch
import torchvision

from mobilenetv2 import create_model, profile
from mobilenetv2.cli import main

# MACs (M) of the official TF-slim checkpoints, tensorflow/models research/slim/nets/mobilenet/README.md.
SLIM_MACS = {
    (1.4, 224): 582, (1.3, 224): 509,
    (1.0, 224): 300, (1.0, 192): 221, (1.0, 160): 154, (1.0, 128): 99, (1.0, 96): 56,
    (0.75, 224): 209, (0.75, 192): 153, (0.75, 160): 107, (0.75, 128): 69, (0.75, 96): 39,
    (0.5, 224): 97, (0.5, 192): 71, (0.5, 160): 50, (0.5, 128): 32, (0.5, 96): 18,
    (0.35, 224): 59, (0.35, 192): 43, (0.35, 160): 30, (0.35, 128): 20, (0.35, 96): 11,
}  # fmt: skip


def test_reference_counts_for_width_one():
    p = profile(create_model("mobilenet_v2_100"), 224)
    assert p.params == 3_504_872
    assert p.macs == 300_774_272


@pytest.mark.parametrize("width", [0.35, 0.5, 0.75, 1.0, 1.3, 1.4])
def test_params_equal_torchvision(width):
    p = profile(create_model("mobilenet_v2", width=width), 224)
    assert p.params == sum(q.numel() for q in torchvision.models.mobilenet_v2(width_mult=width).parameters())


@pytest.mark.parametrize(("width", "resolution"), sorted(SLIM_MACS))
def test_macs_equal_the_official_checkpoints(width, resolution):
    # The README prints whole millions, truncated (1.0 @ 224 = 300.77M is listed as 300).
    macs = profile(create_model("mobilenet_v2", width=width), resolution).macs
    assert int(macs / 1e6) == SLIM_MACS[(width, resolution)]


def test_macs_follow_table1_formula():
    # Table 1: a stride-1 bottleneck costs h·w·k·t·(k + 3² + k') multiply-adds.
    model = create_model("mobilenet_v2_100")
    row = next(r for r in profile(model, 224).layers if r.name == "blocks.2")  # 56x56, 24 -> 24, t = 6
    h = w = 56
    k = kp = 24
    assert row.macs == h * w * k * 6 * (k + 9 + kp)


def test_profile_matches_an_independent_count():
    """Recount MACs from conv weights and output sizes without the profiler's hooks."""
    model = create_model("mobilenet_v2_075").eval()
    sizes = {}
    hooks = [
        m.register_forward_hook(lambda m, i, o: sizes.__setitem__(m, o.shape))
        for m in model.modules()
        if isinstance(m, torch.nn.Conv2d)
    ]
    with torch.no_grad():
        model(torch.zeros(1, 3, 160, 160))
    for h in hooks:
        h.remove()
    expected = sum(m.weight.numel() * s[2] * s[3] for m, s in sizes.items()) + model.classifier[1].weight.numel()
    assert profile(model, 160).macs == expected


def test_peak_activation_is_the_largest_op():
    p = profile(create_model("mobilenet_v2_100"), 224)
    # stem + first bottleneck run as one op: input 3x224x224 and output 16x112x112, fp32.
    assert p.peak_activation_bytes == (3 * 224 * 224 + 16 * 112 * 112) * 4
    assert p.memory.predicted_peak_bytes > p.peak_activation_bytes
    table3 = {r.size: r for r in p.memory.table3}
    assert table3["112x112"].max_channels == 16
    assert round(table3["112x112"].kb, -1) == 400  # the paper's "max 400K" for MobileNetV2
    assert max(r.max_bytes for r in p.memory.table3) == table3["112x112"].max_bytes


def test_splits_lower_the_predicted_peak():
    model = create_model("mobilenet_v2_100")
    peaks = [profile(model, 224, splits=t).memory.predicted_peak_bytes for t in (1, 2, 4, 8)]
    assert peaks == sorted(peaks, reverse=True) and peaks[0] > peaks[-1]
    assert peaks[-1] >= profile(model, 224).peak_activation_bytes


def test_info_json(capsys):
    assert main(["info", "mobilenet_v2", "--width", "1.4", "--resolution", "224", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["params"] == sum(p.numel() for p in torchvision.models.mobilenet_v2(width_mult=1.4).parameters())
    assert round(data["macs"] / 1e6) == 582
    assert {"params", "macs", "peak_activation_bytes", "layers"} <= set(data)
    assert len(data["layers"]) == 1 + 17 + 3


def test_info_table_and_num_classes(capsys):
    assert main(["info", "mobilenet_v2_035", "--num-classes", "10", "--resolution", "96x128"]) == 0
    out = capsys.readouterr().out
    assert "blocks.16" in out and "96x128" in out
    model = create_model("mobilenet_v2_035", num_classes=10)
    assert f"params: {sum(p.numel() for p in model.parameters()):,}" in out


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["info", "mobilenet_v3"], "unknown model 'mobilenet_v3'"),
        (["info", "mobilenet_v2", "--width", "0"], "width must be in (0, 8.0]"),
        (["info", "mobilenet_v2", "--resolution", "16"], "too small"),
        (["info", "mobilenet_v2", "--splits", "0"], "splits must be >= 1"),
    ],
)
def test_info_bad_input_is_one_line_and_exit_2(capsys, argv, message):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err


def test_info_splits_shows_which_ops_the_peak_schedule_splits(capsys):
    assert main(["info", "mobilenet_v2_100", "--splits", "5", "--json"]) == 0
    plan = json.loads(capsys.readouterr().out)["peak_schedule"]
    # blocks.1 (96-channel expansion at 112x112) sets the peak, so it takes all 5 slices; the 7x7 ops run whole.
    assert plan["blocks.1"] == 5 and max(plan.values()) == 5
    assert plan["blocks.16"] == 1 and plan["head+pool"] == 1
    assert main(["info", "mobilenet_v2_100", "--splits", "5"]) == 0
    assert "peak schedule (for_inference(splits=5)): slices per op" in capsys.readouterr().out
