"""Run the webhook app on uvicorn: one code path for `alliance webhooks`, the tests and the benchmarks.

uvicorn settings and why:
- `limit_concurrency` stays off: uvicorn compares it with the number of open *connections*, so 300 idle
  keep-alive sockets would make it answer 503 to a real, signed delivery (tests/test_webhooks.py measures this).
  The app limits requests in flight instead (alliance/webhooks/app.py, InFlightLimit).
- uvicorn has no timeout for a request head (a client may open a connection and trickle bytes forever), so the
  HTTP protocol is uvicorn's own h11 protocol, passed through its `http` setting, plus a head deadline: a
  connection whose request head is not complete `header_timeout` seconds after it opened (or after the first
  byte of a next request) is closed. The body has its own deadline in the app.
- h11 (not httptools) parses requests: it refuses malformed framing, and the app refuses Transfer-Encoding
  together with Content-Length, which h11 alone would accept (RFC 9112 §6.3 lets a server reject it).
"""

from __future__ import annotations

import asyncio
import logging
import socket
import threading
import time

import h11
import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol

from alliance.airflow_credentials import airflow_connection
from alliance.config import AllianceConfig
from alliance.warehouse import connect
from alliance.webhooks.app import Limits, create_app
from alliance.webhooks.inbox import ensure_webhook_schema
from alliance.webhooks.notify import AirflowClient, OutboxNotifier
from alliance.webhooks.processor import InboxProcessor
from alliance.webhooks.sources import Source, resolve_sources
from connectors.pii import pii_salt

log = logging.getLogger("alliance.webhooks")


class HeadDeadlineH11Protocol(H11Protocol):
    """uvicorn's h11 protocol with a deadline on the request head (see the module docstring)."""

    header_timeout: float = 10.0

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        self._head_timer: asyncio.TimerHandle | None = None
        super().connection_made(transport)
        self._arm_head_timer()

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if self.conn.their_state is h11.IDLE and not self.transport.is_closing():
            self._arm_head_timer()  # part of a head so far: it must complete in time
        else:
            self._cancel_head_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_head_timer()
        super().connection_lost(exc)

    def _arm_head_timer(self) -> None:
        if self._head_timer is None:
            self._head_timer = asyncio.get_running_loop().call_later(self.header_timeout, self._head_timed_out)

    def _cancel_head_timer(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_timed_out(self) -> None:
        self._head_timer = None
        if self.conn.their_state is h11.IDLE and not self.transport.is_closing():
            self.transport.close()


def protocol_with(header_timeout: float) -> type[H11Protocol]:
    return type("HeadDeadlineH11Protocol", (HeadDeadlineH11Protocol,), {"header_timeout": header_timeout})


class WebhookServer:
    """The app on uvicorn, on a socket bound at construction (so `url` is known before start)."""

    def __init__(self, sources: dict[tuple[str, str], Source], warehouse_url: str, *, host: str = "127.0.0.1",
                 port: int = 0, limits: Limits | None = None, processor: InboxProcessor | None = None,
                 notifier: OutboxNotifier | None = None) -> None:
        self.sources = sources
        self.limits = limits or Limits()
        self.processor = processor
        self.notifier = notifier
        self.sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((host, port))
        app = create_app(sources, warehouse_url, pii_salt(), limits=self.limits, on_start=self._start_workers,
                         on_stop=self._stop_workers, on_stored=processor.wake if processor else None)
        self.config = uvicorn.Config(
            app, http=protocol_with(self.limits.header_timeout), lifespan="on", limit_concurrency=None,
            timeout_keep_alive=5, h11_max_incomplete_event_size=16 * 1024, backlog=2048, access_log=False,
            log_config=None, server_header=False, ws="none", timeout_graceful_shutdown=10)
        self.server = uvicorn.Server(self.config)
        self.thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host, port = self.sock.getsockname()[:2]
        return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"

    def _start_workers(self) -> None:
        if self.notifier:
            self.notifier.start()
        if self.processor:
            self.processor.start()

    def _stop_workers(self) -> None:
        if self.processor:
            self.processor.stop()
        if self.notifier:
            self.notifier.stop()

    def start(self, timeout: float = 60.0) -> WebhookServer:
        """In a background thread (the CLI, tests, benchmarks, the freshness stack); returns once it accepts
        requests. Signals stay with the caller: uvicorn installs no handlers outside the main thread."""
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.sock]}, name="webhooks",
                                       daemon=True)
        self.thread.start()
        deadline = time.monotonic() + timeout
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError("the webhook server did not start (see the log)")
            time.sleep(0.02)
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        if self.thread is not None:
            self.thread.join(timeout=60)
        self.sock.close()


def build_server(config: AllianceConfig, warehouse_url: str, host: str = "127.0.0.1", port: int = 0,
                 client: AirflowClient | None = None, poll: float = 30.0, *, process: bool = True,
                 limits: Limits | None = None, retry_base: float = 5.0, max_attempts: int = 20,
                 receiver_url: str | None = None) -> WebhookServer:
    """Receiver + inbox processor + outbox notifier wired together. The processor and notifier connect with
    `warehouse_url` (the loader's login), the HTTP side with `receiver_url` (its own role; default: the same URL).
    `process=False` stores deliveries without processing them (what a receiver stopped right after answering
    leaves behind)."""
    with connect(warehouse_url) as conn:
        ensure_webhook_schema(conn)
    notifier = OutboxNotifier(warehouse_url, client, poll=poll)
    processor = InboxProcessor(config, warehouse_url, on_landed=notifier.wake, retry_base=retry_base,
                               max_attempts=max_attempts, connections=airflow_connection) if process else None
    return WebhookServer(resolve_sources(config), receiver_url or warehouse_url, host=host, port=port,
                         limits=limits, processor=processor, notifier=notifier)


__all__ = ["HeadDeadlineH11Protocol", "WebhookServer", "build_server"]
