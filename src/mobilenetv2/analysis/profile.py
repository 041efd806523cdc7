"""Exact per-layer analysis from the real module graph: shapes, parameters, multiply-adds, activations.

A forward pass on a zero input records, through hooks, the input/output shape of every layer ("unit") and
the multiply-adds of every convolution and linear layer inside it. Nothing is estimated from formulas.
Units are the model's direct children, with `nn.ModuleList`s opened one level (`blocks.0`, `blocks.1`, ...);
a model with a `backbone` and a head (`taps`, `forward_head`) is opened one level more (`backbone.blocks.0`,
`head.project`, ...). Units that never run (a backbone's unused classifier) get no row.
"""

import math
from dataclasses import asdict, dataclass, field

import torch
from torch import nn

from mobilenetv2.analysis.memory import MemoryReport, memory_report
from mobilenetv2.meta import find_meta


@dataclass
class LayerRow:
    name: str
    operator: str
    input_shape: tuple[int, ...]
    output_shape: tuple[int, ...]
    params: int
    macs: int
    activation_bytes: int  # the unit's output tensor
    t: float | None = None  # expansion ratio (bottlenecks only)
    c: int | None = None  # output channels
    s: int | None = None  # stride
    internal: list[tuple[int, ...]] = field(default_factory=list)  # shapes of splittable inner tensors


@dataclass
class Profile:
    model: str
    resolution: tuple[int, int]
    bytes_per_element: int
    params: int
    macs: int
    layers: list[LayerRow]
    memory: MemoryReport

    @property
    def peak_activation_bytes(self) -> int:
        return self.memory.peak_one_op_bytes

    def to_dict(self) -> dict:
        d = {
            "model": self.model,
            "resolution": list(self.resolution),
            "bytes_per_element": self.bytes_per_element,
            "params": self.params,
            "macs": self.macs,
            "peak_activation_bytes": self.memory.peak_one_op_bytes,
            "predicted_peak_bytes": self.memory.predicted_peak_bytes,
            "splits": self.memory.splits,
            "table3": [asdict(r) for r in self.memory.table3],
            "layers": [asdict(r) for r in self.layers],
        }
        return d


def conv_macs(module: nn.Conv2d, output: torch.Tensor) -> int:
    # Each output element costs (in_channels / groups) · kh · kw multiply-adds.
    kh, kw = module.kernel_size
    return output.numel() // output.shape[0] * (module.in_channels // module.groups) * kh * kw


def units(model: nn.Module, prefix: str = "") -> list[tuple[str, nn.Module]]:
    """A detector's / segmenter's `backbone` is opened too (`backbone.stem`, `backbone.blocks.0`, ...)."""
    out = []
    for name, child in model.named_children():
        name = prefix + name
        if name == "backbone" and hasattr(child, "blocks"):
            out.extend(units(child, prefix="backbone."))
        elif isinstance(child, nn.ModuleList):
            out.extend((f"{name}.{i}", sub) for i, sub in enumerate(child))
        elif name in ("backbone", "head") and hasattr(model, "forward_head") and hasattr(model, "taps"):
            # Detection / segmentation models (backbone + head): their parts' layers are the units.
            out.extend((f"{name}.{sub_name}", sub) for sub_name, sub in units(child))
        else:
            out.append((name, child))
    return out


def _operator(module: nn.Module) -> str:
    from mobilenetv2.layers import ConvNormAct, ExtraLayer, InvertedResidual, SeparablePredictor

    if isinstance(module, InvertedResidual):
        return "bottleneck"
    if isinstance(module, ExtraLayer):
        return "extra layer"
    if isinstance(module, SeparablePredictor):
        return "dw predictor"
    if isinstance(module, ConvNormAct):
        k = module.conv.kernel_size
        dw = module.conv.groups == module.conv.in_channels and module.conv.groups > 1
        return f"conv2d {k[0]}x{k[1]}" + (" dw" if dw else "")
    if isinstance(module, nn.AdaptiveAvgPool2d | nn.AvgPool2d):
        return "avgpool"
    if isinstance(module, nn.Sequential) and any(isinstance(m, nn.Linear) for m in module):
        return "classifier"
    return type(module).__name__


