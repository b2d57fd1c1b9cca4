"""LightningModule for sequence-to-sequence tasks (translation, summarization).

Training is teacher-forced cross-entropy with label smoothing. Each validation epoch reports the loss and
perplexity on the whole split (`val/loss`, `val/ppl`) and a cheap quality metric: greedy decoding of the first
`decoding.val_examples` validation examples, scored like the test set and logged as `val_slice/<metric>` so
that a slice is never read as the split. Testing decodes every example with
the full beam search and scores detokenized output against the raw references (sacreBLEU / rouge-score).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import torch
import torch.nn.functional as F
from omegaconf import DictConfig, OmegaConf
from torch import nn

from attnbench.config import VAL_SLICE
from attnbench.data.canonical import REFS
from attnbench.data.datamodule import Seq2SeqDataModule
from attnbench.metrics.scoring import SCORERS
from attnbench.models import build_seq2seq
from attnbench.models.beam_search import beam_search, greedy_search
from attnbench.tasks.base import TaskModule
from attnbench.tasks.distributed import gather_dict, sum_over_ranks
from attnbench.tasks.families import Family, Scores, containers, prediction_row
from attnbench.tasks.probes import ProbeMaps


class Seq2SeqTask(TaskModule):
    def __init__(
        self, model: nn.Module, *, optim: Mapping[str, Any], label_smoothing: float, pad_id: int, bos_id: int,
        eos_id: int, decoding: Mapping[str, Any], scorer: str, decode: Callable[[list[int]], str],
        token: Callable[[int], str], references: Mapping[str, Mapping[int, str | list[str]]], loss_window: int = 10,
    ) -> None:
        super().__init__(model, optim=optim, loss_window=loss_window)
        if scorer not in SCORERS:
            raise ValueError(f"unknown scorer '{scorer}': choose one of {', '.join(SCORERS)}")
        self.label_smoothing = label_smoothing
        self.special = {"pad_id": pad_id, "bos_id": bos_id, "eos_id": eos_id}
        self.decoding = dict(decoding)
        self.scorer = SCORERS[scorer]
        self.decode_ids = decode
        self.token = token
        self.references = references
        self.signatures: dict[str, str] = {}
        # Summed on the device and read once per epoch, so no step waits for the host.
        self.register_buffer("eval_nll", torch.zeros((), dtype=torch.float64), persistent=False)
        self.register_buffer("eval_tokens", torch.zeros((), dtype=torch.long), persistent=False)
        self.outputs: dict[int, list[int]] = {}

    # ---- shared --------------------------------------------------------------------------------------------

    def forward(self, batch: dict[str, torch.Tensor], need_weights: bool = False):
        return self.model(batch["src"], batch["src_mask"], batch["tgt_in"], batch["tgt_mask"], need_weights=need_weights)

    def _loss(self, logits: torch.Tensor, target: torch.Tensor, smoothing: float, reduction: str = "mean"):
        return F.cross_entropy(
            logits.flatten(0, 1).float(), target.flatten(), ignore_index=self.special["pad_id"],
            label_smoothing=smoothing, reduction=reduction,
        )

    def _decode_limits(self) -> dict[str, Any]:
        d = self.decoding
        return {"max_len_a": d["max_len_a"], "max_len_b": d["max_len_b"], "min_length": d["min_length"],
                "no_repeat_ngram_size": d["no_repeat_ngram_size"], **self.special}

    def _accumulate_nll(self, logits: torch.Tensor, batch: dict[str, torch.Tensor]) -> None:
        self.eval_nll += self._loss(logits, batch["tgt_out"], 0.0, reduction="sum").double()
        self.eval_tokens += batch["tgt_mask"].sum()

    def _log_nll(self, stage: str) -> None:
        nll, tokens = sum_over_ranks(self, self.eval_nll), sum_over_ranks(self, self.eval_tokens)
        loss = (nll / tokens.clamp(min=1)).float()
        # Already equal on every rank; sync_dist only states that (and averages equal values).
        self.log(f"{stage}/loss", loss, prog_bar=True, sync_dist=True)
        self.log(f"{stage}/ppl", loss.exp(), sync_dist=True)
        self.eval_nll.zero_()
        self.eval_tokens.zero_()

    def _score(self, split: str) -> dict[str, float]:
        scores, self.signatures = self._scored(self.outputs, split)
        return scores

    def _scored(self, hypotheses: Mapping[int, list[int]], split: str) -> tuple[dict[str, float], dict[str, str]]:
        ids = sorted(hypotheses)
        return self.scorer([self.decode_ids(hypotheses[i]) for i in ids], [self.references[split][i] for i in ids])

    # ---- train ---------------------------------------------------------------------------------------------

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        logits, _ = self(batch)  # (B, T, V)
        loss = self._loss(logits, batch["tgt_out"], self.label_smoothing)
        self.record_step(loss, batch["tgt_mask"].sum() + batch["src_mask"].sum(), batch["tgt_out"].size(0))
        return loss

    # ---- validation: loss on everything, greedy quality on a fixed slice ------------------------------------

    def on_validation_epoch_start(self) -> None:
        self.outputs = {}

    def validation_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        logits, _ = self(batch)
        self._accumulate_nll(logits, batch)
        limit = self.decoding["val_examples"]
        if limit:
            chosen = batch["ids"] < limit  # the same examples every epoch, wherever the sampler puts them
            if chosen.any():
                hyps = greedy_search(self.model, batch["src"][chosen], batch["src_mask"][chosen],
                                     **self._decode_limits())
                self.outputs.update(zip(batch["ids"][chosen].tolist(), hyps))

    def on_validation_epoch_end(self) -> None:
        self._log_nll("val")
        self.outputs = gather_dict(self.outputs)  # every rank scores all outputs, so all log the same value
        if self.outputs and not self.trainer.sanity_checking:
            # A greedy slice of the split, not the split (run.py records it under that name).
            self.log_dict({f"{VAL_SLICE}/{k}": v for k, v in self._score("validation").items()}, prog_bar=True,
                          sync_dist=True)

    # ---- test: full beam search ----------------------------------------------------------------------------

    def on_test_epoch_start(self) -> None:
        self.outputs = {}

    def test_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        logits, _ = self(batch)
        self._accumulate_nll(logits, batch)
        self.outputs.update(zip(batch["ids"].tolist(), self.generate(batch["src"], batch["src_mask"])))

    def generate(self, src: torch.Tensor, src_mask: torch.Tensor) -> list[list[int]]:
        """The test decoding: beam search with the task's decoding settings; token ids per row, no BOS/EOS."""
        return beam_search(self.model, src, src_mask, beam_size=self.decoding["beam_size"],
                           length_penalty=self.decoding["length_penalty"], **self._decode_limits())

    def score(self, hypotheses: Mapping[int, list[int]], split: str) -> dict[str, float]:
        """The task's metrics of decoded token ids by example id against that split's references."""
        return self._scored(hypotheses, split)[0]

    def on_test_epoch_end(self) -> None:
        self._log_nll("test")
        self.outputs = gather_dict(self.outputs)
        self.log_dict({f"test/{k}": v for k, v in self._score("test").items()}, sync_dist=True)

    def predictions(self) -> list[dict[str, Any]]:
        """Test outputs {id, prediction, gold} by id: detokenized hypothesis and the raw reference (the first, with
        all of them as `references`, where the test split has several)."""
        refs = self.references["test"]
        return [prediction_row(i, self.decode_ids(self.outputs[i]), refs[i]) for i in sorted(self.outputs)]

    def metric_signatures(self) -> dict[str, str]:
        return self.signatures

    # ---- attention maps ------------------------------------------------------------------------------------

    def probe_maps(self, batch: dict[str, torch.Tensor], examples: list[dict[str, Any]]) -> list[ProbeMaps]:
        """Cross-attention (generated x source tokens) per layer and head, and decoder self-attention.

        The probes are decoded greedily, then the generated sequence is fed back teacher-forced with
        need_weights=True: incremental decoding equals full recomputation, so these are the weights the
        decoder used while generating.
        """
        hyps = greedy_search(self.model, batch["src"], batch["src_mask"], **self._decode_limits())
        bos, pad = self.special["bos_id"], self.special["pad_id"]
        width = max(len(h) for h in hyps) + 1
        tgt_in = torch.full((len(hyps), width), pad, dtype=torch.long, device=batch["src"].device)  # (P, T)
        for i, hyp in enumerate(hyps):
            tgt_in[i, : len(hyp) + 1] = torch.tensor([bos, *hyp], device=tgt_in.device)
        lengths = torch.tensor([len(h) + 1 for h in hyps], device=tgt_in.device)
        tgt_mask = torch.arange(width, device=tgt_in.device)[None, :] < lengths[:, None]  # (P, T)
        _, maps = self.model(batch["src"], batch["src_mask"], tgt_in, tgt_mask, need_weights=True)
        probes = []
        for i, example in enumerate(examples):
            n_src, n_out = len(example["src_tokens"]), len(hyps[i]) + 1
            inputs = ["<s>"] + [self.token(t) for t in hyps[i]]  # what each decoder position read
            outputs = [self.token(t) for t in hyps[i]] + ["</s>"]  # what each position emitted
            probe = ProbeMaps(id=example["id"], caption=example["src_text"], title=self.decode_ids(hyps[i])[:120])
            for name, weights in maps.items():
                cross = name.startswith("cross")
                keys = example["src_tokens"] if cross else inputs
                probe.maps[name] = weights[i, :, :n_out, : (n_src if cross else n_out)].float().cpu().numpy()
                probe.queries[name], probe.keys[name] = outputs, keys
            probes.append(probe)
        return probes


# ---- the family entry (config/families.py names this module) -------------------------------------------------


def _model(cfg: DictConfig, data: Seq2SeqDataModule) -> nn.Module:
    return build_seq2seq(*containers(cfg), src_vocab=data.src_vocab_size, tgt_vocab=data.tgt_vocab_size,
                         pad_id=data.pad_id, shared_vocab=data.shared_vocab)


def _task(cfg: DictConfig, data: Seq2SeqDataModule, model: nn.Module) -> TaskModule:
    return Seq2SeqTask(
        model, optim=OmegaConf.to_container(cfg.optim), label_smoothing=cfg.task.label_smoothing, pad_id=data.pad_id,
        bos_id=data.bos_id, eos_id=data.eos_id, decoding=OmegaConf.to_container(cfg.task.decoding),
        scorer=cfg.task.scorer, decode=data.decode, token=data.tgt_tokenizer.id_to_token,
        references={split: data.references(split) for split in ("validation", "test")},
    )


def _score(cfg: DictConfig, predictions: list[Any], golds: list[Any]) -> Scores:
    return SCORERS[cfg.task.scorer](predictions, golds)


FAMILY = Family(Seq2SeqDataModule, _model, _task, gold="tgt", score=_score, references=REFS)
