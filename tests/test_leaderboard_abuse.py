"""The leaderboard's promises under abuse: runs on different data are never pooled or paired; a partial, non-finite
or mismatched record is skipped with its reason, never shown as a row; the output set is written all or nothing,
and a bad --out is refused in one line before any work."""

from __future__ import annotations

import errno
import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest

import attnbench.suite.leaderboard as leaderboard
from attnbench.cli import main
from attnbench.errors import AttnbenchError, ConfigError
from attnbench.tracking import record as record_module
from tests.test_leaderboard import N, board, correct_array, md_row, write_record

# ---- runs on different data ----------------------------------------------------------------------------------


def test_seeds_on_different_data_are_never_pooled_and_the_split_is_announced(tmp_path, capsys):
    runs = tmp_path / "runs"
    for seed in (1, 2, 3):
        write_record(runs, "additive", "rnn", seed, correct_array(0.7, seed), fingerprint="fp1")
        write_record(runs, "dot", "rnn", seed, correct_array(0.9, 10 + seed), fingerprint="fp1")
    for seed in (4, 5, 6):  # the same cells re-run after the data files changed
        write_record(runs, "additive", "rnn", seed, correct_array(0.5, seed), fingerprint="fp2")
        write_record(runs, "dot", "rnn", seed, correct_array(0.6, 10 + seed), fingerprint="fp2")
    out = tmp_path / "board"
    result = board(runs, out)
    err = capsys.readouterr().err
    assert [(s["name"], s["data_fingerprint"]) for s in result["sections"]] == [
        ("sentiment / sst2 (data fp1)", "fp1"), ("sentiment / sst2 (data fp2)", "fp2")]
    rows = {(r["data_fingerprint"], r["label"]): r for r in result["tasks"]["sentiment"]}
    assert {key: r["seeds"] for key, r in rows.items()} == {
        ("fp1", "additive"): [1, 2, 3], ("fp1", "dot"): [1, 2, 3],
        ("fp2", "additive"): [4, 5, 6], ("fp2", "dot"): [4, 5, 6]}
    # Δ against the baseline variant of the same data only.
    expected = np.mean([correct_array(0.9, 10 + s).mean() - correct_array(0.7, s).mean() for s in (1, 2, 3)])
    assert rows[("fp1", "dot")]["test"]["delta"] == pytest.approx(expected)
    assert rows[("fp1", "dot")]["test"]["family_size"] == 1
    warning = next(w for w in result["warnings"] if "different test sets" in w)
    assert warning.startswith("sentiment/sst2: records of 2 different test sets (provenance.test_fingerprint fp1:")
    assert "not pooled over seeds or compared" in warning
    assert f"attnbench: warning: {warning}" in err
    md = (out / "leaderboard.md").read_text()
    assert "## sentiment / sst2 (data fp1)" in md and "## sentiment / sst2 (data fp2)" in md
    assert f"- {warning}" in md  # under "Warnings and skipped records"
    assert "this table holds those of data fp1 only, never pooled or compared with the others (data fp2)" in md
    for slug in ("sentiment-sst2-fp1", "sentiment-sst2-fp2"):
        assert (out / "plots" / f"{slug}-accuracy.png").is_file()


def test_runs_on_other_training_data_but_the_same_test_set_share_a_table(tmp_path):
    """What is compared is the test set (provenance.test_fingerprint): a training-size ablation is rows of one table,
    its setting in the label, not separate data sets."""
    runs = tmp_path / "runs"
    for seed in (1, 2, 3):
        write_record(runs, "additive", "rnn", seed, correct_array(0.7, seed), fingerprint="all-a", test_fingerprint="t")
        write_record(runs, "additive", "rnn", seed, correct_array(0.6, 20 + seed), fingerprint="all-b",
                     test_fingerprint="t", extra=("task.limits.train=100",))
    result = board(runs, tmp_path / "board")
    assert [s["data_fingerprint"] for s in result["sections"]] == ["t"]
    assert not [w for w in result["warnings"] if "different test sets" in w]
    labels = sorted(r["label"] for r in result["tasks"]["sentiment"] if not r["missing"])
    assert labels == ["additive [task.limits.train=100]", "additive [task.limits.train=None]"]


