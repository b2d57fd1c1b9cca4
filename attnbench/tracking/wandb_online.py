"""Whether W&B can be used online, without Lightning (the leaderboard checks it too): an API key and a route to the
server, refused in one line with the offline fix before any work; and finishing a run so that it is on disk."""

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


def finish_on_disk(run) -> None:
    """Finish a W&B run opened by attnbench itself and wait until it is written: run.finish() can return before W&B's
    service process has written the offline run file (measured: 7 bytes of it on disk right after the first
    leaderboard run of a process), and wandb.teardown() waits for the service, so the run folder is whole when the
    command returns. teardown leaves the dead service's token in WANDB_SERVICE, where the next wandb.init of this
    process (or of a child it starts) would look for it: it is removed."""
    import wandb

    run.finish()
    wandb.teardown()
    os.environ.pop("WANDB_SERVICE", None)
