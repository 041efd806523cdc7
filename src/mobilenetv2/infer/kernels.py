"""The two backends every op of the fast path runs on: the same primitives, eager or traced.

An op (ops.py) is written once against these primitives: a k x k conv, a 1x1 conv, a projection summed over
slices, a pooled 1x1 conv. `EagerKernels` runs them now, one call each; `TracedKernels` runs them in plain
aten calls that `torch.jit.trace` records into a graph for oneDNN Graph to compile (graph.py).

Eager: tensors are channels_last, so a 1x1 conv is one matrix product over rows of pixels
(N·H·W, k) @ (k, n), and the projection accumulates with an in-place `addmm_`. On x86 CPUs in float32 each
conv and matrix product is one oneDNN call with bias and ReLU6 fused (what PyTorch's own compiler emits there),
on weights pre-packed into oneDNN's blocked layout. Packing happens on the first call for an input shape and
is kept in a per-op `Packed` cache: without it oneDNN reorders the weights on every call (measured: the whole
forward 12% slower at 224x224, batch 1). Elsewhere (other devices, dtypes, or a PyTorch without oneDNN) the
calls are plain `addmm`/`conv2d` + an in-place clamp.

Traced: 1x1 convs stay convs (oneDNN Graph fuses conv + bias + ReLU6 + add into one partition) and the
projections of the slices are summed out of place; the weight layouts are made inside the trace, on
constants, so freezing the graph folds them away.
"""

from collections import OrderedDict
from collections.abc import Callable

import torch
import torch.nn.functional as F

from mobilenetv2.infer.fold import Geometry
from mobilenetv2.layers.padding import same_padding

RELU6 = ("hardtanh", [0.0, 6.0], "")


def _onednn_available() -> bool:
    try:
        ops = torch.ops.mkldnn
        names = ("_linear_pointwise", "_convolution_pointwise", "_reorder_linear_weight", "_reorder_convolution_weight")
        return torch.backends.mkldnn.is_available() and all(hasattr(ops, name) for name in names)
    except (AttributeError, RuntimeError):
        return False


ONEDNN = _onednn_available()


def fusable(x: torch.Tensor) -> bool:
    return ONEDNN and x.device.type == "cpu" and x.dtype == torch.float32


def as_rows(x: torch.Tensor) -> torch.Tensor:
    """(N, C, H, W) -> (N·H·W, C); a view when `x` is channels_last (it always is on this path)."""
    return x.permute(0, 2, 3, 1).reshape(-1, x.shape[1])


def as_image(rows: torch.Tensor, n: int, h: int, w: int) -> torch.Tensor:
    """(N·H·W, C) -> (N, C, H, W) channels_last, a view."""
    return rows.view(n, h, w, rows.shape[1]).permute(0, 3, 1, 2)


def padded(x: torch.Tensor, geometry: Geometry) -> tuple[torch.Tensor, tuple[int, int]]:
    """(input, the conv's own (h, w) padding): TF 'SAME' padding goes to the conv when it is even on both
    sides of each axis, else it is applied to the input here."""
    if not geometry.same_pad:
        return x, (geometry.padding, geometry.padding)
    top, bottom = same_padding(x.shape[-2], geometry.kernel, geometry.stride, geometry.dilation)
    left, right = same_padding(x.shape[-1], geometry.kernel, geometry.stride, geometry.dilation)
    if top == bottom and left == right:
        return x, (top, left)
    return F.pad(x, (left, right, top, bottom)), (0, 0)


class Packed:
    """Pre-packed weights of one op, by (call site, input shape); the least recently used is dropped past
    LIMIT, so a model fed ever new input sizes repacks instead of growing without end. Not copied or pickled:
    a copy packs its own on first use."""

    LIMIT = 64

    def __init__(self) -> None:
        self.weights: OrderedDict[tuple, torch.Tensor] = OrderedDict()

    def get(self, key: tuple, pack: Callable[[], torch.Tensor]) -> torch.Tensor:
        weight = self.weights.get(key)
        if weight is None:
            weight = self.weights[key] = pack()
            if len(self.weights) > self.LIMIT:
                self.weights.popitem(last=False)
        else:
            self.weights.move_to_end(key)
        return weight

    def __len__(self) -> int:
        return len(self.weights)

    def __deepcopy__(self, memo) -> "Packed":
        return Packed()  # opaque oneDNN tensors are not copied

    def __getstate__(self) -> dict:
        return {"weights": OrderedDict()}


