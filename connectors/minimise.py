"""Data minimisation at the door (PRODUCT.md §4): an allow-list per platform of the fields alliance uses.

Why an allow-list: a deny-list misses whatever a platform adds next (a new address block, a tracking token);
keeping only named fields means a payload field nobody listed never reaches `raw`.

`minimise(platform, entity, record)` is called on every record before it is scrubbed and stored, by the polls
(connectors/landing.py) and by the webhook inbox. Records that are not objects are returned unchanged (landing
quarantines them with a reason that names no value).
"""

from __future__ import annotations

from typing import Any


def minimise(platform: str, entity: str, record: Any) -> Any:
    """`record` with only the allow-listed fields of `platform`'s `entity` (orders, clicks, refunds...)."""
    return record  # the per-platform allow-lists land with the data-minimisation change
