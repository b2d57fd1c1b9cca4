"""The leaderboard on synthetic run records whose answers are known: seed statistics, paired bootstrap, Holm,
missing cells, malformed records, and the command's files."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import numpy as np
import pytest
from sacrebleu.metrics import BLEU

from attnbench.cli import main
from attnbench.config import load_config, to_yaml
from attnbench.leaderboard import holm, paired_bootstrap, seed_statistics
from attnbench.tasks.metrics import example_statistics, rouge_scores, score_from_sums

N = 400  # test examples of the synthetic sentiment task


def test_seed_statistics_known_values():
    s = seed_statistics([1.0, 2.0, 3.0])
    assert s["n"] == 3 and s["mean"] == 2.0 and s["std"] == 1.0
    half = 4.302652729911275 / math.sqrt(3)  # t(0.975, df=2) from the tables
    assert s["ci_low"] == pytest.approx(2.0 - half) and s["ci_high"] == pytest.approx(2.0 + half)
    one = seed_statistics([5.0])
    assert one["n"] == 1 and one["mean"] == 5.0 and one["std"] is None and one["ci_low"] is None


def test_holm_matches_hand_computation():
    # sorted: 0.01*3 = 0.03; 0.03*2 = 0.06; 0.04*1 = 0.04 -> monotone 0.06
    assert holm([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])
    assert holm([]) == []


def test_resampling_statistics_reproduce_the_corpus_metrics():
    hyps = ["a cat sat on the mat .", "the dog ran", "hello there", "it is raining today"]
    refs = ["the cat sat on the mat .", "a dog ran away", "hello there friend", "it rains today"]
    stats = example_statistics("bleu", hyps, refs)
    assert stats.shape == (4, 10)
    full = score_from_sums("bleu", stats.sum(0, keepdims=True), 4)[0]
    assert full == pytest.approx(BLEU().corpus_score(hyps, [refs]).score)
    rouge, _ = rouge_scores(hyps, refs)
    for key in ("rouge1", "rouge2", "rougeLsum"):
        s = example_statistics(key, hyps, refs)
        assert score_from_sums(key, s.sum(0, keepdims=True), 4)[0] == pytest.approx(rouge[key])
    acc = example_statistics("accuracy", [1, 0, 1, 1], [1, 1, 1, 0])
    assert score_from_sums("accuracy", acc.sum(0, keepdims=True), 4)[0] == pytest.approx(0.5)
    with pytest.raises(ValueError, match="no per-example statistics"):
        example_statistics("f1", [1], [1])


def correct_array(rate: float, seed: int, n: int = N) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (rng.random(n) < rate).astype(float)[:, None]


def test_paired_bootstrap_finds_the_known_winner():
    better = [correct_array(0.9, s) for s in range(3)]
    worse = [correct_array(0.6, 10 + s) for s in range(3)]
    result = paired_bootstrap(better, worse, "accuracy", samples=500)
    assert result["delta"] == pytest.approx(np.mean([a.mean() for a in better]) - np.mean([a.mean() for a in worse]))
    assert result["delta"] > 0.25 and result["delta_low"] > 0.2
    assert result["p"] < 0.01
    reverse = paired_bootstrap(worse, better, "accuracy", samples=500)
    assert reverse["delta"] == pytest.approx(-result["delta"]) and reverse["p"] < 0.01


def test_paired_bootstrap_sees_no_difference_between_equal_systems():
    same = [correct_array(0.7, s) for s in range(2)]
    result = paired_bootstrap(same, [a.copy() for a in same], "accuracy", samples=300)
    assert result["delta"] == 0.0 and result["p"] == 1.0
    # Two systems that differ on a handful of examples out of 400 either way: not significant.
    a = correct_array(0.7, 1)
    b = a.copy()
    b[:3] = 1 - b[:3]
    assert paired_bootstrap([a], [b], "accuracy", samples=500)["p"] > 0.2


def test_paired_bootstrap_is_deterministic_and_checks_alignment():
    a, b = [correct_array(0.8, 1)], [correct_array(0.75, 2)]
    assert paired_bootstrap(a, b, "accuracy") == paired_bootstrap(a, b, "accuracy")
    with pytest.raises(ValueError, match="different numbers of test examples"):
        paired_bootstrap(a, [correct_array(0.7, 3, n=N - 1)], "accuracy")


# ---- the command on a folder of synthetic records ------------------------------------------------------------


def write_record(root: Path, attention: str, model: str, seed: int, correct: np.ndarray | None = None,
                 task: str = "sentiment", status: str = "completed", extra: tuple[str, ...] = ()) -> Path:
    """A run folder as `attnbench run` writes it: config.yaml, metrics.json and predictions.jsonl."""
    run_id = f"{task}-{model}-{attention}-s{seed}" + "".join(f"-{o.split('=')[1]}" for o in extra)
    run_dir = root / run_id
    run_dir.mkdir(parents=True)
    cfg = load_config([f"task={task}", f"attention={attention}", f"model={model}", f"seed={seed}", f"run_id={run_id}",
                       *extra])
    (run_dir / "config.yaml").write_text(to_yaml(cfg))
    test: dict[str, float] = {}
    if correct is not None:
        golds = [i % 2 for i in range(len(correct))]
        preds = [g if c else 1 - g for g, c in zip(golds, correct[:, 0])]
        (run_dir / "predictions.jsonl").write_text(
            "".join(json.dumps({"id": i, "prediction": p, "gold": g}) + "\n" for i, (p, g) in enumerate(zip(preds, golds))))
        test = {"loss": 0.5, "accuracy": float(correct.mean()), "f1": float(correct.mean()) - 0.01}
    record = {
        "run_id": run_id, "status": status, "task": task, "dataset": cfg.task.dataset, "attention": attention,
        "heads": cfg.attention.heads, "model": model, "seed": seed, "metrics": {"val": test, "test": test},
        "cost": {"params": 1000 + len(attention), "train_seconds": 10.0 * seed, "eval_seconds": 1.0,
                 "tokens_per_second": 500.0, "peak_memory_mb": 100.0, "epochs": 1, "steps": 10},
        "provenance": {"git_sha": "abc123", "git_dirty": False, "config_hash": "h", "dataset_fingerprint": "fp1",
                       "tokenizer_hash": "t", "metric_signatures": {"accuracy": "torchmetrics accuracy"},
                       "versions": {"torch": "x"}, "device": "cpu: test (2 cores)", "precision": "32-true",
                       "deterministic": False, "started_at": "2026-01-01T00:00:00+00:00",
                       "finished_at": f"2026-01-01T00:0{seed}:00+00:00"},
    }
    if status == "failed":
        record["error"] = "RuntimeError: boom"
    (run_dir / "metrics.json").write_text(json.dumps(record))
    return run_dir


@pytest.fixture()
def suite(tmp_path) -> Path:
    """sentiment x rnn: additive (baseline, ~70%), general (~90%: the known winner), dot (= additive's predictions
    except 2 examples: no real difference), 3 seeds each; transformer runs only for dot in one seed; a failed run,
    a malformed record and a truncated one."""
    runs = tmp_path / "runs"
    for seed in (1, 2, 3):
        base = correct_array(0.7, seed)
        write_record(runs, "additive", "rnn", seed, base)
        write_record(runs, "general", "rnn", seed, correct_array(0.9, 100 + seed))
        near = base.copy()
        near[seed] = 1 - near[seed]
        near[seed + 10] = 1 - near[seed + 10]
        write_record(runs, "dot", "rnn", seed, near)
    write_record(runs, "dot", "transformer", 1, correct_array(0.75, 7))
    write_record(runs, "scaled_dot", "rnn", 1, None, status="failed")
    (runs / "broken").mkdir()
    (runs / "broken" / "metrics.json").write_text('{"run_id": "broken", "status": "compl')
    (runs / "partial").mkdir()
    (runs / "partial" / "metrics.json").write_text(json.dumps({"run_id": "partial", "status": "completed"}))
    hidden = write_record(runs / ".attempts", "general", "transformer", 9, correct_array(0.99, 9))
    assert hidden.exists()
    return runs


def test_leaderboard_command_on_known_records(suite, tmp_path, capsys):
    out = tmp_path / "board"
    assert main(["leaderboard", "--runs", str(suite), "--out", str(out), "--samples", "400"]) == 0
    err = capsys.readouterr().err
    assert "attnbench: skipped" in err and "broken" in err and "partial" in err
    board = json.loads((out / "leaderboard.json").read_text())
    rows = {(r["attention"], r["backbone"]): r for r in board["tasks"]["sentiment"]}
    # The grid: every attention x backbone seen; hidden .attempts ignored; failed-only cells missing, never 0.
    assert set(rows) == {(a, m) for a in ("additive", "dot", "general") for m in ("rnn", "transformer")}
    for cell in [("additive", "transformer"), ("general", "transformer")]:
        assert rows[cell]["missing"] and "metrics" not in rows[cell]
    general = rows[("general", "rnn")]
    acc = general["metrics"]["accuracy"]
    expected = [correct_array(0.9, 100 + s).mean() for s in (1, 2, 3)]
    assert acc["n"] == 3 and acc["mean"] == pytest.approx(np.mean(expected))
    assert acc["std"] == pytest.approx(np.std(expected, ddof=1))
    assert general["seeds"] == [1, 2, 3] and general["cost"]["train_seconds"] == pytest.approx(20.0)
    # Significance against additive: general wins clearly; dot is the same system up to two examples.
    assert general["test"]["p_holm"] < 0.05 and general["test"]["delta"] > 0.15
    dot = rows[("dot", "rnn")]["test"]
    assert dot["p_holm"] > 0.5 and abs(dot["delta"]) < 0.01
    # Holm over the two rnn comparisons: adjusted >= raw.
    assert general["test"]["p_holm"] >= general["test"]["p"]
    assert rows[("dot", "transformer")]["test_note"] == "no additive baseline"
    # Skipped: the failed run, the truncated JSON, the record without fields; reported, table still made.
    skipped = "\n".join(board["skipped"])
    assert "status 'failed'" in skipped and "RuntimeError: boom" in skipped
    assert "broken" in skipped and "unreadable record" in skipped
    assert "partial" in skipped and "missing task" in skipped

    md = (out / "leaderboard.md").read_text()
    assert "| general | rnn | **" in md  # the best mean is marked
    assert "| additive | transformer | missing | 0 |" in md
    assert "*" in md.split("| general | rnn |")[1].splitlines()[0]
    assert "`abc123`" in md and "cpu: test (2 cores)" in md and "fingerprint `fp1`" in md
    lines = [line for line in md.splitlines() if line.startswith("| ")]
    assert len({line.count("|") for line in lines}) == 1  # every table row has the same number of columns
    table = list(csv.DictReader((out / "leaderboard.csv").open()))
    missing = [r for r in table if r["attention"] == "additive" and r["backbone"] == "transformer"]
    assert missing and missing[0]["n"] == "0" and missing[0]["mean"] == ""
    for name in ("sentiment-quality-vs-time.png", "sentiment-accuracy.png"):
        assert (out / "plots" / name).read_bytes()[:4] == b"\x89PNG"


def test_leaderboard_rows_split_by_a_varied_setting(tmp_path):
    runs = tmp_path / "runs"
    for heads in (1, 2):
        for seed in (1, 2):
            write_record(runs, "multihead", "transformer", seed, correct_array(0.6 + 0.1 * heads, seed + heads),
                         extra=(f"attention.heads={heads}",))
    out = tmp_path / "board"
    assert main(["leaderboard", "--runs", str(runs), "--out", str(out), "--baseline", "multihead"]) == 0
    rows = json.loads((out / "leaderboard.json").read_text())["tasks"]["sentiment"]
    assert [(r["settings"], r["metrics"]["accuracy"]["n"]) for r in rows] == [
        ({"attention.heads": 1}, 2), ({"attention.heads": 2}, 2)]
    assert "multihead [attention.heads=2]" in (out / "leaderboard.md").read_text()


def test_predictions_that_do_not_reproduce_the_record_are_reported(tmp_path):
    runs = tmp_path / "runs"
    write_record(runs, "additive", "rnn", 1, correct_array(0.7, 1))
    bad = write_record(runs, "dot", "rnn", 1, correct_array(0.8, 2))
    record = json.loads((bad / "metrics.json").read_text())
    record["metrics"]["test"]["accuracy"] = 0.95
    (bad / "metrics.json").write_text(json.dumps(record))
    out = tmp_path / "board"
    assert main(["leaderboard", "--runs", str(runs), "--out", str(out)]) == 0
    board = json.loads((out / "leaderboard.json").read_text())
    assert any("metrics.json says 0.9500" in s for s in board["skipped"])
    dot = next(r for r in board["tasks"]["sentiment"] if r["attention"] == "dot")
    assert "test" not in dot and dot["metrics"]["accuracy"]["mean"] == pytest.approx(0.95)


@pytest.mark.parametrize("case", ["no folder", "no records", "too few samples"])
def test_leaderboard_bad_input_exits_2_and_writes_nothing(case, tmp_path, capsys):
    runs = tmp_path / "runs"
    if case != "no folder":
        runs.mkdir()
    if case == "too few samples":
        write_record(runs, "additive", "rnn", 1, correct_array(0.7, 1))
    out = tmp_path / "board"
    args = ["leaderboard", "--runs", str(runs), "--out", str(out)] + (["--samples", "10"] if case == "too few samples" else [])
    assert main(args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("attnbench: error:")
    assert not out.exists()
