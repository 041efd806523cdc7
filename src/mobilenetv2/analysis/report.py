"""Text rendering of a Profile: the per-layer table, totals and the Table 3 view."""

from mobilenetv2.analysis.profile import Profile


def _shape(shape: tuple[int, ...]) -> str:
    return "x".join(str(d) for d in shape[1:])


def format_profile(p: Profile) -> str:
    nw = max([11] + [len(r.name) for r in p.layers])
    header = f"{'layer':<{nw}} {'operator':<14} {'input':<13} {'output':<13} {'t':>3} {'c':>5} {'s':>2}"
    header += f" {'params':>10} {'MACs':>12} {'act bytes':>11}"
    lines = [f"{p.model} @ {p.resolution[0]}x{p.resolution[1]}, batch 1", header, "-" * len(header)]
    for r in p.layers:
        t = "" if r.t is None else f"{r.t:g}"
        c = "" if r.c is None else str(r.c)
        s = "" if r.s is None else str(r.s)
        lines.append(
            f"{r.name:<{nw}} {r.operator:<14} {_shape(r.input_shape):<13} {_shape(r.output_shape):<13} {t:>3} "
            f"{c:>5} {s:>2} {r.params:>10,} {r.macs:>12,} {r.activation_bytes:>11,}"
        )
    lines.append("-" * len(header))
    lines.append(f"params: {p.params:,}   multiply-adds: {p.macs:,} ({p.macs / 1e6:.1f}M)")
    bpe = "fp32" if p.bytes_per_element == 4 else f"{p.bytes_per_element}-byte"
    lines.append(f"peak activations, each bottleneck one op (Sec. 5.1): {p.memory.peak_one_op_bytes:,} bytes ({bpe})")
    lines.append(f"predicted peak with splits={p.memory.splits}: {p.memory.predicted_peak_bytes:,} bytes ({bpe})")
    lines.append("Table 3 view (largest tensor between ops, 16-bit):")
    for row in p.memory.table3:
        lines.append(f"  {row.size:>9}: {row.max_channels:>5} channels  {row.kb:>8.1f} Kb")
    return "\n".join(lines)
