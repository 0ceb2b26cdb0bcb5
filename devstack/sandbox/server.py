"""Sandbox partner APIs over real HTTP: Shopify-style orders and a referral network's clicks.

Why: connectors, the demo and end-to-end tests need partner APIs that page, throttle, reject bad
credentials and fail like the real ones (PRODUCT.md §3), without the internet.

Routes (one server, one path prefix per source id):
  GET /<partner_id>/admin/api/2025-10/orders.json?status=any&limit=250&updated_at_min=...
      header X-Shopify-Access-Token; `updated_at_min` inclusive; ordered by (updated_at, id); paging by a
      `Link: <...page_info=...>; rel="next"` header (with page_info only `limit` may be passed, the other
      filters come from the opaque cursor); `limit` at most 250; a 40-call leaky bucket leaking 2 calls/s
      (`SandboxOptions.call_limit`, `leak_per_second`, timed by `SandboxOptions.clock`) reported in
      `X-Shopify-Shop-Api-Call-Limit: used/size` (429 + `Retry-After` when full).
  GET /<network_id>/Clicks?PageSize=1000&StartDate=...&Page=N
      HTTP Basic `sid:token`; EventDate >= StartDate; impact.com's list shape (PRODUCT.md §3):
      `{"@page": "1", "@numpages": "3", "@pagesize": "50", "@total": "120", ..., "@nextpageuri":
      "/<network_id>/Clicks?...&Page=2", "Clicks": [...]}`, every `@` field a string, `@nextpageuri` `""` on
      the last page; each click carries impact.com's extra fields (hashed IP, device, referring URL...).

Test knobs: `SandboxOptions.page_size` caps every page; `SandboxHandle.fail_first_n(source, n, ...)` makes the
next n requests of a source answer 429 (with `Retry-After` and/or `X-RateLimit-Reset`) or 503;
`SandboxHandle.requests` counts requests per source, `SandboxHandle.throttled` the 429s of a full bucket.
"""

from __future__ import annotations

import base64
import binascii
import bisect
import hashlib
import json
import math
import random
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlencode, urlsplit

from alliance.config import load_config
from connectors.clock import SYSTEM_CLOCK, Clock
from devstack.sandbox.shopify_graphql import API_VERSION as GRAPHQL_API_VERSION
from devstack.sandbox.shopify_graphql import GraphqlApi
from devstack.sandbox.world import World, build_world, parse_ts

SHOPIFY_API_VERSION = "2025-10"
SHOPIFY_MAX_LIMIT = 250
SHOPIFY_DEFAULT_LIMIT = 50
NETWORK_MAX_PAGE = 1000
NETWORK_DEFAULT_PAGE = 50
WOO_MAX_PAGE = 100
WOO_DEFAULT_PAGE = 10
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass
class Fault:
    """The next `remaining` requests of one source fail with `status` (429 or 503, say)."""

    remaining: int
    status: int = 429
    retry_after: str | None = "0.1"
    rate_limit_reset: str | None = None


@dataclass
class SandboxOptions:
    """Paging caps and fault injection; every rate is a probability per request (or per served page)."""

    page_size: int | None = None  # cap on every page, to force paging in tests
    call_limit: int = 40  # Shopify leaky bucket size
    leak_per_second: float = 2.0
    seed: int = 0  # the fault schedule is reproducible for a seed
    error_rate: float = 0.0  # answer 500/502/503 instead of the page
    burst_rate: float = 0.0  # start a burst of `burst_length` 429s (fractional Retry-After / X-RateLimit-Reset)
    burst_length: int = 3
    slow_rate: float = 0.0  # wait `slow_seconds` before answering
    slow_seconds: float = 0.5
    drop_rate: float = 0.0  # close the connection without an answer (or after half the body)
    malformed_rate: float = 0.0  # add a malformed record (not part of the ground truth) to a page
    change_rate: float = 0.0  # after a page, edit a not-yet-served order (it moves behind the sync)
    late_update_rate: float = 0.0  # after a page, edit an already-served order with a time just behind it
    late_by_seconds: float = 120.0  # how far behind the last served time a late update lands
    trash_share: float = 0.0  # on a WooCommerce storefront, the share of those edits that move the order to the trash
    clock: Clock = field(default=SYSTEM_CLOCK, compare=False)  # what the Shopify bucket leaks by
    woo_total_headers: bool = True  # False: WooCommerce pages without X-WP-Total(Pages), as a stripping proxy would
    # Shopify GraphQL Admin API (devstack/sandbox/shopify_graphql.py): the standard plan's cost bucket
    graphql_maximum: int = 2000  # points the bucket holds
    graphql_restore_rate: float = 100.0  # points restored per second (standard plan)
    graphql_all_orders: bool = True  # the token has read_all_orders; False: orders older than 60 days are hidden
    graphql_now: Callable[[], datetime] = field(default=lambda: datetime.now(UTC), compare=False)
    bulk_polls: int = 2  # polls of a bulk operation until it completes
    bulk_failure: str | None = None  # FAILED | EXPIRED | PARTIAL: how the next bulk operations end
    bulk_corrupt: Callable[[bytes], bytes] | None = field(default=None, compare=False)  # edits the JSONL served
    bulk_background: bool = False  # a bulk operation runs in a thread from its creation (benchmarks); polls read it
    bulk_files_kept: int = 4  # result files kept in memory, newest first
    static_world: bool = False  # the world never changes (benchmarks): orders are sorted (and converted) once

    @property
    def any_fault(self) -> bool:
        return any((self.error_rate, self.burst_rate, self.slow_rate, self.drop_rate, self.malformed_rate,
                    self.change_rate, self.late_update_rate))


