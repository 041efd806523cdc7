"""The fast path's compiled backend: a run of ops traced into one TorchScript graph that oneDNN Graph compiles.

Eager calls into oneDNN pay a fixed cost per call (tens of microseconds: descriptor hashing, primitive-cache
lookup, output allocation) that is 30-40% of a batch-1 forward at 224x224 on a 2-core CPU. oneDNN Graph (in
PyTorch as `torch.jit.enable_onednn_fusion`) compiles each conv + bias + ReLU6 (+ add) of a frozen TorchScript
graph into one partition once per input shape, then runs the partitions back to back.

`CompiledSegment` traces the ops' own `run` (ops.py) with `TracedKernels`, once per input shape and layout,
freezes the trace and runs it with oneDNN fusion switched on for the call. It keeps the LIMIT most recently
used graphs. A graph that fails to trace or compile is reported once and that shape runs eagerly from then on.
"""

import functools
import itertools
import logging
import warnings
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn

from mobilenetv2.infer.kernels import TracedKernels
from mobilenetv2.infer.ops import Op, run_ops

log = logging.getLogger(__name__)

ENGINES = ("auto", "graph", "eager")
TRACED = TracedKernels()


@functools.cache
def graph_available() -> bool:
    """Whether this PyTorch has oneDNN Graph fusion for TorchScript (x86 builds with oneDNN)."""
    jit_c = torch._C
    return (
        torch.backends.mkldnn.is_available()
        and hasattr(jit_c, "_jit_llga_enabled")
        and hasattr(jit_c, "_jit_set_llga_enabled")
    )


class onednn_fusion:
    """Turns TorchScript's oneDNN Graph fusion on for a block and restores the previous setting after it."""

    def __enter__(self) -> None:
        self.previous = torch._C._jit_llga_enabled()
        torch._C._jit_set_llga_enabled(True)

    def __exit__(self, *exc) -> None:
        torch._C._jit_set_llga_enabled(self.previous)


class Traceable(nn.Module):
    """Ops as one module for `torch.jit.trace`: x -> (output, *the taps made inside, in order)."""

    def __init__(self, ops: Sequence[Op], taps: frozenset[str]) -> None:
        super().__init__()
        self.ops, self.taps = tuple(ops), taps

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        found: dict[str, torch.Tensor] = {}
        x = run_ops(self.ops, x, itertools.repeat(TRACED), self.taps, found)
        return (x, *found.values())


@dataclass(frozen=True)
class CacheInfo:
    """What a compiled segment holds and has done: graphs kept (at most `limit`), traced so far, calls served
    by a kept graph, shapes that failed to compile (they run eagerly)."""

    graphs: int
    limit: int
    compiles: int
    hits: int
    failed: int


class CompiledSegment:
    """A run of ops compiled per (input shape, layout); `strict` re-raises a failed trace or compile."""

    LIMIT = 8
    COMPILING_CALLS = 2  # TorchScript profiles the first call of a graph and compiles on the second

    def __init__(self, ops: Sequence[Op], taps: frozenset[str], *, strict: bool) -> None:
        self.ops, self.taps, self.strict = tuple(ops), taps, strict
        self.tap_names = [name for op in self.ops for name in op.outputs if name in taps]
        self.graphs: OrderedDict[tuple, torch.jit.ScriptModule] = OrderedDict()
        self.calls: dict[tuple, int] = {}
        self.failed: set[tuple] = set()
        self.compiles = self.hits = 0

    @staticmethod
    def key(x: torch.Tensor) -> tuple:
        return tuple(x.shape), x.is_contiguous(memory_format=torch.channels_last)

    def run(self, x: torch.Tensor) -> tuple[torch.Tensor, ...] | None:
        """(output, *taps) of the graph for x's shape and layout, compiled on first use; None for a shape that
        failed to compile (the caller runs the ops eagerly)."""
        key = self.key(x)
        graph = self.graphs.get(key)
        if graph is not None and self.calls[key] >= self.COMPILING_CALLS:
            self.graphs.move_to_end(key)
            self.hits += 1
            with onednn_fusion():
                return graph(x)
        if key in self.failed:
            return None
        try:  # only tracing and the compiling calls are guarded: a compiled graph's errors are real ones
            if graph is None:
                graph = self.trace(x)
            with onednn_fusion():
                out = graph(x)
        except RuntimeError as exc:
            if self.strict:
                raise
            self.graphs.pop(key, None)
            self.calls.pop(key, None)
            self.failed.add(key)
            log.warning("for_inference: compiling for input %s failed (%s); that shape runs eagerly", key[0], exc)
            return None
        self.calls[key] = self.calls.get(key, 0) + 1
        return out

    def trace(self, x: torch.Tensor) -> torch.jit.ScriptModule:
        module = Traceable(self.ops, self.taps).eval()
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")  # TorchScript's deprecation notice; the graph is private to this engine
            graph = torch.jit.freeze(torch.jit.trace(module, x, check_trace=False))
        key = self.key(x)
        self.graphs[key] = graph
        self.calls[key] = 0
        self.compiles += 1
        if len(self.graphs) > self.LIMIT:
            old, _ = self.graphs.popitem(last=False)
            self.calls.pop(old)
        return graph

    def shapes(self) -> list[tuple]:
        """(input shape, channels_last) of the graphs kept, least recently used first."""
        return list(self.graphs)

    def info(self) -> CacheInfo:
        return CacheInfo(len(self.graphs), self.LIMIT, self.compiles, self.hits, len(self.failed))

    def __getstate__(self) -> dict:
        # A copy or a pickle starts without graphs (TorchScript modules are not copied) and compiles its own.
        state = vars(self).copy()
        state.update(graphs=OrderedDict(), calls={}, failed=set(), compiles=0, hits=0)
        return state
