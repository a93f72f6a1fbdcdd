"""End to end with the real feed: binance-streamd (StreamDaemon) on the Binance simulator, a real redis-server,
and the ``binance-mcp`` console script over stdio and Streamable HTTP (real MCP clients).

* the issue-2 slice: the daemon carries its configured streams; both transports answer get_server_time and
  get_price (REST, from the simulator) and get_stream_latest (Redis) with structured output;
* two front ends (stdio + HTTP) subscribe the same stream: the simulator sees one SUBSCRIBE, and one
  UNSUBSCRIBE once both leases lapse;
* embedded mode: no Redis URL, one stdio process runs the feed in-process and answers from it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
import redis.asyncio as aioredis
from mcp import Client

from tests.support.e2e import HttpFrontEnd, pid_of, stdio_params
from tests.support.fake_feed import wait_until
from tests.support.sim import BinanceSim, SimConfig

pytestmark = [pytest.mark.e2e, pytest.mark.integration]


@pytest.fixture
def front_ends() -> Iterator[list[HttpFrontEnd]]:
    started: list[HttpFrontEnd] = []
    yield started
    for fe in started:
        fe.stop()


@pytest.fixture
async def sim() -> AsyncIterator[BinanceSim]:
    async with BinanceSim(SimConfig(symbols=["BTCUSDT", "ETHUSDT"], rate=20.0)) as s:
        yield s


def feed_env(sim: BinanceSim, redis_url: str | None, namespace: str, **extra: str) -> dict[str, str]:
    env = {
        "BINANCE_MCP_REST_BASE_URL": sim.rest_url,
        "BINANCE_MCP_WS_BASE_URL": sim.ws_url,
        "BINANCE_MCP_NAMESPACE": namespace,
        "BINANCE_MCP_LEASE_TTL_S": "2",
        "BINANCE_MCP_UNSUBSCRIBE_GRACE_S": "0",
        **extra,
    }
    if redis_url:
        env["BINANCE_MCP_REDIS_URL"] = redis_url
    return env


@contextlib.asynccontextmanager
async def daemon(settings: Any) -> AsyncIterator[Any]:
    from binance_streamd.service import StreamDaemon

    d = StreamDaemon(settings)
    await d.start()
    try:
        yield d
    finally:
        await d.stop()


def subscribes(sim: BinanceSim, stream: str, method: str = "SUBSCRIBE") -> int:
    n = 0
    for _t, _cid, text in list(sim.control_log):
        with contextlib.suppress(ValueError, AttributeError):
            msg = json.loads(text)
            if msg.get("method") == method and stream in (msg.get("params") or []):
                n += 1
    return n


async def latest_has_data(c: Client, stream: str) -> dict[str, Any] | None:
    res = await c.call_tool("get_stream_latest", {"stream": stream})
    sc = res.structured_content or {}
    return sc if sc.get("data") else None


async def test_issue2_slice_over_stdio_and_http(redis_server, settings_factory, namespace, sim, front_ends) -> None:
    settings = settings_factory(
        redis_url=redis_server.url, rest_base_url=sim.rest_url, ws_base_url=sim.ws_url,
        streams=["btcusdt@trade", "ethusdt@bookTicker"], history_maxlen=100,
    )
    env = feed_env(sim, redis_server.url, namespace)
    async with daemon(settings):
        http = await HttpFrontEnd(env).start()
        front_ends.append(http)
        async with Client(stdio_params(env)) as stdio_c, Client(f"{http.url}/mcp") as http_c:
            for c in (stdio_c, http_c):
                t = await c.call_tool("get_server_time", {})
                assert not t.is_error and isinstance(t.structured_content["server_time_ms"], int)
                p = await c.call_tool("get_price", {"symbol": "BTCUSDT"})
                assert not p.is_error and p.structured_content["symbol"] == "BTCUSDT"
                assert "." in p.structured_content["price"]  # an exact decimal string
                out = await wait_until(lambda c=c: latest_has_data(c, "btcusdt@trade"), timeout=30)
                assert out["data"]["symbol"] == "BTCUSDT" and out["freshness"]["source"] == "ws"
                assert out["freshness"]["state"] == "live" and out["freshness"]["stale"] is False
                book = await wait_until(lambda c=c: latest_has_data(c, "ethusdt@bookTicker"), timeout=30)
                assert book["data"]["symbol"] == "ETHUSDT"
            h = await http_c.call_tool("get_stream_history", {"stream": "btcusdt@trade", "count": 5})
            assert 1 <= len(h.structured_content["entries"]) <= 5
            assert h.structured_content["cap"] == 10_000 or h.structured_content["cap"] > 0


async def test_two_front_ends_one_upstream_subscription(redis_server, settings_factory, namespace, sim, front_ends) -> None:
    settings = settings_factory(
        redis_url=redis_server.url, rest_base_url=sim.rest_url, ws_base_url=sim.ws_url,
        lease_ttl_s=2.0, unsubscribe_grace_s=0.0,
    )
    env = feed_env(sim, redis_server.url, namespace)
    r = aioredis.Redis.from_url(redis_server.url)
    try:
        async with daemon(settings):
            http = await HttpFrontEnd(env).start()
            front_ends.append(http)
            with contextlib.suppress(Exception):  # the stdio server is SIGKILLed inside the block
                async with Client(stdio_params(env)) as stdio_c, Client(f"{http.url}/mcp") as http_c:
                    a = await stdio_c.call_tool("subscribe_streams", {"streams": ["btcusdt@aggTrade"], "wait_s": 20})
                    b = await http_c.call_tool("subscribe_streams", {"streams": ["btcusdt@aggTrade"], "wait_s": 20})
                    assert a.structured_content["live"] == 1, a.structured_content
                    assert b.structured_content["live"] == 1, b.structured_content
                    await wait_until(lambda: latest_has_data(http_c, "btcusdt@aggTrade"), timeout=30)
                    assert subscribes(sim, "btcusdt@aggTrade") == 1  # two agents, one upstream subscription
                    os.kill(pid_of(a.structured_content["holder"]), signal.SIGKILL)
                    http.kill(signal.SIGKILL)

            async def unsubscribed() -> bool:  # forgotten: no status left behind
                return not await r.exists(f"{namespace}:v1:status:btcusdt@aggTrade")

            await wait_until(unsubscribed, timeout=30)  # both leases lapsed: the daemon let the stream go
            await wait_until(lambda: subscribes(sim, "btcusdt@aggTrade", "UNSUBSCRIBE") == 1, timeout=10)
            assert subscribes(sim, "btcusdt@aggTrade") == 1
    finally:
        await r.aclose()


async def test_embedded_mode_over_stdio(sim, namespace) -> None:
    env = feed_env(sim, None, namespace, BINANCE_MCP_STREAMS="btcusdt@trade")
    async with Client(stdio_params(env)) as c:
        status = await c.call_tool("get_feed_status", {})
        assert status.structured_content["embedded"] is True
        out = await c.call_tool("subscribe_streams", {"streams": ["ethusdt@kline_1m"], "wait_s": 20})
        assert out.structured_content["live"] == 1, out.structured_content
        latest = await wait_until(lambda: latest_has_data(c, "btcusdt@trade"), timeout=30)
        assert latest["freshness"]["source"] == "ws"
        kline = await wait_until(lambda: latest_has_data(c, "ethusdt@kline_1m"), timeout=30)
        assert kline["data"]["kline"]["interval"] == "1m"
        p = await c.call_tool("get_price", {"symbol": "ETHUSDT"})
        assert not p.is_error


async def test_live_book_and_notifications_from_the_real_daemon(
    redis_server, settings_factory, namespace, sim, front_ends
) -> None:
    settings = settings_factory(
        redis_url=redis_server.url, rest_base_url=sim.rest_url, ws_base_url=sim.ws_url,
        order_book_symbols=["BTCUSDT"], streams=["ethusdt@trade"],
    )
    env = feed_env(sim, redis_server.url, namespace)
    async with daemon(settings):
        http = await HttpFrontEnd(env).start()
        front_ends.append(http)
        async with Client(f"{http.url}/mcp") as c:

            async def book() -> dict[str, Any] | None:
                res = await c.call_tool("get_live_order_book", {"symbol": "BTCUSDT", "levels": 5, "band_pct": 0.5})
                return None if res.is_error else res.structured_content

            out = await wait_until(book, timeout=30)
            assert len(out["bids"]) == 5 and len(out["asks"]) == 5
            assert float(out["best_bid"]) < float(out["best_ask"])
            assert out["depth"]["bid_levels"] >= 1 and out["freshness"]["stale"] is False
            for uri in ("binance://book/BTCUSDT", "binance://stream/ethusdt@trade"):
                async with c.listen(resource_subscriptions=[uri]) as sub:
                    event = await asyncio.wait_for(sub.__anext__(), 20)
                    assert event.uri == uri  # type: ignore[union-attr]
            async def feed_up() -> dict[str, Any] | None:  # the stats record is written once a second
                sc = (await c.call_tool("get_feed_status", {})).structured_content
                ok = (sc and sc["daemon_alive"] and (sc["stats"] or {}).get("connections_up", 0) >= 1
                      and sc["streams_by_state"].get("live", 0) >= 2)
                return sc if ok else None

            sc = await wait_until(feed_up, timeout=15, what="feed status with a live connection")
            assert sc["daemon_alive"] is True and sc["stats"]["connections_up"] >= 1
