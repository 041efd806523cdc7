"""`mobilenetv2 train` and `mobilenetv2 eval` from the command line: a tiny real run, then its evaluation."""

import csv
import json

import pytest
import torch

from mobilenetv2.cli import main

TRAIN = [
    "train",
    "--model",
    "mobilenet_v2",
    "--width",
    "0.35",
    "--dataset",
    "synthetic",
    "--synthetic-size",
    "40",
    "--resolution",
    "32",
    "--batch-size",
    "8",
    "--epochs",
    "1",
    "--threads",
    "1",
    "--no-progress",
]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    out = tmp_path_factory.mktemp("cli") / "run"
    assert main([*TRAIN, "--out", str(out)]) == 0
    return out


def test_cli_train_writes_summary_and_weights(trained, capsys):
    summary = json.loads((trained / "summary.json").read_text())
    assert summary["steps"] == 5 and summary["recipe"] == "paper"  # non-digits sets default to the paper recipe
    assert (trained / "model.safetensors").is_file()
    config = (trained / "config.toml").read_text()
    assert 'optimizer = "rmsprop_tf"' in config and "batch_size = 8" in config


def test_cli_eval_reports_accuracy_confusion_and_throughput(trained, tmp_path, capsys):
    out = tmp_path / "eval"
    assert main(["eval", str(trained / "model.safetensors"), "--dataset", "synthetic", "--out", str(out)]) == 0
    printed = json.loads(capsys.readouterr().out)
    report = json.loads((out / "eval.json").read_text())
    assert printed["top1"] == report["top1"] and report["images"] == 64  # the default synthetic val split
    assert 0 <= report["top1"] <= report["top5"] <= 1 and report["images_per_second"] > 0
    with open(out / "confusion.csv") as f:
        rows = list(csv.reader(f))
    matrix = torch.tensor([[int(v) for v in row[1:]] for row in rows[1:]])
    assert matrix.shape == (10, 10) and matrix.sum() == 64
    assert matrix.trace().item() / 64 == pytest.approx(report["top1"])
    with open(out / "per_class.csv") as f:
        per_class = list(csv.DictReader(f))
    assert len(per_class) == 10 and sum(int(r["images"]) for r in per_class) == 64
    assert (out / "confusion.png").stat().st_size > 0


def test_cli_errors_are_one_line_and_name_the_flag(capsys, tmp_path):
    assert main(["train", "--batch-size", "0", "--dataset", "synthetic", "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "--batch-size" in err and err.count("\n") == 1
    assert main(["eval", str(tmp_path / "missing.safetensors")]) == 2
    assert main(["train", "--data", str(tmp_path / "nowhere"), "--out", str(tmp_path / "x")]) == 2


@pytest.mark.parametrize("command", ["train", "eval", "demo"])
def test_help(command, capsys):
    with pytest.raises(SystemExit) as exc:
        main([command, "--help"])
    assert exc.value.code == 0
    assert "usage: mobilenetv2 " + command in capsys.readouterr().out


def test_eval_refuses_a_model_whose_classes_are_not_the_datas(tmp_path, capsys):
    """A 1000-class model scored on the 10 digits would report top-1 0.0 and exit 0: that is an error."""
    import mobilenetv2
    from mobilenetv2.preprocessing import default_preprocessing

    model = mobilenetv2.create_model("mobilenet_v2_035")
    path = mobilenetv2.save(model, tmp_path / "imagenet.safetensors", preprocessing=default_preprocessing(32))
    assert main(["eval", str(path), "--dataset", "digits"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "1000 classes" in err[0] and "--ignore-class-mismatch" in err[0]
    assert main(["eval", str(path), "--dataset", "digits", "--ignore-class-mismatch", "--batch-size", "360"]) == 0


def test_usage_errors_are_one_line_and_version_is_printed(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["train", "--shortcut", "foo"])
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--shortcut" in err[0] and "foo" in err[0]
    with pytest.raises(SystemExit) as exc:
        main(["--version"])
    assert exc.value.code == 0 and capsys.readouterr().out.startswith("mobilenetv2 ")
