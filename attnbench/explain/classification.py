"""Is a classifier's pooling attention an explanation? Faithfulness diagnostics over a whole test set.

For each test example (B batch, T tokens, n real tokens, H heads, C classes; the predicted class y):
  attention      alpha (n,): the pooling weights, the head mean for multi-head pooling
  importance     gradient x input at the token embeddings (Captum LayerGradientXActivation), Integrated Gradients
                 from an all-[PAD] baseline (Captum LayerIntegratedGradients), and leave-one-out: the total
                 variation distance (TVD) of the output distribution when the token is deleted (Jain & Wallace
                 2019); the first two summed over the embedding and taken in absolute value
  agreement      Kendall tau (SciPy) between alpha and each importance, with its p (significant: p < 0.05),
                 and the top-k overlap |top_k(alpha) & top_k(importance)| / k
  counterfactual the median TVD of the output over random permutations of alpha among the real tokens, beside
                 max(alpha) (Jain & Wallace), and the accuracy with uniform weights (Wiegreffe & Pinter 2019),
                 both through the variant's own value path (`mix`)
  ERASER         comprehensiveness p(y|x) - p(y|x without the top-k tokens) and sufficiency p(y|x) - p(y|top-k
                 tokens only) for k = fraction * n, for the attention, gradient, IG and a random ranking
                 (DeYoung et al. 2020); tokens are deleted, not masked, so the encoder never sees them
  entropy        H(alpha) in nats and H / log n
  per map/head   the same agreement (tau, significant share, top-k overlap) and entropy for each head of a
                 multi-head pooling and for each self-attention layer of a transformer, by head and for the
                 head mean; a self-attention map scores token j by the attention it receives (the mean of
                 column j over the real query rows), its entropy is the mean over those rows; and per layer the
                 accuracy when that layer's weights are uniform (attention/override.py), the gradient, IG and
                 leave-one-out importances being the model's own (as for the pooling)

Deleting a token from an example of one token would leave nothing to encode, so leave-one-out, tau and ERASER
skip examples with fewer than two tokens (their count is reported).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from captum.attr import LayerGradientXActivation, LayerIntegratedGradients
from torch import nn

from attnbench.attention.override import override_attention, uniform_weights
from attnbench.explain.common import IMPORTANCES, Agreement, Settings, agree, agreement_summary, describe

RANKINGS = ("attention", "gradient", "ig", "random")


@dataclass
class Examples:
    """Per test example, in loader order (ids say which); what explain.json summarises and the plots draw."""

    ids: list[int] = field(default_factory=list)
    length: list[int] = field(default_factory=list)
    correct: list[bool] = field(default_factory=list)
    uniform_correct: list[bool] = field(default_factory=list)
    max_attention: list[float] = field(default_factory=list)
    permutation_tvd: list[float] = field(default_factory=list)  # median over the permutations
    entropy: list[float] = field(default_factory=list)
    tau: dict[str, list[float]] = field(default_factory=lambda: {k: [] for k in IMPORTANCES})
    p: dict[str, list[float]] = field(default_factory=lambda: {k: [] for k in IMPORTANCES})
    overlap: dict[str, list[float]] = field(default_factory=lambda: {k: [] for k in IMPORTANCES})
    # (ranking, fraction) -> per example comprehensiveness / sufficiency (NaN where skipped)
    comprehensiveness: dict[tuple[str, float], list[float]] = field(default_factory=dict)
    sufficiency: dict[tuple[str, float], list[float]] = field(default_factory=dict)
    # (map name, "mean" | "head{h}") -> agreement of that map with the importances; the pooling's head mean is
    # the fields above, so "pooling" appears here only with several heads
    maps: dict[tuple[str, str], Agreement] = field(default_factory=dict)
    # self-attention map name -> per example, correct with that layer's weights uniform
    layer_uniform_correct: dict[str, list[bool]] = field(default_factory=dict)


def pooling_parts(model: nn.Module) -> tuple[nn.Module, nn.Module, nn.Module, nn.Module]:
    """(encoder, pooling attention, head, token embedding) of a Classifier (models/classifier.py)."""
    for name in ("encoder", "pooling", "head"):
        if not hasattr(model, name):
            raise TypeError(f"{type(model).__name__} is not an attention-pooling classifier (no .{name}): "
                            "attnbench explain reads models/classifier.py's Classifier")
    embed = getattr(model.encoder, "embed", None)
    if not isinstance(embed, nn.Embedding):
        raise TypeError(f"encoder {type(model.encoder).__name__} has no token embedding `.embed`: gradient "
                        "attributions are taken at it")
    return model.encoder, model.pooling, model.head, embed


class Attributor:
    """The pooling attention and the three importances of a classifier's tokens, for the predicted class."""

    def __init__(self, model: nn.Module, pad_id: int, settings: Settings) -> None:
        self.model = model.eval().float()
        self.encoder, self.pooling, self.head, embed = pooling_parts(self.model)
        self.pad_id, self.settings = pad_id, settings
        self.gradient = LayerGradientXActivation(self.probabilities, embed)
        self.integrated = LayerIntegratedGradients(self.probabilities, embed)

    def probabilities(self, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        logits, _ = self.model(ids, mask)
        return logits.float().softmax(-1)  # (B, C)

    def __call__(self, ids: torch.Tensor, mask: torch.Tensor) -> dict[str, Any]:
        """{states (B, T, D), maps {self_attention.layer{i}: (B, H, T, T)}, weights (B, H, 1, T), probs (B, C),
        predicted (B,), alpha (B, T): the head-mean pooling weights, importance {gradient|ig|loo: (B, T)}}."""
        with torch.no_grad():
            states, maps = self.encoder(ids, mask, True)
            pooled, weights = self.pooling(states, mask, need_weights=True)
            probs = self.head(pooled).float().softmax(-1)
        predicted = probs.argmax(-1)
        kwargs = {"target": predicted, "additional_forward_args": (mask,)}
        grad = self.gradient.attribute(ids, **kwargs).sum(-1).abs().detach()
        ig = self.integrated.attribute(ids, baselines=torch.full_like(ids, self.pad_id), n_steps=self.settings.ig_steps,
                                       **kwargs).sum(-1).abs().detach()
        with torch.no_grad():
            loo = leave_one_out(self.probabilities, ids, mask, probs, self.pad_id, self.settings.chunk)
        return {"states": states, "maps": maps, "weights": weights, "probs": probs, "predicted": predicted,
                "alpha": weights.float().mean(1)[:, 0], "importance": {"gradient": grad, "loo": loo, "ig": ig}}


def explain_batches(model: nn.Module, batches: Iterable[dict[str, torch.Tensor]], pad_id: int,
                    settings: Settings) -> Examples:
    """Every diagnostic for every example of `batches` (collate_classification batches), in eval mode, fp32."""
    attributor = Attributor(model, pad_id, settings)
    model, pooling, head, probabilities = attributor.model, attributor.pooling, attributor.head, attributor.probabilities
    generator = torch.Generator().manual_seed(settings.seed)
    out = Examples()
    for key in [(r, f) for r in RANKINGS for f in settings.fractions]:
        out.comprehensiveness[key], out.sufficiency[key] = [], []
    for batch in batches:
        ids, mask, labels = batch["input_ids"], batch["mask"], batch["labels"]
        a = attributor(ids, mask)
        states, maps, weights, probs, predicted = a["states"], a["maps"], a["weights"], a["probs"], a["predicted"]
        alpha, importance = a["alpha"], a["importance"]
        with torch.no_grad():
            layer_pred = {}
            for name in maps:  # each self-attention layer uniform in turn, the rest of the model as trained
                with override_attention(model, {name: uniform_weights}):
                    layer_pred[name] = probabilities(ids, mask).argmax(-1)  # (B,)
            tvd = permutation_tvd(pooling.attn, head, states, weights, mask, probs, settings.permutations, generator)
            uniform = mask[:, None, None, :].to(weights.dtype) / mask.sum(-1).clamp(min=1)[:, None, None, None]
            uniform_pred = head(pooling.attn.mix(uniform.expand_as(weights), states).squeeze(1)).argmax(-1)
            random = torch.rand(ids.shape, generator=generator)
            scores = {"attention": alpha, "gradient": importance["gradient"], "ig": importance["ig"], "random": random}
            erased = eraser(probabilities, ids, mask, probs, predicted, scores, settings, pad_id)
        _collect(out, batch, mask, predicted, labels, uniform_pred, alpha, importance, tvd, erased, settings)
        if weights.size(1) > 1:
            maps = {"pooling": weights, **maps}
        _collect_maps(out, maps, mask, importance, predicted, labels, layer_pred, settings)
    return out


def explain_probes(model: nn.Module, probes: list[dict[str, Any]], batch: dict[str, torch.Tensor], pad_id: int,
                   settings: Settings) -> list[dict[str, Any]]:
    """explain.json's "probes": per probe (the validation rows the run's attention maps show; data.probe_examples)
    its tokens, gold and predicted label, and per real token the head-mean pooling weight and each importance, so
    a map can be drawn beside the importance (the leaderboard's probe heatmaps)."""
    if not probes:
        return []
    a = Attributor(model, pad_id, settings)(batch["input_ids"], batch["mask"])
    out = []
    for i, probe in enumerate(probes):
        real = batch["mask"][i]
        out.append({"id": probe["id"], "text": probe.get("text"), "tokens": probe["tokens"],
                    "label": int(probe["label"]), "predicted": int(a["predicted"][i]),
                    "attention": a["alpha"][i, real].tolist(),
                    **{name: values[i, real].tolist() for name, values in a["importance"].items()}})
    return out


def token_scores(weights: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """A map's score per key token and its entropy, per head: weights (B, H, Tq, T) -> (B, H, T), (B, H).

    One query (pooling): its weights and their entropy. Several (self-attention): the attention each token
    receives, averaged over the real query rows, and the mean entropy of those rows."""
    weights = weights.float()
    rows = mask[:, None, :, None].to(weights.dtype) if weights.size(2) > 1 else torch.ones_like(weights[..., :1])
    count = rows.sum(2).clamp(min=1)  # (B, 1|H, 1)
    received = (weights * rows).sum(2) / count  # (B, H, T)
    logs = torch.where(weights > 0, weights.clamp(min=1e-30).log(), torch.zeros_like(weights))
    entropy = (-(weights * logs).sum(-1, keepdim=True) * rows).sum(2)[..., 0] / count[..., 0]  # (B, H)
    return received, entropy


def _collect_maps(out: Examples, maps: dict[str, torch.Tensor], mask: torch.Tensor,
                  importance: dict[str, torch.Tensor], predicted: torch.Tensor, labels: torch.Tensor,
                  layer_pred: dict[str, torch.Tensor], settings: Settings) -> None:
    lengths = mask.sum(-1).tolist()
    for name, weights in maps.items():
        heads = {f"head{h}": weights[:, h:h + 1] for h in range(weights.size(1))}
        for key, w in {"mean": weights.float().mean(1, keepdim=True), **heads}.items():
            scores, entropy = token_scores(w, mask)  # (B, 1, T), (B, 1)
            agreement = out.maps.setdefault((name, key), Agreement())
            for i, n in enumerate(lengths):
                real = {k: v[i, mask[i]].double().numpy() for k, v in importance.items()}
                agreement.add(scores[i, 0, mask[i]].double().numpy(), real, float(entropy[i, 0]), settings.top_k)
    for name, pred in layer_pred.items():
        out.layer_uniform_correct.setdefault(name, []).extend((pred == labels).tolist())


def _collect(out: Examples, batch: dict[str, torch.Tensor], mask: torch.Tensor, predicted: torch.Tensor,
             labels: torch.Tensor, uniform_pred: torch.Tensor, alpha: torch.Tensor,
             importance: dict[str, torch.Tensor], tvd: torch.Tensor, erased: dict[str, dict], settings: Settings) -> None:
    lengths = mask.sum(-1).tolist()
    for i, n in enumerate(lengths):
        a = alpha[i, mask[i]].double().numpy()  # (n,)
        out.ids.append(int(batch["ids"][i]))
        out.length.append(int(n))
        out.correct.append(bool(predicted[i] == labels[i]))
        out.uniform_correct.append(bool(uniform_pred[i] == labels[i]))
        out.max_attention.append(float(a.max()))
        out.permutation_tvd.append(float(tvd[i]))
        entropy = float(-(a[a > 0] * np.log(a[a > 0])).sum())
        out.entropy.append(entropy)
        for name, values in importance.items():
            tau, p, top = agree(a, values[i, mask[i]].double().numpy(), settings.top_k)
            out.tau[name].append(tau)
            out.p[name].append(p)
            out.overlap[name].append(top)
        for key in out.comprehensiveness:
            out.comprehensiveness[key].append(float(erased["comprehensiveness"][key][i]))
            out.sufficiency[key].append(float(erased["sufficiency"][key][i]))


def delete_tokens(ids: torch.Tensor, mask: torch.Tensor, drop: torch.Tensor, pad_id: int) -> tuple[torch.Tensor, ...]:
    """The rows with the `drop` positions (N, T) removed: kept tokens shift left in order, the rest is padding."""
    keep = mask & ~drop  # (N, T)
    order = torch.argsort((~keep).to(torch.int8), dim=1, stable=True)  # kept positions first, in order
    kept = keep.gather(1, order)  # (N, T)
    return ids.gather(1, order).masked_fill(~kept, pad_id), kept


def _deleted_probabilities(probabilities: Callable, ids: torch.Tensor, mask: torch.Tensor, drop: torch.Tensor,
                           pad_id: int, chunk: int) -> torch.Tensor:
    """p(. | row with `drop` deleted) for every row, in chunks of `chunk` rows: (N, C)."""
    parts = []
    for start in range(0, ids.size(0), chunk):
        new_ids, new_mask = delete_tokens(ids[start:start + chunk], mask[start:start + chunk],
                                          drop[start:start + chunk], pad_id)
        parts.append(probabilities(new_ids, new_mask))
    return torch.cat(parts)


def leave_one_out(probabilities: Callable, ids: torch.Tensor, mask: torch.Tensor, probs: torch.Tensor, pad_id: int,
                  chunk: int) -> torch.Tensor:
    """TVD between p(.|x) and p(.|x without token t), for every real token t of rows with >= 2 tokens: (B, T)."""
    B, T = ids.shape
    rows, cols = torch.nonzero(mask & (mask.sum(-1, keepdim=True) >= 2), as_tuple=True)  # (N,), (N,)
    loo = torch.zeros(B, T)
    if rows.numel() == 0:
        return loo
    drop = torch.zeros(rows.numel(), T, dtype=torch.bool)
    drop[torch.arange(rows.numel()), cols] = True
    deleted = _deleted_probabilities(probabilities, ids[rows], mask[rows], drop, pad_id, chunk)  # (N, C)
    loo[rows, cols] = 0.5 * (deleted - probs[rows]).abs().sum(-1)
    return loo


def permute_weights(weights: torch.Tensor, mask: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """(B, H, 1, T) weights with each row's real-token weights shuffled among its real tokens (one permutation per
    row, the same for every head); padding keeps its zero weight."""
    B, T = mask.shape
    noise = torch.rand(B, T, generator=generator) + (~mask).float() * 2  # real tokens first after sorting
    source = noise.argsort(dim=1)  # (B, T): real positions in random order, then padding
    target = (~mask).to(torch.int8).argsort(dim=1, stable=True)  # (B, T): real positions in order, then padding
    source, target = (x[:, None, None, :].expand_as(weights) for x in (source, target))  # (B, H, 1, T)
    return torch.zeros_like(weights).scatter(-1, target, weights.gather(-1, source))


def permutation_tvd(attn: nn.Module, head: nn.Module, states: torch.Tensor, weights: torch.Tensor, mask: torch.Tensor,
                    probs: torch.Tensor, permutations: int, generator: torch.Generator) -> torch.Tensor:
    """Per row, the median TVD of the output over `permutations` random permutations of its attention: (B,)."""
    distances = []
    for _ in range(permutations):
        permuted = head(attn.mix(permute_weights(weights, mask, generator), states).squeeze(1)).float().softmax(-1)
        distances.append(0.5 * (permuted - probs).abs().sum(-1))  # (B,)
    return torch.stack(distances).median(dim=0).values if distances else torch.zeros(states.size(0))


def eraser(probabilities: Callable, ids: torch.Tensor, mask: torch.Tensor, probs: torch.Tensor,
           predicted: torch.Tensor, scores: dict[str, torch.Tensor], settings: Settings, pad_id: int) -> dict:
    """{"comprehensiveness"|"sufficiency": {(ranking, fraction): (B,) values, NaN for rows of < 2 tokens}}."""
    B, T = ids.shape
    n = mask.sum(-1)  # (B,)
    p_y = probs.gather(1, predicted[:, None])[:, 0]  # (B,)
    result: dict[str, dict] = {"comprehensiveness": {}, "sufficiency": {}}
    for ranking, score in scores.items():
        rank = score.masked_fill(~mask, float("-inf")).argsort(dim=1, descending=True).argsort(dim=1)  # (B, T)
        for fraction in settings.fractions:
            k = (fraction * n).round().clamp(min=1)  # (B,)
            k = torch.minimum(k, (n - 1).clamp(min=1))[:, None]  # removing every token leaves nothing to encode
            top = (rank < k) & mask  # (B, T)
            valid = n >= 2
            without = _deleted_probabilities(probabilities, ids, mask, top, pad_id, settings.chunk)
            only = _deleted_probabilities(probabilities, ids, mask, mask & ~top, pad_id, settings.chunk)
            comp = p_y - without.gather(1, predicted[:, None])[:, 0]
            suff = p_y - only.gather(1, predicted[:, None])[:, 0]
            nan = torch.tensor(float("nan"))
            result["comprehensiveness"][(ranking, fraction)] = torch.where(valid, comp, nan)
            result["sufficiency"][(ranking, fraction)] = torch.where(valid, suff, nan)
    return result


# ---- summary -----------------------------------------------------------------------------------------------------


def summarize(ex: Examples, settings: Settings) -> dict[str, Any]:
    """The explain.json "pooling" block: every diagnostic's distribution over the test set."""
    n = len(ex.ids)
    short = sum(1 for length in ex.length if length < 2)
    agreement = agreement_summary(ex.tau, ex.p, ex.overlap, settings.top_k)
    accuracy = float(np.mean(ex.correct)) if n else None
    uniform = float(np.mean(ex.uniform_correct)) if n else None
    faithfulness = {
        ranking: {f"{measure}@{fraction:g}": describe(getattr(ex, measure)[(ranking, fraction)])["mean"]
                  for measure in ("comprehensiveness", "sufficiency") for fraction in settings.fractions}
        for ranking in RANKINGS
    }
    lengths = np.maximum(np.asarray(ex.length, dtype=np.float64), 2)
    maps: dict[str, dict[str, Any]] = {}
    for (name, key), of_map in ex.maps.items():
        maps.setdefault(name, {})[key] = {
            "agreement": agreement_summary(of_map.tau, of_map.p, of_map.overlap, settings.top_k),
            "entropy": {"nats": describe(of_map.entropy),
                        "normalized": describe(list(np.asarray(of_map.entropy) / np.log(lengths)))}}
    for name, correct in ex.layer_uniform_correct.items():
        maps[name]["uniform"] = {"accuracy": accuracy, "uniform_accuracy": float(np.mean(correct)),
                                 "drop": accuracy - float(np.mean(correct))}
    return {
        "examples": n, "skipped_short": short,
        "agreement": agreement,
        "permutation": {"median_tvd": describe(ex.permutation_tvd), "max_attention": describe(ex.max_attention)},
        "uniform": {"accuracy": accuracy, "uniform_accuracy": uniform,
                    "drop": None if accuracy is None else accuracy - uniform},
        "eraser": faithfulness,
        "entropy": {"nats": describe(ex.entropy),
                    "normalized": describe(list(np.asarray(ex.entropy) / np.log(lengths)))},
        "maps": maps,
    }

