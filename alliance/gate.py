"""The quality gate: GX suites from `expectations/` on raw.* and on the build schema, plus dbt test failures.

Only a passed gate may lead to `publish()`. The GX project is file-backed (suites, validation definitions and the
`alliance_gate` checkpoint are JSON files under `expectations/`); only run-time values are supplied here:

- the connection string, as the config variable ALLIANCE_GX_CONNECTION_STRING (never written to disk), with the
  build schema as `search_path` (how GX 1.x wants a Postgres schema passed) and the freshness bound as the session
  setting `alliance.freshness_seconds` (read by the raw freshness query);
- suite parameters (`{"$PARAMETER": ...}` in the suites): `now`/`today` for "not in the future", the row-count
  bounds from the currently published snapshot (`<table>_min_rows` / `<table>_max_rows`), and the e-mail query of
  each published table, generated from the catalog so that every text column is covered, whatever dbt adds.

A failure is reported per expectation with its table, column and up to three sample offending rows (e-mails in
samples masked); GX Data Docs are built under `.alliance/gx_data_docs/` (by default when the gate fails).
"""

from __future__ import annotations

import json
import logging
import math
import os
import re
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote

from psycopg import sql

from alliance.gate_scope import (
    COPY_ORDER,
    INDEX_LOOKUP_PAGE_COST,
    RAW_SCOPED,
    SCOPED_SUFFIX,
    GateScope,
    copy_rewritten_clicks,
    copy_rewritten_orders,
    create_gate_schema,
    drop_gate_schema,
    gate_schema,
    recorded_scope,
    row_counts,
    scoped_tables,
)
from alliance.schemas import BUILD_SCHEMA, PUBLISHED_SCHEMA
from alliance.warehouse import PROJECT_ROOT, connect, parse_url, state_dir
from connectors.pii import mask_addresses

log = logging.getLogger(__name__)

GX_PROJECT_DIR = PROJECT_ROOT / "expectations"
CHECKPOINT_NAME = "alliance_gate"
CONNECTION_VARIABLE = "ALLIANCE_GX_CONNECTION_STRING"
DATA_DOCS_VARIABLE = "ALLIANCE_GX_DATA_DOCS_DIR"
DATA_DOCS_SITE = "alliance_gate_docs"
IDENTIFIER = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")
RAW_ASSETS = RAW_SCOPED  # GX asset name -> table in schema raw
# What "looks like an e-mail address" (POSIX regex for PostgreSQL; no braces: GX formats queries with str.format).
EMAIL_REGEX = r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)*\.[A-Za-z][A-Za-z]+"
_EMAIL_PY = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}")
TEXT_TYPES = ("text", "character varying", "character", "json", "jsonb")
_SKIPPED_KWARGS = {"batch_id", "mostly", "result_format", "include_config", "catch_exceptions", "meta", "description"}
SAMPLE_ROWS = 3
NO_FRESHNESS_BOUND = 10**10  # seconds (~300 years): `freshness_hours: null`, still a valid interval from now()
# the suites' custom-SQL checks (alliance/gx_expectations.py: GX imports only when a gate runs, so named here)
COUNTED_ROWS_EXPECTATION = "expect_no_unexpected_rows"
RESULT_FORMAT = os.environ.get("ALLIANCE_GATE_RESULT_FORMAT", "BOOLEAN_ONLY")  # SUMMARY: one pass
_STRUCTURAL = ("table exists", "GX validation", "schema exists")


class GateError(RuntimeError):
    """The gate could not be run at all (bad arguments, GX project unreadable)."""


@dataclass(frozen=True)
class GateSettings:
    """Run-time bounds of the gate (from `gate:` in the config; see alliance/config.py for the meaning)."""

    max_row_count_drop: float = 0.5
    max_row_count_growth: float | None = None
    row_count_floor: int = 100
    freshness_hours: float | None = 48.0
    future_tolerance_minutes: float = 10.0
    data_docs: str = "on_failure"  # on_failure | always | never

    @classmethod
    def from_config(cls, config: Any) -> GateSettings:
        gate = getattr(config, "gate", None)
        if gate is None:
            return cls()
        return cls(**{k: getattr(gate, k) for k in cls.__dataclass_fields__ if hasattr(gate, k)})


