"""Land partner claims (PRODUCT.md §9.2) from the config's claims CSV file or folder into raw.claims.

Claims come from files, not from an API, but they land by the connectors' rules: every row is validated, a bad row
goes to raw.quarantine with its reason and where it is (file:line), never with the value that broke the rule, and the
good rows still land. raw.claims mirrors the valid rows of the files as they are now, one row per claim_id, so
re-landing the same files changes nothing and a claim removed from the files disappears. A claim_id carried with two
different contents is quarantined in every version: no version wins silently.
"""

from __future__ import annotations

import csv
import json
import logging
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import psycopg

from connectors.pii import mask_addresses

log = logging.getLogger(__name__)

SOURCE_ID = "claims"  # raw.quarantine.source_id and entity of a claims row
COLUMNS = ("claim_id", "referrer_partner_id", "destination_partner_id", "order_id", "claimed_at")
TIMESTAMP_HINT = "an ISO 8601 date-time with a zone, e.g. 2026-11-03T09:30:00Z or 2026-11-03 10:30:00+01:00"


@dataclass(frozen=True)
class Claim:
    """One valid claims row; `content` is what makes two rows of the same claim_id the same claim."""

    claim_id: str
    referrer_partner_id: str
    destination_partner_id: str
    order_id: str
    claimed_at: datetime  # UTC
    source_file: str
    source_line: int

    @property
    def content(self) -> tuple[str, str, str, datetime]:
        return (self.referrer_partner_id, self.destination_partner_id, self.order_id, self.claimed_at)

    @property
    def where(self) -> str:
        return f"{self.source_file}:{self.source_line}"


@dataclass(frozen=True)
class BadClaim:
    """A quarantined row (or file): its claim_id when one could be read, the reason naming file:line, a safe copy."""

    claim_id: str | None
    reason: str
    payload: dict[str, str]


@dataclass(frozen=True)
class ClaimsRead:
    good: list[Claim]
    bad: list[BadClaim]


@dataclass(frozen=True)
class ClaimsOutcome:
    landed: int  # new or changed claims written
    removed: int  # claims no longer in the files
    kept: int  # valid claims after landing
    quarantined: int


def claim_files(path: Path) -> list[Path]:
    """The CSV files of `path`: the file itself, or a folder's `*.csv` files (not its subfolders), by name."""
    if path.is_dir():
        return sorted((p for p in path.iterdir() if p.is_file() and p.suffix.lower() == ".csv"), key=lambda p: p.name)
    return [path]


def parse_claimed_at(text: str) -> datetime:
    """An ISO 8601 date-time with an explicit zone (`Z` or an offset), as UTC; anything else is a ValueError.

    Why a zone is required: a claim's time without one is ambiguous by up to a day, and claims are disputes.
    """
    if len(text) <= 10:  # a bare date: no time, no zone
        raise ValueError("no time")
    value = datetime.fromisoformat(text)
    if value.tzinfo is None:
        raise ValueError("no zone")
    return value.astimezone(UTC)


def _safe_copy(row: dict[str, str], masked: set[str]) -> dict[str, str]:
    """What the quarantine keeps of a row: the claim columns, a faulty one as `<text>`/`<empty>`, e-mails masked."""
    return {column: ("<empty>" if not row.get(column) else "<text>") if column in masked
            else mask_addresses(row.get(column) or "") for column in COLUMNS}


def _check_row(row: dict[str, str], where: str, partner_ids: set[str]) -> tuple[list[str], set[str]]:
    """Problems of one row (each naming its column, never its value) and the columns they concern."""
    problems: list[str] = []
    faulty: set[str] = set()

    def problem(column: str, text: str) -> None:
        problems.append(f"{where}: column {column}: {text}")
        faulty.add(column)

    for column in ("claim_id", "order_id"):
        if not row[column]:
            problem(column, "empty; every claim needs one")
        elif mask_addresses(row[column]) != row[column]:  # published as is: no customer's address may ride along
            problem(column, "holds an e-mail address; a claim names partners and an order, never a customer")
    for column in ("referrer_partner_id", "destination_partner_id"):
        if not row[column]:
            problem(column, "empty; give a declared partner id")
        elif row[column] not in partner_ids:
            problem(column, "not a declared partner id (unknown partner)")
    if row["referrer_partner_id"] and row["referrer_partner_id"] == row["destination_partner_id"]:
        problems.append(f"{where}: the claimant (referrer_partner_id) is the destination itself; a partner cannot "
                        "claim its own order")
    try:
        parse_claimed_at(row["claimed_at"])
    except ValueError:
        problem("claimed_at", f"not {TIMESTAMP_HINT}")
    return problems, faulty


