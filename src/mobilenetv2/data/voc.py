"""Pascal VOC folders: `Annotations/*.xml`, `JPEGImages/`, and `ImageSets/Main/{split}.txt` (all XML files
when the list is missing). Classes: VOC's 20 when every name is one of them, else the sorted names found.
Objects marked `difficult` are left out (VOC's evaluation ignores them)."""

import xml.etree.ElementTree as ET
from pathlib import Path

from mobilenetv2.data.detection_source import DetectionSource, ImageRecord, checked_box
from mobilenetv2.errors import UserError

VOC_CLASSES = (
    "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow", "diningtable", "dog",
    "horse", "motorbike", "person", "pottedplant", "sheep", "sofa", "train", "tvmonitor",
)  # fmt: skip


def _parse(path: Path) -> tuple[str, int, int, list[tuple[str, list[float]]]]:
    try:
        root = ET.parse(path).getroot()
        size = root.find("size")
        width, height = int(size.findtext("width")), int(size.findtext("height"))
        objects = []
        for obj in root.iter("object"):
            if obj.findtext("difficult", "0").strip() == "1":
                continue
            bb = obj.find("bndbox")
            coords = [float(bb.findtext(k)) for k in ("xmin", "ymin", "xmax", "ymax")]
            objects.append((obj.findtext("name", "").strip(), coords))
        return root.findtext("filename", path.stem + ".jpg"), width, height, objects
    except (ET.ParseError, AttributeError, TypeError, ValueError) as exc:
        raise UserError(f"{path}: not a Pascal VOC annotation ({exc})") from None


class VocDetection(DetectionSource):
    def __init__(self, root: str | Path, split: str = "train", *, class_names: list[str] | None = None) -> None:
        root = Path(root)
        listing = root / "ImageSets" / "Main" / f"{split}.txt"
        if listing.is_file():
            xmls = [root / "Annotations" / f"{n.strip()}.xml" for n in listing.read_text().split() if n.strip()]
        else:
            xmls = sorted((root / "Annotations").glob("*.xml"))
        if not xmls:
            raise UserError(f"{root}: no Pascal VOC annotations (expected Annotations/*.xml)")
        parsed, skipped = [], []
        for x in xmls:
            try:
                parsed.append(_parse(x))
            except (UserError, OSError):
                skipped.append(str(x))
        found = sorted({name for _, _, _, objs in parsed for name, _ in objs})
        if class_names is None:
            class_names = ["background", *(VOC_CLASSES if set(found) <= set(VOC_CLASSES) else found)]
        label_of = {name: i for i, name in enumerate(class_names)}
        records, skipped_boxes = [], 0
        for image_id, (file_name, width, height, objs) in enumerate(parsed, start=1):
            record = ImageRecord(str(root / "JPEGImages" / file_name), width, height, image_id=image_id)
            for name, (x1, y1, x2, y2) in objs:
                # VOC coordinates are 1-based inclusive pixels.
                box = checked_box(x1 - 1, y1 - 1, x2, y2, width, height)
                if box is None or name not in label_of or label_of[name] == 0:
                    skipped_boxes += 1
                    continue
                record.boxes.append(box)
                record.labels.append(label_of[name])
            records.append(record)
        super().__init__(records, list(class_names))
        self.skipped, self.skipped_boxes = skipped, skipped_boxes
        self.report_skipped(str(root))