@dataclass
class GateFailure:
    """One failed check: where (table, column), what (the expectation), why, and sample offending rows."""

    table: str
    expectation: str
    message: str
    column: str | None = None
    sample_rows: list[dict[str, Any]] = field(default_factory=list)

    def line(self) -> str:
        if self.expectation in _STRUCTURAL:
            return f"{self.table}: {self.message}"
        return f"{self.table}: {self.expectation} failed: {self.message}"

    def as_dict(self) -> dict[str, Any]:
        return {"table": self.table, "column": self.column, "expectation": self.expectation,
                "message": self.message, "sample_rows": self.sample_rows}


@dataclass
class GateResult:
    """Why the gate passed or failed: one line per failure, details with samples, per-table GX statistics."""

    passed: bool
    failures: list[str] = field(default_factory=list)
    results: dict[str, Any] = field(default_factory=dict)
    details: list[GateFailure] = field(default_factory=list)
    checks_passed: int = 0
    checks_failed: int = 0
    data_docs: Path | None = None
    seconds: float = 0.0
    scope: str = "every row (full build)"
    scope_keys: dict[str, int] = field(default_factory=dict)  # rewritten orders and clicks an incremental gate read
    row_counts: dict[str, int] = field(default_factory=dict)  # exact whole-table counts it took (publish reuses them)


def check_identifier(name: str, what: str) -> str:
    """Schema names are interpolated into SQL, so only plain lower-case identifiers are accepted."""
    if not IDENTIFIER.match(name):
        raise GateError(f"{what} `{name}` is not a plain lower-case SQL identifier ([a-z_][a-z0-9_]*)")
    return name


def quiet_gx() -> None:
    """GX is chatty (progress bars, INFO lines, analytics); keep it to real errors, in code, before import."""
    os.environ["GX_ANALYTICS_ENABLED"] = "false"
    for name in ("great_expectations", "great_expectations.core", "great_expectations.data_context"):
        logging.getLogger(name).setLevel(logging.ERROR)


def gx_connection_string(warehouse_url: str, schema: str, freshness_seconds: float | None = None,
                         random_page_cost: float | None = None) -> str:
    """SQLAlchemy URL for GX over TCP, with `search_path` set to the schema(s) under test (comma-separated), and
    the session's `random_page_cost` when given (a scoped gate's: alliance/gate_scope.py)."""
    parts = parse_url(warehouse_url)
    if parts.host.startswith("/"):
        raise GateError(f"GX needs a TCP host, not the Unix socket `{parts.host}`; use 127.0.0.1")
    auth = quote(parts.user, safe="") + (f":{quote(parts.password, safe='')}" if parts.password else "")
    options = f"-csearch_path%3D{quote(schema, safe='')}"
    if freshness_seconds is not None:
        options += f"%20-calliance.freshness_seconds%3D{int(freshness_seconds)}"
    if random_page_cost is not None:
        options += f"%20-crandom_page_cost%3D{float(random_page_cost)}"
    return f"postgresql+psycopg2://{auth}@{parts.host}:{parts.port}/{quote(parts.dbname, safe='')}?options={options}"


def data_docs_dir() -> Path:
    """Where the gate's GX Data Docs are built (outside the repository's GX project)."""
    return state_dir() / "gx_data_docs"


def _tables(conn: Any, schema: str) -> set[str] | None:
    if conn.execute("select 1 from pg_namespace where nspname = %s", (schema,)).fetchone() is None:
        return None
    rows = conn.execute("select table_name from information_schema.tables where table_schema = %s", (schema,))
    return {r[0] for r in rows}


