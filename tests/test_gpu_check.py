"""scripts/gpu_check.py, the one prepared GPU run (issue 18), run here as --smoke: every step's command, on tiny
sizes, so that the run on a lent GPU does not fail on a typo; and its refusal where no GPU is."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "gpu_check.py"


def test_the_smoke_run_takes_every_step_and_writes_the_figures(data_dir, tmp_path):
    out = tmp_path / "gpu"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "ATTNBENCH_CACHE_DIR": str(tmp_path / "cache")}
    result = subprocess.run([sys.executable, str(SCRIPT), "--smoke", "--out", str(out), "--data", str(data_dir)],
                            capture_output=True, text=True, env=env, timeout=600)
    summary = json.loads((out / "summary.json").read_text())
    failed = {s["name"]: (out / "logs" / f"{s['name']}.log").read_text()[-3000:]
              for s in summary["steps"] if s["status"] != "ok"}
    assert result.returncode == 0 and not failed, (result.stdout[-3000:], failed)
    assert [s["name"] for s in summary["steps"]] == ["pytest", "bench", "harness", "harness-compile", "multi30k",
                                                     "sst2", "cnndm"]
    # The figures the GPU run is for: bench JSON and plot, both harness files, one record per task, the estimate.
    assert {p.suffix for p in (out / "bench").iterdir()} == {".json", ".png"}
    assert len(list((out / "harness").glob("harness-*.json"))) == 2
    records = [json.loads(p.read_text()) for p in (out / "runs").glob("*/metrics.json")]
    assert sorted(r["task"] for r in records) == ["sentiment", "summarization", "translation"]
    assert all(r["status"] == "completed" for r in records)
    names = {t["target"] for t in summary["targets"]}
    assert any("Lightning / plain" in n for n in names) and any("BLEU" in n for n in names)
    suite = (out / "suite.md").read_text()
    assert "| translation |" in suite and "| summarization |" in suite and "Estimated suite time" in suite
    assert summary["suite_minutes"] is not None


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU")
def test_without_a_gpu_the_real_run_is_refused_in_one_line(tmp_path):
    result = subprocess.run([sys.executable, str(SCRIPT), "--out", str(tmp_path / "gpu")], capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0 and "no CUDA GPU here" in result.stderr
    assert not (tmp_path / "gpu").exists()
