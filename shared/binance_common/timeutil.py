"""Clock helpers (ms since epoch, the unit Binance uses everywhere)."""

from __future__ import annotations

import time


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def now_us() -> int:
    return time.time_ns() // 1_000