def _text_columns(conn: Any, schema: str) -> dict[str, list[tuple[str, str]]]:
    out: dict[str, list[tuple[str, str]]] = {}
    for table, column, dtype in conn.execute(
        "select table_name, column_name, data_type from information_schema.columns "
        "where table_schema = %s and data_type = any(%s) order by table_name, ordinal_position",
        (schema, list(TEXT_TYPES)),
    ):
        out.setdefault(table, []).append((column, dtype))
    return out


def email_query(columns: list[tuple[str, str]]) -> str:
    """One scan of `{batch}`: rows where any text column looks like an e-mail, naming the first such column.

    A cheap `like '%@%'` filter over every column first; the regex (and the naming) only runs on those rows.
    """
    if not columns:
        return "select 1 as column_with_email from {batch} where false"
    whens, filters = [], []
    for name, dtype in columns:
        ident = '"' + name.replace('"', '""') + '"'
        value = f"{ident}::text" if dtype in ("json", "jsonb") else ident
        literal = "'" + name.replace("'", "''") + "'"
        whens.append(f"when {value} ~ '{EMAIL_REGEX}' then {literal}")
        filters.append(f"{value} like '%@%'")
    return ("select * from (select case " + " ".join(whens) + " end as column_with_email, * from {batch} where "
            + " or ".join(filters) + ") e where column_with_email is not null")


def _row_bounds(previous: int | None, settings: GateSettings) -> tuple[int, int]:
    """Allowed row counts for a table whose published snapshot has `previous` rows (None: nothing published)."""
    huge = 2**62
    if previous is None or previous < settings.row_count_floor:
        return 0, huge
    low = math.floor(previous * (1 - settings.max_row_count_drop))
    high = huge if settings.max_row_count_growth is None else math.ceil(previous * (1 + settings.max_row_count_growth))
    return low, high


def _parameters(
    conn: Any, build_schema: str, published: list[str], settings: GateSettings, now: datetime
) -> dict[str, Any]:
    tolerance = timedelta(minutes=settings.future_tolerance_minutes)
    params: dict[str, Any] = {"now": now + tolerance, "today": (now + tolerance).date()}
    live = _tables(conn, PUBLISHED_SCHEMA) or set()
    text = _text_columns(conn, build_schema)
    counted: dict[str, Any] = {}
    if "run_manifest" in live:  # the live snapshot's own row counts, taken inside its publish transaction
        row = conn.execute("select row_counts from analytics.run_manifest where row_counts is not null"
                           " order by published_at desc limit 1").fetchone()
        counted = (row[0] or {}) if row else {}
    for table in published:
        previous = None
        if isinstance(counted.get(table), int):
            previous = counted[table]
        elif table in live:
            previous = conn.execute(
                sql.SQL("select count(*) from analytics.{}").format(sql.Identifier(table))).fetchone()[0]
        params[f"{table}_min_rows"], params[f"{table}_max_rows"] = _row_bounds(previous, settings)
        params[f"{table}_previous_rows"] = previous
        params[f"{table}_email_query"] = email_query(text.get(table, []))
    return params


def _describe_expectation(config: Any) -> str:
    check = (config.meta or {}).get("check")
    if config.type == COUNTED_ROWS_EXPECTATION or check == "row_count_change":
        return f"{config.type}({check or 'custom_sql'})"
    kwargs = {k: v for k, v in config.kwargs.items() if k not in _SKIPPED_KWARGS and v is not None}
    args: list[str] = []
    if "column" in kwargs:
        args.append(str(kwargs.pop("column")))
    if "column_list" in kwargs:
        args.append("(" + ", ".join(kwargs.pop("column_list")) + ")")
    kwargs.pop("ignore_row_if", None)
    for key, value in kwargs.items():
        if isinstance(value, dict) and "$PARAMETER" in value:
            args.append(f"{key}=${value['$PARAMETER']}")
        else:
            args.append(str(value) if not isinstance(value, list) else "[" + ", ".join(map(str, value)) + "]")
    return f"{config.type}({', '.join(args)})"


