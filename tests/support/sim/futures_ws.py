"""USD-M futures WebSocket streams of the simulator, on the 2026 routed paths: ``/public/stream`` and
``/public/ws`` carry the book streams (diff and partial depth, bookTicker), ``/market/...`` everything else
(aggTrade, markPrice, kline, miniTicker, ticker, forceOrder). A stream subscribed on the other path is
acknowledged and then silent, as on Binance. Depth events carry ``pu`` (the previous event's ``u``) and ``U``
jumps; the futures speeds are 100, 250 (default) and 500 ms. One perpetual per simulated ``...USDT`` market,
sharing its book and trades (the REST side is :mod:`.futures_rest`).

Faults: ``drop_futures_depth(symbol, count)`` loses the next depth events of a symbol (the next event's ``pu``
then shows the gap).
"""

from __future__ import annotations

import asyncio
import re
from collections import defaultdict
from typing import TYPE_CHECKING, Any

from .hub import Hub, now_ms
from .market import Market, fmt
from .names import INTERVALS

if TYPE_CHECKING:
    from .server import BinanceSim
    from .ws import SimConnection

_RE = re.compile(
    r"^(?P<sym>[a-z0-9]+)@(?:(?P<market>aggTrade|markPrice|markPrice@1s|miniTicker|ticker|forceOrder)"
    r"|kline_(?P<interval>1m|3m|5m|15m|30m|1h|2h|4h|6h|8h|12h|1d|3d|1w|1M)"
    r"|(?P<public>bookTicker)|depth(?P<levels>5|10|20)?(?:@(?P<speed>100ms|500ms))?)$"
)
SPEEDS = (100, 250, 500)


def route_of(stream: str) -> str | None:
    """public, market, or None for a name Binance's futures streams do not have."""
    m = _RE.match(stream)
    if m is None:
        return None
    return "market" if m.group("market") or m.group("interval") else "public"


