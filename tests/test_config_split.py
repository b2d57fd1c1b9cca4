"""The config package's layout holds: small modules, a light import, and each field's rule written beside it."""

from __future__ import annotations

import dataclasses
import importlib
import inspect
import re
import subprocess
import sys
import typing
from pathlib import Path

import pytest

import attnbench.config
from attnbench.config import rules, schema

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "attnbench" / "config"


@pytest.mark.parametrize("path", sorted(PACKAGE.glob("*.py")), ids=lambda p: p.name)
def test_each_module_is_small_and_says_what_it_holds(path):
    source = path.read_text()
    assert len(source.splitlines()) <= 400, f"{path.name} grew past 400 lines: split it by concern"
    module = importlib.import_module("attnbench.config" if path.stem == "__init__" else f"attnbench.config.{path.stem}")
    assert inspect.getdoc(module), f"{path.name} has no module docstring"


def test_the_package_exports_every_public_name():
    for name in attnbench.config.__all__:
        assert getattr(attnbench.config, name) is not None, name


def test_importing_the_config_loads_neither_torch_nor_the_attention_registry():
    script = ("import sys, json, attnbench.config; "
              "print(json.dumps([m for m in sys.modules if m.split('.')[0] == 'torch' or m == 'attnbench.attention']))")
    done = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


def _field_comment(key: str) -> str:
    """The comment beside a dotted key's field in schema.py: its own trailing comment, else the comment block
    above the run of uncommented fields it belongs to."""
    cls, name = schema.RunConfig, None
    for part in key.split("."):
        if name is not None:
            cls = typing.get_type_hints(cls)[name]
        assert part in {f.name for f in dataclasses.fields(cls)}, key
        name = part
    lines = inspect.getsource(cls).splitlines()
    index = next(i for i, line in enumerate(lines) if re.match(rf"\s+{name}:", line))
    own = lines[index].partition("  #")[2]
    if own:
        return own
    comments, i = [], index - 1
    while i >= 0 and re.match(r"\s+\w+:", lines[i]) and "  #" not in lines[i]:  # uncommented fields just above
        i -= 1
    while i >= 0 and lines[i].strip().startswith("#"):
        comments.append(lines[i].strip().lstrip("#"))
        i -= 1
    return " ".join(comments)


def _names(comment: str, value: str) -> bool:
    return re.search(rf"(?<![\w-]){re.escape(value)}(?![\w-])", comment) is not None


@pytest.mark.parametrize("key", list(rules._CHOICES))
def test_each_choice_is_listed_beside_its_field(key):
    comment = _field_comment(key)
    missing = [v for v in rules._CHOICES[key] if not _names(comment, "null" if v == "None" else v)]
    assert not missing, f"schema.py does not list {missing} beside {key}"


@pytest.mark.parametrize(("table", "rule"), [
    (rules._POSITIVE, "> 0"), (rules._PROBABILITIES, "[0, 1)"), (rules._NON_NEGATIVE, ">= 0"),
    (rules._LIMITS, "(0, 1]"),
])
def test_each_range_is_written_beside_its_field(table, rule):
    missing = [key for key in table if rule not in _field_comment(key)]
    assert not missing, f"schema.py does not say {rule!r} beside {missing}"
