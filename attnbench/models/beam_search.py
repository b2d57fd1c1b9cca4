"""Batched beam search and greedy search over any encoder-decoder with the `Seq2SeqModel` protocol.

All sentences x beams decode as one tensor batch. A sentence leaves the batch when it is done, so later
steps only pay for the sentences still decoding, and its result never depends on the others.

Conventions (fairseq-like):
- a hypothesis's length counts its tokens without BOS and without EOS; it is at most
  max_len = int(max_len_a * |src| + max_len_b) (|src| without padding), capped by the model's position
  table; at that length EOS is forced;
- EOS is forbidden while a hypothesis is shorter than `min_length`; PAD (and BOS, unless it is EOS) is
  never generated;
- `no_repeat_ngram_size` = n forbids a token that would complete an n-gram already in the hypothesis
  (BOS included as its first token);
- the length penalty is GNMT's lp = ((5 + len) / 6) ** alpha (alpha >= 0) with len counting EOS; a finished
  hypothesis scores log P / lp; alpha = 0 ranks by log P alone;
- a sentence stops once no live beam can finish with a better score than its best finished hypothesis: log P
  only falls as a hypothesis grows and is <= 0, so a live beam of log P s can at best score
  s / lp(max_len + 1), the largest penalty (s itself at alpha = 0).

Shapes: B batch (sentences), K beam size, A sentences still decoding, V vocabulary, S source tokens,
t tokens so far (BOS included).
"""

from __future__ import annotations

import torch

from attnbench.models.seq2seq import Seq2SeqModel

NEG_INF = float("-inf")


def _max_lengths(model: Seq2SeqModel, src_mask: torch.Tensor, a: float, b: int) -> torch.Tensor:
    """Per sentence: the most tokens (EOS excluded) it may generate, (B,) long."""
    lengths = src_mask.sum(dim=1).double()  # (B,)
    max_len = (a * lengths + b).floor().long().clamp(min=0)  # (B,)
    limit = getattr(model, "max_target_positions", None)
    if limit is not None:
        # Decoding max_len tokens then EOS feeds BOS + max_len tokens, i.e. max_len + 1 positions.
        max_len = max_len.clamp(max=limit - 1)
    return max_len


def _banned_ngrams(tokens: torch.Tensor, n: int, vocab: int) -> torch.Tensor:
    """(R, t) hypotheses -> (R, V) bool: tokens that would repeat an n-gram already in the hypothesis."""
    R, t = tokens.shape
    banned = torch.zeros(R, vocab, dtype=torch.bool, device=tokens.device)
    if t < n:  # not one complete n-gram yet
        return banned
    windows = tokens.unfold(1, n, 1)  # (R, t - n + 1, n)
    prefix = tokens[:, t - n + 1:]  # (R, n - 1): the n-gram being completed
    match = (windows[:, :, :-1] == prefix[:, None, :]).all(dim=-1)  # (R, t - n + 1)
    # scatter_add, not scatter: duplicate indices with different values would make scatter's result undefined.
    hits = torch.zeros(R, vocab, device=tokens.device).scatter_add_(1, windows[:, :, -1], match.float())
    return hits > 0


def _log_probs(
    model: Seq2SeqModel, state: object, tokens: torch.Tensor, max_len: torch.Tensor, *, bos_id: int, eos_id: int,
    pad_id: int, min_length: int, no_repeat_ngram_size: int,
) -> tuple[torch.Tensor, object]:
    """The next-token log-probabilities (R, V) of hypotheses `tokens` (R, t) with every rule applied."""
    logits, state, _ = model.step(tokens[:, -1], state)  # (R, V)
    lprobs = torch.log_softmax(logits.float(), dim=-1)  # (R, V)
    eos = lprobs[:, eos_id].clone()  # (R,)
    for never in {pad_id, bos_id} - {eos_id}:
        lprobs[:, never] = NEG_INF
    if no_repeat_ngram_size > 0:
        lprobs = lprobs.masked_fill(_banned_ngrams(tokens, no_repeat_ngram_size, lprobs.size(1)), NEG_INF)
    generated = tokens.size(1) - 1  # BOS is not generated
    if generated < min_length:
        lprobs[:, eos_id] = NEG_INF
    at_max = max_len == generated  # (R,): EOS is the only choice left, at its true log-probability
    if at_max.any():
        lprobs[at_max] = NEG_INF
        lprobs[at_max, eos_id] = eos[at_max]
    return lprobs, state


