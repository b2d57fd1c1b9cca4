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
