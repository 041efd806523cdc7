"""torchvision and timm weights convert exactly: same logits as the source library, for every registered width."""

import os
import pickle

import pytest
import torch

import mobilenetv2
from conftest import randomize_bn_
from mobilenetv2.cli import main
from mobilenetv2.registry import MOBILENET_V2_WIDTHS

torchvision = pytest.importorskip("torchvision")
WIDTHS = sorted(MOBILENET_V2_WIDTHS.values())
TOLERANCE = 1e-4  # fp32 logits


def random_weights_(model: torch.nn.Module, seed: int) -> torch.nn.Module:
    """Random conv/linear weights and randomized BatchNorm parameters and running statistics."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.Conv2d | torch.nn.Linear):
                fan_in = m.weight[0].numel()
                m.weight.copy_(torch.randn(m.weight.shape, generator=g) * (1.0 / fan_in) ** 0.5)
                if m.bias is not None:
                    m.bias.copy_(torch.randn(m.bias.shape, generator=g) * 0.1)
    return randomize_bn_(model, seed).eval()


def max_logit_diff(source: torch.nn.Module, converted: torch.nn.Module, size: int = 64) -> float:
    x = torch.randn(2, 3, size, size, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        expected, got = source(x), converted(x)
    assert got.shape == expected.shape
    return (got - expected).abs().max().item()


@pytest.mark.parametrize("width", WIDTHS)
def test_torchvision_every_width_matches_torchvision_logits(tmp_path, width):
    source = random_weights_(torchvision.models.mobilenet_v2(width_mult=width, num_classes=17), seed=3)
    path = tmp_path / "tv.pth"
    torch.save(source.state_dict(), path)
    model = mobilenetv2.convert(path, "torchvision")
    assert model.width == width and model.num_classes == 17
    assert max_logit_diff(source, model) <= TOLERANCE
    assert model.meta.provenance["self_check"]["max_abs_diff"] <= TOLERANCE
    assert model.meta.provenance["sha256"] and model.meta.provenance["source"] == "torchvision"


def _timm_model(width: float, num_classes: int) -> torch.nn.Module:
    from mobilenetv2.weights.timm import build_timm

    return build_timm(width, num_classes)


@pytest.mark.parametrize("width", WIDTHS)
def test_timm_every_width_matches_timm_logits(tmp_path, width):
    pytest.importorskip("timm")
    source = random_weights_(_timm_model(width, 1000), seed=4)
    path = tmp_path / "timm.pth"
    torch.save(source.state_dict(), path)
    model = mobilenetv2.convert(path, "timm")
    assert model.width == width and model.num_classes == 1000
    assert max_logit_diff(source, model) <= TOLERANCE
    assert model.meta.preprocessing.interpolation == "bicubic"
    assert list(model.meta.class_names)[0] == "tench" and len(list(model.meta.class_names)) == 1000


def test_timm_registered_names_and_safetensors_files_convert(tmp_path):
    timm = pytest.importorskip("timm")
    from safetensors.torch import save_file

    source = random_weights_(timm.create_model("mobilenetv2_050", pretrained=False), seed=5)
    path = tmp_path / "model.safetensors"
    save_file({k: v.contiguous() for k, v in source.state_dict().items()}, str(path))
    model = mobilenetv2.convert(path, "timm")
    assert model.meta.architecture == "mobilenet_v2_050"
    assert max_logit_diff(source, model) <= TOLERANCE


def test_timm_depth_scaled_variant_is_refused_by_name(tmp_path):
    timm = pytest.importorskip("timm")
    path = tmp_path / "deep.pth"
    torch.save(timm.create_model("mobilenetv2_110d", pretrained=False).state_dict(), path)
    with pytest.raises(ValueError, match="blocks per stage"):
        mobilenetv2.convert(path, "timm")


def test_cli_converts_torchvision_file_and_the_result_loads_exactly(tmp_path, capsys):
    source = random_weights_(torchvision.models.mobilenet_v2(width_mult=0.75), seed=6)
    src = tmp_path / "mobilenet_v2.pth"
    torch.save({"state_dict": source.state_dict(), "epoch": 3}, src)  # a training checkpoint
    assert main(["convert", str(src), "--from", "torchvision"]) == 0
    printed = capsys.readouterr().out
    assert "mobilenet_v2_075" in printed and "1000 classes" in printed and "max abs diff" in printed
    out = tmp_path / "mobilenet_v2.safetensors"
    model = mobilenetv2.load(out)
    assert max_logit_diff(source, model) <= TOLERANCE
    assert list(model.meta.class_names)[:2] == ["tench", "goldfish"]
    assert model.meta.provenance["file"] == "mobilenet_v2.pth"


def test_cli_converts_timm_file_to_named_output(tmp_path, capsys):
    timm = pytest.importorskip("timm")
    source = random_weights_(timm.create_model("mobilenetv2_035", pretrained=False, num_classes=5), seed=7)
    src, out = tmp_path / "timm.pth", tmp_path / "out" / "m140.safetensors"
    torch.save(source.state_dict(), src)
    assert main(["convert", str(src), "--from", "timm", "--out", str(out)]) == 0
    assert "mobilenet_v2_035" in capsys.readouterr().out
    assert max_logit_diff(source, mobilenetv2.load(out)) <= TOLERANCE


class _RunsCode:
    """Unpickling this would call os.system (the classic malicious checkpoint)."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


@pytest.mark.parametrize("writer", ["torch.save", "pickle.dump"])
def test_malicious_pickle_is_refused_and_never_runs(tmp_path, capsys, writer):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pth"
    payload = {"features.0.0.weight": torch.zeros(1), "x": _RunsCode(str(marker))}
    if writer == "torch.save":
        torch.save(payload, path)
    else:
        path.write_bytes(pickle.dumps(payload))
    assert main(["convert", str(path), "--from", "torchvision"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "refusing" in err and "system" in err
    with pytest.raises(ValueError, match="refusing"):
        mobilenetv2.convert(path, "torchvision")
    assert not marker.exists()


def test_bad_inputs_give_one_line_and_exit_2(tmp_path, capsys):
    rand = tmp_path / "random.pth"
    rand.write_bytes(os.urandom(4096))
    other = tmp_path / "squeezenet.pth"
    torch.save(torchvision.models.squeezenet1_1(num_classes=3).state_dict(), other)
    cases = [
        (rand, "torchvision", "not a PyTorch weights file"),
        (other, "torchvision", "not a torchvision mobilenet_v2"),
        (other, "timm", "not a timm mobilenetv2"),
        (tmp_path / "missing.pth", "timm", "no such file"),
    ]
    for path, source, message in cases:
        assert main(["convert", str(path), "--from", source]) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and message in err, err
