"""A deterministic run killed with SIGKILL mid-run and resumed ends bitwise equal to an uninterrupted run."""

import os
import signal
import subprocess
import sys
import time

import torch
from safetensors.torch import load_file

from mobilenetv2.train import train
from test_train import tiny_config

ARGS = [
    "--model",
    "mobilenet_v2",
    "--width",
    "0.35",
    "--dropout",
    "0.1",
    "--dataset",
    "synthetic",
    "--synthetic-size",
    "48",
    "--resolution",
    "32",
    "--batch-size",
    "16",
    "--epochs",
    "3",
    "--recipe",
    "digits",
    "--seed",
    "0",
    "--threads",
    "1",
    "--deterministic",
    "--checkpoint-every",
    "1",
    "--no-progress",
]


def kill_after_first_checkpoint(out) -> int:
    """Start the CLI run and SIGKILL it as soon as a checkpoint exists: mid-step or mid-write."""
    proc = subprocess.Popen([sys.executable, "-m", "mobilenetv2", "train", *ARGS, "--out", str(out)])
    try:
        deadline = time.monotonic() + 120
        while not (out / "checkpoint-last.pt").exists():
            assert proc.poll() is None, "the run ended before it could be killed"
            assert time.monotonic() < deadline
            time.sleep(0.02)
        time.sleep(0.3)
        os.kill(proc.pid, signal.SIGKILL)
        return proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()


def test_resume_after_sigkill_is_bitwise_identical(tmp_path):
    killed = tmp_path / "killed"
    assert kill_after_first_checkpoint(killed) == -signal.SIGKILL
    step = torch.load(killed / "checkpoint-last.pt", weights_only=True)["step"]
    assert 0 < step < 9
    assert not (killed / "model.safetensors").exists()

    overrides = {"dropout": 0.1, "model_options": {"width": 0.35, "dropout": 0.1}, "epochs": 3}
    common = {**overrides, "deterministic": True, "checkpoint_every": 1}
    resumed = train(tiny_config(killed, resume=True, **common))
    assert resumed["resumed_from_step"] >= step
    reference = train(tiny_config(tmp_path / "reference", **common))

    a, b = load_file(killed / "model.safetensors"), load_file(tmp_path / "reference" / "model.safetensors")
    assert a.keys() == b.keys()
    different = [k for k in a if not torch.equal(a[k], b[k])]
    assert not different, f"{len(different)} tensors differ, e.g. {different[:3]}"
    assert resumed["val_top1"] == reference["val_top1"] and resumed["val_loss"] == reference["val_loss"]
    assert resumed["epochs"] == reference["epochs"] == 3
