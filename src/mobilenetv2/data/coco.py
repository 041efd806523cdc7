"""COCO-format detection folders: `annotations/instances_{split}.json` and the images beside them.

Images are looked up as `{root}/{split}/{file_name}`, `{root}/images/{file_name}`, then `{root}/{file_name}`
(also `{split}2017/`). Category ids need not be contiguous: sorted by id they become labels 1..K. `iscrowd`
regions are ignored, as COCO's evaluation ignores them; images without annotations are kept as negatives.
"""

import json
from pathlib import Path

from mobilenetv2.data.detection_source import DetectionSource, ImageRecord, checked_box
from mobilenetv2.errors import UserError


def annotation_file(root: str | Path, split: str) -> Path:
    return Path(root) / "annotations" / f"instances_{split}.json"


def read_coco_json(path: str | Path) -> dict:
    """The parsed file, or UserError naming what is wrong with it."""
    try:
        data = json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise UserError(f"no such annotation file: {path}") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise UserError(f"{path}: not a JSON file ({exc})") from None
    missing = [k for k in ("images", "annotations", "categories") if not isinstance(data, dict) or k not in data]
    if missing:
        raise UserError(f"{path}: not a COCO annotation file (no {', '.join(repr(k) for k in missing)} list)")
    return data


def _image_path(root: Path, split: str, file_name: str) -> str:
    for folder in (root / split, root / f"{split}2017", root / "images", root):
        if (folder / file_name).is_file():
            return str(folder / file_name)
    return str(root / split / file_name)  # missing: load() fails on it and the loader counts it


class CocoDetection(DetectionSource):
    def __init__(self, root: str | Path, split: str = "train") -> None:
        root = Path(root)
        path = annotation_file(root, split)
        data = read_coco_json(path)
        try:
            categories = sorted(data["categories"], key=lambda c: int(c["id"]))
            label_of = {int(c["id"]): i + 1 for i, c in enumerate(categories)}
            records: dict[int, ImageRecord] = {}
            for im in data["images"]:
                image_id = int(im["id"])
                file_path = _image_path(root, split, str(im["file_name"]))
                records[image_id] = ImageRecord(file_path, int(im["width"]), int(im["height"]), image_id=image_id)
            skipped_boxes = 0
            for ann in data["annotations"]:
                if ann.get("iscrowd", 0):
                    continue
                record = records.get(int(ann["image_id"]))
                label = label_of.get(int(ann["category_id"]))
                x, y, w, h = (float(v) for v in ann["bbox"])
                box = checked_box(x, y, x + w, y + h, record.width, record.height) if record else None
                if box is None or label is None:
                    skipped_boxes += 1
                    continue
                record.boxes.append(box)
                record.labels.append(label)
        except (KeyError, TypeError, ValueError) as exc:
            raise UserError(f"{path}: not a COCO annotation file ({type(exc).__name__}: {exc})") from None
        names = ["background"] + [str(c.get("name", c["id"])) for c in categories]
        super().__init__(list(records.values()), names, category_ids=[int(c["id"]) for c in categories])
        self.skipped_boxes = skipped_boxes
        self.annotation_path = str(path)
        if not self.records:
            raise UserError(f"{path}: the annotation file lists no images")
        self.report_skipped(str(path))
