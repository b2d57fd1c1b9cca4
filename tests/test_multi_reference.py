"""Several references per test example (seq2seq): `tgt` mapped to a list-valued column or to a list of columns.

Scores equal sacreBLEU's multi-reference scoring and rouge-score's score_multi called directly; constructed local
datasets load, train on the first reference and test on all of them through `attnbench run`, with every reference
in predictions.jsonl; malformed references are refused with the file and line; one-reference tasks are unchanged.
"""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import numpy as np
import pytest
import sacrebleu
from datasets import Dataset
from rouge_score import rouge_scorer
from sacrebleu.metrics import BLEU, CHRF

from attnbench.cli import main
from attnbench.config import validate
from attnbench.data.canonical import REFS, column_map
from attnbench.data.hub import canonicalize
from attnbench.data.sources import dataset_fingerprint, load_split
from attnbench.errors import ConfigError, DataError
from attnbench.metrics.registry import example_statistics, score_from_sums
from attnbench.metrics.scoring import ROUGE_TYPES, corpus_bleu, rouge_scores, summary_sentences
from attnbench.suite.records import read_checked_predictions
from attnbench.tasks.families import prediction_row
from tests.helpers import assert_one_line_naming, config

HYPS = ["the cat sat on the mat .", "a dog runs in the park", "two men are playing chess outside"]
REFS3 = [
    ["the cat is on the mat .", "a cat sat on the mat .", "there is a cat on the mat"],
    ["a dog is running in the park", "the dog runs through a park", "one dog runs in a park"],
    ["two men play chess outdoors", "two men are playing a game of chess", "men playing chess outside"],
]
VARIABLE = [REFS3[0][:1], REFS3[1], REFS3[2][:2]]  # 1, 3 and 2 references


def streams(refs: list[list[str]]) -> list[list[str | None]]:
    """sacreBLEU's reference streams, None where an example has fewer references (how sacreBLEU varies them)."""
    return [[r[k] if k < len(r) else None for r in refs] for k in range(max(map(len, refs)))]


# ---- scoring: the libraries' own multi-reference results ----------------------------------------------------


@pytest.mark.parametrize("refs", [REFS3, VARIABLE], ids=["three each", "variable"])
def test_bleu_and_chrf_equal_sacrebleu_with_the_same_references(refs):
    scores, signatures = corpus_bleu(HYPS, refs)
    bleu, chrf = BLEU(), CHRF()
    assert scores["bleu"] == bleu.corpus_score(HYPS, streams(refs)).score
    assert scores["bleu"] == sacrebleu.corpus_bleu(HYPS, streams(refs)).score
    assert scores["chrf"] == chrf.corpus_score(HYPS, streams(refs)).score
    # sacreBLEU's own signatures, which count the references: nrefs:3, or nrefs:var when the count varies.
    assert signatures == {"bleu": str(bleu.get_signature()), "chrf": str(chrf.get_signature())}
    nrefs = "nrefs:3|" if refs is REFS3 else "nrefs:var|"
    assert signatures["bleu"].startswith(nrefs) and signatures["chrf"].startswith(nrefs)
    # More references can only help: the multi-reference score is at least the first-reference one.
    assert scores["bleu"] >= corpus_bleu(HYPS, [r[0] for r in refs])[0]["bleu"]


def test_one_reference_as_a_list_scores_as_a_string():
    single, single_signatures = corpus_bleu(HYPS, [r[0] for r in REFS3])
    listed, listed_signatures = corpus_bleu(HYPS, [r[:1] for r in REFS3])
    assert single == listed and single_signatures == listed_signatures
    assert rouge_scores(HYPS, [r[0] for r in REFS3]) == rouge_scores(HYPS, [r[:1] for r in REFS3])


@pytest.mark.parametrize("refs", [REFS3, VARIABLE], ids=["three each", "variable"])
def test_rouge_is_the_best_reference_per_example_as_score_multi(refs):
    scores, signatures = rouge_scores(HYPS, refs)
    scorer = rouge_scorer.RougeScorer(list(ROUGE_TYPES), use_stemmer=True)
    direct = [scorer.score_multi([summary_sentences(r) for r in ref], summary_sentences(hyp))
              for hyp, ref in zip(HYPS, refs)]
    for key in ROUGE_TYPES:
        assert scores[key] == pytest.approx(100.0 * np.mean([d[key].fmeasure for d in direct]), abs=1e-12)
    count = "3" if refs is REFS3 else "1-3"
    assert all(s.endswith(f"|best of {count} references (rouge-score score_multi)") for s in signatures.values())
    single = rouge_scores(HYPS, [r[0] for r in refs])[1]
    assert all(signatures[k] == f"{single[k]}|best of {count} references (rouge-score score_multi)" for k in single)


