"""Compose a run config from files and overrides, and read a saved one back.

`configs/config.yaml` names one option per group (`defaults:`); each group option is a YAML file in
`configs/<group>/<option>.yaml` that fills the block of the same name. Command-line overrides are
`group=option` (pick a file) and `dotted.key=value` (set a key). The result is merged onto the typed schema and
validated; every error names the file and line (or the override) to fix, and the closest valid key or option.
"""

from __future__ import annotations

import functools
import os
import re
from pathlib import Path
from typing import Any

import yaml
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from attnbench.config.rules import validate
from attnbench.config.schema import RunConfig
from attnbench.errors import ConfigError, did_you_mean

GROUPS = ("task", "attention", "model", "trainer")
# Top-level scalars that the CLI accepts as plain `key=value` without a dot.
TOP_LEVEL_KEYS = ("seed", "output_dir", "data_dir", "cache_dir", "run_id")


def config_dir() -> Path:
    """The configs/ folder: $ATTNBENCH_CONFIG_DIR, else the one beside the package (editable install)."""
    env = os.environ.get("ATTNBENCH_CONFIG_DIR")
    return Path(env) if env else Path(__file__).resolve().parents[2] / "configs"


def group_options(group: str, root: Path | None = None) -> list[str]:
    root = root or config_dir()
    return sorted(p.stem for p in (root / group).glob("*.yaml"))


def load_config(overrides: list[str] | tuple[str, ...] = (), root: Path | None = None) -> DictConfig:
    """Compose config.yaml, the chosen group files and the overrides; validate; return a resolved config."""
    root = root or config_dir()
    base_file = root / "config.yaml"
    if not base_file.is_file():
        raise ConfigError(f"no config.yaml in {root}: set ATTNBENCH_CONFIG_DIR to attnbench's configs/ folder")
    base = _read_yaml(base_file)
    choices = dict(base.pop("defaults", {}) or {})
    groups, dotted = _split_overrides(overrides)
    choices.update(groups)

    sources: list[tuple[Path | None, dict]] = [(base_file, base)]  # each file and what it sets, for messages
    for group in GROUPS:
        path, data = _group_file(root, group, choices[group])
        sources.append((path, {group: data}))
    cfg = _merge(sources)
    sources = [(path, data) for path, data in sources if path is not None]
    for key, value in dotted:
        _apply_override(cfg, key, value)
    _fill_environment_defaults(cfg)
    try:
        OmegaConf.resolve(cfg)
    except OmegaConfBaseException as err:
        raise ConfigError(f"cannot resolve config: {_omegaconf_message(err)}") from None
    try:
        validate(cfg)
    except ConfigError as err:
        raise ConfigError(f"{err}{_origin(str(err), sources, [key for key, _ in dotted])}") from None
    return cfg


@functools.cache
def _schema() -> DictConfig:
    """The typed schema, built once (merge copies it, never changes it)."""
    return OmegaConf.structured(RunConfig)


def _merge(sources: list[tuple[Path | None, dict]]) -> DictConfig:
    """The schema with every file's data merged on, in order, in one merge (one copy of the schema, not one per
    file: a 90-cell spec composes 90 configs); on an error, file by file to name the file that caused it."""
    try:
        return OmegaConf.merge(_schema(), *(data for _, data in sources))
    except OmegaConfBaseException:
        pass
    cfg = _schema()
    for path, data in sources:
        try:
            cfg = OmegaConf.merge(cfg, data)
        except OmegaConfBaseException as err:
            raise ConfigError(_file_error(path, err)) from None
    raise AssertionError("the merge failed as a whole but not file by file")


def _file_error(path: Path | None, err: OmegaConfBaseException) -> str:
    """A merge error (unknown key, wrong type) with the file and the line of the offending key."""
    key = str(getattr(err, "key", None) or "").rsplit(".", 1)[-1]
    where = f"{path}" if path else "config"
    if path is not None and key:
        line = _line_of(path, key)
        if line:
            where += f", line {line}"
    return f"{where}: {_omegaconf_message(err)}; fix the file (`attnbench config` lists every key)"


