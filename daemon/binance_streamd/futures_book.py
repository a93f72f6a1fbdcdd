"""USD-M futures local order books: the official futures procedure, as rules on top of the spot state machine.

Binance's "How to manage a local order book correctly" for USD-M futures:

1. buffer the ``<symbol>@depth`` events;
2. GET /fapi/v1/depth?limit=1000 (``lastUpdateId``);
3. drop events with ``u < lastUpdateId``;
4. the first processed event must have ``U <= lastUpdateId`` and ``u >= lastUpdateId``;
5. afterwards every event's ``pu`` must equal the previous event's ``u``; otherwise start again from step 2
   (``U`` itself jumps on futures: only ``pu`` proves continuity);
6. quantities are absolute; zero removes the level.

The same rule proves a book kept across a lost connection: the first event on the new connection continues
it when its ``pu`` is the book's id. Book ids and keys are ``UM:<SYMBOL>`` so spot and futures never mix.
"""

from __future__ import annotations

from typing import Any

from .orderbook import BookGap, BookSync, LocalBook

FUTURES_BOOK_PREFIX = "UM:"


def is_futures_book(symbol: str) -> bool:
    return symbol.upper().startswith(FUTURES_BOOK_PREFIX)


class FuturesLocalBook(LocalBook):
    """A futures book: the first diff after the snapshot straddles it, every later one starts at ``pu``."""

    __slots__ = ("_first",)

    def __init__(self, symbol: str) -> None:
        super().__init__(symbol)
        self._first = True

    def apply_snapshot(self, last_update_id: int, bids: Any, asks: Any, limit: int | None = None) -> None:
        super().apply_snapshot(last_update_id, bids, asks, limit)
        self._first = True

    @property
    def awaiting_first_diff(self) -> bool:
        return self._first  # it must straddle the snapshot (pu is not the snapshot's id)

    def apply_diff(self, payload: dict[str, Any]) -> bool:
        if not self._first and payload["u"] <= self.last_update_id:
            return False  # a duplicate (two connections overlapping)
        return super().apply_diff(payload)

    def check_continuity(self, payload: dict[str, Any]) -> None:
        book_id = self.last_update_id
        if self._first:
            # the docs: U <= lastUpdateId <= u. An event whose pu is at or before the snapshot continues it too
            # (the next event after a snapshot taken with nothing buffered: pu == lastUpdateId < U, as U jumps)
            pu = payload.get("pu")
            start = payload["U"] if not isinstance(pu, int) else min(payload["U"], pu)
            if not start <= book_id <= payload["u"]:
                raise BookGap(self.symbol, book_id, int(payload["U"]))
        elif payload.get("pu") != book_id:
            raise BookGap(self.symbol, book_id, int(payload.get("pu") or -1))

    def _apply(self, payload: dict[str, Any]) -> bool:
        done = super()._apply(payload)
        self._first = False
        return done


FUTURES_DEPTH_LIMITS = (5, 10, 20, 50, 100, 500, 1000)


def futures_snapshot_limit(limit: int) -> int:
    """The levels /fapi/v1/depth gives for a wanted ``limit`` (it takes only these values, at most 1000)."""
    return max(x for x in FUTURES_DEPTH_LIMITS if x <= max(5, limit))


class FuturesBookSync(BookSync):
    book_class = FuturesLocalBook

    @staticmethod
    def follows(prev_u: int, payload: dict[str, Any]) -> bool:
        return bool(payload.get("pu") == prev_u)

    @staticmethod
    def snapshot_too_old(last_update_id: int, first: dict[str, Any]) -> bool:
        return bool(last_update_id < first["U"])

    @staticmethod
    def covered(payload: dict[str, Any], last_update_id: int) -> bool:
        return bool(payload["u"] < last_update_id)
