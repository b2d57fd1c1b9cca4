"""The data layer: real SST-2 slices, caches reused, bucketed batches, fixed probes, malformed data refused."""

from __future__ import annotations

import gzip
import json
import shutil
import socket
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from datasets import Dataset
from lightning_fabric.utilities.data import _set_sampler_epoch
from torch.utils.data import DataLoader

import attnbench.data.datamodule as datamodule_module
from attnbench.data import (
    SPECIAL_TOKENS, BucketBatchSampler, ClassificationDataModule, Seq2SeqDataModule, build_tokenizer,
    collate_classification, dataset_fingerprint, load_split, padding_fraction, tokenizer_hash,
)
from attnbench.data.hub import canonicalize
from attnbench.errors import DataError
from attnbench.tasks.families import build_datamodule
from tests.helpers import assert_one_line_naming, config, first_lines


@pytest.fixture(scope="module")
def shared_cache(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("data-cache")


SMALL = ("task.limits.train=1500", "task.limits.validation=300", "task.limits.test=200")


# ---- real data ---------------------------------------------------------------------------------------------


def test_sst2_slice_has_canonical_columns_and_ids(data_dir, tmp_path):
    cfg = config(data_dir, tmp_path, "task.limits.train=50")
    train = load_split(cfg.task, "train", str(data_dir), str(tmp_path))
    assert sorted(train.column_names) == ["id", "label", "text"]
    assert len(train) == 50
    assert list(train["id"]) == list(range(50))
    assert set(train["label"]) <= {0, 1}
    expected = first_lines(data_dir / "sentiment/sst2/train.jsonl.gz", 3)
    assert [train[i]["text"] for i in range(3)] == [row["text"] for row in expected]
    assert [train[i]["label"] for i in range(3)] == [row["label"] for row in expected]

    validation = load_split(cfg.task, "validation", str(data_dir), str(tmp_path))
    assert len(validation) == 872  # no limit: the whole GLUE dev set
    # The Arrow copy lives under cache_dir and is reused by the next call.
    assert Path(validation.cache_files[0]["filename"]).is_relative_to(tmp_path)
    again = load_split(cfg.task, "validation", str(data_dir), str(tmp_path))
    assert again.cache_files == validation.cache_files


def test_fingerprint_is_stable_location_independent_and_content_sensitive(data_dir, tmp_path):
    cfg = config(data_dir, tmp_path, "task.limits.train=100")
    first = dataset_fingerprint(cfg.task, str(data_dir))
    assert first == dataset_fingerprint(cfg.task, str(data_dir))
    assert first != dataset_fingerprint(config(data_dir, tmp_path, "task.limits.train=101").task, str(data_dir))

    copy = tmp_path / "copy"
    shutil.copytree(data_dir / "sentiment", copy / "sentiment")
    assert dataset_fingerprint(cfg.task, str(copy)) == first
    with gzip.open(copy / "sentiment/sst2/test.jsonl.gz", "ab") as f:
        f.write(b'{"text": "one more", "label": 1}\n')
    assert dataset_fingerprint(cfg.task, str(copy)) != first


def test_tokenizer_is_cached_and_deterministic(data_dir, tmp_path):
    cfg = config(data_dir, tmp_path, "task.limits.train=1000")
    texts = list(load_split(cfg.task, "train", str(data_dir), str(tmp_path))["text"])
    tok = build_tokenizer(texts, cfg.task.tokenizer, str(tmp_path), key="k1")
    assert [tok.token_to_id(t) for t in SPECIAL_TOKENS] == [0, 1, 2, 3, 4]
    assert list((tmp_path / "tokenizers").glob("*.json")) and not list((tmp_path / "tokenizers").glob("*.tmp"))

    def must_not_train():
        raise AssertionError("a cached tokenizer must be loaded, not trained again")
        yield

    cached = build_tokenizer(must_not_train(), cfg.task.tokenizer, str(tmp_path), key="k1")
    assert tokenizer_hash(cached) == tokenizer_hash(tok)
    # Training is deterministic: a fresh cache gives the identical tokenizer.
    fresh = build_tokenizer(texts, cfg.task.tokenizer, str(tmp_path / "other"), key="k1")
    assert tokenizer_hash(fresh) == tokenizer_hash(tok)
    # Lowercased, whitespace-split words: PTB tokens such as "n't" stay whole.
    assert tok.encode("It does N'T work").tokens == ["it", "does", "n't", "work"]

    build_tokenizer(texts, cfg.task.tokenizer, str(tmp_path), key="k2")
    assert len(list((tmp_path / "tokenizers").glob("*.json"))) == 2

    bpe = build_tokenizer(texts, {"kind": "bpe", "vocab_size": 500, "min_frequency": 2, "lowercase": True},
                          str(tmp_path), key="k1")
    assert bpe.token_to_id("[PAD]") == 0 and bpe.get_vocab_size() <= 500
    assert bpe.decode(bpe.encode("a charming journey").ids) == "a charming journey"


def test_tokenized_splits_are_reused_on_a_second_run(data_dir, tmp_path, monkeypatch):
    cfg = config(data_dir, tmp_path, *SMALL)
    first = ClassificationDataModule(cfg)
    first.setup("fit")
    assert first.vocab_size > 100 and first.pad_id == 0 and first.num_labels == 2
    assert first.label_names == ["negative", "positive"]
    assert max(first.lengths("train")) <= cfg.task.max_length

    def must_not_tokenize(*args, **kwargs):
        raise AssertionError("tokenized splits must come from the Arrow cache")

    monkeypatch.setattr(datamodule_module, "_encode_batch", must_not_tokenize)
    second = ClassificationDataModule(cfg)
    second.setup("fit")
    second.setup("test")  # idempotent
    for split in ("train", "validation", "test"):
        assert second.splits[split].cache_files == first.splits[split].cache_files
        assert list(second.splits[split]["input_ids"]) == list(first.splits[split]["input_ids"])
    assert (second.fingerprint, second.tokenizer_hash) == (first.fingerprint, first.tokenizer_hash)


def test_dataloaders_give_padded_batches_covering_each_split(data_dir, shared_cache):
    cfg = config(data_dir, shared_cache, *SMALL, "trainer.batch_size=32")
    data = build_datamodule(cfg)
    data.setup("fit")
    batch = next(iter(data.train_dataloader()))
    assert set(batch) == {"input_ids", "mask", "labels", "ids"}
    assert batch["input_ids"].dtype == torch.long and batch["mask"].dtype == torch.bool
    assert batch["input_ids"].shape == batch["mask"].shape and batch["labels"].shape == batch["ids"].shape
    assert (batch["input_ids"][~batch["mask"]] == data.pad_id).all()
    for split, loader in (("validation", data.val_dataloader()), ("test", data.test_dataloader())):
        ids = torch.cat([b["ids"] for b in loader]).tolist()
        assert sorted(ids) == list(range(len(data.splits[split])))
    texts = data.split_texts("validation")
    assert len(texts) == 300 and texts[0] == data.splits["validation"][0]["text"]


def test_probe_examples_are_the_same_for_every_seed_and_variant(data_dir, shared_cache):
    one = ClassificationDataModule(config(data_dir, shared_cache, *SMALL, "seed=1", "attention=additive"))
    two = ClassificationDataModule(config(data_dir, shared_cache, *SMALL, "seed=7", "attention=dot",
                                          "model=transformer", "model.embed_dim=32"))
    one.setup("fit")
    two.setup("fit")
    probes = one.probe_examples(4)
    assert probes == two.probe_examples(4)
    assert [p["id"] for p in probes] == [0, 100, 199, 299]  # evenly spaced over the 300 validation rows
    for probe in probes:
        assert set(probe) == {"id", "text", "tokens", "input_ids", "label"}
        assert len(probe["tokens"]) == len(probe["input_ids"]) > 0
        assert probe["tokens"][0] == probe["text"].split()[0] or probe["tokens"][0] == "[UNK]"
    batch_one, batch_two = one.probe_batch(4), two.probe_batch(4)
    for key in ("input_ids", "mask", "labels", "ids"):
        assert torch.equal(batch_one[key], batch_two[key])
    assert batch_one["mask"].sum(1).tolist() == [len(p["tokens"]) for p in probes]


def test_build_datamodule_picks_the_module_by_task_family(tmp_path):
    assert type(build_datamodule(config(None, tmp_path))) is ClassificationDataModule
    assert type(build_datamodule(config(None, tmp_path, "task=translation"))) is Seq2SeqDataModule
    assert type(build_datamodule(config(None, tmp_path, "task=summarization"))) is Seq2SeqDataModule


# ---- batching (synthetic lengths) ----------------------------------------------------------------------------


LENGTHS = np.random.default_rng(0).integers(1, 120, size=2000).tolist()


@pytest.mark.parametrize("max_tokens", [None, 1500])
@pytest.mark.parametrize("shuffle", [True, False])
def test_bucket_sampler_covers_every_index_once_within_caps(shuffle, max_tokens):
    sampler = BucketBatchSampler(LENGTHS, batch_size=64, max_tokens=max_tokens, shuffle=shuffle, seed=3,
                                 pool_batches=5)
    for epoch in range(3):
        sampler.set_epoch(epoch)
        batches = list(sampler)
        assert len(sampler) == len(batches)
        assert sorted(i for b in batches for i in b) == list(range(len(LENGTHS)))
        for batch in batches:
            assert 1 <= len(batch) <= 64
            if max_tokens is not None:
                assert max(LENGTHS[i] for i in batch) * len(batch) <= max_tokens
    if max_tokens is not None:
        assert max(len(b) for b in batches) > 1500 // 119, "short examples should fill larger batches"


def test_bucket_sampler_is_deterministic_per_seed_and_epoch_with_a_constant_length():
    def batches(seed, epoch):
        sampler = BucketBatchSampler(LENGTHS, batch_size=32, max_tokens=1000, shuffle=True, seed=seed, pool_batches=4)
        sampler.set_epoch(epoch)
        return list(sampler), len(sampler)

    assert batches(1, 0) == batches(1, 0)
    assert batches(1, 0)[0] != batches(1, 1)[0]
    assert batches(1, 0)[0] != batches(2, 0)[0]
    # The same number of batches in every epoch: Lightning reads len() once per fit.
    assert len({batches(1, epoch)[1] for epoch in range(6)}) == 1


def test_bucket_sampler_buckets_by_length_and_sorts_evaluation():
    evaluation = list(BucketBatchSampler(LENGTHS, batch_size=50, max_tokens=None, shuffle=False, seed=0))
    order = [i for b in evaluation for i in b]
    assert [LENGTHS[i] for i in order] == sorted(LENGTHS)
    assert evaluation == list(BucketBatchSampler(LENGTHS, batch_size=50, max_tokens=None, shuffle=False, seed=9))

    bucketed = list(BucketBatchSampler(LENGTHS, batch_size=50, max_tokens=None, shuffle=True, seed=0))
    random_order = np.random.default_rng(0).permutation(len(LENGTHS)).tolist()
    random_batches = [random_order[i : i + 50] for i in range(0, len(LENGTHS), 50)]
    assert padding_fraction(LENGTHS, bucketed) < 0.25 < padding_fraction(LENGTHS, random_batches)
    assert padding_fraction([1, 3], [[0, 1]]) == pytest.approx(1 - 4 / 6)


def test_lightning_sets_the_sampler_epoch():
    sampler = BucketBatchSampler(LENGTHS, batch_size=32, max_tokens=None, shuffle=True, seed=0)
    loader = DataLoader(list(range(len(LENGTHS))), batch_sampler=sampler)
    _set_sampler_epoch(loader, 4)  # what Lightning's fit loop calls at each epoch start
    assert sampler.epoch == 4


def test_collate_pads_and_masks():
    batch = collate_classification(
        [{"input_ids": [5, 6, 7], "label": 1, "id": 10}, {"input_ids": [8], "label": 0, "id": 3}], pad_id=0
    )
    assert batch["input_ids"].tolist() == [[5, 6, 7], [8, 0, 0]]
    assert batch["mask"].tolist() == [[True, True, True], [True, False, False]]
    assert batch["labels"].tolist() == [1, 0] and batch["ids"].tolist() == [10, 3]


# ---- malformed data --------------------------------------------------------------------------------------------


GOOD = [json.dumps({"text": f"a fine film number {i}", "label": i % 2}).encode() for i in range(6)]


def write_split(root: Path, split: str, lines: list[bytes], suffix: str = ".jsonl.gz") -> Path:
    path = root / "sentiment" / "sst2" / f"{split}{suffix}"
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = b"\n".join(lines) + b"\n"
    if suffix.endswith(".gz"):
        with gzip.open(path, "wb") as f:
            f.write(payload)
    else:
        path.write_bytes(payload)
    return path


def broken_train(root: Path, line3: bytes, suffix: str = ".jsonl.gz") -> Path:
    for split in ("validation", "test"):
        write_split(root, split, GOOD)
    return write_split(root, "train", GOOD[:2] + [line3] + GOOD[2:], suffix)


MALFORMED = {
    "missing column": (b'{"text": "no label here"}', ["label", "missing"]),
    "empty text": (b'{"text": "   ", "label": 1}', ["text", "empty"]),
    "text not a string": (b'{"text": null, "label": 1}', ["text", "string"]),
    "label outside set": (b'{"text": "fine", "label": 2}', ["label", "0=negative, 1=positive"]),
    "unknown label name": (b'{"text": "fine", "label": "neutral"}', ["label", "outside the label set"]),
    "undecodable bytes": (b'{"text": "caf\xe9 noir", "label": 1}', ["text", "UTF-8"]),
    "invalid JSON": (b'{"text": "fine", "label": 1', ["invalid JSON", "column"]),
    "not an object": (b'["fine", 1]', ["JSON object"]),
}


@pytest.mark.parametrize("suffix", [".jsonl.gz", ".jsonl"])
@pytest.mark.parametrize("case", list(MALFORMED))
def test_malformed_line_is_refused_with_file_line_and_field(case, suffix, tmp_path):
    line3, expected = MALFORMED[case]
    path = broken_train(tmp_path / "data", line3, suffix)
    cfg = config(tmp_path / "data", tmp_path / "cache", "task.source=local")
    with pytest.raises(DataError) as err:
        load_split(cfg.task, "train", str(tmp_path / "data"), str(tmp_path / "cache"))
    assert_one_line_naming(str(err.value), str(path), "line 3", *expected)
    assert not (tmp_path / "cache" / "datasets").exists() or not any((tmp_path / "cache" / "datasets").rglob("*.arrow"))


def test_label_names_are_accepted_as_labels(tmp_path):
    broken_train(tmp_path / "data", b'{"text": "fine", "label": "positive"}')
    cfg = config(tmp_path / "data", tmp_path / "cache")
    train = load_split(cfg.task, "train", str(tmp_path / "data"), str(tmp_path / "cache"))
    assert train[2]["label"] == 1 and len(train) == 7


def test_truncated_gzip_is_refused_with_file_and_line(tmp_path):
    root = tmp_path / "data"
    lines = [json.dumps({"text": f"film {i} " + "word " * 50, "label": i % 2}).encode() for i in range(400)]
    path = write_split(root, "train", lines)
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    cfg = config(root, tmp_path / "cache")
    with pytest.raises(DataError, match=r"truncated or corrupt gzip") as err:
        load_split(cfg.task, "train", str(root), str(tmp_path / "cache"))
    assert str(path) in str(err.value) and "line " in str(err.value)


def test_missing_file_names_the_paths_tried_and_the_layout(tmp_path):
    root = tmp_path / "data"
    write_split(root, "validation", GOOD)
    cfg = config(root, tmp_path / "cache")
    with pytest.raises(DataError) as err:
        load_split(cfg.task, "train", str(root), str(tmp_path / "cache"))
    message = str(err.value)
    assert str(root / "sentiment/sst2/train.jsonl") in message and "train.jsonl.gz" in message
    assert "<data_dir>/<task>/<dataset>/<split>.jsonl[.gz]" in message


def test_local_source_without_data_dir_says_how_to_set_it(tmp_path, monkeypatch):
    monkeypatch.delenv("ATTNBENCH_DATA_DIR", raising=False)
    cfg = config(None, tmp_path, "task.source=local")
    with pytest.raises(DataError, match=r"data_dir=.*ATTNBENCH_DATA_DIR"):
        load_split(cfg.task, "train", None, str(tmp_path))


def test_unlabelled_hub_split_is_refused():
    """GLUE marks hidden test labels with -1: a clear error, not a silent wrong label."""
    raw = Dataset.from_dict({"sentence": ["good .", "bad ."], "label": [1, -1], "idx": [0, 1]})
    with pytest.raises(DataError, match=r"glue/sst2 split 'test' row 1: field 'label'.*-1.*outside the label set"):
        canonicalize(raw, {"text": "sentence", "label": "label"}, ["negative", "positive"], "glue/sst2 split 'test'")
    ok = canonicalize(raw.select([0]), {"text": "sentence", "label": "label"}, ["negative", "positive"], "glue")
    assert ok[0] == {"text": "good .", "label": 1, "id": 0}


# ---- hub unreachable -------------------------------------------------------------------------------------------


def _hub_reachable() -> bool:
    try:
        socket.create_connection(("huggingface.co", 443), timeout=2).close()
        return True
    except OSError:
        return False


@pytest.mark.parametrize("how", ["no network", "offline variable", "refused endpoint"])
def test_unreachable_hub_fails_fast_and_points_to_local_data(how, tmp_path, monkeypatch):
    for variable in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "HF_ENDPOINT"):
        monkeypatch.delenv(variable, raising=False)
    if how == "no network" and _hub_reachable():
        pytest.skip("this machine reaches the hub; the other cases cover the refusal")
    if how == "offline variable":
        monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    if how == "refused endpoint":
        monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")
    cfg = config(None, tmp_path, "task.source=hub")
    start = time.monotonic()
    with pytest.raises(DataError) as err:
        load_split(cfg.task, "train", None, str(tmp_path))
    assert time.monotonic() - start < 10
    message = str(err.value)
    assert "cannot reach the Hugging Face hub" in message
    assert "local copy" in message and "data_dir=" in message and "task.source=local" in message


