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

    split: str = "validation"  # the canonical split the held-out rows become
    size: int = 0  # >= 0; rows held out of the hub's train split (0: off)
    seed: int = 0  # fixed by the data, not the run's seed: every run of the task gets the same split


@dataclass
class HubSourceConfig:
    path: str = MISSING  # the hub dataset, e.g. stanfordnlp/sst2 (load_dataset's path)
    name: Optional[str] = None  # the hub configuration, e.g. de-en (load_dataset's name)
    revision: Optional[str] = None  # a git revision of the hub dataset to pin (null: the default branch)
    # canonical field -> hub column; tgt may name a list-valued column or a list of columns: several references per
    # example, the first one the training target (rules.validate: lists for tgt only, never empty)
    columns: Dict[str, Any] = field(default_factory=dict)
    splits: Dict[str, str] = field(default_factory=dict)  # canonical split -> hub split
    holdout: HoldoutConfig = field(default_factory=HoldoutConfig)  # a split carved out of the hub's train split


@dataclass
class LocalSourceConfig:
    dataset: str = MISSING  # the folder <data_dir>/<task.name>/<local.dataset>/ holding <split>.jsonl[.gz] files
    # canonical field -> jsonl key; tgt may name a list-valued key or a list of keys: several references per example,
    # the first one the training target (rules.validate: lists for tgt only, never empty)
    columns: Dict[str, Any] = field(default_factory=dict)
    splits: Dict[str, str] = field(default_factory=dict)  # canonical split -> file stem


@dataclass
class TokenizerConfig:
    kind: str = "wordlevel"  # wordlevel (whole words, [UNK] for unseen ones) | bpe (subwords, exact detokenisation)
    vocab_size: int = 20000  # > 0; the largest vocabulary, special tokens included
    min_frequency: int = 1  # > 0; how often a token must occur in the train split to enter the vocabulary
    lowercase: bool = True  # lowercase every text before tokenizing (predictions and references alike)
    normalizers: List[Any] = field(default_factory=list)  # text_steps.py names; rewrite the text, in order
    pre_tokenizers: List[Any] = field(default_factory=list)  # text_steps.py names (bpe: lossless); split into words
    shared: bool = True  # seq2seq: one vocabulary for source and target (false: one tokenizer per side)


@dataclass
class SplitLimits:
    """Use only the first N examples of a split (smoke runs, tests); null = all, else > 0."""

    train: Optional[int] = None  # null or > 0; train examples used
    validation: Optional[int] = None  # null or > 0; validation examples used
    test: Optional[int] = None  # null or > 0; test examples used


@dataclass
class DecodingConfig:
    """Seq2seq inference: beam search for evaluation, greedy decoding for the cheap per-epoch metric."""

    beam_size: int = 5  # > 0; beams of the test-set decoding (1: greedy)
    length_penalty: float = 1.0  # >= 0; GNMT: log P / ((5 + length) / 6) ** length_penalty (0: raw log-probability)
    # >= 0 each, not both 0: generate at most max_len_a * source_length + max_len_b tokens
    max_len_a: float = 1.5
    max_len_b: int = 10  # >= 0; the constant term of that limit
    min_length: int = 0  # >= 0; EOS is forbidden before this many tokens (below max_len_b when max_len_a is 0)
    no_repeat_ngram_size: int = 0  # >= 0; 0: off; n: no n-gram may occur twice in a hypothesis
    val_examples: int = 256  # >= 0; greedy decoding of the first N validation examples each epoch (0 = off)


