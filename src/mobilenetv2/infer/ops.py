"""The ops of the fast path as frozen records: folded weights, geometry, slices, and one `run` each.

Sec. 5.1: a bottleneck is F(x) = [A o N o B](x) with A the linear projection, N the per-channel non-linearity
(ReLU6 o depthwise o ReLU6) and B the expansion. N acts on each channel alone, so splitting the n inner
channels into t groups gives F(x) = sum_i (A_i o N o B_i)(x): slice i expands to n/t channels, runs the
depthwise conv on them and projects them, adding into one output buffer. Only one n/t slice of the expanded
tensor is ever alive. With t = 1 the same code is the plain (unsplit) fast path.

Each record's `run(x, kernels)` is the op's only implementation: called with `EagerKernels` it runs now,
with `TracedKernels` it is what the graph engine traces. It returns a tuple: the op's output, then (for a
bottleneck whose expansion is a feature tap) its expansion output; `outputs` names them. Each record also
states its own live activation bytes for a given number of slices (`live_bytes`), which the peak schedule
plans with (plan.py), and `with_splits(t)` gives the same op over t slices. `scheduled` ops are the ones
`op_names()` and `info --splits` list (all but the classifier). A new kind of op is a new record with these
members.
"""

import dataclasses
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from mobilenetv2.infer.fold import Geometry
from mobilenetv2.infer.kernels import Kernels

Outputs = tuple[torch.Tensor, ...]


def channel_slices(channels: int, splits: int) -> list[tuple[int, int]]:
    """[start, stop) of `splits` near-equal channel groups (the first ones one channel larger)."""
    if splits < 1:
        raise ValueError(f"splits must be >= 1, got {splits}")
    splits = min(splits, channels)
    size, extra = divmod(channels, splits)
    bounds, start = [], 0
    for i in range(splits):
        stop = start + size + (i < extra)
        bounds.append((start, stop))
        start = stop
    return bounds


