"""Faults a careless or hostile user can cause, each through the CLI: nothing lost, nothing hangs, no traceback
(one line naming the cause, exit 2), nothing silently ignored. One test per class of fault."""

import errno
import io
import json
import os
import zipfile

import numpy as np
import pytest
import torch
from PIL import Image

import mobilenetv2
from mobilenetv2.atomic import atomic_path, write_text_atomic
from mobilenetv2.cli import main
from mobilenetv2.errors import UserError
from mobilenetv2.preprocessing import default_preprocessing


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    model = mobilenetv2.create_model("mobilenet_v2", width=0.35, num_classes=3).eval()
    path = tmp_path_factory.mktemp("weights") / "tiny.safetensors"
    return mobilenetv2.save(model, path, preprocessing=default_preprocessing(32))


def image(path, size=(40, 40)):
    Image.fromarray((np.random.default_rng(0).random((*size, 3)) * 255).astype(np.uint8)).save(path)
    return path


def one_error_line(capsys, rc: int) -> str:
    out, err = capsys.readouterr()
    assert rc == 2, out + err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


def rewrite_header(src, dst, tensors=None, **changes):
    from safetensors import safe_open
    from safetensors.torch import load_file, save_file

    header = json.loads(safe_open(str(src), "pt").metadata()["mobilenetv2"])
    for key, value in changes.items():
        header[key] = {**header[key], **value} if isinstance(value, dict) else value
    save_file(tensors or load_file(str(src)), str(dst), metadata={"mobilenetv2": json.dumps(header)})
    return dst


# 1. Data lost on export --------------------------------------------------------------------------------------


def test_export_refuses_its_input_and_a_wrong_extension(weights, tmp_path, capsys):
    source = tmp_path / "w.onnx"
    source.write_bytes(weights.read_bytes())
    before = source.read_bytes()
    assert "is the input file" in one_error_line(capsys, main(["export", str(source), "--out", str(source)]))
    assert "is the input file" in one_error_line(capsys, main(["export", str(source)]))  # default output
    assert source.read_bytes() == before
    for fmt, out in [("onnx", "x.txt"), ("torchscript", "ts.safetensors"), ("openvino", "ir.onnx")]:
        line = one_error_line(capsys, main(["export", str(weights), "--format", fmt, "--out", str(tmp_path / out)]))
        assert "must end in" in line
    assert sorted(p.name for p in tmp_path.iterdir()) == ["w.onnx"]


def test_failed_reexport_keeps_the_previous_file(weights, tmp_path, capsys, monkeypatch):
    out = tmp_path / "m.pt"
    assert main(["export", str(weights), "--format", "torchscript", "--out", str(out)]) == 0
    good = out.read_bytes()

    def differs(*args, **kwargs):
        raise UserError("torchscript export differs from PyTorch; not exported")

    monkeypatch.setattr("mobilenetv2.export.check_close", differs)
    capsys.readouterr()
    assert "differs" in one_error_line(
        capsys, main(["export", str(weights), "--format", "torchscript", "--out", str(out)])
    )
    assert out.read_bytes() == good
    assert [p.name for p in tmp_path.iterdir()] == ["m.pt"]  # no temp file left


def test_atomic_writer_keeps_pairs_and_old_files_and_uses_the_umask(tmp_path):
    xml, bin_ = tmp_path / "m.xml", tmp_path / "m.bin"
    xml.write_text("old xml")
    bin_.write_text("old bin")
    with pytest.raises(OSError), atomic_path(xml, keep_suffix=True, companions=(".bin",)) as tmp:  # disk full
        assert tmp.suffix == ".xml"
        tmp.write_text("new xml")
        tmp.with_suffix(".bin").write_text("half a")
        raise OSError(errno.ENOSPC, "no space left on device")
    assert (xml.read_text(), bin_.read_text()) == ("old xml", "old bin")
    with atomic_path(xml, keep_suffix=True, companions=(".bin",)) as tmp:
        tmp.write_text("new xml")
        tmp.with_suffix(".bin").write_text("new bin")
    assert (xml.read_text(), bin_.read_text()) == ("new xml", "new bin")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.bin", "m.xml"]
    old = os.umask(0o022)
    try:
        write_text_atomic(tmp_path / "r.md", "x")
    finally:
        os.umask(old)
    assert (tmp_path / "r.md").stat().st_mode & 0o777 == 0o644