@pytest.mark.parametrize("metric", ["bleu", "rouge1", "rougeLsum"])
def test_bootstrap_statistics_add_up_to_the_multi_reference_score(metric):
    stats = example_statistics(metric, HYPS, VARIABLE)
    assert stats.shape[0] == len(HYPS)
    rescored = float(score_from_sums(metric, stats.sum(0, keepdims=True), len(HYPS))[0])
    scorer = corpus_bleu if metric == "bleu" else rouge_scores
    assert rescored == pytest.approx(scorer(HYPS, VARIABLE)[0][metric], abs=1e-9)


def test_malformed_reference_lists_are_refused():
    with pytest.raises(ValueError, match="mix strings and lists"):
        corpus_bleu(HYPS, [REFS3[0], "a string", REFS3[2]])
    with pytest.raises(ValueError, match="example 1 has no references"):
        rouge_scores(HYPS, [REFS3[0], [], REFS3[2]])


# ---- data: constructed local datasets -----------------------------------------------------------------------

WORDS = ["dog", "cat", "man", "woman", "child", "bird", "horse", "girl"]
PLACES = ["park", "street", "field", "beach"]


def pair(i: int) -> dict[str, object]:
    who, where = WORDS[i % len(WORDS)], PLACES[i % len(PLACES)]
    return {"en": f"a {who} runs in the {where} .", "r1": f"ein {who} rennt im {where} .",
            "r2": f"der {who} läuft im {where} .", "r3": f"ein {who} ist im {where} ."}


def write(root: Path, task: str, split: str, rows: list[dict]) -> Path:
    path = root / task / "toy" / f"{split}.jsonl.gz"
    path.parent.mkdir(parents=True, exist_ok=True)
    with gzip.open(path, "wt", encoding="utf-8") as f:
        f.write("".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows))
    return path


def toy(root: Path, task: str = "translation", sizes: dict[str, int] | None = None) -> None:
    """Every split with columns en, r1, r2, r3 and `refs`, a list of 1-3 references (variable in test)."""
    sizes = sizes or {"train": 96, "validation": 8, "test": 8}
    for split, n in sizes.items():
        rows = [pair(i) for i in range(n)]
        for i, row in enumerate(rows):
            row["refs"] = [row["r1"], row["r2"], row["r3"]][: 1 + i % 3]
        write(root, task, split, rows)


def toy_config(root: Path, cache: Path, columns: str, *overrides: str, task: str = "translation"):
    return config(root, cache, f"task={task}", "task.dataset=toy", "task.local.dataset=toy",
                  f"task.local.columns={columns}", *overrides)


def test_list_valued_column_loads_first_reference_as_target(tmp_path):
    toy(tmp_path / "data")
    cfg = toy_config(tmp_path / "data", tmp_path / "cache", "{src: en, tgt: refs}")
    test = load_split(cfg.task, "test", str(tmp_path / "data"), str(tmp_path / "cache"))
    assert sorted(test.column_names) == ["id", REFS, "src", "tgt"]
    assert [len(r) for r in test[REFS]] == [1, 2, 3, 1, 2, 3, 1, 2]
    assert list(test["tgt"]) == [r[0] for r in test[REFS]] == [pair(i)["r1"] for i in range(8)]


def test_several_columns_load_in_the_listed_order(tmp_path):
    toy(tmp_path / "data")
    cfg = toy_config(tmp_path / "data", tmp_path / "cache", "{src: en, tgt: [r2, r1, r3]}")
    validate(cfg)
    assert column_map(cfg.task, "local") == {"src": "en", "tgt": ["r2", "r1", "r3"]}
    test = load_split(cfg.task, "test", str(tmp_path / "data"), str(tmp_path / "cache"))
    assert test[0]["tgt"] == pair(0)["r2"] and test[0][REFS] == [pair(0)[k] for k in ("r2", "r1", "r3")]


