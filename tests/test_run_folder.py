"""The run folder's rules, through the CLI: resume from the folder alone, refused changes, one writer, no silent
restart over a run, a checkpoint at Ctrl-C, a stop at a non-finite loss."""

import json
import os
import re
import signal
import subprocess
import sys
import time

import pytest
import torch

from mobilenetv2.cli import main
from mobilenetv2.train.run_folder import locked

TINY = ["--model", "mobilenet_v2", "--width", "0.35", "--dataset", "synthetic", "--synthetic-size", "32"]
TINY += ["--resolution", "32", "--batch-size", "16", "--recipe", "digits", "--no-progress", "--threads", "1"]


def run(*args) -> int:
    return main(["train", *TINY, *args])


def one_error_line(capsys) -> str:
    err = [line for line in capsys.readouterr().err.splitlines() if "error" in line]
    assert len(err) == 1, err
    return err[0]


def test_resume_needs_only_the_folder_and_may_extend_the_epochs(tmp_path, capsys):
    out = tmp_path / "run"
    assert run("--epochs", "1", "--out", str(out)) == 0
    # The README's form: no --model or recipe flags; the run's config.toml decides, --epochs extends it.
    assert main(["train", "--resume", "--out", str(out), "--epochs", "2", "--no-progress"]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["resumed_from_step"] == 2 and summary["steps"] == 4 and summary["epochs"] == 2
    assert summary["model_options"]["width"] == 0.35


@pytest.mark.parametrize(("flag", "value"), [("--width", "0.5"), ("--shortcut", "none"), ("--seed", "3")])
def test_resume_refuses_changes_to_the_architecture_or_data_by_name(tmp_path, capsys, flag, value):
    out = tmp_path / "run"
    assert run("--epochs", "1", "--out", str(out)) == 0
    before = (out / "model.safetensors").read_bytes()
    assert main(["train", "--resume", "--out", str(out), flag, value]) == 2
    assert flag in one_error_line(capsys)
    assert (out / "model.safetensors").read_bytes() == before


def test_a_finished_run_is_not_restarted_unless_asked(tmp_path, capsys):
    out = tmp_path / "run"
    assert run("--epochs", "1", "--out", str(out)) == 0
    capsys.readouterr()
    assert run("--epochs", "1", "--out", str(out)) == 2
    assert "--overwrite" in one_error_line(capsys)
    assert run("--epochs", "1", "--out", str(out), "--overwrite") == 0


def test_a_second_writer_and_a_file_as_out_are_refused(tmp_path, capsys):
    out = tmp_path / "busy"
    with locked(out):
        assert run("--epochs", "1", "--out", str(out)) == 2
        assert "in use" in one_error_line(capsys)
    (tmp_path / "file").write_text("x")
    assert run("--epochs", "1", "--out", str(tmp_path / "file")) == 2
    assert "existing file" in one_error_line(capsys)


def test_stale_temp_files_are_removed_and_a_recipe_never_picks_the_folder(tmp_path):
    first = tmp_path / "first"
    assert run("--epochs", "1", "--out", str(first)) == 0
    (first / ".checkpoint-last.pt.abc.tmp").write_bytes(b"half a checkpoint")
    second = tmp_path / "second"
    # first/config.toml says out = first; as a recipe it must not send the new run there.
    assert main(["train", "--recipe", str(first / "config.toml"), "--out", str(second), "--no-progress"]) == 0
    assert (second / "model.safetensors").is_file()
    assert main(["train", "--resume", "--out", str(first), "--no-progress"]) == 0
    assert not list(first.glob(".*.tmp"))


def test_a_non_finite_loss_stops_with_one_line_and_valid_json(tmp_path, capsys):
    out = tmp_path / "nan"
    assert run("--epochs", "2", "--lr", "1e30", "--out", str(out)) == 2
    assert "NaN or Inf" in one_error_line(capsys)
    assert not (out / "model.safetensors").exists()
    for path in out.glob("*.json"):
        json.loads(path.read_text())  # strict JSON: NaN never written


def test_ctrl_c_checkpoints_the_step_it_reached(tmp_path):
    out = tmp_path / "interrupted"
    args = [*TINY, "--synthetic-size", "160", "--epochs", "50", "--out", str(out)]
    proc = subprocess.Popen([sys.executable, "-m", "mobilenetv2", "train", *args], stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        while not (out / "metrics.csv").exists():  # the first epoch (10 steps) has ended
            assert proc.poll() is None and time.monotonic() < deadline
            time.sleep(0.05)
        time.sleep(0.5)
        os.kill(proc.pid, signal.SIGINT)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130
    reached = int(re.search(r"interrupted at step (\d+); checkpoint saved", err).group(1))
    assert reached >= 10
    assert torch.load(out / "checkpoint-last.pt", weights_only=True)["step"] == reached  # not the epoch's end
