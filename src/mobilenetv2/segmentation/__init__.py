"""Semantic segmentation around Mobile DeepLabv3 (Sec. 6.3): metrics, multi-scale evaluation, Table 7 counts."""

from mobilenetv2.segmentation.metrics import ConfusionMatrix, segmentation_metrics
from mobilenetv2.segmentation.multiscale import MF_SCALES, predict_logits

__all__ = ["MF_SCALES", "ConfusionMatrix", "predict_logits", "segmentation_metrics"]
