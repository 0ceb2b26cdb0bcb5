"""The clock every wait of the partner edge goes through: production uses `time`, tests inject their own.

Why: throttling and rate limits are about time; a test that really slept would be slow and would still
not prove the client waited for the right reason. A fake clock whose `sleep()` advances `monotonic()`
records each wait instead, and a sandbox reading the same clock sees exactly that much time pass.
"""

from __future__ import annotations

import time
from typing import Protocol


class Clock(Protocol):
    def monotonic(self) -> float: ...

    def sleep(self, seconds: float) -> None: ...


class SystemClock:
    """Real time: `time.monotonic()` and `time.sleep()`."""

    def monotonic(self) -> float:
        return time.monotonic()

    def sleep(self, seconds: float) -> None:
        if seconds > 0:
            time.sleep(seconds)


SYSTEM_CLOCK = SystemClock()
