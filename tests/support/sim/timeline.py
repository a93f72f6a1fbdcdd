"""Replay of a recording as one market timeline: what the exchange said, when, to whoever is connected then.

The per-connection replay (server.py) sends every recorded frame to each connection from the start, byte
exact: right for frame-level tests. A real exchange does not repeat the past to a client that reconnects:
the timeline publishes each frame once, at its recorded time (times a speed factor), to the connections
subscribed at that moment, so a client that drops misses what was published meanwhile and must recover it
from REST, as from Binance. REST answers from the timeline's state up to the current frame:

* ``/api/v3/depth``: the recorded snapshot with every depth diff published since applied (the official
  procedure; before the snapshot's own update id is reached, the recorded snapshot itself);
* ``/api/v3/aggTrades``, ``/trades``, ``/historicalTrades``: rows of the aggTrade/trade frames published.

Times: a frame's ``E`` (and a trade's ``T``) become the wall-clock time it is published, as if the market
were live now, so REST time filters (``startTime``) and the daemon's own clock agree. Ids, prices,
quantities and levels are the recording's, unchanged.

Pure state plus one task; independent of ``binance_streamd`` on purpose.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import defaultdict
from decimal import Decimal
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .hub import Hub
    from .replay import ReplayData


class TimelineBook:
    """One symbol's book: the recorded snapshot plus the published diffs (string levels, exact)."""

    def __init__(self, snapshot: dict[str, Any]) -> None:
        self.last = int(snapshot["lastUpdateId"])
        self.bids = {p: q for p, q in snapshot["bids"]}
        self.asks = {p: q for p, q in snapshot["asks"]}

    def apply(self, diff: dict[str, Any]) -> None:
        if diff["u"] <= self.last:
            return
        for side, levels in ((self.bids, diff["b"]), (self.asks, diff["a"])):
            for p, q in levels:
                if Decimal(q) == 0:
                    side.pop(p, None)
                else:
                    side[p] = q
        self.last = diff["u"]

    def snapshot(self, limit: int) -> dict[str, Any]:
        bids = sorted(self.bids.items(), key=lambda x: Decimal(x[0]), reverse=True)[:limit]
        asks = sorted(self.asks.items(), key=lambda x: Decimal(x[0]))[:limit]
        return {"lastUpdateId": self.last, "bids": [list(x) for x in bids], "asks": [list(x) for x in asks]}


class Timeline:
    def __init__(self, data: ReplayData, hub: Hub, speed: float | None) -> None:
        self.data = data
        self.hub = hub
        self.speed = speed  # None: as fast as possible
        self.books = {sym: TimelineBook(snap) for sym, snap in data.depth.items()}
        self.aggs: dict[str, list[dict[str, Any]]] = defaultdict(list)  # REST /aggTrades rows
        self.trades: dict[str, list[dict[str, Any]]] = defaultdict(list)  # REST /trades rows
        self.published = 0
        self.done = asyncio.Event()
        self.started = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    @property
    def symbols(self) -> set[str]:
        return set(self.data.symbols)

    def start(self, delay: float) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._play(delay), name="sim-timeline")
            self.started.set()

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except (asyncio.CancelledError, Exception):
                pass

    async def _play(self, delay: float) -> None:
        await asyncio.sleep(delay)
        frames = self.data.frames
        t0 = time.monotonic()
        ts0 = frames[0][0] if frames else 0.0
        for i, (ts, stream, payload) in enumerate(frames):
            if self.speed:
                wait = (ts - ts0) / self.speed - (time.monotonic() - t0)
                if wait > 0:
                    await asyncio.sleep(wait)
            elif i % 32 == 0:
                await asyncio.sleep(0)
            payload = self.apply(stream, payload)
            self.hub.publish_raw(stream, payload)
            self.published += 1
        self.done.set()

    def apply(self, stream: str, payload: bytes) -> bytes:
        """Update the REST-visible state with one frame; returns the payload as published (times now)."""
        ev = json.loads(payload)
        if not isinstance(ev, dict):
            return payload
        now = time.time_ns() // 1_000_000
        if "E" in ev:
            ev["E"] = now
        if "T" in ev:
            ev["T"] = now
        if ev.get("e") == "depthUpdate":
            book = self.books.get(ev.get("s", ""))
            if book is not None:
                book.apply(ev)
        elif ev.get("e") == "aggTrade":
            self.aggs[ev["s"]].append({"a": ev["a"], "p": ev["p"], "q": ev["q"], "f": ev["f"], "l": ev["l"],
                                       "T": ev["T"], "m": ev["m"], "M": ev.get("M", True)})
        elif ev.get("e") == "trade":
            self.trades[ev["s"]].append({"id": ev["t"], "price": ev["p"], "qty": ev["q"],
                                         "quoteQty": str(Decimal(ev["p"]) * Decimal(ev["q"])), "time": ev["T"],
                                         "isBuyerMaker": ev["m"], "isBestMatch": ev.get("M", True)})
        else:
            return payload
        return json.dumps(ev, separators=(",", ":")).encode()

    # --- REST views ----------------------------------------------------------------------------------
    def depth(self, symbol: str, limit: int) -> dict[str, Any] | None:
        book = self.books.get(symbol)
        return book.snapshot(limit) if book is not None else None

    def agg_trades(self, symbol: str, *, from_id: int | None, start: int | None, end: int | None,
                   limit: int) -> list[dict[str, Any]]:
        rows = self.aggs.get(symbol, [])
        if from_id is not None:
            rows = [r for r in rows if r["a"] >= from_id]
        if start is not None:
            rows = [r for r in rows if r["T"] >= start]
        if end is not None:
            rows = [r for r in rows if r["T"] <= end]
        return rows[:limit] if (from_id is not None or start is not None) else rows[-limit:]

    def recent_trades(self, symbol: str, *, from_id: int | None, limit: int) -> list[dict[str, Any]]:
        rows = self.trades.get(symbol, [])
        if from_id is None:
            return rows[-limit:]
        return [r for r in rows if r["id"] >= from_id][:limit]