def _length_penalty(length: int | torch.Tensor, alpha: float) -> float | torch.Tensor:
    return ((5.0 + length) / 6.0) ** alpha


@torch.no_grad()
def beam_search(
    model: Seq2SeqModel, src: torch.Tensor, src_mask: torch.Tensor, *, bos_id: int, eos_id: int, pad_id: int,
    beam_size: int = 5, max_len_a: float = 0.0, max_len_b: int = 200, min_length: int = 0,
    length_penalty: float = 1.0, no_repeat_ngram_size: int = 0,
) -> list[list[int]]:
    """The best hypothesis per sentence of src (B, S), without BOS/EOS.

    Each step scores the K x V continuations of a sentence's K beams and takes the best 2K: EOS among the
    first K finishes a hypothesis (kept with its length-penalised score), the best K others are the next
    beams. The answer is the finished hypothesis with the best length-penalised score, so a sentence is done
    when that score is at least the best its best live beam could still finish with (log P / lp(max_len + 1),
    see the module docstring), at its max length, or when no beam can continue. With K = 1 and
    length_penalty = 0 this is exactly greedy search; with length_penalty > 0, K = 1 may search on after EOS
    tops a step (a longer hypothesis can still score better), and greedy's answer is among its finished ones.
    """
    if beam_size < 1:
        raise ValueError(f"beam_size must be >= 1, got {beam_size}")
    if length_penalty < 0:
        # The stopping bound needs the penalty to grow with length (with alpha < 0 the shortest would bound it).
        raise ValueError(f"length_penalty must be >= 0, got {length_penalty}")
    B, K, device = src.size(0), beam_size, src.device
    max_len = _max_lengths(model, src_mask, max_len_a, max_len_b).to(device)  # (B,)
    # The largest penalty a hypothesis can get, max_len tokens then EOS; double, like the finished scores.
    max_penalty = _length_penalty(max_len.double() + 1, length_penalty)  # (B,)
    # Start (and prepare cross-attention keys) once per sentence, then copy the state to its K beams.
    state = model.start(model.encode(src, src_mask))
    state = model.reorder(state, torch.arange(B, device=device).repeat_interleave(K))
    sentences = torch.arange(B, device=device)  # (A,) which sentence each live group of K rows decodes
    tokens = torch.full((B * K, 1), bos_id, dtype=torch.long, device=device)  # (A*K, t)
    scores = torch.full((B, K), NEG_INF, device=device)  # (A, K) log P of each beam
    scores[:, 0] = 0.0  # K identical beams at first: expand only one, or the beam would hold K copies
    finished: list[list[tuple[float, list[int]]]] = [[] for _ in range(B)]  # (penalised score, tokens)
    best_finished = torch.full((B,), NEG_INF, dtype=torch.double, device=device)  # (B,) best penalised score

    while sentences.numel():
        A, generated = sentences.numel(), tokens.size(1) - 1
        lprobs, state = _log_probs(
            model, state, tokens, max_len[sentences].repeat_interleave(K), bos_id=bos_id, eos_id=eos_id,
            pad_id=pad_id, min_length=min_length, no_repeat_ngram_size=no_repeat_ngram_size,
        )  # (A*K, V)
        V = lprobs.size(1)
        candidates = (scores[:, :, None] + lprobs.view(A, K, V)).view(A, K * V)  # (A, K*V)
        top_scores, top_index = candidates.topk(min(2 * K, K * V), dim=1)  # (A, 2K) best first
        top_beam, top_token = top_index // V, top_index % V  # (A, 2K)
        is_eos = top_token == eos_id  # (A, 2K)

        penalty = _length_penalty(generated + 1, length_penalty)
        ending = is_eos[:, :K] & top_scores[:, :K].isfinite()  # (A, K)
        penalised = top_scores[:, :K].double().div(penalty).masked_fill(~ending, NEG_INF)  # (A, K)
        for a, j in ending.nonzero().tolist():
            row = a * K + int(top_beam[a, j])
            finished[int(sentences[a])].append((float(penalised[a, j]), tokens[row, 1:].tolist()))
        best_finished[sentences] = torch.maximum(best_finished[sentences], penalised.max(dim=1).values)

        # The K best non-EOS candidates live on (a stable sort puts them first, in score order).
        order = torch.where(is_eos, top_scores.size(1), 0) + torch.arange(top_scores.size(1), device=device)
        pick = order.argsort(dim=1)[:, :K]  # (A, K)
        next_scores = top_scores.gather(1, pick)  # (A, K)
        rows = (torch.arange(A, device=device)[:, None] * K + top_beam.gather(1, pick)).view(-1)  # (A*K,)
        next_tokens = top_token.gather(1, pick).view(-1, 1)  # (A*K, 1)

        best_live = next_scores[:, 0]  # (A,) the beams are in score order
        stuck = best_live.isneginf() & best_finished[sentences].isneginf()  # (A,)
        for a in stuck.nonzero().view(-1).tolist():
            # Every continuation is forbidden (e.g. no_repeat_ngram_size over a tiny vocabulary): keep the best
            # beam as it stands rather than return nothing.
            best = scores[a].argmax().item()
            finished[int(sentences[a])].append((0.0, tokens[a * K + best, 1:].tolist()))
        # The best any live beam can still finish with: its log P s only falls, and s <= 0 over the largest
        # penalty is the least negative (at alpha = 0, s itself: the beam cannot gain probability).
        reachable = best_live.double() / max_penalty[sentences]  # (A,)
        done = (best_finished[sentences] >= reachable) | (max_len[sentences] <= generated) | best_live.isneginf()
        keep = ~done  # (A,)
        rows = rows.view(A, K)[keep].view(-1)  # (A'*K,)
        sentences, scores = sentences[keep], next_scores[keep]
        tokens = torch.cat([tokens[rows], next_tokens.view(A, K)[keep].view(-1, 1)], dim=1)  # (A'*K, t + 1)
        if sentences.numel():
            state = model.reorder(state, rows)

    return [max(hyps, key=lambda h: h[0])[1] if hyps else [] for hyps in finished]