def _block_details(module: nn.Module, in_shape: tuple[int, ...], out_shape: tuple[int, ...], row: LayerRow):
    from mobilenetv2.layers import InvertedResidual

    if isinstance(module, InvertedResidual):
        row.t = round(module.hidden_channels / module.in_channels, 4)
        row.c, row.s = module.out_channels, module.stride
        n, hidden = in_shape[0], module.hidden_channels
        # The expansion output (absent when t = 1) and the depthwise output: the tensors Sec. 5.1 slices.
        expansion = [(n, hidden, *in_shape[2:])] if module.expand is not None else []
        row.internal = [*expansion, (n, hidden, *out_shape[2:])]
    elif len(out_shape) == 4:
        row.c = out_shape[1]
        conv = getattr(module, "conv", None)
        row.s = conv.stride[0] if isinstance(conv, nn.Conv2d) else None
    elif len(out_shape) == 2:
        row.c = out_shape[1]


@torch.no_grad()
def profile(
    model: nn.Module,
    resolution: int | tuple[int, int] = 224,
    *,
    splits: int = 1,
    bytes_per_element: int = 4,
    in_channels: int = 3,
) -> Profile:
    """Count parameters, multiply-adds (convs + linear) and activation memory of `model` at `resolution`.

    Batch 1; `bytes_per_element` 4 for fp32, 2 for the paper's 16-bit Table 3 (always reported in 16-bit).
    """
    h, w = (resolution, resolution) if isinstance(resolution, int) else resolution
    rows: dict[str, LayerRow] = {}
    macs_by_unit: dict[str, int] = {}
    handles = []
    was_training = model.training
    model.eval()
    unit_list = units(model)

    def make_row(name, module, in_shape: tuple[int, ...], out_shape: tuple[int, ...]) -> None:
        row = LayerRow(
            name=name,
            operator=_operator(module),
            input_shape=in_shape,
            output_shape=out_shape,
            params=sum(p.numel() for p in module.parameters()),
            macs=0,
            activation_bytes=math.prod(out_shape) * bytes_per_element,
        )
        _block_details(module, in_shape, out_shape, row)
        rows[name] = row

    def unit_hook(name):
        def hook(module, args, output):
            make_row(name, module, tuple(args[0].shape), tuple(output.shape))

        return hook

    # A unit a backbone runs through another method (a bottleneck's forward_with_expansion, when a detector
    # taps it) fires no hook of its own: its first leaf's input and last leaf's output stand for it.
    leaf_shapes: dict[str, list[tuple[int, ...]]] = {}

    def leaf_hook(unit_name):
        def hook(module, args, output):
            if isinstance(module, nn.Conv2d):
                cost = conv_macs(module, output)
            else:
                cost = module.in_features * module.out_features * (output.numel() // module.out_features)
            macs_by_unit[unit_name] = macs_by_unit.get(unit_name, 0) + cost
            leaf_shapes.setdefault(unit_name, [tuple(args[0].shape), ()])[1] = tuple(output.shape)

        return hook

    try:
        for name, unit in unit_list:
            handles.append(unit.register_forward_hook(unit_hook(name)))
            for leaf in unit.modules():
                if isinstance(leaf, nn.Conv2d | nn.Linear):
                    handles.append(leaf.register_forward_hook(leaf_hook(name)))
        param = next(model.parameters())
        model(torch.zeros(1, in_channels, h, w, dtype=param.dtype, device=param.device))
    finally:
        for handle in handles:
            handle.remove()
        model.train(was_training)
    for name, unit in unit_list:
        if name not in rows and name in leaf_shapes:
            make_row(name, unit, *leaf_shapes[name])
    layers = [rows[name] for name, _ in unit_list if name in rows]
    for row in layers:
        row.macs = macs_by_unit.get(row.name, 0)
    groups = model.one_op_groups() if hasattr(model, "one_op_groups") else None
    return Profile(
        model=meta.architecture if (meta := find_meta(model)) is not None else type(model).__name__,
        resolution=(h, w),
        bytes_per_element=bytes_per_element,
        params=sum(p.numel() for p in model.parameters()),
        macs=sum(r.macs for r in layers),
        layers=layers,
        memory=memory_report(layers, groups, splits=splits, bytes_per_element=bytes_per_element),
    )
