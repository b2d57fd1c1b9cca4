"""Tokenizers trained on a task's train split with HF `tokenizers`, cached as JSON.

Cache layout: `<cache_dir>/tokenizers/<hash>.json`, where the hash covers the training data's fingerprint
(the caller's `key`) and the settings; a second build with the same inputs loads the file instead of training.

BPE detokenizes exactly: `decode(encode(x).ids) == x` for any text that does not start with a space (one
leading space is dropped; the data files strip them), lowercased when `lowercase` is set, so generated text can
be scored by sacreBLEU / rouge-score against the raw references (100% of the Multi30k and CNN/DailyMail
validation and test texts round-trip). Metaspace keeps every space as part of the next token ("▁Haus"), and
characters never seen in training are spelled as UTF-8 byte tokens (`<0xE2>`, byte fallback) instead of
becoming [UNK].

`normalizers` and `pre_tokenizers` list HF steps by name (config/text_steps.py: the names, their arguments, how
`lowercase` and bpe combine with them): the normalizers rewrite every text first; the pre-tokenizers replace
wordlevel's whitespace split, or split bpe's Metaspace pieces further. Left empty, the pipeline and the cache key are
the ones built before these settings existed. With normalizers, bpe round-trips the normalised text.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import tempfile
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf
from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers

from attnbench.config import TokenizerConfig
from attnbench.config.text_steps import NORMALIZERS, PRE_TOKENIZERS, StepSpec, canonical, lowercases

PAD, UNK, CLS, BOS, EOS = "[PAD]", "[UNK]", "[CLS]", "[BOS]", "[EOS]"
# Trainers give special tokens the first ids in this order: [PAD] is 0, which embeddings use as padding_idx.
SPECIAL_TOKENS = [PAD, UNK, CLS, BOS, EOS]
# Byte-fallback tokens of the BPE vocabulary, one per byte value (the names sentencepiece and Llama use).
BYTE_TOKENS = [f"<0x{value:02X}>" for value in range(256)]
# Bump when the pipeline below changes, so cached tokenizers built the old way are not reused.
TOKENIZER_FORMAT = 2


def build_tokenizer(texts: Iterable[str], settings: TokenizerConfig, cache_dir: str, key: str) -> Tokenizer:
    """Load the cached tokenizer for (key, settings) or train one on `texts` (the train split) and cache it.

    `texts` is only consumed when no cached tokenizer exists.
    """
    spec = _settings(settings)
    digest = hashlib.sha256(
        json.dumps({"format": TOKENIZER_FORMAT, "key": key, "settings": spec, "special": SPECIAL_TOKENS},
                   sort_keys=True).encode()
    ).hexdigest()[:16]
    path = Path(cache_dir) / "tokenizers" / f"{digest}.json"
    if path.is_file():
        try:
            return Tokenizer.from_file(str(path))
        except Exception:  # an unreadable cache entry is rebuilt below, never trusted
            pass
    tokenizer, trainer = _untrained(spec)
    tokenizer.train_from_iterator(texts, trainer=trainer)
    if spec["kind"] == "bpe":
        tokenizer = _with_byte_fallback(tokenizer)
    for index, token in enumerate(SPECIAL_TOKENS):
        assert tokenizer.token_to_id(token) == index, f"{token} should have id {index}"
    _write_atomic(path, tokenizer.to_str())
    return tokenizer


def tokenizer_hash(tokenizer: Tokenizer) -> str:
    """Short sha256 of the tokenizer's JSON: equal hashes mean identical tokenization."""
    return hashlib.sha256(tokenizer.to_str().encode()).hexdigest()[:16]


