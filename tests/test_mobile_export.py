"""LiteRT (.tflite) and ExecuTorch (.pte) exports: run in their own runtimes, match PyTorch, carry the header.

Their converters are optional extras (`mobilenetv2[tflite]`, `mobilenetv2[executorch]`), not part of `dev`: where
one is absent its tests skip with the reason. Conversions take tens of seconds even at width 0.35, 32 px."""

import importlib.util

import numpy as np
import pytest
import torch

import mobilenetv2
from conftest import randomize_bn_
from mobilenetv2.cli import main
from mobilenetv2.data.build import dataset_preprocessing
from mobilenetv2.errors import UserError
from mobilenetv2.export import export_model, read_metadata
from mobilenetv2.meta import set_meta

SIZE = (32, 40)


def installed(*modules: str) -> bool:
    return all(importlib.util.find_spec(m) is not None for m in modules)


needs_litert = pytest.mark.skipif(
    not installed("litert_torch", "ai_edge_litert"),
    reason="litert-torch / ai-edge-litert not installed (pip install 'mobilenetv2[tflite]')",
)
needs_executorch = pytest.mark.skipif(
    not installed("executorch"), reason="executorch not installed (pip install 'mobilenetv2[executorch]')"
)


@pytest.fixture(scope="module")
def model() -> torch.nn.Module:
    model = mobilenetv2.create_model("mobilenet_v2", width=0.35, num_classes=10)
    randomize_bn_(model)
    with torch.no_grad():  # logits of a few units, so 1e-4 is a real bound
        model.classifier[1].weight.normal_(0, 0.5)
    meta = model.meta.replace(
        preprocessing=dataset_preprocessing("digits", "torchvision", SIZE),
        class_names=[f"digit {i}" for i in range(10)],
    )
    return set_meta(model, meta).eval()


