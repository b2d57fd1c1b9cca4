"""`attnbench bench` at tiny sizes on the CPU: every variant and the SDPA reference measured, valid JSON and plot."""

from __future__ import annotations

import json

import pytest

from attnbench.attention import ATTENTION
from attnbench.cli import main


def test_bench_writes_every_case_as_json_and_a_plot(tmp_path, capsys):
    out = tmp_path / "bench"
    code = main(["bench", "--device", "cpu", "--lengths", "16,32", "--batch-sizes", "2", "--heads", "2",
                 "--head-dim", "8", "--warmup", "0", "--repeats", "2", "--out", str(out)])
    assert code == 0, capsys.readouterr().err
    (json_path,) = out.glob("*.json")
    data = json.loads(json_path.read_text())
    assert data["device"].startswith("cpu") and data["settings"]["lengths"] == [16, 32]
    rows = data["results"]
    cases = {(r["variant"], r["path"], r["length"]) for r in rows}
    expected = {("sdpa", "fast", t) for t in (16, 32)} | {
        (v, p, t) for v in ATTENTION for p in ("fast", "explicit") for t in (16, 32)}
    assert cases == expected
    for r in rows:
        assert r["status"] == "ok" and r["ms"] > 0 and r["ratio_to_sdpa"] > 0 and r["dtype"] == "fp32"
        assert r["peak_mb"] is None  # memory is measured on GPUs only
    assert all(r["ratio_to_sdpa"] == 1.0 for r in rows if r["variant"] == "sdpa")
    assert json_path.with_suffix(".png").read_bytes()[:4] == b"\x89PNG"


