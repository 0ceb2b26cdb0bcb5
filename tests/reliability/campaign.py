"""Fault campaign: N randomized runs of the real pipeline against the fault-injecting sandbox.

Why: a pipeline earns trust by surviving. Each run takes a fresh warehouse database on a *dedicated*
embedded PostgreSQL (its own ALLIANCE_HOME under a temp dir, so restarting it never disturbs the shared
server), a sandbox with a random fault schedule, and runs `alliance ingest` / `alliance transform` as real
subprocesses, SIGKILLing some of them at random moments and in some runs restarting PostgreSQL (immediate
mode: a crash, not a polite shutdown) mid-step. Then it reruns, as a scheduler's retries would, until both
steps succeed, and compares the published tables with tests/oracle.py computed from the sandbox's ground
truth (its world after every change and late update). Orders lost or doubled must be 0.

    RELIABILITY_RUNS=200 python tests/reliability/campaign.py        # `make reliability`
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

import psycopg  # noqa: E402
from oracle import compute  # noqa: E402
from oracle import load_config as oracle_config  # noqa: E402
from oracle_compare import compare_published  # noqa: E402

from alliance.config import load_config  # noqa: E402
from alliance.warehouse import EmbeddedPostgres  # noqa: E402
from devstack.sandbox.env import load_sandbox_env  # noqa: E402
from devstack.sandbox.server import SandboxOptions, start_sandbox  # noqa: E402
from devstack.sandbox.world import build_world, woocommerce_credentials  # noqa: E402

# The end-to-end oracle world: two Shopify storefronts, one WooCommerce storefront in EUR (refunds endpoint, coupons,
# `_alliance_ref`, `trash` / `failed` statuses), the referral network, overlapping dated contracts (the partner
# edge's rules: trash mid-sync and late, pages without X-WP-Total headers, refunds past zero).
WORLD_CONFIG = ROOT / "tests" / "data" / "oracle_alliance.yml"
ALLIANCE = str(Path(sys.executable).parent / "alliance")
# The date that decides pending/locked, pinned so a run never depends on today: the world's lock dates run to
# 2026-12-30, so both states occur.
AS_OF = date(2026, 12, 15)


@dataclass
class RunReport:
    """What one run injected and what it found after converging."""

    run: int
    seed: int
    faults: Counter = field(default_factory=Counter)
    orders_truth: int = 0
    orders_lost: int = 0
    orders_doubled: int = 0
    raw_doubled: int = 0
    mismatched_rows: int = 0
    attempts: int = 0
    seconds: float = 0.0
    error: str | None = None

    @property
    def ok(self) -> bool:
        return not (self.error or self.orders_lost or self.orders_doubled or self.raw_doubled or self.mismatched_rows)


class CampaignServer:
    """A dedicated embedded PostgreSQL under a temp ALLIANCE_HOME: fresh databases, crash restarts."""

    def __init__(self, root: Path) -> None:
        self.pg = EmbeddedPostgres(root)
        self.url = self.pg.ensure_running()
        self.admin = self.url.rsplit("/", 1)[0] + "/postgres"
        self.restart_lock = threading.Lock()

    def fresh_database(self, name: str) -> str:
        with psycopg.connect(self.admin, autocommit=True) as conn:
            conn.execute(f'drop database if exists "{name}" with (force)')
            conn.execute(f'create database "{name}"')
        return self.url.rsplit("/", 1)[0] + f"/{name}"

    def drop(self, name: str) -> None:
        with contextlib.suppress(psycopg.Error), psycopg.connect(self.admin, autocommit=True) as conn:
            conn.execute(f'drop database if exists "{name}" with (force)')

    def keep(self, name: str, as_name: str) -> None:
        """Rename a failed run's database out of the way, for inspection beside its log."""
        with contextlib.suppress(psycopg.Error), psycopg.connect(self.admin, autocommit=True) as conn:
            conn.execute("select pg_terminate_backend(pid) from pg_stat_activity where datname = %s", (name,))
            conn.execute(f'alter database "{name}" rename to "{as_name}"')

    def crash_restart(self) -> None:
        """Stop in immediate mode (no checkpoint: what a power cut leaves) and start again on the same port."""
        with self.restart_lock:
            port = int(self.pg.port_file.read_text())
            self.pg._pg_ctl("-w", "-m", "immediate", "stop")
            # the same port, as a real server has (PostgreSQL binds with SO_REUSEADDR; a probe bind would not)
            options = f"-c listen_addresses=127.0.0.1 -p {port} -c unix_socket_directories='' -c max_connections=200"
            self.pg._pg_ctl("-w", "-t", "60", "-l", str(self.pg.logfile), "-o", options, "start")

    def stop(self) -> None:
        with contextlib.suppress(Exception):
            self.pg.stop()


