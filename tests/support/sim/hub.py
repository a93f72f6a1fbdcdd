"""Event generation and fan-out: markets tick, payloads are encoded once and sent to every subscriber."""

from __future__ import annotations

import asyncio
import time
from collections import defaultdict
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import orjson

from .market import Market, fmt
from .names import INTERVALS, WINDOWS, parse

if TYPE_CHECKING:
    from .ws import SimConnection


def now_ms() -> int:
    return time.time_ns() // 1_000_000


class Hub:
    def __init__(self, markets: dict[str, Market], rate: float, known: dict[str, Market] | None = None) -> None:
        self.markets = markets
        self.known = known if known is not None else markets
        self.rate = rate
        self.subs: dict[str, set[SimConnection]] = defaultdict(set)
        self.pending: dict[tuple[str, int], dict[tuple[str, int], int]] = {}
        self.pending_first: dict[tuple[str, int], int] = {}
        self.drop_ws_trades: dict[str, int] = defaultdict(int)
        self.drop_depth: dict[str, int] = defaultdict(int)
        self.sent: dict[str, int] = defaultdict(int)
        self.paused = False
        self.quiet: set[str] = set()  # symbols whose market does not move (no trades, no book changes)
        self.clock = now_ms  # ms since the epoch; the recording generator runs on a synthetic clock
        self.step_hooks: list[Any] = []  # more venues over the same markets (the futures streams)
        self._tasks: list[asyncio.Task[None]] = []

    # --- subscriptions -----------------------------------------------------------------------------
    def add(self, conn: SimConnection, stream: str) -> None:
        self.subs[stream].add(conn)

    def remove(self, conn: SimConnection, stream: str) -> None:
        s = self.subs.get(stream)
        if s:
            s.discard(conn)
            if not s:
                del self.subs[stream]

    def symbol_known(self, stream: str) -> bool:
        p = parse(stream)
        return p is not None and (p["sym"] is None or str(p["sym"]).upper() in self.known)

    # --- fan-out -----------------------------------------------------------------------------------
    def publish(self, stream: str, payload: Any) -> None:
        conns = self.subs.get(stream)
        if not conns:
            return
        raw = orjson.dumps(payload)
        self.sent[stream] += 1
        for c in list(conns):
            c.send_event(stream, raw)

    def publish_raw(self, stream: str, raw: bytes) -> None:
        for c in list(self.subs.get(stream, ())):
            c.send_event(stream, raw)
        self.sent[stream] += 1

    def wanted(self, stream: str) -> bool:
        return stream in self.subs

    # --- generation --------------------------------------------------------------------------------
    def start(self) -> None:
        if self.rate > 0:
            for m in self.markets.values():
                self._tasks.append(asyncio.create_task(self._run_market(m)))
            self._tasks.append(asyncio.create_task(self._periodic(100)))
            self._tasks.append(asyncio.create_task(self._periodic(1000)))

    async def stop(self) -> None:
        for t in self._tasks:
            t.cancel()
        for t in self._tasks:
            try:
                await t
            except (asyncio.CancelledError, Exception):
                pass
        self._tasks.clear()

    async def _run_market(self, m: Market) -> None:
        interval = 1.0 / self.rate
        next_t = time.monotonic()
        while True:
            next_t += interval
            delay = next_t - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            elif delay < -1.0:
                next_t = time.monotonic()
            if not self.paused and m.symbol not in self.quiet:
                self.step(m)

    def step(self, m: Market) -> None:
        t_ms = self.clock()
        before = m.update_id
        trades, agg, changes = m.step(t_ms)
        sym = m.symbol.lower()
        drop = self.drop_ws_trades.get(m.symbol, 0)
        if drop:
            self.drop_ws_trades[m.symbol] = max(0, drop - len(trades))
        else:
            if self.wanted(f"{sym}@trade"):
                for t in trades:
                    self.publish(f"{sym}@trade", m.trade_payload(t, t_ms))
            if agg and self.wanted(f"{sym}@aggTrade"):
                self.publish(f"{sym}@aggTrade", m.agg_payload(agg, t_ms))
        for t in trades:
            if t["t"] % m.BLOCK_EVERY == 0:
                block = m.block_trade(t, t_ms)
                if self.wanted(f"{sym}@blockTrade"):
                    self.publish(f"{sym}@blockTrade", block)
        if trades:
            for stream in [s for s in self.subs if s.startswith(f"{sym}@kline_")]:
                p = parse(stream)
                assert p is not None
                iv = INTERVALS[str(p["interval"])]
                open_ms = t_ms - t_ms % iv
                k = m.kline(open_ms, open_ms + iv - 1)
                k["i"] = p["interval"]
                k["x"] = False
                self.publish(stream, {"e": "kline", "E": t_ms, "s": m.symbol, "k": k})
        if changes:
            self.record_changes(m, before, changes)
            if self.wanted(f"{sym}@bookTicker"):
                self.publish(f"{sym}@bookTicker", m.book_ticker())
        for hook in self.step_hooks:
            hook(m, trades, agg, changes, t_ms, before)

    def flush_now(self) -> None:
        """Send every pending depth change now (after ``pause``, so clients can catch up with the market)."""
        t_ms = now_ms()
        for m in list(self.markets.values()):
            for speed in (100, 1000):
                self.flush_depth(m, speed, t_ms)

    def record_changes(self, m: Market, before: int, changes: list[tuple[str, int, int]]) -> None:
        """Book changes made since update id ``before``: sent as diffs at the next flush of each speed."""
        for speed in (100, 1000):
            key = (m.symbol, speed)
            acc = self.pending.setdefault(key, {})
            if key not in self.pending_first:
                self.pending_first[key] = before + 1
            for side, ticks, lots in changes:
                acc[(side, ticks)] = lots

    async def _periodic(self, every_ms: int) -> None:
        while True:
            await asyncio.sleep(every_ms / 1000)
            if self.paused:
                continue
            t_ms = now_ms()
            for m in list(self.markets.values()):
                self.flush_depth(m, every_ms, t_ms)
                if every_ms == 1000:
                    self.emit_tickers(m, t_ms)
            if every_ms == 1000:
                self.emit_all_market(t_ms)

    def flush_depth(self, m: Market, speed: int, t_ms: int) -> None:
        sym = m.symbol.lower()
        key = (m.symbol, speed)
        acc = self.pending.pop(key, None)
        first = self.pending_first.pop(key, None)
        suffix = "@100ms" if speed == 100 else ""
        if acc and first is not None:
            stream = f"{sym}@depth{suffix}"
            if self.drop_depth.get(m.symbol) and speed == 100:
                self.drop_depth[m.symbol] -= 1
            elif self.wanted(stream) or (speed == 1000 and self.wanted(f"{sym}@depth@1000ms")):
                b, a = m.levels_payload(acc)
                payload = {"e": "depthUpdate", "E": t_ms, "s": m.symbol, "U": first, "u": m.update_id,
                           "b": b, "a": a}
                self.publish(stream, payload)
                if speed == 1000:
                    self.publish(f"{sym}@depth@1000ms", payload)
        for levels in (5, 10, 20):
            for name in ((f"{sym}@depth{levels}@100ms",) if speed == 100 else
                         (f"{sym}@depth{levels}", f"{sym}@depth{levels}@1000ms")):
                if self.wanted(name):
                    self.publish(name, m.depth_snapshot(levels))

    def emit_tickers(self, m: Market, t_ms: int) -> None:
        sym = m.symbol.lower()
        if self.wanted(f"{sym}@ticker"):
            self.publish(f"{sym}@ticker", self.ticker24(m, t_ms))
        if self.wanted(f"{sym}@miniTicker"):
            self.publish(f"{sym}@miniTicker", self.mini(m, t_ms))
        for w, span in WINDOWS.items():
            if self.wanted(f"{sym}@ticker_{w}"):
                self.publish(f"{sym}@ticker_{w}", self.window(m, w, span, t_ms))
        if self.wanted(f"{sym}@referencePrice"):
            self.publish(f"{sym}@referencePrice", {"e": "referencePrice", "s": m.symbol,
                                                   "r": m.reference_price(t_ms), "t": t_ms})
        if self.wanted(f"{sym}@avgPrice"):
            self.publish(f"{sym}@avgPrice", {"e": "avgPrice", "E": t_ms, "s": m.symbol, "i": "5m",
                                             "w": fmt(m.avg_price(t_ms)), "T": t_ms})

    def emit_all_market(self, t_ms: int) -> None:
        if self.wanted("!miniTicker@arr"):
            self.publish("!miniTicker@arr", [self.mini(m, t_ms) for m in self.markets.values()])
        for w, span in WINDOWS.items():
            if self.wanted(f"!ticker_{w}@arr"):
                self.publish(f"!ticker_{w}@arr", [self.window(m, w, span, t_ms) for m in self.markets.values()])

    @staticmethod
    def ticker24(m: Market, t_ms: int) -> dict[str, Any]:
        f = m.ticker_fields(t_ms - 86_400_000, t_ms)
        bt = m.book_ticker()
        prev = Decimal(f["o"])
        return {"e": "24hrTicker", "E": t_ms, "s": m.symbol, "p": f["p"], "P": f["P"], "w": f["w"],
                "x": fmt(prev), "c": f["c"], "Q": f["Q"], "b": bt["b"], "B": bt["B"], "a": bt["a"], "A": bt["A"],
                "o": f["o"], "h": f["h"], "l": f["l"], "v": f["v"], "q": f["q"], "O": f["O"], "C": f["C"],
                "F": f["F"], "L": f["L"], "n": f["n"]}

    @staticmethod
    def mini(m: Market, t_ms: int) -> dict[str, Any]:
        f = m.ticker_fields(t_ms - 86_400_000, t_ms)
        return {"e": "24hrMiniTicker", "E": t_ms, "s": m.symbol, "c": f["c"], "o": f["o"], "h": f["h"],
                "l": f["l"], "v": f["v"], "q": f["q"]}

    @staticmethod
    def window(m: Market, w: str, span: int, t_ms: int) -> dict[str, Any]:
        f = m.ticker_fields(t_ms - span, t_ms)
        return {"e": f"{w}Ticker", "E": t_ms, "s": m.symbol, "p": f["p"], "P": f["P"], "o": f["o"],
                "h": f["h"], "l": f["l"], "c": f["c"], "w": f["w"], "v": f["v"], "q": f["q"], "O": f["O"],
                "C": f["C"], "F": f["F"], "L": f["L"], "n": f["n"]}
