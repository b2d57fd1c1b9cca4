"""Has a run converged? Read from its learning history (metrics.json `history`), so any record can be judged:

- "early stopped": early stopping ended it before trainer.max_epochs (patience > 0, no max_steps cap);
- "plateaued": over its last WINDOW validations the best monitored validation value (the one that picks the
  checkpoint) gained at most the metric's tolerance: half a point of a percentage (accuracy, F1), 0.5 BLEU / chrF
  / ROUGE points, 0.01 of a loss;
- "still rising": it gained more than that: more training would likely have changed the result;
- "unknown": no history, or fewer than WINDOW + 1 validations.

The leaderboard counts converged seeds per row ("3/3") and lists the others with their gain.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from attnbench.metrics.registry import percent

WINDOW = 2  # validations
POINTS = 0.5  # display points (percentages, BLEU, chrF, ROUGE)
LOSS = 0.01
CONVERGED = ("early stopped", "plateaued")
RULE = (f"converged: early stopping fired, or the best validation value gained <= {POINTS} points (losses "
        f"{LOSS}) over the last {WINDOW} validations")


@dataclass(frozen=True)
class Convergence:
    state: str
    gain: float | None = None  # display units (points), the monitored metric's direction: > 0 is better
    metric: str | None = None

    @property
    def converged(self) -> bool:
        return self.state in CONVERGED


def convergence(record: dict[str, Any], config: dict[str, Any]) -> Convergence:
    task, trainer = config.get("task", {}), config.get("trainer", {})
    history = record.get("history") or []
    monitor = task.get("monitor")
    key = next((k for k in (f"val_slice/{monitor}", f"val/{monitor}")
                if history and k in (history[0].get("metrics") or {})), None)
    epochs, max_epochs = (record.get("cost") or {}).get("epochs"), trainer.get("max_epochs")
    if (isinstance(epochs, int) and isinstance(max_epochs, int) and 0 < epochs < max_epochs
            and (trainer.get("early_stopping_patience") or 0) > 0 and (trainer.get("max_steps") or -1) < 0):
        return Convergence("early stopped", metric=key)
    values = [e["metrics"].get(key) for e in history] if key else []
    if len(values) <= WINDOW or any(not isinstance(v, (int, float)) for v in values):
        return Convergence("unknown", metric=key)
    sign = -1.0 if task.get("monitor_mode", "max") == "min" else 1.0
    best = [max(sign * v for v in values[: i + 1]) for i in range(len(values))]
    name = key.split("/", 1)[1]
    scale = 100.0 if percent(name) else 1.0
    gain = round((best[-1] - best[-1 - WINDOW]) * scale, 4)  # rounded before the comparison: 1.50 - 1.49 is 0.01
    tolerance = LOSS if name in ("loss", "ppl") else POINTS
    return Convergence("plateaued" if gain <= tolerance else "still rising", gain=gain, metric=key)
