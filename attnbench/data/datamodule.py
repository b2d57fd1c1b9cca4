"""LightningDataModules: canonical splits -> tokenizer(s) -> token ids -> length-bucketed batches.

`ClassificationDataModule` (sentiment) and `Seq2SeqDataModule` (translation, summarization) share their steps
as the functions below (load the splits, tokenize them into the Arrow cache, bucket, load, pick probes)
rather than through a common base class; each module only says what differs: which texts train the
tokenizer, how a row becomes token ids, how a batch is collated.

Tokenized splits are Arrow files beside the canonical ones (`cache-<key>.arrow` inside
`<cache_dir>/datasets/...`), keyed by dataset fingerprint, tokenizer hash and length limits, so a second run
with the same inputs memory-maps them instead of tokenizing again.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterator, Sequence
from functools import partial
from typing import Any

import numpy as np
import pytorch_lightning as pl
import torch
from datasets import Dataset
from omegaconf import DictConfig
from tokenizers import Tokenizer
from torch.utils.data import DataLoader

from attnbench.config import target_length
from attnbench.data.batching import BucketBatchSampler, ResumableLoader, collate_classification, collate_seq2seq
from attnbench.data.canonical import REFS
from attnbench.data.lengths import truncation_block
from attnbench.data.sources import SPLITS, dataset_fingerprint, load_split
from attnbench.data.tokenizer import BOS, EOS, PAD, build_tokenizer, tokenizer_hash

# Bump when the tokenized columns change, so older tokenized caches are not reused.
TOKENIZED_FORMAT = 2
MODEL_COLUMNS = ["input_ids", "label", "id"]
SEQ2SEQ_COLUMNS = ["src_ids", "tgt_ids", "id"]


# ---- shared steps --------------------------------------------------------------------------------------------


def load_splits(cfg: DictConfig) -> dict[str, Dataset]:
    """The canonical train/validation/test splits of the run's task."""
    return {split: load_split(cfg.task, split, cfg.data_dir, cfg.cache_dir) for split in SPLITS}


def train_key(cfg: DictConfig, role: str | None = None) -> str:
    """Tokenizer cache key: the train split alone (an evaluation limit keeps the tokenizer), plus its role."""
    key = dataset_fingerprint(cfg.task, cfg.data_dir, splits=["train"])
    return key if role is None else f"{key}:{role}"


def column_texts(dataset: Dataset, *columns: str, chunk: int = 1000) -> Iterator[str]:
    """The texts of `columns`, one column after the other, read in chunks instead of all at once."""
    for column in columns:
        for batch in dataset.select_columns([column]).iter(batch_size=chunk):
            yield from batch[column]


def tokenize_splits(raw: dict[str, Dataset], encode: Callable[..., dict[str, list]], fn_kwargs: dict[str, Any],
                    key: Sequence[Any], desc: str) -> dict[str, Dataset]:
    """`raw` with the columns `encode` adds, each split cached under a key built from `key` and the split."""
    tokenized = {}
    for split, dataset in raw.items():
        fingerprint = hashlib.sha256(json.dumps([TOKENIZED_FORMAT, *key, split]).encode()).hexdigest()[:16]
        tokenized[split] = dataset.map(encode, batched=True, new_fingerprint=fingerprint,
                                       desc=f"tokenizing {desc} {split}", fn_kwargs=fn_kwargs)
    return tokenized


def bucket_sampler(cfg: DictConfig, lengths: Sequence[int], shuffle: bool, trainer=None) -> BucketBatchSampler:
    """The split's batch sampler; under a multi-process trainer, this rank's shard of it."""
    t = cfg.trainer
    replicas, rank = (trainer.world_size, trainer.global_rank) if trainer is not None else (1, 0)
    return BucketBatchSampler(lengths, batch_size=t.batch_size, max_tokens=t.max_tokens, shuffle=shuffle,
                              seed=cfg.seed, num_replicas=replicas, rank=rank)


def make_loader(cfg: DictConfig, dataset: Dataset, columns: list[str], sampler: BucketBatchSampler,
                collate: Callable[[list[dict[str, Any]]], dict[str, torch.Tensor]], *,
                resumable: bool = False) -> DataLoader:
    """The split's loader; `resumable` (training) checkpoints its place in the epoch (batching.ResumableLoader)."""
    workers = cfg.trainer.num_workers
    return (ResumableLoader if resumable else DataLoader)(
        dataset.select_columns(columns),
        batch_sampler=sampler,
        collate_fn=collate,
        num_workers=workers,
        pin_memory=torch.cuda.is_available(),
        persistent_workers=workers > 0,
        # torch draws each iterator's worker seed from this generator, by default from the global RNG: a resumed
        # run makes an iterator where the uninterrupted one did not (mid-epoch), which would shift dropout's RNG.
        generator=torch.Generator().manual_seed(cfg.seed),
    )


