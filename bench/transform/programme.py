"""§8 partner-programme terms switched on for half the contracts of a config (bench/transform, tests/test_incremental).

Every other contract (the storefronts' default commissions and their dated contracts, in config order) gets volume
tiers low enough to be reached by a few orders a month, a per-order cap, a monthly cap that binds, and clawback; the
alliance gets holds (fast clicks, click bursts), a few manual adjustments and, when orders exist, reviews of some.
"""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import psycopg

from alliance.config import AllianceConfig, Commission, Holds, Tier


def _terms(commission: Commission) -> Commission:
    if commission.type != "percent":
        return commission.model_copy(update={"cap_per_order": Decimal("3.50"), "cap_per_month": Decimal("150"),
                                             "clawback": True})
    rate = commission.rate or Decimal(0)
    tiers = [Tier(from_orders=3, rate=min(rate + Decimal("0.02"), Decimal(1))),
             Tier(from_orders=10, rate=min(rate + Decimal("0.04"), Decimal(1)))]
    return commission.model_copy(update={"tiers": tiers, "cap_per_order": Decimal("25.00"),
                                         "cap_per_month": Decimal("400.00"), "clawback": True})


def with_programme_terms(config: AllianceConfig, folder: Path) -> AllianceConfig:
    """config with every term of §8 on half its contracts, holds, and an adjustments CSV written to folder."""
    partners, turn = [], 0
    for partner in config.partners:
        update: dict = {}
        if partner.commission is not None:
            if turn % 2 == 0:
                update["commission"] = _terms(partner.commission)
            turn += 1
        contracts = []
        for contract in partner.contracts:
            contracts.append(_terms(contract) if turn % 2 == 0 else contract)  # type: ignore[arg-type]
            turn += 1
        update["contracts"] = contracts
        partners.append(partner.model_copy(update=update))
    stores = [p.id for p in config.storefronts]
    others = [p.id for p in config.partners]
    folder.mkdir(parents=True, exist_ok=True)
    adjustments = folder / "adjustments.csv"
    rows = ["month,referrer,destination,amount,reason"]
    for i, store in enumerate(stores):
        referrer = next(p for p in others[i + 1:] + others if p != store)
        rows.append(f"2026-{9 + i % 3:02d},{referrer},{store},{25 + 10 * i}.00,launch bonus")
        rows.append(f"2026-10,{referrer},{store},-{5 + i}.50,duplicate payout corrected")
    adjustments.write_text("\n".join(rows) + "\n")
    return config.model_copy(update={
        "partners": partners, "adjustments": adjustments, "reviews": None,
        "holds": Holds(min_seconds_click_to_order=600, max_clicks_per_hour=1),
    })


def with_reviews(config: AllianceConfig, url: str, folder: Path, count: int = 12) -> AllianceConfig:
    """config with a reviews CSV deciding `count` landed orders (approve, reject, approve after the lock in turn):
    half have a click on the order's instant (held as fast clicks when credited), half are picked at random (mostly
    not held: ignored with a warning, §8.5)."""
    with psycopg.connect(url) as conn:
        picked = conn.execute(
            "(select o.partner_id, o.order_id, (o.payload ->> 'created_at')::timestamptz from raw.orders o"
            " join raw.clicks c on c.customer_key = o.customer_key"
            " and c.payload ->> 'DestinationPartnerId' = o.partner_id"
            " and c.clicked_at = (o.payload ->> 'created_at')::timestamptz"
            " order by md5(o.order_id || 'review') limit %s)"
            " union"
            " (select partner_id, order_id, (payload ->> 'created_at')::timestamptz from raw.orders"
            " order by md5(order_id || 'random') limit %s)", (count - count // 2, count // 2)).fetchall()
    reviews = folder / "reviews.csv"
    lines = ["partner_id,order_id,decision,reviewed_at"]
    for i, (partner_id, order_id, created) in enumerate(sorted(picked)):
        decision = "reject" if i % 3 == 1 else "approve"
        days = 100 if i % 3 == 2 else 5  # after the lock date (an approval line) or before it
        lines.append(f"{partner_id},{order_id},{decision},{(created + timedelta(days=days)).date().isoformat()}")
    reviews.write_text("\n".join(lines) + "\n")
    return config.model_copy(update={"reviews": reviews})
