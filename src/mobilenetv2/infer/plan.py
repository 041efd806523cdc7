"""The inference plan: a model's ops as frozen records, built once from the model, the splits and the schedule.

For a MobileNetV2 classifier the ops are Sec. 5.1's: the stem fused with the first (t = 1) bottleneck, the 16
other bottlenecks, the last 1x1 conv fused with the global pooling, then the classifier. For a model on the
MobileNetV2 backbone (CONTRACT: `backbone`, `taps`, `forward_head`) they are the backbone's ops up to the last
tap, and the plan's `head` runs `forward_head` on a BN-folded copy of the rest of the model. An op whose
expansion output is a tap runs unsplit and keeps it; a "stem" tap keeps the stem an op of its own.

Splitting only lowers the peak where the peak is: the early, high-resolution bottlenecks. The default "peak"
schedule gives every op the fewest slices (at most t) that keep it within the peak that splitting every op
into t slices reaches, so memory is that of `splits=t` and the late, small ops run whole (no per-slice calls).
`schedule="uniform"` splits every op into t slices, as Sec. 5.1 describes it.

Everything that only needs the plan (the peak schedule, each op's live bytes, `info --splits`) reads it here,
without building a runnable model.
"""

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from mobilenetv2.infer.fold import fold_unit, folded_copy
from mobilenetv2.infer.ops import BottleneckOp, Conv, HeadOp, LinearOp, Op, StemOp
from mobilenetv2.layers import InvertedResidual
from mobilenetv2.meta import find_meta
from mobilenetv2.models import MobileNetV2

SCHEDULES = ("peak", "uniform")


@dataclass(frozen=True, eq=False)
class FoldedHead:
    """A task head (detection, segmentation): `forward_head(taps, image size)` of a BN-folded copy of the model
    without its backbone."""

    module: nn.Module
    taps: tuple[str, ...]

    def run(self, features: list[torch.Tensor], image_size: tuple[int, int]) -> Any:
        return self.module.forward_head(features, image_size)


@dataclass(frozen=True, eq=False)
class Plan:
    """The ops in order; `taps` (what `head` reads) are empty for a classifier, whose result is the last op's."""

    ops: tuple[Op, ...]
    head: FoldedHead | None
    splits: int
    schedule: str
    in_channels: int

    @property
    def taps(self) -> tuple[str, ...]:
        return self.head.taps if self.head is not None else ()

    def op_names(self) -> list[str]:
        """Names of the scheduled ops: "stem+blocks.0", "blocks.1", ..., "head+pool" (the classifier is left out:
        it has nothing to split)."""
        return [op.name for op in self.ops if op.scheduled]

    def op_splits(self) -> list[int]:
        """Slices each op runs over, in `op_names()` order."""
        return [op.slices for op in self.ops if op.scheduled]

    def split_plan(self) -> dict[str, int]:
        return dict(zip(self.op_names(), self.op_splits(), strict=True))

    def live_bytes(self, size: tuple[int, int]) -> list[int]:
        """Each op's peak live activation bytes at batch 1 for an input of `size`, with its own slices."""
        h, w = size
        result = []
        for op in self.ops:
            live, h, w = op.live_bytes(h, w, op.slices)
            result.append(live)
        return result

    def tensors(self) -> list[torch.Tensor]:
        """Every weight tensor the ops hold (what a memory count of activations leaves out)."""
        found: list[torch.Tensor] = []
        for op in self.ops:
            for value in vars(op).values():
                if isinstance(value, Conv):
                    found += [value.weight, value.bias]
                elif isinstance(value, torch.Tensor):
                    found.append(value)
        if self.head is not None:
            found += [*self.head.module.parameters(), *self.head.module.buffers()]
        return found


def peak_schedule(ops: Sequence[Op], size: tuple[int, int], in_channels: int, splits: int) -> list[int]:
    """Slices per op: the fewest (<= `splits`) that keep each op's live bytes at an `size` input within the
    peak of running every op with `splits` slices. The image is the caller's and alive throughout, so it is
    left out of the first op's bytes. Live bytes of every op scale with H·W alike, so the choice holds for
    other input sizes up to rounding."""
    h, w = size
    image = in_channels * h * w * 4
    inputs = []
    for op in ops:
        inputs.append((h, w))
        _, h, w = op.live_bytes(h, w, splits)

    def live(i: int, slices: int) -> int:
        return ops[i].live_bytes(*inputs[i], slices)[0] - (image if i == 0 else 0)

    peak = max(live(i, splits) for i in range(len(ops)))
    return [next(s for s in range(1, splits + 1) if live(i, s) <= peak) for i in range(len(ops))]


