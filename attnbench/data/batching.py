"""Length-bucketed batches under an example and token budget, and padding into tensors.

Batching similar lengths together keeps padding (wasted compute) low; a token budget keeps long batches
from running out of memory while short ones stay large.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Sampler


class BucketBatchSampler(Sampler[list[int]]):
    """Lists of dataset indices: every index exactly once per epoch, none dropped.

    A batch holds at most `batch_size` examples and, when `max_tokens` is set, at most `max_tokens` padded
    tokens (longest length in the batch x batch size); an example longer than `max_tokens` goes alone.

    Without shuffling, batches follow the length-sorted order (ties by index): deterministic evaluation.
    With shuffling, each epoch splits the data into pools of about `pool_batches` batches, sorts each pool by
    length, cuts it into batches and shuffles the batch order; the result depends only on (seed, epoch).
    The pools interleave the length-sorted order (random among equal lengths) instead of being random
    subsets: every pool then holds the same lengths in every epoch, so the number of batches is the same in
    every epoch. That matters because Lightning reads `len()` once and stops an epoch after that many batches.

    Distributed (`num_replicas` > 1): every rank builds the same global batch list (same seed and epoch) and
    takes every num_replicas-th batch from position `rank`. In training the list is first padded by repeating
    its first batches so that all ranks run the same number of steps (as torch's DistributedSampler does);
    in evaluation nothing is added or dropped: every example is evaluated exactly once, on exactly one rank.

    `start` (set by ResumableLoader on a mid-epoch resume) makes the next iteration skip that many of the epoch's
    batches; `len()` stays the whole epoch's, as Lightning counts the batches done before the resume itself.
    """

    def __init__(self, lengths: Sequence[int], *, batch_size: int, max_tokens: int | None, shuffle: bool, seed: int,
                 pool_batches: int = 50, num_replicas: int = 1, rank: int = 0) -> None:
        if batch_size <= 0 or pool_batches <= 0 or (max_tokens is not None and max_tokens <= 0):
            raise ValueError("batch_size, pool_batches and max_tokens must be positive")
        if num_replicas < 1 or not 0 <= rank < num_replicas:
            raise ValueError(f"rank {rank} of {num_replicas} replicas is not a valid shard")
        self.num_replicas, self.rank = num_replicas, rank
        self.lengths = np.asarray(lengths, dtype=np.int64)
        self.batch_size = batch_size
        self.max_tokens = max_tokens
        self.shuffle = shuffle
        self.seed = seed
        self.pool_batches = pool_batches
        self.epoch = 0
        self.start = 0
        self._cache: tuple[int, list[list[int]]] | None = None
        # Lightning calls `set_epoch` on `dataloader.batch_sampler.sampler`, not on the batch sampler itself
        # (lightning_fabric.utilities.data._set_sampler_epoch); pointing `sampler` here makes that call reach us.
        self.sampler = self

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def batches(self) -> list[list[int]]:
        """This epoch's batches, in the order they are yielded."""
        if self._cache is None or self._cache[0] != self.epoch:
            self._cache = (self.epoch, self._shard(self._make_batches()))
        return self._cache[1]

    def _shard(self, batches: list[list[int]]) -> list[list[int]]:
        if self.num_replicas == 1:
            return batches
        if self.shuffle:
            total = -(-len(batches) // self.num_replicas) * self.num_replicas
            batches = batches + [batches[i % len(batches)] for i in range(total - len(batches))]
        return batches[self.rank::self.num_replicas]

    def __iter__(self) -> Iterator[list[int]]:
        # A generator: the epoch is read at the first batch, after Lightning's set_epoch.
        batches, start = self.batches(), self.start
        self.start = 0
        yield from batches[start:]

    def __len__(self) -> int:
        return len(self.batches())

    def _make_batches(self) -> list[list[int]]:
        n = len(self.lengths)
        if not self.shuffle:
            return self._cut(np.argsort(self.lengths, kind="stable"))
        rng = np.random.default_rng([self.seed, self.epoch])
        # Length-sorted order with ties broken at random: shuffle first, then a stable sort by length.
        shuffled = rng.permutation(n)
        ordered = shuffled[np.argsort(self.lengths[shuffled], kind="stable")]
        pools = max(1, -(-n // (self.pool_batches * self.batch_size)))
        batches = [batch for p in range(pools) for batch in self._cut(ordered[p::pools])]
        return [batches[i] for i in rng.permutation(len(batches))]

    def _cut(self, order: np.ndarray) -> list[list[int]]:
        """Greedy batches along `order` (sorted by length), closing one when the next example would break a cap."""
        batches: list[list[int]] = []
        batch: list[int] = []
        longest = 0
        for index in order.tolist():
            length = int(self.lengths[index])
            grown = max(longest, length)
            over_tokens = self.max_tokens is not None and grown * (len(batch) + 1) > self.max_tokens
            if batch and (len(batch) == self.batch_size or over_tokens):
                batches.append(batch)
                batch, grown = [], length
            batch.append(index)
            longest = grown
        if batch:
            batches.append(batch)
        return batches


class ResumableLoader(DataLoader):
    """The training DataLoader, resumable mid-epoch through Lightning's stateful-loader protocol.

    Lightning saves `state_dict()` of a train loader that has one into every checkpoint (the fit loop's
    `combined_loader` state) and passes it back to `load_state_dict()` on resume (training/resume.py does too, where
    Lightning does not); without it, a run resumed from a mid-epoch checkpoint (trainer.val_check_interval < 1)
    starts the epoch's batches over and Lightning warns that the loader is not resumable. Mid-epoch resume is exact
    only if making this loader's iterator leaves the global RNG alone: give it its own `generator`.
    The state is the epoch and the number of its batches handed to training,
    counted here rather than in the sampler, which worker processes (num_workers > 0) read ahead of training; on
    resume the sampler skips those batches, so workers never load them. Under DDP each rank counts its own shard's
    batches; all ranks run the same number of steps (the sampler pads training shards), so rank 0's count, the one
    checkpointed, holds on every rank.
    """

    def __init__(self, dataset: Any, *, batch_sampler: BucketBatchSampler, **kwargs: Any) -> None:
        super().__init__(dataset, batch_sampler=batch_sampler, **kwargs)
        self._position = (batch_sampler.epoch, 0)  # (epoch, batches handed out) of the iteration under way
        self._resume: tuple[int, int] | None = None

    def state_dict(self) -> dict[str, int]:
        epoch, batches = self._position
        return {"epoch": epoch, "batches": batches}

    def load_state_dict(self, state: Mapping[str, int]) -> None:
        self._resume = (int(state["epoch"]), int(state["batches"]))

    def __iter__(self) -> Iterator[Any]:
        # Lazy: torch's iterator (and its worker processes' first requests to the sampler) starts at the first
        # batch, after Lightning has loaded the state and called set_epoch; on resume it calls iter() before both.
        return self._iterate()

    def _iterate(self) -> Iterator[Any]:
        sampler: BucketBatchSampler = self.batch_sampler
        epoch, done = self._resume or (sampler.epoch, 0)
        self._resume = None
        # A checkpoint at an epoch's end resumes at the start of the next epoch (Lightning's set_epoch says which).
        sampler.start = done if epoch == sampler.epoch else 0
        self._position = (sampler.epoch, sampler.start)
        for batch in super().__iter__():
            self._position = (self._position[0], self._position[1] + 1)
            yield batch


def padding_fraction(lengths: Sequence[int], batches: Sequence[Sequence[int]]) -> float:
    """Share of the padded (batch x longest) token slots that are padding."""
    real = padded = 0
    for batch in batches:
        sizes = [int(lengths[i]) for i in batch]
        real += sum(sizes)
        padded += max(sizes, default=0) * len(sizes)
    return 1.0 - real / padded if padded else 0.0


def pad(sequences: Sequence[Sequence[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-padded ids (B, T) and the mask (B, T), True = real token."""
    width = max((len(s) for s in sequences), default=0)
    ids = torch.full((len(sequences), width), pad_id, dtype=torch.long)  # (B, T)
    mask = torch.zeros((len(sequences), width), dtype=torch.bool)  # (B, T)
    for row, seq in enumerate(sequences):
        ids[row, : len(seq)] = torch.as_tensor(seq, dtype=torch.long)
        mask[row, : len(seq)] = True
    return ids, mask


def collate_classification(examples: Sequence[Mapping[str, Any]], pad_id: int) -> dict[str, torch.Tensor]:
    """Examples with input_ids, label, id -> {input_ids (B, T), mask (B, T), labels (B,), ids (B,)}."""
    input_ids, mask = pad([e["input_ids"] for e in examples], pad_id)
    return {
        "input_ids": input_ids,
        "mask": mask,
        "labels": torch.tensor([e["label"] for e in examples], dtype=torch.long),  # (B,)
        "ids": torch.tensor([e["id"] for e in examples], dtype=torch.long),  # (B,)
    }


def collate_seq2seq(examples: Sequence[Mapping[str, Any]], pad_id: int, bos_id: int,
                    eos_id: int) -> dict[str, torch.Tensor]:
    """Examples with src_ids, tgt_ids (y, no BOS/EOS), id -> teacher-forcing tensors.

    {src (B, S), src_mask (B, S), tgt_in (B, T) = [BOS] y, tgt_out (B, T) = y [EOS], tgt_mask (B, T), ids (B,)};
    masks are True at real tokens, and tgt_mask marks the positions of both tgt_in and tgt_out.
    """
    src, src_mask = pad([e["src_ids"] for e in examples], pad_id)
    tgt_in, tgt_mask = pad([[bos_id, *e["tgt_ids"]] for e in examples], pad_id)
    tgt_out, _ = pad([[*e["tgt_ids"], eos_id] for e in examples], pad_id)
    return {
        "src": src,
        "src_mask": src_mask,
        "tgt_in": tgt_in,
        "tgt_out": tgt_out,
        "tgt_mask": tgt_mask,
        "ids": torch.tensor([e["id"] for e in examples], dtype=torch.long),  # (B,)
    }
