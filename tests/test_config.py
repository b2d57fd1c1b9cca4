"""Every config file validates; overrides and their errors."""

from pathlib import Path

import pytest
from omegaconf import OmegaConf

from attnbench.config import GROUPS, config_dir, config_hash, group_options, load_config
from attnbench.errors import ConfigError

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize("group", GROUPS)
def test_every_group_file_validates(group):
    options = group_options(group)
    assert options, f"configs/{group}/ is empty"
    for option in options:
        extra = ["attention.impl=tests.custom_attention:GatedDot"] if (group, option) == ("attention", "custom") else []
        cfg = load_config([f"{group}={option}", *extra])
        assert cfg[group] is not None


def test_every_yaml_file_parses():
    files = list(config_dir().rglob("*.yaml")) + list((ROOT / "experiments").rglob("*.yaml"))
    assert files
    for path in files:
        assert isinstance(OmegaConf.load(path), (dict, type(OmegaConf.create({})))), path


def test_defaults_and_overrides():
    cfg = load_config(["attention=multihead", "attention.score=additive", "model=transformer", "seed=7",
                       "trainer.max_epochs=2", "optim.lr=3e-4", "output_dir=/tmp/x"])
    assert cfg.task.name == "sentiment"
    assert (cfg.attention.name, cfg.attention.score, cfg.attention.heads) == ("multihead", "additive", 8)
    assert cfg.model.name == "transformer" and cfg.seed == 7 and cfg.trainer.max_epochs == 2
    assert cfg.optim.lr == pytest.approx(3e-4) and cfg.output_dir == "/tmp/x"


def test_wandb_offline_by_default(monkeypatch):
    monkeypatch.delenv("WANDB_MODE", raising=False)
    assert load_config([]).wandb.mode == "offline"
    monkeypatch.setenv("WANDB_MODE", "disabled")
    assert load_config([]).wandb.mode == "disabled"


def test_data_dir_from_environment(monkeypatch):
    monkeypatch.setenv("ATTNBENCH_DATA_DIR", "/some/data")
    assert load_config([]).data_dir == "/some/data"
    assert load_config(["data_dir=/other"]).data_dir == "/other"


def test_config_hash_ignores_paths_not_settings():
    a, b = load_config(["output_dir=/a"]), load_config(["output_dir=/b"])
    assert config_hash(a) == config_hash(b)
    assert config_hash(a) != config_hash(load_config(["seed=2"]))


def test_seq2seq_keys_default_so_sentiment_is_unchanged():
    task = load_config([]).task
    assert task.max_target_length is None and task.label_smoothing == 0.0 and task.tokenizer.shared is True
    assert dict(task.decoding) == {"beam_size": 5, "length_penalty": 1.0, "max_len_a": 1.5, "max_len_b": 10,
                                   "min_length": 0, "no_repeat_ngram_size": 0, "val_examples": 256}
    model = load_config([]).model
    assert model.decoder_style == "bahdanau" and model.tie_embeddings is False


