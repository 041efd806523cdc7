"""Checkpoints: everything a run needs to continue bitwise, written atomically, read without unpickling code.

Contents are tensors and plain Python types only, so `torch.load(weights_only=True)` reads them.
"""

import io
import os
from pathlib import Path
from typing import Any

import torch

from mobilenetv2.atomic import atomic_path
from mobilenetv2.errors import UserError


def rng_state() -> dict[str, Any]:
    # Only torch's generators drive randomness in training (dropout, init); data augmentation is seeded per
    # sample by the loader.
    state = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_atomic(obj: dict[str, Any], path: str | os.PathLike) -> Path:
    """torch.save to a temp file in the same folder, fsync, rename over `path`, fsync the folder. Serialized in
    memory and written by Python: torch's file writer can abort the process (std::terminate) on a full disk."""
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    with atomic_path(path) as tmp:
        tmp.write_bytes(buffer.getbuffer())
    return Path(path)


def load_checkpoint(path: str | os.PathLike) -> dict[str, Any]:
    """A checkpoint read with `safe_torch_load` (zip size bounded, nothing unpickled that could run code)."""
    from mobilenetv2.weights.safety import safe_torch_load

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint to resume from: {path}")
    state = safe_torch_load(path)
    if not isinstance(state, dict) or "model" not in state:
        raise UserError(f"{path}: not a checkpoint of this project (expected a dict with the run's state)")
    return state


def plain(value: Any) -> Any:
    """Tuples to lists, recursively (checkpoints and saved configs hold plain types only)."""
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    return value
