"""One HTTP session per source: retries with backoff and jitter, server-directed waits, timeouts, rate limit,
and credentials that never leave the partner's origin.

One retry policy: urllib3's `Retry`, mounted on the session's HTTPAdapter, decides and times every retry
(429/5xx with Retry-After, connection and read failures); `retry_body_cut` hands it the one failure urllib3
cannot see (an answer cut short mid-body, read after the headers), so that too is counted and timed by it.
Every wait, backoff included, goes through the injected clock (connectors/clock.py).

Why: partner APIs throttle (429 + Retry-After, or X-RateLimit-Reset) and fail transiently (5xx); a
connector must wait as told, retry idempotent GETs a bounded number of times and never hang. requests
follows redirects by default and re-sends custom headers (X-Shopify-Access-Token) and, on the same host,
Basic auth: a session here refuses any request or redirect to another scheme, host or port than the
source's `base_url` (PRODUCT.md §3), so a token is only ever sent where the operator configured it.
"""

from __future__ import annotations

import email.utils
import re
import ssl
import threading
import time
from dataclasses import dataclass, field
from urllib.parse import urljoin, urlsplit

import requests
from requests.adapters import HTTPAdapter
from urllib3.exceptions import InvalidHeader, MaxRetryError, ProtocolError, SSLError
from urllib3.util.retry import Retry

from connectors.clock import SYSTEM_CLOCK, Clock

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
    clock: Clock = field(default=SYSTEM_CLOCK, compare=False)  # every wait: rate limit, throttle, retry backoff


DEFAULT_PORTS = {"http": 80, "https": 443}


def origin(url: str) -> tuple[str, str, int | None]:
    """(scheme, lower-cased host, effective port) of a URL: what must match for credentials to be sent."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    try:
        port = parts.port
    except ValueError:  # a port that is not a number never matches
        port = -1
    return scheme, (parts.hostname or "").lower(), port if port is not None else DEFAULT_PORTS.get(scheme)


def same_origin(url: str, base_url: str) -> bool:
    return origin(url) == origin(base_url)


class ForeignOriginError(requests.exceptions.InvalidURL):
    """A request or redirect would take the source's credentials to another scheme, host or port."""

    def __init__(self, target: str, allowed: str, via: str) -> None:
        super().__init__(f"{via} to another origin refused")
        self.target, self.allowed, self.via = target, allowed, via


def _certificate_rejected(error: BaseException) -> bool:
    """Whether a TLS failure (or what caused it) is the peer's certificate failing verification."""
    seen: BaseException | None = error
    for _ in range(5):
        if seen is None:
            return False
        if isinstance(seen, ssl.SSLCertVerificationError) or any(
                isinstance(arg, ssl.SSLCertVerificationError) for arg in getattr(seen, "args", ())):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


class AllianceRetry(Retry):
    """urllib3 Retry that also accepts fractional `Retry-After` and the network's `X-RateLimit-Reset`, and waits
    on the injected clock."""

    def __init__(self, *args, clock: Clock = SYSTEM_CLOCK, **kwargs) -> None:  # noqa: ANN002, ANN003 - Retry's
        super().__init__(*args, **kwargs)
        self.clock = clock

    def new(self, **kw) -> AllianceRetry:  # noqa: ANN003 - Retry's keywords
        kw.setdefault("clock", self.clock)
        return super().new(**kw)

    def increment(self, method=None, url=None, response=None, error=None, _pool=None, _stacktrace=None):  # noqa: ANN001, ANN201, PLR0913 - Retry's
        """As Retry, except that a certificate the server cannot prove is final: no retry, no backoff (the
        certificate will not be valid in a second; the run fails at once with the TLS error)."""
        if isinstance(error, SSLError) and _certificate_rejected(error):
            raise MaxRetryError(_pool, url, error) from error
        return super().increment(method, url, response, error, _pool, _stacktrace)

    def sleep(self, response=None) -> None:  # noqa: ANN001 - urllib3's BaseHTTPResponse
        """The server's Retry-After when it gave one, else the exponential backoff; on the injected clock."""
        seconds = self.get_retry_after(response) if self.respect_retry_after_header and response else None
        self.clock.sleep(seconds or self.get_backoff_time())

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


