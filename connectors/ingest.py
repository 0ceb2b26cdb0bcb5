"""Entry point of ingestion (the CLI and Airflow call these): pull every source into raw.*, each isolated.

Why: one partner's outage, bad token or throttling must not stop the others; each result says in one line
what failed and how to fix it. Tokens and e-mails never reach a log line or a message.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from alliance.config import AllianceConfig, Partner, ReferralNetwork
from alliance.warehouse import WarehouseError, connect
from connectors.credentials import ConnectionLookup, MissingCredentials, credentials_label, read_secret
from connectors.errors import SourceError, SourceRef
from connectors.http import HttpPolicy, make_session
from connectors.landing import (
    ensure_raw_schema,
    finish_load,
    land_clicks_page,
    land_orders_page,
    read_bulk_operation,
    read_cursor,
    start_load,
    try_lock_source,
)
from connectors.paging import Page
from connectors.pii import PiiError, pii_salt
from connectors.platform import Platform
from connectors.platforms import PreparedPage, UnknownPlatform, prepare_page
from connectors.platforms import get as get_platform

log = logging.getLogger("alliance.ingest")


@dataclass(frozen=True)
class IngestOptions:
    """Knobs with production defaults; tests shrink page sizes and backoff."""

    lookback: timedelta = timedelta(minutes=10)  # next run re-reads from cursor - lookback (inclusive)
    skew: timedelta = timedelta(minutes=5)  # the cursor never passes sync start - skew
    shopify_page_size: int = 250
    network_page_size: int = 1000
    woocommerce_page_size: int = 100
    shopify_bulk_min_orders: int = 1000  # shopify_graphql: a long re-read of fewer orders is paged, not bulk
    http: HttpPolicy = field(default_factory=HttpPolicy)
    # "now" for the run: the sync start the cursor is capped by (minus skew) and the warehouse clock of the
    # future-dated check (PRODUCT.md §7); None = the real clock (datetime.now, PostgreSQL's now() per page). Tests only.
    as_of: datetime | None = None
    # where `credentials_conn` secrets are looked up (alliance.airflow_credentials); None: environment only
    connections: ConnectionLookup | None = field(default=None, compare=False)


@dataclass
class IngestResult:
    source_id: str
    entity: str  # orders | clicks
    load_id: str | None = None
    pages: int = 0
    landed: int = 0
    quarantined: int = 0
    status: str = "succeeded"  # succeeded | failed | skipped
    error: str | None = None
    warnings: list[str] = field(default_factory=list)  # what the source hid from the pull (Shopify's 60-day window)

    @property
    def ok(self) -> bool:
        return self.status in ("succeeded", "skipped")

    def summary(self) -> str:
        if self.status == "failed":
            return f"FAILED {self.error}"
        if self.status == "skipped":
            return f"skipped {self.source_id}: {self.error}"
        warned = "".join(f"; WARNING {w}" for w in self.warnings)
        return (f"{self.source_id}: {self.landed} {self.entity} landed, {self.quarantined} quarantined "
                f"in {self.pages} page(s){warned}")


def _find_source(config: AllianceConfig, source_id: str) -> Partner | ReferralNetwork | None:
    for source in [*config.partners, *config.referral_networks]:
        if source.id == source_id:
            return source
    return None


def source_credentials(source: Partner | ReferralNetwork, connections: ConnectionLookup | None = None) -> str:
    """The source's secret from `credentials_env` or the connection `credentials_conn`, as a SourceError if absent."""
    try:
        return read_secret(source, connections)
    except MissingCredentials as exc:
        raise SourceError(str(exc)) from None


def ingest_source(config: AllianceConfig, source_id: str, warehouse_url: str | None = None, *,
                  options: IngestOptions | None = None) -> IngestResult:
    """Pull one storefront's orders or one network's clicks incrementally into raw.*; never raises."""
    options = options or IngestOptions()
    source = _find_source(config, source_id)
    if source is None:
        return IngestResult(source_id, "orders", status="failed",
                            error=f"{source_id}: not a partner or referral network in {config.source_file}")
    name = "referral_network" if isinstance(source, ReferralNetwork) else source.platform
    entity = "clicks" if isinstance(source, ReferralNetwork) else "orders"
    result = IngestResult(source_id, entity)
    if name == "none":
        result.status, result.error = "skipped", "platform none (refers shoppers only, no storefront to pull)"
        return result
    try:
        platform = get_platform(name)
    except UnknownPlatform as exc:
        result.status, result.error = "failed", f"{source_id}: {exc}"
        return result
    try:
        with connect(warehouse_url) as conn:
            ensure_raw_schema(conn)
            if not try_lock_source(conn, source_id, entity):
                raise SourceError(f"{source_id}: another ingest of {entity} is already running; wait for it to end")
            # Each page commits its rows together with its cursor; if the server crashes before a commit
            # reaches disk, both are lost together and the rerun fetches the page again: safe to skip the
            # per-page fsync wait.
            conn.execute("set synchronous_commit = off")
            conn.commit()
            cursor = read_cursor(conn, source_id, entity)
            since = cursor - options.lookback if cursor else None
            sync_start = options.as_of or datetime.now(UTC)  # before raw.loads.started_at: cursor <= it - skew
            load_id = start_load(conn, source_id, entity, platform.name, since)
            result.load_id = str(load_id)
            try:
                _pull(conn, source, platform, since, sync_start - options.skew, load_id, result, options)
            except (SourceError, PiiError) as exc:
                result.status, result.error = "failed", str(exc)
            except Exception as exc:  # noqa: BLE001 - isolate the source; the message must still say what broke
                log.exception("%s: unexpected error while ingesting %s", source_id, entity)
                result.status, result.error = "failed", f"{source_id}: {type(exc).__name__}: {exc}"
            finish_load(conn, load_id, result.status, result.error)
    except SourceError as exc:
        result.status, result.error = "failed", str(exc)
    except WarehouseError as exc:
        result.status, result.error = "failed", f"{source_id}: {exc}"
    log.info("%s", result.summary())
    return result