def backbone_of(model: nn.Module) -> MobileNetV2:
    """The MobileNetV2 whose ops the plan runs: the model itself, or its `backbone` (CONTRACT.md)."""
    if isinstance(model, MobileNetV2):
        return model
    backbone = getattr(model, "backbone", None)
    if isinstance(backbone, MobileNetV2) and hasattr(model, "taps") and hasattr(model, "forward_head"):
        taps, known = tuple(model.taps), set(backbone.feature_names())
        if not taps or any(t not in known for t in taps):
            raise ValueError(f"{type(model).__name__}.taps must name backbone features, got {taps!r}")
        return backbone
    raise ValueError(
        f"for_inference supports MobileNetV2 models and models on its backbone (with `backbone`, `taps` and "
        f"`forward_head`), got {type(model).__name__}"
    )


def bottleneck_op(name: str, block: InvertedResidual, taps: set[str], stem: nn.Module | None = None) -> BottleneckOp:
    """A bottleneck's op, named `name`, its output the tap "blocks.i"; with `stem`, the stem conv is its first
    conv (Table 3's note)."""
    block_name = name.removeprefix("stem+")
    first = stem if stem is not None else block.expand
    project_w, project_b, project_geometry = fold_unit(block.project)
    keep = f"{block_name}.expansion" in taps
    return BottleneckOp(
        name=name,
        first=Conv.folded(fold_unit(first)) if first is not None else None,
        depthwise=Conv.folded(fold_unit(block.depthwise)),
        project_t=project_w.flatten(1).t().contiguous(),
        project_bias=project_b,
        project_relu6=project_geometry.relu6,
        skip=block.has_skip,
        keep_expansion=keep,
        outputs=(block_name, f"{block_name}.expansion") if keep else (block_name,),
    )


def backbone_ops(net: MobileNetV2, taps: tuple[str, ...]) -> list[Op]:
    """The unsplit ops of `net`: through the classifier, or (with taps) up to the op that makes the last tap."""
    wanted = set(taps)
    first = net.blocks[0]
    ops: list[Op] = []
    # Fusing needs the first bottleneck to have no expansion and no shortcut (its input, the stem output,
    # never exists whole); that holds for every width above 0.25.
    if first.expand is None and not first.has_skip and "stem" not in wanted:
        ops.append(bottleneck_op("stem+blocks.0", first, wanted, stem=net.stem))
    else:
        ops += [StemOp("stem", Conv.folded(fold_unit(net.stem)), ("stem",)), bottleneck_op("blocks.0", first, wanted)]
    ops += [bottleneck_op(f"blocks.{i}", block, wanted) for i, block in enumerate(net.blocks) if i > 0]
    if not taps:
        head = Conv.folded(fold_unit(net.head))
        linear = net.classifier[1]
        weights = linear.weight.detach().clone(), linear.bias.detach().clone()
        return [*ops, HeadOp("head+pool", head, True, ("head+pool",)), LinearOp("classifier", *weights, ("logits",))]
    if "head" in wanted:  # a model whose taps end earlier may have replaced the 1x1 head conv by nn.Identity
        ops.append(HeadOp("head", Conv.folded(fold_unit(net.head)), False, ("head",)))
    last = max(i for i, op in enumerate(ops) if wanted & set(op.outputs))
    return ops[: last + 1]


def input_size(model: nn.Module) -> tuple[int, int]:
    """The size the weights were made for (their preprocessing), else 224x224: where the peak schedule plans."""
    meta = find_meta(model)
    return tuple(meta.preprocessing.input_size) if meta is not None else (224, 224)


def check_options(splits: int, schedule: str) -> None:
    if isinstance(splits, bool) or not isinstance(splits, int) or splits < 1:
        raise ValueError(f"splits must be an integer >= 1, got {splits!r}")
    if schedule not in SCHEDULES:
        raise ValueError(f"schedule must be one of {', '.join(SCHEDULES)}, got {schedule!r}")


def build_plan(
    model: nn.Module, *, splits: int = 1, schedule: str = "peak", size: tuple[int, int] | None = None
) -> Plan:
    """The plan of `model` (a MobileNetV2, or a model on its backbone) over `splits` slices with `schedule`,
    planned at `size` (default: the weights' input size). The model is left untouched."""
    check_options(splits, schedule)
    net = backbone_of(model)
    head = FoldedHead(folded_copy(model, leave_out=net), tuple(model.taps)) if net is not model else None
    if net.shortcut == "expansion":
        raise ValueError("shortcut='expansion' has no split plan: for_inference runs it as a plain BN-folded model")
    ops = backbone_ops(net, head.taps if head is not None else ())
    in_channels = net.stem.conv.in_channels
    if schedule == "peak" and splits > 1:
        slices = peak_schedule(ops, size or input_size(model), in_channels, splits)
    else:
        slices = [splits] * len(ops)
    ops = [op.with_splits(t) for op, t in zip(ops, slices, strict=True)]
    return Plan(tuple(ops), head, splits, schedule, in_channels)


def split_plan(model: nn.Module, size: tuple[int, int], splits: int) -> dict[str, int]:
    """{op name: slices} of the peak schedule for `splits=t` at an input of `size` (what `info --splits` shows)."""
    return build_plan(model, splits=splits, size=size).split_plan()