class SourceSession(requests.Session):
    """A Session with a default (connect, read) timeout, an optional requests-per-second limit, and an origin.

    With `origin_url` set (the source's base_url), a request to any other scheme, host or port raises
    ForeignOriginError before anything is sent; without it, redirects are still held to the origin of the
    request that was redirected. Same-origin redirects are followed as requests does.
    """

    def __init__(self, policy: HttpPolicy, requests_per_second: float | None = None,
                 origin_url: str | None = None) -> None:
        super().__init__()
        self.policy = policy
        self.origin_url = origin_url
        self.retry: Retry = Retry(0)  # make_session mounts the policy's AllianceRetry and keeps it here
        self._interval = 1.0 / requests_per_second if requests_per_second else 0.0
        self._next_slot = 0.0
        self._slot_lock = threading.Lock()

    def _wait_for_slot(self) -> None:
        if not self._interval:
            return
        clock = self.policy.clock
        with self._slot_lock:
            now = clock.monotonic()
            wait = self._next_slot - now
            self._next_slot = max(now, self._next_slot) + self._interval
        if wait > 0:
            clock.sleep(wait)

    def request(self, method, url, *args, **kwargs):  # noqa: ANN001, ANN002, ANN003, ANN201 - requests' API
        if self.origin_url and not same_origin(url, self.origin_url):
            raise ForeignOriginError(url, self.origin_url, "a request")
        kwargs.setdefault("timeout", (self.policy.connect_timeout, self.policy.read_timeout))
        self._wait_for_slot()
        return super().request(method, url, *args, **kwargs)

    def rebuild_auth(self, prepared_request, response) -> None:  # noqa: ANN001 - requests' redirect hook
        """Called by requests before following each redirect: refuse one that leaves the origin.

        requests would strip Basic auth on a host change but re-send every other header (a Shopify
        access token) and keep auth across a port change; refusing is the only safe answer.
        """
        allowed = self.origin_url or response.request.url
        target = urljoin(response.url, prepared_request.url)
        if not same_origin(target, allowed):
            response.close()
            raise ForeignOriginError(target, allowed, f"a {response.status_code} redirect")
        super().rebuild_auth(prepared_request, response)


def make_session(policy: HttpPolicy | None = None, requests_per_second: float | None = None, *,
                 origin_url: str | None = None) -> SourceSession:
    """A session for one source: retry on 429/5xx and connection errors for GET, TLS verification on,
    nothing sent outside `origin_url` (the source's base_url) when given."""
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
        clock=policy.clock,
    )
    session = SourceSession(policy, requests_per_second, origin_url)
    session.retry = retry
    adapter = HTTPAdapter(max_retries=retry)
    session.mount("https://", adapter)
    session.mount("http://", adapter)
    session.verify = True
    session.headers["User-Agent"] = "alliance-connector/0.1"
    session.headers["Accept"] = "application/json"
    return session


def retry_body_cut(session: requests.Session, url: str, **kwargs) -> requests.Response:  # noqa: ANN003
    """GET `url` and read its body; an answer cut short mid-body is retried under the session's urllib3 Retry.

    Why: urllib3 retries what fails before the headers; requests reads the body afterwards, outside it. Handing
    the cut to the same Retry (`increment` as a read error, then its `sleep`) keeps one budget and one backoff.
    """
    retry: Retry = getattr(session, "retry", None) or Retry(0)
    while True:
        try:
            response = session.get(url, **kwargs)
            response.content  # noqa: B018 - read the body now, inside the retry
            return response
        except (requests.exceptions.ChunkedEncodingError, requests.exceptions.ContentDecodingError) as exc:
            try:
                retry = retry.increment("GET", url, error=ProtocolError(str(exc)))
            except (MaxRetryError, ProtocolError):  # the budget is spent
                raise exc from None
            retry.sleep()
