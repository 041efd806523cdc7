"""The paper's memory-efficient inference (Sec. 5.1): a bottleneck run as a sum over slices of its inner channels.

A bottleneck is F(x) = [A o N o B](x) with A the linear projection, N the per-channel non-linearity
(ReLU6 o depthwise o ReLU6) and B the expansion. N acts on each channel alone, so splitting the n inner
channels into t groups gives F(x) = sum_i (A_i o N o B_i)(x): slice i expands to n/t channels, runs the
depthwise conv on them and projects them, adding into one output buffer. Only one n/t slice of the expanded
tensor is ever alive. With t = 1 the same code is the plain (unsplit) fast path.

Tensors are channels_last, so a 1x1 conv is one matrix product over rows of pixels:
(N·H·W, k) @ (k, n) -> (N·H·W, n), and the projection accumulates with an in-place `addmm_`.

Each op also states its own live activation bytes for a given number of slices (`live_bytes`), so a model can
give every op only as many slices as the peak needs (see fast.py's "peak" schedule).
"""

import torch

from mobilenetv2.infer.fold import Geometry
from mobilenetv2.infer.kernels import PackedOp, linear_relu6, spatial_conv


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


def as_rows(x: torch.Tensor) -> torch.Tensor:
    """(N, C, H, W) -> (N·H·W, C); a view when `x` is channels_last (it always is on this path)."""
    return x.permute(0, 2, 3, 1).reshape(-1, x.shape[1])


def as_image(rows: torch.Tensor, n: int, h: int, w: int) -> torch.Tensor:
    """(N·H·W, C) -> (N, C, H, W) channels_last, a view."""
    return rows.view(n, h, w, rows.shape[1]).permute(0, 3, 1, 2)


