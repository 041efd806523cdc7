"""One optimizer step: forward and loss under autocast, backward, clipping, update, EMA. Shared by the training
loop and the training benchmark, so the benchmark measures exactly what `train` runs. The loss comes from the
task (`loss_fn(forward, x, targets) -> (loss, per-batch sums)`); classification's cross-entropy by default."""

from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from mobilenetv2.train.ema import ModelEMA
from mobilenetv2.train.runtime import autocast


class TrainStep:
    def __init__(
        self,
        model: nn.Module,
        optimizer: torch.optim.Optimizer,
        *,
        device: torch.device,
        precision: str = "fp32",
        loss_fn: Callable | None = None,
        grad_clip: float = 0.0,
        ema: ModelEMA | None = None,
        ema_target: nn.Module | None = None,
        compile: bool = False,
    ) -> None:
        self.model, self.optimizer, self.device, self.precision = model, optimizer, device, precision
        self.loss_fn = loss_fn or cross_entropy
        self.grad_clip, self.ema = grad_clip, ema
        self.ema_target = ema_target if ema_target is not None else model
        # GradScaler only matters for fp16 (bf16 has fp32's exponent range).
        self.scaler = torch.amp.GradScaler(device.type) if precision == "fp16" else None
        self.forward: Callable[[torch.Tensor], torch.Tensor] = torch.compile(model) if compile else model

    def __call__(self, x: torch.Tensor, targets: Any) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """x: (B, 3, H, W) -> (loss, the task's per-batch sums), 0-d tensors on the device."""
        with autocast(self.precision, self.device):
            loss, stats = self.loss_fn(self.forward, x, targets)
        self.optimizer.zero_grad(set_to_none=True)
        if self.scaler is not None:
            self.scaler.scale(loss).backward()
            self.scaler.unscale_(self.optimizer)
        else:
            loss.backward()
        if self.grad_clip > 0:
            nn.utils.clip_grad_norm_(self.model.parameters(), self.grad_clip)
        if self.scaler is not None:
            self.scaler.step(self.optimizer)
            self.scaler.update()
        else:
            self.optimizer.step()
        if self.ema is not None:
            self.ema.update(self.ema_target)
        return loss.detach(), stats


def cross_entropy(
    forward: Callable, x: torch.Tensor, y: torch.Tensor, label_smoothing: float = 0.0
) -> tuple[torch.Tensor, dict]:
    """Classification's loss and its top-1 hits in the batch."""
    logits = forward(x)  # (B, num_classes)
    loss = nn.functional.cross_entropy(logits.float(), y, label_smoothing=label_smoothing)
    return loss, {"top1": (logits.detach().argmax(1) == y).sum()}