def test_a_variant_on_other_data_than_the_baseline_variant_is_not_compared(tmp_path):
    runs = tmp_path / "runs"
    for seed in (1, 2, 3):
        write_record(runs, "additive", "rnn", seed, correct_array(0.7, seed), fingerprint="fp1")
        write_record(runs, "general", "rnn", seed, correct_array(0.9, 10 + seed), fingerprint="fp2")
    result = board(runs, tmp_path / "board")
    general = next(r for r in result["tasks"]["sentiment"] if r["label"] == "general" and not r["missing"])
    assert general["data_fingerprint"] == "fp2" and general["test_note"] == "no additive baseline"
    assert "test" not in general and "test_examples_only" not in general
    md = (tmp_path / "board" / "leaderboard.md").read_text()
    fp1, fp2 = md.split("## sentiment / sst2 (data fp1)")[1].split("## sentiment / sst2 (data fp2)")
    # Each table holds one data set: its best is bold there, never ranked against the other data's numbers.
    assert md_row(fp1, "additive", "rnn")["accuracy"].startswith("**")
    assert md_row(fp2, "general", "rnn")["accuracy"].startswith("**")
    assert md_row(fp2, "general", "rnn")["p (Holm)"] == "no additive baseline"


def flipped_rows(seed: int) -> tuple[list[dict], dict]:
    """Predictions on a test set with the same ids as write_record's but the opposite golds (other test data)."""
    correct = correct_array(0.8, 30 + seed)[:, 0]
    golds = [1 - i % 2 for i in range(N)]
    rows = [{"id": i, "prediction": g if c else 1 - g, "gold": g} for i, (g, c) in enumerate(zip(golds, correct))]
    return rows, {"accuracy": float(correct.mean()), "f1": 0.5}


def test_runs_that_list_other_test_examples_are_never_paired_even_without_fingerprints(tmp_path):
    runs = tmp_path / "runs"
    for seed in (1, 2, 3):  # older records: no fingerprint to tell the data apart
        write_record(runs, "additive", "rnn", seed, correct_array(0.7, seed), fingerprint=None)
        rows, test = flipped_rows(seed)
        write_record(runs, "dot", "rnn", seed, rows=rows, test=test, fingerprint=None)
    out = tmp_path / "board"
    result = board(runs, out)
    dot = next(r for r in result["tasks"]["sentiment"] if r["label"] == "dot")
    assert "test" not in dot and "test_examples_only" not in dot
    assert dot["test_note"] == "not paired: different test examples than the baseline (see warnings)"
    assert any("do not list the same test examples (id, gold)" in w for w in result["warnings"])
    assert md_row((out / "leaderboard.md").read_text(), "dot", "rnn")["p (Holm)"] == dot["test_note"]


# ---- partial, non-finite and mismatched records ----------------------------------------------------------------


def _edit_record(run_dir: Path, edit) -> None:
    record = json.loads((run_dir / "metrics.json").read_text())
    edit(record)
    (run_dir / "metrics.json").write_text(json.dumps(record))  # json.dumps writes a NaN as a bare NaN


def _set(*keys_and_value):
    *keys, value = keys_and_value

    def edit(record: dict) -> None:
        node = record
        for key in keys[:-1]:
            node = node.setdefault(key, {})
        node[keys[-1]] = value

    return edit


def _cut_config(run_dir: Path) -> None:
    text = (run_dir / "config.yaml").read_text()
    (run_dir / "config.yaml").write_text(text[: text.index("\ntrainer:") + 1])  # cut after the model section


def _config_of_another_run(run_dir: Path) -> None:
    other = run_dir.parent / run_dir.name.replace("-s3", "-s2")
    (run_dir / "config.yaml").write_text((other / "config.yaml").read_text())


