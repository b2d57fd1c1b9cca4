"""A spec's `reuse:` folders: a cell whose configuration completed in another sweep's folder is copied, not trained
(suite/reuse.py), by the local launcher and by `--launcher slurm` alike; the copy is the source run under the new
cell's name, assembled out of sight so a failure leaves nothing half-copied."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from attnbench.cli import main
from attnbench.config import config_hash, load_config
from attnbench.errors import ConfigError
from attnbench.suite import reuse
from attnbench.suite.ledger import cell_status
from attnbench.suite.reuse import Reusable, adopt
from attnbench.suite.spec import load_spec
from attnbench.tracking.record import saved_config_hash

BASE = ("task.limits.train=300, task.limits.validation=64, task.limits.test=64, task.probes=0, trainer.max_epochs=1, "
        "trainer.batch_size=32, model.embed_dim=16, model.hidden_dim=16, wandb.mode=disabled, "
        "trainer.early_stopping_patience=0")


def write_spec(path: Path, out: Path, data_dir: Path, cache: Path, axes: str, extra: str = "", base: str = BASE) -> Path:
    path.write_text(f"# {path.stem}\nname: {path.stem}\noutput_dir: {out}\n"
                    f"base: [data_dir={data_dir}, cache_dir={cache}, {base}]\naxes:\n{axes}\nbaselines: false\n{extra}")
    return path


@pytest.fixture(scope="module")
def source(tmp_path_factory, data_dir) -> tuple[Path, Path]:
    """A finished sweep of one real tiny SST-2 cell (dot, seed 1): its output folder and its cache."""
    root = tmp_path_factory.mktemp("source")
    cache = root / "cache"
    spec = write_spec(root / "protocol.yaml", root / "protocol", data_dir, cache, "  attention: [dot]")
    assert main(["sweep", str(spec)]) == 0
    assert main(["explain", str(root / "protocol" / "dot"), "--permutations", "5", "--ig-steps", "4"]) == 0
    return root / "protocol", cache


def test_a_cell_completed_in_a_reuse_folder_is_copied_not_trained(source, tmp_path, data_dir, capsys):
    protocol, cache = source
    out = tmp_path / "ablation"
    # Two cells: seed 1 at hidden 16 is the protocol's dot cell exactly (another name, another folder); hidden 24
    # is not. A missing folder in the list is noted, not an error.
    spec = write_spec(tmp_path / "ablation.yaml", out, data_dir, cache,
                      "  attention: [dot]\n  model.hidden_dim: [16, 24]",
                      f"reuse: [{protocol}, {tmp_path / 'nosuch'}]\n", BASE.replace(", model.hidden_dim=16", ""))
    capsys.readouterr()
    assert main(["sweep", str(spec), "--dry-run"]) == 0
    dry = capsys.readouterr().out
    assert f"reuse dot-hidden_dim16: reusable: no run folder yet; the same configuration completed in {protocol}/dot" \
        in dry
    assert "run  dot-hidden_dim24: missing" in dry
    assert not out.exists()

    assert main(["sweep", str(spec)]) == 0
    log = capsys.readouterr().out
    assert "1 to copy from reuse folders, 1 to run" in log
    assert f"reuse folder {tmp_path / 'nosuch'} does not exist (yet)" in log
    assert f"reused dot-hidden_dim16: copied from {protocol}/dot" in log
    assert "summary: 1 done, 0 failed, 0 interrupted, 0 skipped, 0 live, 1 reused" in log

    copied, original = out / "dot-hidden_dim16", protocol / "dot"
    record, first = (json.loads((d / "metrics.json").read_text()) for d in (copied, original))
    assert record["run_id"] == "dot-hidden_dim16" and record["reused_from"] == str(original)
    assert {k: v for k, v in record.items() if k not in ("run_id", "reused_from")} == \
        {k: v for k, v in first.items() if k != "run_id"}
    assert (copied / "predictions.jsonl").read_bytes() == (original / "predictions.jsonl").read_bytes()
    explained = json.loads((copied / "explain.json").read_text())
    assert explained.pop("run_id") == "dot-hidden_dim16"
    assert explained == {k: v for k, v in json.loads((original / "explain.json").read_text()).items() if k != "run_id"}
    assert (copied / "checkpoints" / "last.ckpt").stat().st_ino == (original / "checkpoints" / "last.ckpt").stat().st_ino
    # The copy is this sweep's cell: its saved config names it and hashes as the cell's configuration; the source
    # is untouched.
    assert "run_id: dot-hidden_dim16" in (copied / "config.yaml").read_text()
    assert f"output_dir: {out}" in (copied / "config.yaml").read_text()
    assert saved_config_hash(copied) == load_spec(spec).hashes["dot-hidden_dim16"] == saved_config_hash(original)
    assert "run_id: dot\n" in (original / "config.yaml").read_text() and first["run_id"] == "dot"
    ledger = json.loads((out / ".sweep" / "ablation.json").read_text())["cells"]
    assert ledger["dot-hidden_dim16"]["state"] == "done" and ledger["dot-hidden_dim16"]["reused_from"] == str(original)
    assert not [p for p in out.iterdir() if p.name.startswith(".reuse")]

    # Done now: a second sweep skips both; the leaderboard reads the copy as this sweep's run.
    assert main(["sweep", str(spec)]) == 0
    assert "0 to run" in capsys.readouterr().out
    capsys.readouterr()
    assert main(["leaderboard", "--wandb", "disabled", "--runs", str(out), "--out", str(tmp_path / "board"),
                 "--baseline", "dot[model.hidden_dim=16]"]) == 0
    assert "explain.json" not in capsys.readouterr().err  # the copy's explain.json is read as its own
    rows = json.loads((tmp_path / "board" / "leaderboard.json").read_text())["tasks"]["sentiment"]
    accuracy = {r["label"]: r["metrics"]["accuracy"]["mean"] for r in rows if r.get("attention")}
    assert accuracy == {"dot [model.hidden_dim=16]": first["metrics"]["test"]["accuracy"],
                        "dot [model.hidden_dim=24]": json.loads((out / "dot-hidden_dim24" / "metrics.json")
                                                                .read_text())["metrics"]["test"]["accuracy"]}


def test_an_own_failed_attempt_is_set_aside_and_the_completed_run_copied(source, tmp_path, data_dir, capsys):
    protocol, cache = source
    out = tmp_path / "again"
    spec = write_spec(tmp_path / "again.yaml", out, data_dir, cache, "  attention: [dot]", f"reuse: [{protocol}]\n")
    # The cell's own attempt: the same configuration, failed.
    mine = out / "dot"
    mine.mkdir(parents=True)
    (mine / "config.yaml").write_text((protocol / "dot" / "config.yaml").read_text())
    (mine / "metrics.json").write_text(json.dumps({"run_id": "dot", "status": "failed", "error": "out of memory"}))
    (cell,) = load_spec(spec).cells()
    status = cell_status(cell, out, {}, None, Reusable([protocol]))
    assert status.state == "reusable" and status.source == protocol / "dot"
    assert "last attempt failed: out of memory" in status.reason

    assert main(["sweep", str(spec)]) == 0
    assert "previous attempt (last attempt failed: out of memory) moved to" in capsys.readouterr().out
    assert json.loads((mine / "metrics.json").read_text())["reused_from"] == str(protocol / "dot")
    (kept,) = (out / ".attempts").iterdir()
    assert json.loads((kept / "metrics.json").read_text())["error"] == "out of memory"


def test_a_failed_copy_leaves_no_folder_behind(source, tmp_path, monkeypatch):
    protocol, _ = source
    out = tmp_path / "runs"
    out.mkdir()
    spec = write_spec(tmp_path / "x.yaml", out, Path("/data"), tmp_path, "  attention: [dot]")
    loaded = load_spec(spec)
    (cell,) = loaded.cells()
    # A source of another configuration is refused, whatever found it.
    other = load_spec(write_spec(tmp_path / "y.yaml", out, Path("/data"), tmp_path, "  attention: [general]"))
    with pytest.raises(ConfigError, match="another configuration than cell general"):
        adopt(protocol / "dot", other.cells()[0], out, other.config(other.cells()[0]))

    def full_disk(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(reuse, "write_json", full_disk)
    with pytest.raises(OSError, match="No space left"):
        adopt(protocol / "dot", cell, out, loaded.config(cell))
    assert [p.name for p in out.iterdir()] == []  # no cell folder, no staging folder, no lock
    assert json.loads((protocol / "dot" / "metrics.json").read_text())["run_id"] == "dot"


def test_reuse_of_the_specs_own_folder_is_refused_in_one_line(tmp_path, capsys):
    spec = tmp_path / "self.yaml"
    spec.write_text(f"name: self\noutput_dir: {tmp_path / 'runs'}\naxes:\n  attention: [dot]\n"
                    f"reuse: [{tmp_path / 'runs'}]\n")
    assert main(["sweep", str(spec), "--dry-run"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "reuse lists" in err and "own output_dir" in err
    assert not (tmp_path / "runs").exists()


def test_a_head_width_of_width_over_heads_is_the_default_configuration():
    """attention.head_dim at the width / heads that null gives builds the same modules: the same configuration
    (hash); any other width is another one."""
    default = config_hash(load_config(["model=transformer", "attention=dot"]))
    assert config_hash(load_config(["model=transformer", "attention=dot", "attention.head_dim=256"])) == default
    assert config_hash(load_config(["model=transformer", "attention=dot", "attention.head_dim=64"])) != default
    eight = config_hash(load_config(["model=transformer", "attention=multihead"]))
    assert config_hash(load_config(["model=transformer", "attention=multihead", "attention.head_dim=32"])) == eight
    assert config_hash(load_config(["model=transformer", "attention=multihead", "attention.head_dim=256"])) != eight
    # A BiLSTM's attention works at 2 x hidden: 128 at hidden 64, where 8 heads of 16 are the default.
    bilstm = ["attention=multihead", "model.hidden_dim=64"]
    assert config_hash(load_config([*bilstm, "attention.head_dim=16"])) == config_hash(load_config(bilstm))
    assert config_hash(load_config([*bilstm, "attention.head_dim=32"])) != config_hash(load_config(bilstm))


@pytest.mark.parametrize("ablation, copied", [
    ("ablation_heads_cpu", {f"s{seed}-heads8": f"translation-transformer-multihead-s{seed}" for seed in (1, 2, 3)}),
    ("ablation_scaling_cpu", {f"s{seed}-{kind}-head_dim256": f"translation-transformer-{kind}-s{seed}"
                              for seed in (1, 2, 3) for kind in ("dot", "scaled_dot", "additive")}),
])
def test_the_cpu_ablations_reuse_exactly_the_protocols_cells_they_contain(ablation, copied):
    """The heads ablation's 8-head cells and the scaling ablation's d_k 256 cells are the CPU protocol's
    transformer cells, setting for setting: each spec lists the protocol's folder, and the hashes agree."""
    root = Path(__file__).resolve().parent.parent
    spec = load_spec(root / "experiments" / f"{ablation}.yaml")
    protocol = load_spec(root / "experiments" / "leaderboard_cpu.yaml")
    assert spec.reuse == [Path("results/sweeps/leaderboard_cpu")]
    by_hash = {protocol.hashes[c.id]: c.id for c in protocol.cells()}
    assert {c.id: by_hash[spec.hashes[c.id]] for c in spec.cells() if spec.hashes[c.id] in by_hash} == copied
    assert os.path.isdir(root / "results" / "sweeps" / "leaderboard_cpu")