def test_translation_and_summarization_configs():
    cfg = load_config(["task=translation"])
    task = cfg.task
    assert (task.name, task.family, task.dataset, task.monitor, task.monitor_mode) == (
        "translation", "seq2seq", "multi30k_en_de", "bleu", "max")
    assert dict(task.local.columns) == {"src": "src", "tgt": "tgt"}
    assert dict(task.hub.columns) == {"src": "en", "tgt": "de"}
    assert task.local.splits.test == "test" and task.hub.path == "bentrevett/multi30k"
    assert (task.max_length, task.max_target_length, task.label_smoothing) == (100, 100, 0.1)
    assert (task.tokenizer.kind, task.tokenizer.vocab_size, task.tokenizer.shared, task.tokenizer.lowercase) == (
        "bpe", 8000, True, False)
    assert (task.decoding.beam_size, task.decoding.max_len_a, task.decoding.max_len_b) == (5, 1.5, 10)

    reverse = load_config(["task=translation_de_en"]).task
    assert dict(reverse.local.columns) == {"src": "tgt", "tgt": "src"} and dict(reverse.hub.columns) == {
        "src": "de", "tgt": "en"}
    # Only the column maps and the dataset label differ from translation.yaml.
    forward = OmegaConf.to_container(task)
    backward = OmegaConf.to_container(reverse)
    for block in (forward, backward):
        del block["local"]["columns"], block["hub"]["columns"], block["dataset"]
    assert forward == backward

    summ = load_config(["task=summarization"]).task
    assert dict(summ.local.columns) == {"src": "document", "tgt": "summary"}
    assert (summ.hub.path, summ.hub.name, dict(summ.hub.columns)) == (
        "cnn_dailymail", "3.0.0", {"src": "article", "tgt": "highlights"})
    assert (summ.max_length, summ.max_target_length, summ.tokenizer.vocab_size, summ.tokenizer.lowercase) == (
        400, 100, 20000, True)
    assert (summ.monitor, summ.monitor_mode) == ("rougeLsum", "max")
    d = summ.decoding
    assert (d.beam_size, d.min_length, d.no_repeat_ngram_size, d.max_len_a, d.max_len_b) == (4, 35, 3, 0, 120)


def test_seq2seq_overrides():
    cfg = load_config(["task=translation", "task.decoding.beam_size=1", "task.tokenizer.shared=false",
                       "model.decoder_style=luong", "model.tie_embeddings=true", "task.monitor=loss",
                       "task.monitor_mode=min", "task.decoding.val_examples=0", "task.max_target_length=null"])
    assert cfg.task.decoding.beam_size == 1 and cfg.task.tokenizer.shared is False
    assert cfg.model.decoder_style == "luong" and cfg.model.tie_embeddings is True
    assert cfg.task.max_target_length is None


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["task=translation", "task.decoding.beam_size=0"], "task.decoding.beam_size=0 must be positive"),
        (["task=translation", "task.decoding.beam=3"], "did you mean 'task.decoding.beam_size'"),
        (["task=translation", "task.decoding.min_length=-1"], "task.decoding.min_length=-1 must be >= 0"),
        (["task=translation", "task.decoding.length_penalty=-0.5"], "must be >= 0"),
        (["task=translation", "task.decoding.no_repeat_ngram_size=-2"], "must be >= 0"),
        (["task=translation", "task.decoding.val_examples=-1"], "must be >= 0"),
        (["task=translation", "task.label_smoothing=1.0"], "task.label_smoothing=1.0 must be in [0, 1)"),
        (["task=translation", "task.max_target_length=1"], "room for BOS/EOS"),
        (["task=translation", "task.max_length=20", "trainer.max_tokens=50"], "below task.max_target_length=100"),
        (["task=summarization", "task.decoding.min_length=200"], "no hypothesis could end"),
        (["task=translation", "task.decoding.max_len_a=0", "task.decoding.max_len_b=0"], "nothing could be generated"),
        (["task=translation", "task.monitor_mode=min"], "task.monitor=bleu is better when higher"),
        (["task=translation", "task.monitor=loss"], "task.monitor=loss is better when lower"),
        (["task=translation", "task.decoding.val_examples=0"], "task.decoding.val_examples=0"),
        (["task=summarization", "task.decoding.val_examples=0"], "task.monitor=rougeLsum needs decoded"),
        (["model.decoder_style=bahdanu"], "did you mean 'bahdanau'"),
        (["model.tie_embeddings=perhaps"], "model.tie_embeddings"),
        (["task=translation", "task.tokenizer.shared=maybe"], "task.tokenizer.shared"),
    ],
)
def test_seq2seq_errors(overrides, message):
    with pytest.raises(ConfigError) as err:
        load_config(overrides)
    assert message in str(err.value)
    assert "\n" not in str(err.value)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["attention=foo"], "unknown attention option 'foo'"),
        (["attention=addtive"], "did you mean 'additive'"),
        (["task=sentimnt"], "valid options are"),
        (["model=lstm"], "unknown model option 'lstm'"),
        (["trainer.max_epoch=3"], "did you mean 'trainer.max_epochs'"),
        (["optim.learning_rate=1"], "unknown config key 'optim.learning_rate'"),
        (["trainer.max_epochs=abc"], "is not an integer"),
        (["trainer.deterministic=maybe"], "trainer.deterministic"),
        (["attention=multihead", "attention.heads=3"], "not divisible by attention.heads=3"),
        (["model=transformer", "attention.heads=6"], "not divisible"),
        (["attention.heads=2"], "attention=multihead"),
        (["model=transformer", "attention.head_dim=0"], "attention.head_dim=0 must be > 0"),
        (["attention=dot", "attention.head_dim=64"], "needs projected attention: use attention=multihead"),
        (["optim.lr=-1"], "must be positive"),
        (["attention.dropout=1.5"], "must be in [0, 1)"),
        (["model.cell=rnn"], "choose one of lstm, gru"),
        (["attention=custom"], "attention.impl=package.module:ClassName"),
        (["attention=custom", "attention.impl=nocolon"], "package.module:ClassName"),
        (["trainer.max_tokens=8"], "trainer.max_tokens"),
        (["task.limits.train=0"], "task.limits.train"),
        (["run_id=a/b"], "plain folder name"),
        (["justaword"], "key=value"),
    ],
)
def test_override_errors(overrides, message):
    with pytest.raises(ConfigError) as err:
        load_config(overrides)
    assert message in str(err.value)
    assert "\n" not in str(err.value)


