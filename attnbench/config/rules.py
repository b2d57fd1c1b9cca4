"""The rules a composed config must satisfy, and the values derived from it that the rest of attnbench reads.

`validate` refuses impossible settings (ranges, allowed values, cross-field combinations) before any work starts,
in a fixed order, so that the first broken setting is the one reported; `check_machine` refuses, apart from it,
what this machine cannot run (task.monitor and trainer.early_stopping_monitor are checked in `monitors`).
`target_length`, `uses_heads` and `attention_width` derive one value each from a config, for validation and for the
modules that build the run alike.
"""

from __future__ import annotations

import math
from typing import Any, Iterator

from omegaconf import DictConfig, OmegaConf

from attnbench.config import text_steps
from attnbench.config.families import FAMILIES
from attnbench.config.monitors import validate_monitors
from attnbench.errors import ConfigError, did_you_mean

# What validate checks key by key, in this order (schema.py names each rule beside its field).
_CHOICES = {
    "task.family": (),  # the family table's names (config/families.py), looked up when validating
    "task.source": ("auto", "local", "hub"),
    "task.scorer": ("bleu", "rouge"),
    "task.monitor_mode": ("min", "max"),
    "task.tokenizer.kind": ("wordlevel", "bpe"),
    "model.name": (),  # the backbone registry's names (models/backbones.py), looked up when validating
    "model.cell": ("lstm", "gru"),
    "model.decoder_style": ("bahdanau", "luong"),
    "trainer.precision": ("auto", "32", "32-true", "16-mixed", "bf16-mixed", "bf16-true", "64"),
    "trainer.accelerator": ("auto", "cpu", "gpu", "cuda", "mps"),
    "trainer.compile_mode": ("None", "default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs"),
    "optim.scheduler": ("constant", "linear", "cosine"),
    "wandb.mode": ("online", "offline", "disabled"),
}

# The choices that are a registry's names, read when validating (so an entry added at run time counts).
_REGISTRIES = {"model.name": lambda: _backbones(), "task.family": lambda: FAMILIES}

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
    scale = cfg.model.tied_output_scale
    if scale is not None and not scale > 0:
        raise ConfigError(f"model.tied_output_scale={scale} must be positive, or null (d_model^-1/2)")
    if cfg.trainer.gradient_clip_val < 0 or cfg.optim.weight_decay < 0:
        raise ConfigError("trainer.gradient_clip_val and optim.weight_decay must be >= 0 (0: off)")
    if cfg.run_id is not None:
        check_run_id(cfg.run_id)
    for key, allowed in _CHOICES.items():
        if key in _REGISTRIES:
            allowed = tuple(_REGISTRIES[key]())
        value = OmegaConf.select(cfg, key)
        if str(value) not in allowed:
            hint = did_you_mean(str(value), list(allowed))
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
    _validate_columns(cfg)
    _validate_text_steps(cfg)
    _validate_seq2seq(cfg)
    if cfg.trainer.num_workers < 0 or cfg.trainer.early_stopping_patience < 0:
        raise ConfigError("trainer.num_workers and trainer.early_stopping_patience must be >= 0")
    validate_monitors(cfg)
    if cfg.task.probes < 0:
        raise ConfigError(f"task.probes={cfg.task.probes} must be >= 0")
    for split in ("train", "validation", "test"):
        limit = cfg.task.limits[split]
        if limit is not None and limit <= 0:
            raise ConfigError(f"task.limits.{split}={limit} must be positive or null (all examples)")
    if cfg.explain and not (FAMILIES[cfg.task.family].labelled or FAMILIES[cfg.task.family].decodes):
        raise ConfigError(f"explain=true covers classification and seq2seq tasks; task.family={cfg.task.family} is "
                          "neither: drop it")
    if FAMILIES[cfg.task.family].labelled and len(cfg.task.labels) < 2:
        raise ConfigError("task.labels needs at least two label names for a classification task")
    _validate_attention(cfg)
    if cfg.trainer.compile:
        # Lazy: torch takes seconds to import, and composing or printing a config must not need it.
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
    # Lazy: torch takes seconds to import, and composing or printing a config must not need it.
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


def _validate_columns(cfg: DictConfig) -> None:
    """Each column map value is one column name; the family's reference field may also list several, one each."""
    several = FAMILIES[cfg.task.family].references
    for source in ("local", "hub"):
        block = OmegaConf.select(cfg, f"task.{source}.columns") or {}
        for name, value in OmegaConf.to_container(block, resolve=True).items() if block else ():
            key = f"task.{source}.columns.{name}"
            if isinstance(value, list):
                if name != several:
                    allowed = f"only {several} may list several columns" if several else "none may list several"
                    raise ConfigError(f"{key}={value} is a list, but {allowed}: map {name} to one column, "
                                      f"e.g. {key}={value[0] if value else name}")
                if not value:
                    raise ConfigError(f"{key}=[] lists no columns: name at least one reference column, e.g. "
                                      f"{key}=[ref1, ref2]")
                if not all(isinstance(column, str) and column for column in value):
                    raise ConfigError(f"{key}={value} must list column names (non-empty strings): fix the list")
                if len(set(value)) != len(value):
                    raise ConfigError(f"{key}={value} names a column twice: list each reference column once")
            elif isinstance(value, dict) or value is None or value == "":
                raise ConfigError(f"{key}={value!r} must be a column name (a non-empty string): fix task.{source}."
                                  "columns")


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
    if att.head_dim is not None:
        if att.head_dim < 1:
            raise ConfigError(f"attention.head_dim={att.head_dim} must be > 0 (or null for the width / heads)")
        if not uses_heads(cfg):
            raise ConfigError(f"attention.head_dim={att.head_dim} needs projected attention: use "
                              f"attention=multihead attention.score={att.name}, or a transformer")
    elif uses_heads(cfg) and width % att.heads:
        raise ConfigError(
            f"d_model {width} is not divisible by attention.heads={att.heads}: choose heads that divide {width} "
            f"(or change {_backbones()[cfg.model.name].width_key}, or set attention.head_dim)"
        )
    if att.heads > 1 and not uses_heads(cfg):
        raise ConfigError(
            f"attention.heads={att.heads} needs multi-head attention: use attention=multihead attention.score={att.name}"
        )


