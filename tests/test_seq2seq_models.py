"""Encoder-decoders and decoding: teacher forcing, incremental decoding, beam/greedy search rules, training.

Tiny CPU models: vocabulary 13 (0 PAD, 1 BOS, 2 EOS), widths 8-16; the search tests also use table models
(logits looked up by position and last token) over 2-4 real tokens. Shapes: B batch, S source tokens,
T target tokens, V vocabulary, H heads.
"""

from __future__ import annotations

import functools
import itertools
import math
from dataclasses import dataclass
from typing import Any

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from attnbench.models import RNNSeq2Seq, TransformerSeq2Seq, beam_search, build_seq2seq, greedy_search
from attnbench.attention import full_interface
from attnbench.models.seq2seq import Memory, reorder_rows

HERE = __name__  # this module's import path, for attention.impl strings
V, PAD, BOS, EOS = 13, 0, 1, 2
SPECIAL = {"bos_id": BOS, "eos_id": EOS, "pad_id": PAD}

BACKBONES: dict[str, dict[str, Any]] = {
    "rnn-bahdanau-gru": {"name": "rnn", "cell": "gru", "decoder_style": "bahdanau"},
    "rnn-luong-lstm": {"name": "rnn", "cell": "lstm", "decoder_style": "luong"},
    "transformer": {"name": "transformer"},
}
VARIANTS = ["additive", "dot", "general", "scaled_dot", "multihead"]
every_model = pytest.mark.parametrize("backbone", list(BACKBONES))
every_pair = pytest.mark.parametrize("backbone, variant", [(b, v) for b in BACKBONES for v in VARIANTS])


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Tiny tensors gain nothing from intra-op threads, and when another process holds a core, OpenMP threads
    waiting on each other make each op ~100x slower; one thread keeps this file fast on any machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def model_config(backbone: str, **overrides: Any) -> dict[str, Any]:
    base = {"embed_dim": 8, "hidden_dim": 8, "num_layers": 2, "dropout": 0.1, "ff_dim": 32, "max_positions": 40,
            "tie_embeddings": False, "cell": "gru", "decoder_style": "bahdanau"}
    return base | BACKBONES[backbone] | overrides


def attention_config(name: str, **overrides: Any) -> dict[str, Any]:
    base = {"name": name, "impl": None, "heads": 2 if name == "multihead" else 1, "score": "scaled_dot",
            "dropout": 0.0, "hidden_dim": None, "kwargs": {}}
    return base | overrides


def build(backbone: str, variant: str = "additive", *, seed: int = 0, attention: dict | None = None,
          **overrides: Any) -> nn.Module:
    torch.manual_seed(seed)
    model = build_seq2seq(model_config(backbone, **overrides), attention or attention_config(variant),
                          src_vocab=V, tgt_vocab=V, pad_id=PAD, shared_vocab=True)
    return model.eval()


