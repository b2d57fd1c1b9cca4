"""Small helpers shared by the tests."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import torch

from attnbench.config import load_config


def config(data_dir: Path | None, cache_dir: Path, *overrides: str):
    base = [f"cache_dir={cache_dir}"] + ([f"data_dir={data_dir}"] if data_dir is not None else [])
    return load_config([*base, *overrides])


def first_lines(path: Path, n: int) -> list[dict]:
    with gzip.open(path, "rt", encoding="utf-8") as f:
        return [json.loads(next(f)) for _ in range(n)]


# Overrides of a tiny real run (seconds on 2 cores): a slice of each split, one epoch, small widths.
TINY = ["task.limits.train=200", "task.limits.validation=32", "task.limits.test=32", "task.probes=1",
        "trainer.max_epochs=1", "trainer.batch_size=32", "trainer.enable_progress_bar=false", "wandb.mode=disabled",
        "trainer.early_stopping_patience=0", "model.embed_dim=16", "model.hidden_dim=16"]


def run_record(out: Path) -> dict:
    (path,) = out.glob("*/metrics.json")
    return json.loads(path.read_text())


def assert_one_line_naming(message: str, *parts: str) -> None:
    """A data error is one line that names every one of `parts` (the file, the line, the field, the fix)."""
    for part in parts:
        assert part in message, (part, message)
    assert "\n" not in message


def wandb_records(path: Path, kind: str) -> list[dict]:
    """The `kind` records ("summary", "history") of an offline W&B run file (run-<id>.wandb) as {key: JSON value}."""
    from attnbench.tracking.wandb_file import run_records

    out = []
    for record in run_records(path):
        if record.WhichOneof("record_type") == kind:
            items = record.summary.update if kind == "summary" else record.history.item
            out.append({item.key or "/".join(item.nested_key): json.loads(item.value_json) for item in items})
    return out


def record(run_dir: Path) -> dict:
    return json.loads((run_dir / "metrics.json").read_text())


def assert_same_run(resumed: Path, whole: Path) -> None:
    a, b = record(resumed), record(whole)
    assert a["status"] == "completed", a.get("error")
    assert a["metrics"] == b["metrics"]
    assert (a["cost"]["steps"], a["cost"]["epochs"]) == (b["cost"]["steps"], b["cost"]["epochs"])
    # The learning history: the earlier attempt's validations kept, a redone one replaced (not repeated); only the
    # clock differs.
    def curve(r: dict) -> list[dict]:
        return [{k: v for k, v in entry.items() if k != "train_seconds"} for entry in r["history"]]

    assert curve(a) == curve(b) and len(curve(b)) >= 2
    assert (resumed / "predictions.jsonl").read_text() == (whole / "predictions.jsonl").read_text()
    # The weights and optimizer state of the last validation, bit for bit.
    x, y = (torch.load(run / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
            for run in (resumed, whole))
    assert x["global_step"] == y["global_step"]
    torch.testing.assert_close(x["state_dict"], y["state_dict"], rtol=0, atol=0)
    torch.testing.assert_close(x["optimizer_states"], y["optimizer_states"], rtol=0, atol=0)
    # Every rank's token count (for tokens/s) and RNG state (dropout).
    for rank, same in zip(x["attnbench"]["ranks"], y["attnbench"]["ranks"], strict=True):
        assert rank["train_tokens"] == same["train_tokens"] and torch.equal(rank["torch_rng"], same["torch_rng"])
