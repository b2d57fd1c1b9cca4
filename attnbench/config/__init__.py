"""Load, compose and validate run configs.

One module per concern, each importing only those before it:

- `schema`: the typed dataclasses (`RunConfig` and its blocks), each field's rule beside it.
- `monitors`: the validation metric that picks the checkpoint (`monitor_key`) and the one that stops early
  (`stopping_monitor`), under their logged names (`VAL_SLICE`), and their checks.
- `rules`: `validate` and its checks, `check_machine`, name limits, and the values derived from a config
  (`target_length`, `uses_heads`, `attention_width`).
- `compose`: `load_config` (config.yaml + group files + overrides) and `load_saved_config`, with the file, line
  and closest valid key in every error.
- `hashing`: a run's identity (`config_hash`, `result_settings`, `NOT_RESULT_KEYS`, `LATER_KEYS`), `to_yaml`, `attention_label`.

Import from here (`from attnbench.config import load_config`); the modules are the layout, this is the interface.
"""

from attnbench.config.compose import (
    GROUPS,
    TOP_LEVEL_KEYS,
    config_dir,
    default_wandb_mode,
    group_options,
    load_config,
    load_saved_config,
)
from attnbench.config.hashing import LATER_KEYS, NOT_RESULT_KEYS, attention_label, config_hash, result_settings, to_yaml
from attnbench.config.monitors import VAL_SLICE, monitor_key, stopping_monitor
from attnbench.config.rules import (
    MAX_NAME_BYTES,
    SEED_RANGE,
    attention_width,
    check_machine,
    check_name,
    check_run_id,
    target_length,
    uses_heads,
    validate,
)
from attnbench.config.schema import (
    AttentionConfig,
    DecodingConfig,
    HoldoutConfig,
    HubSourceConfig,
    LocalSourceConfig,
    ModelConfig,
    OptimConfig,
    RunConfig,
    SplitLimits,
    TaskConfig,
    TokenizerConfig,
    TrainerConfig,
    WandbConfig,
)

__all__ = [
    "GROUPS", "TOP_LEVEL_KEYS", "config_dir", "group_options", "load_config", "load_saved_config",
    "LATER_KEYS", "NOT_RESULT_KEYS", "attention_label", "config_hash", "result_settings", "to_yaml",
    "MAX_NAME_BYTES", "SEED_RANGE", "VAL_SLICE", "attention_width", "check_machine", "check_name", "check_run_id",
    "monitor_key", "stopping_monitor", "target_length", "uses_heads", "validate",
    "AttentionConfig", "DecodingConfig", "HoldoutConfig", "HubSourceConfig", "LocalSourceConfig", "ModelConfig",
    "OptimConfig", "RunConfig", "SplitLimits", "TaskConfig", "TokenizerConfig", "TrainerConfig", "WandbConfig",
]
