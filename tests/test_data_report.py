"""`attnbench data`: the figures of a constructed dataset whose counts, lengths, unknown words and labels are
known by construction, in text and JSON; a broken dataset is refused with the loader's one-line error."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest
import sacrebleu

from attnbench.cli import main


def _write(root: Path, task: str, dataset: str, splits: dict[str, list[dict]]) -> None:
    folder = root / task / dataset
    folder.mkdir(parents=True, exist_ok=True)
    for split, rows in splits.items():
        with gzip.open(folder / f"{split}.jsonl.gz", "wt", encoding="utf-8") as f:
            f.write("".join(json.dumps(row) + "\n" for row in rows))


# train: 6 x "good film" (positive) + 4 x "bad film here" (negative); validation: "movie" is never seen in train;
# test: 3 of 4 texts are longer than max_length=4 tokens.
SENTIMENT = {
    "train": [{"text": "good film", "label": 1}] * 6 + [{"text": "bad film here", "label": 0}] * 4,
    "validation": [{"text": "good movie", "label": 1}] * 2 + [{"text": "bad film", "label": 0}] * 2,
    "test": [{"text": "good film good film good", "label": 1}, {"text": "bad film", "label": 0},
             {"text": "bad bad bad film film film", "label": 0}, {"text": "good good good good good", "label": 1}],
}


def _report(capsys, *overrides: str) -> dict:
    assert main(["data", "--json", *overrides]) == 0
    return json.loads(capsys.readouterr().out)


def test_classification_figures_match_the_construction(tmp_path, capsys):
    _write(tmp_path / "data", "sentiment", "mini", SENTIMENT)
    args = ["task=sentiment", "task.dataset=mini", "task.local.dataset=mini", "task.max_length=4",
            f"data_dir={tmp_path / 'data'}", f"cache_dir={tmp_path / 'cache'}"]
    report = _report(capsys, *args)
    train, validation, test = (report["splits"][s] for s in ("train", "validation", "test"))
    assert (train["examples"], validation["examples"], test["examples"]) == (10, 4, 4)
    assert train["source"]["p50"] == 2.0 and train["source"]["max"] == 3 and train["source"]["truncated"] == 0.0
    assert test["source"]["truncated"] == 0.75 and test["source"]["max"] == 6
    assert train["source"]["unk"] == 0.0 and train["source"]["coverage"] == 1.0
    # "movie": 2 of the 8 validation tokens are [UNK]; 3 of its 4 distinct words are in the vocabulary.
    assert validation["source"]["unk"] == pytest.approx(2 / 8) and validation["source"]["coverage"] == 0.75
    assert validation["source"]["tokens_per_word"] == 1.0
    assert train["labels"] == {"negative": 4, "positive": 6} and test["labels"] == {"negative": 2, "positive": 2}
    assert report["baselines"]["majority"]["accuracy"] == 0.5  # always "positive"
    assert report["tokenizer"]["source"]["vocab_size"] == 5 + 4  # the special tokens and good, film, bad, here

    assert main(["data", *args]) == 0
    text = capsys.readouterr().out
    assert "validation   source          4  2/2/2/2" in text and "25.00%" in text and "75.0%" in text
    assert "labels train        negative 40.0% (4), positive 60.0% (6)" in text
    assert "trivial baseline majority (test): accuracy 50.00, f1 33.33" in text


def test_seq2seq_figures_and_the_baseline_as_sacrebleu_scores_it(tmp_path, capsys):
    pairs = [("a small dog runs", "ein kleiner hund rennt"), ("two men talk", "zwei männer reden"),
             ("a dog sleeps", "ein hund schläft")]
    rows = [{"src": s, "tgt": t} for s, t in pairs]
    _write(tmp_path / "data", "translation", "mini", {"train": rows * 3, "validation": rows, "test": rows})
    report = _report(capsys, "task=translation", "task.dataset=mini", "task.local.dataset=mini",
                     "task.tokenizer.kind=wordlevel", "task.max_length=3", "task.max_target_length=4",
                     f"data_dir={tmp_path / 'data'}", f"cache_dir={tmp_path / 'cache'}")
    test = report["splits"]["test"]
    assert test["examples"] == 3 and "labels" not in test
    assert test["source"]["max"] == 4 and test["source"]["truncated"] == pytest.approx(1 / 3, abs=1e-4)  # > 3 tokens
    assert test["target"]["max"] == 4 and test["target"]["truncated"] == pytest.approx(1 / 3, abs=1e-4)  # > 4 - 1 tokens
    assert test["target"]["unk"] == 0.0 and test["target"]["coverage"] == 1.0
    expected = sacrebleu.corpus_bleu([s for s, _ in pairs], [[t for _, t in pairs]]).score
    assert report["baselines"]["copy_source"]["bleu"] == pytest.approx(expected)


def test_a_broken_dataset_is_a_one_line_error(tmp_path, capsys):
    broken = dict(SENTIMENT, train=SENTIMENT["train"][:3] + [{"text": "no label"}] + SENTIMENT["train"][3:])
    _write(tmp_path / "data", "sentiment", "mini", broken)
    assert main(["data", "task=sentiment", "task.local.dataset=mini", f"data_dir={tmp_path / 'data'}",
                 f"cache_dir={tmp_path / 'cache'}"]) == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert "train.jsonl.gz line 4: missing field 'label'" in err
