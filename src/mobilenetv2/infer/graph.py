"""The fast path's graph engine: the folded ops traced into one TorchScript graph that oneDNN Graph compiles.

Eager calls into oneDNN pay a fixed cost per call (tens of microseconds: descriptor hashing, primitive-cache
lookup, output allocation) that is 30-40% of a batch-1 forward at 224x224 on a 2-core CPU. oneDNN Graph (in
PyTorch as `torch.jit.enable_onednn_fusion`) compiles each conv + bias + ReLU6 (+ add) of a frozen TorchScript
graph into one partition once per input shape, then runs the partitions back to back.

`GraphOps` replays the ops of a `FastMobileNetV2` in plain aten calls, slice for slice (Sec. 5.1's sum over
slices stays a sum of projections; tensors between partitions are freed at their last use as in eager mode).
`GraphEngine` traces it per input shape, freezes it and runs it with oneDNN fusion on. Where any of that is
missing (no oneDNN Graph in this PyTorch, not CPU float32), the fast path runs its eager ops instead.
"""

import functools
import warnings

import torch
import torch.nn.functional as F
from torch import nn

from mobilenetv2.allocator import trim_heap
from mobilenetv2.infer.fold import Geometry
from mobilenetv2.infer.kernels import padded

ENGINES = ("auto", "graph", "eager")


@functools.cache
def graph_available() -> bool:
    """Whether this PyTorch has oneDNN Graph fusion for TorchScript (x86 builds with oneDNN)."""
    jit_c = torch._C
    return (
        torch.backends.mkldnn.is_available()
        and hasattr(jit_c, "_jit_llga_enabled")
        and hasattr(jit_c, "_jit_set_llga_enabled")
    )


def conv_relu6(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, geometry: Geometry, groups: int):
    """One folded k x k conv (stem, depthwise, or a strided first conv), ReLU6 when the geometry says so."""
    x, padding = padded(x, geometry)
    y = F.conv2d(x, weight, bias, geometry.stride, padding, geometry.dilation, groups)
    return F.hardtanh(y, 0.0, 6.0) if geometry.relu6 else y


def pointwise(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, relu6: bool) -> torch.Tensor:
    y = F.conv2d(x, weight, bias)
    return F.hardtanh(y, 0.0, 6.0) if relu6 else y


