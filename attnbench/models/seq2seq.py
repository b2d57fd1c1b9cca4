"""What both encoder-decoder backbones share: the decoding protocol, memory, state reordering, the output layer.

Every encoder-decoder (`RNNSeq2Seq`, `TransformerSeq2Seq`) offers

    forward(src, src_mask, tgt_in, tgt_mask, need_weights=False) -> (logits (B, T, V), maps)   teacher forcing
    encode(src, src_mask) -> Memory
    start(memory) -> state
    step(tokens (B,), state, need_weights=False) -> (logits (B, V), state, maps)               one token
    reorder(memory_or_state, index (B',)) -> the same with rows picked by `index` (beam search)

and incremental decoding (encode, start, step per token) equals teacher forcing on the same tokens.
Every tensor in a memory or a state has the batch on dim 0, so one `reorder` serves both.

Shapes: B batch, S source tokens, T target tokens, D model width, E embedding size, V target vocabulary,
H heads.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

import torch
from torch import nn

Maps = dict[str, torch.Tensor]
S = TypeVar("S")


@dataclass
class Memory:
    """The encoded source: what every decoding step attends to."""

    states: torch.Tensor  # (B, S, D)
    mask: torch.Tensor  # (B, S) bool, True = real token
    # The RNN bridge's input (last forward + first backward encoder state); None for the transformer.
    final: torch.Tensor | None = None  # (B, D)


class Seq2SeqModel(Protocol):
    """The interface `beam_search`/`greedy_search` decode with (both backbones implement it)."""

    max_target_positions: int | None

    def encode(self, src: torch.Tensor, src_mask: torch.Tensor) -> Memory: ...

    def start(self, memory: Memory) -> Any: ...

    def step(self, tokens: torch.Tensor, state: Any, need_weights: bool = False) -> tuple[torch.Tensor, Any, Maps]: ...

    def reorder(self, state: S, index: torch.Tensor) -> S: ...


def reorder_rows(value: S, index: torch.Tensor) -> S:
    """`value` with batch rows `index` picked, through dataclasses, lists, tuples and dicts.

    Non-tensor leaves (step counters, None) are kept. A tensor that appears twice (keys = values when an
    attention's `prepare` returns its inputs unchanged) is selected once and stays shared.
    """
    done: dict[int, torch.Tensor] = {}

    def pick(x: Any) -> Any:
        if isinstance(x, torch.Tensor):
            if id(x) not in done:
                done[id(x)] = x.index_select(0, index.to(x.device))
            return done[id(x)]
        if dataclasses.is_dataclass(x) and not isinstance(x, type):
            return dataclasses.replace(x, **{f.name: pick(getattr(x, f.name)) for f in dataclasses.fields(x)})
        if isinstance(x, (list, tuple)):
            return type(x)(pick(v) for v in x)
        if isinstance(x, dict):
            return {k: pick(v) for k, v in x.items()}
        return x

    return pick(value)


class OutputLayer(nn.Module):
    """Features -> vocabulary logits, optionally tied to an embedding (Press & Wolf, 2017).

    Tying needs the last layer's input width to be the embedding size, so a linear projection to E is added
    when the features are wider or narrower.
    """

    def __init__(self, in_dim: int, vocab_size: int, tied: nn.Embedding | None = None) -> None:
        super().__init__()
        width = in_dim if tied is None else tied.embedding_dim
        self.proj: nn.Module = nn.Identity() if width == in_dim else nn.Linear(in_dim, width)
        self.out = nn.Linear(width, vocab_size)
        if tied is not None:
            if tied.num_embeddings != vocab_size:
                raise ValueError(f"cannot tie an embedding of {tied.num_embeddings} rows to {vocab_size} logits")
            self.out.weight = tied.weight

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.out(self.proj(features))  # (..., V)


__all__ = ["Maps", "Memory", "OutputLayer", "Seq2SeqModel", "reorder_rows"]
