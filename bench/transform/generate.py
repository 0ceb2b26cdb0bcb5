"""Synthetic raw data for the transform benchmark and the incremental test, written straight into raw.* with COPY.

Why synthetic and direct: the benchmark measures dbt, not the connectors, at sizes (1M orders, 5M clicks) the
sandbox APIs are not meant to serve. Rows have the exact landed shape (Shopify order payloads with customer_key,
referral-network click payloads), so every staging parse and every §6 rule runs: codes (own, foreign, unknown,
landing refs), repeat customers and guests, clicks inside and outside the lookback, self-referrals and clicks from
non-partners, refunds on both sides of the lock date, cancellations, test orders, USD and EUR storefronts.
Deterministic for a seed.
"""

from __future__ import annotations

import json
import random
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import psycopg

from alliance.config import AllianceConfig

START = datetime(2026, 8, 1, tzinfo=UTC)
SPAN_SECONDS = int((datetime(2026, 11, 10, tzinfo=UTC) - START).total_seconds())
NETWORK = "alliance_network"


@dataclass
class Generated:
    orders: int
    clicks: int
    changed_orders: int = 0


class Generator:
    """Writes a base data set, then deltas (new orders and clicks, changed orders) into one warehouse."""

    def __init__(self, config: AllianceConfig, seed: int = 7) -> None:
        self.rng = random.Random(seed)
        self.stores = [p for p in config.partners if p.platform != "none"]
        self.partner_ids = [p.id for p in config.partners]
        self.codes = {p.id: list(p.referral_codes) for p in config.partners}
        self.currency = {p.id: p.currency for p in self.stores}
        self.next_order = 1
        self.next_click = 1
        self.customers = 1

    # ------------------------------------------------------------------ rows
    def _customer(self) -> str | None:
        if self.rng.random() < 0.1:
            return None  # guest checkout
        return f"{self.rng.randrange(self.customers):064x}"

    def _order(self, store: str, created: datetime, customer: str | None, version: int = 0) -> dict:
        rng = self.rng
        subtotal = round(rng.uniform(5, 400), 2)
        codes = []
        if rng.random() < 0.12:
            owner = rng.choice(self.partner_ids + ["nobody"])
            codes.append(rng.choice(self.codes.get(owner) or ["UNKNOWN1"]).lower() if rng.random() < 0.3
                         else rng.choice(self.codes.get(owner) or ["UNKNOWN1"]))
        landing = None
        if rng.random() < 0.05:
            owner = rng.choice(self.partner_ids)
            landing = f"/products/x?utm=y&ref={(self.codes.get(owner) or ['NONE'])[0]}"
        refunds = []
        if rng.random() < 0.08:
            for i in range(rng.choice((1, 1, 2))):
                at = created + timedelta(days=rng.uniform(1, 90))
                lines = [{"id": i * 10 + j, "quantity": 1,
                          "subtotal": f"{round(subtotal * rng.uniform(0.05, 0.4), 2):.2f}"}
                         for j in range(rng.choice((0, 1, 1, 2)))]
                refunds.append({"id": int(created.timestamp()) * 10 + i, "created_at": at.isoformat(),
                                "refund_line_items": lines})
        cancelled = created + timedelta(days=rng.uniform(0.1, 80)) if rng.random() < 0.03 else None
        updated = max([created, *(datetime.fromisoformat(r["created_at"]) for r in refunds),
                       *([cancelled] if cancelled else [])]) + timedelta(seconds=version)
        return {
            "id": self.next_order, "created_at": created.isoformat(), "updated_at": updated.isoformat(),
            "currency": self.currency[store], "subtotal_price": f"{subtotal:.2f}", "total_price": f"{subtotal:.2f}",
            "test": rng.random() < 0.01, "financial_status": "voided" if cancelled and rng.random() < 0.5 else "paid",
            "cancelled_at": cancelled.isoformat() if cancelled else None, "landing_site": landing,
            "discount_codes": [{"code": c, "amount": "1.00", "type": "fixed_amount"} for c in codes],
            "customer": {"id": customer[:12]} if customer else None, "refunds": refunds,
        }

    def _clicks_for(self, store: str, created: datetime, customer: str | None, n: int) -> list[tuple]:
        rng = self.rng
        rows = []
        for _ in range(n):
            roll = rng.random()
            referrer = store if roll < 0.03 else ("stranger" if roll < 0.04 else
                                                  rng.choice([p for p in self.partner_ids if p != store]))
            key = customer if rng.random() < 0.85 else None
            at = created - timedelta(seconds=rng.randrange(0, 40 * 86400))
            if rng.random() < 0.02:
                at = created  # on the order's instant: still eligible
            click_id = str(self.next_click)
            self.next_click += 1
            payload = {"Id": click_id, "ReferrerPartnerId": referrer, "DestinationPartnerId": store,
                       "EventDate": at.isoformat(), "ReferralCode": None, "CustomerEmail": key}
            rows.append((NETWORK, click_id, at, key, json.dumps(payload)))
        return rows

    # ------------------------------------------------------------------ writing
    def write(self, url: str, orders: int, clicks_per_order: int = 5, *, history_until: datetime | None = None,
              step_seconds: int = 1,
              start: datetime = START, span_seconds: int = SPAN_SECONDS) -> Generated:
        """`orders` new orders over [start, start+span] and about clicks_per_order clicks each, COPYed in.

        Landed now, unless `history_until` is given: then the rows look as if an incremental ingest had landed
        them one by one, `step_seconds` apart, ending at that time (the incremental overlap re-reads 600/step rows).
        """
        self.customers = max(self.customers, orders // 3)
        load_id = str(uuid.uuid4())
        now = datetime.now(UTC)
        first = history_until - timedelta(seconds=orders * step_seconds) if history_until else None

        def stamp(i: int) -> datetime:
            return first + timedelta(seconds=i * step_seconds) if first else now

        n_clicks = 0
        # two connections: one COPY in flight per connection
        with psycopg.connect(url) as conn, psycopg.connect(url) as conn2:
            with conn.cursor().copy(
                "copy raw.orders (partner_id, order_id, platform, updated_at, customer_key, payload, load_id,"
                " loaded_at) from stdin"
            ) as order_copy, conn2.cursor().copy(
                "copy raw.clicks (network_id, click_id, clicked_at, customer_key, payload, load_id, loaded_at)"
                " from stdin"
            ) as click_copy:
                for i in range(orders):
                    store = self.rng.choice(self.stores).id
                    created = start + timedelta(seconds=self.rng.randrange(span_seconds))
                    customer = self._customer()
                    payload = self._order(store, created, customer)
                    self.next_order += 1
                    order_copy.write_row((store, str(payload["id"]), "shopify", payload["updated_at"], customer,
                                          json.dumps(payload), load_id, stamp(i)))
                    for row in self._clicks_for(store, created, customer, clicks_per_order):
                        click_copy.write_row((*row, load_id, stamp(i)))
                        n_clicks += 1
        return Generated(orders=orders, clicks=n_clicks)

    def change(self, url: str, count: int, *, loaded_at: datetime | None = None) -> int:
        """Land new versions of `count` existing orders: a refund after the fact, or a cancellation."""
        stamp = loaded_at or datetime.now(UTC)
        with psycopg.connect(url) as conn:
            picked = conn.execute(
                "select partner_id, order_id, payload from raw.orders order by md5(order_id || partner_id) limit %s",
                (count,),
            ).fetchall()
            for partner_id, order_id, payload in picked:
                created = datetime.fromisoformat(payload["created_at"])
                if self.rng.random() < 0.5:
                    refunds = payload.get("refunds", [])
                    payload["refunds"] = [*refunds, {  # a new refund id each time an order is changed again
                        "id": int(order_id) * 100 + 99 - len(refunds),
                        "created_at": (created + timedelta(days=12)).isoformat(),
                        "refund_line_items": [{"id": 1, "quantity": 1, "subtotal": "3.00"}]}]
                else:
                    payload["cancelled_at"] = (created + timedelta(days=2)).isoformat()
                bumped = datetime.fromisoformat(payload["updated_at"]) + timedelta(days=100)
                payload["updated_at"] = bumped.isoformat()
                conn.execute(
                    "update raw.orders set payload = %s, updated_at = %s, loaded_at = %s where partner_id = %s"
                    " and order_id = %s",
                    (json.dumps(payload), payload["updated_at"], stamp, partner_id, order_id),
                )
        return len(picked)
