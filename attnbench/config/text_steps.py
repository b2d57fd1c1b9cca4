"""The text steps a tokenizer block may list by name: `task.tokenizer.normalizers` rewrite the text, then
`task.tokenizer.pre_tokenizers` split it into the words the vocabulary is trained on; each step is one HF `tokenizers`
class.

A step is a name (`nfkc`) or a one-key mapping from a name to its arguments (`{replace: {pattern: "<br\\s*/?>",
content: " "}}`); steps run in the order listed. `rules.validate` checks every step against these tables before any
work starts; `data/tokenizer.py` builds the HF objects from `canonical` steps, and keys its cache on them.

Empty lists (the default) keep the built-in pipeline: wordlevel splits on whitespace, bpe runs Metaspace. A non-empty
`pre_tokenizers` replaces wordlevel's whitespace split; for bpe it runs after Metaspace (on "▁word" pieces, spaces
already marked), and only `lossless` steps are allowed there, so that `decode(encode(x)) == x` still holds (for the
normalised x: bpe output is the text as the normalizers leave it, as with `lowercase`).
`task.tokenizer.lowercase: true` appends `lowercase` to the normalizers unless a listed step lowercases already;
`lowercase: false` with a step that lowercases (`lowercase`, `bert`) is refused as a contradiction.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

from tokenizers import Regex

REQUIRED = object()  # the default of an argument that the step must be given
# How a split keeps what it matched (HF SplitDelimiterBehavior); `removed` drops it.
BEHAVIORS = ("isolated", "removed", "merged_with_previous", "merged_with_next", "contiguous")


@dataclass(frozen=True)
class Arg:
    types: tuple[type, ...]  # the YAML value types accepted
    default: Any = REQUIRED
    choices: tuple[str, ...] = ()  # the allowed values (empty: any value of the types)
    regex: bool = False  # a pattern in the Oniguruma syntax HF tokenizers uses (\p{L}, (?<name>...))


@dataclass(frozen=True)
class StepSpec:
    hf: str  # the class in tokenizers.normalizers or tokenizers.pre_tokenizers
    meaning: str  # one line: what the step does to the text
    args: Mapping[str, Arg] = field(default_factory=dict)
    lossless: bool = False  # pre-tokenizer: keeps every character (unless behavior=removed), so bpe may list it


_BEHAVIOR = Arg((str,), "isolated", BEHAVIORS)

NORMALIZERS: dict[str, StepSpec] = {
    "nfc": StepSpec("NFC", "Unicode NFC: compose characters (e + U+0301 -> é)"),
    "nfd": StepSpec("NFD", "Unicode NFD: decompose characters (é -> e + U+0301), e.g. before strip_accents"),
    "nfkc": StepSpec("NFKC", "Unicode NFKC: compose and fold compatibility forms (ﬁ -> fi, full-width Ａ -> A)"),
    "nfkd": StepSpec("NFKD", "Unicode NFKD: decompose and fold compatibility forms"),
    "lowercase": StepSpec("Lowercase", "lowercase every character"),
    "strip": StepSpec("Strip", "remove whitespace at the start (left) and end (right) of the text",
                      {"left": Arg((bool,), True), "right": Arg((bool,), True)}),
    "strip_accents": StepSpec("StripAccents", "remove combining marks; after nfd or nfkd, é -> e"),
    "replace": StepSpec("Replace", "replace every match of the regex `pattern` by `content` (default: delete it)",
                        {"pattern": Arg((str,), regex=True), "content": Arg((str,), "")}),
    "bert": StepSpec("BertNormalizer", "BERT's: drop control characters, whitespace to spaces, spaces around CJK "
                     "characters, lowercase (and strip accents unless strip_accents: false)",
                     {"clean_text": Arg((bool,), True), "handle_chinese_chars": Arg((bool,), True),
                      "strip_accents": Arg((bool, type(None)), None), "lowercase": Arg((bool,), True)}),
}

PRE_TOKENIZERS: dict[str, StepSpec] = {
    "whitespace_split": StepSpec("WhitespaceSplit", "split on whitespace (wordlevel's default)"),
    "whitespace": StepSpec("Whitespace",
                           "words (\\w+) and runs of other non-space characters (movie.<br -> movie .< br)"),
    "punctuation": StepSpec("Punctuation", "split off each punctuation character (great! -> great !)",
                            {"behavior": _BEHAVIOR}, lossless=True),
    "digits": StepSpec("Digits", "split off runs of digits (individual_digits: true: every digit)",
                       {"individual_digits": Arg((bool,), False)}, lossless=True),
    "split": StepSpec("Split", "split on every match of the regex `pattern`, kept as `behavior` says (invert: "
                      "true: the matches are the words and the text between them is split off)",
                      {"pattern": Arg((str,), regex=True), "behavior": _BEHAVIOR, "invert": Arg((bool,), False)},
                      lossless=True),
    "unicode_scripts": StepSpec("UnicodeScripts", "split where the Unicode script changes (Latin | Han | Cyrillic)",
                                lossless=True),
    "bert": StepSpec("BertPreTokenizer", "BERT's: split on whitespace and off each punctuation character"),
}


def step_parts(step: Any) -> tuple[str, Any] | None:
    """(name, arguments) of a listed step: `name` -> (name, {}), `{name: args}` -> (name, args); None: neither."""
    if isinstance(step, str):
        return step, {}
    if isinstance(step, Mapping) and len(step) == 1:
        ((name, args),) = step.items()
        return str(name), {} if args is None else args
    return None


_TYPE_NAMES = {bool: "true or false", str: "a string", type(None): "null"}


def arg_problem(arg: Arg, value: Any) -> str | None:
    """What is wrong with one argument value, or None."""
    if not isinstance(value, arg.types):
        return f"must be {' or '.join(_TYPE_NAMES[t] for t in arg.types)}"
    if arg.choices and value not in arg.choices:
        return f"must be one of {', '.join(arg.choices)}"
    if arg.regex:
        try:
            Regex(value)
        except Exception as err:  # tokenizers raises a bare Exception for an invalid pattern
            return f"is not a valid regex ({err})"
    return None


def canonical(table: Mapping[str, StepSpec], steps: list[Any]) -> list[dict[str, dict[str, Any]]]:
    """Validated steps as [{name: {every argument, defaults filled in}}]: one form per meaning, for the cache key."""
    out = []
    for step in steps:
        name, args = step_parts(step)
        spec = table[name]
        out.append({name: {key: args.get(key, arg.default) for key, arg in spec.args.items()}})
    return out


def lowercases(steps: list[dict[str, dict[str, Any]]]) -> bool:
    """Whether canonical normalizer steps lowercase the text."""
    return any("lowercase" in step or step.get("bert", {}).get("lowercase") for step in steps)


def lossless(step: dict[str, dict[str, Any]]) -> bool:
    """Whether a canonical pre-tokenizer step keeps every character (what bpe's exact detokenisation needs)."""
    ((name, args),) = step.items()
    return PRE_TOKENIZERS[name].lossless and args.get("behavior") != "removed"
