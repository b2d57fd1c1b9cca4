"""`attnbench data`: what a task's data looks like to a model, before any training.

    config -> the family's data module (the same splits, limits, tokenizer and truncation as a run) -> per split:
    example count, token lengths of each side (percentiles, share `task.max_length` cuts), the tokenizer's
    [UNK] rate and vocabulary coverage, the label distribution (labelled families) -> the trivial baselines'
    test scores (metrics/baselines.py, scored by the family's own metric code)

Unknown-token rate: the share of the tokens the model sees (after truncation) that are [UNK]; for BPE, whose byte
fallback leaves no [UNK], the share of byte tokens is reported beside it. Vocabulary coverage: the share of the
split's distinct words (normalised and pre-tokenised exactly as the tokenizer does) that encode without [UNK] or
byte tokens (word-level: below 100% on train only when vocab_size or min_frequency drops words); tokens per word:
the mean number of tokens a running word becomes (1 for word-level, BPE's fertility).
"""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

from omegaconf import DictConfig
from tokenizers import Tokenizer

from attnbench.config.families import FAMILIES
from attnbench.data.sources import split_sources
from attnbench.data.tokenizer import BYTE_TOKENS, UNK
from attnbench.metrics.baselines import baselines_for
from attnbench.metrics.registry import percent
from attnbench.suite.baseline import canonical_columns
from attnbench.tasks.families import build_datamodule, family

_BYTES = frozenset(BYTE_TOKENS)


def data_report(cfg: DictConfig) -> dict[str, Any]:
    """The report as plain data (what `--json` prints)."""
    data = build_datamodule(cfg)
    data.prepare()
    spec = FAMILIES[cfg.task.family]
    lengths = data.length_report()
    sides = data.text_sides()
    report: dict[str, Any] = {
        "task": cfg.task.name, "dataset": cfg.task.dataset, "family": cfg.task.family,
        "sources": split_sources(cfg.task, cfg.data_dir),
        "max_length": lengths["max_length"], "max_target_length": lengths["max_target_length"],
        "tokenizer": {side: {"kind": cfg.task.tokenizer.kind, "vocab_size": tok.get_vocab_size()}
                      for side, (_, _, tok) in sides.items()},
        "splits": {},
    }
    for split, dataset in data.splits.items():
        entry = lengths["splits"][split]
        for side, (text_column, ids_column, tokenizer) in sides.items():
            entry[side].update(token_rates(dataset[ids_column], tokenizer))
            entry[side].update(word_coverage(dataset[text_column], tokenizer))
        if spec.labelled:
            counts = Counter(dataset["label"])
            entry["labels"] = {name: counts.get(i, 0) for i, name in enumerate(data.label_names)}
        report["splits"][split] = entry
    report["baselines"] = baseline_scores(cfg)
    return report


def token_rates(ids: list[list[int]], tokenizer: Tokenizer) -> dict[str, float]:
    """Shares of [UNK] and of byte-fallback tokens among the given token ids."""
    unk = tokenizer.token_to_id(UNK)
    byte_ids = {tokenizer.token_to_id(t) for t in _BYTES} - {None}
    total = unknown = fallback = 0
    for row in ids:
        total += len(row)
        unknown += sum(1 for i in row if i == unk)
        fallback += sum(1 for i in row if i in byte_ids) if byte_ids else 0
    return {"unk": unknown / total if total else 0.0, "bytes": fallback / total if total else 0.0}


def word_coverage(texts: list[str], tokenizer: Tokenizer) -> dict[str, float]:
    """{"coverage": share of the distinct words of `texts` that encode without [UNK] or byte tokens,
    "tokens_per_word": mean tokens per running word (1 for word-level; BPE's fertility)}."""
    words: Counter[str] = Counter()
    for text in texts:
        normalised = tokenizer.normalizer.normalize_str(text) if tokenizer.normalizer else text
        words.update(word for word, _ in tokenizer.pre_tokenizer.pre_tokenize_str(normalised))
    if not words:
        return {"coverage": 1.0, "tokens_per_word": 0.0}
    covered = pieces = 0
    for word, count in words.items():
        tokens = [t.value for t in tokenizer.model.tokenize(word)]
        covered += all(t != UNK and t not in _BYTES for t in tokens)
        pieces += count * len(tokens)
    return {"coverage": covered / len(words), "tokens_per_word": pieces / sum(words.values())}


def baseline_scores(cfg: DictConfig) -> dict[str, dict[str, float]]:
    """Each trivial baseline's test scores, computed as `attnbench baseline` computes them (nothing written)."""
    baselines = baselines_for(cfg.task.family, cfg.task.scorer)
    if not baselines:
        return {}
    train, test = canonical_columns(cfg)
    built = family(cfg)
    return {b.name: built.score(cfg, b.predict(train, test), built.golds(test))[0] for b in baselines}


# ---- text ------------------------------------------------------------------------------------------------------


def render(report: dict[str, Any]) -> str:
    """One screen: a header, a row per split and side, the label shares, the baselines."""
    limits = {"source": f"max_length {report['max_length']}"}
    if report["max_target_length"] is not None:
        limits["target"] = f"max_target_length {report['max_target_length']}"
    vocab = ", ".join(f"{side} {t['kind']} {t['vocab_size']:,}" for side, t in report["tokenizer"].items())
    lines = [f"{report['task']} / {report['dataset']} ({report['family']}); tokenizer: {vocab} tokens", ""]
    header = f"{'split':<12} {'side':<7} {'examples':>9}  {'tokens p50/p90/p99/max':<24} {'cut':>6}  " \
             f"{'[UNK]':>6}  {'bytes':>6}  {'covered':>7}  {'tok/word':>8}"
    lines.append(header)
    for split, entry in report["splits"].items():
        for side in limits:
            s = entry[side]
            spread = f"{s['p50']:g}/{s['p90']:g}/{s['p99']:g}/{s['max']}"
            lines.append(f"{split:<12} {side:<7} {entry['examples']:>9,}  {spread:<24} {_pct(s['truncated']):>6}  "
                         f"{_pct(s['unk'], 2):>6}  {_pct(s['bytes'], 2):>6}  {_pct(s['coverage']):>7}  "
                         f"{s['tokens_per_word']:>8.2f}")
    lines.append(f"(cut: share longer than {', '.join(limits.values())}; lengths in tokens before truncation; "
                 "covered: distinct words with no [UNK] or byte token)")
    labelled = [(split, entry["labels"]) for split, entry in report["splits"].items() if "labels" in entry]
    if labelled:
        lines.append("")
        for split, counts in labelled:
            total = sum(counts.values()) or 1
            shares = ", ".join(f"{name} {_pct(n / total)} ({n:,})" for name, n in counts.items())
            lines.append(f"labels {split:<12} {shares}")
    if report["baselines"]:
        lines.append("")
        for name, scores in report["baselines"].items():
            shown = ", ".join(f"{k} {100 * v:.2f}" if percent(k) else f"{k} {v:.4g}" for k, v in scores.items())
            lines.append(f"trivial baseline {name} (test): {shown}")
    return "\n".join(lines) + "\n"


def render_json(report: dict[str, Any]) -> str:
    return json.dumps(report, indent=1, allow_nan=False) + "\n"


def _pct(share: float, digits: int = 1) -> str:
    return f"{100 * share:.{digits}f}%"