@dataclass
class TaskConfig:
    name: str = MISSING  # the task, as records and tables name it, and the folder under data_dir (not task=)
    family: str = "classification"  # what kind of task (config/families.py FAMILIES): classification | seq2seq
    dataset: str = MISSING  # the dataset's name in records and tables, e.g. sst2 (local.dataset: its folder)
    source: str = "auto"  # auto (local when data_dir is set, else hub) | local | hub
    hub: HubSourceConfig = field(default_factory=HubSourceConfig)  # where the data is on the Hugging Face hub
    local: LocalSourceConfig = field(default_factory=LocalSourceConfig)  # where the data is under data_dir
    labels: List[str] = field(default_factory=list)  # at least two; label names, index i = label i in the data
    max_length: int = 128  # > 0; tokens per input (seq2seq: per source)
    max_target_length: Optional[int] = None  # >= 2 or null (= max_length); seq2seq: tokens per target incl. BOS/EOS
    label_smoothing: float = 0.0  # [0, 1); seq2seq cross-entropy smoothing
    tokenizer: TokenizerConfig = field(default_factory=TokenizerConfig)  # trained on the train split, cached
    limits: SplitLimits = field(default_factory=SplitLimits)  # null or > 0; the first N examples of a split
    scorer: str = "bleu"  # seq2seq quality metrics: bleu (sacreBLEU BLEU + chrF) | rouge (rouge-score)
    # Validation metric for checkpointing and early stopping: accuracy | f1 | loss (classification); bleu | chrf |
    # rouge1 | rouge2 | rougeL | rougeLsum (seq2seq, on the greedy decoding.val_examples slice; one that `scorer`
    # gives, with decoding.val_examples > 0) | loss.
    monitor: str = "accuracy"
    monitor_mode: str = "max"  # min | max; max for accuracy, f1 and the decoded metrics, min for loss and ppl
    probes: int = 4  # >= 0; validation examples whose attention maps are logged every epoch
    decoding: DecodingConfig = field(default_factory=DecodingConfig)  # seq2seq inference settings


@dataclass
class AttentionConfig:
    name: str = "additive"  # the variant: registry name, entry-point plugin, or `custom` with impl
    impl: Optional[str] = None  # package.module:ClassName for attention=custom
    heads: int = 1  # > 0, divides the attention width; > 1 only with multi-head attention
    # > 0 or null; the width of each head (d_k = d_v) inside MultiHead's projections; null: width // heads. Set it to
    # vary d_k at a fixed d_model (the scaling ablation); projected attention only (a transformer, or multihead).
    head_dim: Optional[int] = None
    score: str = "scaled_dot"  # score function inside multihead (a registry name)
    dropout: float = 0.0  # [0, 1); dropout on the attention weights
    hidden_dim: Optional[int] = None  # additive attention's hidden size (default: key dim)
    kwargs: Dict[str, Any] = field(default_factory=dict)  # extra constructor arguments


@dataclass
class ModelConfig:
    name: str = "rnn"  # the backbone (models/backbones.py BACKBONES): rnn | transformer
    cell: str = "lstm"  # rnn: lstm | gru
    embed_dim: int = 300  # > 0; transformer: d_model
    hidden_dim: int = 128  # > 0; rnn: per direction
    num_layers: int = 1  # > 0; encoder (and decoder) layers
    dropout: float = 0.3  # [0, 1); dropout on embeddings and between layers
    ff_dim: int = 512  # > 0; transformer feed-forward size
    max_positions: int = 512  # > 0; transformer learned positions
    decoder_style: str = "bahdanau"  # seq2seq rnn: bahdanau (attend before the cell) | luong (after)
    tie_embeddings: bool = False  # seq2seq: decoder input and output embeddings share weights
    # seq2seq transformer, tied: the decoder's features are multiplied by this before the tied output layer;
    # None: d_model^-1/2 (T5's rescaling, Raffel et al. 2020); > 0 otherwise (1.0: fairseq's, no rescaling)
    tied_output_scale: Optional[float] = None


