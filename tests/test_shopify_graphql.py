"""platform: shopify_graphql: the GraphQL Admin API connector against the sandbox's GraphQL endpoint.

The sandbox's cost bucket and the client's waits run on ONE injected clock (as tests/test_shopify_throttle.py):
each fake sleep the client makes is exactly the time the sandbox's bucket sees restore. Nothing here waits for,
or measures, real time.
"""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import psycopg
import pytest
import requests
import yaml
from test_shopify_throttle import FakeClock

from alliance.config import load_config
from connectors.errors import SourceError, SourceRef
from connectors.http import HttpPolicy, make_session
from connectors.ingest import IngestOptions, ingest_source
from connectors.pii import customer_key
from connectors.records import RecordError
from connectors.shopify_bulk import RUN_BULK, BulkFile, bulk_query
from connectors.shopify_graphql import CostPagedOrders, landing_page, validate_order
from connectors.shopify_graphql_client import CostBudget, GraphqlClient, GraphqlError
from devstack.sandbox.env import load_sandbox_env
from devstack.sandbox.server import SandboxOptions, start_sandbox
from devstack.sandbox.shopify_graphql import public, served_orders, to_graphql
from devstack.sandbox.world import build_world, shopify_token

ROOT = Path(__file__).resolve().parents[1]
WORLD_CONFIG = ROOT / "tests" / "data" / "oracle_alliance.yml"
FIXTURES = ROOT / "tests" / "fixtures" / "shopify_graphql"
PARTNER = "tidewater"  # the e2e world's shopify_graphql storefront
SALT = "test-salt"


def _config(tmp_path: Path, platform: str = "shopify_graphql") -> Path:
    """oracle_alliance.yml with tidewater on `platform` (paths made absolute)."""
    raw = yaml.safe_load(WORLD_CONFIG.read_text())
    for partner in raw["partners"]:
        if partner["id"] == PARTNER:
            partner["platform"] = platform
    for key in ("fx_rates", "alerts", "adjustments", "reviews"):  # the files the world's config names
        if raw.get(key):
            raw[key] = str((WORLD_CONFIG.parent / raw[key]).resolve())
    path = tmp_path / f"alliance_{platform}.yml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


@pytest.fixture()
def clock():
    return FakeClock()


@pytest.fixture()
def world(tmp_path):
    return build_world(load_config(_config(tmp_path), require_secrets=False), seed=42)


def _client(sandbox, clock: FakeClock, token: str | None = None) -> GraphqlClient:
    session = make_session(HttpPolicy(backoff_factor=0.01, clock=clock), origin_url=sandbox.url)
    return GraphqlClient.for_session(session, f"{sandbox.url}/{PARTNER}", token or shopify_token(PARTNER),
                                     SourceRef(PARTNER, "TIDEWATER_TOKEN"))


def _all_pages(sandbox, clock, page_size=250, since=None) -> list:
    pager = CostPagedOrders(page_size, bulk_after=None)
    session = make_session(HttpPolicy(backoff_factor=0.01, clock=clock), origin_url=sandbox.url)
    pages = pager.pages(session, f"{sandbox.url}/{PARTNER}", shopify_token(PARTNER),
                        SourceRef(PARTNER, "TIDEWATER_TOKEN"), since)
    return [record for page in pages for record in page.records]


# --- the mapping: a GraphQL Order lands as the record REST lands ------------------------------------------------