def logits(model: torch.nn.Module, x: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        return model(torch.from_numpy(x)).numpy()


@needs_litert
def test_tflite_matches_pytorch_and_carries_the_header(model, tmp_path):
    from mobilenetv2.export.litert import interpreter, run_tflite

    result = export_model(model, tmp_path / "m.tflite", format="tflite", input_size=SIZE)
    assert result.max_abs_diff <= 1e-4 and sorted(p.name for p in tmp_path.iterdir()) == ["m.tflite"]
    assert list(interpreter(result.path).get_input_details()[0]["shape"]) == [1, 3, *SIZE]
    x = np.random.default_rng(1).standard_normal((3, 3, *SIZE)).astype(np.float32)  # the batch-1 file, resized
    expected = logits(model, x)
    assert np.abs(expected).max() > 1.0
    np.testing.assert_allclose(run_tflite(result.path, x), expected, rtol=0, atol=1e-4)
    meta = read_metadata(result.path)
    assert meta["class_names"] == list(model.meta.class_names) and meta["input_size"] == list(SIZE)
    assert meta["batch_size"] == 1


@needs_executorch
def test_executorch_matches_pytorch_at_any_batch_and_carries_the_header(model, tmp_path):
    from mobilenetv2.export.executorch import load_program, run_executorch

    result = export_model(model, tmp_path / "m.pte", format="executorch", input_size=SIZE)
    assert result.max_abs_diff <= 1e-4 and sorted(p.name for p in tmp_path.iterdir()) == ["m.pte"]
    # The program is planned for the declared batch bound (lowering used to narrow it to 15), and the runner
    # feeds a larger batch in chunks of it.
    planned = load_program(result.path).load_method("forward").metadata.input_tensor_meta(0).sizes()
    assert list(planned) == [64, 3, *SIZE] and read_metadata(result.path)["max_batch"] == 64
    for batch in (1, 3, 50, 70):
        x = np.random.default_rng(batch).standard_normal((batch, 3, *SIZE)).astype(np.float32)
        np.testing.assert_allclose(run_executorch(result.path, x), logits(model, x), rtol=0, atol=1e-4)
    meta = read_metadata(result.path)
    assert meta["architecture"] == "mobilenet_v2" and meta["options"]["width"] == 0.35
    assert meta["preprocessing"]["mean"] == list(model.meta.preprocessing.mean)


@pytest.mark.parametrize("fmt", ["tflite", "executorch"])
def test_a_failed_check_leaves_the_old_file(model, tmp_path, monkeypatch, fmt):
    """Written beside the target and renamed only once verified: a bad export never replaces a good file."""
    import mobilenetv2.export.verify as verify

    target = tmp_path / f"m.{'tflite' if fmt == 'tflite' else 'pte'}"
    target.write_bytes(b"old")
    monkeypatch.setattr(verify, "max_abs_diff", lambda expected, actual: 1.0)
    writer = "mobilenetv2.export.litert.export_tflite" if fmt == "tflite" else "mobilenetv2.export.executorch"
    if fmt == "tflite":
        monkeypatch.setattr(writer, lambda model, path, *, input_size, batch_size=1: path.write_bytes(b"new"))
        monkeypatch.setattr("mobilenetv2.export.litert.run_tflite", lambda path, x: x)
    else:
        monkeypatch.setattr(f"{writer}.export_executorch", lambda model, path, *, input_size: path.write_bytes(b"new"))
        monkeypatch.setattr(f"{writer}.run_executorch", lambda path, x: x)
    with pytest.raises(UserError, match="differs from PyTorch"):
        export_model(model, target, format=fmt, input_size=SIZE)
    assert target.read_bytes() == b"old" and [p.name for p in tmp_path.iterdir()] == [target.name]


@needs_litert
@pytest.mark.slow
def test_tflite_int8_is_full_integer_and_reports_agreement(model, tmp_path, capsys):
    from mobilenetv2.export.litert import interpreter

    weights = mobilenetv2.save(model, tmp_path / "w.safetensors")
    argv = ["export", str(weights), "--format", "tflite", "--int8", "--calibration", "digits"]
    assert main([*argv, "--calibration-size", "16", "--min-agreement", "0", "--json"]) == 0
    assert '"top1_agreement"' in capsys.readouterr().out
    it = interpreter(tmp_path / "w.int8.tflite")
    assert it.get_input_details()[0]["dtype"] == np.int8 and it.get_output_details()[0]["dtype"] == np.int8
    meta = read_metadata(tmp_path / "w.int8.tflite")
    assert meta["precision"] == "int8" and meta["class_names"] == list(model.meta.class_names)


@needs_executorch
@pytest.mark.slow
def test_executorch_int8_reports_agreement(model, tmp_path):
    from mobilenetv2.export.int8 import export_int8

    result = export_int8(
        model, tmp_path / "m.int8.pte", format="executorch", input_size=SIZE, calibration="digits", limit=16,
        min_agreement=0,
    )  # fmt: skip
    assert result.precision == "int8" and result.details["images"] == 360 and 0 <= result.top1_agreement <= 1
    assert read_metadata(result.path)["precision"] == "int8"


def test_executorch_batch_bound_keeps_planned_buffers_small():
    """The batch bound ExecuTorch plans input and output buffers for: 64 for a classifier at 224 px, fewer for
    a segmenter whose logits come at the input size."""
    from mobilenetv2.export.executorch import PLANNED_BYTES, max_batch

    classifier = mobilenetv2.create_model("mobilenet_v2", width=0.35).eval()
    assert max_batch(classifier, (224, 224)) == 64
    segmenter = mobilenetv2.create_model("deeplabv3_mobilenet_v2", width=0.35, num_classes=21).eval()
    bound = max_batch(segmenter, (512, 512))
    assert bound == 2 and bound * 4 * 512 * 512 * (3 + 21) <= PLANNED_BYTES


def test_cli_batch_size_is_only_for_tflite(capsys):
    assert main(["export", "--model", "mobilenet_v2_035", "--batch-size", "2"]) == 2
    err = capsys.readouterr().err
    assert "--batch-size applies to --format tflite" in err and len(err.strip().splitlines()) == 1


@pytest.mark.skipif(installed("litert_torch"), reason="litert-torch is installed here")
def test_missing_converter_is_one_line_naming_the_extra(capsys):
    assert main(["export", "--model", "mobilenet_v2_035", "--format", "tflite", "--resolution", "32"]) == 2
    err = capsys.readouterr().err
    assert "mobilenetv2[tflite]" in err and len(err.strip().splitlines()) == 1


@pytest.mark.skipif(installed("litert_torch") and installed("tensorflow"), reason="the runtimes are installed here")
def test_bench_leaves_out_absent_runtimes_with_the_reason(tmp_path, caplog):
    from mobilenetv2.bench.latency import benchmark_latency

    paths = ["eager", "litert" if not installed("litert_torch") else "keras-tflite", "keras-tflite"]
    result = benchmark_latency(
        model_name="mobilenet_v2_035", resolution=(32, 32), batch_size=2, paths=paths, warmup=1, rounds=1, block=1
    )
    assert [r["name"] for r in result["rows"]] == ["eager"]
    assert "keras-tflite left out" in caplog.text


@pytest.fixture(scope="module")
def detector_weights(tmp_path_factory):
    model = mobilenetv2.create_model("ssdlite_mobilenet_v2", width=0.35, num_classes=3).eval()
    randomize_bn_(model)
    return mobilenetv2.save(model, tmp_path_factory.mktemp("det") / "det.safetensors")


def test_mobile_detector_exports_refuse_nms(detector_weights, tmp_path):
    model = mobilenetv2.load(detector_weights)
    for fmt, suffix in (("tflite", "tflite"), ("executorch", "pte")):
        with pytest.raises(UserError, match="decoded boxes and scores"):
            export_model(model, tmp_path / f"d.{suffix}", format=fmt, input_size=(64, 64), nms=True)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.slow
@pytest.mark.parametrize(
    "fmt", [pytest.param("tflite", marks=needs_litert), pytest.param("executorch", marks=needs_executorch)]
)
def test_detector_exports_decoded_boxes_and_scores(detector_weights, tmp_path, capsys, fmt):
    """`mobilenetv2 export DET --format tflite|executorch`: boxes (N, A, 4) and scores (N, A, C - 1), verified
    in the runtime against PyTorch within 1e-4, at a batch other than the file's."""
    from mobilenetv2.export.detection import DecodedDetector, fixed_anchors, outputs_runner

    out = tmp_path / f"det.{'tflite' if fmt == 'tflite' else 'pte'}"
    argv = ["export", str(detector_weights), "--format", fmt, "--resolution", "64", "--out", str(out), "--json"]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert '"max_abs_diff_boxes"' in printed and '"max_abs_diff_scores"' in printed
    meta = read_metadata(out)
    assert meta["outputs"] == ["boxes", "scores"] and meta["boxes"] == "normalized xyxy"
    model = mobilenetv2.load(detector_weights)
    wrapper = DecodedDetector(model, anchors=fixed_anchors(model, (64, 64))).eval()
    x = np.random.default_rng(3).standard_normal((3, 3, 64, 64)).astype(np.float32)
    with torch.no_grad():
        expected = [t.numpy() for t in wrapper(torch.from_numpy(x))]
    actual = outputs_runner(out, fmt, ("boxes", "scores"))(x)
    assert [a.shape for a in actual] == [e.shape for e in expected] and expected[1].shape[-1] == 2
    for e, a in zip(expected, actual, strict=True):
        np.testing.assert_allclose(a, e, rtol=0, atol=1e-4)


@pytest.mark.slow
@pytest.mark.parametrize(
    "fmt", [pytest.param("tflite", marks=needs_litert), pytest.param("executorch", marks=needs_executorch)]
)
def test_segmenter_exports_logits_at_the_input_size(tmp_path, fmt):
    """DeepLabv3 (image pooling included) in the runtime: (N, classes, H, W) logits within 1e-4 of PyTorch."""
    from mobilenetv2.export.int8 import runner

    model = mobilenetv2.create_model("deeplabv3_mobilenet_v2", width=0.35, num_classes=4).eval()
    randomize_bn_(model)
    out = tmp_path / f"seg.{'tflite' if fmt == 'tflite' else 'pte'}"
    result = export_model(model, out, format=fmt, input_size=(64, 64))
    assert result.max_abs_diff <= 1e-4
    x = np.random.default_rng(4).standard_normal((2, 3, 64, 64)).astype(np.float32)
    actual = runner(fmt, out)(x)
    assert actual.shape == (2, 4, 64, 64)
    np.testing.assert_allclose(actual, logits(model, x), rtol=0, atol=1e-4)
    assert read_metadata(out)["architecture"] == "deeplabv3_mobilenet_v2"
