"""attnbench explain on encoder-decoders: per-step source gradients from Captum equal autograd, per-step tau equals
SciPy's, the uniform cross-attention decoding is what the override decodes, and a tiny real translation and
summarization run explain themselves (explain=true) with the learned decoding reproducing the recorded test set."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from scipy import stats

from attnbench.attention.override import override_attention, uniform_weights
from attnbench.cli import main
from attnbench.data.batching import collate_seq2seq
from attnbench.explain.common import Settings
from attnbench.explain.seq2seq import explain_steps, step_gradients, summarize_steps
from attnbench.models import build_seq2seq
from attnbench.models.beam_search import greedy_search

V, PAD, BOS, EOS = 13, 0, 1, 2


def model_block(backbone: str) -> dict:
    return {"name": backbone, "embed_dim": 8, "hidden_dim": 8, "num_layers": 2, "dropout": 0.0, "ff_dim": 16,
            "max_positions": 40, "tie_embeddings": True, "cell": "gru", "decoder_style": "bahdanau"}


def attention_block(name: str) -> dict:
    return {"name": name, "impl": None, "heads": 2 if name == "multihead" else 1, "score": "scaled_dot",
            "dropout": 0.0, "hidden_dim": None, "kwargs": {}}


def tiny(backbone: str, variant: str) -> torch.nn.Module:
    torch.manual_seed(0)  # tied and shared: the decoder looks tokens up in the encoder's own embedding table
    return build_seq2seq(model_block(backbone), attention_block(variant), src_vocab=V, tgt_vocab=V, pad_id=PAD,
                         shared_vocab=True).eval()


def batch() -> dict[str, torch.Tensor]:
    rows = [{"src_ids": [3, 4, 5, 6, 7], "tgt_ids": [8, 9, 10], "id": 0},
            {"src_ids": [5, 3, 9], "tgt_ids": [4, 11], "id": 1},
            {"src_ids": [12], "tgt_ids": [6], "id": 2}]  # one source token: its steps have no ranking
    return collate_seq2seq(rows, PAD, BOS, EOS)


class Greedy:
    """The part of Seq2SeqTask that explain_steps uses, with greedy decoding."""

    decoding = {"beam_size": 1}

    def __init__(self, model):
        self.model = model

    def generate(self, src, src_mask):
        return greedy_search(self.model, src, src_mask, max_len_a=0, max_len_b=6, min_length=0,
                             no_repeat_ngram_size=0, pad_id=PAD, bos_id=BOS, eos_id=EOS)

    def score(self, hypotheses, split):
        return {"length": float(np.mean([len(h) for h in hypotheses.values()]))}


@pytest.mark.parametrize("backbone, variant", [("rnn", "additive"), ("transformer", "multihead")])
def test_step_gradients_are_autograd_at_the_source_embeddings_even_when_tied(backbone, variant):
    model, b = tiny(backbone, variant), batch()
    with torch.no_grad():
        predicted = model(b["src"], b["src_mask"], b["tgt_in"], b["tgt_mask"])[0].argmax(-1)
    grad = step_gradients(model, model.encoder.token_embeddings, b, predicted)  # (B, T, S)
    i, t = 0, 2
    captured = {}
    handle = model.encoder.token_embeddings.register_forward_hook(
        lambda module, args, output: captured.setdefault("x", output.retain_grad() or output))
    logits, _ = model(b["src"][i:i + 1], b["src_mask"][i:i + 1], b["tgt_in"][i:i + 1, :t + 1],
                      b["tgt_mask"][i:i + 1, :t + 1])
    handle.remove()
    logits[0, -1].softmax(-1)[predicted[i, t]].backward()
    x = captured["x"]
    expected = (x.grad * x).sum(-1).abs()[0]  # (S,)
    torch.testing.assert_close(grad[i, t], expected.detach(), atol=1e-6, rtol=1e-4)
    assert torch.equal(grad[:, 3][b["tgt_mask"][:, 3] == 0], torch.zeros_like(grad[:, 3][b["tgt_mask"][:, 3] == 0]))


def test_step_tau_is_scipys_and_the_uniform_decoding_is_the_override():
    model, b = tiny("transformer", "multihead"), batch()
    task = Greedy(model)
    settings = Settings(top_k=2)
    steps = explain_steps(model, task, iter([b]), settings)
    # 4 + 3 real target steps of the two rows with >= 2 source tokens; the 2 steps of the one-token row skipped
    assert len(steps.source_length) == 7 and steps.skipped_steps == 2 and steps.examples == 3
    assert {name for name, _ in steps.maps} == {"cross_attention.layer0", "cross_attention.layer1"}
    with torch.no_grad():
        logits, maps = model(b["src"], b["src_mask"], b["tgt_in"], b["tgt_mask"], need_weights=True)
        with override_attention(model, {"cross_attention.layer0": uniform_weights,
                                        "cross_attention.layer1": uniform_weights}):
            uniform = task.generate(b["src"], b["src_mask"])
    grad = step_gradients(model, model.encoder.token_embeddings, b, logits.argmax(-1))
    a = maps["cross_attention.layer1"][0, 1, 2, :5].numpy()  # row 0, head 1, step 2
    tau, p = stats.kendalltau(a, grad[0, 2, :5].numpy())
    agreement = steps.maps[("cross_attention.layer1", "head1")]
    assert agreement.tau["gradient"][2] == pytest.approx(tau, abs=1e-6)
    assert agreement.p["gradient"][2] == pytest.approx(p, abs=1e-6)
    assert steps.uniform_hypotheses == dict(zip([0, 1, 2], uniform))
    summary = summarize_steps(steps, task, settings)
    assert summary["steps"] == 7 and summary["maps"]["cross_attention.layer0"]["mean"]["agreement"]["gradient"]
    assert set(summary["uniform"]["change"]) == {"length"}


@pytest.mark.parametrize("task, extra", [
    ("translation", ["task.tokenizer.vocab_size=800", "trainer.batch_size=32"]),
    ("summarization", ["task.tokenizer.vocab_size=800", "task.max_length=120", "task.max_target_length=40",
                       "task.decoding.min_length=3", "task.decoding.max_len_b=30", "trainer.batch_size=16"]),
])
def test_a_tiny_seq2seq_run_explains_itself(task, extra, data_dir, tmp_path, capsys):
    out = tmp_path / "runs"
    assert main(["run", f"task={task}", "model=transformer", "attention=multihead", "attention.heads=2",
                 "model.embed_dim=32", "model.ff_dim=64", "model.num_layers=2", *extra, f"data_dir={data_dir}",
                 f"cache_dir={tmp_path / 'c'}", f"output_dir={out}", "task.limits.train=300",
                 "task.limits.validation=8", "task.limits.test=12", "task.decoding.val_examples=4", "task.probes=1",
                 "trainer.max_epochs=1", "trainer.early_stopping_patience=0", "trainer.enable_progress_bar=false",
                 "wandb.mode=disabled", "explain=true", "trainer.precision=32-true"]) == 0  # explain runs fp32
    (run_dir,) = out.iterdir()
    printed = capsys.readouterr().out
    assert "uniform cross-attention:" in printed and "per target step" in printed
    report = json.loads((run_dir / "explain.json").read_text())
    block = report["seq2seq"]
    assert block["examples"] == 12 and set(block["maps"]) == {"cross_attention.layer0", "cross_attention.layer1"}
    assert set(block["maps"]["cross_attention.layer0"]) == {"mean", "head0", "head1"}
    # The learned decoding of the sample (here the whole 12-example test slice) is the recorded test decoding (the
    # run trained in fp32, as explain computes; a bf16 run's decoding may differ by rounding).
    record = json.loads((run_dir / "metrics.json").read_text())
    for metric, value in block["uniform"]["metrics"].items():
        assert value == pytest.approx(record["metrics"]["test"][metric], abs=1e-6), metric
    assert np.load(run_dir / "explain.npz")["cross_attention.layer0.mean.tau.gradient"].size == block["steps"]
    assert (run_dir / "explain_entropy.png").stat().st_size > 1000
