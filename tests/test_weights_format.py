"""Our weights file: one safetensors file rebuilds the exact model; bad files give one clear error line."""

import json
import os
import subprocess
import sys

import pytest
import torch

import mobilenetv2
from conftest import randomize_bn_
from mobilenetv2.cli import main
from mobilenetv2.preprocessing import Preprocessing
from mobilenetv2.weights import imagenet_class_names, load_into, read_header


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    model = mobilenetv2.create_model("mobilenet_v2", width=0.3, num_classes=4, padding="tf", bn_eps=1e-3)
    randomize_bn_(model, seed=2).eval()
    path = tmp_path_factory.mktemp("w") / "m.safetensors"
    pre = Preprocessing(input_size=(96, 128), resize=110, interpolation="bicubic", mean=(0.5,) * 3, std=(0.5,) * 3)
    mobilenetv2.save(
        model, path, preprocessing=pre, class_names=["a", "b", "c", "d"], provenance={"source": "test", "x": 1}
    )
    return model, path, pre


def test_load_rebuilds_the_exact_model_from_the_file_alone(saved):
    model, path, pre = saved
    loaded = mobilenetv2.load(path)
    assert not loaded.training
    assert loaded.meta.architecture == "mobilenet_v2" and loaded.width == 0.3
    assert loaded.meta.options["padding"] == "tf" and loaded.meta.options["bn_eps"] == 1e-3
    x = torch.randn(2, 3, 96, 128)
    with torch.no_grad():
        assert torch.equal(loaded(x), model(x))
    assert loaded.meta.preprocessing == pre
    assert list(loaded.meta.class_names) == ["a", "b", "c", "d"]
    assert loaded.meta.provenance == {"source": "test", "x": 1}


def test_header_holds_architecture_options_preprocessing_classes_provenance(saved):
    _, path, _ = saved
    header = read_header(path)
    assert header["architecture"] == "mobilenet_v2"
    assert header["options"]["width"] == 0.3 and header["options"]["num_classes"] == 4
    assert header["preprocessing"]["input_size"] == [96, 128] and header["preprocessing"]["mean"] == [0.5] * 3
    assert header["class_names"] == ["a", "b", "c", "d"] and header["provenance"]["source"] == "test"


def test_load_into_fills_the_same_architecture(saved):
    model, path, _ = saved
    same = load_into(
        mobilenetv2.create_model("mobilenet_v2", width=0.3, num_classes=4, padding="tf", bn_eps=1e-3), path
    )
    assert all(torch.equal(a, b) for a, b in zip(same.state_dict().values(), model.state_dict().values(), strict=True))


def test_mismatch_names_the_first_tensor_and_both_shapes(saved):
    model, path, _ = saved
    target = mobilenetv2.create_model("mobilenet_v2_050", num_classes=4).state_dict()
    first = next(k for k, v in model.state_dict().items() if v.shape != target[k].shape)
    ours, theirs = tuple(model.state_dict()[first].shape), tuple(target[first].shape)
    with pytest.raises(ValueError) as info:
        load_into(mobilenetv2.create_model("mobilenet_v2_050", num_classes=4), path)
    assert f"{first!r} has shape {ours}, the model expects {theirs}" in str(info.value)


def test_another_architectures_file_is_refused_clearly(tmp_path):
    path = mobilenetv2.save(mobilenetv2.create_model("mobilenet_v1_025", num_classes=3), tmp_path / "v1.safetensors")
    with pytest.raises(
        ValueError, match=r"holds mobilenet_v1_025 weights, not mobilenet_v2_035: .*'stem\.conv\.weight'"
    ):
        load_into(mobilenetv2.create_model("mobilenet_v2_035", num_classes=3), path)


def test_info_shows_what_a_file_holds(saved, capsys):
    _, path, _ = saved
    assert main(["info", str(path)]) == 0
    text = capsys.readouterr().out
    for expected in ("mobilenet_v2", "width=0.3", "bicubic", "center crop 96x128", "4 named (a, b, c, ...)", "test"):
        assert expected in text, expected
    assert main(["info", str(path), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    model = mobilenetv2.load(path)
    assert summary["params"] == sum(p.numel() for p in model.parameters())
    assert summary["macs"] == mobilenetv2.profile(model, (96, 128)).macs


def _bad_files(tmp_path, good):
    random_bytes = tmp_path / "random.safetensors"
    random_bytes.write_bytes(os.urandom(5000))
    truncated = tmp_path / "truncated.safetensors"
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    foreign = tmp_path / "foreign.safetensors"
    from safetensors.torch import save_file

    save_file({"conv_stem.weight": torch.zeros(8, 3, 3, 3)}, str(foreign))
    return [
        (random_bytes, "not a readable safetensors file"),
        (truncated, "truncated.safetensors"),
        (foreign, "without a mobilenetv2 header"),
        (tmp_path / "missing.safetensors", "no such weights file"),
    ]


def test_bad_weights_files_give_one_line_and_exit_2(saved, tmp_path, capsys):
    _, good, _ = saved
    for path, message in _bad_files(tmp_path, good):
        assert main(["info", str(path)]) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and message in err, err
        with pytest.raises((ValueError, FileNotFoundError)):
            mobilenetv2.load(path)


def test_cli_process_prints_no_traceback_for_a_truncated_file(saved, tmp_path):
    _, good, _ = saved
    truncated = tmp_path / "t.safetensors"
    truncated.write_bytes(good.read_bytes()[:1000])
    proc = subprocess.run(
        [sys.executable, "-m", "mobilenetv2", "info", str(truncated)], capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr and proc.stderr.strip().count("\n") == 0


def test_newer_format_and_unknown_architecture_are_named(saved, tmp_path):
    from safetensors.torch import load_file, save_file

    _, good, _ = saved
    header = read_header(good)
    for change, message in (({"format_version": 99}, "format 99"), ({"architecture": "resnet50"}, "resnet50")):
        path = tmp_path / "x.safetensors"
        save_file(load_file(str(good)), str(path), metadata={"mobilenetv2": json.dumps({**header, **change})})
        with pytest.raises(ValueError, match=message):
            mobilenetv2.load(path)


def test_imagenet_class_names_come_offline_in_synset_order():
    names = imagenet_class_names()
    assert len(names) == 1000 and names[0] == "tench" and names[1] == "goldfish" and len(set(names)) > 990


def test_a_full_disk_keeps_the_old_file_and_gives_one_line(saved, tmp_path, monkeypatch, capsys):
    model, path, _ = saved
    src, out = tmp_path / "tv.pth", tmp_path / "tv.safetensors"
    torch.save(torchvision_state_dict(), src)
    assert main(["convert", str(src), "--from", "torchvision", "--out", str(out)]) == 0
    before = out.read_bytes()
    capsys.readouterr()

    def write_until_full(tensors, filename, metadata=None):  # what safetensors does when the disk fills up
        with open(filename, "wb") as f:
            f.write(b"\0" * 1000)
        raise RuntimeError("I/O error")

    monkeypatch.setattr("safetensors.torch.save_file", write_until_full)
    monkeypatch.setattr("mobilenetv2.atomic.disk_full", lambda folder: True)
    assert main(["convert", str(src), "--from", "torchvision", "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "no space left on device" in err and str(out) in err, err
    assert out.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tv.pth", "tv.safetensors"]
    with pytest.raises(OSError, match="no space left"):
        mobilenetv2.save(model, path.with_name("other.safetensors"))


def torchvision_state_dict():
    import torchvision

    return torchvision.models.mobilenet_v2(width_mult=0.35, num_classes=3).state_dict()
