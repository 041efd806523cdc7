"""The MobileNet family's initialisation, shared by the models that use it."""

from torch import nn


def init_weights_(model: nn.Module) -> None:
    """Conv: He normal (fan out); BatchNorm: identity; Linear: N(0, 0.01); biases zero (as torchvision does)."""
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Linear):
            nn.init.normal_(m.weight, 0, 0.01)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
