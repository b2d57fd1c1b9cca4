"""Truncation is never silent: per split, the share of sources/targets the length limits cut and the length
percentiles, on constructed datasets whose lengths are known; a warning above the stated share."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from attnbench.tasks.families import build_datamodule
from attnbench.data.lengths import WARN_SHARE, length_stats, truncation_warnings, warn_truncation
from tests.helpers import config


def write_split(folder: Path, name: str, rows: list[dict]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{name}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))


def test_length_stats_known_values():
    stats = length_stats([1, 2, 3, 4, 5, 6, 7, 8, 9, 10], limit=8)
    assert stats["truncated"] == pytest.approx(0.2)
    assert stats["p50"] == pytest.approx(5.5) and stats["max"] == 10
    assert stats["p90"] == pytest.approx(9.1)
    assert length_stats([], limit=3)["truncated"] == 0.0


def test_classification_lengths_on_a_constructed_dataset(tmp_path, capsys):
    # Word-level tokens: review i has i + 1 words; max_length 6 cuts every review of 7 words or more.
    words = lambda n: " ".join(f"w{j}" for j in range(n))  # noqa: E731
    folder = tmp_path / "data" / "sentiment" / "sst2"
    write_split(folder, "train", [{"text": words(i + 1), "label": i % 2} for i in range(20)])  # 1..20 words
    write_split(folder, "validation", [{"text": words(3), "label": 0}, {"text": words(4), "label": 1}])
    write_split(folder, "test", [{"text": words(10), "label": 0}, {"text": words(2), "label": 1}])
    cfg = config(tmp_path / "data", tmp_path / "cache", "task=sentiment", "task.max_length=6")
    data = build_datamodule(cfg)
    data.setup("fit")
    report = data.length_report()
    assert report["max_length"] == 6 and report["warn_share"] == WARN_SHARE
    train, val, test = (report["splits"][s] for s in ("train", "validation", "test"))
    assert train["examples"] == 20 and train["source"]["truncated"] == pytest.approx(14 / 20)
    assert train["source"]["max"] == 20 and train["source"]["p50"] == pytest.approx(10.5)
    assert val["source"]["truncated"] == 0.0 and test["source"]["truncated"] == pytest.approx(0.5)
    assert "target" not in train  # classification has no targets
    # The model still sees at most max_length tokens.
    assert max(data.lengths("train")) == 6
    lines = truncation_warnings(report, "sentiment/sst2")
    assert len(lines) == 2 and "train: 70.0% of sources" in lines[0] and "test: 50.0%" in lines[1]
    assert "task.max_length" in lines[0]
    warn_truncation(report, "sentiment/sst2")
    assert capsys.readouterr().err.count("attnbench: warning:") == 2


def test_seq2seq_target_truncation_counts_the_special_token(tmp_path):
    # max_target_length 5 counts BOS/EOS: a target keeps 4 tokens, so 5 or more are cut.
    folder = tmp_path / "data" / "translation" / "multi30k_en_de"
    rows = [{"src": "a b c", "tgt": " ".join(["x"] * n)} for n in (2, 4, 5, 9)]
    for split in ("train", "validation", "test"):
        write_split(folder, split, rows)
    cfg = config(tmp_path / "data", tmp_path / "cache", "task=translation", "task.tokenizer.kind=wordlevel",
                 "task.max_length=2", "task.max_target_length=5")
    data = build_datamodule(cfg)
    data.setup("fit")
    test = data.length_report()["splits"]["test"]
    assert test["source"]["truncated"] == 1.0 and test["source"]["max"] == 3
    assert test["target"]["truncated"] == pytest.approx(0.5) and test["target"]["max"] == 9
    assert data.length_report()["max_target_length"] == 5
    lines = truncation_warnings(data.length_report(), "translation/multi30k_en_de")
    assert any("50.0% of targets" in line and "task.max_target_length" in line for line in lines)
