"""Degenerate runs and trivial baselines: the rules on prediction lists, and the leaderboard on constructed records
(a collapsed summarizer that beats the baseline variant, a classifier below the majority class, healthy runs)."""

from __future__ import annotations

import csv

import pytest

from attnbench.metrics.degeneracy import (
    COLLAPSE, baseline_label, is_floor, below_baseline_reason, collapse_reason, distinct_share, majority_share,
)
from attnbench.metrics.scoring import rouge_scores
from tests.test_leaderboard import N, board, correct_array, md_row, write_baseline, write_record


def test_classification_collapse_rule():
    assert majority_share([0] * 96 + [1] * 4) == pytest.approx(0.96)
    assert "one label takes 96.0% of test predictions" in collapse_reason("classification", [0] * 96 + [1] * 4)
    assert collapse_reason("classification", [1] * 95 + [0] * 5) is not None  # the threshold itself is flagged
    assert collapse_reason("classification", [0] * 90 + [1] * 10) is None
    assert collapse_reason("classification", []) is None


def test_seq2seq_collapse_rule():
    same = ["the same summary ."] * 9 + ["the  same summary . "]  # whitespace does not make it another output
    assert distinct_share(same) == pytest.approx(0.1)
    assert "only 10.0% of test predictions are distinct" in collapse_reason("seq2seq", same)
    assert collapse_reason("seq2seq", [f"summary {i % 6}" for i in range(10)]) is None  # 60% distinct
    assert collapse_reason("seq2seq", [f"summary {i % 4}" for i in range(10)]) is not None  # 40%
    assert collapse_reason("a family without a rule", ["x"] * 10) is None
    assert COLLAPSE["seq2seq"].rule == "share of distinct predictions < 50%"


def test_below_baseline_rule():
    reason = below_baseline_reason("accuracy", 0.45, "majority", 0.5)
    assert reason == "test accuracy 0.45 does not beat the majority class (trivial baseline) 0.5"
    assert below_baseline_reason("accuracy", 0.5, "majority", 0.5) is not None  # equal is not better
    assert below_baseline_reason("accuracy", 0.51, "majority", 0.5) is None
    assert below_baseline_reason("loss", 0.4, "majority", 0.5, mode="min") is None
    assert below_baseline_reason("loss", 0.6, "majority", 0.5, mode="min") is not None
    assert below_baseline_reason("rougeLsum", 20.0, "lead3", 36.0) is None  # a reference, not a floor
    assert not is_floor("lead3") and is_floor("majority") and is_floor("copy_source")
    assert baseline_label("copy_source") == "copy the source (trivial baseline)"  # from the baselines table
    assert "new_rule (trivial baseline)" in below_baseline_reason("bleu", 1.0, "new_rule", 2.0)


def majority_rows(n: int = N) -> list[dict]:
    """The majority-class baseline on write_record's test set (gold i % 2): always 0, accuracy 0.5."""
    return [{"id": i, "prediction": 0, "gold": i % 2} for i in range(n)]


def test_a_run_below_the_majority_class_is_flagged_and_healthy_runs_are_not(tmp_path):
    runs = tmp_path / "runs"
    for seed in (1, 2, 3):
        write_record(runs, "additive", "rnn", seed, correct_array(0.7, seed))
        write_record(runs, "general", "rnn", seed, correct_array(0.9, 10 + seed))
        write_record(runs, "dot", "rnn", seed, correct_array(0.45, 20 + seed))  # worse than always answering 0
    # Another fingerprint (e.g. written by another version), but the same (id, gold) pairs: the same test data.
    write_baseline(runs, "majority", majority_rows(), {"accuracy": 0.5, "f1": 1 / 3}, fingerprint="fp-other")
    out = tmp_path / "board"
    result = board(runs, out)
    rows = {r["label"]: r for r in result["tasks"]["sentiment"]}
    dot, general, additive = rows["dot"], rows["general"], rows["additive"]
    assert dot["flagged"] and len(dot["flags"]) == 3
    assert "does not beat the majority class (trivial baseline) 50.00%" in dot["flags"][0]["reason"]
    assert not general["flagged"] and not additive["flagged"]
    assert "test" not in dot and dot["test_note"] == "flagged (degenerate): not tested"
    assert general["test"]["p_holm"] < 0.05 and general["test"]["family_size"] == 1  # dot left out of the family
    base = rows["majority class (trivial baseline)"]
    assert base["kind"] == "baseline" and base["trivial_baseline"] == "majority" and not base["flagged"]
    assert base["metrics"]["accuracy"]["mean"] == 0.5 and base["attention"] is None
    assert not any(note.startswith("no trivial baseline") for note in result["sections"][0]["notes"])

    md = (out / "leaderboard.md").read_text()
    flagged = md_row(md, "⚠ dot", "rnn")
    assert flagged["flag"].startswith("⚠ seed 1: test accuracy") and "and 1 more (leaderboard.json)" in flagged["flag"]
    assert "*" not in flagged["p (Holm)"]
    assert md_row(md, "majority class (trivial baseline)", "—")["accuracy"] == "50.00"
    assert md_row(md, "general", "rnn")["p (Holm)"].endswith("*") and md_row(md, "general", "rnn")["flag"] == ""
    assert "⚠ flagged (degenerate)" in md and "attnbench/metrics/degeneracy.py" in md
    table = list(csv.DictReader((out / "leaderboard.csv").open()))
    assert {r["flagged"] for r in table if r["attention"] == "dot"} == {"True"}
    assert {r["flagged"] for r in table if r["attention"] == "general"} == {"False"}
    assert [r["label"] for r in table if r["kind"] == "baseline"] == ["majority class (trivial baseline)"] * 2
    assert (out / "plots" / "sentiment-sst2-accuracy.png").read_bytes()[:4] == b"\x89PNG"