def test_one_reference_column_is_unchanged(tmp_path):
    toy(tmp_path / "data")
    cfg = toy_config(tmp_path / "data", tmp_path / "cache", "{src: en, tgt: r1}")
    test = load_split(cfg.task, "test", str(tmp_path / "data"), str(tmp_path / "cache"))
    assert sorted(test.column_names) == ["id", "src", "tgt"]  # no refs column on the one-reference path
    assert column_map(cfg.task, "local") == {"src": "en", "tgt": "r1"}
    several = toy_config(tmp_path / "data", tmp_path / "cache", "{src: en, tgt: [r1, r2]}")
    assert dataset_fingerprint(cfg.task, str(tmp_path / "data")) != dataset_fingerprint(several.task,
                                                                                         str(tmp_path / "data"))


def test_hub_list_feature_and_column_lists_are_canonical():
    raw = Dataset.from_dict({"en": ["a dog .", "a cat ."], "de": [["ein hund .", "der hund ."], ["eine katze ."]],
                             "r1": ["ein hund .", "eine katze ."], "r2": ["der hund .", "die katze ."]})
    listed = canonicalize(raw, {"src": "en", "tgt": "de"}, None, "hub toy", references="tgt")
    assert listed[1] == {"src": "a cat .", "tgt": "eine katze .", REFS: ["eine katze ."], "id": 1}
    columns = canonicalize(raw, {"src": "en", "tgt": ["r2", "r1"]}, None, "hub toy", references="tgt")
    assert columns[0] == {"src": "a dog .", "tgt": "der hund .", REFS: ["der hund .", "ein hund ."], "id": 0}
    single = canonicalize(raw, {"src": "en", "tgt": "r1"}, None, "hub toy", references="tgt")
    assert single.column_names == ["src", "tgt", "id"]
    with pytest.raises(DataError, match=r"hub toy row 1: field 'de' \(tgt\) reference 1 is empty"):
        canonicalize(Dataset.from_dict({"en": ["a", "b"], "de": [["x"], [""]]}), {"src": "en", "tgt": "de"}, None,
                     "hub toy", references="tgt")


BAD = {
    "reference column missing in a row": ("[r1, r2]", {"en": "a dog .", "r1": "ein hund ."}, ["field 'r2'", "missing"]),
    "reference not a string": ("[r1, r2]", {"en": "a dog .", "r1": "ein hund .", "r2": 3}, ["field 'r2'", "string"]),
    "reference empty": ("[r1, r2]", {"en": "a dog .", "r1": " ", "r2": "x"}, ["field 'r1'", "empty"]),
    "list column missing in a row": ("refs", {"en": "a dog ."}, ["field 'refs'", "missing"]),
    "string where a list is expected": ("refs", {"en": "a dog .", "refs": "ein hund ."}, ["field 'refs'", "list"]),
    "empty list": ("refs", {"en": "a dog .", "refs": []}, ["field 'refs'", "no references"]),
    "non-string in the list": ("refs", {"en": "a dog .", "refs": ["ein hund .", None]}, ["reference 2", "string"]),
    "list where a string is expected": ("r1", {"en": ["a", "dog"], "r1": "ein hund ."}, ["field 'en'", "string"]),
    "list in a one-reference column": ("r1", {"en": "a dog .", "r1": ["ein hund ."]}, ["field 'r1'", "string"]),
}


@pytest.mark.parametrize("case", list(BAD))
def test_bad_reference_is_refused_with_file_line_and_field(case, tmp_path):
    tgt, line3, expected = BAD[case]
    rows = [pair(i) for i in range(5)]
    for row in rows:
        row["refs"] = [row["r1"], row["r2"]]
    path = write(tmp_path / "data", "translation", "train", rows[:2] + [line3] + rows[2:])
    cfg = toy_config(tmp_path / "data", tmp_path / "cache", f"{{src: en, tgt: {tgt}}}")
    with pytest.raises(DataError) as err:
        load_split(cfg.task, "train", str(tmp_path / "data"), str(tmp_path / "cache"))
    assert_one_line_naming(str(err.value), str(path), "line 3", *expected)


