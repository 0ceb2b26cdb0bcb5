"""Every PostgreSQL advisory lock the project takes, in one place, so no two unrelated jobs share a key.

Why: two locks that happen to share a key refuse each other for no reason (alert delivery and a transform run once
did). PostgreSQL has one advisory-lock space per database; keys are `bigint` (one-argument form).

Two kinds of key live in that space:
- Numbered keys (below, `NUMBERED`): fixed `bigint`s of 2**32 and above. A `hashtext()` key is an `int4` (between
  -2**31 and 2**31 - 1), so a numbered key can never equal a text-named one.
- Text-named keys (`TEXT_NAMED`): `pg_advisory_*lock(hashtext(name))`, used by `connectors` (which may not import
  `alliance`) and by the webhook receiver. Their names all start with `alliance.`; the patterns are listed here and
  tests/test_locks.py checks that every `hashtext(` in the code uses a listed name and that the names a
  configuration produces hash to distinct keys.

A new lock gets a line here and nowhere else decides its key.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class AdvisoryLock:
    """A numbered advisory lock: its key, its scope (session or transaction) and who it keeps apart."""

    name: str
    key: int
    scope: str  # "session" (held across transactions, released on unlock or disconnect) | "transaction"
    why: str


PUBLISH = AdvisoryLock(
    "publish", 7_316_202_601, "transaction",
    "One analytics swap at a time: publish and rollback (alliance/publish.py), and the alert recording that copies "
    "ops.kpi_alerts into the live snapshot (alliance/alerts/evaluate.py), so a swap cannot drop an alert.")
RUN = AdvisoryLock(
    "transform_run", 7_316_202_602, "session",
    "One transform run (prepare -> build -> gate -> publish) per warehouse (alliance/run.py); a second run is "
    "refused, or waits with --wait.")
ALERT_DELIVERY = AdvisoryLock(
    "alert_delivery", 7_316_202_603, "session",
    "One alert deliverer at a time draining ops.alert_deliveries (alliance/alerts/deliver.py); a concurrent one "
    "leaves the pending rows to it. Independent of RUN: a run's alerts may be delivered while the next run builds.")

MIGRATIONS = AdvisoryLock(
    "migrations", 7_316_202_604, "transaction",
    "One migration at a time per warehouse (alliance/migrate.py): loaders, receiver workers and transforms that start "
    "together apply each pending migration once, in version order.")

STATEMENTS = AdvisoryLock(
    "statement_issue", 7_316_202_622, "transaction",
    "One statement issuer at a time (alliance/statements/issue.py): two runs finishing together never both count "
    "the same revision of a partner's month in ops.statement_issues.")

NUMBERED: tuple[AdvisoryLock, ...] = (PUBLISH, RUN, ALERT_DELIVERY, MIGRATIONS, STATEMENTS)


@dataclass(frozen=True)
class TextNamedLock:
    """A `hashtext(name)` advisory lock; `pattern` is the name with `{placeholders}` for its parts."""

    pattern: str
    scope: str
    where: str
    why: str

    def name(self, **parts: str) -> str:
        return self.pattern.format(**parts)


INGEST_SOURCE = TextNamedLock(
    "alliance.ingest:{source_id}:{entity}", "session", "connectors/landing.py try_lock_source",
    "One loader per source and entity at a time; a second one skips the source.")
LAND_ORDERS = TextNamedLock(
    "alliance.land:orders:{partner_id}", "transaction", "connectors/landing.py land_orders_page",
    "One writer of a partner's orders at a time, so 'is this order new?' cannot race another loader or a webhook.")

TEXT_NAMED: tuple[TextNamedLock, ...] = (INGEST_SOURCE, LAND_ORDERS)


def text_lock_names(partner_ids: list[str], source_ids: list[str], entities: tuple[str, ...] = (
        "orders", "clicks")) -> list[str]:
    """Every text-named lock a configuration with these partners and sources takes (for the collision check)."""
    names = [INGEST_SOURCE.name(source_id=s, entity=e) for s in source_ids for e in entities]
    names += [LAND_ORDERS.name(partner_id=p) for p in partner_ids]
    return names
