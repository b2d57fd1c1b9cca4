"""Metrics: one entry per reported metric says everything the rest of attnbench asks about it, so adding a
metric is its scoring code plus one `METRICS` line.

A `Metric` holds:
  better       "max" or "min": the task.monitor_mode it needs (config validation refuses the other)
  source       who produces it: "classification" (torchmetrics, every classification run), "loss" (every run, from
               the loss), or a `task.scorer` name ("bleu", "rouge": seq2seq metrics of decoded text, which per
               epoch exist only for the greedy validation slice, logged as val_slice/<metric>)
  percent      recorded as a fraction (torchmetrics), shown as a percentage by the leaderboard
  statistics   (predictions, golds) -> (N, K) per-example statistics that add up over examples, or None when
               the metric cannot be resampled (the leaderboard's bootstrap needs them); seq2seq golds are one
               reference per example or a list of references each
  from_sums    (S, K) summed statistics of S resamples of n examples, n -> (S,) corpus scores on the record's scale

Read by config validation (direction, which scorer gives a monitor, decoded or not), the leaderboard (percent
display, resampling) and `example_statistics`/`score_from_sums` below.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from sacrebleu.metrics import BLEU

from attnbench.metrics.scoring import ROUGE_TYPES, SCORERS, check_pairs, reference_streams, rouge_example_scores

Statistics = Callable[[Sequence, Sequence], np.ndarray]
FromSums = Callable[[np.ndarray, int], np.ndarray]


@dataclass(frozen=True)
class Metric:
    better: str
    source: str
    percent: bool = False
    statistics: Statistics | None = None
    from_sums: FromSums | None = None

    @property
    def decoded(self) -> bool:
        """Computed on decoded text by a seq2seq scorer."""
        return self.source in SCORERS

    @property
    def resamplable(self) -> bool:
        return self.statistics is not None


# ---- per-example statistics, for resampling test sets (paired bootstrap) -------------------------------------
# A metric is resampled through statistics that add up over examples: the sum over any resample of examples
# gives that resample's corpus score. BLEU's are sacreBLEU's own n-gram counts and lengths (what sacreBLEU's
# paired bootstrap resamples); accuracy and ROUGE are means of per-example values.


def _correct(predictions: Sequence, golds: Sequence) -> np.ndarray:
    return np.array([[float(p == g)] for p, g in zip(predictions, golds)])


def _bleu_statistics(predictions: Sequence, golds: Sequence) -> np.ndarray:
    # golds: one reference per example, or a list each (sacreBLEU's closest reference length and clipped counts).
    return np.array(BLEU()._extract_corpus_statistics(list(predictions), reference_streams(golds)), dtype=np.float64)


def _bleu_from_sums(sums: np.ndarray, n: int) -> np.ndarray:
    bleu = BLEU()
    return np.array([bleu._compute_score_from_stats(list(row)).score for row in sums])


def _rouge(kind: str) -> Statistics:
    return lambda predictions, golds: rouge_example_scores(predictions, golds)[kind][:, None]


def _mean(scale: float) -> FromSums:
    return lambda sums, n: scale * sums[:, 0] / n


METRICS: dict[str, Metric] = {
    "accuracy": Metric("max", "classification", percent=True, statistics=_correct, from_sums=_mean(1.0)),
    "f1": Metric("max", "classification", percent=True),
    "loss": Metric("min", "loss"),
    "ppl": Metric("min", "loss"),
    "bleu": Metric("max", "bleu", statistics=_bleu_statistics, from_sums=_bleu_from_sums),
    "chrf": Metric("max", "bleu"),
    **{kind: Metric("max", "rouge", statistics=_rouge(kind), from_sums=_mean(100.0)) for kind in ROUGE_TYPES},
}



def resamplable(metric: str) -> bool:
    """Whether the leaderboard can resample `metric` over test examples (it has per-example statistics)."""
    return metric in METRICS and METRICS[metric].resamplable


def percent(metric: str) -> bool:
    """Whether `metric` is recorded as a fraction and shown as a percentage."""
    return metric in METRICS and METRICS[metric].percent


def scored_by(scorer: str) -> tuple[str, ...]:
    """The metrics a seq2seq `task.scorer` produces."""
    return tuple(name for name, metric in METRICS.items() if metric.source == scorer)


def example_statistics(metric: str, predictions: Sequence, golds: Sequence) -> np.ndarray:
    """(N, K) statistics of N examples whose column sums give the corpus `metric` through `score_from_sums`."""
    check_pairs(predictions, golds)
    spec = METRICS.get(metric)
    if spec is None or spec.statistics is None:
        names = ", ".join(name for name in METRICS if resamplable(name))
        raise ValueError(f"no per-example statistics for metric {metric!r}: one of {names}")
    return spec.statistics(predictions, golds)


def score_from_sums(metric: str, sums: np.ndarray, n: int) -> np.ndarray:
    """(S, K) summed statistics of S resamples of n examples -> (S,) corpus scores, on the scale of the run
    record (accuracy 0-1 as torchmetrics reports it; BLEU and ROUGE 0-100)."""
    return METRICS[metric].from_sums(sums, n)
