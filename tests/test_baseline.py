"""Trivial baselines: computed from the data alone, scored by the models' own metric code, kept as run records."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from rouge_score import rouge_scorer
from sacrebleu.metrics import BLEU, CHRF

from attnbench.cli import main
from attnbench.data.sources import load_split
from attnbench.metrics.baselines import baselines_for, first_sentences, lead3, majority_class
from attnbench.metrics.scoring import summary_sentences
from tests.helpers import config


def test_majority_class_takes_the_most_frequent_training_label():
    assert majority_class({"label": [0, 1, 1, 2]}, {"label": [0, 0, 0]}) == [1, 1, 1]
    assert majority_class({"label": [2, 0, 2, 0]}, {"label": [1]}) == [0]  # a tie goes to the lower index


def test_lead3_keeps_three_sentences_of_ptb_or_raw_text():
    ptb = "the u.s. army said on monday . it won ! did it ? yes . no ."
    assert first_sentences(ptb, 3) == ["the u.s. army said on monday .", "it won !", "did it ?"]
    raw = "It rained all day. We stayed in! Why? Because."  # hub articles: punctuation attached to the word
    assert first_sentences(raw, 3) == ["It rained all day.", "We stayed in!", "Why?"]
    assert lead3({}, {"src": [ptb, "one sentence only"]}) == [
        "the u.s. army said on monday .\nit won !\ndid it ?", "one sentence only"]


def test_each_task_kind_has_its_baseline():
    assert [b.name for b in baselines_for("classification", "bleu")] == ["majority"]
    assert [b.name for b in baselines_for("seq2seq", "bleu")] == ["copy_source"]
    assert [b.name for b in baselines_for("seq2seq", "rouge")] == ["lead3"]


def baseline_record(out: Path, name: str) -> tuple[dict, list[dict]]:
    (folder,) = out.glob(f"{name}-*")  # the folder name ends with the data fingerprint
    record = json.loads((folder / "metrics.json").read_text())
    rows = [json.loads(line) for line in (folder / "predictions.jsonl").read_text().splitlines()]
    return record, rows


def test_majority_baseline_on_sst2_is_a_record(data_dir, tmp_path, capsys):
    out = tmp_path / "runs"
    assert main(["baseline", "task=sentiment", f"data_dir={data_dir}", f"cache_dir={tmp_path / 'c'}",
                 f"output_dir={out}"]) == 0
    record, rows = baseline_record(out, "sentiment-sst2-baseline-majority")
    assert record["kind"] == "baseline" and record["baseline"] == "majority" and record["status"] == "completed"
    assert (record["task"], record["dataset"], record["model"], record["attention"]) == ("sentiment", "sst2", None, None)
    # SST-2's train split is 55.8% positive; its test split has 909 positive sentences of 1,821.
    assert {r["prediction"] for r in rows} == {1} and len(rows) == 1821
    assert record["metrics"]["test"]["accuracy"] == pytest.approx(909 / 1821)
    assert record["provenance"]["dataset_fingerprint"] and "accuracy" in record["provenance"]["metric_signatures"]
    (folder,) = out.glob("sentiment-sst2-baseline-majority-*")
    assert folder.name.endswith(record["provenance"]["dataset_fingerprint"][:8]) and (folder / "config.yaml").is_file()
    # A second call leaves the record as it is.
    before = (folder / "metrics.json").read_bytes()
    assert main(["baseline", "task=sentiment", f"data_dir={data_dir}", f"cache_dir={tmp_path / 'c'}",
                 f"output_dir={out}"]) == 0
    assert "up to date" in capsys.readouterr().out
    assert (folder / "metrics.json").read_bytes() == before
    # Other data (a test slice) gets its own folder beside it.
    assert main(["baseline", "task=sentiment", "task.limits.test=100", f"data_dir={data_dir}",
                 f"cache_dir={tmp_path / 'c'}", f"output_dir={out}"]) == 0
    assert len(list(out.glob("sentiment-sst2-baseline-majority-*"))) == 2
    assert (folder / "metrics.json").read_bytes() == before
    # A damaged folder of that name is refused, never overwritten.
    (folder / "metrics.json").write_text("{")
    assert main(["baseline", "task=sentiment", f"data_dir={data_dir}", f"cache_dir={tmp_path / 'c'}",
                 f"output_dir={out}"]) == 2
    assert "holds no completed baseline of this task's data" in capsys.readouterr().err
    assert (folder / "metrics.json").read_text() == "{"


def test_copy_source_and_lead3_score_as_the_libraries_do(data_dir, tmp_path):
    out, cache = tmp_path / "runs", tmp_path / "c"
    for task in ("translation", "summarization"):
        assert main(["baseline", f"task={task}", "task.limits.test=200", f"data_dir={data_dir}",
                     f"cache_dir={cache}", f"output_dir={out}"]) == 0
    record, rows = baseline_record(out, "translation-multi30k_en_de-baseline-copy_source")
    test = load_split(config(data_dir, cache, "task=translation", "task.limits.test=200").task, "test",
                      str(data_dir), str(cache))
    assert [r["prediction"] for r in rows] == list(test["src"]) and [r["gold"] for r in rows] == list(test["tgt"])
    refs = [list(test["tgt"])]
    assert record["metrics"]["test"]["bleu"] == pytest.approx(BLEU().corpus_score(list(test["src"]), refs).score)
    assert record["metrics"]["test"]["chrf"] == pytest.approx(CHRF().corpus_score(list(test["src"]), refs).score)

    record, rows = baseline_record(out, "summarization-cnn_dailymail-baseline-lead3")
    scorer = rouge_scorer.RougeScorer(["rouge1", "rougeLsum"], use_stemmer=True)
    scores = [scorer.score(summary_sentences(r["gold"]), r["prediction"]) for r in rows]
    assert record["metrics"]["test"]["rouge1"] == pytest.approx(100 * sum(s["rouge1"].fmeasure for s in scores) / 200)
    assert record["metrics"]["test"]["rougeLsum"] == pytest.approx(
        100 * sum(s["rougeLsum"].fmeasure for s in scores) / 200)
    # Lead-3 is a strong summarization baseline (about 40 ROUGE-1 on CNN/DailyMail in See et al., 2017).
    assert 30 < record["metrics"]["test"]["rouge1"] < 45
    assert all(r["prediction"].count("\n") <= 2 for r in rows)


def test_a_full_disk_leaves_no_baseline_folder_behind(data_dir, tmp_path, monkeypatch, capsys):
    import errno

    import attnbench.tracking.record as record_module

    def no_space(fd, data):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(record_module, "_write", no_space)
    out = tmp_path / "runs"
    assert main(["baseline", "task=sentiment", "task.limits.test=50", f"data_dir={data_dir}",
                 f"cache_dir={tmp_path / 'c'}", f"output_dir={out}"]) == 2
    assert "no space left on the device" in capsys.readouterr().err
    assert not out.exists() or list(out.iterdir()) == []  # neither the folder nor its staging copy