def _show(value: Any) -> str:
    if isinstance(value, dict):
        return "(" + ", ".join(mask_emails(str(v)) for v in value.values()) + ")"
    return mask_emails(str(value))


def mask_emails(text: str) -> str:
    """`text` with every e-mail address, plain or URL-encoded (`%40`), shown as `<e-mail>`."""
    return mask_addresses(_EMAIL_PY.sub("<e-mail>", text), "<e-mail>")


def _masked(value: Any) -> Any:
    """A sample cell as stored: text and JSON (a raw payload) with e-mails masked, numbers and dates as they are."""
    if isinstance(value, str):
        return mask_emails(value)
    if isinstance(value, (dict, list)):
        return mask_emails(json.dumps(value, default=str, ensure_ascii=False))
    return value


def _describe_outcome(config: Any, result: dict, exception_info: Any, params: dict[str, Any]) -> str:
    if exception_info and getattr(exception_info, "raised_exception", False):
        return f"error: {str(exception_info.exception_message).splitlines()[0][:300]}"
    if isinstance(exception_info, dict):
        for info in exception_info.values():
            if isinstance(info, dict) and info.get("raised_exception"):
                return f"error: {str(info.get('exception_message')).splitlines()[0][:300]}"
    check = (config.meta or {}).get("check")
    if config.type == COUNTED_ROWS_EXPECTATION:
        what = {"no_email": "row(s) with an e-mail address", "freshness": "stale partner(s)",
                "reconciliation": "unreconciled total(s)"}.get(check, "unexpected row(s)")
        return f"{result.get('observed_value')} {what}"
    if check == "row_count_change":
        return f"observed {result.get('observed_value')} rows"
    if "unexpected_count" in result and result.get("element_count") is not None:
        text = f"{result['unexpected_count']} of {result['element_count']} rows"
        sample = result.get("partial_unexpected_list") or []
        if sample:
            text += ", e.g. " + "; ".join(_show(value) for value in sample[:3])
        return text
    if "observed_value" in result:
        bound = config.kwargs.get("max_value")
        if isinstance(bound, dict) and "$PARAMETER" in bound:
            return f"observed {result['observed_value']}, later than {params.get(bound['$PARAMETER'])}"
        return f"observed {result['observed_value']}"
    return "no details"


def _sample(conn: Any, search_path: list[str], qualified: sql.Composable, config: Any,
            params: dict[str, Any]) -> list[dict]:
    """Up to SAMPLE_ROWS offending rows of a failed expectation (e-mails masked), or [] when rows make no sense."""
    kw = config.kwargs
    col = kw.get("column")
    where: sql.Composable | None = None
    args: list[Any] = []
    kind = config.type
    if kind == COUNTED_ROWS_EXPECTATION:
        query = kw.get("unexpected_rows_query")
        if isinstance(query, dict):
            query = params.get(query.get("$PARAMETER", ""))
        if not isinstance(query, str):
            return []
        text = query.replace("{batch}", qualified.as_string(conn))
        rows_sql = sql.SQL("select * from ({}) q limit {}").format(sql.SQL(text), sql.Literal(SAMPLE_ROWS))
    else:
        if kind == "expect_column_values_to_not_be_null":
            where = sql.SQL("{} is null").format(sql.Identifier(col))
        elif kind in ("expect_column_values_to_be_between", "expect_column_min_to_be_between",
                      "expect_column_max_to_be_between"):
            lo, hi = kw.get("min_value"), kw.get("max_value")
            lo = params.get(lo["$PARAMETER"]) if isinstance(lo, dict) else lo
            hi = params.get(hi["$PARAMETER"]) if isinstance(hi, dict) else hi
            parts = []
            if lo is not None:
                parts.append(sql.SQL("{} < %s").format(sql.Identifier(col)))
                args.append(lo)
            if hi is not None:
                parts.append(sql.SQL("{} > %s").format(sql.Identifier(col)))
                args.append(hi)
            where = sql.SQL(" or ").join(parts) if parts else None
        elif kind == "expect_column_values_to_be_in_set":
            where = sql.SQL("{} is not null and not ({} = any(%s))").format(sql.Identifier(col), sql.Identifier(col))
            args.append(list(kw.get("value_set") or []))
        elif kind in ("expect_compound_columns_to_be_unique", "expect_column_values_to_be_unique"):
            cols = kw.get("column_list") or [col]
            ids = sql.SQL(", ").join(sql.Identifier(c) for c in cols)
            where = sql.SQL("({}) in (select {} from {} group by {} having count(*) > 1)").format(
                ids, ids, qualified, ids)
        if where is None:
            return []
        rows_sql = sql.SQL("select * from {} where {} limit {}").format(qualified, where, sql.Literal(SAMPLE_ROWS))
    try:
        with conn.transaction():
            conn.execute(sql.SQL("set local search_path = {}").format(
                sql.SQL(", ").join(map(sql.Identifier, search_path))))
            conn.execute("select set_config('alliance.freshness_seconds', %s, true)",
                         (str(int(params.get("freshness_seconds", NO_FRESHNESS_BOUND))),))
            cur = conn.execute(rows_sql, args or None)
            names = [d.name for d in cur.description]
            rows = cur.fetchall()
    except Exception as exc:  # a sample is a courtesy: never let it hide the failure itself
        log.debug("no sample rows for %s: %s", kind, exc)
        return []
    return [{n: _masked(v) for n, v in zip(names, row, strict=True)} for row in rows]


