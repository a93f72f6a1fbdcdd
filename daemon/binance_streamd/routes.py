"""Connection pools by venue and path: spot streams on ``ws_base_url``, USD-M futures streams on
``futures_ws_base_url`` + ``/public`` (book data) or ``/market`` (everything else), since Binance split the
futures WebSocket base in 2026. Futures streams are named ``um:<Binance name>`` in the feed; their pools
speak Binance's names and :class:`Routes` translates both ways, so the rest of the daemon sees one pool.

Wrong-path detection: Binance acknowledges a futures stream subscribed on the wrong path and then sends
nothing. :meth:`Routes.check_silent` (run by the reconcile loop) finds a futures stream acknowledged
``silence_s`` ago without a message. A timer-driven stream (markPrice, kline, tickers: never quiet) is
reported in its status and moved to the other path, and back if silent there too; an event-driven one
(trades, book data, forceOrder: quiet on a calm contract) is reported, not moved.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from binance_common.streams import FUTURES_PREFIX, StreamKind, parse_stream
from binance_common.timeutil import now_ms

from .connection import WsConnection
from .pool import Pool

log = logging.getLogger(__name__)
SILENCE_S = 30.0
TIMER_KINDS = frozenset({StreamKind.MARK_PRICE, StreamKind.KLINE, StreamKind.MINI_TICKER, StreamKind.TICKER})
"""Futures streams Binance pushes on a timer, data or not: their silence can only be the path."""

MakePool = Callable[[str, str, int], Pool]
"""(url, prefix of the feed's names over Binance's: '' or ``um:``, streams per connection) -> Pool."""


class Routes:
    def __init__(self, spot_url: str, futures_url: str, make_pool: MakePool, *, spot_max: int, futures_max: int,
                 silence_s: float = SILENCE_S) -> None:
        self._make = make_pool
        self.silence_s = silence_s
        self.pools: dict[str, Pool] = {"spot": make_pool(spot_url, "", spot_max)}
        self._urls = {"public": f"{futures_url}/public", "market": f"{futures_url}/market"}
        self._futures_max = futures_max
        self.route: dict[str, str] = {}  # futures stream -> public | market (as placed now)
        self.moved: set[str] = set()
        self.settled: set[str] = set()  # tried both paths: never moved again, only reported
        self.reported: dict[str, int] = {}  # stream -> the acknowledgement (count) whose silence was acted on
        self.acks: dict[str, int] = {}
        self.acked_at: dict[str, int] = {}  # futures stream -> when it was acknowledged (ms)

    # --- placement -----------------------------------------------------------------------------------
    def _pool(self, name: str) -> tuple[Pool, str]:
        if not name.startswith(FUTURES_PREFIX):
            return self.pools["spot"], name
        route = self.route.get(name)
        if route is None:
            route = self.route[name] = parse_stream(name).route or "market"
        pool = self.pools.get(route)
        if pool is None:
            pool = self.pools[route] = self._make(self._urls[route], FUTURES_PREFIX, self._futures_max)
        return pool, name[len(FUTURES_PREFIX):]

    def add(self, streams: list[str]) -> None:
        for name in streams:
            pool, raw = self._pool(name)
            pool.add([raw])

    def remove(self, streams: list[str]) -> None:
        for name in streams:
            pool, raw = self._pool(name)
            pool.remove([raw])
            self.acked_at.pop(name, None)
            if name.startswith(FUTURES_PREFIX):
                self.route.pop(name, None)
                self.moved.discard(name)
                self.settled.discard(name)
                self.reported.pop(name, None)
                self.acks.pop(name, None)

    def slot_of(self, name: str) -> Any:
        pool, raw = self._pool(name)
        return pool.slot_of(raw)

    @property
    def spot(self) -> Pool:
        return self.pools["spot"]

    @property
    def prober(self) -> Any:
        """The spot pool's probe connection (refused names are sorted out there)."""
        return self.spot.prober

    @property
    def slots(self) -> list[Any]:
        return [s for p in self.pools.values() for s in p.slots]

    @property
    def connects(self) -> int:
        return sum(p.connects for p in self.pools.values())

    def connections(self) -> list[WsConnection]:
        return [c for p in self.pools.values() for c in p.connections()]

    def request_rotation(self, conn: WsConnection | None = None) -> None:
        for p in self.pools.values():
            p.request_rotation(conn)

    async def close(self) -> None:
        for p in self.pools.values():
            await p.close()

    # --- wrong-path detection ------------------------------------------------------------------------
    def acknowledged(self, name: str) -> None:
        if name.startswith(FUTURES_PREFIX):
            self.acked_at[name] = now_ms()
            self.acks[name] = self.acks.get(name, 0) + 1

    def check_silent(self, states: dict[str, Any]) -> list[str]:
        """Futures streams acknowledged ``silence_s`` ago that sent nothing since. Streams Binance pushes on a
        timer (markPrice, kline, miniTicker, ticker) are never quiet: moved to the other path once, and back to
        the documented one for good if silent there too. Event-driven streams (trades, book data) may be quiet
        on a calm contract: reported in their status, not moved. A reason set here goes once data arrives.
        Returns the names moved."""
        moved = []
        now = now_ms()
        for name, at in list(self.acked_at.items()):
            st = states.get(name)
            if st is None:
                continue
            if (st.last_recv or 0) >= at:  # data since the acknowledgement: the path is right
                del self.acked_at[name]
                if self.reported.pop(name, None) is not None:
                    st.reason = ""
                continue
            if now - at < self.silence_s * 1000 or self.reported.get(name) == self.acks.get(name):
                continue
            self.reported[name] = self.acks.get(name, 0)  # one action per acknowledgement
            spec = parse_stream(name)
            route, home = self.route.get(name, "market"), spec.route or "market"
            if spec.kind not in TIMER_KINDS or name in self.settled:
                if not st.reason.startswith("silent on"):
                    st.reason = (f"no data {self.silence_s:g} s after the acknowledgement on /{route}: a quiet "
                                 "contract, or the wrong path (Binance acknowledges there and stays silent)")
                continue
            if name in self.moved:  # silent on both paths: back to the documented one, for good
                self.moved.discard(name)
                self.settled.add(name)
                self._move(name, home)
                st.reason = (f"silent on /public and /market {self.silence_s:g} s after each acknowledgement; kept on "
                             f"/{home}")
                continue
            other = "public" if route == "market" else "market"
            log.warning("%s: acknowledged on /%s but silent for %.0f s (the wrong path?); moving it to /%s",
                        name, route, self.silence_s, other)
            self._move(name, other)
            self.moved.add(name)
            st.reason = (f"moved to /{other}: acknowledged on /{route} but no data within {self.silence_s:g} s (Binance "
                         "serves futures streams by path and is silent on the wrong one)")
            moved.append(name)
        return moved

    def _move(self, name: str, route: str) -> None:
        pool, raw = self._pool(name)
        pool.remove([raw])
        self.route[name] = route
        pool, raw = self._pool(name)
        pool.add([raw])
