"""Metrics from the established libraries, with the signature of how each was computed.

Classification: torchmetrics accuracy (micro) and macro-F1, accumulated on the device.
Seq2seq: sacreBLEU corpus BLEU and chrF (translation), rouge-score ROUGE-1/2/L/Lsum (summarization), computed
on detokenized model output against the raw reference texts (one per example, or several: sacreBLEU's
multi-reference scoring, rouge-score's best reference per example); keys are the metric names used everywhere
(`task.monitor`, metrics.json): bleu, chrf, rouge1, rouge2, rougeL, rougeLsum.
"""

from __future__ import annotations

import importlib.metadata
import re
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

import numpy as np
from sacrebleu.metrics import BLEU, CHRF

if TYPE_CHECKING:
    from torchmetrics import MetricCollection


# torchmetrics (and the torch and scipy it imports: seconds) is imported where the metrics are built, not by the
# registry's readers: config validation, the sweep and the leaderboard.
def classification_metrics(num_labels: int) -> MetricCollection:
    from torchmetrics import MetricCollection
    from torchmetrics.classification import MulticlassAccuracy, MulticlassF1Score

    return MetricCollection(
        {
            "accuracy": MulticlassAccuracy(num_classes=num_labels, average="micro"),
            "f1": MulticlassF1Score(num_classes=num_labels, average="macro"),
        }
    )


def classification_signatures(num_labels: int) -> dict[str, str]:
    version = importlib.metadata.version("torchmetrics")
    return {
        "accuracy": f"torchmetrics {version} MulticlassAccuracy(num_classes={num_labels}, average=micro)",
        "f1": f"torchmetrics {version} MulticlassF1Score(num_classes={num_labels}, average=macro)",
    }


# ---- seq2seq: scored on detokenized text against the raw references ------------------------------------------

ROUGE_TYPES = ("rouge1", "rouge2", "rougeL", "rougeLsum")
# A sentence ends at a whitespace-separated ".", "!" or "?" (the PTB-tokenized style of the CNN/DailyMail copy).
_SENTENCE_END = re.compile(r"(?<=\s[.!?])\s+")


# One reference per example (list[str]), or each example's references (list[list[str]], as many as it has).
References = Sequence[str] | Sequence[Sequence[str]]


def reference_lists(refs: References) -> list[list[str]] | None:
    """Each example's references when `refs` gives a list per example; None when it gives one string each."""
    if all(isinstance(ref, str) for ref in refs):
        return None
    if any(isinstance(ref, str) or not isinstance(ref, Sequence) for ref in refs):
        raise ValueError("references mix strings and lists: pass one string per example or a list per example")
    for i, ref in enumerate(refs):
        if not ref:
            raise ValueError(f"example {i} has no references: give every example at least one")
        if not all(isinstance(text, str) for text in ref):
            raise ValueError(f"example {i} has a reference that is not a string: pass lists of strings")
    return [list(ref) for ref in refs]


def reference_streams(refs: References) -> list[list[str | None]]:
    """sacreBLEU's reference streams: stream k holds every example's k-th reference, None where an example has fewer
    (sacreBLEU drops a None reference, which is how it scores a variable number per segment, `nrefs:var`)."""
    lists = reference_lists(refs)
    if lists is None:
        return [list(refs)]
    return [[ref[k] if k < len(ref) else None for ref in lists] for k in range(max(map(len, lists)))]


def corpus_bleu(hyps: Sequence[str], refs: References) -> tuple[dict[str, float], dict[str, str]]:
    """sacreBLEU corpus BLEU and chrF (default settings: 13a tokenization, cased) against one reference per segment,
    or several (sacreBLEU's multi-reference scoring: its signature says nrefs:N, or nrefs:var when the count varies).

    Returns ({"bleu", "chrf"} on the 0-100 scale, {"bleu", "chrf"} sacreBLEU signatures).
    """
    check_pairs(hyps, refs)
    bleu, chrf = BLEU(), CHRF()
    hyps, streams = list(hyps), reference_streams(refs)
    scores = {"bleu": bleu.corpus_score(hyps, streams).score, "chrf": chrf.corpus_score(hyps, streams).score}
    return scores, {"bleu": str(bleu.get_signature()), "chrf": str(chrf.get_signature())}