def test_every_order_maps_to_the_rest_record_of_the_same_order(world):
    """order_id, amounts, codes, landing ref, customer key, refunds and cancellation agree with the REST order."""
    from connectors.shopify import validate_order as validate_rest

    checked = 0
    for rest in world.orders[PARTNER]:
        graphql = public(to_graphql(PARTNER, rest))
        mine, theirs = validate_order(graphql, 1, SALT), validate_rest(copy.deepcopy(rest), 1, SALT)
        assert (mine.key, mine.timestamp, mine.customer_key) == (theirs.key, theirs.timestamp, theirs.customer_key)
        landed, stored = json.loads(mine.payload_json), json.loads(theirs.payload_json)
        assert landed["id"] == stored["id"] and Decimal(landed["subtotal_price"]) == Decimal(stored["subtotal_price"])
        assert [d["code"] for d in landed["discount_codes"]] == [d["code"] for d in stored["discount_codes"]]
        ref = parse_qs(urlsplit(stored["landing_site"] or "").query).get("ref")
        assert parse_qs(urlsplit(landed["landing_site"] or "").query).get("ref") == ref
        assert bool(landed["cancelled_at"]) == bool(stored["cancelled_at"])
        assert landed["financial_status"] == stored["financial_status"] and landed["test"] == stored["test"]
        for mine_refund, rest_refund in zip(landed["refunds"], stored["refunds"], strict=True):
            when = datetime.fromisoformat
            assert when(mine_refund["created_at"]) == when(rest_refund["created_at"])
            assert sum(Decimal(i["subtotal"]) for i in mine_refund["refund_line_items"]) == \
                sum(Decimal(i["subtotal"]) for i in rest_refund["refund_line_items"])
        checked += 1
    assert checked == len(world.orders[PARTNER]) > 100


def test_landing_page_falls_back_to_the_deprecated_landing_page_url(world):
    """No journey summary yet (`ready: false`): the deprecated landingPageUrl still carries the `ref`."""
    orders = [public(to_graphql(PARTNER, o)) for o in world.orders[PARTNER]]
    without = [o for o in orders if not (o["customerJourneySummary"] or {}).get("lastVisit")]
    assert without, "the sandbox serves some orders without a journey summary"
    for order in without:
        assert landing_page(order) == order["landingPageUrl"]


def test_a_bad_order_is_refused_with_its_graphql_field_and_no_value():
    order = json.loads((FIXTURES / "orders_page.json").read_text())["data"]["orders"]["nodes"][0]
    bad = dict(order, subtotalPriceSet={"shopMoney": {"amount": "12,50", "currencyCode": "USD"}})
    with pytest.raises(RecordError) as caught:
        validate_order(bad, 3, SALT)
    assert "subtotalPriceSet.shopMoney.amount is not a number" in str(caught.value)
    assert "12,50" not in str(caught.value)
    with pytest.raises(RecordError, match="position 2 of the page: missing legacyResourceId"):
        validate_order(dict(order, legacyResourceId=None), 2, SALT)
    cut = copy.deepcopy(order)
    cut["refunds"][0]["refundLineItems"]["pageInfo"]["hasNextPage"] = True
    with pytest.raises(RecordError, match="incomplete"):
        validate_order(cut, 1, SALT)


def test_fixture_order_reads_as_documented():
    """tests/fixtures/shopify_graphql/orders_page.json is shaped as shopify.dev shows an orders answer."""
    body = json.loads((FIXTURES / "orders_page.json").read_text())
    order = body["data"]["orders"]["nodes"][0]
    valid = validate_order(order, 1, SALT)
    landed = json.loads(valid.payload_json)
    assert valid.key == "5340000000001" and landed["id"] == 5340000000001
    assert landed["subtotal_price"] == "20.0" and landed["landing_site"].endswith("?ref=NORTHWIND10")
    assert landed["refunds"][0]["refund_line_items"][0]["subtotal"] == "5.0"
    assert valid.customer_key == customer_key("shopper@example.test", SALT)
    assert body["extensions"]["cost"]["throttleStatus"]["maximumAvailable"] == 2000.0


# --- throttling on the injected clock ----------------------------------------------------------------------------

def test_pages_wait_for_the_cost_bucket_instead_of_being_throttled(world, clock):
    """A 400-point bucket restoring 20/s: every order arrives, the client waited, the sandbox never said THROTTLED."""
    options = SandboxOptions(graphql_maximum=400, graphql_restore_rate=20.0, clock=clock)
    with start_sandbox(world, options=options) as sandbox:
        records = _all_pages(sandbox, clock)
        assert sandbox.graphql.throttled.get(PARTNER, 0) == 0
        assert max(sandbox.graphql.costs[PARTNER]) <= 400, "page size follows the bucket's reported cost"
    assert sorted(r["legacyResourceId"] for r in records) == sorted(str(o["id"]) for o in world.orders[PARTNER])
    assert clock.sleeps and sum(clock.sleeps) > 0