def _line_of(path: Path, key: str) -> int | None:
    pattern = re.compile(rf"^\s*{re.escape(key)}\s*:")
    for number, line in enumerate(path.read_text(errors="replace").splitlines(), 1):
        if pattern.match(line):
            return number
    return None


def _origin(message: str, sources: list[tuple[Path, dict]], overridden: list[str]) -> str:
    """Where the setting a validation message names (its leading `dotted.key=`) was set: the command line, or
    the last config file that sets it, with the line."""
    match = re.match(r"([A-Za-z_][\w.]*)=", message)
    if not match:
        return ""
    key = match.group(1)
    if key in overridden:
        return " (set on the command line)"
    for path, data in reversed(sources):
        node: Any = data
        for part in key.split("."):
            node = node.get(part, _UNSET) if isinstance(node, dict) else _UNSET
        if node is not _UNSET:
            line = _line_of(path, key.rsplit(".", 1)[-1])
            return f" (set in {path}{f', line {line}' if line else ''})"
    return ""


_UNSET = object()


def load_saved_config(path: Path) -> DictConfig:
    """A run folder's config.yaml, validated against today's schema (to repeat a run); a damaged one (not YAML,
    a value of the wrong type, a key the schema lacks, a value out of range) is a ConfigError naming the file."""
    try:
        cfg = OmegaConf.merge(_schema(), _read_yaml(path))
        validate(cfg)
    except OmegaConfBaseException as err:
        raise ConfigError(f"{path}: {_omegaconf_message(err)}: the saved config is damaged or from an incompatible "
                          "version; restore it or run the configuration again") from None
    except ConfigError as err:
        message = str(err)
        if not message.startswith(str(path)):
            message = f"{path}: {message} (a saved value; restore the file or run the configuration again)"
        raise ConfigError(message) from None
    return cfg


def _read_yaml(path: Path) -> dict:
    try:
        data = OmegaConf.to_container(OmegaConf.load(path))
    except Exception as err:  # yaml.YAMLError and OmegaConf errors alike
        mark = getattr(err, "problem_mark", None)
        where = f"{path}, line {mark.line + 1}" if mark is not None else str(path)
        problem = getattr(err, "problem", None) or str(err).splitlines()[0]
        raise ConfigError(f"{where}: not valid YAML ({problem}); fix the file") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping of keys to values; fix the file")
    return data


def _group_file(root: Path, group: str, option: str) -> tuple[Path | None, dict]:
    """The file of a group option and its contents (no file for an attention plugin named by entry point)."""
    path = root / group / f"{option}.yaml"
    if path.is_file():
        return path, _read_yaml(path)
    if group == "attention" and _is_plugin_attention(option):
        return None, {"name": option}
    valid = group_options(group, root)
    if group == "attention":
        valid = sorted(set(valid) | set(_plugin_attention_names()))
    hint = did_you_mean(option, valid)
    raise ConfigError(
        f"unknown {group} option '{option}'{hint}: valid options are {', '.join(valid)}"
    )


def _plugin_attention_names() -> list[str]:
    # Imported lazily: the attention registry imports torch, which the config layer should not need.
    from attnbench.attention import available_attention

    return list(available_attention())


def _is_plugin_attention(option: str) -> bool:
    return option in _plugin_attention_names()


def _split_overrides(overrides) -> tuple[dict[str, str], list[tuple[str, str]]]:
    groups: dict[str, str] = {}
    dotted: list[tuple[str, str]] = []
    for item in overrides:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ConfigError(
                f"override '{item}' is not of the form key=value: write e.g. attention=additive or trainer.max_epochs=3"
            )
        key = key.strip()
        if key in GROUPS:
            groups[key] = value.strip()
        else:
            dotted.append((key, value))
    return groups, dotted


