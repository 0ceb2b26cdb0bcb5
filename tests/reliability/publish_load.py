"""Publish under load: BI readers (as `alliance_bi`) query `analytics` while builds are published or rejected.

Why: the contract promises readers see the previous complete snapshot or the next one, never a mix and never a
build the gate rejected. Every good build of size n has n orders, n referrals, n last-click rows and an objective at n;
every bad build (a duplicated order, an out-of-range credit) has an odd size the good ones never use, so a reader
that saw a partial swap or a rolled-back build counts as an inconsistent read.
"""

from __future__ import annotations

import random
import threading
import time
from dataclasses import dataclass

import psycopg
from support.build_schema import make_build_schema

from alliance.gate import GateSettings
from alliance.publish import gate_and_publish
from alliance.warehouse import connect

ANY_SIZE = GateSettings(max_row_count_drop=1.0)  # sizes jump at random here: the row-count bound is tested elsewhere
READ = """
select (select count(*) from analytics.fct_orders),
       (select count(*) from analytics.fct_referrals),
       (select count(*) from analytics.fct_order_attribution where attribution_model = 'last_click'),
       (select sum(actual) from analytics.objective_progress)
"""


@dataclass
class LoadReport:
    publishes: int = 0
    rollbacks: int = 0
    reads: int = 0
    inconsistent: int = 0
    retried: int = 0  # reads aborted by the lock manager (deadlock victim): never shown data, a BI client retries
    examples: list | None = None

    def render(self) -> str:
        return (f"## Publish under load\n\n- publishes: {self.publishes}, rollbacks (failed gates): {self.rollbacks}\n"
                f"- BI reads: {self.reads}, inconsistent reads: {self.inconsistent}, "
                f"reads aborted and retried: {self.retried}")


def publish_under_load(url: str, cycles: int = 20, readers: int = 3, seed: int = 7) -> LoadReport:
    """Alternate good publishes and gate-failed builds while `readers` threads read as alliance_bi."""
    rng = random.Random(seed)
    report = LoadReport(examples=[])
    published: set[int] = set()
    lock = threading.Lock()
    stop = threading.Event()
    errors: list[BaseException] = []

    def publish_good(n: int) -> None:
        make_build_schema(url, rows=n)
        with lock:
            published.add(n)  # readers may see it the moment the swap commits, before we return
        gate, result = gate_and_publish(url, run_id=f"good-{n}-{time.monotonic_ns()}", settings=ANY_SIZE)
        assert gate.passed and result is not None, gate.failures
        report.publishes += 1

    def reject_bad(n: int) -> None:
        with connect(url) as conn:
            conn.execute("drop schema if exists alliance_build cascade")
        make_build_schema(url, rows=n)
        with connect(url) as conn:
            conn.execute("insert into alliance_build.fct_orders select * from alliance_build.fct_orders limit 1")
            conn.execute("update alliance_build.fct_order_attribution set credit = 1.5 where order_id = 'o1'")
        gate, result = gate_and_publish(url, run_id=f"bad-{n}-{time.monotonic_ns()}", settings=ANY_SIZE)
        assert not gate.passed and result is None
        with connect(url) as conn:
            conn.execute("drop schema alliance_build cascade")
        report.rollbacks += 1

    def reader() -> None:
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("set role alliance_bi")
            while not stop.is_set():
                try:
                    orders, referrals, last_click, earned = conn.execute(READ).fetchone()
                except (psycopg.errors.DeadlockDetected, psycopg.errors.LockNotAvailable):
                    with lock:
                        report.retried += 1
                    continue
                except BaseException as exc:  # noqa: BLE001 - surfaced to the caller
                    errors.append(exc)
                    return
                with lock:
                    report.reads += 1
                    ok = (orders == referrals == last_click and orders in published
                          and earned == orders)
                    if not ok:
                        report.inconsistent += 1
                        if len(report.examples) < 5:
                            report.examples.append((orders, referrals, last_click, earned))

    publish_good(2)
    threads = [threading.Thread(target=reader, daemon=True) for _ in range(readers)]
    for t in threads:
        t.start()
    try:
        for _ in range(cycles):
            if rng.random() < 0.4:
                reject_bad(2 * rng.randint(2, 40) + 1)  # odd: never a published size
            else:
                publish_good(2 * rng.randint(2, 40))
    finally:
        stop.set()
        for t in threads:
            t.join(timeout=30)
    if errors:
        raise errors[0]
    return report
