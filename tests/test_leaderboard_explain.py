"""The leaderboard's interpretability columns and plots, from explain.json / explain.npz beside the records
(attnbench/suite/interpretability.py): known per-run values in, their seed statistics out, in every output."""

from __future__ import annotations

import csv
import io
import json
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from attnbench.suite.stats import seed_statistics
from tests.test_leaderboard import board, correct_array, write_record
from tests.test_leaderboard_degeneracy import summaries

TAU = {"additive": (0.30, 0.35, 0.40), "dot": (0.05, 0.07, 0.09)}
DROP = {"additive": (0.04, 0.05, 0.06), "dot": (0.0, 0.01, -0.01)}


def write_explain(run_dir: Path, tau: float, drop: float, comprehensiveness: float = 0.2, n: int = 40,
                  probes: bool = True, **edits) -> None:
    """explain.json and explain.npz as `attnbench explain` writes them for a classification run."""
    record = json.loads((run_dir / "metrics.json").read_text())
    rng = np.random.default_rng(int(1000 * tau))
    tokens = ["a", "fine", "film"]
    report = {
        "run_id": record["run_id"], "attention": record["attention"], "model": record["model"],
        "task": record["task"], "seed": record["seed"],
        "pooling": {"examples": n,
                    "agreement": {"gradient": {"tau": {"n": n, "mean": tau}, "significant_share": tau / 2}},
                    "uniform": {"accuracy": 0.8, "uniform_accuracy": 0.8 - drop, "drop": drop},
                    "entropy": {"nats": {"n": n, "mean": 2 * tau}, "normalized": {"n": n, "mean": tau}},
                    "eraser": {"attention": {"comprehensiveness@0.2": comprehensiveness},
                               "random": {"comprehensiveness@0.2": 0.05}}},
        "probes": [{"id": 7, "tokens": tokens, "label": 1, "predicted": 1, "attention": [0.2, 0.7, 0.1],
                    "gradient": [0.1, 0.5, 0.2], "ig": [0.1, 0.4, 0.1], "loo": [0.0, 0.3, 0.1]}] if probes else [],
        **edits,
    }
    (run_dir / "explain.json").write_text(json.dumps(report))
    tau_values = np.clip(rng.normal(tau, 0.2, n), -1, 1)
    np.savez(run_dir / "explain.npz", **{"tau.gradient": tau_values, "tau.loo": tau_values, "tau.ig": tau_values,
                                         "max_attention": rng.uniform(0.1, 1, n),
                                         "permutation_tvd": rng.uniform(0, 0.3, n)})


@pytest.fixture()
def explained(tmp_path) -> Path:
    """additive and dot on one rnn, 3 seeds each, every run explained; general with no explain.json."""
    runs = tmp_path / "runs"
    for seed in (1, 2, 3):
        for attention in TAU:
            run_dir = write_record(runs, attention, "rnn", seed, correct_array(0.8, seed + len(attention)))
            write_explain(run_dir, TAU[attention][seed - 1], DROP[attention][seed - 1])
        write_record(runs, "general", "rnn", seed, correct_array(0.8, 50 + seed))
    return runs


