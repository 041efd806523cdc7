"""Training: config dataclasses, the loop, TF-style RMSProp, schedules, EMA, checkpoints, distributed."""

from mobilenetv2.train.config import TrainConfig, resolve
from mobilenetv2.train.loop import train

__all__ = ["TrainConfig", "resolve", "train"]
