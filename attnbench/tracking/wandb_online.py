"""Whether W&B can be used online, without Lightning (the leaderboard checks it too): an API key and a route to the
server, refused in one line with the offline fix before any work."""

from __future__ import annotations

import netrc
import os

from attnbench.errors import ConfigError
from attnbench.netcheck import unreachable_reason


def has_api_key() -> bool:
    if os.environ.get("WANDB_API_KEY"):
        return True
    try:
        return netrc.netrc().authenticators("api.wandb.ai") is not None
    except (FileNotFoundError, netrc.NetrcParseError):
        return False


def check_online(what: str, offline_hint: str = "work offline instead") -> None:
    if not has_api_key():
        raise ConfigError(f"{what} needs a W&B API key and none is configured: run `wandb login` or set "
                          f"WANDB_API_KEY, or {offline_hint}")
    reason = unreachable_reason(os.environ.get("WANDB_BASE_URL") or "https://api.wandb.ai")
    if reason:
        raise ConfigError(f"{what}, but the W&B server cannot be reached ({reason}): {offline_hint}")
