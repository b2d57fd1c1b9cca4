"""What a config is called once it is a run: its identity (`config_hash` over `result_settings`, which leave out
the NOT_RESULT_KEYS), its saved form (`to_yaml`) and the variant's label in records, W&B and tables."""

from __future__ import annotations

import hashlib
import json
from typing import Any

from omegaconf import DictConfig, OmegaConf


# Settings that cannot change a run's result: where it is written and what it is called, where data and caches
# live, whether diagnostics run after it (explain), how it logs and reports progress, how many loader processes feed it (the batches and their order come
# from the sampler in the main process). config_hash leaves them out, so that the sweep (is this cell done?),
# resume (is this folder this configuration?) and the leaderboard (which settings split rows) share one answer
# to "the same configuration". A key names its whole block (wandb: every wandb.* key).
NOT_RESULT_KEYS = ("output_dir", "data_dir", "cache_dir", "run_id", "resume", "explain", "wandb", "trainer.log_every_n_steps",
                   "trainer.enable_progress_bar", "trainer.num_workers")

# Keys added after records existed, each with the value that every earlier run had implicitly: at that value the
# key is left out of result_settings, so a record made before the key existed keeps its config hash (the sweep
# does not rerun it, resume accepts its folder, the leaderboard puts it in the same row).
LATER_KEYS: dict[str, Any] = {"attention.head_dim": None, "model.tied_output_scale": None,
                               "trainer.early_stopping_monitor": None}


def result_settings(cfg: DictConfig) -> dict[str, Any]:
    """The config as a plain dict without NOT_RESULT_KEYS (nor LATER_KEYS at their old value): what determines a
    run's result."""
    data = OmegaConf.to_container(cfg, resolve=True)
    for key in NOT_RESULT_KEYS:
        _pop(data, key)
    if data.get("attention", {}).get("head_dim") is not None and data["attention"]["head_dim"] == _implied_head_dim(cfg):
        data["attention"]["head_dim"] = None  # the width / heads it defaults to: the same modules, the same run
    for key, old in LATER_KEYS.items():
        _pop(data, key, only=old)
    return data


def _implied_head_dim(cfg: DictConfig) -> int | None:
    """The head width attention.head_dim=null gives (the attention's width / heads), or None without heads."""
    from attnbench.config.rules import attention_width, uses_heads  # the backbone registry: only when head_dim is set

    if not uses_heads(cfg):
        return None
    width = attention_width(cfg)
    return width // cfg.attention.heads if width % cfg.attention.heads == 0 else None


_ANY = object()


def _pop(data: dict[str, Any], key: str, only: Any = _ANY) -> None:
    """Remove the dotted `key` from nested `data` (when its value is `only`, if given); a missing key is no error."""
    *parents, leaf = key.split(".")
    node: Any = data
    for part in parents:
        node = node.get(part, {}) if isinstance(node, dict) else {}
    if isinstance(node, dict) and leaf in node and (only is _ANY or node[leaf] == only):
        del node[leaf]


def config_hash(cfg: DictConfig) -> str:
    """Hash of what determines a run's result (result_settings)."""
    return hashlib.sha256(json.dumps(result_settings(cfg), sort_keys=True).encode()).hexdigest()[:16]


def to_yaml(cfg: DictConfig) -> str:
    return OmegaConf.to_yaml(cfg, resolve=True)


def attention_label(cfg: DictConfig) -> str:
    """The variant's name in records, W&B and tables: the impl for custom classes, the score for multihead."""
    att = cfg.attention
    if att.name == "custom":
        return att.impl
    if att.name == "multihead" and att.score != "scaled_dot":
        return f"multihead-{att.score}"
    return att.name
