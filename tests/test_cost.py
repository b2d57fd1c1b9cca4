"""Cost columns measure what they say: training time excludes validation and figure rendering; peak memory is the
training peak, reset when training starts. A fake clock advanced by the steps themselves makes the expected
seconds exact, with no sleeps and no wall-clock tolerance."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import attnbench.tracking.attention_maps as attention_maps
import attnbench.tracking.cost as cost
from attnbench.cli import main
from attnbench.tasks import ClassificationTask

# Fake seconds per call: distinct orders of magnitude, so any leak shows in the sums.
TRAIN_STEP, VAL_STEP, TEST_STEP, RENDER = 1.0, 100.0, 10_000.0, 1_000_000.0


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0
        self.phase = "setup"
        self.calls = {"train": 0, "val": 0, "test": 0, "render:val": 0, "render:test": 0}

    def __call__(self) -> float:
        return self.now

    def tick(self, kind: str, seconds: float) -> None:
        self.calls[kind] += 1
        self.now += seconds


@pytest.fixture
def fake_clock(monkeypatch) -> FakeClock:
    fake = FakeClock()
    monkeypatch.setattr(cost, "clock", fake)

    def wrap(name: str, kind: str, seconds: float):
        original = getattr(ClassificationTask, name)

        def step(self, batch, batch_idx):
            if self.trainer.sanity_checking:  # before training: neither clock runs
                return original(self, batch, batch_idx)
            fake.phase = kind
            fake.tick(kind, seconds)
            return original(self, batch, batch_idx)

        monkeypatch.setattr(ClassificationTask, name, step)

    wrap("training_step", "train", TRAIN_STEP)
    wrap("validation_step", "val", VAL_STEP)
    wrap("test_step", "test", TEST_STEP)
    render = attention_maps.heatmap_png

    def heatmap_png(*args, **kwargs):
        # Rendering follows the steps of its phase: maps of a validation epoch, or of the tested checkpoint.
        fake.tick(f"render:{'test' if fake.phase == 'test' else 'val'}", RENDER)
        return render(*args, **kwargs)

    monkeypatch.setattr(attention_maps, "heatmap_png", heatmap_png)
    return fake


def tiny(data_dir: Path, cache: Path, out: Path, *overrides: str) -> dict:
    code = main([
        "run", f"data_dir={data_dir}", f"cache_dir={cache}", f"output_dir={out}", "wandb.mode=offline",
        "task.limits.train=320", "task.limits.validation=64", "task.limits.test=64", "task.probes=2",
        "trainer.max_epochs=2", "trainer.batch_size=32", "trainer.early_stopping_patience=0",
        "trainer.enable_progress_bar=false", "model=transformer", "model.embed_dim=16", "model.ff_dim=32",
        "model.num_layers=1", "attention=multihead", "attention.heads=4", *overrides,
    ])
    assert code == 0
    (run_dir,) = [p for p in out.iterdir() if p.is_dir()]
    return json.loads((run_dir / "metrics.json").read_text())


@pytest.mark.parametrize("log_attention", [True, False])
def test_training_time_excludes_validation_and_rendering(fake_clock, log_attention, data_dir, tmp_path):
    record = tiny(data_dir, tmp_path / "cache", tmp_path / "runs", f"wandb.log_attention={log_attention}")
    c, calls = record["cost"], fake_clock.calls
    assert calls["train"] == record["cost"]["steps"] == 20 and calls["val"] > 0 and calls["test"] > 0
    # Exactly the training steps' fake seconds: no validation step and no figure leaked in.
    assert c["train_seconds"] == pytest.approx(TRAIN_STEP * calls["train"])
    # tokens/s divides the training tokens (2 epochs of 320 examples) by that training time alone.
    assert c["tokens_per_second"] * c["train_seconds"] == pytest.approx(round(c["tokens_per_second"] * c["train_seconds"]), abs=0.5)
    assert c["tokens_per_second"] * c["train_seconds"] >= 2 * 320
    # Validation: every validation step of fit and the final pass, and the figures of each validation epoch.
    assert c["validation_seconds"] == pytest.approx(VAL_STEP * calls["val"] + RENDER * calls["render:val"])
    assert c["test_seconds"] == pytest.approx(TEST_STEP * calls["test"] + RENDER * calls["render:test"])
    # Figures are rendered only when they are used: the saved maps of the tested checkpoint always (2 probes x
    # (pooling + 1 self-attention layer)), the W&B images of each validation epoch only when logged.
    assert calls["render:test"] == 4
    assert calls["render:val"] == (2 * 4 if log_attention else 0)


def test_peak_memory_is_the_training_peak(data_dir, tmp_path):
    """A 600 MB spike before the run is in the process's lifetime peak, not in the run's training peak."""
    import resource

    spike = bytearray(600 * 2**20)
    spike[:: 4096] = b"x" * len(spike[:: 4096])  # touch every page so it is resident
    del spike
    lifetime_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    record = tiny(data_dir, tmp_path / "cache", tmp_path / "runs")
    c = record["cost"]
    assert c["peak_memory_kind"] == "process peak RSS (VmHWM)"
    assert 0 < c["peak_memory_mb"] < lifetime_mb - 300, (c["peak_memory_mb"], lifetime_mb)
    assert 0 < c["eval_peak_memory_mb"] < lifetime_mb - 300
    assert "training" in c["peak_memory_phase"]
