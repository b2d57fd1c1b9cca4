"""The config documented from itself: every key of the typed schema (schema.py) with its type, default, rule and
meaning, for `attnbench config --schema BLOCK`, so the listing cannot drift from what the merge accepts.

A key's meaning is the comment beside its field in schema.py (else the comment block above it, else its class's
docstring); its rule comes from rules.py (the allowed values `validate` checks, the ranges it enforces). Task keys
that only one family reads (config/families.py: `FamilySpec.keys`) are listed under that family, and
`family_view` leaves the other families' keys out of a printed config.
"""

from __future__ import annotations

import ast
import dataclasses
import io
import re
import tokenize
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from omegaconf import MISSING, DictConfig, OmegaConf

from attnbench.config import rules, schema
from attnbench.config.families import FAMILIES

# `attnbench config --schema BLOCK`: a block of RunConfig, or `run` for its top-level keys.
BLOCKS = ("run", "task", "attention", "model", "trainer", "optim", "wandb")


@dataclass(frozen=True)
class KeyDoc:
    key: str  # dotted from the config root, e.g. task.tokenizer.kind
    type: str
    default: str  # as YAML writes it; "required" where the task file must set it
    rule: str  # allowed values or range ("" when any value of the type is fine)
    meaning: str
    families: tuple[str, ...]  # the families that alone read it; () for every family


def schema_keys(block: str) -> list[KeyDoc]:
    """Every leaf key of `block` (a RunConfig field, or `run` for the top-level ones), in schema order."""
    if block not in BLOCKS:
        raise ValueError(f"unknown config block '{block}': choose one of {', '.join(BLOCKS)}")
    if block == "run":
        return [doc for doc in _walk(schema.RunConfig, "") if "." not in doc.key]
    field = next(f for f in dataclasses.fields(schema.RunConfig) if f.name == block)
    return list(_walk(_dataclass_of(field), f"{block}."))


def family_view(cfg: DictConfig) -> DictConfig:
    """The config without the task keys that only other families read (a classification task shows no decoding)."""
    data = OmegaConf.to_container(cfg, resolve=True)
    own = set(FAMILIES[cfg.task.family].keys) if cfg.task.family in FAMILIES else set()
    for name, spec in FAMILIES.items():
        for key in set(spec.keys) - own:
            *parents, leaf = key.split(".")
            node = data["task"]
            for part in parents:
                node = node.get(part, {})
            node.pop(leaf, None)
    return OmegaConf.create(data)


def render_schema(block: str, family: str | None = None) -> str:
    """The keys of a block as text: the shared ones, then each family's own (only `family`'s when given)."""
    docs = schema_keys(block)
    groups = {"": [d for d in docs if not d.families]}
    for name in FAMILIES if family is None else [family]:
        groups[name] = [d for d in docs if name in d.families]
    width = max((len(d.key) for d in docs), default=0)
    lines = []
    for name, group in groups.items():
        if not group:
            continue
        title = f"{block} keys" if block != "run" else "top-level keys"
        lines.append(f"{title}, {name} tasks only" if name else (f"{title}, every task family" if block == "task"
                                                                     else title))
        for d in group:
            rule = f"  ({d.rule})" if d.rule else ""
            lines.append(f"  {d.key:<{width}}  {d.type} = {d.default}{rule}")
            lines.append(f"  {'':<{width}}    {d.meaning}")
        lines.append("")
    return "\n".join(lines)


# ---- walking the dataclasses -----------------------------------------------------------------------------------


def _walk(cls: type, prefix: str):
    comments = _field_comments()
    for field in dataclasses.fields(cls):
        key = f"{prefix}{field.name}"
        nested = _dataclass_of(field)
        if nested is not None:
            yield from _walk(nested, f"{key}.")
            continue
        rule = _rule(key)
        meaning = comments.get((cls.__name__, field.name)) or _first_sentence(cls.__doc__)
        if rule:  # the rule is printed beside the default; the comment's copy of it would say it twice
            meaning = re.sub(rf"^{re.escape(rule)}(\s*[;:]\s*|$)", "", meaning)
        yield KeyDoc(key, _type_name(str(field.type)), _default(field), rule, meaning, _families(key))


def _dataclass_of(field: dataclasses.Field) -> type | None:
    cls = getattr(schema, str(field.type), None)
    return cls if dataclasses.is_dataclass(cls) else None


def _default(field: dataclasses.Field) -> str:
    if field.default is not dataclasses.MISSING:
        value = field.default
    elif field.default_factory is not dataclasses.MISSING:
        value = field.default_factory()
    else:
        return "required"
    if value == MISSING:
        return "required"
    return OmegaConf.to_yaml({"v": value}).strip()[3:] or "''"


def _type_name(annotation: str) -> str:
    """Optional[int] -> int or null, List[str] -> list of str, Dict[str, str] -> map of str, Any -> any."""
    for pattern, replacement in ((r"Optional\[(.+)\]$", r"\1 or null"), (r"List\[(.+)\]", r"list of \1"),
                                 (r"Dict\[str, (.+)\]", r"map of \1"), (r"\bAny\b", "any")):
        annotation = re.sub(pattern, replacement, annotation)
    return annotation


def _rule(key: str) -> str:
    if key in rules._REGISTRIES:
        return " | ".join(rules._REGISTRIES[key]())
    if key in rules._CHOICES:
        return " | ".join(rules._CHOICES[key])
    if key in rules._POSITIVE:
        return "> 0"
    if key in rules._PROBABILITIES:
        return "[0, 1)"
    if key in rules._NON_NEGATIVE:
        return ">= 0"
    return ""


def _families(key: str) -> tuple[str, ...]:
    leaf = key.removeprefix("task.")
    if leaf == key:
        return ()
    return tuple(name for name, spec in FAMILIES.items()
                 if any(leaf == k or leaf.startswith(f"{k}.") for k in spec.keys))


def _first_sentence(doc: str | None) -> str:
    text = " ".join((doc or "").split())
    return text.split(". ")[0].rstrip(".") if text else ""


@cache
def _field_comments() -> dict[tuple[str, str], str]:
    """(class, field) -> the comment beside the field in schema.py, else the comment lines right above it."""
    source = Path(schema.__file__).read_text()
    comments = {tok.start[0]: tok.string.lstrip("# ").strip()
                for tok in tokenize.generate_tokens(io.StringIO(source).readline) if tok.type == tokenize.COMMENT}
    lines = source.splitlines()
    found = {}
    for node in ast.parse(source).body:
        if not isinstance(node, ast.ClassDef):
            continue
        for item in node.body:
            if not (isinstance(item, ast.AnnAssign) and isinstance(item.target, ast.Name)):
                continue
            text = comments.get(item.lineno)
            if text is None:
                above, line = [], item.lineno - 1
                while line in comments and lines[line - 1].lstrip().startswith("#"):
                    above.insert(0, comments[line])
                    line -= 1
                text = " ".join(above)
            found[(node.name, item.target.id)] = text
    return found
