"""One side of a local order book and the parsing of a ``[price, qty]`` level (used by :mod:`.orderbook`)."""

from __future__ import annotations

from bisect import bisect_left, bisect_right, insort
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

    __slots__ = ("_descending", "_keys", "_levels", "edge")

    def __init__(self, descending: bool) -> None:
        self._descending = descending
        self._levels: dict[Decimal, tuple[str, str]] = {}
        self._keys: list[Decimal] = []  # price (negated for bids), ascending = best first
        self.edge: Decimal | None = None
        """The deepest key of a snapshot that stopped at its limit: beyond it, levels no diff touched since are
        missing (Binance: the local book only knows the snapshot's range), so nothing beyond it is served."""

    def mark_edge(self, complete: bool) -> None:
        """After a snapshot: ``complete`` when it held the whole side, else its deepest level is the edge."""
        self.edge = None if complete or not self._keys else self._keys[-1]

    def known(self) -> int:
        """Levels up to the edge (every level when the side is complete)."""
        return len(self._keys) if self.edge is None else bisect_right(self._keys, self.edge)

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
        """The best ``n`` levels (all when ``None``) this side knows: none beyond the edge."""
        known = self.known()
        keys = self._keys[:known if n is None else min(n, known)]
        levels = self._levels
        return [list(levels[k]) for k in keys]
