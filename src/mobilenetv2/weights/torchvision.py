"""torchvision `mobilenet_v2(width_mult=α)` state_dicts -> our module names.

torchvision layout: features.0 (stem conv, bn), features.1..17 (bottlenecks), features.18 (head conv, bn),
classifier.1 (linear). A bottleneck with expansion is conv.0 (expand conv+bn), conv.1 (depthwise conv+bn),
conv.2 (project conv), conv.3 (project bn); the t = 1 bottleneck has conv.0 (depthwise), conv.1, conv.2.
"""

import importlib.util

import torch

from mobilenetv2.errors import UserError

NUM_BLOCKS = 17
BN_SUFFIXES = ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")


def _conv_bn(src: str, dst: str) -> dict[str, str]:
    """{source key: our key} for a conv (no bias) followed by BN, given both prefixes (`src` = conv, bn)."""
    conv, bn = src.split("|")
    pairs = {f"{conv}.weight": f"{dst}.conv.weight"}
    pairs.update({f"{bn}.{s}": f"{dst}.bn.{s}" for s in BN_SUFFIXES})
    return pairs


def key_map(keys: set[str]) -> dict[str, str]:
    """Explicit {torchvision key: our key} for the state_dict whose keys are `keys`."""
    if "features.0.0.weight" not in keys or "classifier.1.weight" not in keys:
        raise UserError("not a torchvision mobilenet_v2 state_dict (no features.0.0.weight / classifier.1.weight)")
    pairs = _conv_bn("features.0.0|features.0.1", "stem")
    for i in range(NUM_BLOCKS):
        f, b = f"features.{i + 1}.conv", f"blocks.{i}"
        if f"{f}.3.weight" in keys:  # expand, depthwise, project
            pairs.update(_conv_bn(f"{f}.0.0|{f}.0.1", f"{b}.expand"))
            pairs.update(_conv_bn(f"{f}.1.0|{f}.1.1", f"{b}.depthwise"))
            pairs.update(_conv_bn(f"{f}.2|{f}.3", f"{b}.project"))
        else:  # t = 1: depthwise, project
            pairs.update(_conv_bn(f"{f}.0.0|{f}.0.1", f"{b}.depthwise"))
            pairs.update(_conv_bn(f"{f}.1|{f}.2", f"{b}.project"))
    if f"features.{NUM_BLOCKS + 2}.0.weight" in keys:
        raise UserError("this torchvision model has more than Table 2's 17 bottlenecks; only mobilenet_v2 converts")
    pairs.update(_conv_bn(f"features.{NUM_BLOCKS + 1}.0|features.{NUM_BLOCKS + 1}.1", "head"))
    pairs.update({"classifier.1.weight": "classifier.1.weight", "classifier.1.bias": "classifier.1.bias"})
    return pairs


def reference_model(state_dict: dict[str, torch.Tensor], *, width: float, num_classes: int) -> torch.nn.Module | None:
    """torchvision's own model with the source weights, or None when torchvision is not installed."""
    if importlib.util.find_spec("torchvision") is None:
        return None
    from torchvision.models import mobilenet_v2

    model = mobilenet_v2(width_mult=width, num_classes=num_classes)
    model.load_state_dict(state_dict, strict=True)
    return model.eval()


def imagenet_class_names() -> list[str] | None:
    """The 1000 ImageNet-1k class names torchvision ships with its weights metadata (offline), or None."""
    if importlib.util.find_spec("torchvision") is None:
        return None
    from torchvision.models import MobileNet_V2_Weights

    return list(MobileNet_V2_Weights.IMAGENET1K_V1.meta["categories"])
