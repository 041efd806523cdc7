"""Data: the built-in digits split, transforms, and image folders with broken files."""

import json

import numpy as np
import pytest
import torch
from PIL import Image

from mobilenetv2.data.datasets import Digits, ImageFolder
from mobilenetv2.data.transforms import eval_transform, preprocessing_for, train_transform
from mobilenetv2.preprocessing import Preprocessing
from mobilenetv2.train import train
from test_train import tiny_config


def test_digits_split_is_fixed_stratified_and_disjoint():
    train_set, val_set = Digits("train"), Digits("val")
    assert (len(train_set), len(val_set)) == (1437, 360)
    counts = np.bincount(val_set.labels, minlength=10)
    assert counts.min() >= 35 and counts.max() <= 37  # 20% of each class's ~180 images
    again = Digits("val")
    assert np.array_equal(again.images, val_set.images)
    train_rows = {img.tobytes() for img in train_set.images}
    assert sum(img.tobytes() in train_rows for img in val_set.images) < 5  # only true duplicates in the data
    img, label = train_set.load(0)
    assert img.mode == "RGB" and img.size == (8, 8) and 0 <= label < 10


def test_eval_transform_resizes_crops_and_normalizes():
    pre = preprocessing_for("torchvision", (224, 224))
    img = Image.new("RGB", (400, 300), (255, 0, 128))
    x = eval_transform(pre)(img)
    assert x.shape == (3, 224, 224) and x.dtype == torch.float32
    expected = (torch.tensor([1.0, 0.0, 128 / 255]) - torch.tensor(pre.mean)) / torch.tensor(pre.std)
    assert torch.allclose(x[:, 100, 100], expected, atol=1e-5)
    inception = preprocessing_for("inception", (224, 224))
    assert eval_transform(inception)(img).min() >= -1.0 - 1e-6


def test_train_transform_depends_only_on_its_generator():
    pre = Preprocessing(input_size=(32, 32), resize=32)
    t = train_transform(pre, scale=(0.3, 1.0))
    img = Image.fromarray(np.random.default_rng(0).integers(0, 255, (40, 50, 3), dtype=np.uint8))
    a = t(img, torch.Generator().manual_seed(5))
    b = t(img, torch.Generator().manual_seed(5))
    c = t(img, torch.Generator().manual_seed(6))
    assert a.shape == (3, 32, 32) and torch.equal(a, b) and not torch.equal(a, c)


def make_folder(root, *, bad: bool) -> list[str]:
    """Two classes of small PNGs; with `bad`, add the files a real folder collects. Returns the bad names."""
    rng = np.random.default_rng(0)
    for split in ("train", "val"):
        for cls in ("cat", "dog"):
            d = root / split / cls
            d.mkdir(parents=True)
            for i in range(8 if split == "train" else 3):
                pixels = rng.integers(0, 255, (40, 40, 3), dtype=np.uint8)
                Image.fromarray(pixels).save(d / f"{i}.png")
    if not bad:
        return []
    t = root / "train" / "cat"
    (t / "empty.jpg").write_bytes(b"")
    (t / "garbage.jpg").write_bytes(b"this is not a jpeg at all" * 10)
    (t / "notes.txt").write_text("labels are folder names")
    full = (t / "0.png").read_bytes()
    (t / "truncated.png").write_bytes(full[: len(full) // 3])
    (root / "val" / "dog" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 20)
    return ["empty.jpg", "garbage.jpg", "notes.txt", "truncated.png", "broken.png"]


def test_image_folder_lists_classes_and_skips_unusable_files_at_scan(tmp_path):
    make_folder(tmp_path, bad=True)
    folder = ImageFolder(tmp_path / "train")
    assert folder.class_names == ["cat", "dog"]
    assert sorted(p.rsplit("/", 1)[1] for p in folder.skipped) == ["empty.jpg", "notes.txt"]
    with pytest.raises(FileNotFoundError):
        ImageFolder(tmp_path / "nope")


def test_training_skips_and_counts_bad_files(tmp_path):
    bad = make_folder(tmp_path / "data", bad=True)
    cfg = tiny_config(tmp_path / "run", dataset="imagefolder", data=str(tmp_path / "data"), epochs=2, batch_size=4)
    summary = train(cfg)
    assert summary["skipped_files"] == len(bad)
    listed = (tmp_path / "run" / "skipped_files.txt").read_text().split()
    assert sorted(p.rsplit("/", 1)[1] for p in listed) == sorted(bad)
    assert json.loads((tmp_path / "run" / "summary.json").read_text())["skipped_files"] == len(bad)
    assert summary["num_classes"] == 2 and summary["epochs"] == 2