def test_a_baseline_of_other_test_data_is_a_section_of_its_own_and_the_footer_says_so(tmp_path, capsys):
    runs = tmp_path / "runs"
    write_record(runs, "additive", "rnn", 1, correct_array(0.7, 1))
    other = [{"id": i, "prediction": 0, "gold": 0} for i in range(N)]  # other golds, other fingerprint
    write_baseline(runs, "majority", other, {"accuracy": 1.0, "f1": 1.0}, fingerprint="fp-other",
                   task_block_only=True)
    result = board(runs, tmp_path / "board")
    trained, reference = result["sections"]
    assert (trained["name"], trained["data_fingerprint"]) == ("sentiment / sst2 (data fp1)", "fp1")
    assert (reference["name"], reference["data_fingerprint"]) == ("sentiment / sst2 (data fp-other)", "fp-other")
    rows = result["tasks"]["sentiment"]
    additive = next(r for r in rows if r["label"] == "additive")
    assert not additive["flagged"] and additive["data_fingerprint"] == "fp1"
    assert any(n.startswith("no trivial baseline record for this test data: additive (rnn)") for n in trained["notes"])
    base = next(r for r in rows if r["kind"] == "baseline")  # read though it saved the task block only
    assert base["data_fingerprint"] == "fp-other"
    md = (tmp_path / "board" / "leaderboard.md").read_text()
    assert "- no trivial baseline record for this test data" in md
    assert "## sentiment / sst2 (data fp1)" in md and "## sentiment / sst2 (data fp-other)" in md
    assert any("records of 2 different test sets" in w for w in result["warnings"])
    assert "attnbench: warning: sentiment/sst2: records of 2 different test sets" in capsys.readouterr().err


def test_a_flagged_baseline_variant_gives_its_comparisons_a_note_instead_of_a_p(tmp_path):
    runs = tmp_path / "runs"
    for seed in (1, 2, 3):
        write_record(runs, "additive", "rnn", seed, rows=majority_rows(), test={"accuracy": 0.5, "f1": 1 / 3})
        write_record(runs, "dot", "rnn", seed, correct_array(0.8, seed))
    out = tmp_path / "board"
    rows = {r["label"]: r for r in board(runs, out)["tasks"]["sentiment"]}
    assert rows["additive"]["flagged"]
    assert "one label takes 100.0% of test predictions" in rows["additive"]["flags"][0]["reason"]
    dot = rows["dot"]
    assert not dot["flagged"] and "test" not in dot and "test_examples_only" not in dot
    assert dot["test_note"] == "the additive row is flagged (degenerate): not tested"
    assert md_row((out / "leaderboard.md").read_text(), "dot", "rnn")["p (Holm)"] == dot["test_note"]


ARTICLES = 40


def summaries(seed: int, kind: str) -> tuple[list[dict], dict]:
    golds = [f"the storm hit town {i} on monday and closed {i} roads ." for i in range(ARTICLES)]
    if kind == "same":  # one generic summary for every article: high ROUGE, no use of the source
        preds = ["the storm hit town on monday and closed roads ."] * ARTICLES
    elif kind == "good":
        preds = [f"the storm hit town {i} on monday {'and' if seed % 2 else ''} closed roads ." for i in range(ARTICLES)]
    else:
        preds = [f"a report number {i} from seed {seed} about town {i} ." for i in range(ARTICLES)]
    scores, _ = rouge_scores(preds, golds)
    return [{"id": i, "prediction": p, "gold": g} for i, (p, g) in enumerate(zip(preds, golds))], scores


def test_the_same_summary_for_every_article_is_flagged_and_not_starred_though_it_beats_the_baseline(tmp_path):
    runs = tmp_path / "runs"
    for seed in (1, 2, 3):
        for attention, kind in (("additive", "poor"), ("dot", "same"), ("general", "good")):
            rows, test = summaries(seed, kind)
            write_record(runs, attention, "rnn", seed, task="summarization", rows=rows, test=test)
    out = tmp_path / "board"
    result = board(runs, out)
    rows = {r["label"]: r for r in result["tasks"]["summarization"]}
    dot, general, additive = rows["dot"], rows["general"], rows["additive"]
    assert dot["metrics"]["rougeLsum"]["mean"] > additive["metrics"]["rougeLsum"]["mean"] + 20
    assert dot["flagged"] and "only 2.5% of test predictions are distinct" in dot["flags"][0]["reason"]
    assert not additive["flagged"] and not general["flagged"]
    assert "test" not in dot and general["test"]["family_size"] == 1 and general["test"]["p_holm"] < 0.05
    cells = md_row((out / "leaderboard.md").read_text(), "⚠ dot", "rnn")
    assert cells["p (Holm)"] == "flagged (degenerate): not tested"
    assert cells["p, examples only (these trained models)"] == ""
    assert cells["flag"].startswith("⚠ seeds 1, 2, 3: predictions collapse")
    assert result["sections"][0]["dataset"] == "cnn_dailymail"
    assert any(n.startswith("no trivial baseline record for this test data") for n in result["sections"][0]["notes"])
