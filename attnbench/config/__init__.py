"""Load, compose and validate run configs.

`configs/config.yaml` names one option per group (`defaults:`); each group option is a YAML file in
`configs/<group>/<option>.yaml` that fills the block of the same name. Command-line overrides are
`group=option` (pick a file) and `dotted.key=value` (set a key). The typed schema below validates the
result before any work starts: unknown keys name the closest valid key, wrong types and impossible
combinations are refused with a message that says how to fix them.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional

from omegaconf import MISSING, DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from attnbench.errors import ConfigError

GROUPS = ("task", "attention", "model", "trainer")
# Top-level scalars that the CLI accepts as plain `key=value` without a dot.
TOP_LEVEL_KEYS = ("seed", "output_dir", "data_dir", "cache_dir", "run_id")


@dataclass
class HoldoutConfig:
    """Hold out `size` rows of the hub's train split, drawn with `seed`, as the canonical split `split`; train keeps
    the rest. For hub datasets whose labelled evaluation split must serve as test (GLUE hides its test labels), so
    that the split reported as test never picks checkpoints or stops training. size 0: off."""

    split: str = "validation"
    size: int = 0
    seed: int = 0  # fixed by the data, not the run's seed: every run of the task gets the same split


@dataclass
class HubSourceConfig:
    path: str = MISSING
    name: Optional[str] = None
    revision: Optional[str] = None
    columns: Dict[str, str] = field(default_factory=dict)  # canonical field -> hub column
    splits: Dict[str, str] = field(default_factory=dict)  # canonical split -> hub split
    holdout: HoldoutConfig = field(default_factory=HoldoutConfig)


@dataclass
class LocalSourceConfig:
    dataset: str = MISSING  # folder name under <data_dir>/<task>/
    columns: Dict[str, str] = field(default_factory=dict)  # canonical field -> jsonl key
    splits: Dict[str, str] = field(default_factory=dict)  # canonical split -> file stem


@dataclass
class TokenizerConfig:
    kind: str = "wordlevel"  # wordlevel | bpe
    vocab_size: int = 20000
    min_frequency: int = 1
    lowercase: bool = True
    shared: bool = True  # seq2seq: one vocabulary for source and target (false: one tokenizer per side)


@dataclass
class SplitLimits:
    """Use only the first N examples of a split (smoke runs, tests); null = all."""

    train: Optional[int] = None
    validation: Optional[int] = None
    test: Optional[int] = None


@dataclass
class DecodingConfig:
    """Seq2seq inference: beam search for evaluation, greedy decoding for the cheap per-epoch metric."""

    beam_size: int = 5
    length_penalty: float = 1.0  # GNMT: log P / ((5 + length) / 6) ** length_penalty (0: raw log-probability)
    max_len_a: float = 1.5  # generate at most max_len_a * source_length + max_len_b tokens
    max_len_b: int = 10
    min_length: int = 0  # EOS is forbidden before this many tokens
    no_repeat_ngram_size: int = 0  # 0: off; n: no n-gram may occur twice in a hypothesis
    val_examples: int = 256  # greedy decoding of the first N validation examples each epoch (0 = off)


@dataclass
class TaskConfig:
    name: str = MISSING
    family: str = "classification"  # classification | seq2seq
    dataset: str = MISSING
    source: str = "auto"  # auto (local when data_dir is set, else hub) | local | hub
    hub: HubSourceConfig = field(default_factory=HubSourceConfig)
    local: LocalSourceConfig = field(default_factory=LocalSourceConfig)
    labels: List[str] = field(default_factory=list)
    max_length: int = 128  # tokens per input (seq2seq: per source)
    max_target_length: Optional[int] = None  # seq2seq: tokens per target incl. BOS/EOS; null = max_length
    label_smoothing: float = 0.0  # seq2seq cross-entropy smoothing, in [0, 1)
    tokenizer: TokenizerConfig = field(default_factory=TokenizerConfig)
    limits: SplitLimits = field(default_factory=SplitLimits)
    scorer: str = "bleu"  # seq2seq quality metrics: bleu (sacreBLEU BLEU + chrF) | rouge (rouge-score)
    # Validation metric for checkpointing and early stopping: accuracy | f1 | loss (classification); bleu | chrf |
    # rouge1 | rouge2 | rougeL | rougeLsum (seq2seq, on the greedy decoding.val_examples slice) | loss.
    monitor: str = "accuracy"
    monitor_mode: str = "max"
    probes: int = 4  # validation examples whose attention maps are logged every epoch
    decoding: DecodingConfig = field(default_factory=DecodingConfig)


@dataclass
class AttentionConfig:
    name: str = "additive"  # registry name, entry-point plugin, or `custom` with impl
    impl: Optional[str] = None  # package.module:ClassName for attention=custom
    heads: int = 1
    score: str = "scaled_dot"  # score function inside multihead
    dropout: float = 0.0
    hidden_dim: Optional[int] = None  # additive attention's hidden size (default: key dim)
    kwargs: Dict[str, Any] = field(default_factory=dict)  # extra constructor arguments


@dataclass
class ModelConfig:
    name: str = "rnn"  # rnn | transformer
    cell: str = "lstm"  # rnn: lstm | gru
    embed_dim: int = 300  # transformer: d_model
    hidden_dim: int = 128  # rnn: per direction
    num_layers: int = 1
    dropout: float = 0.3
    ff_dim: int = 512  # transformer feed-forward size
    max_positions: int = 512  # transformer learned positions
    decoder_style: str = "bahdanau"  # seq2seq rnn: bahdanau (attend before the cell) | luong (after)
    tie_embeddings: bool = False  # seq2seq: decoder input and output embeddings share weights


@dataclass
class TrainerConfig:
    max_epochs: int = 5
    max_steps: int = -1
    accelerator: str = "auto"
    devices: int = 1
    precision: str = "auto"  # auto: bf16-mixed on GPU, 32 on CPU
    batch_size: int = 64
    max_tokens: Optional[int] = None  # token budget per batch; replaces batch_size when set
    gradient_clip_val: float = 1.0
    early_stopping_patience: int = 3
    val_check_interval: Any = 1.0
    limit_train_batches: Any = 1.0
    limit_val_batches: Any = 1.0
    limit_test_batches: Any = 1.0
    num_workers: int = 0
    deterministic: bool = False
    log_every_n_steps: int = 50
    enable_progress_bar: bool = True
    compile: bool = False  # torch.compile the model (its forward: teacher-forced training and evaluation)
    compile_backend: str = "inductor"
    compile_mode: Optional[str] = None  # null (default), reduce-overhead, max-autotune


@dataclass
class OptimConfig:
    lr: float = 1e-3
    weight_decay: float = 0.0
    scheduler: str = "linear"  # constant | linear | cosine (all after linear warm-up)
    warmup_ratio: float = 0.0


@dataclass
class WandbConfig:
    mode: Optional[str] = None  # online | offline | disabled; default $WANDB_MODE, else offline
    project: str = "attnbench"
    entity: Optional[str] = None
    tags: List[str] = field(default_factory=list)
    log_attention: bool = True


@dataclass
class RunConfig:
    seed: int = 1
    output_dir: str = "results/runs"
    data_dir: Optional[str] = None  # default $ATTNBENCH_DATA_DIR
    cache_dir: Optional[str] = None  # default $ATTNBENCH_CACHE_DIR, else ~/.cache/attnbench
    run_id: Optional[str] = None
    resume: Optional[str] = None  # auto: continue this config's unfinished run from its last checkpoint
    task: TaskConfig = field(default_factory=TaskConfig)
    attention: AttentionConfig = field(default_factory=AttentionConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    wandb: WandbConfig = field(default_factory=WandbConfig)


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

    cfg = OmegaConf.structured(RunConfig)
    sources: list[tuple[Path, dict]] = [(base_file, base)]  # each file and what it sets, for error messages
    try:
        cfg = OmegaConf.merge(cfg, base)
    except OmegaConfBaseException as err:
        raise ConfigError(_file_error(base_file, err)) from None
    for group in GROUPS:
        path, data = _group_file(root, group, choices[group])
        try:
            cfg = OmegaConf.merge(cfg, {group: data})
        except OmegaConfBaseException as err:
            raise ConfigError(_file_error(path, err)) from None
        if path is not None:
            sources.append((path, {group: data}))
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
        cfg = OmegaConf.merge(OmegaConf.structured(RunConfig), _read_yaml(path))
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
    hint = _closest(option, valid)
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
        hint = _closest(key, _all_keys(cfg))
        raise ConfigError(f"unknown config key '{key}'{hint}: run `attnbench config` to see all keys")
    value = _parse_value(raw)
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


def _closest(word: str, options: list[str]) -> str:
    match = difflib.get_close_matches(word, options, n=1, cutoff=0.5)
    if not match and "." in word:
        leaf = word.rsplit(".", 1)[1]
        match = [o for o in options if o.rsplit(".", 1)[-1] == leaf][:1]
    return f" (did you mean '{match[0]}'?)" if match else ""


def _omegaconf_message(err: OmegaConfBaseException) -> str:
    return str(err).strip().splitlines()[0]


def _fill_environment_defaults(cfg: DictConfig) -> None:
    if cfg.data_dir is None and os.environ.get("ATTNBENCH_DATA_DIR"):
        cfg.data_dir = os.environ["ATTNBENCH_DATA_DIR"]
    if cfg.cache_dir is None:
        cfg.cache_dir = os.environ.get("ATTNBENCH_CACHE_DIR") or str(Path.home() / ".cache" / "attnbench")
    if cfg.wandb.mode is None:
        cfg.wandb.mode = os.environ.get("WANDB_MODE") or "offline"


_CHOICES = {
    "task.family": ("classification", "seq2seq"),
    "task.source": ("auto", "local", "hub"),
    "task.scorer": ("bleu", "rouge"),
    "task.monitor_mode": ("min", "max"),
    "task.tokenizer.kind": ("wordlevel", "bpe"),
    "model.name": ("rnn", "transformer"),
    "model.cell": ("lstm", "gru"),
    "model.decoder_style": ("bahdanau", "luong"),
    "trainer.precision": ("auto", "32", "32-true", "16-mixed", "bf16-mixed", "bf16-true", "64"),
    "trainer.accelerator": ("auto", "cpu", "gpu", "cuda", "mps"),
    "trainer.compile_mode": ("None", "default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs"),
    "optim.scheduler": ("constant", "linear", "cosine"),
    "wandb.mode": ("online", "offline", "disabled"),
}

_POSITIVE = (
    "task.max_length", "task.tokenizer.vocab_size", "task.tokenizer.min_frequency", "attention.heads",
    "model.embed_dim", "model.hidden_dim", "model.num_layers", "model.ff_dim", "model.max_positions",
    "trainer.max_epochs", "trainer.devices", "trainer.batch_size", "trainer.log_every_n_steps", "optim.lr",
    "task.decoding.beam_size",
)
_PROBABILITIES = ("attention.dropout", "model.dropout", "optim.warmup_ratio", "task.label_smoothing")
_NON_NEGATIVE = (
    "task.decoding.length_penalty", "task.decoding.max_len_a", "task.decoding.max_len_b",
    "task.decoding.min_length", "task.decoding.no_repeat_ngram_size", "task.decoding.val_examples",
)
# Metrics whose direction is known: a monitor_mode against it would keep the worst checkpoint.
_HIGHER_IS_BETTER = ("accuracy", "f1", "bleu", "chrf", "rouge1", "rouge2", "rougeL", "rougeLsum")
_LOWER_IS_BETTER = ("loss", "ppl")
# Seq2seq metrics computed on decoded text: per epoch they exist only on the greedy validation slice.
_DECODED_METRICS = ("bleu", "chrf", "rouge1", "rouge2", "rougeL", "rougeLsum")


# Longest run id or sweep name: room for the suffixes their files get (".lock", ".<attempt>.log", ".<n>") within
# the 255 bytes that Linux and macOS file systems allow in one name.
MAX_NAME_BYTES = 240
# What numpy's and Lightning's seeding accept (Lightning replaces a seed outside it by a random one, silently).
SEED_RANGE = (0, 2**32 - 1)
_LIMITS = ("trainer.limit_train_batches", "trainer.limit_val_batches", "trainer.limit_test_batches")


def check_name(key: str, value: str) -> None:
    size = len(value.encode("utf-8"))
    if size > MAX_NAME_BYTES:
        raise ConfigError(f"{key}={value[:32]}... is {size} bytes long: it names files, and file names allow "
                          f"{MAX_NAME_BYTES} here; pass a shorter {key}")


def check_run_id(run_id: str) -> None:
    check_name("run_id", run_id)


def _floats(node: Any, prefix: str = "") -> Iterator[tuple[str, float]]:
    if isinstance(node, dict):
        for key, value in node.items():
            yield from _floats(value, f"{prefix}{key}.")
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from _floats(value, f"{prefix}{i}.")
    elif isinstance(node, float):
        yield prefix[:-1], node


def _check_batches(key: str, value: Any) -> None:
    """A Lightning batch count: a fraction of the loader in (0, 1] or a whole number of batches >= 1."""
    ok = not isinstance(value, bool) and (
        (isinstance(value, int) and value >= 1) or (isinstance(value, float) and 0.0 < value <= 1.0))
    if not ok:
        raise ConfigError(f"{key}={value!r} must be a fraction of the batches in (0, 1] (e.g. 0.5) or a number of "
                          f"batches >= 1 (e.g. 20)")


def validate(cfg: DictConfig) -> None:
    """Refuse impossible settings before any work starts."""
    for key, value in _floats(OmegaConf.to_container(cfg, resolve=True)):
        if not math.isfinite(value):
            raise ConfigError(f"{key}={value} is not a finite number: pass a real value")
    if not SEED_RANGE[0] <= cfg.seed <= SEED_RANGE[1]:
        raise ConfigError(f"seed={cfg.seed} is outside {SEED_RANGE[0]}..{SEED_RANGE[1]}, the range numpy and torch "
                          "seed from: pass e.g. seed=1")
    for key in _LIMITS:
        _check_batches(key, OmegaConf.select(cfg, key))
    _check_batches("trainer.val_check_interval", cfg.trainer.val_check_interval)
    if cfg.trainer.max_steps != -1 and cfg.trainer.max_steps <= 0:
        raise ConfigError(f"trainer.max_steps={cfg.trainer.max_steps} must be positive, or -1 (no step limit)")
    if cfg.trainer.gradient_clip_val < 0 or cfg.optim.weight_decay < 0:
        raise ConfigError("trainer.gradient_clip_val and optim.weight_decay must be >= 0 (0: off)")
    if cfg.run_id is not None:
        check_run_id(cfg.run_id)
    for key, allowed in _CHOICES.items():
        value = OmegaConf.select(cfg, key)
        if str(value) not in allowed:
            hint = _closest(str(value), list(allowed))
            raise ConfigError(f"{key}={value} is not allowed{hint}: choose one of {', '.join(allowed)}")
    for key in _POSITIVE:
        value = OmegaConf.select(cfg, key)
        if value is None or value <= 0:
            raise ConfigError(f"{key}={value} must be positive (> 0): pass a larger value")
    for key in _PROBABILITIES:
        value = OmegaConf.select(cfg, key)
        if not 0.0 <= value < 1.0:
            raise ConfigError(f"{key}={value} must be in [0, 1): pass e.g. {key}=0.1")
    for key in _NON_NEGATIVE:
        value = OmegaConf.select(cfg, key)
        if value is None or value < 0:
            raise ConfigError(f"{key}={value} must be >= 0: pass e.g. {key}=0")
    if cfg.trainer.max_tokens is not None and cfg.trainer.max_tokens < cfg.task.max_length:
        raise ConfigError(
            f"trainer.max_tokens={cfg.trainer.max_tokens} is below task.max_length={cfg.task.max_length}: "
            "a single example would not fit; raise trainer.max_tokens or lower task.max_length"
        )
    _validate_seq2seq(cfg)
    if cfg.trainer.num_workers < 0 or cfg.trainer.early_stopping_patience < 0:
        raise ConfigError("trainer.num_workers and trainer.early_stopping_patience must be >= 0")
    if cfg.task.probes < 0:
        raise ConfigError(f"task.probes={cfg.task.probes} must be >= 0")
    for split in ("train", "validation", "test"):
        limit = cfg.task.limits[split]
        if limit is not None and limit <= 0:
            raise ConfigError(f"task.limits.{split}={limit} must be positive or null (all examples)")
    if cfg.task.family == "classification" and len(cfg.task.labels) < 2:
        raise ConfigError("task.labels needs at least two label names for a classification task")
    _validate_attention(cfg)
    if cfg.trainer.compile:
        import torch._dynamo

        if cfg.trainer.compile_backend not in torch._dynamo.list_backends(exclude_tags=()):
            raise ConfigError(f"trainer.compile_backend={cfg.trainer.compile_backend} is not a torch.compile backend: "
                              f"e.g. {', '.join(torch._dynamo.list_backends())}")
    if cfg.resume is not None and cfg.resume != "auto":
        raise ConfigError(f"resume={cfg.resume}: use resume=auto (with the run's overrides), or resume=<run folder> alone")
    if cfg.run_id is not None and (not cfg.run_id or "/" in cfg.run_id or cfg.run_id.startswith(".")):
        raise ConfigError(f"run_id={cfg.run_id!r} must be a plain folder name (no '/', not starting with '.')")


def check_machine(cfg: DictConfig) -> None:
    """Refuse what this machine cannot run (an accelerator it lacks, more GPUs than it has) before any work starts.
    Apart from validate(): a saved config of a GPU run is still a valid config on a laptop."""
    import torch

    accelerator, devices = cfg.trainer.accelerator, cfg.trainer.devices
    if accelerator in ("gpu", "cuda"):
        found = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if found == 0:
            raise ConfigError(f"trainer.accelerator={accelerator}, but this machine has no CUDA GPU that torch "
                              f"{torch.__version__} can use: pass trainer=default (CPU) or trainer.accelerator=cpu")
        if devices > found:
            raise ConfigError(f"trainer.devices={devices}, but this machine has {found} GPU(s): pass "
                              f"trainer.devices={found} or fewer")
    if accelerator == "mps" and not torch.backends.mps.is_available():
        raise ConfigError("trainer.accelerator=mps, but this machine has no Apple GPU: pass trainer.accelerator=cpu")


def _validate_seq2seq(cfg: DictConfig) -> None:
    task = cfg.task
    target = task.max_target_length
    if target is not None and target < 2:
        raise ConfigError(
            f"task.max_target_length={target} must be >= 2 (room for BOS/EOS) or null (= task.max_length)"
        )
    longest = target_length(cfg)
    if cfg.trainer.max_tokens is not None and cfg.trainer.max_tokens < longest:
        raise ConfigError(
            f"trainer.max_tokens={cfg.trainer.max_tokens} is below task.max_target_length={longest}: "
            "a single example would not fit; raise trainer.max_tokens or lower task.max_target_length"
        )
    if task.decoding.max_len_a == 0 and task.decoding.max_len_b == 0:
        raise ConfigError("task.decoding.max_len_a and task.decoding.max_len_b are both 0: nothing could be generated; "
                          "pass e.g. task.decoding.max_len_b=100")
    if task.decoding.max_len_a == 0 and task.decoding.min_length >= task.decoding.max_len_b:
        raise ConfigError(
            f"task.decoding.min_length={task.decoding.min_length} is not below task.decoding.max_len_b="
            f"{task.decoding.max_len_b}: no hypothesis could end; lower min_length or raise max_len_b"
        )
    if task.monitor in _HIGHER_IS_BETTER and task.monitor_mode != "max":
        raise ConfigError(f"task.monitor={task.monitor} is better when higher: pass task.monitor_mode=max")
    if task.monitor in _LOWER_IS_BETTER and task.monitor_mode != "min":
        raise ConfigError(f"task.monitor={task.monitor} is better when lower: pass task.monitor_mode=min")
    scored = {"bleu": ("bleu", "chrf"), "rouge": ("rouge1", "rouge2", "rougeL", "rougeLsum")}[task.scorer]
    if task.family == "seq2seq" and task.monitor in _DECODED_METRICS and task.monitor not in scored:
        raise ConfigError(
            f"task.monitor={task.monitor} is not produced by task.scorer={task.scorer} (it gives {', '.join(scored)}): "
            "change task.monitor or task.scorer"
        )
    if task.family == "seq2seq" and task.monitor in _DECODED_METRICS and task.decoding.val_examples == 0:
        raise ConfigError(
            f"task.monitor={task.monitor} needs decoded validation examples, but task.decoding.val_examples=0: "
            "pass task.decoding.val_examples=256 or task.monitor=loss task.monitor_mode=min"
        )


# Seq2seq metrics of the greedy-decoded validation slice: logged as val_slice/<metric>, recorded as metrics.val_slice.
VAL_SLICE = "val_slice"


def monitor_key(cfg: DictConfig) -> str:
    """The logged name of the validation metric that picks checkpoints and stops early.

    Seq2seq metrics of decoded text exist per epoch only for the greedy slice of `task.decoding.val_examples`
    validation examples, so they are logged as `val_slice/<metric>`, never as if they covered the split.
    """
    task = cfg.task
    if task.family == "seq2seq" and task.monitor in _DECODED_METRICS:
        return f"{VAL_SLICE}/{task.monitor}"
    return f"val/{task.monitor}"


def target_length(cfg: DictConfig) -> int:
    """Seq2seq target limit in tokens, BOS/EOS included: task.max_target_length, else task.max_length."""
    target = cfg.task.max_target_length
    return cfg.task.max_length if target is None else target


def _validate_attention(cfg: DictConfig) -> None:
    att = cfg.attention
    if att.name == "custom" and not att.impl:
        raise ConfigError("attention=custom needs attention.impl=package.module:ClassName")
    if att.impl and ":" not in att.impl:
        raise ConfigError(f"attention.impl={att.impl} must look like package.module:ClassName")
    _check_resolvable("attention.impl", att.impl if att.name == "custom" else att.name)
    if att.name == "multihead":
        _check_resolvable("attention.score", att.score)
    width = attention_width(cfg)
    if uses_heads(cfg) and width % att.heads:
        raise ConfigError(
            f"d_model {width} is not divisible by attention.heads={att.heads}: choose heads that divide {width} "
            f"(or change {'model.embed_dim' if cfg.model.name == 'transformer' else 'model.hidden_dim'})"
        )
    if att.heads > 1 and not uses_heads(cfg):
        raise ConfigError(
            f"attention.heads={att.heads} needs multi-head attention: use attention=multihead attention.score={att.name}"
        )


def _check_resolvable(key: str, name: str) -> None:
    """Import the variant's class now, so a typo fails before data is loaded."""
    from attnbench.attention import resolve_attention

    try:
        resolve_attention(name)
    except (ValueError, ImportError, AttributeError, TypeError) as err:
        raise ConfigError(f"{key}: {err}") from None


def uses_heads(cfg: DictConfig) -> bool:
    """Whether the attention runs through MultiHead projections (always in a transformer layer)."""
    return cfg.attention.name == "multihead" or cfg.model.name == "transformer"


def attention_width(cfg: DictConfig) -> int:
    """The model width the attention sees: d_model for a transformer, 2*hidden for a BiRNN."""
    return cfg.model.embed_dim if cfg.model.name == "transformer" else 2 * cfg.model.hidden_dim


# Settings that cannot change a run's result: where it is written and what it is called, where data and caches
# live, how it logs and reports progress, how many loader processes feed it (the batches and their order come
# from the sampler in the main process). config_hash leaves them out, so that the sweep (is this cell done?),
# resume (is this folder this configuration?) and the leaderboard (which settings split rows) share one answer
# to "the same configuration". A key names its whole block (wandb: every wandb.* key).
NOT_RESULT_KEYS = ("output_dir", "data_dir", "cache_dir", "run_id", "resume", "wandb", "trainer.log_every_n_steps",
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
