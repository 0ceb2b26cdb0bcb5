"""A free TCP port on the loopback interface, for the dev stack's servers (Airflow, workers, Redis, receivers)."""

from __future__ import annotations

import socket


def free_port() -> int:
    """A port nothing listens on right now (the OS picks it); the caller binds it soon after."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]
