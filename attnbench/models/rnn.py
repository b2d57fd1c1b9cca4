"""Bidirectional recurrent encoder.

Shapes: B batch, T tokens, E embedding size, H hidden size per direction; output width D = 2H.
"""

from __future__ import annotations

import functools

import torch
from torch import nn

CELLS = {"lstm": nn.LSTM, "gru": nn.GRU}


@functools.cache
def cpu_bf16_lstm() -> bool:
    """Whether this CPU runs nn.LSTM under bf16 autocast. Autocast sends it to oneDNN's bf16 LSTM, which needs
    AVX-512: on an AVX2-only CPU creating the primitive fails ("could not create a primitive descriptor")."""
    try:
        with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
            nn.LSTM(1, 1)(torch.zeros(1, 1, 1))
    except RuntimeError:
        return False
    return True


def run_rnn(rnn: nn.Module, x: torch.Tensor, hx=None):
    """rnn(x, hx); an LSTM under CPU bf16 autocast on a CPU without oneDNN's bf16 LSTM runs in fp32 instead, as
    a GRU does under autocast everywhere (autocast keeps it in fp32), so bf16-mixed runs on every CPU."""
    if (isinstance(rnn, nn.LSTM) and x.device.type == "cpu" and torch.is_autocast_enabled("cpu")
            and torch.get_autocast_dtype("cpu") == torch.bfloat16 and not cpu_bf16_lstm()):
        with torch.autocast("cpu", enabled=False):
            if hx is not None:
                hx = tuple(h.float() for h in hx)
            return rnn(x.float(), hx)
    return rnn(x, hx)


class RNNEncoder(nn.Module):
    """Embedding -> BiLSTM/BiGRU over the real tokens only: padding never enters a state.

    Instead of packing (which needs the lengths on the host: a device-to-host sync every step on a GPU), each
    layer runs two unidirectional RNNs on the padded batch: the forward one reads left to right (trailing
    padding comes after every real token, so it cannot reach their states), the backward one reads each row
    reversed within its own length (real tokens first, padding last). The result equals a packed
    bidirectional nn.LSTM/nn.GRU with the same weights (tests/test_seq2seq_models.py checks it); padded
    positions of the output are zero.
    """

    def __init__(
        self, vocab_size: int, *, embed_dim: int, hidden_dim: int, num_layers: int = 1, cell: str = "lstm",
        dropout: float = 0.0, pad_id: int = 0,
    ) -> None:
        super().__init__()
        if cell not in CELLS:
            raise ValueError(f"unknown rnn cell '{cell}': choose one of {', '.join(CELLS)}")
        self.embed = nn.Embedding(vocab_size, embed_dim, padding_idx=pad_id)
        # The source token embeddings, where attributions are taken (attnbench explain): a point of its own, as
        # a tied decoder may look tokens up in the same `embed`.
        self.token_embeddings = nn.Identity()
        rnn = CELLS[cell]
        self.forward_rnns = nn.ModuleList(
            rnn(embed_dim if i == 0 else 2 * hidden_dim, hidden_dim, batch_first=True) for i in range(num_layers))
        self.backward_rnns = nn.ModuleList(
            rnn(embed_dim if i == 0 else 2 * hidden_dim, hidden_dim, batch_first=True) for i in range(num_layers))
        self.dropout = nn.Dropout(dropout)
        self.out_dim = 2 * hidden_dim

    def forward(
        self, input_ids: torch.Tensor, mask: torch.Tensor, need_weights: bool = False
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        x = self.dropout(self.token_embeddings(self.embed(input_ids)))  # (B, T, E)
        lengths = mask.sum(dim=1).clamp(min=1)  # (B,) on the device: >= 1 so an empty row still has a start
        reverse = reversal_index(lengths, input_ids.size(1))  # (B, T)
        for i, (fwd, bwd) in enumerate(zip(self.forward_rnns, self.backward_rnns)):
            if i > 0:
                x = self.dropout(x)  # between layers, as nn.LSTM(dropout=...) does
            forward_out, _ = run_rnn(fwd, x)  # (B, T, H)
            backward_out, _ = run_rnn(bwd, reverse_rows(x, reverse))  # (B, T, H), in reversed order
            x = torch.cat([forward_out, reverse_rows(backward_out, reverse)], dim=-1)  # (B, T, 2H)
        x = x * mask[..., None].to(x.dtype)  # padded positions carry nothing
        return self.dropout(x), {}


def reversal_index(lengths: torch.Tensor, T: int) -> torch.Tensor:
    """(B, T) positions that reverse each row within its length and leave its padding in place (an involution)."""
    positions = torch.arange(T, device=lengths.device)[None, :]  # (1, T)
    flipped = lengths[:, None] - 1 - positions  # (B, T)
    return torch.where(flipped >= 0, flipped, positions)


def reverse_rows(x: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    return x.gather(1, index[..., None].expand_as(x))  # (B, T, D)
