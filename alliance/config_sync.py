"""Mirror the parsed config into raw.cfg_* so dbt, where every business rule lives, can join it."""

from __future__ import annotations

import psycopg

from alliance.config import AllianceConfig, read_fx_rates
from alliance.migrate import migrate


def sync_config(conn: psycopg.Connection, config: AllianceConfig) -> None:
    """Replace the cfg tables with this config, in the caller's transaction."""
    migrate(conn)  # the cfg tables: alliance/migrations/0002_config_tables.sql
    for table in ("cfg_partners", "cfg_referral_codes", "cfg_contracts", "cfg_fx_rates", "cfg_objectives"):
        conn.execute(f"delete from raw.{table}")
    with conn.cursor() as cur:
        cur.executemany(
            "insert into raw.cfg_partners values (%s, %s, %s, %s, %s, %s, %s, %s)",
            [
                (
                    p.id, p.name, p.platform, p.currency,
                    p.commission.type if p.commission else None,
                    p.commission.rate if p.commission else None,
                    p.commission.new_customer_rate if p.commission else None,
                    p.commission.amount if p.commission else None,
                )
                for p in config.partners
            ],
        )
        cur.executemany(
            "insert into raw.cfg_referral_codes values (%s, %s)",
            [(code.strip().upper(), p.id) for p in config.partners for code in dict.fromkeys(p.referral_codes)],
        )
        cur.executemany(
            "insert into raw.cfg_contracts values (%s, %s, %s, %s, %s, %s, %s, %s)",
            [
                (p.id, c.referrer, c.type, c.rate, c.new_customer_rate, c.amount, c.effective_from, c.effective_to)
                for p in config.partners
                for c in p.contracts
            ],
        )
        cur.executemany("insert into raw.cfg_fx_rates values (%s, %s, %s)", read_fx_rates(config))
        cur.executemany(
            "insert into raw.cfg_objectives values (%s, %s, %s, %s)",
            [(o.partner_id, f"{o.month}-01", o.metric, o.target) for o in config.objectives],
        )
