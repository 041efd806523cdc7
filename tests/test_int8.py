"""INT8: post-training static quantization calibrated on user images, checked against fp32 before it is kept."""

import numpy as np
import onnx
import pytest
import torch
from PIL import Image

import mobilenetv2
from mobilenetv2.cli import main
from mobilenetv2.data.build import dataset_preprocessing
from mobilenetv2.data.datasets import digits_split
from mobilenetv2.errors import UserError
from mobilenetv2.export import read_metadata
from mobilenetv2.export.int8 import export_int8
from mobilenetv2.meta import set_meta


@pytest.fixture(scope="module")
def digits_model() -> torch.nn.Module:
    """An untrained digits-shaped model: these tests check the machinery (what is quantized, what is reported,
    what is refused); the agreement a trained model reaches is measured and documented in docs/deployment.md."""
    model = mobilenetv2.create_model("mobilenet_v2", width=0.35, num_classes=10).eval()
    meta = model.meta.replace(
        preprocessing=dataset_preprocessing("digits", "torchvision", (32, 32)), class_names=[str(i) for i in range(10)]
    )
    return set_meta(model, meta)


def test_int8_onnx_has_per_channel_int8_weights(digits_model, tmp_path):
    path = tmp_path / "m.int8.onnx"
    result = export_int8(digits_model, path, input_size=(32, 32), calibration="digits", limit=32, min_agreement=0)
    assert result.precision == "int8" and result.details["images"] == 360  # the whole digits val split
    assert 0 <= result.top1_agreement <= 1 and {"fp32_top1", "int8_top1"} <= result.details.keys()
    proto = onnx.load(str(result.path))
    initializers = {i.name: onnx.numpy_helper.to_array(i) for i in proto.graph.initializer}
    conv_weights = [  # (int8 weight, its scales): one scale per output channel
        (initializers[n.input[0]], initializers[n.input[1]])
        for n in proto.graph.node
        if n.op_type == "DequantizeLinear" and initializers.get(n.input[0], np.zeros(0)).ndim == 4
    ]
    assert len(conv_weights) == 52 and all(w.dtype == np.int8 for w, _ in conv_weights)
    assert all(scale.shape == (w.shape[0],) for w, scale in conv_weights)
    meta = read_metadata(result.path)
    assert meta["precision"] == "int8" and meta["class_names"] == list(digits_model.meta.class_names)


def test_int8_that_disagrees_is_refused(digits_model, tmp_path, monkeypatch):
    import mobilenetv2.export.int8 as int8

    monkeypatch.setattr(int8, "compare", lambda model, run, data: {"images": 10, "top1_agreement": 0.5})
    with pytest.raises(UserError, match="agrees with fp32 on 50.0%"):
        export_int8(digits_model, tmp_path / "bad.onnx", input_size=(32, 32), calibration="digits", limit=16)
    assert not (tmp_path / "bad.onnx").exists()


def test_cli_int8_with_an_image_folder(digits_model, tmp_path, capsys):
    images, labels = digits_split("val")
    for i, (image, label) in enumerate(zip(images[:80], labels[:80], strict=True)):
        folder = tmp_path / "data" / str(label)
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(image, mode="L").save(folder / f"{i}.png")
    weights = mobilenetv2.save(digits_model, tmp_path / "digits.safetensors")
    argv = ["export", str(weights), "--int8", "--calibration", str(tmp_path / "data"), "--min-agreement", "0"]
    argv += ["--json"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert '"precision": "int8"' in out and (tmp_path / "digits.int8.onnx").exists()


@pytest.mark.parametrize(("fmt", "name"), [("openvino", "m.xml"), ("torchscript", "m.pt")])
def test_int8_other_runtimes(digits_model, tmp_path, fmt, name):
    result = export_int8(
        digits_model, tmp_path / name, format=fmt, input_size=(32, 32), calibration="digits", limit=16, min_agreement=0
    )
    assert result.path.exists() and result.precision == "int8" and result.details["images"] == 360
    meta = read_metadata(result.path)
    assert meta["precision"] == "int8" and meta["input_size"] == [32, 32]


def test_cli_int8_needs_calibration_images(tmp_path, capsys):
    assert main(["export", "--model", "mobilenet_v2_035", "--int8", "--calibration", str(tmp_path / "nope")]) == 2
    assert "no such data folder" in capsys.readouterr().err
