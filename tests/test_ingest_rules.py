"""Cursor rules, request-rate limit and the fast e-mail scrub, each against the real thing it protects."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import timedelta

import psycopg
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from support.ingest import FAST, WOO_PARTNER, three_platform_config_file, three_platform_sandbox

from alliance.config import load_config
from connectors.errors import SourceRef
from connectors.http import make_session
from connectors.ingest import IngestOptions, ingest_source
from connectors.pii import scrub, scrub_to_json
from connectors.woocommerce import ModifiedWindowPaginator
from devstack.sandbox.server import SandboxOptions


@pytest.fixture()
def sandbox(tmp_path, monkeypatch):
    yield from three_platform_sandbox(tmp_path, monkeypatch, SandboxOptions(page_size=25))


@pytest.mark.parametrize("partner", ["northwind", WOO_PARTNER])
def test_cursor_never_passes_sync_start_minus_skew_and_next_run_overlaps(sandbox, warehouse, partner):
    sandbox.world.update_order(partner, sandbox.world.orders[partner][3]["id"], note="edited just now")
    options = IngestOptions(**{**FAST.__dict__, "skew": timedelta(minutes=5), "lookback": timedelta(minutes=10)})
    first = ingest_source(sandbox.config, partner, warehouse, options=options)
    assert first.status == "succeeded" and first.landed == 120
    with psycopg.connect(warehouse) as conn:
        cursor, started = conn.execute("select c.cursor_value, l.started_at from raw.cursors c join raw.loads l "
                                       "on l.load_id = %s where c.source_id = %s", (first.load_id, partner)).fetchone()
    assert cursor <= started - timedelta(minutes=5)  # the edit is newer, but the cursor stops short of it
    second = ingest_source(sandbox.config, partner, warehouse, options=options)
    with psycopg.connect(warehouse) as conn:
        cursor_from = conn.execute("select cursor_from from raw.loads where load_id = %s",
                                   (second.load_id,)).fetchone()[0]
    assert cursor_from == cursor - timedelta(minutes=10)  # inclusive lower bound minus the lookback overlap
    assert second.status == "succeeded" and second.landed == 0 and second.pages >= 1


class FakeClock:
    """A monotonic clock that moves only when the limiter sleeps: the spacing is read from it, not from the wall."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def test_requests_per_second_from_config_spaces_requests(sandbox):
    clock = FakeClock()
    session = make_session(replace(FAST.http, clock=clock), requests_per_second=20)
    stamps = []
    send = session.send

    def timed_send(request, **kwargs):  # noqa: ANN001, ANN003, ANN202 - requests' API
        stamps.append(clock.monotonic())  # when the request leaves, on the limiter's clock
        return send(request, **kwargs)

    session.send = timed_send
    pages = ModifiedWindowPaginator(page_size=25).pages(session, f"{sandbox.url}/{WOO_PARTNER}",
                                                        "ck_sandbox_lumen:cs_sandbox_lumen",
                                                        SourceRef(WOO_PARTNER, "LUMEN_TOKEN"), None)
    assert sum(1 for _ in pages) >= 4
    # 20/s: every request after the first waits for its slot, 50 ms after the previous one (refund calls count too)
    assert len(stamps) >= 5 and clock.sleeps == pytest.approx([0.05] * (len(stamps) - 1))
    assert [b - a for a, b in zip(stamps, stamps[1:], strict=False)] == pytest.approx([0.05] * (len(stamps) - 1))
    assert session.verify is True
    unlimited = FakeClock()
    with make_session(replace(FAST.http, clock=unlimited)) as free:
        assert free.get(f"{sandbox.url}/{WOO_PARTNER}/wp-json/wc/v3/orders", timeout=10).status_code == 401
    assert unlimited.sleeps == []  # no limit configured: never waits


def test_config_requests_per_second_reaches_the_session(tmp_path):
    text = three_platform_config_file(tmp_path).read_text().replace(
        "    credentials_env: LUMEN_TOKEN\n", "    credentials_env: LUMEN_TOKEN\n    requests_per_second: 2.5\n")
    path = tmp_path / "rate.yml"
    path.write_text(text)
    lumen = next(p for p in load_config(path, require_secrets=False).partners if p.id == WOO_PARTNER)
    assert lumen.requests_per_second == 2.5


json_leaves = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False, allow_infinity=False),
                        st.text(max_size=12), st.sampled_from([" Ann@Example.test\u00a0", "mail bob@x.org now",
                                                               "a\"b@c.de\"\n", "x@y", "\\u0040@q.io",
                                                               "/p?email=Bo.X%40Mail.IO&ref=LUMEN15", "a%40b",
                                                               "line\nzoé%40exämple.de\t", "q\\%40r.st"]))
json_docs = st.recursive(json_leaves, lambda inner: st.one_of(
    st.lists(inner, max_size=4),
    st.dictionaries(st.sampled_from(["email", "Email", "contact_email", "verified_email", "note", "id", "e-mail",
                                     "CustomerEmail", "x"]), inner, max_size=5)), max_leaves=20)


@settings(max_examples=300, deadline=None)
@given(doc=json_docs)
def test_text_scrub_equals_the_dict_walk(doc):
    assert json.loads(scrub_to_json(doc, "salt")) == scrub(doc, "salt")


def _woo_order(line_total: str, modified: str = "2026-10-05T12:00:00") -> dict:
    return {"id": 901, "status": "processing", "currency": "USD", "date_created_gmt": "2026-10-05T10:00:00",
            "date_modified_gmt": modified, "customer_id": 0, "billing": {"email": ""},
            "line_items": [{"id": 1, "product_id": 7, "quantity": 1, "total": line_total}], "coupon_lines": [],
            "meta_data": [], "refunds": []}


def test_same_updated_at_with_other_content_replaces_and_an_identical_rerun_does_not(warehouse):
    """§7: WooCommerce does not always move date_modified when line items change, so a version with an equal
    updated_at and different content replaces the stored one; the same version again, or an older one, does not."""
    import uuid
    from datetime import UTC, datetime

    from connectors.landing import ensure_raw_schema, land_orders_page

    cap = datetime(2026, 10, 5, 11, tzinfo=UTC)
    as_of = datetime(2026, 10, 6, tzinfo=UTC)

    def land(order: dict) -> int:
        with psycopg.connect(warehouse) as conn:
            return land_orders_page(conn, uuid.uuid4(), "shop", "woocommerce", [order], salt="s", cursor_cap=cap,
                                    as_of=as_of).landed

    def stored() -> tuple:
        with psycopg.connect(warehouse) as conn:
            return conn.execute("select payload->'line_items'->0->>'total', loaded_at from raw.orders").fetchone()

    with psycopg.connect(warehouse) as conn:
        ensure_raw_schema(conn)
    assert land(_woo_order("40.00")) == 1
    assert land(_woo_order("55.00")) == 1, "same date_modified, other line items: replaces"
    total, loaded_at = stored()
    assert total == "55.00"
    assert land(_woo_order("55.00")) == 0, "the same version re-read by the overlap is left alone"
    assert stored() == (total, loaded_at)
    assert land(_woo_order("10.00", modified="2026-10-05T11:59:59")) == 0, "an older version never replaces"
    assert stored()[0] == "55.00"
