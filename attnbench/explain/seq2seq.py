"""Is an encoder-decoder's cross-attention an explanation? Diagnostics per target step over a fixed test sample.

For each example (B batch, S source tokens, T target tokens, H heads, n real source tokens) the reference is fed
teacher-forced and, at each target step t, the model's predicted next token y_t (the argmax) is explained:
  attention   the cross-attention weights of step t over the source tokens, per decoder layer, for the head mean
              and for each head
  importance  gradient x input of p(y_t | reference prefix, source) at the source token embeddings (Captum
              LayerGradientXActivation at the encoder's `token_embeddings` point), summed over the embedding and
              taken in absolute value; one backward per step, on the prefix up to t only (both decoders are causal)
  agreement   Kendall tau (SciPy) between the two over the n real source tokens, its p (significant: p < 0.05), the
              top-k overlap; each target step is one observation
  entropy     of each step's cross-attention row, in nats and / log n
  uniform     the test decoding (the task's beam search) of the sample with every cross-attention uniform over the
              real source tokens (attention/override.py), scored by the task's metrics beside the same decoding
              with the learned attention: the metric change is what the learned cross-attention is worth

Steps whose source has fewer than two tokens have no ranking to compare; they are skipped and counted.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from captum.attr import LayerGradientXActivation
from torch import nn

from attnbench.attention.override import override_attention, uniform_weights
from attnbench.explain.common import Agreement, Settings, agreement_summary, describe


@dataclass
class Steps:
    """Per (example, target step), the agreement of every cross-attention map; the decodings by example id."""

    maps: dict[tuple[str, str], Agreement] = field(default_factory=dict)  # (map, "mean" | "head{h}")
    source_length: list[int] = field(default_factory=list)  # per step: n
    examples: int = 0
    skipped_steps: int = 0
    hypotheses: dict[int, list[int]] = field(default_factory=dict)
    uniform_hypotheses: dict[int, list[int]] = field(default_factory=dict)


def attribution_point(model: nn.Module) -> nn.Module:
    """The encoder's source-token-embedding point (`encoder.token_embeddings`, models/rnn.py, transformer.py)."""
    point = getattr(getattr(model, "encoder", None), "token_embeddings", None)
    if not isinstance(point, nn.Module):
        raise TypeError(f"{type(model).__name__} has no encoder.token_embeddings: attnbench explain takes source "
                        "attributions there (an nn.Identity applied to the token embeddings)")
    return point


def step_gradients(model: nn.Module, point: nn.Module, batch: dict[str, torch.Tensor],
                   predicted: torch.Tensor) -> torch.Tensor:
    """|gradient x input| of p(predicted[:, t]) at each source token, per real target step: (B, T, S)."""
    src, src_mask, tgt_in, tgt_mask = batch["src"], batch["src_mask"], batch["tgt_in"], batch["tgt_mask"]

    def next_token(src: torch.Tensor, src_mask: torch.Tensor, tgt_in: torch.Tensor, tgt_mask: torch.Tensor):
        logits, _ = model(src, src_mask, tgt_in, tgt_mask)  # (b, t + 1, V)
        return logits[:, -1].float().softmax(-1)  # (b, V): the distribution of the next token after the prefix

    gradient = LayerGradientXActivation(next_token, point)
    (B, S), T = src.shape, tgt_in.size(1)
    out = torch.zeros(B, T, S)
    for t in range(T):
        rows = tgt_mask[:, t].nonzero()[:, 0]  # (b,)
        if rows.numel() == 0:
            continue
        attr = gradient.attribute(src[rows], target=predicted[rows, t],
                                  additional_forward_args=(src_mask[rows], tgt_in[rows, :t + 1], tgt_mask[rows, :t + 1]))
        out[rows, t] = attr.sum(-1).abs().detach().float()  # (b, S)
    return out


