"""Table 7 (Mobile DeepLabv3 on PASCAL VOC 2012 val) next to our exact parameter and multiply-add counts.

TF DeepLab evaluates 513x513 crops. For multi-scale + flip ("MF") the cost is the sum over the scaled inputs
(TF's `scale_dimension`: int((513 - 1) · s + 1)) of one forward each, twice for the flip.
"""

from dataclasses import dataclass

from torch import nn

from mobilenetv2.analysis import profile
from mobilenetv2.segmentation.multiscale import MF_SCALES


@dataclass(frozen=True)
class Table7Row:
    output_stride: int
    aspp: bool
    multi_scale: bool
    miou: float
    params: float | None
    madds: float


# The paper's Table 7 rows for MNetV2* (features of the second-last layer), and the TF zoo's OS8 MF figure.
TABLE_7 = (
    Table7Row(16, True, False, 75.70, 4.52e6, 5.8e9),
    Table7Row(16, False, False, 75.32, 2.11e6, 2.75e9),
    Table7Row(8, True, True, 78.42, None, 387e9),
    Table7Row(8, False, True, 77.33, None, 152.6e9),
)


def scale_dimension(size: int, scale: float) -> int:
    """TF DeepLab's rounding of a scaled input size (`utils.scale_dimension`)."""
    return int((size - 1) * scale + 1)


def multi_scale_macs(model: nn.Module, resolution: tuple[int, int], scales=MF_SCALES, flip: bool = True) -> int:
    total = 0
    for s in scales:
        size = (scale_dimension(resolution[0], s), scale_dimension(resolution[1], s))
        total += profile(model, size).macs
    return total * (2 if flip else 1)


def table7_lines(model: nn.Module, resolution: tuple[int, int], params: int, macs: int) -> list[str]:
    """Our counts next to the Table 7 rows of this configuration (at OS 8 the paper only gives MF costs)."""
    os_, aspp = model.output_stride, bool(len(model.head.aspp))
    size = f"{resolution[0]}x{resolution[1]}"
    note = "" if resolution == (513, 513) else f" (ours at {size}: pass --resolution 513 to compare)"
    lines = [f"Table 7 (VOC val, 513x513), OS{os_} {'with' if aspp else 'without'} ASPP{note}:"]
    rows = [r for r in TABLE_7 if r.output_stride == os_ and r.aspp == aspp]
    for row in rows:
        if row.multi_scale:
            ours = multi_scale_macs(model, resolution)
            label = f"OS{os_} single scale"
            lines.append(f"  {label:<22} paper      -             ours {macs / 1e9:7.2f}B, {params / 1e6:.2f}M params")
            label = f"OS{os_} MF ({len(MF_SCALES)} scales x 2)"
            lines.append(f"  {label:<22} paper {row.madds / 1e9:7.2f}B        ours {ours / 1e9:7.2f}B")
        else:
            label = f"OS{os_} single scale"
            lines.append(
                f"  {label:<22} paper {row.madds / 1e9:7.2f}B, {row.params / 1e6:.2f}M   "
                f"ours {macs / 1e9:7.2f}B, {params / 1e6:.2f}M params"
            )
        lines[-1] += f"   (paper mIoU {row.miou:.2f})"
    if not rows:
        lines.append("  Table 7 has no row for this configuration")
    lines.append("  see docs/segmentation.md for where the counts differ and why")
    return lines