def padded(rows: list[list[int]], width: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Token lists -> (ids (B, W), mask (B, W)) right-padded with PAD."""
    width = width or max(map(len, rows))
    ids = torch.full((len(rows), width), PAD)
    for i, row in enumerate(rows):
        ids[i, : len(row)] = torch.tensor(row)
    return ids, ids != PAD


def source(seed: int = 0, lengths: tuple[int, ...] = (7, 5, 3, 6)) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return padded([torch.randint(3, V, (n,), generator=g).tolist() for n in lengths])


def target(seed: int = 1, B: int = 4, T: int = 6) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    tgt = torch.randint(3, V, (B, T), generator=g)
    tgt[:, 0] = BOS
    return tgt, torch.ones(B, T, dtype=torch.bool)


def bias_token(model: nn.Module, token: int, value: float) -> None:
    """Push the output layer towards (value > 0) or away from (value < 0) one token."""
    with torch.no_grad():
        model.output.out.bias[token] += value


def incremental_logits(model: nn.Module, src: torch.Tensor, src_mask: torch.Tensor,
                       tgt_in: torch.Tensor) -> torch.Tensor:
    state = model.start(model.encode(src, src_mask))
    logits = []
    for t in range(tgt_in.size(1)):
        step_logits, state, _ = model.step(tgt_in[:, t], state)  # (B, V)
        logits.append(step_logits)
    return torch.stack(logits, dim=1)  # (B, T, V)


def reverse_task(n: int, seed: int) -> tuple[torch.Tensor, ...]:
    g = torch.Generator().manual_seed(seed)
    rows = [torch.randint(3, 10, (int(torch.randint(3, 6, (1,), generator=g)),), generator=g).tolist()
            for _ in range(n)]
    src, src_mask = padded(rows)
    tgt_in, tgt_mask = padded([[BOS, *row[::-1]] for row in rows])
    tgt_out, _ = padded([[*row[::-1], EOS] for row in rows])
    return src, src_mask, tgt_in, tgt_mask, tgt_out


def train(model: nn.Module, src: torch.Tensor, src_mask: torch.Tensor, tgt_in: torch.Tensor,
          tgt_mask: torch.Tensor, tgt_out: torch.Tensor, *, steps: int) -> float:
    """Full-batch Adam on teacher-forced cross-entropy; the last loss."""
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(steps):
        logits, _ = model(src, src_mask, tgt_in, tgt_mask)  # (B, T, V)
        loss = F.cross_entropy(logits.reshape(-1, V), tgt_out.reshape(-1), ignore_index=PAD)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return loss.item()


# --- teacher forcing ------------------------------------------------------------------------------------------

@every_pair
def test_teacher_forced_logits_and_maps(backbone: str, variant: str) -> None:
    model = build(backbone, variant)
    src, src_mask = source()
    tgt_in, tgt_mask = target()
    logits, maps = model(src, src_mask, tgt_in, tgt_mask, need_weights=True)
    assert logits.shape == (4, 6, V)
    assert model(src, src_mask, tgt_in, tgt_mask)[1] == {}
    H = 2 if variant == "multihead" else 1
    layers = 1 if backbone.startswith("rnn") else 2
    expected = {f"cross_attention.layer{i}": (4, H, 6, 7) for i in range(layers)}
    if backbone == "transformer":
        expected |= {f"self_attention.layer{i}": (4, H, 6, 6) for i in range(layers)}
    assert {name: tuple(w.shape) for name, w in maps.items()} == expected
    for i in range(layers):
        cross = maps[f"cross_attention.layer{i}"]
        assert (cross.masked_select(~src_mask[:, None, None, :]) == 0).all()  # padding gets no weight
        torch.testing.assert_close(cross.sum(-1), torch.ones(4, H, 6))
    if backbone == "transformer":
        future = torch.ones(6, 6, dtype=torch.bool).triu(1)
        assert (maps["self_attention.layer0"][..., future] == 0).all()


@every_pair
def test_source_padding_does_not_change_outputs(backbone: str, variant: str) -> None:
    model = build(backbone, variant)
    src, src_mask = source()
    tgt_in, tgt_mask = target()
    wide, wide_mask = F.pad(src, (0, 3), value=PAD), F.pad(src_mask, (0, 3), value=False)
    logits, maps = model(src, src_mask, tgt_in, tgt_mask, need_weights=True)
    wide_logits, wide_maps = model(wide, wide_mask, tgt_in, tgt_mask, need_weights=True)
    torch.testing.assert_close(wide_logits, logits)
    torch.testing.assert_close(wide_maps["cross_attention.layer0"][..., :7], maps["cross_attention.layer0"])


@every_pair
def test_changing_a_later_target_token_keeps_earlier_logits(backbone: str, variant: str) -> None:
    model = build(backbone, variant)
    src, src_mask = source()
    tgt_in, tgt_mask = target()
    changed = tgt_in.clone()
    changed[:, 3:] = (changed[:, 3:] + 1 - 3) % (V - 3) + 3  # other real tokens
    logits, _ = model(src, src_mask, tgt_in, tgt_mask)
    changed_logits, _ = model(src, src_mask, changed, tgt_mask)
    torch.testing.assert_close(changed_logits[:, :3], logits[:, :3])
    assert not torch.allclose(changed_logits[:, 3:], logits[:, 3:])


@every_pair
def test_incremental_decoding_equals_teacher_forcing(backbone: str, variant: str) -> None:
    model = build(backbone, variant)
    src, src_mask = source()
    tgt_in, tgt_mask = target()
    logits, maps = model(src, src_mask, tgt_in, tgt_mask, need_weights=True)
    torch.testing.assert_close(incremental_logits(model, src, src_mask, tgt_in), logits)
    # The maps of one step are the matching rows of the teacher-forced maps.
    state = model.start(model.encode(src, src_mask))
    for t in range(3):
        _, state, step_maps = model.step(tgt_in[:, t], state, need_weights=True)
    assert step_maps.keys() == maps.keys()
    for name, weights in step_maps.items():
        torch.testing.assert_close(weights[:, :, 0], maps[name][:, :, 2, : weights.size(-1)])


@every_pair
def test_training_mode_reaches_every_parameter(backbone: str, variant: str) -> None:
    model = build(backbone, variant, dropout=0.3).train()
    src, src_mask = source()
    tgt_in, tgt_mask = target()
    logits, _ = model(src, src_mask, tgt_in, tgt_mask)
    logits.logsumexp(-1).sum().backward()
    assert [name for name, p in model.named_parameters() if p.grad is None] == []


def test_transformer_target_longer_than_positions_is_a_clear_error() -> None:
    model = build("transformer", max_positions=5)
    src, src_mask = source()
    tgt_in, tgt_mask = target(T=6)
    with pytest.raises(ValueError, match="max_positions=5"):
        model(src, src_mask, tgt_in, tgt_mask)


def test_reorder_picks_rows_of_memory_and_state() -> None:
    model = build("transformer", "dot")
    src, src_mask = source()
    memory = model.encode(src, src_mask)
    index = torch.tensor([2, 2, 0])
    picked = model.reorder(memory, index)
    torch.testing.assert_close(picked.states, memory.states[index])
    assert torch.equal(picked.mask, src_mask[index])
    shared = torch.randn(4, 3)
    pair = reorder_rows((shared, shared, 7), index)
    assert pair[0] is pair[1] and pair[2] == 7  # aliases stay aliases, non-tensors stay


# --- tied embeddings ------------------------------------------------------------------------------------------

@every_model
def test_tied_embeddings_share_one_parameter(backbone: str) -> None:
    torch.manual_seed(0)
    config = model_config(backbone, tie_embeddings=True)
    shared = build_seq2seq(config, attention_config("general"), src_vocab=V, tgt_vocab=V, pad_id=PAD,
                           shared_vocab=True)
    assert shared.output.out.weight is shared.embed.weight is shared.encoder.embed.weight
    separate = build_seq2seq(config, attention_config("general"), src_vocab=V + 4, tgt_vocab=V, pad_id=PAD,
                             shared_vocab=False)
    assert separate.output.out.weight is separate.embed.weight
    assert separate.encoder.embed.weight is not separate.embed.weight
    src, src_mask = source()
    tgt_in, tgt_mask = target()
    assert separate(src, src_mask, tgt_in, tgt_mask)[0].shape == (4, 6, V)
    untied = build_seq2seq(model_config(backbone), attention_config("general"), src_vocab=V, tgt_vocab=V,
                           pad_id=PAD, shared_vocab=True)
    assert untied.output.out.weight is not untied.embed.weight
    with pytest.raises(ValueError, match="shared_vocab"):
        build_seq2seq(config, attention_config("dot"), src_vocab=V + 1, tgt_vocab=V, pad_id=PAD, shared_vocab=True)


def test_tying_adds_a_projection_only_when_widths_differ() -> None:
    luong = build("rnn-luong-lstm", tie_embeddings=True, embed_dim=16)  # features h~ are 2 * 8 = 16 wide
    assert isinstance(luong.output.proj, nn.Identity)
    bahdanau = build("rnn-bahdanau-gru", tie_embeddings=True)  # features [s; c; emb] are 16 + 16 + 8 wide
    assert bahdanau.output.proj.in_features == 40 and bahdanau.output.proj.out_features == 8


# --- search -------------------------------------------------------------------------------------------------

@functools.cache
def partly_trained(backbone: str, variant: str) -> nn.Module:
    """A model after 20 steps on the reverse task: input-dependent, unsure outputs of varied lengths, the case
    where beam search and greedy differ (untrained models emit nearly the same sequence for every input)."""
    model = build(backbone, variant, embed_dim=16, hidden_dim=16, num_layers=1, ff_dim=32, dropout=0.0).train()
    train(model, *reverse_task(32, seed=0), steps=20)
    return model.eval()


@every_model
@pytest.mark.parametrize("variant", ["additive", "multihead"])
def test_beam_size_one_is_greedy(backbone: str, variant: str) -> None:
    # Only at length_penalty 0: with alpha > 0 a sound K = 1 search keeps going after EOS tops a step (a longer
    # hypothesis may still score better once penalised), so it can legitimately beat greedy; see
    # test_beam_size_one_is_at_least_as_good_as_greedy.
    model = partly_trained(backbone, variant)
    src, src_mask, *_ = reverse_task(8, seed=5)
    greedy = greedy_search(model, src, src_mask, max_len_b=12, **SPECIAL)
    beam = beam_search(model, src, src_mask, beam_size=1, max_len_b=12, length_penalty=0.0, **SPECIAL)
    assert beam == greedy
    assert len({len(h) for h in greedy}) > 1  # the case is not trivial


@every_model
def test_beam_output_is_independent_of_the_batch_and_padding(backbone: str) -> None:
    model = partly_trained(backbone, "multihead")
    src, src_mask, *_ = reverse_task(8, seed=5)
    options = {"beam_size": 3, "max_len_a": 1.0, "max_len_b": 3, **SPECIAL}
    batched = beam_search(model, src, src_mask, **options)
    wide = beam_search(model, F.pad(src, (0, 4), value=PAD), F.pad(src_mask, (0, 4), value=False), **options)
    assert wide == batched
    for i, n in enumerate(src_mask.sum(1).tolist()):
        alone = beam_search(model, src[i:i + 1, :n], src_mask[i:i + 1, :n], **options)
        assert alone == [batched[i]]
    assert batched != greedy_search(model, src, src_mask, max_len_a=1.0, max_len_b=3, **SPECIAL)


def sequence_scores(model: nn.Module, src: torch.Tensor, src_mask: torch.Tensor,
                    hyps: list[list[int]]) -> torch.Tensor:
    """log P(hyp + EOS | src) of every hypothesis by teacher forcing, (N,)."""
    tgt_in, tgt_mask = padded([[BOS, *h] for h in hyps])
    tgt_out, _ = padded([[*h, EOS] for h in hyps], width=tgt_in.size(1))
    N = len(hyps)
    logits, _ = model(src.expand(N, -1), src_mask.expand(N, -1), tgt_in, tgt_mask)
    lprobs = logits.log_softmax(-1).gather(2, tgt_out[..., None]).squeeze(-1)  # (N, T)
    return (lprobs * tgt_mask).sum(1)


@every_model
@pytest.mark.parametrize("length_penalty", [0.0, 1.0])
def test_a_beam_wide_enough_finds_the_best_sequence(backbone: str, length_penalty: float) -> None:
    model = partly_trained(backbone, "additive")
    src, src_mask, *_ = reverse_task(1, seed=7)
    real = list(range(3, V))  # every token but PAD, BOS, EOS
    hyps = [[]] + [[a] for a in real] + [[a, b] for a in real for b in real]
    hyps += [[a, b, c] for a in real for b in real for c in real]
    with torch.no_grad():
        scores = sequence_scores(model, src, src_mask, hyps)
    penalties = torch.tensor([((5 + len(h) + 1) / 6) ** length_penalty for h in hyps])
    best = hyps[int((scores / penalties).argmax())]
    found = beam_search(model, src, src_mask, beam_size=len(hyps), max_len_b=3, length_penalty=length_penalty,
                        **SPECIAL)
    assert found == [best]


@every_model
def test_max_length_is_respected(backbone: str) -> None:
    model = build(backbone, "dot")
    bias_token(model, EOS, -100.0)  # never stops on its own
    src, src_mask = source(lengths=(7, 5, 3, 6))
    for search, extra in ((greedy_search, {}), (beam_search, {"beam_size": 3})):
        hyps = search(model, src, src_mask, max_len_a=0.5, max_len_b=1, **extra, **SPECIAL)
        assert [len(h) for h in hyps] == [4, 3, 2, 4]  # floor(0.5 * |src| + 1)
        assert all(t not in (PAD, BOS, EOS) for h in hyps for t in h)


def test_generation_is_capped_by_the_position_table() -> None:
    model = build("transformer", "dot", max_positions=6)
    bias_token(model, EOS, -100.0)
    src, src_mask = source(lengths=(6, 4, 3, 5))
    assert [len(h) for h in beam_search(model, src, src_mask, beam_size=2, **SPECIAL)] == [5] * 4
    assert [len(h) for h in greedy_search(model, src, src_mask, **SPECIAL)] == [5] * 4


@every_model
def test_eos_stops_and_min_length_forbids_it(backbone: str) -> None:
    model = build(backbone, "general")
    bias_token(model, EOS, 100.0)  # EOS always most likely
    src, src_mask = source()
    for search, extra in ((greedy_search, {}), (beam_search, {"beam_size": 3})):
        assert search(model, src, src_mask, max_len_b=10, **extra, **SPECIAL) == [[]] * 4
        hyps = search(model, src, src_mask, max_len_b=10, min_length=3, **extra, **SPECIAL)
        assert [len(h) for h in hyps] == [3] * 4
        # max length wins over min length
        assert [len(h) for h in search(model, src, src_mask, max_len_b=2, min_length=3, **extra, **SPECIAL)] == [2] * 4


def _ngrams(tokens: list[int], n: int) -> list[tuple[int, ...]]:
    return [tuple(tokens[i:i + n]) for i in range(len(tokens) - n + 1)]


@every_model
def test_no_repeat_ngram_size(backbone: str) -> None:
    model = build(backbone, "scaled_dot")
    bias_token(model, 5, 8.0)  # token 5 over and over, unless banned
    bias_token(model, EOS, -100.0)
    src, src_mask = source()
    for search, extra in ((greedy_search, {}), (beam_search, {"beam_size": 3})):
        free = search(model, src, src_mask, max_len_b=8, **extra, **SPECIAL)
        assert all(h.count(5) >= 4 for h in free)
        for n in (1, 2, 3):
            hyps = search(model, src, src_mask, max_len_b=8, no_repeat_ngram_size=n, **extra, **SPECIAL)
            for hyp in hyps:
                grams = _ngrams([BOS, *hyp], n)
                assert len(grams) == len(set(grams)), (n, hyp)
                assert len(hyp) == 8


@every_model
def test_length_penalty_favours_longer_hypotheses(backbone: str) -> None:
    model = partly_trained(backbone, "additive")
    src, src_mask, *_ = reverse_task(16, seed=5)
    lengths = [
        [len(h) for h in beam_search(model, src, src_mask, beam_size=4, max_len_b=12, length_penalty=alpha, **SPECIAL)]
        for alpha in (0.0, 3.0)
    ]
    assert all(long >= short for short, long in zip(*lengths)) and lengths[1] != lengths[0]


# --- search on constructed models: logits from a table, so any case can be engineered ---------------------------

@dataclass
class TableState:
    position: torch.Tensor  # (B,) tokens fed so far, BOS included


class TableModel:
    """A `Seq2SeqModel` whose next-token log-probabilities are table[position, last token], whatever the source."""

    max_target_positions: int | None = None

    def __init__(self, logits: torch.Tensor) -> None:  # (P, V, V)
        self.table = logits.log_softmax(-1)  # (P, V, V)

    def encode(self, src: torch.Tensor, src_mask: torch.Tensor) -> Memory:
        return Memory(states=src_mask[..., None].float(), mask=src_mask)

    def start(self, memory: Memory) -> TableState:
        return TableState(position=torch.zeros(memory.mask.size(0), dtype=torch.long))

    def step(self, tokens: torch.Tensor, state: TableState,
             need_weights: bool = False) -> tuple[torch.Tensor, TableState, dict]:
        position = state.position.clamp(max=self.table.size(0) - 1)
        return self.table[position, tokens], TableState(state.position + 1), {}  # (B, V)

    def reorder(self, state: TableState | Memory, index: torch.Tensor) -> TableState | Memory:
        return reorder_rows(state, index)


ONE_SOURCE = (torch.tensor([[3, 3]]), torch.tensor([[True, True]]))  # a table model ignores its source


def random_table(seed: int, real: int, max_len: int) -> TableModel:
    """Random logits over `real` real tokens and EOS at each position 0 .. max_len; PAD and BOS impossible."""
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(max_len + 1, 3 + real, 3 + real, generator=g) * 1.5  # (P, V, V)
    logits[..., EOS] += torch.randn(max_len + 1, 3 + real, generator=g)  # some positions favour stopping
    logits[..., [PAD, BOS]] = float("-inf")
    return TableModel(logits)


def penalty(hyp: list[int], alpha: float) -> float:
    return ((5 + len(hyp) + 1) / 6) ** alpha  # GNMT, the length counting EOS


def penalised_score(model: TableModel, hyp: list[int], alpha: float) -> float:
    """log P(hyp + EOS) / lp, summed in float32 in decoding order, as beam_search sums it."""
    score, last = torch.tensor(0.0), BOS
    for position, token in enumerate([*hyp, EOS]):
        score, last = score + model.table[position, last, token], token
    return float(score) / penalty(hyp, alpha)


def search_to_the_end(model: TableModel, K: int, max_len: int, alpha: float) -> list[int]:
    """beam_search's pruning (the best 2K; EOS among the first K finishes; the best K others live), one sentence,
    unbatched, but never stopping before max_len: what a sound stopping rule must return."""
    beams: list[tuple[torch.Tensor, list[int]]] = [(torch.tensor(0.0), [])]  # (log P, tokens)
    finished: list[tuple[float, list[int]]] = []
    for position in range(max_len + 1):
        candidates = [
            (score + model.table[position, hyp[-1] if hyp else BOS, token], hyp, token)
            for score, hyp in beams for token in range(model.table.size(-1))
            if token not in (PAD, BOS) and (token == EOS or position < max_len)
        ]
        top = sorted(candidates, key=lambda c: -float(c[0]))[: 2 * K]
        finished += [(float(score) / penalty(hyp, alpha), hyp) for score, hyp, token in top[:K] if token == EOS]
        beams = [(score, [*hyp, token]) for score, hyp, token in top if token != EOS][:K]
    return max(finished, key=lambda f: f[0])[1]


A, LONG = 3, 6  # the real token and max length of `worth_waiting_for`


def worth_waiting_for() -> TableModel:
    """K = 2, alpha = 1: [] (log P -0.82) and [a] (log P -1.27) both finish with log P above the best live beam
    [a, a] (-1.33), so a rule comparing log-probabilities stops and returns [] (penalised -0.82). But [a, a] goes
    on almost surely to [a] * 6, log P -1.43, penalised -1.43 / lp(7) = -0.72: better. Greedy returns [a]."""
    b = 4
    probs = torch.zeros(LONG + 1, 5, 5)  # (position, last token, next token); rows not set below mostly stop
    probs[..., [EOS, A, b]] = torch.tensor([0.98, 0.01, 0.01])
    probs[0, BOS, [EOS, A, b]] = torch.tensor([0.44, 0.55, 0.01])
    probs[1, A, [EOS, A, b]] = torch.tensor([0.51, 0.48, 0.01])
    probs[2:LONG, A, [EOS, A, b]] = torch.tensor([0.01, 0.98, 0.01])
    return TableModel(probs.log())


def test_search_goes_on_while_a_live_beam_can_still_score_better() -> None:
    model = worth_waiting_for()
    found = beam_search(model, *ONE_SOURCE, beam_size=2, max_len_b=LONG, length_penalty=1.0, **SPECIAL)
    assert found == [[A] * LONG]
    assert penalised_score(model, [A] * LONG, 1.0) > penalised_score(model, [], 1.0) + 0.1
    assert found == [search_to_the_end(model, 2, LONG, 1.0)]
    with pytest.raises(ValueError, match="length_penalty"):
        beam_search(model, *ONE_SOURCE, beam_size=2, length_penalty=-0.5, **SPECIAL)


@pytest.mark.parametrize("alpha", [0.0, 0.6, 1.0, 2.0])
@pytest.mark.parametrize("real, max_len", [(3, 4), (4, 3)])
def test_a_beam_as_wide_as_every_hypothesis_finds_the_brute_force_best(real: int, max_len: int,
                                                                       alpha: float) -> None:
    hyps = [list(h) for n in range(max_len + 1) for h in itertools.product(range(3, 3 + real), repeat=n)]
    for seed in range(6):
        model = random_table(seed, real, max_len)
        best = max(hyps, key=lambda h: penalised_score(model, h, alpha))
        found = beam_search(model, *ONE_SOURCE, beam_size=len(hyps), max_len_b=max_len, length_penalty=alpha,
                            **SPECIAL)
        assert found == [best], seed


@pytest.mark.parametrize("alpha", [0.0, 0.6, 1.0, 2.0])
def test_stopping_early_never_changes_the_answer(alpha: float) -> None:
    """Narrow beams prune, so their answer is not the global best, but stopping must cost nothing: the answer is
    the one the same search reaches when it runs to max length. (A rule on log P alone, stopping at K finished
    hypotheses above the best live beam, fails this at alpha = 2.)"""
    for seed in range(40):
        for real, max_len in ((3, 4), (4, 6)):
            model = random_table(seed, real, max_len)
            for K in (1, 2, 3):
                found = beam_search(model, *ONE_SOURCE, beam_size=K, max_len_b=max_len, length_penalty=alpha,
                                    **SPECIAL)
                assert found == [search_to_the_end(model, K, max_len, alpha)], (seed, real, K)


@pytest.mark.parametrize("alpha", [0.6, 1.0, 2.0])
def test_beam_size_one_is_at_least_as_good_as_greedy(alpha: float) -> None:
    """K = 1 follows greedy's path and finishes greedy's hypothesis where greedy stops, so its answer scores at
    least as well. K = 2 has no such guarantee: pruning can drop greedy's path (rare, but random tables show it)."""
    models = [(worth_waiting_for(), LONG)]  # where K = 1 does search past greedy's stop
    models += [(random_table(seed, real, max_len), max_len) for seed in range(40) for real, max_len in ((3, 4), (4, 6))]
    for i, (model, max_len) in enumerate(models):
        greedy = greedy_search(model, *ONE_SOURCE, max_len_b=max_len, **SPECIAL)[0]
        beam = beam_search(model, *ONE_SOURCE, beam_size=1, max_len_b=max_len, length_penalty=alpha, **SPECIAL)[0]
        assert penalised_score(model, beam, alpha) >= penalised_score(model, greedy, alpha), i
        if i == 0:
            assert (greedy, beam) == ([A], [A] * LONG)


# --- end to end: train on a tiny reverse task, then decode it --------------------------------------------------

@pytest.mark.parametrize("backbone, variant", [
    ("rnn-luong-lstm", "dot"), ("rnn-bahdanau-gru", "additive"), ("transformer", "multihead"),
])
def test_tiny_model_learns_to_reverse_and_decodes_it(backbone: str, variant: str) -> None:
    model = build(backbone, variant, embed_dim=32, hidden_dim=32, num_layers=1, ff_dim=64, dropout=0.0)
    src, src_mask, tgt_in, tgt_mask, tgt_out = reverse_task(32, seed=0)
    loss = train(model.train(), src, src_mask, tgt_in, tgt_mask, tgt_out, steps=200)
    model.eval()
    assert loss < 0.05
    gold = [row[row != PAD].flip(0).tolist() for row in src]
    assert greedy_search(model, src, src_mask, max_len_b=10, **SPECIAL) == gold
    assert beam_search(model, src, src_mask, beam_size=4, max_len_b=10, **SPECIAL) == gold


# --- attention variants with and without `prepare` -------------------------------------------------------------


def masked_attend(scores, value, mask, causal, need_weights):
    """Softmax over the kept keys (padding mask and causal), then the weighted values: (B, Tq, Dv), weights | None."""
    keep = torch.ones_like(scores, dtype=torch.bool) if mask is None else mask.expand_as(scores)
    if causal:
        keep = keep & torch.ones(scores.shape[-2:], dtype=torch.bool).tril()
    weights = scores.masked_fill(~keep, -1e9).softmax(-1).masked_fill(~keep, 0.0)
    return weights @ value, weights.unsqueeze(1) if need_weights else None  # (B, Tq, Dv)


class PlainDot(nn.Module):
    """A custom variant without `prepare`: decoders must pass it the raw keys at every step."""

    def __init__(self, query_dim: int, key_dim: int, value_dim: int, *, dropout: float = 0.0) -> None:
        super().__init__()
        self.temperature = nn.Parameter(torch.tensor(2.0))
        self.out_dim = value_dim

    def forward(self, query, key, value, mask=None, need_weights=False, causal=False):
        scores = query @ key.transpose(-2, -1) / self.temperature  # (B, Tq, Tk)
        return masked_attend(scores, value, mask, causal, need_weights)


class CachedBilinear(nn.Module):
    """A custom variant with `prepare`: keys and values are projected once, then reused from the cache."""

    def __init__(self, query_dim: int, key_dim: int, value_dim: int, *, dropout: float = 0.0) -> None:
        super().__init__()
        self.W_k = nn.Linear(key_dim, query_dim)
        self.W_v = nn.Linear(value_dim, value_dim)
        self.out_dim = value_dim
        self.calls = {"prepare": 0, "prepared": 0, "raw": 0}

    def prepare(self, key: torch.Tensor, value: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        self.calls["prepare"] += 1
        return self.W_k(key), self.W_v(value)  # (B, Tk, Dq), (B, Tk, Dv)

    def forward(self, query, key, value, mask=None, need_weights=False, causal=False, prepared=False):
        self.calls["prepared" if prepared else "raw"] += 1
        if not prepared:
            key, value = self.W_k(key), self.W_v(value)
        scores = query @ key.transpose(-2, -1) / math.sqrt(query.size(-1))  # (B, Tq, Tk)
        return masked_attend(scores, value, mask, causal, need_weights)


class Hidden(nn.Module):
    """The same module with `prepare` out of sight, as a variant without it would be."""

    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner, self.out_dim = inner, inner.out_dim

    def forward(self, *args, **kwargs):
        return self.inner(*args, **kwargs)


@every_model
def test_custom_attention_without_prepare_decodes_by_recomputation(backbone: str) -> None:
    custom = attention_config("custom", impl=f"{HERE}:PlainDot")
    model = build(backbone, attention=custom)
    attentions = [m for m in model.modules() if isinstance(m, PlainDot)]
    states = torch.randn(2, 3, 16)
    assert attentions and all(k is v is states for k, v in (m.prepare(states, states) for m in attentions))
    src, src_mask = source()
    tgt_in, tgt_mask = target()
    logits, _ = model(src, src_mask, tgt_in, tgt_mask)
    torch.testing.assert_close(incremental_logits(model, src, src_mask, tgt_in), logits)
    bias_token(model, EOS, -1.5)
    greedy = greedy_search(model, src, src_mask, max_len_b=8, **SPECIAL)
    # K = 1 equals greedy at length_penalty 0 (with alpha > 0 it may search on after EOS, and do better).
    assert beam_search(model, src, src_mask, beam_size=1, max_len_b=8, length_penalty=0.0, **SPECIAL) == greedy
    assert all(len(h) <= 8 for h in beam_search(model, src, src_mask, beam_size=3, max_len_b=8, **SPECIAL))


def _direct(backbone: str, make: Any, seed: int = 0) -> nn.Module:
    """The backbone with the attention module built by `make(dim)` itself (no MultiHead wrapper around it)."""
    torch.manual_seed(seed)
    if backbone == "transformer":
        model: nn.Module = TransformerSeq2Seq(src_vocab=V, tgt_vocab=V, d_model=16, ff_dim=32, num_layers=2,
                                              attention=lambda: make(16), max_positions=40)
    else:
        config = BACKBONES[backbone]
        model = RNNSeq2Seq(src_vocab=V, tgt_vocab=V, embed_dim=8, hidden_dim=8, attention=make(16), num_layers=2,
                           cell=config["cell"], decoder_style=config["decoder_style"])
    return model.eval()


@every_model
def test_prepared_caches_equal_recomputation(backbone: str) -> None:
    cached = _direct(backbone, lambda d: CachedBilinear(d, d, d))
    recomputed = _direct(backbone, lambda d: full_interface(Hidden(CachedBilinear(d, d, d))))  # same weights
    src, src_mask = source()
    tgt_in, tgt_mask = target()
    incremental = incremental_logits(cached, src, src_mask, tgt_in)
    torch.testing.assert_close(incremental, recomputed(src, src_mask, tgt_in, tgt_mask)[0])
    torch.testing.assert_close(incremental, cached(src, src_mask, tgt_in, tgt_mask)[0])
    decoder = cached.layers if backbone == "transformer" else cached.decoder  # the encoder has no cache to keep
    calls = [m.calls for m in decoder.modules() if isinstance(m, CachedBilinear)]
    assert calls and all(c["prepare"] > 0 and c["prepared"] > 0 and c["raw"] == 0 for c in calls)
    hidden_calls = [m.inner.calls for m in recomputed.modules() if isinstance(m, Hidden)]
    assert all(c["prepare"] == 0 and c["prepared"] == 0 for c in hidden_calls)
    bias_token(cached, EOS, -1.5)
    bias_token(recomputed, EOS, -1.5)
    options = {"beam_size": 3, "max_len_b": 8, **SPECIAL}
    assert beam_search(cached, src, src_mask, **options) == beam_search(recomputed, src, src_mask, **options)


@pytest.mark.parametrize("cell, layers", [("lstm", 1), ("gru", 2), ("lstm", 3)])
def test_rnn_encoder_equals_a_packed_bidirectional_rnn(cell, layers):
    """The sync-free encoder (two unidirectional RNNs, the backward one on length-reversed rows) computes what
    pack_padded_sequence + a bidirectional nn.LSTM/GRU with the same weights computes."""
    from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

    from attnbench.models import RNNEncoder

    torch.manual_seed(0)
    encoder = RNNEncoder(V, embed_dim=6, hidden_dim=5, num_layers=layers, cell=cell, pad_id=PAD).eval()
    reference = nn.LSTM if cell == "lstm" else nn.GRU
    ref = reference(6, 5, num_layers=layers, batch_first=True, bidirectional=True)
    with torch.no_grad():
        for i in range(layers):
            for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
                getattr(ref, f"{name}_l{i}").copy_(getattr(encoder.forward_rnns[i], f"{name}_l0"))
                getattr(ref, f"{name}_l{i}_reverse").copy_(getattr(encoder.backward_rnns[i], f"{name}_l0"))
    lengths = torch.tensor([7, 3, 1, 5])
    mask = torch.arange(7)[None, :] < lengths[:, None]  # (B, S)
    ids = torch.randint(3, V, (4, 7)).masked_fill(~mask, PAD)
    out, _ = encoder(ids, mask)
    packed = pack_padded_sequence(encoder.embed(ids), lengths, batch_first=True, enforce_sorted=False)
    expected, _ = pad_packed_sequence(ref(packed)[0], batch_first=True, total_length=7)
    torch.testing.assert_close(out, expected, atol=1e-6, rtol=1e-5)
    # Trailing padding changes nothing for the real tokens.
    longer = torch.cat([ids, torch.full((4, 3), PAD)], dim=1)
    out_longer, _ = encoder(longer, torch.cat([mask, torch.zeros(4, 3, dtype=torch.bool)], dim=1))
    torch.testing.assert_close(out_longer[:, :7], out, atol=1e-6, rtol=1e-5)
    assert out_longer[:, 7:].abs().max() == 0


@pytest.mark.parametrize("score", ["dot", "additive"])
def test_a_transformer_with_wide_heads_decodes_incrementally_as_it_teacher_forces(score: str) -> None:
    """attention.head_dim (d_k set apart from d_model, the scaling ablation) reaches every transformer attention,
    and the prepared caches of incremental decoding hold the wider heads."""
    model = build("transformer", attention=attention_config(score, head_dim=24))
    widths = {name: module.weight.shape for name, module in model.named_modules() if name.endswith("q_proj")}
    assert set(widths) >= {"encoder.layers.0.attn.q_proj", "layers.0.self_attn.q_proj", "layers.0.cross_attn.q_proj"}
    assert set(widths.values()) == {(24, 8)}
    src, src_mask = source()
    tgt_in, _ = target()
    logits, _ = model(src, src_mask, tgt_in, target()[1])
    torch.testing.assert_close(incremental_logits(model, src, src_mask, tgt_in), logits)
