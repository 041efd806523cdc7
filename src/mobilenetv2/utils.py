"""Small helpers shared by several subpackages: the CPU's name for reports, strict JSON files, a scoped
thread count."""

import contextlib
import json
import math
import platform
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from mobilenetv2.atomic import write_text_atomic


def cpu_name() -> str:
    """The CPU's model name (/proc/cpuinfo, as lscpu prints it), or the best the platform module knows."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def write_json(path: Path, obj: Any) -> None:
    """Strict JSON, written atomically: NaN and Inf (not JSON) are written as null."""
    write_text_atomic(path, json.dumps(finite_or_none(obj), indent=1, allow_nan=False) + "\n")


def finite_or_none(obj: Any) -> Any:
    """`obj` with every non-finite float replaced by None (dicts, lists and tuples walked)."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: finite_or_none(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [finite_or_none(v) for v in obj]
    return obj


@contextlib.contextmanager
def torch_threads(threads: int) -> Iterator[None]:
    """PyTorch's intra-op thread count set to `threads` inside the block, the caller's restored after it."""
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(previous)
