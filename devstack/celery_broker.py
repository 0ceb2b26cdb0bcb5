"""The Redis broker of the local CeleryExecutor: the one on 127.0.0.1:6379 when it answers, else a private one.

Why both: these machines run a Redis on 6379 (nothing to start), but a fresh machine or a laptop may not, so the
dev stack then starts Debian's `redis-server` itself on a free loopback port, keeping nothing on disk. Several
stacks can share one Redis: each local Airflow gets its own Celery queue (`queue_name`), so workers never take
another stack's tasks.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from devstack.ports import free_port

DEFAULT_REDIS = ("127.0.0.1", 6379)


class BrokerError(RuntimeError):
    """No Redis answers and none can be started; the message says what to install."""


def redis_answers(host: str, port: int, timeout: float = 1.0) -> bool:
    """Whether a Redis server answers PING at host:port (RESP inline command, no client library needed)."""
    try:
        with socket.create_connection((host, port), timeout=timeout) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(64).startswith(b"+PONG")
    except OSError:
        return False


@dataclass
class Broker:
    """A Redis URL for Celery, and the private server behind it when this process started one."""

    url: str
    queue_name: str = field(default_factory=lambda: f"alliance-{uuid.uuid4().hex[:8]}")
    process: subprocess.Popen | None = None

    @property
    def private(self) -> bool:
        return self.process is not None

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)


def start_broker(work_dir: Path, default: tuple[str, int] = DEFAULT_REDIS, timeout: float = 15) -> Broker:
    """The Redis at `default` if it answers, else a private `redis-server` on a free loopback port (no persistence;
    it stops with `Broker.stop()`)."""
    host, port = default
    if redis_answers(host, port):
        return Broker(url=f"redis://{host}:{port}/0")
    executable = shutil.which("redis-server")
    if executable is None:
        raise BrokerError(f"no Redis answers on {host}:{port} and `redis-server` is not installed: install Debian's "
                          "redis-server (`apt-get install redis-server`; `make test` does it) or start a Redis there")
    work_dir.mkdir(parents=True, exist_ok=True)
    own_port = free_port()
    log_file = work_dir / "redis.log"
    process = subprocess.Popen(
        [executable, "--bind", "127.0.0.1", "--port", str(own_port), "--save", "", "--appendonly", "no",
         "--dir", str(work_dir), "--logfile", str(log_file)],
        stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT, start_new_session=True,
    )
    deadline = time.monotonic() + timeout
    while not redis_answers("127.0.0.1", own_port):
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            tail = log_file.read_text()[-1000:] if log_file.exists() else ""
            raise BrokerError(f"redis-server on 127.0.0.1:{own_port} did not answer within {timeout:.0f}s:\n{tail}")
        time.sleep(0.1)
    return Broker(url=f"redis://127.0.0.1:{own_port}/0", process=process)