def _read_file(file: Path, label: str, partner_ids: set[str]) -> ClaimsRead:
    good: list[Claim] = []
    bad: list[BadClaim] = []
    with file.open(newline="", encoding="utf-8-sig") as handle:
        reader = csv.DictReader(handle)
        header = [name.strip() for name in reader.fieldnames or []]
        if not set(COLUMNS) <= set(header):
            missing = [c for c in COLUMNS if c not in header]
            return ClaimsRead([], [BadClaim(None, f"{label}:1: the header must be {','.join(COLUMNS)} (missing "
                                                  f"{', '.join(missing)}); no row of this file was read", {})])
        for raw_row in reader:
            line = reader.line_num  # the file's line (csv skips blank lines, so counting rows would drift)
            row = {(k or "").strip(): (v or "").strip() for k, v in raw_row.items() if not isinstance(v, list)}
            if not any(row.get(c) for c in COLUMNS):
                continue  # a blank line
            where = f"{label}:{line}"
            problems, faulty = _check_row(row, where, partner_ids)
            claim_id = row["claim_id"] or None
            if problems:
                bad.append(BadClaim(claim_id, "; ".join(problems), _safe_copy(row, faulty)))
                continue
            good.append(Claim(row["claim_id"], row["referrer_partner_id"], row["destination_partner_id"],
                              row["order_id"], parse_claimed_at(row["claimed_at"]), label, line))
    return ClaimsRead(good, bad)


def read_claims(path: Path, partner_ids: set[str]) -> ClaimsRead:
    """Every row of the claims file or folder, checked; one claim per claim_id (identical rows count once)."""
    rows: list[Claim] = []
    bad: list[BadClaim] = []
    for file in claim_files(path):
        part = _read_file(file, file.name, partner_ids)
        rows += part.good
        bad += part.bad
    versions: dict[str, list[Claim]] = defaultdict(list)
    for claim in rows:
        versions[claim.claim_id].append(claim)
    good: list[Claim] = []
    for claim_id, found in versions.items():
        if len({c.content for c in found}) == 1:
            good.append(found[0])  # identical repeats: the first one stands for all
            continue
        places = ", ".join(c.where for c in found)
        for claim in found:
            bad.append(BadClaim(claim_id, f"{claim.where}: claim_id is given with different content at {places}; "
                                          "every version is quarantined until one remains", _safe_copy({
                                              "claim_id": claim_id, "referrer_partner_id": claim.referrer_partner_id,
                                              "destination_partner_id": claim.destination_partner_id,
                                              "order_id": claim.order_id,
                                              "claimed_at": claim.claimed_at.isoformat()}, set())))
    return ClaimsRead(good, bad)


def land_claims(conn: psycopg.Connection, path: Path | None, partner_ids: set[str]) -> ClaimsOutcome:
    """Make raw.claims mirror the valid claims of `path` (None: no claims) and quarantine the bad rows, in one
    transaction. Unchanged claims keep their loaded_at; a quarantine row already stored is not stored again."""
    read = read_claims(path, partner_ids) if path is not None else ClaimsRead([], [])
    with conn.transaction():
        conn.execute("create temp table if not exists _claims (like raw.claims including defaults) "
                     "on commit delete rows")
        with conn.cursor().copy("copy _claims (claim_id, referrer_partner_id, destination_partner_id, order_id, "
                                "claimed_at, source_file, source_line) from stdin") as copy:
            for c in read.good:
                copy.write_row((c.claim_id, c.referrer_partner_id, c.destination_partner_id, c.order_id,
                                c.claimed_at, c.source_file, c.source_line))
        removed = conn.execute("delete from raw.claims r where not exists "
                               "(select 1 from _claims c where c.claim_id = r.claim_id)").rowcount
        landed = conn.execute(
            "insert into raw.claims (claim_id, referrer_partner_id, destination_partner_id, order_id, claimed_at, "
            "  source_file, source_line) "
            "select claim_id, referrer_partner_id, destination_partner_id, order_id, claimed_at, source_file, "
            "  source_line from _claims "
            "on conflict (claim_id) do update set referrer_partner_id = excluded.referrer_partner_id, "
            "  destination_partner_id = excluded.destination_partner_id, order_id = excluded.order_id, "
            "  claimed_at = excluded.claimed_at, source_file = excluded.source_file, "
            "  source_line = excluded.source_line, loaded_at = now() "
            "where (raw.claims.referrer_partner_id, raw.claims.destination_partner_id, raw.claims.order_id, "
            "       raw.claims.claimed_at, raw.claims.source_file, raw.claims.source_line) "
            "  is distinct from (excluded.referrer_partner_id, excluded.destination_partner_id, excluded.order_id, "
            "       excluded.claimed_at, excluded.source_file, excluded.source_line)"
        ).rowcount
        for bad in read.bad:
            payload = json.dumps(bad.payload, sort_keys=True, ensure_ascii=False)
            key = mask_addresses(bad.claim_id) if bad.claim_id is not None else None
            conn.execute(
                "insert into raw.quarantine (source_id, entity, record_key, reason, payload) "
                "select %(src)s, %(src)s, %(key)s, %(reason)s, %(payload)s "
                "where not exists (select 1 from raw.quarantine q where q.source_id = %(src)s "
                "  and q.entity = %(src)s and q.record_key is not distinct from %(key)s "
                "  and q.reason = %(reason)s and q.payload = %(payload)s)",
                {"src": SOURCE_ID, "key": key, "reason": bad.reason, "payload": payload},
            )
    outcome = ClaimsOutcome(max(landed, 0), max(removed, 0), len(read.good), len(read.bad))
    if read.bad:
        log.warning("claims: %d row(s) quarantined (raw.quarantine, source_id 'claims'): %s", len(read.bad),
                    "; ".join(b.reason for b in read.bad[:5]))
    log.info("claims: %d valid, %d landed or changed, %d removed", outcome.kept, outcome.landed, outcome.removed)
    return outcome