KEY_COLUMNS = ("column_with_email", "partner_id", "order_id", "network_id", "click_id", "attribution_model",
               "referrer_partner_id", "destination_partner_id", "kpi_date", "month", "metric")


def _brief(row: dict[str, Any], column: str | None) -> str:
    """A sample row as printed: its key columns and the failing column(s); the stored sample has every column."""
    wanted = [c for c in KEY_COLUMNS if c in row] + [c.strip() for c in (column or "").split(",") if c.strip() in row]
    shown = list(dict.fromkeys(wanted)) or list(row)[:6]
    return "(" + ", ".join(f"{k}={row[k]}" for k in shown) + ")"


def _column_of(config: Any, samples: list[dict]) -> str | None:
    kw = config.kwargs
    if kw.get("column"):
        return kw["column"]
    if kw.get("column_list"):
        return ", ".join(kw["column_list"])
    if samples and "column_with_email" in samples[0]:
        return ", ".join(sorted({str(s["column_with_email"]) for s in samples}))
    return None


def _run_suites(
    warehouse_url: str, schema: str, settings: GateSettings, now: datetime, scope: GateScope,
    copies: _Copies,
) -> tuple[list[GateFailure], dict[str, Any], int, int, Path | None, dict[str, int]]:
    """Run every validation definition of the checkpoint (the `__scoped` twin of a table an incremental build
    rewrote in part, once `copies` has made it: the other tables' first, then each copied one as its copy is made),
    then the whole-table invariants of a scoped gate; one GX context per call."""
    quiet_gx()
    import great_expectations as gx  # heavy import (seconds): only when a gate actually runs

    import alliance.gx_expectations  # noqa: F401 - registers expect_no_unexpected_rows before the suites load

    freshness = NO_FRESHNESS_BOUND if settings.freshness_hours is None else settings.freshness_hours * 3600
    search_path = [gate_schema(schema), schema]
    began = time.perf_counter()
    context = gx.get_context(
        mode="file",
        context_root_dir=str(GX_PROJECT_DIR),
        runtime_environment={
            CONNECTION_VARIABLE: gx_connection_string(warehouse_url, ",".join(search_path), freshness,
                                                      None if scope.whole else INDEX_LOOKUP_PAGE_COST),
            DATA_DOCS_VARIABLE: str(data_docs_dir()),
        },
    )
    checkpoint = context.checkpoints.get(CHECKPOINT_NAME)
    failures: list[GateFailure] = []
    results: dict[str, Any] = {"gx context": {"success": True, "seconds": round(time.perf_counter() - began, 2)}}
    passed = failed = 0
    scoped = () if scope.whole else (*scoped_tables(), *RAW_ASSETS)  # validated through `__scoped` twins
    copied = () if scope.whole else COPY_ORDER  # twins copied beside the suites (the raw ones are views)
    with connect(warehouse_url) as conn:
        counts: dict[str, int] = {}
        if not scope.whole:  # whole-table row counts: a suite's row-count rules judge the table, not its copy
            began = time.perf_counter()
            counts = row_counts(conn, schema, scoped_tables())  # kept by difference (ops.table_row_counts)
            results["row counts"] = {"success": True, "seconds": round(time.perf_counter() - began, 2)}
        build_tables = _tables(conn, schema) or set()
        raw_tables = _tables(conn, "raw") or set()
        published = [d.asset.table_name for d in checkpoint.validation_definitions if d.asset.name not in RAW_ASSETS]
        began = time.perf_counter()
        params = _parameters(conn, schema, published, settings, now)
        results["parameters"] = {"success": True, "seconds": round(time.perf_counter() - began, 2)}
        params["freshness_seconds"] = freshness
        for table in scoped:  # counted whole below, not on the rewritten rows
            params[f"{table}_min_rows"], params[f"{table}_max_rows"] = 0, 2**62
        # the tables copied in part last, in the order their copies are made (meanwhile)
        for definition in sorted(checkpoint.validation_definitions,
                                 key=lambda d: COPY_ORDER.index(d.asset.name) if d.asset.name in copied else -1):
            name = definition.asset.name
            is_raw = name in RAW_ASSETS
            table = definition.asset.table_name
            label = f"raw.{table}" if is_raw else table
            if is_raw and table not in raw_tables:
                results[label] = {"success": True, "skipped": "no raw table (nothing landed yet)"}
                continue
            if not is_raw and table not in build_tables:
                failures.append(GateFailure(label, "table exists", f"table missing from build schema `{schema}` "
                                            "(did dbt build it?)"))
                results[label] = {"success": False, "missing": True}
                failed += 1
                continue
            qualified = sql.Identifier("raw" if is_raw else schema, table)
            if name in scoped:
                if name in copied:
                    copies.wait_for(name)  # a copy that failed raises here
                definition = context.validation_definitions.get(name + SCOPED_SUFFIX)
                qualified = sql.Identifier(search_path[0], name + SCOPED_SUFFIX)
            began = time.perf_counter()
            try:
                # BOOLEAN_ONLY lets GX bundle each table's counts into few queries and skip fetching unexpected
                # values; only a suite that failed is run again for counts and examples (the failure report).
                outcome = definition.run(result_format=RESULT_FORMAT, expectation_parameters=params)
                if not outcome.success and RESULT_FORMAT != "SUMMARY":
                    outcome = definition.run(result_format="SUMMARY", expectation_parameters=params)
            except Exception as exc:  # GX wraps connection and SQL errors in many types; report, never crash
                failures.append(GateFailure(label, "GX validation", f"GX could not validate the table: "
                                            f"{str(exc).splitlines()[0][:300]}"))
                results[label] = {"success": False, "error": str(exc)[:1000]}
                failed += 1
                continue
            for item in outcome.results:
                if item.success or _whole_count_passes(item.expectation_config, counts.get(table), params):
                    passed += 1
                    continue
                failed += 1
                config = item.expectation_config
                samples = _sample(conn, search_path, qualified, config, params)
                message = _describe_outcome(config, item.result or {}, item.exception_info, params)
                if (config.meta or {}).get("check") == "row_count_change":
                    message += _row_count_reason(table, params)
                column = _column_of(config, samples)
                if samples and not message.startswith("error"):
                    message += " | sample: " + "; ".join(_brief(row, column) for row in samples[:SAMPLE_ROWS])
                failures.append(GateFailure(label, _describe_expectation(config), message, column, samples))
            results[label] = {"success": bool(outcome.success), "statistics": dict(outcome.statistics),
                              "rows": "rewritten" if name in scoped else "all",
                              "seconds": round(time.perf_counter() - began, 2)}
        for table, count in counts.items():  # the whole-table invariant GX checked on the rewritten rows only
            low, high = _row_bounds(params.get(f"{table}_previous_rows"), settings)
            if low <= count <= high:
                passed += 1
                continue
            failed += 1
            params[f"{table}_min_rows"], params[f"{table}_max_rows"] = low, high
            results["row counts"]["success"] = False
            failures.append(GateFailure(table, "expect_table_row_count_to_be_between(whole table)",
                                        f"observed {count} rows" + _row_count_reason(table, params)))
    built_docs: Path | None = None
    if settings.data_docs == "always" or (settings.data_docs == "on_failure" and failures):
        try:
            context.build_data_docs(site_names=[DATA_DOCS_SITE])
            built_docs = data_docs_dir() / "index.html"
        except Exception as exc:  # documentation must never decide the gate
            log.warning("GX Data Docs could not be built: %s", exc)
    return failures, results, passed, failed, built_docs, counts


