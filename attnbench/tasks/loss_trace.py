"""The mean training loss over the first and the last few steps: the record's evidence that a run learned."""

from __future__ import annotations

import torch


class LossTrace:
    """Keeps detached loss tensors (no host sync in the step); reads them once when the run is summarised."""

    def __init__(self, window: int = 10) -> None:
        self.window = window
        self.first: list[torch.Tensor] = []
        self.last: list[torch.Tensor] = []

    def add(self, loss: torch.Tensor) -> None:
        loss = loss.detach()
        if len(self.first) < self.window:
            self.first.append(loss)
        self.last = (self.last + [loss])[-self.window :]

    def summary(self) -> dict[str, float]:
        if not self.first:
            return {}
        return {"loss_start": torch.stack(self.first).mean().item(), "loss_end": torch.stack(self.last).mean().item()}

    def state_dict(self) -> dict:
        return {"first": [float(x) for x in self.first], "last": [float(x) for x in self.last]}

    def load_state_dict(self, state: dict) -> None:
        self.first = [torch.tensor(x) for x in state["first"]]
        self.last = [torch.tensor(x) for x in state["last"]]