def test_interpretability_columns_are_seed_statistics_of_the_explained_runs(explained, tmp_path):
    out = tmp_path / "board"
    result = board(explained, out)
    rows = {r["label"]: r for r in result["tasks"]["sentiment"]}
    for attention in TAU:
        explain = rows[attention]["explain"]
        assert explain["runs"] == 3 and explain["seeds"] == [1, 2, 3]
        assert explain["tau_gradient"] == pytest.approx(seed_statistics(list(TAU[attention])))
        assert explain["uniform_drop"] == pytest.approx(seed_statistics(list(DROP[attention])))
        assert explain["significant_gradient"]["mean"] == pytest.approx(100 * np.mean(TAU[attention]) / 2)
        assert explain["comprehensiveness"]["mean"] == pytest.approx(0.2)
        assert explain["comprehensiveness_random"]["mean"] == pytest.approx(0.05)
        assert explain["entropy"] == pytest.approx(seed_statistics(list(TAU[attention])))  # the normalized one
    assert "explain" not in rows["general"]

    lines = list(csv.DictReader(io.StringIO((out / "leaderboard.csv").read_text())))
    additive = [line for line in lines if line["label"] == "additive"]
    primary = next(line for line in additive if line["metric"] == "accuracy")
    assert float(primary["explain_tau_gradient_mean"]) == pytest.approx(0.35)
    assert float(primary["explain_tau_gradient_ci_low"]) == pytest.approx(rows["additive"]["explain"]["tau_gradient"]["ci_low"])
    assert primary["explain_runs"] == "3"
    assert all(line["explain_tau_gradient_mean"] == "" for line in additive if line["metric"] != "accuracy")
    assert all(line["explain_runs"] == "" for line in lines if line["label"] == "general")

    md = (out / "leaderboard.md").read_text()
    table = md[md.index("is the attention an explanation?"):]
    row = next(line for line in table.splitlines() if line.startswith("| additive | rnn |"))
    cells = [c.strip() for c in row.strip("|").split("|")]
    s = seed_statistics([100 * d for d in DROP["additive"]])
    assert cells[2] == "3" and cells[3].startswith("0.35 [")
    assert header_of(table)[5] == "entropy / log n" and cells[5].startswith("0.35 [")
    assert cells[6] == f"+{s['mean']:.2f} [{s['ci_low']:+.2f}, {s['ci_high']:+.2f}]"  # accuracy points
    assert "| general |" not in table.split("## ")[0]  # a row with no explained run is not in the table
    for plot in ("explain-tau", "explain-permutation", "explain-probes"):
        path = out / "plots" / f"sentiment-sst2-{plot}.png"
        assert f"(plots/sentiment-sst2-{plot}.png)" in md
        assert Image.open(path).size[0] > 300  # a real PNG, drawn


def header_of(table: str) -> list[str]:
    line = next(line for line in table.splitlines() if line.startswith("| attention | backbone |"))
    return [c.strip() for c in line.strip("|").split("|")]


def test_unusable_explain_results_are_left_out_with_a_warning(explained, tmp_path):
    dot1 = explained / "sentiment-rnn-dot-s1"
    (dot1 / "explain.json").write_text('{"run_id": "sentiment-rnn-dot-s1", "pool')  # cut short
    dot2 = explained / "sentiment-rnn-dot-s2"
    write_explain(dot2, 0.9, 0.5, run_id="another-run")  # another run's
    (explained / "sentiment-rnn-additive-s1" / "explain.npz").write_bytes(b"not a zip")
    result = board(explained, tmp_path / "board")
    rows = {r["label"]: r for r in result["tasks"]["sentiment"]}
    assert rows["dot"]["explain"]["runs"] == 1 and rows["dot"]["explain"]["tau_gradient"]["mean"] == pytest.approx(0.09)
    assert rows["dot"]["explain"]["tau_gradient"]["ci_low"] is None  # one seed: no interval
    assert rows["additive"]["explain"]["runs"] == 3  # its numbers come from explain.json; only its plot points go
    warnings = "\n".join(result["warnings"])
    assert "sentiment-rnn-dot-s1/explain.json: not read" in warnings
    assert "sentiment-rnn-dot-s2/explain.json: its run_id differ from the record's" in warnings
    assert "sentiment-rnn-additive-s1/explain.npz: not read" in warnings


def test_no_explained_run_means_no_interpretability_table_or_plots(tmp_path):
    runs = tmp_path / "runs"
    for seed in (1, 2, 3):
        write_record(runs, "additive", "rnn", seed, correct_array(0.8, seed))
    out = tmp_path / "board"
    result = board(runs, out)
    assert "explain" not in result["tasks"]["sentiment"][0]
    assert "is the attention an explanation?" not in (out / "leaderboard.md").read_text()
    assert not list((out / "plots").glob("*explain*"))


