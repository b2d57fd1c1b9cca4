"""Bidirectional recurrent encoder.

Shapes: B batch, T tokens, E embedding size, H hidden size per direction; output width D = 2H.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

CELLS = {"lstm": nn.LSTM, "gru": nn.GRU}


class RNNEncoder(nn.Module):
    """Embedding -> BiLSTM/BiGRU over the real tokens only (packed, so padding never enters a state)."""

    def __init__(
        self, vocab_size: int, *, embed_dim: int, hidden_dim: int, num_layers: int = 1, cell: str = "lstm",
        dropout: float = 0.0, pad_id: int = 0,
    ) -> None:
        super().__init__()
        if cell not in CELLS:
            raise ValueError(f"unknown rnn cell '{cell}': choose one of {', '.join(CELLS)}")
        self.embed = nn.Embedding(vocab_size, embed_dim, padding_idx=pad_id)
        self.rnn = CELLS[cell](
            embed_dim, hidden_dim, num_layers=num_layers, batch_first=True, bidirectional=True,
            dropout=dropout if num_layers > 1 else 0.0,
        )
        self.dropout = nn.Dropout(dropout)
        self.out_dim = 2 * hidden_dim

    def forward(
        self, input_ids: torch.Tensor, mask: torch.Tensor, need_weights: bool = False
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        x = self.dropout(self.embed(input_ids))  # (B, T, E)
        # pack_padded_sequence wants lengths on the CPU; >= 1 so an empty row cannot crash the kernel.
        lengths = mask.sum(dim=1).clamp(min=1).cpu()
        packed = pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False)
        out, _ = self.rnn(packed)
        out, _ = pad_packed_sequence(out, batch_first=True, total_length=input_ids.size(1))  # (B, T, 2H)
        return self.dropout(out), {}
