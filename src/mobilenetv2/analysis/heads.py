"""Backbone / head split of a detector's profile, next to the paper's Tables 5 and 6 (Sec. 6.2)."""

from mobilenetv2.analysis.profile import Profile

# Table 5: the SSDLite head for 80 classes; Table 6: MobileNetV2 + SSDLite on COCO. Input 320x320.
PAPER = {
    "head (Table 5, SSDLite)": (2.1e6, 0.35e9),
    "total (Table 6, MNetV2 + SSDLite)": (4.3e6, 0.8e9),
}


def head_split(p: Profile) -> dict[str, dict[str, int]]:
    """{"backbone": {"params", "macs"}, "head": {...}, "total": {...}} from the per-layer rows."""
    backbone = [r for r in p.layers if r.name.startswith("backbone.")]
    b_params, b_macs = sum(r.params for r in backbone), sum(r.macs for r in backbone)
    return {
        "backbone": {"params": b_params, "macs": b_macs},
        "head": {"params": p.params - b_params, "macs": p.macs - b_macs},
        "total": {"params": p.params, "macs": p.macs},
    }


def format_head_split(p: Profile) -> str:
    split = head_split(p)
    ours = {"head (Table 5, SSDLite)": split["head"], "total (Table 6, MNetV2 + SSDLite)": split["total"]}
    lines = [f"{'':<34} {'params':>12} {'paper':>7} {'MACs':>15} {'paper':>7}"]
    b = split["backbone"]
    lines.append(f"{'backbone (MobileNetV2 taps)':<34} {b['params']:>12,} {'':>7} {b['macs']:>15,}")
    for name, (params, macs) in PAPER.items():
        o = ours[name]
        lines.append(f"{name:<34} {o['params']:>12,} {params / 1e6:>6.2g}M {o['macs']:>15,} {macs / 1e9:>6.2g}B")
    lines.append("the paper's rows are for 80 classes (81 outputs with background) at 320x320; see docs/detection.md")
    return "\n".join(lines)
