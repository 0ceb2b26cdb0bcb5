"""Run the dbt project as dbt documents programmatic use: `dbtRunner` with a profile rendered for this run.

Why a per-run profile: dbt reads its connection from profiles.yml. The runner writes one for this run's warehouse
and build schema into a private temporary directory (0700, removed afterwards) and points `--profiles-dir` at it,
as astronomer-cosmos renders a profile from a connection: nothing in os.environ changes and nothing of dbt or its
adapters is replaced. Session settings for dbt's connections (work_mem and the like) are dbt's own business: every
model's pre-hook applies them (`alliance_session_settings`, from the `session_settings` var), so they hold on each
of dbt's threads.

Why in-process: dbt's import and adapter set-up cost about a second and a half on every call from a child process;
`dbtRunner` pays it once per process. dbt documents that it is not safe to invoke concurrently in one process, so
every invocation holds the project lock (one dbt run at a time per checkout, across processes and threads).
Results come from dbt's documented artifacts (`target/run_results.json`, and `target/manifest.json` only when
something failed), so the gate still gets one readable line per failed model or test.

Partial parsing survives from one invocation to the next because the inputs dbt checks are stable: the same
profile fields (host, port, database, schema, user) and the same vars. The embedded warehouse restarts on the port
it had (alliance/warehouse.py), so a second `alliance transform` reuses `target/partial_parse.msgpack`. Where
several warehouses share this checkout (tests, the fault campaign's servers, two runs at once), each keeps its own
copy of that file (`target/partial_parse/<profile key>.msgpack`), put back before its next invocation: dbt still
checks the copy against the profile and vars it is given and parses afresh when they differ.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import psycopg
import yaml

from alliance.config import AllianceConfig
from alliance.schemas import BUILD_SCHEMA
from alliance.warehouse import parse_url

DBT_PROJECT_DIR = Path(__file__).resolve().parents[1] / "dbt_project"
# Where dbt writes target/ and logs/: the project by default; ALLIANCE_DBT_ARTIFACTS_DIR gives a process tree its
# own (parallel test workers), so two of them run dbt at once without sharing run_results.json or the parse state.
ARTIFACTS_VARIABLE = "ALLIANCE_DBT_ARTIFACTS_DIR"


def artifacts_dir() -> Path:
    """The directory holding dbt's target/ and logs/ for this process (see ARTIFACTS_VARIABLE)."""
    configured = os.environ.get(ARTIFACTS_VARIABLE, "").strip()
    return Path(configured).resolve() if configured else DBT_PROJECT_DIR


def target_dir() -> Path:
    return artifacts_dir() / "target"


def log_dir() -> Path:
    return artifacts_dir() / "logs"

_ANSI = re.compile(r"\x1b\[[0-9;]*m")
# Session settings of dbt's connections: the attribution models sort and hash a few hundred thousand rows per million
# orders, which spills to disk at PostgreSQL's 4MB default; JIT compilation costs more than it saves on these one-shot
# statements. bench/transform gives its hand-written SQL the same settings (SESSION_OPTIONS, libpq's form).
SESSION_SETTINGS = {"work_mem": "256MB", "maintenance_work_mem": "512MB", "random_page_cost": "1.1", "jit": "off"}
SESSION_OPTIONS = " ".join(f"-c {name}={value}" for name, value in SESSION_SETTINGS.items())
PROFILE_NAME = "alliance"  # dbt_project.yml `profile:`
FAILED_STATUSES = ("error", "fail", "runtime error")


@dataclass
class DbtOutcome:
    """What a dbt invocation did: success, one readable line per failed node, and its run_results.json (raw)."""

    success: bool
    failures: list[str] = field(default_factory=list)
    raw: Any = None
    warnings: list[str] = field(default_factory=list)  # tests of severity warn that found rows (§8.5 reviews)
    exception: BaseException | None = None


def render_profile(warehouse_url: str, build_schema: str = BUILD_SCHEMA) -> str:
    """profiles.yml for one run: the warehouse URL's fields, dbt writing into build_schema (values YAML-quoted)."""
    parts = parse_url(warehouse_url)
    output = {"type": "postgres", "host": parts.host, "port": parts.port, "user": parts.user,
              "password": parts.password, "dbname": parts.dbname, "schema": build_schema,
              "threads": 2, "connect_timeout": 10}
    return yaml.safe_dump({PROFILE_NAME: {"target": "warehouse", "outputs": {"warehouse": output}}}, sort_keys=False)


