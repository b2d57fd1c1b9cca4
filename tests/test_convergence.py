"""Has a run converged? The rule read from the learning history, and the leaderboard's "converged" column."""

from __future__ import annotations

import json

import pytest

from attnbench.suite.convergence import POINTS, WINDOW, convergence
from tests.test_leaderboard import board, correct_array, md_row, write_record


def _record(values, key="val/accuracy", epochs=None):
    history = [{"step": 10 * (i + 1), "epoch": i, "metrics": {key: v}} for i, v in enumerate(values)]
    return {"history": history, "cost": {"epochs": epochs if epochs is not None else len(values)}}


def _config(monitor="accuracy", mode="max", max_epochs=5, patience=3, max_steps=-1):
    return {"task": {"monitor": monitor, "monitor_mode": mode},
            "trainer": {"max_epochs": max_epochs, "early_stopping_patience": patience, "max_steps": max_steps}}


def test_early_stopping_before_max_epochs_is_converged():
    c = convergence(_record([0.7, 0.8, 0.79, 0.78], epochs=4), _config(max_epochs=10))
    assert c.state == "early stopped" and c.converged and c.metric == "val/accuracy"


def test_all_epochs_used_with_patience_is_judged_by_the_gain():
    # accuracy is a fraction shown in percent: +0.3 points over the last 2 validations is a plateau
    c = convergence(_record([0.70, 0.800, 0.801, 0.803]), _config(max_epochs=4))
    assert c.state == "plateaued" and c.gain == pytest.approx(0.3, abs=1e-6)
    c = convergence(_record([0.70, 0.78, 0.80, 0.82]), _config(max_epochs=4))
    assert c.state == "still rising" and c.gain == pytest.approx(4.0, abs=1e-6) and not c.converged
    # a peak before the window followed by decline: the best did not move, gain 0
    c = convergence(_record([0.82, 0.80, 0.79, 0.78]), _config(max_epochs=4, patience=0))
    assert c.state == "plateaued" and c.gain == 0.0


def test_points_metrics_min_mode_and_too_short_histories():
    bleu = _config(monitor="bleu", max_epochs=6, patience=0)
    c = convergence(_record([10.0, 20.0, 24.0, 24.3, 24.4], key="val_slice/bleu"), bleu)
    assert c.state == "plateaued" and c.metric == "val_slice/bleu" and c.gain == pytest.approx(0.4)
    c = convergence(_record([10.0, 20.0, 24.0, 25.0, 26.0], key="val_slice/bleu"), bleu)
    assert c.state == "still rising" and c.gain == pytest.approx(2.0)
    loss = _config(monitor="loss", mode="min", max_epochs=4, patience=0)
    assert convergence(_record([2.0, 1.5, 1.495, 1.49], key="val/loss"), loss).state == "plateaued"
    assert convergence(_record([2.0, 1.5, 1.4, 1.3], key="val/loss"), loss).gain == pytest.approx(0.2)
    assert convergence(_record([0.7] * WINDOW), _config(patience=0)).state == "unknown"
    assert convergence({"cost": {"epochs": 5}}, _config(max_epochs=5)).state == "unknown"
    # a max_steps cap ends a run early without early stopping: judged by the gain, not "early stopped"
    assert convergence(_record([0.5, 0.6, 0.7], epochs=3), _config(max_epochs=10, max_steps=100)).state == \
        "still rising"
    assert POINTS == 0.5


def test_leaderboard_counts_converged_seeds_per_row(tmp_path):
    runs = tmp_path / "runs"
    histories = {1: [0.70, 0.80, 0.80, 0.801], 2: [0.70, 0.80, 0.801, 0.802], 3: [0.60, 0.70, 0.75, 0.80]}
    for seed in (1, 2, 3):
        run_dir = write_record(runs, "additive", "rnn", seed, correct_array(0.7, seed),
                               config_edit=lambda raw: raw["trainer"].update(max_epochs=4))
        record = json.loads((run_dir / "metrics.json").read_text())
        record["history"] = _record(histories[seed])["history"]
        record["cost"]["epochs"] = 4  # all epochs used: judged by the gain; seed 3 still rising
        (run_dir / "metrics.json").write_text(json.dumps(record))
    out = tmp_path / "board"
    data = board(runs, out)
    (row,) = [r for r in data["tasks"]["sentiment"] if r.get("attention") == "additive"]
    conv = row["convergence"]
    assert (conv["converged"], conv["runs"]) == (2, 3)
    assert [s["state"] for s in conv["states"]] == ["plateaued", "plateaued", "still rising"]
    md = (out / "leaderboard.md").read_text()
    assert md_row(md, "additive", "rnn")["converged"] == "2/3: seed 3 still rising (+10.00)"
    assert "converged: early stopping fired" in md
    csv_text = (out / "leaderboard.csv").read_text()
    assert ",2/3," in csv_text
