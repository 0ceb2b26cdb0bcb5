"""One HTTP session per source: retries with backoff and jitter, server-directed waits, timeouts, rate limit.

Why: partner APIs throttle (429 + Retry-After, or X-RateLimit-Reset) and fail transiently (5xx); a
connector must wait as told, retry idempotent GETs a bounded number of times and never hang.
"""

from __future__ import annotations

import email.utils
import re
import threading
import time
from dataclasses import dataclass
from typing import Protocol

import requests
from requests.adapters import HTTPAdapter
from urllib3.exceptions import InvalidHeader
from urllib3.util.retry import Retry

RETRY_STATUSES = (429, 500, 502, 503, 504)
_SECONDS = re.compile(r"^\s*[0-9]+(\.[0-9]+)?\s*$")


@dataclass(frozen=True)
class HttpPolicy:
    """Retry and timeout settings; tests shrink the backoff, production keeps the defaults."""

    retries: int = 6
    connect_retries: int = 3
    read_retries: int = 3  # read errors and timeouts, and answers cut short mid-body
    backoff_factor: float = 0.5
    backoff_max: float = 30.0
    backoff_jitter: float = 0.5
    retry_after_max: float = 120.0
    connect_timeout: float = 5.0
    read_timeout: float = 30.0


class AllianceRetry(Retry):
    """urllib3 Retry that also accepts fractional `Retry-After` and the network's `X-RateLimit-Reset`."""

    def parse_retry_after(self, retry_after: str) -> float:
        if _SECONDS.match(retry_after):
            seconds = float(retry_after)
        else:
            parsed = email.utils.parsedate_tz(retry_after)
            if parsed is None:
                raise InvalidHeader(f"Invalid Retry-After header: {retry_after}")
            seconds = email.utils.mktime_tz(parsed) - time.time()
        return min(max(seconds, 0.0), self.retry_after_max)

    def get_retry_after(self, response) -> float | None:  # noqa: ANN001 - urllib3's BaseHTTPResponse
        value = response.headers.get("Retry-After")
        if value is None:
            value = response.headers.get("X-RateLimit-Reset")  # seconds until the window resets
        if value is None:
            return None
        try:
            return self.parse_retry_after(value)
        except InvalidHeader:
            return None  # an unreadable hint: fall back to exponential backoff


class SlotClock(Protocol):
    """What the requests-per-second limiter reads and waits with: the `time` module, or a test's fake clock."""

    def monotonic(self) -> float: ...

    def sleep(self, seconds: float) -> None: ...


class SourceSession(requests.Session):
    """A Session with a default (connect, read) timeout and an optional requests-per-second limit."""

    def __init__(self, policy: HttpPolicy, requests_per_second: float | None = None,
                 clock: SlotClock = time) -> None:  # the time module has both functions
        super().__init__()
        self.policy = policy
        self.clock = clock
        self._interval = 1.0 / requests_per_second if requests_per_second else 0.0
        self._next_slot = 0.0
        self._slot_lock = threading.Lock()

    def _wait_for_slot(self) -> None:
        if not self._interval:
            return
        with self._slot_lock:
            now = self.clock.monotonic()
            wait = self._next_slot - now
            self._next_slot = max(now, self._next_slot) + self._interval
        if wait > 0:
            self.clock.sleep(wait)

    def request(self, method, url, *args, **kwargs):  # noqa: ANN001, ANN002, ANN003, ANN201 - requests' API
        kwargs.setdefault("timeout", (self.policy.connect_timeout, self.policy.read_timeout))
        self._wait_for_slot()
        return super().request(method, url, *args, **kwargs)


def make_session(policy: HttpPolicy | None = None, requests_per_second: float | None = None,
                 clock: SlotClock = time) -> SourceSession:
    """A session for one source: retry on 429/5xx and connection errors for GET, TLS verification on."""
    policy = policy or HttpPolicy()
    retry = AllianceRetry(
        total=policy.retries,
        connect=policy.connect_retries,
        read=policy.read_retries,
        status=policy.retries,
        backoff_factor=policy.backoff_factor,
        backoff_max=policy.backoff_max,
        backoff_jitter=policy.backoff_jitter,
        retry_after_max=policy.retry_after_max,
        status_forcelist=RETRY_STATUSES,
        allowed_methods=frozenset({"GET", "HEAD"}),
        respect_retry_after_header=True,
        raise_on_status=False,  # hand back the last response so the caller can say what failed
    )
    session = SourceSession(policy, requests_per_second, clock)
    adapter = HTTPAdapter(max_retries=retry)
    session.mount("https://", adapter)
    session.mount("http://", adapter)
    session.verify = True
    session.headers["User-Agent"] = "alliance-connector/0.1"
    session.headers["Accept"] = "application/json"
    return session
