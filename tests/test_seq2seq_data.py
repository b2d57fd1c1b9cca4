"""Seq2seq data on real slices of Multi30k and CNN/DailyMail: canonical src/tgt, BPE that detokenizes exactly,
teacher-forcing batches, bucketing by the longer side, direction by config, fixed probes, malformed data refused.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from datasets import Dataset

import attnbench.data.datamodule as datamodule_module
import attnbench.data.tokenizer as tokenizer_module
from attnbench.data import Seq2SeqDataModule, collate_seq2seq, load_split, padding_fraction
from attnbench.tasks.families import build_datamodule
from attnbench.data.tokenizer import BOS, EOS, PAD, UNK
from attnbench.errors import DataError
from tests.helpers import config, first_lines

MULTI30K = "translation/multi30k_en_de"
CNNDM = "summarization/cnn_dailymail"
# Small train slices keep tokenizer training fast; validation is whole (1,014 and 2,000 rows) for the round trip.
TRANSLATION = ("task=translation", "task.limits.train=3000", "task.limits.test=100", "task.tokenizer.vocab_size=2000")
SUMMARIZATION = ("task=summarization", "task.limits.train=400", "task.limits.test=50",
                 "task.tokenizer.vocab_size=3000")


def ready(cfg) -> Seq2SeqDataModule:
    data = build_datamodule(cfg)
    assert isinstance(data, Seq2SeqDataModule)
    data.setup("fit")
    return data


@pytest.fixture(scope="module")
def cache(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("seq2seq-cache")


@pytest.fixture(scope="module")
def translation(data_dir, cache) -> Seq2SeqDataModule:
    return ready(config(data_dir, cache, *TRANSLATION))


@pytest.fixture(scope="module")
def summarization(data_dir, cache) -> Seq2SeqDataModule:
    return ready(config(data_dir, cache, *SUMMARIZATION))


# ---- sources -------------------------------------------------------------------------------------------------


def test_translation_and_summarization_splits_have_canonical_src_tgt(data_dir, tmp_path):
    cfg = config(data_dir, tmp_path, *TRANSLATION, "task.limits.train=20")
    train = load_split(cfg.task, "train", str(data_dir), str(tmp_path))
    assert sorted(train.column_names) == ["id", "src", "tgt"] and list(train["id"]) == list(range(20))
    lines = first_lines(data_dir / MULTI30K / "train.jsonl.gz", 3)
    assert [(train[i]["src"], train[i]["tgt"]) for i in range(3)] == [(r["src"], r["tgt"]) for r in lines]
    assert len(load_split(cfg.task, "test", str(data_dir), str(tmp_path))) == 100  # test_2016_flickr, limited

    cfg = config(data_dir, tmp_path, *SUMMARIZATION, "task.limits.train=5")
    train = load_split(cfg.task, "train", str(data_dir), str(tmp_path))
    assert sorted(train.column_names) == ["id", "src", "tgt"]
    lines = first_lines(data_dir / CNNDM / "train.jsonl.gz", 2)
    assert [(train[i]["src"], train[i]["tgt"]) for i in range(2)] == [(r["document"], r["summary"]) for r in lines]


def test_reversed_direction_is_a_yaml_file_that_swaps_src_and_tgt(data_dir, cache, translation):
    cfg = config(data_dir, cache, *TRANSLATION, "task=translation_de_en")
    task = cfg.task
    assert (task.name, task.dataset, task.local.dataset) == ("translation", "multi30k_de_en", "multi30k_en_de")
    assert dict(cfg.task.hub.columns) == {"src": "de", "tgt": "en"}
    backwards = ready(cfg)
    assert backwards.sources("validation") == translation.references("validation")  # German in
    assert backwards.references("validation") == translation.sources("validation")  # English out
    assert backwards.fingerprint != translation.fingerprint
    # The same direction by overrides alone gives the same data.
    by_override = config(data_dir, cache, *TRANSLATION, "task.local.columns={src: tgt, tgt: src}")
    assert ready(by_override).fingerprint == backwards.fingerprint


def test_hub_seq2seq_columns_are_mapped_and_reversible(tmp_path, monkeypatch):
    """The hub path with `datasets.load_dataset` standing in for the network (bentrevett/multi30k has en/de)."""
    raw = Dataset.from_dict({"en": ["A dog runs.", "Two men."], "de": ["Ein Hund rennt.", "Zwei Männer."]})
    monkeypatch.setattr("attnbench.data.hub.check_hub_reachable", lambda: None)
    monkeypatch.setattr("datasets.load_dataset", lambda *args, **kwargs: raw)
    forward = load_split(config(None, tmp_path, "task=translation", "task.source=hub").task, "train", None,
                         str(tmp_path))
    assert forward.to_list()[0] == {"src": "A dog runs.", "tgt": "Ein Hund rennt.", "id": 0}
    backward = load_split(config(None, tmp_path, "task=translation_de_en", "task.source=hub").task, "train", None,
                          str(tmp_path))
    assert backward.to_list()[1] == {"src": "Zwei Männer.", "tgt": "Two men.", "id": 1}


# ---- tokenizers ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["translation", "summarization"])
def test_bpe_round_trips_the_real_validation_sets(name, request):
    """decode(encode(x)) == x on every validation source and target: what sacreBLEU/ROUGE need to score raw text.

    Measured with these slice-trained tokenizers (and with the full-data ones of the task configs): 100% on
    Multi30k (1,014 sources, 1,014 targets) and CNN/DailyMail (2,000 documents, 2,000 summaries). Without byte
    fallback 2 CNN/DailyMail documents held characters unseen in training and came back with them missing.
    """
    data: Seq2SeqDataModule = request.getfixturevalue(name)
    validation = data.splits["validation"]
    assert len(validation) == {"translation": 1014, "summarization": 2000}[name]
    for side, tokenizer in (("src", data.src_tokenizer), ("tgt", data.tgt_tokenizer)):
        texts = list(validation[side])
        encodings = tokenizer.encode_batch(texts, add_special_tokens=False)
        exact = sum(tokenizer.decode(e.ids) == text for e, text in zip(encodings, texts)) / len(texts)
        assert exact >= 0.99, f"{name} {side}: only {exact:.2%} of validation texts round-trip"
        unk = tokenizer.token_to_id(UNK)
        assert not any(unk in e.ids for e in encodings), "byte fallback should leave no [UNK]"
    # Characters that are in no training text are spelled in bytes and come back.
    text = "Ein Café — 東京 😀"
    assert data.decode(data.tgt_tokenizer.encode(text).ids) == (text.lower() if name == "summarization" else text)


def test_shared_vocab_is_one_tokenizer_and_separate_vocabs_are_two(data_dir, cache, translation):
    assert translation.shared_vocab and translation.src_tokenizer is translation.tgt_tokenizer
    assert translation.src_vocab_size == translation.tgt_vocab_size == 2000
    assert [translation.pad_id, translation.bos_id, translation.eos_id] == [0, 3, 4]

    separate = ready(config(data_dir, cache, *TRANSLATION, "task.tokenizer.shared=false"))
    assert not separate.shared_vocab and separate.src_tokenizer is not separate.tgt_tokenizer
    assert separate.tokenizer_hash != translation.tokenizer_hash
    # Each side's vocabulary holds its own language's words.
    assert separate.tgt_tokenizer.token_to_id("▁Gruppe") is not None
    assert separate.src_tokenizer.token_to_id("▁Gruppe") is None
    assert separate.src_tokenizer.token_to_id("▁group") is not None
    assert separate.tgt_tokenizer.token_to_id("▁group") is None
    for tokenizer in (separate.src_tokenizer, separate.tgt_tokenizer):
        assert [tokenizer.token_to_id(t) for t in (PAD, BOS, EOS)] == [0, 3, 4]
    # Same texts, other tokens: the references a metric sees do not depend on the vocabulary.
    assert separate.references("validation") == translation.references("validation")


def test_tokenizers_and_tokenized_splits_are_reused_from_the_cache(data_dir, cache, translation, monkeypatch):
    def must_not_run(*args, **kwargs):
        raise AssertionError("a second data module with the same inputs must load from the cache")

    monkeypatch.setattr(tokenizer_module, "_untrained", must_not_run)
    monkeypatch.setattr(datamodule_module, "_encode_pairs", must_not_run)
    again = ready(config(data_dir, cache, *TRANSLATION, "seed=5"))
    again.setup("test")  # idempotent
    assert (again.fingerprint, again.tokenizer_hash) == (translation.fingerprint, translation.tokenizer_hash)
    for split in ("train", "validation", "test"):
        assert again.splits[split].cache_files == translation.splits[split].cache_files

    # A different target limit re-tokenizes (the cache key holds it) but keeps the tokenizer.
    monkeypatch.undo()
    monkeypatch.setattr(tokenizer_module, "_untrained", must_not_run)
    shorter = ready(config(data_dir, cache, *TRANSLATION, "task.max_target_length=8"))
    assert shorter.tokenizer_hash == translation.tokenizer_hash
    assert max(len(ids) for ids in shorter.splits["train"]["tgt_ids"]) == 7  # room for BOS / EOS


# ---- batches -----------------------------------------------------------------------------------------------------


def test_collate_places_bos_and_eos_and_masks_padding():
    batch = collate_seq2seq([{"src_ids": [5, 6, 7], "tgt_ids": [8, 9], "id": 4},
                             {"src_ids": [10], "tgt_ids": [11, 12, 13], "id": 1}], pad_id=0, bos_id=3, eos_id=4)
    assert batch["src"].tolist() == [[5, 6, 7], [10, 0, 0]]
    assert batch["src_mask"].tolist() == [[True, True, True], [True, False, False]]
    assert batch["tgt_in"].tolist() == [[3, 8, 9, 0], [3, 11, 12, 13]]
    assert batch["tgt_out"].tolist() == [[8, 9, 4, 0], [11, 12, 13, 4]]
    assert batch["tgt_mask"].tolist() == [[True, True, True, False], [True, True, True, True]]
    assert batch["ids"].tolist() == [4, 1]


@pytest.mark.parametrize("name", ["translation", "summarization"])
def test_batches_are_teacher_forcing_pairs_within_the_length_limits(name, request):
    data: Seq2SeqDataModule = request.getfixturevalue(name)
    task = data.cfg.task
    batch = next(iter(data.train_dataloader()))
    assert set(batch) == {"src", "src_mask", "tgt_in", "tgt_out", "tgt_mask", "ids"}
    (b, s), t = batch["src"].shape, batch["tgt_in"].shape[1]
    assert batch["src_mask"].shape == (b, s) and batch["tgt_out"].shape == batch["tgt_mask"].shape == (b, t)
    assert batch["src_mask"].dtype == batch["tgt_mask"].dtype == torch.bool and batch["ids"].shape == (b,)
    assert s <= task.max_length and t <= task.max_target_length
    assert (batch["tgt_in"][:, 0] == data.bos_id).all()
    lengths = batch["tgt_mask"].sum(1)
    rows = torch.arange(b)
    assert (batch["tgt_out"][rows, lengths - 1] == data.eos_id).all()
    assert (batch["tgt_in"][:, 1:] == batch["tgt_out"][:, :-1]).logical_or(~batch["tgt_mask"][:, 1:]).all()
    for key, mask in (("src", "src_mask"), ("tgt_in", "tgt_mask"), ("tgt_out", "tgt_mask")):
        assert (batch[key][~batch[mask]] == data.pad_id).all()
    assert not (batch["src"][batch["src_mask"]] == data.eos_id).any(), "sources carry no BOS/EOS"

    # Validation covers every example once, and decoding tgt_out gives the raw reference back (unless truncated).
    references = data.references("validation")
    seen, exact = [], 0
    for batch in data.val_dataloader():
        seen += batch["ids"].tolist()
        exact += sum(data.decode(row) == references[i] for row, i in zip(batch["tgt_out"], batch["ids"].tolist()))
    assert sorted(seen) == list(range(len(references)))
    full = data.tgt_tokenizer.encode_batch(list(references.values()), add_special_tokens=False)
    assert exact == sum(len(e.ids) <= task.max_target_length - 1 for e in full)
    assert name == "summarization" or exact == len(references)  # no Multi30k sentence is anywhere near 99 tokens


def test_buckets_count_the_longer_side_against_the_token_budget(data_dir, cache, summarization):
    cfg = config(data_dir, cache, *SUMMARIZATION, "trainer.max_tokens=4000", "trainer.batch_size=64")
    data = ready(cfg)
    lengths = data.lengths("train")
    src = [len(ids) for ids in data.splits["train"]["src_ids"]]
    tgt = [len(ids) + 1 for ids in data.splits["train"]["tgt_ids"]]
    assert lengths == [max(a, b) for a, b in zip(src, tgt)]
    batches = list(data.sampler("train"))
    assert sorted(i for b in batches for i in b) == list(range(len(lengths)))
    for batch in batches:
        assert max(lengths[i] for i in batch) * len(batch) <= 4000
    for batch in data.train_dataloader():
        assert batch["src"].numel() <= 4000 and batch["tgt_in"].numel() <= 4000
    order = np.random.default_rng(0).permutation(len(lengths)).tolist()
    unbucketed = [order[i : i + 10] for i in range(0, len(order), 10)]
    assert padding_fraction(lengths, batches) < padding_fraction(lengths, unbucketed)

    short = ready(config(data_dir, cache, *TRANSLATION, "trainer.max_tokens=600"))
    for batch in short.train_dataloader():
        assert len(batch["ids"]) * max(batch["src"].shape[1], batch["tgt_in"].shape[1]) <= 600


def test_decode_stops_at_eos_and_skips_special_tokens(translation):
    ids = translation.tgt_tokenizer.encode("Ein Hund läuft.").ids
    assert translation.decode([translation.bos_id, *ids, translation.eos_id, *ids]) == "Ein Hund läuft."
    assert translation.decode(torch.tensor([*ids, translation.pad_id, translation.eos_id])) == "Ein Hund läuft."
    assert translation.decode_batch(torch.tensor([[*ids, translation.eos_id], [*ids, 4]])) == ["Ein Hund läuft."] * 2
    assert translation.decode([translation.eos_id, *ids]) == ""


# ---- probes ------------------------------------------------------------------------------------------------------


def test_probe_examples_are_fixed_across_seeds_and_variants(data_dir, cache, translation):
    other = ready(config(data_dir, cache, *TRANSLATION, "seed=9", "attention=dot", "model=transformer",
                         "model.embed_dim=32"))
    probes = translation.probe_examples(4)
    assert probes == other.probe_examples(4)
    assert [p["id"] for p in probes] == [0, 338, 675, 1013]  # evenly spaced over the 1,014 validation rows
    references = translation.references("validation")
    for probe in probes:
        assert set(probe) == {"id", "src_text", "tgt_text", "src_tokens", "tgt_tokens", "src_ids", "tgt_ids"}
        assert probe["tgt_text"] == references[probe["id"]]
        assert len(probe["src_tokens"]) == len(probe["src_ids"]) and len(probe["tgt_tokens"]) == len(probe["tgt_ids"])
        assert "".join(probe["src_tokens"]).replace("▁", " ").strip() == probe["src_text"]
    batch = translation.probe_batch(4)
    assert batch["ids"].tolist() == [p["id"] for p in probes]
    assert batch["tgt_mask"].sum(1).tolist() == [len(p["tgt_ids"]) + 1 for p in probes]
    for key, value in other.probe_batch(4).items():
        assert torch.equal(batch[key], value)


# ---- malformed data ----------------------------------------------------------------------------------------------


def write_split(root: Path, folder: str, split: str, lines: list[bytes]) -> Path:
    path = root / folder / f"{split}.jsonl"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"\n".join(lines) + b"\n")
    return path


GOOD_PAIRS = [json.dumps({"src": f"A dog runs {i}.", "tgt": f"Ein Hund rennt {i}."}).encode() for i in range(4)]
GOOD_SUMMARIES = [json.dumps({"document": f"story {i} .", "summary": f"one .\ntwo {i} ."}).encode() for i in range(4)]
MALFORMED = {
    "missing target": ("translation", b'{"src": "A dog."}', ["field 'tgt'", "missing", "task.local.columns"]),
    "empty source": ("translation", b'{"src": " ", "tgt": "Ein Hund."}', ["field 'src'", "empty"]),
    "target not a string": ("translation", b'{"src": "A dog.", "tgt": 3}', ["field 'tgt'", "string"]),
    "invalid JSON": ("translation", b'{"src": "A dog.", "tgt": "Ein', ["invalid JSON"]),
    "summary missing": ("summarization", b'{"document": "a story ."}', ["field 'summary' (tgt)", "missing"]),
    "document empty": ("summarization", b'{"document": "", "summary": "x ."}', ["field 'document' (src)", "empty"]),
}


@pytest.mark.parametrize("case", list(MALFORMED))
def test_malformed_seq2seq_line_is_refused_with_file_line_and_field(case, tmp_path):
    task, line3, expected = MALFORMED[case]
    folder, good = (MULTI30K, GOOD_PAIRS) if task == "translation" else (CNNDM, GOOD_SUMMARIES)
    root = tmp_path / "data"
    path = write_split(root, folder, "train", good[:2] + [line3] + good[2:])
    cfg = config(root, tmp_path / "cache", f"task={task}")
    with pytest.raises(DataError) as err:
        load_split(cfg.task, "train", str(root), str(tmp_path / "cache"))
    message = str(err.value)
    for part in [str(path), "line 3", *expected]:
        assert part in message, (part, message)
    assert "\n" not in message


def test_seq2seq_column_map_needs_src_and_tgt(tmp_path):
    root = tmp_path / "data"
    write_split(root, MULTI30K, "train", GOOD_PAIRS)
    cfg = config(root, tmp_path / "cache", "task=translation")
    del cfg.task.local.columns["tgt"]  # an override merges into the map, so a key is removed here
    with pytest.raises(DataError, match=r"task.local.columns has no 'tgt' entry.*src: en, tgt: de"):
        load_split(cfg.task, "train", str(root), str(tmp_path / "cache"))
