"""Running sums of the epoch in progress, kept on the device so a step never waits for the host.

Slots: loss x images, images, then the task's own per-batch sums (e.g. classification's top-1 hits) in name
order. `finite` remembers whether every loss so far was a finite number; the loop reads it every few steps.
"""

from typing import Any

import torch

from mobilenetv2.train.runtime import Runtime, all_sum


class EpochSums:
    def __init__(self, device: torch.device) -> None:
        self.names: list[str] = []
        self.sums = torch.zeros(2, dtype=torch.float64, device=device)
        self.one = torch.ones((), dtype=torch.float64, device=device)
        self.finite = torch.ones((), dtype=torch.bool, device=device)

    def add(self, loss: torch.Tensor, stats: dict[str, torch.Tensor], n: int) -> None:
        if not self.names and stats:
            self.names = sorted(stats)
            self.sums = torch.cat([self.sums, self.sums.new_zeros(len(stats))])
        self.finite &= torch.isfinite(loss)
        values = [loss.double() * n, self.one * n, *(stats[k].double() for k in self.names)]
        self.sums += torch.stack(values)

    def all_finite(self) -> bool:
        return bool(self.finite)

    def means(self, rt: Runtime | None = None) -> dict[str, float]:
        """{"loss": mean loss, name: sum / images, ...} over the epoch so far (over all processes with `rt`)."""
        sums = (all_sum(self.sums, rt) if rt is not None else self.sums).cpu()
        images = max(sums[1].item(), 1.0)
        return {"loss": sums[0].item() / images} | {n: sums[2 + i].item() / images for i, n in enumerate(self.names)}

    def reset(self) -> None:
        self.sums.zero_()

    def state_dict(self) -> dict[str, Any]:
        return {"sums": self.sums.cpu(), "names": list(self.names)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.names = list(state["names"])
        self.sums = state["sums"].to(self.sums.device)
