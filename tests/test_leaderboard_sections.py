"""Sections per (task, dataset), row labels from settings that really differ (configs normalised onto today's
schema), and the cost columns and test-data footer from the records' cost and "data" blocks."""

from __future__ import annotations

import csv

from tests.test_leaderboard import board, correct_array, md_row, write_record


def test_two_datasets_of_one_task_are_two_sections(tmp_path):
    runs = tmp_path / "runs"
    for seed in (1, 2, 3):
        for dataset, shift in (("sst2", 0.0), ("imdb", 0.05)):
            write_record(runs, "additive", "rnn", seed, correct_array(0.7 + shift, seed), dataset=dataset,
                         fingerprint=f"fp-{dataset}")
            write_record(runs, "general", "rnn", seed, correct_array(0.8 + shift, 10 + seed), dataset=dataset,
                         fingerprint=f"fp-{dataset}")
    out = tmp_path / "board"
    result = board(runs, out)
    assert [(s["task"], s["dataset"]) for s in result["sections"]] == [("sentiment", "imdb"), ("sentiment", "sst2")]
    rows = result["tasks"]["sentiment"]
    assert [(r["dataset"], r["label"]) for r in rows] == [
        ("imdb", "additive"), ("imdb", "general"), ("sst2", "additive"), ("sst2", "general")]
    assert all(r["settings"] == {} for r in rows)  # task.dataset is the section, not a setting
    assert all(r["metrics"]["accuracy"]["n"] == 3 for r in rows)
    general = [r for r in rows if r["label"] == "general"]
    assert all(r["test"]["family_size"] == 1 for r in general)  # one Holm family per section
    md = (out / "leaderboard.md").read_text()
    assert "## sentiment / imdb" in md and "## sentiment / sst2" in md and "task.dataset" not in md
    for slug in ("sentiment-imdb", "sentiment-sst2"):
        assert (out / "plots" / f"{slug}-accuracy.png").is_file()
    assert {r["dataset"] for r in csv.DictReader((out / "leaderboard.csv").open())} == {"imdb", "sst2"}


def drop_keys_added_later(config: dict) -> None:
    """The config.yaml an older schema wrote: keys that have defaults today did not exist yet."""
    del config["model"]["tie_embeddings"]
    del config["trainer"]["compile_mode"]
    del config["task"]["decoding"]


def test_an_old_schema_config_does_not_split_a_row_and_a_real_ablation_does(tmp_path):
    runs = tmp_path / "runs"
    for heads in (1, 2):
        for seed in (1, 2):
            write_record(runs, "multihead", "transformer", seed, correct_array(0.6 + 0.1 * heads, seed + heads),
                         extra=(f"attention.heads={heads}",), config_edit=drop_keys_added_later if seed == 1 else None)
    for seed in (1, 2):
        write_record(runs, "dot", "transformer", seed, correct_array(0.7, 20 + seed),
                     config_edit=drop_keys_added_later if seed == 2 else None)
    out = tmp_path / "board"
    result = board(runs, out, "--baseline", "multihead")
    rows = result["tasks"]["sentiment"]
    multihead = [(r["label"], r["settings"], r["metrics"]["accuracy"]["n"]) for r in rows if r["attention"] == "multihead"]
    assert multihead == [("multihead [attention.heads=1]", {"attention.heads": 1}, 2),
                         ("multihead [attention.heads=2]", {"attention.heads": 2}, 2)]
    dot = [r for r in rows if r["attention"] == "dot"]
    assert len(dot) == 1 and dot[0]["metrics"]["accuracy"]["n"] == 2 and dot[0]["settings"] == {"attention.heads": 1}
    assert not result["warnings"]
    assert "multihead [attention.heads=2]" in (out / "leaderboard.md").read_text()


def test_a_config_with_a_key_the_schema_dropped_is_compared_as_written_and_reported(tmp_path):
    runs = tmp_path / "runs"

    def old_knob(config: dict) -> None:
        config["model"]["retired_setting"] = 3

    write_record(runs, "additive", "rnn", 1, correct_array(0.7, 1))
    write_record(runs, "additive", "rnn", 2, correct_array(0.7, 2), config_edit=old_knob)
    result = board(runs, tmp_path / "board")
    assert any("does not fit today's schema" in w and "retired_setting" in w for w in result["warnings"])
    assert sum(r["metrics"]["accuracy"]["n"] for r in result["tasks"]["sentiment"] if not r["missing"]) == 2


