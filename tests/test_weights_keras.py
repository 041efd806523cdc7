"""Keras MobileNetV2 .h5 files convert exactly: compared with Keras's own forward, stored in the fixture.

The fixture (tests/fixtures/keras, made by make_fixture.py with TensorFlow) holds random alpha-0.35 weights in the
Keras 2 weights-only layout (the keras-applications files) and the Keras 3 `.weights.h5` layout, plus Keras's
logits and pooled features on a fixed input. Full-model, no-top and 1001-class files are derived here with h5py,
the way Keras lays them out.
"""

import copy
import json
import logging
import shutil
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

import mobilenetv2
from mobilenetv2.cli import main

FIXTURE = Path(__file__).parent / "fixtures" / "keras"
KERAS2 = FIXTURE / "mobilenet_v2_0.35_96_keras2.h5"
KERAS3 = FIXTURE / "mobilenet_v2_0.35_96.weights.h5"
TOLERANCE = 1e-4  # fp32 logits


@pytest.fixture(scope="module")
def reference() -> dict[str, np.ndarray]:
    with np.load(FIXTURE / "reference.npz", allow_pickle=False) as f:
        return {k: f[k] for k in f.files}


@pytest.fixture(scope="module")
def keras2_model() -> torch.nn.Module:
    return mobilenetv2.convert(KERAS2, "keras")


def run(model: torch.nn.Module, x: np.ndarray, *, features: bool = False, dtype=torch.float32) -> np.ndarray:
    model = copy.deepcopy(model).to(dtype)
    inputs = torch.from_numpy(x).to(dtype)
    with torch.no_grad():
        out = model.pool(model.forward_body(inputs)).flatten(1) if features else model(inputs)
    return out.numpy()


def _predictions(root: h5py.Group) -> tuple[str, str]:
    names = [n.decode() if isinstance(n, bytes) else n for n in root["predictions"].attrs["weight_names"]]
    kernel = next(n for n in names if "kernel" in n)
    bias = next(n for n in names if "bias" in n)
    return f"predictions/{kernel}", f"predictions/{bias}"


def full_model_file(path: Path) -> Path:
    """`model.save("x.h5")` layout: the weights under model_weights, the architecture in model_config."""
    with h5py.File(KERAS2, "r") as src, h5py.File(path, "w") as dst:
        group = dst.create_group("model_weights")
        for name in src:
            src.copy(src[name], group, name=name)
        for key, value in src.attrs.items():
            group.attrs[key] = value
        dst.attrs["model_config"] = (FIXTURE / "model_config.json").read_text()
        dst.attrs["keras_version"] = src.attrs["keras_version"]
    return path


def without_top(path: Path) -> Path:
    """`include_top=False`: no predictions layer."""
    shutil.copy(KERAS2, path)
    with h5py.File(path, "r+") as f:
        del f["predictions"]
        f.attrs["layer_names"] = [n for n in f.attrs["layer_names"] if n not in (b"predictions", "predictions")]
    return path


def with_background_class(path: Path) -> Path:
    """A TF-slim style 1001-class head: class 0 is background, classes 1..10 the fixture's own."""
    shutil.copy(KERAS2, path)
    with h5py.File(path, "r+") as f:
        kernel_key, bias_key = _predictions(f)
        kernel, bias = f[kernel_key][()], f[bias_key][()]
        rng = np.random.default_rng(0)
        big_kernel = rng.normal(0, 0.03, (kernel.shape[0], 1001)).astype(np.float32)
        big_bias = rng.normal(0, 0.1, 1001).astype(np.float32)
        big_kernel[:, 1:11], big_bias[1:11] = kernel, bias
        del f[kernel_key], f[bias_key]
        f[kernel_key], f[bias_key] = big_kernel, big_bias
    return path


@pytest.mark.parametrize("path", [KERAS2, KERAS3], ids=["keras2-weights", "keras3-weights"])
def test_keras_files_match_keras_logits(path, reference):
    model = mobilenetv2.convert(path, "keras")
    assert model.meta.architecture == "mobilenet_v2_035" and model.num_classes == 10
    assert model.meta.options["padding"] == "tf" and model.meta.options["bn_eps"] == 1e-3
    diff = np.abs(run(model, reference["input"]) - reference["logits"]).max()
    assert diff <= TOLERANCE