@dataclass
class _State:
    world: World
    options: SandboxOptions
    faults: dict[str, Fault] = field(default_factory=dict)
    requests: Counter = field(default_factory=Counter)
    buckets: dict[str, tuple[float, float]] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)
    rng: random.Random = field(default_factory=random.Random)
    bursts: Counter = field(default_factory=Counter)
    injected: Counter = field(default_factory=Counter)  # fault name -> times injected
    throttled: Counter = field(default_factory=Counter)  # source -> 429s answered because its bucket was full
    edits: int = 0
    graphql: GraphqlApi | None = None
    sorted_orders: dict[tuple[str, str], tuple[list, list]] = field(default_factory=dict)  # static_world only

    def roll(self, rate: float) -> bool:
        if rate <= 0:
            return False
        with self.lock:
            return self.rng.random() < rate


def _encode_cursor(data: dict) -> str:
    return base64.urlsafe_b64encode(json.dumps(data, separators=(",", ":")).encode()).decode().rstrip("=")


def _decode_cursor(token: str) -> dict:
    padded = token + "=" * (-len(token) % 4)
    data = json.loads(base64.urlsafe_b64decode(padded.encode()))
    if not isinstance(data, dict):
        raise ValueError("cursor is not an object")
    return data


def _micros(text: object) -> int:
    try:
        ts = parse_ts(str(text))
    except (ValueError, TypeError):
        return 0
    return (ts - EPOCH) // _MICRO


_MICRO = datetime(1970, 1, 1, 0, 0, 0, 1, tzinfo=UTC) - EPOCH


def _order_key(order: dict) -> list:
    raw_id = order.get("id")
    try:
        number = int(raw_id)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        number = -1
    return [_micros(order.get("updated_at")), number, str(raw_id)]


def _order_key_any(order: dict) -> list:
    """(modified time, id) of a Shopify or WooCommerce order, in microseconds since the epoch."""
    if "date_modified_gmt" in order:
        return _woo_key(order, "date_modified_gmt")
    return _order_key(order)


def _woo_key(order: dict, field_name: str | None) -> list:
    raw_id = order.get("id")
    try:
        number = int(raw_id)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        number = -1
    if field_name is None:
        return [number, str(raw_id)]
    try:
        micros = _micros_from_start(str(order.get(field_name)))
    except ValueError:
        micros = 0
    return [micros, number, str(raw_id)]


def _click_key(click: dict) -> list:
    raw_id = str(click.get("Id"))
    return [_micros(click.get("EventDate")), len(raw_id), raw_id]


def _parse_start(text: str) -> datetime:
    text = text.strip()
    if len(text) == 10:
        return datetime.fromisoformat(text).replace(tzinfo=UTC)
    parsed = datetime.fromisoformat(text)
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


