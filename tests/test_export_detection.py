"""A converted TF detector exports to ONNX / OpenVINO with decoded boxes (and NMS) and still gives TF's detections."""

from pathlib import Path

import numpy as np
import pytest

import mobilenetv2
from mobilenetv2.cli import main
from mobilenetv2.errors import UserError
from mobilenetv2.export import export_model
from mobilenetv2.export.detection import detections_from_selected
from mobilenetv2.export.onnx import ort_session

FIXTURE = Path(__file__).parent / "fixtures" / "tf_detection"


@pytest.fixture(scope="module")
def weights(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("det") / "ssdlite.safetensors"
    assert (
        main(
            ["convert", str(FIXTURE / "ssdlite_mobilenet_v2_0.25_160.pb"), "--from", "tf-detection", "--out", str(path)]
        )
        == 0
    )
    return path


def test_onnx_with_nms_gives_tf_detections(weights, tmp_path):
    """The NMS graph in onnxruntime, on the fixture's astronaut, keeps TF's 100 detections (the fixture's
    float32 noise is ~1e-3 in logits, so scores agree to that; the boxes and classes chosen are TF's)."""
    model = mobilenetv2.load(weights)
    result = export_model(model, tmp_path / "det.onnx", format="onnx", input_size=(160, 160), nms=True)
    assert result.details["nms_selected"] > 0 and result.max_abs_diff < 1e-4
    with np.load(FIXTURE / "reference.npz") as f:
        ref = {k: f[k] for k in f.files}
    session = ort_session(result.path)
    x = (ref["images"][:1].transpose(0, 3, 1, 2).astype(np.float32) * (2 / 255) - 1).astype(np.float32)
    boxes, scores, selected = session.run(["boxes", "scores", "selected"], {"input": x})
    det = detections_from_selected(boxes, scores, selected, max_detections=100)[0]
    n = int(ref["num_detections"][0])
    tf_boxes = ref["detection_boxes"][0][:n][:, [1, 0, 3, 2]]  # -> xyxy
    matched = np.abs(det["boxes"][:, None, :] - tf_boxes[None]).max(-1).min(1) < 2e-3
    assert len(det["scores"]) == n and matched.mean() >= 0.95
    np.testing.assert_allclose(np.sort(det["scores"]), np.sort(ref["detection_scores"][0][:n]), atol=2e-3)


def test_openvino_export_verified(weights, tmp_path, capsys):
    out = tmp_path / "det.xml"
    assert main(["export", str(weights), "--format", "openvino", "--out", str(out), "--json"]) == 0
    assert out.is_file() and out.with_suffix(".bin").is_file()
    assert '"max_abs_diff_boxes"' in capsys.readouterr().out


def test_nms_needs_a_detector(tmp_path):
    model = mobilenetv2.create_model("mobilenet_v2", width=0.35, num_classes=4)
    with pytest.raises(UserError, match="detection"):
        export_model(model, tmp_path / "c.onnx", input_size=(32, 32), nms=True)


def test_bench_detection_table_has_both_networks_macs():
    from mobilenetv2.bench.detection import benchmark_detection, conv_macs, format_detection_table

    model = mobilenetv2.create_model("ssdlite_mobilenet_v2", width=0.35, num_classes=3)
    result = benchmark_detection(
        model=model,
        model_label="ssdlite_mobilenet_v2",
        resolution=(64, 64),
        batch_size=2,
        paths=["eager", "fast", "onnxruntime-raw"],
        threads=1,
        warmup=0,
        rounds=1,
        block=1,
    )
    assert [r["name"] for r in result["rows"]] == ["eager", "fast", "onnxruntime-raw"]
    assert result["macs"]["project"] == conv_macs(model, (64, 64)) > 0
    assert result["macs"]["peer"] > result["macs"]["project"]  # torchvision's SSDLite always runs at 320x320
    assert "| eager | project |" in format_detection_table(result)


def test_int8_of_a_detector_is_one_error_line(tmp_path, capsys):
    argv = ["export", "--model", "ssdlite_mobilenet_v2", "--width", "0.35", "--num-classes", "3", "--resolution", "64"]
    assert main([*argv, "--int8", "--calibration", "digits", "--out", str(tmp_path / "d.int8.onnx")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "classification" in err[0] and "detection" in err[0]
    assert not list(tmp_path.iterdir())
