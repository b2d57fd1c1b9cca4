"""attnbench explain: diagnostics with known answers on a constructed classifier, Captum against autograd, the
whole command on a tiny real run, and bad run folders refused with one line and nothing written."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from captum.attr import LayerGradientXActivation
from scipy import stats
from torch import nn

from attnbench.attention import Dot
from attnbench.attention.override import override_attention, uniform_weights
from attnbench.cli import main
from attnbench.config import load_config, to_yaml
from attnbench.data.batching import collate_classification
from attnbench.explain.classification import (
    Examples, Settings, delete_tokens, explain_batches, permute_weights, summarize, token_scores,
)
from attnbench.models import build_classifier
from attnbench.models.classifier import AttentionPooling, Classifier
from tests.helpers import TINY, run_record, wandb_records

PAD, A = 0, 1  # token 1 ("A") decides the class; tokens 2..5 carry nothing


class Embedding(nn.Module):
    """An encoder that is its embedding: states = embeddings (so the pooling attention sees the tokens)."""

    def __init__(self) -> None:
        super().__init__()
        self.embed = nn.Embedding(6, 2, padding_idx=PAD)
        with torch.no_grad():
            self.embed.weight.zero_()
            self.embed.weight[A] = torch.tensor([3.0, 1.0])  # feature 0: the evidence; feature 1: attention key
        self.out_dim = 2

    def forward(self, ids, mask, need_weights=False):
        return self.embed(ids) * mask[..., None], {}


def one_token_model() -> Classifier:
    """Dot pooling with query (0, 20): all attention on A; logits (1, pooled_0): class 1 only when A is attended."""
    pooling = AttentionPooling(2, Dot(2, 2, 2))
    model = Classifier(Embedding(), pooling, num_labels=2, dropout=0.0)
    with torch.no_grad():
        pooling.query.copy_(torch.tensor([[[0.0, 20.0]]]))
        model.head[1].weight.copy_(torch.tensor([[0.0, 0.0], [1.0, 0.0]]))
        model.head[1].bias.copy_(torch.tensor([1.0, 0.0]))
    return model.eval()


def one_token_batches():
    rows = [{"input_ids": [2, 3, A, 4, 5], "label": 1, "id": 0}, {"input_ids": [A, 2, 3, 4], "label": 1, "id": 1},
            {"input_ids": [3, 4, 5, 2, A], "label": 1, "id": 2}]
    yield collate_classification(rows, PAD)


SMALL = Settings(ig_steps=8, permutations=20, fractions=(0.2,), top_k=1)


def test_a_model_that_reads_one_token_is_explained_by_that_token():
    ex = explain_batches(one_token_model(), one_token_batches(), PAD, SMALL)
    assert ex.correct == [True, True, True]  # A attended: class 1
    assert ex.uniform_correct == [False, False, False]  # uniform weights dilute A below the bias
    assert all(m > 0.99 for m in ex.max_attention)
    # Attention, gradient x input, IG and leave-one-out all put A first: top-1 overlap 1 for every importance.
    for name in ("gradient", "loo", "ig"):
        assert ex.overlap[name] == [1.0, 1.0, 1.0], name
    # Moving A's weight to a token that carries nothing flips the output: large median TVD.
    assert min(ex.permutation_tvd) > 0.3
    summary = summarize(ex, SMALL)
    assert summary["uniform"] == {"accuracy": 1.0, "uniform_accuracy": 0.0, "drop": 1.0}
    # Removing the top 20% (one token, A) by attention kills the prediction; keeping it alone keeps it.
    eraser = summary["eraser"]["attention"]
    assert eraser["comprehensiveness@0.2"] > 0.3 and abs(eraser["sufficiency@0.2"]) < 1e-3


def test_tau_is_scipys_and_summaries_count_what_they_say():
    ex = explain_batches(one_token_model(), one_token_batches(), PAD, SMALL)
    model, (batch,) = one_token_model(), list(one_token_batches())
    with torch.no_grad():
        states, _ = model.encoder(batch["input_ids"], batch["mask"])
        _, weights = model.pooling(states, batch["mask"], need_weights=True)
    a = weights[0, 0, 0, :5].numpy()
    # leave-one-out by hand: delete each token of example 0 and measure the total variation distance.
    full = model(batch["input_ids"][:1], batch["mask"][:1])[0].softmax(-1)
    loo = []
    for t in range(5):
        ids = torch.tensor([[i for j, i in enumerate(batch["input_ids"][0, :5].tolist()) if j != t]])
        loo.append(float(0.5 * (model(ids, torch.ones_like(ids, dtype=torch.bool))[0].softmax(-1) - full).abs().sum()))
    tau, p = stats.kendalltau(a, np.array(loo))
    assert ex.tau["loo"][0] == pytest.approx(tau) and ex.p["loo"][0] == pytest.approx(p)
    summary = summarize(ex, SMALL)
    assert summary["examples"] == 3 and summary["agreement"]["loo"]["tau"]["n"] == 3


def test_captum_gradient_x_input_equals_autograd():
    torch.manual_seed(0)
    model = Classifier(Embedding(), AttentionPooling(2, Dot(2, 2, 2)), num_labels=2, dropout=0.0).eval()
    with torch.no_grad():
        model.encoder.embed.weight.normal_()
    (batch,) = list(one_token_batches())
    ids, mask = batch["input_ids"], batch["mask"]
    target = torch.tensor([1, 0, 1])

    def probabilities(ids, mask):
        return model(ids, mask)[0].softmax(-1)

    captum = LayerGradientXActivation(probabilities, model.encoder.embed).attribute(
        ids, target=target, additional_forward_args=(mask,))
    embedded = model.encoder.embed(ids).detach().requires_grad_(True)
    states = embedded * mask[..., None]
    logits = model.head(model.pooling(states, mask)[0])
    logits.softmax(-1).gather(1, target[:, None]).sum().backward()
    torch.testing.assert_close(captum, embedded.grad * embedded)


def test_deleting_and_permuting_keep_the_real_tokens():
    ids = torch.tensor([[5, 6, 7, 0], [8, 9, 0, 0]])
    mask = ids != 0
    new_ids, new_mask = delete_tokens(ids, mask, torch.tensor([[False, True, False, False], [True, False, False, False]]), 0)
    assert new_ids.tolist() == [[5, 7, 0, 0], [9, 0, 0, 0]] and new_mask.sum(-1).tolist() == [2, 1]
    weights = torch.tensor([[0.5, 0.3, 0.2, 0.0], [0.9, 0.1, 0.0, 0.0]])[:, None, None, :].expand(2, 2, 1, 4)
    permuted = permute_weights(weights, mask, torch.Generator().manual_seed(0))
    assert torch.equal(permuted[..., ~mask[0]][0], torch.zeros_like(permuted[..., ~mask[0]][0]))
    for row in range(2):
        assert sorted(permuted[row, 0, 0].tolist()) == sorted(weights[row, 0, 0].tolist())
        assert torch.equal(permuted[row, 0], permuted[row, 1])  # one permutation for every head


def test_token_scores_are_the_received_attention_and_the_row_entropy():
    weights = torch.tensor([[[[0.5, 0.5, 0.0], [1.0, 0.0, 0.0], [0.2, 0.3, 0.5]]]])  # (1, 1, 3, 3), row 2 padding
    mask = torch.tensor([[True, True, False]])
    received, entropy = token_scores(weights, mask)
    torch.testing.assert_close(received, torch.tensor([[[0.75, 0.25, 0.0]]]))
    torch.testing.assert_close(entropy, torch.tensor([[np.log(2) / 2]], dtype=torch.float32))
    pooled, pooled_entropy = token_scores(weights[:, :, :1], mask)  # one query: its own weights
    torch.testing.assert_close(pooled, weights[:, :, 0])


def test_every_self_attention_layer_and_head_is_explained_on_a_transformer():
    torch.manual_seed(0)
    block = {"name": "transformer", "embed_dim": 8, "ff_dim": 16, "num_layers": 2, "dropout": 0.0,
             "max_positions": 16}
    attention = {"name": "multihead", "impl": None, "heads": 2, "score": "scaled_dot", "dropout": 0.0,
                 "hidden_dim": None, "kwargs": {}}
    model = build_classifier(block, attention, vocab_size=6, num_labels=2, pad_id=PAD).eval()
    ex = explain_batches(model, one_token_batches(), PAD, SMALL)
    names = {"pooling", "self_attention.layer0", "self_attention.layer1"}
    assert set(ex.maps) == {(n, k) for n in names for k in ("mean", "head0", "head1")}
    (batch,) = list(one_token_batches())
    ids, mask = batch["input_ids"], batch["mask"]
    with torch.no_grad():
        _, maps = model(ids, mask, need_weights=True)
        with override_attention(model, {"self_attention.layer1": uniform_weights}):
            uniform = model(ids, mask)[0].argmax(-1)
    # head 1 of layer 1 by hand: the attention each token receives from the real queries, against gradient x input
    received = (maps["self_attention.layer1"][:, 1] * mask[:, :, None]).sum(1) / mask.sum(-1, keepdim=True)
    grad = np.asarray(ex.maps[("pooling", "mean")].tau["gradient"])  # pooling head mean == the pooling fields
    assert np.allclose(grad, ex.tau["gradient"], equal_nan=True)
    for i in range(3):
        n = int(mask[i].sum())
        importance = captum_gradient(model, ids, mask)[i, :n].numpy()
        tau, p = stats.kendalltau(received[i, :n].numpy(), importance)
        assert ex.maps[("self_attention.layer1", "head1")].tau["gradient"][i] == pytest.approx(tau, abs=1e-6)
    summary = summarize(ex, SMALL)["maps"]
    assert summary["self_attention.layer1"]["uniform"]["uniform_accuracy"] == pytest.approx(
        float((uniform == batch["labels"]).float().mean()))
    assert "uniform" not in summary["pooling"] and summary["pooling"]["head0"]["entropy"]["nats"]["n"] == 3


def captum_gradient(model, ids, mask):
    """|gradient x input| summed over the embedding, for the predicted class: what explain_batches takes."""
    def probabilities(ids, mask):
        return model(ids, mask)[0].softmax(-1)

    with torch.no_grad():
        predicted = probabilities(ids, mask).argmax(-1)
    return LayerGradientXActivation(probabilities, model.encoder.embed).attribute(
        ids, target=predicted, additional_forward_args=(mask,)).sum(-1).abs().detach()


@pytest.mark.parametrize("model", ["rnn additive", "transformer multihead"])
def test_explain_on_a_tiny_real_run(model, data_dir, tmp_path, capsys):
    out = tmp_path / "runs"
    backbone, variant = model.split()
    assert main(["run", "task=sentiment", f"model={backbone}", f"attention={variant}", f"data_dir={data_dir}",
                 f"cache_dir={tmp_path / 'c'}", f"output_dir={out}", "explain=true", *TINY,
                 "trainer.precision=32-true"]) == 0  # explains itself, in fp32 as the run trained
    (run_dir,) = out.iterdir()
    assert "tau(attention, gradient)" in capsys.readouterr().out and (run_dir / "explain.json").is_file()
    (run_dir / "explain.json").unlink()
    assert main(["explain", str(run_dir), "--permutations", "5", "--ig-steps", "4"]) == 0
    assert "explain.json written in" in capsys.readouterr().out
    report = json.loads((run_dir / "explain.json").read_text())
    block = report["pooling"]
    assert block["examples"] == 32 and report["settings"]["permutations"] == 5 and report["versions"]["captum"]
    assert report["settings"]["precision"] == report["settings"]["run_precision"] == "32-true"
    # The diagnostics' own forward pass reproduces the recorded test accuracy of the best checkpoint.
    assert block["uniform"]["accuracy"] == pytest.approx(run_record(out)["metrics"]["test"]["accuracy"])
    assert {"gradient", "loo", "ig"} == set(block["agreement"]) and report["seconds"] > 0
    arrays = np.load(run_dir / "explain.npz")
    assert arrays["tau.gradient"].shape == (32,)
    assert (run_dir / "explain_tau.png").stat().st_size > 1000
    layers = [name for name in report["maps"] if name.startswith("self_attention")]
    assert (backbone == "transformer") == bool(layers)
    for name in layers:
        assert report["maps"][name]["mean"]["agreement"]["gradient"]["tau"]["n"] > 0
        assert "drop" in report["maps"][name]["uniform"]
        assert arrays[f"{name}.head0.tau.gradient"].shape == (32,)
    # The probes are the run's own (task.probes validation rows), their attention the best checkpoint's maps as
    # the run saved them (attention/attention.npz: probe<id>.pooling, (H, 1, T)), importances beside it per token.
    saved = np.load(run_dir / "attention" / "attention.npz")
    assert len(report["probes"]) == report["settings"]["probes"] == 1  # TINY: task.probes=1
    assert [p["id"] for p in report["probes"]] == sorted(int(k.split(".")[0][5:]) for k in saved.files
                                                         if k.endswith(".pooling"))
    for probe in report["probes"]:
        pooling = saved[f"probe{probe['id']}.pooling"]
        assert len(probe["tokens"]) == pooling.shape[-1] == len(probe["gradient"]) == len(probe["loo"])
        assert probe["attention"] == pytest.approx(pooling.mean(0)[0].tolist(), abs=1e-5)
        assert min(probe["gradient"]) >= 0 and max(probe["ig"]) > 0


def test_explain_goes_to_the_runs_own_wandb_run(data_dir, tmp_path):
    out = tmp_path / "runs"
    assert main(["run", "task=sentiment", "attention=dot", f"data_dir={data_dir}", f"cache_dir={tmp_path / 'c'}",
                 f"output_dir={out}", "explain=true", *TINY, "wandb.mode=offline"]) == 0
    (run_dir,) = out.iterdir()
    record = run_record(out)
    run_id = record["provenance"]["wandb_run_id"]
    report = json.loads((run_dir / "explain.json").read_text())
    # The training run and the explain step: two offline folders of one W&B run id, which `wandb sync` merges.
    files = sorted((run_dir / "wandb").glob(f"offline-run-*/run-{run_id}.wandb"))
    assert len(files) == 2
    summary = {k: v for update in wandb_records(files[-1], "summary") for k, v in update.items()}
    tau = report["pooling"]["agreement"]["gradient"]["tau"]["mean"]
    assert summary["explain/pooling/agreement/gradient/tau/mean"] == pytest.approx(tau)
    assert summary["explain/pooling/uniform/drop"] == pytest.approx(report["pooling"]["uniform"]["drop"])
    history = {k: v for item in wandb_records(files[-1], "history") for k, v in item.items()}
    for image in ("explain/tau", "explain/permutation", "explain/entropy"):  # wandb.Image: {_type, width, ...}
        assert history[f"{image}/_type"] == "image-file" and history[f"{image}/width"] > 0, sorted(history)


@pytest.mark.parametrize("damage", ["failed", "running", "no checkpoint"])
def test_a_run_that_cannot_be_explained_is_one_line_and_writes_nothing(damage, tmp_path, capsys):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "config.yaml").write_text(to_yaml(load_config(["task=sentiment", "wandb.mode=disabled"])))
    status = "completed" if damage == "no checkpoint" else damage
    record = {"status": status, "metrics": {"test": {"accuracy": 0.5}}, "best_checkpoint": "checkpoints/best.ckpt"}
    (run_dir / "metrics.json").write_text(json.dumps(record))
    before = sorted(p.name for p in run_dir.iterdir())
    assert main(["explain", str(run_dir)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and ("status" in err or "no best checkpoint" in err)
    assert sorted(p.name for p in run_dir.iterdir()) == before


def test_examples_of_one_token_are_skipped_not_failed():
    rows = [{"input_ids": [A], "label": 1, "id": 0}, {"input_ids": [A, 2], "label": 1, "id": 1}]
    ex = explain_batches(one_token_model(), iter([collate_classification(rows, PAD)]), PAD, SMALL)
    summary = summarize(ex, SMALL)
    assert isinstance(ex, Examples) and summary["skipped_short"] == 1 and summary["agreement"]["loo"]["tau"]["n"] <= 1


def test_explain_true_is_accepted_for_every_built_in_family(capsys):
    for task in ("sentiment", "translation", "summarization"):
        assert main(["config", f"task={task}", "explain=true"]) == 0, capsys.readouterr().err


def test_the_table_gives_the_mean_over_seeds_and_its_t_interval(tmp_path):
    from attnbench.suite.explain_table import collect, render

    for seed, tau in ((1, 0.2), (2, 0.3), (3, 0.4)):
        folder = tmp_path / f"additive-s{seed}"
        folder.mkdir()
        pooling = {"agreement": {"gradient": {"tau": {"mean": tau}, "significant_share": 0.5}}}
        (folder / "explain.json").write_text(json.dumps({"model": "rnn", "attention": "additive", "pooling": pooling}))
    found = collect(tmp_path)
    half = stats.t.ppf(0.975, 2) * 0.1 / np.sqrt(3)
    row = next(line for line in render(found, "t").splitlines() if line.startswith("| tau vs gradient"))
    assert row == f"| tau vs gradient | {0.3:.3g} [{0.3 - half:.3g}, {0.3 + half:.3g}] |"
    assert "rnn additive (n=3)" in render(found, "t")
