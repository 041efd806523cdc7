"""Optimizers and the learning-rate schedule of the recipes.

`RMSpropTF` is TensorFlow's RMSProp as TF-slim trains MobileNetV2 with it (Sec. 6.1), which differs from
`torch.optim.RMSprop` in three ways: epsilon sits inside the square root, the mean-square accumulator starts
at 1 (not 0), and the learning rate multiplies the update before it enters the momentum buffer:
    ms  <- decay * ms + (1 - decay) * g^2
    mom <- momentum * mom + lr * g / sqrt(ms + eps)
    w   <- w - mom
Weight decay is TF-slim's L2 regularizer (wd * ||w||^2 / 2 added to the loss), i.e. g <- g + wd * w.
"""

import math

import torch
from torch import nn

from mobilenetv2.train.config import TrainConfig


class RMSpropTF(torch.optim.Optimizer):
    def __init__(
        self,
        params,
        *,
        lr: float,
        decay: float = 0.9,
        momentum: float = 0.9,
        eps: float = 1.0,
        weight_decay: float = 0.0,
    ) -> None:
        defaults = {"lr": lr, "decay": decay, "momentum": momentum, "eps": eps, "weight_decay": weight_decay}
        super().__init__(params, defaults)

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            params = [p for p in group["params"] if p.grad is not None]
            if not params:
                continue
            grads = [p.grad for p in params]
            if group["weight_decay"]:
                grads = torch._foreach_add(grads, params, alpha=group["weight_decay"])
            for p in params:
                if not self.state[p]:
                    self.state[p]["square_avg"] = torch.ones_like(p, memory_format=torch.preserve_format)
                    self.state[p]["momentum_buffer"] = torch.zeros_like(p, memory_format=torch.preserve_format)
            square_avg = [self.state[p]["square_avg"] for p in params]
            momentum = [self.state[p]["momentum_buffer"] for p in params]
            decay = group["decay"]
            torch._foreach_mul_(square_avg, decay)
            torch._foreach_addcmul_(square_avg, grads, grads, value=1 - decay)
            denom = torch._foreach_add(square_avg, group["eps"])
            torch._foreach_sqrt_(denom)
            torch._foreach_mul_(momentum, group["momentum"])
            torch._foreach_addcdiv_(momentum, grads, denom, value=group["lr"])
            torch._foreach_sub_(params, momentum)
        return loss


def is_depthwise(module: nn.Module) -> bool:
    return isinstance(module, nn.Conv2d) and module.groups > 1 and module.groups == module.in_channels


def param_groups(model: nn.Module, cfg: TrainConfig) -> list[dict]:
    """Split parameters by whether weight decay applies (recipe switches for depthwise and norm/bias)."""
    decay, no_decay = [], []
    for module in model.modules():
        for name, p in module.named_parameters(recurse=False):
            if not p.requires_grad:
                continue
            norm_or_bias = name == "bias" or isinstance(module, nn.modules.batchnorm._NormBase)
            skip = (norm_or_bias and not cfg.weight_decay_norm_bias) or (
                is_depthwise(module) and not cfg.weight_decay_depthwise
            )
            (no_decay if skip else decay).append(p)
    groups = [{"params": decay, "weight_decay": cfg.weight_decay}]
    if no_decay:
        groups.append({"params": no_decay, "weight_decay": 0.0})
    return groups


def build_optimizer(model: nn.Module, cfg: TrainConfig) -> torch.optim.Optimizer:
    groups = param_groups(model, cfg)
    if cfg.optimizer == "rmsprop_tf":
        return RMSpropTF(groups, lr=cfg.lr, decay=cfg.rmsprop_decay, momentum=cfg.momentum, eps=cfg.rmsprop_eps)
    if cfg.optimizer == "adamw":
        return torch.optim.AdamW(groups, lr=cfg.lr, foreach=True)
    return torch.optim.SGD(groups, lr=cfg.lr, momentum=cfg.momentum, foreach=True)


def lr_at(cfg: TrainConfig, step: int, steps_per_epoch: int) -> float:
    """The learning rate for optimizer step `step` (0-based): linear warm-up, then the recipe's schedule.

    "exponential" decays by `lr_decay` every `lr_decay_epochs` epochs (staircase, as TF-slim); "cosine"
    anneals to 0 at the last step, "poly" as (1 - progress) ** `lr_power` (TF DeepLab). A pure function of the
    step, so resuming needs no scheduler state.
    """
    epoch = step / steps_per_epoch
    warmup = cfg.warmup_epochs
    if warmup > 0 and epoch < warmup:
        return cfg.lr * (step + 1) / (warmup * steps_per_epoch)
    if cfg.schedule == "exponential":
        return cfg.lr * cfg.lr_decay ** math.floor(epoch / cfg.lr_decay_epochs)
    if cfg.schedule == "cosine":
        total = cfg.epochs - warmup
        progress = min(1.0, (epoch - warmup) / total) if total > 0 else 1.0
        return cfg.lr * 0.5 * (1 + math.cos(math.pi * progress))
    if cfg.schedule == "poly":  # TF DeepLab: lr · (1 - step / total) ** power
        total = cfg.epochs - warmup
        progress = min(1.0, (epoch - warmup) / total) if total > 0 else 1.0
        return cfg.lr * (1.0 - progress) ** cfg.lr_power
    return cfg.lr


def set_lr(optimizer: torch.optim.Optimizer, lr: float) -> None:
    for group in optimizer.param_groups:
        group["lr"] = lr
