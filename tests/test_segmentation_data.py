"""Segmentation data: VOC and images/+masks/ layouts, bad files skipped and counted, synthetic digit scenes,
TF DeepLab's augmentation."""

import numpy as np
import pytest
import torch
from PIL import Image

from mobilenetv2.data.digits_segmentation import CLASS_NAMES, SceneSpec, ensure_digits_segmentation, with_ignore_band
from mobilenetv2.data.loader import TransformedDataset
from mobilenetv2.data.seg_transforms import SegEvalTransform, SegTrainTransform, scale_values
from mobilenetv2.data.segmentation import MaskFolder, VOCSegmentation, read_mask, save_mask, segmentation_split
from mobilenetv2.errors import UserError
from mobilenetv2.preprocessing import Preprocessing

PRE = Preprocessing(input_size=(40, 40), resize=40, mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5))


def write_voc(root, ids, *, size=(24, 32)):
    for sub in ("JPEGImages", "SegmentationClass", "ImageSets/Segmentation"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for i in ids:
        Image.fromarray(rng.integers(0, 255, (*size, 3), dtype=np.uint8)).save(root / "JPEGImages" / f"{i}.jpg")
        mask = np.zeros(size, dtype=np.uint8)
        mask[4:12, 5:20] = 3
        mask[12, :] = 255
        save_mask(mask, root / "SegmentationClass" / f"{i}.png")
    (root / "ImageSets/Segmentation/train.txt").write_text("\n".join(ids) + "\n")


def test_voc_layout_reads_palette_masks(tmp_path):
    write_voc(tmp_path, ["a", "b"])
    source = segmentation_split(tmp_path, "train")
    assert isinstance(source, VOCSegmentation) and len(source) == 2 and len(source.class_names) == 21
    image, mask = source.load(0)
    m = np.asarray(mask)
    assert image.mode == "RGB" and image.size == mask.size == (32, 24)
    assert m[5, 6] == 3 and m[12, 0] == 255 and m[0, 0] == 0


def test_bad_pairs_are_skipped_and_counted(tmp_path):
    write_voc(tmp_path, ["good", "corrupt", "wrong_size", "no_mask"])
    (tmp_path / "JPEGImages/corrupt.jpg").write_bytes(b"not a jpeg")
    save_mask(np.zeros((10, 10), np.uint8), tmp_path / "SegmentationClass/wrong_size.png")
    (tmp_path / "SegmentationClass/no_mask.png").unlink()
    source = VOCSegmentation(tmp_path, "train")
    assert len(source) == 3 and len(source.skipped) == 1  # no_mask: counted when the split is scanned
    data = TransformedDataset(source, SegEvalTransform(PRE), random=False)
    results = [data[(i, 0)] for i in range(len(source))]
    skipped = [r[1] for r in results if r[0] is None]
    assert len(skipped) == 2 and any("corrupt" in s for s in skipped) and any("wrong_size" in s for s in skipped)


def test_mask_folder_with_class_names(tmp_path):
    (tmp_path / "images").mkdir()
    (tmp_path / "masks").mkdir()
    (tmp_path / "classes.txt").write_text("background\ncat\ndog\n")
    Image.new("RGB", (16, 12), (10, 20, 30)).save(tmp_path / "images/x.png")
    Image.fromarray(np.full((12, 16), 2, np.uint8), mode="L").save(tmp_path / "masks/x.png")
    Image.new("RGB", (16, 12)).save(tmp_path / "images/orphan.png")
    source = segmentation_split(tmp_path, "val")
    assert isinstance(source, MaskFolder) and source.class_names == ["background", "cat", "dog"]
    assert len(source) == 1 and len(source.skipped) == 1
    assert np.asarray(source.load(0)[1]).max() == 2


def test_rgb_masks_in_voc_colours_map_to_indices(tmp_path):
    save_mask(np.array([[0, 1], [15, 255]], np.uint8), tmp_path / "m.png")
    Image.open(tmp_path / "m.png").convert("RGB").save(tmp_path / "rgb.png")
    assert np.asarray(read_mask(tmp_path / "rgb.png")).tolist() == [[0, 1], [15, 255]]
    Image.new("RGB", (2, 2), (1, 2, 3)).save(tmp_path / "odd.png")
    with pytest.raises(UserError, match="not a VOC class colour"):
        read_mask(tmp_path / "odd.png")


def test_train_transform_is_seeded_and_pads_with_ignore():
    img = Image.fromarray(np.random.default_rng(0).integers(0, 255, (20, 30, 3), dtype=np.uint8))
    mask = Image.fromarray(np.ones((20, 30), np.uint8), mode="L")
    t = SegTrainTransform(PRE, crop=(48, 48))
    a = t(img, mask, torch.Generator().manual_seed(3))
    b = t(img, mask, torch.Generator().manual_seed(3))
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    assert a[0].shape == (3, 48, 48) and a[1].shape == (48, 48) and a[1].dtype == torch.int64
    assert set(a[1].unique().tolist()) <= {1, 255} and (a[1] == 255).any()  # padding is ignored
    assert scale_values(0.5, 2.0, 0.25) == [0.5, 0.75, 1.0, 1.25, 1.5, 1.75, 2.0]


def test_eval_transform_pads_to_the_eval_size():
    img, mask = Image.new("RGB", (30, 20)), Image.fromarray(np.full((20, 30), 4, np.uint8), mode="L")
    x, y = SegEvalTransform(PRE)(img, mask)
    assert x.shape == (3, 40, 40) and y.shape == (40, 40)
    assert (y[:20, :30] == 4).all() and (y[20:] == 255).all() and (y[:, 30:] == 255).all()


def test_ignore_band_marks_every_border():
    label = np.zeros((8, 8), np.uint8)
    label[2:6, 2:6] = 5
    out = with_ignore_band(label)
    assert (out == 5).sum() == 4 and out[3, 3] == 5  # the 4x4 square keeps its 2x2 interior
    assert out[0, 0] == 0 and (out[1:7, 1] == 255).all() and (out[2, 2:6] == 255).all()


def test_digit_scenes_are_deterministic_and_exact(tmp_path):
    spec = SceneSpec(size=48, train=6, val=3, digit_min=16, digit_max=24)
    a = ensure_digits_segmentation(spec, tmp_path / "a")
    b = ensure_digits_segmentation(spec, tmp_path / "b")
    train, val = segmentation_split(a, "train"), segmentation_split(a, "val")
    assert len(train) == 6 and len(val) == 3 and train.class_names == CLASS_NAMES
    for i in range(3):
        ma = np.asarray(train.load(i)[1])
        assert np.array_equal(ma, np.asarray(segmentation_split(b, "train").load(i)[1]))
        assert set(np.unique(ma).tolist()) <= set(range(11)) | {255}
        assert (ma > 0).any() and (ma == 255).any()
