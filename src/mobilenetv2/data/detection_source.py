"""What every detection dataset is made of: one record per image, boxes already checked.

A record's boxes are xyxy in the image's pixels, labels 1..K (0 is the background). Boxes that point outside
the image or have no area are dropped when the annotations are read and counted in `skipped_boxes`; images
without boxes stay (negatives). `load(i)` decodes the image and returns (PIL RGB, target).
"""

import logging
from dataclasses import dataclass, field

import torch
from PIL import Image

from mobilenetv2.data.images import open_image

log = logging.getLogger(__name__)


@dataclass
class ImageRecord:
    path: str
    width: int
    height: int
    boxes: list[list[float]] = field(default_factory=list)  # xyxy pixels
    labels: list[int] = field(default_factory=list)  # 1..K
    image_id: int = 0


def checked_box(x1: float, y1: float, x2: float, y2: float, width: int, height: int) -> list[float] | None:
    """The box clipped to the image, or None when nothing of it is inside or it has no area."""
    if not all(map(_finite, (x1, y1, x2, y2))):
        return None
    x1, y1 = max(0.0, min(x1, width)), max(0.0, min(y1, height))
    x2, y2 = max(0.0, min(x2, width)), max(0.0, min(y2, height))
    if x2 - x1 < 1e-3 or y2 - y1 < 1e-3:
        return None
    return [x1, y1, x2, y2]


def _finite(v: float) -> bool:
    return isinstance(v, int | float) and v == v and abs(v) != float("inf")


class DetectionSource:
    """A list of ImageRecords with class names (index 0 "background") and COCO category ids per label."""

    def __init__(
        self, records: list[ImageRecord], class_names: list[str], *, category_ids: list[int] | None = None
    ) -> None:
        self.records = records
        self.class_names = class_names
        self.category_ids = category_ids or list(range(1, len(class_names)))
        self.skipped: list[str] = []
        self.skipped_boxes = 0

    def __len__(self) -> int:
        return len(self.records)

    def describe(self, index: int) -> str:
        return self.records[index].path

    def load(self, index: int) -> tuple[Image.Image, dict[str, torch.Tensor]]:
        r = self.records[index]
        img = open_image(r.path)  # UserError for a corrupt file: the loader skips and counts it
        target = {
            "boxes": torch.tensor(r.boxes, dtype=torch.float32).reshape(-1, 4),
            "labels": torch.tensor(r.labels, dtype=torch.long),
            "image_id": torch.tensor(r.image_id),
        }
        if img.size != (r.width, r.height):
            # The annotation file's size disagrees with the file: scale the boxes to the decoded image.
            sx, sy = img.width / r.width, img.height / r.height
            target["boxes"] = target["boxes"] * torch.tensor([sx, sy, sx, sy])
        return img, target

    def report_skipped(self, where: str) -> None:
        if self.skipped_boxes:
            log.warning("%s: skipped %d boxes outside their image or without area", where, self.skipped_boxes)
        if self.skipped:
            log.warning("%s: skipped %d images (first: %s)", where, len(self.skipped), self.skipped[0])
