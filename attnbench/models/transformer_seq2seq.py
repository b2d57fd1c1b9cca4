"""Pre-LN transformer encoder-decoder (Vaswani et al., 2017) whose attentions are any variant.

The encoder is the classifier's `TransformerEncoder`. A decoder layer is causal self-attention, then
cross-attention over the encoder output, then the feed-forward block, each pre-LN with a residual. Both
attentions are the configured variant inside MultiHead's Q/K/V/O projections. Incremental decoding keeps,
per layer, the self-attention keys/values of the tokens so far and the cross-attention keys/values over the
encoder output, both through the attention's `prepare` (projected; a variant without its own `prepare` is
given back the layer inputs, and recomputes over them every step).

Shapes: B batch, S source tokens, T target tokens, D d_model, F feed-forward width, V target vocabulary,
H heads, K the width of a (possibly prepared) key or value.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
from torch import nn

from attnbench.models.seq2seq import Maps, Memory, OutputLayer, reorder_rows
from attnbench.models.transformer import AttentionFactory, TransformerEncoder, position_embedding, token_embedding

KeyValue = tuple[torch.Tensor, torch.Tensor]


@dataclass
class TransformerState:
    cross: list[KeyValue]  # per layer: (B, S, K) keys and values over the encoder output
    mask: torch.Tensor  # (B, S) bool
    self_cache: list[KeyValue] = field(default_factory=list)  # per layer: (B, t, K) keys and values so far
    length: int = 0  # tokens fed so far = position of the next one (every row decodes in lockstep)


class DecoderLayer(nn.Module):
    """x + SelfAttn(LN(x)); x + CrossAttn(LN(x), memory); x + FF(LN(x))."""

    def __init__(
        self, d_model: int, ff_dim: int, self_attention: nn.Module, cross_attention: nn.Module, dropout: float
    ) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(d_model)
        self.self_attn = self_attention
        self.norm2 = nn.LayerNorm(d_model)
        self.cross_attn = cross_attention
        self.norm3 = nn.LayerNorm(d_model)
        self.ff = nn.Sequential(nn.Linear(d_model, ff_dim), nn.GELU(), nn.Dropout(dropout), nn.Linear(ff_dim, d_model))
        self.dropout = nn.Dropout(dropout)

    def forward(
        self, x: torch.Tensor, self_mask: torch.Tensor | None, past: KeyValue | None, cross: KeyValue,
        cross_mask: torch.Tensor, need_weights: bool = False,
    ) -> tuple[torch.Tensor, KeyValue, torch.Tensor | None, torch.Tensor | None]:
        """x (B, Tq, D) new positions after `past` (B, t, K) cached ones.

        Returns the output (B, Tq, D), the self-attention keys/values including the new positions (the next
        step's `past`), and the self/cross weights (B, H, Tq, t + Tq), (B, H, Tq, S) or None.
        """
        h = self.norm1(x)
        key, value = self.self_attn.prepare(h, h)  # (B, Tq, K)
        if past is not None:
            key, value = torch.cat([past[0], key], dim=1), torch.cat([past[1], value], dim=1)  # (B, t + Tq, K)
        # Several new positions see each other causally; a single new one sees every cached position.
        attended, self_weights = self.self_attn(
            h, key, value, self_mask, need_weights=need_weights, causal=x.size(1) > 1, prepared=True,
        )  # (B, Tq, D)
        x = x + self.dropout(attended)
        attended, cross_weights = self.cross_attn(
            self.norm2(x), cross[0], cross[1], cross_mask, need_weights=need_weights, causal=False, prepared=True,
        )  # (B, Tq, D)
        x = x + self.dropout(attended)
        x = x + self.dropout(self.ff(self.norm3(x)))
        return x, (key, value), self_weights, cross_weights


class TransformerSeq2Seq(nn.Module):
    def __init__(
        self, *, src_vocab: int, tgt_vocab: int, d_model: int, ff_dim: int, num_layers: int,
        attention: AttentionFactory, dropout: float = 0.1, max_positions: int = 512, tie_embeddings: bool = False,
        tied_output_scale: float | None = None, shared_vocab: bool = False, pad_id: int = 0,
    ) -> None:
        super().__init__()
        self.encoder = TransformerEncoder(
            src_vocab, d_model=d_model, ff_dim=ff_dim, num_layers=num_layers, attention=attention, dropout=dropout,
            max_positions=max_positions, pad_id=pad_id,
        )
        share = tie_embeddings and shared_vocab
        # Initialised as the encoder's, so tied or not, tokens and positions start at comparable scales.
        self.embed = self.encoder.embed if share else token_embedding(tgt_vocab, d_model, pad_id)
        self.positions = position_embedding(max_positions, d_model)
        self.layers = nn.ModuleList(
            DecoderLayer(d_model, ff_dim, attention(), attention(), dropout) for _ in range(num_layers)
        )
        self.norm = nn.LayerNorm(d_model)
        self.output = OutputLayer(d_model, tgt_vocab, self.embed if tie_embeddings else None)
        self.dropout = nn.Dropout(dropout)
        self.scale = math.sqrt(d_model)  # as in the encoder: embeddings (tied or not) scaled by √d_model
        # Tied, the output layer reads the embedding table: the final LayerNorm's output (norm √d) still carries
        # the input token's own embedding, so that token's logit would start at ~√(d/2) (~11 at d = 256) and the
        # untrained model would copy its input. Rescaling the features by d^-1/2 before a tied output layer (as
        # T5 does, Raffel et al. 2020) starts every logit near 0: the first prediction is near uniform. It also caps
        # the logits at about |LN gain| x |embedding row| (~1 at the start), which the model must grow to be confident;
        # tied_output_scale=1.0 (fairseq's choice) leaves the features as they are.
        default = d_model**-0.5
        self.output_scale = (default if tied_output_scale is None else tied_output_scale) if tie_embeddings else 1.0
        self.max_target_positions: int | None = max_positions

    def _embed(self, tokens: torch.Tensor, start: int) -> torch.Tensor:
        """tokens (B, T) at positions start .. start + T - 1 -> (B, T, D)."""
        end = start + tokens.size(1)
        if end > self.positions.num_embeddings:
            raise ValueError(
                f"target of {end} tokens is longer than model.max_positions={self.positions.num_embeddings}: "
                "raise model.max_positions or lower the target/generation length"
            )
        pos = torch.arange(start, end, device=tokens.device)
        return self.dropout(self.embed(tokens) * self.scale + self.positions(pos))  # (B, T, D)

    def encode(self, src: torch.Tensor, src_mask: torch.Tensor) -> Memory:
        states, _ = self.encoder(src, src_mask)  # (B, S, D)
        return Memory(states=states, mask=src_mask)

    def start(self, memory: Memory) -> TransformerState:
        cross = [layer.cross_attn.prepare(memory.states, memory.states) for layer in self.layers]
        return TransformerState(cross=cross, mask=memory.mask)

    def _decode(
        self, x: torch.Tensor, state: TransformerState, self_mask: torch.Tensor | None, need_weights: bool
    ) -> tuple[torch.Tensor, TransformerState, Maps]:
        """Run the decoder layers on new positions x (B, Tq, D) after the cached ones."""
        cross_mask = state.mask[:, None, :]  # (B, 1, S)
        cache: list[KeyValue] = []
        maps: Maps = {}
        for i, layer in enumerate(self.layers):
            past = state.self_cache[i] if state.self_cache else None
            x, kv, self_weights, cross_weights = layer(x, self_mask, past, state.cross[i], cross_mask, need_weights)
            cache.append(kv)
            if need_weights:
                maps[f"self_attention.layer{i}"] = self_weights  # (B, H, Tq, t + Tq)
                maps[f"cross_attention.layer{i}"] = cross_weights  # (B, H, Tq, S)
        state = TransformerState(cross=state.cross, mask=state.mask, self_cache=cache, length=state.length + x.size(1))
        return self.norm(x), state, maps

    def step(
        self, tokens: torch.Tensor, state: TransformerState, need_weights: bool = False
    ) -> tuple[torch.Tensor, TransformerState, Maps]:
        """Feed the last emitted tokens (B,); logits (B, V) for the next one."""
        x = self._embed(tokens[:, None], state.length)  # (B, 1, D)
        x, state, maps = self._decode(x, state, None, need_weights)  # (B, 1, D)
        return self.output(x[:, 0] * self.output_scale), state, maps  # (B, V)

    def reorder(self, state: TransformerState | Memory, index: torch.Tensor) -> TransformerState | Memory:
        return reorder_rows(state, index)

    def attention_modules(self) -> dict[str, str]:
        """{map name: submodule path} of the attentions behind the decoder's maps (attention/override.py)."""
        names = {}
        for i in range(len(self.layers)):
            names[f"self_attention.layer{i}"] = f"layers.{i}.self_attn"
            names[f"cross_attention.layer{i}"] = f"layers.{i}.cross_attn"
        return names

    def forward(
        self, src: torch.Tensor, src_mask: torch.Tensor, tgt_in: torch.Tensor, tgt_mask: torch.Tensor,
        need_weights: bool = False,
    ) -> tuple[torch.Tensor, Maps]:
        """Teacher forcing: logits (B, T, V) and, when need_weights, the decoder's maps
        `self_attention.layer{i}` (B, H, T, T) and `cross_attention.layer{i}` (B, H, T, S).

        The encoder's own self-attention maps are left out: every map here is read as target x target or
        target x source, which an encoder map is not.
        """
        state = self.start(self.encode(src, src_mask))
        x = self._embed(tgt_in, 0)  # (B, T, D)
        x, _, maps = self._decode(x, state, tgt_mask[:, None, :], need_weights)  # (B, T, D)
        return self.output(x * self.output_scale), maps


__all__ = ["DecoderLayer", "TransformerSeq2Seq", "TransformerState"]