def data_block(truncated_source: float, truncated_target: float | None = None) -> dict:
    lengths = {"truncated": truncated_source, "p50": 20, "p90": 50, "p99": 90, "max": 140}
    test = {"examples": 400, "source": lengths}
    if truncated_target is not None:
        test["target"] = {**lengths, "truncated": truncated_target}
    return {"max_length": 64, "max_target_length": None if truncated_target is None else 100, "warn_share": 0.05,
            "splits": {"train": test, "validation": test, "test": test}}


NEW_COST = {"params": 2000, "train_seconds": 30.0, "validation_seconds": 4.0, "test_seconds": 2.0,
            "tokens_per_second": 800.0, "peak_memory_mb": 512.0, "eval_peak_memory_mb": 256.0,
            "peak_memory_kind": "cuda max_memory_allocated during fit", "epochs": 2, "steps": 20}


def test_cost_columns_and_the_test_data_footer(tmp_path):
    runs = tmp_path / "runs"
    for seed in (1, 2, 3):
        write_record(runs, "additive", "rnn", seed, correct_array(0.7, seed), cost=NEW_COST, data=data_block(0.08))
    write_record(runs, "dot", "rnn", 1, correct_array(0.7, 9), cost={})  # an older record: no cost fields, no data
    out = tmp_path / "board"
    result = board(runs, out)
    md = (out / "leaderboard.md").read_text()
    assert "peak MB: the training peak, measured as cuda max_memory_allocated during fit" in md
    additive, dot = md_row(md, "additive", "rnn"), md_row(md, "dot", "rnn")
    assert additive["train s"] == "30.0" and additive["peak MB (training)"] == "512"
    assert dot["train s"] == dot["peak MB (training)"] == dot["params"] == dot["tokens/s"] == ""
    notes = result["sections"][0]["notes"]
    assert any(n.startswith("test sources (400 examples): 8.0% truncated by task.max_length=64") for n in notes)
    assert any(n.startswith("⚠ warning: 8.0% of the test sources are cut by task.max_length=64") for n in notes)
    assert "test-split lengths not recorded in 1 of 4 runs (no \"data\" block)" in notes
    assert "- ⚠ warning: 8.0% of the test sources are cut" in md
    entry = result["sections"][0]["test_data"][0]
    assert entry["side"] == "source" and entry["truncated"] == 0.08 and len(entry["runs"]) == 3
    row = next(r for r in csv.DictReader((out / "leaderboard.csv").open()) if r["attention"] == "additive")
    assert row["validation_seconds"] == "4.0" and row["eval_peak_memory_mb"] == "256.0"
    assert row["peak_memory_kind"] == "cuda max_memory_allocated during fit"
    assert row["train_seconds_includes_validation"] == "False"


def test_a_small_truncated_share_gives_no_warning_and_mixed_memory_kinds_do(tmp_path):
    runs = tmp_path / "runs"
    write_record(runs, "additive", "rnn", 1, correct_array(0.7, 1), task="sentiment", cost=NEW_COST,
                 data=data_block(0.01, truncated_target=0.02))
    write_record(runs, "dot", "rnn", 1, correct_array(0.7, 2),
                 cost={**NEW_COST, "peak_memory_kind": "process peak RSS during fit"},
                 data=data_block(0.01, truncated_target=0.02))
    notes = board(runs, tmp_path / "board")["sections"][0]["notes"]
    assert any(n.startswith("test sources (400 examples): 1.0% truncated by task.max_length=64") for n in notes)
    assert any(n.startswith("test targets (400 examples): 2.0% truncated by task.max_target_length=100") for n in notes)
    assert not any(n.startswith("⚠ warning") for n in notes)
    assert any(n.startswith("⚠ peak memory measured differently across runs") for n in notes)
