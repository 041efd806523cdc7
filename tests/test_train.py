"""Training: recipes and overrides, the TF RMSProp update, weight-decay groups, and a real tiny run's folder."""

import csv
import json
import math
import sys

import pytest
import torch
from torch import nn

import mobilenetv2
from mobilenetv2.train import TrainConfig, resolve, train
from mobilenetv2.train.config import load_recipe
from mobilenetv2.train.optim import RMSpropTF, lr_at, param_groups

TINY = {"width": 0.35, "dropout": 0.0}


def tiny_config(out, **overrides) -> TrainConfig:
    values = {
        "model": "mobilenet_v2",
        "model_options": dict(TINY),
        "dataset": "synthetic",
        "synthetic_size": 48,
        "resolution": 32,
        "batch_size": 16,
        "epochs": 2,
        "recipe": "digits",
        "seed": 0,
        "threads": 1,
        "progress": False,
        "out": str(out),
    }
    return TrainConfig(**{**values, **overrides})


def test_paper_recipe_is_section_6_1():
    cfg = resolve(TrainConfig(recipe="paper", dataset="synthetic"))
    assert (cfg.optimizer, cfg.rmsprop_decay, cfg.momentum, cfg.rmsprop_eps) == ("rmsprop_tf", 0.9, 0.9, 1.0)
    assert (cfg.weight_decay, cfg.weight_decay_depthwise, cfg.lr, cfg.lr_decay, cfg.batch_size) == (
        4e-5,
        False,
        0.045,
        0.98,
        96,
    )
    assert cfg.dropout == 0.2
    tv = resolve(TrainConfig(recipe="torchvision-v1", dataset="synthetic"))
    assert (tv.optimizer, tv.batch_size, tv.epochs, tv.lr) == ("sgd", 256, 300, 0.045)


def test_lr_scales_linearly_with_the_global_batch_unless_given():
    assert resolve(TrainConfig(recipe="paper", dataset="synthetic", batch_size=192)).lr == pytest.approx(0.09)
    assert resolve(TrainConfig(recipe="paper", dataset="synthetic", batch_size=192, lr=0.01)).lr == 0.01


def test_flags_override_the_recipe_and_errors_name_the_flag():
    assert resolve(TrainConfig(recipe="paper", dataset="synthetic", epochs=3)).epochs == 3
    with pytest.raises(ValueError, match="--batch-size"):
        resolve(TrainConfig(dataset="synthetic", batch_size=0))
    with pytest.raises(ValueError, match="--optimizer"):
        resolve(TrainConfig(dataset="synthetic", optimizer="adagrad"))
    with pytest.raises(ValueError, match="--recipe"):
        resolve(TrainConfig(recipe="nope"))


def test_exponential_schedule_decays_0_98_per_epoch():
    cfg = resolve(TrainConfig(recipe="paper", dataset="synthetic"))
    assert lr_at(cfg, 0, 100) == pytest.approx(0.045)
    assert lr_at(cfg, 99, 100) == pytest.approx(0.045)
    assert lr_at(cfg, 250, 100) == pytest.approx(0.045 * 0.98**2)


def test_rmsprop_tf_matches_tensorflow_update_rule():
    # TF: ms starts at 1; ms = d*ms + (1-d)*g^2; mom = m*mom + lr*g/sqrt(ms + eps); w -= mom.
    w0 = torch.tensor([0.5, -1.0, 2.0], dtype=torch.float64)
    grads = [torch.tensor([0.3, -2.0, 0.01], dtype=torch.float64), torch.tensor([-1.0, 0.5, 4.0], dtype=torch.float64)]
    p = nn.Parameter(w0.clone())
    opt = RMSpropTF([p], lr=0.1, decay=0.9, momentum=0.9, eps=1.0)
    ms, mom, w = [1.0] * 3, [0.0] * 3, w0.tolist()
    for g in grads:
        p.grad = g.clone()
        opt.step()
        for i in range(3):
            ms[i] = 0.9 * ms[i] + 0.1 * g[i].item() ** 2
            mom[i] = 0.9 * mom[i] + 0.1 * g[i].item() / math.sqrt(ms[i] + 1.0)
            w[i] -= mom[i]
    assert p.detach().tolist() == pytest.approx(w, rel=1e-12)


