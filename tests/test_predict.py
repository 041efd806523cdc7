"""`mobilenetv2 predict`: every image kind a user may have, bad files reported per file, JSON, exit codes."""

import io
import json

import numpy as np
import pytest
import torch
from PIL import Image

import mobilenetv2
from conftest import randomize_bn_
from mobilenetv2.cli import main
from mobilenetv2.infer.predict import predict_files
from mobilenetv2.preprocessing import default_preprocessing

CLASSES = ["cat", "dog", "fish"]


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    torch.manual_seed(0)
    model = randomize_bn_(mobilenetv2.create_model("mobilenet_v2", width=0.35, num_classes=3)).eval()
    with torch.no_grad():
        model.classifier[1].weight.normal_(0, 1.0)  # predictions that differ from image to image
    path = tmp_path_factory.mktemp("weights") / "tiny.safetensors"
    return mobilenetv2.save(model, path, preprocessing=default_preprocessing(32), class_names=CLASSES)


def pattern(width: int = 48, height: int = 40) -> Image.Image:
    """An asymmetric RGB picture, so rotations and channel mix-ups change the prediction."""
    y, x = np.mgrid[0:height, 0:width]
    rgb = np.stack([x * 255 // width, y * 255 // height, (x * y) % 256], axis=-1).astype(np.uint8)
    return Image.fromarray(rgb, "RGB")


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    d = tmp_path_factory.mktemp("images")
    img = pattern()
    img.save(d / "rgb.jpg", quality=95)
    img.save(d / "rgb.webp")
    img.save(d / "rgb.bmp")
    img.convert("P").save(d / "palette.gif")
    img.convert("L").save(d / "gray.png")
    img.convert("CMYK").save(d / "cmyk.jpg")
    rgba = img.convert("RGBA")
    rgba.putalpha(128)
    rgba.save(d / "rgba.png")
    sixteen = (np.asarray(img.convert("L"), dtype=np.uint16) * 257).astype(np.uint16)
    gray16 = Image.fromarray(sixteen)
    assert gray16.mode == "I;16"
    gray16.save(d / "gray16.png")
    # EXIF orientation 6 means "rotate 90 degrees clockwise to display"; PNG keeps the pixels exact.
    exif = Image.Exif()
    exif[0x0112] = 6
    img.save(d / "exif_rotated.png", exif=exif)
    img.transpose(Image.Transpose.ROTATE_270).save(d / "upright.png")
    return d


def by_name(results):
    return {r.file.rsplit("/", 1)[-1]: r for r in results}


def test_every_format_and_mode_is_predicted(weights, images):
    results = by_name(predict_files([str(images)], weights=weights, topk=3))
    names = {"rgb.jpg", "rgb.webp", "rgb.bmp", "palette.gif", "gray.png", "cmyk.jpg", "rgba.png", "gray16.png"}
    assert names <= set(results)
    for name in names:
        r = results[name]
        assert r.error is None, r.error
        assert [t["label"] for t in r.top] == [CLASSES[t["index"]] for t in r.top]
        probs = [t["prob"] for t in r.top]
        assert probs == sorted(probs, reverse=True) and abs(sum(probs) - 1) < 1e-4


def test_16_bit_grayscale_is_scaled_not_clipped(weights, images):
    results = by_name(predict_files([str(images / "gray16.png"), str(images / "gray.png")], weights=weights))
    sixteen, eight = results["gray16.png"].top, results["gray.png"].top
    assert [t["prob"] for t in sixteen] == pytest.approx([t["prob"] for t in eight], abs=1e-5)


def test_exif_orientation_is_applied(weights, images):
    results = by_name(predict_files([str(images / "exif_rotated.png"), str(images / "upright.png")], weights=weights))
    rotated, upright = results["exif_rotated.png"].top, results["upright.png"].top
    assert [t["index"] for t in rotated] == [t["index"] for t in upright]
    assert [t["prob"] for t in rotated] == pytest.approx([t["prob"] for t in upright], abs=1e-5)


def test_batching_does_not_change_predictions(weights, images):
    files = [str(p) for p in sorted(images.glob("*.png"))]
    one = predict_files(files, weights=weights, batch_size=1)
    many = predict_files(files, weights=weights, batch_size=3)
    for a, b in zip(one, many, strict=True):
        assert [t["index"] for t in a.top] == [t["index"] for t in b.top]
        assert [t["prob"] for t in a.top] == pytest.approx([t["prob"] for t in b.top], abs=1e-5)


def test_split_inference_and_every_engine_predict_the_same(weights, images, capsys):
    files = [str(images / "rgb.bmp")]
    plain = predict_files(files, weights=weights, splits=1)[0].top
    for splits, engine in ((3, "auto"), (1, "eager"), (3, "eager")):
        other = predict_files(files, weights=weights, splits=splits, engine=engine)[0].top
        assert [t["prob"] for t in other] == pytest.approx([t["prob"] for t in plain], abs=1e-5)
    capsys.readouterr()
    assert main(["predict", *files, "--weights", str(weights), "--engine", "eager", "--json"]) == 0
    top = json.loads(capsys.readouterr().out)[0]["top"]
    assert [t["prob"] for t in top] == pytest.approx([t["prob"] for t in plain], abs=1e-5)


@pytest.fixture
def bad_files(tmp_path, images):
    jpeg = io.BytesIO()
    pattern(200, 200).save(jpeg, "JPEG")
    (tmp_path / "truncated.jpg").write_bytes(jpeg.getvalue()[: len(jpeg.getvalue()) // 2])
    (tmp_path / "notes.jpg").write_text("this is not an image")
    pattern(300, 300).save(tmp_path / "huge.png")
    return tmp_path


def test_bad_files_fail_alone_and_the_cli_exits_1(weights, images, bad_files, capsys):
    good = str(images / "rgb.jpg")
    argv = ["predict", good, str(bad_files / "truncated.jpg"), str(bad_files / "notes.jpg")]
    argv += [str(bad_files / "huge.png"), str(bad_files / "missing.png"), "--weights", str(weights)]
    code = main([*argv, "--json", "--max-pixels", "50000"])
    out = json.loads(capsys.readouterr().out)
    assert code == 1
    assert [r["file"] for r in out] == argv[1:6]
    assert out[0]["error"] is None and len(out[0]["top"]) == 3
    errors = {r["file"].rsplit("/", 1)[-1]: r["error"] for r in out[1:]}
    assert "truncated" in errors["truncated.jpg"] or "not a readable image" in errors["truncated.jpg"]
    assert "not a readable image" in errors["notes.jpg"]
    assert "decompression bomb" in errors["huge.png"]
    assert "no such file" in errors["missing.png"]
    assert all(r["top"] == [] for r in out[1:])


def test_folders_and_globs_expand_and_text_output_names_labels(weights, images, capsys):
    code = main(["predict", str(images / "*.bmp"), str(images), "--weights", str(weights), "--topk", "1"])
    out = capsys.readouterr().out
    assert code == 0
    assert out.count("rgb.bmp") == 2  # once from the glob, once from the folder
    assert out.count("%") == len(list(images.iterdir())) + 1
    assert any(name in out for name in CLASSES)


def test_missing_weights_is_a_one_line_usage_error(images, capsys):
    assert main(["predict", str(images / "rgb.jpg")]) == 2
    err = capsys.readouterr().err
    assert "--weights" in err and len(err.strip().splitlines()) == 1


def test_a_1000_class_file_without_names_gets_the_imagenet_labels():
    from mobilenetv2.infer.predict import class_labels

    model = mobilenetv2.create_model("mobilenet_v2_035")
    labels = class_labels(model, 1000)
    assert labels[0] == "tench" and len(set(labels)) > 990
    assert class_labels(model, 3) == ["0", "1", "2"]