def out_size(size: int, geometry: Geometry) -> int:
    if geometry.same_pad:
        return -(-size // geometry.stride)
    reach = geometry.dilation * (geometry.kernel - 1)
    return (size + 2 * geometry.padding - reach - 1) // geometry.stride + 1


@dataclass(frozen=True, eq=False)
class Conv:
    """A BN-folded conv: (out, in/groups, k, k) weight (channels_last), bias, geometry."""

    weight: torch.Tensor
    bias: torch.Tensor
    geometry: Geometry

    @property
    def pointwise(self) -> bool:
        """A 1x1 stride-1 conv, run as a matrix product (its weight is stored (out, in))."""
        return self.geometry.kernel == 1 and self.geometry.stride == 1

    @classmethod
    def folded(cls, folded: tuple[torch.Tensor, torch.Tensor, Geometry]) -> "Conv":
        weight, bias, geometry = folded
        pointwise = geometry.kernel == 1 and geometry.stride == 1
        weight = weight.flatten(1) if pointwise else weight.contiguous(memory_format=torch.channels_last)
        return cls(weight, bias, geometry)


@dataclass(frozen=True, eq=False)
class Slice:
    """Slice [start, stop) of a bottleneck's inner channels: views of its weights, made once."""

    start: int
    stop: int
    first_w: torch.Tensor | None
    first_b: torch.Tensor | None
    dw_w: torch.Tensor
    dw_b: torch.Tensor
    project_w: torch.Tensor  # (n/t, k'): rows of the transposed projection


class Sliced:
    """What the ops split over channel slices share: a `parts` field of per-slice weight views, made once by
    `_slice(t)`, and `with_splits`. `splittable` says whether slicing can lower the op's peak."""

    parts: tuple
    scheduled = True

    def __post_init__(self) -> None:
        if not self.parts:
            object.__setattr__(self, "parts", self._slice(1))

    @property
    def slices(self) -> int:
        return len(self.parts)

    @property
    def splittable(self) -> bool:
        return True

    def _slice(self, splits: int) -> tuple:
        raise NotImplementedError

    def with_splits(self, splits: int):
        if not self.splittable or splits == self.slices:
            return self
        return dataclasses.replace(self, parts=self._slice(splits))


@dataclass(frozen=True, eq=False)
class StemOp:
    """The stem conv on its own (when it cannot be fused with the first bottleneck, or is a tap)."""

    name: str
    conv: Conv
    outputs: tuple[str, ...]
    scheduled = True

    def with_splits(self, splits: int) -> "StemOp":
        return self

    @property
    def slices(self) -> int:
        return 1

    def live_bytes(self, h: int, w: int, splits: int, bytes_per_element: int = 4) -> tuple[int, int, int]:
        g = self.conv.geometry
        h_out, w_out = out_size(h, g), out_size(w, g)
        out_channels, in_channels = self.conv.weight.shape[:2]
        return (in_channels * h * w + out_channels * h_out * w_out) * bytes_per_element, h_out, w_out

    def run(self, x: torch.Tensor, k: Kernels) -> Outputs:
        return (k.conv(x, self.conv.weight, self.conv.bias, self.conv.geometry, 1, "stem"),)


@dataclass(frozen=True, eq=False)
class BottleneckOp(Sliced):
    """[first conv ->] depthwise -> projection over slices of the inner channels. The first conv is the 1x1
    expansion, or the stem conv when the stem is fused with a t = 1 bottleneck (Table 3's note); None for a
    t = 1 bottleneck on its own (slices of the input feed the depthwise). The projection is stored transposed,
    (inner, out), so a slice is a block of whole rows. With `keep_expansion` (its expansion is a feature tap)
    it runs unsplit and also returns the expansion output."""

    name: str
    first: Conv | None
    depthwise: Conv
    project_t: torch.Tensor
    project_bias: torch.Tensor
    project_relu6: bool
    skip: bool
    keep_expansion: bool
    outputs: tuple[str, ...]
    parts: tuple[Slice, ...] = ()

    @property
    def inner(self) -> int:
        return self.depthwise.weight.shape[0]

    @property
    def splittable(self) -> bool:
        return not self.keep_expansion  # a tapped expansion must exist whole

    def _slice(self, splits: int) -> tuple[Slice, ...]:
        parts = []
        for start, stop in channel_slices(self.inner, splits):
            first_w = self.first.weight[start:stop] if self.first is not None else None
            first_b = self.first.bias[start:stop] if self.first is not None else None
            dw_w, dw_b = self.depthwise.weight[start:stop], self.depthwise.bias[start:stop]
            parts.append(Slice(start, stop, first_w, first_b, dw_w, dw_b, self.project_t[start:stop]))
        return tuple(parts)

    def live_bytes(self, h: int, w: int, splits: int, bytes_per_element: int = 4) -> tuple[int, int, int]:
        """(peak live activation bytes at batch 1 with `splits` slices, output height, output width) for an
        h x w input, following run(): the input; per slice, the first conv's slice (none when the slice is a
        view of the input) and the depthwise slice; the output from the first projection on (from the start
        when a linear shortcut initialises it)."""
        if self.first is None:  # a t = 1 bottleneck: its input is the inner tensor
            in_channels, inner_h, inner_w = self.inner, h, w
        else:
            in_channels = self.first.weight.shape[1]
            inner_h, inner_w = out_size(h, self.first.geometry), out_size(w, self.first.geometry)
        h_out, w_out = out_size(inner_h, self.depthwise.geometry), out_size(inner_w, self.depthwise.geometry)
        x_bytes, out_bytes = in_channels * h * w, self.project_t.shape[1] * h_out * w_out
        out_live = self.skip and not self.project_relu6
        peak = 0
        for start, stop in channel_slices(self.inner, 1 if self.keep_expansion else splits):
            first = (stop - start) * inner_h * inner_w if self.first is not None else 0
            dw = (stop - start) * h_out * w_out
            peak = max(peak, x_bytes + first + dw + (out_bytes if out_live else 0), x_bytes + dw + out_bytes)
            out_live = True
        return peak * bytes_per_element, h_out, w_out

    def run(self, x: torch.Tensor, k: Kernels) -> Outputs:
        """(N, k, H, W) -> ((N, k', H', W'),) [+ (the expansion output,) with keep_expansion]."""
        acc = k.begin(x, self.project_bias, self.skip and not self.project_relu6)
        first, dw_geometry, expansion, size = self.first, self.depthwise.geometry, None, ()
        for i, part in enumerate(self.parts):
            if first is None:
                inner = x[:, part.start : part.stop]
            elif first.pointwise:
                inner = k.pointwise(x, part.first_w, part.first_b, True, ("first", i))
            else:
                inner = k.conv(x, part.first_w, part.first_b, first.geometry, 1, ("first", i))
            dw = k.conv(inner, part.dw_w, part.dw_b, dw_geometry, part.stop - part.start, ("dw", i))
            if self.keep_expansion:
                expansion = inner
            del inner
            size = (dw.shape[0], dw.shape[2], dw.shape[3])
            acc = k.project(acc, dw, part.project_w, self.project_bias)
            del dw
        out = k.end(acc, x, self.project_relu6, self.skip, size)
        return (out, expansion) if self.keep_expansion else (out,)


@dataclass(frozen=True, eq=False)
class HeadOp(Sliced):
    """The last 1x1 conv (ReLU6); with `pool`, fused with global average pooling: slices of its channels are
    pooled right away, so the (N, 1280, H, W) tensor never exists whole and the op returns (N, 1280)."""

    name: str
    conv: Conv
    pool: bool
    outputs: tuple[str, ...]
    parts: tuple[tuple[int, int, torch.Tensor, torch.Tensor], ...] = ()  # (start, stop, weight rows, bias)

    @property
    def channels(self) -> int:
        return self.conv.weight.shape[0]

    @property
    def splittable(self) -> bool:
        return self.pool  # unpooled, the output is whole anyway

    def _slice(self, splits: int) -> tuple[tuple[int, int, torch.Tensor, torch.Tensor], ...]:
        w, b = self.conv.weight, self.conv.bias
        return tuple((a, z, w[a:z], b[a:z]) for a, z in channel_slices(self.channels, splits))

    def live_bytes(self, h: int, w: int, splits: int, bytes_per_element: int = 4) -> tuple[int, int, int]:
        """(peak live bytes at batch 1 with `splits` slices, H', W'): input, pooled features and the widest
        slice (unpooled: input and output)."""
        in_channels = self.conv.weight.shape[1]
        if not self.pool:
            return (in_channels + self.channels) * h * w * bytes_per_element, h, w
        width = max(stop - start for start, stop in channel_slices(self.channels, splits))
        return (in_channels * h * w + self.channels + width * h * w) * bytes_per_element, 1, 1

    def run(self, x: torch.Tensor, k: Kernels) -> Outputs:
        relu6 = self.conv.geometry.relu6
        if not self.pool:
            return (k.pointwise(x, self.conv.weight, self.conv.bias, relu6, 0),)
        pooled = k.pool_begin(x, self.channels)
        for i, (start, stop, weight, bias) in enumerate(self.parts):
            y = k.pointwise(x, weight, bias, relu6, i)  # (N, c/t, H, W)
            pooled = k.pool_into(pooled, y, start, stop)
            del y
        return (k.pool_end(pooled),)


@dataclass(frozen=True, eq=False)
class LinearOp:
    """The classifier: (N, features) -> (N, classes) logits (dropout is gone in eval)."""

    name: str
    weight: torch.Tensor
    bias: torch.Tensor
    outputs: tuple[str, ...]
    scheduled = False

    @property
    def slices(self) -> int:
        return 1

    def with_splits(self, splits: int) -> "LinearOp":
        return self

    def live_bytes(self, h: int, w: int, splits: int, bytes_per_element: int = 4) -> tuple[int, int, int]:
        return sum(self.weight.shape) * bytes_per_element, 1, 1

    def run(self, x: torch.Tensor, k: Kernels) -> Outputs:
        return (F.linear(x, self.weight, self.bias),)


Op = StemOp | BottleneckOp | HeadOp | LinearOp


def run_ops(
    ops: Iterable[Op],
    x: torch.Tensor,
    kernels: Iterable[Kernels],
    taps: frozenset[str],
    found: dict[str, torch.Tensor],
    on_op: Callable[[str], None] | None = None,
) -> torch.Tensor:
    """Run `ops` in order, op i on `kernels[i]`; the outputs named in `taps` go into `found`. `on_op(name)` is
    called before each op (how `bench --memory` names per-op peaks)."""
    for op, k in zip(ops, kernels, strict=False):  # kernels may be endless (the traced ones)
        if on_op is not None:
            on_op(op.name)
        outputs = op.run(x, k)
        x = outputs[0]
        if taps:
            found.update((name, t) for name, t in zip(op.outputs, outputs, strict=True) if name in taps)
    return x