class _Copies:
    """The rewritten rows' copies, made on other threads: which ones are ready, and how the copying ended."""

    def __init__(self) -> None:
        self.ready = {asset: threading.Event() for asset in COPY_ORDER}
        self.made_assets: set[str] = set()
        self.futures: list[Future[tuple[dict[str, int], float]]] = []

    def made(self, asset: str) -> None:
        self.made_assets.add(asset)
        self.ready[asset].set()

    def watch(self, futures: list[Future[tuple[dict[str, int], float]]]) -> None:
        """Follow the copiers (every one submitted first: a callback on a finished future runs at once)."""
        self.futures = futures
        for future in futures:
            future.add_done_callback(self._stopped)

    def _stopped(self, future: Future[tuple[dict[str, int], float]]) -> None:
        """A copier failed, or the last one ended: nothing more will be made, so no suite waits any longer."""
        if future.exception() is not None or all(f.done() for f in self.futures):
            for event in self.ready.values():
                event.set()

    def wait_for(self, asset: str) -> None:
        """Until `asset`'s copy is made; raises the copying's error if it failed first."""
        self.ready[asset].wait()
        if asset in self.made_assets:
            return
        for future in self.futures:
            if future.done() and future.exception() is not None:
                raise future.exception()  # what stopped the copies
        raise GateError(f"the rewritten rows of {asset} were not copied")

    def outcome(self) -> tuple[dict[str, int], float]:
        """The rewritten keys both copiers counted, and the seconds the slower took (raises a copy's error)."""
        keys: dict[str, int] = {}
        seconds = 0.0
        for future in self.futures:
            counted, took = future.result()
            keys.update(counted)
            seconds = max(seconds, took)
        return keys, seconds

    def finish(self) -> None:
        """Until every copier has stopped (done or failed): before their schema is dropped."""
        for future in self.futures:
            future.exception()


