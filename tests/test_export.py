"""Export: every format runs in its own runtime and matches PyTorch; the ONNX graph is what runtimes accept."""

import json

import numpy as np
import onnx
import pytest
import torch

import mobilenetv2
from conftest import randomize_bn_
from mobilenetv2.cli import main
from mobilenetv2.errors import UserError
from mobilenetv2.export import FORMATS, export_model, read_metadata
from mobilenetv2.export.onnx import check_graph, run_onnx
from mobilenetv2.export.openvino import run_openvino
from mobilenetv2.export.torchscript import run_torchscript

SIZE = (40, 48)  # strides 2..32 meet odd sizes (5x6, 3x3 ...), where TF SAME pads asymmetrically


def make_model(padding: str = "torch") -> torch.nn.Module:
    model = mobilenetv2.create_model("mobilenet_v2", width=0.35, num_classes=10, padding=padding)
    randomize_bn_(model)
    with torch.no_grad():  # logits of a few units, like a trained model's, so 1e-4 is a real bound
        model.classifier[1].weight.normal_(0, 0.5)
    return model.eval()


def torch_logits(model: torch.nn.Module, x: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        return model(torch.from_numpy(x)).numpy()


@pytest.fixture(scope="module")
def model() -> torch.nn.Module:
    return make_model()


@pytest.fixture(scope="module")
def onnx_file(model, tmp_path_factory):
    return export_model(model, tmp_path_factory.mktemp("onnx") / "m.onnx", format="onnx", input_size=SIZE)


def test_onnx_graph_is_clean_and_portable(onnx_file):
    proto = onnx.load(str(onnx_file.path))
    opset = next(o.version for o in proto.opset_import if o.domain in ("", "ai.onnx"))
    assert opset >= 17
    dims = proto.graph.input[0].type.tensor_type.shape.dim
    assert dims[0].dim_param and [d.dim_value for d in dims[1:]] == [3, *SIZE]
    ops = {n.op_type for n in proto.graph.node}
    assert "BatchNormalization" not in ops and "Identity" not in ops  # BN folded into the convs
    initializers = {i.name: onnx.numpy_helper.to_array(i) for i in proto.graph.initializer}
    clips = [n for n in proto.graph.node if n.op_type == "Clip"]
    assert len(clips) == 35  # every ReLU6: stem, 2 per bottleneck (1 in the t=1 block), head
    for clip in clips:
        assert float(initializers[clip.input[1]]) == 0.0 and float(initializers[clip.input[2]]) == 6.0
    check_graph(onnx_file.path)


@pytest.mark.parametrize("batch", [1, 3])
def test_onnx_matches_pytorch_at_any_batch(model, onnx_file, batch):
    x = np.random.default_rng(batch).standard_normal((batch, 3, *SIZE)).astype(np.float32)
    expected = torch_logits(model, x)
    assert np.abs(expected).max() > 1.0
    np.testing.assert_allclose(run_onnx(onnx_file.path, x), expected, rtol=0, atol=1e-4)
    assert onnx_file.max_abs_diff <= 1e-4


def test_tf_padding_exports_without_shape_arithmetic(tmp_path):
    model = make_model(padding="tf")
    result = export_model(model, tmp_path / "tf.onnx", input_size=SIZE)
    ops = {n.op_type for n in onnx.load(str(result.path)).graph.node}
    assert not ops & {"Shape", "Pad", "Gather", "ConstantOfShape"}  # SAME pads fused into the convs
    x = np.random.default_rng(0).standard_normal((2, 3, *SIZE)).astype(np.float32)
    np.testing.assert_allclose(run_onnx(result.path, x), torch_logits(model, x), rtol=0, atol=1e-4)


@pytest.mark.parametrize(
    ("fmt", "name", "run"), [("openvino", "m.xml", run_openvino), ("torchscript", "m.pt", run_torchscript)]
)
def test_other_formats_match_pytorch(model, tmp_path, fmt, name, run):
    result = export_model(model, tmp_path / name, format=fmt, input_size=SIZE)
    assert result.path.exists() and result.max_abs_diff <= 1e-4
    x = np.random.default_rng(1).standard_normal((3, 3, *SIZE)).astype(np.float32)
    np.testing.assert_allclose(run(result.path, x), torch_logits(model, x), rtol=0, atol=1e-4)


def test_export_that_disagrees_with_pytorch_is_refused(model, tmp_path, monkeypatch):
    import mobilenetv2.export.onnx as onnx_export

    real = onnx_export.run_onnx
    monkeypatch.setattr(onnx_export, "run_onnx", lambda path, x: real(path, x) + 1e-3)
    with pytest.raises(UserError, match="differs from PyTorch by max"):
        export_model(model, tmp_path / "bad.onnx", input_size=SIZE)
    assert not (tmp_path / "bad.onnx").exists()


def test_cli_exports_a_weights_file(model, tmp_path, capsys):
    weights = mobilenetv2.save(model, tmp_path / "digits.safetensors")
    assert main(["export", str(weights), "--format", "onnx", "--resolution", "40x48"]) == 0
    assert "verified" in capsys.readouterr().out
    x = np.random.default_rng(2).standard_normal((1, 3, *SIZE)).astype(np.float32)
    np.testing.assert_allclose(run_onnx(tmp_path / "digits.onnx", x), torch_logits(model, x), rtol=0, atol=1e-4)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["export"], "give a weights file"),
        (["export", "missing.safetensors"], "no such weights file"),
        (["export", "--model", "mobilenet_v2_035", "--resolution", "16"], "too small"),
        (["export", "--model", "mobilenet_v2_035", "--int8"], "needs --calibration"),
    ],
)
def test_cli_bad_input_is_one_line(argv, message, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1


@pytest.mark.parametrize("format", ["onnx", "openvino", "torchscript"])
def test_every_export_says_how_to_prepare_images_and_name_classes(format, tmp_path):
    model = make_model()
    names = [f"digit {i}" for i in range(10)]
    mobilenetv2.save(model, tmp_path / "w.safetensors", class_names=names)
    loaded = mobilenetv2.load(tmp_path / "w.safetensors")
    path = tmp_path / f"w{FORMATS[format]}"
    export_model(loaded, path, format=format, input_size=SIZE)
    meta = read_metadata(path)
    assert meta["class_names"] == names
    assert meta["architecture"] == "mobilenet_v2" and meta["options"]["width"] == 0.35
    assert meta["preprocessing"]["mean"] == list(loaded.meta.preprocessing.mean)
    assert meta["input_size"] == list(SIZE)
    if format == "onnx":  # stored where ONNX tools look for it
        props = {p.key: p.value for p in onnx.load(str(path)).metadata_props}
        assert json.loads(props["mobilenetv2"]) == meta