def test_float64_conversion_equals_keras_float64_to_rounding(keras2_model, reference):
    model = keras2_model
    diff = np.abs(run(model, reference["input"], dtype=torch.float64) - reference["logits64"]).max()
    assert diff <= 1e-9  # the same function: only float64 rounding remains


def test_torch_padding_would_not_match(keras2_model, reference):
    """TF 'SAME' matters: the same weights with symmetric padding give other logits."""
    model = keras2_model
    symmetric = mobilenetv2.create_model("mobilenet_v2_035", num_classes=10, bn_eps=1e-3).eval()
    symmetric.load_state_dict(model.state_dict())
    assert np.abs(run(symmetric, reference["input"]) - reference["logits"]).max() > 100 * TOLERANCE


def test_keras_preprocessing_and_provenance_are_recorded(tmp_path):
    model = mobilenetv2.convert(KERAS3, "keras")
    assert model.meta.preprocessing.mean == (0.5, 0.5, 0.5) and model.meta.preprocessing.std == (0.5, 0.5, 0.5)
    assert model.meta.provenance["source"] == "keras" and model.meta.provenance["layout"] == "keras3-weights"
    assert len(model.meta.provenance["sha256"]) == 64
    mobilenetv2.save(model, tmp_path / "k.safetensors")
    loaded = mobilenetv2.load(tmp_path / "k.safetensors")
    assert loaded.meta.preprocessing == model.meta.preprocessing and loaded.meta.provenance == model.meta.provenance


def test_full_model_file_matches_and_records_its_input_size(tmp_path, reference):
    model = mobilenetv2.convert(full_model_file(tmp_path / "full.h5"), "keras")
    assert model.meta.provenance["layout"] == "keras-full-model"
    assert model.meta.preprocessing.input_size == (96, 96)
    assert np.abs(run(model, reference["input"]) - reference["logits"]).max() <= TOLERANCE


def test_file_without_top_gives_keras_features_and_an_untrained_classifier(tmp_path, reference):
    model = mobilenetv2.convert(without_top(tmp_path / "notop.h5"), "keras")
    features = run(model, reference["input"], features=True)
    assert np.abs(features - reference["features"]).max() <= TOLERANCE
    assert model.classifier[1].weight.abs().sum() == 0
    assert any("no top" in note for note in model.meta.provenance["notes"])


def test_1001_class_head_drops_the_background_class(tmp_path, reference, caplog):
    with caplog.at_level(logging.INFO):
        model = mobilenetv2.convert(with_background_class(tmp_path / "slim.h5"), "keras")
    assert model.num_classes == 1000
    assert any("background" in note for note in model.meta.provenance["notes"])
    assert "background" in caplog.text
    logits = run(model, reference["input"])
    assert np.abs(logits[:, :10] - reference["logits"]).max() <= TOLERANCE
    assert list(model.meta.class_names)[0] == "tench"


def test_cli_convert_then_info(tmp_path, capsys):
    src = tmp_path / "mobilenet_v2_0.35_96.weights.h5"
    shutil.copy(KERAS3, src)
    assert main(["convert", str(src), "--from", "keras"]) == 0
    out = tmp_path / "mobilenet_v2_0.35_96.safetensors"
    assert out.is_file() and "mobilenet_v2_035" in capsys.readouterr().out
    assert main(["info", str(out)]) == 0
    text = capsys.readouterr().out
    for expected in ("mobilenet_v2_035", "padding=tf", "mean (0.5, 0.5, 0.5)", "source: keras", "10 (unnamed)"):
        assert expected in text, expected
    assert main(["info", str(out), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["params"] == sum(p.numel() for p in mobilenetv2.load(out).parameters())
    assert summary["provenance"]["source"] == "keras" and summary["num_classes"] == 10


def test_keras_bad_inputs_give_one_line_and_exit_2(tmp_path, capsys):
    junk = tmp_path / "junk.h5"
    junk.write_bytes(b"\x89HDF not really" * 100)
    other = tmp_path / "other.h5"
    with h5py.File(other, "w") as f:
        f.attrs["layer_names"] = ["dense"]
        f.create_group("dense").attrs["weight_names"] = []
    cases = [(junk, "not an HDF5 file"), (other, "no layer 'Conv1'"), (tmp_path / "none.h5", "no such file")]
    for path, message in cases:
        assert main(["convert", str(path), "--from", "keras"]) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and message in err, err
