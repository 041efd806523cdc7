"""The paper's tables and figures, reproduced: each writes markdown, CSV/JSON and a PNG under an output folder."""

import logging
from pathlib import Path

from mobilenetv2.paper.figure6 import Budget

log = logging.getLogger(__name__)
ITEMS = ("table3", "table4", "figure1", "figure5", "figure6")
OPTIONAL_ITEMS = ("table4-litert",)  # needs an optional extra (mobilenetv2[tflite]); not part of "all"


def reproduce(
    what: str,
    *,
    out_dir: str | Path,
    repeats: int = 20,
    budget: Budget | None = None,
    runs_dir: str | Path | None = None,
) -> str:
    """Build one item of ITEMS or OPTIONAL_ITEMS, or "all" of ITEMS, into `out_dir`; return the markdown that
    was written."""
    if what != "all" and what not in ITEMS + OPTIONAL_ITEMS:
        raise ValueError(f"unknown item {what!r}; expected one of {', '.join(ITEMS + OPTIONAL_ITEMS)} or all")
    if repeats < 1:
        raise ValueError(f"--repeats must be >= 1, got {repeats}")
    texts = []
    for item in ITEMS if what == "all" else (what,):
        log.info("paper %s -> %s", item, out_dir)
        texts.append(f"## {item}\n\n{_build(item, Path(out_dir), repeats, budget or Budget(), runs_dir)}")
    return "\n\n".join(texts)


def _build(item: str, out: Path, repeats: int, budget: Budget, runs_dir: str | Path | None) -> str:
    if item == "table3":
        from mobilenetv2.paper.table3 import table3

        return table3(out_dir=out)
    if item == "table4":
        from mobilenetv2.paper.table4 import table4

        return table4(out_dir=out, repeats=repeats)
    if item == "table4-litert":
        from mobilenetv2.paper.table4_litert import table4_litert

        return table4_litert(out_dir=out, repeats=repeats)
    if item == "figure1":
        from mobilenetv2.paper.figure1 import figure1

        return figure1(out_dir=out)
    if item == "figure5":
        from mobilenetv2.paper.figure5 import figure5

        return figure5(out_dir=out, repeats=max(1, repeats // 4))
    from mobilenetv2.paper.figure6 import figure6

    return figure6(out_dir=out, budget=budget, runs_dir=runs_dir)


__all__ = ["ITEMS", "OPTIONAL_ITEMS", "Budget", "reproduce"]
