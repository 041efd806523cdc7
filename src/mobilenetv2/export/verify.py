"""Run an exported model in its own runtime and compare it with PyTorch before anyone is told it worked."""

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

from mobilenetv2.errors import UserError

FP32_TOLERANCE = 1e-4
VERIFY_BATCH = 2  # > 1, so the dynamic batch axis is exercised too


@dataclass(frozen=True)
class ExportResult:
    """Where the export went, in which format, and how far its outputs are from PyTorch's."""

    path: Path
    format: str
    max_abs_diff: float
    input_size: tuple[int, int]
    precision: str = "fp32"
    top1_agreement: float | None = None
    details: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {
            "path": str(self.path),
            "format": self.format,
            "max_abs_diff": self.max_abs_diff,
            "input_size": list(self.input_size),
            "precision": self.precision,
            "top1_agreement": self.top1_agreement,
            **self.details,
        }


def verification_input(input_size: tuple[int, int], *, batch: int = VERIFY_BATCH, seed: int = 0) -> torch.Tensor:
    """A fixed (batch, 3, H, W) input in the range normalized images live in."""
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(batch, 3, *input_size, generator=generator)


@torch.inference_mode()
def reference_logits(model: nn.Module, x: torch.Tensor) -> np.ndarray:
    return model(x).float().numpy()


def max_abs_diff(expected: np.ndarray, actual: np.ndarray) -> float:
    if expected.shape != actual.shape:
        raise UserError(f"exported model returns shape {actual.shape}, PyTorch returns {expected.shape}")
    return float(np.max(np.abs(expected.astype(np.float64) - actual.astype(np.float64))))


def check_close(
    model: nn.Module,
    run: Callable[[np.ndarray], np.ndarray],
    *,
    path: Path,
    format: str,
    input_size: tuple[int, int],
    tolerance: float = FP32_TOLERANCE,
    batch: int = VERIFY_BATCH,
) -> ExportResult:
    """Run `run` (the exported model in its runtime) and PyTorch on one input; UserError beyond `tolerance`."""
    x = verification_input(input_size, batch=batch)
    diff = max_abs_diff(reference_logits(model, x), run(x.numpy()))
    if not diff <= tolerance:
        raise UserError(
            f"{format} export {path} differs from PyTorch by max |diff| = {diff:.3g} (> {tolerance:g}); not exported"
        )
    return ExportResult(path=path, format=format, max_abs_diff=diff, input_size=tuple(input_size))
