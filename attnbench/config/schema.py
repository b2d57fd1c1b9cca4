"""The typed schema of a run config: one dataclass per block, each field with its default and, beside it, the rule
that `rules.validate` enforces (`a | b`: the allowed values; `> 0`, `>= 0`, `[0, 1)`: the allowed range).

`OmegaConf.structured(RunConfig)` turns these into the config that YAML files and overrides are merged onto, so an
unknown key or a value of the wrong type is refused by the merge itself.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional

from omegaconf import MISSING


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
    vocab_size: int = 20000  # > 0
    min_frequency: int = 1  # > 0
    lowercase: bool = True
    shared: bool = True  # seq2seq: one vocabulary for source and target (false: one tokenizer per side)


@dataclass
class SplitLimits:
    """Use only the first N examples of a split (smoke runs, tests); null = all, else > 0."""

    train: Optional[int] = None
    validation: Optional[int] = None
    test: Optional[int] = None


@dataclass
class DecodingConfig:
    """Seq2seq inference: beam search for evaluation, greedy decoding for the cheap per-epoch metric."""

    beam_size: int = 5  # > 0
    length_penalty: float = 1.0  # >= 0; GNMT: log P / ((5 + length) / 6) ** length_penalty (0: raw log-probability)
    # >= 0 each, not both 0: generate at most max_len_a * source_length + max_len_b tokens
    max_len_a: float = 1.5
    max_len_b: int = 10
    min_length: int = 0  # >= 0; EOS is forbidden before this many tokens (below max_len_b when max_len_a is 0)
    no_repeat_ngram_size: int = 0  # >= 0; 0: off; n: no n-gram may occur twice in a hypothesis
    val_examples: int = 256  # >= 0; greedy decoding of the first N validation examples each epoch (0 = off)


@dataclass
class TaskConfig:
    name: str = MISSING
    family: str = "classification"  # a config/families.py FAMILIES name: classification | seq2seq
    dataset: str = MISSING
    source: str = "auto"  # auto (local when data_dir is set, else hub) | local | hub
    hub: HubSourceConfig = field(default_factory=HubSourceConfig)
    local: LocalSourceConfig = field(default_factory=LocalSourceConfig)
    labels: List[str] = field(default_factory=list)  # classification: at least two
    max_length: int = 128  # > 0; tokens per input (seq2seq: per source)
    max_target_length: Optional[int] = None  # >= 2 or null (= max_length); seq2seq: tokens per target incl. BOS/EOS
    label_smoothing: float = 0.0  # [0, 1); seq2seq cross-entropy smoothing
    tokenizer: TokenizerConfig = field(default_factory=TokenizerConfig)
    limits: SplitLimits = field(default_factory=SplitLimits)
    scorer: str = "bleu"  # seq2seq quality metrics: bleu (sacreBLEU BLEU + chrF) | rouge (rouge-score)
    # Validation metric for checkpointing and early stopping: accuracy | f1 | loss (classification); bleu | chrf |
    # rouge1 | rouge2 | rougeL | rougeLsum (seq2seq, on the greedy decoding.val_examples slice; one that `scorer`
    # gives, with decoding.val_examples > 0) | loss.
    monitor: str = "accuracy"
    monitor_mode: str = "max"  # min | max; max for accuracy, f1 and the decoded metrics, min for loss and ppl
    probes: int = 4  # >= 0; validation examples whose attention maps are logged every epoch
    decoding: DecodingConfig = field(default_factory=DecodingConfig)


@dataclass
class AttentionConfig:
    name: str = "additive"  # registry name, entry-point plugin, or `custom` with impl
    impl: Optional[str] = None  # package.module:ClassName for attention=custom
    heads: int = 1  # > 0, divides the attention width; > 1 only with multi-head attention
    score: str = "scaled_dot"  # score function inside multihead (a registry name)
    dropout: float = 0.0  # [0, 1)
    hidden_dim: Optional[int] = None  # additive attention's hidden size (default: key dim)
    kwargs: Dict[str, Any] = field(default_factory=dict)  # extra constructor arguments


@dataclass
class ModelConfig:
    name: str = "rnn"  # rnn | transformer
    cell: str = "lstm"  # rnn: lstm | gru
    embed_dim: int = 300  # > 0; transformer: d_model
    hidden_dim: int = 128  # > 0; rnn: per direction
    num_layers: int = 1  # > 0
    dropout: float = 0.3  # [0, 1)
    ff_dim: int = 512  # > 0; transformer feed-forward size
    max_positions: int = 512  # > 0; transformer learned positions
    decoder_style: str = "bahdanau"  # seq2seq rnn: bahdanau (attend before the cell) | luong (after)
    tie_embeddings: bool = False  # seq2seq: decoder input and output embeddings share weights


@dataclass
class TrainerConfig:
    max_epochs: int = 5  # > 0
    max_steps: int = -1  # > 0, or -1: no step limit
    accelerator: str = "auto"  # auto | cpu | gpu | cuda | mps (check_machine: one this machine has)
    devices: int = 1  # > 0 (check_machine: no more GPUs than this machine has)
    # auto (bf16-mixed on GPU, 32 on CPU) | 32 | 32-true | 16-mixed | bf16-mixed | bf16-true | 64
    precision: str = "auto"
    batch_size: int = 64  # > 0
    max_tokens: Optional[int] = None  # token budget per batch, >= the longest example; replaces batch_size when set
    gradient_clip_val: float = 1.0  # >= 0 (0: off)
    early_stopping_patience: int = 3  # >= 0
    # Lightning batch counts: a fraction of the loader in (0, 1] or a whole number of batches >= 1.
    val_check_interval: Any = 1.0
    limit_train_batches: Any = 1.0
    limit_val_batches: Any = 1.0
    limit_test_batches: Any = 1.0
    num_workers: int = 0  # >= 0
    deterministic: bool = False
    log_every_n_steps: int = 50  # > 0
    enable_progress_bar: bool = True
    compile: bool = False  # torch.compile the model (its forward: teacher-forced training and evaluation)
    compile_backend: str = "inductor"  # with compile: one of torch._dynamo.list_backends()
    # null (default) | default | reduce-overhead | max-autotune | max-autotune-no-cudagraphs
    compile_mode: Optional[str] = None


@dataclass
class OptimConfig:
    lr: float = 1e-3  # > 0
    weight_decay: float = 0.0  # >= 0 (0: off)
    scheduler: str = "linear"  # constant | linear | cosine (all after linear warm-up)
    warmup_ratio: float = 0.0  # [0, 1)


@dataclass
class WandbConfig:
    mode: Optional[str] = None  # online | offline | disabled; default $WANDB_MODE, else offline
    project: str = "attnbench"
    entity: Optional[str] = None
    tags: List[str] = field(default_factory=list)
    log_attention: bool = True


@dataclass
class RunConfig:
    """A whole run; every float anywhere in it must be finite."""

    seed: int = 1  # in rules.SEED_RANGE
    output_dir: str = "results/runs"
    data_dir: Optional[str] = None  # default $ATTNBENCH_DATA_DIR
    cache_dir: Optional[str] = None  # default $ATTNBENCH_CACHE_DIR, else ~/.cache/attnbench
    run_id: Optional[str] = None  # a plain folder name (no '/', not starting with '.'), <= rules.MAX_NAME_BYTES
    resume: Optional[str] = None  # null | auto: continue this config's unfinished run from its last checkpoint
    task: TaskConfig = field(default_factory=TaskConfig)
    attention: AttentionConfig = field(default_factory=AttentionConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    wandb: WandbConfig = field(default_factory=WandbConfig)