def _copy_rewritten_rows(copier: Callable[..., dict[str, int]], warehouse_url: str, build_schema: str,
                         scope: GateScope, steps: dict[str, float],
                         copied: Callable[[str], None]) -> tuple[dict[str, int], float]:
    """A copier (copy_rewritten_orders or _clicks) on a connection of its own, run beside the suites and the
    other copier: the rewritten keys it counted, and seconds."""
    began = time.perf_counter()
    with connect(warehouse_url, autocommit=True) as conn:
        keys = copier(conn, build_schema, scope, steps, copied)
    return keys, round(time.perf_counter() - began, 2)


def _whole_count_passes(config: Any, count: int | None, params: dict[str, Any]) -> bool:
    """A row-count rule of a suite run on a scoped copy (count known): judged on the whole table's row count."""
    if count is None or config.type != "expect_table_row_count_to_be_between":
        return False
    low, high = (params.get(v["$PARAMETER"]) if isinstance(v, dict) else v
                 for v in (config.kwargs.get("min_value"), config.kwargs.get("max_value")))
    return (low is None or count >= low) and (high is None or count <= high)


def _row_count_reason(table: str, params: dict[str, Any]) -> str:
    high = params[f"{table}_max_rows"]
    return (f", published snapshot has {params.get(f'{table}_previous_rows')}; allowed {params[f'{table}_min_rows']}.."
            f"{high if high < 2**62 else 'any'} (gate.max_row_count_drop / max_row_count_growth)")


