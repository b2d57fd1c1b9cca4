"""Reproducibility on CPU: seed + trainer.deterministic=true gives identical metrics; `attnbench verify` re-runs a
record and passes, and catches a record that its configuration does not reproduce."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from attnbench.cli import main


def tiny(data_dir: Path, cache: Path, out: Path, *extra: str) -> list[str]:
    return ["run", f"data_dir={data_dir}", f"cache_dir={cache}", f"output_dir={out}", "task.limits.train=400",
            "task.limits.validation=64", "task.limits.test=96", "task.probes=0", "trainer.max_epochs=2",
            "trainer.batch_size=32", "model.embed_dim=24", "model.hidden_dim=16", "model.dropout=0.3",
            "trainer.deterministic=true", "trainer.enable_progress_bar=false", "wandb.mode=disabled",
            "trainer.early_stopping_patience=0", *extra]


@pytest.fixture(scope="module")
def cache(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("cache")


def only(out: Path) -> Path:
    (run_dir,) = [p for p in out.iterdir() if p.is_dir()]
    return run_dir


@pytest.mark.parametrize("model", ["rnn", "transformer"])
def test_two_deterministic_runs_give_identical_metrics(model, data_dir, cache, tmp_path):
    records = []
    for name in ("a", "b"):
        assert main(tiny(data_dir, cache, tmp_path / name, f"model={model}", "attention=additive", "seed=7")) == 0
        records.append(json.loads((only(tmp_path / name) / "metrics.json").read_text()))
    assert records[0]["metrics"] == records[1]["metrics"]
    assert (only(tmp_path / "a") / "predictions.jsonl").read_text() == (only(tmp_path / "b") / "predictions.jsonl").read_text()
    # A different seed is a different run (the comparison above can fail).
    assert main(tiny(data_dir, cache, tmp_path / "c", f"model={model}", "attention=additive", "seed=8")) == 0
    other = json.loads((only(tmp_path / "c") / "metrics.json").read_text())
    assert other["metrics"]["train"] != records[0]["metrics"]["train"]


def test_verify_reproduces_a_record_and_catches_a_wrong_one(data_dir, cache, tmp_path, capsys):
    assert main(tiny(data_dir, cache, tmp_path / "runs", "attention=dot")) == 0
    run_dir = only(tmp_path / "runs")
    capsys.readouterr()
    assert main(["verify", str(run_dir)]) == 0
    out = capsys.readouterr().out
    assert "PASS test/accuracy" in out and "FAIL" not in out and "metrics reproduced" in out
    assert [p.name for p in (tmp_path / "runs").iterdir()] == [run_dir.name]  # nothing added next to the record

    record = json.loads((run_dir / "metrics.json").read_text())
    record["metrics"]["test"]["accuracy"] += 0.05
    (run_dir / "metrics.json").write_text(json.dumps(record))
    assert main(["verify", str(run_dir)]) == 1
    out = capsys.readouterr().out
    assert "FAIL test/accuracy" in out and "PASS val/accuracy" in out


@pytest.mark.parametrize("case", ["not a run folder", "failed run", "damaged record"])
def test_verify_refuses_what_it_cannot_verify(case, tmp_path, capsys):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    if case != "not a run folder":
        (run_dir / "config.yaml").write_text("seed: 1\n")
        (run_dir / "metrics.json").write_text('{"status": "failed"}' if case == "failed run" else '{"status": ')
    assert main(["verify", str(run_dir)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("attnbench: error:")
    message = {"not a run folder": "is not a run folder", "failed run": "only completed runs",
               "damaged record": "not valid JSON"}[case]
    assert message in err[0]


def test_killed_run_resumes_to_the_same_metrics(data_dir, cache, tmp_path):
    """SIGKILL after the first epoch's checkpoint, then resume=auto: the final record equals an uninterrupted run's
    (deterministic CPU mode; the checkpoint carries the RNG states, token count and loss trace)."""
    import os
    import signal
    import subprocess
    import sys
    import time

    args = tiny(data_dir, cache, tmp_path / "runs", "task.limits.train=3000", "trainer.max_epochs=4", "seed=3",
                "wandb.mode=offline")
    assert main([*args, "run_id=whole"]) == 0
    cut = tmp_path / "runs" / "cut"
    # Its own W&B service: wandb hands WANDB_SERVICE to child processes, and a killed child would leave its run
    # registered in this test process's service.
    env = {**{k: v for k, v in os.environ.items() if k != "WANDB_SERVICE"}, "OMP_NUM_THREADS": "1"}
    child = subprocess.Popen([sys.executable, "-m", "attnbench", *args, "run_id=cut"], env=env,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 300
    while not (cut / "checkpoints" / "last.ckpt").exists() and child.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.3)  # let the checkpoint file be written completely
    child.send_signal(signal.SIGKILL)
    child.wait()
    assert not (cut / "metrics.json").exists()  # killed mid-training, before any record

    assert main([*args, "run_id=cut", "resume=auto"]) == 0
    whole = json.loads((tmp_path / "runs" / "whole" / "metrics.json").read_text())
    resumed = json.loads((cut / "metrics.json").read_text())
    assert resumed["status"] == "completed" and resumed["resumed_from"] == "checkpoints/last.ckpt"
    assert resumed["metrics"] == whole["metrics"]
    assert resumed["cost"]["steps"] == whole["cost"]["steps"] and resumed["cost"]["epochs"] == whole["cost"]["epochs"]
    assert (cut / "predictions.jsonl").read_text() == (tmp_path / "runs" / "whole" / "predictions.jsonl").read_text()
    # The W&B run continues under the same id: both attempts' offline runs carry it.
    assert sorted(p.name.rsplit("-", 1)[-1] for p in (cut / "wandb").glob("offline-run-*")) == ["cut", "cut"]

    # Resuming a completed run is refused; resume=<folder> takes the folder's own configuration.
    assert main([*args, "run_id=cut", "resume=auto"]) == 2
    assert main(["run", f"resume={tmp_path / 'runs' / 'whole'}"]) == 2  # completed as well
    assert main(["run", f"resume={cut}", "seed=1"]) == 2  # a folder resume takes no other overrides


def test_resume_auto_without_a_previous_run_starts_fresh(data_dir, cache, tmp_path):
    assert main(tiny(data_dir, cache, tmp_path / "runs", "trainer.max_epochs=1", "resume=auto")) == 0
    record = json.loads((only(tmp_path / "runs") / "metrics.json").read_text())
    assert record["status"] == "completed" and "resumed_from" not in record


def test_verify_reruns_an_auto_precision_record_in_the_precision_it_was_made_in(tmp_path, monkeypatch):
    """trainer.precision=auto decides by the machine (and before bf16 detection it was fp32 on every CPU), so
    verify trains the re-run in the record's own precision."""
    from omegaconf import OmegaConf

    from attnbench.config import load_config, to_yaml
    from attnbench.training import verify as verify_module

    run_dir = tmp_path / "run"
    run_dir.mkdir()
    cfg = load_config(["trainer.accelerator=cpu"])
    assert cfg.trainer.precision == "auto"
    (run_dir / "config.yaml").write_text(to_yaml(cfg))
    record = {"run_id": "run", "status": "completed", "metrics": {"test": {"accuracy": 0.5}},
              "provenance": {"precision": "32-true"}}
    (run_dir / "metrics.json").write_text(json.dumps(record))
    seen = []

    def fake_run(config):
        seen.append(OmegaConf.select(config, "trainer.precision"))
        out = Path(config.output_dir) / config.run_id
        out.mkdir(parents=True)
        (out / "metrics.json").write_text(json.dumps(record))
        return out

    monkeypatch.setattr(verify_module, "run", fake_run)
    checks, _, _ = verify_module.verify(run_dir, rtol=0.0, atol=0.0)
    assert seen == ["32-true"] and all(c.passed for c in checks)
