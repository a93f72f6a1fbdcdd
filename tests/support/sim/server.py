"""BinanceSim: one asyncio process serving Binance REST (Starlette/uvicorn) and WebSocket streams (websockets)."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import socket
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import uvicorn
from websockets.asyncio.server import Server, serve

from . import ws as ws_mod
from .account import SimAccount
from .account_rest import AccountRest
from .faults import Faults
from .futures_rest import FuturesRest
from .futures_ws import FuturesHub
from .hub import Hub
from .market import Market
from .replay import ReplayData, load
from .rest import RestApi
from .timeline import Timeline

QUOTES = ("USDT", "FDUSD", "USDC", "BTC", "ETH", "BNB", "EUR", "TRY", "BRL")


@dataclass
class SimConfig:
    symbols: list[str] = field(default_factory=lambda: ["BTCUSDT", "ETHUSDT", "BNBBTC"])
    rate: float = 20.0  # market steps per second per symbol (each: ~0.6 trades bursts + book changes)
    connection_lifetime: float = 86_400.0
    shutdown_before_close: bool = False
    ping_interval: float | None = 20.0
    pong_timeout: float | None = 60.0
    replay: str | Path | None = None
    replay_speed: str | float = "max"
    replay_delay: float = 0.3  # wait after the first subscription so a client can finish subscribing
    # "connection": every connection gets every recorded frame from the start (byte-exact frame tests);
    # "timeline": one market timeline, each frame published once to whoever is subscribed then, REST
    # answering from the frames published so far (drops, restarts and catch-ups as on Binance)
    replay_mode: str = "connection"
    seed: int = 1
    host: str = "127.0.0.1"
    rest_port: int = 0
    ws_port: int = 0
    weight_limit: int = 6000
    ban_seconds: float = 120.0
    max_streams: int = 1024
    max_incoming_per_s: int = 5
    max_connects_per_window: int = 300
    connect_window_s: float = 300.0
    clock_offset_ms: int = 0


def split_symbol(sym: str) -> tuple[str, str]:
    for q in QUOTES:
        if sym.endswith(q) and len(sym) > len(q):
            return sym[: -len(q)], q
    return sym[:-3], sym[-3:]


def _free_port(host: str) -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


class BinanceSim:
    def __init__(self, config: SimConfig | None = None) -> None:
        self.config = config or SimConfig()
        self.stats: Counter[str] = Counter()
        self.control_log: collections.deque[tuple[float, int, str]] = collections.deque(maxlen=10_000)
        self.attempts: collections.deque[float] = collections.deque()
        self.connections: set[ws_mod.SimConnection] = set()
        self.ws_api_connections: set[Any] = set()  # wsapi.WsApiConnection
        self.replay_data: ReplayData | None = load(self.config.replay) if self.config.replay else None
        self.markets: dict[str, Market] = {}
        synthetic: dict[str, Market] = {}
        for i, sym in enumerate(self.config.symbols):
            base, quote = split_symbol(sym.upper())
            m = Market(sym.upper(), base, quote, seed=self.config.seed, mid_ticks=3_000_000 - i * 7_000)
            self.markets[m.symbol] = synthetic[m.symbol] = m
        if self.replay_data:
            info_syms = {s["symbol"]: s for s in (self.replay_data.exchange_info or {}).get("symbols", [])}
            for sym in self.replay_data.symbols | set(info_syms):
                if sym not in self.markets:
                    s = info_syms.get(sym, {})
                    self.markets[sym] = Market(sym, s.get("baseAsset", sym[:-3]), s.get("quoteAsset", sym[-3:]),
                                               seed=self.config.seed)
        self.hub = Hub(synthetic, self.config.rate, known=self.markets)
        self.timeline: Timeline | None = None
        if self.replay_data is not None and self.config.replay_mode == "timeline":
            sp = self.config.replay_speed
            self.timeline = Timeline(self.replay_data, self.hub,
                                     None if sp == "max" else 1.0 if sp == "recorded" else float(sp))
        self.faults = Faults(self)
        self.account = SimAccount(lambda: self.config.clock_offset_ms)
        self.account_rest = AccountRest(self)
        self.futures_rest = FuturesRest(self)
        self.futures_hub = FuturesHub(self)
        self.rest = RestApi(self)
        self._ws_server: Server | None = None
        self._uvicorn: uvicorn.Server | None = None
        self._uvicorn_task: asyncio.Task[None] | None = None
        self._replay_tasks: dict[int, asyncio.Task[None]] = {}
        self._replay_started = asyncio.Event()
        self.rest_url = ""
        self.ws_url = ""
        self.ws_api_url = ""

    # --- lifecycle -----------------------------------------------------------------------------------
    async def start(self) -> BinanceSim:
        cfg = self.config
        self._ws_server = await serve(
            lambda c: ws_mod.handler(self, c), cfg.host, cfg.ws_port,
            process_request=ws_mod.make_process_request(self),
            ping_interval=cfg.ping_interval, ping_timeout=cfg.pong_timeout,
            max_size=2**20, compression=None,
        )
        ws_port = next(iter(self._ws_server.sockets)).getsockname()[1]
        self.ws_url = f"ws://{cfg.host}:{ws_port}"
        self.ws_api_url = f"{self.ws_url}{ws_mod.WS_API_PATH}"
        rest_port = cfg.rest_port or _free_port(cfg.host)
        uc = uvicorn.Config(self.rest.app(), host=cfg.host, port=rest_port, log_level="warning", lifespan="off",
                            access_log=False)
        self._uvicorn = uvicorn.Server(uc)
        self._uvicorn.install_signal_handlers = lambda: None  # type: ignore[method-assign,attr-defined]
        self._uvicorn_task = asyncio.create_task(self._uvicorn.serve())
        deadline = time.monotonic() + 10
        while not self._uvicorn.started:
            if self._uvicorn_task.done() or time.monotonic() > deadline:
                raise RuntimeError("simulator REST server failed to start")
            await asyncio.sleep(0.01)
        self.rest_url = f"http://{cfg.host}:{rest_port}"
        self.hub.start()
        if cfg.rate > 0:
            self.futures_hub.start()
        return self

    async def stop(self) -> None:
        await self.hub.stop()
        await self.futures_hub.stop()
        if self.timeline is not None:
            await self.timeline.stop()
        for t in self._replay_tasks.values():
            t.cancel()
        if self._ws_server is not None:
            for c in [*self.connections, *self.ws_api_connections]:
                c.abort()
            self._ws_server.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._ws_server.wait_closed(), 5)
        if self._uvicorn is not None and self._uvicorn_task is not None:
            self._uvicorn.should_exit = True
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._uvicorn_task, 5)

    async def __aenter__(self) -> BinanceSim:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # --- access for tests ----------------------------------------------------------------------------
    def market(self, symbol: str) -> Market:
        return self.markets[symbol.upper()]

    def book(self, symbol: str, levels: int) -> tuple[list[list[str]], list[list[str]]]:
        """The true top ``levels`` of ``symbol``'s book, as the exchange would publish them."""
        snap = self.markets[symbol.upper()].depth_snapshot(levels)
        return snap["bids"], snap["asks"]

    def control_messages_in_window(self, conn_id: int, window_s: float = 1.0) -> int:
        """Max number of control messages one connection sent in any ``window_s`` window."""
        times = [t for t, cid, _ in self.control_log if cid == conn_id]
        best = 0
        j = 0
        for i, t in enumerate(times):
            while t - times[j] > window_s:
                j += 1
            best = max(best, i - j + 1)
        return best

    # --- replay --------------------------------------------------------------------------------------
    def on_subscribe(self, conn: ws_mod.SimConnection, stream: str) -> None:
        rd = self.replay_data
        if rd is None or stream not in rd.streams:
            return
        if self.timeline is not None:
            self.timeline.start(self.config.replay_delay)
            return
        if conn.id in self._replay_tasks:
            return
        self._replay_tasks[conn.id] = asyncio.get_running_loop().create_task(self._replay(conn))
        self._replay_started.set()

    def replay_start(self) -> None:
        """Start replay on every current connection now (instead of at the first subscription)."""
        for c in list(self.connections):
            if c.id not in self._replay_tasks:
                self._replay_tasks[c.id] = asyncio.get_running_loop().create_task(self._replay(c, delay=0))
                self._replay_started.set()

    async def _replay(self, conn: ws_mod.SimConnection, delay: float | None = None) -> None:
        rd = self.replay_data
        assert rd is not None
        await asyncio.sleep(self.config.replay_delay if delay is None else delay)
        speed = self.config.replay_speed
        mult = 1.0 if speed == "recorded" else (None if speed == "max" else float(speed))
        t0 = time.monotonic()
        ts0 = rd.frames[0][0] if rd.frames else 0.0
        for i, (ts, stream, payload) in enumerate(rd.frames):
            if conn.closed:
                return
            if mult:
                wait = (ts - ts0) / mult - (time.monotonic() - t0)
                if wait > 0:
                    await asyncio.sleep(wait)
            elif i % 64 == 0:
                await asyncio.sleep(0)
            if stream in conn.streams:
                conn.send_event(stream, payload)
                self.stats["replay_frames_sent"] += 1
        while conn.out and not conn.closed:
            await asyncio.sleep(0.005)

    async def replay_done(self, timeout: float = 60.0) -> None:
        """Wait until replay started and every replaying connection has sent all its frames (timeline mode:
        until the timeline has published its last frame)."""
        if self.timeline is not None:
            await asyncio.wait_for(self.timeline.started.wait(), timeout)
            await asyncio.wait_for(self.timeline.done.wait(), timeout)
            return
        await asyncio.wait_for(self._replay_started.wait(), timeout)
        await asyncio.wait_for(asyncio.gather(*self._replay_tasks.values(), return_exceptions=True), timeout)

    def describe(self) -> dict[str, Any]:
        return {"rest_url": self.rest_url, "ws_url": self.ws_url, "control_url": self.rest_url + "/_sim/",
                "env": self.env()}

    def env(self) -> dict[str, str]:
        """The settings that point binance-mcp and binance-streamd at this simulator (spot, futures, WS API)."""
        return {"BINANCE_MCP_REST_BASE_URL": self.rest_url, "BINANCE_MCP_WS_BASE_URL": self.ws_url,
                "BINANCE_MCP_WS_API_URL": self.ws_api_url, "BINANCE_MCP_FUTURES_REST_BASE_URL": self.rest_url,
                "BINANCE_MCP_FUTURES_WS_BASE_URL": self.ws_url}