@contextmanager
def run_profile_dir(warehouse_url: str, build_schema: str = BUILD_SCHEMA) -> Iterator[Path]:
    """A private directory holding this run's profiles.yml (it has the password), removed when the run ends."""
    with tempfile.TemporaryDirectory(prefix="alliance-dbt-profile-") as folder:  # created 0700
        path = Path(folder) / "profiles.yml"
        path.touch(mode=0o600)
        path.write_text(render_profile(warehouse_url, build_schema))
        yield Path(folder)


def dbt_vars_from_config(config: AllianceConfig, as_of_date: date | None = None) -> dict:
    """The dbt vars the models read, from the parsed config (as_of_date pins pending/locked; None = today UTC)."""
    dbt_vars = {
        "reporting_currency": config.reporting_currency,
        "attribution_model": config.attribution.model,
        "lookback_days": config.attribution.lookback_days,
        "lock_days": config.lock_days,
        "as_of_date": as_of_date.isoformat() if as_of_date else "",
        "session_settings": SESSION_SETTINGS,
    }
    if config.holds is not None:  # §8.5 hold thresholds; unset = that signal is off (dbt_project.yml's null)
        dbt_vars["holds_min_seconds"] = config.holds.min_seconds_click_to_order
        dbt_vars["holds_max_clicks_per_hour"] = config.holds.max_clicks_per_hour
    return dbt_vars


