"""Metrics from the established libraries, with the signature of how each was computed.

Classification: torchmetrics accuracy (micro) and macro-F1, accumulated on the device.
Seq2seq: sacreBLEU corpus BLEU and chrF (translation), rouge-score ROUGE-1/2/L/Lsum (summarization), computed
on detokenized model output against the raw reference texts; keys are the metric names used everywhere
(`task.monitor`, metrics.json): bleu, chrf, rouge1, rouge2, rougeL, rougeLsum.
"""

from __future__ import annotations

import importlib.metadata
import re
from collections.abc import Callable, Sequence

import numpy as np
import torchmetrics
from rouge_score import rouge_scorer
from sacrebleu.metrics import BLEU, CHRF
from torchmetrics import MetricCollection
from torchmetrics.classification import MulticlassAccuracy, MulticlassF1Score


def classification_metrics(num_labels: int) -> MetricCollection:
    return MetricCollection(
        {
            "accuracy": MulticlassAccuracy(num_classes=num_labels, average="micro"),
            "f1": MulticlassF1Score(num_classes=num_labels, average="macro"),
        }
    )


def classification_signatures(num_labels: int) -> dict[str, str]:
    version = torchmetrics.__version__
    return {
        "accuracy": f"torchmetrics {version} MulticlassAccuracy(num_classes={num_labels}, average=micro)",
        "f1": f"torchmetrics {version} MulticlassF1Score(num_classes={num_labels}, average=macro)",
    }


# ---- seq2seq: scored on detokenized text against the raw references ------------------------------------------

ROUGE_TYPES = ("rouge1", "rouge2", "rougeL", "rougeLsum")
# A sentence ends at a whitespace-separated ".", "!" or "?" (the PTB-tokenized style of the CNN/DailyMail copy).
_SENTENCE_END = re.compile(r"(?<=\s[.!?])\s+")


def corpus_bleu(hyps: Sequence[str], refs: Sequence[str]) -> tuple[dict[str, float], dict[str, str]]:
    """sacreBLEU corpus BLEU and chrF (default settings: 13a tokenization, cased, one reference per segment).

    Returns ({"bleu", "chrf"} on the 0-100 scale, {"bleu", "chrf"} sacreBLEU signatures).
    """
    check_pairs(hyps, refs)
    bleu, chrf = BLEU(), CHRF()
    hyps, refs = list(hyps), [list(refs)]
    scores = {"bleu": bleu.corpus_score(hyps, refs).score, "chrf": chrf.corpus_score(hyps, refs).score}
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


def rouge_scores(hyps: Sequence[str], refs: Sequence[str]) -> tuple[dict[str, float], dict[str, str]]:
    """rouge-score F1 of rouge1, rouge2, rougeL and rougeLsum, averaged over examples, on the 0-100 scale.

    Porter stemming on; rougeLsum over sentences split by `summary_sentences` (hypotheses and references alike).
    Returns ({"rouge1", "rouge2", "rougeL", "rougeLsum"}, the same keys -> a signature of the settings).
    """
    per_example = rouge_example_scores(hyps, refs)
    version = importlib.metadata.version("rouge-score")
    settings = "F1 mean x100|stemmer:porter|tokenizer:default|lsum-split:newline-else-.!?"
    signature = f"rouge-score {version}|{{type}}|{settings}"
    return ({key: 100.0 * float(np.mean(values)) for key, values in per_example.items()},
            {key: signature.format(type=key) for key in ROUGE_TYPES})


def rouge_example_scores(hyps: Sequence[str], refs: Sequence[str]) -> dict[str, np.ndarray]:
    """Per-example rouge-score F1 (0-1) of each ROUGE type; the corpus score is their mean."""
    check_pairs(hyps, refs)
    scorer = rouge_scorer.RougeScorer(list(ROUGE_TYPES), use_stemmer=True)
    # rouge-score's argument order is (target, prediction).
    scores = [scorer.score(summary_sentences(ref), summary_sentences(hyp)) for hyp, ref in zip(hyps, refs)]
    return {key: np.array([s[key].fmeasure for s in scores]) for key in ROUGE_TYPES}


Scorer = Callable[[Sequence[str], Sequence[str]], tuple[dict[str, float], dict[str, str]]]
# task.scorer -> the scorer of detokenized seq2seq output against raw references: (scores, signatures).
SCORERS: dict[str, Scorer] = {"bleu": corpus_bleu, "rouge": rouge_scores}


def check_pairs(hyps: Sequence[str], refs: Sequence[str]) -> None:
    if len(hyps) != len(refs):
        raise ValueError(f"{len(hyps)} hypotheses for {len(refs)} references: pass one hypothesis per reference")
    if not hyps:
        raise ValueError("no hypotheses to score: decode at least one example")
