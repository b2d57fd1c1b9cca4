"""The leaderboard on synthetic run records whose answers are known: seed statistics, paired bootstrap, Holm,
missing cells, malformed records, and the command's files. `write_record` and `write_baseline` build the
records the other tests/test_leaderboard_*.py files use."""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from omegaconf import OmegaConf
from sacrebleu.metrics import BLEU

from attnbench.cli import main
from attnbench.config import load_config, to_yaml
from attnbench.metrics.registry import example_statistics, score_from_sums
from attnbench.metrics.scoring import rouge_scores
from attnbench.suite.stats import holm, paired_bootstrap, seed_statistics

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
                 task: str = "sentiment", status: str = "completed", extra: tuple[str, ...] = (),
                 rows: list[dict] | None = None, test: dict | None = None, dataset: str | None = None,
                 fingerprint: str = "fp1", cost: dict | None = None, data: dict | None = None,
                 config_edit: Callable[[dict], None] | None = None, kind: str | None = "model",
                 test_fingerprint: str | None = None) -> Path:
    """A run folder as `attnbench run` writes it: config.yaml, metrics.json and predictions.jsonl.

    Sentiment runs take `correct` (N, 1) and get alternating gold labels; other runs take prediction `rows`
    and their `test` metrics. `config_edit(dict)` changes the saved config (e.g. an older schema's);
    kind=None writes a record from before records had a "kind"."""
    run_id = (f"{task}-{dataset + '-' if dataset else ''}{model}-{attention}-s{seed}"
              + "".join(f"-{o.split('=')[1]}" for o in extra))
    run_dir = root / run_id
    run_dir.mkdir(parents=True)
    cfg = load_config([f"task={task}", f"attention={attention}", f"model={model}", f"seed={seed}", f"run_id={run_id}",
                       *extra, *([f"task.dataset={dataset}"] if dataset else [])])
    _write_config(run_dir, cfg, config_edit)
    if correct is not None:
        golds = [i % 2 for i in range(len(correct))]
        preds = [g if c else 1 - g for g, c in zip(golds, correct[:, 0])]
        rows = [{"id": i, "prediction": p, "gold": g} for i, (p, g) in enumerate(zip(preds, golds))]
        test = {"loss": 0.5, "accuracy": float(correct.mean()), "f1": float(correct.mean()) - 0.01}
    if rows is not None:
        _write_predictions(run_dir, rows)
    test = test or {}
    record = {
        "run_id": run_id, "kind": kind, "status": status, "task": task, "dataset": cfg.task.dataset,
        "attention": attention, "heads": cfg.attention.heads, "model": model, "seed": seed,
        "metrics": {"val": test, "test": test},
        "cost": cost if cost is not None else {
            "params": 1000 + len(attention), "train_seconds": 10.0 * seed, "eval_seconds": 1.0,
            "tokens_per_second": 500.0, "peak_memory_mb": 100.0, "epochs": 1, "steps": 10},
        "provenance": _provenance(fingerprint, seed),
    }
    if test_fingerprint is not None:
        record["provenance"]["test_fingerprint"] = test_fingerprint
    if kind is None:
        del record["kind"]
    if data is not None:
        record["data"] = data
    if status == "failed":
        record["error"] = "RuntimeError: boom"
    (run_dir / "metrics.json").write_text(json.dumps(record))
    return run_dir