def out_size(size: int, geometry: Geometry) -> int:
    if geometry.same_pad:
        return -(-size // geometry.stride)
    reach = geometry.dilation * (geometry.kernel - 1)
    return (size + 2 * geometry.padding - reach - 1) // geometry.stride + 1


class SplitBottleneck(PackedOp):
    """One op of Sec. 5.1: [first conv ->] depthwise -> projection, run over `splits` slices of the inner channels.

    The first conv is the 1x1 expansion of a bottleneck, or the stem conv when the stem is fused with a t = 1
    bottleneck (Table 3's note); None for a t = 1 bottleneck on its own (slices of the input feed the depthwise).
    Weights are BN-folded; slice i's weights are views of rows/columns [start_i, stop_i) of the inner channels.
    """

    def __init__(
        self,
        *,
        first: tuple[torch.Tensor, torch.Tensor, Geometry] | None,
        depthwise: tuple[torch.Tensor, torch.Tensor, Geometry],
        project: tuple[torch.Tensor, torch.Tensor, Geometry],
        skip: bool,
        splits: int,
    ) -> None:
        super().__init__()
        dw_weight, dw_bias, self.dw_geometry = depthwise
        inner = dw_weight.shape[0]
        self.slices = channel_slices(inner, splits)
        self.first_geometry = first[2] if first is not None else None
        self.matmul_first = first is not None and first[2].kernel == 1 and first[2].stride == 1
        if first is not None:
            weight = (
                first[0].flatten(1) if self.matmul_first else first[0].contiguous(memory_format=torch.channels_last)
            )
            self.register_buffer("first_weight", weight)
            self.register_buffer("first_bias", first[1])
        self.register_buffer("dw_weight", dw_weight.contiguous(memory_format=torch.channels_last))
        self.register_buffer("dw_bias", dw_bias)
        # The projection is stored transposed, (inner, out): slice i is then a block of whole rows.
        self.register_buffer("project_weight_t", project[0].flatten(1).t().contiguous())
        self.register_buffer("project_bias", project[1])
        self.project_relu6 = project[2].relu6
        self.skip = skip
        self.out_channels = project[0].shape[0]
        # shortcut="expansion" (Figure 6b, unsplit only): blocks hand their whole expansion output to the next,
        # which adds it to its own.
        self.keep_expansion = False
        self.add_previous_expansion = False
        self.set_splits(splits)

    def set_splits(self, splits: int) -> None:
        """Run over `splits` slices of the inner channels from now on."""
        self.slices = channel_slices(self.dw_weight.shape[0], splits)
        self.parts = self.slice_weights()

    def live_bytes(self, h: int, w: int, splits: int, bytes_per_element: int = 4) -> tuple[int, int, int]:
        """(peak live activation bytes at batch 1 with `splits` slices, output height, output width) for an
        h x w input, following forward(): the input; per slice, the first conv's slice (none when the slice is
        a view of the input) and the depthwise slice; the output from the first projection on (from the start
        when a linear shortcut initialises it)."""
        inner = self.dw_weight.shape[0]
        if self.first_geometry is None:  # a t = 1 bottleneck: its input is the inner tensor
            in_channels, inner_h, inner_w = inner, h, w
        else:
            in_channels = self.first_weight.shape[1]
            inner_h, inner_w = out_size(h, self.first_geometry), out_size(w, self.first_geometry)
        h_out, w_out = out_size(inner_h, self.dw_geometry), out_size(inner_w, self.dw_geometry)
        x_bytes, out_bytes = in_channels * h * w, self.out_channels * h_out * w_out
        out_live = self.skip and not self.project_relu6
        peak = 0
        for start, stop in channel_slices(inner, splits):
            first = (stop - start) * inner_h * inner_w if self.first_geometry is not None else 0
            dw = (stop - start) * h_out * w_out
            peak = max(peak, x_bytes + first + dw + (out_bytes if out_live else 0), x_bytes + dw + out_bytes)
            out_live = True
        return peak * bytes_per_element, h_out, w_out

    def slice_weights(self) -> list[tuple[torch.Tensor | None, ...]]:
        """Per slice: (first weight, first bias, depthwise weight, depthwise bias, projection weight (n/t, k')),
        views into the buffers made once, so the forward loop does no slicing."""
        parts = []
        for start, stop in self.slices:
            first_w = first_b = None
            if self.first_geometry is not None:
                first_w, first_b = self.first_weight[start:stop], self.first_bias[start:stop]
            dw_w, dw_b = self.dw_weight[start:stop], self.dw_bias[start:stop]
            parts.append((first_w, first_b, dw_w, dw_b, self.project_weight_t[start:stop]))
        self.packed.clear()
        return parts

    def _apply(self, fn, recurse=True):
        # .to() / .double() replace the buffers: remake the slice views on the new ones.
        super()._apply(fn, recurse)
        self.parts = self.slice_weights()
        return self

    def extra_repr(self) -> str:
        return f"slices={len(self.slices)}, inner={self.dw_weight.shape[0]}, skip={self.skip}"

    def forward(
        self, x: torch.Tensor, previous_expansion: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(N, k, H, W) -> ((N, k', H', W'), expansion output or None); the expansion is only whole at t = 1."""
        n, _, h, w = x.shape
        if self.first_geometry is not None:
            h, w = out_size(h, self.first_geometry), out_size(w, self.first_geometry)
        h_out, w_out = out_size(h, self.dw_geometry), out_size(w, self.dw_geometry)
        x_rows = as_rows(x) if self.matmul_first or self.skip else None  # (N·H·W, k), a view
        out = x_rows + self.project_bias if self.skip and not self.project_relu6 else None  # (N·H'·W', k')
        expansion = None
        packed = self.packed
        for i, ((start, stop), (first_w, first_b, dw_w, dw_b, project_w)) in enumerate(
            zip(self.slices, self.parts, strict=True)
        ):
            if self.matmul_first:
                inner = as_image(linear_relu6(x_rows, first_w, first_b, packed, (i,)), n, h, w)  # (N, n/t, H, W)
            elif first_w is not None:
                inner = spatial_conv(x, first_w, first_b, self.first_geometry, 1, packed, ("first", i))
            else:
                inner = x[:, start:stop]
            if self.add_previous_expansion and previous_expansion is not None:
                inner = inner + previous_expansion
            dw = as_rows(spatial_conv(inner, dw_w, dw_b, self.dw_geometry, stop - start, packed, ("dw", i)))
            expansion = inner if self.keep_expansion else None
            del inner
            out = torch.addmm(self.project_bias, dw, project_w) if out is None else out.addmm_(dw, project_w)
            del dw
        if self.project_relu6:
            out.clamp_(0.0, 6.0)
            if self.skip:
                out += x_rows
        return as_image(out, n, h_out, w_out), expansion


class SplitHead(PackedOp):
    """The last 1x1 conv (ReLU6) fused with global average pooling: slices of its channels are pooled right
    away, so the (N, 1280, H, W) tensor never exists whole. Returns (N, 1280) pooled features."""

    def __init__(self, *, weight: torch.Tensor, bias: torch.Tensor, relu6: bool, splits: int) -> None:
        super().__init__()
        self.register_buffer("weight", weight.flatten(1))
        self.register_buffer("bias", bias)
        self.relu6 = relu6
        self.set_splits(splits)

    def set_splits(self, splits: int) -> None:
        self.slices = channel_slices(self.weight.shape[0], splits)
        self.packed.clear()

    def live_bytes(self, h: int, w: int, splits: int, bytes_per_element: int = 4) -> tuple[int, int, int]:
        """(peak live bytes at batch 1 with `splits` slices, 1, 1): input, pooled features and the widest slice."""
        out_channels, in_channels = self.weight.shape
        width = max(stop - start for start, stop in channel_slices(out_channels, splits))
        return (in_channels * h * w + out_channels + width * h * w) * bytes_per_element, 1, 1

    def extra_repr(self) -> str:
        return f"slices={len(self.slices)}, channels={self.weight.shape[0]}"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, _, h, w = x.shape
        rows = as_rows(x)
        pooled = x.new_empty(n, self.weight.shape[0])
        for i, (start, stop) in enumerate(self.slices):
            weight, bias = self.weight[start:stop], self.bias[start:stop]
            # (N·H·W, c/t)
            y = (
                linear_relu6(rows, weight, bias, self.packed, (i,))
                if self.relu6
                else torch.addmm(bias, rows, weight.t())
            )
            torch.mean(y.view(n, h * w, stop - start), dim=1, out=pooled[:, start:stop])
            del y
        return pooled
