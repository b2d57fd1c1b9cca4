"""Trivial baselines: systems computed from the data alone, one table entry per kind of task.

A model that does not beat its task's trivial baseline has learned nothing worth comparing (the leaderboard flags
it). Each baseline predicts from the canonical splits (classification: `text`, `label`; seq2seq: `src`, `tgt`)
and is scored by the same code as the models (attnbench/suite/baseline.py):

    majority     classification: the most frequent training label, for every test example
    copy_source  translation (scorer bleu): the source sentence itself, a floor for BLEU/chrF (names, numbers)
    lead3        summarization (scorer rouge): the article's first three sentences (See et al., 2017); a reference,
                 not a floor (see Baseline.floor)
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

Rows = Mapping[str, Sequence[Any]]  # canonical columns of a split: {"text": [...], "label": [...]} or src/tgt


@dataclass(frozen=True)
class Baseline:
    name: str
    description: str  # the row label in leaderboards
    family: str  # task.family it applies to
    scorer: str | None  # task.scorer it applies to (None: any)
    predict: Callable[[Rows, Rows], list[Any]]  # (train, test) -> one prediction per test example
    # A floor: a trained model that does not beat it is degenerate (metrics/degeneracy.py). Lead-3 is no floor: it
    # is a strong extractive reference on news that healthy abstractive models trail (See et al. 2017:
    # pointer-generator + coverage ROUGE-1 39.53 vs lead-3 40.34), so it is shown beside them, not enforced.
    floor: bool = True


def majority_class(train: Rows, test: Rows) -> list[int]:
    counts = Counter(int(label) for label in train["label"])
    top = max(counts.values())
    label = min(label for label, count in counts.items() if count == top)  # ties: the lowest label index
    return [label] * len(test["label"])


def copy_source(train: Rows, test: Rows) -> list[str]:
    return list(test["src"])


# PTB-tokenized text (the local CNN/DailyMail copy) ends a sentence with a whitespace-separated . ! or ?;
# raw text (hub articles) with the punctuation attached to the word.
_PTB_END = re.compile(r"(?<=\s[.!?])\s+")
_RAW_END = re.compile(r"(?<=[.!?])\s+")


def first_sentences(text: str, n: int) -> list[str]:
    text = text.strip()
    sentences = _PTB_END.split(text)
    if len(sentences) < 2:
        sentences = _RAW_END.split(text)
    return [s for s in sentences if s.strip()][:n]


def lead3(train: Rows, test: Rows) -> list[str]:
    # One sentence per line, as the references are and as rougeLsum reads them.
    return ["\n".join(first_sentences(text, 3)) for text in test["src"]]


BASELINES: dict[str, Baseline] = {
    "majority": Baseline("majority", "majority class (trivial baseline)", "classification", None, majority_class),
    "copy_source": Baseline("copy_source", "copy the source (trivial baseline)", "seq2seq", "bleu", copy_source),
    "lead3": Baseline("lead3", "lead-3 (extractive reference)", "seq2seq", "rouge", lead3, floor=False),
}


def baselines_for(family: str, scorer: str) -> list[Baseline]:
    """The trivial baselines of a task: those of its family (and, for seq2seq, of its scorer)."""
    return [b for b in BASELINES.values() if b.family == family and (b.scorer is None or b.scorer == scorer)]