def _pull(conn, source: Partner | ReferralNetwork, platform: Platform, since: datetime | None,  # noqa: ANN001
          cap: datetime, load_id, result: IngestResult, options: IngestOptions) -> None:  # noqa: ANN001
    salt = pii_salt()
    credentials = source_credentials(source, options.connections)
    ref = SourceRef(source.id, credentials_label(source))
    paginator = platform.paginator(getattr(options, platform.page_size_option))
    if hasattr(paginator, "resume_bulk"):  # a bulk result the last run was landing when it stopped
        paginator.resume_bulk = read_bulk_operation(conn, source.id, platform.entity)
        paginator.bulk_min_orders = options.shopify_bulk_min_orders
    session = make_session(options.http, source.requests_per_second, origin_url=source.base_url)
    with session:
        pages = paginator.pages(session, source.base_url or "", credentials, ref, since)
        for page, prepared in _prefetched(pages, lambda p: prepare_page(platform.name, p.records, salt)):
            if platform.entity == "orders":
                outcome = land_orders_page(conn, load_id, source.id, platform.name, prepared, salt=salt,
                                           cursor_cap=cap, as_of=options.as_of, move_cursor=not page.hold_cursor,
                                           bulk_operation=(page.bulk_operation, page.bulk_done)
                                           if page.bulk_operation else None)
            else:
                outcome = land_clicks_page(conn, load_id, source.id, prepared, salt=salt, cursor_cap=cap,
                                           as_of=options.as_of)
            if outcome.held_from is not None:  # a held-back future-dated record: no later page moves past it
                cap = min(cap, outcome.held_from)
            result.pages += 1
            result.landed += outcome.landed
            result.quarantined += outcome.quarantined
            log.info("%s: page %d from %s: %d landed, %d quarantined", source.id, page.number, page.url,
                     outcome.landed, outcome.quarantined)
    result.warnings.extend(getattr(paginator, "warnings", ()))


_DONE = object()


def _prefetched(pages: Iterator[Page], prepare: Callable[[Page], PreparedPage],
                depth: int = 2) -> Iterator[tuple[Page, PreparedPage]]:
    """Fetch and prepare the next pages in a helper thread while this one lands the current page.

    Why: HTTP waits and PostgreSQL's work then overlap instead of adding up. At most `depth` pages wait
    in the queue, so memory stays flat however long the sync; an error in the helper is re-raised here,
    and stopping early (an exception while landing) tells the helper to stop.
    """
    out: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def produce() -> None:
        try:
            for page in pages:
                item = (page, prepare(page))
                while not stop.is_set():
                    try:
                        out.put(item, timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
            out.put(_DONE)
        except BaseException as exc:  # noqa: BLE001 - handed to the consumer, which re-raises it
            out.put(exc)

    worker = threading.Thread(target=produce, name="ingest-fetch", daemon=True)
    worker.start()
    try:
        while True:
            item = out.get()
            if item is _DONE:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        while worker.is_alive():
            try:
                out.get(timeout=0.1)
            except queue.Empty:
                pass


def ingest_all(config: AllianceConfig, warehouse_url: str | None = None, *,
               options: IngestOptions | None = None, max_workers: int = 4) -> list[IngestResult]:
    """Every storefront and referral network in parallel threads; results in config order.

    Platform `none` partners have nothing to pull and are left out. One source failing never stops another.
    """
    sources = [p.id for p in config.storefronts] + [n.id for n in config.referral_networks]
    if not sources:
        return []
    try:
        with connect(warehouse_url) as conn:
            ensure_raw_schema(conn)
    except WarehouseError as exc:
        return [IngestResult(s, "orders", status="failed", error=f"{s}: {exc}") for s in sources]
    with ThreadPoolExecutor(max_workers=max(1, min(max_workers, len(sources))),
                            thread_name_prefix="ingest") as pool:
        futures = [pool.submit(ingest_source, config, s, warehouse_url, options=options) for s in sources]
        return [f.result() for f in futures]