@contextmanager
def _project_lock() -> Iterator[None]:
    """dbt's target directory is shared by every process using it (CLI, Airflow tasks): one dbt run at a time."""
    target_dir().mkdir(parents=True, exist_ok=True)
    with open(target_dir() / ".alliance.lock", "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _sample_rows(warehouse_url: str, sql: str | None, limit: int = 3) -> str:
    """A few failing rows of a test, so the message names what is wrong (e.g. the currency and date)."""
    if not sql:
        return ""
    try:
        with psycopg.connect(warehouse_url, connect_timeout=10) as conn:
            cur = conn.execute(f"select * from ({sql}) as failing limit {limit}")  # noqa: S608 - dbt-compiled SQL
            names = [d.name for d in cur.description or []]
            rows = cur.fetchall()
    except psycopg.Error:
        return ""
    if not rows:
        return ""
    shown = "; ".join(", ".join(f"{n}={v}" for n, v in zip(names, row, strict=False)) for row in rows)
    return f" (e.g. {shown})"


def _artifact(name: str) -> dict:
    path = target_dir() / name
    return json.loads(path.read_text()) if path.is_file() else {}


def _warning_lines(run_results: dict, manifest: dict, warehouse_url: str) -> list[str]:
    """One line per data test of severity warn that found rows, with a few of them (e.g. the ignored reviews)."""
    nodes = manifest.get("nodes", {})
    lines = []
    for item in run_results.get("results", []):
        if item.get("status") != "warn":
            continue
        node = nodes.get(item["unique_id"], {})
        name = node.get("name") or item["unique_id"].split(".")[-1]
        sample = _sample_rows(warehouse_url, item.get("compiled_code"), limit=10)
        lines.append(f"test {name}: {item.get('failures', '?')} rows{sample}")
    return lines


def _failure_lines(run_results: dict, manifest: dict, warehouse_url: str) -> list[str]:
    """One line per failed node, from dbt's run_results.json and manifest.json."""
    nodes = {**manifest.get("nodes", {}), **manifest.get("unit_tests", {})}
    lines: list[str] = []
    for item in run_results.get("results", []):
        status = item.get("status")
        if status not in FAILED_STATUSES:
            continue
        uid = item["unique_id"]
        node = nodes.get(uid, {})
        kind = node.get("resource_type") or uid.split(".")[0]
        name = node.get("name") or uid.split(".")[-1]
        message = (item.get("message") or "").strip()
        if kind in ("test", "unit_test"):
            attached = node.get("attached_node") or (f"model.{node['model']}" if node.get("model") else "")
            on = attached.split(".")[-1] if attached else ", ".join(ref["name"] for ref in node.get("refs", []))
            where = f" on {on}" if on else ""
            if status == "fail" and kind == "unit_test":
                detail = " ".join(_ANSI.sub("", message).split())[:400]
                lines.append(f"unit test {name} failed{where}: {detail}")
            elif status == "fail":
                rows = item["failures"] if item.get("failures") is not None else "?"
                sample = _sample_rows(warehouse_url, item.get("compiled_code")) if kind == "test" else ""
                lines.append(f"{kind.replace('_', ' ')} {name} failed{where}: {rows} rows{sample}")
            else:
                lines.append(f"{kind.replace('_', ' ')} {name} errored{where}: {message}")
        else:
            lines.append(f"{kind} {name} {status}: {message}")
    return lines


def dbt_args(args: list[str], profiles_dir: Path, vars: dict | None = None) -> list[str]:  # noqa: A002 - dbt's --vars
    """dbt's arguments for args (e.g. ["build"]) on dbt_project with the run's profile."""
    command = [
        *args,
        "--project-dir", str(DBT_PROJECT_DIR),
        "--profiles-dir", str(profiles_dir),
        "--target-path", str(target_dir()),
        "--log-path", str(log_dir()),
        "--no-use-colors",
        *([] if os.environ.get("ALLIANCE_DBT_VERBOSE") else ["--quiet"]),
    ]
    if vars:
        command += ["--vars", json.dumps(vars, default=str)]
    return command


PARSE_STATES_KEPT = 8  # the most recently used warehouses' parse states; older ones are removed


def _parse_state(warehouse_url: str, build_schema: str) -> Path:
    """Where this warehouse's copy of dbt's partial-parse file is kept (keyed by what dbt's profile check reads)."""
    parts = parse_url(warehouse_url)
    key = f"{parts.host}:{parts.port}/{parts.dbname}/{build_schema}/{parts.user}"
    return target_dir() / "partial_parse" / f"{hashlib.sha256(key.encode()).hexdigest()[:16]}.msgpack"


def _restore_parse_state(saved: Path) -> None:
    if saved.is_file():
        shutil.copyfile(saved, target_dir() / "partial_parse.msgpack")


def _keep_parse_state(saved: Path) -> None:
    current = target_dir() / "partial_parse.msgpack"
    if not current.is_file():
        return
    saved.parent.mkdir(exist_ok=True)
    shutil.copyfile(current, saved)
    for old in sorted(saved.parent.glob("*.msgpack"), key=lambda p: p.stat().st_mtime)[:-PARSE_STATES_KEPT]:
        old.unlink(missing_ok=True)


def run_dbt(
    args: list[str],
    warehouse_url: str,
    build_schema: str = BUILD_SCHEMA,
    vars: dict | None = None,  # noqa: A002 - named after dbt's --vars
) -> DbtOutcome:
    """Invoke dbt (e.g. ["build"]) on dbt_project against warehouse_url, models landing in build_schema."""
    from dbt.cli.main import dbtRunner  # heavy (about a second); only the transform and docs need it

    saved = _parse_state(warehouse_url, build_schema)
    with _project_lock(), run_profile_dir(warehouse_url, build_schema) as profiles_dir:
        (target_dir() / "run_results.json").unlink(missing_ok=True)  # a run that stops early must not read the last one
        _restore_parse_state(saved)
        result = dbtRunner().invoke(dbt_args(args, profiles_dir, vars))
        _keep_parse_state(saved)
        run_results = _artifact("run_results.json")
        failed = any(r.get("status") in FAILED_STATUSES for r in run_results.get("results", []))
        manifest = _artifact("manifest.json") if failed else {}
    failures = _failure_lines(run_results, manifest, warehouse_url)
    exception = result.exception
    if exception is not None:  # dbt could not run at all (bad profile, parse error, unreachable warehouse)
        text = _ANSI.sub("", str(exception)).strip() or type(exception).__name__
        failures.append(f"dbt could not run: {text[-2000:]}")
    if not result.success and not failures:
        failures.append(f"dbt reported failure without a failed node; see {log_dir() / 'dbt.log'}")
    return DbtOutcome(success=result.success, failures=failures, raw=run_results, exception=exception,
                      warnings=_warning_lines(run_results, manifest, warehouse_url))
