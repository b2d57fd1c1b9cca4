"""LightningDataModule for classification (sentiment): canonical splits -> tokenizer -> token ids -> batches.

Tokenized splits are Arrow files beside the canonical ones (`cache-<key>.arrow` inside
`<cache_dir>/datasets/...`), keyed by dataset fingerprint, tokenizer hash and max_length, so a second run
with the same inputs memory-maps them instead of tokenizing again.
"""

from __future__ import annotations

import hashlib
import json
from functools import partial
from typing import Any

import numpy as np
import pytorch_lightning as pl
import torch
from datasets import Dataset
from omegaconf import DictConfig
from tokenizers import Tokenizer
from torch.utils.data import DataLoader

from attnbench.data.batching import BucketBatchSampler, collate_classification
from attnbench.data.sources import SPLITS, dataset_fingerprint, load_split
from attnbench.data.tokenizer import PAD, build_tokenizer, tokenizer_hash

# Bump when the tokenized columns change, so older tokenized caches are not reused.
TOKENIZED_FORMAT = 1
MODEL_COLUMNS = ["input_ids", "label", "id"]


def _encode_batch(batch: dict[str, list], tokenizer: Tokenizer, max_length: int) -> dict[str, list]:
    encodings = tokenizer.encode_batch(batch["text"], add_special_tokens=False)
    ids = [e.ids[:max_length] for e in encodings]
    return {"input_ids": ids, "length": [len(i) for i in ids]}


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
        data_dir, cache_dir = self.cfg.data_dir, self.cfg.cache_dir
        self.fingerprint = dataset_fingerprint(self.task, data_dir)
        raw = {split: load_split(self.task, split, data_dir, cache_dir) for split in SPLITS}
        # Trained on train only, keyed by the train split alone: changing an evaluation limit keeps the tokenizer.
        self.tokenizer = build_tokenizer(
            iter(raw["train"]["text"]), self.task.tokenizer, cache_dir,
            key=dataset_fingerprint(self.task, data_dir, splits=["train"]),
        )
        self.tokenizer_hash = tokenizer_hash(self.tokenizer)
        self.vocab_size = self.tokenizer.get_vocab_size()
        self.pad_id = self.tokenizer.token_to_id(PAD)
        for split, dataset in raw.items():
            key = hashlib.sha256(json.dumps(
                [TOKENIZED_FORMAT, self.fingerprint, split, self.tokenizer_hash, self.task.max_length]
            ).encode()).hexdigest()[:16]
            self.splits[split] = dataset.map(
                _encode_batch, batched=True, new_fingerprint=key, desc=f"tokenizing {self.task.dataset} {split}",
                fn_kwargs={"tokenizer": self.tokenizer, "max_length": self.task.max_length},
            )

    # ---- loaders -------------------------------------------------------------------------------------------

    def sampler(self, split: str) -> BucketBatchSampler:
        t = self.cfg.trainer
        return BucketBatchSampler(
            self.lengths(split), batch_size=t.batch_size, max_tokens=t.max_tokens, shuffle=split == "train",
            seed=self.cfg.seed,
        )

    def lengths(self, split: str) -> list[int]:
        return list(self.splits[split]["length"])

    def _loader(self, split: str) -> DataLoader:
        workers = self.cfg.trainer.num_workers
        return DataLoader(
            self.splits[split].select_columns(MODEL_COLUMNS),
            batch_sampler=self.sampler(split),
            collate_fn=partial(collate_classification, pad_id=self.pad_id),
            num_workers=workers,
            pin_memory=torch.cuda.is_available(),
            persistent_workers=workers > 0,
        )

    def train_dataloader(self) -> DataLoader:
        return self._loader("train")

    def val_dataloader(self) -> DataLoader:
        return self._loader("validation")

    def test_dataloader(self) -> DataLoader:
        return self._loader("test")

    # ---- probes and texts ----------------------------------------------------------------------------------

    def probe_indices(self, n: int) -> list[int]:
        """Evenly spaced validation rows: the same for every variant and seed, as they depend on the data only."""
        size = len(self.splits["validation"])
        if n <= 0 or size == 0:
            return []
        return sorted({int(i) for i in np.linspace(0, size - 1, num=min(n, size)).round()})

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
