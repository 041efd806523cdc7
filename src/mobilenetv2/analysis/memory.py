"""Activation memory, the paper's way (Sec. 5.1, Table 3).

An "op" is a group of consecutive units whose inner tensors never need to exist whole: a bottleneck, or
a layer the split trick also applies to (the stem fused with a t = 1 first bottleneck; the last 1x1 conv
fused with the pooling after it). Between ops only the op's input and output are live, so
  - peak_one_op_bytes = max over ops of |input| + |output|             (the Sec. 5.1 bound, t -> inf)
  - predicted_peak_bytes(t) = max over ops of |input| + |output| + Σ |inner tensor| / t
    (inner tensors split into t channel slices; t = 1 is a plain, unsplit execution).
"""

import math
from collections.abc import Sequence
from dataclasses import dataclass


@dataclass
class Table3Row:
    size: str  # "112x112"
    max_channels: int
    max_bytes: int  # 16-bit, batch 1
    kb: float  # max_bytes / 1000, the paper's "Kb"


@dataclass
class OpMemory:
    units: list[str]
    input_bytes: int
    output_bytes: int
    inner_bytes: int  # all splittable inner tensors, unsplit

    def live_bytes(self, splits: int, inner: list[tuple[int, ...]], bpe: int) -> int:
        sliced = sum(s[0] * math.ceil(s[1] / splits) * math.prod(s[2:]) * bpe for s in inner)
        return self.input_bytes + self.output_bytes + sliced


@dataclass
class MemoryReport:
    splits: int
    peak_one_op_bytes: int
    predicted_peak_bytes: int
    ops: list[OpMemory]
    table3: list[Table3Row]


def _numel(shape: Sequence[int]) -> int:
    return math.prod(shape)


def memory_report(layers, groups: list[list[str]] | None, *, splits: int, bytes_per_element: int) -> MemoryReport:
    if splits < 1:
        raise ValueError(f"splits must be >= 1, got {splits}")
    by_name = {row.name: row for row in layers}
    groups = groups or [[row.name] for row in layers]
    grouped = {n for g in groups for n in g}
    groups = [g for g in groups if all(n in by_name for n in g)]
    groups += [[row.name] for row in layers if row.name not in grouped]
    order = {row.name: i for i, row in enumerate(layers)}
    groups.sort(key=lambda g: order[g[0]])

    ops, peak_one, peak_split = [], 0, 0
    boundary: list[tuple[int, ...]] = []
    for group in groups:
        first, last = by_name[group[0]], by_name[group[-1]]
        inner = [s for n in group for s in by_name[n].internal]
        inner += [by_name[n].output_shape for n in group[:-1]]  # fused units' hand-offs stay inside
        op = OpMemory(
            units=list(group),
            input_bytes=_numel(first.input_shape) * bytes_per_element,
            output_bytes=_numel(last.output_shape) * bytes_per_element,
            inner_bytes=sum(_numel(s) for s in inner) * bytes_per_element,
        )
        ops.append(op)
        peak_one = max(peak_one, op.input_bytes + op.output_bytes)
        peak_split = max(peak_split, op.live_bytes(splits, inner, bytes_per_element))
        boundary.append(last.output_shape)
    return MemoryReport(splits, peak_one, peak_split, ops, table3_rows(boundary))


def table3_rows(shapes: list[tuple[int, ...]]) -> list[Table3Row]:
    """Largest tensor between ops at each spatial size, 16-bit, as in the paper's Table 3."""
    best: dict[tuple[int, int], tuple[int, int]] = {}
    for shape in shapes:
        size = (shape[2], shape[3]) if len(shape) == 4 else (1, 1)
        channels, nbytes = shape[1], _numel(shape) * 2
        old = best.get(size, (0, 0))
        best[size] = (max(old[0], channels), max(old[1], nbytes))
    rows = [
        Table3Row(f"{h}x{w}", c, b, round(b / 1000, 1))
        for (h, w), (c, b) in sorted(best.items(), key=lambda kv: -kv[0][0] * kv[0][1])
    ]
    return rows
