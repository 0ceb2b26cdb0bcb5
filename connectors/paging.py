"""What a connector yields: one page of records at a time, so landing can commit page by page."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class Page:
    number: int  # 1-based
    url: str  # without query, safe to log
    records: list  # raw records as received (may be malformed; landing validates)
