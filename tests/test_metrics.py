"""Seq2seq metric wrappers equal sacreBLEU / rouge-score called directly, on real validation references."""

from __future__ import annotations

import gzip
import importlib.metadata
import json
import random
from pathlib import Path

import pytest
import sacrebleu
from rouge_score import rouge_scorer

from attnbench.metrics.scoring import ROUGE_TYPES, corpus_bleu, rouge_scores, summary_sentences


def field(path: Path, name: str, n: int) -> list[str]:
    with gzip.open(path, "rt", encoding="utf-8") as f:
        return [json.loads(next(f))[name] for _ in range(n)]


def perturb(text: str, rng: random.Random) -> str:
    """A plausible imperfect hypothesis: a dropped word, a swapped pair, or the reference itself."""
    words = text.split(" ")
    choice = rng.randrange(3)
    if choice == 0 and len(words) > 2:
        del words[rng.randrange(len(words))]
    elif choice == 1 and len(words) > 2:
        i = rng.randrange(len(words) - 1)
        words[i], words[i + 1] = words[i + 1], words[i]
    return " ".join(words)


@pytest.fixture(scope="module")
def german(data_dir) -> list[str]:
    return field(data_dir / "translation/multi30k_en_de/validation.jsonl.gz", "tgt", 500)


@pytest.fixture(scope="module")
def summaries(data_dir) -> list[str]:
    return field(data_dir / "summarization/cnn_dailymail/validation.jsonl.gz", "summary", 200)


def test_corpus_bleu_equals_sacrebleu(german):
    rng = random.Random(0)
    hyps = [perturb(ref, rng) for ref in german]
    scores, signatures = corpus_bleu(hyps, german)
    assert set(scores) == set(signatures) == {"bleu", "chrf"}
    assert scores["bleu"] == pytest.approx(sacrebleu.corpus_bleu(hyps, [german]).score, abs=1e-9)
    assert scores["chrf"] == pytest.approx(sacrebleu.corpus_chrf(hyps, [german]).score, abs=1e-9)
    assert 30 < scores["bleu"] < 95 and 50 < scores["chrf"] < 99
    version = f"version:{sacrebleu.__version__}"
    assert signatures["bleu"] == f"nrefs:1|case:mixed|eff:no|tok:13a|smooth:exp|{version}"
    assert signatures["chrf"] == f"nrefs:1|case:mixed|eff:yes|nc:6|nw:0|space:no|{version}"
    assert corpus_bleu(german, german)[0] == {"bleu": pytest.approx(100.0), "chrf": pytest.approx(100.0)}


def test_bleu_is_case_sensitive(german):
    # Scored on raw, cased text: a lowercasing system loses points (the references are German, full of nouns).
    assert corpus_bleu([g.lower() for g in german], german)[0]["bleu"] < 60


def test_rouge_scores_equal_rouge_score(summaries):
    rng = random.Random(1)
    hyps = ["\n".join(perturb(s, rng) for s in ref.split("\n")[:-1] or [ref]) for ref in summaries]
    scores, signatures = rouge_scores(hyps, summaries)
    scorer = rouge_scorer.RougeScorer(list(ROUGE_TYPES), use_stemmer=True)
    direct = [scorer.score(ref, hyp) for ref, hyp in zip(summaries, hyps)]
    for key in ROUGE_TYPES:
        expected = 100 * sum(d[key].fmeasure for d in direct) / len(direct)
        assert scores[key] == pytest.approx(expected, abs=1e-9), key
    assert 20 < scores["rouge2"] < scores["rouge1"] < 100
    assert rouge_scores(summaries, summaries)[0] == {key: pytest.approx(100.0) for key in ROUGE_TYPES}

    version = importlib.metadata.version("rouge-score")
    assert set(signatures) == set(ROUGE_TYPES)
    for key, signature in signatures.items():
        assert signature.startswith(f"rouge-score {version}|{key}|")
        assert "F1 mean x100" in signature and "stemmer:porter" in signature and "lsum-split" in signature


def test_rouge_lsum_splits_one_line_texts_into_sentences(summaries):
    """Text without newlines is scored on sentences split at " . ", so rougeLsum stays summary-level."""
    flat = [ref.replace("\n", " ") for ref in summaries]
    assert summary_sentences(flat[0]) == summaries[0]
    reordered = [" ".join(reversed(ref.split("\n"))) for ref in summaries]  # the same sentences, other order
    scores = rouge_scores(reordered, flat)[0]
    # Summary-level LCS ignores sentence order (short of the few highlights that end without " . ").
    assert scores["rougeLsum"] > 99
    assert scores["rougeL"] < 90  # one LCS over the whole text does not
    scorer = rouge_scorer.RougeScorer(["rougeLsum"], use_stemmer=True)
    unsplit = sum(scorer.score(ref, hyp)["rougeLsum"].fmeasure for ref, hyp in zip(flat, reordered)) / len(flat)
    assert 100 * unsplit == pytest.approx(scores["rougeL"])  # without the split, rougeLsum is just rougeL


def test_summary_sentences():
    assert summary_sentences("a b .\nc d .") == "a b .\nc d ."
    assert summary_sentences(" a b . c ! d ? e ") == "a b .\nc !\nd ?\ne"
    assert summary_sentences("u.s. sales rose 1.5 % . fine") == "u.s. sales rose 1.5 % .\nfine"


def test_mismatched_or_empty_inputs_are_refused():
    with pytest.raises(ValueError, match="2 hypotheses for 1 references"):
        corpus_bleu(["a", "b"], ["a"])
    with pytest.raises(ValueError, match="no hypotheses"):
        rouge_scores([], [])
