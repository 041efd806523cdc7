"""Inference: the fast path (BN folding, channels_last), the paper's split inference (Sec. 5.1), predict."""

from mobilenetv2.infer.fast import FastMobileNetV2, for_inference

__all__ = ["FastMobileNetV2", "for_inference"]