def test_throttled_answer_is_waited_out_and_retried(world, clock):
    """THROTTLED comes as HTTP 200 with an error code and no data: read the bucket, wait, retry."""
    options = SandboxOptions(graphql_maximum=1000, graphql_restore_rate=50.0, clock=clock)
    with start_sandbox(world, options=options) as sandbox:
        drain = {"query": "{ orders(first: 30) { nodes { id refunds { id } customer { id } } } }"}
        headers = {"X-Shopify-Access-Token": shopify_token(PARTNER)}
        url = f"{sandbox.url}/{PARTNER}/admin/api/2025-10/graphql.json"
        while True:  # empty the bucket as another app would
            body = requests.post(url, json=drain, headers=headers, timeout=10).json()
            if body.get("errors"):
                assert body["errors"][0]["extensions"]["code"] == "THROTTLED" and "data" not in body
                assert body["extensions"]["cost"]["actualQueryCost"] is None
                break
        data, _ = _client(sandbox, clock).query(drain["query"])  # knows nothing of the bucket yet
        assert sandbox.graphql.throttled[PARTNER] == 2, "the drain's last query and the client's first"
        assert len(data["orders"]["nodes"]) == 30 and clock.sleeps, "waited on the clock, then answered"
        records = _all_pages(sandbox, clock, page_size=20)
        # a new client knows nothing of the bucket: its first (cheap) query may be refused, never a later one
        assert sandbox.graphql.throttled[PARTNER] <= 3, "after its first answer the pager waits instead"
    assert len(records) == len(world.orders[PARTNER])


def test_http_429_and_503_are_retried(world, clock):
    with start_sandbox(world, options=SandboxOptions(clock=clock)) as sandbox:
        sandbox.fail_first_n(PARTNER, 2, status=503, retry_after=None)
        client = _client(sandbox, clock)
        data, cost = client.query("{ orders(first: 1) { nodes { legacyResourceId } } }")
        assert len(data["orders"]["nodes"]) == 1 and cost["requestedQueryCost"] > 0
        sandbox.fail_first_n(PARTNER, 1, status=429, retry_after="2.0")
        client.query("{ orders(first: 1) { nodes { legacyResourceId } } }")
    assert 2.0 in clock.sleeps


def test_max_cost_is_avoided_by_a_smaller_page(world, clock):
    """The client's first guess of an order's cost is too low for this query: MAX_COST_EXCEEDED, then half pages."""
    with start_sandbox(world, options=SandboxOptions(clock=clock)) as sandbox:
        client = _client(sandbox, clock)
        with pytest.raises(GraphqlError) as caught:
            client.query("{ orders(first: 250) { nodes { refunds(first: 20) { id totalRefundedSet { shopMoney "
                         "{ amount } } } } } }")
        assert caught.value.codes == ("MAX_COST_EXCEEDED",) and caught.value.cost > 1000
        assert str(caught.value).startswith(f"{PARTNER}: GraphQL errors")
        records = _all_pages(sandbox, clock)
        assert max(sandbox.graphql.costs[PARTNER]) <= 1000
    assert len(records) == len(world.orders[PARTNER])


def test_graphql_errors_and_a_bad_token_name_the_partner(world, clock):
    with start_sandbox(world, options=SandboxOptions(clock=clock)) as sandbox:
        with pytest.raises(GraphqlError, match=rf"^{PARTNER}: GraphQL errors .*noSuchField"):
            _client(sandbox, clock).query("{ orders(first: 1) { nodes { noSuchField } } }")
        with pytest.raises(SourceError, match=rf"^{PARTNER}: 401 .*check the token in TIDEWATER_TOKEN"):
            _client(sandbox, clock, token="wrong").query("{ orders(first: 1) { nodes { id } } }")


