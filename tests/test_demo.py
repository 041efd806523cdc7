"""`mobilenetv2 demo` end to end, cut short: train 2 steps, evaluate, export to ONNX, score it, write the report."""

import json

from mobilenetv2.cli import main


def test_demo_smoke_writes_a_report_with_a_verified_onnx_export(tmp_path, capsys):
    out = tmp_path / "demo"
    assert main(["demo", "--out", str(out), "--max-steps", "2", "--threads", "1"]) == 0
    printed = capsys.readouterr().out.strip().splitlines()[-1]
    assert printed == str(out / "report.md")
    report = (out / "report.md").read_text()
    assert "![training curves](curves.png)" in report and "val top-1 (ONNX, onnxruntime)" in report
    for name in ("model.safetensors", "model.onnx", "curves.png", "eval/confusion.png", "eval/eval.json"):
        assert (out / name).is_file(), name
    summary = json.loads((out / "summary.json").read_text())
    assert summary["steps"] == 2 and summary["model_options"]["width"] == 0.35
    assert main(["demo", "--max-steps", "-1"]) == 2