def _half_predictions(run_dir: Path) -> None:
    lines = (run_dir / "predictions.jsonl").read_text().splitlines(keepends=True)
    (run_dir / "predictions.jsonl").write_text("".join(lines[: N // 2]))
    _edit_record(run_dir, _set("data", "splits", "test", "examples", N))


def _repeated_id(run_dir: Path) -> None:
    lines = (run_dir / "predictions.jsonl").read_text().splitlines(keepends=True)
    (run_dir / "predictions.jsonl").write_text("".join(lines[:-1] + lines[:1]))


DAMAGE = {
    "running": (lambda d: _edit_record(d, _set("status", "running")), "status 'running', not completed"),
    "bare NaN secondary metric": (lambda d: _edit_record(d, _set("metrics", "test", "f1", float("nan"))),
                                  "non-finite metrics.test.f1 = nan"),
    "completed with a NaN train loss": (lambda d: _edit_record(d, _set("metrics", "train", "loss_end", float("nan"))),
                                        "non-finite metrics.train.loss_end = nan"),
    "NaN written as null": (lambda d: _edit_record(d, _set("metrics", "val", "loss", None)),
                            "non-finite metrics.val.loss = null"),
    "infinite cost": (lambda d: _edit_record(d, _set("cost", "tokens_per_second", float("inf"))),
                      "non-finite cost.tokens_per_second = inf"),
    "no config.yaml": (lambda d: (d / "config.yaml").unlink(), "no readable config.yaml beside it"),
    "config.yaml not YAML": (lambda d: (d / "config.yaml").write_text("task: [unclosed\n"),
                             "no readable config.yaml beside it"),
    "config.yaml cut short": (_cut_config, "config.yaml beside it has no trainer, optim section"),
    "config.yaml of another run": (_config_of_another_run,
                                   "config.yaml beside it is not this record's configuration (its seed is 2, "
                                   "the record's 3)"),
    "no predictions.jsonl": (lambda d: (d / "predictions.jsonl").unlink(), "predictions.jsonl missing"),
    "predictions.jsonl cut mid-line": (
        lambda d: (d / "predictions.jsonl").write_text((d / "predictions.jsonl").read_text()[:-7]),
        f"predictions.jsonl line {N} is not a prediction row"),
    "half the predictions": (_half_predictions, f"predictions.jsonl has {N // 2} predictions but the record's test "
                                                f"split has {N} examples"),
    "an id twice": (_repeated_id, "predictions.jsonl lists an example id more than once"),
    "predictions of another metric value": (lambda d: _edit_record(d, _set("metrics", "test", "accuracy", 0.99)),
                                            "but metrics.json says 0.9900"),
}


@pytest.fixture(scope="module")
def healthy_records(tmp_path_factory) -> Path:
    runs = tmp_path_factory.mktemp("healthy") / "runs"
    for seed in (1, 2, 3):
        write_record(runs, "additive", "rnn", seed, correct_array(0.7, seed))
        write_record(runs, "dot", "rnn", seed, correct_array(0.8, 10 + seed))
    return runs


@pytest.fixture()
def healthy(healthy_records, tmp_path) -> Path:
    """additive and dot on rnn, 3 seeds each: a copy to damage."""
    return Path(shutil.copytree(healthy_records, tmp_path / "runs"))


@pytest.mark.parametrize("case", list(DAMAGE))
def test_a_partial_or_mismatched_record_is_skipped_with_its_reason(case, tmp_path, healthy):
    runs = healthy
    damage, reason = DAMAGE[case]
    damage(runs / "sentiment-rnn-dot-s3")
    found, skipped = leaderboard.read_runs(runs)
    assert sorted(r.run_id for r in found if r.record["attention"] == "dot") == ["sentiment-rnn-dot-s1",
                                                                                 "sentiment-rnn-dot-s2"]
    assert len(skipped) == 1 and skipped[0].startswith(str(runs / "sentiment-rnn-dot-s3" / "metrics.json"))
    assert reason in skipped[0]


def test_skipped_records_are_printed_and_listed_and_never_a_row(tmp_path, healthy, capsys):
    runs = healthy
    _edit_record(runs / "sentiment-rnn-dot-s3", _set("metrics", "train", "loss_end", float("nan")))
    (runs / "sentiment-rnn-dot-s2" / "predictions.jsonl").unlink()
    out = tmp_path / "board"
    result = board(runs, out)
    err = capsys.readouterr().err
    dot = next(r for r in result["tasks"]["sentiment"] if r["label"] == "dot")
    assert dot["seeds"] == [1] and dot["metrics"]["accuracy"]["n"] == 1
    assert not any("nan" in json.dumps(r.get("metrics", {})).lower() for r in result["tasks"]["sentiment"])
    for name, reason in (("sentiment-rnn-dot-s2", "predictions.jsonl missing"),
                         ("sentiment-rnn-dot-s3", "non-finite metrics.train.loss_end = nan")):
        assert f"attnbench: skipped {runs / name / 'metrics.json'}: {reason}" in err
        assert any(s.startswith(f"{runs / name / 'metrics.json'}: {reason}") for s in result["skipped"])
        assert f"- skipped {runs / name / 'metrics.json'}: {reason}" in (out / "leaderboard.md").read_text()


# ---- --out refused before any work ----------------------------------------------------------------------------


@pytest.fixture()
def no_work(monkeypatch):
    """Fail the test if the command reads a single record."""
    def read_runs(*args, **kwargs):
        raise AssertionError("records were read before --out was checked")

    monkeypatch.setattr(leaderboard, "read_runs", read_runs)


def _one_error_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("attnbench: error: "), err
    return err[0]


@pytest.mark.parametrize("where", ["out", "below out", "plots"])
def test_out_that_is_a_file_is_refused_in_one_line(where, tmp_path, healthy, capsys, no_work):
    runs = healthy
    target = tmp_path / "board"
    if where == "plots":
        target.mkdir()
        blocker = target / "plots"
    else:
        blocker = target
    blocker.write_text("not a folder\n")
    out = target / "sub" if where == "below out" else target
    assert main(["leaderboard", "--wandb", "disabled", "--runs", str(runs), "--out", str(out)]) == 2
    line = _one_error_line(capsys)
    assert f"--out {out}" in line and f"{blocker} is a file, not a folder: pass --out <a folder>" in line
    assert blocker.read_text() == "not a folder\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["board", "runs"]


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into a read-only folder: chmod cannot make one for it")
def test_read_only_out_is_refused_in_one_line(tmp_path, healthy, capsys, no_work):
    runs = healthy
    out = tmp_path / "board"
    out.mkdir()
    out.chmod(0o555)
    try:
        assert main(["leaderboard", "--wandb", "disabled", "--runs", str(runs), "--out", str(out / "new")]) == 2
    finally:
        out.chmod(0o755)
    line = _one_error_line(capsys)
    assert f"--out {out / 'new'} is not writable ({out} is read-only for this user)" in line
    assert "pass --out <a folder you can write>" in line and list(out.iterdir()) == []


def test_a_read_only_out_is_refused_whoever_runs_it(tmp_path, healthy, capsys, monkeypatch, no_work):
    """The same refusal where chmod cannot produce it (root): os.access answers as on a read-only mount."""
    runs = healthy
    out = tmp_path / "board"
    out.mkdir()
    monkeypatch.setattr(leaderboard.os, "access", lambda path, mode: Path(path) != out)
    assert main(["leaderboard", "--wandb", "disabled", "--runs", str(runs), "--out", str(out)]) == 2
    assert f"--out {out} is not writable ({out} is read-only for this user)" in _one_error_line(capsys)


# ---- all or nothing --------------------------------------------------------------------------------------------

PREVIOUS = {"leaderboard.md": "old md\n", "leaderboard.csv": "old csv\n", "leaderboard.json": "{}\n",
            "plots/kept.png": b"old kept", "plots/replaced.png": b"old png"}
NEW = {"leaderboard.md": "new md\n", "leaderboard.csv": "new csv\n", "leaderboard.json": '{"new": 1}\n',
       "plots/replaced.png": b"new png", "plots/added.png": b"new section"}


def snapshot(folder: Path) -> dict[str, bytes]:
    """Every file and folder under `folder`, hidden ones included (a staging leftover shows as one)."""
    return {str(p.relative_to(folder)): (p.read_bytes() if p.is_file() else b"<dir>") for p in folder.rglob("*")}


def previous_board(tmp_path: Path) -> Path:
    out = tmp_path / "board"
    for name, content in PREVIOUS.items():
        (out / name).parent.mkdir(parents=True, exist_ok=True)
        (out / name).write_bytes(content.encode() if isinstance(content, str) else content)
    return out


def count_calls(monkeypatch, module, name: str, tmp_path: Path) -> int:
    """How many calls of module.name a successful publish over PREVIOUS makes."""
    calls = []
    original = getattr(module, name)

    def counting(*args, **kwargs):
        calls.append(args)
        return original(*args, **kwargs)

    with monkeypatch.context() as m:
        m.setattr(module, name, counting)
        leaderboard.publish(previous_board(tmp_path / "count"), NEW)
    return len(calls)


def fail_at(monkeypatch, module, name: str, n: int, error: OSError) -> None:
    """module.name raises `error` on its n-th call, works otherwise (the rollback's own calls included)."""
    original, calls = getattr(module, name), []

    def failing(*args, **kwargs):
        calls.append(args)
        if len(calls) == n:
            if name == "_write":
                os.close(args[0])
            raise error
        return original(*args, **kwargs)

    monkeypatch.setattr(module, name, failing)


def test_a_successful_publish_replaces_every_file_and_leaves_no_staging(tmp_path):
    out = previous_board(tmp_path)
    leaderboard.publish(out, NEW)
    assert snapshot(out) == {"leaderboard.md": b"new md\n", "leaderboard.csv": b"new csv\n",
                             "leaderboard.json": b'{"new": 1}\n', "plots": b"<dir>", "plots/kept.png": b"old kept",
                             "plots/replaced.png": b"new png", "plots/added.png": b"new section"}


@pytest.mark.parametrize("hard_links", [True, False], ids=["hard links", "copies"])
@pytest.mark.parametrize("error", [errno.ENOSPC, errno.EACCES], ids=["disk full", "permission"])
def test_a_failed_rename_at_any_step_puts_the_previous_leaderboard_back(error, hard_links, tmp_path, monkeypatch):
    if not hard_links:  # a file system without them: the previous versions are copied instead
        def no_links(*args, **kwargs):
            raise OSError(errno.EPERM, "Operation not permitted")

        monkeypatch.setattr(os, "link", no_links)
    total = count_calls(monkeypatch, os, "replace", tmp_path)
    assert total == 2 * len(NEW)  # staged (write_atomic), then published
    for n in range(1, total + 1):
        out = previous_board(tmp_path / str(n))
        before = snapshot(out)
        with monkeypatch.context() as m:
            fail_at(m, os, "replace", n, OSError(error, os.strerror(error)))
            with pytest.raises(AttnbenchError) as raised:
                leaderboard.publish(out, NEW)
        assert snapshot(out) == before, f"os.replace call {n} of {total}"
        message = str(raised.value)
        assert message.startswith(f"cannot write the leaderboard into --out {out} (")
        assert "the previous leaderboard there is unchanged" in message and "output_dir=" not in message
        assert ("no space left on the device" in message) == (error == errno.ENOSPC)
        assert ("pass --out <a folder you can write>" in message) == (error == errno.EACCES)


@pytest.mark.parametrize("module, name, calls", [(record_module, "_write", len(NEW)), (os, "replace", 2 * len(NEW))],
                         ids=["writing", "renaming"])
def test_disk_full_at_any_step_of_a_first_leaderboard_leaves_nothing(module, name, calls, tmp_path, monkeypatch):
    for n in range(1, calls + 1):
        (tmp_path / str(n)).mkdir()
        out = tmp_path / str(n) / "results" / "board"
        with monkeypatch.context() as m:
            fail_at(m, module, name, n, OSError(errno.ENOSPC, "No space left on device"))
            with pytest.raises(AttnbenchError, match="no space left on the device"):
                leaderboard.publish(out, NEW)
        assert list((tmp_path / str(n)).iterdir()) == []  # nor the folders it would have created


def test_disk_full_while_writing_plots_leaves_the_previous_leaderboard_intact(tmp_path, healthy, capsys, monkeypatch):
    runs = healthy
    out = tmp_path / "board"
    board(runs, out)
    before = snapshot(out)
    write_record(runs, "general", "rnn", 1, correct_array(0.9, 40))  # the next leaderboard differs in every file
    capsys.readouterr()
    # Files are written md, csv, json, then the plots: the 4th is the first plot.
    fail_at(monkeypatch, record_module, "_write", 4, OSError(errno.ENOSPC, "No space left on device"))
    assert main(["leaderboard", "--wandb", "disabled", "--runs", str(runs), "--out", str(out), "--samples", "100"]) == 2
    assert snapshot(out) == before  # md, csv, json and plots all the previous ones, nothing staged left
    line = _one_error_line(capsys)
    assert line == (f"attnbench: error: cannot write the leaderboard into --out {out} "
                    f"({out / 'plots' / 'sentiment-sst2-quality-vs-time.png'}): no space left on the device; the "
                    "previous leaderboard there is unchanged: free disk space, or pass --out <a folder on another "
                    "disk>")


def test_config_error_type_for_a_bad_out(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(ConfigError):
        leaderboard.check_out(tmp_path / "file")