@torch.no_grad()
def greedy_search(
    model: Seq2SeqModel, src: torch.Tensor, src_mask: torch.Tensor, *, bos_id: int, eos_id: int, pad_id: int,
    max_len_a: float = 0.0, max_len_b: int = 200, min_length: int = 0, no_repeat_ngram_size: int = 0,
) -> list[list[int]]:
    """The most probable next token at every step, per sentence of src (B, S), without BOS/EOS."""
    B, device = src.size(0), src.device
    max_len = _max_lengths(model, src_mask, max_len_a, max_len_b).to(device)  # (B,)
    state = model.start(model.encode(src, src_mask))
    sentences = torch.arange(B, device=device)  # (A,)
    tokens = torch.full((B, 1), bos_id, dtype=torch.long, device=device)  # (A, t)
    results: list[list[int]] = [[] for _ in range(B)]
    while sentences.numel():
        lprobs, state = _log_probs(
            model, state, tokens, max_len[sentences], bos_id=bos_id, eos_id=eos_id, pad_id=pad_id,
            min_length=min_length, no_repeat_ngram_size=no_repeat_ngram_size,
        )  # (A, V)
        best, choice = lprobs.max(dim=1)  # (A,)
        # A sentence ends with EOS, or when every token is forbidden (it keeps what it has).
        done = (choice == eos_id) | best.isneginf()  # (A,)
        for a in done.nonzero().view(-1).tolist():
            results[int(sentences[a])] = tokens[a, 1:].tolist()
        keep = ~done
        sentences = sentences[keep]
        tokens = torch.cat([tokens[keep], choice[keep, None]], dim=1)  # (A', t + 1)
        if sentences.numel():
            state = model.reorder(state, keep.nonzero().view(-1))
    return results


__all__ = ["beam_search", "greedy_search"]
