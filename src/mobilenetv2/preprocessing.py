"""How images must be prepared for a set of weights; travels in the weights file's header."""

from dataclasses import asdict, dataclass, field
from typing import Any

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
# Keras/TF-slim scale pixels to [-1, 1]: (x - 0.5) / 0.5 on [0, 1] inputs.
SIGNED_UNIT_MEAN = (0.5, 0.5, 0.5)
SIGNED_UNIT_STD = (0.5, 0.5, 0.5)


@dataclass(frozen=True)
class Preprocessing:
    """Eval preprocessing: resize the shorter side to `resize`, center-crop `input_size` (H, W), scale
    to [0, 1], then normalize with mean/std. crop fraction = input_size / resize (torchvision: 224/256)."""

    input_size: tuple[int, int] = (224, 224)
    resize: int = 256
    interpolation: str = "bilinear"
    mean: tuple[float, ...] = IMAGENET_MEAN
    std: tuple[float, ...] = IMAGENET_STD
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["input_size"] = list(self.input_size)
        d["mean"], d["std"] = list(self.mean), list(self.std)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Preprocessing":
        return cls(
            input_size=tuple(d.get("input_size", (224, 224))),
            resize=int(d.get("resize", 256)),
            interpolation=str(d.get("interpolation", "bilinear")),
            mean=tuple(d.get("mean", IMAGENET_MEAN)),
            std=tuple(d.get("std", IMAGENET_STD)),
            extra=dict(d.get("extra", {})),
        )


def default_preprocessing(resolution: int | tuple[int, int] = 224) -> Preprocessing:
    h, w = (resolution, resolution) if isinstance(resolution, int) else resolution
    return Preprocessing(input_size=(h, w), resize=round(min(h, w) / 0.875))
