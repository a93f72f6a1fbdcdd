"""One side of a local order book and the parsing of a ``[price, qty]`` level (used by :mod:`.orderbook`)."""

from __future__ import annotations

from bisect import bisect_left, insort
from decimal import Decimal, InvalidOperation
from typing import Any


def _level(price: Any, qty: Any) -> tuple[Decimal, str, str, bool]:
    """Parse one ``[price, qty]`` pair: (price key, price string, qty string, qty is zero)."""
    p = str(price)  # Binance sends strings (kept verbatim); numbers from elsewhere become their text
    q = str(qty)
    try:
        key = Decimal(p)
        zero = Decimal(q).is_zero()
    except InvalidOperation as e:
        raise ValueError(f"bad price level [{p!r}, {q!r}]") from e
    if not key.is_finite():
        raise ValueError(f"bad price level [{p!r}, {q!r}]")
    return key, p, q, zero


class _Side:
    """One side of a book: levels by price key plus the keys kept sorted best-first."""

    __slots__ = ("_descending", "_keys", "_levels")

    def __init__(self, descending: bool) -> None:
        self._descending = descending
        self._levels: dict[Decimal, tuple[str, str]] = {}
        self._keys: list[Decimal] = []  # price (negated for bids), ascending = best first

    def __len__(self) -> int:
        return len(self._keys)

    def clear(self) -> None:
        self._levels.clear()
        self._keys.clear()

    def set(self, key: Decimal, p: str, q: str, zero: bool) -> None:
        k = -key if self._descending else key
        levels = self._levels
        if zero:
            if k in levels:
                del levels[k]
                del self._keys[bisect_left(self._keys, k)]
            return
        if k not in levels:
            insort(self._keys, k)
        levels[k] = (p, q)

    def top(self, n: int | None) -> list[list[str]]:
        keys = self._keys[:n]  # [:None] is every level
        levels = self._levels
        return [list(levels[k]) for k in keys]
