"""Explain a failed fault-campaign run from the database it kept (`reliability_<run>` on its worker's server).

    .venv/bin/python tests/reliability/explain.py postgresql://postgres@127.0.0.1:<port>/reliability_<run>

Why: the campaign's oracle reads the storefronts' state after every change, but PRODUCT.md §3 dates a cancellation
that has no timestamp of its own (WooCommerce `cancelled` / `failed` / `trash`, Shopify `voided`) by the first
version alliance landed. A late edit of an order already cancelled that way moves its modification time, and the
oracle then dates the cancellation by the edited version. This rebuilds the world (seed 42), replays the edits that
raw.orders shows, and compares the published tables with the oracle twice: from the final state only, and with the
version served before each such edit. 0 differences with the history means the product followed §3.
"""

from __future__ import annotations

import copy
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

import psycopg  # noqa: E402
from oracle import compute  # noqa: E402
from oracle import load_config as oracle_config  # noqa: E402
from oracle_compare import compare_published  # noqa: E402

from alliance.config import load_config  # noqa: E402
from devstack.sandbox.env import load_sandbox_env  # noqa: E402
from devstack.sandbox.server import _cancelled_without_time  # noqa: E402
from devstack.sandbox.world import build_world, modified_at  # noqa: E402
from reliability.campaign import AS_OF, WORLD_CONFIG, _woocommerce_credentials  # noqa: E402


def explain(url: str) -> tuple[int, int, int, list]:
    """(orders edited, cells differing from the final-state oracle, from the served-history oracle, those diffs)."""
    load_sandbox_env()
    os.environ.update(_woocommerce_credentials())
    world = build_world(load_config(WORLD_CONFIG, require_secrets=False), seed=42)
    with psycopg.connect(url) as conn:
        rows = conn.execute("select partner_id, order_id, updated_at, payload->>'status', cancelled_seen_at"
                            " from raw.orders").fetchall()
    history: dict[str, list[dict]] = {partner: [] for partner in world.orders}
    edited = 0
    for partner, order_id, updated_at, status, cancelled_seen_at in rows:
        order = world.find_order(partner, order_id)
        if modified_at(order) == updated_at:
            continue
        if _cancelled_without_time(order) and cancelled_seen_at == modified_at(order):
            history[partner].append(copy.deepcopy(order))  # landed before the edit (raw.orders.cancelled_seen_at)
        changes = {"status": status} if "date_modified_gmt" in order and status != order.get("status") else {}
        world.touch_order(partner, order_id, updated_at, **changes)
        edited += 1
    salt = os.environ["ALLIANCE_PII_SALT"]

    def differences(orders: dict) -> list:
        truth = compute(oracle_config(WORLD_CONFIG), None, orders, world.clicks, AS_OF, refunds=world.refunds,
                        alerts_as_of=AS_OF)
        return compare_published(url, truth, salt)

    final = differences(world.orders)
    served = differences({partner: history[partner] + world.orders[partner] for partner in world.orders})
    return edited, len(final), len(served), served


if __name__ == "__main__":
    edited, final, served, diffs = explain(sys.argv[1])
    print(f"{edited} orders edited during the run; cells differing from the oracle on the final state: {final}, "
          f"with the served history of orders cancelled by status alone: {served}")
    for diff in diffs[:20]:
        print("  ", diff)
    sys.exit(1 if served else 0)
