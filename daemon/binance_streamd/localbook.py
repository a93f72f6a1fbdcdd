"""One symbol's local order book (pure): levels by exact price, the snapshot's edge, Binance's continuity rule
for a diff. The sync procedure around it is :class:`~binance_streamd.orderbook.BookSync`."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from binance_common.feedstore import live_book_json

from .book_side import _level, _Side

__all__ = ["BookGap", "LocalBook"]


class BookGap(Exception):
    """A diff does not follow the book: updates ``expected .. got - 1`` were missed."""

    def __init__(self, symbol: str, expected: int, got: int) -> None:
        super().__init__(f"{symbol}: depth diff starts at U={got}, expected <= {expected}; missed updates")
        self.symbol = symbol
        self.expected = expected
        self.got = got


class LocalBook:
    """The order book of one symbol. Pure; call :meth:`apply_snapshot` before any :meth:`apply_diff`.

    Attributes: ``symbol`` (upper-case), ``last_update_id`` (book id; -1 before a snapshot),
    ``last_event_time`` (``E`` of the last applied diff, ``None`` right after a snapshot).
    """

    __slots__ = ("_asks", "_bids", "has_snapshot", "last_event_time", "last_update_id", "symbol")

    def __init__(self, symbol: str) -> None:
        self.symbol = symbol.upper()
        self.last_update_id: int = -1
        self.last_event_time: int | None = None
        self.has_snapshot = False
        self._bids = _Side(descending=True)
        self._asks = _Side(descending=False)

    def apply_snapshot(
        self, last_update_id: int, bids: Iterable[Sequence[Any]], asks: Iterable[Sequence[Any]],
        limit: int | None = None,
    ) -> None:
        """Replace the whole book with a REST snapshot (``[[price, qty], ...]`` per side). ``limit``: the levels
        asked for; a side that came back with that many may go deeper, so its last level is its edge."""
        parsed_b = [_level(lv[0], lv[1]) for lv in bids]
        parsed_a = [_level(lv[0], lv[1]) for lv in asks]
        self._bids.clear()
        self._asks.clear()
        for lv in parsed_b:
            self._bids.set(*lv)
        for lv in parsed_a:
            self._asks.set(*lv)
        self._bids.mark_edge(limit is None or len(parsed_b) < limit)
        self._asks.mark_edge(limit is None or len(parsed_a) < limit)
        self.last_update_id = int(last_update_id)
        self.last_event_time = None
        self.has_snapshot = True

    def apply_diff(self, payload: dict[str, Any]) -> bool:
        """Apply one ``depthUpdate`` payload by the official rules.

        Returns False (book untouched) when ``u`` < book id; raises :class:`BookGap` when ``U`` > book id + 1;
        otherwise sets every level (any zero quantity, ``"0"`` or ``"0.00000000"``, removes it), sets the
        book id to ``u`` and returns True. A malformed level raises ``ValueError`` before anything changes.
        """
        if not self.has_snapshot:
            raise RuntimeError(f"{self.symbol}: apply_snapshot must come before apply_diff")
        final: int = payload["u"]
        if final < self.last_update_id:
            return False
        self.check_continuity(payload)
        return self._apply(payload)

    def check_continuity(self, payload: dict[str, Any]) -> None:
        """Spot: the diff must start at or before the book id + 1 (else updates were missed)."""
        first: int = payload["U"]
        if first > self.last_update_id + 1:
            raise BookGap(self.symbol, self.last_update_id + 1, first)

    def _apply(self, payload: dict[str, Any]) -> bool:
        final: int = payload["u"]
        parsed_b = [_level(lv[0], lv[1]) for lv in payload["b"]]
        parsed_a = [_level(lv[0], lv[1]) for lv in payload["a"]]
        for lv in parsed_b:
            self._bids.set(*lv)
        for lv in parsed_a:
            self._asks.set(*lv)
        self.last_update_id = final
        e = payload.get("E")
        if isinstance(e, int):
            self.last_event_time = e
        return True

    def top(self, n: int | None = None) -> tuple[list[list[str]], list[list[str]]]:
        """``(bids, asks)``: the best ``n`` levels a side (all when ``None``) as ``[price, qty]`` strings,
        bids descending and asks ascending by price."""
        return self._bids.top(n), self._asks.top(n)

    def depth(self) -> tuple[int, int]:
        """Number of (bid, ask) levels held."""
        return len(self._bids), len(self._asks)

    @property
    def awaiting_first_diff(self) -> bool:
        """Whether the book was just built from a snapshot and its first diff follows the snapshot's rule (spot:
        the same as any later diff's)."""
        return False

    def short_of(self, n: int) -> bool:
        """Whether a side whose snapshot stopped at its limit knows fewer than ``n`` levels up to that edge (a
        side the snapshot held whole knows all it has, however few)."""
        return any(side.edge is not None and side.known() < n for side in (self._bids, self._asks))

    def to_json(self, n: int | None, recv_ms: int | None, since: int | None = None) -> bytes:
        """The live ``book:<SYMBOL>`` value (:mod:`binance_common.feedstore`).

        ``n`` levels a side (all when ``None``); ``asof`` = ``recv_ms``, the local receive time (ms since
        epoch) of the newest data in the book; ``E`` is ``null`` until a diff has been applied; ``since``:
        when the book went live.
        """
        bids, asks = self.top(n)
        return live_book_json(self.symbol, since, self.last_update_id, self.last_event_time, recv_ms, bids, asks)