def summary_sentences(text: str) -> str:
    """`text` with one sentence per line, as rouge-score's rougeLsum expects.

    Text that already has newlines (the CNN/DailyMail summaries, or a model that learned to emit them) is kept
    as it is; otherwise it is split after each whitespace-separated ".", "!" or "?". nltk's punkt splitter,
    which rouge-score uses with split_summaries=True, needs a model download and is not used.
    """
    text = text.strip()
    if "\n" in text:
        return text
    return _SENTENCE_END.sub("\n", text)


def rouge_scores(hyps: Sequence[str], refs: References) -> tuple[dict[str, float], dict[str, str]]:
    """rouge-score F1 of rouge1, rouge2, rougeL and rougeLsum, averaged over examples, on the 0-100 scale.

    Porter stemming on; rougeLsum over sentences split by `summary_sentences` (hypotheses and references alike).
    With several references per example, each example scores its best one per ROUGE type (rouge-score's
    score_multi), and the signature says so.
    Returns ({"rouge1", "rouge2", "rougeL", "rougeLsum"}, the same keys -> a signature of the settings).
    """
    per_example = rouge_example_scores(hyps, refs)
    version = importlib.metadata.version("rouge-score")
    settings = "F1 mean x100|stemmer:porter|tokenizer:default|lsum-split:newline-else-.!?"
    lists = reference_lists(refs)
    counts = sorted({len(ref) for ref in lists}) if lists is not None else [1]
    if counts[-1] > 1:
        n = str(counts[0]) if len(counts) == 1 else f"{counts[0]}-{counts[-1]}"
        settings += f"|best of {n} references (rouge-score score_multi)"
    signature = f"rouge-score {version}|{{type}}|{settings}"
    return ({key: 100.0 * float(np.mean(values)) for key, values in per_example.items()},
            {key: signature.format(type=key) for key in ROUGE_TYPES})


def rouge_example_scores(hyps: Sequence[str], refs: References) -> dict[str, np.ndarray]:
    """Per-example rouge-score F1 (0-1) of each ROUGE type; the corpus score is their mean. With several references
    per example, an example's F1 is that of its best reference (rouge-score's score_multi, per ROUGE type)."""
    check_pairs(hyps, refs)
    from rouge_score import rouge_scorer  # imports nltk: a second, so only where ROUGE is scored

    scorer = rouge_scorer.RougeScorer(list(ROUGE_TYPES), use_stemmer=True)
    lists = reference_lists(refs)
    # rouge-score's argument order is (target, prediction).
    if lists is None:
        scores = [scorer.score(summary_sentences(ref), summary_sentences(hyp)) for hyp, ref in zip(hyps, refs)]
    else:
        scores = [scorer.score_multi([summary_sentences(r) for r in ref], summary_sentences(hyp))
                  for hyp, ref in zip(hyps, lists)]
    return {key: np.array([s[key].fmeasure for s in scores]) for key in ROUGE_TYPES}


Scorer = Callable[[Sequence[str], References], tuple[dict[str, float], dict[str, str]]]
# task.scorer -> the scorer of detokenized seq2seq output against raw references: (scores, signatures).
SCORERS: dict[str, Scorer] = {"bleu": corpus_bleu, "rouge": rouge_scores}


def check_pairs(hyps: Sequence[str], refs: Sequence) -> None:
    if len(hyps) != len(refs):
        raise ValueError(f"{len(hyps)} hypotheses for {len(refs)} references: pass one hypothesis per reference")
    if not hyps:
        raise ValueError("no hypotheses to score: decode at least one example")