class _Handler(BaseHTTPRequestHandler):
    server_version = "AllianceSandbox/1.0"
    protocol_version = "HTTP/1.1"
    state: _State  # set on the subclass made per server

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - stdlib signature
        return  # quiet: request lines would carry no secrets, but tests and the demo stay readable

    # --- plumbing ----------------------------------------------------------------------------------
    def _send(self, status: int, body: object, headers: dict[str, str] | None = None) -> None:
        data = json.dumps(body, ensure_ascii=False).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:  # noqa: N802 - stdlib name
        parts = urlsplit(self.path)
        segments = [s for s in parts.path.split("/") if s]
        query = {k: v[-1] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
        world = self.state.world
        if not segments or segments[0] not in world.tokens:
            self._send(404, {"errors": "Not Found"})
            return
        source = segments[0]
        with self.state.lock:
            self.state.requests[source] += 1
        rest = segments[1:]
        if source in world.orders and rest == ["admin", "api", SHOPIFY_API_VERSION, "orders.json"]:
            self._shopify_orders(source, query)
        elif source in world.clicks and rest == ["Clicks"]:
            self._network_clicks(source, query)
        elif source in world.refunds and rest == ["wp-json", "wc", "v3", "orders"]:
            self._woo_orders(source, query)
        elif (source in world.refunds and len(rest) == 6 and rest[:4] == ["wp-json", "wc", "v3", "orders"]
              and rest[5] == "refunds"):
            self._woo_refunds(source, rest[4])
        else:
            self._send(404, {"errors": "Not Found"})

    def do_POST(self) -> None:  # noqa: N802 - stdlib name
        """Shopify's GraphQL Admin API: `POST /<partner>/admin/api/2025-10/graphql.json`, JSON body."""
        segments = [s for s in urlsplit(self.path).path.split("/") if s]
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        world, state = self.state.world, self.state
        if (len(segments) != 5 or segments[0] not in world.orders or segments[0] in world.refunds
                or segments[1:] != ["admin", "api", GRAPHQL_API_VERSION, "graphql.json"]):
            self._send(404, {"errors": "Not Found"})
            return
        partner_id = segments[0]
        with state.lock:
            state.requests[partner_id] += 1
        if self.headers.get("X-Shopify-Access-Token") != world.tokens[partner_id]:
            self._send(401, {"errors": "[API] Invalid API key or access token (unrecognized login or wrong password)"})
            return
        if self._fault(partner_id):
            return
        try:
            body = json.loads(raw or b"null")
        except ValueError:
            self._send(400, {"errors": {"query": "Required parameter missing or invalid"}})
            return
        assert state.graphql is not None
        status, answer = state.graphql.answer(partner_id, body)
        self._send(status, answer)

    def _fault(self, source: str) -> bool:
        """Scripted faults (fail_first_n) first, then the random ones of SandboxOptions."""
        opts, state = self.state.options, self.state
        with state.lock:
            fault = state.faults.get(source)
            scripted = bool(fault and fault.remaining > 0)
            if scripted:
                fault.remaining -= 1
            elif state.bursts[source] > 0:
                state.bursts[source] -= 1
                fault = Fault(1, 429, retry_after="0.05", rate_limit_reset="0.05")
            elif opts.burst_rate and state.rng.random() < opts.burst_rate:
                state.bursts[source] = max(0, opts.burst_length - 1)
                state.injected["429_burst"] += 1
                fault = Fault(1, 429, retry_after=state.rng.choice(["0.05", "0.1"]), rate_limit_reset="0.05")
            elif opts.error_rate and state.rng.random() < opts.error_rate:
                state.injected["error"] += 1
                fault = Fault(1, state.rng.choice([500, 502, 503]), retry_after=None)
            else:
                fault = None
        if fault is None:
            return self._random_transport_fault()
        headers = {}
        if fault.retry_after is not None:
            headers["Retry-After"] = fault.retry_after
        if fault.rate_limit_reset is not None:
            headers["X-RateLimit-Reset"] = fault.rate_limit_reset
        message = "Exceeded call limit, retry later" if fault.status == 429 else "Service temporarily unavailable"
        self._send(fault.status, {"errors": message}, headers)
        return True

    def _random_transport_fault(self) -> bool:
        """Slow answers (the request still succeeds) and dropped connections (it does not)."""
        opts, state = self.state.options, self.state
        if state.roll(opts.slow_rate):
            with state.lock:
                state.injected["slow"] += 1
            time.sleep(opts.slow_seconds)
        if state.roll(opts.drop_rate):
            with state.lock:
                state.injected["drop"] += 1
            if state.roll(0.5):  # half the drops send headers and half a body first
                self.send_response(200)
                self.send_header("Content-Type", "application/json; charset=utf-8")
                self.send_header("Content-Length", "100000")
                self.end_headers()
                self.wfile.write(b'{"orders": [')
            self.wfile.flush()
            self.close_connection = True
            try:
                self.connection.shutdown(2)
            except OSError:
                pass
            return True
        return False

    def _with_malformed(self, records: list) -> list:
        """Maybe add one record that fails validation; it is not part of the ground truth."""
        state = self.state
        if not state.roll(state.options.malformed_rate):
            return records
        with state.lock:
            state.injected["malformed"] += 1
            n = state.injected["malformed"]
            kind = state.rng.choice(["no_id", "bad_amount", "bad_date", "wrong_type"])
        junk = {"no_id": {"id": None, "note": f"junk {n}"},
                "bad_amount": {"id": 9_900_000_000 + n, "subtotal_price": "12,50", "total": "x", "note": "junk",
                               "line_items": [{"total": "twelve"}]},
                "bad_date": {"id": 9_900_000_000 + n, "updated_at": "yesterday", "date_modified_gmt": "yesterday"},
                "wrong_type": "not an order"}[kind]
        position = state.rng.randrange(len(records) + 1) if records else 0
        return [*records[:position], junk, *records[position:]]

    def _after_page(self, source: str, served: list[tuple[dict, list]]) -> None:
        """Faults that change the data under the sync: edits ahead of it and late edits behind it."""
        state, opts, world = self.state, self.state.options, self.state.world
        if not served:
            return
        if state.roll(opts.change_rate):
            with world.lock:
                served_ids = {str(o.get("id")) for o, _ in served}
                last = served[-1][1]
                ahead = [o for o in world.orders[source]  # (an earlier, killed pass may have landed it: as below)
                         if _order_key_any(o) > last and str(o.get("id")) not in served_ids
                         and not _cancelled_without_time(o)]
                if ahead:
                    victim, edit = self._pick(ahead, "change")
                    if self._trashes(victim):  # a shop manager trashes it while the sync runs
                        world.update_order(source, victim["id"], status="trash")
                    else:
                        world.update_order(source, victim["id"], note=f"edited mid-sync {edit}")
        if state.roll(opts.late_update_rate):
            with world.lock:
                # visible only now, stamped a little behind the newest change: the sync has passed it
                newest = EPOCH + _MICRO * max(_order_key_any(o)[0] for o in world.orders[source])
                at = (newest - timedelta(seconds=opts.late_by_seconds)).replace(microsecond=0)
                last = served[-1][1]
                # never an order already cancelled without a cancellation time of its own (WooCommerce cancelled /
                # failed / trash, Shopify voided without cancelled_at): its cancellation time is that of the first
                # version alliance landed (PRODUCT.md §3), which an oracle reading the storefront's current state
                # cannot know; tests/test_deletions.py covers that rule with an explicit version history
                behind = [o for o in world.orders[source]
                          if _order_key_any(o) <= last and EPOCH + _MICRO * _order_key_any(o)[0] < at
                          and not _cancelled_without_time(o)]
                if behind:
                    victim, edit = self._pick(behind, "late_update")
                    if self._trashes(victim):
                        world.touch_order(source, victim["id"], at, status="trash")
                    else:
                        world.touch_order(source, victim["id"], at, note=f"late edit {edit}")

    def _pick(self, candidates: list[dict], fault: str) -> tuple[dict, int]:
        """One order to edit, drawn from the fault schedule's generator, counted as `fault`; and the edit's number."""
        state = self.state
        with state.lock:
            state.edits += 1
            state.injected[fault] += 1
            return state.rng.choice(candidates), state.edits

    def _trashes(self, victim: dict) -> bool:
        """Whether this edit of a WooCommerce order trashes it (counted as a `trash` fault). No draw is taken when
        `trash_share` is 0, so fault schedules without it stay what they were."""
        state = self.state
        if not state.options.trash_share or "date_modified_gmt" not in victim or victim.get("status") == "trash":
            return False
        with state.lock:
            if state.rng.random() >= state.options.trash_share:
                return False
            state.injected["trash"] += 1
        return True

    def _page_size(self, requested: str | None, default: int, maximum: int) -> int:
        size = default if requested in (None, "") else int(requested)
        if size < 1:
            raise ValueError("must be at least 1")
        size = min(size, maximum)
        if self.state.options.page_size:
            size = min(size, self.state.options.page_size)
        return size

    # --- Shopify ------------------------------------------------------------------------------------
    def _bucket(self, source: str) -> tuple[bool, str]:
        """Shopify's leaky bucket: returns (allowed, 'n/40')."""
        opts = self.state.options
        now = opts.clock.monotonic()
        with self.state.lock:
            level, last = self.state.buckets.get(source, (0.0, now))
            level = max(0.0, level - (now - last) * opts.leak_per_second)
            allowed = level + 1 <= opts.call_limit
            if allowed:
                level += 1
            self.state.buckets[source] = (level, now)
        return allowed, f"{max(1, math.ceil(level))}/{opts.call_limit}"

    def _shopify_orders(self, partner_id: str, query: dict[str, str]) -> None:
        world = self.state.world
        if self.headers.get("X-Shopify-Access-Token") != world.tokens[partner_id]:
            self._send(401, {"errors": "[API] Invalid API key or access token (unrecognized login or wrong password)"})
            return
        if self._fault(partner_id):
            return
        allowed, level = self._bucket(partner_id)
        if not allowed:
            with self.state.lock:
                self.state.throttled[partner_id] += 1
            self._send(429, {"errors": "Exceeded 2 calls per second for api client. Reduce request rates to resume "
                             "uninterrupted service."}, {"Retry-After": "1.0", "X-Shopify-Shop-Api-Call-Limit": level})
            return
        headers = {"X-Shopify-Shop-Api-Call-Limit": level}
        try:
            limit = self._page_size(query.get("limit"), SHOPIFY_DEFAULT_LIMIT, SHOPIFY_MAX_LIMIT)
        except ValueError:
            self._send(400, {"errors": {"limit": ["Invalid value."]}}, headers)
            return
        if "page_info" in query:
            extra = set(query) - {"page_info", "limit", "fields"}
            try:
                cursor = _decode_cursor(query["page_info"])
                if extra:
                    raise ValueError
            except (ValueError, binascii.Error, UnicodeDecodeError):
                self._send(400, {"errors": {"page_info": ["Invalid value."]}}, headers)
                return
            minimum, status, after = cursor.get("min"), cursor.get("status", "open"), cursor.get("after")
        else:
            status, after = query.get("status", "open"), None
            minimum = None
            if query.get("updated_at_min"):
                try:
                    minimum = _micros_or_raise(query["updated_at_min"])
                except ValueError:
                    self._send(400, {"errors": {"updated_at_min": ["Invalid value."]}}, headers)
                    return
        if self.state.options.static_world:  # a benchmark's world never changes: sort it once, bisect per page
            page, more = self._static_page(partner_id, status, minimum, after, limit)
            body = {"orders": [o for o, _ in page]}
        else:
            with world.lock:
                candidates = [(o, _order_key(o)) for o in world.orders[partner_id] if _status_matches(o, status)]
                if minimum is not None:
                    candidates = [(o, k) for o, k in candidates if k[0] >= minimum]
                if after is not None:
                    candidates = [(o, k) for o, k in candidates if k > after]
                candidates.sort(key=lambda pair: pair[1])
                page = candidates[:limit]
                more = len(candidates) > limit
                body = json.loads(json.dumps({"orders": self._with_malformed([o for o, _ in page])}))
        if more:
            token = _encode_cursor({"min": minimum, "status": status, "after": page[-1][1]})
            host = self.headers.get("Host", f"{self.server.server_address[0]}:{self.server.server_address[1]}")
            link = (f"http://{host}/{partner_id}/admin/api/{SHOPIFY_API_VERSION}/orders.json?"
                    + urlencode({"limit": limit, "page_info": token}))
            headers["Link"] = f'<{link}>; rel="next"'
        self._send(200, body, headers)
        self._after_page(partner_id, page)

    def _static_page(self, partner_id: str, status: str, minimum: int | None, after: list | None,
                     limit: int) -> tuple[list[tuple[dict, list]], bool]:
        """One page of a world that never changes, from a sorted copy made once (`SandboxOptions.static_world`)."""
        state = self.state
        with state.lock:
            cached = state.sorted_orders.get((partner_id, status))
            if cached is None:
                pairs = sorted(((o, _order_key(o)) for o in state.world.orders[partner_id]
                                if _status_matches(o, status)), key=lambda pair: pair[1])
                cached = state.sorted_orders[(partner_id, status)] = ([k for _, k in pairs], pairs)
        keys, pairs = cached
        start = 0
        if minimum is not None:
            start = bisect.bisect_left(keys, [minimum])
        if after is not None:
            start = max(start, bisect.bisect_right(keys, after))
        return pairs[start:start + limit], len(pairs) - start > limit

    # --- referral network ---------------------------------------------------------------------------
    def _network_clicks(self, network_id: str, query: dict[str, str]) -> None:
        """impact.com's list shape: `Clicks` beside string `@` paging fields; `Page` starts at 1."""
        world = self.state.world
        if not self._basic_auth_ok(world.tokens[network_id]):
            self._send(401, {"code": 20003, "message": "Authenticate", "status": 401},
                       {"WWW-Authenticate": 'Basic realm="alliance-network"'})
            return
        if self._fault(network_id):
            return
        try:
            size = self._page_size(query.get("PageSize"), NETWORK_DEFAULT_PAGE, NETWORK_MAX_PAGE)
            page_number = int(query.get("Page") or 1)
            if page_number < 1:
                raise ValueError("Page starts at 1")
            start = _micros_from_start(query["StartDate"]) if query.get("StartDate") else None
        except ValueError as exc:
            self._send(400, {"code": 20001, "message": f"Invalid parameter: {exc}", "status": 400})
            return
        with world.lock:
            keyed = [(c, _click_key(c)) for c in world.clicks[network_id]]
            if start is not None:
                keyed = [(c, k) for c, k in keyed if k[0] >= start]
            keyed.sort(key=lambda pair: pair[1])
            total = len(keyed)
            page = keyed[(page_number - 1) * size: page_number * size]
            clicks = [impact_click(c) for c, _ in page]
        self._send(200, impact_list_page("Clicks", clicks, f"/{network_id}/Clicks", query, page_number, size, total))

    # --- WooCommerce ---------------------------------------------------------------------------------
    def _woo_auth(self, partner_id: str) -> bool:
        if self._basic_auth_ok(self.state.world.tokens[partner_id]):
            return True
        self._send(401, {"code": "woocommerce_rest_cannot_view", "message": "Sorry, you cannot list resources.",
                         "data": {"status": 401}})
        return False

    def _woo_orders(self, partner_id: str, query: dict[str, str]) -> None:
        """`per_page` (max 100), `page`, `modified_after` (exclusive), `orderby` date|id|modified, `order`, `status`.

        `status` is a comma-separated list (WordPress `wp_parse_list`), default `any`; as in WordPress's WP_Query,
        `any` leaves out trashed orders unless `trash` is listed too (woocommerce/woocommerce#21595)."""
        if not self._woo_auth(partner_id) or self._fault(partner_id):
            return
        world = self.state.world
        try:
            per_page = self._page_size(query.get("per_page"), WOO_DEFAULT_PAGE, WOO_MAX_PAGE)
            page_number = int(query.get("page") or 1)
            if page_number < 1:
                raise ValueError("page must be at least 1")
            after = _micros_from_start(query["modified_after"]) if query.get("modified_after") else None
            orderby = query.get("orderby", "date")
            if orderby not in ("date", "id", "modified"):
                raise ValueError(f"orderby {orderby}")
            descending = query.get("order", "desc") == "desc"
            statuses = {part.strip() for part in (query.get("status") or "any").split(",") if part.strip()}
        except ValueError as exc:
            self._send(400, {"code": "rest_invalid_param", "message": f"Invalid parameter(s): {exc}",
                             "data": {"status": 400}})
            return
        field_name = {"date": "date_created_gmt", "modified": "date_modified_gmt", "id": None}[orderby]
        with world.lock:
            keyed = [(o, _woo_key(o, field_name)) for o in world.orders[partner_id]
                     if _woo_status_listed(o.get("status"), statuses)]
            if after is not None:
                keyed = [(o, k) for o, k in keyed if _woo_key(o, "date_modified_gmt")[0] > after]
            keyed.sort(key=lambda pair: pair[1], reverse=descending)
            total = len(keyed)
            page = keyed[(page_number - 1) * per_page: page_number * per_page]
            body = json.loads(json.dumps(self._with_malformed([o for o, _ in page])))
        headers = {}
        if self.state.options.woo_total_headers:
            headers = {"X-WP-Total": str(total), "X-WP-TotalPages": str(max(1, math.ceil(total / per_page)))}
        self._send(200, body, headers)
        if orderby == "modified" and not descending:
            self._after_page(partner_id, [(o, _order_key_any(o)) for o, _ in page])

    def _woo_refunds(self, partner_id: str, order_id: str) -> None:
        if not self._woo_auth(partner_id) or self._fault(partner_id):
            return
        world = self.state.world
        with world.lock:
            refunds = world.refunds.get(partner_id, {}).get(order_id)
            body = json.loads(json.dumps(refunds)) if refunds is not None else None
        if body is None:
            self._send(404, {"code": "woocommerce_rest_shop_order_invalid_id", "message": "Invalid ID.",
                             "data": {"status": 404}})
            return
        self._send(200, body)

    def _basic_auth_ok(self, expected: str) -> bool:
        header = self.headers.get("Authorization", "")
        if not header.startswith("Basic "):
            return False
        try:
            return base64.b64decode(header[6:].strip()).decode() == expected
        except (ValueError, binascii.Error, UnicodeDecodeError):
            return False


def impact_list_page(resource: str, items: list, path: str, query: dict[str, str], page_number: int, size: int,
                     total: int) -> dict:
    """One page of an impact.com list: every paging field a string, URIs relative to the host, `""` at the ends.

    https://integrations.impact.com/impact-publisher/reference/pagination: `@page` (from 1), `@numpages`,
    `@pagesize`, `@total`, `@start`/`@end` (zero-indexed positions), `@uri`, `@firstpageuri`,
    `@previouspageuri`, `@nextpageuri`, `@lastpageuri`, then the list named for the resource.
    """
    numpages = max(1, math.ceil(total / size))
    base = {k: v for k, v in query.items() if k != "Page"}
    base["PageSize"] = str(size)

    def uri(number: int) -> str:
        return f"{path}?" + urlencode({**base, "Page": number})

    first = (page_number - 1) * size
    return {
        "@page": str(page_number),
        "@numpages": str(numpages),
        "@pagesize": str(size),
        "@total": str(total),
        "@start": str(first),
        "@end": str(first + max(len(items), 1) - 1),
        "@uri": uri(page_number),
        "@firstpageuri": uri(1),
        "@previouspageuri": uri(page_number - 1) if 1 < page_number <= numpages + 1 else "",
        "@nextpageuri": uri(page_number + 1) if page_number < numpages else "",
        "@lastpageuri": uri(numpages),
        resource: items,
    }


def impact_click(click: dict) -> dict:
    """A world click as impact.com's Clicks API serves it: our contract fields plus the ones the real API adds.

    The extra fields follow the click object of impact.com's docs
    (https://integrations.impact.com/impact-publisher/reference/retrieve-click): numbers as strings, a hashed
    IP address, device and location, the referring and landing URLs. alliance uses none of them; they are
    there so data minimisation has something real to drop. Derived from the click id: same click, same
    fields, whatever the page.
    """
    digest = hashlib.sha1(f"alliance-sandbox-click:{click.get('Id')}".encode()).hexdigest()
    pick = int(digest[:8], 16)
    referrer = str(click.get("ReferrerPartnerId") or "partner")
    destination = str(click.get("DestinationPartnerId") or "store")
    device, family, browser, os_name = [
        ("DESKTOP", "LINUX_MACHINE", "FIREFOX", "LINUX"), ("MOBILE", "IPHONE", "SAFARI", "IOS"),
        ("MOBILE", "ANDROID_PHONE", "CHROME", "ANDROID"), ("TABLET", "IPAD", "SAFARI", "IOS"),
        ("DESKTOP", "WINDOWS_MACHINE", "EDGE", "WINDOWS")][pick % 5]
    city, region, country, area = [("Santa Barbara", "CA", "US", "805"), ("Austin", "TX", "US", "512"),
                                   ("Lyon", "ARA", "FR", "n/a"), ("Osaka", "27", "JP", "n/a")][pick // 5 % 4]
    extras = {
        "CampaignId": "1000",
        "CampaignName": "Alliance Partner Program",
        "ProfileId": f"{digest[:8]}-{digest[8:12]}-{digest[12:16]}-{digest[16:20]}-{digest[20:32]}",
        "IpAddress": digest,  # impact.com serves the IP hashed
        "MediaId": str(10_000 + sum(map(ord, referrer))),
        "MediaName": referrer.replace("_", " ").title(),
        "AdId": str(600_000 + pick % 1000),
        "AdName": f"{destination.title()} spotlight",
        "AdType": ["TEXT_LINK", "BANNER", "CONTENT", "COUPON"][pick % 4],
        "CustomerArea": area,
        "CustomerCity": city,
        "CustomerRegion": region,
        "CustomerCountry": country,
        "DeviceType": device,
        "DeviceFamily": family,
        "Browser": browser,
        "Os": os_name,
        "ReferringUrl": f"https://{referrer.replace('_', '-')}.example.com/picks/{pick % 97}",
        "ReferringDomain": f"{referrer.replace('_', '-')}.example.com",
        "LandingPageUrl": f"https://{destination}.example.com/?irclickid={click.get('Id')}&irgwc=1",
        "SubId1": "",
        "SharedId": "",
        "UniqueClick": "true" if pick % 3 else "false",
    }
    return {"Id": click.get("Id"), **extras, **json.loads(json.dumps(click))}  # Id first, as impact.com


def _micros_or_raise(text: str) -> int:
    return (parse_ts(text) - EPOCH) // _MICRO


def _micros_from_start(text: str) -> int:
    return (_parse_start(text) - EPOCH) // _MICRO


def _cancelled_without_time(order: dict) -> bool:
    """Cancelled by status alone: WooCommerce `cancelled`/`failed`/`trash`, Shopify `voided` without `cancelled_at`."""
    if "date_modified_gmt" in order:
        return order.get("status") in ("cancelled", "failed", "trash")
    return order.get("financial_status") == "voided" and not order.get("cancelled_at")


def _woo_status_listed(status: object, listed: set[str]) -> bool:
    """WooCommerce's `status` filter: `any` is every status but `trash`; named statuses match themselves."""
    if status in listed:
        return True
    return "any" in listed and status != "trash"


def _status_matches(order: dict, status: str) -> bool:
    if status == "any":
        return True
    if status == "cancelled":
        return bool(order.get("cancelled_at"))
    if status == "closed":
        return bool(order.get("closed_at"))
    return not order.get("cancelled_at") and not order.get("closed_at")  # open (the default)


class _FileHandler(BaseHTTPRequestHandler):
    """The presigned-URL host of bulk operation results (Shopify serves them from cloud storage, not the shop):
    `GET /bulk/<token>.jsonl?...`. A request carrying a Shopify access token is refused: nothing of the shop's
    credentials belongs on this host."""

    server_version = "AllianceSandboxStorage/1.0"
    protocol_version = "HTTP/1.1"
    state: _State

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - stdlib signature
        return

    def do_GET(self) -> None:  # noqa: N802 - stdlib name
        path = urlsplit(self.path).path
        data = None
        if path.startswith("/bulk/") and path.endswith(".jsonl") and self.state.graphql is not None:
            data = self.state.graphql.file(path[len("/bulk/"):-len(".jsonl")])
        if self.headers.get("X-Shopify-Access-Token") or self.headers.get("Authorization"):
            status, data = 400, b"<Error><Code>InvalidArgument</Code><Message>credentials are not accepted with a "
            data += b"signed URL</Message></Error>"
        elif data is None:
            status, data = 404, b"<Error><Code>NoSuchKey</Code></Error>"
        else:
            status = 200
        self.send_response(status)
        self.send_header("Content-Type", "application/jsonl" if status == 200 else "application/xml")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


class SandboxHandle:
    """A running sandbox: `.url`, `.port`, `.stop()`, plus test knobs."""

    def __init__(self, server: ThreadingHTTPServer, thread: threading.Thread, state: _State,
                 files: tuple[ThreadingHTTPServer, threading.Thread] | None = None) -> None:
        self._server = server
        self._thread = thread
        self._state = state
        self._files = files
        host, port = server.server_address[:2]
        self.port: int = port
        self.url: str = f"http://{host}:{port}"
        self.world = state.world
        self.options = state.options

    @property
    def requests(self) -> Counter:
        """Requests received per source id (including failed ones)."""
        return self._state.requests

    def fail_first_n(self, source_id: str, n: int, status: int = 429, retry_after: str | None = "0.1",
                     rate_limit_reset: str | None = None) -> None:
        """Make the next n requests of `source_id` fail with `status` before they are served."""
        with self._state.lock:
            self._state.faults[source_id] = Fault(n, status, retry_after, rate_limit_reset)

    @property
    def throttled(self) -> Counter:
        """429s answered per source because its Shopify call-limit bucket was full."""
        return self._state.throttled

    @property
    def injected(self) -> Counter:
        """How many times each random fault was injected (error, 429_burst, slow, drop, malformed, ...)."""
        return self._state.injected

    @property
    def graphql(self) -> GraphqlApi:
        """The GraphQL Admin API's state: cost buckets, THROTTLED answers, bulk operations."""
        assert self._state.graphql is not None
        return self._state.graphql

    def stop(self) -> None:
        for server, thread in [(self._server, self._thread), *([self._files] if self._files else [])]:
            server.shutdown()
            server.server_close()
            thread.join(timeout=5)

    def __enter__(self) -> SandboxHandle:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


class _QuietServer(ThreadingHTTPServer):
    """A client that hangs up mid-request (a killed ingest, a dropped connection) is normal here, not a traceback."""

    daemon_threads = True

    def handle_error(self, request, client_address) -> None:  # noqa: ANN001 - socketserver's signature
        if isinstance(sys.exc_info()[1], ConnectionError | TimeoutError):
            return
        super().handle_error(request, client_address)


def _make_server(world: World, host: str, port: int, options: SandboxOptions | None) -> tuple[ThreadingHTTPServer,
                                                                                              _State]:
    options = options or SandboxOptions()
    state = _State(world=world, options=options, rng=random.Random(options.seed))
    state.graphql = GraphqlApi(world, options)
    handler = type("SandboxHandler", (_Handler,), {"state": state})
    return _QuietServer((host, port), handler), state


def _start_files(state: _State, host: str) -> tuple[ThreadingHTTPServer, threading.Thread]:
    """The bulk results' storage host: another port, so the connector must fetch it without the shop's token."""
    files = _QuietServer((host, 0), type("StorageHandler", (_FileHandler,), {"state": state}))
    bound_host, bound_port = files.server_address[:2]
    assert state.graphql is not None
    state.graphql.file_base = f"http://{bound_host}:{bound_port}"
    thread = threading.Thread(target=files.serve_forever, name=f"sandbox-files-{bound_port}", daemon=True)
    thread.start()
    return files, thread


def start_sandbox(world: World, host: str = "127.0.0.1", port: int = 0,
                  options: SandboxOptions | None = None) -> SandboxHandle:
    """Serve `world` from a background thread; port 0 picks a free port."""
    server, state = _make_server(world, host, port, options)
    files = _start_files(state, host)
    thread = threading.Thread(target=server.serve_forever, name=f"sandbox-{server.server_address[1]}", daemon=True)
    thread.start()
    return SandboxHandle(server, thread, state, files)


def serve_forever(world: World, host: str = "127.0.0.1", port: int = 8765,
                  options: SandboxOptions | None = None) -> None:
    """Serve `world` in the foreground until interrupted."""
    server, state = _make_server(world, host, port, options)
    files, _ = _start_files(state, host)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        files.shutdown()
        server.server_close()


def run_sandbox(config_path: str | None, host: str, port: int, seed: int,
                options: SandboxOptions | None = None) -> None:
    """The `alliance sandbox` command: build the world for the config and serve it until Ctrl-C."""
    config = load_config(config_path, require_secrets=False)
    world = build_world(config, seed)
    server, state = _make_server(world, host, port, options)
    _start_files(state, host)
    bound_host, bound_port = server.server_address[:2]
    url = f"http://{bound_host}:{bound_port}"
    orders = sum(len(v) for v in world.orders.values())
    clicks = sum(len(v) for v in world.clicks.values())
    print(f"alliance sandbox serving {orders} orders and {clicks} clicks (seed {seed}) at {url}", flush=True)
    print(f"  export ALLIANCE_SANDBOX_URL={url}   # tokens: config/sandbox.env", flush=True)
    if options is not None and options.any_fault:
        print(f"  injecting faults: {options}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()