def _untrained(spec: Mapping[str, Any]) -> tuple[Tokenizer, trainers.Trainer]:
    common = {"vocab_size": spec["vocab_size"], "min_frequency": spec["min_frequency"],
              "special_tokens": SPECIAL_TOKENS, "show_progress": False}
    listed = _chain(pre_tokenizers, PRE_TOKENIZERS, spec.get("pre_tokenizers", []))
    if spec["kind"] == "wordlevel":
        tokenizer = Tokenizer(models.WordLevel(unk_token=UNK))
        # Split on whitespace only, unless the task lists pre-tokenizers: word-level data such as SST-2 is already
        # PTB-tokenized ("does n't"), and the Whitespace pre-tokenizer would split those tokens again ("n", "'", "t").
        tokenizer.pre_tokenizer = pre_tokenizers.WhitespaceSplit() if listed is None else listed
        trainer = trainers.WordLevelTrainer(**common)
    elif spec["kind"] == "bpe":
        tokenizer = Tokenizer(models.BPE(unk_token=UNK))
        # Metaspace rather than ByteLevel: tokens stay readable ("▁Über" instead of "Ã\u013eber") on attention-map
        # axes, and the decoder restores the spaces for BLEU/ROUGE. ByteFallback first turns runs of byte tokens
        # back into the characters they spell.
        # Listed pre-tokenizers split Metaspace's "▁word" pieces further; config validation allows only lossless
        # ones, so the pieces still concatenate to the text and the decoder below restores it exactly.
        metaspace = pre_tokenizers.Metaspace()
        tokenizer.pre_tokenizer = metaspace if listed is None else pre_tokenizers.Sequence([metaspace, listed])
        tokenizer.decoder = decoders.Sequence([decoders.ByteFallback(), decoders.Metaspace()])
        # vocab_size counts everything: special tokens, the 256 byte tokens added after training, merges.
        budget = max(spec["vocab_size"] - len(BYTE_TOKENS), len(SPECIAL_TOKENS) + 1)
        trainer = trainers.BpeTrainer(**{**common, "vocab_size": budget})
    else:
        raise ValueError(f"unknown tokenizer kind '{spec['kind']}': choose wordlevel or bpe")
    steps = list(spec.get("normalizers", []))
    if spec["lowercase"] and not lowercases(steps):
        steps.append({"lowercase": {}})  # last: after nfkc has folded full-width letters, say
    normalizer = _chain(normalizers, NORMALIZERS, steps)
    if normalizer is not None:
        tokenizer.normalizer = normalizer
    return tokenizer, trainer


def _chain(module: Any, table: Mapping[str, StepSpec], steps: list[dict[str, dict[str, Any]]]) -> Any:
    """The HF normalizer or pre-tokenizer (from `module`) for canonical steps: one step alone, else a Sequence;
    None for no steps."""
    built = []
    for step in steps:
        ((name, args),) = step.items()
        spec = table[name]
        built.append(getattr(module, spec.hf)(**{key: Regex(value) if spec.args[key].regex else value
                                                  for key, value in args.items()}))
    if not built:
        return None
    return built[0] if len(built) == 1 else module.Sequence(built)


def _with_byte_fallback(tokenizer: Tokenizer) -> Tokenizer:
    """The trained BPE tokenizer with the 256 byte tokens appended and byte fallback switched on.

    BpeTrainer has no option for byte tokens, so they are added to the serialized model after training.
    """
    data = json.loads(tokenizer.to_str())
    vocab = data["model"]["vocab"]
    for token in BYTE_TOKENS:
        vocab.setdefault(token, len(vocab))
    data["model"]["byte_fallback"] = True
    return Tokenizer.from_str(json.dumps(data, ensure_ascii=False))


def _settings(settings: TokenizerConfig | DictConfig | Mapping[str, Any]) -> dict[str, Any]:
    if isinstance(settings, DictConfig):
        data = OmegaConf.to_container(settings, resolve=True)
    elif dataclasses.is_dataclass(settings):
        data = dataclasses.asdict(settings)
    else:
        data = dict(settings)
    spec = {key: data[key] for key in ("kind", "vocab_size", "min_frequency", "lowercase")}
    # Only when set, so that with empty lists the cache key of the shipped tasks is the one they had before.
    for key, table in (("normalizers", NORMALIZERS), ("pre_tokenizers", PRE_TOKENIZERS)):
        if data.get(key):
            spec[key] = canonical(table, data[key])
    return spec


def _write_atomic(path: Path, text: str) -> None:
    # Same-folder temp file + os.replace: readers see the old file or the whole new one, never a part.
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