def test_refund_line_items_beyond_the_first_page_are_fetched(world, clock):
    """An order with 7 refund line items: the orders page carries 3, RefundLines pages bring the rest."""
    rest = copy.deepcopy(world.orders[PARTNER][0])
    rest["id"] = 5_999_000_001
    items = [{"id": 91_000 + i, "quantity": 1, "line_item_id": 1, "subtotal": "1.50"} for i in range(7)]
    rest["refunds"] = [{"id": 93_000, "created_at": rest["updated_at"], "refund_line_items": items}]
    world.orders[PARTNER] = [rest]
    with start_sandbox(world, options=SandboxOptions(clock=clock)) as sandbox:
        records = _all_pages(sandbox, clock)
    lines = records[0]["refunds"][0]["refundLineItems"]["nodes"]
    assert len(lines) == 7 and {line["id"] for line in lines} == {f"gid://shopify/RefundLineItem/{91_000 + i}"
                                                                  for i in range(7)}
    assert Decimal(json.loads(validate_order(records[0], 1, SALT).payload_json)["refunds"][0]["refund_line_items"][6]
                   ["subtotal"]) == Decimal("1.5")


def test_orders_hidden_without_read_all_orders_are_reported(world, clock, caplog):
    """Without read_all_orders Shopify shows 60 days of orders: a first pull says so, naming the partner and fix."""
    options = SandboxOptions(clock=clock, graphql_all_orders=False,
                             graphql_now=lambda: datetime(2026, 12, 1, tzinfo=UTC))
    with start_sandbox(world, options=options) as sandbox:
        pager = CostPagedOrders()
        session = make_session(HttpPolicy(clock=clock), origin_url=sandbox.url)
        records = [r for page in pager.pages(session, f"{sandbox.url}/{PARTNER}", shopify_token(PARTNER),
                                             SourceRef(PARTNER, "TIDEWATER_TOKEN"), None) for r in page.records]
    assert 0 < len(records) < len(world.orders[PARTNER])
    assert pager.warnings and pager.warnings[0].startswith(f"{PARTNER}: ") and "read_all_orders" in pager.warnings[0]


# --- landing: same keys as REST, switching duplicates nothing ----------------------------------------------------

def _raw_orders(url: str) -> dict[str, tuple]:
    with psycopg.connect(url) as conn:
        return {oid: (platform, updated, key) for oid, platform, updated, key in conn.execute(
            "select order_id, platform, updated_at, customer_key from raw.orders where partner_id = %s", (PARTNER,))}


