"""The fast path's compute calls: 1x1 convs as matrix products, k x k convs, each with bias and ReLU6.

On x86 CPUs in float32 each call is one oneDNN op with bias and ReLU6 fused (what PyTorch's own compiler emits
there), on weights pre-packed into oneDNN's blocked layout. Packing happens on the first call for an input shape
and is kept in a per-op `Packed` cache: without it oneDNN reorders the weights on every call (measured: the whole
forward 12% slower at 224x224, batch 1). Elsewhere (other devices, dtypes, or a PyTorch without oneDNN) the
calls are plain `addmm`/`conv2d` + an in-place clamp.
"""

import torch
import torch.nn.functional as F
from torch import nn

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


class Packed:
    """Pre-packed weights of one op, by (call site, input shape). Bounded: a model fed ever new input sizes
    repacks instead of growing without end. Not part of the module's state (rebuilt on first use)."""

    LIMIT = 64

    def __init__(self) -> None:
        self.weights: dict[tuple, torch.Tensor] = {}

    def get(self, key: tuple, pack) -> torch.Tensor:
        weight = self.weights.get(key)
        if weight is None:
            if len(self.weights) >= self.LIMIT:
                self.weights.clear()
            weight = self.weights[key] = pack()
        return weight

    def clear(self) -> None:
        self.weights.clear()

    def __deepcopy__(self, memo) -> "Packed":
        return Packed()  # opaque oneDNN tensors are not copied; the copy packs its own on first use

    def __getstate__(self) -> dict:
        return {"weights": {}}


class PackedOp(nn.Module):
    """An op with a `Packed` cache, emptied whenever its tensors are replaced (`.to()`, `.double()`, ...)."""

    def __init__(self) -> None:
        super().__init__()
        self.packed = Packed()

    def _apply(self, fn, recurse=True):
        super()._apply(fn, recurse)
        self.packed.clear()
        return self


def linear_relu6(
    rows: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, packed: Packed | None = None, key: tuple = ()
) -> torch.Tensor:
    """ReLU6(rows @ weight.T + bias) for (M, k) rows and an (n, k) weight."""
    if packed is not None and fusable(rows):
        m = rows.shape[0]
        w = packed.get(("linear", *key, m), lambda: torch.ops.mkldnn._reorder_linear_weight(weight, m))
        return torch.ops.mkldnn._linear_pointwise(rows, w, bias, *RELU6)
    return torch.addmm(bias, rows, weight.t()).clamp_(0.0, 6.0)


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


def spatial_conv(
    x: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor,
    geometry: Geometry,
    groups: int,
    packed: Packed | None = None,
    key: tuple = (),
) -> torch.Tensor:
    """A k x k conv (stem or depthwise) with ReLU6 when `geometry` says so; TF 'SAME' padding when asked."""
    x, padding = padded(x, geometry)
    if packed is not None and geometry.relu6 and fusable(x):
        pad, stride, dilation = list(padding), [geometry.stride] * 2, [geometry.dilation] * 2
        shape = list(x.shape)
        w = packed.get(
            ("conv", *key, *shape, *pad),
            lambda: torch.ops.mkldnn._reorder_convolution_weight(weight, pad, stride, dilation, groups, shape),
        )
        return torch.ops.mkldnn._convolution_pointwise(x, w, bias, pad, stride, dilation, groups, *RELU6)
    y = F.conv2d(x, weight, bias, geometry.stride, padding, geometry.dilation, groups)
    return y.clamp_(0.0, 6.0) if geometry.relu6 else y