# 2. Hostile weights files -------------------------------------------------------------------------------------


def test_hostile_weights_are_refused_before_anything_is_built(weights, tmp_path, capsys):
    img = str(image(tmp_path / "a.png"))
    cases = {
        "classes": ({"options": {"num_classes": 50000}}, "classifier.1.weight"),
        "width": ({"options": {"width": 5}}, "stem"),
        "resize": ({"preprocessing": {"resize": 100000}}, "preprocessing"),
        "size": ({"preprocessing": {"input_size": [100000, 100000]}}, "preprocessing"),
    }
    for name, (change, cause) in cases.items():
        bad = rewrite_header(weights, tmp_path / f"{name}.safetensors", **change)
        assert cause in one_error_line(capsys, main(["predict", "--weights", str(bad), img])), name
    from safetensors.torch import load_file

    tensors = load_file(str(weights))
    tensors["classifier.1.weight"][0, 0] = float("nan")
    nan = rewrite_header(weights, tmp_path / "nan.safetensors", tensors=tensors)
    assert "NaN" in one_error_line(capsys, main(["predict", "--weights", str(nan), img]))


def test_torch_zip_bomb_is_refused_before_torch_load(tmp_path, capsys, monkeypatch):
    bomb = tmp_path / "bomb.pth"
    with zipfile.ZipFile(bomb, "w", compression=zipfile.ZIP_DEFLATED) as z:
        z.writestr("archive/data.pkl", b"\0" * (80 << 20))
    monkeypatch.setattr("torch.load", lambda *a, **k: pytest.fail("torch.load reached"))
    line = one_error_line(capsys, main(["convert", str(bomb), "--from", "torchvision"]))
    assert "expand" in line


# 3. Hangs -----------------------------------------------------------------------------------------------------


def test_fifos_and_symlink_loops_are_reported_per_file(weights, tmp_path, capsys):
    d = tmp_path / "imgs"
    (d / "sub").mkdir(parents=True)
    image(d / "good.png")
    image(d / "new\nline.png")
    os.mkfifo(d / "fifo.png")
    os.mkfifo(tmp_path / "fifo.png")
    (d / "sub" / "up").symlink_to("..")
    (d / "dangling.png").symlink_to("nowhere.png")
    for inputs in ([str(tmp_path / "fifo.png")], [str(d)], [f"{d}/**/*.png"]):
        rc = main(["predict", "--weights", str(weights), "--topk", "1", *inputs])
        out = capsys.readouterr().out
        assert rc == 1, out
        assert "fifo.png: error: not a regular file (FIFO)" in out
    assert "sub/up: error: symlink loop" in out and "dangling.png: error: dangling symlink" in out
    assert "new\\nline.png\n" in out and sum(line.startswith("   ") for line in out.splitlines()) == 2


def test_image_folder_counts_broken_links_and_fifos_as_skipped(tmp_path):
    from mobilenetv2.data.datasets import ImageFolder

    for c in "ab":
        (tmp_path / c).mkdir()
        image(tmp_path / c / "0.png")
    (tmp_path / "a" / "gone.png").symlink_to("missing.png")
    (tmp_path / "a" / "self").symlink_to("../a")
    os.mkfifo(tmp_path / "b" / "f.png")
    folder = ImageFolder(tmp_path)
    assert len(folder) == 2
    assert sorted(os.path.basename(p) for p in folder.skipped) == ["f.png", "gone.png", "self"]


# 4. Tracebacks become one line --------------------------------------------------------------------------------


