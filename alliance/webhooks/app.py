"""The webhook HTTP application (Starlette): refuse what is not a verified delivery, store what is, answer at once.

Routes (POST, body = the platform's JSON):
  /webhooks/shopify/<partner_id>      X-Shopify-Hmac-Sha256, X-Shopify-Webhook-Id, X-Shopify-Topic
  /webhooks/woocommerce/<partner_id>  X-WC-Webhook-Signature, X-WC-Webhook-Delivery-ID, X-WC-Webhook-Topic
  /webhooks/network/<network_id>      X-Alliance-Signature, X-Alliance-Delivery-Id (one click or a list)
GET /healthz: 200 when a pooled warehouse connection answers (no new connection per call).

The HTTP side connects as its own role (alliance_webhook_receiver: INSERT on raw.webhook_inbox and nothing else;
alliance/roles.py); the inbox processor and the outbox notifier, which land rows, use the loader's login.

Answers: a verified delivery, a duplicate or an unknown topic included, is stored in the inbox and gets 200 (a 4xx
makes Shopify retry and remove the subscription, and WooCommerce disable the webhook). Refused before anything is
stored: unknown source 404, bad signature 401, body over the cap 413 (checked on Content-Length and while
streaming: nothing past the cap is read), Transfer-Encoding with Content-Length 400, a body that does not arrive
within the read timeout (a lying Content-Length) 400; those close the connection. 503 only when the warehouse
cannot take the row (the sender retries).
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass

import anyio
import psycopg
from psycopg_pool import AsyncConnectionPool, PoolTimeout
from starlette.applications import Starlette
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from alliance.webhooks.inbox import Stored, prepare, store
from alliance.webhooks.sources import Source, signature_ok

log = logging.getLogger("alliance.webhooks")

@dataclass(frozen=True)
class Limits:
    """Defaults sized for partner webhooks: Shopify order bodies are far below 1 MB, senders wait 5 s or more."""

    max_body: int = 1_000_000  # bytes; more is refused with 413 without reading it
    header_timeout: float = 10.0  # seconds from connection (or first byte of a next request) to a complete head
    body_timeout: float = 10.0  # seconds for the whole body once the head has arrived
    max_in_flight: int = 512  # requests being handled (head received) at once; idle connections do not count
    pool_size: int = 4  # warehouse connections shared by all requests
    db_timeout: float = 3.0  # seconds to wait for a pooled connection before answering 503


class BodyError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def answer(status: int, message: str, *, close: bool = False) -> JSONResponse:
    headers = {"Connection": "close"} if close else None
    return JSONResponse({"status": status, "message": message}, status_code=status, headers=headers)


class InFlightLimit:
    """At most `limit` requests handled at once; more get 503 at once. Counts requests whose head has arrived, not
    connections (uvicorn's limit_concurrency counts connections, so idle ones would starve a real delivery)."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app = app
        self.limit = limit
        self.active = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if self.active >= self.limit:
            response = answer(503, "too many requests in flight; retry later", close=True)
            response.headers["Retry-After"] = "1"
            await response(scope, receive, send)
            return
        self.active += 1
        try:
            await self.app(scope, receive, send)
        finally:
            self.active -= 1


async def read_body(request: Request, limits: Limits) -> bytes:
    """The whole body within `body_timeout`, never more than `max_body` bytes of it."""
    chunks: list[bytes] = []
    size = 0
    try:
        async with asyncio.timeout(limits.body_timeout):
            async for chunk in request.stream():
                size += len(chunk)
                if size > limits.max_body:
                    raise BodyError(413, f"body over {limits.max_body} bytes")
                chunks.append(chunk)
    except TimeoutError:
        raise BodyError(400, f"body not complete within {limits.body_timeout:g} s (shorter than its "
                        "Content-Length?)") from None
    return b"".join(chunks)


def delivery_key(raw: bytes | None, body: bytes) -> str:
    """The sender's delivery id, or a digest of the body when it sent none usable (still once per body)."""
    text = raw.decode("latin-1").strip() if raw else ""
    if text and len(text) <= 200 and text.isprintable():
        return text
    return "sha256:" + hashlib.sha256(body).hexdigest()


def create_app(sources: dict[tuple[str, str], Source], warehouse_url: str, salt: str, *, limits: Limits,
               on_start: Callable[[], None] | None = None, on_stop: Callable[[], None] | None = None,
               on_stored: Callable[[], None] | None = None) -> ASGIApp:
    """The ASGI app. `on_start`/`on_stop` run with the app's lifespan (the inbox processor and the outbox
    notifier); `on_stored` is called after each newly stored delivery (wakes the processor)."""
    state: dict[str, AsyncConnectionPool] = {}

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        pool = AsyncConnectionPool(warehouse_url, min_size=1, max_size=limits.pool_size, open=False,
                                   kwargs={"autocommit": True, "connect_timeout": 10}, name="alliance-webhooks")
        await pool.open(wait=True, timeout=30)
        state["pool"] = pool
        if on_start:
            on_start()
        try:
            yield
        finally:
            if on_stop:
                await anyio.to_thread.run_sync(on_stop)
            await pool.close()

    async def healthz(request: Request) -> Response:
        try:
            async with state["pool"].connection(timeout=limits.db_timeout) as conn:
                # a SECURITY DEFINER function (alliance/migrations/0010): the HTTP side's role cannot read the inbox
                cur = await conn.execute("select pending, failed from raw.webhook_inbox_health()")
                pending, failed = await cur.fetchone()
        except (PoolTimeout, psycopg.Error) as exc:
            return answer(503, f"warehouse unavailable: {type(exc).__name__}")
        return JSONResponse({"status": 200, "message": "ok", "inbox_pending": pending, "inbox_failed": failed})

    async def webhook(request: Request) -> Response:
        key = (request.path_params["platform"], request.path_params["source_id"])
        source = sources.get(key)
        if source is None:
            return answer(404, f"no {key[0]} source `{key[1]}` with a webhook secret", close=True)  # body unread
        headers = dict(request.scope["headers"])  # raw bytes, names lower-cased by the server
        if b"transfer-encoding" in headers and b"content-length" in headers:
            return answer(400, "Transfer-Encoding together with Content-Length is refused", close=True)
        length = headers.get(b"content-length")
        if length is not None and length.isdigit() and int(length) > limits.max_body:
            return answer(413, f"body over {limits.max_body} bytes", close=True)
        try:
            body = await read_body(request, limits)
        except BodyError as exc:
            log.warning("refused %s %s: %d %s", *key, exc.status, exc.message)
            return answer(exc.status, exc.message, close=True)
        except ClientDisconnect:
            return answer(400, "client went away", close=True)
        platform = source.platform
        given = headers.get(platform.signature_header.encode())
        if given is None and platform.unsigned_ping is not None and platform.unsigned_ping.fullmatch(body.strip()):
            return answer(200, "webhook created: ping received")  # e.g. WooCommerce's unsigned creation ping
        if not signature_ok(source, given, body):
            log.warning("refused %s %s: 401 missing or wrong signature", *key)
            return answer(401, f"missing or wrong {platform.signature_header}")
        delivery_id = delivery_key(headers.get(platform.delivery_header.encode()), body)
        if platform.topic_header is None:
            topic = next(iter(platform.topics))
        else:
            topic = headers.get(platform.topic_header.encode(), b"").decode("latin-1").strip()[:200]
        ignored = topic not in platform.topics
        stored: Stored | None = None
        if not ignored:
            if len(body) > 65_536:  # scrubbing a large body must not stall every other request
                stored = await anyio.to_thread.run_sync(prepare, source, topic, body, salt)
            else:
                stored = prepare(source, topic, body, salt)
        try:
            new = await store(state["pool"], source, delivery_id, topic, stored, ignored=ignored,
                              timeout=limits.db_timeout)
        except (PoolTimeout, psycopg.Error) as exc:
            log.warning("%s %s delivery %s not stored (%s); answered 503 so the sender retries",
                        *key, delivery_id, type(exc).__name__)
            response = answer(503, "the inbox is unavailable; deliver again later")
            response.headers["Retry-After"] = "5"
            return response
        if new and not ignored and on_stored:
            on_stored()
        if ignored:
            message = f"topic `{topic}` is not handled; recorded as ignored"
        else:
            message = "stored" if new else "duplicate delivery: already stored"
        log.info("%s %s delivery %s (%s): %s", *key, delivery_id, topic, message)
        return answer(200, message)

    app = Starlette(routes=[
        Route("/healthz", healthz, methods=["GET"]),
        Route("/webhooks/{platform}/{source_id}", webhook, methods=["POST"]),
    ], lifespan=lifespan)
    return InFlightLimit(app, limits.max_in_flight)
