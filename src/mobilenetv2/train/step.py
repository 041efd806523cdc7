"""One optimizer step: forward under autocast, loss, backward, clipping, update, EMA. Shared by the training
loop and the training benchmark, so the benchmark measures exactly what `train` runs."""

from collections.abc import Callable

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
        label_smoothing: float = 0.0,
        grad_clip: float = 0.0,
        ema: ModelEMA | None = None,
        ema_target: nn.Module | None = None,
        compile: bool = False,
    ) -> None:
        self.model, self.optimizer, self.device, self.precision = model, optimizer, device, precision
        self.criterion = nn.CrossEntropyLoss(label_smoothing=label_smoothing)
        self.grad_clip, self.ema = grad_clip, ema
        self.ema_target = ema_target if ema_target is not None else model
        # GradScaler only matters for fp16 (bf16 has fp32's exponent range).
        self.scaler = torch.amp.GradScaler(device.type) if precision == "fp16" else None
        self.forward: Callable[[torch.Tensor], torch.Tensor] = torch.compile(model) if compile else model

    def __call__(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """x: (B, 3, H, W), y: (B,) -> (loss, number of top-1 hits), both 0-d tensors on the device."""
        with autocast(self.precision, self.device):
            logits = self.forward(x)  # (B, num_classes)
        loss = self.criterion(logits.float(), y)
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
        return loss.detach(), (logits.detach().argmax(1) == y).sum()
