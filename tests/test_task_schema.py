"""`attnbench config --schema BLOCK` lists every key of the typed schema with its type, default, rule and meaning;
task keys that one family alone reads are listed (and printed in a config) for that family only."""

from __future__ import annotations

import dataclasses

import pytest

from attnbench.cli import main
from attnbench.config import RunConfig, load_config
from attnbench.config import schema as schema_module
from attnbench.config.describe import BLOCKS, family_view, render_schema, schema_keys
from attnbench.config.families import FAMILIES


def _leaves(cls: type, prefix: str = "") -> list[str]:
    keys = []
    for field in dataclasses.fields(cls):
        nested = getattr(schema_module, str(field.type), None)
        if dataclasses.is_dataclass(nested):
            keys += _leaves(nested, f"{prefix}{field.name}.")
        else:
            keys.append(f"{prefix}{field.name}")
    return keys


def test_the_listing_covers_every_key_of_the_schema_and_explains_each():
    listed = [doc.key for block in BLOCKS for doc in schema_keys(block)]
    assert sorted(listed) == sorted(_leaves(RunConfig)) and len(listed) == len(set(listed))
    for block in BLOCKS:
        for doc in schema_keys(block):
            assert len(doc.meaning) >= 10, f"{doc.key} has no meaning in schema.py: write a comment beside it"
            assert doc.default and doc.type


def test_rules_and_defaults_come_from_the_schema_and_the_validator():
    docs = {doc.key: doc for doc in schema_keys("task")}
    assert docs["task.tokenizer.kind"].rule == "wordlevel | bpe" and docs["task.tokenizer.kind"].default == "wordlevel"
    assert docs["task.max_length"].rule == "> 0" and docs["task.max_length"].default == "128"
    assert docs["task.label_smoothing"].rule == "[0, 1)" and docs["task.name"].default == "required"
    assert docs["task.family"].rule == " | ".join(FAMILIES) and docs["task.max_target_length"].type == "int or null"
    # The comment's copy of the rule is not repeated in the meaning.
    assert docs["task.max_length"].meaning.startswith("tokens per input")


def test_family_keys_appear_only_for_their_family(capsys):
    text = render_schema("task")
    shared, _ = text.split("task keys, classification tasks only")
    assert "task.decoding.beam_size" not in shared and "task.labels " not in shared and "task.max_length" in shared
    assert main(["config", "--schema", "task", "task=translation"]) == 0
    seq2seq = capsys.readouterr().out
    assert "task.decoding.beam_size" in seq2seq and "task.labels " not in seq2seq
    assert "seq2seq tasks only" in seq2seq and "classification tasks only" not in seq2seq
    assert main(["config", "--schema", "task", "task=sentiment"]) == 0
    sentiment = capsys.readouterr().out
    assert "task.labels" in sentiment and "task.decoding." not in sentiment and "task.scorer" not in sentiment


def test_a_printed_config_leaves_out_the_other_familys_keys(capsys):
    view = family_view(load_config(["task=sentiment"]))
    assert "decoding" not in view.task and "scorer" not in view.task and "shared" not in view.task.tokenizer
    assert list(view.task.labels) == ["negative", "positive"]
    view = family_view(load_config(["task=translation"]))
    assert "labels" not in view.task and view.task.decoding.beam_size == 5
    assert main(["config", "task=sentiment"]) == 0
    assert "decoding:" not in capsys.readouterr().out


def test_an_unknown_block_is_refused(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["config", "--schema", "tsak"])
    assert exit_info.value.code == 2 and "invalid choice: 'tsak'" in capsys.readouterr().err