def test_paper_weight_decay_skips_depthwise_bn_and_bias():
    model = mobilenetv2.create_model("mobilenet_v2", width=0.35)
    decay, no_decay = param_groups(model, resolve(TrainConfig(recipe="paper", dataset="synthetic")))
    decayed = {id(p) for p in decay["params"]}
    dw = model.blocks[3].depthwise.conv.weight
    assert id(dw) not in decayed and id(model.blocks[3].expand.conv.weight) in decayed
    assert id(model.classifier[1].bias) not in decayed and id(model.stem.bn.weight) not in decayed
    assert decay["weight_decay"] == 4e-5 and no_decay["weight_decay"] == 0.0
    tv_groups = param_groups(model, resolve(TrainConfig(recipe="torchvision-v1", dataset="synthetic")))
    assert len(tv_groups) == 1  # torchvision decays every parameter


def test_tiny_run_writes_the_run_folder(tmp_path):
    out = tmp_path / "run"
    summary = train(tiny_config(out))
    on_disk = json.loads((out / "summary.json").read_text())
    assert on_disk == summary
    for key in ("val_top1", "val_top5"):
        assert 0.0 <= on_disk[key] <= 1.0
    assert on_disk["val_top5"] >= on_disk["val_top1"]
    assert on_disk["epochs"] == 2 and on_disk["world_size"] == 1 and on_disk["skipped_files"] == 0
    assert on_disk["resumed_from_step"] == 0 and on_disk["wall_seconds"] > 0
    assert on_disk["train_images_per_second"] > 0
    with open(out / "metrics.csv") as f:
        rows = list(csv.DictReader(f))
    assert [int(r["epoch"]) for r in rows] == [1, 2]
    assert {"train_loss", "train_top1", "val_loss", "val_top1", "val_top5", "lr"} <= set(rows[0])
    for name in ("checkpoint-last.pt", "checkpoint-best.pt", "curves.png", "config.toml", "metrics.json"):
        assert (out / name).is_file(), name
    assert list((out / "tensorboard").iterdir())
    model = mobilenetv2.load(out / "model.safetensors")
    assert list(model.meta.class_names) == [f"class_{i}" for i in range(10)]
    assert tuple(model.meta.preprocessing.input_size) == (32, 32)
    ckpt = torch.load(out / "checkpoint-last.pt", weights_only=True)
    assert ckpt["step"] == 2 * (48 // 16)
    # The saved config is a loadable recipe that reproduces the run's settings.
    again = resolve(TrainConfig(recipe=str(out / "config.toml")))
    assert (again.lr, again.batch_size, again.epochs, again.model_options) == (
        resolve(tiny_config(out)).lr,
        16,
        2,
        TINY,
    )


def test_max_steps_stops_early(tmp_path):
    summary = train(tiny_config(tmp_path / "r", max_steps=2, epochs=5))
    assert summary["steps"] == 2


def test_finetune_with_new_num_classes_resets_the_classifier(tmp_path):
    train(tiny_config(tmp_path / "src", epochs=1))
    source = mobilenetv2.load(tmp_path / "src" / "model.safetensors")
    from mobilenetv2.train.tasks import ClassificationTask

    cfg = resolve(tiny_config(tmp_path / "ft", weights=str(tmp_path / "src" / "model.safetensors")))
    model = ClassificationTask(cfg).build_model(num_classes=3)
    assert model.classifier[1].out_features == 3
    assert torch.equal(model.stem.conv.weight, source.stem.conv.weight)
    assert torch.equal(model.blocks[5].project.bn.running_var, source.blocks[5].project.bn.running_var)
    assert model.classifier[1].bias.abs().sum() == 0  # freshly initialized, not the old weights
    assert load_recipe("digits")["hflip"] is False


@pytest.mark.parametrize("reuse", [True, False])
def test_cpu_run_keeps_freed_memory_only_while_it_trains(tmp_path, monkeypatch, reuse):
    """`train` raises glibc's malloc thresholds for a CPU run (big tensors stay in the heap between steps) and puts
    the defaults back when it returns; `reuse_memory=False` leaves malloc alone."""
    import mobilenetv2.allocator as allocator

    calls = []
    monkeypatch.setattr(allocator, "set_thresholds", lambda mmap, trim: calls.append((mmap, trim)) or True)
    monkeypatch.setattr(allocator, "_libc", lambda: None)  # nothing to trim in this test
    train(tiny_config(tmp_path / "r", max_steps=1, epochs=1, reuse_memory=reuse, device="cpu"))
    expected = [(allocator.REUSE_LIMIT,) * 2, (allocator.GLIBC_DEFAULT,) * 2] if reuse else []
    assert calls == expected


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="mallopt is glibc's")
def test_glibc_accepts_the_malloc_setting():
    from mobilenetv2.allocator import reusing_freed_memory

    with reusing_freed_memory() as active:
        assert active