def explain_steps(model: nn.Module, task: Any, batches: Iterable[dict[str, torch.Tensor]],
                  settings: Settings) -> Steps:
    """Every diagnostic for every example of `batches` (collate_seq2seq batches), in eval mode, fp32; `task` is the
    run's Seq2SeqTask (its `generate` is the test decoding)."""
    model = model.eval().float()
    point = attribution_point(model)
    cross = override_names(model)
    out = Steps()
    for batch in batches:
        src, src_mask = batch["src"], batch["src_mask"]
        with torch.no_grad():
            logits, maps = model(src, src_mask, batch["tgt_in"], batch["tgt_mask"], need_weights=True)
        predicted = logits.argmax(-1)  # (B, T)
        grad = step_gradients(model, point, batch, predicted)  # (B, T, S)
        _collect(out, {name: maps[name] for name in cross}, batch, grad, settings)
        ids = batch["ids"].tolist()
        with torch.no_grad():
            out.hypotheses.update(zip(ids, task.generate(src, src_mask)))
            with override_attention(model, {name: uniform_weights for name in cross}):
                out.uniform_hypotheses.update(zip(ids, task.generate(src, src_mask)))
        out.examples += len(ids)
    return out


def override_names(model: nn.Module) -> list[str]:
    """The model's cross-attention maps (attention_modules names them)."""
    names = [name for name in model.attention_modules() if name.startswith("cross_attention")]
    if not names:
        raise TypeError(f"{type(model).__name__} names no cross_attention map in attention_modules()")
    return names


def _collect(out: Steps, maps: dict[str, torch.Tensor], batch: dict[str, torch.Tensor], grad: torch.Tensor,
             settings: Settings) -> None:
    src_mask, tgt_mask = batch["src_mask"], batch["tgt_mask"]
    steps = tgt_mask.nonzero().tolist()  # [(i, t)] real target steps
    for i, t in steps:
        n = int(src_mask[i].sum())
        if n < 2:
            out.skipped_steps += 1
            continue
        out.source_length.append(n)
        importance = {"gradient": grad[i, t, src_mask[i]].double().numpy()}
        for name, weights in maps.items():  # (B, H, T, S)
            rows = {"mean": weights[i, :, t].float().mean(0), **{f"head{h}": weights[i, h, t].float()
                                                                 for h in range(weights.size(1))}}
            for key, row in rows.items():
                a = row[src_mask[i]].double().numpy()
                entropy = float(-(a[a > 0] * np.log(a[a > 0])).sum())
                out.maps.setdefault((name, key), Agreement()).add(a, importance, entropy, settings.top_k)


def summarize_steps(steps: Steps, task: Any, settings: Settings) -> dict[str, Any]:
    """explain.json's "seq2seq" block."""
    lengths = np.asarray(steps.source_length, dtype=np.float64)
    maps: dict[str, dict[str, Any]] = {}
    for (name, key), of_map in steps.maps.items():
        maps.setdefault(name, {})[key] = {
            "agreement": agreement_summary(of_map.tau, of_map.p, of_map.overlap, settings.top_k),
            "entropy": {"nats": describe(of_map.entropy),
                        "normalized": describe(list(np.asarray(of_map.entropy) / np.log(lengths)))}}
    learned = task.score(steps.hypotheses, "test") if steps.hypotheses else {}
    uniform = task.score(steps.uniform_hypotheses, "test") if steps.uniform_hypotheses else {}
    return {
        "examples": steps.examples, "steps": len(steps.source_length), "skipped_steps": steps.skipped_steps,
        "explained": "teacher-forced reference prefix; the model's predicted next token at each step",
        "maps": maps,
        "uniform": {"decoding": f"beam {task.decoding['beam_size']}", "metrics": learned, "uniform_metrics": uniform,
                    "change": {k: uniform[k] - learned[k] for k in learned if k in uniform}},
    }


__all__ = ["Steps", "attribution_point", "explain_steps", "step_gradients", "summarize_steps"]
