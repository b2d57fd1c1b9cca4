"""Which validation metric picks the checkpoint (`monitor_key`: task.monitor) and which one stops training early
(`stopping_monitor`: trainer.early_stopping_monitor, else the same), under the names the tasks log them, and the
checks that both exist for the task (`validate_monitors`, called by `rules.validate`).

Seq2seq metrics of decoded text exist per epoch only for the greedy slice of `task.decoding.val_examples` validation
examples, so they are logged as `val_slice/<metric>`, never as if they covered the split.
"""

from __future__ import annotations

from omegaconf import DictConfig

from attnbench.config.families import FAMILIES
from attnbench.errors import ConfigError, did_you_mean

# Seq2seq metrics of the greedy-decoded validation slice: logged as val_slice/<metric>, recorded as metrics.val_slice.
VAL_SLICE = "val_slice"


def monitor_key(cfg: DictConfig) -> str:
    """The logged name of the validation metric that picks checkpoints (and stops early, unless
    trainer.early_stopping_monitor names another)."""
    return _logged_name(cfg, cfg.task.monitor)


def stopping_monitor(cfg: DictConfig) -> tuple[str, str]:
    """The logged name and mode (min | max) of the validation metric early stopping watches:
    trainer.early_stopping_monitor, else the checkpoint's (`monitor_key`, task.monitor_mode)."""
    name = cfg.trainer.early_stopping_monitor
    if name is None:
        return monitor_key(cfg), cfg.task.monitor_mode
    return _logged_name(cfg, name), _metrics()[name].better


def validate_monitors(cfg: DictConfig) -> None:
    """task.monitor agrees with task.monitor_mode and is logged per validation; trainer.early_stopping_monitor is
    null or a validation metric this task's runs log."""
    task = cfg.task
    metric = _metrics().get(task.monitor)  # None: a metric the registry does not know (nothing to check)
    if metric is not None and metric.better == "max" and task.monitor_mode != "max":
        raise ConfigError(f"task.monitor={task.monitor} is better when higher: pass task.monitor_mode=max")
    if metric is not None and metric.better == "min" and task.monitor_mode != "min":
        raise ConfigError(f"task.monitor={task.monitor} is better when lower: pass task.monitor_mode=min")
    decoded = FAMILIES[task.family].decodes and metric is not None and metric.decoded
    scored = _scored_by(task.scorer)
    if decoded and task.monitor not in scored:
        raise ConfigError(
            f"task.monitor={task.monitor} is not produced by task.scorer={task.scorer} (it gives {', '.join(scored)}): "
            "change task.monitor or task.scorer"
        )
    if decoded and task.decoding.val_examples == 0:
        raise ConfigError(
            f"task.monitor={task.monitor} needs decoded validation examples, but task.decoding.val_examples=0: "
            "pass task.decoding.val_examples=256 or task.monitor=loss task.monitor_mode=min"
        )
    name = cfg.trainer.early_stopping_monitor
    if name is None:
        return
    logged = _logged_metrics(cfg)
    if name not in logged:
        hint = did_you_mean(str(name), logged)
        raise ConfigError(f"trainer.early_stopping_monitor={name} is not a validation metric of this task{hint}: "
                          f"choose one of {', '.join(logged)}, or null (task.monitor)")


def _logged_metrics(cfg: DictConfig) -> list[str]:
    """The registry's metrics a run of this task logs at every validation (tasks/classification.py, tasks/seq2seq.py)."""
    family, task = FAMILIES[cfg.task.family], cfg.task
    logged = ["loss", "ppl"] if family.decodes else ["loss"]
    if family.labelled:
        logged += [n for n, m in _metrics().items() if m.source == "classification"]
    if family.decodes and task.decoding.val_examples > 0:
        logged += _scored_by(task.scorer)
    return logged


def _logged_name(cfg: DictConfig, name: str) -> str:
    metric = _metrics().get(name)
    decoded = FAMILIES[cfg.task.family].decodes and metric is not None and metric.decoded
    return f"{VAL_SLICE}/{name}" if decoded else f"val/{name}"


def _scored_by(scorer: str) -> list[str]:
    from attnbench.metrics.registry import scored_by  # lazily, as in _metrics

    return list(scored_by(scorer))


def _metrics() -> dict:
    # Imported when validating, not with the config package: the metric registry imports torchmetrics and
    # sacrebleu (tests/test_config_split.py). metrics/ does not import config: no cycle.
    from attnbench.metrics.registry import METRICS

    return METRICS
