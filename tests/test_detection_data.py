"""Detection data: COCO and VOC folders, bad boxes and images skipped and counted, the augmentation."""

import json

import pytest
import torch
from PIL import Image

from mobilenetv2.data.coco import CocoDetection
from mobilenetv2.data.detection_transforms import DetectionEvalTransform, DetectionTrainTransform
from mobilenetv2.data.digits_detection import DigitsDetectionSpec, write_digits_detection
from mobilenetv2.data.loader import Collate, TransformedDataset, eval_loader
from mobilenetv2.data.voc import VocDetection
from mobilenetv2.errors import UserError
from mobilenetv2.train.tasks.detection import detection_preprocessing


def _coco_folder(root):
    (root / "annotations").mkdir(parents=True)
    (root / "train").mkdir()
    for name in ("a.jpg", "b.jpg", "c.jpg"):
        Image.new("RGB", (80, 60), (120, 30, 200)).save(root / "train" / name)
    (root / "train" / "broken.jpg").write_bytes(b"not a jpeg at all")
    names = ["a.jpg", "b.jpg", "c.jpg", "broken.jpg"]
    images = [{"id": 10 + i, "file_name": n, "width": 80, "height": 60} for i, n in enumerate(names)]
    anns = [
        {"id": 1, "image_id": 10, "category_id": 18, "bbox": [5, 5, 20, 20], "iscrowd": 0},
        {"id": 2, "image_id": 10, "category_id": 5, "bbox": [30, 10, 40, 45], "iscrowd": 0},
        {"id": 3, "image_id": 10, "category_id": 5, "bbox": [0, 0, 80, 60], "iscrowd": 1},  # crowd: ignored
        {"id": 4, "image_id": 11, "category_id": 5, "bbox": [90, 70, 10, 10], "iscrowd": 0},  # outside
        {"id": 5, "image_id": 11, "category_id": 18, "bbox": [10, 10, 0, 5], "iscrowd": 0},  # no area
        {"id": 6, "image_id": 13, "category_id": 18, "bbox": [1, 1, 10, 10], "iscrowd": 0},
    ]
    cats = [{"id": 18, "name": "dog"}, {"id": 5, "name": "airplane"}]
    doc = {"images": images, "annotations": anns, "categories": cats}
    (root / "annotations" / "instances_train.json").write_text(json.dumps(doc))
    return root


def test_coco_ids_mapped_crowd_ignored_bad_boxes_counted(tmp_path):
    src = CocoDetection(_coco_folder(tmp_path), "train")
    assert src.class_names == ["background", "airplane", "dog"]  # sorted by category id: 5, 18
    assert src.category_ids == [5, 18]
    assert src.skipped_boxes == 2
    assert len(src) == 4  # images without boxes stay (negatives)
    img, target = src.load(0)
    assert img.size == (80, 60)
    assert target["labels"].tolist() == [2, 1]
    assert target["boxes"].tolist() == [[5, 5, 25, 25], [30, 10, 70, 55]]
    assert src.load(1)[1]["boxes"].shape == (0, 4)


def test_corrupt_image_is_skipped_and_counted_by_the_loader(tmp_path):
    src = CocoDetection(_coco_folder(tmp_path), "train")
    pre = detection_preprocessing((64, 64))
    loader = eval_loader(
        TransformedDataset(src, DetectionEvalTransform(pre), random=False), batch_size=4, collate=Collate(list)
    )
    batches = list(loader)
    assert sum(len(b) for b in batches) == 3
    assert [s.endswith("broken.jpg") for b in batches for s in b.skipped] == [True]
    t = batches[0].targets[0]
    assert torch.allclose(t["boxes"][0], torch.tensor([5 * 0.8, 5 * 64 / 60, 25 * 0.8, 25 * 64 / 60]))
    assert t["orig_size"].tolist() == [60, 80]


