"""SSDLite on MobileNetV2 (paper Sec. 6.2, Tables 5-6) as the TF Object Detection API configures it.

`ssdlite_mobilenet_v2_coco.config` with `ssd_mobilenet_v2_feature_extractor.py`: six maps, the 576-channel
expansion of bottleneck 15 (our `blocks.13.expansion`, output stride 16), the 1280-channel last layer
(stride 32) and four extra layers; a depthwise-separable box and class predictor on each map.
Class counts include the background (slot 0): COCO is 91, the paper's tables 81.

API (like torchvision's detectors, but the loss lives in `mobilenetv2.detection.loss`):
- `model.train()(x)` -> `SSDOutput(box_codes (N, A, 4) in TF's (ty, tx, th, tw) order, class_logits (N, A, C),
  anchors (A, 4) normalized xyxy)`, what the loss takes;
- `model.eval()(x)` -> one dict per image: {"boxes": (K, 4) xyxy in input pixels, "scores": (K,),
  "labels": (K,) in 1..C-1}, after `model.postprocessing` (a `PostProcessing`, replaceable);
- `model.forward_raw(x)` -> the `SSDOutput` in either mode (export, conversion checks).
"""

from dataclasses import dataclass, replace
from typing import Literal, NamedTuple

import torch
from torch import nn

from mobilenetv2.detection.anchors import AnchorSpec, boxes_per_location, grid_anchors
from mobilenetv2.detection.postprocess import TF, TORCHVISION, Detections, PostProcessing, postprocess
from mobilenetv2.layers import ExtraLayer, SeparablePredictor
from mobilenetv2.layers.conv_norm_act import Padding
from mobilenetv2.models.mobilenet_v2 import MobileNetV2

HeadStyle = Literal["tf", "torchvision"]


@dataclass(frozen=True)
class FeatureMap:
    """One row of TF's `feature_map_layout`: a backbone tap, or an extra layer of `depth` channels."""

    from_layer: str
    depth: int


# ssd_mobilenet_v2_feature_extractor.py: layer_15/expansion_output, layer_19, then 512, 256, 256, 128.
FEATURE_MAP_LAYOUT = (
    FeatureMap("blocks.13.expansion", -1),
    FeatureMap("head", -1),
    FeatureMap("", 512),
    FeatureMap("", 256),
    FeatureMap("", 256),
    FeatureMap("", 128),
)
MIN_DEPTH = 16  # TF's min_depth: extra layers are max(int(depth · width), 16) channels
WEIGHT_STD = 0.03  # truncated normal, conv_hyperparams of both the feature extractor and the box predictor
CLASS_BIAS_INIT = -4.6  # class_prediction_bias_init: sigmoid(-4.6) = 0.01, the focal-loss prior


class SSDOutput(NamedTuple):
    box_codes: torch.Tensor  # (N, A, 4)
    class_logits: torch.Tensor  # (N, A, C)
    anchors: torch.Tensor  # (A, 4) normalized xyxy


