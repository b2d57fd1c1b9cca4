"""User-facing errors: one line that names the problem and the fix.

The CLI prints these without a traceback and exits non-zero; anything else is a bug and keeps its traceback.
"""


class AttnbenchError(Exception):
    """Base class for errors caused by the user's input or environment."""


class ConfigError(AttnbenchError):
    """A config file or override is invalid."""


class DataError(AttnbenchError):
    """A dataset is missing, unreachable or malformed."""


class ResourceError(AttnbenchError):
    """The machine cannot do what was asked: no disk space left, for instance."""