def test_seq2seq_columns_read_the_last_cross_attention_layer_and_the_metric_change(tmp_path):
    runs = tmp_path / "runs"
    for seed in (1, 2, 3):
        rows, test = summaries(seed, "good")
        run_dir = write_record(runs, "additive", "rnn", seed, task="summarization", rows=rows, test=test)
        record = json.loads((run_dir / "metrics.json").read_text())
        block = {"examples": 10, "steps": 50, "maps": {
            f"cross_attention.layer{i}": {"mean": {"agreement": {"gradient": {
                "tau": {"n": 50, "mean": 0.1 * seed + (0.5 if i == 10 else 0.0)}, "significant_share": 0.5}},
                "entropy": {"normalized": {"n": 50, "mean": 0.002 if i == 10 else 0.6}}}}
            for i in (2, 10)},  # 10 > 2 as numbers, not as strings
            "uniform": {"decoding": "beam 4", "metrics": {"rougeLsum": 0.3}, "uniform_metrics": {"rougeLsum": 0.2},
                        "change": {"rougeLsum": -0.01 * seed}}}
        (run_dir / "explain.json").write_text(json.dumps({**{k: record[k] for k in ("run_id", "attention", "model",
                                                                                    "seed")}, "seq2seq": block}))
        np.savez(run_dir / "explain.npz", **{"cross_attention.layer10.mean.tau.gradient": np.full(50, 0.2)})
    out = tmp_path / "board"
    explain = board(runs, out)["tasks"]["summarization"][0]["explain"]
    assert explain["tau_gradient"]["mean"] == pytest.approx(0.7)
    assert explain["uniform_drop"]["mean"] == pytest.approx(0.02)
    assert explain["comprehensiveness"] is None  # classification only
    assert explain["entropy"]["mean"] == pytest.approx(0.002)  # the last cross-attention layer's, a saturated one
    md = (out / "leaderboard.md").read_text()
    header = next(line for line in md.splitlines() if line.startswith("| attention | backbone | explained runs"))
    assert "the last cross-attention layer" in md and "comprehensiveness" not in header  # no values: no column
    assert (out / "plots" / "summarization-cnn_dailymail-explain-tau.png").is_file()
    assert not list((out / "plots").glob("*explain-p*"))  # permutation and probes are classification plots


def test_the_leaderboard_goes_to_a_wandb_leaderboard_run(explained, tmp_path, capsys):
    """Offline by default ($WANDB_MODE unset): the table with the CSV's columns and rows, and every plot as an image,
    in one run under <out>/wandb/, read back from W&B's own run file."""
    from attnbench.cli import main
    from tests.helpers import wandb_records

    out = tmp_path / "board"
    env = dict(os.environ)
    os.environ.pop("WANDB_MODE", None)
    try:
        assert main(["leaderboard", "--runs", str(explained), "--out", str(out), "--samples", "200"]) == 0
    finally:
        os.environ.clear()
        os.environ.update(env)
    assert "logged to W&B run" in capsys.readouterr().out
    (run_file,) = out.glob("wandb/offline-run-*/run-*.wandb")
    history = {k: v for item in wandb_records(run_file, "history") for k, v in item.items()}
    lines = list(csv.DictReader(io.StringIO((out / "leaderboard.csv").read_text())))
    assert history["leaderboard/table/_type"] == "table-file" and history["leaderboard/table/nrows"] == len(lines)
    assert history["leaderboard/table/ncols"] == len(lines[0])
    plots = sorted(p.stem for p in (out / "plots").glob("*.png"))
    assert sorted(k.split("/")[2] for k in history if k.endswith("/_type") and k.startswith("leaderboard/plots/")) == plots
    summary = {k: v for update in wandb_records(run_file, "summary") for k, v in update.items()}
    assert summary["records"] == 9 and summary["sections"] == 1


def test_an_unknown_wandb_mode_is_refused_before_anything_is_written(explained, tmp_path, capsys):
    from attnbench.cli import main
    from attnbench.suite.leaderboard import build_leaderboard
    from attnbench.errors import ConfigError

    with pytest.raises(ConfigError, match="--wandb sometimes: use one of online, offline, disabled"):
        build_leaderboard(explained, tmp_path / "board", wandb="sometimes")
    assert not (tmp_path / "board").exists()
    with pytest.raises(SystemExit) as exit_:  # argparse: one usage line, exit 2
        main(["leaderboard", "--runs", str(explained), "--out", str(tmp_path / "b"), "--wandb", "sometimes"])
    assert exit_.value.code == 2 and "invalid choice: 'sometimes'" in capsys.readouterr().err
    assert not (tmp_path / "b").exists()


def test_a_wandb_failure_after_the_files_are_written_is_one_line_and_exit_2(explained, tmp_path, capsys, monkeypatch):
    import wandb

    from attnbench.cli import main

    def broken(*args, **kwargs):
        raise OSError("no space left on device")

    monkeypatch.setattr(wandb, "init", broken)
    out = tmp_path / "board"
    assert main(["leaderboard", "--runs", str(explained), "--out", str(out), "--wandb", "offline"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith(f"attnbench: error: the leaderboard is written to {out}, but logging it to W&B (offline) "
                              "failed: OSError: no space left on device; rerun with --wandb disabled")
    assert json.loads((out / "leaderboard.json").read_text())["tasks"]["sentiment"]  # the files are whole