def _child_env(sandbox_url: str, url: str, home: Path) -> dict[str, str]:
    env = dict(os.environ)
    for line in (ROOT / "config" / "sandbox.env").read_text().splitlines():
        if "=" in line and not line.startswith("#"):
            key, value = line.split("=", 1)
            env[key] = value
    env.update(_woocommerce_credentials())
    env.update(ALLIANCE_SANDBOX_URL=sandbox_url, ALLIANCE_WAREHOUSE_URL=url, ALLIANCE_HOME=str(home),
               COLUMNS="200")
    return env


def _woocommerce_credentials() -> dict[str, str]:
    """The sandbox's `consumer_key:consumer_secret` per WooCommerce storefront, under the config's credentials_env."""
    config = load_config(WORLD_CONFIG, require_secrets=False)
    return {p.credentials_env: woocommerce_credentials(p.id) for p in config.partners if p.platform == "woocommerce"}


def _kill_at_request(proc: subprocess.Popen, sandbox, kill_at: int) -> int | None:  # noqa: ANN001
    """SIGKILL the process group on a progress event, not after a time: once it has sent `kill_at` requests to the
    sandbox, hold the sandbox's world lock (no data is served while held) and kill it when its next request
    arrives, mid-load. Returns its exit code if it finished first, None if killed."""
    base, gate, seen = sum(sandbox.requests.values()), sandbox.world.lock, None
    try:
        while proc.poll() is None:
            sent = sum(sandbox.requests.values())
            if seen is None and sent - base >= kill_at:
                gate.acquire()
                seen = sum(sandbox.requests.values())
            elif seen is not None and sent > seen:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
                return None
            time.sleep(0.001)  # polling the counter: the kill waits for the event, whenever it comes
    finally:
        if seen is not None:
            gate.release()
    return proc.wait()


def _step(args: list[str], env: dict[str, str], log, kill_after: float | None, timeout: float = 300,
          kill_at_request: tuple[object, int] | None = None) -> int | None:
    """Run `alliance <args>`; SIGKILL after `kill_after` s, or at its Nth sandbox request with `kill_at_request`
    (sandbox, N) (both None: let it finish). Returns rc, None if killed."""
    log.write(f"\n=== {time.strftime('%H:%M:%S')} alliance {' '.join(args)} (kill after {kill_after}, at request "
              f"{kill_at_request[1] if kill_at_request else None})\n".encode())
    log.flush()
    proc = subprocess.Popen([ALLIANCE, *args, "--config", str(WORLD_CONFIG)], env=env, stdout=log, stderr=log, cwd=ROOT,
                            start_new_session=True)
    if kill_at_request is not None:
        return _kill_at_request(proc, *kill_at_request)
    try:
        return proc.wait(timeout=kill_after if kill_after is not None else timeout)
    except subprocess.TimeoutExpired:
        if kill_after is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            raise
        os.killpg(proc.pid, signal.SIGKILL)  # the whole group: dbt's threads die with it
        proc.wait()
        return None


