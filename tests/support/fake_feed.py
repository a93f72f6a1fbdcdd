"""A stand-in for binance-streamd that plays the daemon's side of the Redis contract (keys.py) in tests.

It reads leases (and the always-on set) and writes everything the MCP server reads: ``status:<stream>``
(pending -> live, or failed for streams in ``fail``), ``latest:<stream>``, ``hist:<stream>``, ``book:<SYM>``,
the heartbeat and stats, and publishes changed names on ``updates``. It reconciles when ``control`` says
``reconcile`` and on a short poll, like the real daemon. ``upstream_subscribes`` counts how often each
stream was subscribed "at Binance", so tests can check that many holders cost one subscription.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections import Counter
from typing import Any

import orjson
import redis.asyncio as aioredis

from binance_common.keys import Keys
from binance_common.timeutil import now_ms
from binance_mcp.aio import cancel_and_wait
from tests.support.waiting import wait_until


class FakeDaemon:
    def __init__(
        self,
        redis: aioredis.Redis,
        keys: Keys,
        *,
        fail: dict[str, str] | None = None,
        history_maxlen: int = 1000,
        exact_trim: bool = True,
        poll_s: float = 0.05,
        live_delay_s: float = 0.0,
    ) -> None:
        self.r = redis
        self.keys = keys
        self.fail = fail or {}
        self.history_maxlen = history_maxlen
        self.exact_trim = exact_trim
        self.poll_s = poll_s
        self.live_delay_s = live_delay_s
        self.active: set[str] = set()
        self.upstream_subscribes: Counter[str] = Counter()
        self.upstream_unsubscribes: Counter[str] = Counter()
        self._task: asyncio.Task[None] | None = None
        self.reconciles = 0
        self.changed = asyncio.Event()
        self._stopping = False

    async def __aenter__(self) -> FakeDaemon:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def start(self) -> None:
        await self.heartbeat()
        self._task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        self._stopping = True
        if self._task is not None:
            await cancel_and_wait(self._task, grace_s=self.poll_s + 0.5)
        with contextlib.suppress(Exception):
            await self.r.delete(self.keys.heartbeat)

    async def heartbeat(self) -> None:
        hb = {"pid": os.getpid(), "host": "fake", "started": now_ms(), "ts": now_ms()}
        await self.r.set(self.keys.heartbeat, orjson.dumps(hb), px=15_000)
        stats = {"connections": 1 if self.active else 0, "streams": {s: {"msgs": 0} for s in self.active},
                 "max_silence_ms": 1}
        await self.r.set(self.keys.daemon_stats, orjson.dumps(stats))

    async def _run(self) -> None:
        pubsub = self.r.pubsub(ignore_subscribe_messages=True)
        await pubsub.subscribe(self.keys.control_channel)
        try:
            while not self._stopping:
                await pubsub.get_message(ignore_subscribe_messages=True, timeout=self.poll_s)
                await self.reconcile()
                await self.heartbeat()
        finally:
            await pubsub.aclose()

    async def wanted(self) -> set[str]:
        members: list[Any] = await self.r.zrangebyscore(self.keys.leases, now_ms(), "+inf")
        always: set[Any] = await self.r.smembers(self.keys.always_on)
        out = {Keys.split_lease_member(m.decode())[0] for m in members}
        return out | {a.decode() for a in always}

    async def reconcile(self) -> None:
        self.reconciles += 1
        wanted = await self.wanted()
        now = now_ms()
        for s in sorted(wanted - self.active):
            self.active.add(s)
            self.upstream_subscribes[s] += 1
            await self.r.hset(self.keys.status(s), mapping={"state": "pending", "since": now, "updated": now})
            if self.live_delay_s:
                await asyncio.sleep(self.live_delay_s)
            if s in self.fail:
                await self.r.hset(
                    self.keys.status(s), mapping={"state": "failed", "reason": self.fail[s], "since": now_ms()}
                )
            else:
                await self.r.hset(self.keys.status(s), mapping={"state": "live", "since": now_ms(), "msgs": 0})
            self.changed.set()
        for s in sorted(self.active - wanted):
            self.active.discard(s)
            self.upstream_unsubscribes[s] += 1
            await self.r.hset(self.keys.status(s), mapping={"state": "unsubscribed", "since": now})
            self.changed.set()
        # the real daemon drops expired leases
        await self.r.zremrangebyscore(self.keys.leases, "-inf", now - 1)

    async def emit(self, stream: str, payload: dict[str, Any] | list[Any], *, backfilled: bool = False) -> str:
        """Write one message of ``stream`` like the daemon: latest, capped history, status, update."""
        r = now_ms()
        d = orjson.dumps(payload)
        fields: dict[Any, Any] = {"d": d, "r": r}
        if backfilled:
            fields["b"] = 1
        pipe = self.r.pipeline(transaction=False)
        pipe.set(self.keys.latest(stream), orjson.dumps({"r": r, "d": orjson.Fragment(d)}))
        pipe.xadd(self.keys.history(stream), fields, maxlen=self.history_maxlen, approximate=not self.exact_trim)
        pipe.hset(self.keys.status(stream), mapping={"last_recv": r})
        pipe.hincrby(self.keys.status(stream), "msgs", 1)
        pipe.publish(self.keys.updates_channel, stream)
        res = await pipe.execute()
        return res[1].decode()

    async def write_book(
        self, symbol: str, bids: list[list[str]], asks: list[list[str]], last_update_id: int = 1
    ) -> None:
        book = {"symbol": symbol, "lastUpdateId": last_update_id, "E": now_ms(), "asof": now_ms(), "bids": bids,
                "asks": asks}
        await self.r.set(self.keys.book(symbol), orjson.dumps(book))
        await self.r.publish(self.keys.updates_channel, f"book:{symbol.upper()}")


def trade(symbol: str, trade_id: int, price: str = "100.00", qty: str = "0.00100000") -> dict[str, Any]:
    """A trade payload exactly as Binance sends it."""
    return {"e": "trade", "E": now_ms(), "s": symbol.upper(), "t": trade_id, "p": price, "q": qty, "T": now_ms(),
            "m": True, "M": True}


class Replica:
    """One in-process binance-mcp replica (Runtime + MCPServer) over a given Redis URL, for tests."""

    def __init__(self, settings: Any, *, transport: str = "memory", holder: str | None = None) -> None:
        from binance_mcp.runtime import Runtime
        from binance_mcp.server import build_server

        kw: dict[str, Any] = {"transport": transport}
        if holder:
            kw["holder"] = holder
        self.rt = Runtime(settings, **kw)
        self.mcp = build_server(self.rt)

    async def __aenter__(self) -> Replica:
        await self.rt.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.rt.stop()


class ServeApp:
    """Run an ASGI app with uvicorn in this event loop on a free loopback port (``url`` once entered)."""

    def __init__(self, app: Any, host: str = "127.0.0.1", port: int = 0) -> None:
        self.app = app
        self.host = host
        self.port = port
        self.url = ""
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> ServeApp:
        import uvicorn

        from binance_mcp.http.app import bind_socket

        sock = bind_socket(self.host, self.port)
        port = sock.getsockname()[1]
        config = uvicorn.Config(self.app, lifespan="on", log_level="warning", access_log=False,
                                timeout_graceful_shutdown=2)
        self.server = uvicorn.Server(config)
        self._task = asyncio.create_task(self.server.serve(sockets=[sock]))
        await wait_until(lambda: self.server.started or self._task.done(), timeout=15)
        if self._task.done():
            self._task.result()
        self.url = f"http://{self.host}:{port}"
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.server.should_exit = True
        if self._task is not None:
            await asyncio.wait_for(self._task, 15)


async def assert_keyspace_clean(r: Any, keys: Any) -> None:
    """Every key under the namespace names a valid stream (latest/hist/status), a valid symbol (book), or one
    of the fixed keys; every lease member is ``<valid stream> <holder without spaces>``."""
    from binance_common.keys import Keys
    from binance_common.streams import SYMBOL_RE, validate_stream

    for raw in [k async for k in r.scan_iter(match=keys.prefix + "*")]:
        key = raw.decode()[len(keys.prefix):]
        kind, _, name = key.partition(":")
        if kind in ("latest", "hist", "status"):
            assert validate_stream(name) == name, key
        elif kind == "book":
            assert SYMBOL_RE.fullmatch(name), key
        else:
            assert kind in ("leases", "daemon", "rl", "cache", "mcp"), key
    for m in await r.zrange(keys.leases, 0, -1):
        stream, holder = Keys.split_lease_member(m.decode())
        assert validate_stream(stream) == stream and " " not in holder and "\n" not in holder
