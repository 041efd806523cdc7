"""torchrun with 2 CPU processes (gloo) trains the same model as 1 process on the same global batch.

BatchNorm normalizes with per-process batch statistics unless SyncBatchNorm is on, and PyTorch's SyncBatchNorm
has no CPU kernel; so the comparison freezes BatchNorm (`--freeze-bn`: running statistics, as in fine-tuning)
and turns dropout off, in fp32 (on a CPU with native bf16, `--precision auto` trains in bf16). Then every
per-sample computation is the same, and the only difference left is
floating-point summation order: DDP averages two 8-image gradient means instead of one 16-image mean.
In fp32 that is a few ulps per step, i.e. ~1e-7 relative; after 3 small SGD steps the weights must agree to
1e-5 absolute (weights are O(0.1..1)), far below what one wrong sample or a missing all-reduce would change.
"""

import json
import os
import socket
import subprocess
import sys

import torch
from safetensors.torch import load_file

import mobilenetv2
from mobilenetv2.train import train
from test_train import tiny_config

ARGS = [
    "--model",
    "mobilenet_v2",
    "--width",
    "0.35",
    "--dropout",
    "0",
    "--dataset",
    "synthetic",
    "--synthetic-size",
    "48",
    "--resolution",
    "32",
    "--batch-size",
    "16",
    "--epochs",
    "1",
    "--recipe",
    "digits",
    "--seed",
    "0",
    "--freeze-bn",
    "--precision",
    "fp32",
    "--no-progress",
]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_processes_match_one_process_on_the_same_global_batch(tmp_path):
    out2 = tmp_path / "ddp"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_addr", "127.0.0.1"]
    cmd += ["--master_port", str(free_port()), "-m", "mobilenetv2", "train", *ARGS, "--out", str(out2)]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=240, env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    ddp_summary = json.loads((out2 / "summary.json").read_text())
    assert ddp_summary["world_size"] == 2

    options = {"model_options": {"width": 0.35, "dropout": 0.0}, "dropout": 0.0, "epochs": 1, "freeze_bn": True}
    options["precision"] = "fp32"  # the argument above is about fp32 rounding; CPUs with AMX would pick bf16
    single = train(tiny_config(tmp_path / "single", **options))
    assert single["world_size"] == 1 and single["steps"] == ddp_summary["steps"] == 3

    a, b = load_file(out2 / "model.safetensors"), load_file(tmp_path / "single" / "model.safetensors")
    assert a.keys() == b.keys()
    torch.manual_seed(0)  # the initialization both runs started from (train seeds before building the model)
    init = mobilenetv2.create_model("mobilenet_v2", width=0.35, dropout=0.0, num_classes=10).state_dict()
    moved = max((b[k] - init[k]).abs().max().item() for k in b if b[k].is_floating_point())
    worst = max((a[k] - b[k]).abs().max().item() for k in a if a[k].is_floating_point())
    assert worst < 1e-5, f"2-process weights differ from 1-process weights by {worst}"
    assert moved > 1000 * worst, "training must have moved the weights far more than the two runs disagree"
    assert abs(ddp_summary["val_loss"] - single["val_loss"]) < 1e-4
