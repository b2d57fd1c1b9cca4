"""The `attnbench` command: run, list, config."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from attnbench.errors import AttnbenchError

EXAMPLES = """examples:
  attnbench run task=sentiment attention=additive model=rnn seed=1
  attnbench run attention=multihead attention.score=additive attention.heads=4 model=transformer
  attnbench run attention=custom attention.impl=my_pkg.attn:MyAttention trainer=smoke
  attnbench config attention=dot            # print the resolved config, run nothing
"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="attnbench", description="Compare attention mechanisms across NLP tasks.", epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    overrides = {"nargs": "*", "metavar": "OVERRIDE", "help": "group=option or dotted.key=value"}
    run = sub.add_parser("run", help="train and test one configuration, writing a run record")
    run.add_argument("overrides", **overrides)
    config = sub.add_parser("config", help="print the resolved config of a run without running it")
    config.add_argument("overrides", **overrides)
    sub.add_parser("list", help="list attention variants, tasks, models and trainer presets")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return COMMANDS[args.command](args)
    except AttnbenchError as err:
        print(f"attnbench: error: {err}", file=sys.stderr)
        return 2


def cmd_run(args: argparse.Namespace) -> int:
    from attnbench.config import load_config

    cfg = load_config(args.overrides)
    from attnbench.run import run  # heavy imports only once the config is known to be valid

    try:
        run_dir = run(cfg)
    except AttnbenchError:
        raise
    except Exception as err:
        print(f"attnbench: run failed: {type(err).__name__}: {err} (status recorded in {cfg.output_dir}/{cfg.run_id})",
              file=sys.stderr)
        return 1
    print(f"run {cfg.run_id} completed: {run_dir / 'metrics.json'}")
    return 0


def cmd_config(args: argparse.Namespace) -> int:
    from attnbench.config import load_config, to_yaml

    print(to_yaml(load_config(args.overrides)), end="")
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    from attnbench.attention import available_attention
    from attnbench.config import config_dir, group_options
    from attnbench.models import MODELS

    sections = {
        "attention variants (attention=NAME; multihead wraps any of them: attention.score=NAME)": available_attention(),
        "tasks (task=NAME)": {name: _yaml_summary(config_dir() / "task" / f"{name}.yaml") for name in group_options("task")},
        "models (model=NAME)": MODELS,
        "trainer presets (trainer=NAME)": {
            name: _yaml_summary(config_dir() / "trainer" / f"{name}.yaml") for name in group_options("trainer")
        },
    }
    for title, entries in sections.items():
        print(title)
        width = max(map(len, entries), default=0)
        for name, text in sorted(entries.items()):
            print(f"  {name:<{width}}  {text}")
        print()
    return 0


def _yaml_summary(path: Path) -> str:
    """The first comment line of a config file is its one-line description."""
    for line in path.read_text().splitlines():
        if line.startswith("#"):
            return line.lstrip("# ").strip()
    return ""


COMMANDS = {"run": cmd_run, "config": cmd_config, "list": cmd_list}
