"""When a trained model's test run is degenerate: the rules, in one place, as pure functions.

A run is degenerate when its test predictions collapse (the COLLAPSE rule of its task family) or when its primary
test metric does not beat a trivial baseline computed on the same test data (a baseline whose
`floor` is set in attnbench.metrics.baselines.BASELINES). The leaderboard marks such runs and draws no significance claim from them.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal

from attnbench.metrics.baselines import BASELINES


def majority_share(predictions: Sequence) -> float:
    """Share of the predictions taken by the most frequent one."""
    return Counter(map(_key, predictions)).most_common(1)[0][1] / len(predictions)


def distinct_share(predictions: Sequence) -> float:
    """Distinct predictions / predictions, after collapsing whitespace (so "a  b" and "a b" are one output)."""
    return len(set(map(_key, predictions))) / len(predictions)


def _key(prediction) -> object:
    return " ".join(prediction.split()) if isinstance(prediction, str) else prediction


@dataclass(frozen=True)
class CollapseRule:
    what: str  # what `measure` measures, for the rule's statement
    measure: Callable[[Sequence], float]
    threshold: float
    flag_when: Literal["below", "at_or_above"]
    reason: str  # formatted with share= and threshold=

    @property
    def rule(self) -> str:
        return f"{self.what} {'<' if self.flag_when == 'below' else '>='} {self.threshold:.0%}"

    def check(self, predictions: Sequence) -> str | None:
        if not predictions:
            return None
        share = self.measure(predictions)
        flagged = share < self.threshold if self.flag_when == "below" else share >= self.threshold
        return self.reason.format(share=share, threshold=self.threshold) if flagged else None


# Task family (task.family) -> the rule. A classifier that answers one label for >= 95% of the test set has
# learnt the prior, not the task; a seq2seq model whose outputs are mostly repeats (a generic summary for every
# article) ignores its source. The benchmark's test sets are far from both: SST-2's is balanced (912/909), the
# Multi30k test references are all distinct and the CNN/DailyMail ones 99.8%.
COLLAPSE: dict[str, CollapseRule] = {
    "classification": CollapseRule("share of the most frequent predicted label", majority_share, 0.95, "at_or_above",
                                   "predictions collapse: one label takes {share:.1%} of test predictions "
                                   "(rule: >= {threshold:.0%})"),
    "seq2seq": CollapseRule("share of distinct predictions", distinct_share, 0.5, "below",
                            "predictions collapse: only {share:.1%} of test predictions are distinct "
                            "(rule: < {threshold:.0%})"),
}


def collapse_reason(family: str, predictions: Sequence) -> str | None:
    """Why these test predictions are collapsed, or None when they are not (or the family has no rule)."""
    rule = COLLAPSE.get(family)
    return rule.check(predictions) if rule else None


def baseline_label(name: str) -> str:
    """The row label of a trivial baseline: its description in the baselines table, else its name."""
    return BASELINES[name].description if name in BASELINES else f"{name} (trivial baseline)"


def is_floor(name: str) -> bool:
    """Whether a trained model must beat the baseline `name` (Baseline.floor; an unknown name is a floor)."""
    return BASELINES[name].floor if name in BASELINES else True


def below_baseline_reason(metric: str, value: float, baseline_name: str, baseline_value: float,
                          mode: Literal["max", "min"] = "max", shown: Callable[[float], str] = "{:.4g}".format
                          ) -> str | None:
    """Why `value` fails the floor of `baseline_name` (equal is not better), or None when it beats it or the
    baseline is no floor. `shown` formats values for the reason (e.g. accuracy as %)."""
    beats = value > baseline_value if mode == "max" else value < baseline_value
    if beats or not is_floor(baseline_name):
        return None
    return f"test {metric} {shown(value)} does not beat the {baseline_label(baseline_name)} {shown(baseline_value)}"
