"""The engine: runs a plan's ops, some eagerly and the rest as one compiled graph, as decided once when built.

"eager" runs every op on `EagerKernels` (one Python call per op; what `bench --memory` counts per tensor).
"graph" compiles every op. "auto" (default, where this PyTorch has oneDNN Graph and the weights are float32
on the CPU) runs the split ops, and any before them, eagerly and compiles the whole ops after them: a graph's
compiled partitions hold buffers of their own, so its memory does not follow the slices (measured at
2048x2048, heap trimmed: 291 MB at t = 1 and 367 MB at t = 8 all compiled, against 571 MB and 165-273 MB
eager), while the split ops, the early high-resolution ones, are where the peak is. A plan whose last
scheduled op is split leaves nothing whole to compile and runs eagerly. Nothing here changes after `__init__`.
"""

from collections.abc import Callable
from typing import Any

import torch

from mobilenetv2.infer.graph import CacheInfo, CompiledSegment
from mobilenetv2.infer.kernels import EagerKernels
from mobilenetv2.infer.ops import run_ops
from mobilenetv2.infer.plan import Plan


def compiled_start(plan: Plan, engine: str) -> int | None:
    """Index of the first op the graph runs (the ops before it run eagerly), None when every op runs eagerly."""
    if engine == "eager":
        return None
    if engine == "graph":
        return 0
    start = max((i + 1 for i, op in enumerate(plan.ops) if op.slices > 1), default=0)
    return start if any(op.scheduled for op in plan.ops[start:]) else None


class Engine:
    """Runs `plan`: ops [0, start) eagerly, each with its own pre-packed weights, ops [start, end) compiled."""

    def __init__(self, plan: Plan, engine: str, *, compilable: bool) -> None:
        self.plan = plan
        self.taps = frozenset(plan.taps)
        self.kernels = tuple(EagerKernels() for _ in plan.ops)
        self.start = compiled_start(plan, engine) if compilable else None
        self.compiled = (
            CompiledSegment(plan.ops[self.start :], self.taps, strict=engine == "graph")
            if self.start is not None
            else None
        )

    def compiled_ops(self) -> list[str]:
        """Names of the ops that run compiled (the others run eagerly)."""
        return [op.name for op in self.plan.ops[self.start :]] if self.start is not None else []

    def run(self, x: torch.Tensor, on_op: Callable[[str], None] | None = None) -> Any:
        """The plan's result for input `x`: logits, or what the head makes of the taps."""
        image_size = (x.shape[-2], x.shape[-1])
        ops, found = self.plan.ops, {}
        stop = len(ops) if self.start is None else self.start
        x = run_ops(ops[:stop], x, self.kernels[:stop], self.taps, found, on_op)
        if self.compiled is not None:
            outputs = self.compiled.run(x)
            if outputs is None:  # this shape failed to compile: its ops run eagerly
                x = run_ops(ops[stop:], x, self.kernels[stop:], self.taps, found, on_op)
            else:
                x = outputs[0]
                found.update(zip(self.compiled.tap_names, outputs[1:], strict=True))
        if self.plan.head is None:
            return x
        return self.plan.head.run([found[name] for name in self.plan.taps], image_size)

    def cache_info(self) -> CacheInfo | None:
        return self.compiled.info() if self.compiled is not None else None

    def compiled_shapes(self) -> list[tuple]:
        return self.compiled.shapes() if self.compiled is not None else []
