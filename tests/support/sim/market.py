"""A deterministic synthetic market for one symbol: book, trades, aggTrades, update ids. Pure, no I/O.

Every event the WebSocket side sends and every REST answer comes from this one state, so REST and WS agree
(trade ids, depth lastUpdateId vs diff U/u, bookTicker u) exactly as on Binance.
"""

from __future__ import annotations

import random
from collections import deque
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

HISTORY = 100_000


def fmt(x: Decimal, places: int = 8) -> str:
    return f"{x:.{places}f}"


@dataclass
class Market:
    symbol: str
    base: str
    quote: str
    seed: int = 1
    tick: Decimal = Decimal("0.01")
    lot: Decimal = Decimal("0.00001")
    mid_ticks: int = 3_000_000  # 30000.00
    levels: int = 200
    rng: random.Random = field(init=False)
    bids: dict[int, int] = field(default_factory=dict)  # price ticks -> qty lots
    asks: dict[int, int] = field(default_factory=dict)
    update_id: int = 1_000_000
    trade_id: int = 5_000_000
    agg_id: int = 2_000_000
    trades: deque[dict[str, Any]] = field(default_factory=lambda: deque(maxlen=HISTORY))
    aggs: deque[dict[str, Any]] = field(default_factory=lambda: deque(maxlen=HISTORY))
    block_id: int = 900
    blocks: deque[dict[str, Any]] = field(default_factory=lambda: deque(maxlen=HISTORY))
    status: str = "TRADING"

    def __post_init__(self) -> None:
        self.rng = random.Random(f"{self.seed}:{self.symbol}")
        for i in range(1, self.levels + 1):
            self.bids[self.mid_ticks - i] = self.rng.randint(1, 50_000)
            self.asks[self.mid_ticks + i] = self.rng.randint(1, 50_000)

    # --- formatting --------------------------------------------------------------------------------
    def px(self, ticks: int) -> str:
        return fmt(self.tick * ticks)

    def qty(self, lots: int) -> str:
        return fmt(self.lot * lots)

    def best_bid(self) -> int:
        return max(self.bids)

    def best_ask(self) -> int:
        return min(self.asks)

    # --- evolution ---------------------------------------------------------------------------------
    def step(self, now_ms: int) -> tuple[list[dict[str, Any]], dict[str, Any] | None, list[tuple[str, int, int]]]:
        """Advance one step. Returns (trades, aggTrade or None, book changes [(side, ticks, lots)])."""
        rng = self.rng
        changes: list[tuple[str, int, int]] = []
        trades: list[dict[str, Any]] = []
        agg: dict[str, Any] | None = None
        if rng.random() < 0.6:
            buyer_maker = rng.random() < 0.5
            side = self.bids if buyer_maker else self.asks
            price = self.best_bid() if buyer_maker else self.best_ask()
            n = rng.randint(1, 3)
            first = self.trade_id + 1
            total = 0
            for _ in range(n):
                self.trade_id += 1
                q = rng.randint(1, 2_000)
                total += q
                t = {"t": self.trade_id, "p": price, "q": q, "T": now_ms, "m": buyer_maker}
                trades.append(t)
                self.trades.append(t)
            left = side[price] - total
            if left > 0:
                side[price] = left
                changes.append(("b" if buyer_maker else "a", price, left))
            else:
                del side[price]
                changes.append(("b" if buyer_maker else "a", price, 0))
                self._refill("b" if buyer_maker else "a", changes)
            self.agg_id += 1
            agg = {"a": self.agg_id, "p": price, "q": total, "f": first, "l": self.trade_id, "T": now_ms,
                   "m": buyer_maker}
            self.aggs.append(agg)
        for _ in range(rng.randint(1, 3)):
            is_bid = rng.random() < 0.5
            book = self.bids if is_bid else self.asks
            best = self.best_bid() if is_bid else self.best_ask()
            off = rng.randint(0, 30)
            ticks = best - off if is_bid else best + off
            if is_bid and ticks >= self.best_ask():
                continue
            if not is_bid and ticks <= self.best_bid():
                continue
            lots = 0 if (ticks in book and rng.random() < 0.2 and len(book) > 20) else rng.randint(1, 50_000)
            if lots:
                book[ticks] = lots
            elif ticks in book:
                del book[ticks]
            else:
                continue
            changes.append(("b" if is_bid else "a", ticks, lots))
        if changes:
            self.update_id += rng.randint(1, 3)
        return trades, agg, changes

    def _refill(self, side: str, changes: list[tuple[str, int, int]]) -> None:
        book = self.bids if side == "b" else self.asks
        if len(book) < 20:
            edge = (min(book) - 1) if side == "b" and book else (max(book) + 1 if book else self.mid_ticks)
            book[edge] = self.rng.randint(1, 50_000)
            changes.append((side, edge, book[edge]))

    def skip_trade_ids(self, n: int) -> None:
        """Trade and agg ids jump by ``n`` (ids that never existed: Binance never does this; for tests)."""
        self.trade_id += n
        self.agg_id += n

    # --- payloads ----------------------------------------------------------------------------------
    def trade_payload(self, t: dict[str, Any], event_ms: int) -> dict[str, Any]:
        return {"e": "trade", "E": event_ms, "s": self.symbol, "t": t["t"], "p": self.px(t["p"]),
                "q": self.qty(t["q"]), "T": t["T"], "m": t["m"], "M": True}

    def agg_payload(self, a: dict[str, Any], event_ms: int) -> dict[str, Any]:
        return {"e": "aggTrade", "E": event_ms, "s": self.symbol, "a": a["a"], "p": self.px(a["p"]),
                "q": self.qty(a["q"]), "f": a["f"], "l": a["l"], "T": a["T"], "m": a["m"], "M": True}

    def book_ticker(self) -> dict[str, Any]:
        b, a = self.best_bid(), self.best_ask()
        return {"u": self.update_id, "s": self.symbol, "b": self.px(b), "B": self.qty(self.bids[b]),
                "a": self.px(a), "A": self.qty(self.asks[a])}

    def depth_snapshot(self, limit: int) -> dict[str, Any]:
        bids = sorted(self.bids.items(), reverse=True)[:limit]
        asks = sorted(self.asks.items())[:limit]
        return {"lastUpdateId": self.update_id,
                "bids": [[self.px(p), self.qty(q)] for p, q in bids],
                "asks": [[self.px(p), self.qty(q)] for p, q in asks]}

    def levels_payload(self, changes: dict[tuple[str, int], int]) -> tuple[list[list[str]], list[list[str]]]:
        b = [[self.px(p), self.qty(q)] for (s, p), q in sorted(changes.items()) if s == "b"]
        a = [[self.px(p), self.qty(q)] for (s, p), q in sorted(changes.items()) if s == "a"]
        return b, a

    # --- statistics over the trade history ---------------------------------------------------------
    def stats(self, start_ms: int, end_ms: int) -> dict[str, Any]:
        ts = [t for t in self.trades if start_ms <= t["T"] <= end_ms]
        last = self.trades[-1] if self.trades else None
        if not ts:
            p = last["p"] if last else self.best_bid()
            return {"o": p, "h": p, "l": p, "c": p, "v": 0, "qv": Decimal(0), "n": 0, "F": -1, "L": -1,
                    "O": start_ms, "C": end_ms, "lastQ": 0}
        vol = sum(t["q"] for t in ts)
        qv = sum(self.tick * t["p"] * self.lot * t["q"] for t in ts)
        return {"o": ts[0]["p"], "h": max(t["p"] for t in ts), "l": min(t["p"] for t in ts), "c": ts[-1]["p"],
                "v": vol, "qv": qv, "n": len(ts), "F": ts[0]["t"], "L": ts[-1]["t"], "O": start_ms, "C": end_ms,
                "lastQ": ts[-1]["q"]}

    def kline(self, open_ms: int, close_ms: int) -> dict[str, Any]:
        st = self.stats(open_ms, close_ms)
        ts = [t for t in self.trades if open_ms <= t["T"] <= close_ms]
        taker_buy = [t for t in ts if not t["m"]]
        tb_v = sum(t["q"] for t in taker_buy)
        tb_q = sum(self.tick * t["p"] * self.lot * t["q"] for t in taker_buy)
        return {"t": open_ms, "T": close_ms, "s": self.symbol, "f": st["F"], "L": st["L"],
                "o": self.px(st["o"]), "c": self.px(st["c"]), "h": self.px(st["h"]), "l": self.px(st["l"]),
                "v": self.qty(st["v"]), "n": st["n"], "q": fmt(Decimal(st["qv"])), "V": self.qty(tb_v),
                "Q": fmt(Decimal(tb_q))}

    def ticker_fields(self, start_ms: int, end_ms: int) -> dict[str, Any]:
        st = self.stats(start_ms, end_ms)
        o, c = self.tick * st["o"], self.tick * st["c"]
        change = c - o
        pct = (change / o * 100) if o else Decimal(0)
        vol = self.lot * st["v"]
        w = (Decimal(st["qv"]) / vol) if vol else c
        return {"p": fmt(change), "P": f"{pct:.3f}", "w": fmt(w), "o": fmt(o), "h": self.px(st["h"]),
                "l": self.px(st["l"]), "c": fmt(c), "v": self.qty(st["v"]), "q": fmt(Decimal(st["qv"])),
                "O": st["O"], "C": st["C"], "F": st["F"], "L": st["L"], "n": st["n"],
                "Q": self.qty(st["lastQ"])}

    BLOCK_EVERY = 25  # every 25th trade id comes with a block trade (100 times its quantity)

    def block_trade(self, t: dict[str, Any], event_ms: int) -> dict[str, Any]:
        """Record the block trade that comes with trade ``t``; its ``<s>@blockTrade`` payload."""
        self.block_id += 1
        b = {"t": self.block_id, "p": t["p"], "q": t["q"] * 100, "T": t["T"], "m": t["m"]}
        self.blocks.append(b)
        return {"e": "blockTrade", "E": event_ms, "s": self.symbol, "t": b["t"], "p": self.px(b["p"]),
                "q": self.qty(b["q"]), "T": b["T"], "m": b["m"]}

    def reference_price(self, now_ms: int) -> str | None:
        """The price-range rule's reference price: the 5-minute average, on the tick; None for a BTC-quoted pair."""
        if self.quote == "BTC":
            return None
        return fmt(self.avg_price(now_ms).quantize(self.tick))

    def avg_price(self, now_ms: int, mins: int = 5) -> Decimal:
        ts = [t for t in self.trades if t["T"] >= now_ms - mins * 60_000]
        if not ts:
            return self.tick * (self.best_bid() + self.best_ask()) / 2
        vol = sum(t["q"] for t in ts)
        return sum(self.tick * t["p"] * t["q"] for t in ts) / vol
