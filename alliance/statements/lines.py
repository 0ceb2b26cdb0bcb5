"""A partner's statement for a month, grouped from the published lines: per direction, per counterparty.

Totals are partner_balances.balance_rc, read in the same statement as the lines (one snapshot, whatever a publish
does meanwhile); the lines must add up to them to the cent, else StatementError names the section.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal

import psycopg

from alliance.schemas import PUBLISHED_SCHEMA

DIRECTIONS = ("earned", "owed")
LINE_COLUMNS = ("line_kind", "line_key", "order_id", "line_date", "attribution_model", "credit",
                "commissionable_amount_rc", "refunded_before_lock_rc", "rate_applied", "is_capped", "amount_rc",
                "held_rc", "state", "reason")
KIND_ORDER = ("order", "clawback", "manual", "approval", "held", "rejected")
_MONTH = re.compile(r"^(\d{4})-(\d{2})$")

# One statement over both published tables: every line with its (referrer, destination, month) balance and the
# month's lock date and state. `{where}` narrows the months (and partner).
_QUERY = f"""
select l.month, l.partner_id, l.direction, l.counterparty_partner_id, l.in_totals,
       {", ".join("l." + c for c in LINE_COLUMNS)},
       b.balance_rc, m.lock_date, m.state
from {PUBLISHED_SCHEMA}.partner_statement_lines as l
left join {PUBLISHED_SCHEMA}.partner_balances as b
    on b.referrer_partner_id = l.referrer_partner_id and b.destination_partner_id = l.destination_partner_id
   and b.month = l.month
left join (select month, min(lock_date) as lock_date, min(state) as state
           from {PUBLISHED_SCHEMA}.partner_balances group by month) as m on m.month = l.month
where {{where}}
order by l.month, l.partner_id, l.direction, l.counterparty_partner_id,
         array_position(array{list(KIND_ORDER)}::text[], l.line_kind), l.line_date, length(l.order_id), l.order_id,
         l.line_key
"""


# A fingerprint per locked (month, partner) of everything its statement is made from: the partner's lines (both
# directions) and the month's balances (totals, lock date, state). Sums of 64-bit row hashes: one pass, no sort, no
# row leaves the server; any change of a row moves the sum (short of a 2**-64 coincidence), and a moved fingerprint
# only means "read this statement again", never "revise it" (content_hash decides that).
_FINGERPRINTS = f"""
with locked as (
    select distinct month from {PUBLISHED_SCHEMA}.partner_balances where state = 'locked'
),
lines as (
    select l.month, l.partner_id, count(*) as n, sum(hashtextextended(l::text, 0)::numeric) as h
    from {PUBLISHED_SCHEMA}.partner_statement_lines as l
    where l.month in (select month from locked)
    group by l.month, l.partner_id
),
balances as (
    select b.month, count(*) as n, sum(hashtextextended(b::text, 0)::numeric) as h
    from {PUBLISHED_SCHEMA}.partner_balances as b
    where b.month in (select month from locked)
    group by b.month
)
select lines.month, lines.partner_id,
       concat_ws(':', lines.n, lines.h, coalesce(balances.n, 0), coalesce(balances.h, 0))
from lines left join balances using (month)
"""


class StatementError(ValueError):
    """A statement cannot be written as asked (bad month, unknown partner, lines that do not add up)."""


def parse_month(value: str) -> date:
    """`YYYY-MM` to the month's first day; anything else is a StatementError saying what is expected."""
    match = _MONTH.match(value.strip())
    if not match or not 1 <= int(match.group(2)) <= 12:
        raise StatementError(f"--month: `{value}` is not a month; use YYYY-MM (e.g. 2026-10)")
    return date(int(match.group(1)), int(match.group(2)), 1)


@dataclass
class Line:
    kind: str
    key: str
    order_id: str | None
    line_date: date | None
    attribution_model: str | None
    credit: Decimal | None
    commissionable_amount_rc: Decimal | None
    refunded_before_lock_rc: Decimal | None
    rate_applied: Decimal | None
    is_capped: bool | None
    amount_rc: Decimal
    held_rc: Decimal | None
    state: str | None
    reason: str | None


@dataclass
class Counterparty:
    """The lines between the statement's partner and one other partner, in one direction."""

    partner_id: str
    lines: list[Line] = field(default_factory=list)  # in the total: orders, then clawback, manual, approval
    apart: list[Line] = field(default_factory=list)  # held and rejected rows, outside the total
    total_rc: Decimal = Decimal("0.00")  # partner_balances.balance_rc of the pair and month


@dataclass
class Section:
    direction: str  # earned | owed
    counterparties: list[Counterparty] = field(default_factory=list)

    @property
    def total_rc(self) -> Decimal:
        """The section's total: the published balances of its counterparties, added for display."""
        return sum((c.total_rc for c in self.counterparties), Decimal("0.00"))


@dataclass
class Statement:
    partner_id: str
    month: date
    lock_date: date | None
    state: str | None  # the month's: locked | pending
    sections: dict[str, Section]


def read_statements(conn: psycopg.Connection, *, months: Sequence[date] | None = None, partner: str | None = None,
                    locked_only: bool = False) -> list[Statement]:
    """The statements of the given months (or of every locked month), for one partner or all, one snapshot."""
    where, params = ["true"], []
    if months is not None:
        where.append("l.month = any(%s)")
        params.append(list(months))
    if locked_only:
        where.append(f"l.month in (select month from {PUBLISHED_SCHEMA}.partner_balances where state = 'locked')")
    if partner is not None:
        where.append("l.partner_id = %s")
        params.append(partner)
    rows = conn.execute(_QUERY.format(where=" and ".join(where)), params).fetchall()
    return _group(rows)


def statement_fingerprints(conn: psycopg.Connection) -> dict[tuple[date, str], str]:
    """(month, partner) -> fingerprint of what its statement is made from, for every locked month."""
    return {(month, partner): fingerprint for month, partner, fingerprint in conn.execute(_FINGERPRINTS).fetchall()}


def _group(rows: Iterable[tuple]) -> list[Statement]:
    statements: dict[tuple[date, str], Statement] = {}
    pairs: dict[tuple[date, str, str, str], Counterparty] = {}
    sums: dict[tuple[date, str, str, str], Decimal] = defaultdict(lambda: Decimal("0.00"))
    for month, partner, direction, other, in_totals, *values, balance_rc, lock_date, state in rows:
        statement = statements.get((month, partner))
        if statement is None:
            statement = Statement(partner, month, lock_date, state, {d: Section(d) for d in DIRECTIONS})
            statements[(month, partner)] = statement
        key = (month, partner, direction, other)
        group = pairs.get(key)
        if group is None:
            group = Counterparty(other, total_rc=balance_rc if balance_rc is not None else Decimal("0.00"))
            pairs[key] = group
            statement.sections[direction].counterparties.append(group)
        line = Line(*values)
        if in_totals:
            group.lines.append(line)
            sums[key] += line.amount_rc
        else:
            group.apart.append(line)
    for (month, partner, direction, other), group in pairs.items():
        if sums[(month, partner, direction, other)] != group.total_rc:
            raise StatementError(
                f"statement {partner} {month:%Y-%m} ({direction}, counterparty {other}): the lines add up to "
                f"{sums[(month, partner, direction, other)]}, partner_balances says {group.total_rc}; "
                "analytics.partner_statement_lines and analytics.partner_balances disagree")
    return list(statements.values())
