"""Fast reachability checks, so a missing network is reported in seconds instead of after a client's retries."""

from __future__ import annotations

import socket
import threading
from urllib.parse import urlparse


def unreachable_reason(url: str, timeout: float = 3.0) -> str | None:
    """None when a TCP connection to `url`'s host opens within `timeout` seconds, else why not."""
    parsed = urlparse(url)
    host = parsed.hostname or url
    port = parsed.port or (80 if parsed.scheme == "http" else 443)
    outcome: list[OSError | None] = []

    def connect() -> None:
        try:
            socket.create_connection((host, port), timeout=timeout).close()
            outcome.append(None)
        except OSError as err:
            outcome.append(err)

    # A thread bounds the DNS lookup too, which socket timeouts do not cover.
    worker = threading.Thread(target=connect, daemon=True)
    worker.start()
    worker.join(timeout + 0.5)
    if not outcome:
        return f"no answer from {host}:{port} within {timeout:.0f} s"
    return None if outcome[0] is None else f"{host}:{port}: {outcome[0]}"
