"""`mobilenetv2 paper ...`: each table/figure is written, and the computed Table 3 explains the printed one."""

import importlib.util
import json

import pytest

from mobilenetv2.cli import main
from mobilenetv2.paper import Budget, reproduce
from mobilenetv2.paper.figure5 import figure5
from mobilenetv2.paper.figure6 import figure6
from mobilenetv2.paper.published import SLIM_V1, SLIM_V2, TABLE_3, TABLE_3_SIZES
from mobilenetv2.paper.table4 import table4

OUTPUTS = ("md", "csv", "json", "png")


def written(folder, stem):
    return all((folder / f"{stem}.{ext}").stat().st_size > 0 for ext in OUTPUTS)


@pytest.fixture(scope="module")
def table3_views(tmp_path_factory):
    out = tmp_path_factory.mktemp("table3")
    reproduce("table3", out_dir=out)
    assert written(out, "table3")
    return json.loads((out / "table3.json").read_text())


def paper_channels(model, size):
    return TABLE_3[model][TABLE_3_SIZES.index(size)].channels


def kb_agrees(ours, printed):
    # The paper prints Table 3's Kb to about two significant figures (1605.6 -> 1600, 31.4 -> 32).
    return abs(ours - printed) <= 0.05 * printed


def test_table3_mobilenet_v1_matches_between_ops(table3_views):
    v1 = table3_views["mobilenet_v1_100"]["between_ops"]
    for size in ("112x112", "56x56", "28x28", "14x14", "1x1"):
        channels, kb = v1[size]
        assert channels == paper_channels("mobilenet_v1_100", size)
        assert kb_agrees(kb, TABLE_3["mobilenet_v1_100"][TABLE_3_SIZES.index(size)].kb)
    assert v1["7x7"][0] == 1024


def test_table3_mobilenet_v2_reads_table2_rows_by_input_size(table3_views):
    views = table3_views["mobilenet_v2_100"]
    for size in ("112x112", "7x7", "1x1"):
        assert views["between_ops"][size][0] == paper_channels("mobilenet_v2_100", size)
    for size in ("56x56", "28x28", "14x14"):
        channels, kb = views["at_input_size"][size]
        assert channels == paper_channels("mobilenet_v2_100", size)
        assert kb_agrees(kb, TABLE_3["mobilenet_v2_100"][TABLE_3_SIZES.index(size)].kb)
    # Without treating a bottleneck as one op, the expansions dominate (Sec. 5.1's point).
    assert views["every_tensor"]["112x112"][1] > 5 * views["between_ops"]["112x112"][1]


def test_table3_shufflenet_column_has_the_g2_widths(table3_views):
    g2 = table3_views["shufflenet_v1_g2_200"]["between_ops"]
    for size in ("56x56", "28x28", "14x14", "7x7", "1x1"):
        assert g2[size][0] == paper_channels("shufflenet_v1_g3_200", size)


def test_table3_split_lowers_mobilenet_v2_peak(table3_views):
    peaks = table3_views["mobilenet_v2_100"]["peak_kb"]
    assert peaks["1"] > peaks["2"] > peaks["4"] > peaks["8"] > table3_views["mobilenet_v2_100"]["peak_one_op_kb"]


def test_table4_written_with_fast_path(tmp_path, caplog):
    with caplog.at_level("INFO", logger="mobilenetv2.paper.table4"):
        text = table4(out_dir=tmp_path, repeats=1, models=["mobilenet_v2_100"])
    logged = " ".join(r.getMessage() for r in caplog.records)
    assert "ms eval" in logged and "Latency(" not in logged
    assert written(tmp_path, "table4")
    row = json.loads((tmp_path / "table4.json").read_text())["rows"][0]
    assert row["params"] == 3_504_872 and row["fast_ms"] is not None
    assert "mobilenet_v2_100" in text


def test_figure1_high_dimensions_keep_the_spiral(tmp_path):
    reproduce("figure1", out_dir=tmp_path)
    assert written(tmp_path, "figure1")
    errors = {int(k): v for k, v in json.loads((tmp_path / "figure1.json").read_text())["relative_error"].items()}
    assert errors[30] < 0.2 < errors[2]


def test_figure5_written(tmp_path):
    figure5(out_dir=tmp_path, repeats=1, v2=SLIM_V2[:2], v1=SLIM_V1[:1], baselines=())
    assert written(tmp_path, "figure5")
    points = json.loads((tmp_path / "figure5.json").read_text())["points"]
    assert [p["family"] for p in points] == ["MobileNetV2", "MobileNetV2", "MobileNetV1"]
    assert all(p["latency_ms_here"] > 0 for p in points)


def test_figure6_tiny_budget(tmp_path):
    # One variant through the real train(): the other three differ only in model options.
    budget = Budget(epochs=1, seeds=1, width=0.35, resolution=32, max_steps=1, jobs=1)
    figure6(out_dir=tmp_path, budget=budget, runs_dir=tmp_path / "runs", variants=["relu6_bottleneck"])
    assert written(tmp_path, "figure6")
    summary = json.loads((tmp_path / "figure6.json").read_text())["summary"]
    assert list(summary) == ["relu6_bottleneck"] and summary["relu6_bottleneck"]["epochs"] == [1]
    table = (tmp_path / "figure6.md").read_text()
    assert "(1 seed)" in table and "± 0.0" not in table  # one seed has no spread to print
    options = json.loads((tmp_path / "runs" / "relu6_bottleneck" / "seed0" / "summary.json").read_text())
    assert options["model_options"]["bottleneck_activation"] == "relu6"


def test_cli_paper_figure1(tmp_path, capsys):
    assert main(["paper", "figure1", "--out", str(tmp_path)]) == 0
    assert "relative error" in capsys.readouterr().out
    assert (tmp_path / "figure1.png").exists()


def test_cli_paper_rejects_bad_budget(tmp_path, capsys):
    assert main(["paper", "figure6", "--out", str(tmp_path), "--epochs", "0"]) == 2
    assert "--epochs" in capsys.readouterr().err


HAVE_LITERT = all(importlib.util.find_spec(m) is not None for m in ("litert_torch", "ai_edge_litert"))


@pytest.mark.slow
@pytest.mark.skipif(not HAVE_LITERT, reason="litert-torch / ai-edge-litert not installed (mobilenetv2[tflite])")
def test_table4_litert_times_the_tflite_file_next_to_the_paper(tmp_path):
    """Table 4's CPU column in LiteRT: MobileNetV2 1.0 converted, verified, timed at one thread."""
    from mobilenetv2.paper.table4_litert import table4_litert

    text = table4_litert(out_dir=tmp_path, repeats=2, models=["mobilenet_v2_100"])
    saved = json.loads((tmp_path / "table4_litert.json").read_text())
    row = saved["rows"][0]
    assert saved["threads"] == 1 and row["pixel1_ms_paper"] == 75 and row["litert_ms"] > 0
    assert "| MobileNetV2 | `mobilenet_v2_100` |" in text and "| 1.00 | 1.00 |" in text
    assert (tmp_path / "table4_litert.csv").stat().st_size > 0


@pytest.mark.skipif(HAVE_LITERT, reason="litert-torch is installed here")
def test_table4_litert_without_the_extra_is_one_line_naming_it(tmp_path, capsys):
    assert main(["paper", "table4-litert", "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "mobilenetv2[tflite]" in err and len(err.strip().splitlines()) == 1
