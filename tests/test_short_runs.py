"""Runs shorter than one epoch, and every trainer preset, on the full local data of each task, through the CLI.

Training that stops before an epoch's validation (trainer.max_steps below one epoch, as `trainer=smoke` does)
must still validate where it stopped, checkpoint, test and write a completed record.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from attnbench.cli import main
from attnbench.config import config_dir, group_options

# Tiny models: these tests are about the run's control flow on full-size data, not about learning.
TINY = {
    "sentiment": ["model.embed_dim=16", "model.hidden_dim=8"],
    # val_examples covers the split: with limit_val_batches only a few batches are validated, whatever their ids.
    "translation": ["model.embed_dim=16", "model.hidden_dim=8", "task.decoding.val_examples=1014",
                    "task.decoding.beam_size=2", "task.decoding.max_len_b=5", "task.decoding.max_len_a=0.5"],
    # Shorter limits keep a BiLSTM step over CNN/DM articles cheap; every article is still loaded and tokenized.
    "summarization": ["model.embed_dim=16", "model.hidden_dim=8", "task.decoding.val_examples=2000",
                      "task.max_length=96", "task.max_target_length=24", "task.decoding.beam_size=2",
                      "task.decoding.max_len_b=12", "task.decoding.min_length=2"],
}
# A few batches of evaluation keep beam search over full test sets out of the suite's time.
EVAL = ["trainer.limit_val_batches=2", "trainer.limit_test_batches=1", "trainer.batch_size=8", "task.probes=1",
        "trainer.enable_progress_bar=false"]


@pytest.fixture(scope="module")
def full_cache(tmp_path_factory) -> Path:
    """Tokenizers and tokenized splits of the full data, trained once for the module."""
    return tmp_path_factory.mktemp("full-cache")


def run_cli(data_dir: Path, cache: Path, out: Path, *overrides: str) -> dict:
    code = main(["run", f"data_dir={data_dir}", f"cache_dir={cache}", f"output_dir={out}", "wandb.mode=offline",
                 *overrides])
    runs = [p for p in out.iterdir() if p.is_dir()]
    assert len(runs) == 1, runs
    record = json.loads((runs[0] / "metrics.json").read_text())
    assert code == 0 and record["status"] == "completed", record.get("error")
    return record | {"_dir": runs[0]}


def assert_validated_where_it_stopped(record: dict, steps: int) -> None:
    assert record["cost"]["steps"] == steps
    assert record["metrics"]["val"], "no validation metrics"
    # The best checkpoint is the validation at the last step (the only one), and the test loaded it.
    assert record["best_checkpoint"] and f"step={steps}" in record["best_checkpoint"]
    assert (record["_dir"] / record["best_checkpoint"]).is_file()
    assert (record["_dir"] / "predictions.jsonl").read_text().strip()


def test_smoke_preset_on_full_sst2(data_dir, full_cache, tmp_path):
    """The README's 'check a setup' command, as written, on the full local SST-2 (2,105 batches an epoch)."""
    record = run_cli(data_dir, full_cache, tmp_path, "trainer=smoke", *TINY["sentiment"])
    assert_validated_where_it_stopped(record, 20)
    assert record["metrics"]["test"]["accuracy"] >= 0


def test_max_steps_below_one_epoch_on_full_sst2(data_dir, full_cache, tmp_path):
    record = run_cli(data_dir, full_cache, tmp_path, "task=sentiment", "trainer.max_steps=30", *TINY["sentiment"],
                     *EVAL)
    assert_validated_where_it_stopped(record, 30)


def test_max_steps_below_one_epoch_on_full_multi30k(data_dir, full_cache, tmp_path):
    record = run_cli(data_dir, full_cache, tmp_path, "task=translation", "trainer.max_steps=20",
                     *TINY["translation"], *EVAL)
    assert_validated_where_it_stopped(record, 20)
    # The greedy slice is not reported as the split: val holds the split's loss/ppl, val_slice the slice's BLEU.
    metrics = record["metrics"]
    assert set(metrics["val"]) == {"loss", "ppl"}
    assert set(metrics["val_slice"]) == {"bleu", "chrf"}
    assert "first 1014 validation examples" in record["metrics_notes"]["val_slice"]
    # Multi30k's sentences are short: the default limits cut nothing.
    test = record["data"]["splits"]["test"]
    assert test["examples"] == 1000 and test["source"]["truncated"] == 0.0 and test["target"]["truncated"] == 0.0


PRESETS = group_options("trainer", config_dir())
# The CI machine has no GPU: the gpu preset runs its settings (bf16 autocast, token budget, workers) on the CPU.
ON_CPU = {"gpu": ["trainer.accelerator=cpu"]}


def test_every_preset_is_tested():
    assert set(PRESETS) >= {"default", "gpu", "smoke"}


@pytest.mark.parametrize("task", list(TINY))
@pytest.mark.parametrize("preset", PRESETS)
def test_every_preset_runs_on_the_full_data_of_each_task(preset, task, data_dir, full_cache, tmp_path):
    """Each preset with a short budget (what the presets are for), a step count below one epoch."""
    record = run_cli(data_dir, full_cache, tmp_path, f"task={task}", f"trainer={preset}", "trainer.max_steps=3",
                     *ON_CPU.get(preset, []), *TINY[task], *EVAL)
    assert_validated_where_it_stopped(record, 3)
    assert record["data"]["splits"]["train"]["examples"] == {"sentiment": 67349, "translation": 29000,
                                                             "summarization": 30000}[task]
    if preset == "gpu":
        assert record["provenance"]["precision"] == "bf16-mixed"