def write_baseline(root: Path, name: str, rows: list[dict], test: dict, task: str = "sentiment",
                   dataset: str | None = None, fingerprint: str = "fp1", task_block_only: bool = False) -> Path:
    """A trivial-baseline record as `attnbench baseline` writes it ("kind": "baseline"); its config.yaml is the
    run config, or with task_block_only the task config alone."""
    cfg = load_config([f"task={task}", *([f"task.dataset={dataset}"] if dataset else [])])
    run_dir = root / f"baseline-{task}-{cfg.task.dataset}-{name}-{fingerprint}"
    run_dir.mkdir(parents=True)
    if task_block_only:
        (run_dir / "config.yaml").write_text(to_yaml(cfg.task))
    else:
        _write_config(run_dir, cfg, None)
    _write_predictions(run_dir, rows)
    record = {"run_id": run_dir.name, "kind": "baseline", "baseline": name, "status": "completed", "task": task,
              "dataset": cfg.task.dataset, "attention": None, "model": None, "seed": None,
              "metrics": {"test": test}, "cost": {}, "provenance": _provenance(fingerprint, 1)}
    (run_dir / "metrics.json").write_text(json.dumps(record))
    return run_dir


def _write_config(run_dir: Path, cfg, edit: Callable[[dict], None] | None) -> None:
    if edit is None:
        (run_dir / "config.yaml").write_text(to_yaml(cfg))
        return
    raw = OmegaConf.to_container(cfg, resolve=True)
    edit(raw)
    (run_dir / "config.yaml").write_text(OmegaConf.to_yaml(OmegaConf.create(raw)))


