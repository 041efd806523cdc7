"""timm `mobilenetv2_*` state_dicts -> our module names.

timm layout: conv_stem + bn1 (stem), blocks.{stage}.{index} (Table 2's rows as stages), conv_head + bn2
(head), classifier (linear). Stage 0 is a DepthwiseSeparableConv (conv_dw, bn1, conv_pw, bn2); every other
block is an InvertedResidual (conv_pw, bn1 expand; conv_dw, bn2 depthwise; conv_pwl, bn3 project).
"""

import importlib.util
import re

import torch

from mobilenetv2.errors import UserError
from mobilenetv2.models.mobilenet_v2 import TABLE_2
from mobilenetv2.weights.torchvision import BN_SUFFIXES

# timm's registered MobileNetV2 names by width; 110d/120d also deepen the stages, which Table 2 does not.
TIMM_NAMES = {
    0.35: "mobilenetv2_035",
    0.5: "mobilenetv2_050",
    0.75: "mobilenetv2_075",
    1.0: "mobilenetv2_100",
    1.4: "mobilenetv2_140",
}


def _conv_bn(conv: str, bn: str, dst: str) -> dict[str, str]:
    pairs = {f"{conv}.weight": f"{dst}.conv.weight"}
    pairs.update({f"{bn}.{s}": f"{dst}.bn.{s}" for s in BN_SUFFIXES})
    return pairs


def stage_depths(keys: set[str]) -> list[int]:
    """Blocks per stage, read from the keys (blocks.{stage}.{index}.*)."""
    depths: dict[int, int] = {}
    for key in keys:
        m = re.match(r"blocks\.(\d+)\.(\d+)\.", key)
        if m:
            stage, index = int(m.group(1)), int(m.group(2))
            depths[stage] = max(depths.get(stage, 0), index + 1)
    return [depths[s] for s in sorted(depths)]


def key_map(keys: set[str]) -> dict[str, str]:
    """Explicit {timm key: our key}; refuses stage depths other than Table 2's."""
    if "conv_stem.weight" not in keys or "conv_head.weight" not in keys:
        raise UserError("not a timm mobilenetv2 state_dict (no conv_stem.weight / conv_head.weight)")
    depths, expected = stage_depths(keys), [row.n for row in TABLE_2]
    if depths != expected:
        raise UserError(
            f"this timm model has {depths} blocks per stage; MobileNetV2 (Table 2) has {expected} "
            "(timm's depth-scaled variants such as mobilenetv2_110d/120d do not convert)"
        )
    pairs = _conv_bn("conv_stem", "bn1", "stem")
    index = 0
    for stage, depth in enumerate(depths):
        for j in range(depth):
            src, dst = f"blocks.{stage}.{j}", f"blocks.{index}"
            if f"{src}.conv_pwl.weight" in keys:
                pairs.update(_conv_bn(f"{src}.conv_pw", f"{src}.bn1", f"{dst}.expand"))
                pairs.update(_conv_bn(f"{src}.conv_dw", f"{src}.bn2", f"{dst}.depthwise"))
                pairs.update(_conv_bn(f"{src}.conv_pwl", f"{src}.bn3", f"{dst}.project"))
            else:
                pairs.update(_conv_bn(f"{src}.conv_dw", f"{src}.bn1", f"{dst}.depthwise"))
                pairs.update(_conv_bn(f"{src}.conv_pw", f"{src}.bn2", f"{dst}.project"))
            index += 1
    pairs.update(_conv_bn("conv_head", "bn2", "head"))
    pairs.update({"classifier.weight": "classifier.1.weight", "classifier.bias": "classifier.1.bias"})
    return pairs


def build_timm(width: float, num_classes: int) -> torch.nn.Module:
    """timm's MobileNetV2 at `width` (a registered name where timm has one, else its generator)."""
    import timm

    if width in TIMM_NAMES:
        return timm.create_model(TIMM_NAMES[width], pretrained=False, num_classes=num_classes)
    # timm registers no name for other widths (e.g. 1.3); its MobileNetV2 generator takes any multiplier.
    from timm.models import efficientnet

    return efficientnet._gen_mobilenet_v2("mobilenetv2", width, pretrained=False, num_classes=num_classes)


def reference_model(state_dict: dict[str, torch.Tensor], *, width: float, num_classes: int) -> torch.nn.Module | None:
    """timm's own model with the source weights, or None when timm (or a builder for `width`) is missing."""
    if importlib.util.find_spec("timm") is None:
        return None
    from timm.models import efficientnet

    if width not in TIMM_NAMES and not hasattr(efficientnet, "_gen_mobilenet_v2"):
        return None
    model = build_timm(width, num_classes)
    model.load_state_dict(state_dict, strict=True)
    return model.eval()
