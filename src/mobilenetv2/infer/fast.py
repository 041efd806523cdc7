"""The fast PyTorch inference path: BN folded into the convs, channels_last, ReLU6 in place, inference mode.

`for_inference(model, splits=t)` rebuilds a trained MobileNetV2 as a chain of Sec. 5.1 ops (see split.py):
the stem fused with the first (t = 1) bottleneck, the 16 other bottlenecks, and the last 1x1 conv fused with
the global pooling, each over t slices of its inner channels. t = 1 is the plain fast path; every t gives the
same outputs as the original model (up to float rounding).

Splitting only lowers the peak where the peak is: the early, high-resolution bottlenecks. The default "peak"
schedule gives every op the fewest slices (at most t) that keep it within the peak that splitting every op
into t slices reaches, so memory is that of `splits=t` and the late, small ops run whole (no per-slice calls).
`schedule="uniform"` splits every op into t slices, as Sec. 5.1 describes it.

Two engines run the same ops: "eager" calls them one by one from Python (fused oneDNN calls on pre-packed
weights, see kernels.py); "graph" traces them once per input shape into a TorchScript graph that oneDNN Graph
compiles (see graph.py), which removes the per-call cost. A graph's compiled partitions hold buffers of their
own, so its memory does not follow the slices (measured at 2048x2048 after trimming the heap: 291 MB at t = 1
and 367 MB at t = 8, against 571 MB and 165-273 MB for the eager engine). So "auto" (default), for CPU float32
inputs where this PyTorch has oneDNN Graph, runs the split ops (the early, high-resolution ones that set the
peak) on the eager engine and the whole ops after them in a graph; elsewhere everything runs eagerly.
"graph" compiles every op, split or not.
"""

import logging

import torch
import torch.nn.functional as F
from torch import nn

from mobilenetv2.infer.fold import fold_unit
from mobilenetv2.infer.graph import ENGINES, GraphEngine, graph_available
from mobilenetv2.infer.kernels import PackedOp, spatial_conv
from mobilenetv2.infer.split import SplitBottleneck, SplitHead, out_size
from mobilenetv2.layers import InvertedResidual
from mobilenetv2.meta import find_meta, set_meta
from mobilenetv2.models import MobileNetV2

log = logging.getLogger(__name__)

SCHEDULES = ("peak", "uniform")


class StemConv(PackedOp):
    """The stem conv on its own (only when it cannot be fused with the first bottleneck)."""

    def __init__(self, unit: nn.Module) -> None:
        super().__init__()
        weight, bias, self.geometry = fold_unit(unit)
        self.register_buffer("weight", weight.contiguous(memory_format=torch.channels_last))
        self.register_buffer("bias", bias)

    def forward(self, x: torch.Tensor, previous_expansion: None = None) -> tuple[torch.Tensor, None]:
        return spatial_conv(x, self.weight, self.bias, self.geometry, 1, self.packed), None

    def set_splits(self, splits: int) -> None:
        pass  # nothing inside to split

    def live_bytes(self, h: int, w: int, splits: int, bytes_per_element: int = 4) -> tuple[int, int, int]:
        h_out, w_out = out_size(h, self.geometry), out_size(w, self.geometry)
        out_channels, in_channels = self.weight.shape[:2]
        return (in_channels * h * w + out_channels * h_out * w_out) * bytes_per_element, h_out, w_out


def peak_schedule(ops: list[nn.Module], size: tuple[int, int], in_channels: int, splits: int) -> list[int]:
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


def split_plan(model: MobileNetV2, size: tuple[int, int], splits: int) -> dict[str, int]:
    """{op name: slices} of the peak schedule for `splits=t` at an input of `size` (what `info --splits` shows)."""
    fast = for_inference(model, splits=splits, schedule="uniform")
    ops = [*fast.ops, fast.head]
    plan = peak_schedule(ops, size, model.stem.conv.in_channels, splits) if splits > 1 else [1] * len(ops)
    return dict(zip(fast.op_names(), plan, strict=True))