def test_hub_source_renames_limits_and_validates(tmp_path, monkeypatch):
    """The hub code path end to end, with `datasets.load_dataset` standing in for the network."""
    calls = []

    def fake_load_dataset(path, name, *, split, revision, cache_dir):
        calls.append((path, name, split, revision, cache_dir))
        return Dataset.from_dict({"sentence": ["good .", "bad .", "fine ."], "label": [1, 0, 1], "idx": [0, 1, 2]})

    monkeypatch.setattr("attnbench.data.hub.check_hub_reachable", lambda: None)
    monkeypatch.setattr("datasets.load_dataset", fake_load_dataset)
    cfg = config(None, tmp_path, "task.source=hub", "task.limits.test=2")
    test = load_split(cfg.task, "test", None, str(tmp_path))
    assert calls == [("glue", "sst2", "validation", None, str(tmp_path / "hub"))]  # GLUE test has no labels
    assert test.to_list() == [{"text": "good .", "label": 1, "id": 0}, {"text": "bad .", "label": 0, "id": 1}]
    fingerprint = dataset_fingerprint(cfg.task, None)
    assert fingerprint == dataset_fingerprint(cfg.task, None) and len(fingerprint) == 16

    monkeypatch.setattr("datasets.load_dataset", lambda *a, **k: Dataset.from_dict({"text": ["x"], "label": [0]}))
    with pytest.raises(DataError, match=r"has no column 'sentence'.*task.hub.columns"):
        load_split(cfg.task, "train", None, str(tmp_path))