@dataclass
class TrainerConfig:
    max_epochs: int = 5  # > 0; passes over the train split at most
    max_steps: int = -1  # > 0, or -1: no step limit
    accelerator: str = "auto"  # auto | cpu | gpu | cuda | mps (check_machine: one this machine has)
    devices: int = 1  # > 0 (check_machine: no more GPUs than this machine has)
    # auto (bf16-mixed on GPU, 32 on CPU) | 32 | 32-true | 16-mixed | bf16-mixed | bf16-true | 64
    precision: str = "auto"
    batch_size: int = 64  # > 0; examples per batch (length-bucketed)
    max_tokens: Optional[int] = None  # token budget per batch, >= the longest example; replaces batch_size when set
    gradient_clip_val: float = 1.0  # >= 0 (0: off)
    early_stopping_patience: int = 3  # >= 0; validations without improvement before stopping (0: never stop early)
    # null: task.monitor, the metric that picks the checkpoint; else another validation metric the run logs (loss,
    # ppl; accuracy or f1 for classification; one of task.scorer's on the decoded slice), its direction from the
    # metric registry. A seq2seq run may stop on loss while BLEU still picks the checkpoint: the greedy slice
    # BLEU dips by points from one epoch to the next while the loss still falls (README: the CPU protocol).
    early_stopping_monitor: Optional[str] = None
    # Lightning batch counts: a fraction of the loader in (0, 1] or a whole number of batches >= 1.
    val_check_interval: Any = 1.0
    limit_train_batches: Any = 1.0  # batches of the train split per epoch: a fraction in (0, 1] or a count >= 1
    limit_val_batches: Any = 1.0  # batches of each validation: a fraction in (0, 1] or a count >= 1
    limit_test_batches: Any = 1.0  # batches of the test: a fraction in (0, 1] or a count >= 1
    num_workers: int = 0  # >= 0; DataLoader worker processes (0: load in the main process)
    deterministic: bool = False  # torch deterministic algorithms (slower; bit-identical reruns on GPU)
    log_every_n_steps: int = 50  # > 0; how often training metrics are logged
    enable_progress_bar: bool = True  # Lightning's progress bar
    compile: bool = False  # torch.compile the model (its forward: teacher-forced training and evaluation)
    compile_backend: str = "inductor"  # with compile: one of torch._dynamo.list_backends()
    # null (default) | default | reduce-overhead | max-autotune | max-autotune-no-cudagraphs
    compile_mode: Optional[str] = None


@dataclass
class OptimConfig:
    lr: float = 1e-3  # > 0; peak learning rate of AdamW
    weight_decay: float = 0.0  # >= 0 (0: off)
    scheduler: str = "linear"  # constant | linear | cosine (all after linear warm-up)
    warmup_ratio: float = 0.0  # [0, 1); share of the training steps spent warming up linearly


@dataclass
class WandbConfig:
    mode: Optional[str] = None  # online | offline | disabled; default $WANDB_MODE, else offline
    project: str = "attnbench"  # the W&B project runs are logged to
    entity: Optional[str] = None  # the W&B team or user (null: your default entity)
    tags: List[str] = field(default_factory=list)  # W&B tags of the run
    log_attention: bool = True  # log the probes' attention maps as images every epoch


@dataclass
class RunConfig:
    """A whole run; every float anywhere in it must be finite."""

    seed: int = 1  # in rules.SEED_RANGE
    output_dir: str = "results/runs"  # where run folders are written
    data_dir: Optional[str] = None  # default $ATTNBENCH_DATA_DIR
    cache_dir: Optional[str] = None  # default $ATTNBENCH_CACHE_DIR, else ~/.cache/attnbench
    run_id: Optional[str] = None  # a plain folder name (no '/', not starting with '.'), <= rules.MAX_NAME_BYTES
    resume: Optional[str] = None  # null | auto: continue this config's unfinished run from its last checkpoint
    explain: bool = False  # after the test, run `attnbench explain` on the best checkpoint (classification)
    task: TaskConfig = field(default_factory=TaskConfig)  # the data and how it is scored (task=NAME)
    attention: AttentionConfig = field(default_factory=AttentionConfig)  # the variant (attention=NAME)
    model: ModelConfig = field(default_factory=ModelConfig)  # the backbone (model=NAME)
    trainer: TrainerConfig = field(default_factory=TrainerConfig)  # how it trains (trainer=NAME)
    optim: OptimConfig = field(default_factory=OptimConfig)  # optimizer and schedule
    wandb: WandbConfig = field(default_factory=WandbConfig)  # Weights & Biases logging