def _write_predictions(run_dir: Path, rows: list[dict]) -> None:
    (run_dir / "predictions.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))


def _provenance(fingerprint: str, seed: int) -> dict:
    return {"git_sha": "abc123", "git_dirty": False, "config_hash": "h", "dataset_fingerprint": fingerprint,
            "tokenizer_hash": "t", "metric_signatures": {"accuracy": "torchmetrics accuracy"},
            "versions": {"torch": "x"}, "device": "cpu: test (2 cores)", "precision": "32-true",
            "deterministic": False, "started_at": "2026-01-01T00:00:00+00:00",
            "finished_at": f"2026-01-01T00:0{seed}:00+00:00"}


def md_row(md: str, label: str, backbone: str) -> dict[str, str]:
    """The cells of one leaderboard.md table row, by column header (the header of the table it is in)."""
    header: list[str] = []
    for line in md.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")] if line.startswith("| ") else None
        if cells and cells[0] == "attention":
            header = cells
        elif cells and cells[:2] == [label, backbone]:
            return dict(zip(header, cells))
    raise AssertionError(f"no row {label} / {backbone} in leaderboard.md")


def board(runs: Path, out: Path, *args: str) -> dict:
    """Run the command; its leaderboard.json."""
    assert main(["leaderboard", "--wandb", "disabled", "--runs", str(runs), "--out", str(out), "--samples", "300", *args]) == 0
    return json.loads((out / "leaderboard.json").read_text())


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
    write_record(runs, "dot", "transformer", 1, correct_array(0.75, 7), kind=None)  # an older record: a model
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
    assert main(["leaderboard", "--wandb", "disabled", "--runs", str(suite), "--out", str(out), "--samples", "400"]) == 0
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
    assert general["test"]["p_holm"] >= general["test"]["p"] and general["test"]["family_size"] == 2
    # The example-only test is reported beside it, on the same observed difference.
    assert general["test_examples_only"]["delta"] == pytest.approx(general["test"]["delta"])
    assert general["test_examples_only"]["p"] < 0.05
    section = board["sections"][0]
    assert (section["task"], section["dataset"]) == ("sentiment", "sst2")
    assert "Holm family: the variants compared with `additive` on one backbone" in section["holm_family"]
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
    assert "*" not in md_row(md, "dot", "rnn")["p (Holm)"]
    assert "| p (Holm) | p, examples only (these trained models) |" in md
    assert "Holm family: the variants compared with `additive` on one backbone and settings in sentiment / sst2" in md
    assert "`abc123`" in md and "cpu: test (2 cores)" in md and "fingerprint `fp1`" in md
    lines = [line for line in md.splitlines() if line.startswith("| ")]
    assert len({line.count("|") for line in lines}) == 1  # every table row has the same number of columns
    table = list(csv.DictReader((out / "leaderboard.csv").open()))
    missing = [r for r in table if r["attention"] == "additive" and r["backbone"] == "transformer"]
    assert missing and missing[0]["n"] == "0" and missing[0]["mean"] == ""
    for name in ("sentiment-sst2-quality-vs-time.png", "sentiment-sst2-accuracy.png"):
        assert (out / "plots" / name).read_bytes()[:4] == b"\x89PNG"


def test_leaderboard_rows_split_by_a_varied_setting(tmp_path):
    runs = tmp_path / "runs"
    for heads in (1, 2):
        for seed in (1, 2):
            write_record(runs, "multihead", "transformer", seed, correct_array(0.6 + 0.1 * heads, seed + heads),
                         extra=(f"attention.heads={heads}",))
    out = tmp_path / "board"
    assert main(["leaderboard", "--wandb", "disabled", "--runs", str(runs), "--out", str(out), "--baseline", "multihead"]) == 0
    rows = json.loads((out / "leaderboard.json").read_text())["tasks"]["sentiment"]
    assert [(r["settings"], r["metrics"]["accuracy"]["n"]) for r in rows] == [
        ({"attention.heads": 1}, 2), ({"attention.heads": 2}, 2)]
    assert "multihead [attention.heads=2]" in (out / "leaderboard.md").read_text()


def test_predictions_that_do_not_reproduce_the_record_skip_the_record(tmp_path):
    runs = tmp_path / "runs"
    write_record(runs, "additive", "rnn", 1, correct_array(0.7, 1))
    bad = write_record(runs, "dot", "rnn", 1, correct_array(0.8, 2))
    record = json.loads((bad / "metrics.json").read_text())
    record["metrics"]["test"]["accuracy"] = 0.95
    (bad / "metrics.json").write_text(json.dumps(record))
    out = tmp_path / "board"
    assert main(["leaderboard", "--wandb", "disabled", "--runs", str(runs), "--out", str(out)]) == 0
    board = json.loads((out / "leaderboard.json").read_text())
    assert any("predictions.jsonl gives test accuracy 0.7975 but metrics.json says 0.9500" in s
               for s in board["skipped"])
    assert [r["attention"] for r in board["tasks"]["sentiment"]] == ["additive"]  # never a row of its own numbers


def test_seed_spread_makes_a_small_delta_insignificant_though_the_models_differ(tmp_path):
    """Records: each seed of dot beats the same seed of additive on every example additive gets right plus 2%
    more, but seeds spread over 30 points: only the example-only test (these models) calls it significant."""
    runs = tmp_path / "runs"
    u = np.random.default_rng(0).random(N)
    for seed, rate in zip((1, 2, 3), (0.60, 0.75, 0.90)):
        write_record(runs, "additive", "rnn", seed, (u < rate).astype(float)[:, None])
        write_record(runs, "dot", "rnn", seed, (u < rate + 0.02).astype(float)[:, None])
    out = tmp_path / "board"
    dot = next(r for r in board(runs, out)["tasks"]["sentiment"] if r["attention"] == "dot")
    assert dot["test"]["delta"] == pytest.approx(0.02, abs=0.01)
    assert dot["test"]["p_holm"] > 0.2
    assert dot["test_examples_only"]["p"] < 0.01
    cells = md_row((out / "leaderboard.md").read_text(), "dot", "rnn")
    assert not cells["p (Holm)"].endswith("*") and float(cells["p (Holm)"]) > 0.2
    assert float(cells["p, examples only (these trained models)"]) < 0.01
    table = [r for r in csv.DictReader((out / "leaderboard.csv").open()) if r["attention"] == "dot"
             and r["metric"] == "accuracy"]
    assert float(table[0]["p_holm"]) > 0.2 and float(table[0]["p_examples_only"]) < 0.01


def test_rows_with_fewer_than_three_seeds_get_no_star_and_say_why(tmp_path):
    runs = tmp_path / "runs"
    for seed in (1, 2):
        write_record(runs, "additive", "rnn", seed, correct_array(0.6, seed))
        write_record(runs, "general", "rnn", seed, correct_array(0.9, 10 + seed))
    out = tmp_path / "board"
    general = next(r for r in board(runs, out)["tasks"]["sentiment"] if r["attention"] == "general")
    assert "test" not in general and general["test_note"] == "n < 3 seeds: seed variance cannot be estimated"
    assert general["test_examples_only"]["p"] < 0.01  # these two models do differ; no claim about the variant
    cells = md_row((out / "leaderboard.md").read_text(), "general", "rnn")
    assert cells["p (Holm)"] == "n < 3 seeds: seed variance cannot be estimated"
    assert "*" not in cells["p, examples only (these trained models)"]
    row = next(r for r in csv.DictReader((out / "leaderboard.csv").open())
               if r["attention"] == "general" and r["metric"] == "accuracy")
    assert row["p"] == row["p_holm"] == "" and float(row["p_examples_only"]) < 0.01
    assert row["test_note"].startswith("n < 3 seeds")


def test_an_ablation_is_compared_with_one_value_of_its_axis(tmp_path):
    """--baseline VARIANT[KEY=VALUE]: every head count against 8 heads (the heads ablation), one Holm family."""
    runs = tmp_path / "runs"
    for heads, rate in ((1, 0.6), (2, 0.88), (8, 0.9)):
        for seed in (1, 2, 3):
            write_record(runs, "multihead", "transformer", seed, correct_array(rate, 10 * heads + seed),
                         extra=(f"attention.heads={heads}",))
    out = tmp_path / "board"
    rows = board(runs, out, "--baseline", "multihead[attention.heads=8]")["tasks"]["sentiment"]
    tests = {r["settings"]["attention.heads"]: r.get("test") for r in rows}
    assert tests[8] is None
    assert tests[1]["baseline"] == "multihead[attention.heads=8]" and tests[1]["family_size"] == 2
    assert tests[1]["delta"] < -0.2 and tests[1]["p_holm"] < 0.05
    assert tests[2]["p_holm"] > tests[1]["p_holm"]
    md = (out / "leaderboard.md").read_text()
    assert md_row(md, "multihead [attention.heads=8]", "transformer")["Δ accuracy vs multihead[attention.heads=8] [95% interval]"] == "baseline"
    # a named setting that does not split the rows is no condition
    same = board(runs, tmp_path / "same", "--baseline", "multihead[attention.heads=8, model.dropout=0.5]")
    assert [r["test"]["delta"] if r.get("test") else None for r in same["tasks"]["sentiment"]] == [
        r["test"]["delta"] if r.get("test") else None for r in rows]
    # without the setting, each row's baseline is itself: nothing is compared
    rows = board(runs, tmp_path / "plain", "--baseline", "multihead")["tasks"]["sentiment"]
    assert all(r.get("test") is None for r in rows)


@pytest.mark.parametrize("case", ["no folder", "no records", "too few samples", "malformed baseline"])
def test_leaderboard_bad_input_exits_2_and_writes_nothing(case, tmp_path, capsys):
    runs = tmp_path / "runs"
    if case != "no folder":
        runs.mkdir()
    if case in ("too few samples", "malformed baseline"):
        write_record(runs, "additive", "rnn", 1, correct_array(0.7, 1))
    out = tmp_path / "board"
    args = ["leaderboard", "--wandb", "disabled", "--runs", str(runs), "--out", str(out)] + (["--samples", "10"] if case == "too few samples" else [])
    args += ["--baseline", "multihead[attention.heads]"] if case == "malformed baseline" else []
    assert main(args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("attnbench: error:")
    if case == "malformed baseline":
        assert "--baseline multihead[attention.heads]: use VARIANT or VARIANT[KEY=VALUE,...]" in err[0]
    assert not out.exists()
