"""Fault injection, controlled by a test in-process (``sim.faults.X(...)``) or over HTTP (POST /_sim/X)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from .ws import send_server_shutdown

if TYPE_CHECKING:
    from .server import BinanceSim


class Faults:
    ACTIONS = ("drop_connections", "close_connections", "stall", "malformed", "drop_trades", "skip_ids",
               "drop_depth", "server_shutdown", "rest_fault", "reject_handshakes_next", "pause", "resume",
               "quiet", "unquiet", "burst", "clear", "stats", "subscriptions", "drop_ws_api",
               "terminate_user_streams", "drop_futures_depth", "forget_subscriptions", "sweep")

    def __init__(self, sim: BinanceSim) -> None:
        self.sim = sim
        self.stall_until = 0.0
        self.reject_handshakes = 0
        self.rest_faults: list[dict[str, Any]] = []
        self.before_subscribe: Callable[[Any], None] | None = None
        """Called once with the connection of the next SUBSCRIBE, before it takes effect (in-process tests)."""

    async def call(self, action: str, args: dict[str, Any]) -> Any:
        if action not in self.ACTIONS:
            raise KeyError(f"unknown fault {action!r}; one of {', '.join(self.ACTIONS)}")
        result = getattr(self, action)(**args)
        if hasattr(result, "__await__"):
            result = await result
        return result

    # --- WebSocket -----------------------------------------------------------------------------------
    def drop_connections(self, conn_id: int | None = None) -> int:
        """Abort TCP connections (no close frame). Returns how many."""
        n = 0
        for c in list(self.sim.connections):
            if conn_id is None or c.id == conn_id:
                c.abort()
                n += 1
        return n

    def drop_futures_depth(self, symbol: str, count: int = 1) -> None:
        """Lose the next ``count`` futures @100ms depth events of ``symbol`` (the next ``pu`` shows it)."""
        self.sim.futures_hub.drop_depth[symbol.upper()] += count

    def drop_ws_api(self) -> int:
        """Abort every WebSocket API connection (no close frame); returns how many."""
        conns = list(self.sim.ws_api_connections)
        for c in conns:
            c.abort()
        return len(conns)

    def terminate_user_streams(self) -> int:
        """End every user-data subscription with eventStreamTerminated (connections stay open)."""
        n = 0
        for c in list(self.sim.ws_api_connections):
            n += len(c.subs)
            c.terminate()
        return n

    async def close_connections(self, code: int = 1000, reason: str = "", conn_id: int | None = None) -> int:
        n = 0
        for c in list(self.sim.connections):
            if conn_id is None or c.id == conn_id:
                await c.ws.close(code, reason)
                n += 1
        return n

    def stall(self, seconds: float) -> None:
        """Stop sending data frames for ``seconds`` (connections stay open; pings continue)."""
        self.stall_until = time.monotonic() + seconds
        for c in self.sim.connections:
            c.wake.set()

    def malformed(self, kind: str = "invalid_json", stream: str | None = None) -> int:
        """Send one malformed frame on every connection: invalid_json, truncated, binary, wrong_types."""
        frames: dict[str, bytes | str] = {
            "invalid_json": b"{not json",
            "truncated": b'{"stream":"btcusdt@trade","data":{"e":"trade","E":1,"s":"BTC',
            "wrong_types": b'{"stream":"%s","data":{"e":"trade","E":"x","s":5,"t":"abc","p":1.5,"q":null}}'
            % (stream or "btcusdt@trade").encode(),
            "unknown_stream": b'{"stream":"nosuch@trade","data":{}}',
            "not_object": b"[1,2,3]",
        }
        n = 0
        for c in list(self.sim.connections):
            if kind == "binary":
                c.out.append(_Binary(b"\x00\x01\x02"))
            else:
                c.out.append(frames[kind])
            c.wake.set()
            n += 1
        return n

    def drop_trades(self, symbol: str, count: int) -> None:
        """The next ``count`` trades (and their aggTrades) of ``symbol`` are never sent on WebSockets (they are
        in REST history): a gap a client must detect and backfill."""
        self.sim.hub.drop_ws_trades[symbol.upper()] += count

    def skip_ids(self, symbol: str, count: int) -> None:
        """Trade/aggTrade ids jump by ``count`` (ids that exist nowhere)."""
        self.sim.markets[symbol.upper()].skip_trade_ids(count)

    def drop_depth(self, symbol: str, count: int = 1) -> None:
        """Lose the next ``count`` @100ms depth diffs of ``symbol``: the next diff's U skips ahead."""
        self.sim.hub.drop_depth[symbol.upper()] += count

    async def server_shutdown(self, close: bool = True) -> int:
        n = 0
        for c in list(self.sim.connections):
            await send_server_shutdown(c)
            if close:
                await c.ws.close(1001, "Server shutdown")
            n += 1
        return n

    def forget_subscriptions(self, stream: str) -> int:
        """Binance silently stops serving ``stream`` on every connection that has it (the connection stays open,
        other streams go on, ``LIST_SUBSCRIPTIONS`` no longer lists it). Returns how many connections."""
        n = 0
        for c in list(self.sim.connections):
            if stream in c.streams:
                c._remove(stream)
                n += 1
        return n

    def sweep(self, symbol: str, levels: int, side: str = "b") -> None:
        """One market order takes the best ``levels`` levels of a side (``b`` or ``a``) at once and a new order
        rests 5 ticks behind the new best: one book change that moves the top far (past a small snapshot's
        depth), sent with the next depth diffs."""
        m = self.sim.markets[symbol.upper()]
        book = m.bids if side == "b" else m.asks
        gone = sorted(book, reverse=side == "b")[:levels]
        for t in gone:
            del book[t]
        new = (max(book) - 5) if side == "b" else (min(book) + 5)
        book[new] = 1000
        before = m.update_id
        m.update_id += len(gone) + 1
        self.sim.hub.record_changes(m, before, [*((side, t, 0) for t in gone), (side, new, 1000)])

    def quiet(self, symbol: str) -> None:
        """``symbol``'s market stops moving: no trades, no book changes (a quiet pair)."""
        self.sim.hub.quiet.add(symbol.upper())

    def unquiet(self, symbol: str) -> None:
        self.sim.hub.quiet.discard(symbol.upper())

    def burst(self, symbol: str, trades: int, flush: bool = True) -> int:
        """Step ``symbol``'s market at once until it has made at least ``trades`` trades (quiet or not), and with
        ``flush`` send its pending depth diffs now (to whoever is connected at this moment). Returns the number
        of trades made."""
        hub = self.sim.hub
        m = self.sim.markets[symbol.upper()]
        first = m.trade_id
        while m.trade_id - first < trades:
            hub.step(m)
        if flush:
            t_ms = time.time_ns() // 1_000_000
            hub.flush_depth(m, 100, t_ms)
            hub.flush_depth(m, 1000, t_ms)
        return m.trade_id - first

    def reject_handshakes_next(self, count: int) -> None:
        self.reject_handshakes += count

    def pause(self) -> None:
        self.sim.hub.paused = True

    def resume(self) -> None:
        self.sim.hub.paused = False

    # --- REST ----------------------------------------------------------------------------------------
    def rest_fault(self, status: int = 0, count: int = 1, path: str | None = None, retry_after: int = 5,
                   delay: float = 0.0) -> None:
        """Answer the next ``count`` REST requests (to ``path``, e.g. "depth", if given) with ``status``
        (429/418 with Retry-After, 451 geo block, 5xx) and/or after ``delay`` seconds."""
        for _ in range(count):
            self.rest_faults.append({"status": status, "path": path, "retry_after": retry_after, "delay": delay})

    def take_rest_fault(self, path: str) -> dict[str, Any] | None:
        for i, f in enumerate(self.rest_faults):
            if f["path"] is None or f["path"] == path:
                return self.rest_faults.pop(i)
        return None

    def clear(self) -> None:
        self.stall_until = 0.0
        self.reject_handshakes = 0
        self.rest_faults.clear()
        self.sim.hub.drop_ws_trades.clear()
        self.sim.hub.drop_depth.clear()
        self.sim.hub.paused = False
        self.sim.hub.quiet.clear()
        self.sim.rest.retry_until.clear()
        self.sim.rest.ban_until.clear()

    def stats(self) -> dict[str, Any]:
        return dict(self.sim.stats)

    def subscriptions(self) -> dict[int, list[str]]:
        return {c.id: list(c.streams) for c in self.sim.connections}


class _Binary(bytes):
    """A frame to send as a binary WebSocket message."""
