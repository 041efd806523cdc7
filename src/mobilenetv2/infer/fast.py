"""`for_inference`: a trained model rebuilt for fast CPU inference, BN folded, channels_last, eval only.

`for_inference(model, splits=t)` builds the model's plan once (plan.py: frozen op records, Sec. 5.1's split
schedule) and an engine that runs it (engine.py: eager ops on pre-packed oneDNN kernels, the whole ops after
the split ones compiled by oneDNN Graph). Every t gives the same outputs as the original model (up to float
rounding). It takes a MobileNetV2 classifier or any model on the MobileNetV2 backbone (CONTRACT.md:
`backbone`, `taps`, `forward_head`): the backbone's ops are planned and split like the classifier's, the head
runs on a BN-folded copy. `shortcut="expansion"` (Figure 6b's ablation) runs as a plain BN-folded model.

The result is immutable: its weights are folded and packed for the device and dtype of the model it was made
from, so `.to()`, `.double()`, `.cuda()` and the like raise; convert the moved model instead.
"""

import logging

import torch
from torch import nn

from mobilenetv2.infer.engine import Engine
from mobilenetv2.infer.fold import folded_copy
from mobilenetv2.infer.graph import ENGINES, CacheInfo, graph_available
from mobilenetv2.infer.plan import Plan, backbone_of, build_plan, check_options
from mobilenetv2.meta import find_meta, set_meta

log = logging.getLogger(__name__)

CASTS = ("to", "cuda", "cpu", "xpu", "ipu", "mtia", "type", "float", "double", "half", "bfloat16", "to_empty")


def _refuse(name: str):
    def cast(self, *args, **kwargs):
        raise RuntimeError(
            f"a for_inference() model cannot be moved or cast (.{name}()): its weights are folded and packed for "
            f"one device and dtype; call for_inference() again on the original model after its .{name}()"
        )

    cast.__name__ = name
    return cast


class InferenceModel(nn.Module):
    """What every for_inference() result shares: eval only, immutable, the original model's metadata record."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        if (meta := find_meta(model)) is not None:
            set_meta(self, meta)
        self.num_classes = getattr(model, "num_classes", None)
        super().train(False)

    def train(self, mode: bool = True) -> "InferenceModel":
        if mode:
            raise RuntimeError("a for_inference() model is eval-only; train the original model instead")
        return self

    def compiled_ops(self) -> list[str]:
        """Names of the ops that run as one compiled graph (decided when built; empty: all eager)."""
        return []

    def compiled_shapes(self) -> list[tuple]:
        """(input shape, channels_last) of the compiled graphs kept, least recently used first."""
        return []

    def cache_info(self) -> CacheInfo | None:
        """Counters of the compiled graphs (None when nothing runs compiled)."""
        return None

    def check_input(self, x: torch.Tensor, in_channels: int) -> None:
        if x.dim() != 4 or x.shape[1] != in_channels:
            raise ValueError(f"expected an (N, {in_channels}, H, W) input, got shape {tuple(x.shape)}")


for _name in CASTS:
    setattr(InferenceModel, _name, _refuse(_name))


class FastMobileNetV2(InferenceModel):
    """Eval-only MobileNetV2 (or a model on its backbone) run from a `Plan` by an `Engine`, under
    `torch.inference_mode()`. Input: (N, C, H, W), contiguous or channels_last, of the dtype and on the device
    of the model when converted. Output: what the model returns (logits for the classifier)."""

    def __init__(self, model: nn.Module, *, splits: int = 1, schedule: str = "peak", engine: str = "auto") -> None:
        super().__init__(model)
        self.plan: Plan = build_plan(model, splits=splits, schedule=schedule)
        self.splits, self.schedule, self.engine = splits, schedule, engine
        weight = self.plan.tensors()[0]
        self.dtype, self.device = weight.dtype, weight.device
        compilable = graph_available() and self.device.type == "cpu" and self.dtype == torch.float32
        if engine == "graph" and not compilable:
            raise ValueError(
                f"engine='graph' compiles float32 CPU models with oneDNN Graph (x86 builds of PyTorch); this is "
                f"{self.dtype} on {self.device}{'' if graph_available() else ' without oneDNN Graph'}; use 'eager'"
            )
        self.runner = Engine(self.plan, engine, compilable=compilable)

    def op_names(self) -> list[str]:
        """Names of the scheduled ops: "stem+blocks.0", "blocks.1", ..., "head+pool"."""
        return self.plan.op_names()

    def op_splits(self) -> list[int]:
        """Slices each op runs over, in `op_names()` order."""
        return self.plan.op_splits()

    def compiled_ops(self) -> list[str]:
        return self.runner.compiled_ops()

    def compiled_shapes(self) -> list[tuple]:
        return self.runner.compiled_shapes()

    def cache_info(self) -> CacheInfo | None:
        return self.runner.cache_info()

    def forward(self, x: torch.Tensor, *, on_op=None):
        """`on_op(name)`, if given, is called before each op that runs eagerly (see `bench --memory`)."""
        self.check_input(x, self.plan.in_channels)
        if x.dtype != self.dtype or x.device != self.device:
            raise ValueError(
                f"this for_inference() model runs {self.dtype} inputs on {self.device} (its weights'), got "
                f"{x.dtype} on {x.device}; convert the model again for another dtype or device"
            )
        with torch.inference_mode():
            return self.runner.run(x, on_op)


class FoldedModel(InferenceModel):
    """The model with every BN folded into its conv and nothing else changed (no splits, no graph)."""

    def __init__(self, model: nn.Module, in_channels: int) -> None:
        super().__init__(model)
        self.model = folded_copy(model)
        self.in_channels, self.splits, self.engine = in_channels, 1, "eager"

    def forward(self, x: torch.Tensor):
        self.check_input(x, self.in_channels)
        with torch.inference_mode():
            return self.model(x)


def for_inference(
    model: nn.Module, *, splits: int = 1, schedule: str = "peak", engine: str = "auto"
) -> FastMobileNetV2 | FoldedModel:
    """An eval-only copy of `model` for fast CPU inference; `splits=t` runs Sec. 5.1's split schedule.

    `model`: a MobileNetV2, or a model on its backbone (`backbone`, `taps`, `forward_head`). BN is folded into
    the convs and tensors run channels_last; outputs equal `model.eval()(x)` within float rounding. The
    original model is left untouched. `schedule="peak"` (default) reaches the peak activation memory of t
    slices everywhere while splitting only the ops that need it to; `schedule="uniform"` splits every op into
    t slices. `engine`: "auto" (default: split ops eager, the whole ops after them compiled by oneDNN Graph
    where available), "graph" (every op compiled, float32 CPU only; its memory does not shrink with splits) or
    "eager" (one Python call per op; what `bench --memory` counts per tensor).
    """
    check_options(splits, schedule)
    if engine not in ENGINES:
        raise ValueError(f"engine must be one of {', '.join(ENGINES)}, got {engine!r}")
    net = backbone_of(model)
    if net.shortcut != "expansion":
        return FastMobileNetV2(model, splits=splits, schedule=schedule, engine=engine)
    if splits > 1:
        raise ValueError(
            "shortcut='expansion' adds whole expansion tensors between blocks, which Sec. 5.1's split "
            "(splits > 1) never builds; use splits=1 for this model"
        )
    if engine == "graph":
        raise ValueError("engine='graph' does not run shortcut='expansion' (Figure 6b's ablation); use 'eager'")
    log.info("for_inference: shortcut='expansion' runs as the plain BN-folded model (no splits, no graph)")
    return FoldedModel(model, net.stem.conv.in_channels)
