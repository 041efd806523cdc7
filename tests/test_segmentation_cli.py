"""Segmentation through the CLI: train (the one loop) -> eval (metrics.json, saved masks checked by an
independent count) -> predict (mask + overlay, --json); bad inputs; the demo at a tiny size."""

import json

import numpy as np
import pytest
from PIL import Image

from mobilenetv2.cli import main
from mobilenetv2.data.segmentation import segmentation_split

TINY = ["--model", "deeplabv3_mobilenet_v2", "--width", "0.35", "--no-progress", "--threads", "1"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A 2-epoch run on 16 built-in scenes (cached under a temporary MOBILENETV2_CACHE)."""
    root = tmp_path_factory.mktemp("seg")
    mp = pytest.MonkeyPatch()
    mp.setenv("MOBILENETV2_CACHE", str(root / "cache"))
    run = root / "run"
    args = ["train", *TINY, "--dataset", "digits-segmentation", "--synthetic-size", "16", "--batch-size", "4"]
    assert main([*args, "--epochs", "2", "--out", str(run)]) == 0
    yield run, root
    mp.undo()


def test_train_writes_a_segmentation_run(trained):
    run, _ = trained
    summary = json.loads((run / "summary.json").read_text())
    assert summary["task"] == "segmentation" and summary["num_classes"] == 11
    assert 0 <= summary["val_miou"] <= 1 and "val_pixel_accuracy" in summary
    assert summary["recipe"] == "digits-segmentation" and summary["steps"] == 8


def test_eval_miou_equals_an_independent_count_over_saved_masks(trained, monkeypatch):
    run, root = trained
    monkeypatch.setenv("MOBILENETV2_CACHE", str(root / "cache"))
    out, masks = root / "eval", root / "masks"
    assert main(["eval", str(run / "model.safetensors"), "--scenes", "16", "--out", str(out),
                 "--save-masks", str(masks)]) == 0  # fmt: skip
    metrics = json.loads((out / "metrics.json").read_text())
    assert set(metrics) >= {"miou", "pixel_accuracy", "per_class_iou"}
    # Recount from the PNG files alone: saved prediction vs the dataset's mask, 255 ignored.
    data_root = next((root / "cache").iterdir())
    source = segmentation_split(data_root, "val")
    inter, union = np.zeros(11), np.zeros(11)
    for i in range(len(source)):
        truth = np.asarray(source.load(i)[1])
        pred = np.asarray(Image.open(masks / f"{source.name(i)}.png"))
        assert pred.shape == truth.shape
        keep = truth != 255
        for c in range(11):
            p, t = (pred == c) & keep, (truth == c) & keep
            inter[c] += (p & t).sum()
            union[c] += (p | t).sum()
    assert metrics["miou"] == pytest.approx(np.mean(inter[union > 0] / union[union > 0]))


def test_eval_multi_scale_and_a_plain_folder(trained, tmp_path):
    run, _ = trained
    (tmp_path / "images").mkdir()
    (tmp_path / "masks").mkdir()
    (tmp_path / "classes.txt").write_text("\n".join(["background", *map(str, range(10))]) + "\n")
    Image.new("RGB", (40, 36), (90, 120, 30)).save(tmp_path / "images/a.png")
    Image.fromarray(np.zeros((36, 40), np.uint8), mode="L").save(tmp_path / "masks/a.png")
    Image.new("RGB", (40, 36)).save(tmp_path / "images/bad.png")
    Image.fromarray(np.zeros((10, 10), np.uint8), mode="L").save(tmp_path / "masks/bad.png")  # wrong size
    out = tmp_path / "out"
    assert main(["eval", str(run / "model.safetensors"), "--data", str(tmp_path), "--multi-scale",
                 "--out", str(out)]) == 0  # fmt: skip
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["images"] == 1 and metrics["skipped_files"] == 1 and metrics["flip"] is True
    assert len(metrics["scales"]) == 6


def test_predict_writes_masks_and_overlays(trained, tmp_path, capsys):
    run, _ = trained
    Image.new("RGB", (50, 40), (200, 10, 10)).save(tmp_path / "red.jpg")
    (tmp_path / "broken.jpg").write_bytes(b"no image")
    out = tmp_path / "pred"
    code = main(["predict", str(tmp_path / "red.jpg"), str(tmp_path / "broken.jpg"),
                 "--weights", str(run / "model.safetensors"), "--out", str(out), "--json"])  # fmt: skip
    records = json.loads(capsys.readouterr().out)
    assert code == 1  # one file failed
    good, bad = records
    assert set(good) == {"file", "mask", "classes", "error"} and good["error"] is None
    assert Image.open(good["mask"]).size == (50, 40) and (out / "red_overlay.jpg").is_file()
    assert sum(good["classes"].values()) == pytest.approx(1.0)
    assert bad["mask"] is None and "broken.jpg" in bad["error"]


def test_bad_segmentation_options_are_one_line(capsys, tmp_path):
    assert main(["train", *TINY, "--dataset", "voc", "--out", str(tmp_path / "r")]) == 2
    assert "data" in capsys.readouterr().err
    assert main(["train", *TINY, "--data", str(tmp_path / "missing"), "--out", str(tmp_path / "r")]) == 2


@pytest.mark.slow
def test_demo_runs_end_to_end_at_a_tiny_size(tmp_path, monkeypatch):
    from mobilenetv2.workflows.segmentation_demo import run_demo

    monkeypatch.setenv("MOBILENETV2_CACHE", str(tmp_path / "cache"))
    report = run_demo(out=tmp_path / "demo", max_steps=2, scenes=32)
    text = report.read_text()
    assert "held-out mIoU" in text and (tmp_path / "demo" / "overlays.png").is_file()
    assert (tmp_path / "demo" / "backbone" / "model.safetensors").is_file()  # the classifier stage
    assert "held-out evaluation" in json.loads((tmp_path / "demo" / "demo.json").read_text())["stages_seconds"]
    assert json.loads((tmp_path / "demo" / "eval" / "metrics.json").read_text())["images"] == 8


@pytest.mark.parametrize("fmt", ["onnx", "openvino"])
def test_export_at_a_fixed_size_is_verified_in_its_runtime(trained, tmp_path, capsys, fmt):
    run, _ = trained
    out = tmp_path / ("seg.onnx" if fmt == "onnx" else "seg.xml")
    args = ["export", str(run / "model.safetensors"), "--format", fmt, "--resolution", "96x80", "--out", str(out)]
    assert main([*args, "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert out.is_file() and result["max_abs_diff"] < 1e-4


def test_bench_against_torchvision_segmenters(tmp_path, capsys):
    args = ["bench", "--model", "deeplabv3_mobilenet_v2", "--resolution", "64", "--threads", "1"]
    assert main([*args, "--warmup", "0", "--rounds", "1", "--block", "1", "--out", str(tmp_path)]) == 0
    table = capsys.readouterr().out
    assert "lraspp_mobilenet_v3_large | onnxruntime" in table and "deeplabv3_mobilenet_v3_large | pytorch" in table
    rows = json.loads((tmp_path / "bench.json").read_text())["rows"]
    assert len(rows) == 6 and rows[0]["params"] == 2_113_557