class SSDLite(nn.Module):
    """SSDLite-MobileNetV2. `head_style="tf"` is the paper's / TF's model (sigmoid scores, 3 boxes on the
    first map, NMS 0.6, 100 detections); "torchvision" is torchvision's SSDLite recipe on the same network
    (softmax, 6 boxes on every map, NMS 0.55, 300 detections). Any width, any input size >= 32."""

    def __init__(
        self,
        *,
        width: float = 1.0,
        num_classes: int = 91,
        padding: Padding = "torch",
        bn_eps: float = 1e-3,
        bn_momentum: float = 0.03,
        head_style: HeadStyle = "tf",
        last_channels: int | None = None,
        aspect_ratios: tuple[float, ...] | None = None,
    ) -> None:
        super().__init__()
        if num_classes < 2:
            raise ValueError(f"num_classes counts the background and must be >= 2, got {num_classes}")
        if head_style not in ("tf", "torchvision"):
            raise ValueError(f"head_style must be 'tf' or 'torchvision', got {head_style!r}")
        self.width, self.num_classes, self.head_style = width, num_classes, head_style
        norm = {"padding": padding, "bn_eps": bn_eps, "bn_momentum": bn_momentum}
        # last_channels: the 1x1 conv before the stride-32 map (None: MobileNetV2's 1280·max(1, width); TF's
        # SSD extractor has 1280·width below width 1: converted TF graphs of width < 1 set it).
        self.backbone = MobileNetV2(width=width, num_classes=1, last_channels=last_channels, **norm)
        self.backbone.classifier = nn.Identity()  # unused: the detector reads the taps
        self.taps = tuple(f.from_layer for f in FEATURE_MAP_LAYOUT if f.from_layer)
        tap_channels = {f.name: f.channels for f in self.backbone.feature_info}
        channels = [tap_channels[t] for t in self.taps]
        extras = []
        for f in FEATURE_MAP_LAYOUT[len(self.taps) :]:
            depth, mid = max(int(f.depth * width), MIN_DEPTH), max(int(f.depth / 2 * width), MIN_DEPTH)
            extras.append(ExtraLayer(channels[-1], mid, depth, **norm))
            channels.append(depth)
        self.extras = nn.ModuleList(extras)

        self.anchor_spec = AnchorSpec(reduce_lowest=head_style == "tf")
        if aspect_ratios is not None:  # e.g. the zoo configs' (1, 2, 0.5, 3, 0.3333), set by converted TF graphs
            self.anchor_spec = replace(self.anchor_spec, aspect_ratios=tuple(float(a) for a in aspect_ratios))
        self.postprocessing: PostProcessing = TF if head_style == "tf" else TORCHVISION
        boxes = boxes_per_location(self.anchor_spec)
        self.box_predictors = nn.ModuleList(
            SeparablePredictor(c, b * 4, **norm) for c, b in zip(channels, boxes, strict=True)
        )
        self.class_predictors = nn.ModuleList(
            SeparablePredictor(c, b * num_classes, **norm) for c, b in zip(channels, boxes, strict=True)
        )
        self._anchor_cache: dict[tuple, torch.Tensor] = {}
        self.reset_head_parameters()

    def reset_head_parameters(self) -> None:
        """TF init of everything after the backbone: truncated normal (std 0.03) convs, zero biases, BN
        identity; the class biases start at -4.6 under sigmoid scores."""
        for part in (self.extras, self.box_predictors, self.class_predictors):
            for m in part.modules():
                if isinstance(m, nn.Conv2d):
                    nn.init.trunc_normal_(m.weight, std=WEIGHT_STD, a=-2 * WEIGHT_STD, b=2 * WEIGHT_STD)
                    if m.bias is not None:
                        nn.init.zeros_(m.bias)
        if self.head_style == "tf":
            for p in self.class_predictors:
                nn.init.constant_(p.conv.bias, CLASS_BIAS_INIT)

    def anchors(self, feature_sizes: list[tuple[int, int]], image_size: tuple[int, int], device) -> torch.Tensor:
        """(A, 4) normalized anchors for these map sizes, cached per (sizes, image size, device)."""
        key = (tuple(feature_sizes), tuple(image_size), str(device))
        if key not in self._anchor_cache:
            self._anchor_cache[key] = grid_anchors(self.anchor_spec, feature_sizes, image_size, device=device)
        return self._anchor_cache[key]

    def raw_head(self, features: list[torch.Tensor], image_size: tuple[int, int]) -> SSDOutput:
        maps = list(features)
        for extra in self.extras:
            maps.append(extra(maps[-1]))  # (N, C, H, W) -> (N, C', ceil(H/2), ceil(W/2))
        n = maps[0].shape[0]
        # (N, B·k, H, W) -> (N, H, W, B·k) -> (N, H·W·B, k): TF's (row, column, box) order.
        codes = [p(m).permute(0, 2, 3, 1).reshape(n, -1, 4) for p, m in zip(self.box_predictors, maps, strict=True)]
        logits = [
            p(m).permute(0, 2, 3, 1).reshape(n, -1, self.num_classes)
            for p, m in zip(self.class_predictors, maps, strict=True)
        ]
        sizes = [(int(m.shape[-2]), int(m.shape[-1])) for m in maps]
        anchors = self.anchors(sizes, image_size, maps[0].device)
        return SSDOutput(torch.cat(codes, 1), torch.cat(logits, 1), anchors)

    def forward_head(self, features: list[torch.Tensor], image_size: tuple[int, int]) -> SSDOutput | list[Detections]:
        raw = self.raw_head(features, image_size)
        if self.training:
            return raw
        return postprocess(raw.box_codes, raw.class_logits, raw.anchors, image_size, self.postprocessing)

    def backbone_features(self, x: torch.Tensor) -> list[torch.Tensor]:
        feats = self.backbone.forward_features(x, self.taps)
        return [feats[t] for t in self.taps]

    def forward_raw(self, x: torch.Tensor) -> SSDOutput:
        return self.raw_head(self.backbone_features(x), (int(x.shape[-2]), int(x.shape[-1])))

    def forward(self, x: torch.Tensor) -> SSDOutput | list[Detections]:
        return self.forward_head(self.backbone_features(x), (int(x.shape[-2]), int(x.shape[-1])))
