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


def result_settings(cfg: DictConfig) -> dict[str, Any]:
    """The config as a plain dict without NOT_RESULT_KEYS: what determines a run's result."""
    data = OmegaConf.to_container(cfg, resolve=True)
    for key in NOT_RESULT_KEYS:
        *parents, leaf = key.split(".")
        node = data
        for part in parents:
            node = node.get(part, {}) if isinstance(node, dict) else {}
        if isinstance(node, dict):
            node.pop(leaf, None)
    return data


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