class EagerKernels:
    """The primitives run now, with one `Packed` cache (an engine gives each op its own)."""

    def __init__(self) -> None:
        self.packed = Packed()

    def conv(self, x: torch.Tensor, w: torch.Tensor, b: torch.Tensor, geometry: Geometry, groups: int, key):
        """A k x k conv (stem, strided first conv, depthwise), ReLU6 when `geometry` says so."""
        x, padding = padded(x, geometry)
        if geometry.relu6 and fusable(x):
            pad, stride, dilation = list(padding), [geometry.stride] * 2, [geometry.dilation] * 2
            shape = list(x.shape)
            packed = self.packed.get(
                ("conv", key, *shape, *pad),
                lambda: torch.ops.mkldnn._reorder_convolution_weight(w, pad, stride, dilation, groups, shape),
            )
            return torch.ops.mkldnn._convolution_pointwise(x, packed, b, pad, stride, dilation, groups, *RELU6)
        y = F.conv2d(x, w, b, geometry.stride, padding, geometry.dilation, groups)
        return y.clamp_(0.0, 6.0) if geometry.relu6 else y

    def pointwise(self, x: torch.Tensor, w: torch.Tensor, b: torch.Tensor, relu6: bool, key) -> torch.Tensor:
        """A 1x1 conv with an (n, k) weight as one matrix product over the pixels of `x`, ReLU6 when asked."""
        n, _, h, width = x.shape
        rows = as_rows(x)
        if not relu6:
            return as_image(torch.addmm(b, rows, w.t()), n, h, width)
        if fusable(rows):
            m = rows.shape[0]
            packed = self.packed.get(("linear", key, m), lambda: torch.ops.mkldnn._reorder_linear_weight(w, m))
            return as_image(torch.ops.mkldnn._linear_pointwise(rows, packed, b, *RELU6), n, h, width)
        return as_image(torch.addmm(b, rows, w.t()).clamp_(0.0, 6.0), n, h, width)

    def begin(self, x: torch.Tensor, bias: torch.Tensor, residual: bool) -> torch.Tensor | None:
        """The projection's accumulator before the first slice: x + bias for a linear residual block (its
        input is added once, up front, and never copied again), else nothing yet."""
        return as_rows(x) + bias if residual else None

    def project(self, acc: torch.Tensor | None, dw: torch.Tensor, w_t: torch.Tensor, bias: torch.Tensor):
        """acc + dw @ w_t (in place), or dw @ w_t + bias as the first slice's; `w_t` is (n/t, k')."""
        rows = as_rows(dw)
        return torch.addmm(bias, rows, w_t) if acc is None else acc.addmm_(rows, w_t)

    def end(self, acc: torch.Tensor, x: torch.Tensor, relu6: bool, skip: bool, size: tuple[int, ...]):
        """The block output as an image of `size` (N, H', W'): ReLU6 and (after it) the shortcut where `begin`
        did not add it."""
        if relu6:
            acc.clamp_(0.0, 6.0)
            if skip:
                acc += as_rows(x)
        return as_image(acc, *size)

    def pool_begin(self, x: torch.Tensor, channels: int) -> torch.Tensor:
        return x.new_empty(x.shape[0], channels)

    def pool_into(self, pooled: torch.Tensor, y: torch.Tensor, start: int, stop: int) -> torch.Tensor:
        """Average slice `y` (N, c, H, W) over its pixels into columns [start, stop) of `pooled`."""
        n = y.shape[0]
        torch.mean(as_rows(y).view(n, -1, stop - start), dim=1, out=pooled[:, start:stop])
        return pooled

    def pool_end(self, pooled: torch.Tensor) -> torch.Tensor:
        return pooled


def _relu6(y: torch.Tensor, relu6: bool) -> torch.Tensor:
    return F.hardtanh(y, 0.0, 6.0) if relu6 else y


class TracedKernels:
    """The same primitives in aten calls for `torch.jit.trace` (nothing cached: the graph holds its weights)."""

    def conv(self, x: torch.Tensor, w: torch.Tensor, b: torch.Tensor, geometry: Geometry, groups: int, key):
        x, padding = padded(x, geometry)
        y = F.conv2d(x, w.contiguous(), b, geometry.stride, padding, geometry.dilation, groups)
        return _relu6(y, geometry.relu6)

    def pointwise(self, x: torch.Tensor, w: torch.Tensor, b: torch.Tensor, relu6: bool, key) -> torch.Tensor:
        return _relu6(F.conv2d(x, w[:, :, None, None].contiguous(), b), relu6)

    def begin(self, x: torch.Tensor, bias: torch.Tensor, residual: bool) -> None:
        return None  # the shortcut is added at the end, where oneDNN Graph fuses it into the last conv

    def project(self, acc: torch.Tensor | None, dw: torch.Tensor, w_t: torch.Tensor, bias: torch.Tensor):
        y = F.conv2d(dw, w_t.t()[:, :, None, None].contiguous(), bias if acc is None else None)
        return y if acc is None else acc + y

    def end(self, acc: torch.Tensor, x: torch.Tensor, relu6: bool, skip: bool, size: tuple[int, ...]):
        acc = _relu6(acc, relu6)
        return acc + x if skip else acc

    def pool_begin(self, x: torch.Tensor, channels: int) -> list[torch.Tensor]:
        return []

    def pool_into(self, pooled: list[torch.Tensor], y: torch.Tensor, start: int, stop: int) -> list[torch.Tensor]:
        return [*pooled, F.adaptive_avg_pool2d(y, 1).flatten(1)]

    def pool_end(self, pooled: list[torch.Tensor]) -> torch.Tensor:
        return pooled[0] if len(pooled) == 1 else torch.cat(pooled, 1)


Kernels = EagerKernels | TracedKernels