def run_gate(
    warehouse_url: str,
    build_schema: str = BUILD_SCHEMA,
    dbt_failures: list[str] | None = None,
    settings: GateSettings | None = None,
    now: datetime | None = None,
    scope: GateScope | None = None,
) -> GateResult:
    """Validate raw.* and the build schema against the GX suites, fold in dbt's test failures; never raises on data.

    `scope`: which rows to validate; by default what alliance/incremental.py recorded for the build schema's last
    successful build (every row after a full build, the rewritten rows and whole-table invariants after an
    incremental one: alliance/gate_scope.py). `GateScope()` forces a whole gate.
    """
    started = time.perf_counter()
    check_identifier(build_schema, "build schema")
    check_identifier(gate_schema(build_schema), "gate schema")
    if not (GX_PROJECT_DIR / "great_expectations.yml").is_file():
        raise GateError(f"GX project not found: {GX_PROJECT_DIR / 'great_expectations.yml'}")
    settings = settings or GateSettings()
    details = [GateFailure("dbt", "dbt test", line) for line in (dbt_failures or [])]
    results: dict[str, Any] = {"dbt": {"success": not dbt_failures, "failures": list(dbt_failures or [])}}
    passed = failed = 0
    docs = None
    keys: dict[str, int] = {}
    counts: dict[str, int] = {}
    with connect(warehouse_url) as conn:
        exists = _tables(conn, build_schema) is not None
        scope = scope if scope is not None or not exists else recorded_scope(conn, build_schema)
    scope = scope or GateScope()
    if not exists:
        details.append(GateFailure("build", "schema exists",
                                   f"build schema `{build_schema}` does not exist: run `dbt build` before the gate"))
    else:
        steps: dict[str, float] = {}
        with connect(warehouse_url, autocommit=True) as conn:
            create_gate_schema(conn, build_schema, scope, steps)
        with ThreadPoolExecutor(max_workers=2) as pool:
            # PostgreSQL copies the rewritten orders' rows and clicks' rows on two connections of their own while GX
            # (Python: its import, its context, the suites of the tables not copied) runs beside them; each copied
            # table's suite waits for its copy
            copies = _Copies()
            copies.watch([pool.submit(_copy_rewritten_rows, copier, warehouse_url, build_schema, scope, steps,
                                      copies.made) for copier in (copy_rewritten_orders, copy_rewritten_clicks)])
            try:
                gx_failures, gx_results, passed, failed, docs, counts = _run_suites(
                    warehouse_url, build_schema, settings, now or datetime.now(UTC), scope, copies)
                keys, copied_s = copies.outcome()
            finally:
                copies.finish()
                with connect(warehouse_url, autocommit=True) as conn:
                    drop_gate_schema(conn, build_schema)
        details += gx_failures
        results["scope copies"] = {"success": True, "seconds": copied_s, "steps": steps, "concurrent": True}
        results.update(gx_results)
    failures = [f"dbt: {d.message}" if d.table == "dbt" else d.message if d.table == "build" else d.line()
                for d in details]
    result = GateResult(passed=not failures, failures=failures, results=results, details=details,
                        checks_passed=passed, checks_failed=failed + len(dbt_failures or []), data_docs=docs,
                        seconds=round(time.perf_counter() - started, 2), scope=scope.describe(), scope_keys=keys,
                        row_counts=counts)
    log.info("gate on %s (%s): %s (%d failures)", build_schema, result.scope,
             "passed" if result.passed else "FAILED", len(failures))
    return result