class FuturesHub:
    def __init__(self, sim: BinanceSim) -> None:
        self.sim = sim
        self.subs: dict[str, set[SimConnection]] = defaultdict(set)
        self.silent: dict[str, set[SimConnection]] = defaultdict(set)  # acknowledged on the wrong path
        self.pending: dict[tuple[str, int], dict[tuple[str, int], int]] = {}
        self.first_u: dict[tuple[str, int], int] = {}
        self.last_u: dict[tuple[str, int], int] = {}
        self.drop_depth: dict[str, int] = defaultdict(int)
        self.sent: dict[str, int] = defaultdict(int)
        self._tasks: list[asyncio.Task[None]] = []

    def markets(self) -> dict[str, Market]:
        return {s.lower(): m for s, m in self.sim.markets.items() if s.endswith("USDT")}

    def known(self, stream: str) -> bool:
        m = _RE.match(stream)
        return m is not None and m.group("sym") in self.markets()

    # --- subscriptions -------------------------------------------------------------------------------
    def add(self, conn: SimConnection, stream: str) -> None:
        if route_of(stream) == conn.route:
            self.subs[stream].add(conn)
        else:
            self.silent[stream].add(conn)
            self.sim.stats["futures_wrong_path"] += 1

    def remove(self, conn: SimConnection, stream: str) -> None:
        self.subs.get(stream, set()).discard(conn)
        self.silent.get(stream, set()).discard(conn)

    publish = Hub.publish  # the same fan-out over this hub's own subscribers

    # --- generation ----------------------------------------------------------------------------------
    def start(self) -> None:
        for sym, m in self.markets().items():
            for speed in SPEEDS:
                self.last_u[(sym, speed)] = m.update_id
        self.sim.hub.step_hooks.append(self.on_step)
        for every in (*SPEEDS, 1000, 3000):
            self._tasks.append(asyncio.create_task(self._periodic(every)))

    stop = Hub.stop  # cancel and await the generation tasks

    def on_step(self, m: Market, trades: list[dict[str, Any]], agg: dict[str, Any] | None,
                changes: list[tuple[str, int, int]], t_ms: int, before: int) -> None:
        sym = m.symbol.lower()
        if sym not in self.markets():
            return
        if agg is not None and f"{sym}@aggTrade" in self.subs:
            self.publish(f"{sym}@aggTrade", {"e": "aggTrade", "E": t_ms, "s": m.symbol, "a": agg["a"],
                                             "p": m.px(agg["p"]), "q": m.qty(agg["q"]), "nq": m.qty(agg["q"]),
                                             "f": agg["f"], "l": agg["l"], "T": agg["T"], "m": agg["m"]})
        if trades:
            for stream in [s for s in self.subs if s.startswith(f"{sym}@kline_")]:
                iv = INTERVALS[stream.split("_", 1)[1]]
                k = m.kline(t_ms - t_ms % iv, t_ms - t_ms % iv + iv - 1) | {"i": stream.split("_", 1)[1], "x": False}
                self.publish(stream, {"e": "kline", "E": t_ms, "s": m.symbol, "k": k})
        if changes:
            for speed in SPEEDS:
                key = (sym, speed)
                self.first_u.setdefault(key, before + 1)
                acc = self.pending.setdefault(key, {})
                for side, ticks, lots in changes:
                    acc[(side, ticks)] = lots
            if f"{sym}@bookTicker" in self.subs:
                bt = m.book_ticker()
                self.publish(f"{sym}@bookTicker", {"e": "bookTicker", "u": bt["u"], "E": t_ms, "T": t_ms,
                                                   "s": m.symbol, "b": bt["b"], "B": bt["B"], "a": bt["a"],
                                                   "A": bt["A"]})

    async def _periodic(self, every_ms: int) -> None:
        while True:
            await asyncio.sleep(every_ms / 1000)
            if self.sim.hub.paused:
                continue
            t_ms = now_ms()
            for sym, m in self.markets().items():
                if every_ms in SPEEDS:
                    self.flush_depth(sym, m, every_ms, t_ms)
                elif every_ms == 1000:
                    self._mark(sym, m, "@1s", t_ms)
                    self._tickers(sym, m, t_ms)
                else:
                    self._mark(sym, m, "", t_ms)

    def flush_now(self) -> None:
        """Send every pending depth change now (after ``pause``, so clients can catch up with the market)."""
        t_ms = now_ms()
        for sym, m in self.markets().items():
            for speed in SPEEDS:
                self.flush_depth(sym, m, speed, t_ms)

    def flush_depth(self, sym: str, m: Market, speed: int, t_ms: int) -> None:
        key = (sym, speed)
        acc, first = self.pending.pop(key, None), self.first_u.pop(key, None)
        suffix = "" if speed == 250 else f"@{speed}ms"
        if acc and first is not None:
            b, a = m.levels_payload(acc)
            # U jumps past pu + 1 on Binance's futures streams: only pu proves continuity
            jump = (m.update_id - first) // 2 if (m.update_id + speed) % 3 else 0
            payload = {"e": "depthUpdate", "E": t_ms, "T": t_ms, "s": m.symbol, "U": first + jump, "u": m.update_id,
                       "pu": self.last_u[key], "b": b, "a": a}
            self.last_u[key] = m.update_id
            if speed == 100 and self.drop_depth.get(m.symbol):
                self.drop_depth[m.symbol] -= 1  # lost: the next event's pu shows it
            else:
                self.publish(f"{sym}@depth{suffix}", payload)
        for levels in (5, 10, 20):
            name = f"{sym}@depth{levels}{suffix}"
            if name in self.subs:
                snap = m.depth_snapshot(levels)
                self.publish(name, {"e": "depthUpdate", "E": t_ms, "T": t_ms, "s": m.symbol, "U": m.update_id,
                                    "u": m.update_id, "pu": m.update_id, "b": snap["bids"], "a": snap["asks"]})

    def _mark(self, sym: str, m: Market, suffix: str, t_ms: int) -> None:
        stream = f"{sym}@markPrice{suffix}"
        if stream in self.subs:
            mark = m.tick * (m.best_bid() + m.best_ask()) / 2
            funding = 8 * 3_600_000
            self.publish(stream, {"e": "markPriceUpdate", "E": t_ms, "s": m.symbol, "p": fmt(mark),
                                  "ap": fmt(mark), "i": fmt(mark - m.tick), "P": fmt(mark), "r": "0.00010000",
                                  "T": t_ms - t_ms % funding + funding})

    def _tickers(self, sym: str, m: Market, t_ms: int) -> None:
        if f"{sym}@miniTicker" in self.subs:
            self.publish(f"{sym}@miniTicker", self.sim.hub.mini(m, t_ms))
        if f"{sym}@ticker" in self.subs:
            t = self.sim.hub.ticker24(m, t_ms)
            self.publish(f"{sym}@ticker", {k: v for k, v in t.items() if k not in ("x", "b", "B", "a", "A")})

