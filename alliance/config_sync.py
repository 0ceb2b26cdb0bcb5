"""Mirror the parsed config into raw.cfg_* so dbt, where every business rule lives, can join it."""

from __future__ import annotations

import json

import psycopg

from alliance.config import AllianceConfig, Commission, read_adjustments, read_fx_rates, read_reviews
from alliance.migrate import migrate


def sync_config(conn: psycopg.Connection, config: AllianceConfig) -> None:
    """Replace the cfg tables with this config, in the caller's transaction."""
    migrate(conn)  # the cfg tables: alliance/migrations/0002_config_tables.sql
    for table in ("cfg_partners", "cfg_referral_codes", "cfg_contracts", "cfg_fx_rates", "cfg_objectives",
                  "cfg_adjustments", "cfg_reviews"):
        conn.execute(f"delete from raw.{table}")
    with conn.cursor() as cur:
        cur.executemany(
            "insert into raw.cfg_partners (partner_id, partner_name, platform, currency, commission_type,"
            " commission_rate, commission_new_customer_rate, commission_amount, commission_tiers,"
            " commission_cap_per_order, commission_cap_per_month, commission_clawback)"
            " values (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
            [
                (
                    p.id, p.name, p.platform, p.currency,
                    p.commission.type if p.commission else None,
                    p.commission.rate if p.commission else None,
                    p.commission.new_customer_rate if p.commission else None,
                    p.commission.amount if p.commission else None,
                    *_terms(p.commission),
                )
                for p in config.partners
            ],
        )
        cur.executemany(
            "insert into raw.cfg_referral_codes values (%s, %s)",
            [(code.strip().upper(), p.id) for p in config.partners for code in dict.fromkeys(p.referral_codes)],
        )
        cur.executemany(
            "insert into raw.cfg_contracts (destination_partner_id, referrer_partner_id, contract_type, rate,"
            " new_customer_rate, amount, effective_from, effective_to, tiers, cap_per_order, cap_per_month, clawback)"
            " values (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
            [
                (p.id, c.referrer, c.type, c.rate, c.new_customer_rate, c.amount, c.effective_from, c.effective_to,
                 *_terms(c))
                for p in config.partners
                for c in p.contracts
            ],
        )
        cur.executemany("insert into raw.cfg_fx_rates values (%s, %s, %s)", read_fx_rates(config))
        cur.executemany(
            "insert into raw.cfg_objectives values (%s, %s, %s, %s)",
            [(o.partner_id, f"{o.month}-01", o.metric, o.target) for o in config.objectives],
        )
        cur.executemany(
            "insert into raw.cfg_adjustments values (%s, %s, %s, %s, %s, %s)",
            [(a.line, a.month, a.referrer, a.destination, a.amount, a.reason) for a in read_adjustments(config)],
        )
        cur.executemany(
            "insert into raw.cfg_reviews values (%s, %s, %s, %s, %s)",
            [(r.partner_id, r.order_id, r.decision, r.reviewed_at, r.line) for r in read_reviews(config)],
        )


def _terms(commission: Commission | None) -> tuple:
    """§8 terms of a contract as cfg columns: tiers (JSON list or null), cap_per_order, cap_per_month, clawback."""
    if commission is None:
        return (None, None, None, False)
    tiers = json.dumps([{"from_orders": t.from_orders, "rate": str(t.rate)} for t in commission.tiers]) \
        if commission.tiers else None
    return (tiers, commission.cap_per_order, commission.cap_per_month, commission.clawback)