def bottleneck_op(block: InvertedResidual, *, splits: int, stem: nn.Module | None = None) -> SplitBottleneck:
    """One Sec. 5.1 op from a bottleneck; with `stem`, the stem conv is its first conv (Table 3's note)."""
    first = fold_unit(stem) if stem is not None else (fold_unit(block.expand) if block.expand is not None else None)
    op = SplitBottleneck(
        first=first,
        depthwise=fold_unit(block.depthwise),
        project=fold_unit(block.project),
        skip=block.has_skip,
        splits=splits,
    )
    op.add_previous_expansion = block.skip_from_previous_expansion
    return op


class FastMobileNetV2(nn.Module):
    """Eval-only MobileNetV2: ops on channels_last tensors, run under `torch.inference_mode()`.

    Input: (N, C, H, W) float, contiguous or channels_last. Output: (N, num_classes) logits.
    The weights are those of `model` when it was converted; the graph engine compiles them on the first
    call for each input shape.
    """

    def __init__(self, model: MobileNetV2, *, splits: int, schedule: str = "peak", engine: str = "auto") -> None:
        super().__init__()
        self.splits = splits
        self.schedule = schedule
        self.engine = engine
        self.graphs = GraphEngine()
        first = model.blocks[0]
        ops: list[nn.Module] = []
        # Fusing needs the first bottleneck to have no expansion and no shortcut (its input, the stem output,
        # never exists whole); that holds for every width above 0.25.
        if first.expand is None and not first.has_skip:
            ops.append(bottleneck_op(first, splits=splits, stem=model.stem))
            self.names = ["stem+blocks.0"]
        else:
            ops += [StemConv(model.stem), bottleneck_op(first, splits=splits)]
            self.names = ["stem", "blocks.0"]
        self.names += [f"blocks.{i}" for i in range(1, len(model.blocks))]
        ops += [bottleneck_op(block, splits=splits) for block in model.blocks[1:]]
        if model.shortcut == "expansion":
            for op in ops:
                op.keep_expansion = True
        self.ops = nn.ModuleList(ops)
        head_weight, head_bias, head_geometry = fold_unit(model.head)
        self.head = SplitHead(weight=head_weight, bias=head_bias, relu6=head_geometry.relu6, splits=splits)
        if schedule == "peak" and splits > 1:
            meta = find_meta(model)
            size = meta.preprocessing.input_size if meta is not None else (224, 224)
            ops = [*self.ops, self.head]
            for op, t in zip(ops, peak_schedule(ops, size, model.stem.conv.in_channels, splits), strict=True):
                op.set_splits(t)
        linear = model.classifier[1]
        self.register_buffer("classifier_weight", linear.weight.detach().clone())
        self.register_buffer("classifier_bias", linear.bias.detach().clone())
        self.num_classes = model.num_classes
        if find_meta(model) is not None:
            set_meta(self, find_meta(model))
        self.train(False)

    def op_splits(self) -> list[int]:
        """Slices each op runs over, in `op_names()` order."""
        return [len(getattr(op, "slices", [None])) for op in [*self.ops, self.head]]

    def op_names(self) -> list[str]:
        """Names of the ops in `ops` followed by the head: "stem+blocks.0", "blocks.1", ..., "head+pool"."""
        return [*self.names, "head+pool"]

    def uses_graph(self, x: torch.Tensor) -> bool:
        """Whether `x` runs through the compiled graph (else through the eager ops)."""
        if self.engine == "eager" or self.engine == "auto" and not self.graphs.usable(x):
            return False
        if not self.graphs.usable(x):
            raise ValueError(f"engine='graph' runs float32 CPU inputs only, got {x.dtype} on {x.device}")
        return True

    def _apply(self, fn, recurse=True):
        super()._apply(fn, recurse)
        self.graphs.clear()  # compiled from the old tensors
        return self

    def train(self, mode: bool = True) -> "FastMobileNetV2":
        if mode:
            raise RuntimeError("a for_inference() model is eval-only; train the original model instead")
        return super().train(False)

    def graph_start(self, x: torch.Tensor) -> int | None:
        """Index of the first op of `ops` that the compiled graph runs for `x` (the ops before it run eagerly),
        or None when every op runs eagerly. engine="graph" compiles everything; "auto" leaves the split ops
        (and any op before them) to the eager engine, whose memory they lower, and compiles the whole ops after
        them; a split head leaves nothing whole to compile."""
        if not self.uses_graph(x):
            return None
        if self.engine == "graph":
            return 0
        splits = self.op_splits()
        if splits[-1] > 1:
            return None
        return max((i + 1 for i, s in enumerate(splits[:-1]) if s > 1), default=0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 4:
            raise ValueError(f"expected an (N, C, H, W) input, got shape {tuple(x.shape)}")
        with torch.inference_mode():
            start = self.graph_start(x)
            expansion = None
            for op in self.ops[: start or 0]:
                x, expansion = op(x, expansion)
            if start is not None:
                try:
                    return self.graphs.run(self, x, tuple(self.op_splits()), start)
                except RuntimeError as exc:  # a graph this PyTorch cannot trace or compile
                    if self.engine == "graph":
                        raise
                    log.warning("for_inference: the graph engine failed (%s); running the eager engine", exc)
                    self.engine = "eager"
            for op in self.ops[start or 0 :]:
                x, expansion = op(x, expansion)
            features = self.head(x)  # (N, 1280·max(1, α))
            return F.linear(features, self.classifier_weight, self.classifier_bias)


def for_inference(
    model: nn.Module, *, splits: int = 1, schedule: str = "peak", engine: str = "auto"
) -> FastMobileNetV2:
    """An eval-only copy of `model` for fast CPU inference; `splits=t` runs Sec. 5.1's split schedule.

    BN is folded into the convs and tensors run channels_last; outputs equal `model.eval()(x)` within
    float rounding. The original model is left untouched. `schedule="peak"` (default) reaches the peak
    activation memory of t slices everywhere while splitting only the ops that need it to;
    `schedule="uniform"` splits every op into t slices. `engine`: "auto" (default: split ops eager, the whole
    ops after them compiled by oneDNN Graph where available), "graph" (every op compiled, float32 CPU inputs
    only; its memory does not shrink with splits) or "eager" (one Python call per op; what `bench --memory`
    counts per tensor).
    """
    if not isinstance(model, MobileNetV2):
        raise ValueError(f"for_inference supports MobileNetV2 models, got {type(model).__name__}")
    if isinstance(splits, bool) or not isinstance(splits, int) or splits < 1:
        raise ValueError(f"splits must be an integer >= 1, got {splits!r}")
    if schedule not in SCHEDULES:
        raise ValueError(f"schedule must be one of {', '.join(SCHEDULES)}, got {schedule!r}")
    if splits > 1 and model.shortcut == "expansion":
        raise ValueError(
            "shortcut='expansion' adds whole expansion tensors between blocks, which Sec. 5.1's split "
            "(splits > 1) never builds; use splits=1 for this model"
        )
    if engine not in ENGINES:
        raise ValueError(f"engine must be one of {', '.join(ENGINES)}, got {engine!r}")
    if engine == "graph" and not graph_available():
        raise ValueError("engine='graph' needs a PyTorch with oneDNN Graph (x86 builds with oneDNN); use 'eager'")
    if model.shortcut == "expansion" and engine == "graph":
        raise ValueError("engine='graph' does not run shortcut='expansion' (Figure 6b's ablation); use 'eager'")
    if model.shortcut == "expansion":
        engine = "eager"
    return FastMobileNetV2(model, splits=splits, schedule=schedule, engine=engine)