def test_malformed_h5_existing_out_file_and_oom_are_one_line(tmp_path, capsys, monkeypatch, weights):
    import h5py

    h5 = tmp_path / "bad.h5"
    with h5py.File(h5, "w") as f:
        f.attrs["layer_names"] = [b"Conv1", b"missing_layer"]
        f.create_group("Conv1").attrs["weight_names"] = []
    assert "missing_layer" in one_error_line(capsys, main(["convert", str(h5), "--from", "keras"]))
    afile = tmp_path / "afile"
    afile.write_text("mine")
    for argv in (["eval", str(weights), "--dataset", "digits"], ["paper", "table3"], ["demo"]):
        assert "existing file" in one_error_line(capsys, main([*argv, "--out", str(afile)]))
    assert afile.read_text() == "mine"

    def oom(args):
        raise RuntimeError("DefaultCPUAllocator: can't allocate memory: you tried to allocate 1099511627776 bytes.")

    monkeypatch.setattr("mobilenetv2.cli.bench.run", oom)
    line = one_error_line(capsys, main(["bench", "--batch-size", "4096", "--resolution", "2048"]))
    assert "out of memory: 1024.00 GiB did not fit with --batch-size 4096, --resolution 2048x2048" in line


# 5. Silent nonsense is refused --------------------------------------------------------------------------------


def test_ignored_values_are_refused_by_flag(weights, tmp_path, capsys):
    img = str(image(tmp_path / "a.png"))
    for value in ("0", "-5"):
        line = one_error_line(capsys, main(["predict", "--weights", str(weights), "--max-pixels", value, img]))
        assert "--max-pixels" in line
    assert "--batch-size" in one_error_line(capsys, main(["bench", "--batch-size", "0"]))
    calib = tmp_path / "calib"
    argv = ["export", str(weights), "--int8", "--calibration", str(calib), "--min-agreement", "2"]
    assert "--min-agreement" in one_error_line(capsys, main(argv))
    wide = mobilenetv2.save(mobilenetv2.create_model("mobilenet_v2", width=0.5, num_classes=3), tmp_path / "w5.st")
    argv = ["train", "--dataset", "digits", "--weights", str(wide), "--width", "0.35", "--out", str(tmp_path / "r")]
    assert "--width 0.35 contradicts --weights" in one_error_line(capsys, main(argv))


def test_max_pixels_above_pils_limit_is_honoured(tmp_path, monkeypatch):
    from mobilenetv2.data.images import open_image

    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)  # stands in for PIL's 89M-pixel default
    path = image(tmp_path / "a.png")  # 1600 pixels
    assert open_image(path, max_pixels=5000).size == (40, 40)
    with pytest.raises(UserError, match="refused"):
        open_image(path, max_pixels=1000)


def test_calibration_skips_and_counts_bad_images(tmp_path, caplog):
    from mobilenetv2.data.datasets import ImageFolder
    from mobilenetv2.export.calibration import preprocess

    for c in "ab":
        (tmp_path / c).mkdir()
        image(tmp_path / c / "0.png")
    (tmp_path / "a" / "1.png").write_bytes(b"not a png")
    folder = ImageFolder(tmp_path)
    images, labels = preprocess(folder, list(range(len(folder))), default_preprocessing(32), "calibration")
    assert images.shape == (2, 3, 32, 32) and "skipped 1 unreadable" in caplog.text


def test_pickled_checkpoint_refusal_says_what_and_why(tmp_path, capsys):
    class Evil:
        def __reduce__(self):
            return (os.system, ("touch " + str(tmp_path / "PWNED"),))

    run = tmp_path / "run"
    run.mkdir()
    (run / "config.toml").write_text('model = "mobilenet_v2_100"\ndataset = "digits"\n')
    buffer = io.BytesIO()
    torch.save({"model": Evil()}, buffer)
    (run / "checkpoint-last.pt").write_bytes(buffer.getvalue())
    line = one_error_line(capsys, main(["train", "--out", str(run), "--resume"]))
    assert "refusing to load" in line and "system" in line and "weights_only=False" not in line
    assert not (tmp_path / "PWNED").exists()


def test_interrupted_predict_prints_what_it_finished(weights, tmp_path, capsys, monkeypatch):
    import mobilenetv2.infer.predict as predict

    paths = [str(image(tmp_path / f"{i}.png")) for i in range(3)]
    real, calls = predict._decode, []

    def decode(*args):
        calls.append(args[0])
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real(*args)

    monkeypatch.setattr(predict, "_decode", decode)
    rc = main(["predict", "--weights", str(weights), "--batch-size", "1", "--topk", "1", *paths])
    out, err = capsys.readouterr()
    assert rc == 130 and "interrupted after 2 of 3 files" in err
    assert [line for line in out.splitlines() if not line.startswith(" ")] == paths[:2]