def test_switching_from_rest_to_graphql_reloads_and_duplicates_nothing(warehouse, tmp_path, monkeypatch):
    """Load tidewater through REST, switch it to shopify_graphql, load again (incrementally, then from scratch):
    the same rows, keyed by the REST id, each once; then the published tables match the oracle."""
    import oracle
    from test_end_to_end import AS_OF, assert_matches_oracle

    from alliance.run import transform
    from connectors.ingest import ingest_all

    load_sandbox_env()
    monkeypatch.setenv("ALLIANCE_HOME", str(tmp_path / "home"))
    rest_config, graphql_config = _config(tmp_path, "shopify"), _config(tmp_path, "shopify_graphql")
    from devstack.sandbox.world import woocommerce_credentials

    monkeypatch.setenv("LUMEN_TOKEN", woocommerce_credentials("lumen"))
    world = build_world(load_config(graphql_config, require_secrets=False), seed=42)
    options = IngestOptions(shopify_page_size=50)
    with start_sandbox(world) as sandbox:
        monkeypatch.setenv("ALLIANCE_SANDBOX_URL", sandbox.url)
        first = ingest_source(load_config(rest_config), PARTNER, warehouse, options=options)
        assert first.ok and first.landed == len(world.orders[PARTNER]), first.summary()
        before = _raw_orders(warehouse)
        edited = world.orders[PARTNER][5]["id"]
        world.update_order(PARTNER, edited, note="edited after the switch")
        second = ingest_source(load_config(graphql_config), PARTNER, warehouse, options=options)
        assert second.ok, second.summary()
        after = _raw_orders(warehouse)
        assert set(after) == set(before), "the same order ids: nothing duplicated, nothing lost"
        assert after[str(edited)][0] == "shopify_graphql" and second.landed < len(before), "incremental, not a reload"
        assert not sandbox.graphql.shop(PARTNER).bulk, "days behind but few orders to read: paged, not bulk"
        assert all(after[k][2] == before[k][2] for k in before), "customer keys as REST landed them"
        with psycopg.connect(warehouse) as conn:  # from scratch through GraphQL: still one row per order
            conn.execute("delete from raw.cursors where source_id = %s", (PARTNER,))
        third = ingest_source(load_config(graphql_config), PARTNER, warehouse, options=options)
        assert third.ok and set(_raw_orders(warehouse)) == set(before), third.summary()
        assert len(sandbox.graphql.shop(PARTNER).bulk) == 1, "a first load is a bulk operation"
        others = ingest_all(load_config(graphql_config), warehouse)
        assert all(r.ok for r in others), [r.summary() for r in others]
        outcome = transform(load_config(graphql_config), warehouse, as_of=AS_OF)
        assert outcome.published, outcome.failures
        with world.lock:
            truth = oracle.compute(oracle.load_config(graphql_config), None, served_orders(world), world.clicks,
                                   AS_OF, refunds=world.refunds, alerts_as_of=AS_OF)
    assert any(o.partner_id == PARTNER and o.refunds for o in truth.orders.values())
    assert_matches_oracle(warehouse, truth)



# --- bulk backfills ------------------------------------------------------------------------------------------------

def _bulk_env(tmp_path, monkeypatch, world, clock, **sandbox_options):
    """A sandbox on `clock`, the GraphQL config, and ingest options whose waits (polls, throttle) use `clock`."""
    load_sandbox_env()
    sandbox = start_sandbox(world, options=SandboxOptions(clock=clock, **sandbox_options))
    monkeypatch.setenv("ALLIANCE_SANDBOX_URL", sandbox.url)
    options = IngestOptions(shopify_page_size=40, http=HttpPolicy(backoff_factor=0.01, clock=clock))
    return sandbox, load_config(_config(tmp_path)), options


def _landed(url: str) -> dict[str, dict]:
    with psycopg.connect(url) as conn:
        return {oid: payload for oid, payload in conn.execute(
            "select order_id, payload from raw.orders where partner_id = %s", (PARTNER,))}


def _quarantined(url: str) -> list[str]:
    with psycopg.connect(url) as conn:
        return [r for (r,) in conn.execute("select reason from raw.quarantine where source_id = %s order by reason",
                                           (PARTNER,))]


def _kept_operation(url: str):
    with psycopg.connect(url) as conn:
        return conn.execute("select bulk_operation_id from raw.cursors where source_id = %s", (PARTNER,)).fetchone()[0]


def _cursor(url: str):
    with psycopg.connect(url) as conn:
        row = conn.execute("select cursor_value from raw.cursors where source_id = %s", (PARTNER,)).fetchone()
    return row[0] if row else None


