"""Detection through the CLI: train on a COCO folder, eval (pycocotools), predict (JSON and drawn PNGs)."""

import json

import pytest
from PIL import Image

from mobilenetv2.cli import main
from mobilenetv2.data.digits_detection import DigitsDetectionSpec, write_digits_detection
from mobilenetv2.detection.coco_eval import evaluate_coco

TINY = ["--width", "0.35", "--resolution", "64", "--batch-size", "4", "--epochs", "1", "--no-progress"]


@pytest.fixture(scope="module")
def coco_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("coco")
    write_digits_detection(root, DigitsDetectionSpec(image_size=64, train_images=8, val_images=4, max_digit=30))
    path = root / "annotations" / "instances_train.json"
    doc = json.loads(path.read_text())
    (root / "train" / "broken.png").write_bytes(b"\x89PNG truncated")
    doc["images"].append({"id": 99, "file_name": "broken.png", "width": 64, "height": 64})
    doc["annotations"].append({"id": 999, "image_id": 1, "category_id": 3, "bbox": [70, 70, 5, 5], "iscrowd": 0})
    path.write_text(json.dumps(doc))
    return root


@pytest.fixture(scope="module")
def trained(coco_dir, tmp_path_factory):
    run = tmp_path_factory.mktemp("run") / "run"
    args = ["train", "--model", "ssdlite_mobilenet_v2", "--data", str(coco_dir), "--recipe", "ssdlite-digits"]
    assert main([*args, *TINY, "--max-steps", "2", "--out", str(run)]) == 0
    return run


def test_train_on_a_coco_folder_counts_skipped(trained):
    summary = json.loads((trained / "summary.json").read_text())
    assert summary["task"] == "detection" and summary["dataset"] == "coco"
    assert 0 <= summary["val_map"] <= 1 and "val_map50" in summary
    assert summary["skipped_files"] == 1 and summary["skipped_boxes"] == 1
    assert (trained / "model.safetensors").is_file() and (trained / "curves.png").is_file()


def test_eval_writes_metrics_and_coco_detections(trained, coco_dir, tmp_path):
    out = tmp_path / "eval"
    assert main(["eval", str(trained / "model.safetensors"), "--data", str(coco_dir), "--out", str(out)]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    detections = json.loads((out / "detections.json").read_text())
    assert set(metrics) >= {"map", "map50", "map75", "map_small", "map_medium", "map_large", "per_class_ap"}
    assert detections and set(detections[0]) == {"image_id", "category_id", "bbox", "score"}
    # Our number is pycocotools' own on our detections.json.
    gt = json.loads((coco_dir / "annotations" / "instances_val.json").read_text())
    assert evaluate_coco(gt, detections)[0]["map"] == pytest.approx(metrics["map"])


def test_predict_json_and_drawn_images(trained, coco_dir, tmp_path, capsys):
    image = coco_dir / "val" / "00000.png"
    big = tmp_path / "big.png"
    Image.open(image).resize((128, 96)).save(big)
    weights = str(trained / "model.safetensors")
    args = ["predict", str(image), str(big), str(tmp_path / "missing.png"), "--weights", weights, "--json"]
    rc = main([*args, "--score-threshold", "0", "--max-detections", "5", "--out", str(tmp_path / "drawn")])
    results = json.loads(capsys.readouterr().out)
    assert rc == 1 and [r["error"] is None for r in results] == [True, True, False]
    dets = results[1]["detections"]
    assert 1 <= len(dets) <= 5 and set(dets[0]) == {"box", "label", "class_id", "score"}
    x1, y1, x2, y2 = dets[0]["box"]
    assert 0 <= x1 <= x2 <= 128 and 0 <= y1 <= y2 <= 96  # the original image's pixels
    assert dets[0]["label"] == str(dets[0]["class_id"] - 1)
    assert (tmp_path / "drawn" / "big.png").is_file()


@pytest.mark.slow
def test_detection_demo_smoke(tmp_path, monkeypatch):
    monkeypatch.setenv("MOBILENETV2_CACHE", str(tmp_path / "cache"))
    out = tmp_path / "demo"
    assert main(["demo", "--task", "detection", "--max-steps", "1", "--resolution", "64", "--out", str(out)]) == 0
    report = (out / "report.md").read_text()
    assert "mAP@0.5" in report and (out / "predictions.png").is_file()
    # stage one (the digits classifier) initialised the detector's backbone; the detector was exported and verified
    assert (out / "backbone" / "model.safetensors").is_file() and (out / "model.onnx").is_file()
    assert "ONNX export" in report and "max abs diff" in report