@pytest.mark.parametrize(("columns", "expected"), [
    ("{src: [en, r1], tgt: r2}", "only tgt may list several columns"),
    ("{src: en, tgt: []}", "lists no columns"),
    ("{src: en, tgt: [r1, r1]}", "names a column twice"),
])
def test_column_lists_are_validated(columns, expected, tmp_path):
    with pytest.raises(ConfigError, match=expected) as err:
        validate(toy_config(tmp_path / "data", tmp_path / "cache", columns))
    assert "\n" not in str(err.value)


# ---- a tiny run: trains on the first reference, tests on all of them ------------------------------------------

TINY = ["task.limits.train=96", "task.probes=1", "trainer.max_epochs=1", "trainer.batch_size=16",
        "trainer.enable_progress_bar=false", "wandb.mode=disabled", "trainer.early_stopping_patience=0",
        "model.embed_dim=16", "model.hidden_dim=16", "task.tokenizer.vocab_size=300", "task.decoding.val_examples=4",
        "task.decoding.beam_size=2", "task.decoding.min_length=0", "task.decoding.max_len_a=0",
        "task.decoding.max_len_b=8", "task.monitor=loss", "task.monitor_mode=min"]


def test_prediction_rows_add_references_only_when_there_are_several():
    assert prediction_row(3, "hyp", "ref") == {"id": 3, "prediction": "hyp", "gold": "ref"}  # as before
    assert prediction_row(3, "hyp", ["a", "b"]) == {"id": 3, "prediction": "hyp", "gold": "a", "references": ["a", "b"]}


def rows_of(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.mark.parametrize(("task", "columns"), [("translation", "{src: en, tgt: refs}"),
                                               ("summarization", "{src: en, tgt: [r1, r2, r3]}")])
def test_run_tests_on_every_reference(task, columns, tmp_path):
    toy(tmp_path / "data", task)
    out = tmp_path / "runs"
    common = [f"task={task}", "task.dataset=toy", "task.local.dataset=toy", f"task.local.columns={columns}",
              f"data_dir={tmp_path / 'data'}", f"cache_dir={tmp_path / 'cache'}", f"output_dir={out}"]
    extra = ["task.max_length=32", "task.max_target_length=16"] if task == "summarization" else []
    assert main(["run", *common, *TINY, *extra]) == 0
    (metrics_path,) = out.glob("*/metrics.json")
    record = json.loads(metrics_path.read_text())
    assert record["status"] == "completed", record.get("error")
    rows = rows_of(metrics_path.parent / "predictions.jsonl")
    expected = list(load_split(toy_config(tmp_path / "data", tmp_path / "cache", columns, task=task).task, "test",
                               str(tmp_path / "data"), str(tmp_path / "cache"))[REFS])
    assert [r["references"] for r in rows] == expected and [r["gold"] for r in rows] == [e[0] for e in expected]
    hyps = [r["prediction"] for r in rows]
    signatures = record["provenance"]["metric_signatures"]
    if task == "translation":  # 1-3 references per example
        assert record["metrics"]["test"]["bleu"] == pytest.approx(
            BLEU().corpus_score(hyps, streams(expected)).score, abs=1e-9)
        assert signatures["bleu"].startswith("nrefs:var|")
    else:
        assert record["metrics"]["test"]["rouge1"] == pytest.approx(rouge_scores(hyps, expected)[0]["rouge1"])
        assert signatures["rouge1"].endswith("|best of 3 references (rouge-score score_multi)")
    # The leaderboard's paired bootstrap re-reads predictions.jsonl and re-scores it against every reference.
    metric = "bleu" if task == "translation" else "rouge1"
    _, _, golds, statistics = read_checked_predictions(metrics_path.parent / "predictions.jsonl", record, metric)
    assert golds == expected and statistics is not None

    # The trivial baseline is scored on every reference too, and written like the model's predictions.
    assert main(["baseline", *common]) == 0
    (baseline,) = out.glob(f"{task}-toy-baseline-*/metrics.json")
    baseline_record = json.loads(baseline.read_text())
    baseline_rows = rows_of(baseline.parent / "predictions.jsonl")
    assert [r["references"] for r in baseline_rows] == expected
    read_checked_predictions(baseline.parent / "predictions.jsonl", baseline_record, metric)