def _schedule(rng: random.Random, quick: bool) -> tuple[dict, list[int], list[float], str | None]:
    """A random fault schedule: sandbox rates, ingest kill points (requests), transform kill times, restart step."""
    rates = {
        "error_rate": rng.choice([0.0, 0.05, 0.1]),
        "burst_rate": rng.choice([0.0, 0.05, 0.1]),
        "drop_rate": rng.choice([0.0, 0.05]),
        "slow_rate": rng.choice([0.0, 0.05]),
        "malformed_rate": rng.choice([0.0, 0.2, 0.4]),
        "change_rate": rng.choice([0.0, 0.2]),
        "late_update_rate": rng.choice([0.0, 0.2]),
    }
    # ingest kills at the Nth sandbox request of the run (15..40; the same draws as the kill times they replaced)
    ingest_kills = [int(rng.uniform(1.5, 4.0) * 10) for _ in range(rng.choice([0, 1, 1, 2]))]
    transform_kills = [rng.uniform(2.0, 12.0) for _ in range(rng.choice([0, 1] if quick else [0, 1, 1]))]
    restart = rng.choice([None, None, None, "ingest", "transform"])
    # drawn last, so a seed's earlier draws (kills, restarts) are what they were before the edge's faults
    rates["trash_share"] = rng.choice([0.0, 0.5])  # of the WooCommerce edits above: move the order to the trash
    rates["woo_total_headers"] = rng.choice([True, True, False])  # False: a proxy strips X-WP-Total(Pages)
    return rates, ingest_kills, transform_kills, restart


def _count(url: str, sql: str) -> int:
    with psycopg.connect(url) as conn:
        return conn.execute(sql).fetchone()[0]


def compare_with_oracle(url: str, world, as_of) -> tuple[int, int, int, int, int]:
    """(truth orders, lost, doubled, doubled in raw, other differing cells) over every published table.

    `tests/oracle_compare.compare_published` compares every column of every row of analytics.* with the oracle:
    a missing fct_orders row is a lost order, a row published twice or an extra row in any table counts as doubled,
    every other difference (a changed cell, a missing row of another table) as a mismatch.
    """
    from devstack.sandbox.shopify_graphql import served_orders

    truth = compute(oracle_config(WORLD_CONFIG), None, served_orders(world), world.clicks, as_of, refunds=world.refunds,
                    alerts_as_of=as_of)
    diffs = compare_published(url, truth, os.environ["ALLIANCE_PII_SALT"])
    lost = sum(1 for d in diffs if d.table == "fct_orders" and d.expected == "missing row")
    doubled = sum(1 for d in diffs if d.published in ("published twice", "extra row"))
    mismatched = len(diffs) - lost - doubled
    with psycopg.connect(url) as conn:
        raw_doubled = conn.execute("select coalesce(sum(n - 1), 0) from (select count(*) n from raw.orders "
                                   "group by partner_id, order_id) d").fetchone()[0]
    return len(truth.orders), lost, doubled, int(raw_doubled), mismatched


