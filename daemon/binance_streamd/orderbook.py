"""Local order books kept from diff-depth streams, following Binance's official procedure.

Three layers, from pure to I/O:

- :class:`LocalBook`: one symbol's book. Levels are keyed by ``Decimal(price)`` (so ``"0.10"`` and
  ``"0.1000"`` are one level and ordering is numeric) while the strings Binance sent are kept verbatim and
  emitted unchanged.
- :class:`BookSync`: the state machine of the official procedure for one symbol (buffer diffs, ask for a
  snapshot, re-fetch a snapshot older than the first buffered diff, drop stale diffs, validate the first
  kept diff, go live, restart on a gap). No I/O: it returns what the caller must do.
- :class:`BookManager`: the asyncio driver for many symbols: fetches snapshots in tasks (one symbol never
  blocks another), resyncs only the symbol that had a gap, and publishes throttled JSON through a callback.

The official procedure (binance-facts.md, web-socket-streams.md) and where this code follows it:

1. buffer diffs, note the first ``U``                                  -> :meth:`BookSync.on_diff`
2. GET depth; if ``lastUpdateId`` < first ``U``, fetch again            -> :meth:`BookSync.on_snapshot`
   (precisely: if ``lastUpdateId + 1`` < first ``U``; a snapshot ending right before the first buffered
   diff, ``lastUpdateId == U - 1``, misses nothing and is used rather than paid for again)
3. drop buffered diffs with ``u <= lastUpdateId``; the first kept diff must contain ``lastUpdateId + 1``
   (``U <= lastUpdateId + 1 <= u``; the docs word it "lastUpdateId within [U;u]", which read literally
   would refuse the common exact continuation ``U == lastUpdateId + 1``, present in the real recording)
4. book := snapshot, book id := ``lastUpdateId``                        -> :meth:`LocalBook.apply_snapshot`
5. per diff: ``u`` < book id ignore; ``U`` > book id + 1 gap, restart; else apply, book id := ``u``
                                                                         -> :meth:`LocalBook.apply_diff`

After a lost connection a live book is ``verifying`` (:meth:`BookSync.suspend`), not served, until the first
diff on the new connection proves continuity (``U <= book id + 1 <= u``) or shows the gap (resync); a quiet
symbol proves it with a snapshot (:meth:`BookSync.request_snapshot`). The continuity rules are three methods
of :class:`BookSync`; :mod:`.futures_book` overrides them with the futures ones (``pu``).
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from .localbook import BookGap, LocalBook

log = logging.getLogger(__name__)

__all__ = ["BookGap", "BookSync", "LocalBook", "SyncResult"]


@dataclass(frozen=True, slots=True)
class SyncResult:
    """What the caller of :class:`BookSync` must do next.

    ``fetch_snapshot``: request a depth snapshot and hand it to :meth:`BookSync.on_snapshot`.
    ``changed``: the live book changed; publish it. ``gap``: a gap was found and the book was discarded.
    """

    fetch_snapshot: bool = False
    changed: bool = False
    gap: bool = False
    refresh: bool = False  # with gap: not a missed diff, the price moved past what the snapshot covered


_NOTHING = SyncResult()
_CHANGED = SyncResult(changed=True)


class BookSync:
    """The official sync procedure for one symbol, as a pure state machine.

    Feed every diff to :meth:`on_diff` and every snapshot to :meth:`on_snapshot`; act on the returned
    :class:`SyncResult`. ``state`` is ``"syncing"`` (no usable book: waiting for the first diff or for a
    snapshot), ``"verifying"`` (a book kept across a lost connection, not usable until a diff or a snapshot
    proves it current) or ``"live"``. While syncing, at most ``max_buffer`` diffs are kept (the oldest are dropped,
    which moves the first buffered ``U`` forward: an older snapshot is then simply fetched again).

    Counters: ``gaps`` (gaps found, in the live book or inside the buffer), ``resyncs`` (times a live book was
    discarded), ``snapshots`` (snapshots received), ``stale_snapshots`` (snapshots older than the first
    buffered diff, fetched again).
    """

    book_class: type[LocalBook] = LocalBook

    def __init__(self, symbol: str, *, max_buffer: int = 10_000, keep_levels: int = 0,
                 snapshot_limit: int | None = None) -> None:
        if max_buffer < 1:
            raise ValueError("max_buffer must be at least 1")
        self.symbol = symbol.upper()
        self.max_buffer = max_buffer
        self.keep_levels = keep_levels  # a live book knowing fewer levels a side (its edge came near) resyncs
        self.snapshot_limit = snapshot_limit  # levels a snapshot asks for (its sides' edges)
        self.refreshes = 0  # resyncs because the price moved past the snapshot's range
        self.book = self.book_class(self.symbol)
        self.state: Literal["syncing", "verifying", "live"] = "syncing"
        self.snapshot_requested = False
        self.down = False  # the diff stream's connection is lost and not acknowledged again yet
        self.buffer: deque[tuple[dict[str, Any], int | None]] = deque()
        self.last_recv_ms: int | None = None  # receive time of the newest diff applied to the live book
        self.gaps = 0
        self.resyncs = 0
        self.proofs = 0  # times a kept book proved continuity after a lost connection
        self.snapshots = 0
        self.stale_snapshots = 0

    @property
    def first_buffered_id(self) -> int | None:
        """``U`` of the first buffered diff (step 1's "first event"), or None when nothing is buffered."""
        return self.buffer[0][0]["U"] if self.buffer else None

    def on_diff(self, payload: dict[str, Any], recv_ms: int | None = None) -> SyncResult:
        """Handle one ``depthUpdate`` payload of this symbol, received at ``recv_ms`` (ms, may be None)."""
        if self.state == "verifying":
            return self._verify(payload, recv_ms)
        if self.state == "live":
            try:
                applied = self.book.apply_diff(payload)
            except BookGap:
                self.gaps += 1
                self.resyncs += 1
                return self._restart(payload, recv_ms)
            except ValueError:
                log.warning("%s: malformed depth diff %s; resyncing", self.symbol, payload.get("u"))
                self.resyncs += 1
                return self._restart(None, None)
            if not applied:
                return _NOTHING
            self.last_recv_ms = recv_ms
            if self.keep_levels and self.book.short_of(self.keep_levels):
                return self._refresh(payload, recv_ms)
            return _CHANGED
        return self._buffer(payload, recv_ms)

    def _refresh(self, payload: dict[str, Any], recv_ms: int | None) -> SyncResult:
        """The price moved so far that a side knows fewer than ``keep_levels`` levels up to its snapshot's edge
        (beyond it, unchanged levels are missing): sync again from a new snapshot."""
        self.refreshes += 1
        log.info("%s: the price moved past the snapshot's depth; taking a new snapshot", self.symbol)
        res = self._restart(None, None)
        self.buffer.append((payload, recv_ms))  # applied to the old book; the new snapshot must cover it too
        self.snapshot_requested = True
        return SyncResult(fetch_snapshot=True, gap=res.gap, refresh=True)

    def _verify(self, payload: dict[str, Any], recv_ms: int | None) -> SyncResult:
        """The first new diff after a lost connection: continuous (``U <= book id + 1 <= u``) or a gap."""
        book_id = self.book.last_update_id
        fresh = self.book.awaiting_first_diff  # (futures) built from a snapshot: its first event straddles it
        if payload["u"] < book_id or (payload["u"] == book_id and not fresh):
            return _NOTHING  # older than the book: proves nothing
        if not fresh and not self.follows(book_id, payload):  # (a fresh book's apply_diff judges the straddle)
            self.gaps += 1
            self.resyncs += 1
            return self._restart(payload, recv_ms)
        try:
            self.book.apply_diff(payload)
        except BookGap:  # (futures) the first diff after a snapshot that does not straddle it
            self.gaps += 1
            self.resyncs += 1
            return self._restart(payload, recv_ms)
        except ValueError:
            self.resyncs += 1
            return self._restart(None, None)
        self.state = "live"
        self.last_recv_ms = recv_ms
        self.proofs += 1
        return _CHANGED

    def suspend(self) -> SyncResult:
        """The connection carrying this symbol's diffs was lost: a live book must prove continuity again, and
        until :meth:`resumed` no snapshot makes a book live (nothing would keep it current). ``changed`` when
        a live book stopped being usable."""
        self.down = True
        if self.state != "live":
            return _NOTHING
        self.state = "verifying"
        return _CHANGED

    def resumed(self) -> None:
        """The diff stream is acknowledged again (diffs flow): a snapshot or a diff may prove the book."""
        self.down = False

    def request_snapshot(self) -> SyncResult:
        """Ask for a snapshot without waiting for a diff (a quiet symbol after a (re)subscription)."""
        if self.state == "live" or self.snapshot_requested:
            return _NOTHING
        self.snapshot_requested = True
        return SyncResult(fetch_snapshot=True)

    def _buffer(self, payload: dict[str, Any], recv_ms: int | None) -> SyncResult:
        buf = self.buffer
        if buf:
            last_u: int = buf[-1][0]["u"]
            if payload["u"] <= last_u:
                return _NOTHING  # a duplicate (two connections overlapping)
            if not self.follows(last_u, payload):  # the buffer itself has a hole: start buffering again
                self.gaps += 1
                buf.clear()
        buf.append((payload, recv_ms))
        if len(buf) > self.max_buffer:
            buf.popleft()
        if self.snapshot_requested:
            return _NOTHING
        self.snapshot_requested = True
        return SyncResult(fetch_snapshot=True)

    def _restart(self, payload: dict[str, Any] | None, recv_ms: int | None) -> SyncResult:
        """Discard the book and start over, buffering ``payload`` (the diff that showed the gap) if given."""
        self.state = "syncing"
        self.book = self.book_class(self.symbol)
        self.buffer.clear()
        if payload is None:
            return SyncResult(gap=True)
        res = self._buffer(payload, recv_ms)
        return SyncResult(fetch_snapshot=res.fetch_snapshot, gap=True)

    def snapshot_failed(self) -> None:
        """The requested snapshot will not come: the next diff asks for one again."""
        self.snapshot_requested = False

    def on_snapshot(
        self, last_update_id: int, bids: Iterable[Sequence[Any]], asks: Iterable[Sequence[Any]]
    ) -> SyncResult:
        """Handle a REST depth snapshot (steps 2 to 4, then step 5 over the kept buffered diffs)."""
        self.snapshot_requested = False
        self.snapshots += 1
        if self.state == "live":
            return _NOTHING  # not asked for; the live book is newer or as new
        if self.state == "verifying":
            if last_update_id < self.book.last_update_id:  # a lagging snapshot proves nothing
                self.stale_snapshots += 1
                self.snapshot_requested = True
                return SyncResult(fetch_snapshot=True)
            self.buffer.clear()
        if self.buffer and self.snapshot_too_old(last_update_id, self.buffer[0][0]):
            self.stale_snapshots += 1
            self.snapshot_requested = True
            return SyncResult(fetch_snapshot=True)
        buf = self.buffer
        while buf and self.covered(buf[0][0], last_update_id):
            buf.popleft()
        # The first kept diff contains lastUpdateId + 1: the buffer is contiguous (_buffer restarts it at any
        # hole) and its first U <= lastUpdateId + 1 (checked above), so every kept diff follows the snapshot.
        book = self.book_class(self.symbol)
        book.apply_snapshot(last_update_id, bids, asks, self.snapshot_limit)
        recv = None
        try:
            for payload, recv_ms in buf:
                book.apply_diff(payload)
                recv = recv_ms
        except (ValueError, BookGap):  # a malformed diff, or (never built by _buffer) a hole
            log.warning("%s: malformed buffered depth diff; starting over", self.symbol)
            self.gaps += 1
            buf.clear()
            return SyncResult(gap=True)
        buf.clear()
        self.book = book
        self.last_recv_ms = recv
        if self.down:  # built while no diff can arrive: the new connection's first diff (or a snapshot) proves it
            self.state = "verifying"
            return _NOTHING
        self.state = "live"
        return _CHANGED

    # --- continuity rules (spot): does a diff continue prev_u; is a snapshot older than the first buffered
    # diff; does a snapshot already hold a buffered diff ---------------------------------------------------
    @staticmethod
    def follows(prev_u: int, payload: dict[str, Any]) -> bool:
        return bool(payload["U"] <= prev_u + 1)

    @staticmethod
    def snapshot_too_old(last_update_id: int, first: dict[str, Any]) -> bool:
        return bool(last_update_id + 1 < first["U"])

    @staticmethod
    def covered(payload: dict[str, Any], last_update_id: int) -> bool:
        return bool(payload["u"] <= last_update_id)

    def reset(self) -> SyncResult:
        """Discard everything (e.g. the depth stream was unsubscribed); the next diff starts a new sync."""
        self.snapshot_requested = False
        return self._restart(None, None)

    def status(self) -> dict[str, Any]:
        return {
            "state": self.state,
            "lastUpdateId": self.book.last_update_id if self.state == "live" else None,
            "E": self.book.last_event_time if self.state == "live" else None,
            "buffered": len(self.buffer),
            "resyncs": self.resyncs,
            "gaps": self.gaps,
            "snapshots": self.snapshots,
            "stale_snapshots": self.stale_snapshots,
            "proofs": self.proofs,
        }
