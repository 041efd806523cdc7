"""Choices the loop makes for every task: loader workers, frozen BatchNorm."""

import torch
from torch import nn

from mobilenetv2.train.config import TrainConfig


def default_workers(cfg: TrainConfig) -> int:
    """In-memory sets decode nothing: the main process is fastest. Image folders: up to 8 workers."""
    if cfg.workers is not None:
        return cfg.workers
    if cfg.dataset in ("digits", "synthetic"):
        return 0
    return min(8, max(1, (torch.get_num_threads() or 1)))


def freeze_batchnorm(model: nn.Module) -> None:
    """BN layers normalize with their running statistics (eval mode) while the rest trains."""
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.eval()