def one_run(server: CampaignServer, index: int, seed: int, home: Path, logdir: Path, quick: bool,
            sabotage: Callable[[str], None] | None = None) -> RunReport:
    rng = random.Random(seed)
    report = RunReport(index, seed)
    started = time.monotonic()
    rates, ingest_kills, transform_kills, restart = _schedule(rng, quick)
    if not rates["woo_total_headers"]:
        report.faults["woo_no_total_headers"] += 1
    world = build_world(load_config(WORLD_CONFIG, require_secrets=False), seed=42)
    sandbox = start_sandbox(world, options=SandboxOptions(page_size=25, seed=seed, slow_seconds=0.3,
                                                          burst_length=3, **rates))
    # one database name per server (each worker has its own): dbt's partial parse carries over between runs
    dbname = "reliability"
    url = server.fresh_database(dbname)
    env = _child_env(sandbox.url, url, home)
    as_of = AS_OF
    log_path = logdir / f"run{index:04d}.log"
    try:
        with open(log_path, "ab") as log:
            def maybe_restart(step: str) -> threading.Timer | None:
                if restart != step:
                    return None
                timer = threading.Timer(rng.uniform(0.3, 3.0), server.crash_restart)
                timer.start()
                report.faults["postgres_restart"] += 1
                return timer

            timer = maybe_restart("ingest")
            for kill in ingest_kills:
                if _step(["ingest"], env, log, None, kill_at_request=(sandbox, kill)) is None:
                    report.faults["sigkill_ingest"] += 1
            if timer:
                timer.join()
            for _ in range(10):  # retries until ingest succeeds, then the data stops changing and one more
                report.attempts += 1
                if _step(["ingest"], env, log, None) == 0:
                    break
            sandbox.options.change_rate = sandbox.options.late_update_rate = 0.0
            for _ in range(10):
                report.attempts += 1
                if _step(["ingest"], env, log, None) == 0:
                    break
            else:
                raise RuntimeError("ingest never succeeded")
            timer = maybe_restart("transform")
            for kill in transform_kills:
                if _step(["transform", "--as-of", as_of.isoformat()], env, log, kill) is None:
                    report.faults["sigkill_transform"] += 1
            if timer:
                timer.join()
            for _ in range(5):
                report.attempts += 1
                if _step(["transform", "--as-of", as_of.isoformat()], env, log, None) == 0:
                    break
            else:
                raise RuntimeError(f"transform never succeeded; see {log_path}")
        report.faults.update({f"sandbox_{k}": v for k, v in sandbox.injected.items()})
        if sabotage is not None:  # the self-test: damage the published data, the comparison must notice
            sabotage(url)
        (report.orders_truth, report.orders_lost, report.orders_doubled, report.raw_doubled,
         report.mismatched_rows) = compare_with_oracle(url, world, as_of)
    except Exception as exc:  # noqa: BLE001 - the report records it and the run counts as failed
        report.error = f"{type(exc).__name__}: {exc}"
    finally:
        sandbox.stop()
        if report.ok:
            server.drop(dbname)
            log_path.unlink(missing_ok=True)
        else:
            server.keep(dbname, f"reliability_{index}")
    report.seconds = time.monotonic() - started
    return report


def campaign(runs: int, base_seed: int = 20261123, quick: bool = False, out=print,
             workdir: Path | None = None, sabotage: dict[int, Callable[[str], None]] | None = None,
             jobs: int = 1) -> list[RunReport]:
    """Run the campaign and print the report; returns every run's report, in run order.

    `jobs` > 1 runs that many runs at once, each worker on its own embedded PostgreSQL (a crash restart in one
    run must not disturb another), so waiting on backoff, kills and the sandbox's slow answers overlaps.
    """
    saved_environ = dict(os.environ)  # the world's credentials are put back afterwards: its storefronts' variables
    try:  # name other platforms' tokens in the demo world (lumen is WooCommerce here, Shopify there)
        return _campaign(runs, base_seed, quick, out, workdir, sabotage, jobs)
    finally:
        os.environ.clear()
        os.environ.update(saved_environ)