def _check_resolvable(key: str, name: str) -> None:
    """Import the variant's class now, so a typo fails before data is loaded."""
    # Lazy: the attention registry imports torch, which composing or printing a config must not need.
    from attnbench.attention import resolve_attention

    try:
        resolve_attention(name)
    except (ValueError, ImportError, AttributeError, TypeError) as err:
        raise ConfigError(f"{key}: {err}") from None


def _backbones() -> dict:
    # Imported when validating, not with the config package: models/ imports torch, and composing or printing a
    # config does not need it (tests/test_config_split.py). models/ does not import config: no cycle.
    from attnbench.models.backbones import BACKBONES

    return BACKBONES


def uses_heads(cfg: DictConfig) -> bool:
    """Whether the attention runs through MultiHead projections (always in a projected backbone's layers)."""
    return cfg.attention.name == "multihead" or _backbones()[cfg.model.name].projected


def attention_width(cfg: DictConfig) -> int:
    """The model width the attention sees (the backbone's `width`: d_model for a transformer, 2*hidden for a BiRNN)."""
    return _backbones()[cfg.model.name].width(OmegaConf.to_container(cfg.model))


def _validate_text_steps(cfg: DictConfig) -> None:
    """task.tokenizer.normalizers and pre_tokenizers list known steps with valid arguments (config/text_steps.py);
    bpe lists only lossless pre-tokenizers; with task.tokenizer.lowercase=false no listed step lowercases."""
    tok = cfg.task.tokenizer
    for name, table in (("normalizers", text_steps.NORMALIZERS), ("pre_tokenizers", text_steps.PRE_TOKENIZERS)):
        for i, step in enumerate(OmegaConf.to_container(tok[name], resolve=True), 1):
            _check_text_step(f"task.tokenizer.{name}", i, step, table)
    if tok.kind == "bpe":
        pre = text_steps.canonical(text_steps.PRE_TOKENIZERS, OmegaConf.to_container(tok.pre_tokenizers))
        for i, step in enumerate(pre, 1):
            if not text_steps.lossless(step):
                allowed = ", ".join(n for n, spec in text_steps.PRE_TOKENIZERS.items() if spec.lossless)
                raise ConfigError(f"task.tokenizer.pre_tokenizers={next(iter(step))} (step {i}) drops characters, "
                                  "which breaks bpe's exact detokenisation (decode(encode(x)) == x): with kind=bpe "
                                  f"list only {allowed} (behavior other than removed), or use kind=wordlevel")
    norms = text_steps.canonical(text_steps.NORMALIZERS, OmegaConf.to_container(tok.normalizers))
    for i, step in enumerate(norms, 1):
        if not tok.lowercase and text_steps.lowercases([step]):
            raise ConfigError(f"task.tokenizer.normalizers={next(iter(step))} (step {i}) lowercases the text, but "
                              "task.tokenizer.lowercase=false: drop the step (bert: give it lowercase: false) or pass "
                              "task.tokenizer.lowercase=true")


def _check_text_step(key: str, i: int, step: Any, table: dict) -> None:
    kind = key.rsplit(".", 1)[1][:-1].replace("_", "-")  # normalizer, pre-tokenizer
    parts = text_steps.step_parts(step)
    if parts is None:
        raise ConfigError(f"{key}={step!r} (step {i}) is not a {kind} name or a one-key mapping "
                          f"{{name: {{argument: value}}}}: list e.g. {next(iter(table))}")
    name, args = parts
    where = f"{key}={name} (step {i})"
    if name not in table:
        raise ConfigError(f"{where} is not a {kind}{did_you_mean(name, list(table))}: choose one of "
                          f"{', '.join(table)}")
    spec = table[name]
    if not isinstance(args, dict):
        raise ConfigError(f"{where}: its arguments must be a mapping, e.g. {{{name}: {{argument: value}}}}")
    for arg in args:
        if arg not in spec.args:
            takes = f"it takes {', '.join(spec.args)}" if spec.args else "it takes none: list it by name alone"
            raise ConfigError(f"{where} has no argument '{arg}'{did_you_mean(str(arg), list(spec.args))}: {takes}")
    for arg, rule in spec.args.items():
        if arg not in args and rule.default is text_steps.REQUIRED:
            raise ConfigError(f"{where} needs the argument '{arg}': list {{{name}: {{{arg}: ...}}}}")
        problem = text_steps.arg_problem(rule, args[arg]) if arg in args else None
        if problem:
            raise ConfigError(f"{where}: {arg}={args[arg]!r} {problem}: fix the value of {arg}")