def test_bench_bad_arguments_exit_2_with_one_line(tmp_path, capsys):
    out = tmp_path / "bench"
    for args, message in [(["--variants", "bahdanau"], "unknown variant"), (["--dtypes", "int8"], "unknown dtype"),
                          (["--lengths", "0"], "positive integers"), (["--device", "tpu"], "one of auto, cpu, cuda")]:
        assert main(["bench", "--out", str(out), *args]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and message in err[0], err
    assert not out.exists()


def test_harness_compares_lightning_with_a_plain_loop_on_the_same_batches(data_dir, tmp_path, capsys):
    out = tmp_path / "bench"
    code = main(["harness", f"data_dir={data_dir}", f"cache_dir={tmp_path / 'cache'}", "task.limits.train=600",
                 "model.embed_dim=16", "model.hidden_dim=16", "--steps", "8", "--warmup", "2", "--out", str(out)])
    assert code == 0
    (path,) = out.glob("harness-*.json")
    result = json.loads(path.read_text())
    assert result["config"] == "sentiment/rnn/additive" and result["steps"] == 8 and result["warmup"] == 2
    assert result["tokens"] > 0 and 0.0 <= result["padding_fraction"] < 1.0
    assert result["plain_tokens_per_second"] > 0 and result["harness_tokens_per_second"] > 0
    assert result["ratio"] == pytest.approx(result["harness_tokens_per_second"] / result["plain_tokens_per_second"], rel=1e-3)
    assert result["rounds"] == 2 and len(result["plain_round_seconds"]) == len(result["harness_round_seconds"]) == 2
    assert abs(sum(result["plain_round_seconds"]) - result["plain_seconds"]) < 1e-3
    assert "ratio" in capsys.readouterr().out


def test_harness_refuses_fewer_steps_than_warmup(tmp_path, capsys):
    assert main(["harness", "--steps", "5", "--warmup", "5", "--out", str(tmp_path / "b")]) == 2
    assert "must exceed --warmup" in capsys.readouterr().err


def test_harness_plain_loop_runs_the_same_precision_on_the_cpu(data_dir, tmp_path, monkeypatch):
    """trainer.precision=bf16-mixed on a CPU: the plain loop's loss is computed under CPU bf16 autocast, as
    Lightning's is (comparing bf16 with fp32 would measure the precision, not the harness); fp32: no autocast."""
    import torch

    from attnbench.perf import harness

    seen = []
    original = harness.plain_loss

    def recording(task, batch):
        seen.append((torch.is_autocast_enabled("cpu"), torch.get_autocast_dtype("cpu")))
        return original(task, batch)

    monkeypatch.setattr(harness, "plain_loss", recording)
    common = [f"data_dir={data_dir}", f"cache_dir={tmp_path / 'cache'}", "task.limits.train=300", "model.embed_dim=16",
              "model.hidden_dim=16", "trainer.accelerator=cpu", "--steps", "3", "--warmup", "1"]
    for precision, expected in (("bf16-mixed", (True, torch.bfloat16)), ("32-true", None)):
        seen.clear()
        out = tmp_path / precision
        assert main(["harness", f"trainer.precision={precision}", *common, "--out", str(out)]) == 0
        assert len(seen) == 3 * 3  # an untimed pass, then two timed rounds by default
        assert all(s == expected for s in seen) if expected else not any(enabled for enabled, _ in seen)
        (path,) = out.glob("harness-*.json")
        assert json.loads(path.read_text())["precision"] == precision


def test_harness_refuses_a_precision_the_plain_loop_cannot_mirror(data_dir, tmp_path, capsys):
    out = tmp_path / "b"
    assert main(["harness", f"data_dir={data_dir}", f"cache_dir={tmp_path / 'cache'}", "task.limits.train=300",
                 "trainer.precision=bf16-true", "--steps", "3", "--warmup", "1", "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "not trainer.precision=bf16-true" in err[0]
    assert not out.exists()


def test_harness_compare_runs_each_value_on_the_same_batches_in_rotating_order(data_dir, tmp_path, monkeypatch, capsys):
    """--compare: the Lightning harness once per value and round, the order rotating (A B, then B A), each timed pass
    after an untimed one of the same value, every side on the same stored batches with its own resolved precision;
    ratios are to the first value."""
    from attnbench.perf import harness

    calls = []
    original = harness.train_harness

    def recording(cfg, task, batches, warmup, precision):
        calls.append((precision, id(batches), cfg.trainer.precision))
        return original(cfg, task, batches, warmup, precision)

    monkeypatch.setattr(harness, "train_harness", recording)
    out = tmp_path / "bench"
    code = main(["harness", f"data_dir={data_dir}", f"cache_dir={tmp_path / 'cache'}", "task.limits.train=300",
                 "model.embed_dim=16", "model.hidden_dim=16", "trainer.accelerator=cpu", "--steps", "4", "--warmup",
                 "1", "--compare", "trainer.precision=32-true,bf16-mixed", "--out", str(out)])
    assert code == 0, capsys.readouterr().err
    # each timed pass right after an untimed one of the same value (the kernel caches then hold that value's kernels)
    assert [c[0] for c in calls] == ["32-true"] * 2 + ["bf16-mixed"] * 4 + ["32-true"] * 2
    assert len({c[1] for c in calls}) == 1  # one list of batches for every side
    (path,) = out.glob("harness-*-trainer-precision.json")
    result = json.loads(path.read_text())
    assert result["key"] == "trainer.precision" and result["values"] == ["32-true", "bf16-mixed"]
    assert result["precisions"] == ["32-true", "bf16-mixed"] and result["rounds"] == 2
    assert [len(r) for r in result["round_seconds"]] == [2, 2] and result["ratios"][0] == 1.0
    rates = result["tokens_per_second"]
    assert result["ratios"][1] == pytest.approx(rates[1] / rates[0], rel=1e-3)
    assert "bf16-mixed (bf16-mixed)" in capsys.readouterr().out


def test_harness_compare_bad_input_is_one_line_and_writes_nothing(data_dir, tmp_path, capsys):
    out = tmp_path / "bench"
    common = [f"data_dir={data_dir}", f"cache_dir={tmp_path / 'cache'}", "task.limits.train=300", "--steps", "3",
              "--warmup", "1", "--out", str(out)]
    for compare, message in [("trainer.precision=32-true", "at least two distinct values"),
                             ("trainer.precision", "at least two distinct values"),
                             ("task.max_length=16,32", "it changes the batches"),
                             ("trainer.batch_size=8,16", "it changes the batches"),
                             ("trainer.no_such_key=1,2", "no such setting")]:
        assert main(["harness", *common, "--compare", compare]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and message in err[0], err
    assert not out.exists()


def test_harness_jobs_sums_concurrent_processes_in_the_sweeps_environments(data_dir, tmp_path, capsys):
    """--jobs 1,2: one harness process, then two at once with the CPU threads split as `sweep --jobs 2` splits them;
    the throughput at each count is the sum over its processes."""
    out = tmp_path / "bench"
    code = main(["harness", f"data_dir={data_dir}", f"cache_dir={tmp_path / 'cache'}", "task.limits.train=300",
                 "model.embed_dim=16", "model.hidden_dim=16", "trainer.accelerator=cpu", "trainer.precision=32-true",
                 "--steps", "3", "--warmup", "1", "--jobs", "1,2", "--out", str(out)])
    assert code == 0, capsys.readouterr().err
    (path,) = out.glob("harness-*-jobs.json")
    result = json.loads(path.read_text())
    assert result["jobs"] == [1, 2] and [len(r) for r in result["process_tokens_per_second"]] == [1, 2]
    import os
    assert result["threads"] == [os.environ.get("OMP_NUM_THREADS", ""), str(max(1, (os.cpu_count() or 1) // 2))]
    assert result["tokens_per_second"][1] == pytest.approx(sum(result["process_tokens_per_second"][1]), abs=0.1)
    assert result["ratios"][0] == 1.0 and result["config"] == "sentiment/rnn/additive"


def test_harness_jobs_bad_input(tmp_path, capsys):
    out = tmp_path / "bench"
    for args, message in [(["--jobs", "2"], "at least two distinct"), (["--jobs", "1,x"], "at least two distinct"),
                          (["--jobs", "1,2", "--compare", "trainer.precision=32-true,bf16-mixed"], "pass one of them")]:
        assert main(["harness", *args, "--out", str(out)]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and message in err[0], err
    assert not out.exists()