def test_not_coco_json_is_one_error_line(tmp_path):
    (tmp_path / "annotations").mkdir()
    (tmp_path / "annotations" / "instances_train.json").write_text(json.dumps({"images": []}))
    with pytest.raises(UserError, match="not a COCO annotation file") as info:
        CocoDetection(tmp_path, "train")
    assert "\n" not in str(info.value)
    (tmp_path / "annotations" / "instances_train.json").write_text("{oops")
    with pytest.raises(UserError, match="not a JSON file"):
        CocoDetection(tmp_path, "train")


def test_voc_folder(tmp_path):
    (tmp_path / "Annotations").mkdir()
    (tmp_path / "JPEGImages").mkdir()
    Image.new("RGB", (50, 40)).save(tmp_path / "JPEGImages" / "x.jpg")
    xml = """<annotation><filename>x.jpg</filename><size><width>50</width><height>40</height></size>
    <object><name>dog</name><difficult>0</difficult><bndbox><xmin>5</xmin><ymin>6</ymin><xmax>20</xmax><ymax>30</ymax></bndbox></object>
    <object><name>cat</name><bndbox><xmin>60</xmin><ymin>6</ymin><xmax>90</xmax><ymax>30</ymax></bndbox></object>
    </annotation>"""  # noqa: E501
    (tmp_path / "Annotations" / "x.xml").write_text(xml)
    src = VocDetection(tmp_path, "train")
    assert len(src.class_names) == 21 and src.skipped_boxes == 1
    _, target = src.load(0)
    assert target["boxes"].tolist() == [[4, 5, 20, 30]] and src.class_names[target["labels"][0]] == "dog"


def test_train_transform_keeps_valid_boxes_and_is_seeded():
    img = Image.new("RGB", (120, 90), (10, 200, 30))
    target = {"boxes": torch.tensor([[10.0, 10, 50, 60], [70, 20, 110, 80]]), "labels": torch.tensor([1, 2])}
    tr = DetectionTrainTransform(detection_preprocessing((64, 64)))
    for seed in range(20):
        x, t = tr(img, target, torch.Generator().manual_seed(seed))
        x2, t2 = tr(img, target, torch.Generator().manual_seed(seed))
        assert x.shape == (3, 64, 64) and torch.equal(x, x2) and torch.equal(t["boxes"], t2["boxes"])
        b = t["boxes"]
        assert len(b) == len(t["labels"])
        assert ((b >= 0) & (b <= 64)).all() and (b[:, 2:] > b[:, :2]).all()


def test_digits_detection_is_deterministic_coco(tmp_path):
    spec = DigitsDetectionSpec(image_size=64, train_images=4, val_images=2)
    write_digits_detection(tmp_path / "a", spec)
    write_digits_detection(tmp_path / "b", spec)
    a = (tmp_path / "a" / "annotations" / "instances_train.json").read_text()
    assert a == (tmp_path / "b" / "annotations" / "instances_train.json").read_text()
    src = CocoDetection(tmp_path / "a", "val")
    assert src.class_names == ["background", *"0123456789"] and len(src) == 2 and src.skipped_boxes == 0
    img, target = src.load(0)
    assert img.size == (64, 64) and len(target["boxes"]) >= 1


def test_ssd_crop_switch_reaches_the_train_transform():
    """The paper's recipe crops (TF's ssd_random_crop); the digits demo recipe and --no-ssd-crop do not."""
    from mobilenetv2.cli import build_parser
    from mobilenetv2.cli.train import config_from_args
    from mobilenetv2.train.config import resolve
    from mobilenetv2.train.tasks.detection import DetectionTask

    def transform(argv):
        cfg = resolve(config_from_args(build_parser().parse_args(["train", "--model", "ssdlite_mobilenet_v2", *argv])))
        return DetectionTask(cfg).train_transform(detection_preprocessing(cfg.resolution))

    assert transform(["--recipe", "ssdlite-paper", "--data", "d", "--dataset", "coco"]).crop is True
    assert transform(["--recipe", "ssdlite-paper", "--data", "d", "--dataset", "coco", "--no-ssd-crop"]).crop is False
    assert transform(["--dataset", "digits-detection"]).crop is False  # the ssdlite-digits recipe
