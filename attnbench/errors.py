"""User-facing errors: one line that names the problem and the fix.

The CLI prints these without a traceback and exits non-zero; anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import difflib


class AttnbenchError(Exception):
    """Base class for errors caused by the user's input or environment."""


class ConfigError(AttnbenchError):
    """A config file or override is invalid."""


class DataError(AttnbenchError):
    """A dataset is missing, unreachable or malformed."""


class ResourceError(AttnbenchError):
    """The machine cannot do what was asked: no disk space left, for instance."""


def did_you_mean(word: str, options: list[str]) -> str:
    """` (did you mean 'x'?)` for the option closest to a mistyped word (or with the same last dotted part); ''."""
    match = difflib.get_close_matches(word, options, n=1, cutoff=0.5)
    if not match and "." in word:
        leaf = word.rsplit(".", 1)[1]
        match = [o for o in options if o.rsplit(".", 1)[-1] == leaf][:1]
    return f" (did you mean '{match[0]}'?)" if match else ""