def evenly_spaced(size: int, n: int) -> list[int]:
    """Evenly spaced row indices: the same for every variant and seed, as they depend on the data only."""
    if n <= 0 or size == 0:
        return []
    return sorted({int(i) for i in np.linspace(0, size - 1, num=min(n, size)).round()})


# ---- classification ------------------------------------------------------------------------------------------


def _encode_batch(batch: dict[str, list], tokenizer: Tokenizer, max_length: int) -> dict[str, list]:
    encodings = tokenizer.encode_batch(batch["text"], add_special_tokens=False)
    ids = [e.ids[:max_length] for e in encodings]
    # full_length: before truncation, for the record's truncation statistics (data/lengths.py).
    return {"input_ids": ids, "length": [len(i) for i in ids], "full_length": [len(e.ids) for e in encodings]}


class ClassificationDataModule(pl.LightningDataModule):
    """Loads, tokenizes and batches a classification task; `cfg` is the whole run config."""

    def __init__(self, cfg: DictConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.task = cfg.task
        self.splits: dict[str, Dataset] = {}
        self.tokenizer: Tokenizer | None = None
        self.vocab_size = 0
        self.pad_id = 0
        self.label_names: list[str] = list(cfg.task.labels)
        self.num_labels = len(self.label_names)
        self.fingerprint = ""
        self.tokenizer_hash = ""

    def setup(self, stage: str | None = None) -> None:
        self.prepare()

    def prepare(self) -> None:
        """Everything, once: Lightning calls setup for each stage, and run.py calls it before the Trainer."""
        if self.splits:
            return
        self.fingerprint = dataset_fingerprint(self.task, self.cfg.data_dir)
        raw = load_splits(self.cfg)
        # Trained on train only, keyed by the train split alone: changing an evaluation limit keeps the tokenizer.
        self.tokenizer = build_tokenizer(column_texts(raw["train"], "text"), self.task.tokenizer, self.cfg.cache_dir,
                                         key=train_key(self.cfg))
        self.tokenizer_hash = tokenizer_hash(self.tokenizer)
        self.vocab_size = self.tokenizer.get_vocab_size()
        self.pad_id = self.tokenizer.token_to_id(PAD)
        self.splits = tokenize_splits(
            raw, _encode_batch, {"tokenizer": self.tokenizer, "max_length": self.task.max_length},
            key=[self.fingerprint, self.tokenizer_hash, self.task.max_length], desc=self.task.dataset,
        )

    # ---- loaders -------------------------------------------------------------------------------------------

    def sampler(self, split: str) -> BucketBatchSampler:
        return bucket_sampler(self.cfg, self.lengths(split), shuffle=split == "train", trainer=self.trainer)

    def lengths(self, split: str) -> list[int]:
        return list(self.splits[split]["length"])

    def length_report(self) -> dict[str, Any]:
        """Per split: example count, share of texts that task.max_length cuts, full-length percentiles."""
        return truncation_block({split: {"source": data["full_length"]} for split, data in self.splits.items()},
                                {"source": self.task.max_length}, self.task.max_length, None)

    def text_sides(self) -> dict[str, tuple[str, str, Tokenizer]]:
        """side -> (text column, token-id column, tokenizer): what `attnbench data` reports per side."""
        return {"source": ("text", "input_ids", self.tokenizer)}

    def _loader(self, split: str) -> DataLoader:
        return make_loader(self.cfg, self.splits[split], MODEL_COLUMNS, self.sampler(split),
                           partial(collate_classification, pad_id=self.pad_id), resumable=split == "train")

    def train_dataloader(self) -> DataLoader:
        return self._loader("train")

    def val_dataloader(self) -> DataLoader:
        return self._loader("validation")

    def test_dataloader(self) -> DataLoader:
        return self._loader("test")

    # ---- probes and texts ----------------------------------------------------------------------------------

    def probe_indices(self, n: int) -> list[int]:
        return evenly_spaced(len(self.splits["validation"]), n)

    def probe_examples(self, n: int) -> list[dict[str, Any]]:
        """{id, text, tokens (as the model sees them), input_ids, label} for the probe rows, ordered by id."""
        rows = self.splits["validation"].select(self.probe_indices(n))
        return [
            {"id": row["id"], "text": row["text"], "tokens": [self.tokenizer.id_to_token(i) for i in row["input_ids"]],
             "input_ids": list(row["input_ids"]), "label": row["label"]}
            for row in rows
        ]

    def probe_batch(self, n: int) -> dict[str, torch.Tensor]:
        return collate_classification(self.probe_examples(n), self.pad_id)

    def split_texts(self, split: str) -> dict[int, str]:
        """id -> text of a split, to write predictions next to their inputs."""
        dataset = self.splits[split]
        return dict(zip(dataset["id"], dataset["text"]))


# ---- seq2seq -------------------------------------------------------------------------------------------------


def _encode_pairs(batch: dict[str, list], src_tokenizer: Tokenizer, tgt_tokenizer: Tokenizer, max_length: int,
                  max_target_length: int) -> dict[str, list]:
    src_full = [e.ids for e in src_tokenizer.encode_batch(batch["src"], add_special_tokens=False)]
    tgt_full = [e.ids for e in tgt_tokenizer.encode_batch(batch["tgt"], add_special_tokens=False)]
    src = [ids[:max_length] for ids in src_full]
    # The decoder sees [BOS] y and predicts y [EOS]: y keeps max_target_length - 1 tokens.
    tgt = [ids[: max_target_length - 1] for ids in tgt_full]
    # Bucketing and the token budget go by the longer side: the decoder's T = len(y) + 1.
    return {"src_ids": src, "tgt_ids": tgt, "length": [max(len(s), len(t) + 1) for s, t in zip(src, tgt)],
            "src_full_length": [len(ids) for ids in src_full], "tgt_full_length": [len(ids) for ids in tgt_full]}


class Seq2SeqDataModule(pl.LightningDataModule):
    """Loads, tokenizes and batches a seq2seq task (translation, summarization); `cfg` is the whole run config.

    Batches (`collate_seq2seq`): src (B, S), src_mask (B, S), tgt_in (B, T) = [BOS] y, tgt_out (B, T) = y [EOS],
    tgt_mask (B, T), ids (B,); masks are True at real tokens. Sources keep `task.max_length` tokens, targets
    `task.max_target_length` including BOS/EOS. References for BLEU/ROUGE are the raw target texts
    (`references(split)`: all of them where a split has several), never the truncated token ids; training and the
    loss use the first.
    """

    def __init__(self, cfg: DictConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.task = cfg.task
        self.max_target_length = target_length(cfg)
        self.splits: dict[str, Dataset] = {}
        self.shared_vocab: bool = bool(cfg.task.tokenizer.shared)
        self.src_tokenizer: Tokenizer | None = None
        self.tgt_tokenizer: Tokenizer | None = None  # the same object as src_tokenizer when the vocab is shared
        self.src_vocab_size = 0
        self.tgt_vocab_size = 0
        self.pad_id = self.bos_id = self.eos_id = 0
        self.fingerprint = ""
        self.tokenizer_hash = ""

    def setup(self, stage: str | None = None) -> None:
        self.prepare()

    def prepare(self) -> None:
        """Everything, once: Lightning calls setup for each stage, and run.py calls it before the Trainer."""
        if self.splits:
            return
        self.fingerprint = dataset_fingerprint(self.task, self.cfg.data_dir)
        raw = load_splits(self.cfg)
        settings, cache_dir, train = self.task.tokenizer, self.cfg.cache_dir, raw["train"]
        if self.shared_vocab:
            self.src_tokenizer = self.tgt_tokenizer = build_tokenizer(
                column_texts(train, "src", "tgt"), settings, cache_dir, key=train_key(self.cfg, "src+tgt"))
            self.tokenizer_hash = tokenizer_hash(self.src_tokenizer)
        else:
            self.src_tokenizer = build_tokenizer(column_texts(train, "src"), settings, cache_dir,
                                                 key=train_key(self.cfg, "src"))
            self.tgt_tokenizer = build_tokenizer(column_texts(train, "tgt"), settings, cache_dir,
                                                 key=train_key(self.cfg, "tgt"))
            both = f"{tokenizer_hash(self.src_tokenizer)}:{tokenizer_hash(self.tgt_tokenizer)}"
            self.tokenizer_hash = hashlib.sha256(both.encode()).hexdigest()[:16]
        self.src_vocab_size = self.src_tokenizer.get_vocab_size()
        self.tgt_vocab_size = self.tgt_tokenizer.get_vocab_size()
        # build_tokenizer gives the special tokens the same ids in every tokenizer, so one pad id fits both sides.
        self.pad_id, self.bos_id, self.eos_id = (self.tgt_tokenizer.token_to_id(t) for t in (PAD, BOS, EOS))
        self.splits = tokenize_splits(
            raw, _encode_pairs,
            {"src_tokenizer": self.src_tokenizer, "tgt_tokenizer": self.tgt_tokenizer,
             "max_length": self.task.max_length, "max_target_length": self.max_target_length},
            key=["seq2seq", self.fingerprint, self.tokenizer_hash, self.task.max_length, self.max_target_length],
            desc=self.task.dataset,
        )

    # ---- loaders -------------------------------------------------------------------------------------------

    def collate(self, examples: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
        return collate_seq2seq(examples, self.pad_id, self.bos_id, self.eos_id)

    def sampler(self, split: str) -> BucketBatchSampler:
        return bucket_sampler(self.cfg, self.lengths(split), shuffle=split == "train", trainer=self.trainer)

    def lengths(self, split: str) -> list[int]:
        """max(source length, decoder length) per example: what bucketing and the token budget count."""
        return list(self.splits[split]["length"])

    def length_report(self) -> dict[str, Any]:
        """Per split: example count, shares of sources and targets the limits cut, full-length percentiles.

        A target is cut when it has more than max_target_length - 1 tokens (the limit counts BOS/EOS)."""
        sides = {split: {"source": data["src_full_length"], "target": data["tgt_full_length"]}
                 for split, data in self.splits.items()}
        return truncation_block(sides, {"source": self.task.max_length, "target": self.max_target_length - 1},
                                self.task.max_length, self.max_target_length)

    def text_sides(self) -> dict[str, tuple[str, str, Tokenizer]]:
        """side -> (text column, token-id column, tokenizer): what `attnbench data` reports per side."""
        return {"source": ("src", "src_ids", self.src_tokenizer), "target": ("tgt", "tgt_ids", self.tgt_tokenizer)}

    def _loader(self, split: str) -> DataLoader:
        return make_loader(self.cfg, self.splits[split], SEQ2SEQ_COLUMNS, self.sampler(split), self.collate,
                           resumable=split == "train")

    def train_dataloader(self) -> DataLoader:
        return self._loader("train")

    def val_dataloader(self) -> DataLoader:
        return self._loader("validation")

    def test_dataloader(self) -> DataLoader:
        return self._loader("test")

    # ---- texts ---------------------------------------------------------------------------------------------

    def decode(self, ids: Sequence[int] | torch.Tensor) -> str:
        """Target token ids -> text: stops at the first EOS, drops special tokens, restores spaces exactly."""
        ids = ids.tolist() if isinstance(ids, torch.Tensor) else list(ids)
        if self.eos_id in ids:
            ids = ids[: ids.index(self.eos_id)]
        return self.tgt_tokenizer.decode(ids, skip_special_tokens=True)

    def decode_batch(self, batch: Sequence[Sequence[int]] | torch.Tensor) -> list[str]:
        rows = batch.tolist() if isinstance(batch, torch.Tensor) else batch
        return [self.decode(row) for row in rows]

    def references(self, split: str) -> dict[int, str] | dict[int, list[str]]:
        """id -> raw target text, the reference BLEU/ROUGE score against; id -> every reference (the first is the
        training target `tgt`) when the split has several per example (a `refs` column)."""
        return self._texts(split, REFS if REFS in self.splits[split].column_names else "tgt")

    def sources(self, split: str) -> dict[int, str]:
        """id -> raw source text."""
        return self._texts(split, "src")

    def _texts(self, split: str, column: str) -> dict[int, Any]:
        dataset = self.splits[split].select_columns(["id", column])
        return dict(zip(dataset["id"], dataset[column]))

    # ---- probes --------------------------------------------------------------------------------------------

    def probe_indices(self, n: int) -> list[int]:
        return evenly_spaced(len(self.splits["validation"]), n)

    def probe_examples(self, n: int) -> list[dict[str, Any]]:
        """{id, src_text, tgt_text, src_tokens, tgt_tokens, src_ids, tgt_ids} for the probe rows, ordered by id.

        Tokens are as the model sees them (after truncation); tgt_ids/tgt_tokens are y without BOS/EOS, so the
        decoder's queries are [BOS] + tgt_tokens and its outputs tgt_tokens + [EOS].
        """
        rows = self.splits["validation"].select(self.probe_indices(n))
        return [
            {"id": row["id"], "src_text": row["src"], "tgt_text": row["tgt"],
             "src_tokens": [self.src_tokenizer.id_to_token(i) for i in row["src_ids"]],
             "tgt_tokens": [self.tgt_tokenizer.id_to_token(i) for i in row["tgt_ids"]],
             "src_ids": list(row["src_ids"]), "tgt_ids": list(row["tgt_ids"])}
            for row in rows
        ]

    def probe_batch(self, n: int) -> dict[str, torch.Tensor]:
        return self.collate(self.probe_examples(n))
