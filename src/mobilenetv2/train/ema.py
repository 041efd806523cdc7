"""Exponential moving average of the weights (TF's ExponentialMovingAverage, as the official recipe uses)."""

import copy

import torch
from torch import nn


class ModelEMA:
    """A shadow copy updated after every optimizer step: shadow <- d * shadow + (1 - d) * weights, with
    d = min(decay, (1 + n) / (10 + n)) after n updates (TF's num_updates warm-up, so early averages are not
    dominated by the random initialization). Buffers (BN running statistics) are copied, not averaged."""

    def __init__(self, model: nn.Module, decay: float) -> None:
        self.decay = decay
        self.updates = 0
        self.module = copy.deepcopy(model).eval()
        for p in self.module.parameters():
            p.requires_grad_(False)

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        self.updates += 1
        d = min(self.decay, (1 + self.updates) / (10 + self.updates))
        ema_params = list(self.module.parameters())
        params = [p.detach() for p in model.parameters()]
        torch._foreach_lerp_(ema_params, params, 1 - d)
        for ema_b, b in zip(self.module.buffers(), model.buffers(), strict=True):
            ema_b.copy_(b)

    def state_dict(self) -> dict:
        return {"module": self.module.state_dict(), "updates": self.updates, "decay": self.decay}

    def load_state_dict(self, state: dict) -> None:
        self.module.load_state_dict(state["module"])
        self.updates = int(state["updates"])