@pytest.mark.parametrize(
    ("overrides", "stopping", "checkpoint"),
    [
        (["task=translation"], ("val_slice/bleu", "max"), "val_slice/bleu"),  # null: the checkpoint's metric
        (["task=translation", "trainer.early_stopping_monitor=loss"], ("val/loss", "min"), "val_slice/bleu"),
        (["task=translation", "trainer.early_stopping_monitor=ppl"], ("val/ppl", "min"), "val_slice/bleu"),
        (["task=translation", "trainer.early_stopping_monitor=chrf"], ("val_slice/chrf", "max"), "val_slice/bleu"),
        (["task=summarization", "trainer.early_stopping_monitor=rouge2"], ("val_slice/rouge2", "max"),
         "val_slice/rougeLsum"),
        ([], ("val/accuracy", "max"), "val/accuracy"),
        (["trainer.early_stopping_monitor=loss"], ("val/loss", "min"), "val/accuracy"),
        (["trainer.early_stopping_monitor=f1"], ("val/f1", "max"), "val/accuracy"),
    ],
)
def test_early_stopping_monitor_names_the_logged_metric_and_its_direction(overrides, stopping, checkpoint):
    from attnbench.config import monitor_key, stopping_monitor

    cfg = load_config(overrides)
    assert stopping_monitor(cfg) == stopping
    assert monitor_key(cfg) == checkpoint


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["trainer.early_stopping_monitor=bleu"], "trainer.early_stopping_monitor=bleu is not a validation metric"),
        (["task=translation", "trainer.early_stopping_monitor=blue"], "did you mean 'bleu'"),
        (["task=translation", "trainer.early_stopping_monitor=accuracy"], "choose one of loss, ppl, bleu, chrf"),
        (["task=translation", "trainer.early_stopping_monitor=rouge1"], "not a validation metric of this task"),
        # no decoded validation slice: BLEU is not logged per validation at all
        (["task=translation", "task.monitor=loss", "task.monitor_mode=min", "task.decoding.val_examples=0",
          "trainer.early_stopping_monitor=bleu"], "choose one of loss, ppl, or null"),
    ],
)
def test_early_stopping_monitor_errors(overrides, message):
    with pytest.raises(ConfigError) as err:
        load_config(overrides)
    assert message in str(err.value)
    assert "\n" not in str(err.value)


def test_early_stopping_monitor_null_keeps_the_hash_of_earlier_records():
    base = ["task=translation", "model=transformer"]
    assert config_hash(load_config(base)) == config_hash(load_config([*base, "trainer.early_stopping_monitor=null"]))
    assert config_hash(load_config(base)) != config_hash(load_config([*base, "trainer.early_stopping_monitor=loss"]))