def _campaign(runs: int, base_seed: int, quick: bool, out, workdir: Path | None,  # noqa: ANN001
              sabotage: dict[int, Callable[[str], None]] | None, jobs: int) -> list[RunReport]:
    load_sandbox_env()  # the oracle reads the config with its (documented, sandbox-only) credentials
    os.environ.update(_woocommerce_credentials())
    root = workdir or Path(tempfile.mkdtemp(prefix="alliance-reliability-"))
    root.chmod(0o755)  # our own temp dir (mkdtemp makes it 0700): the servers' data stays in it, removed with it
    logdir = root / "logs"
    logdir.mkdir(parents=True, exist_ok=True)
    pending = list(range(runs))
    reports: list[RunReport] = []
    lock = threading.Lock()
    started = time.monotonic()

    def worker(slot: int) -> None:
        home = root / f"home{slot}"
        home.mkdir(parents=True, exist_ok=True)
        server = CampaignServer(root / f"pg{slot}")
        try:
            while True:
                with lock:
                    if not pending:
                        return
                    i = pending.pop(0)
                report = one_run(server, i, base_seed + i, home, logdir, quick, (sabotage or {}).get(i))
                with lock:
                    reports.append(report)
                    status = "ok" if report.ok else f"FAILED {report.error or ''}"
                    out(f"run {i + 1}/{runs} seed={report.seed} {report.seconds:.1f}s attempts={report.attempts} "
                        f"faults={dict(sorted(report.faults.items()))} orders={report.orders_truth} "
                        f"lost={report.orders_lost} doubled={report.orders_doubled} "
                        f"mismatched={report.mismatched_rows} {status}")
        finally:
            server.stop()

    try:
        threads = [threading.Thread(target=worker, args=(slot,), name=f"campaign-{slot}")
                   for slot in range(max(1, min(jobs, runs)))]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    finally:
        if len(reports) == runs and all(r.ok for r in reports):
            shutil.rmtree(root, ignore_errors=True)
        else:
            out(f"logs of failed runs kept in {logdir}")
    reports.sort(key=lambda r: r.run)
    out(render(reports, time.monotonic() - started, jobs))
    return reports


def render(reports: list[RunReport], seconds: float, jobs: int = 1) -> str:
    faults: Counter = Counter()
    for r in reports:
        faults.update(r.faults)
    lines = [
        "## Fault campaign report",
        "",
        f"- runs: {len(reports)} ({sum(r.ok for r in reports)} converged and matched the oracle), "
        f"wall time {seconds / 60:.1f} min ({jobs} at a time), "
        f"median run {sorted(r.seconds for r in reports)[len(reports) // 2] if reports else 0:.0f} s",
        f"- orders checked: {sum(r.orders_truth for r in reports)}",
        f"- orders lost: {sum(r.orders_lost for r in reports)}",
        f"- orders doubled: {sum(r.orders_doubled + r.raw_doubled for r in reports)}",
        f"- published rows differing from the oracle: {sum(r.mismatched_rows for r in reports)}",
        f"- runs with a PostgreSQL crash restart: {sum(1 for r in reports if r.faults['postgres_restart'])}",
        "",
        "| fault | injected |",
        "|---|---|",
        *[f"| {kind} | {n} |" for kind, n in sorted(faults.items())],
    ]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=int(os.environ.get("RELIABILITY_RUNS", "200")))
    parser.add_argument("--seed", type=int, default=int(os.environ.get("RELIABILITY_SEED", "20261123")))
    parser.add_argument("--jobs", type=int, default=int(os.environ.get("RELIABILITY_JOBS", "2")),
                        help="runs at once, each on its own PostgreSQL")
    parser.add_argument("--publishes", type=int, default=int(os.environ.get("RELIABILITY_PUBLISHES", "60")))
    args = parser.parse_args()
    out = lambda s: print(s, flush=True)  # noqa: E731
    logging.getLogger("alliance.publish").setLevel(logging.ERROR)  # the rejected builds' gate reports are expected
    out(f"command: RELIABILITY_RUNS={args.runs} RELIABILITY_JOBS={args.jobs} make reliability "
        f"(seed {args.seed}, {args.publishes} publish cycles)")
    reports = campaign(args.runs, args.seed, out=out, jobs=args.jobs)
    load = publish_load_report(args.publishes)
    out(load.render())
    return 0 if reports and all(r.ok for r in reports) and load.inconsistent == 0 else 1


def publish_load_report(cycles: int):
    """Publish under load on a fresh database of a dedicated server (3 BI readers)."""
    from reliability.publish_load import publish_under_load

    root = Path(tempfile.mkdtemp(prefix="alliance-publish-load-"))
    root.chmod(0o755)  # our own temp dir: the server's data stays in it (alliance/warehouse.py, service user)
    server = CampaignServer(root / "pg")
    try:
        return publish_under_load(server.fresh_database("publish_load"), cycles=cycles, readers=3)
    finally:
        server.stop()
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