def test_first_load_is_one_bulk_operation_with_refunds_and_line_items(warehouse, tmp_path, monkeypatch, world, clock):
    """Every order lands once, with its refund line items (by nodes(ids:) queries) and line items (child lines that
    come after their parent, not always right below it); the JSONL is fetched without the shop's token."""
    sandbox, config, options = _bulk_env(tmp_path, monkeypatch, world, clock)
    with sandbox:
        result = ingest_source(config, PARTNER, warehouse, options=options)
        operations = sandbox.graphql.shop(PARTNER).bulk
        (jsonl,) = sandbox.graphql.shop(PARTNER).files.values()
    assert result.ok and result.quarantined == 0, result.summary()
    assert [op.status for op in operations] == ["COMPLETED"], "one bulk operation, polled until it completed"
    lines = [json.loads(line) for line in jsonl.splitlines()]
    parents = [i for i, line in enumerate(lines) if "__parentId" not in line]
    late = [i for i, line in enumerate(lines) if "__parentId" in line and lines[i - 1].get("id") != line["__parentId"]
            and "__parentId" not in lines[i - 1]]
    assert parents and late, "some child lines come after later parents: the reader must regroup them"
    landed = _landed(warehouse)
    assert set(landed) == {str(o["id"]) for o in world.orders[PARTNER]}
    for order in world.orders[PARTNER]:
        mine = landed[str(order["id"])]
        assert len(mine["line_items"]) == len(order["line_items"])
        assert [sum(Decimal(i["subtotal"]) for i in r["refund_line_items"]) for r in mine["refunds"]] == \
            [sum(Decimal(i["subtotal"]) for i in r["refund_line_items"]) for r in order["refunds"]]
    newest = max(datetime.fromisoformat(o["updated_at"]) for o in world.orders[PARTNER])
    assert _cursor(warehouse) == newest, "the cursor ends at the newest change, as after paged queries"


def test_a_run_killed_while_shopify_works_adopts_its_operation(warehouse, tmp_path, monkeypatch, world, clock):
    """OPERATION_IN_PROGRESS: the shop's running operation is ours (same query), so the rerun polls it instead of
    starting another; nothing lands twice."""
    sandbox, config, options = _bulk_env(tmp_path, monkeypatch, world, clock)
    with sandbox:
        data, _ = _client(sandbox, clock).query(RUN_BULK, {"query": bulk_query(None)})  # the killed run's start
        started = data["bulkOperationRunQuery"]["bulkOperation"]["id"]
        result = ingest_source(config, PARTNER, warehouse, options=options)
        operations = sandbox.graphql.shop(PARTNER).bulk
    assert result.ok, result.summary()
    assert [op.id for op in operations] == [started], "adopted, not started again"
    assert set(_landed(warehouse)) == {str(o["id"]) for o in world.orders[PARTNER]}


def test_a_run_killed_while_landing_resumes_without_duplicates(warehouse, tmp_path, monkeypatch, world, clock):
    """Killed after two pages: the cursor is where those pages left it and the operation's id is kept with it; the
    rerun reads that operation's result again (no second operation) and lands the rest, once."""
    import connectors.ingest as ingest

    sandbox, config, options = _bulk_env(tmp_path, monkeypatch, world, clock)
    real = ingest.land_orders_page
    calls = []

    def dies_on_the_third_page(*args, **kwargs):
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt("killed")
        return real(*args, **kwargs)

    with sandbox:
        monkeypatch.setattr(ingest, "land_orders_page", dies_on_the_third_page)
        with pytest.raises(KeyboardInterrupt):
            ingest_source(config, PARTNER, warehouse, options=options)
        monkeypatch.setattr(ingest, "land_orders_page", real)
        halfway = _landed(warehouse)
        assert 0 < len(halfway) < len(world.orders[PARTNER]) and _cursor(warehouse) is not None
        (started,) = [op.id for op in sandbox.graphql.shop(PARTNER).bulk]
        assert _kept_operation(warehouse) == started, "the operation's id is kept with the cursor"
        result = ingest_source(config, PARTNER, warehouse, options=options)
        assert [op.id for op in sandbox.graphql.shop(PARTNER).bulk] == [started], "its result read again"
    assert result.ok, result.summary()
    assert _kept_operation(warehouse) is None, "cleared once its last page landed"
    with psycopg.connect(warehouse) as conn:
        rows = conn.execute("select count(*), count(distinct order_id) from raw.orders where partner_id = %s",
                            (PARTNER,)).fetchone()
    assert rows == (len(world.orders[PARTNER]),) * 2