def _all_keys(node: DictConfig, prefix: str = "") -> list[str]:
    keys = []
    for key in node.keys():
        full = f"{prefix}{key}"
        keys.append(full)
        child = node._get_node(key)
        if isinstance(child, DictConfig) and not _is_free_dict(node, key):
            keys.extend(_all_keys(child, full + "."))
    return keys


def _is_free_dict(parent: DictConfig, key: str) -> bool:
    """Dict[str, X] fields (column maps, kwargs) take any key."""
    child = parent._get_node(key)
    return isinstance(child, DictConfig) and child._metadata.object_type in (None, dict)


def _apply_override(cfg: DictConfig, key: str, raw: str) -> None:
    parent_key, _, leaf = key.rpartition(".")
    parent = OmegaConf.select(cfg, parent_key) if parent_key else cfg
    free = False
    if parent_key:
        grand_key, _, last = parent_key.rpartition(".")
        grand = OmegaConf.select(cfg, grand_key) if grand_key else cfg
        free = isinstance(grand, DictConfig) and last in grand and _is_free_dict(grand, last)
    if not isinstance(parent, DictConfig) or (leaf not in parent and not free):
        hint = did_you_mean(key, _all_keys(cfg))
        raise ConfigError(f"unknown config key '{key}'{hint}: run `attnbench config` to see all keys")
    try:
        value = _parse_value(raw)
    except yaml.YAMLError as err:
        problem = str(getattr(err, "problem", None) or err).splitlines()[0]
        raise ConfigError(f"bad value for {key}: {raw!r} is not valid YAML ({problem}); write flow YAML with a space "
                          f"after each colon and single quotes around regexes, e.g. {key}='[a, {{b: 1}}]'") from None
    try:
        OmegaConf.update(cfg, key, value, merge=True)
    except OmegaConfBaseException as err:
        expected = _expected_type(cfg, key)
        raise ConfigError(
            f"bad value for {key}: {raw!r} is not {expected} ({_omegaconf_message(err)}); pass e.g. {key}={_example(expected)}"
        ) from None


def _parse_value(raw: str) -> Any:
    # YAML scalars/lists as the user would write them in a config file: 3, 1e-3, true, null, [a,b].
    parsed = OmegaConf.from_dotlist([f"v={raw}"])
    return OmegaConf.to_container(parsed)["v"] if raw.strip() else ""


def _expected_type(cfg: DictConfig, key: str) -> str:
    parent_key, _, leaf = key.rpartition(".")
    parent = OmegaConf.select(cfg, parent_key) if parent_key else cfg
    node = parent._get_node(leaf)
    ref = getattr(node._metadata, "ref_type", Any)
    name = getattr(ref, "__name__", str(ref))
    return {"int": "an integer", "float": "a number", "bool": "true/false", "str": "a string"}.get(name, f"a {name}")


def _example(expected: str) -> str:
    return {"an integer": "3", "a number": "0.001", "true/false": "true"}.get(expected, "value")


def _omegaconf_message(err: OmegaConfBaseException) -> str:
    return str(err).strip().splitlines()[0]


def default_wandb_mode() -> str:
    """W&B's mode when none is given: $WANDB_MODE, else offline (runs' wandb.mode, the leaderboard's --wandb)."""
    return os.environ.get("WANDB_MODE") or "offline"


def _fill_environment_defaults(cfg: DictConfig) -> None:
    if cfg.data_dir is None and os.environ.get("ATTNBENCH_DATA_DIR"):
        cfg.data_dir = os.environ["ATTNBENCH_DATA_DIR"]
    if cfg.cache_dir is None:
        cfg.cache_dir = os.environ.get("ATTNBENCH_CACHE_DIR") or str(Path.home() / ".cache" / "attnbench")
    if cfg.wandb.mode is None:
        cfg.wandb.mode = default_wandb_mode()
