"""Issuing statements: a locked month's statements are written on the first run after its lock date and rewritten,
revised, when a later run changes any of its numbers (§9.1); `alliance statements` writes any month on demand.

ops.statement_issues (migration 0014) remembers, per (month, partner), the hash of what was written and its
revision. "Locked" is partner_balances.state of the published snapshot, so the run's as-of date (`--as-of`, dbt's
as_of_date) decides, as it does for every commission state. One issuer at a time (STATEMENTS advisory lock).

Only statements whose source fingerprint moved (migration 0020, lines.statement_fingerprints) are read, rendered and
hashed: a run that changed one month reads that month, not every locked month's lines. The fingerprint and the
lines are two reads; a publish between them costs at most one run of delay (the next run sees the fingerprint
move), never a wrong statement.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import NamedTuple

import psycopg

from alliance.assets import statements_dir
from alliance.locks import STATEMENTS
from alliance.migrate import migrate
from alliance.statements.lines import Statement, StatementError, read_statements, statement_fingerprints
from alliance.statements.render import content_hash, write_files
from alliance.warehouse import connect

log = logging.getLogger(__name__)

STATEMENTS_LOCK_KEY = STATEMENTS.key


class Issued(NamedTuple):
    """What ops.statement_issues holds for a (month, partner) issued before."""

    content_hash: str
    revision: int
    source_fingerprint: str | None


@dataclass
class IssueResult:
    """What a run did: (month, partner) issued for the first time, revised, left as they were; the files written."""

    first: list[tuple[date, str]] = field(default_factory=list)
    revised: list[tuple[date, str]] = field(default_factory=list)
    unchanged: int = 0
    files: list[Path] = field(default_factory=list)

    @property
    def written(self) -> bool:
        return bool(self.first or self.revised)


def issue_statements(url: str, *, out_dir: Path | None = None, run_id: str | None = None, currency: str = "USD",
                     names: Mapping[str, str] | None = None) -> IssueResult:
    """Write every locked month's statements that are new or changed since they were last issued."""
    out_dir = out_dir or statements_dir()
    names = dict(names or {})
    result = IssueResult()
    with connect(url) as conn:
        migrate(conn)
        conn.execute("select pg_advisory_xact_lock(%s)", (STATEMENTS_LOCK_KEY,))
        issued = {(m, p): Issued(h, r, f) for m, p, h, r, f in conn.execute(
            "select month, partner_id, content_hash, revision, source_fingerprint from ops.statement_issues"
        ).fetchall()}
        fingerprints = statement_fingerprints(conn)
        moved = {key for key, fingerprint in fingerprints.items()
                 if key not in issued or issued[key].source_fingerprint != fingerprint}
        result.unchanged = len(fingerprints) - len(moved)
        statements = read_statements(conn, months=sorted({m for m, _ in moved}), locked_only=True) if moved else []
        for statement in statements:
            key = (statement.month, statement.partner_id)
            if key not in moved:
                continue
            digest = content_hash(statement)
            before = issued.get(key)
            # same content, other source rows (or none recorded)
            if before is not None and before.content_hash == digest:
                result.unchanged += 1
                conn.execute("update ops.statement_issues set source_fingerprint = %s"
                             " where month = %s and partner_id = %s", (fingerprints.get(key), *key))
                continue
            revision = 0 if before is None else before.revision + 1
            result.files += write_files(statement, out_dir, revision, currency=currency, names=names)
            _record(conn, statement, digest, fingerprints.get(key), revision, run_id)
            (result.first if before is None else result.revised).append(key)
    for month, partner in result.revised:
        log.info("statement %s %s revised", partner, f"{month:%Y-%m}")
    return result


def _record(conn: psycopg.Connection, statement: Statement, digest: str, fingerprint: str | None, revision: int,
            run_id: str | None) -> None:
    conn.execute(
        """insert into ops.statement_issues (month, partner_id, content_hash, source_fingerprint, revision, last_run_id)
           values (%s, %s, %s, %s, 0, %s)
           on conflict (month, partner_id) do update
           set content_hash = excluded.content_hash, source_fingerprint = excluded.source_fingerprint,
               revision = %s, revised_at = now(), last_run_id = excluded.last_run_id""",
        (statement.month, statement.partner_id, digest, fingerprint, run_id, revision))


def write_statements(url: str, month: date, *, out_dir: Path | None = None, partner: str | None = None,
                     currency: str = "USD", names: Mapping[str, str] | None = None) -> list[Path]:
    """`alliance statements`: write the month's statements now, whatever its state. A statement whose content was
    issued carries that revision; anything else is marked a draft (not issued). Raises StatementError when the
    month has no published lines (for that partner)."""
    out_dir = out_dir or statements_dir()
    names = dict(names or {})
    files: list[Path] = []
    with connect(url) as conn:
        migrate(conn)
        statements = read_statements(conn, months=[month], partner=partner)
        issued = {(m, p): (h, r) for m, p, h, r in conn.execute(
            "select month, partner_id, content_hash, revision from ops.statement_issues where month = %s",
            (month,)).fetchall()}
    if not statements:
        who = f" for partner {partner}" if partner else ""
        raise StatementError(f"no statement lines published for {month:%Y-%m}{who} "
                             "(analytics.partner_statement_lines); run a transform first, or pick another month")
    for statement in statements:
        before = issued.get((statement.month, statement.partner_id))
        revision = before[1] if before is not None and before[0] == content_hash(statement) else None
        files += write_files(statement, out_dir, revision, currency=currency, names=names)
    return files
