"""A statement as files: the CSV (one row per line, plus a total row per counterparty and per direction) and the
self-contained HTML (inline CSS, no script, no external request), from one Jinja2 template.

The content hash covers what the partner reads (lines and totals), not the revision stamped on it, so a rewrite
happens only when a number, a line or a reason changed.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
from datetime import date
from decimal import Decimal
from pathlib import Path

from jinja2 import Environment, PackageLoader, select_autoescape

from alliance.statements.lines import DIRECTIONS, Line, Statement

CSV_COLUMNS = ("month", "partner_id", "revision", "revised", "direction", "counterparty_partner_id", "row_type",
               "line_kind", "line_key", "order_id", "line_date", "attribution_model", "credit",
               "commissionable_amount_rc", "refunded_before_lock_rc", "rate_applied", "capped", "amount_rc", "held_rc",
               "state", "reason")
SECTION_TITLES = {"earned": "Earned as referrer", "owed": "Owed as destination"}
COUNTERPARTY_ROLE = {"earned": "destination", "owed": "referrer"}

_env = Environment(loader=PackageLoader("alliance.statements", "templates"), autoescape=select_autoescape(["j2"]),
                   trim_blocks=True, lstrip_blocks=True)


def _text(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, date):
        return value.isoformat()
    return str(value)


_LINE_FIELDS = ("order_id", "line_date", "attribution_model", "credit", "commissionable_amount_rc",
                "refunded_before_lock_rc", "rate_applied", "held_rc", "state", "reason")


def _line_row(line: Line, row_type: str) -> dict[str, str]:
    # getattr, not dataclasses.asdict: asdict deep-copies every field of every line, and a transform run hashes
    # every line of every locked month (issue.py): with asdict the hashing took twice as long (4 s at 100k orders)
    return {
        "row_type": row_type, "line_kind": line.kind, "line_key": line.key,
        "capped": _text(line.is_capped), "amount_rc": _text(line.amount_rc),
        **{k: _text(getattr(line, k)) for k in _LINE_FIELDS},
    }


def content_rows(statement: Statement) -> list[dict[str, str]]:
    """The statement's rows without the revision columns: what the CSV lists and the content hash covers."""
    rows = []
    for direction in DIRECTIONS:
        section = statement.sections[direction]
        for group in section.counterparties:
            head = {"direction": direction, "counterparty_partner_id": group.partner_id}
            rows += [{**head, **_line_row(line, "line")} for line in group.lines]
            rows += [{**head, **_line_row(line, "apart")} for line in group.apart]
            rows.append({**head, "row_type": "counterparty_total", "amount_rc": _text(group.total_rc)})
        rows.append({"direction": direction, "row_type": "direction_total", "amount_rc": _text(section.total_rc)})
    return rows


def content_hash(statement: Statement) -> str:
    body = json.dumps([statement.partner_id, statement.month.isoformat(), content_rows(statement)], sort_keys=True)
    return hashlib.sha256(body.encode()).hexdigest()


def render_csv(statement: Statement, revision: int | None) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=CSV_COLUMNS, restval="", lineterminator="\n")
    writer.writeheader()
    stamp = {"month": statement.month.strftime("%Y-%m"), "partner_id": statement.partner_id,
             "revision": _text(revision), "revised": _text(bool(revision))}
    for row in content_rows(statement):
        writer.writerow({**stamp, **row})
    return out.getvalue()


def money(value: Decimal | None) -> str:
    return "" if value is None else f"{value:,.2f}"


def render_html(statement: Statement, revision: int | None, *, partner_name: str, currency: str,
                names: dict[str, str]) -> str:
    template = _env.get_template("statement.html.j2")
    return template.render(
        s=statement, revision=revision, revised=bool(revision), partner_name=partner_name, currency=currency,
        names=names, directions=DIRECTIONS, titles=SECTION_TITLES, roles=COUNTERPARTY_ROLE, money=money,
        month=statement.month.strftime("%Y-%m"))


def write_atomically(path: Path, text: str) -> None:
    """Write whole or not at all: a sender picking the file up never sees half a statement."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def write_files(statement: Statement, out_dir: Path, revision: int | None, *, currency: str,
                names: dict[str, str]) -> list[Path]:
    """`<out>/<YYYY-MM>/<partner>.csv` and `.html`."""
    folder = out_dir / statement.month.strftime("%Y-%m")
    csv_path, html_path = folder / f"{statement.partner_id}.csv", folder / f"{statement.partner_id}.html"
    write_atomically(csv_path, render_csv(statement, revision))
    write_atomically(html_path, render_html(statement, revision, currency=currency, names=names,
                                            partner_name=names.get(statement.partner_id, statement.partner_id)))
    return [csv_path, html_path]