def test_a_kept_operation_whose_result_is_gone_is_replaced(warehouse, tmp_path, monkeypatch, world, clock):
    """The kept operation's file has expired meanwhile: the rerun starts a new operation and still lands all, once."""
    import connectors.ingest as ingest

    sandbox, config, options = _bulk_env(tmp_path, monkeypatch, world, clock)
    real = ingest.land_orders_page
    calls = []

    def dies_on_the_second_page(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt("killed")
        return real(*args, **kwargs)

    with sandbox:
        monkeypatch.setattr(ingest, "land_orders_page", dies_on_the_second_page)
        with pytest.raises(KeyboardInterrupt):
            ingest_source(config, PARTNER, warehouse, options=options)
        monkeypatch.setattr(ingest, "land_orders_page", real)
        assert _kept_operation(warehouse) is not None
        sandbox.graphql.shop(PARTNER).files.clear()  # the presigned URL now answers 404
        result = ingest_source(config, PARTNER, warehouse, options=options)
        operations = sandbox.graphql.shop(PARTNER).bulk
    assert result.ok, result.summary()
    assert len(operations) == 2 and _kept_operation(warehouse) is None
    with psycopg.connect(warehouse) as conn:
        rows = conn.execute("select count(*), count(distinct order_id) from raw.orders where partner_id = %s",
                            (PARTNER,)).fetchone()
    assert rows == (len(world.orders[PARTNER]),) * 2


def test_a_malformed_jsonl_line_is_quarantined_and_the_rest_lands(warehouse, tmp_path, monkeypatch, world, clock):
    def corrupt(data: bytes) -> bytes:
        lines = data.splitlines(keepends=True)
        broken = json.loads(lines[3])
        broken["subtotalPriceSet"]["shopMoney"]["amount"] = "12,50"  # a bad value in a whole line
        lines[3] = json.dumps(broken).encode() + b"\n"
        return b"".join([*lines[:7], b'{"id": "gid://shopify/Order/1", "legacyRes\n', *lines[7:]])

    sandbox, config, options = _bulk_env(tmp_path, monkeypatch, world, clock, bulk_corrupt=corrupt)
    with sandbox:
        result = ingest_source(config, PARTNER, warehouse, options=options)
    assert result.ok and result.quarantined == 2, result.summary()
    reasons = _quarantined(warehouse)
    assert any(r == "bulk result line 8 is not JSON" for r in reasons), reasons
    assert any("subtotalPriceSet.shopMoney.amount is not a number" in r for r in reasons), reasons
    assert len(_landed(warehouse)) == len(world.orders[PARTNER]) - 1


@pytest.mark.parametrize("failure", ["FAILED", "EXPIRED"])
def test_a_failed_or_expired_operation_is_a_clear_error(warehouse, tmp_path, monkeypatch, world, clock, failure):
    sandbox, config, options = _bulk_env(tmp_path, monkeypatch, world, clock, bulk_failure=failure)
    with sandbox:
        result = ingest_source(config, PARTNER, warehouse, options=options)
    assert result.status == "failed" and result.error.startswith(f"{PARTNER}: bulk operation gid://shopify/")
    assert f"ended {failure}" in result.error and "rerun" in result.error
    assert not _landed(warehouse) and _cursor(warehouse) is None


def test_a_partial_result_lands_without_moving_the_cursor(warehouse, tmp_path, monkeypatch, world, clock):
    """FAILED with partialDataUrl: the partial lines land, the cursor stays, the run says so; a rerun completes."""
    sandbox, config, options = _bulk_env(tmp_path, monkeypatch, world, clock, bulk_failure="PARTIAL")
    with sandbox:
        result = ingest_source(config, PARTNER, warehouse, options=options)
        assert result.status == "failed" and "partial result was landed" in result.error, result.summary()
        partial = _landed(warehouse)
        assert 0 < len(partial) < len(world.orders[PARTNER]) and _cursor(warehouse) is None
        sandbox.options.bulk_failure = None
        again = ingest_source(config, PARTNER, warehouse, options=options)
    assert again.ok, again.summary()
    assert set(_landed(warehouse)) == {str(o["id"]) for o in world.orders[PARTNER]}


def test_sandbox_bulk_refuses_what_shopify_refuses(world, clock):
    """A connection inside a list field, and a second bulk query while one runs."""
    with start_sandbox(world, options=SandboxOptions(clock=clock)) as sandbox:
        client = _client(sandbox, clock)
        nested = "{ orders { edges { node { id refunds { id refundLineItems { edges { node { id } } } } } } } }"
        data, _ = client.query(RUN_BULK, {"query": nested})
        assert data["bulkOperationRunQuery"]["userErrors"][0]["message"] == (
            "Queries that contain a connection field within a list field are not currently supported.")
        client.query(RUN_BULK, {"query": bulk_query(None)})
        data, _ = client.query(RUN_BULK, {"query": bulk_query(None)})
        assert data["bulkOperationRunQuery"]["userErrors"][0]["code"] == "OPERATION_IN_PROGRESS"


def test_fixture_bulk_file_regroups_children_that_come_after_a_later_parent(tmp_path):
    """tests/fixtures/shopify_graphql/bulk_orders.jsonl: order 1's second line item comes after order 2."""
    staged = BulkFile(tmp_path / "bulk.sqlite3")
    for number, line in enumerate((FIXTURES / "bulk_orders.jsonl").read_bytes().splitlines(), start=1):
        staged.add(number, line)
    staged.commit()
    (page,) = list(staged.orders(10))
    staged.close()
    assert [o["legacyResourceId"] for o in page] == ["5340000000002", "5340000000001"], "oldest change first"
    assert [len(o["lineItems"]["nodes"]) for o in page] == [1, 2]
    voided = json.loads(validate_order(page[0], 1, SALT).payload_json)
    assert voided["financial_status"] == "voided" and voided["customer"] is None and voided["email"] is None


def test_fixture_throttled_answer_reads_as_documented(clock):
    """THROTTLED: HTTP 200, no `data`, the bucket's state in extensions: the budget waits for the query's cost."""
    body = json.loads((FIXTURES / "throttled.json").read_text())
    budget = CostBudget(clock)
    budget.observe(body["extensions"]["cost"])
    assert "data" not in body and budget.maximum == 2000.0
    assert budget.wait(752) == pytest.approx((753 - 101) / 100)


def test_a_graphql_partners_webhooks_come_through_the_shopify_route(warehouse, monkeypatch):
    """Shopify's webhook bodies are REST-shaped whichever API the app reads: `/webhooks/shopify/<partner>` takes them
    for a shopify_graphql partner and lands the REST record."""
    from test_webhooks import SECRET, order, post, processed, query, wait_for

    from alliance.config import AllianceConfig, Partner
    from alliance.webhooks import build_server

    load_sandbox_env()
    monkeypatch.setenv("TIDEWATER_WEBHOOK_SECRET", SECRET)
    config = AllianceConfig(partners=[Partner(id=PARTNER, platform="shopify_graphql", base_url="http://127.0.0.1:1",
                                              credentials_env="TIDEWATER_TOKEN",
                                              webhook_secret_env="TIDEWATER_WEBHOOK_SECRET")])
    server = build_server(config, warehouse).start()
    try:
        assert post(server.url, json.dumps(order()).encode(), source=PARTNER, delivery="g-1").status_code == 200
        wait_for(lambda: processed(warehouse, "g-1"), "delivery g-1 processed")
    finally:
        server.stop()
    assert query(warehouse, "select partner_id, order_id, platform from raw.orders") == [(PARTNER, "9001", "shopify")]


def test_dropped_connections_are_retried(world, clock):
    """A connection closed without an answer (or half a body) is retried, as a GET would be."""
    with start_sandbox(world, options=SandboxOptions(clock=clock, drop_rate=0.5, seed=3)) as sandbox:
        client = _client(sandbox, clock)
        for _ in range(6):
            data, _ = client.query("{ orders(first: 2) { nodes { legacyResourceId } } }")
            assert len(data["orders"]["nodes"]) == 2
        assert sandbox.injected["drop"] >= 1