class GraphBottleneck(nn.Module):
    """A `SplitBottleneck` in aten calls: per slice, [first conv ->] depthwise -> projection, projections summed."""

    def __init__(self, op: nn.Module) -> None:
        super().__init__()
        self.slices = list(op.slices)
        self.first_geometry, self.dw_geometry = op.first_geometry, op.dw_geometry
        self.matmul_first, self.skip, self.project_relu6 = op.matmul_first, op.skip, op.project_relu6
        self.first_w, self.first_b, self.dw_w, self.dw_b, self.project_w = (nn.ParameterList() for _ in range(5))
        for first_w, first_b, dw_w, dw_b, project_w in op.parts:
            if first_w is not None:
                self.first_w.append(as_conv_weight(first_w[:, :, None, None] if self.matmul_first else first_w))
                self.first_b.append(as_conv_weight(first_b))
            self.dw_w.append(as_conv_weight(dw_w))
            self.dw_b.append(as_conv_weight(dw_b))
            self.project_w.append(as_conv_weight(project_w.t()[:, :, None, None]))
        self.project_b = as_conv_weight(op.project_bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = None
        for i, (start, stop) in enumerate(self.slices):
            if self.matmul_first:
                inner = pointwise(x, self.first_w[i], self.first_b[i], True)
            elif self.first_geometry is not None:
                inner = conv_relu6(x, self.first_w[i], self.first_b[i], self.first_geometry, 1)
            else:
                inner = x[:, start:stop]
            dw = conv_relu6(inner, self.dw_w[i], self.dw_b[i], self.dw_geometry, stop - start)
            del inner
            projected = pointwise(dw, self.project_w[i], self.project_b if out is None else None, False)
            out = projected if out is None else out + projected
        if self.project_relu6:
            out = F.hardtanh(out, 0.0, 6.0)
        return out + x if self.skip else out


class GraphOps(nn.Module):
    """A `FastMobileNetV2` (any splits, shortcut='input' or 'none') in aten calls only, for tracing; from op
    `start` of `fast.ops` on (the ops before it run elsewhere), through the head and the classifier."""

    def __init__(self, fast: nn.Module, start: int = 0) -> None:
        super().__init__()
        self.stem = None
        ops = list(fast.ops)[start:]
        if ops and not hasattr(ops[0], "slices"):  # a StemConv on its own
            self.stem = ops.pop(0)
        self.blocks = nn.ModuleList(GraphBottleneck(op) for op in ops)
        head = fast.head
        self.head_slices = list(head.slices)
        self.head_relu6 = head.relu6
        self.head_w = as_conv_weight(head.weight[:, :, None, None])
        self.head_b = as_conv_weight(head.bias)
        self.classifier_w = as_conv_weight(fast.classifier_weight)
        self.classifier_b = as_conv_weight(fast.classifier_bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.stem is not None:
            x = conv_relu6(x, self.stem.weight, self.stem.bias, self.stem.geometry, 1)
        for block in self.blocks:
            x = block(x)
        pooled = []
        for start, stop in self.head_slices:
            y = pointwise(x, self.head_w[start:stop], self.head_b[start:stop], self.head_relu6)
            pooled.append(F.adaptive_avg_pool2d(y, 1).flatten(1))
            del y
        features = pooled[0] if len(pooled) == 1 else torch.cat(pooled, 1)
        return F.linear(features, self.classifier_w, self.classifier_b)


def as_conv_weight(t: torch.Tensor) -> nn.Parameter:
    return nn.Parameter(t.detach().contiguous(), requires_grad=False)


class onednn_fusion:
    """Turns TorchScript's oneDNN Graph fusion on for a block and restores the previous setting after it."""

    def __enter__(self) -> None:
        self.previous = torch._C._jit_llga_enabled()
        torch._C._jit_set_llga_enabled(True)

    def __exit__(self, *exc) -> None:
        torch._C._jit_set_llga_enabled(self.previous)


class GraphEngine:
    """Frozen, oneDNN-fused TorchScript graphs of one fast model, one per input shape and layout (bounded).

    Not module state: a copy or a pickle of the model starts with no graphs and traces its own."""

    LIMIT = 8

    COMPILING_CALLS = 2  # TorchScript profiles the first call of a graph and compiles on the second

    def __init__(self) -> None:
        self.graphs: dict[tuple, torch.jit.ScriptModule] = {}
        self.calls: dict[tuple, int] = {}

    def usable(self, x: torch.Tensor) -> bool:
        return x.device.type == "cpu" and x.dtype == torch.float32 and graph_available()

    def run(self, fast: nn.Module, x: torch.Tensor, plan: tuple = (), start: int = 0) -> torch.Tensor:
        """The logits of `fast` from the input `x` of its op `start` on; `plan` (slices per op) is part of the
        key, so a new split plan retraces."""
        key = (tuple(x.shape), x.is_contiguous(memory_format=torch.channels_last), plan, start)
        graph = self.graphs.get(key)
        with onednn_fusion():
            if graph is None:
                if len(self.graphs) >= self.LIMIT:
                    self.clear()
                graph = self.graphs[key] = self.trace(fast, x, start)
                self.calls[key] = 0
            out = graph(x)
        self.calls[key] += 1
        if self.calls[key] == self.COMPILING_CALLS:
            # Profiling and compiling leave freed heap behind (at 2048x2048: ~250 MB of RSS); hand it back once.
            trim_heap()
        return out

    @staticmethod
    def trace(fast: nn.Module, x: torch.Tensor, start: int = 0) -> torch.jit.ScriptModule:
        ops = GraphOps(fast, start).eval()
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")  # TorchScript's deprecation notice; the graph is private to this engine
            return torch.jit.freeze(torch.jit.trace(ops, x, check_trace=False))

    def clear(self) -> None:
        self.graphs.clear()
        self.calls.clear()

    def __deepcopy__(self, memo) -> "GraphEngine":
        return GraphEngine()

    def __getstate__(self) -> dict:
        return {"graphs": {}, "calls": {}}
